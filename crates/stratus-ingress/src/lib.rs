//! The ingress: HTTP requests from anywhere to tenants' services, routed
//! by their `Host` header (issue 17).
//!
//! **Owns** routing a request by host name to one of a service's running
//! instances (in turn, trying the next when one cannot be reached and the
//! request has no body to replay), forwarding it as HTTP/1.1 with the
//! proxy headers (`X-Forwarded-For`, `-Host`, `-Proto`, hop-by-hop headers
//! dropped), and keeping idle connections to instances for the next
//! requests. The door's own limits (connections, header size and time,
//! stalled bodies) are `stratus-http`'s.
//!
//! **Does not own** which host belongs to which workload, nor how an
//! instance is reached: that is the [`Router`]'s — in the product the
//! control replica, which dials an instance over its node's tunnel link
//! (so a service on a NAT-ed node answers too) with TLS to the node's key
//! inside.
//!
//! Not served (yet): protocol upgrades (WebSocket), TLS on the door (put
//! it behind a TLS terminator, or give it a certificate later).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stratus_http::{Limits, PeerAddr, ServeError, TimedBody};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long reaching an instance may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an instance may take to answer a request's head.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Instances tried for one request that can be replayed (no body).
pub const MAX_TRIES: usize = 3;
/// Idle connections kept to one instance.
pub const MAX_IDLE_PER_INSTANCE: usize = 32;
/// Longest host name looked up.
pub const MAX_HOST_LEN: usize = 253;

/// A byte stream to an instance.
pub trait Pipe: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Pipe for T {}

/// A connection to an instance, as a router dials it.
pub type Conn = Box<dyn Pipe>;

/// A dial in progress.
pub type Dialing = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

/// Where requests go.
pub struct Route {
    /// The port the service listens on in its instances.
    pub port: u16,
    /// Its running instances.
    pub instances: Vec<String>,
}

/// Which hosts are served, and how their instances are reached.
pub trait Router: Send + Sync + 'static {
    /// Where requests for `host` (lowercase, without port) go; `None`: no
    /// service is exposed as `host`.
    fn route(&self, host: &str) -> Option<Route>;
    /// A connection to `port` of `instance`.
    fn dial(&self, instance: String, port: u16) -> Dialing;
}

/// Serves the ingress on `listener` within `limits` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Arc<dyn Router>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    stratus_http::serve(listener, Ingress::new(router), limits, shutdown).await
}

type Outbound = Either<TimedBody, Empty<Bytes>>;
/// What the ingress answers with: an instance's body, or its own words.
pub type Answer = Response<Either<Incoming, Full<Bytes>>>;

/// The ingress service (one per door; cheap to clone).
#[derive(Clone)]
pub struct Ingress {
    inner: Arc<Inner>,
}

struct Inner {
    router: Arc<dyn Router>,
    client: Client<Dialer, Outbound>,
    turn: AtomicUsize,
}

