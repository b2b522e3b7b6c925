//! The authenticated QUIC transport between nodes.
//!
//! **Owns** node identity, mutual-TLS QUIC connections pinned to node keys,
//! framing and request/response calls. **Does not own** what may be sent
//! (`stratus-control`'s `authz`) or the messages (`stratus-proto`).
//!
//! # Identity
//!
//! A node *is* its ed25519 key pair ([`Identity`], stored as PKCS#8 PEM in
//! `node.key`, mode 0600). Its [`NodeId`] is the 32-byte public key. There is
//! no certificate authority: each node presents a self-signed X.509
//! certificate wrapping its key, and the only thing a peer looks at in that
//! certificate is the ed25519 SubjectPublicKeyInfo. Possession of the matching
//! private key is proven by the TLS 1.3 handshake signature (`CertificateVerify`),
//! which the custom verifiers check; TLS 1.2 and every other key type are
//! refused.
//!
//! # Transport
//!
//! An [`Endpoint`] is one QUIC socket (quinn) that both dials and accepts.
//! Authentication is mutual: the server requires a client certificate, so
//! both ends of every [`Connection`] know the other's verified
//! [`Connection::remote_id`]. The dialer may pin the identity it expects
//! ([`Endpoint::connect`] with `Some(id)`); the handshake then fails with
//! [`NetError::WrongPeer`] if anyone else answers. ALPN is
//! [`stratus_proto::ALPN`]. Keep-alives every second and a 5 second idle
//! timeout make a vanished peer visible quickly. TLS session resumption and
//! 0-RTT are disabled so that every connection is a full, freshly verified
//! handshake.
//!
//! A node that takes no inbound connection (behind a NAT) is called over a
//! connection it dialed: QUIC lets either end open streams, and [`Links`]
//! keeps such connections by peer on the side that calls.
//!
//! # Calls
//!
//! Each request/response exchange uses its own bidirectional QUIC stream
//! ([`Connection::call`] on the dialing side, [`Connection::accept_call`] or
//! [`serve_connection`] on the serving side), so calls never block each
//! other. Both messages are sent as one frame:
//!
//! ```text
//! +----------------------+-----------+--------------------+
//! | length: u32 BE       | version:1 | bincode payload    |
//! +----------------------+-----------+--------------------+
//! ```
//!
//! `length` counts the bytes after it (the version byte plus the payload) and
//! may not exceed [`MAX_FRAME_LEN`] (64 MiB). `version` is
//! [`stratus_proto::PROTOCOL_VERSION`]; frames carrying any other version are
//! refused with [`NetError::BadVersion`].
//!
//! # Bounds on what a peer may cost
//!
//! A server decides how large a request it reads from a peer *before*
//! reading it ([`serve_connection_limited`] asks for each call): a frame
//! longer than the peer's bound is refused after its 4-byte length prefix,
//! so nothing is allocated for it, and the caller gets
//! [`NetError::FrameRefused`]. One peer key may hold at most
//! [`MAX_CONNECTIONS_PER_PEER`] inbound connections, each with at most
//! 32 concurrent request streams (further ones wait for QUIC stream credit)
//! and no unidirectional streams.
//!
//! # Pooling
//!
//! [`Pool`] keeps one live connection per (address, expected id) and redials
//! when the cached one has closed or failed at the transport level.

pub mod cluster;
mod e2e;
mod endpoint;
mod error;
mod frame;
mod identity;
mod links;
mod pool;
mod rpc;
pub mod secret_file;
mod stream;
mod tls;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_limits;

pub use e2e::{SealedClient, SealedServer};
pub use endpoint::{
    serve_connection, serve_connection_limited, Connection, Endpoint, Guard, IncomingCall,
    MAX_CONNECTIONS_PER_PEER,
};
pub use error::NetError;
#[cfg(any(test, feature = "testing"))]
pub use frame::decode_frame;
pub use frame::{encode as encode_frame, MAX_FRAME_LEN};
pub use identity::Identity;
pub use links::{keep_links, Links, Replicas};
pub use pool::Pool;
pub use rpc::CallError;
pub use secret_file::write_secret_file;
pub use stratus_types::NodeId;
pub use stream::{serve_connection_streams, Reply, Stream, StreamTask};
