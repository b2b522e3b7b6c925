//! `stratus bench`: measurements of this build on this machine.
//!
//! Each figure is printed beside a physical reference measured in the same
//! run, so the numbers mean something on a shared, noisy machine.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
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
    /// Resident memory of an idle agent process (spawns a server and a node)
    AgentRss {
        /// Seconds to let the agent idle before measuring
        #[arg(long, default_value_t = 10)]
        seconds: u64,
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
