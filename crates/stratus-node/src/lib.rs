//! A node process: the only place where roles and backends are chosen.
//!
//! **Owns** which roles run and on what (identity, QUIC endpoint, control
//! replica, HTTP API, S3 gateway, agent, storage piece service), the order
//! they start and stop in, the config file format ([`config`]) and the
//! `stratus dev` local cloud ([`dev`]).
//!
//! **Does not own** what any role does (each is its own crate), or flag
//! parsing and its defaults (`stratus-cli`).
//!
//! [`start`] brings up, in order: the node identity (its ed25519 key), the
//! QUIC endpoint, the control replica (if the `control` role is on), the HTTP
//! API (with the control role), and the agent (if the `agent` role is on).
//! [`Running::shutdown`] stops them in reverse order: the API stops accepting
//! requests, the agent stops heartbeating, the control replica stops Raft, and
//! the endpoint closes its connections. [`dev`] runs a whole local cloud
//! (replicas and agents) in one process.

pub mod config;
pub mod dev;
mod ingress;
mod objects;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use stratus_agent::services::LenderEgress;
pub use stratus_agent::sysinfo::hostname;
use stratus_agent::{Agent, AgentConfig};
pub use stratus_agent::{AgentState, DEFAULT_USERNS_FIRST};
use stratus_control::{Control, ControlConfig};
use stratus_net::{Endpoint, Identity};
use stratus_types::{Attributes, Capacity, ErrorCode, NodeId, StorageInfo};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Default QUIC port of control replicas.
pub const DEFAULT_QUIC_PORT: u16 = 7400;
/// Default HTTP API port.
pub const DEFAULT_API_PORT: u16 = 7420;

/// Settings of a control replica (with its API).
#[derive(Clone, Debug)]
pub struct ServerRole {
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Address other replicas dial (defaults to `listen`).
    pub advertise: Option<String>,
    /// HTTP API listen address.
    pub api: SocketAddr,
    /// Start a new cluster if this replica is empty.
    pub bootstrap: bool,
    /// Agents' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is lost.
    pub node_lost_after: Duration,
    /// Take a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
    /// Object store settings (gateway, repair, scrub, garbage collection).
    pub store: stratus_store::StoreConfig,
    /// Listen address of the S3 gateway over this replica's store (`None`:
    /// no S3 gateway). Clients sign with access keys made by
    /// `POST /v1/s3/keys` (`stratus s3 keys create`).
    pub s3: Option<SocketAddr>,
    /// Listen address of the ingress (`None`: none): HTTP requests routed
    /// by `Host` header to the workloads exposed as that host
    /// (`expose: { http: { host } }`), wherever their instances run.
    pub ingress: Option<SocketAddr>,
    /// A replica of the cluster to join (`--join ID@HOST:PORT`): until this
    /// replica is added, it accepts Raft messages only from that replica and
    /// the members it lists.
    pub join: Option<stratus_proto::Peer>,
    /// Free-space watermark of the Raft log's disk (`None`: 1 GiB, at most 5% of the disk).
    pub min_free_bytes: Option<u64>,
    /// Page cache of the replicated state (`None`: 64 MiB).
    pub state_cache_bytes: Option<u64>,
    /// Time between two storage billings (`None`: an hour).
    pub storage_billing_every: Option<Duration>,
}

/// Settings of the agent role.
#[derive(Clone, Debug)]
pub struct AgentRole {
    /// Control replicas to dial.
    pub control: Vec<String>,
    /// Join secret.
    pub join_token: String,
    /// Attributes to report.
    pub attributes: Attributes,
    /// Capacity to report instead of measuring it.
    pub capacity: Option<Capacity>,
    /// Lend disk space for object pieces.
    pub storage: Option<StorageRole>,
    /// Run container images when the machine can (root, cgroups, FUSE);
    /// `false` lends the node to WASM workloads only.
    pub containers: bool,
    /// Host ports published container ports may use (`--ports`).
    pub ports: stratus_types::PortRange,
    /// Host uid and gid of container root: containers run in user
    /// namespaces mapping their ids `0..65536` onto `first..` (`--userns`;
    /// `None`: no user namespace, container root is host root).
    pub userns: Option<u32>,
    /// Where containers may connect (`--egress`, `--egress-allow`,
    /// `--egress-deny`).
    pub egress: LenderEgress,
    /// The node's offer and price per task (`--price`, `--available`),
    /// set when the agent registers (`None`: left as its owner set it).
    pub offer: Option<(stratus_market::Offer, stratus_market::Amount)>,
}

