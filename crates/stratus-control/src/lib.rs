//! One control-plane replica.
//!
//! **Owns** a replica's running control plane: the Raft node, group commit
//! (`proposer`), write forwarding, the reconciler (workloads → instances:
//! it **replaces** instances that failed or were lost, within their
//! `restart.attempts`; it never restarts a process), the failure detector
//! (**a node is lost** after [`ControlConfig::node_lost_after`] without a
//! heartbeat: 10 s by default, `--node-lost-after-ms` on `stratus server`,
//! `--node-lost-after` on `stratus dev`), the agent registry, membership
//! changes, bootstrap secrets, who may send which node-to-node request
//! ([`authz`]), the cluster key-encryption key ([`kek`]), when to snapshot
//! ([`snapshots`]) and instances' output buffers ([`logs`]).
//!
//! **Does not own** the rules of the state (`stratus-state`), its storage
//! (`stratus-raft`), the HTTP API (`stratus-api`), the object store's data
//! path (`stratus-store`), or restarting a crashed instance (the agent does,
//! on its node).
//!
//! A [`Control`] owns an openraft node whose log and state live in the
//! replica's data directory (see `stratus-raft`), serves the node-to-node
//! protocol (`stratus-proto`) on the node's QUIC endpoint, and offers the
//! operations the API and the CLI need:
//!
//! * [`Control::write`] proposes a [`Command`]; on a follower the command is
//!   forwarded to the leader over QUIC, so a client may talk to any replica.
//!   A write returns only once it is committed by a quorum and applied.
//!   Writes that add data are refused while the Raft log's disk is under
//!   its free-space watermark ([`disk`]).
//! * agents register and heartbeat over their own (outbound) connections; the
//!   leader runs the failure detector ([`detector`]) and marks nodes lost and
//!   ready again through the log.
//! * membership changes (add a replica as a learner, promote it, remove one).
//! * on the first start of a new cluster the leader mints the admin token and
//!   the agents' join secret, writes them to the data directory (0600) and
//!   stores only their hashes in the replicated state; and the storage
//!   secret, stored sealed under the cluster key-encryption key ([`kek`]),
//!   which replicas hand each other, never through the log.
//!
//! * every node-to-node request is authorized by the role of the peer's key
//!   (replica, agent, stranger) and what it owns, and bounded in size by
//!   that role before it is read ([`authz`]; served in `serve`).
//!
//! Shutdown is explicit: [`Control::shutdown`] stops the background tasks and
//! then Raft, in that order.

mod agent_reports;
pub mod audit;
pub mod authz;
pub mod bounds;
pub mod detector;
pub mod disk;
pub mod joining;
pub mod kek;
pub mod logs;
pub mod market;
pub mod proposer;
pub mod reconcile;
pub mod secrets;
mod serve;
pub mod settlement;
pub mod snapshots;
pub mod taskio;
mod trusted;
mod tunnels;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use stratus_net::{CallError, Endpoint, Pool};
use stratus_proto::{rpc, MembershipChange, Peer, Response, Rpc, RpcError};
use stratus_raft::{Raft, StateReader};
use stratus_state::{ApplyError, Command, CommandResult};
use stratus_types::{
    ClusterStatus, ErrorCode, NodeId, NodeStatus, ReplicaRole, ReplicaStatus, ADMIN_TENANT,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::detector::Detector;
use crate::proposer::{ProposeError, Proposer};

/// File in the data directory holding the admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File in the data directory holding the agents' join secret.
pub const JOIN_TOKEN_FILE: &str = "join.token";

/// How long a client write may wait for a leader before giving up.
const WRITE_DEADLINE: Duration = Duration::from_secs(15);
/// Timeout of one node-to-node call.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// A replica this many entries behind the leader counts as not caught up.
const MAX_HEALTHY_LAG: u64 = 1000;

/// Settings of a control replica.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// Directory for the Raft log, state snapshots and bootstrap secrets.
    pub data_dir: PathBuf,
    /// Name of the cluster (used in Raft configuration and logs).
    pub cluster_name: String,
    /// Address other replicas use to reach this one (`host:port` of QUIC).
    pub advertise_addr: String,
    /// Initialize a new one-replica cluster if this replica has no state yet.
    pub bootstrap: bool,
    /// How often agents are told to heartbeat.
    pub heartbeat_interval: Duration,
    /// A node that has not heartbeated for this long is marked lost.
    pub node_lost_after: Duration,
    /// Take a snapshot (and compact the log) after at least this many
    /// entries, and at least one per [`snapshots::ROWS_PER_ENTRY`] rows of
    /// state (see [`snapshots`]).
    pub snapshot_every: u64,
    /// A replica of the cluster this one is to join (`--join ID@HOST:PORT`):
    /// while this replica has no membership, it accepts Raft messages only
    /// from that replica and the members it lists (see [`authz`]).
    pub join: Option<Peer>,
    /// Writes that add data are refused while the Raft log's file system has
    /// less free space than this (`None`: 1 GiB, at most 5% of the disk; see [`disk`]).
    pub min_free_bytes: Option<u64>,
    /// Page cache of the replicated state's database (`None`:
    /// `stratus_raft::store::DEFAULT_STATE_CACHE`, 64 MiB). What does not fit
    /// is read from the file.
    pub state_cache_bytes: Option<u64>,
    /// Time between two storage billings the leader proposes (`None`:
    /// [`stratus_state::storage_billing::DEFAULT_BILLING_EVERY_MS`], an hour).
    pub storage_billing_every: Option<Duration>,
}

