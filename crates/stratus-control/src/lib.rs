//! Stratus L4: one control-plane replica.
//!
//! A [`Control`] owns an openraft node whose log and state live in the
//! replica's data directory (see `stratus-raft`), serves the node-to-node
//! protocol (`stratus-proto`) on the node's QUIC endpoint, and offers the
//! operations the API and the CLI need:
//!
//! * [`Control::write`] proposes a [`Command`]; on a follower the command is
//!   forwarded to the leader over QUIC, so a client may talk to any replica.
//!   A write returns only once it is committed by a quorum and applied.
//! * agents register and heartbeat over their own (outbound) connections; the
//!   leader runs the failure detector ([`detector`]) and marks nodes lost and
//!   ready again through the log.
//! * membership changes (add a replica as a learner, promote it, remove one).
//! * on the first start of a new cluster the leader mints the admin token and
//!   the agents' join secret, writes them to the data directory (0600) and
//!   stores only their hashes in the replicated state.
//!
//! Shutdown is explicit: [`Control::shutdown`] stops the background tasks and
//! then Raft, in that order.

pub mod detector;
pub mod logs;
pub mod proposer;
pub mod reconcile;
pub mod secrets;
pub mod taskio;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use stratus_net::{Endpoint, Pool};
use stratus_proto::{MembershipChange, Peer, Request, Response};
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
    /// Take a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
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
    /// Local IO (secret files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl ControlError {
    /// Stable error code for the API.
    pub fn code(&self) -> ErrorCode {
        match self {
            ControlError::Rejected(e) => e.code,
            ControlError::NoLeader => ErrorCode::NoLeader,
            ControlError::Remote { code, .. } => *code,
            ControlError::Net(_) => ErrorCode::Unavailable,
            ControlError::Invalid(_) => ErrorCode::BadRequest,
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
    /// The encoded flist of `image` (`image:NAME:TAG@VERSION`) of `tenant`.
    fn flist(
        &self,
        tenant: String,
        image: String,
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
        let (log, sm) = stratus_raft::store::open(&cfg.data_dir.join("raft"))
            .await
            .map_err(|e| ControlError::Store(e.to_string()))?;
        let reader = sm.reader();
        let pool = Pool::new(endpoint.clone());
        let network = stratus_raft::network::Network::new(pool.clone());
        let mut config = stratus_raft::default_config(&cfg.cluster_name)
            .map_err(|e| ControlError::Raft(e.to_string()))?;
        config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every.max(1));
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
            }),
        };
        let accept = tokio::spawn(control.clone().accept_loop(endpoint));
        let leader = tokio::spawn(control.clone().leader_loop());
        if let Ok(mut t) = control.inner.tasks.lock() {
            t.push(accept);
            t.push(leader);
        }
        Ok(control)
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
        let resp: Response = self
            .inner
            .pool
            .call(addr, Some(leader), &Request::Forward(cmd), WRITE_DEADLINE)
            .await?;
        Ok(match resp {
            Response::Forwarded { index, result } => Some(finish(index, result)),
            Response::Error {
                code: ErrorCode::NoLeader,
                ..
            } => None,
            Response::Error { code, message } => Some(Err(ControlError::Remote { code, message })),
            other => Some(Err(ControlError::Raft(format!(
                "unexpected answer to a forwarded write: {other:?}"
            )))),
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
        match self.call_leader(&Request::Status, RPC_TIMEOUT).await {
            Ok(Response::Status(s)) => s,
            _ => local,
        }
    }

    /// Sends `req` to the leader this replica knows of.
    async fn call_leader(
        &self,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, ControlError> {
        let (lid, addr) = self.leader_addr().ok_or(ControlError::NoLeader)?;
        let addr = resolve(&addr).await?;
        Ok(self.inner.pool.call(addr, Some(lid), req, timeout).await?)
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
            let req = Request::ChangeMembership(change.clone());
            match self.call_leader(&req, Duration::from_secs(60)).await {
                Ok(Response::Ok) => return Ok(()),
                // No leader yet, or it changed or is unreachable: retry.
                Ok(Response::Error {
                    code: ErrorCode::NoLeader,
                    ..
                })
                | Err(ControlError::NoLeader | ControlError::Net(_)) => {}
                Ok(Response::Error { code, message }) => {
                    return Err(ControlError::Remote { code, message })
                }
                Ok(other) => {
                    return Err(ControlError::Raft(format!("unexpected answer: {other:?}")))
                }
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

    fn is_member(&self, peer: &NodeId) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let empty = membership.nodes().next().is_none();
        empty || membership.get_node(peer).is_some()
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

    /// Answers an agent's volume request with `f` of the attached server,
    /// if `peer` may use `bucket/key` of `tenant` (to write, with `write`).
    async fn serve_volume(
        &self,
        peer: &NodeId,
        (tenant, bucket, key): (&str, &str, &str),
        write: bool,
        f: impl FnOnce(
            &dyn VolumeServer,
        )
            -> futures::future::BoxFuture<'static, Result<Response, (ErrorCode, String)>>,
    ) -> Response {
        if !self.uses_volume(peer, tenant, bucket, key, write) {
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: format!(
                    "{peer} runs no instance of a workload of {tenant} with a{} volume in {bucket}/{key}",
                    if write { " writable" } else { "" }
                ),
            };
        }
        let server = self.inner.volumes.lock().ok().and_then(|v| v.clone());
        let Some(server) = server else {
            return Response::Error {
                code: ErrorCode::Unavailable,
                message: "this replica serves no volumes".into(),
            };
        };
        match f(server.as_ref()).await {
            Ok(r) => r,
            Err((code, message)) => Response::Error { code, message },
        }
    }

    /// Whether `peer` is assigned a live instance (not ended, not lost: a
    /// replaced instance must not overwrite its replacement's data) of a
    /// workload of `tenant` whose spec (current, or previous during an
    /// update) declares a volume kept in `bucket/key` (writable, with
    /// `write`).
    fn uses_volume(
        &self,
        peer: &NodeId,
        tenant: &str,
        bucket: &str,
        key: &str,
        write: bool,
    ) -> bool {
        self.peer_runs(peer, tenant, true, |w| {
            [Some(&w.spec), w.previous.as_ref().map(|p| &p.0)]
                .into_iter()
                .flatten()
                .any(|spec| {
                    spec.image.iter().flat_map(|im| &im.volumes).any(|v| {
                        v.bucket.as_deref() == Some(bucket)
                            && v.object_key(&spec.name) == key
                            && !(write && v.read_only)
                    })
                })
        })
    }

    /// Whether `peer` is assigned an instance (a live one — not ended, not
    /// lost — with `live`) of a workload of `tenant` that `accept` accepts:
    /// what agent requests for image and volume data are authorized by.
    fn peer_runs(
        &self,
        peer: &NodeId,
        tenant: &str,
        live: bool,
        accept: impl Fn(&stratus_state::Workload) -> bool,
    ) -> bool {
        self.inner.reader.read(|s| {
            s.instances.values().any(|i| {
                i.node == *peer
                    && !(live
                        && (i.state.is_terminal() || i.state == stratus_state::InstanceState::Lost))
                    && s.workloads
                        .get(&i.workload)
                        .is_some_and(|w| w.tenant == tenant && accept(w))
            })
        })
    }

    /// Answers an agent's image request with `f` of the attached server.
    async fn serve_image(
        &self,
        peer: &NodeId,
        allowed: bool,
        f: impl FnOnce(
            &dyn ImageServer,
        )
            -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>>,
    ) -> Response {
        if !allowed {
            return images_forbidden(peer);
        }
        let server = self.inner.images.lock().ok().and_then(|i| i.clone());
        let Some(server) = server else {
            return images_unavailable();
        };
        match f(server.as_ref()).await {
            Ok(bytes) => Response::Blob(bytes),
            Err((code, message)) => Response::Error { code, message },
        }
    }

    /// Whether `peer` is assigned an instance of a workload of `tenant` that
    /// runs a container image (`image`, when given): an agent reads only the
    /// images of what it runs.
    fn runs_image(&self, peer: &NodeId, tenant: &str, image: Option<&str>) -> bool {
        self.peer_runs(peer, tenant, false, |w| {
            [Some(&w.module), w.previous.as_ref().map(|p| &p.1)]
                .into_iter()
                .flatten()
                .any(|m| match image {
                    Some(want) => m == want,
                    None => m.starts_with("image:"),
                })
        })
    }

    fn is_registered(&self, peer: &NodeId) -> bool {
        self.inner.reader.read(|s| s.nodes.contains_key(peer))
    }

    async fn accept_loop(self, endpoint: Endpoint) {
        loop {
            let conn = tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                c = endpoint.accept() => match c { Some(c) => c, None => return },
            };
            let me = self.clone();
            tokio::spawn(stratus_net::serve_connection(
                conn,
                move |peer, req: Request| {
                    let me = me.clone();
                    async move { me.handle(peer, req).await }
                },
            ));
        }
    }

    /// Handles one request from an authenticated peer.
    pub async fn handle(&self, peer: NodeId, req: Request) -> Response {
        let raft = &self.inner.raft;
        let not_member = || Response::Error {
            code: ErrorCode::Forbidden,
            message: format!("{peer} is not a control replica of this cluster"),
        };
        // Replica-to-replica requests are accepted only from members of the
        // current Raft membership (the connection's key proves who speaks).
        let replicas_only = matches!(
            req,
            Request::AppendEntries(_)
                | Request::Vote(_)
                | Request::InstallSnapshot(_)
                | Request::Forward(_)
                | Request::ForwardHeartbeat { .. }
                | Request::Status
                | Request::ChangeMembership(_)
        );
        if replicas_only && !self.is_member(&peer) {
            return not_member();
        }
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Forward(cmd) => match self.inner.proposer.propose(cmd).await {
                Ok((index, result)) => Response::Forwarded { index, result },
                Err(ProposeError::NotLeader(_)) => Response::Error {
                    code: ErrorCode::NoLeader,
                    message: "this replica is no longer the leader".into(),
                },
                Err(ProposeError::Failed(e)) => error_response(ErrorCode::Internal, e),
            },
            Request::Register { info, join_token } => self.register(peer, info, join_token).await,
            Request::Heartbeat => match self.heartbeat(peer).await {
                Ok(()) => self.welcome(),
                Err(e) => error_response(e.code(), e),
            },
            Request::ForwardHeartbeat { node } => match self.heartbeat(node).await {
                Ok(()) => Response::Ok,
                Err(e) => error_response(e.code(), e),
            },
            Request::Peers => {
                if !self.is_member(&peer) && !self.is_registered(&peer) {
                    return not_member();
                }
                Response::Peers {
                    leader: self.leader(),
                    peers: self.peers(),
                }
            }
            Request::Status => Response::Status(self.local_status()),
            Request::ChangeMembership(change) => {
                if !self.is_leader() {
                    return Response::Error {
                        code: ErrorCode::NoLeader,
                        message: "this replica is not the leader".into(),
                    };
                }
                match self.change_membership_local(change).await {
                    Ok(()) => Response::Ok,
                    Err(e) => error_response(e.code(), e),
                }
            }
            Request::Assignments {
                after_index,
                wait_ms,
            } => {
                if !self.is_registered(&peer) {
                    return not_member();
                }
                let (index, assignments) = self.assignments(peer, after_index, wait_ms).await;
                Response::Assignments { index, assignments }
            }
            Request::GetModule { hash } => {
                if !self.is_registered(&peer) && !self.is_member(&peer) {
                    return not_member();
                }
                match self.inner.reader.read(|s| s.modules.get(&hash).cloned()) {
                    Some(bytes) => Response::Module(bytes),
                    None => Response::Error {
                        code: ErrorCode::NotFound,
                        message: format!("module {hash} is not stored"),
                    },
                }
            }
            Request::GetFlist { tenant, image } => {
                let allowed = self.runs_image(&peer, &tenant, Some(&image));
                self.serve_image(&peer, allowed, |i| i.flist(tenant, image))
                    .await
            }
            Request::GetChunk { tenant, id } => {
                let allowed = self.runs_image(&peer, &tenant, None);
                self.serve_image(&peer, allowed, |i| i.chunk(tenant, id))
                    .await
            }
            Request::GetVolume {
                tenant,
                bucket,
                key,
                version,
                offset,
                len,
            } => {
                let target = (tenant.as_str(), bucket.as_str(), key.as_str());
                let (t, b, k) = (tenant.clone(), bucket.clone(), key.clone());
                self.serve_volume(&peer, target, false, |v| {
                    v.read_volume(t, b, k, version, offset, len)
                })
                .await
            }
            Request::PutVolume {
                tenant,
                bucket,
                key,
                step,
            } => {
                let target = (tenant.as_str(), bucket.as_str(), key.as_str());
                let (t, b, k) = (tenant.clone(), bucket.clone(), key.clone());
                self.serve_volume(&peer, target, true, |v| v.put_volume(t, b, k, step))
                    .await
            }
            r @ (Request::ListInput { .. }
            | Request::GetInput { .. }
            | Request::PutOutput { .. }) => self.serve_task_io(peer, r).await,
            Request::Report(reports) => {
                if !self.is_registered(&peer) {
                    return not_member();
                }
                let writes = reports.into_iter().map(|r| {
                    self.write(Command::ReportInstance {
                        id: r.id,
                        node: peer,
                        state: r.state,
                        restarts: r.restarts,
                        exit_code: r.exit_code,
                        kind: r.kind,
                        message: r.message,
                        now_ms: r.time_ms,
                    })
                });
                for r in futures::future::join_all(writes).await {
                    match r {
                        Ok(_) => {}
                        // Reports about instances that are gone or moved are dropped.
                        Err(e)
                            if matches!(e.code(), ErrorCode::NotFound | ErrorCode::Forbidden) => {}
                        Err(e) => return error_response(e.code(), e),
                    }
                }
                Response::Ok
            }
            Request::PushLogs(chunks) => {
                if !self.is_registered(&peer) {
                    return not_member();
                }
                let owned: Vec<_> = self.inner.reader.read(|s| {
                    chunks
                        .into_iter()
                        .filter(|c| {
                            // `<instance>#exec-<n>` is the output of an exec in it.
                            let inst = c.instance.split('#').next().unwrap_or_default();
                            s.instances.get(inst).is_some_and(|i| i.node == peer)
                        })
                        .collect()
                });
                self.inner.logs.append(owned);
                Response::Ok
            }
            Request::ReportExec { instance, n, state } => {
                if !self.is_registered(&peer) {
                    return not_member();
                }
                match self
                    .write(Command::ReportExec {
                        instance,
                        node: peer,
                        n,
                        state,
                    })
                    .await
                {
                    Ok(_) => Response::Ok,
                    Err(e) => error_response(e.code(), e),
                }
            }
            Request::ReadLogs { instance, offset } => {
                let (offset, data, known) = self.inner.logs.read(&instance, offset);
                Response::Logs {
                    offset,
                    data,
                    known,
                }
            }
        }
    }

    /// What `node` should run: its instances that are not over, with specs.
    /// Waits up to `wait_ms` for the applied index to pass `after_index`.
    async fn assignments(
        &self,
        node: NodeId,
        after_index: u64,
        wait_ms: u64,
    ) -> (u64, Vec<stratus_proto::Assignment>) {
        let mut rx = self.inner.reader.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(30_000));
        while *rx.borrow_and_update() <= after_index {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = self.inner.cancel.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
            }
        }
        self.inner.reader.read_indexed(|s| {
            s.instances
                .values()
                .filter(|i| {
                    i.node == node
                        && !i.state.is_terminal()
                        && i.state != stratus_state::InstanceState::Lost
                })
                .filter_map(|i| {
                    let w = s.workloads.get(&i.workload)?;
                    let (spec, module) = match &w.previous {
                        Some((spec, module)) if i.generation != w.generation => {
                            (spec.clone(), module.clone())
                        }
                        _ => (w.spec.clone(), w.module.clone()),
                    };
                    Some(stratus_proto::Assignment {
                        instance: i.clone(),
                        spec,
                        module,
                    })
                })
                .collect()
        })
    }

    /// Output of an instance from `offset` on: from this replica if its agent
    /// sends logs here, else from the replica that has them.
    pub async fn read_logs(
        &self,
        instance: &str,
        offset: u64,
    ) -> Result<(u64, Vec<u8>), ControlError> {
        let (off, data, known) = self.inner.logs.read(instance, offset);
        if known {
            return Ok((off, data));
        }
        for p in self.peers().into_iter().filter(|p| p.id != self.inner.id) {
            let Ok(addr) = resolve(&p.addr).await else {
                continue;
            };
            let req = Request::ReadLogs {
                instance: instance.to_string(),
                offset,
            };
            if let Ok(Response::Logs {
                offset,
                data,
                known: true,
            }) = self
                .inner
                .pool
                .call::<_, Response>(addr, Some(p.id), &req, RPC_TIMEOUT)
                .await
            {
                return Ok((offset, data));
            }
        }
        Ok((offset, Vec::new()))
    }

    fn welcome(&self) -> Response {
        Response::Welcome {
            heartbeat_interval_ms: self.inner.cfg.heartbeat_interval.as_millis() as u64,
            peers: self.peers(),
        }
    }

    async fn register(
        &self,
        peer: NodeId,
        info: stratus_types::NodeInfo,
        join_token: String,
    ) -> Response {
        if info.id != peer {
            return Response::Error {
                code: ErrorCode::Forbidden,
                message: "a node may only register itself (node id differs from its key)".into(),
            };
        }
        let expected = self.inner.reader.read(|s| s.join_token_sha256.clone());
        let Some(expected) = expected else {
            return Response::Error {
                code: ErrorCode::Unavailable,
                message: "the cluster is not bootstrapped yet; retry".into(),
            };
        };
        if !secrets::constant_time_eq(
            secrets::sha256_hex(&join_token).as_bytes(),
            expected.as_bytes(),
        ) {
            return Response::Error {
                code: ErrorCode::Unauthenticated,
                message: "wrong join token: use the one in the bootstrap replica's join.token file"
                    .into(),
            };
        }
        let name = info.name.clone();
        match self
            .write(Command::RegisterNode {
                info,
                now_ms: now_ms(),
            })
            .await
        {
            Ok(_) => {
                tracing::info!(node = %peer.short(), %name, "node registered");
                if let Err(e) = self.heartbeat(peer).await {
                    tracing::debug!(error = %e, "first heartbeat");
                }
                self.welcome()
            }
            Err(e) => error_response(e.code(), e),
        }
    }

    /// Records that `node` is alive: on the leader, in the failure detector
    /// (reviving a lost node through the log); on a follower, relayed to the leader.
    async fn heartbeat(&self, node: NodeId) -> Result<(), ControlError> {
        let status = self
            .inner
            .reader
            .read(|s| s.nodes.get(&node).map(|n| n.status));
        let Some(status) = status else {
            return Err(ControlError::Remote {
                code: ErrorCode::NotFound,
                message: format!("node {node} is not registered; register again"),
            });
        };
        if self.is_leader() {
            if let Ok(mut d) = self.inner.detector.lock() {
                d.heard(node, Instant::now());
            }
            if status == NodeStatus::Lost {
                tracing::info!(node = %node.short(), "node is back");
                self.write(Command::SetNodeStatus {
                    id: node,
                    status: NodeStatus::Ready,
                    now_ms: now_ms(),
                })
                .await?;
            }
            return Ok(());
        }
        match self
            .call_leader(&Request::ForwardHeartbeat { node }, RPC_TIMEOUT)
            .await?
        {
            Response::Ok => Ok(()),
            Response::Error { code, message } => Err(ControlError::Remote { code, message }),
            other => Err(ControlError::Raft(format!("unexpected answer: {other:?}"))),
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
        let (has_admin, has_join) = self
            .inner
            .reader
            .read(|s| (s.is_bootstrapped(), s.join_token_sha256.is_some()));
        if !has_admin {
            let path = dir.join(ADMIN_TOKEN_FILE);
            let token = load_or_mint(&path, || secrets::mint_token(ADMIN_TENANT, now_ms()).token)?;
            let (id, secret) = secrets::parse_token(&token).ok_or_else(|| {
                ControlError::Invalid(format!("{} does not hold a valid token", path.display()))
            })?;
            let record = stratus_types::TokenRecord {
                id: id.to_string(),
                tenant: ADMIN_TENANT.to_string(),
                secret_sha256: secrets::sha256_hex(secret),
                created_ms: now_ms(),
            };
            ignore_conflict(
                self.write(Command::CreateTenant {
                    name: ADMIN_TENANT.into(),
                    now_ms: now_ms(),
                })
                .await,
            )?;
            ignore_conflict(self.write(Command::CreateToken { record }).await)?;
            tracing::info!(path = %path.display(), "admin token created");
        }
        if !self.inner.reader.read(|s| s.store.secret.is_some()) {
            let secret: [u8; 32] = rand::random();
            ignore_conflict(
                self.write(Command::Store(
                    stratus_state::objects::StoreCommand::SetSecret { secret },
                ))
                .await,
            )?;
            tracing::info!("storage secret created");
        }
        if !has_join {
            let path = dir.join(JOIN_TOKEN_FILE);
            let secret = load_or_mint(&path, secrets::mint_join_secret)?;
            self.write(Command::SetJoinToken {
                sha256: secrets::sha256_hex(&secret),
            })
            .await?;
            tracing::info!(path = %path.display(), "join token created");
        }
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

fn error_response(code: ErrorCode, e: impl std::fmt::Display) -> Response {
    Response::Error {
        code,
        message: e.to_string(),
    }
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

fn images_forbidden(peer: &NodeId) -> Response {
    Response::Error {
        code: ErrorCode::Forbidden,
        message: format!("{peer} runs no instance of this image"),
    }
}

fn images_unavailable() -> Response {
    Response::Error {
        code: ErrorCode::Unavailable,
        message: "this replica serves no images".into(),
    }
}
