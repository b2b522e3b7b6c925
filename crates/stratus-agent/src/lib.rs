//! The agent that runs on every lending machine.
//!
//! **Owns** what happens on the machine: measuring and registering what it
//! lends, heartbeats and failover between replicas; running the instances
//! assigned to it (`runner`: WASM through `stratus-runtime`, containers
//! through `stratus-container` on an image mounted lazily with
//! `stratus-mount`); **restarts**: a crashed instance is restarted here, on
//! the same node, by its `restart` policy (delay, backoff, attempts);
//! handing each instance its limits (memory `resources.memory_mb`, 64 MiB by
//! default in the spec; a task's wall time, 1 hour by default; disk
//! `resources.disk_mb`, [`taskio::DEFAULT_DISK_MB`] MiB by default, for a
//! container's writable layer, volumes, `/input` and `/output`, measured
//! every second); volumes, `exec`, and edge autonomy (assignments kept on
//! disk, run while no replica answers).
//!
//! **Does not own** where instances run or replacing lost ones (the control
//! plane's reconciler), declaring the node lost (the leader's failure
//! detector), the sandboxes themselves (`stratus-runtime`,
//! `stratus-container`), or the pieces a storage node keeps (the piece
//! service of `stratus-store` on `stratus-pieces`).
//!
//! The agent only ever *dials out*: it connects over QUIC to one of the
//! control replicas it knows, has it prove that it belongs to the cluster its
//! join credential pins ([`stratus_proto::Request::ClusterProof`], checked
//! with `stratus_net::cluster::verify_vouch` against the key the handshake
//! authenticated) — the credential is never sent to a replica that cannot —
//! registers ([`stratus_proto::Request::Register`]) with what the machine
//! lends and its attributes, then heartbeats on the same connection.
//! Machines behind NAT therefore need no inbound port. An address that
//! answers with a key the credential cannot be tied to is skipped; when every
//! address has, the agent stops with [`AgentError::Untrusted`].
//!
//! Failover: the agent keeps the list of replicas it was configured with plus
//! those the control plane tells it about in each answer, and moves to the
//! next one whenever a call fails, with capped exponential backoff and jitter
//! once it has tried them all. If the control plane has forgotten it (answer
//! `not_found`), it registers again.

pub mod archive;
pub mod containers;
pub mod direct;
pub mod private;
pub mod runner;
pub mod services;
pub mod sysinfo;
pub mod taskio;
pub mod tunnels;
pub mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rand::Rng;
use stratus_net::cluster::{verify_vouch, JoinCredential};
use stratus_net::CallError;
use stratus_net::Endpoint;
use stratus_proto::{rpc, Peer, RpcError};
use stratus_types::{Attributes, Capacity, ErrorCode, NodeId, NodeInfo, PortRange, StorageInfo};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Timeout of one call to the control plane.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between rounds of reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long shutdown waits for the instances running here to stop.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// Settings of an agent.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Data directory (used for the disk capacity figure).
    pub data_dir: PathBuf,
    /// Name shown to operators (hostname by default).
    pub name: String,
    /// Control replicas to dial (`host:port` of their QUIC endpoints).
    pub control: Vec<String>,
    /// The join credential (`stj_<id>_<secret>_<pin>`): the agent sends
    /// it only to a replica that proves it belongs to the pinned cluster.
    pub join_token: String,
    /// Attributes reported at registration.
    pub attributes: Attributes,
    /// Capacity to report; measured from the machine when `None`.
    pub capacity: Option<Capacity>,
    /// The node's piece service, registered with the node when it lends storage.
    pub storage: Option<StorageInfo>,
    /// Run container images when the machine can; `false` runs WASM only.
    pub containers: bool,
    /// Host ports the lender allows published container ports on
    /// (reported to the scheduler, enforced by the agent).
    pub ports: PortRange,
    /// Host uid and gid of container root (`None`: no user namespace; see
    /// [`DEFAULT_USERNS_FIRST`]).
    pub userns: Option<u32>,
    /// Where containers may connect (`--egress`, `--egress-allow`,
    /// `--egress-deny`).
    pub egress: services::LenderEgress,
    /// The node's offer and price per task, as its lender gave them at
    /// start (`stratus node --price`): set once registered, after each
    /// start of the agent (`None`: the offer is left as the owner set it
    /// with `stratus nodes offer`).
    pub offer: Option<(stratus_market::Offer, stratus_market::Amount)>,
}

/// The default host uid (and gid) of container root: containers' ids
/// `0..65536` are host ids `1_000_000_000..1_000_065_536`, inside the range
/// systemd sets aside for containers (524,288–1,879,048,191) and far from
/// the ranges `useradd` hands out in `/etc/subuid` (from 100,000).
pub const DEFAULT_USERNS_FIRST: u32 = 1_000_000_000;

