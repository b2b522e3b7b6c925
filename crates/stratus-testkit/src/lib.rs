//! An in-process cluster sandbox.
//!
//! **Owns** the in-process cluster used by integration tests. **Does not
//! own** any product behaviour: nothing but dev-dependencies may use it.
//!
//! [`Cluster::start`] runs N control replicas and M agents inside the test
//! process, each with its own identity, data directory (in a temporary
//! folder), QUIC endpoint on loopback and, for replicas, HTTP API — the same
//! code paths as `stratus dev`, with short timeouts so failure detection is
//! quick. Members can be stopped and started again from their data
//! directories to exercise restarts, failover and catch-up. Tests that need
//! `kill -9` use the real binary instead (see `stratus-cli/tests`).
//!
//! [`netns::NatLab`] builds network namespaces wired as a public segment and
//! homes behind NATs, for tests that run the real binary where replicas
//! cannot reach the nodes.
//!
//! Logs are off; `STRATUS_TEST_LOG=<filter>` (e.g. `info` or
//! `stratus_agent=debug`) prints the members' logs, timestamped, with the
//! test's output.

pub mod liar;
pub mod netns;
pub mod wasm_padding;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use stratus_control::Control;
use stratus_node::dev::{DevCloud, DevConfig};
use stratus_node::Running;
use stratus_state::{Command, Instance};
use stratus_types::{NodeStatus, ADMIN_TENANT};

