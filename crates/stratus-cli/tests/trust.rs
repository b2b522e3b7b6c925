//! Verified runs through the real binary (issue 16's acceptance): on
//! `stratus dev --nodes 5`, `stratus run --trust 3` prints the greeting
//! once, `stratus inspect` shows the agreeing replicas on nodes of distinct
//! owners, and `stratus nodes ls --json` shows the winners' raised
//! reputation. What cannot be verified is refused saying why.

mod common;

use std::collections::BTreeSet;

use common::{tenant_token, Dev};
use serde_json::Value;

const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/wasm/hello.wat");

#[test]
fn a_verified_run_prints_the_agreed_greeting_once_and_shows_the_votes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 5, 10);
    let out = dev.cli(&["run", "--name", "hi", "--trust", "3", HELLO, "--", "world"]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "Hello, world!\n");

    let out = dev.cli(&["inspect", "hi"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("trust:      3 (agreed)"),
        "{}",
        out.stdout
    );
    let out = dev.cli(&["inspect", "hi", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let votes = v["trust"]["votes"].as_array().expect("votes").clone();
    assert!(votes.len() >= 2, "{votes:?}");
    let owners: BTreeSet<&str> = votes.iter().filter_map(|x| x["owner"].as_str()).collect();
    assert_eq!(
        owners.len(),
        votes.len(),
        "one replica per owner: {votes:?}"
    );
    let results: BTreeSet<&str> = votes.iter().filter_map(|x| x["result"].as_str()).collect();
    assert_eq!(results.len(), 1, "{votes:?}");
    assert!(votes.iter().all(|x| x["verdict"] == "won"), "{votes:?}");

    // The winners' nodes have a better record than the others.
    let out = dev.cli(&["nodes", "ls", "--json"]);
    let nodes: Vec<Value> = serde_json::from_str(&out.stdout).expect("json");
    let winners: BTreeSet<&str> = votes.iter().filter_map(|x| x["node"].as_str()).collect();
    for n in &nodes {
        let id = n["info"]["id"].as_str().expect("id");
        let score = n["reputation"]["score"].as_u64().expect("score");
        assert_eq!(score, u64::from(winners.contains(id)), "{n}");
    }

    // A service has no single result: refused, saying why.
    let spec = root.path().join("svc.yaml");
    std::fs::write(
        &spec,
        format!("version: 1\nname: svc\nkind: service\nwasm: {{ module: {HELLO} }}\nmarket: {{ trust: 3 }}\n"),
    )
    .expect("spec");
    let out = dev.cli(&["deploy", &spec.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("no single result"), "{}", out.stderr);

    // Only the operator sets the stake (or the fee): a lender cannot zero
    // it for itself nor raise it to shut others out.
    let lena = tenant_token(&dev, "lena");
    let out = dev.cli_env(
        &["market", "fee", "--stake", "1"],
        &[("STRATUS_TOKEN", &lena)],
    );
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.contains("only the pool operator"),
        "{}",
        out.stderr
    );
    let out = dev.cli(&["market", "fee", "--stake", "700", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["trusted_stake"], 700);
    let out = dev.cli_env(&["market", "fee", "--json"], &[("STRATUS_TOKEN", &lena)]);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        v["trusted_stake"], 700,
        "the stake is public: lenders see what they would hold"
    );
}
