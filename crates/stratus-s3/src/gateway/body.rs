//! Object bodies: s3s blobs to backend streams and back, and the streaming
//! `Content-MD5` check.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use md5::{Digest, Md5};
use s3s::dto::StreamingBlob;
use s3s::{s3_error, S3Result};

use crate::backend::ByteStream;

/// An object body from s3s, as the backend's stream type.
pub(super) fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(b) => Box::pin(b.map_err(std::io::Error::other)),
        None => Box::pin(futures::stream::empty()),
    }
}

/// A backend stream as an s3s body (s3s wants `Sync`; the mutex is only ever
/// accessed through `&mut`, so it is never locked).
pub(super) struct SyncStream(std::sync::Mutex<ByteStream>);

impl Stream for SyncStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(s) => s.as_mut().poll_next(cx),
            Err(_) => Poll::Ready(Some(Err(std::io::Error::other("poisoned body stream")))),
        }
    }
}

pub(super) fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(std::sync::Mutex::new(stream)))
}

/// Checks a body against the client's `Content-MD5` while it streams: on a
/// mismatch the stream ends with an error (so the backend writes nothing)
/// and `mismatch` is set (so the gateway answers `BadDigest`).
pub(super) struct Md5Check {
    inner: ByteStream,
    hasher: Md5,
    expected: Vec<u8>,
    mismatch: Arc<AtomicBool>,
    done: bool,
}

impl Stream for Md5Check {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.done = true;
                let got = std::mem::take(&mut this.hasher).finalize();
                if got.as_slice() == this.expected.as_slice() {
                    Poll::Ready(None)
                } else {
                    this.mismatch.store(true, Ordering::SeqCst);
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "Content-MD5 mismatch",
                    ))))
                }
            }
            other => other,
        }
    }
}

/// Wraps `body` in a Content-MD5 check if the client sent one.
pub(super) fn checked_body(
    body: Option<StreamingBlob>,
    content_md5: Option<&str>,
) -> S3Result<(ByteStream, Option<Arc<AtomicBool>>)> {
    let stream = body_stream(body);
    let Some(b64) = content_md5 else {
        return Ok((stream, None));
    };
    let expected = base64_decode(b64)
        .filter(|d| d.len() == 16)
        .ok_or_else(|| s3_error!(InvalidDigest))?;
    let mismatch = Arc::new(AtomicBool::new(false));
    let checked = Md5Check {
        inner: stream,
        hasher: Md5::new(),
        expected,
        mismatch: Arc::clone(&mismatch),
        done: false,
    };
    Ok((Box::pin(checked), Some(mismatch)))
}

/// Standard base64 (with padding), enough for Content-MD5.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("1B2M2Y8AsgTpgAmY7PhCfg==")
                .map(hex::encode)
                .as_deref(),
            Some(crate::backend::EMPTY_MD5)
        );
        assert_eq!(base64_decode("!!"), None);
    }
}