/// Errors that stop an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The control plane refused this node for good (e.g. wrong join token).
    #[error("the control plane refused this node: {0}")]
    Refused(String),
    /// No control address answered with a replica of the cluster the join
    /// credential pins; the credential was not sent.
    #[error("refusing the control plane: {0}")]
    Untrusted(String),
}

/// What the agent is doing, for callers that want to watch it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    /// Looking for a control replica.
    Connecting,
    /// Registered and heartbeating to the given replica.
    Connected(NodeId),
    /// Stopped.
    Stopped,
}

/// A running agent.
pub struct Agent {
    state: watch::Receiver<AgentState>,
    replicas: watch::Receiver<BTreeMap<NodeId, String>>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
    cancel: CancellationToken,
}

impl Agent {
    /// Starts the agent on `endpoint`: it dials out from it, and, if the
    /// endpoint is guarded ([`Endpoint::bind_guarded`]), takes direct
    /// connections on it from the peers replicas introduce
    /// ([`direct`]).
    pub fn start(
        cfg: AgentConfig,
        endpoint: Endpoint,
        executor: Option<std::sync::Arc<dyn stratus_runtime::DynExecutor>>,
    ) -> Result<Agent, AgentError> {
        if cfg.control.is_empty() {
            return Err(AgentError::Config(
                "no control replica address given (use --control HOST:PORT)".into(),
            ));
        }
        JoinCredential::parse(&cfg.join_token).map_err(|e| AgentError::Config(e.to_string()))?;
        let (tx, rx) = watch::channel(AgentState::Connecting);
        let (replicas_tx, replicas) = watch::channel(BTreeMap::new());
        let cancel = CancellationToken::new();
        let signer: runner::Sign = {
            let ep = endpoint.clone();
            std::sync::Arc::new(move |m: &[u8]| ep.sign(m))
        };
        let node = endpoint.node_id();
        let runner = executor.map(|e| {
            runner::Runner::start(
                &cfg.data_dir,
                e,
                cfg.containers,
                cfg.ports,
                cfg.userns,
                cfg.egress.clone(),
                Some((node, signer)),
            )
        });
        if let Some(r) = &runner {
            tokio::spawn(r.clone().flush_loop());
            r.services().attach(endpoint.clone());
            direct::accept(endpoint.clone(), r.services().clone());
            tokio::spawn(tunnels::keep_links(
                endpoint.clone(),
                r.services().clone(),
                replicas.clone(),
                cancel.clone(),
            ));
        }
        let task = tokio::spawn(run(cfg, endpoint, tx, replicas_tx, cancel.clone(), runner));
        Ok(Agent {
            state: rx,
            replicas,
            task,
            cancel,
        })
    }

    /// Watches the agent's state.
    pub fn state(&self) -> watch::Receiver<AgentState> {
        self.state.clone()
    }

    /// Watches the control replicas the agent has learned, by id, with
    /// their QUIC addresses (the only peers a storage node serves, and those
    /// it keeps piece links to).
    pub fn replicas(&self) -> watch::Receiver<BTreeMap<NodeId, String>> {
        self.replicas.clone()
    }

    /// Stops heartbeating and returns how the agent ended.
    pub async fn stop(self) -> Result<(), AgentError> {
        self.cancel.cancel();
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(AgentError::Config(format!("agent task failed: {e}"))),
        }
    }

    /// Waits until the agent ends by itself (only on a fatal refusal).
    pub async fn join(&mut self) -> Result<(), AgentError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(AgentError::Config(format!("agent task failed: {e}"))),
        }
    }
}

/// A control replica the agent may dial.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    addr: String,
    id: Option<NodeId>,
}