impl Ingress {
    /// An ingress routing with `router`.
    pub fn new(router: Arc<dyn Router>) -> Ingress {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_INSTANCE)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Dialer(router.clone()));
        Ingress {
            inner: Arc::new(Inner {
                router,
                client,
                turn: AtomicUsize::new(0),
            }),
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<TimedBody>) -> Answer {
        let Some(host) = host_of(&req) else {
            return said(
                StatusCode::BAD_REQUEST,
                "the request names no valid host".into(),
            );
        };
        let Some(route) = self.inner.router.route(&host) else {
            return said(
                StatusCode::NOT_FOUND,
                format!("no service is exposed as {host}"),
            );
        };
        if route.instances.is_empty() {
            return said(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{host} has no running instance"),
            );
        }
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let (mut parts, body) = req.into_parts();
        forwarded(&mut parts.headers, &host, peer);
        let replayable = has_no_body(&parts);
        let first = self.inner.turn.fetch_add(1, Ordering::Relaxed);
        let tries = if replayable {
            route.instances.len().min(MAX_TRIES)
        } else {
            1
        };
        let mut body = Some(body);
        let mut last = String::new();
        for t in 0..tries {
            let instance = &route.instances[(first + t) % route.instances.len()];
            let Ok(uri) = target(instance, route.port, &parts.uri) else {
                return said(
                    StatusCode::BAD_REQUEST,
                    "the request target is invalid".into(),
                );
            };
            let mut out = Request::new(match body.take() {
                Some(b) if !replayable => Either::Left(b),
                _ => Either::Right(Empty::new()),
            });
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.headers_mut() = parts.headers.clone();
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.inner.client.request(out)).await;
            match answer {
                Ok(Ok(mut resp)) => {
                    strip_hop_by_hop(resp.headers_mut());
                    return resp.map(Either::Left);
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::debug!(%host, %instance, error = %e, "instance unreachable");
                    last = connect_error(&e);
                }
                Ok(Err(e)) => {
                    return said(
                        StatusCode::BAD_GATEWAY,
                        format!("the instance of {host} failed to answer: {e}"),
                    )
                }
                Err(_) => {
                    return said(
                        StatusCode::GATEWAY_TIMEOUT,
                        format!(
                            "the instance of {host} did not answer within {}s",
                            ANSWER_TIMEOUT.as_secs()
                        ),
                    )
                }
            }
        }
        said(
            StatusCode::BAD_GATEWAY,
            format!("no instance of {host} could be reached: {last}"),
        )
    }
}

impl hyper::service::Service<Request<TimedBody>> for Ingress {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, req: Request<TimedBody>) -> Self::Future {
        let me = self.clone();
        Box::pin(async move { Ok(me.handle(req).await) })
    }
}

/// The innermost cause of a connect error (the router's words).
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// A short plain-text answer of the ingress itself.
fn said(status: StatusCode, message: String) -> Answer {
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(message + "\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The host a request is for: its `Host` header (or the authority of an
/// absolute target), lowercase, without port or trailing dot.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?.to_string(),
        None => req.uri().authority()?.as_str().to_string(),
    };
    let authority: http::uri::Authority = raw.parse().ok()?;
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty() && host.len() <= MAX_HOST_LEN).then_some(host)
}

/// Whether a request has no body (so it can be sent again to another
/// instance): HTTP/1 framing says so when neither `Content-Length` nor
/// `Transfer-Encoding` is given, or the length is 0.
fn has_no_body(parts: &http::request::Parts) -> bool {
    let h = &parts.headers;
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    parts.version < http::Version::HTTP_2
        && !h.contains_key(header::TRANSFER_ENCODING)
        && length.is_none_or(|l| l == "0")
}

/// The URI the instance is asked for: its name as the authority (the pool's
/// key) and the request's path.
fn target(instance: &str, port: u16, uri: &Uri) -> Result<Uri, http::Error> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Uri::builder()
        .scheme("http")
        .authority(format!("{instance}:{port}"))
        .path_and_query(path)
        .build()
}

/// Headers that concern one connection only (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in HOP_BY_HOP.iter().chain(&named) {
        h.remove(n);
    }
    // The framing is the client library's to set for the next hop.
    h.remove(header::TRANSFER_ENCODING);
}

/// Drops hop-by-hop headers and says who asked, for what and how.
fn forwarded(h: &mut HeaderMap, host: &str, peer: Option<std::net::IpAddr>) {
    strip_hop_by_hop(h);
    if let Some(ip) = peer {
        let chain = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            h.insert("x-forwarded-for", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v);
    }
    h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
}

/// The connector of the client: dials instances through the router.
#[derive(Clone)]
struct Dialer(Arc<dyn Router>);

impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<Dialed>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Dialed>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let router = self.0.clone();
        Box::pin(async move {
            let instance = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(80);
            let conn = tokio::time::timeout(DIAL_TIMEOUT, router.dial(instance, port))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dialing timed out"))??;
            Ok(TokioIo::new(Dialed(conn)))
        })
    }
}

/// A dialed connection, as the client library keeps it.
struct Dialed(Conn);

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
