//! [`Pieces`] over QUIC: calls to storage nodes through a connection pool.

use std::time::Duration;

use futures::future::BoxFuture;
use stratus_net::Pool;
use stratus_proto::{PieceRequest, PieceResponse};
use stratus_types::NodeId;

use crate::{Pieces, StoreError};

/// Calls storage nodes over the node's QUIC endpoint (pinned to their ids).
#[derive(Clone)]
pub struct NetPieces {
    pool: Pool,
    timeout: Duration,
}

impl NetPieces {
    /// Piece calls through `pool`, each bounded by `timeout`.
    pub fn new(pool: Pool, timeout: Duration) -> NetPieces {
        NetPieces { pool, timeout }
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
        let timeout = self.timeout;
        Box::pin(async move {
            let unreachable = |source: stratus_net::NetError| StoreError::Node {
                node: node.short(),
                addr: addr.clone(),
                source: Box::new(source),
            };
            let sock = pool.endpoint().resolve(&addr).await.map_err(unreachable)?;
            pool.call(sock, Some(node), &req, timeout)
                .await
                .map_err(unreachable)
        })
    }
}
