//! Typed calls: send a [`stratus_proto::Rpc`] and get its reply, or one
//! [`CallError`] that says whether the transport failed, the peer refused,
//! or it answered with another kind of response.

use std::net::SocketAddr;
use std::time::Duration;

use stratus_proto::{Response, Rpc, RpcError};
use stratus_types::{ErrorCode, NodeId};

use crate::{Connection, NetError, Pool};

/// Why a typed call returned no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The transport failed (connect, timeout, framing).
    #[error(transparent)]
    Net(#[from] NetError),
    /// The peer refused, or answered with another kind of response.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl CallError {
    /// The peer's code, when it refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Rpc(e) => e.code(),
            CallError::Net(_) => None,
        }
    }
}

/// How long a replica may take to answer a link request.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

impl Connection {
    /// Asks the replica at the other end to keep this connection as this
    /// node's link of the kind `request` names
    /// ([`stratus_proto::Request::PieceLink`],
    /// [`stratus_proto::Request::TunnelLink`]); the refusal's message when
    /// it does not. The `hello` of [`crate::keep_links`].
    pub async fn ask_link(self, request: stratus_proto::Request) -> Result<(), String> {
        self.rpc(stratus_proto::rpc::Link(request), LINK_TIMEOUT)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Sends `req` and returns its typed reply ([`Connection::call`] with
    /// the answer checked against the kind `R` names).
    pub async fn rpc<R: Rpc>(&self, req: R, timeout: Duration) -> Result<R::Reply, CallError> {
        let answer: Response = self.call(&req.into_request(), timeout).await?;
        Ok(stratus_proto::rpc::decode::<R>(answer)?)
    }
}

impl Pool {
    /// [`Pool::call`] with a typed request and reply.
    pub async fn rpc<R: Rpc>(
        &self,
        addr: SocketAddr,
        expected: Option<NodeId>,
        req: R,
        timeout: Duration,
    ) -> Result<R::Reply, CallError> {
        let answer: Response = self
            .call(addr, expected, &req.into_request(), timeout)
            .await?;
        Ok(stratus_proto::rpc::decode::<R>(answer)?)
    }
}
