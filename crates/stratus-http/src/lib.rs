//! The HTTP server loop the API and the S3 gateway share.
//!
//! **Owns** the connection-level limits both HTTP doors share. **Does not
//! own** routing, authentication or per-route body sizes (`stratus-api`,
//! `stratus-s3`).
//!
//! Both doors face the Internet, so what a client can make a replica hold
//! is bounded here, once, for both ([`Limits`]):
//!
//! * **Connections**: at most [`Limits::max_connections`] at a time. The
//!   accept loop waits for a free slot before it accepts, so further
//!   clients wait in the kernel's backlog instead of costing memory.
//! * **Headers**: a request's head (request line and headers) must arrive
//!   within [`Limits::header_timeout`] — a client that trickles its headers
//!   (slowloris) or idles on a keep-alive connection is disconnected — and
//!   be at most [`Limits::max_header_bytes`] (larger heads get
//!   `431 Request Header Fields Too Large`). HTTP/2 has the same caps
//!   (header list size, a keep-alive ping) and a limit on streams.
//! * **Bodies**: every request body is a [`TimedBody`]: a client that
//!   stalls or trickles its body (fewer than [`Limits::body_min_bytes`] in
//!   [`Limits::body_timeout`] of the handler waiting) is cut off; the
//!   handler's read fails, so a partial upload is never acknowledged, and
//!   the connection is closed. Sizes are not limited here: each route knows
//!   its own bound (JSON bodies, modules) or streams (objects, images) — see
//!   the API and the S3 gateway.
//!
//! [`serve`] runs until `shutdown` completes, then lets open connections
//! finish for at most [`Limits::shutdown_grace`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

mod body;

pub use body::{BodyError, BodyStalled, TimedBody};

/// What one server lets its clients hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at a time.
    pub max_connections: usize,
    /// Time to receive a request's head (and idle time between requests).
    pub header_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// HTTP/2 streams open at a time on one connection.
    pub max_streams: u32,
    /// How long open connections may finish after shutdown.
    pub shutdown_grace: Duration,
    /// Waiting time for a request body after which a body that brought
    /// fewer than [`Limits::body_min_bytes`] meanwhile is cut off.
    pub body_timeout: Duration,
    /// Bytes a body must bring per [`Limits::body_timeout`] of waiting.
    pub body_min_bytes: u64,
}

/// Default [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default [`Limits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::max_header_bytes`]: S3's own limit is 8 KiB of headers
/// plus 2 KiB of user metadata; presigned URLs are long.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;
/// Default [`Limits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::body_min_bytes`] (about 34 bytes a second: only a
/// stalled or deliberately trickling client is that slow).
pub const DEFAULT_BODY_MIN_BYTES: u64 = 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_streams: 128,
            shutdown_grace: Duration::from_secs(10),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_min_bytes: DEFAULT_BODY_MIN_BYTES,
        }
    }
}

/// The address a request's connection came from (a request extension every
/// request [`serve`] hands on carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Why [`serve`] stopped before its shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting a connection failed for a reason that does not pass.
    #[error("accept: {0}")]
    Accept(#[source] std::io::Error),
}

/// Serves `service` on `listener` (HTTP/1.1 and HTTP/2, no TLS) within
/// `limits` until `shutdown` completes.
pub async fn serve<S, B>(
    listener: tokio::net::TcpListener,
    service: S,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError>
where
    S: hyper::service::Service<http::Request<TimedBody>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = ConnBuilder::new(TokioExecutor::new());
    conn.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    conn.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_streams)
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let (socket, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(ServeError::Accept(e)),
            },
            () = &mut shutdown => break,
        };
        // Small answers must not wait for Nagle's algorithm.
        let _ = socket.set_nodelay(true);
        let (inner, timeout, min) = (service.clone(), limits.body_timeout, limits.body_min_bytes);
        let timed = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            inner.call(req.map(|b| TimedBody::new(b, timeout, min)))
        });
        let c = conn.serve_connection(TokioIo::new(socket), timed);
        let c = graceful.watch(c.into_owned());
        tokio::spawn(async move {
            if let Err(e) = c.await {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
            drop(slot);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }
    Ok(())
}

/// Accept errors that do not mean the listener is broken (e.g. too many open
/// files, a connection reset before it was accepted).
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
    ) || e.raw_os_error().is_some_and(|c| c == 23 || c == 24) // ENFILE, EMFILE
}
