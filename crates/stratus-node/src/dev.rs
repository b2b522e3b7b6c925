//! `stratus dev`: a whole local cloud in one process, all data in one folder.
//!
//! Layout of the folder:
//! ```text
//! DATA/replica-0/        control replica 0 (bootstraps the cluster)
//! DATA/replica-1/ ...    further replicas, added to the membership on first start
//! DATA/node-0/ ...       agents (each its own identity)
//! DATA/api.url           address of replica 0's API
//! DATA/s3.url            address of replica 0's S3 gateway (when served)
//! DATA/admin.token       copy of the admin token (0600)
//! ```
//! Replicas listen on fixed loopback ports (`base_port + i` for QUIC,
//! `api_port + i` for HTTP) because the Raft membership records addresses,
//! which must stay the same across restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stratus_control::secrets;
use stratus_proto::{MembershipChange, Peer};
use stratus_types::{Attributes, EnergySource};

use crate::{AgentRole, NodeConfig, NodeError, Running, ServerRole};

/// Settings of the local cloud.
#[derive(Clone, Debug)]
pub struct DevConfig {
    /// Folder holding everything.
    pub data_dir: PathBuf,
    /// Number of control replicas (1, 3 or 5).
    pub replicas: usize,
    /// Number of agents.
    pub nodes: usize,
    /// QUIC port of replica 0; replica i uses `base_port + i`.
    pub base_port: u16,
    /// API port of replica 0; replica i uses `api_port + i`.
    pub api_port: u16,
    /// Agents' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is lost.
    pub node_lost_after: Duration,
    /// Take a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
    /// Bytes each agent lends for object pieces (0: agents lend no storage).
    pub storage_capacity: u64,
    /// Object store settings of the replicas.
    pub store: stratus_store::StoreConfig,
    /// S3 port of replica 0; replica i serves S3 on `s3_port + i` (`None`:
    /// no S3 gateway; `Some(0)`: any free port).
    pub s3_port: Option<u16>,
    /// Ingress port of replica 0; replica i on `ingress_port + i` (`None`:
    /// no ingress; `Some(0)`: any free port).
    pub ingress_port: Option<u16>,
    /// Time between two storage billings (`None`: an hour).
    pub storage_billing_every: Option<Duration>,
}

/// A running local cloud.
pub struct DevCloud {
    /// Control replicas, replica 0 first.
    pub replicas: Vec<Running>,
    /// Agents.
    pub agents: Vec<Running>,
    /// URL of replica 0's API.
    pub api_url: String,
    /// File holding the admin token.
    pub admin_token_file: PathBuf,
    /// The admin token.
    pub admin_token: String,
    /// The cluster's default join credential (owner: the admin tenant).
    pub join_token: String,
    /// The join credential of each agent, of its own lender (`lender-<j>`).
    pub join_tokens: Vec<String>,
}

/// The tenant that lends dev agent `j`: each dev node has its own owner, so
/// multi-owner placement can be tried on one machine.
pub fn dev_lender(j: usize) -> String {
    format!("lender-{j}")
}

/// The dev nodes' price per task.
pub const DEV_TASK_PRICE: stratus_market::Amount = stratus_market::Amount(100);
/// The dev pool's fee: 5% of lenders' amounts.
pub const DEV_POOL_FEE_BPS: u32 = 500;

/// The offer a dev node carries until its lender sets another: small
/// prices, always available, so the market can be tried on one machine
/// (a `stratus run` with its default limits holds about 600,000 in escrow
/// and a short task pays the per-task price and a little).
pub fn dev_offer() -> stratus_market::Offer {
    use stratus_market::{Amount, Prices};
    stratus_market::Offer {
        prices: Prices {
            cpu_second: Amount(1_000),
            memory_gib_hour: Amount(1_000),
            storage_gib_month: Amount(10_000),
            egress_gib: Amount(1_000),
        },
        availability: stratus_market::Availability::default(),
    }
}