async fn run(
    cfg: AgentConfig,
    endpoint: Endpoint,
    state: watch::Sender<AgentState>,
    replicas: watch::Sender<BTreeMap<NodeId, String>>,
    cancel: CancellationToken,
    runner: Option<runner::Runner>,
) -> Result<(), AgentError> {
    let mut targets: Vec<Target> = cfg
        .control
        .iter()
        .map(|a| Target {
            addr: a.clone(),
            id: None,
        })
        .collect();
    let mut next = 0usize;
    let mut failures_in_row = 0u32;
    // Addresses where a key the credential cannot be tied to answered.
    let mut untrusted: BTreeSet<String> = BTreeSet::new();
    // The offer given at start, until a replica took it.
    let mut offer = cfg.offer.clone();
    let result = loop {
        if cancel.is_cancelled() {
            break Ok(());
        }
        let target = targets[next % targets.len()].clone();
        next = next.wrapping_add(1);
        let _ = state.send(AgentState::Connecting);
        let attempt = session(
            &cfg,
            &endpoint,
            &target,
            Learned {
                targets: &mut targets,
                replicas: &replicas,
                offer: &mut offer,
            },
            &state,
            &cancel,
            runner.as_ref(),
        );
        // A stop does not wait out a handshake with an unreachable replica
        // (up to the idle timeout). The session is polled first: once
        // registered, it ends on `cancel` by itself, closing its connection.
        let outcome = tokio::select! {
            biased;
            r = attempt => r,
            _ = cancel.cancelled() => Ok(()),
        };
        match outcome {
            Ok(()) => break Ok(()),
            Err(SessionError::Fatal(msg)) => break Err(AgentError::Refused(msg)),
            Err(SessionError::Untrusted(msg)) => {
                tracing::error!(control = %target.addr, "{msg}");
                untrusted.insert(target.addr.clone());
                // Every address answered with a key the credential cannot
                // be tied to: stop, saying why (the secret was never sent).
                if targets.iter().all(|t| untrusted.contains(&t.addr)) {
                    break Err(AgentError::Untrusted(msg));
                }
                failures_in_row += 1;
            }
            Err(SessionError::Retry(msg)) => {
                tracing::debug!(control = %target.addr, "control replica unusable: {msg}");
                failures_in_row += 1;
            }
            Err(SessionError::Lost(msg)) => {
                tracing::warn!(control = %target.addr, "lost the control replica: {msg}; failing over");
                failures_in_row = 1;
            }
        }
        if failures_in_row as usize >= targets.len() {
            let exp = 100u64.saturating_mul(1 << failures_in_row.min(6));
            let pause = Duration::from_millis(exp).min(MAX_BACKOFF);
            let jitter = rand::thread_rng().gen_range(0..=pause.as_millis() as u64 / 4);
            tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                _ = tokio::time::sleep(pause + Duration::from_millis(jitter)) => {}
            }
        }
    };
    if let Some(r) = &runner {
        r.stop_all(STOP_WAIT).await;
    }
    let _ = state.send(AgentState::Stopped);
    result
}

enum SessionError {
    /// Could not start a session with this replica; try another.
    Retry(String),
    /// A working session broke; fail over.
    Lost(String),
    /// Refused for good.
    Fatal(String),
    /// The replica could not prove it belongs to the pinned cluster.
    Untrusted(String),
}

async fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))
}

/// What carries over from one session to the next: what the agent learned
/// of the control replicas, and the node's offer until a replica took it.
struct Learned<'a> {
    targets: &'a mut Vec<Target>,
    replicas: &'a watch::Sender<BTreeMap<NodeId, String>>,
    offer: &'a mut Option<(stratus_market::Offer, stratus_market::Amount)>,
}

fn learn(learned: &mut Learned<'_>, peers: Vec<Peer>) {
    let targets = &mut *learned.targets;
    learned
        .replicas
        .send_replace(peers.iter().map(|p| (p.id, p.addr.clone())).collect());
    for p in peers {
        if let Some(t) = targets.iter_mut().find(|t| t.addr == p.addr) {
            t.id = Some(p.id);
        } else {
            targets.push(Target {
                addr: p.addr,
                id: Some(p.id),
            });
        }
    }
}