/// The storage role: a piece service on its own QUIC port, which replicas
/// also reach over the piece links the node dials to them (so the port
/// need not be reachable: a node behind a NAT lends disk too).
#[derive(Clone, Debug)]
pub struct StorageRole {
    /// QUIC listen address of the piece service.
    pub listen: SocketAddr,
    /// Address replicas dial (default: the bound address).
    pub advertise: Option<String>,
    /// Bytes lent for pieces.
    pub capacity_bytes: u64,
}

/// Everything a node needs to start; each role is on when its section is set.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Data directory (identity, Raft data, secrets).
    pub data_dir: PathBuf,
    /// Name shown to operators.
    pub name: String,
    /// Control + API role.
    pub server: Option<ServerRole>,
    /// Agent role.
    pub agent: Option<AgentRole>,
    /// Cluster name.
    pub cluster_name: String,
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// Identity or transport.
    #[error(transparent)]
    Net(#[from] stratus_net::NetError),
    /// Control replica.
    #[error(transparent)]
    Control(#[from] stratus_control::ControlError),
    /// Agent.
    #[error(transparent)]
    Agent(#[from] stratus_agent::AgentError),
    /// IO.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A started node.
pub struct Running {
    /// Its identity.
    pub node_id: NodeId,
    /// Where its QUIC endpoint listens.
    pub quic_addr: SocketAddr,
    /// Where its API listens (control role only).
    pub api_addr: Option<SocketAddr>,
    /// The control replica (control role only).
    pub control: Option<Control>,
    /// The object store (with the server role).
    pub store: Option<stratus_store::Store>,
    /// Address of the piece service (with the storage role).
    pub storage_addr: Option<SocketAddr>,
    /// Where the S3 gateway listens (server role with `s3` set).
    pub s3_addr: Option<SocketAddr>,
    s3_task: Option<JoinHandle<Result<(), stratus_s3::ServeError>>>,
    /// Where the ingress listens (server role with `ingress` set).
    pub ingress_addr: Option<SocketAddr>,
    ingress_task: Option<JoinHandle<Result<(), stratus_http::ServeError>>>,
    agent: Option<Agent>,
    storage_endpoint: Option<Endpoint>,
    storage_cancel: CancellationToken,
    endpoint: Endpoint,
    api_cancel: CancellationToken,
    api_task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// The agent's state, if this node runs one.
    pub fn agent_state(&self) -> Option<watch::Receiver<AgentState>> {
        self.agent.as_ref().map(|a| a.state())
    }

    /// Ordered shutdown: API and S3 gateway, agent, control replica,
    /// endpoint.
    pub async fn shutdown(mut self) {
        self.api_cancel.cancel();
        if let Some(t) = self.api_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(t) = self.s3_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(t) = self.ingress_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.storage_cancel.cancel();
        if let Some(e) = self.storage_endpoint.take() {
            e.close().await;
        }
        if let Some(a) = self.agent.take() {
            if let Err(e) = a.stop().await {
                tracing::warn!(error = %e, "agent stopped with an error");
            }
        }
        if let Some(c) = self.control.take() {
            c.shutdown().await;
        }
        self.endpoint.close().await;
        tracing::info!(node = %self.node_id.short(), "stopped");
    }

    /// Waits until the agent ends on its own (a fatal refusal such as a wrong
    /// join token). Never returns for nodes without an agent.
    pub async fn agent_failed(&mut self) -> Option<stratus_agent::AgentError> {
        match self.agent.as_mut() {
            Some(a) => {
                let err = a.join().await.err();
                // The agent has ended: shutdown must not wait for it again.
                self.agent = None;
                err
            }
            None => std::future::pending().await,
        }
    }
}

/// Starts the node's roles.
pub async fn start(cfg: NodeConfig) -> Result<Running, NodeError> {
    start_with(cfg, None).await
}

/// Starts the node's roles, its agent running workloads with `executor`
/// (`None`: the WASM sandbox, what the product runs; tests pass their own,
/// such as the testkit's lying lender).
pub async fn start_with(
    cfg: NodeConfig,
    executor: Option<Arc<dyn stratus_runtime::DynExecutor>>,
) -> Result<Running, NodeError> {
    if cfg.server.is_none() && cfg.agent.is_none() {
        return Err(NodeError::Config(
            "no role enabled: a node needs the server role, the agent role, or both".into(),
        ));
    }
    create_private_dir(&cfg.data_dir)?;
    let identity = Identity::load_or_create(&cfg.data_dir)?;
    // Agents dial out (NAT-friendly): any local port, no inbound handshake
    // but from the peers a replica introduced (hole punching).
    let in_use = |e: &stratus_net::NetError| matches!(e, stratus_net::NetError::Io(io) if io.kind() == std::io::ErrorKind::AddrInUse);
    let endpoint = match &cfg.server {
        Some(s) => retry_in_use(|| Endpoint::bind(&identity, s.listen), in_use).await?,
        None => Endpoint::bind_guarded(&identity, SocketAddr::from(([0, 0, 0, 0], 0))).await?,
    };
    let quic_addr = endpoint.local_addr()?;
    let node_id = endpoint.node_id();
    tracing::info!(node = %node_id, quic = %quic_addr, "node identity loaded");

    let storage_cancel = CancellationToken::new();
    let api_cancel = CancellationToken::new();
    let server = match &cfg.server {
        Some(s) => {
            Some(start_server(&cfg, s, &endpoint, quic_addr, &storage_cancel, &api_cancel).await?)
        }
        None => None,
    };

    // The storage role: a piece store and its own endpoint.
    let mut storage = None;
    if let Some(st) = cfg.agent.as_ref().and_then(|a| a.storage.as_ref()) {
        let dir = cfg.data_dir.join("pieces");
        let pieces = open_pieces(&dir, st.capacity_bytes).await?;
        let ep = retry_in_use(|| Endpoint::bind(&identity, st.listen), in_use).await?;
        let addr = ep.local_addr()?;
        let info = StorageInfo {
            // A wildcard address is no address to dial: such a node is
            // reached over the piece links it dials ("links only").
            addr: st.advertise.clone().unwrap_or_else(|| {
                if addr.ip().is_unspecified() {
                    String::new()
                } else {
                    addr.to_string()
                }
            }),
            capacity_bytes: st.capacity_bytes,
        };
        tracing::info!(addr = %info.addr, capacity = st.capacity_bytes, "piece service up");
        storage = Some((ep, Arc::new(pieces), info, addr));
    }
    let agent = match &cfg.agent {
        Some(a) => Some(Agent::start(
            AgentConfig {
                data_dir: cfg.data_dir.clone(),
                name: cfg.name.clone(),
                control: a.control.clone(),
                join_token: a.join_token.clone(),
                attributes: a.attributes.clone(),
                capacity: a.capacity.clone(),
                storage: storage.as_ref().map(|s| s.2.clone()),
                containers: a.containers,
                ports: a.ports,
                userns: a.userns,
                egress: a.egress.clone(),
                offer: a.offer.clone(),
            },
            endpoint.clone(),
            // The WASM sandbox is the workload backend of agents.
            Some(match executor {
                Some(e) => e,
                None => Arc::new(stratus_runtime::WasmExecutor::new().map_err(|e| {
                    NodeError::Config(format!("cannot start the WASM runtime: {e}"))
                })?),
            }),
        )?),
        None => None,
    };

    let mut storage_endpoint = None;
    let mut storage_addr = None;
    if let (Some((ep, pieces, _, addr)), Some(a)) = (storage, agent.as_ref()) {
        tokio::spawn(stratus_store::server::serve(
            ep.clone(),
            pieces.clone(),
            a.replicas(),
            storage_cancel.clone(),
        ));
        // Replicas reach the pieces over these too when they cannot dial
        // this node (behind a NAT).
        tokio::spawn(stratus_store::server::dial_links(
            ep.clone(),
            pieces,
            a.replicas(),
            storage_cancel.clone(),
        ));
        storage_endpoint = Some(ep);
        storage_addr = Some(addr);
    }

    let (control, store, api_addr, api_task, s3_addr, s3_task, ingress_addr, ingress_task) =
        match server {
            Some(s) => (
                Some(s.control),
                Some(s.store),
                Some(s.api_addr),
                Some(s.api_task),
                s.s3_addr,
                s.s3_task,
                s.ingress_addr,
                s.ingress_task,
            ),
            None => (None, None, None, None, None, None, None, None),
        };
    Ok(Running {
        node_id,
        quic_addr,
        api_addr,
        control,
        store,
        storage_addr,
        s3_addr,
        s3_task,
        ingress_addr,
        ingress_task,
        storage_endpoint,
        storage_cancel,
        agent,
        endpoint,
        api_cancel,
        api_task,
    })
}

/// Creates the data directory (keys, tokens, Raft state and tenants' data):
/// only this user may enter.
fn create_private_dir(dir: &std::path::Path) -> Result<(), NodeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|source| NodeError::Io {
            context: format!("creating data directory {}", dir.display()),
            source,
        })
}

/// Binds a TCP listener for one of the HTTP doors (`what` names it in errors).
async fn bind_tcp(
    addr: SocketAddr,
    what: &str,
) -> Result<(tokio::net::TcpListener, SocketAddr), NodeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Io {
            context: format!("binding {what} on {addr}"),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| NodeError::Io {
        context: format!("reading the address of {what}"),
        source,
    })?;
    Ok((listener, bound))
}

