//! `stratus bench`: measurements of this build on this machine.
//!
//! Each figure is printed beside a physical reference measured in the same
//! run, so the numbers mean something on a shared, noisy machine.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use futures::StreamExt;
use stratus_node::dev::DevConfig;
use stratus_state::Command;
use stratus_types::ADMIN_TENANT;

use crate::Global;

/// `stratus bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Control-plane commit throughput and latency (in-process replicas on loopback QUIC, real disk)
    Control {
        /// Number of replicas
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Number of writes
        #[arg(long, default_value_t = 5000)]
        writes: usize,
        /// Writes in flight at once
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Scheduler placements per second on one core (simulated cluster)
    Sched {
        /// Simulated nodes
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        /// Tasks to place
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Seed of the simulated cluster and jobs
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// `stratus run` of hello-world on a local cloud vs. the same module run directly by wasmtime
    Run {
        /// Runs of each
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// (internal) run a module directly with the WASM executor, as the reference of `bench run`
    #[command(hide = true)]
    WasmDirect {
        /// Module
        module: std::path::PathBuf,
        /// Arguments
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Object data path (chunk, seal, pack, erasure-code and back) on one core vs. its sum-of-stages limit
    Datapath {
        /// MiB of generated data (half text, half random)
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
    /// Object store end to end over the HTTP API on a local cloud, beside the data-path limit and raw loopback HTTP
    Store {
        /// MiB of the large object (generated: half text, half random)
        #[arg(long, default_value_t = 512)]
        mib: usize,
        /// Storage nodes
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Small (4 KiB) objects to PUT and GET
        #[arg(long, default_value_t = 500)]
        small: usize,
    },
    /// Stored bytes of consecutive releases of a crate (registry source archives), beside restic on the same files
    Dedupe {
        /// Crate whose releases are stored
        #[arg(long = "crate", default_value = "tokio")]
        krate: String,
        /// Consecutive releases (the newest ones)
        #[arg(long, default_value_t = 8)]
        versions: usize,
        /// Storage nodes
        #[arg(long, default_value_t = 6)]
        nodes: usize,
    },
    /// Resident memory of an idle agent process (spawns a server and a node)
    AgentRss {
        /// Seconds to let the agent idle before measuring
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Object metadata at scale: RSS, disk, put rate, page listing and snapshots at each size, on disk (the product) and in memory
    Meta {
        /// Object versions to reach, comma-separated
        #[arg(long, default_value = "100000,1000000,10000000", value_delimiter = ',')]
        sizes: Vec<u64>,
        /// Largest size the in-memory state is also run to
        #[arg(long, default_value_t = 1_000_000)]
        mem_up_to: u64,
        /// Largest size a snapshot is also installed on a fresh replica
        #[arg(long, default_value_t = 10_000_000)]
        install_up_to: u64,
        /// Working directory (default: a temporary one)
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// (internal) one backend of `bench meta`
    #[command(hide = true)]
    MetaChild {
        /// `disk` or `mem`
        #[arg(long)]
        backend: String,
        /// Sizes
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<u64>,
        /// Largest size a snapshot is also installed
        #[arg(long)]
        install_up_to: u64,
        /// Working directory
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

/// Runs a benchmark.
pub async fn run(_g: &Global, cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Control {
            replicas,
            writes,
            concurrency,
        } => control(replicas, writes, concurrency).await,
        BenchCmd::AgentRss { seconds } => agent_rss(seconds).await,
        BenchCmd::Sched { nodes, tasks, seed } => {
            sched(nodes, tasks, seed);
            Ok(())
        }
        BenchCmd::Run { runs } => run_bench(runs).await,
        BenchCmd::WasmDirect { module, args } => wasm_direct(&module, args).await,
        BenchCmd::Datapath { mib } => {
            datapath(mib);
            Ok(())
        }
        BenchCmd::Store { mib, nodes, small } => store_bench(mib, nodes, small).await,
        BenchCmd::Dedupe {
            krate,
            versions,
            nodes,
        } => dedupe_bench(&krate, versions, nodes).await,
        BenchCmd::Meta {
            sizes,
            mem_up_to,
            install_up_to,
            dir,
        } => crate::bench_meta::run(&sizes, mem_up_to, install_up_to, dir),
        BenchCmd::MetaChild {
            backend,
            sizes,
            install_up_to,
            dir,
        } => match backend.as_str() {
            "disk" => crate::bench_meta::run_disk(&sizes, &dir, install_up_to).await,
            "mem" => crate::bench_meta::run_mem(&sizes),
            other => bail!("unknown backend {other:?}"),
        },
    }
}

fn free_port_run(n: usize) -> Result<u16> {
    Ok(stratus_node::dev::free_port_run(n)?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sequential 4 KiB write + fdatasync on `dir`: the disk's commit-rate limit.
fn fsync_reference(dir: &Path, n: usize) -> Result<Vec<Duration>> {
    let mut f = std::fs::File::create(dir.join("fsync-probe"))?;
    let block = vec![0xa5u8; 4096];
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

async fn control(replicas: usize, writes: usize, concurrency: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fs = fsync_reference(dir.path(), 300)?;
    let fs_p50 = percentile(&fs, 0.5);
    let base = free_port_run(replicas)?;
    let api = free_port_run(replicas)?;
    let cloud = stratus_node::dev::start(DevConfig {
        data_dir: dir.path().join("cloud"),
        replicas,
        nodes: 0,
        base_port: base,
        api_port: api,
        heartbeat_interval: Duration::from_secs(1),
        node_lost_after: Duration::from_secs(10),
        snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
        storage_capacity: 0,
        store: stratus_store::StoreConfig::default(),
        s3_port: None,
    })
    .await?;
    let control = cloud.replicas[0].control.clone().context("no control")?;
    // Warm up connections and the leader.
    for i in 0..10 {
        control
            .write(Command::PutVar {
                tenant: ADMIN_TENANT.into(),
                key: format!("warm/{i}"),
                value: "x".into(),
                now_ms: 0,
            })
            .await?;
    }
    let started = Instant::now();
    let mut lat: Vec<Duration> = futures::stream::iter(0..writes)
        .map(|i| {
            let c = control.clone();
            async move {
                let t = Instant::now();
                c.write(Command::PutVar {
                    tenant: ADMIN_TENANT.into(),
                    key: format!("bench/{i}"),
                    value: "v".repeat(64),
                    now_ms: 0,
                })
                .await
                .map(|_| t.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    lat.sort();
    cloud.shutdown().await;
    let rate = writes as f64 / elapsed.as_secs_f64();
    let fsync_rate = 1.0 / fs_p50.as_secs_f64().max(1e-9);
    println!(
        "control-plane writes: {replicas} replica(s), {writes} writes, {concurrency} in flight"
    );
    println!("  throughput      {rate:>10.0} writes/s");
    println!(
        "  commit p50      {:>10.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "  commit p99      {:>10.2} ms",
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!("reference (same disk, same run): sequential 4 KiB write+fdatasync");
    println!(
        "  fsync p50       {:>10.2} ms  ({fsync_rate:.0} fsyncs/s)",
        fs_p50.as_secs_f64() * 1e3
    );
    println!(
        "  commit p50 / fsync p50 = {:.1}x; writes per fsync-time = {:.1}",
        percentile(&lat, 0.5).as_secs_f64() / fs_p50.as_secs_f64().max(1e-9),
        rate / fsync_rate
    );
    Ok(())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Ok((field("VmRSS:").unwrap_or(0), field("VmHWM:").unwrap_or(0)))
}

async fn agent_rss(seconds: u64) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let quic = free_port_run(1)?;
    let api = free_port_run(1)?;
    let server = Killed(
        Proc::new(&exe)
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{quic}"),
                "--api-listen",
                &format!("127.0.0.1:{api}"),
                "--log",
                "warn",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("server"))
            .stdout(Stdio::null())
            .spawn()?,
    );
    let join = dir.path().join("server/control/join.token");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !join.exists() {
        if Instant::now() > deadline {
            bail!("the server did not bootstrap within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let node = Killed(
        Proc::new(&exe)
            .args([
                "node",
                "--control",
                &format!("127.0.0.1:{quic}"),
                "--log",
                "warn",
            ])
            .arg("--join-token-file")
            .arg(&join)
            .arg("--data-dir")
            .arg(dir.path().join("node"))
            .stdout(Stdio::null())
            .spawn()?,
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (agent_rss, agent_hwm) = rss_kib(node.0.id())?;
    let (server_rss, _) = rss_kib(server.0.id())?;
    println!("idle agent after {seconds} s (heartbeating to one control replica):");
    println!(
        "  agent RSS       {:>8.1} MiB (peak {:.1} MiB)",
        agent_rss as f64 / 1024.0,
        agent_hwm as f64 / 1024.0
    );
    println!(
        "  control RSS     {:>8.1} MiB (same run, for comparison)",
        server_rss as f64 / 1024.0
    );
    println!("  goal < 20 MiB; K3s agent ~270 MB, KubeEdge edgecore ~70 MB (their docs)");
    drop(node);
    drop(server);
    Ok(())
}

fn sched(nodes: usize, tasks: usize, seed: u64) {
    let r = stratus_sched::sim::simulate(nodes, tasks, seed);
    let rate = r.placements_per_sec();
    println!(
        "scheduler: {nodes} simulated nodes, {tasks} tasks in {} jobs (seed {seed}), one thread",
        r.jobs
    );
    println!(
        "  placed          {:>10}  (unplaced {})",
        r.placements, r.unplaced
    );
    println!(
        "  elapsed         {:>10.1} ms (cluster build {:.1} ms)",
        r.elapsed.as_secs_f64() * 1e3,
        r.build.as_secs_f64() * 1e3
    );
    println!("  placements/s    {rate:>10.0}");
    println!(
        "  vs Nomad C1M (~3,750/s on 5 servers): {:.0}x; vs goal 10,000/s: {:.0}x",
        rate / 3750.0,
        rate / 10_000.0
    );
}

/// Runs a module in this process with the WASM executor, output to stdout.
async fn wasm_direct(module: &Path, args: Vec<String>) -> Result<()> {
    use stratus_runtime::{DynExecutor, Output, TaskSpec, WasmExecutor};
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let exec = WasmExecutor::new()?;
    let mut spec = TaskSpec::new("direct", std::sync::Arc::new(bytes));
    spec.args = args;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(async move { exec.run_dyn(spec, tx, Default::default()).await });
    let mut out = std::io::stdout();
    while let Some(o) = rx.recv().await {
        let (Output::Stdout(d) | Output::Stderr(d)) = o;
        out.write_all(&d)?;
        out.flush()?;
    }
    let exit = run.await??;
    std::process::exit(exit.code);
}

/// Spawns `cmd`, returns (time to first stdout byte, time to exit).
fn time_process(mut cmd: Proc) -> Result<(Duration, Duration)> {
    use std::io::Read;
    let t0 = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut b = [0u8; 1];
    stdout
        .read_exact(&mut b)
        .context("the program printed nothing")?;
    let first = t0.elapsed();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest)?;
    let status = child.wait()?;
    let exit = t0.elapsed();
    if !status.success() {
        bail!("the program exited with {status}");
    }
    Ok((first, exit))
}

async fn run_bench(runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("hello.wat");
    std::fs::write(&module, HELLO_WAT)?;
    let cloud = stratus_node::dev::start(DevConfig {
        data_dir: dir.path().join("cloud"),
        replicas: 1,
        nodes: 1,
        base_port: free_port_run(1)?,
        api_port: free_port_run(1)?,
        heartbeat_interval: Duration::from_secs(1),
        node_lost_after: Duration::from_secs(10),
        snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
        storage_capacity: 0,
        store: stratus_store::StoreConfig::default(),
        s3_port: None,
    })
    .await?;
    let (api, token) = (cloud.api_url.clone(), cloud.admin_token.clone());
    let control = cloud.replicas[0].control.clone().context("no control")?;
    wait_for_agent(&control).await?;
    let mut stratus = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..runs {
        let mut cmd = Proc::new(&exe);
        cmd.args(["run", "--log", "error"])
            .arg(&module)
            .args(["--", "world"])
            .env("STRATUS_API", &api)
            .env("STRATUS_TOKEN", &token);
        stratus.push(tokio::task::block_in_place(|| time_process(cmd))?);
        let mut cmd = Proc::new(&exe);
        cmd.args(["bench", "wasm-direct", "--log", "error"])
            .arg(&module)
            .args(["--", "world"]);
        direct.push(tokio::task::block_in_place(|| time_process(cmd))?);
    }
    drop(control);
    cloud.shutdown().await;
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut sf, mut se): (Vec<_>, Vec<_>) = stratus.into_iter().unzip();
    let (mut df, mut de): (Vec<_>, Vec<_>) = direct.into_iter().unzip();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (sf, se, df, de) = (med(&mut sf), med(&mut se), med(&mut df), med(&mut de));
    println!(
        "hello world, {runs} runs each, medians (each run is a fresh process of this binary):"
    );
    println!("                          first output      exit");
    println!(
        "  stratus run (cloud)     {:>9.1} ms  {:>9.1} ms",
        ms(sf),
        ms(se)
    );
    println!(
        "  wasmtime direct         {:>9.1} ms  {:>9.1} ms",
        ms(df),
        ms(de)
    );
    println!(
        "  overhead                {:>9.1} ms  {:>9.1} ms   (goal < 20 ms)",
        ms(sf) - ms(df),
        ms(se) - ms(de)
    );
    Ok(())
}

/// Waits until the local cloud's single agent is registered.
async fn wait_for_agent(control: &stratus_control::Control) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.state().read(|s| s.nodes.is_empty()) {
        if Instant::now() > deadline {
            bail!("the agent did not register within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The hello-world guest (WAT), so the benchmark needs no files.
const HELLO_WAT: &str = include_str!("../../../examples/wasm/hello.wat");

// ---------------------------------------------------------------------------
// Object store: data path, end to end, dedupe.

const MIB: f64 = 1048576.0;

fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// The data-path configuration the store uses with `nodes` storage nodes.
fn store_datapath_config(nodes: usize) -> stratus_chunk::bench::BenchConfig {
    let sc = stratus_store::StoreConfig::default();
    let (k, m) = stratus_sched::default_profile(nodes);
    stratus_chunk::bench::BenchConfig {
        chunker: sc.chunker,
        zstd_level: sc.zstd_level,
        pack_bytes: sc.pack_bytes,
        profile: stratus_chunk::Profile { k, m },
        ..Default::default()
    }
}

fn datapath(mib: usize) {
    let r = tokio::task::block_in_place(|| {
        stratus_chunk::bench::run(mib << 20, &stratus_chunk::bench::BenchConfig::default())
    });
    print!("{r}");
    println!(
        "ingest {:.0}% and read {:.0}% of their sum-of-stages limits (goal >= 80%)",
        100.0 * r.ingest_ratio(),
        100.0 * r.read_ratio()
    );
}

/// A local cloud with `nodes` storage nodes, ready to store objects.
struct StoreCloud {
    cloud: stratus_node::dev::DevCloud,
    control: stratus_control::Control,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The JSON answer of `PUT /v1/buckets/{bucket}/objects/{key}`.
#[derive(serde::Deserialize, Debug)]
struct PutAnswer {
    size: u64,
    blake3: String,
    chunks: u64,
    new_chunks: u64,
    piece_bytes: u64,
}

impl StoreCloud {
    async fn start(nodes: usize) -> Result<StoreCloud> {
        let dir = tempfile::tempdir()?;
        let cloud = stratus_node::dev::start(DevConfig {
            data_dir: dir.path().join("cloud"),
            replicas: 1,
            nodes,
            base_port: free_port_run(1)?,
            api_port: free_port_run(1)?,
            heartbeat_interval: Duration::from_secs(1),
            node_lost_after: Duration::from_secs(10),
            snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
            storage_capacity: 1 << 40,
            store: stratus_store::StoreConfig::default(),
            s3_port: None,
        })
        .await?;
        let control = cloud.replicas[0].control.clone().context("no control")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let sc = StoreCloud {
            cloud,
            control,
            http,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ready, secret) = sc.control.state().read(|s| {
                let ready = s
                    .nodes
                    .values()
                    .filter(|n| {
                        n.status == stratus_types::NodeStatus::Ready && n.info.storage.is_some()
                    })
                    .count();
                (ready, s.store.secret.is_some())
            });
            if ready >= nodes && secret {
                break;
            }
            if Instant::now() > deadline {
                bail!("{ready} of {nodes} storage nodes ready after 60 s (storage secret set: {secret})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(sc)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cloud.api_url)
    }

    /// Creates `bucket` over the API and waits until a PUT into it works.
    async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let r = self
            .http
            .post(self.url("/v1/buckets"))
            .bearer_auth(&self.cloud.admin_token)
            .json(&serde_json::json!({"name": bucket, "scope": "tenant"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "creating bucket {bucket}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        // Piece services accept the replica once their agents have learned it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = Bytes::from_static(b"probe");
            match self.put(bucket, "probe", &probe).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context("the storage nodes did not accept pieces within 60 s"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// PUTs `data` streamed in 1 MiB slices.
    async fn put(&self, bucket: &str, key: &str, data: &Bytes) -> Result<PutAnswer> {
        let r = self
            .http
            .put(self.url(&format!("/v1/buckets/{bucket}/objects/{key}")))
            .bearer_auth(&self.cloud.admin_token)
            .body(body_1mib(data))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "PUT {bucket}/{key}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let a: PutAnswer = r.json().await.context("the PUT answer")?;
        if a.size != data.len() as u64 {
            bail!(
                "PUT {bucket}/{key}: stored {} of {} bytes",
                a.size,
                data.len()
            );
        }
        Ok(a)
    }

    /// GETs an object streamed; returns (bytes, BLAKE3).
    async fn get(&self, bucket: &str, key: &str) -> Result<(u64, blake3::Hash)> {
        let r = self
            .http
            .get(self.url(&format!("/v1/buckets/{bucket}/objects/{key}")))
            .bearer_auth(&self.cloud.admin_token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "GET {bucket}/{key}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        hash_stream(r.bytes_stream()).await
    }

    /// Sum of sealed lengths in the chunk index.
    fn sealed_bytes(&self) -> u64 {
        self.control.state().read(|s| {
            let mut sum = 0;
            s.store.scan_chunks(&mut |_, c| {
                sum += u64::from(c.sealed_len);
                true
            });
            sum
        })
    }

    /// The erasure profiles of the packs, as `K+M`.
    fn profiles(&self) -> String {
        let set: std::collections::BTreeSet<String> = self.control.state().read(|s| {
            s.store
                .packs()
                .iter()
                .map(|p| format!("{}+{}", p.profile.k, p.profile.m))
                .collect()
        });
        set.into_iter().collect::<Vec<_>>().join(",")
    }

    async fn shutdown(self) {
        drop(self.control);
        self.cloud.shutdown().await;
    }
}

/// A request body streaming `data` in 1 MiB slices (no copies).
fn body_1mib(data: &Bytes) -> reqwest::Body {
    let slices: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(1 << 20)
        .map(|a| Ok(data.slice(a..(a + (1 << 20)).min(data.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(slices))
}

async fn hash_stream<S, E>(mut s: S) -> Result<(u64, blake3::Hash)>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(b) = s.next().await {
        let b = b?;
        n += b.len() as u64;
        h.update(&b);
    }
    Ok((n, h.finalize()))
}

/// A minimal HTTP/1.1 server on loopback: PUT bodies are read and dropped,
/// GETs answer `data`. The reference for the client and TCP cost alone.
async fn loopback_http(data: Bytes) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let data = data.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let mut head = Vec::new();
                loop {
                    // Read one request head.
                    let end = loop {
                        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    };
                    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                    let is_get = text.starts_with("get ");
                    let chunked = text.contains("transfer-encoding: chunked");
                    let rest = head.split_off(end);
                    head = rest;
                    if !is_get && chunked {
                        // Chunked body: skip chunk by chunk.
                        loop {
                            let line = loop {
                                if let Some(i) = head.windows(2).position(|w| w == b"\r\n") {
                                    break i;
                                }
                                match sock.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => head.extend_from_slice(&buf[..n]),
                                }
                            };
                            let size = std::str::from_utf8(&head[..line])
                                .ok()
                                .and_then(|t| usize::from_str_radix(t.trim(), 16).ok());
                            let Some(size) = size else { return };
                            let mut skip = line + 2 + size + 2;
                            while head.len() < skip {
                                skip -= head.len();
                                head.clear();
                                let want = skip.min(buf.len());
                                match sock.read(&mut buf[..want]).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => head.extend_from_slice(&buf[..n]),
                                }
                            }
                            head.drain(..skip);
                            if size == 0 {
                                break;
                            }
                        }
                    }
                    let answer = if is_get {
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", data.len())
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string()
                    };
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    if is_get {
                        for c in data.chunks(1 << 20) {
                            if sock.write_all(c).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok((addr, task))
}

async fn store_bench(mib: usize, nodes: usize, small: usize) -> Result<()> {
    let total = mib << 20;
    println!("generating {mib} MiB (half text, half random) ...");
    let data = Bytes::from(stratus_chunk::bench::generate(total, 0.5, 1));
    let want = blake3::hash(&data);

    // Reference 1: the data path alone on one core, same profile as the store.
    let cfg = store_datapath_config(nodes);
    let ref_mib = mib.min(128);
    let dp = tokio::task::block_in_place(|| stratus_chunk::bench::run(ref_mib << 20, &cfg));

    // Reference 2: the same HTTP client against a server that does nothing.
    let (addr, sink) = loopback_http(data.clone()).await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{addr}/x");
    let t = Instant::now();
    let r = http.put(&url).body(body_1mib(&data)).send().await?;
    r.error_for_status()?.bytes().await?;
    let raw_put = t.elapsed();
    let t = Instant::now();
    let r = http.get(&url).send().await?.error_for_status()?;
    let (n, h) = hash_stream(r.bytes_stream()).await?;
    let raw_get = t.elapsed();
    if n != total as u64 || h != want {
        bail!("loopback GET returned other bytes");
    }
    sink.abort();

    println!("starting a local cloud: 1 replica, {nodes} storage nodes ...");
    let sc = StoreCloud::start(nodes).await?;
    sc.create_bucket("bench").await?;

    let t = Instant::now();
    let p1 = sc.put("bench", "big", &data).await?;
    let put1 = t.elapsed();
    if p1.blake3 != want.to_hex().as_str() {
        bail!("the store's BLAKE3 of the object differs from ours");
    }
    let sealed = sc.sealed_bytes();
    let t = Instant::now();
    let (n, h) = sc.get("bench", "big").await?;
    let get1 = t.elapsed();
    if n != total as u64 || h != want {
        bail!("GET returned other bytes ({n} bytes, BLAKE3 {h})");
    }
    let t = Instant::now();
    let p2 = sc.put("bench", "big-copy", &data).await?;
    let put2 = t.elapsed();

    // Small objects: sequential, then 16 in flight.
    let smalls: Vec<Bytes> = (0..small)
        .map(|i| Bytes::from(stratus_chunk::bench::generate(4096, 0.5, 1000 + i as u64)))
        .collect();
    let mut lat = Vec::with_capacity(small);
    let t = Instant::now();
    for (i, d) in smalls.iter().enumerate() {
        let t = Instant::now();
        sc.put("bench", &format!("small/{i}"), d).await?;
        lat.push(t.elapsed());
    }
    let small_put = t.elapsed();
    lat.sort();
    let put_p50 = percentile(&lat, 0.5);
    lat.clear();
    let t = Instant::now();
    for (i, d) in smalls.iter().enumerate() {
        let t = Instant::now();
        let (n, h) = sc.get("bench", &format!("small/{i}")).await?;
        if n != 4096 || h != blake3::hash(d) {
            bail!("small/{i} read back other bytes");
        }
        lat.push(t.elapsed());
    }
    let small_get = t.elapsed();
    lat.sort();
    let get_p50 = percentile(&lat, 0.5);
    let t = Instant::now();
    let sc_ref = &sc;
    futures::stream::iter(smalls.iter().enumerate())
        .map(|(i, d)| async move { sc_ref.put("bench", &format!("small16/{i}"), d).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let small_put16 = t.elapsed();
    let t = Instant::now();
    futures::stream::iter(0..small)
        .map(|i| async move { sc_ref.get("bench", &format!("small16/{i}")).await })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let small_get16 = t.elapsed();
    let profiles = sc.profiles();
    sc.shutdown().await;

    let b = total as u64;
    let limit_in = dp.ingest_limit() / 1e6;
    let limit_out = dp.read_limit() / 1e6;
    println!(
        "object store end to end: 1 replica, {nodes} storage nodes (profile {profiles}), HTTP on loopback, one machine and disk"
    );
    println!(
        "  object {mib} MiB: {} chunks, {:.1} MiB sealed, {:.1} MiB of pieces",
        p1.chunks,
        sealed as f64 / MIB,
        p1.piece_bytes as f64 / MIB
    );
    println!(
        "{:<32} {:>10} {:>16} {:>16}",
        "", "MB/s", "/ data path", "/ raw HTTP"
    );
    let row = |name: &str, v: f64, lim: f64, raw: f64| {
        println!(
            "  {name:<30} {v:>10.1} {:>15.0}% {:>15.0}%",
            100.0 * v / lim,
            100.0 * v / raw
        );
    };
    let raw_in = mb_s(b, raw_put);
    let raw_out = mb_s(b, raw_get);
    row("PUT (new data)", mb_s(b, put1), limit_in, raw_in);
    row("GET (BLAKE3 verified)", mb_s(b, get1), limit_out, raw_out);
    row("PUT (same bytes, new key)", mb_s(b, put2), limit_in, raw_in);
    println!(
        "  dedupe: second PUT wrote {} new chunks of {}, {} piece bytes",
        p2.new_chunks, p2.chunks, p2.piece_bytes
    );
    println!("{small} objects of 4 KiB        ops/s   p50 ms (sequential)   ops/s (16 in flight)");
    let ops = |d: Duration| small as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "  PUT                  {:>10.0} {:>10.2} {:>22.0}",
        ops(small_put),
        put_p50.as_secs_f64() * 1e3,
        ops(small_put16)
    );
    println!(
        "  GET                  {:>10.0} {:>10.2} {:>22.0}",
        ops(small_get),
        get_p50.as_secs_f64() * 1e3,
        ops(small_get16)
    );
    println!("references measured in this run:");
    println!(
        "  data path on one core ({ref_mib} MiB, same profile): ingest {:.1} MB/s (limit {limit_in:.1}), read {:.1} MB/s (limit {limit_out:.1})",
        dp.ingest_throughput() / 1e6,
        dp.read_throughput() / 1e6
    );
    println!(
        "  raw loopback HTTP (same client, server that drops/serves bytes): PUT {raw_in:.1} MB/s, GET {raw_out:.1} MB/s"
    );
    Ok(())
}

/// Where downloaded release archives are kept between runs.
fn cache_dir() -> Result<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::path::PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache"),
    };
    let dir = base.join("stratus-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

const USER_AGENT: &str = concat!(
    "stratus-bench/",
    env!("CARGO_PKG_VERSION"),
    " (benchmark of the Stratus object store)"
);

/// Path of a crate in the registry's sparse index.
fn index_path(name: &str) -> String {
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// `a.b.c` without pre-release or build suffix.
fn release_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    it.next().is_none().then_some((a, b, c))
}

/// The newest `n` releases (not yanked, no pre-releases), oldest first.
async fn crate_versions(http: &reqwest::Client, name: &str, n: usize) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        vers: String,
        #[serde(default)]
        yanked: bool,
    }
    let name = name.to_ascii_lowercase();
    if name.is_empty() || !name.is_ascii() || name.contains('/') {
        bail!("not a crate name: {name:?}");
    }
    let url = format!("https://index.crates.io/{}", index_path(&name));
    let r = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    let text = r.text().await?;
    let mut vs: Vec<((u64, u64, u64), String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| !e.yanked)
        .filter_map(|e| release_version(&e.vers).map(|k| (k, e.vers)))
        .collect();
    vs.sort();
    vs.dedup_by(|a, b| a.0 == b.0);
    let skip = vs.len().saturating_sub(n);
    Ok(vs.into_iter().skip(skip).map(|(_, v)| v).collect())
}

/// Downloads a release's `.crate` into the cache (once) and returns its path.
async fn fetch_crate(
    http: &reqwest::Client,
    dir: &Path,
    name: &str,
    version: &str,
) -> Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}-{version}.crate"));
    if path.exists() {
        return Ok(path);
    }
    let url = format!("https://static.crates.io/crates/{name}/{name}-{version}.crate");
    let r = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    let body = r.bytes().await?;
    let tmp = dir.join(format!(".{name}-{version}.crate.part"));
    std::fs::write(&tmp, &body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Decompresses a `.crate` (tar.gz) to a plain `.tar` beside it (once).
fn gunzip(path: &Path) -> Result<std::path::PathBuf> {
    let tar = path.with_extension("tar");
    if tar.exists() {
        return Ok(tar);
    }
    let tmp = path.with_extension("tar.part");
    let mut input = flate2::read::GzDecoder::new(std::fs::File::open(path)?);
    let mut out = std::fs::File::create(&tmp)?;
    std::io::copy(&mut input, &mut out).with_context(|| format!("gunzip {}", path.display()))?;
    std::fs::rename(&tmp, &tar)?;
    Ok(tar)
}

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Whether the `restic` program runs.
fn restic_available() -> bool {
    Proc::new("restic")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn restic(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Proc::new("restic")
        .arg("--repo")
        .arg(repo)
        .args(["--no-cache", "--quiet"])
        .args(args)
        .env("RESTIC_PASSWORD", "stratus-bench")
        .stdin(Stdio::null())
        .output()
        .context("running restic")?;
    if !out.status.success() {
        bail!(
            "restic {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One release: objects to store (key, file) and the path restic backs up.
struct Release {
    objects: Vec<(String, std::path::PathBuf)>,
    backup: std::path::PathBuf,
}

/// One series of releases stored one after another.
struct Series {
    logical: u64,
    /// Per release: (logical, Stratus new sealed, Stratus piece bytes, restic repo after).
    rows: Vec<(u64, u64, u64, Option<u64>)>,
    sealed: u64,
    pieces: u64,
    restic: Option<u64>,
    objects: usize,
    stratus_time: Duration,
    restic_time: Duration,
}

/// Percent-encodes a key for a URL path (keeps `/`).
fn url_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn store_series(
    sc: &StoreCloud,
    bucket: &str,
    releases: &[Release],
    restic_repo: Option<&Path>,
) -> Result<Series> {
    sc.create_bucket(bucket).await?;
    if let Some(repo) = restic_repo {
        restic(repo, &["init".as_ref()])?;
    }
    let mut s = Series {
        logical: 0,
        rows: Vec::new(),
        sealed: 0,
        pieces: 0,
        restic: None,
        objects: 0,
        stratus_time: Duration::ZERO,
        restic_time: Duration::ZERO,
    };
    for rel in releases {
        let before = sc.sealed_bytes();
        let t = Instant::now();
        // Up to 16 objects in flight, read from disk as they go.
        let answers = futures::stream::iter(&rel.objects)
            .map(|(key, f)| async move {
                let data = Bytes::from(
                    tokio::fs::read(f)
                        .await
                        .with_context(|| format!("reading {}", f.display()))?,
                );
                sc.put(bucket, &url_key(key), &data).await
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        s.stratus_time += t.elapsed();
        let logical: u64 = answers.iter().map(|a| a.size).sum();
        let pieces: u64 = answers.iter().map(|a| a.piece_bytes).sum();
        let new_sealed = sc.sealed_bytes().saturating_sub(before);
        let restic_after = match restic_repo {
            Some(repo) => {
                let t = Instant::now();
                tokio::task::block_in_place(|| {
                    restic(repo, &["backup".as_ref(), rel.backup.as_os_str()])
                })?;
                s.restic_time += t.elapsed();
                Some(dir_bytes(repo))
            }
            None => None,
        };
        s.objects += answers.len();
        s.logical += logical;
        s.sealed += new_sealed;
        s.pieces += pieces;
        s.restic = restic_after;
        s.rows.push((logical, new_sealed, pieces, restic_after));
    }
    Ok(s)
}

/// Unpacks a release's `.tar` into the cache (once) with the system `tar`;
/// returns its files as (path inside the release, file), sorted.
fn unpack(tar: &Path, dir: &Path, top: &str) -> Result<Vec<(String, std::path::PathBuf)>> {
    let root = dir.join(top);
    if !root.exists() {
        let tmp = dir.join(format!(".{top}.part"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let st = Proc::new("tar")
            .arg("-xf")
            .arg(tar)
            .arg("-C")
            .arg(&tmp)
            .status()
            .context("running tar (to unpack a release)")?;
        if !st.success() {
            bail!("tar -xf {} failed: {st}", tar.display());
        }
        std::fs::rename(tmp.join(top), &root)
            .with_context(|| format!("{} has no top folder {top}", tar.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p
                    .strip_prefix(&root)
                    .context("a file outside the release")?
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn dedupe_bench(krate: &str, versions: usize, nodes: usize) -> Result<()> {
    let http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    let cache = cache_dir()?;
    let vs = crate_versions(&http, krate, versions).await?;
    if vs.is_empty() {
        bail!("the registry lists no releases of {krate}");
    }
    let name = krate.to_ascii_lowercase();
    let (mut crates, mut tars, mut trees) = (Vec::new(), Vec::new(), Vec::new());
    let single = |f: &std::path::PathBuf| Release {
        objects: vec![("src".to_string(), f.clone())],
        backup: f.clone(),
    };
    for v in &vs {
        let c = fetch_crate(&http, &cache, &name, v).await?;
        let t = tokio::task::block_in_place(|| gunzip(&c))?;
        let top = format!("{name}-{v}");
        let files = tokio::task::block_in_place(|| unpack(&t, &cache, &top))?;
        crates.push(single(&c));
        tars.push(single(&t));
        trees.push(Release {
            objects: files,
            backup: cache.join(&top),
        });
    }
    let has_restic = restic_available();
    if !has_restic {
        println!(
            "restic not found: install the Debian package `restic` (apt-get install restic); the restic column is skipped"
        );
    }
    let work = tempfile::tempdir()?;
    println!(
        "starting a local cloud: 1 replica, {nodes} storage nodes; storing {} releases of {name} ({} .. {})",
        vs.len(),
        vs.first().map(String::as_str).unwrap_or(""),
        vs.last().map(String::as_str).unwrap_or("")
    );
    let sc = StoreCloud::start(nodes).await?;
    let repo_tar = work.path().join("restic-tar");
    let repo_crate = work.path().join("restic-crate");
    let repo_tree = work.path().join("restic-tree");
    let tree = store_series(
        &sc,
        "releases-tree",
        &trees,
        has_restic.then_some(repo_tree.as_path()),
    )
    .await?;
    let tar = store_series(
        &sc,
        "releases-tar",
        &tars,
        has_restic.then_some(repo_tar.as_path()),
    )
    .await?;
    let gz = store_series(
        &sc,
        "releases-crate",
        &crates,
        has_restic.then_some(repo_crate.as_path()),
    )
    .await?;
    let profiles = sc.profiles();
    sc.shutdown().await;

    let m = |b: u64| b as f64 / MIB;
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    let restic_cell = |r: Option<u64>| match r {
        Some(r) => format!("{:>9.2}", m(r)),
        None => format!("{:>9}", "-"),
    };
    println!(
        "{} consecutive releases of {name} from the registry, each stored as new versions of the same keys (erasure profile {profiles}):",
        vs.len()
    );
    for (what, s) in [("unpacked tree    ", &tree), ("decompressed .tar", &tar)] {
        println!("  per release ({what})   logical MiB   Stratus new sealed MiB   restic repo MiB");
        for (v, r) in vs.iter().zip(&s.rows) {
            println!(
                "    {:<31} {:>11.2} {:>24.2} {:>17}",
                v,
                m(r.0),
                m(r.1),
                restic_cell(r.3)
            );
        }
    }
    println!(
        "  {:<22} {:>11} {:>20} {:>18} {:>18}",
        "data", "logical MiB", "Stratus sealed MiB", "Stratus piece MiB", "restic repo MiB"
    );
    let tree_label = format!("unpacked ({} files)", tree.objects);
    for (label, s) in [
        (tree_label.as_str(), &tree),
        ("releases as .tar", &tar),
        ("releases as .crate (gz)", &gz),
    ] {
        let r = match s.restic {
            Some(r) => format!("{:>9.2} ({:>4.1}%)", m(r), pct(r, s.logical)),
            None => format!("{:>18}", "-"),
        };
        println!(
            "  {:<22} {:>11.2} {:>10.2} ({:>5.1}%) {:>9.2} ({:>4.0}%) {r:>18}",
            label,
            m(s.logical),
            m(s.sealed),
            pct(s.sealed, s.logical),
            m(s.pieces),
            pct(s.pieces, s.logical),
        );
    }
    println!(
        "  sealed = unique chunks after dedupe and compression (encrypted), before erasure coding; pieces = after erasure coding"
    );
    println!(
        "  time: Stratus PUTs {:.1} s, restic backups {:.1} s (all three series; Stratus: 16 PUTs in flight; restic: one process per backup)",
        (tree.stratus_time + tar.stratus_time + gz.stratus_time).as_secs_f64(),
        (tree.restic_time + tar.restic_time + gz.restic_time).as_secs_f64()
    );
    println!("  downloads cached in {}", cache.display());
    Ok(())
}
