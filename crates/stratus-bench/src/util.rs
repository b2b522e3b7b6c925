//! Helpers shared by several benchmarks: ports, percentiles, the fsync
//! reference, child processes and their memory.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use crate::error::{bail, Context, Result};

/// Bytes in a MiB, as a float for rates.
pub(crate) const MIB: f64 = 1048576.0;

/// Megabytes (10^6) per second.
pub(crate) fn mb_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// The first of `n` consecutive free ports.
pub(crate) fn free_port_run(n: usize) -> Result<u16> {
    Ok(stratus_node::dev::free_port_run(n)?)
}

/// A local cloud of `replicas` replicas and `nodes` agents in `dir` (on
/// free ports, no S3, agents lost after 10 s of silence, lending no
/// storage): what the benchmarks start, each changing what it measures.
pub(crate) fn dev_config(
    dir: &Path,
    replicas: usize,
    nodes: usize,
) -> Result<stratus_node::dev::DevConfig> {
    Ok(stratus_node::dev::DevConfig {
        data_dir: dir.join("cloud"),
        replicas,
        nodes,
        base_port: free_port_run(replicas)?,
        api_port: free_port_run(replicas)?,
        heartbeat_interval: Duration::from_secs(1),
        node_lost_after: Duration::from_secs(10),
        snapshot_every: stratus_control::DEFAULT_SNAPSHOT_EVERY,
        storage_capacity: 0,
        store: stratus_store::StoreConfig::default(),
        s3_port: None,
        ingress_port: None,
        storage_billing_every: None,
    })
}

/// The `p` quantile of sorted durations (zero when empty).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sequential 4 KiB write + fdatasync on `dir`: the disk's commit-rate limit.
pub(crate) fn fsync_reference(dir: &Path, n: usize) -> Result<Vec<Duration>> {
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

/// A child process killed (and reaped) when dropped.
pub(crate) struct Killed(pub(crate) Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident and peak resident memory of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Ok((field("VmRSS:").unwrap_or(0), field("VmHWM:").unwrap_or(0)))
}

/// Spawns `cmd`, returns (time to first stdout byte, time to exit).
pub(crate) fn time_process(mut cmd: Proc) -> Result<(Duration, Duration)> {
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

/// Makes tenant `name` through the CLI `exe` (the operator's `token` on
/// `api`), deposits plenty for it, and returns its token.
pub(crate) fn make_payer(exe: &Path, api: &str, token: &str, name: &str) -> Result<String> {
    let cli = |args: &[&str]| {
        Proc::new(exe)
            .args(args)
            .args(["--log", "error"])
            .env("STRATUS_API", api)
            .env("STRATUS_TOKEN", token)
            .output()
    };
    let out = cli(&["tenants", "create", name])?;
    let ok = cli(&["account", "deposit", name, "1000000000000"])?;
    if !out.status.success() || !ok.status.success() {
        bail!("cannot make the paying tenant {name}");
    }
    let t = String::from_utf8_lossy(&out.stdout);
    Ok(t.lines().last().unwrap_or_default().trim().to_string())
}
