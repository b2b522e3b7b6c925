//! Long-running commands: `dev`, `server`, `node`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use stratus_node::config::FileConfig;
use stratus_node::dev::DevConfig;
use stratus_node::hostname;
use stratus_node::{
    AgentRole, NodeConfig, ServerRole, StorageRole, DEFAULT_API_PORT, DEFAULT_QUIC_PORT,
};
use stratus_types::{Attributes, EnergySource};

use crate::Global;

/// Data directory of `server` and `node` when none is given.
const DEFAULT_DATA_DIR: &str = "/var/lib/stratus";

/// Arguments of `stratus dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Number of agents (lending nodes)
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Number of control-plane replicas (1 for a lab, 3 or 5 to tolerate failures)
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// QUIC port of replica 0 (replica i uses PORT+i)
    #[arg(long, default_value_t = DEFAULT_QUIC_PORT)]
    port: u16,
    /// API port of replica 0 (replica i uses PORT+i)
    #[arg(long, default_value_t = DEFAULT_API_PORT)]
    api_port: u16,
    /// Seconds without heartbeat after which a node is marked lost
    #[arg(long, default_value_t = 10)]
    node_lost_after: u64,
    /// Space each node lends for object pieces (0 = no storage)
    #[arg(long, default_value = "10GiB")]
    storage_capacity: String,
    /// S3 port of replica 0 (replica i uses PORT+i; 0 = no S3 gateway)
    #[arg(long, default_value_t = 7480)]
    s3_port: u16,
    /// Ingress port of replica 0 (replica i uses PORT+i; 0 = no ingress):
    /// HTTP requests routed by Host header to the services whose spec says
    /// `expose: { http: { host: NAME } }`
    #[arg(long, default_value_t = 7490)]
    ingress_port: u16,
    /// Run the nodes inside this process instead of one `stratus node`
    /// process each (processes can be stopped one by one: see DATA/node-N/pid)
    #[arg(long)]
    in_process: bool,
    /// Seconds in a lifecycle-rule "day" (default 86400; e.g. 10 to try
    /// rules out, as ceph/s3-tests expects)
    #[arg(long)]
    lifecycle_day_secs: Option<u64>,
}

/// Arguments of `stratus server`.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Configuration file (TOML, `version = 1`)
    #[arg(long, env = "STRATUS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (identity, Raft log and state, secrets) [default: /var/lib/stratus]
    #[arg(long, env = "STRATUS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Name shown to operators [default: host name]
    #[arg(long, env = "STRATUS_NAME")]
    name: Option<String>,
    /// QUIC listen address for node-to-node traffic [default: 0.0.0.0:7400]
    #[arg(long, env = "STRATUS_LISTEN")]
    listen: Option<String>,
    /// Address other replicas and agents dial [default: the listen address]
    #[arg(long, env = "STRATUS_ADVERTISE")]
    advertise: Option<String>,
    /// HTTP API listen address [default: 127.0.0.1:7420]
    #[arg(long = "api-listen", env = "STRATUS_API_LISTEN")]
    api_listen: Option<String>,
    /// S3 gateway listen address, IP:PORT (e.g. 0.0.0.0:7480) [default: no S3 gateway]
    #[arg(long = "s3-listen", env = "STRATUS_S3_LISTEN")]
    s3_listen: Option<String>,
    /// Ingress listen address, IP:PORT (e.g. 0.0.0.0:80): HTTP requests routed by Host header
    /// to the services exposed as that host, wherever they run [default: no ingress]
    #[arg(long = "ingress-listen", env = "STRATUS_INGRESS_LISTEN")]
    ingress_listen: Option<String>,
    /// Do not start a new cluster; wait to be added with `stratus replicas add`
    #[arg(long, env = "STRATUS_NO_BOOTSTRAP")]
    no_bootstrap: bool,
    /// With --no-bootstrap: a replica of the cluster to join, ID@HOST:PORT (its node id and QUIC
    /// address). Until added, this replica accepts Raft messages only from it and the members it lists
    #[arg(long, env = "STRATUS_JOIN")]
    join: Option<String>,
    /// Agents' heartbeat interval in milliseconds [default: 2000]
    #[arg(long, env = "STRATUS_HEARTBEAT_INTERVAL_MS")]
    heartbeat_interval_ms: Option<u64>,
    /// Silence (ms) after which a node is marked lost [default: 10000]
    #[arg(long, env = "STRATUS_NODE_LOST_AFTER_MS")]
    node_lost_after_ms: Option<u64>,
    /// Snapshot the state and compact the log every N entries [default: 5000]
    #[arg(long, env = "STRATUS_SNAPSHOT_EVERY")]
    snapshot_every: Option<u64>,
    /// Refuse writes that add data while the Raft log's disk has less free space than this (e.g. 2GiB) [default: 1 GiB, at most 5% of the disk]
    #[arg(long, env = "STRATUS_MIN_FREE")]
    min_free: Option<String>,
    /// Page cache of the replicated state, e.g. 256MiB (at least 4MiB); the state may be far larger: what is not cached is read from its file [default: 64MiB]
    #[arg(long, env = "STRATUS_STATE_CACHE")]
    state_cache: Option<String>,
}