/// Installs a log subscriber once per test process when `STRATUS_TEST_LOG`
/// is set (see the crate docs).
fn init_logs() {
    if let Ok(filter) = std::env::var("STRATUS_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The piece-service address agents restarted "behind a NAT" advertise
/// ([`Cluster::restart_agent_behind_nat`]): nothing answers there.
pub const NAT_ADDR: &str = "127.0.0.1:9";

/// Default bound of [`wait_until`].
pub const WAIT: Duration = Duration::from_secs(30);

/// Settings of a sandbox cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Control replicas.
    pub replicas: usize,
    /// Agents.
    pub agents: usize,
    /// Heartbeat interval given to agents.
    pub heartbeat_interval: Duration,
    /// Silence after which a node is lost.
    pub node_lost_after: Duration,
    /// Snapshot every this many log entries.
    pub snapshot_every: u64,
    /// Bytes each agent lends for pieces (0: no storage role).
    pub storage_capacity: u64,
    /// Object store settings.
    pub store: stratus_store::StoreConfig,
    /// Serve the S3 gateway on every replica (on any free port; see
    /// [`Cluster::s3_url`]).
    pub s3: bool,
    /// Time between two storage billings (`None`: the default, an hour).
    pub storage_billing_every: Option<Duration>,
}

impl Options {
    /// `replicas` replicas and `agents` agents with test-friendly timeouts.
    pub fn new(replicas: usize, agents: usize) -> Self {
        Options {
            replicas,
            agents,
            heartbeat_interval: Duration::from_millis(200),
            node_lost_after: Duration::from_millis(1500),
            snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
            storage_capacity: 1 << 30,
            store: stratus_store::StoreConfig {
                // Small packs and chunks, so small test objects span many stripes.
                pack_bytes: 256 << 10,
                chunker: stratus_chunk::ChunkerParams {
                    min: 16 << 10,
                    avg: 32 << 10,
                    max: 64 << 10,
                },
                call_timeout: Duration::from_secs(5),
                // Maintenance is driven by the tests.
                repair_interval: Duration::from_millis(200),
                scrub_interval: Duration::from_secs(3600),
                gc_interval: Duration::from_secs(3600),
                // No upload is in flight when tests collect garbage.
                gc_grace: Duration::ZERO,
                ..Default::default()
            },
            s3: false,
            storage_billing_every: None,
        }
    }
}

/// A running sandbox cluster. Members are `None` while stopped.
pub struct Cluster {
    /// Configuration shared with `stratus dev`.
    pub cfg: DevConfig,
    /// Replicas by index.
    pub replicas: Vec<Option<Running>>,
    /// Agents by index.
    pub agents: Vec<Option<Running>>,
    /// Admin API token.
    pub admin_token: String,
    /// The cluster's default join credential (owner: the admin tenant).
    pub join_token: String,
    /// Each agent's join credential (of its lender, `lender-<j>`).
    pub join_tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// Starts a cluster with `opts`.
    pub async fn start(opts: Options) -> Result<Cluster> {
        init_logs();
        let dir = tempfile::tempdir()?;
        let cfg = DevConfig {
            data_dir: dir.path().to_path_buf(),
            replicas: opts.replicas,
            nodes: opts.agents,
            base_port: stratus_node::dev::free_port_run(opts.replicas)?,
            api_port: stratus_node::dev::free_port_run(opts.replicas)?,
            heartbeat_interval: opts.heartbeat_interval,
            node_lost_after: opts.node_lost_after,
            snapshot_every: opts.snapshot_every,
            storage_capacity: opts.storage_capacity,
            store: opts.store.clone(),
            s3_port: opts.s3.then_some(0),
            ingress_port: Some(0),
            storage_billing_every: opts.storage_billing_every,
        };
        let DevCloud {
            replicas,
            agents,
            admin_token,
            join_token,
            join_tokens,
            ..
        } = stratus_node::dev::start(cfg.clone())
            .await
            .context("starting the sandbox")?;
        Ok(Cluster {
            cfg,
            replicas: replicas.into_iter().map(Some).collect(),
            agents: agents.into_iter().map(Some).collect(),
            admin_token,
            join_token,
            join_tokens,
            _dir: dir,
        })
    }

    /// The control handle of running replica `i`.
    pub fn control(&self, i: usize) -> Result<Control> {
        self.replicas
            .get(i)
            .and_then(|r| r.as_ref())
            .and_then(|r| r.control.clone())
            .ok_or_else(|| anyhow!("replica {i} is not running"))
    }

    /// Base URL of running replica `i`'s API.
    pub fn api_url(&self, i: usize) -> Result<String> {
        let r = self
            .replicas
            .get(i)
            .and_then(|r| r.as_ref())
            .ok_or_else(|| anyhow!("replica {i} is not running"))?;
        Ok(format!(
            "http://{}",
            r.api_addr.ok_or_else(|| anyhow!("no API"))?
        ))
    }

    /// URL of replica `i`'s S3 gateway (with [`Options::s3`]).
    pub fn s3_url(&self, i: usize) -> Result<String> {
        let addr = self
            .replicas
            .get(i)
            .and_then(|r| r.as_ref())
            .and_then(|r| r.s3_addr)
            .ok_or_else(|| anyhow!("replica {i} is stopped or serves no S3"))?;
        Ok(format!("http://{addr}"))
    }

    /// Index of the running replica that leads, waiting for an election.
    pub async fn leader(&self) -> Result<usize> {
        wait_until("a leader", WAIT, || async {
            self.replicas.iter().enumerate().find_map(|(i, r)| {
                r.as_ref()
                    .and_then(|r| r.control.as_ref())
                    .filter(|c| c.is_leader())
                    .map(|_| i)
            })
        })
        .await
    }

    /// Stops replica `i` (ordered shutdown; its data stays).
    pub async fn stop_replica(&mut self, i: usize) -> Result<()> {
        let r = self
            .replicas
            .get_mut(i)
            .and_then(|r| r.take())
            .ok_or_else(|| anyhow!("replica {i} is not running"))?;
        r.shutdown().await;
        Ok(())
    }

    /// Starts replica `i` again from its data directory.
    pub async fn start_replica(&mut self, i: usize) -> Result<()> {
        let r = stratus_node::start(self.cfg.replica(i)?).await?;
        self.replicas[i] = Some(r);
        Ok(())
    }

    /// Stops agent `j`.
    pub async fn stop_agent(&mut self, j: usize) -> Result<()> {
        let a = self
            .agents
            .get_mut(j)
            .and_then(|a| a.take())
            .ok_or_else(|| anyhow!("agent {j} is not running"))?;
        a.shutdown().await;
        Ok(())
    }

    /// Starts agent `j` again (same identity).
    pub async fn start_agent(&mut self, j: usize) -> Result<()> {
        let credential = self.join_tokens.get(j).unwrap_or(&self.join_token);
        let a = stratus_node::start(self.cfg.agent(j, credential)?).await?;
        self.agents[j] = Some(a);
        Ok(())
    }

    /// Starts agent `j` again (same identity) advertising its piece service
    /// at [`NAT_ADDR`], where nothing answers: like a node behind a NAT, it
    /// lends disk only over the piece links it dials to the replicas.
    pub async fn restart_agent_behind_nat(&mut self, j: usize) -> Result<()> {
        self.restart_agent_changed(j, None, |a| {
            if let Some(st) = a.storage.as_mut() {
                st.advertise = Some(NAT_ADDR.into());
            }
        })
        .await
    }

    /// Starts agent `j` again (same identity) at `site`, running workloads
    /// with `executor` (such as a [`liar::Liar`]).
    pub async fn restart_agent_with(
        &mut self,
        j: usize,
        site: &str,
        executor: Option<std::sync::Arc<dyn stratus_runtime::DynExecutor>>,
    ) -> Result<()> {
        self.restart_agent_changed(j, executor, |a| a.attributes.site = site.to_string())
            .await
    }

    /// Starts agent `j` again (same identity; stopped first if running)
    /// with its dev configuration changed by `change`, running workloads
    /// with `executor` (the default sandbox when `None`).
    async fn restart_agent_changed(
        &mut self,
        j: usize,
        executor: Option<std::sync::Arc<dyn stratus_runtime::DynExecutor>>,
        change: impl FnOnce(&mut stratus_node::AgentRole),
    ) -> Result<()> {
        if self.agents.get(j).is_some_and(Option::is_some) {
            self.stop_agent(j).await?;
        }
        let credential = self.join_tokens.get(j).unwrap_or(&self.join_token);
        let mut cfg = self.cfg.agent(j, credential)?;
        if let Some(a) = cfg.agent.as_mut() {
            change(a);
        }
        self.agents[j] = Some(stratus_node::start_with(cfg, executor).await?);
        Ok(())
    }

    /// The object store of running replica `i`.
    pub fn store(&self, i: usize) -> Result<stratus_store::Store> {
        self.replicas
            .get(i)
            .and_then(|r| r.as_ref())
            .and_then(|r| r.store.clone())
            .ok_or_else(|| anyhow!("replica {i} is not running"))
    }

    /// Data directory of agent `j`.
    pub fn agent_dir(&self, j: usize) -> std::path::PathBuf {
        self.cfg.data_dir.join(format!("node-{j}"))
    }

    /// Node id of agent `j` (running or not: read from its key file).
    pub fn agent_id(&self, j: usize) -> Result<stratus_types::NodeId> {
        match self.agents.get(j).and_then(|a| a.as_ref()) {
            Some(a) => Ok(a.node_id),
            None => bail!("agent {j} is not running"),
        }
    }

    /// Waits until replica `i` sees `count` nodes with `status`.
    pub async fn wait_nodes(&self, i: usize, status: NodeStatus, count: usize) -> Result<()> {
        let c = self.control(i)?;
        wait_until(&format!("{count} {status} nodes"), WAIT, || async {
            let n = c
                .state()
                .read(|s| s.nodes.values().filter(|n| n.status == status).count());
            (n == count).then_some(())
        })
        .await
    }

    /// Stops everything: agents first, then replicas.
    pub async fn shutdown(mut self) {
        for a in self.agents.iter_mut().filter_map(|a| a.take()) {
            a.shutdown().await;
        }
        for r in self.replicas.iter_mut().rev().filter_map(|r| r.take()) {
            r.shutdown().await;
        }
    }
}

/// Creates tenant `name` and deposits `amount` for it (the operator's
/// settlement adapter), as a market test's requester needs.
pub async fn funded_tenant(c: &Control, name: &str, amount: u64) -> Result<()> {
    let now = stratus_control::now_ms();
    c.write(Command::CreateTenant {
        name: name.into(),
        now_ms: now,
    })
    .await?;
    c.write(Command::Market(
        stratus_state::accounts::MarketCommand::Deposit {
            tenant: name.into(),
            amount: stratus_market::Amount(amount),
            reference: String::new(),
            now_ms: now,
        },
    ))
    .await?;
    Ok(())
}

/// Stores `bytes` as a module uploaded by `tenant` (a tenant deploys only
/// modules it uploaded); returns its content address.
pub async fn put_module(c: &Control, tenant: &str, bytes: Vec<u8>) -> Result<String> {
    let hash = stratus_state::workloads::module_hash(&bytes);
    c.write(Command::PutTenantModule {
        tenant: tenant.into(),
        bytes,
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    Ok(hash)
}

/// Deploys the workload spec `yaml` for the admin tenant, running `module`
/// (a stored module's hash, or a pinned `image:...` reference); returns the
/// workload's id.
pub async fn deploy(c: &Control, yaml: &str, module: String) -> Result<String> {
    let spec = stratus_spec::parse(yaml, stratus_spec::Format::Yaml).map_err(|e| anyhow!("{e}"))?;
    let name = spec.name.clone();
    c.write(Command::DeployWorkload {
        tenant: ADMIN_TENANT.into(),
        spec: Box::new(spec),
        module,
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    Ok(format!("{ADMIN_TENANT}/{name}"))
}

/// The instances of `workload` in replica `c`'s state.
pub fn instances(c: &Control, workload: &str) -> Vec<Instance> {
    c.state().read(|s| {
        s.instances
            .values()
            .filter(|i| i.workload == workload)
            .cloned()
            .collect()
    })
}

/// Creates bucket `name` of `tenant` (versioned, deduplicated within
/// `scope`) through replica `c`.
pub async fn create_bucket(
    c: &Control,
    tenant: &str,
    name: &str,
    scope: stratus_state::objects::DedupeScope,
) -> Result<()> {
    use stratus_state::objects::{Bucket, StoreCommand, Versioning};
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: name.into(),
            tenant: tenant.into(),
            profile: None,
            scope,
            versioning: Versioning::Enabled,
            created_ms: stratus_control::now_ms(),
        },
    }))
    .await?;
    Ok(())
}

/// Waits until the cluster's storage secret is set and this replica holds
/// the key that opens it (the object store is usable from then on).
pub async fn wait_storage_secret(c: &Control) -> Result<()> {
    wait_until("the storage secret", WAIT, || async {
        (c.state().read(|s| s.store.secret.is_some()) && c.kek().is_some()).then_some(())
    })
    .await
}

/// Bytes of the files under `dir` (0 when it does not exist).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The files under `dir` (recursively) whose bytes contain `needle`: what
/// a copy of a node's disk would reveal.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                out.push(p);
            }
        }
    }
    out
}

/// `len` bytes that neither compress nor dedupe away (xorshift from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The error code of a refusal (`None` for any other answer).
pub fn code_of(r: &stratus_proto::Response) -> Option<stratus_types::ErrorCode> {
    match r {
        stratus_proto::Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

/// A raw QUIC connection to `addr` as `identity` (dial-only, as agents
/// are), for tests that play a node or a stranger.
pub async fn dial_as(
    identity: &stratus_net::Identity,
    addr: &str,
) -> Result<stratus_net::Connection> {
    let ep = stratus_net::Endpoint::dial_only(identity, "127.0.0.1:0".parse()?).await?;
    Ok(ep.connect(addr.parse()?, None).await?)
}
