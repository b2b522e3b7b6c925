//! Outbound HTTP of HTTP components (`wasi:http/outgoing-handler`), sent
//! only where the door's egress check allows.
//!
//! The request's host name is resolved once; every address it resolves to
//! must pass the check; the connection then goes to the first of those
//! addresses — never to what a second lookup would say. Plain HTTP keeps
//! the name in `Host`; HTTPS runs TLS over that same connection and checks
//! the server's certificate against the name (the webpki roots). A name
//! whose answers change between two lookups (DNS rebinding) thus cannot
//! lead a component to an address the check never saw.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

/// Longest a connection (TCP, TLS, HTTP handshake) may take unless the
/// guest asks for less.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the response head may take unless the guest asks for less.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a pause in the response body may be unless the guest asks for
/// less.
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(60);

/// The roots HTTPS servers' certificates are checked against.
static PUBLIC_ROOTS: LazyLock<Arc<rustls::ClientConfig>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    tls_config(roots)
});

/// A TLS client configuration trusting `roots` (ring, as every TLS user
/// of Stratus).
pub(crate) fn tls_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    // The ring provider supports the default versions: cannot fail.
    Arc::new(config.unwrap_or_else(|e| panic!("TLS client configuration: {e}")))
}

/// What an outbound request answers.
pub(crate) type Sent = Result<
    (
        http::Response<wasmtime_wasi_http::WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// Outbound requests, checked against the egress policy.
pub(crate) struct Outbound {
    pub(crate) egress: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        drop(fut);
        let egress = self.egress.clone();
        Box::new(async move {
            let uri = request.uri();
            let tls = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or(Error::HttpRequestUriInvalid)?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| Error::DestinationNotFound)?
                .map(|a| a.ip())
                .collect();
            let checked = match addrs.first() {
                Some(first) if addrs.iter().all(|a| egress(*a)) => SocketAddr::new(*first, port),
                _ => return Err(Error::DestinationIpProhibited),
            };
            let tls = match tls {
                true => Some((server_name(&host)?, PUBLIC_ROOTS.clone())),
                false => None,
            };
            send(request, checked, tls, options).await
        })
    }
}

/// The name a server's certificate must be valid for.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => ServerName::try_from(host.to_string()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Sends `request` over a connection to `to`, with TLS for the name and
/// roots of `tls` when given.
pub(crate) async fn send(
    mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    to: SocketAddr,
    tls: Option<(ServerName<'static>, Arc<rustls::ClientConfig>)>,
    options: Option<RequestOptions>,
) -> Sent {
    let pick = |asked: Option<Duration>, most: Duration| asked.map_or(most, |a| a.min(most));
    let connect = pick(options.and_then(|o| o.connect_timeout), CONNECT_TIMEOUT);
    let first_byte = pick(
        options.and_then(|o| o.first_byte_timeout),
        FIRST_BYTE_TIMEOUT,
    );
    let between = pick(
        options.and_then(|o| o.between_bytes_timeout),
        BETWEEN_BYTES_TIMEOUT,
    );
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(to)
            .await
            .map_err(Error::Connect)?;
        let io: Box<dyn Io> = match tls {
            Some((name, config)) => Box::new(
                tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(Error::Tls)?,
            ),
            None => Box::new(tcp),
        };
        hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(Error::from)
    };
    let (mut sender, conn) = tokio::time::timeout(connect, handshake)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    // The request goes to its origin in origin form (a path), the name in
    // its `Host` header.
    if !request.headers().contains_key(http::header::HOST) {
        if let Some(authority) = request.uri().authority() {
            let host = http::HeaderValue::from_str(authority.as_str())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            request.headers_mut().insert(http::header::HOST, host);
        }
    }
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.uri_mut() = path;
    // The connection is driven while the head is awaited; a server that
    // closes right after its answer ends it first.
    let mut conn = Some(Box::pin(conn));
    let send = tokio::time::timeout(first_byte, sender.send_request(request));
    tokio::pin!(send);
    let head = tokio::select! {
        biased;
        r = &mut send => r,
        ended = async { conn.as_mut()?.await.err() } => {
            if let Some(e) = ended {
                return Err(Error::from(e));
            }
            conn = None;
            send.await
        }
    };
    let response = head.map_err(|_| Error::ConnectionReadTimeout)??;
    let response = response.map(|body| {
        Paced {
            body,
            between,
            pause: Box::pin(tokio::time::sleep(between)),
        }
        .boxed_unsync()
    });
    let io = async move {
        match conn {
            Some(conn) => conn.await.map_err(Error::from),
            None => Ok(()),
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body whose pauses are bounded.
struct Paced {
    body: hyper::body::Incoming,
    between: Duration,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + self.between;
                self.pause.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Error::from)))
            }
            Poll::Pending => match self.pause.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A TLS server on loopback with a certificate for `name` only, and the
    /// roots that trust it.
    async fn tls_server(name: &str) -> (SocketAddr, rustls::RootCertStore) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                        let host = req.headers()[http::header::HOST]
                            .to_str()
                            .unwrap()
                            .to_string();
                        let body = format!("{} {} (host {host})", req.method(), req.uri());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from(body)),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        (addr, roots)
    }

    fn get(uri: &str) -> http::Request<wasmtime_wasi_http::WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::get(uri).body(body).unwrap()
    }

    /// HTTPS goes to the address that was checked, whatever the name in
    /// the URL says (no second lookup: `checked.test` resolves nowhere),
    /// and the certificate is verified for that name: a server without a
    /// certificate for it is refused.
    #[tokio::test]
    async fn https_goes_to_the_checked_address_and_verifies_the_name() {
        let (addr, roots) = tls_server("checked.test").await;
        let config = tls_config(roots);
        let name = ServerName::try_from("checked.test").unwrap();
        let (response, io) = send(
            get(&format!("https://checked.test:{}/path?q=1", addr.port())),
            addr,
            Some((name, config.clone())),
            None,
        )
        .await
        .map_err(|e| e.to_string())
        .unwrap();
        let io = tokio::spawn(Box::into_pin(io));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            format!("GET /path?q=1 (host checked.test:{})", addr.port())
        );
        drop(io);

        let other = ServerName::try_from("other.test").unwrap();
        let refused = send(
            get(&format!("https://other.test:{}/", addr.port())),
            addr,
            Some((other, config)),
            None,
        )
        .await;
        assert!(
            matches!(refused, Err(Error::Tls(_))),
            "a certificate for another name"
        );
    }

    /// A name that resolves to an address the policy refuses is never
    /// connected to.
    #[tokio::test]
    async fn a_refused_address_is_not_connected() {
        let mut hooks = Outbound {
            egress: Arc::new(|ip: IpAddr| !ip.is_loopback()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        for scheme in ["http", "https"] {
            let sent = Box::into_pin(hooks.send_request(
                get(&format!("{scheme}://localhost:{port}/")),
                None,
                Box::new(async { Ok(()) }),
            ))
            .await;
            assert!(
                matches!(sent, Err(Error::DestinationIpProhibited)),
                "{scheme}"
            );
        }
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "nothing connected");
    }
}
