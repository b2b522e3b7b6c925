//! Agents as separate `stratus node` processes: failure detection, return
//! with the same identity, and refusal of a wrong join token.

mod common;

use std::time::Duration;

use common::{cli, parse_nodes, wait_until, Proc, Server};

/// Starts `stratus node` against `server` with the join token in `token_file`.
fn agent(server: &Server, name: &str, root: &std::path::Path, token_file: &str) -> Proc {
    agent_with(server, name, root, token_file, &[])
}

/// [`agent`] with more arguments.
fn agent_with(
    server: &Server,
    name: &str,
    root: &std::path::Path,
    token_file: &str,
    extra: &[&str],
) -> Proc {
    let mut args: Vec<String> = vec![
        "node".into(),
        "--data-dir".into(),
        root.join(name).to_string_lossy().into(),
        "--control".into(),
        server.quic_addr(),
        "--join-token-file".into(),
        token_file.into(),
        "--name".into(),
        name.into(),
        "--log".into(),
        "warn".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Proc::spawn(name, &root.join("logs"), args)
}

/// The node id an agent printed at start.
fn agent_id(p: &Proc) -> String {
    let line = p.wait_line("its start line", common::START_TIMEOUT, |l| {
        l.starts_with("stratus node: node ")
    });
    let id = line
        .split_whitespace()
        .nth(3)
        .expect("node id in the start line")
        .to_string();
    assert_eq!(id.len(), 64, "node id in {line:?}");
    id
}

#[test]
fn lost_node_is_detected_and_comes_back_with_its_identity() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let root = tmp.path();
    let server = Server::start(
        "server",
        root,
        &[
            "--heartbeat-interval-ms",
            "200",
            "--node-lost-after-ms",
            "1500",
        ],
    );
    let token = server.wait_bootstrapped();
    let join = server.join_token_path().to_string_lossy().to_string();
    let url = server.api_url();
    let ls = || -> Result<Vec<(String, String, String)>, String> {
        let out = cli(&["nodes", "ls", "--json", "--api", &url, "--token", &token]);
        if !out.status.success() {
            return Err(format!("nodes ls failed: {}", out.stderr));
        }
        parse_nodes(&out.stdout)
    };

    let mut n1 = agent(&server, "n1", root, &join);
    let n2 = agent(&server, "n2", root, &join);
    let id1 = agent_id(&n1);
    let id2 = agent_id(&n2);
    assert_ne!(id1, id2);
    let status_of = |nodes: &[(String, String, String)], id: &str| {
        nodes
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, _, s)| s.clone())
    };

    wait_until("both agents ready", Duration::from_secs(60), || {
        let nodes = ls()?;
        let ready = nodes.iter().filter(|(_, _, s)| s == "ready").count();
        if nodes.len() == 2 && ready == 2 {
            Ok(())
        } else {
            Err(format!("{nodes:?}"))
        }
    });

    n1.kill();
    let nodes = wait_until(
        "the killed agent to be lost",
        Duration::from_secs(60),
        || {
            let nodes = ls()?;
            if status_of(&nodes, &id1).as_deref() == Some("lost") {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!(
        status_of(&nodes, &id2).as_deref(),
        Some("ready"),
        "the live agent stays ready: {nodes:?}"
    );
    let show = cli(&[
        "nodes", "show", "n1", "--json", "--api", &url, "--token", &token,
    ])
    .success("nodes show n1");
    let show: serde_json::Value = serde_json::from_str(&show).expect("nodes show --json");
    assert_eq!(show["info"]["id"], id1.as_str());
    assert_eq!(show["status"], "lost");

    n1.restart();
    assert_eq!(agent_id(&n1), id1, "same data dir, same identity");
    let nodes = wait_until(
        "the restarted agent to be ready",
        Duration::from_secs(60),
        || {
            let nodes = ls()?;
            if status_of(&nodes, &id1).as_deref() == Some("ready") {
                Ok(nodes)
            } else {
                Err(format!("{nodes:?}"))
            }
        },
    );
    let mut ids: Vec<String> = nodes.iter().map(|(i, _, _)| i.clone()).collect();
    ids.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(ids, want, "still exactly the two nodes: {nodes:?}");
    assert_eq!(
        status_of(&nodes, &id2).as_deref(),
        Some("ready"),
        "{nodes:?}"
    );
}

/// Starts a bootstrapped server and an agent with a wrong join token; returns
/// once the agent has exited: (exit status, agent stderr, nodes registered).
fn run_intruder() -> (
    std::process::ExitStatus,
    String,
    Vec<(String, String, String)>,
) {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let root = tmp.path();
    let server = Server::start("server", root, &[]);
    let token = server.wait_bootstrapped();
    let bad = root.join("bad.token");
    std::fs::write(&bad, "not-the-join-token\n").expect("writing the bad token");

    let mut node = agent(&server, "intruder", root, &bad.to_string_lossy());
    let status = node
        .wait_exit(Duration::from_secs(60))
        .expect("an agent with a wrong join token exits by itself");
    let out = cli(&[
        "nodes",
        "ls",
        "--json",
        "--api",
        &server.api_url(),
        "--token",
        &token,
    ])
    .success("nodes ls");
    let nodes = parse_nodes(&out).expect("nodes ls --json");
    (status, node.stderr(), nodes)
}

#[test]
fn wrong_join_token_exits_non_zero_and_registers_nothing() {
    let (status, stderr, nodes) = run_intruder();
    assert!(!status.success(), "exit status {status}; stderr: {stderr}");
    assert!(nodes.is_empty(), "no node registered: {nodes:?}");
}

#[test]
fn wrong_join_token_error_names_the_join_token() {
    let (status, stderr, _) = run_intruder();
    assert!(!status.success(), "exit status {status}; stderr: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "a refusal is an error, not a crash: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("join token"),
        "stderr mentions the join token: {stderr}"
    );
    assert_eq!(status.code(), Some(1), "ordinary error exit: {stderr}");
}

/// `stratus node --price ... --available ...`: the node prices itself when
/// it registers, and the market lists it; a bad price list is refused
/// before anything starts.
#[test]
fn a_node_started_with_prices_is_in_the_market() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let root = tmp.path();
    let server = Server::start("server", root, &[]);
    let token = server.wait_bootstrapped();
    let join = server.join_token_path().to_string_lossy().to_string();
    let url = server.api_url();
    let mut bad = agent_with(&server, "bad", root, &join, &["--price", "gpu-second=3"]);
    let status = bad
        .wait_exit(Duration::from_secs(60))
        .expect("a bad price list stops the node");
    assert!(!status.success());
    assert!(bad.stderr().contains("not a price"), "{}", bad.stderr());
    let _n = agent_with(
        &server,
        "priced",
        root,
        &join,
        &[
            "--price",
            "cpu-second=7,storage-gib-month=5,per-task=3",
            "--available",
            "sat-sun",
        ],
    );
    let offer = wait_until("the node's offer", Duration::from_secs(60), || {
        let out = cli(&[
            "market", "offers", "--json", "--api", &url, "--token", &token,
        ]);
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stderr))?;
        list.into_iter()
            .find(|o| o["name"] == "priced")
            .ok_or_else(|| out.stdout.clone())
    });
    assert_eq!(offer["offer"]["cpu_second"], 7);
    assert_eq!(offer["offer"]["storage_gib_month"], 5);
    assert_eq!(offer["offer"]["per_task"], 3);
    assert_eq!(offer["offer"]["memory_gib_hour"], 0);
    assert_eq!(offer["offer"]["available"], "sat-sun");
    // Its reputation (issue 16): a new node's, shown in both forms.
    let out = cli(&["nodes", "ls", "--json", "--api", &url, "--token", &token]);
    let nodes: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
    let priced = nodes
        .iter()
        .find(|n| n["info"]["name"] == "priced")
        .expect("the priced node");
    assert_eq!(priced["reputation"]["credibility_ppm"], 799_999);
    assert_eq!(priced["reputation"]["eligible"], true);
    assert_eq!(priced["owner_reputation"]["lost"], 0);
    let table = cli(&["nodes", "ls", "--api", &url, "--token", &token]).success("nodes ls");
    assert!(table.contains("REPUTATION"), "{table}");
    assert!(table.contains("79.9%"), "{table}");
}