/// Default of [`ControlConfig::snapshot_every`].
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 5000;

/// Errors of control-plane operations.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The state machine refused the command.
    #[error("{0}")]
    Rejected(#[from] ApplyError),
    /// No leader could be reached in time.
    #[error(
        "no control-plane leader is available (election in progress or quorum lost); retry shortly"
    )]
    NoLeader,
    /// Another replica answered with an error.
    #[error("{message}")]
    Remote {
        /// Code sent by the peer.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(String),
    /// Transport failed.
    #[error("transport: {0}")]
    Net(#[from] stratus_net::NetError),
    /// Bad request from the caller.
    #[error("{0}")]
    Invalid(String),
    /// The replica's log disk is under its free-space watermark.
    #[error(
        "this control replica's disk is nearly full ({} bytes free, {} needed to accept writes that add data); delete objects or free space on the replica, then retry",
        .0.free_bytes, .0.watermark_bytes
    )]
    DiskLow(disk::DiskStatus),
    /// The write is larger than one replicated command may be.
    #[error(
        "the request makes a {size}-byte command; a replicated command may be at most {limit} bytes"
    )]
    TooLarge {
        /// Its encoded size.
        size: u64,
        /// [`proposer::MAX_COMMAND_BYTES`].
        limit: u64,
    },
    /// Local IO (secret files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
    /// This replica does not hold the key that seals secrets yet.
    #[error("this replica does not hold the cluster's key-encryption key yet (the storage secret may not be set, or the key is being fetched from another replica); retry")]
    NoKek,
}

impl From<CallError> for ControlError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Net(e) => ControlError::Net(e),
            CallError::Rpc(RpcError::Refused { code, message }) => {
                ControlError::Remote { code, message }
            }
            CallError::Rpc(e @ RpcError::WrongReply { .. }) => ControlError::Raft(e.to_string()),
        }
    }
}

impl ControlError {
    /// Stable error code for the API.
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::Rejected(e) => e.code(),
            ControlError::NoLeader => ErrorCode::NoLeader,
            ControlError::Remote { code, .. } => *code,
            ControlError::Net(_) => ErrorCode::Unavailable,
            ControlError::Invalid(_) => ErrorCode::BadRequest,
            ControlError::TooLarge { .. } => ErrorCode::TooLarge,
            ControlError::NoKek => ErrorCode::Unavailable,
            ControlError::DiskLow(_) => ErrorCode::InsufficientStorage,
            ControlError::Raft(_) | ControlError::Store(_) | ControlError::Io { .. } => {
                ErrorCode::Internal
            }
        }
    }
}

/// A committed and applied write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Log index of the command.
    pub index: u64,
    /// Version produced (variables) or number (object-store commands).
    pub version: Option<u64>,
    /// Id produced (object versions, multipart uploads).
    pub id: Option<String>,
}