/// Waits (up to `timeout`) until `expected` dev nodes have registered, then
/// gives each registered dev node without an offer [`dev_offer`]; returns
/// how many it priced.
pub async fn price_dev_nodes(
    control: &stratus_control::Control,
    expected: usize,
    timeout: Duration,
) -> Result<usize, NodeError> {
    let deadline = Instant::now() + timeout;
    let unpriced = || {
        control.state().read(|s| {
            let dev: Vec<_> = s
                .nodes
                .values()
                .filter(|r| r.info.name.starts_with("dev-node-"))
                .map(|r| r.info.id)
                .collect();
            let todo: Vec<_> = dev
                .iter()
                .filter(|id| !s.offers.contains_key(*id))
                .copied()
                .collect();
            (dev.len(), todo)
        })
    };
    let mut todo = loop {
        let (registered, todo) = unpriced();
        if registered >= expected || Instant::now() >= deadline {
            break todo;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    todo.sort();
    for node in &todo {
        control
            .write(stratus_state::Command::Market(
                stratus_state::accounts::MarketCommand::SetOfferWithTask {
                    node: *node,
                    offer: Some(dev_offer()),
                    task: DEV_TASK_PRICE,
                },
            ))
            .await?;
    }
    if control.state().read(|s| *s.pool_fee_bps == 0) {
        control
            .write(stratus_state::Command::Market(
                stratus_state::accounts::MarketCommand::SetPoolFee {
                    bps: DEV_POOL_FEE_BPS,
                },
            ))
            .await?;
    }
    Ok(todo.len())
}

/// File (in the dev folder `dir`) holding the join credential of dev agent
/// `j`'s lender.
pub fn lender_credential_path(dir: &Path, j: usize) -> PathBuf {
    dir.join(format!("{}.join", dev_lender(j)))
}

/// The join credential of dev agent `j`, for its lender: read back from
/// [`lender_credential_path`] while the cluster still knows it, minted
/// (tenant first) and written there otherwise.
pub async fn lender_credential(
    control: &stratus_control::Control,
    dir: &Path,
    j: usize,
) -> Result<String, NodeError> {
    let lender = dev_lender(j);
    let path = lender_credential_path(dir, j);
    if let Some(c) =
        secrets::read_secret_file(&path).map_err(io(format!("reading {}", path.display())))?
    {
        let known = stratus_net::cluster::JoinCredential::parse(&c)
            .ok()
            .is_some_and(|p| {
                control
                    .state()
                    .read(|s| s.joining.credentials.contains_key(&p.id))
            });
        if known {
            return Ok(c);
        }
    }
    match control
        .write(stratus_state::Command::CreateTenant {
            name: lender.clone(),
            now_ms: stratus_control::now_ms(),
        })
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == stratus_types::ErrorCode::Conflict => {}
        Err(e) => return Err(e.into()),
    }
    let new = control
        .create_join_credential(stratus_control::joining::JoinCredentialSpec {
            owner: Some(lender),
            ..Default::default()
        })
        .await?;
    secrets::write_secret_file(&path, &new.credential)
        .map_err(io(format!("writing {}", path.display())))?;
    Ok(new.credential)
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let context = context.into();
    move |source| NodeError::Io { context, source }
}

/// Waits until `path` exists and returns its contents.
async fn wait_for_secret(path: &Path, timeout: Duration) -> Result<String, NodeError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) =
            secrets::read_secret_file(path).map_err(io(format!("reading {}", path.display())))?
        {
            return Ok(s);
        }
        if Instant::now() >= deadline {
            return Err(NodeError::Config(format!(
                "the control plane did not bootstrap within {timeout:?} ({} missing)",
                path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run of `n` consecutive loopback ports free right now (UDP and TCP), for
/// replica i at `base + i`. Used by tests and benchmarks.
pub fn free_port_run(n: usize) -> std::io::Result<u16> {
    'outer: for _ in 0..200 {
        let base = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        for i in 0..n {
            let Some(p) = u16::try_from(i).ok().and_then(|i| base.checked_add(i)) else {
                continue 'outer;
            };
            if std::net::UdpSocket::bind(("127.0.0.1", p)).is_err()
                || std::net::TcpListener::bind(("127.0.0.1", p)).is_err()
            {
                continue 'outer;
            }
        }
        return Ok(base);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no run of {n} free loopback ports found"),
    ))
}

fn port(base: u16, i: usize) -> Result<u16, NodeError> {
    u16::try_from(i)
        .ok()
        .and_then(|i| base.checked_add(i))
        .ok_or_else(|| NodeError::Config(format!("port {base}+{i} is out of range")))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The site of dev agent `j`: three sites, round robin.
pub fn dev_site(j: usize) -> String {
    format!("site-{}", j % 3)
}

impl DevConfig {
    /// Configuration of replica `i`.
    pub fn replica(&self, i: usize) -> Result<NodeConfig, NodeError> {
        Ok(NodeConfig {
            data_dir: self.data_dir.join(format!("replica-{i}")),
            name: format!("replica-{i}"),
            server: Some(ServerRole {
                listen: loopback(port(self.base_port, i)?),
                advertise: None,
                api: loopback(port(self.api_port, i)?),
                bootstrap: i == 0,
                heartbeat_interval: self.heartbeat_interval,
                node_lost_after: self.node_lost_after,
                snapshot_every: self.snapshot_every,
                store: self.store.clone(),
                s3: match self.s3_port {
                    Some(0) => Some(loopback(0)),
                    Some(p) => Some(loopback(port(p, i)?)),
                    None => None,
                },
                ingress: match self.ingress_port {
                    Some(0) => Some(loopback(0)),
                    Some(p) => Some(loopback(port(p, i)?)),
                    None => None,
                },
                join: None,
                min_free_bytes: None,
                state_cache_bytes: None,
                storage_billing_every: self.storage_billing_every,
            }),
            agent: None,
            cluster_name: "dev".into(),
        })
    }

    /// QUIC addresses of all replicas.
    pub fn control_addrs(&self) -> Result<Vec<String>, NodeError> {
        (0..self.replicas)
            .map(|i| Ok(loopback(port(self.base_port, i)?).to_string()))
            .collect()
    }

    /// Configuration of agent `j`.
    pub fn agent(&self, j: usize, join_token: &str) -> Result<NodeConfig, NodeError> {
        Ok(NodeConfig {
            data_dir: self.data_dir.join(format!("node-{j}")),
            name: format!("dev-node-{j}"),
            server: None,
            agent: Some(AgentRole {
                control: self.control_addrs()?,
                join_token: join_token.to_string(),
                attributes: Attributes {
                    region: "local".into(),
                    site: dev_site(j),
                    energy: EnergySource::Grid,
                    labels: [("dev".to_string(), "true".to_string())]
                        .into_iter()
                        .collect(),
                    ..crate::local_attributes()
                },
                capacity: None,
                storage: (self.storage_capacity > 0).then(|| crate::StorageRole {
                    listen: loopback(0),
                    advertise: None,
                    capacity_bytes: self.storage_capacity,
                }),
                containers: true,
                ports: stratus_types::PortRange::DEFAULT,
                userns: Some(stratus_agent::DEFAULT_USERNS_FIRST),
                egress: Default::default(),
                // Priced by `price_dev_nodes` once registered.
                offer: None,
            }),
            cluster_name: "dev".into(),
        })
    }
}

/// Starts (or restarts) the local cloud.
pub async fn start(cfg: DevConfig) -> Result<DevCloud, NodeError> {
    if cfg.replicas == 0 {
        return Err(NodeError::Config("--replicas must be at least 1".into()));
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(io(format!("creating {}", cfg.data_dir.display())))?;
    let mut replicas: Vec<Running> = Vec::new();
    for i in 0..cfg.replicas {
        let mut rc = cfg.replica(i)?;
        // Replicas after the first join it: until added they take Raft
        // messages only from it and the members it lists.
        if let (Some(first), Some(server)) = (replicas.first(), rc.server.as_mut()) {
            server.join = Some(Peer {
                id: first.node_id,
                addr: first.quic_addr.to_string(),
            });
        }
        replicas.push(crate::start(rc).await?);
    }
    let first = replicas[0]
        .control
        .clone()
        .ok_or_else(|| NodeError::Config("replica without control role".into()))?;
    let join_token = wait_for_secret(&first.join_token_path(), Duration::from_secs(60)).await?;
    let admin = wait_for_secret(&first.admin_token_path(), Duration::from_secs(60)).await?;

    // Replicas not yet in the membership join it (first start only).
    for r in replicas.iter().skip(1) {
        let members: Vec<_> = first.peers().into_iter().map(|p| p.id).collect();
        if !members.contains(&r.node_id) {
            tracing::info!(replica = %r.node_id.short(), "adding replica to the control plane");
            first
                .change_membership(MembershipChange::Add(Peer {
                    id: r.node_id,
                    addr: r.quic_addr.to_string(),
                }))
                .await?;
        }
    }

    // The default credential is committed once its file is there; then
    // each agent joins with a credential of its own lender.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first.state().read(|s| s.joining.has_default()) {
        if Instant::now() >= deadline {
            return Err(NodeError::Config(
                "the control plane did not store its join credential within 60s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut agents = Vec::new();
    let mut join_tokens = Vec::new();
    for j in 0..cfg.nodes {
        let credential = lender_credential(&first, &cfg.data_dir, j).await?;
        agents.push(crate::start(cfg.agent(j, &credential)?).await?);
        join_tokens.push(credential);
    }

    let api = replicas[0]
        .api_addr
        .ok_or_else(|| NodeError::Config("replica without API".into()))?;
    let api_url = format!("http://{api}");
    let admin_token_file = cfg.data_dir.join("admin.token");
    secrets::write_secret_file(&admin_token_file, &admin).map_err(io("writing admin.token"))?;
    secrets::write_secret_file(&cfg.data_dir.join("api.url"), &api_url)
        .map_err(io("writing api.url"))?;
    let s3_file = cfg.data_dir.join("s3.url");
    match replicas[0].s3_addr {
        Some(a) => secrets::write_secret_file(&s3_file, &format!("http://{a}"))
            .map_err(io("writing s3.url"))?,
        None => {
            let _ = std::fs::remove_file(&s3_file);
        }
    }
    Ok(DevCloud {
        replicas,
        agents,
        api_url,
        admin_token_file,
        admin_token: admin,
        join_token,
        join_tokens,
    })
}

impl DevCloud {
    /// Stops agents, then replicas.
    pub async fn shutdown(self) {
        for a in self.agents {
            a.shutdown().await;
        }
        for r in self.replicas.into_iter().rev() {
            r.shutdown().await;
        }
    }
}