/// Arguments of `stratus node`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    /// Manage a node instead of running one
    #[command(subcommand)]
    pub action: Option<NodeAction>,
    /// Configuration file (TOML, `version = 1`)
    #[arg(long, env = "STRATUS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: /var/lib/stratus]
    #[arg(long, env = "STRATUS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Name shown to operators [default: host name]
    #[arg(long, env = "STRATUS_NAME")]
    name: Option<String>,
    /// Control replica to dial, HOST:PORT (repeat for failover)
    #[arg(long = "control", env = "STRATUS_CONTROL", value_delimiter = ',')]
    control: Vec<String>,
    /// Join credential, stj_<id>_<secret>_<pin>: from `stratus nodes join-token create`, or the
    /// join.token file in the bootstrap replica's data directory. It also pins the cluster: it is
    /// sent only to a replica that proves it belongs to it
    #[arg(long, env = "STRATUS_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// File holding the join credential
    #[arg(long, env = "STRATUS_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// Region (coarse failure domain)
    #[arg(long, env = "STRATUS_REGION")]
    region: Option<String>,
    /// Site (fine failure domain)
    #[arg(long, env = "STRATUS_SITE")]
    site: Option<String>,
    /// Latitude in degrees
    #[arg(long, env = "STRATUS_LATITUDE", allow_negative_numbers = true)]
    latitude: Option<f64>,
    /// Longitude in degrees
    #[arg(long, env = "STRATUS_LONGITUDE", allow_negative_numbers = true)]
    longitude: Option<f64>,
    /// Energy source: grid, solar, wind, hydro, nuclear, fossil, battery
    #[arg(long, env = "STRATUS_ENERGY")]
    energy: Option<String>,
    /// Label KEY=VALUE (repeatable)
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Lend disk space for object pieces, and let the control replicas also
    /// dial the piece service at this QUIC address, IP:PORT (without it, or
    /// behind a NAT, they reach it over the links it dials to them)
    #[arg(long, env = "STRATUS_STORAGE_LISTEN")]
    storage_listen: Option<String>,
    /// Address the control replicas dial for pieces when the node has no
    /// link to them [default: the storage listen address]
    #[arg(long, env = "STRATUS_STORAGE_ADVERTISE")]
    storage_advertise: Option<String>,
    /// Lend this much disk space for object pieces, e.g. 500GiB [default
    /// with --storage-listen: 10GiB]
    #[arg(long, env = "STRATUS_STORAGE_CAPACITY")]
    storage_capacity: Option<String>,
    /// Do not run container images here, only WASM (container images need
    /// root, cgroups and FUSE; without them the node turns them off itself)
    #[arg(long, env = "STRATUS_NO_CONTAINERS")]
    no_containers: bool,
    /// Host ports published container ports may use, FIRST-LAST (ports
    /// below 1024 only if the range names them) [default: 20000-29999]
    #[arg(long, env = "STRATUS_PORTS", value_name = "FIRST-LAST")]
    ports: Option<stratus_types::PortRange>,
    /// Host uid and gid of container root: containers run in user
    /// namespaces mapping their ids 0-65535 onto FIRST.., so root in a
    /// container is no user of this machine; `off` runs container root as
    /// host root (confined by capabilities, seccomp and namespaces). Keep
    /// the range clear of /etc/subuid [default: 1000000000]
    #[arg(long, env = "STRATUS_USERNS", value_name = "FIRST|off", value_parser = parse_userns)]
    userns: Option<Userns>,
    /// Where containers may connect: `internet` (everything except private
    /// ranges, link-local addresses such as cloud metadata services, and
    /// this machine's own addresses) or `none`. Containers reach their
    /// tenant's services by name either way [default: internet]
    #[arg(long, env = "STRATUS_EGRESS", value_name = "internet|none")]
    egress: Option<String>,
    /// Ranges containers may reach although the default denies them
    /// (comma-separated CIDRs or addresses, e.g. a NAS at 192.168.1.50);
    /// this machine's own addresses stay closed whatever it says
    #[arg(long, env = "STRATUS_EGRESS_ALLOW", value_name = "CIDR,...")]
    egress_allow: Vec<String>,
    /// Ranges containers may never reach (comma-separated CIDRs or
    /// addresses); wins over --egress-allow
    #[arg(long, env = "STRATUS_EGRESS_DENY", value_name = "CIDR,...")]
    egress_deny: Vec<String>,
    /// This node's prices, set when it registers: comma-separated
    /// KEY=AMOUNT of cpu-second, memory-gib-hour, storage-gib-month,
    /// egress-gib and per-task, in the pool's smallest unit (a key left out
    /// costs nothing), e.g. `cpu-second=1000,per-task=100`. Without it the
    /// node keeps the offer its owner set with `stratus nodes offer`
    #[arg(long, env = "STRATUS_PRICE", value_name = "KEY=AMOUNT,...")]
    price: Option<String>,
    /// When this node takes work (with --price), weekly UTC windows, e.g.
    /// "mon-fri 18:00-08:00, sat-sun" [default: always]
    #[arg(long, env = "STRATUS_AVAILABLE", requires = "price")]
    available: Option<String>,
    /// Exit once process PID is no longer this process's parent (used by
    /// `stratus dev`, which passes its own pid: a node started after its
    /// parent already died exits too)
    #[arg(long, hide = true, value_name = "PID")]
    parent_pid: Option<u32>,
}

