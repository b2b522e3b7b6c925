//! Request bodies that cannot stall a handler forever.
//!
//! [`TimedBody`] wraps every request body [`crate::serve`] hands to a
//! service. It counts only the time the handler spends *waiting* for the
//! client (a handler that reads slowly, e.g. while it writes what it already
//! has, costs the client nothing): once the handler has waited
//! [`Limits::body_timeout`](crate::Limits::body_timeout) in all and the client
//! sent fewer than [`Limits::body_min_bytes`](crate::Limits::body_min_bytes)
//! meanwhile, the body ends with a [`BodyStalled`] error. A client that
//! stalls mid-body or trickles it a few bytes at a time is cut off; the
//! handler sees an error instead of the end of the body, so it never
//! acknowledges a partial upload, and the connection is closed (hyper does
//! not reuse a connection whose request body was not read to its end).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A request body stalled: the error [`TimedBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled: fewer than {min_bytes} bytes arrived in {timeout:?} of waiting (the body timeout)")]
pub struct BodyStalled {
    /// [`Limits::body_timeout`](crate::Limits::body_timeout).
    pub timeout: Duration,
    /// [`Limits::body_min_bytes`](crate::Limits::body_min_bytes).
    pub min_bytes: u64,
}

/// Errors of a [`TimedBody`].
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A request body with an idle and minimum-rate bound (see the module).
pub struct TimedBody<B = hyper::body::Incoming> {
    inner: B,
    timeout: Duration,
    min_bytes: u64,
    /// Waiting time counted in the current window (excluding the wait now
    /// in progress).
    waited: Duration,
    /// Bytes received in the current window.
    got: u64,
    /// The wait in progress: when it began, and its timer.
    waiting: Option<(Instant, Pin<Box<Sleep>>)>,
    stalled: bool,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, timeout: Duration, min_bytes: u64) -> Self {
        TimedBody {
            inner,
            timeout,
            min_bytes,
            waited: Duration::ZERO,
            got: 0,
            waiting: None,
            stalled: false,
        }
    }

    /// Ends the wait in progress and closes the window if it is full:
    /// `Err` when the window saw too few bytes.
    fn settle(&mut self, now: Instant) -> Result<(), BodyStalled> {
        if let Some((since, _)) = self.waiting.take() {
            self.waited += now.saturating_duration_since(since);
        }
        if self.waited >= self.timeout {
            if self.got < self.min_bytes {
                return Err(BodyStalled {
                    timeout: self.timeout,
                    min_bytes: self.min_bytes,
                });
            }
            self.waited = Duration::ZERO;
            self.got = 0;
        }
        Ok(())
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = B::Data;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(frame) => {
                    if let Some(Ok(f)) = &frame {
                        if let Some(d) = f.data_ref() {
                            this.got += d.remaining() as u64;
                        }
                    }
                    if frame.is_some() {
                        if let Err(e) = this.settle(Instant::now()) {
                            this.stalled = true;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    } else {
                        this.waiting = None;
                    }
                    return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
                }
                Poll::Pending => {
                    let now = Instant::now();
                    if this.waiting.is_none() {
                        let left = this.timeout.saturating_sub(this.waited);
                        this.waiting = Some((now, Box::pin(tokio::time::sleep(left))));
                    }
                    let Some((_, sleep)) = &mut this.waiting else {
                        return Poll::Pending;
                    };
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The window is over while waiting.
                    if let Err(e) = this.settle(now) {
                        tracing::debug!(error = %e, "cutting off a request body");
                        this.stalled = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    // Enough came: a new window, and poll again (which
                    // starts its timer).
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stalled || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
