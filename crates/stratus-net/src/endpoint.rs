//! QUIC endpoint, authenticated connections and request/response calls.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_types::NodeId;
use tokio::sync::mpsc;

use crate::frame;
use crate::tls::{self, TlsIdentity};
use crate::{Identity, NetError};

/// Completed inbound handshakes waiting for [`Endpoint::accept`].
const ACCEPT_QUEUE: usize = 64;
/// How long [`Endpoint::close`] waits for connections to drain.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Application error code sent when closing normally.
const CLOSE_CODE: u32 = 0;
/// Application error code for resetting a stream whose answer could not be produced.
const RESET_CODE: u32 = 1;
/// Application error code for stopping a stream whose request frame is
/// larger than the receiver accepts from that peer (read as
/// [`NetError::FrameRefused`] by the caller).
pub(crate) const REFUSED_CODE: u32 = 2;
/// Connections one peer (one node key) may hold open to an endpoint at once;
/// a further one is closed right after its handshake. Agents keep one,
/// replicas pool one per peer.
pub const MAX_CONNECTIONS_PER_PEER: usize = 8;
/// Application error code for closing a connection over
/// [`MAX_CONNECTIONS_PER_PEER`].
const TOO_MANY_CODE: u32 = 3;

/// A QUIC endpoint bound to one UDP socket; dials and accepts connections
/// authenticated by ed25519 node keys. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<EndpointInner>,
}

/// Decides, before any handshake, whether an inbound connection attempt
/// from an address is answered ([`Endpoint::bind_guarded`]).
pub type Guard = Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>;

/// The guard of an endpoint, replaceable while it runs.
type GuardSlot = Arc<std::sync::RwLock<Guard>>;

struct EndpointInner {
    quinn: quinn::Endpoint,
    /// `Some` for [`Endpoint::bind_guarded`] endpoints.
    guard: Option<GuardSlot>,
    node_id: NodeId,
    identity: Identity,
    tls: TlsIdentity,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Connection>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for EndpointInner {
    fn drop(&mut self) {
        // The accept loop holds a handle to the quinn endpoint; stop it so the
        // socket is released once the remaining connections are gone.
        self.accept_task.abort();
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.inner.quinn.local_addr().ok())
            .finish()
    }
}

impl Endpoint {
    /// Binds a QUIC endpoint on `listen` (port 0 picks a free port) that both
    /// accepts and dials. Inbound connections must present a client
    /// certificate (mutual authentication).
    ///
    /// Must be called within a tokio runtime.
    pub async fn bind(identity: &Identity, listen: SocketAddr) -> Result<Endpoint, NetError> {
        let tls = TlsIdentity::new(identity)?;
        let quinn = quinn::Endpoint::server(tls.server_config()?, listen)?;
        Ok(Self::wrap(identity, tls, quinn, None))
    }

    /// Binds an endpoint that dials out and answers an inbound connection
    /// attempt only from an address its guard lets in: none until
    /// [`Endpoint::set_guard`]. Attempts from any other address are
    /// dropped before the handshake, unanswered, so to everyone else the
    /// endpoint looks like one that only dials. What a node behind a NAT
    /// runs to be reached directly by the peers it was introduced to (hole
    /// punching): the same socket dials the replicas, so the address they
    /// see is the one its peers reach.
    ///
    /// Must be called within a tokio runtime.
    pub async fn bind_guarded(
        identity: &Identity,
        listen: SocketAddr,
    ) -> Result<Endpoint, NetError> {
        let tls = TlsIdentity::new(identity)?;
        let quinn = quinn::Endpoint::server(tls.server_config()?, listen)?;
        let nobody: Guard = Arc::new(|_| false);
        let slot = Arc::new(std::sync::RwLock::new(nobody));
        Ok(Self::wrap(identity, tls, quinn, Some(slot)))
    }

    /// Whether this endpoint was bound with [`Endpoint::bind_guarded`].
    pub fn is_guarded(&self) -> bool {
        self.inner.guard.is_some()
    }

    /// Replaces the guard of a [`Endpoint::bind_guarded`] endpoint (no
    /// effect on others).
    pub fn set_guard(&self, guard: Guard) {
        if let Some(slot) = &self.inner.guard {
            *slot.write().unwrap_or_else(|p| p.into_inner()) = guard;
        }
    }

    /// Binds an endpoint that only dials out and refuses every inbound
    /// handshake — what a node behind NAT or a firewall has. Calls can still
    /// flow both ways over the connections it opens.
    ///
    /// Must be called within a tokio runtime.
    pub async fn dial_only(identity: &Identity, bind: SocketAddr) -> Result<Endpoint, NetError> {
        let tls = TlsIdentity::new(identity)?;
        let quinn = quinn::Endpoint::client(bind)?;
        Ok(Self::wrap(identity, tls, quinn, None))
    }