/// Milliseconds since the Unix epoch (leader clock, stamped into commands).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A running control replica. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    id: NodeId,
    cfg: ControlConfig,
    raft: Raft,
    reader: StateReader,
    pool: Pool,
    proposer: Proposer,
    detector: Mutex<Detector>,
    logs: logs::LogBuffers,
    blocked: Mutex<std::collections::BTreeMap<String, String>>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Taken at shutdown: the image server holds the store, which holds
    /// this control plane.
    images: Mutex<Option<Arc<dyn ImageServer>>>,
    /// Taken at shutdown, as `images`.
    volumes: Mutex<Option<Arc<dyn VolumeServer>>>,
    /// Taken at shutdown, as `images`.
    task_io: Mutex<Option<Arc<dyn taskio::TaskIoServer>>>,
    authz: authz::Authz,
    kek: kek::KekSlot,
    /// The free-space watermark of the Raft log's disk.
    disk: disk::Watermark,
    /// Storage nodes' piece links to this replica.
    piece_links: stratus_net::Links,
    /// Tunnel links of nodes ([`stratus_proto::Request::TunnelLink`]).
    tunnel_links: stratus_net::Links,
}

/// Serves the archives of volumes kept in the object store to agents
/// (`VolumeSpec::bucket`): implemented over the object store by the node,
/// attached as the [`ImageServer`] is ([`Control::attach_volumes`]). The
/// control plane checks who may ask before calling it.
pub trait VolumeServer: Send + Sync + 'static {
    /// Up to `len` bytes from `offset` of `version` (the latest when `None`)
    /// of `tenant`'s `bucket/key`: a [`Response::VolumeData`].
    fn read_volume(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        version: Option<String>,
        offset: u64,
        len: u64,
    ) -> futures::future::BoxFuture<'static, Result<Response, (ErrorCode, String)>>;
    /// One step of storing a new version of `tenant`'s `bucket/key`: a
    /// [`Response::Volume`] (or [`Response::Ok`] for `Abort`).
    fn put_volume(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        step: stratus_proto::VolumePut,
    ) -> futures::future::BoxFuture<'static, Result<Response, (ErrorCode, String)>>;
}

