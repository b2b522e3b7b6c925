//! openraft's network over the authenticated QUIC transport of `stratus-net`.
//!
//! Each Raft RPC is a typed request ([`stratus_proto::Rpc`]) sent with
//! [`stratus_net::Pool::rpc`], which checks that the peer at the other end is
//! the expected node (its id is its public key) and that the answer is the
//! kind the request names. The outcome is mapped back to openraft's error
//! model:
//!
//! - the remote Raft refused (`Err` inside the response) →
//!   [`RPCError::RemoteError`];
//! - the peer could not be reached (connection failed or closed, address not
//!   resolvable) → [`RPCError::Unreachable`], so openraft backs off before
//!   retrying;
//! - anything else (timeout, protocol error, an error answer from the peer's
//!   request handler, an unexpected answer) → [`RPCError::Network`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use stratus_net::{CallError, NetError, Pool};
use stratus_proto::{Rpc, RpcError as ProtoRpcError};
use stratus_state::TypeConfig;
use stratus_types::{ErrorCode, NodeId};

/// Timeout used when openraft gives none (it always does in practice).
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a background dial (see [`NetworkConnection`]) may take.
pub const BACKGROUND_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of log entries in one AppendEntries message (one entry is
/// always sent, however large): 1 MiB crosses a 32 Mbit/s link within the
/// deadline below. openraft bounds a message by its number of
/// entries only, and gives it one heartbeat interval (250 ms) to arrive and
/// be stored: a follower catching up on many entries would get messages no
/// frame can carry ([`stratus_net::MAX_FRAME_LEN`]) or no link can deliver
/// in time, and replication to it would stall for good. Longer runs are
/// sent in parts ([`fit_append`]).
pub const MAX_APPEND_BYTES: u64 = 1 << 20;

/// Why a Raft RPC failed on this side or was answered with something other
/// than a Raft response. Carried inside openraft's `Unreachable` or
/// `NetworkError`.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The peer's address could not be resolved.
    #[error("cannot resolve the address {addr:?} of raft peer {target}: {source}")]
    Resolve {
        /// Peer.
        target: NodeId,
        /// Address as configured in the membership.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// The peer's address resolved to no socket address.
    #[error("the address {addr:?} of raft peer {target} resolves to nothing")]
    NoAddress {
        /// Peer.
        target: NodeId,
        /// Address as configured in the membership.
        addr: String,
    },
    /// The peer answered with an error instead of a Raft response (for
    /// example because it does not consider this node a cluster member).
    #[error("raft peer {target} refused the {rpc} request ({code:?}): {message}")]
    Refused {
        /// Peer.
        target: NodeId,
        /// RPC.
        rpc: &'static str,
        /// Stable code.
        code: ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// The peer answered with a response of another kind.
    #[error("raft peer {target} answered the {rpc} request with an unexpected {got} response")]
    Unexpected {
        /// Peer.
        target: NodeId,
        /// RPC.
        rpc: &'static str,
        /// Kind of response received.
        got: &'static str,
    },
}

/// Creates [`NetworkConnection`]s to Raft peers; handed to [`crate::Raft::new`].
#[derive(Clone)]
pub struct Network {
    pool: Pool,
}

impl Network {
    /// A Raft network sending over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The connection pool used.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        NetworkConnection {
            pool: self.pool.clone(),
            target,
            addr: node.addr.clone(),
            dialing: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Sends Raft RPCs to one peer. Connections are made lazily (and shared) by
/// the pool.
///
/// openraft bounds an AppendEntries call by the heartbeat interval, which
/// must also cover dialing when there is no live connection. A QUIC handshake
/// to a far peer may not fit: when a call times out, the connection is
/// therefore established in the background (bounded by
/// [`BACKGROUND_DIAL_TIMEOUT`], one dial at a time) so that later calls find
/// it ready.
#[derive(Clone)]
pub struct NetworkConnection {
    pool: Pool,
    target: NodeId,
    addr: String,
    dialing: Arc<AtomicBool>,
}

impl std::fmt::Debug for NetworkConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConnection")
            .field("target", &self.target)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl NetworkConnection {
    /// The peer this connection talks to.
    pub fn target(&self) -> NodeId {
        self.target
    }

    async fn resolve(&self) -> Result<SocketAddr, RpcError> {
        if let Ok(addr) = self.addr.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let addrs = tokio::net::lookup_host(self.addr.as_str())
            .await
            .map_err(|source| RpcError::Resolve {
                target: self.target,
                addr: self.addr.clone(),
                source,
            })?;
        // An IPv4 socket cannot reach IPv6 addresses: prefer the family of
        // the local endpoint (`localhost` often resolves to `::1` first).
        let local_v4 = self.pool.endpoint().local_addr().is_ok_and(|a| a.is_ipv4());
        let addrs: Vec<SocketAddr> = addrs.collect();
        addrs
            .iter()
            .find(|a| !local_v4 || a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| RpcError::NoAddress {
                target: self.target,
                addr: self.addr.clone(),
            })
    }

    /// Sends `req` and returns the peer's answer, or the transport failure
    /// mapped to openraft's error. `entries` is the number of log entries in
    /// an AppendEntries request: if its frame is too large, openraft is
    /// asked to send fewer.
    async fn send<R: Rpc, E: std::error::Error>(
        &self,
        req: R,
        entries: usize,
        option: &RPCOption,
    ) -> RpcResult<R::Reply, E> {
        let addr = self
            .resolve()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let timeout = match option.hard_ttl() {
            ttl if ttl.is_zero() => DEFAULT_RPC_TIMEOUT,
            ttl => ttl,
        };
        match self.pool.rpc(addr, Some(self.target), req, timeout).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Rpc(ProtoRpcError::Refused { code, message })) => {
                Err(RPCError::Network(NetworkError::new(&RpcError::Refused {
                    target: self.target,
                    rpc: R::NAME,
                    code,
                    message,
                })))
            }
            Err(CallError::Rpc(ProtoRpcError::WrongReply { got, .. })) => Err(RPCError::Network(
                NetworkError::new(&RpcError::Unexpected {
                    target: self.target,
                    rpc: R::NAME,
                    got,
                }),
            )),
            Err(CallError::Net(e)) => Err(self.transport_failed(addr, e, entries)),
        }
    }

    /// Maps a transport failure to openraft's error (see the module doc).
    fn transport_failed<E: std::error::Error>(
        &self,
        addr: SocketAddr,
        e: NetError,
        entries: usize,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        match e {
            e @ NetError::FrameTooLarge { .. } if entries > 1 => {
                let hint = (entries / 2) as u64;
                tracing::debug!(target_node = %self.target.short(), error = %e, hint, "raft payload too large, splitting");
                RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(hint).with_source_error(&e),
                )
            }
            e @ NetError::Timeout(_) => {
                tracing::debug!(target_node = %self.target.short(), addr = %addr, error = %e, "raft rpc timed out");
                self.dial_in_background(addr);
                RPCError::Network(NetworkError::new(&e))
            }
            e if e.is_transport() => {
                tracing::debug!(target_node = %self.target.short(), addr = %addr, error = %e, "raft peer unreachable");
                RPCError::Unreachable(Unreachable::new(&e))
            }
            e => {
                tracing::debug!(target_node = %self.target.short(), addr = %addr, error = %e, "raft rpc failed");
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    /// Establishes (and caches in the pool) the connection to the peer
    /// without the deadline of a single RPC.
    fn dial_in_background(&self, addr: SocketAddr) {
        if self.dialing.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.pool.clone();
        let target = self.target;
        let dialing = self.dialing.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(BACKGROUND_DIAL_TIMEOUT, pool.get(addr, Some(target))).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(target_node = %target.short(), %addr, error = %e, "background dial failed");
                }
                Err(_) => {
                    tracing::debug!(target_node = %target.short(), %addr, "background dial timed out");
                }
            }
            dialing.store(false, Ordering::Release);
        });
    }
}

