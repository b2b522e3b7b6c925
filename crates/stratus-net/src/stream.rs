//! Byte streams: a call whose answer is followed by raw bytes both ways,
//! for traffic that is not request/response (a tunnel to a service).
//!
//! The opening exchange is an ordinary call (one request frame, one
//! response frame, on a new bidirectional stream); after it, the same QUIC
//! stream carries whatever the two ends write, until either closes it. A
//! server decides per request whether a call becomes a stream
//! ([`serve_connection_streams`] and [`Reply::Stream`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_types::NodeId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::endpoint::{Connection, IncomingCall};
use crate::{frame, NetError};

/// Both directions of one QUIC stream, after its opening exchange.
pub struct Stream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

impl Stream {
    pub(crate) fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Stream {
        Stream { send, recv }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

impl Connection {
    /// Opens a stream: sends `req`, waits (at most `timeout`) for the
    /// answer, and returns it with the stream, which then carries raw bytes
    /// both ways. The caller reads the answer to learn whether the other
    /// side took the stream (an error answer means it did not).
    pub async fn open_stream<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        timeout: Duration,
    ) -> Result<(Resp, Stream), NetError> {
        let frame = frame::encode(req)?;
        let opened = async {
            let (mut send, mut recv) = self.raw_open_bi().await?;
            frame::write_frame_open(&mut send, &frame).await?;
            let answer = frame::read_frame(&mut recv, frame::MAX_FRAME_LEN).await?;
            Ok::<_, NetError>((frame::decode(&answer)?, Stream::new(send, recv)))
        };
        tokio::time::timeout(timeout, opened)
            .await
            .map_err(|_| NetError::Timeout(timeout))?
    }
}

impl IncomingCall {
    /// Answers the call with `resp` and keeps its stream open for raw bytes.
    pub async fn respond_and_stream<Resp: Serialize>(
        self,
        resp: &Resp,
    ) -> Result<Stream, NetError> {
        self.stream_after(frame::encode(resp)).await
    }

    /// [`IncomingCall::respond_and_stream`] with the answer already
    /// encoded (no reference to it is held across an await).
    async fn stream_after(self, frame: Result<Vec<u8>, NetError>) -> Result<Stream, NetError> {
        let frame = frame?;
        let (mut send, recv) = self.into_parts();
        frame::write_frame_open(&mut send, &frame).await?;
        Ok(Stream::new(send, recv))
    }
}

/// What runs on a call's stream after its answer.
pub type StreamTask = Box<dyn FnOnce(Stream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A server's answer to one call: a response frame, or a response frame
/// after which the stream is handed to a task.
pub enum Reply<Resp> {
    /// An ordinary answer; the stream ends.
    Frame(Resp),
    /// The answer, then `task` owns the stream.
    Stream(Resp, StreamTask),
}

/// [`crate::serve_connection_limited`], where the handler may turn a call
/// into a stream ([`Reply::Stream`]).
pub async fn serve_connection_streams<Req, Resp, L, H, Fut>(
    conn: Connection,
    max_frame: L,
    handler: H,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    L: Fn(NodeId) -> usize + Send + Sync + 'static,
    H: Fn(NodeId, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply<Resp>> + Send,
{
    let peer = conn.remote_id();
    loop {
        let mut call = match conn.accept_call().await {
            Ok(Some(call)) => call,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(peer = %peer.short(), error = %e, "connection ended");
                break;
            }
        };
        let handler = handler.clone();
        let max = max_frame(peer);
        tokio::spawn(async move {
            let req = match call.read_limited::<Req>(max).await {
                Ok(req) => req,
                Err(e @ NetError::FrameTooLarge { .. }) => {
                    tracing::debug!(peer = %peer.short(), error = %e, "request refused");
                    return;
                }
                Err(e) => {
                    tracing::debug!(peer = %peer.short(), error = %e, "bad request");
                    call.abort_call();
                    return;
                }
            };
            match handler(peer, req).await {
                Reply::Frame(resp) => {
                    let frame = frame::encode(&resp);
                    drop(resp);
                    if let Err(e) = call.send_encoded_frame(frame).await {
                        tracing::debug!(peer = %peer.short(), error = %e, "cannot send response");
                    }
                }
                Reply::Stream(resp, task) => match call.stream_after(frame::encode(&resp)).await {
                    Ok(stream) => task(stream).await,
                    Err(e) => {
                        tracing::debug!(peer = %peer.short(), error = %e, "cannot open the stream");
                    }
                },
            }
        });
    }
}