async fn session(
    cfg: &AgentConfig,
    endpoint: &Endpoint,
    target: &Target,
    mut targets: Learned<'_>,
    state: &watch::Sender<AgentState>,
    cancel: &CancellationToken,
    runner: Option<&runner::Runner>,
) -> Result<(), SessionError> {
    let addr = resolve(&target.addr).await.map_err(SessionError::Retry)?;
    let conn = endpoint
        .connect(addr, target.id)
        .await
        .map_err(|e| SessionError::Retry(e.to_string()))?;
    // Checked at start (`Agent::start`), so this does not fail.
    let credential =
        JoinCredential::parse(&cfg.join_token).map_err(|e| SessionError::Fatal(e.to_string()))?;
    prove_cluster(&conn, &credential, &target.addr).await?;
    let info = NodeInfo {
        id: endpoint.node_id(),
        name: cfg.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        capacity: cfg
            .capacity
            .clone()
            .unwrap_or_else(|| sysinfo::capacity(&cfg.data_dir)),
        attributes: cfg.attributes.clone(),
        storage: cfg.storage.clone(),
        runtimes: runner.map(|r| r.runtimes()).unwrap_or_default(),
        ports: cfg.ports,
    };
    let register = rpc::Register {
        info,
        join_token: cfg.join_token.clone(),
    };
    let interval = match conn.rpc(register, CALL_TIMEOUT).await {
        Ok(w) => {
            learn(&mut targets, w.peers);
            Duration::from_millis(w.heartbeat_interval_ms.max(100))
        }
        Err(CallError::Rpc(RpcError::Refused {
            code: ErrorCode::Unauthenticated | ErrorCode::Forbidden,
            message,
        })) => return Err(SessionError::Fatal(message)),
        Err(e) => return Err(SessionError::Retry(e.to_string())),
    };
    tracing::info!(control = %target.addr, replica = %conn.remote_id().short(), "registered");
    if let Some((o, task)) = targets.offer.clone() {
        match conn
            .rpc(rpc::SetOwnOffer { offer: o, task }, CALL_TIMEOUT)
            .await
        {
            Ok(()) => {
                tracing::info!("the node's offer is set");
                *targets.offer = None;
            }
            // Refused for good (e.g. an availability the pool does not take).
            Err(CallError::Rpc(e)) => {
                tracing::warn!(error = %e, "the control plane refused the node's offer");
                *targets.offer = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the node's offer was not set; retrying at the next connection")
            }
        }
    }
    let _ = state.send(AgentState::Connected(conn.remote_id()));
    // Assignments: long-poll on this connection while it lasts.
    let sync_cancel = cancel.child_token();
    let _sync_guard = sync_cancel.clone().drop_guard();
    if let Some(r) = runner {
        r.set_connection(Some(conn.clone()));
        tokio::spawn(sync_assignments(
            conn.clone(),
            r.clone(),
            sync_cancel.clone(),
        ));
        if let Some(host) = r.container_host() {
            tokio::spawn(tunnels::sync_directory(
                conn.clone(),
                host,
                sync_cancel.clone(),
            ));
        }
    }
    let result = heartbeat_loop(&conn, interval, &mut targets, cancel).await;
    if let Some(r) = runner {
        r.set_connection(None);
    }
    result
}

/// Asks the replica at the other end of `conn` (whose key the handshake
/// proved) to show that the cluster key pinned by `credential` vouches for
/// that key; nothing secret is sent before this passes.
async fn prove_cluster(
    conn: &stratus_net::Connection,
    credential: &JoinCredential,
    addr: &str,
) -> Result<(), SessionError> {
    let replica = conn.remote_id();
    match conn.rpc(rpc::ClusterProof, CALL_TIMEOUT).await {
        Ok(p) => verify_vouch(&credential.pin, &p.cluster_key, replica, &p.signature)
            .map_err(|e| SessionError::Untrusted(format!("control address {addr}: {e}"))),
        Err(CallError::Rpc(RpcError::Refused {
            code: ErrorCode::Unavailable | ErrorCode::NoLeader,
            message,
        })) => Err(SessionError::Retry(message)),
        Err(CallError::Rpc(e)) => Err(SessionError::Untrusted(format!(
            "control address {addr}: replica {replica} did not prove it belongs to the cluster the join credential pins (answered {e})"
        ))),
        Err(e) => Err(SessionError::Retry(e.to_string())),
    }
}

/// Keeps the runner's assignments in step with the control plane.
async fn sync_assignments(
    conn: stratus_net::Connection,
    runner: runner::Runner,
    cancel: CancellationToken,
) {
    let mut after = 0u64;
    loop {
        let req = rpc::Assignments {
            after_index: after,
            wait_ms: 10_000,
        };
        let answer = tokio::select! {
            _ = cancel.cancelled() => return,
            a = conn.rpc(req, Duration::from_secs(20)) => a,
        };
        match answer {
            Ok(a) => {
                after = a.index;
                runner.apply(a.assignments, true);
            }
            Err(CallError::Rpc(e)) => {
                tracing::debug!(answer = %e, "assignments refused; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(CallError::Net(_)) => return,
        }
    }
}

async fn heartbeat_loop(
    conn: &stratus_net::Connection,
    mut interval: Duration,
    targets: &mut Learned<'_>,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                conn.close();
                return Ok(());
            }
            _ = tokio::time::sleep(interval) => {}
        }
        match conn.rpc(rpc::Heartbeat, CALL_TIMEOUT).await {
            Ok(w) => {
                learn(targets, w.peers);
                interval = Duration::from_millis(w.heartbeat_interval_ms.max(100));
            }
            // `NotFound`: the control plane forgot us (e.g. restored from an
            // old snapshot): start over with a registration. `NoLeader`,
            // `Unavailable`: the replica is alive but has no leader; another
            // may. Anything else: the session is lost too.
            Err(e) => return Err(SessionError::Lost(e.to_string())),
        }
    }
}