/// `stratus node <action>`.
#[derive(clap::Subcommand, Debug)]
pub enum NodeAction {
    /// Move every instance off a node and place nothing new there (admin)
    Drain {
        /// Node id, unique id prefix, or name
        id: String,
        /// Make the node eligible again
        #[arg(long)]
        undo: bool,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("label {s:?} must read KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("label {s:?} has an empty key"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `--userns`: the host uid of container root, or `None` for `off`.
#[derive(Clone, Copy, Debug)]
struct Userns(Option<u32>);

fn parse_userns(s: &str) -> Result<Userns, String> {
    if s == "off" {
        return Ok(Userns(None));
    }
    let first: u32 = s
        .parse()
        .map_err(|_| format!("{s:?}: expected a host uid (e.g. 1000000000) or `off`"))?;
    // Ids below 65,536 are the host's own users; the range must also fit.
    if first < 65_536 || first.checked_add(65_536).is_none() {
        return Err(format!(
            "{first}: container ids need 65,536 host ids from at least 65536 up to 4294901759"
        ));
    }
    Ok(Userns(Some(first)))
}

fn load_file(path: Option<&Path>) -> Result<FileConfig> {
    match path {
        Some(p) => Ok(FileConfig::load(p)?),
        None => Ok(FileConfig {
            version: stratus_node::config::CONFIG_VERSION,
            ..FileConfig::default()
        }),
    }
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .with_context(|| format!("{what} {s:?} is not an address of the form IP:PORT"))
}

/// `--join ID@HOST:PORT`: a replica of the cluster to join.
/// Smallest state page cache accepted: below it every query reads the file.
const MIN_STATE_CACHE: u64 = 4 << 20;

fn parse_state_cache(s: &str) -> Result<u64> {
    let bytes = stratus_node::config::parse_size(s).map_err(anyhow::Error::msg)?;
    if bytes < MIN_STATE_CACHE {
        bail!("{s} is below the smallest state cache, 4MiB");
    }
    Ok(bytes)
}

fn parse_join(s: &str) -> Result<stratus_proto::Peer> {
    let (id, addr) = s.split_once('@').with_context(|| {
        format!("--join {s:?}: expected ID@HOST:PORT (a replica's node id and QUIC address)")
    })?;
    let id = id
        .parse()
        .map_err(|e| anyhow::anyhow!("--join {s:?}: {id:?} is not a node id: {e}"))?;
    if addr.is_empty() {
        anyhow::bail!("--join {s:?}: no HOST:PORT after '@'");
    }
    Ok(stratus_proto::Peer {
        id,
        addr: addr.to_string(),
    })
}

/// The dev cloud's folder.
pub fn dev_dir(g: &Global) -> PathBuf {
    g.dev_dir.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".stratus")
            .join("dev")
    })
}

