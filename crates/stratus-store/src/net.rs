//! [`Pieces`] over QUIC: calls to storage nodes over the link a node dialed
//! to this replica if it has one, else through a connection pool dialing
//! the node's advertised address.

use std::time::Duration;

use futures::future::BoxFuture;
use stratus_net::{Links, Pool};
use stratus_proto::{PieceRequest, PieceResponse, PieceRpc, PieceRpcError};
use stratus_types::NodeId;

use crate::{Pieces, StoreError};

/// Calls storage nodes over the node's QUIC endpoint (pinned to their ids).
#[derive(Clone)]
pub struct NetPieces {
    pool: Pool,
    links: Links,
    timeout: Duration,
}

impl NetPieces {
    /// Piece calls through `pool`, each bounded by `timeout`.
    pub fn new(pool: Pool, timeout: Duration) -> NetPieces {
        NetPieces {
            pool,
            links: Links::new(),
            timeout,
        }
    }

    /// Calls a node over its link in `links` when it has one (a node
    /// behind a NAT has nothing else).
    pub fn with_links(mut self, links: Links) -> NetPieces {
        self.links = links;
        self
    }
}

impl Pieces for NetPieces {
    fn call(
        &self,
        node: NodeId,
        addr: String,
        req: PieceRequest,
    ) -> BoxFuture<'static, Result<PieceResponse, StoreError>> {
        let pool = self.pool.clone();
        let link = self.links.get(&node);
        let timeout = self.timeout;
        Box::pin(async move {
            let unreachable = |source: stratus_net::NetError| StoreError::Node {
                node: node.short(),
                addr: addr.clone(),
                source: Box::new(source),
            };
            if let Some(link) = link {
                match link.call(&req, timeout).await {
                    // A link lost mid-call: the node may be reachable by
                    // its address (it dials again otherwise).
                    Err(e) if e.is_transport() => {
                        tracing::debug!(node = %node.short(), error = %e, "piece link failed")
                    }
                    r => return r.map_err(unreachable),
                }
            }
            if addr.is_empty() {
                return Err(StoreError::unavailable(format!(
                    "storage node {} has no piece link to this replica and no address to dial \
                     (it dials its links itself: is it running and connected?)",
                    node.short()
                )));
            }
            let sock = pool.endpoint().resolve(&addr).await.map_err(unreachable)?;
            pool.call(sock, Some(node), &req, timeout)
                .await
                .map_err(unreachable)
        })
    }
}

/// Why a typed piece call ([`crate::Store::piece`]) returned no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PieceCallError {
    /// The node could not be asked (unreachable, timeout, transport).
    #[error(transparent)]
    Call(StoreError),
    /// The node refused, or answered with another kind of response.
    #[error(transparent)]
    Answer(#[from] PieceRpcError),
}

/// The typed reply of the answer `r` to an `R`.
pub(crate) fn typed<R: PieceRpc>(
    r: Result<PieceResponse, StoreError>,
) -> Result<R::Reply, PieceCallError> {
    let r = r.map_err(PieceCallError::Call)?;
    Ok(stratus_proto::piece_rpc::decode::<R>(r)?)
}

impl crate::Store {
    /// Sends `req` to storage node `node` ([`crate::Store::call`]: a node
    /// that fails to answer is suspected for a while) and returns its typed
    /// reply.
    pub(crate) async fn piece<R: PieceRpc>(
        &self,
        node: NodeId,
        addr: &str,
        req: R,
    ) -> Result<R::Reply, PieceCallError> {
        typed::<R>(self.call(node, addr, req.into_request()).await)
    }
}