/// What the server role started.
struct Server {
    control: Control,
    store: stratus_store::Store,
    api_addr: SocketAddr,
    api_task: JoinHandle<std::io::Result<()>>,
    s3_addr: Option<SocketAddr>,
    s3_task: Option<JoinHandle<Result<(), stratus_s3::ServeError>>>,
    ingress_addr: Option<SocketAddr>,
    ingress_task: Option<JoinHandle<Result<(), stratus_http::ServeError>>>,
}

/// Starts the server role: the control replica, the object store (with its
/// upkeep on the leader), the API and the S3 gateway.
async fn start_server(
    cfg: &NodeConfig,
    s: &ServerRole,
    endpoint: &Endpoint,
    quic_addr: SocketAddr,
    storage_cancel: &CancellationToken,
    api_cancel: &CancellationToken,
) -> Result<Server, NodeError> {
    let advertise = s.advertise.clone().unwrap_or_else(|| quic_addr.to_string());
    let c = Control::start(
        ControlConfig {
            data_dir: cfg.data_dir.join("control"),
            cluster_name: cfg.cluster_name.clone(),
            advertise_addr: advertise,
            bootstrap: s.bootstrap,
            heartbeat_interval: s.heartbeat_interval,
            node_lost_after: s.node_lost_after,
            snapshot_every: s.snapshot_every,
            join: s.join.clone(),
            min_free_bytes: s.min_free_bytes,
            state_cache_bytes: s.state_cache_bytes,
            storage_billing_every: s.storage_billing_every,
        },
        endpoint.clone(),
    )
    .await?;
    let st = stratus_store::Store::new(
        Arc::new(ControlMeta(c.clone())),
        Arc::new(
            stratus_store::NetPieces::new(
                stratus_net::Pool::new(endpoint.clone()),
                s.store.call_timeout,
            )
            .with_links(c.piece_links()),
        ),
        s.store.clone(),
    );
    c.attach_images(Arc::new(StoreImages(st.clone())));
    c.attach_volumes(Arc::new(StoreImages(st.clone())));
    c.attach_task_io(Arc::new(StoreImages(st.clone())));
    let leader = c.clone();
    tokio::spawn(
        st.clone()
            .maintain(Arc::new(move || leader.is_leader()), storage_cancel.clone()),
    );
    let (listener, api_addr) = bind_tcp(s.api, "the API").await?;
    let (mut s3_addr, mut s3_task) = (None, None);
    if let Some(addr) = s.s3 {
        let (s3_listener, bound) = bind_tcp(addr, "the S3 gateway").await?;
        tracing::info!(addr = %bound, "S3 gateway up");
        s3_addr = Some(bound);
        let cancel = api_cancel.clone();
        s3_task = Some(tokio::spawn(stratus_s3::serve(
            s3_listener,
            stratus_s3::store_gateway(st.clone()),
            async move { cancel.cancelled().await },
        )));
    }
    let (mut ingress_addr, mut ingress_task) = (None, None);
    if let Some(addr) = s.ingress {
        let (listener, bound) = bind_tcp(addr, "the ingress").await?;
        tracing::info!(addr = %bound, "ingress up");
        ingress_addr = Some(bound);
        let cancel = api_cancel.clone();
        ingress_task = Some(tokio::spawn(stratus_ingress::serve(
            listener,
            Arc::new(ingress::Routes(c.clone())),
            stratus_http::Limits::default(),
            async move { cancel.cancelled().await },
        )));
    }
    let cancel = api_cancel.clone();
    let api_task = tokio::spawn(stratus_api::serve(
        listener,
        c.clone(),
        st.clone(),
        async move { cancel.cancelled().await },
    ));
    Ok(Server {
        control: c,
        store: st,
        api_addr,
        api_task,
        s3_addr,
        s3_task,
        ingress_addr,
        ingress_task,
    })
}

