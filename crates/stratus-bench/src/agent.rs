//! `stratus bench agent-rss`: resident memory of an idle agent process
//! (spawns this binary as a server and as a node).

use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use crate::error::{bail, Result};
use crate::util::{free_port_run, rss_kib, Killed};

/// Runs the benchmark.
pub(crate) async fn agent_rss(seconds: u64) -> Result<()> {
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