    fn wrap(
        identity: &Identity,
        tls: TlsIdentity,
        quinn: quinn::Endpoint,
        guard: Option<GuardSlot>,
    ) -> Endpoint {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let accept_task = tokio::spawn(accept_loop(quinn.clone(), tx, guard.clone()));
        tracing::debug!(node_id = %identity.node_id(), addr = ?quinn.local_addr().ok(), "endpoint bound");
        Endpoint {
            inner: Arc::new(EndpointInner {
                quinn,
                guard,
                node_id: identity.node_id(),
                identity: identity.clone(),
                tls,
                incoming: tokio::sync::Mutex::new(rx),
                accept_task,
            }),
        }
    }

    pub(crate) fn tls(&self) -> &TlsIdentity {
        &self.inner.tls
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// This node's ed25519 signature of `message` (the key never leaves).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.identity.sign(message)
    }

    /// The address the socket is bound to (with the actual port if 0 was asked).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        Ok(self.inner.quinn.local_addr()?)
    }

    /// Resolves `host:port` to an address this endpoint can reach: among the
    /// addresses of the name, one of the socket's family is preferred (an
    /// IPv4 socket cannot reach `::1`, which `localhost` often gives first).
    pub async fn resolve(&self, addr: &str) -> Result<SocketAddr, NetError> {
        if let Ok(a) = addr.parse::<SocketAddr>() {
            return Ok(a);
        }
        let resolve_err = |reason: String| NetError::Resolve {
            addr: addr.to_string(),
            reason,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| resolve_err(e.to_string()))?
            .collect();
        let local_v4 = self.local_addr().is_ok_and(|a| a.is_ipv4());
        addrs
            .iter()
            .find(|a| a.is_ipv4() == local_v4)
            .or(addrs.first())
            .copied()
            .ok_or_else(|| resolve_err("the name has no address".into()))
    }

    /// Dials `addr`. If `expected` is `Some`, the handshake fails with
    /// [`NetError::WrongPeer`] unless the peer proves that key.
    ///
    /// The handshake is bounded by the idle timeout (5 s).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: Option<NodeId>,
    ) -> Result<Connection, NetError> {
        let mismatch = Arc::new(Mutex::new(None));
        let config = self.inner.tls.client_config(expected, mismatch.clone())?;
        let connecting = self
            .inner
            .quinn
            .connect_with(config, addr, tls::SERVER_NAME)
            .map_err(|e| match e {
                quinn::ConnectError::EndpointStopping => NetError::Closed,
                other => NetError::Connect {
                    addr,
                    reason: other.to_string(),
                },
            })?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(e) => {
                let got = mismatch.lock().ok().and_then(|mut slot| slot.take());
                return Err(match (expected, got) {
                    (Some(expected), Some(got)) => NetError::WrongPeer {
                        addr,
                        expected,
                        got,
                    },
                    _ if matches!(e, quinn::ConnectionError::LocallyClosed) => NetError::Closed,
                    _ => NetError::Connect {
                        addr,
                        reason: e.to_string(),
                    },
                });
            }
        };
        let remote_id = peer_id(&conn).map_err(|reason| {
            conn.close(CLOSE_CODE.into(), b"bad identity");
            NetError::Connect { addr, reason }
        })?;
        // The verifier already enforced this; checked again so that a
        // verifier bug cannot silently connect us to the wrong node.
        if let Some(expected) = expected {
            if expected != remote_id {
                conn.close(CLOSE_CODE.into(), b"wrong identity");
                return Err(NetError::WrongPeer {
                    addr,
                    expected,
                    got: remote_id,
                });
            }
        }
        tracing::debug!(peer = %remote_id.short(), %addr, "connected");
        Ok(Connection {
            inner: conn,
            remote_id,
            _slot: None,
        })
    }

    /// Next fully handshaken inbound connection; `None` once the endpoint is
    /// closed. Failed handshakes are logged at debug level and skipped.
    ///
    /// Handshakes run concurrently in the background, so a slow or hostile
    /// peer cannot hold up others.
    pub async fn accept(&self) -> Option<Connection> {
        self.inner.incoming.lock().await.recv().await
    }

    /// Closes the endpoint and all its connections, then waits briefly (at
    /// most 2 s) for the peers to be told. Subsequent dials fail with
    /// [`NetError::Closed`] and [`Endpoint::accept`] returns `None`.
    pub async fn close(&self) {
        self.inner
            .quinn
            .close(CLOSE_CODE.into(), b"endpoint closed");
        let _ = tokio::time::timeout(CLOSE_WAIT, self.inner.quinn.wait_idle()).await;
    }
}