/// Opens the piece store, waiting a little for a previous process of this
/// node (still shutting down) to let go of it.
async fn open_pieces(
    dir: &std::path::Path,
    capacity: u64,
) -> Result<stratus_pieces::PieceStore, NodeError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match stratus_pieces::PieceStore::open(dir, capacity) {
            Ok(p) => return Ok(p),
            Err(stratus_pieces::PieceError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(NodeError::Config(format!(
                    "cannot open the piece store: {e}"
                )))
            }
        }
    }
}

/// How long a store write waits for this replica to apply it.
const WAIT_APPLIED: Duration = Duration::from_secs(5);

/// The control replica as the object store's metadata.
struct ControlMeta(Control);

impl stratus_store::Meta for ControlMeta {
    fn read(&self, f: &mut dyn FnMut(&stratus_state::State)) {
        self.0.state().read(|s| f(s));
    }

    fn kek(&self) -> Option<stratus_state::sealing::Kek> {
        self.0.kek()
    }

    fn write(
        &self,
        cmd: stratus_state::Command,
    ) -> futures::future::BoxFuture<
        'static,
        Result<stratus_state::CommandResult, stratus_store::StoreError>,
    > {
        let c = self.0.clone();
        Box::pin(async move {
            let a = c.write(cmd).await.map_err(|e| match e {
                stratus_control::ControlError::Rejected(e) => e.into(),
                e => stratus_store::StoreError::Meta {
                    code: e.code(),
                    message: e.to_string(),
                },
            })?;
            // Read your writes: a write forwarded to the leader returns once
            // committed there; wait (briefly) until this replica applied it
            // too, so the gateway that wrote sees it.
            let _ = tokio::time::timeout(WAIT_APPLIED, c.state().wait_applied(a.index)).await;
            Ok(stratus_state::CommandResult {
                version: a.version,
                id: a.id,
                ..Default::default()
            })
        })
    }
}