impl RaftNetwork<TypeConfig> for NetworkConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let (rpc, cut) = fit_append(rpc, MAX_APPEND_BYTES);
        let entries = rpc.entries.len();
        match self.send(rpc, entries, &option).await? {
            // Only a prefix went: say how far the follower now matches.
            Ok(AppendEntriesResponse::Success) if cut.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(cut))
            }
            Ok(resp) => Ok(resp),
            Err(e) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.send(rpc, 0, &option)
            .await?
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.send(rpc, 0, &option)
            .await?
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// Keeps the longest prefix of `rpc`'s entries that fits `budget` bytes
/// (at least one entry); returns the id of the last entry kept when some
/// were cut, for an [`AppendEntriesResponse::PartialSuccess`].
pub fn fit_append(
    mut rpc: AppendEntriesRequest<TypeConfig>,
    budget: u64,
) -> (
    AppendEntriesRequest<TypeConfig>,
    Option<openraft::LogId<NodeId>>,
) {
    let mut total = 0u64;
    let mut keep = 0;
    for e in &rpc.entries {
        let size = bincode::serialized_size(e).unwrap_or(u64::MAX);
        if keep > 0 && total.saturating_add(size) > budget {
            break;
        }
        total = total.saturating_add(size);
        keep += 1;
    }
    if keep == rpc.entries.len() {
        return (rpc, None);
    }
    rpc.entries.truncate(keep);
    let last = rpc.entries.last().map(|e| e.log_id);
    (rpc, last)
}

#[cfg(test)]
mod fit_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    use proptest::prelude::*;
    use stratus_state::Command;

    fn entry(index: u64, bytes: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, NodeId([7; 32])), index),
            payload: EntryPayload::Normal(Command::PutVar {
                tenant: "t".into(),
                key: "k".into(),
                value: "v".repeat(bytes),
                now_ms: 0,
            }),
        }
    }

    fn request(sizes: &[usize]) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: openraft::Vote::new_committed(1, NodeId([7; 32])),
            prev_log_id: None,
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| entry(i as u64 + 1, *s))
                .collect(),
            leader_commit: None,
        }
    }

    proptest! {
        /// A message keeps a prefix within the budget (or one entry, however
        /// large), and says where it was cut.
        #[test]
        fn append_messages_stay_within_their_byte_budget(
            sizes in proptest::collection::vec(0usize..5000, 0..40),
            budget in 1u64..40_000,
        ) {
            let (rpc, cut) = fit_append(request(&sizes), budget);
            let kept = rpc.entries.len();
            prop_assert!(kept <= sizes.len());
            if !sizes.is_empty() {
                prop_assert!(kept >= 1);
            }
            let total: u64 = rpc
                .entries
                .iter()
                .map(|e| bincode::serialized_size(e).unwrap())
                .sum();
            prop_assert!(kept == 1 || total <= budget);
            if kept < sizes.len() {
                prop_assert_eq!(cut, Some(rpc.entries[kept - 1].log_id));
                // The next entry would not have fitted.
                let next = bincode::serialized_size(&entry(kept as u64 + 1, sizes[kept])).unwrap();
                prop_assert!(total + next > budget);
            } else {
                prop_assert_eq!(cut, None);
            }
        }
    }
}