/// SIGINT and SIGTERM handlers, installed before anything announces it is
/// up, so a signal never finds the process without them.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }

    /// Waits for the first signal; a second one exits at once.
    async fn wait_for_shutdown(mut self) {
        self.recv().await;
        eprintln!("shutting down (press Ctrl-C again to exit at once)");
        tokio::spawn(async move {
            self.recv().await;
            std::process::exit(130);
        });
    }
}

/// `stratus dev`.
pub async fn dev(g: &Global, a: DevArgs) -> Result<()> {
    let signals = Signals::install()?;
    let dir = dev_dir(g);
    eprintln!(
        "starting a local cloud in {} ({} replica(s), {} node(s))",
        dir.display(),
        a.replicas,
        a.nodes
    );
    let storage_capacity = stratus_node::config::parse_size(&a.storage_capacity)
        .map_err(|m| anyhow!("--storage-capacity: {m}"))?;
    let cfg = DevConfig {
        data_dir: dir.clone(),
        replicas: a.replicas,
        nodes: if a.in_process { a.nodes } else { 0 },
        base_port: a.port,
        api_port: a.api_port,
        heartbeat_interval: Duration::from_secs(1),
        node_lost_after: Duration::from_secs(a.node_lost_after),
        snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
        storage_capacity,
        store: retention(None, None, a.lifecycle_day_secs, Default::default()),
        s3_port: (a.s3_port != 0).then_some(a.s3_port),
        ingress_port: (a.ingress_port != 0).then_some(a.ingress_port),
        storage_billing_every: None,
    };
    let cloud = stratus_node::dev::start(cfg.clone())
        .await
        .context("starting the local cloud")?;
    let children = if a.in_process {
        Vec::new()
    } else {
        spawn_dev_nodes(&cfg, &cloud, a.nodes, &a.storage_capacity).await?
    };
    if let Some(control) = cloud.replicas.first().and_then(|r| r.control.clone()) {
        stratus_node::dev::price_dev_nodes(&control, a.nodes, Duration::from_secs(60))
            .await
            .context("giving the dev nodes their default offer")?;
    }
    println!("Stratus local cloud is up.");
    println!("  API:          {}", cloud.api_url);
    println!("  admin token:  {}", cloud.admin_token_file.display());
    println!("  data:         {}", dir.display());
    for (i, r) in cloud.replicas.iter().enumerate() {
        println!(
            "  replica-{i}:    {} (quic {}, api {})",
            r.node_id.short(),
            r.quic_addr,
            r.api_addr.map(|a| a.to_string()).unwrap_or_default()
        );
    }
    for (i, r) in cloud.replicas.iter().enumerate() {
        if let Some(s3) = r.s3_addr {
            println!("  S3 (replica-{i}): http://{s3}");
        }
        if let Some(ingress) = r.ingress_addr {
            println!("  ingress (replica-{i}): http://{ingress}");
        }
    }
    for (j, c) in &children {
        println!(
            "  node-{j}:       pid {} (log {})",
            c.id().unwrap_or_default(),
            dir.join(format!("node-{j}/node.log")).display()
        );
    }
    println!();
    println!("In another terminal (the CLI finds this cloud by itself):");
    println!("  stratus status");
    println!("  stratus nodes ls");
    if let Some(s3) = cloud.replicas.first().and_then(|r| r.s3_addr) {
        println!("  stratus s3 keys create     # S3 access key for aws/rclone/s3cmd/boto3");
        println!("  aws --endpoint-url http://{s3} s3 ls");
    }
    println!("Or from elsewhere:");
    println!(
        "  export STRATUS_API={} STRATUS_TOKEN=$(cat {})",
        cloud.api_url,
        cloud.admin_token_file.display()
    );
    println!(
        "Press Ctrl-C to stop; the state is kept in {} for the next start.",
        dir.display()
    );
    signals.wait_for_shutdown().await;
    stop_dev_nodes(children).await;
    cloud.shutdown().await;
    Ok(())
}