/// Retries `f` for a few seconds while `in_use` says its address is still
/// held — by the previous incarnation of this node in a restart, whose
/// sockets close a moment after its shutdown returns.
async fn retry_in_use<T, E, Fut>(
    mut f: impl FnMut() -> Fut,
    in_use: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match f().await {
            Err(e) if in_use(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Default attributes of this machine (architecture and OS).
pub fn local_attributes() -> Attributes {
    Attributes {
        arch: std::env::consts::ARCH.to_string(),
        os: std::env::consts::OS.to_string(),
        ..Attributes::default()
    }
}

/// Serves container images to agents out of this replica's object store.
struct StoreImages(stratus_store::Store);

impl stratus_control::ImageServer for StoreImages {
    fn flist(
        &self,
        tenant: String,
        image: stratus_types::ImageRef,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>> {
        let store = self.0.clone();
        Box::pin(async move {
            store
                .image_flist(&tenant, &image)
                .await
                .map_err(|e| (e.code(), e.to_string()))
        })
    }

    fn chunk(
        &self,
        tenant: String,
        id: [u8; 32],
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, (ErrorCode, String)>> {
        let store = self.0.clone();
        Box::pin(async move {
            store
                .read_chunk(
                    &stratus_state::objects::KeyScope::Tenant(tenant),
                    &stratus_chunk::ChunkId(id),
                )
                .await
                .map_err(|e| (e.code(), e.to_string()))
        })
    }
}
