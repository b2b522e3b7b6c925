//! End-to-end TLS between two nodes over a stream someone else carries (a
//! relay): both ends present their node certificates, and each accepts
//! only the key it expects, so the carrier sees ciphertext and cannot pose
//! as either end.

use std::time::Duration;

use stratus_types::NodeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::ServerName;

use crate::{Endpoint, NetError};

/// How long the handshake inside a relayed stream may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS session over a relayed stream, dialer side.
pub type SealedClient<S> = tokio_rustls::client::TlsStream<S>;
/// A TLS session over a relayed stream, accepting side.
pub type SealedServer<S> = tokio_rustls::server::TlsStream<S>;

impl Endpoint {
    /// Opens TLS 1.3 over `stream` to `peer`: fails unless the other end
    /// proves `peer`'s key.
    pub async fn seal_dial<S>(&self, stream: S, peer: NodeId) -> Result<SealedClient<S>, NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.tls().tunnel_client(peer)?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = ServerName::try_from(crate::tls::SERVER_NAME)
            .map_err(|e| NetError::Tls(e.to_string()))?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream))
            .await
            .map_err(|_| NetError::Timeout(HANDSHAKE_TIMEOUT))?
            .map_err(|e| NetError::Tls(format!("end-to-end handshake with {}: {e}", peer.short())))
    }

    /// Accepts TLS 1.3 over `stream` from `peer`: fails unless the other
    /// end proves `peer`'s key.
    pub async fn seal_accept<S>(&self, stream: S, peer: NodeId) -> Result<SealedServer<S>, NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let config = self.tls().tunnel_server(peer)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
            .map_err(|_| NetError::Timeout(HANDSHAKE_TIMEOUT))?
            .map_err(|e| NetError::Tls(format!("end-to-end handshake with {}: {e}", peer.short())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Identity;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn endpoint() -> Endpoint {
        Endpoint::dial_only(&Identity::generate(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

    /// A relay in the middle (here a pipe) sees only ciphertext; each end
    /// accepts only the key it expects, so an impostor at either end fails.
    #[tokio::test]
    async fn both_ends_must_prove_the_keys_they_are_expected_to_have() {
        let (a, b, mallory) = (endpoint().await, endpoint().await, endpoint().await);
        let (x, y) = tokio::io::duplex(64 * 1024);
        let (bid, aid) = (b.node_id(), a.node_id());
        let server = tokio::spawn(async move {
            let mut s = b.seal_accept(y, aid).await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"world").await.unwrap();
            s.flush().await.unwrap();
            buf
        });
        let mut c = a.seal_dial(x, bid).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        c.flush().await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"world");
        assert_eq!(&server.await.unwrap(), b"hello");

        // Mallory dials expecting b, but b expects a: refused.
        let (x, y) = tokio::io::duplex(64 * 1024);
        let b2 = endpoint().await;
        let b2id = b2.node_id();
        let server = tokio::spawn(async move { b2.seal_accept(y, aid).await.map(drop) });
        let dialed = mallory.seal_dial(x, b2id).await.map(drop);
        assert!(server.await.unwrap().is_err());
        let _ = dialed;
        // a dials expecting b, but mallory answers: refused.
        let (x, y) = tokio::io::duplex(64 * 1024);
        let m2 = endpoint().await;
        tokio::spawn(async move { m2.seal_accept(y, aid).await.map(drop) });
        assert!(a.seal_dial(x, bid).await.is_err());
    }
}