/// Starts the dev cloud's nodes as `stratus node` processes (each exits
/// with this one) and waits until they have registered.
async fn spawn_dev_nodes(
    cfg: &DevConfig,
    cloud: &stratus_node::dev::DevCloud,
    n: usize,
    storage_capacity: &str,
) -> Result<Vec<(usize, tokio::process::Child)>> {
    let exe = std::env::current_exe().context("locating the stratus binary")?;
    let token_file = cfg.data_dir.join("join.token");
    stratus_control::secrets::write_secret_file(&token_file, &cloud.join_token)
        .context("writing join.token")?;
    let control = cfg.control_addrs()?.join(",");
    let first = cloud.replicas[0]
        .control
        .clone()
        .ok_or_else(|| anyhow!("replica 0 has no control role"))?;
    let mut children = Vec::new();
    let banned = |j: usize| {
        let name = format!("dev-node-{j}");
        first
            .state()
            .read(|s| s.nodes.values().any(|r| r.banned && r.info.name == name))
    };
    for j in 0..n {
        if banned(j) {
            println!(
                "dev-node-{j} is banned (stratus nodes ban): not started; delete {} to join it again as a new node",
                cfg.data_dir.join(format!("node-{j}")).display()
            );
            continue;
        }
        // Each node is lent by its own tenant, `lender-<j>`.
        stratus_node::dev::lender_credential(&first, &cfg.data_dir, j)
            .await
            .with_context(|| format!("making the join credential of node {j}"))?;
        let token_file = stratus_node::dev::lender_credential_path(&cfg.data_dir, j);
        let dir = cfg.data_dir.join(format!("node-{j}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("node.log"))
            .context("opening node.log")?;
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("node")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--name", &format!("dev-node-{j}")])
            .args(["--control", &control])
            .arg("--join-token-file")
            .arg(&token_file)
            .args([
                "--region",
                "local",
                "--site",
                &stratus_node::dev::dev_site(j),
            ])
            .args(["--energy", "grid", "--label", "dev=true"])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().context("opening node.log")?)
            .stderr(log);
        if cfg.storage_capacity > 0 {
            cmd.args([
                "--storage-listen",
                "127.0.0.1:0",
                "--storage-capacity",
                storage_capacity,
            ]);
        }
        let child = cmd.spawn().context("starting a node process")?;
        if let Some(pid) = child.id() {
            std::fs::write(dir.join("pid"), format!("{pid}\n")).context("writing the pid file")?;
        }
        children.push((j, child));
    }
    // Ready when every node has registered.
    let control = cloud.replicas[0]
        .control
        .clone()
        .ok_or_else(|| anyhow!("replica 0 has no control role"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let n = children.len();
    loop {
        let ready = control.state().read(|s| {
            children
                .iter()
                .map(|(j, _)| *j)
                .filter(|j| {
                    let name = format!("dev-node-{j}");
                    s.nodes.values().any(|r| {
                        r.info.name == name && r.status == stratus_types::NodeStatus::Ready
                    })
                })
                .count()
        });
        if ready == n {
            break;
        }
        for (j, c) in children.iter_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                bail!(
                    "node {j} exited at start ({status}); see {}",
                    cfg.data_dir.join(format!("node-{j}/node.log")).display()
                );
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("only {ready} of {n} nodes registered within 60 s; see DATA/node-*/node.log");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(children)
}

/// Stops the dev node processes (SIGTERM, then SIGKILL after 10 s).
async fn stop_dev_nodes(children: Vec<(usize, tokio::process::Child)>) {
    for (_, c) in &children {
        if let Some(pid) = c.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for (j, mut c) in children {
        match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {j} did not stop within 10 s; killing it");
                let _ = c.kill().await;
            }
        }
    }
}

/// `stratus server`.
pub async fn server(_g: &Global, a: ServerArgs) -> Result<()> {
    let signals = Signals::install()?;
    let f = load_file(a.config.as_deref())?;
    let data_dir = a
        .data_dir
        .or(f.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let listen = parse_addr(
        "--listen",
        &a.listen
            .or(f.server.listen)
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_QUIC_PORT}")),
    )?;
    let api = parse_addr(
        "--api-listen",
        &a.api_listen
            .or(f.server.api)
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_API_PORT}")),
    )?;
    let s3 = a
        .s3_listen
        .or(f.server.s3)
        .map(|s| parse_addr("--s3-listen", &s))
        .transpose()?;
    let ingress = a
        .ingress_listen
        .or(f.server.ingress)
        .map(|s| parse_addr("--ingress-listen", &s))
        .transpose()?;
    let advertise = a.advertise.or(f.server.advertise);
    if advertise.is_none() && listen.ip().is_unspecified() {
        tracing::warn!("listening on {listen} without --advertise: other replicas will be told an unspecified address; set --advertise HOST:PORT for multi-replica clusters");
    }
    let cfg = NodeConfig {
        data_dir: data_dir.clone(),
        name: a.name.or(f.name).unwrap_or_else(hostname),
        server: Some(ServerRole {
            listen,
            advertise,
            api,
            bootstrap: !a.no_bootstrap && f.server.bootstrap.unwrap_or(true),
            heartbeat_interval: Duration::from_millis(
                a.heartbeat_interval_ms
                    .or(f.server.heartbeat_interval_ms)
                    .unwrap_or(2000),
            ),
            node_lost_after: Duration::from_millis(
                a.node_lost_after_ms
                    .or(f.server.node_lost_after_ms)
                    .unwrap_or(10_000),
            ),
            snapshot_every: a
                .snapshot_every
                .or(f.server.snapshot_every)
                .unwrap_or(stratus_control::DEFAULT_SNAPSHOT_EVERY),
            store: retention(
                f.server.task_retention_secs,
                f.server.upload_expiry_secs,
                f.server.lifecycle_day_secs,
                stratus_store::StoreConfig::default(),
            ),
            s3,
            ingress,
            join: a.join.as_deref().map(parse_join).transpose()?,
            min_free_bytes: a
                .min_free
                .or(f.server.min_free)
                .map(|s| stratus_node::config::parse_size(&s).map_err(anyhow::Error::msg))
                .transpose()
                .context("--min-free")?,
            state_cache_bytes: a
                .state_cache
                .or(f.server.state_cache)
                .map(|s| parse_state_cache(&s))
                .transpose()
                .context("--state-cache")?,
            storage_billing_every: f.server.storage_billing_secs.map(Duration::from_secs),
        }),
        agent: None,
        cluster_name: "stratus".into(),
    };
    let running = stratus_node::start(cfg)
        .await
        .context("starting the control replica")?;
    let api_url = running
        .api_addr
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!(
        "stratus server: node {} quic {} api {}",
        running.node_id, running.quic_addr, api_url
    );
    if let Some(s3) = running.s3_addr {
        println!("S3 gateway: http://{s3} (access keys: stratus s3 keys create)");
    }
    println!(
        "admin token (once bootstrapped): {}",
        data_dir
            .join("control")
            .join(stratus_control::ADMIN_TOKEN_FILE)
            .display()
    );
    println!(
        "join token (once bootstrapped):  {}",
        data_dir
            .join("control")
            .join(stratus_control::JOIN_TOKEN_FILE)
            .display()
    );
    signals.wait_for_shutdown().await;
    running.shutdown().await;
    Ok(())
}

/// `stratus node`.
pub async fn node(_g: &Global, a: NodeArgs) -> Result<()> {
    let signals = Signals::install()?;
    let f = load_file(a.config.as_deref())?;
    let data_dir = a
        .data_dir
        .or(f.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let control = if a.control.is_empty() {
        f.agent.control.unwrap_or_default()
    } else {
        a.control
    };
    if control.is_empty() {
        bail!("no control replica given: pass --control HOST:PORT (or [agent] control = [...] in the config file)");
    }
    let token_file = a.join_token_file.or(f.agent.join_token_file);
    let join_token = match (a.join_token.or(f.agent.join_token), token_file) {
        (Some(t), _) => t,
        (None, Some(p)) => std::fs::read_to_string(&p)
            .with_context(|| format!("reading the join token file {}", p.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!("no join token: pass --join-token or --join-token-file (the file join.token in the bootstrap replica's data directory)"),
    };
    let energy: EnergySource = a
        .energy
        .or(f.agent.energy)
        .map(|e| e.parse::<EnergySource>().map_err(|m| anyhow!(m)))
        .transpose()?
        .unwrap_or_default();
    let mut labels = f.agent.labels.unwrap_or_default();
    labels.extend(a.labels);
    let capacity = a.storage_capacity.or(f.storage.capacity);
    // Lending disk needs no reachable port: any local one will do.
    let listen = a
        .storage_listen
        .or(f.storage.listen)
        .or_else(|| capacity.is_some().then(|| "0.0.0.0:0".to_string()));
    let storage = match listen {
        Some(listen) => Some(StorageRole {
            listen: parse_addr("--storage-listen", &listen)?,
            advertise: a.storage_advertise.or(f.storage.advertise),
            capacity_bytes: stratus_node::config::parse_size(
                capacity.as_deref().unwrap_or("10GiB"),
            )
            .map_err(|m| anyhow!("--storage-capacity: {m}"))?,
        }),
        None => None,
    };
    let ports = match (a.ports, &f.agent.ports) {
        (Some(p), _) => p,
        (None, Some(s)) => s
            .parse::<stratus_types::PortRange>()
            .context("[agent] ports in the config file")?,
        (None, None) => stratus_types::PortRange::DEFAULT,
    };
    let userns = match (a.userns, f.agent.userns.as_deref()) {
        (Some(Userns(first)), _) => first,
        (None, Some(s)) => {
            parse_userns(s)
                .map_err(|m| anyhow!("[agent] userns in the config file: {m}"))?
                .0
        }
        (None, None) => Some(stratus_node::DEFAULT_USERNS_FIRST),
    };
    let egress = stratus_node::LenderEgress::parse(
        a.egress
            .as_deref()
            .or(f.agent.egress.as_deref())
            .unwrap_or("internet"),
        if a.egress_allow.is_empty() {
            f.agent.egress_allow.as_deref().unwrap_or_default()
        } else {
            &a.egress_allow
        },
        if a.egress_deny.is_empty() {
            f.agent.egress_deny.as_deref().unwrap_or_default()
        } else {
            &a.egress_deny
        },
    )
    .map_err(|m| anyhow!("--egress: {m}"))?;
    let offer = match a.price.or(f.agent.price) {
        Some(list) => {
            let (prices, task) =
                stratus_market::parse_price_list(&list).map_err(|e| anyhow!("--price: {e}"))?;
            let available = a.available.or(f.agent.available).unwrap_or_default();
            let availability = stratus_market::Availability::parse(&available)
                .map_err(|e| anyhow!("--available: {e}"))?;
            Some((
                stratus_market::Offer {
                    prices,
                    availability,
                },
                task,
            ))
        }
        None if a.available.is_some() || f.agent.available.is_some() => {
            bail!("--available (or [agent] available) needs --price (or [agent] price)")
        }
        None => None,
    };
    let latitude = a.latitude.or(f.agent.latitude);
    let longitude = a.longitude.or(f.agent.longitude);
    if latitude.is_some_and(|l| !(-90.0..=90.0).contains(&l))
        || longitude.is_some_and(|l| !(-180.0..=180.0).contains(&l))
    {
        bail!("latitude must be within [-90, 90] and longitude within [-180, 180]");
    }
    let cfg = NodeConfig {
        data_dir,
        name: a.name.or(f.name).unwrap_or_else(hostname),
        server: None,
        agent: Some(AgentRole {
            control,
            join_token,
            attributes: Attributes {
                region: a.region.or(f.agent.region).unwrap_or_default(),
                site: a.site.or(f.agent.site).unwrap_or_default(),
                latitude,
                longitude,
                energy,
                labels,
                ..stratus_node::local_attributes()
            },
            capacity: None,
            storage,
            containers: !a.no_containers && f.agent.containers.unwrap_or(true),
            ports,
            userns,
            egress,
            offer,
        }),
        cluster_name: "stratus".into(),
    };
    let mut running = stratus_node::start(cfg)
        .await
        .context("starting the agent")?;
    println!("stratus node: node {}", running.node_id);
    if let Some(a) = running.storage_addr {
        println!("stratus node: piece service on {a}");
    }
    let orphaned = async move {
        let Some(parent) = a.parent_pid else {
            return std::future::pending().await;
        };
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = signals.wait_for_shutdown() => {}
        _ = orphaned => eprintln!("the parent process is gone; stopping"),
        e = running.agent_failed() => {
            if let Some(e) = e {
                running.shutdown().await;
                return Err(e.into());
            }
        }
    }
    running.shutdown().await;
    Ok(())
}

/// The retention periods and lifecycle day of the `[server]` section (or
/// `stratus dev`'s flags) over `store`.
fn retention(
    task_retention_secs: Option<u64>,
    upload_expiry_secs: Option<u64>,
    lifecycle_day_secs: Option<u64>,
    mut store: stratus_store::StoreConfig,
) -> stratus_store::StoreConfig {
    if let Some(s) = task_retention_secs {
        store.task_retention = Duration::from_secs(s);
    }
    if let Some(s) = upload_expiry_secs {
        store.upload_expiry = Duration::from_secs(s);
    }
    if let Some(s) = lifecycle_day_secs {
        store = store.with_lifecycle_day(Duration::from_secs(s.max(1)));
    }
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_cache_is_a_size_of_at_least_four_mib() {
        assert_eq!(parse_state_cache("256MiB").expect("a size"), 256 << 20);
        assert_eq!(parse_state_cache("4MiB").expect("a size"), 4 << 20);
        let e = parse_state_cache("1MiB")
            .expect_err("too small")
            .to_string();
        assert!(e.contains("smallest state cache, 4MiB"), "{e}");
        assert!(parse_state_cache("lots").is_err());
    }
}