/// Serves container images to agents: implemented over the object store by
/// the node (the store sits below the control plane and needs it, so it is
/// attached after both start: [`Control::attach_images`]).
pub trait ImageServer: Send + Sync + 'static {
    /// The encoded flist of pinned image `image` of `tenant`.
    fn flist(
        &self,
        tenant: String,
        image: stratus_types::ImageRef,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>>;
    /// The plain bytes of chunk `id` in `tenant`'s scope.
    fn chunk(
        &self,
        tenant: String,
        id: [u8; 32],
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>>;
}

impl Control {
    /// Opens the replica's storage, starts Raft and the background tasks, and
    /// serves inbound connections of `endpoint`.
    pub async fn start(cfg: ControlConfig, endpoint: Endpoint) -> Result<Control, ControlError> {
        let id = endpoint.node_id();
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ControlError::Io {
            context: format!("creating {}", cfg.data_dir.display()),
            source,
        })?;
        let kek = kek::KekSlot::open(&cfg.data_dir)?;
        let cache = cfg
            .state_cache_bytes
            .map_or(stratus_raft::store::DEFAULT_STATE_CACHE, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            });
        let (log, sm) = stratus_raft::store::open_with_cache(&cfg.data_dir.join("raft"), cache)
            .await
            .map_err(|e| ControlError::Store(e.to_string()))?;
        let reader = sm.reader();
        let pool = Pool::new(endpoint.clone());
        let network = stratus_raft::network::Network::new(pool.clone());
        let mut config = stratus_raft::default_config(&cfg.cluster_name)
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        // Snapshots are triggered by `snapshots::snapshot_loop`, sized to the state.
        config.snapshot_policy = openraft::SnapshotPolicy::Never;
        config.max_in_snapshot_log_to_keep =
            config.max_in_snapshot_log_to_keep.min(cfg.snapshot_every);
        config.purge_batch_size = config.purge_batch_size.min(cfg.snapshot_every.max(1));
        let config = config
            .validate()
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        let raft = Raft::new(id, Arc::new(config), network, log, sm)
            .await
            .map_err(|e| ControlError::Raft(e.to_string()))?;

        if cfg.bootstrap
            && !raft
                .is_initialized()
                .await
                .map_err(|e| ControlError::Raft(e.to_string()))?
        {
            let members = BTreeMap::from([(id, BasicNode::new(&cfg.advertise_addr))]);
            raft.initialize(members)
                .await
                .map_err(|e| ControlError::Raft(e.to_string()))?;
            tracing::info!(node = %id.short(), "initialized a new control plane");
        }

        let cancel = CancellationToken::new();
        let (proposer, proposer_task) = Proposer::start(raft.clone(), cancel.clone());
        let disk = disk::Watermark::new(cfg.data_dir.join("raft"), cfg.min_free_bytes);
        let control = Control {
            inner: Arc::new(Inner {
                id,
                cfg,
                raft,
                reader,
                pool,
                proposer,
                detector: Mutex::new(Detector::default()),
                logs: logs::LogBuffers::default(),
                blocked: Mutex::new(Default::default()),
                cancel,
                tasks: Mutex::new(vec![proposer_task]),
                images: Mutex::new(None),
                volumes: Mutex::new(None),
                task_io: Mutex::new(None),
                authz: authz::Authz::default(),
                kek,
                disk,
                piece_links: stratus_net::Links::new(),
                tunnel_links: stratus_net::Links::new(),
            }),
        };
        let accept = tokio::spawn(control.clone().accept_loop(endpoint));
        let leader = tokio::spawn(control.clone().leader_loop());
        let kek = tokio::spawn(control.clone().keep_kek());
        let snapshots = tokio::spawn(control.clone().snapshot_loop());
        let audit = tokio::spawn(control.clone().audit_loop());
        if let Ok(mut t) = control.inner.tasks.lock() {
            t.push(accept);
            t.push(leader);
            t.push(kek);
            t.push(snapshots);
            t.push(audit);
        }
        Ok(control)
    }

    /// The free space of this replica's log disk against its watermark.
    pub fn disk_status(&self) -> disk::DiskStatus {
        self.inner.disk.status()
    }

    /// Changes this replica's free-space watermark (`None`: the default).
    pub fn set_min_free_bytes(&self, min_free: Option<u64>) {
        self.inner.disk.set_min_free(min_free);
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// Read access to the applied state of this replica.
    pub fn state(&self) -> &StateReader {
        &self.inner.reader
    }

    /// The underlying Raft node.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Settings this replica runs with.
    pub fn config(&self) -> &ControlConfig {
        &self.inner.cfg
    }

    /// Path of the admin token file in this replica's data directory.
    pub fn admin_token_path(&self) -> PathBuf {
        self.inner.cfg.data_dir.join(ADMIN_TOKEN_FILE)
    }

    /// Path of the join secret file in this replica's data directory.
    pub fn join_token_path(&self) -> PathBuf {
        self.inner.cfg.data_dir.join(JOIN_TOKEN_FILE)
    }

    /// Current leader as seen by this replica.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Whether this replica currently leads.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.id)
    }

    /// Proposes `cmd` and waits until it is committed and applied, forwarding
    /// to the leader when this replica does not lead.
    pub async fn write(&self, cmd: Command) -> Result<Applied, ControlError> {
        self.inner.disk.check(&cmd).map_err(ControlError::DiskLow)?;
        let deadline = Instant::now() + WRITE_DEADLINE;
        loop {
            match self.inner.proposer.propose(cmd.clone()).await {
                Ok((index, result)) => return finish(index, result),
                Err(ProposeError::NotLeader(Some((lid, node)))) if lid != self.inner.id => {
                    match self.forward(lid, &node, cmd.clone()).await {
                        Ok(Some(applied)) => return applied,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!(error = %e, "forwarding a write failed; retrying")
                        }
                    }
                }
                Err(ProposeError::NotLeader(_)) => {}
                Err(ProposeError::Failed(e)) => return Err(ControlError::Raft(e)),
                Err(ProposeError::TooLarge { size }) => {
                    return Err(ControlError::TooLarge {
                        size,
                        limit: proposer::MAX_COMMAND_BYTES,
                    })
                }
            }
            if Instant::now() >= deadline || self.inner.cancel.is_cancelled() {
                return Err(ControlError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a write to the leader. `Ok(None)`: retry (leader changed).
    async fn forward(
        &self,
        leader: NodeId,
        node: &BasicNode,
        cmd: Command,
    ) -> Result<Option<Result<Applied, ControlError>>, ControlError> {
        let addr = resolve(&node.addr).await?;
        let answer = self
            .inner
            .pool
            .rpc(addr, Some(leader), rpc::Forward(cmd), WRITE_DEADLINE)
            .await;
        Ok(match answer {
            Ok(f) => Some(finish(f.index, f.result)),
            Err(e) if e.code() == Some(ErrorCode::NoLeader) => None,
            Err(CallError::Net(e)) => return Err(e.into()),
            Err(e) => Some(Err(e.into())),
        })
    }

    /// Status as seen by this replica (replication lag only known on the leader).
    pub fn local_status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => ReplicaRole::Leader,
            ServerState::Follower => ReplicaRole::Follower,
            ServerState::Candidate => ReplicaRole::Candidate,
            ServerState::Learner => ReplicaRole::Learner,
            ServerState::Shutdown => ReplicaRole::Shutdown,
        };
        let last = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = m.replication.clone();
        let replicas: Vec<ReplicaStatus> = membership
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == m.id {
                    m.last_log_index
                } else {
                    replication
                        .as_ref()
                        .and_then(|r| r.get(id).cloned())
                        .map(|l| l.map(|l| l.index).unwrap_or(0))
                };
                ReplicaStatus {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|x| last.saturating_sub(x)),
                }
            })
            .collect();
        let (ready, lost) = self.inner.reader.read(|s| {
            let ready = s
                .nodes
                .values()
                .filter(|n| n.status == NodeStatus::Ready)
                .count();
            (ready, s.nodes.len() - ready)
        });
        let health = if m.current_leader.is_none() {
            "unavailable"
        } else if role == ReplicaRole::Leader {
            let caught_up = replicas
                .iter()
                .filter(|r| r.voter && r.lag.is_some_and(|l| l <= MAX_HEALTHY_LAG))
                .count();
            if caught_up == voters.len() {
                "ok"
            } else if caught_up > voters.len() / 2 {
                "degraded"
            } else {
                "unavailable"
            }
        } else {
            "ok"
        };
        ClusterStatus {
            answered_by: m.id,
            role,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: last,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|l| l.index),
            replicas,
            nodes_ready: ready,
            nodes_lost: lost,
            health: health.to_string(),
        }
    }

    /// Status of the cluster, taken from the leader when possible (it alone
    /// knows replication lag); falls back to the local view.
    pub async fn cluster_status(&self) -> ClusterStatus {
        let local = self.local_status();
        if local.role == ReplicaRole::Leader {
            return local;
        }
        self.call_leader(rpc::Status, RPC_TIMEOUT)
            .await
            .unwrap_or(local)
    }

    /// Sends `req` to the leader this replica knows of.
    async fn call_leader<R: Rpc>(
        &self,
        req: R,
        timeout: Duration,
    ) -> Result<R::Reply, ControlError> {
        let (lid, addr) = self.leader_addr().ok_or(ControlError::NoLeader)?;
        let addr = resolve(&addr).await?;
        Ok(self.inner.pool.rpc(addr, Some(lid), req, timeout).await?)
    }

    fn leader_addr(&self) -> Option<(NodeId, String)> {
        let m = self.inner.raft.metrics().borrow().clone();
        let lid = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&lid)
            .map(|n| n.addr.clone())?;
        Some((lid, addr))
    }

    /// The replicas of the current membership.
    pub fn peers(&self) -> Vec<Peer> {
        let m = self.inner.raft.metrics().borrow().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| Peer {
                id: *id,
                addr: n.addr.clone(),
            })
            .collect()
    }

    /// Adds or removes a replica; forwarded to the leader if needed.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ControlError> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        loop {
            if self.is_leader() {
                return self.change_membership_local(change).await;
            }
            match self
                .call_leader(change.clone(), Duration::from_secs(60))
                .await
            {
                Ok(()) => return Ok(()),
                // No leader yet, or it changed or is unreachable: retry.
                Err(ControlError::Remote {
                    code: ErrorCode::NoLeader,
                    ..
                })
                | Err(ControlError::NoLeader | ControlError::Net(_)) => {}
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(ControlError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn change_membership_local(&self, change: MembershipChange) -> Result<(), ControlError> {
        let raft = &self.inner.raft;
        let voters: BTreeSet<NodeId> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let raft_err = |e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ControlError::NoLeader,
            other => ControlError::Raft(other.to_string()),
        };
        match change {
            MembershipChange::Add(peer) => {
                resolve(&peer.addr).await?;
                tracing::info!(replica = %peer.id.short(), addr = %peer.addr, "adding replica as learner");
                raft.add_learner(peer.id, BasicNode::new(&peer.addr), true)
                    .await
                    .map_err(raft_err)?;
                let mut next = voters;
                next.insert(peer.id);
                tracing::info!(replica = %peer.id.short(), "promoting replica to voter");
                raft.change_membership(next, false)
                    .await
                    .map_err(raft_err)?;
            }
            MembershipChange::Remove(id) => {
                if !voters.contains(&id) {
                    return Err(ControlError::Invalid(format!(
                        "{id} is not a voting replica of this cluster"
                    )));
                }
                if voters.len() == 1 {
                    return Err(ControlError::Invalid(
                        "cannot remove the last replica of the control plane".into(),
                    ));
                }
                let mut next = voters;
                next.remove(&id);
                raft.change_membership(next, false)
                    .await
                    .map_err(raft_err)?;
            }
        }
        Ok(())
    }

    /// Stops background tasks, then Raft. Idempotent.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        // Storage nodes see their links end at once and dial again.
        self.inner.piece_links.retain(|_| false);
        self.inner.tunnel_links.retain(|_| false);
        let tasks: Vec<JoinHandle<()>> = match self.inner.tasks.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        // Break the control plane ↔ store cycle so both are dropped.
        if let Ok(mut i) = self.inner.images.lock() {
            i.take();
        }
        if let Ok(mut v) = self.inner.volumes.lock() {
            v.take();
        }
        if let Ok(mut t) = self.inner.task_io.lock() {
            t.take();
        }
    }

    /// The connections storage nodes dialed to this replica for their piece
    /// requests ([`stratus_proto::Request::PieceLink`]): what this replica's
    /// object store calls them over.
    pub fn piece_links(&self) -> stratus_net::Links {
        self.inner.piece_links.clone()
    }

    /// Attaches the image server agents fetch flists and chunks from.
    pub fn attach_images(&self, images: Arc<dyn ImageServer>) {
        if let Ok(mut i) = self.inner.images.lock() {
            *i = Some(images);
        }
    }

    /// Attaches the volume server agents restore and save volumes through.
    pub fn attach_volumes(&self, volumes: Arc<dyn VolumeServer>) {
        if let Ok(mut v) = self.inner.volumes.lock() {
            *v = Some(volumes);
        }
    }

    /// Leader duties: bootstrap secrets once, then the failure detector.
    async fn leader_loop(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut applied = self.inner.reader.subscribe();
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tick.tick() => {}
                // Reconcile as soon as the state changes (a deploy, a report).
                r = applied.changed() => if r.is_err() { return },
            }
            let leader = self.is_leader();
            if leader != was_leader {
                if let Ok(mut d) = self.inner.detector.lock() {
                    d.clear();
                }
                was_leader = leader;
            }
            self.prune_logs();
            self.prune_links(&serve::PIECE_LINKS);
            self.prune_links(&tunnels::TUNNEL_LINKS);
            if !leader {
                continue;
            }
            if let Err(e) = self.ensure_bootstrapped().await {
                tracing::warn!(error = %e, "bootstrapping cluster secrets");
                continue;
            }
            let nodes: Vec<(NodeId, NodeStatus)> = self
                .inner
                .reader
                .read(|s| s.nodes.iter().map(|(id, n)| (*id, n.status)).collect());
            let lost = match self.inner.detector.lock() {
                Ok(mut d) => d.changes(nodes, Instant::now(), self.inner.cfg.node_lost_after),
                Err(_) => Vec::new(),
            };
            for (id, status) in lost {
                tracing::warn!(node = %id.short(), "no heartbeat within {:?}: node lost", self.inner.cfg.node_lost_after);
                if let Err(e) = self
                    .write(Command::SetNodeStatus {
                        id,
                        status,
                        now_ms: now_ms(),
                    })
                    .await
                {
                    tracing::warn!(error = %e, "marking node lost");
                }
            }
            self.reconcile_once().await;
        }
    }

    /// Runs the reconciler on the applied state and proposes its commands.
    async fn reconcile_once(&self) {
        let decisions = self
            .inner
            .reader
            .read(|s| reconcile::reconcile(s, now_ms()));
        for (workload, why) in &decisions.blocked {
            tracing::debug!(%workload, "{why}");
        }
        if let Ok(mut b) = self.inner.blocked.lock() {
            *b = decisions.blocked.into_iter().collect();
        }
        for cmd in decisions.commands {
            if let Err(e) = self.write(cmd).await {
                tracing::warn!(error = %e, "applying a scheduling decision");
            }
        }
        let every = self.inner.cfg.storage_billing_every;
        if let Some(cmd) = self
            .inner
            .reader
            .read(|s| market::storage_billing(s, now_ms(), every))
        {
            if let Err(e) = self.write(cmd).await {
                tracing::warn!(error = %e, "billing storage");
            }
        }
    }

    /// Why workloads could not be fully placed at the last pass (leader only).
    pub fn blocked(&self) -> std::collections::BTreeMap<String, String> {
        self.inner
            .blocked
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    /// Creates the admin tenant and token and the join secret if the state
    /// lacks them. Secrets are written to disk *before* their hashes are
    /// committed, so a crash in between never leaves a token nobody knows.
    async fn ensure_bootstrapped(&self) -> Result<(), ControlError> {
        let dir = &self.inner.cfg.data_dir;
        let has_admin = self.inner.reader.read(|s| s.is_bootstrapped());
        if !has_admin {
            let path = dir.join(ADMIN_TOKEN_FILE);
            let token = load_or_mint(&path, || secrets::mint_admin_token(now_ms()).token)?;
            let record = secrets::admin_record(&token, now_ms()).ok_or_else(|| {
                ControlError::Invalid(format!("{} does not hold a valid token", path.display()))
            })?;
            ignore_conflict(
                self.write(Command::CreateTenant {
                    name: ADMIN_TENANT.into(),
                    now_ms: now_ms(),
                })
                .await,
            )?;
            ignore_conflict(self.write(Command::IssueToken { record }).await)?;
            tracing::info!(path = %path.display(), "admin token created");
        }
        if !self.inner.reader.read(|s| s.store.secret.is_some()) {
            let kek = self.kek_for_new_secret()?;
            let secret = kek
                .seal(
                    stratus_state::sealing::STORAGE_SECRET,
                    &rand::random::<[u8; 32]>(),
                )
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
            ignore_conflict(
                self.write(Command::Store(
                    stratus_state::objects::StoreCommand::SetSecret { secret },
                ))
                .await,
            )?;
            tracing::info!("storage secret created");
        }
        self.ensure_joining(dir).await?;
        Ok(())
    }
}

fn load_or_mint(path: &Path, mint: impl FnOnce() -> String) -> Result<String, ControlError> {
    let io = |source| ControlError::Io {
        context: format!("secret file {}", path.display()),
        source,
    };
    if let Some(s) = secrets::read_secret_file(path).map_err(io)? {
        return Ok(s);
    }
    let s = mint();
    secrets::write_secret_file(path, &s).map_err(io)?;
    Ok(s)
}

fn ignore_conflict(r: Result<Applied, ControlError>) -> Result<(), ControlError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == ErrorCode::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}

fn finish(index: u64, result: CommandResult) -> Result<Applied, ControlError> {
    let id = result.id.clone();
    let version = result.into_result()?;
    Ok(Applied { index, version, id })
}

/// Resolves `host:port` to a socket address.
pub async fn resolve(addr: &str) -> Result<SocketAddr, ControlError> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ControlError::Invalid(format!(
                "cannot resolve address {addr:?} (expected host:port)"
            ))
        })
}