/// Open inbound connections per peer ([`MAX_CONNECTIONS_PER_PEER`]).
#[derive(Clone, Default)]
struct PeerCounts(Arc<Mutex<HashMap<NodeId, usize>>>);

impl PeerCounts {
    /// Counts one more connection of `peer`, unless it holds the maximum.
    fn take(&self, peer: NodeId) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let n = m.entry(peer).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_PEER {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, peer: &NodeId) {
        if let Ok(mut m) = self.0.lock() {
            if let Some(n) = m.get_mut(peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(peer);
                }
            }
        }
    }
}

/// One counted inbound connection: released when the last clone of the
/// [`Connection`] is dropped (which closes the connection).
struct PeerSlot {
    counts: PeerCounts,
    peer: NodeId,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.counts.release(&self.peer);
    }
}

/// Accepts inbound connections, handshaking each on its own task; with a
/// guard, only from the addresses it lets in (others are ignored: no
/// answer at all).
async fn accept_loop(
    endpoint: quinn::Endpoint,
    tx: mpsc::Sender<Connection>,
    guard: Option<GuardSlot>,
) {
    let counts = PeerCounts::default();
    while let Some(incoming) = endpoint.accept().await {
        if let Some(slot) = &guard {
            let allowed = slot.read().unwrap_or_else(|p| p.into_inner());
            if !allowed(incoming.remote_address()) {
                tracing::trace!(remote = %incoming.remote_address(), "ignored: not expected");
                incoming.ignore();
                continue;
            }
        }
        let tx = tx.clone();
        let counts = counts.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "inbound handshake failed");
                    return;
                }
            };
            let remote_id = match peer_id(&conn) {
                Ok(id) => id,
                Err(reason) => {
                    tracing::debug!(%remote, %reason, "inbound connection without usable identity");
                    conn.close(CLOSE_CODE.into(), b"bad identity");
                    return;
                }
            };
            if !counts.take(remote_id) {
                tracing::debug!(peer = %remote_id.short(), %remote, "refused: too many connections from this peer");
                conn.close(TOO_MANY_CODE.into(), b"too many connections from this node");
                return;
            }
            let slot = Arc::new(PeerSlot {
                counts,
                peer: remote_id,
            });
            tracing::debug!(peer = %remote_id.short(), %remote, "accepted");
            // If nobody accepts any more, the connection is dropped (closed).
            let _ = tx
                .send(Connection {
                    inner: conn,
                    remote_id,
                    _slot: Some(slot),
                })
                .await;
        });
    }
}

/// The peer's node id, from the certificate it presented during the handshake.
fn peer_id(conn: &quinn::Connection) -> Result<NodeId, String> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| "peer presented no certificate".to_string())?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| "unexpected peer identity type".to_string())?;
    let cert = certs
        .first()
        .ok_or_else(|| "peer presented an empty certificate chain".to_string())?;
    tls::node_id_from_cert(cert)
}

/// An authenticated QUIC connection to another node. Cheap to clone; the
/// connection closes when the last clone is dropped or [`Connection::close`]
/// is called.
#[derive(Clone)]
pub struct Connection {
    inner: quinn::Connection,
    remote_id: NodeId,
    /// Inbound connections: the slot counted against the peer's limit.
    _slot: Option<Arc<PeerSlot>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_id", &self.remote_id)
            .field("remote_addr", &self.inner.remote_address())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// The peer's node id, taken from its verified certificate.
    pub fn remote_id(&self) -> NodeId {
        self.remote_id
    }

    /// The peer's current UDP address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_address()
    }

    /// True once the connection is closed (by either side, or timed out).
    pub fn is_closed(&self) -> bool {
        self.inner.close_reason().is_some()
    }

    /// Closes the connection immediately; in-flight calls fail.
    pub fn close(&self) {
        self.inner.close(CLOSE_CODE.into(), b"closed");
    }

    /// A process-unique identifier of this connection (shared by clones).
    pub(crate) fn stable_id(&self) -> usize {
        self.inner.stable_id()
    }

    /// One request/response on a new bidirectional stream, the whole exchange
    /// bounded by `timeout` ([`NetError::Timeout`]).
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, NetError> {
        let frame = frame::encode(req)?;
        match tokio::time::timeout(timeout, self.exchange(&frame)).await {
            Ok(result) => frame::decode(&result?),
            Err(_) => Err(NetError::Timeout(timeout)),
        }
    }

    pub(crate) async fn raw_open_bi(
        &self,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), NetError> {
        Ok(self.inner.open_bi().await?)
    }

    async fn exchange(&self, frame: &[u8]) -> Result<Vec<u8>, NetError> {
        let (mut send, mut recv) = self.inner.open_bi().await?;
        frame::write_frame(&mut send, frame).await?;
        frame::read_frame(&mut recv, frame::MAX_FRAME_LEN).await
    }

    /// Next inbound call on this connection; `Ok(None)` when the connection
    /// was closed cleanly (by the application on either side).
    pub async fn accept_call(&self) -> Result<Option<IncomingCall>, NetError> {
        match self.inner.accept_bi().await {
            Ok((send, recv)) => Ok(Some(IncomingCall {
                send,
                recv,
                peer: self.remote_id,
            })),
            Err(quinn::ConnectionError::ApplicationClosed(_))
            | Err(quinn::ConnectionError::LocallyClosed) => Ok(None),
            Err(e) => Err(NetError::ConnectionLost(e)),
        }
    }

    #[cfg(test)]
    pub(crate) fn raw(&self) -> &quinn::Connection {
        &self.inner
    }
}

