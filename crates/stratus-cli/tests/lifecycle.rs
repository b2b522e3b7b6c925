//! Process lifecycle: a crashed local cloud restarts with its committed
//! state, and SIGTERM / SIGINT stop processes in order with status 0.

mod common;

use std::time::Duration;

use common::{parse_nodes, wait_until, Dev, Server};
use nix::sys::signal::Signal;

/// Bound on an ordered shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// `nodes ls --json` of a dev cloud, as (id, name, status).
fn dev_nodes(dev: &Dev) -> Result<Vec<(String, String, String)>, String> {
    let out = dev.cli(&["nodes", "ls", "--json"]);
    if !out.status.success() {
        return Err(format!("nodes ls failed: {}", out.stderr));
    }
    parse_nodes(&out.stdout)
}

/// Waits until the cloud lists `n` nodes, all ready; returns their ids, sorted.
fn wait_ready_nodes(dev: &Dev, n: usize) -> Vec<String> {
    wait_until(&format!("{n} ready nodes"), Duration::from_secs(60), || {
        let nodes = dev_nodes(dev)?;
        if nodes.len() == n && nodes.iter().all(|(_, _, s)| s == "ready") {
            Ok(nodes.into_iter().map(|(id, _, _)| id).collect())
        } else {
            Err(format!("{nodes:?}"))
        }
    })
}

#[test]
fn dev_cloud_keeps_committed_state_across_a_crash() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let mut dev = Dev::start("dev", tmp.path(), 3, 10);

    let out = dev
        .cli(&["vars", "put", "crash-key", "crash-value"])
        .success("vars put");
    assert!(
        out.contains("committed"),
        "vars put says it committed: {out}"
    );
    let ids = wait_ready_nodes(&dev, 3);
    let node_pids: Vec<i32> = (0..3).map(|j| dev.node_pid(j)).collect();

    dev.proc.kill();
    // The orphaned node processes notice and stop by themselves (they hold
    // their data folders' locks: the restarted cloud needs them gone).
    wait_until(
        "the orphaned nodes to exit",
        SHUTDOWN_TIMEOUT,
        || match node_pids.iter().find(|p| alive(**p)) {
            Some(p) => Err(format!("node process {p} still runs")),
            None => Ok(()),
        },
    );
    let down = dev.cli(&["status"]);
    assert!(
        !down.status.success(),
        "nothing answers once the cloud is killed"
    );

    dev.restart();
    let got = dev.cli(&["vars", "get", "crash-key"]).success("vars get");
    assert_eq!(got.trim(), "crash-value");
    let after = wait_ready_nodes(&dev, 3);
    assert_eq!(after, ids, "the same three nodes after the restart");
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// A node that `stratus dev` started is told its parent's pid; if that
/// process is already gone by the time the node is up (the cloud was killed
/// while the node started), the node stops instead of running on unowned.
#[test]
fn a_dev_node_whose_parent_is_already_gone_stops() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawning true");
    let gone_pid = gone.id();
    gone.wait().expect("reaping true");
    let mut node = common::Proc::spawn(
        "node",
        &tmp.path().join("logs"),
        vec![
            "node".into(),
            "--data-dir".into(),
            tmp.path().join("node").to_string_lossy().into(),
            "--control".into(),
            "127.0.0.1:9".into(),
            "--join-token".into(),
            // Well formed (checked at start), never used: nothing answers.
            format!(
                "stj_{}_{}_{}",
                "0".repeat(12),
                "0".repeat(64),
                "0".repeat(64)
            ),
            "--no-containers".into(),
            "--parent-pid".into(),
            gone_pid.to_string(),
            "--log".into(),
            "info".into(),
        ],
    );
    let status = node
        .wait_exit(SHUTDOWN_TIMEOUT)
        .expect("the node stops by itself");
    assert!(
        status.success(),
        "status {status}; stderr: {}",
        node.stderr()
    );
    let log = node.stderr();
    assert!(log.contains("the parent process is gone"), "{log}");
    // Its log is a file: records, but no terminal colour codes.
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn sigterm_stops_the_dev_cloud_cleanly_and_it_restarts() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let mut dev = Dev::start("dev", tmp.path(), 1, 10);
    dev.cli(&["vars", "put", "term-key", "term-value"])
        .success("vars put");

    dev.proc.signal(Signal::SIGTERM);
    let status = dev
        .proc
        .wait_exit(SHUTDOWN_TIMEOUT)
        .expect("stratus dev exits after SIGTERM");
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; stderr: {}",
        dev.proc.stderr()
    );

    dev.restart();
    let got = dev.cli(&["vars", "get", "term-key"]).success("vars get");
    assert_eq!(got.trim(), "term-value");
    wait_ready_nodes(&dev, 1);
}

#[test]
fn sigint_stops_a_server_cleanly_and_it_restarts() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let mut server = Server::start("server", tmp.path(), &[]);
    let token = server.wait_bootstrapped();
    let api = server.api(Some(&token));
    rt_put(&api, "int-key", "int-value");

    server.proc.signal(Signal::SIGINT);
    let status = server
        .proc
        .wait_exit(SHUTDOWN_TIMEOUT)
        .expect("stratus server exits after SIGINT");
    assert!(
        status.success(),
        "exit status after SIGINT: {status}; stderr: {}",
        server.proc.stderr()
    );

    server.restart();
    assert_eq!(
        server.wait_bootstrapped(),
        token,
        "the admin token survives a restart"
    );
    let got = wait_until("the var to be readable", Duration::from_secs(60), || {
        common::rt().block_on(api.get_var("int-key"))
    });
    assert_eq!(got.as_deref(), Some("int-value"));
    rt_put(&api, "int-key-2", "after-restart");
}

/// A committed write through `api`, retried while a leader is elected.
fn rt_put(api: &common::Api, key: &str, value: &str) {
    wait_until(&format!("writing {key}"), Duration::from_secs(60), || {
        common::rt().block_on(api.put_var(key, value))
    });
}
