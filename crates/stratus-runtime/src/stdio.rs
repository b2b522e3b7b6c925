//! Guest stdout/stderr forwarded to the executor's output channel as the
//! guest writes.

use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::PollSender;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::Output;

/// How many bytes a guest may write before the stream must hand them to the
/// channel; also the largest chunk sent.
pub(crate) const WRITE_BUDGET: usize = 64 * 1024;

/// Which of the guest's output streams.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    fn wrap(self, data: Vec<u8>) -> Output {
        match self {
            StreamKind::Stdout => Output::Stdout(data),
            StreamKind::Stderr => Output::Stderr(data),
        }
    }
}

/// A WASI stdout/stderr that sends every write to an mpsc channel.
///
/// When the channel is full the guest waits (backpressure); when the receiver
/// is gone, output is discarded and the guest goes on.
#[derive(Clone)]
pub(crate) struct ChannelOutput {
    tx: mpsc::Sender<Output>,
    kind: StreamKind,
}

impl ChannelOutput {
    pub(crate) fn new(tx: mpsc::Sender<Output>, kind: StreamKind) -> Self {
        ChannelOutput { tx, kind }
    }
}

impl IsTerminal for ChannelOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ChannelOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(ChannelWriter {
            tx: Mutex::new(PollSender::new(self.tx.clone())),
            kind: self.kind,
        })
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(ChannelStream {
            tx: self.tx.clone(),
            kind: self.kind,
            pending: Vec::new(),
            closed: false,
        })
    }
}

/// The `wasi:io/streams` output stream (used by preview 1 and preview 2).
///
/// Writes are buffered in `pending` (at most [`WRITE_BUDGET`] bytes) only
/// while the channel is full; otherwise each write is sent at once.
struct ChannelStream {
    tx: mpsc::Sender<Output>,
    kind: StreamKind,
    pending: Vec<u8>,
    closed: bool,
}

impl ChannelStream {
    /// Sends the pending bytes if the channel has room, without waiting.
    fn try_drain(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.closed {
            self.pending.clear();
            return;
        }
        match self.tx.try_reserve() {
            Ok(permit) => permit.send(self.kind.wrap(mem::take(&mut self.pending))),
            Err(TrySendError::Full(())) => {}
            Err(TrySendError::Closed(())) => {
                self.closed = true;
                self.pending.clear();
            }
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ChannelStream {
    async fn ready(&mut self) {
        if self.pending.is_empty() || self.closed {
            return;
        }
        let kind = self.kind;
        match self.tx.reserve().await {
            Ok(permit) => permit.send(kind.wrap(mem::take(&mut self.pending))),
            Err(_) => {
                self.closed = true;
                self.pending.clear();
            }
        }
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ChannelStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if self.closed || bytes.is_empty() {
            return Ok(());
        }
        if self.pending.len() + bytes.len() > WRITE_BUDGET {
            return Err(StreamError::trap(
                "write of more bytes than `check-write` permitted",
            ));
        }
        self.pending.extend_from_slice(&bytes);
        self.try_drain();
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.try_drain();
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.try_drain();
        Ok(WRITE_BUDGET - self.pending.len())
    }

    async fn cancel(&mut self) {
        self.ready().await;
    }
}

impl Drop for ChannelStream {
    fn drop(&mut self) {
        // Best effort: a guest that wrote without flushing and exited.
        self.try_drain();
    }
}

/// The `AsyncWrite` form of the same stream (used by WASI interfaces that
/// write through tokio rather than `wasi:io/streams`).
struct ChannelWriter {
    tx: Mutex<PollSender<Output>>,
    kind: StreamKind,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let kind = self.kind;
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => Poll::Ready(Ok(buf.len())), // receiver gone: discard
            Poll::Ready(Ok(())) => {
                let len = buf.len().min(WRITE_BUDGET);
                // A failed send means the receiver is gone: discard.
                let _ = tx.send_item(kind.wrap(buf[..len].to_vec()));
                Poll::Ready(Ok(len))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