/// A call received on a [`Connection`]: read the request once, then respond.
pub struct IncomingCall {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    peer: NodeId,
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl IncomingCall {
    /// The authenticated id of the node that made the call.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// Reads and decodes the request.
    pub async fn read<Req: DeserializeOwned>(&mut self) -> Result<Req, NetError> {
        self.read_limited(frame::MAX_FRAME_LEN).await
    }

    /// Reads and decodes the request if its frame is at most `max` bytes.
    /// A longer frame is refused after its length prefix, before anything
    /// is allocated for it: the stream is stopped and reset with a code the
    /// caller reads as [`NetError::FrameRefused`].
    pub async fn read_limited<Req: DeserializeOwned>(
        &mut self,
        max: usize,
    ) -> Result<Req, NetError> {
        match frame::read_frame(&mut self.recv, max).await {
            Ok(payload) => frame::decode(&payload),
            Err(e @ NetError::FrameTooLarge { .. }) => {
                let _ = self.recv.stop(REFUSED_CODE.into());
                let _ = self.send.reset(REFUSED_CODE.into());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends the response and ends the stream. If the response cannot be
    /// encoded (e.g. too large), the stream is reset so the caller gets an
    /// error instead of waiting, and the encoding error is returned.
    pub async fn respond<Resp: Serialize>(self, resp: &Resp) -> Result<(), NetError> {
        self.send_encoded_frame(frame::encode(resp)).await
    }

    pub(crate) fn into_parts(self) -> (quinn::SendStream, quinn::RecvStream) {
        (self.send, self.recv)
    }

    /// Sends an already encoded response (or resets the stream on an
    /// encoding error). Separate from [`IncomingCall::respond`] so that no
    /// reference to the response is held across an await.
    pub(crate) async fn send_encoded_frame(
        mut self,
        frame: Result<Vec<u8>, NetError>,
    ) -> Result<(), NetError> {
        match frame {
            Ok(frame) => frame::write_frame(&mut self.send, &frame).await,
            Err(e) => {
                self.abort_call();
                Err(e)
            }
        }
    }

    /// Abandons the call: the caller's stream is reset.
    pub(crate) fn abort_call(&mut self) {
        let _ = self.send.reset(RESET_CODE.into());
        let _ = self.recv.stop(RESET_CODE.into());
    }
}

/// Serves every call on `conn` until it closes: each call runs on its own
/// tokio task, and `handler` receives the authenticated peer id with the
/// decoded request. Calls whose request cannot be read or decoded are reset
/// and logged at debug level. Requests may be as large as
/// [`crate::MAX_FRAME_LEN`]: for a service open to strangers use
/// [`serve_connection_limited`].
pub async fn serve_connection<Req, Resp, H, Fut>(conn: Connection, handler: H)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Fn(NodeId, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send,
{
    serve_connection_limited(conn, |_| frame::MAX_FRAME_LEN, handler).await
}

/// [`serve_connection`], where each request frame may be at most
/// `max_frame(peer)` bytes. The bound is asked anew for every call, before
/// its frame is read (a peer's role can change on one connection: an agent
/// registers, then sends large requests); a longer frame is refused after
/// its 4-byte length prefix (see [`IncomingCall::read_limited`]).
pub async fn serve_connection_limited<Req, Resp, L, H, Fut>(
    conn: Connection,
    max_frame: L,
    handler: H,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    L: Fn(NodeId) -> usize + Send + Sync + 'static,
    H: Fn(NodeId, Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send,
{
    crate::stream::serve_connection_streams(conn, max_frame, move |peer, req| {
        let handler = handler.clone();
        async move { crate::stream::Reply::Frame(handler(peer, req).await) }
    })
    .await
}
