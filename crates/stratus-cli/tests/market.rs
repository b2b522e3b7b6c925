//! The market through the real binary (issue 15): `stratus account` (the
//! operator deposits and withdraws; a tenant sees its balance, history and
//! statement, and nobody else's; overdrawing is refused with the shortfall)
//! and lenders' offers (`stratus nodes offer`, `stratus market offers`).

mod common;

use std::time::Duration;

use common::{tenant_token, wait_priced, wait_until, Dev};
use serde_json::Value;

#[test]
fn accounts_deposits_withdrawals_and_statements() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    let token_of = |name: &str| tenant_token(&dev, name);
    let bob = token_of("bob");
    let eve = token_of("eve");
    let as_ = |token: &str, args: &[&str]| dev.cli_env(args, &[("STRATUS_TOKEN", token)]);

    // The acceptance form: no reference needed.
    let out = dev.cli(&["account", "deposit", "bob", "1000000"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = dev.cli(&[
        "account",
        "withdraw",
        "bob",
        "250000",
        "--reference",
        "payout 7",
    ]);
    assert!(out.status.success(), "{}", out.stderr);

    // bob's own view: exactly tenant, balance, held.
    let out = as_(&bob, &["account", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["balance", "held", "tenant"]);
    assert_eq!(v["tenant"], "bob");
    assert_eq!(v["balance"], 750_000);
    assert_eq!(v["held"], 0);

    // Overdrawing: refused, the shortfall named, nothing moved.
    let out = dev.cli(&["account", "withdraw", "bob", "750001"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("short by 1"), "{}", out.stderr);
    let out = dev.cli(&["account", "--tenant", "bob", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["balance"], 750_000);

    // Bad amounts never reach the server.
    for bad in ["1.5", "-3", "lots", "0"] {
        let out = dev.cli(&["account", "deposit", "bob", bad]);
        assert!(!out.status.success(), "{bad}");
    }

    // History and statement.
    let out = as_(&bob, &["account", "history", "--json"]);
    let h: Value = serde_json::from_str(&out.stdout).expect("json");
    let reasons: Vec<&str> = h["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["deposit", "withdrawal"]);
    let out = as_(&bob, &["account", "statement", "--from", "2020-01-01"]);
    assert!(out.status.success(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "seq,at,reason,from,to,amount,refs");
    assert!(
        lines[1].contains(",deposit,external,tenant:bob,1000000,"),
        "{}",
        out.stdout
    );
    assert!(lines[2].contains("payout 7"), "{}", out.stdout);
    let out = as_(
        &bob,
        &[
            "account",
            "statement",
            "--from",
            "2020-01-01",
            "--to",
            "2020-02-01",
        ],
    );
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);

    // eve: her own (empty) account, nobody else's, and no operator powers.
    let out = as_(&eve, &["account", "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["balance"], 0);
    for args in [
        &["account", "--tenant", "bob"][..],
        &["account", "history", "--tenant", "bob"][..],
        &["account", "deposit", "eve", "5"][..],
        &["account", "withdraw", "bob", "5"][..],
    ] {
        let out = as_(&eve, args);
        assert!(!out.status.success(), "{args:?}: {}", out.stdout);
    }
    let out = as_(&eve, &["account", "history", "--json"]);
    let h: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(h["entries"].as_array().map(Vec::len), Some(0));
}

#[test]
fn lenders_price_their_nodes_and_the_market_lists_them() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 2, 10);
    let bob = tenant_token(&dev, "bob");
    let offers = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["market", "offers", "--json"];
        all.extend_from_slice(args);
        let out = dev.cli(&all);
        assert!(out.status.success(), "{}", out.stderr);
        serde_json::from_str(&out.stdout).expect("json")
    };
    // Every dev node starts with the small default offer.
    let list = wait_until("two offers", Duration::from_secs(60), || {
        let list = offers(&[]);
        if list.len() == 2 {
            Ok(list)
        } else {
            Err(format!("{list:?}"))
        }
    });
    assert!(list
        .iter()
        .all(|o| o["offer"]["cpu_second"] == 1000 && o["offer"]["per_task"] == 100));

    // dev-node-j is lent by lender-j: lender-1 prices its own node, not
    // lender-0's; bob prices neither.
    let out = dev.cli(&["tenants", "token", "lender-1"]);
    assert!(out.status.success(), "{}", out.stderr);
    let lender1 = out
        .stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    for (token, node) in [(&bob, "dev-node-0"), (&lender1, "dev-node-0")] {
        let out = dev.cli_env(
            &["nodes", "offer", node, "--cpu-second", "1"],
            &[("STRATUS_TOKEN", token)],
        );
        assert!(!out.status.success());
        assert!(out.stderr.contains("only its owner"), "{}", out.stderr);
    }
    let out = dev.cli_env(
        &["nodes", "offer", "dev-node-1", "--cpu-second", "3"],
        &[("STRATUS_TOKEN", &lender1)],
    );
    assert!(out.status.success(), "{}", out.stderr);

    let out = dev.cli(&[
        "nodes",
        "offer",
        "dev-node-0",
        "--cpu-second",
        "5",
        "--egress-gib",
        "2",
        "--available",
        "mon-fri 18:00-08:00, sat-sun",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = dev.cli(&["nodes", "offer", "dev-node-1", "--available", "someday"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("is not a window"), "{}", out.stderr);

    let list = offers(&[]);
    let listed: Vec<(&str, u64)> = list
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or_default(),
                o["offer"]["cpu_second"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(listed, [("dev-node-1", 3), ("dev-node-0", 5)]);
    assert_eq!(
        list[1]["offer"]["available"],
        "mon-fri 18:00-08:00, sat-sun"
    );
    assert_eq!(list[0]["available_now"], true);
    assert_eq!(offers(&["--max-cpu-second", "4"]).len(), 1);
    assert_eq!(offers(&["--region", "nowhere"]).len(), 0);
    let out = dev.cli(&["market", "offers", "--energy", "coal-ish"]);
    assert!(!out.status.success());

    let out = dev.cli(&["nodes", "offer", "dev-node-1", "--withdraw"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(offers(&[]).len(), 1);
}

/// The audit log through the real binary (issue 15, item 6): a deposit and
/// a run are recorded, a tenant sees only its own records, and
/// `stratus audit verify` (the client recomputing the chain and the
/// replicas' signatures) exits 0. (That one changed byte of a stored record
/// fails verification is `stratus-state`'s
/// `audit::tests::verify_fails_after_any_one_byte_of_a_stored_record_is_changed`,
/// on the same verifier.)
#[test]
fn the_audit_log_records_a_deposit_and_a_run_and_verifies() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    let token_of = |name: &str| tenant_token(&dev, name);
    let bob = token_of("bob");
    let eve = token_of("eve");
    let as_ = |token: &str, args: &[&str]| dev.cli_env(args, &[("STRATUS_TOKEN", token)]);
    wait_until("the node", Duration::from_secs(60), || {
        let out = dev.cli(&["nodes", "ls", "--json"]);
        if out.stdout.contains("ready") {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    let out = dev.cli(&["account", "deposit", "bob", "1000000"]);
    assert!(out.status.success(), "{}", out.stderr);
    let hello = format!(
        "{}/../../examples/wasm/hello.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = as_(&bob, &["run", &hello, "--", "world"]);
    assert_eq!(out.stdout, "Hello, world!\n", "stderr: {}", out.stderr);

    let kinds_of = |out: &common::CliOutput| -> Vec<(String, Vec<String>)> {
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        v["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| {
                let tenants = r["tenants"]
                    .as_array()
                    .expect("tenants")
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                (r["kind"].as_str().unwrap_or_default().to_string(), tenants)
            })
            .collect()
    };
    // The operator sees everything, bob his own records only.
    let out = dev.cli(&["audit", "ls", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let all = kinds_of(&out);
    for kind in [
        "tenant.create",
        "ledger.deposit",
        "workload.deploy",
        "instance.schedule",
    ] {
        assert!(
            all.iter().any(|(k, _)| k == kind),
            "{kind} missing: {all:?}"
        );
    }
    let out = as_(&bob, &["audit", "ls", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let mine = kinds_of(&out);
    assert!(mine.iter().any(|(k, _)| k == "ledger.deposit"), "{mine:?}");
    assert!(mine.iter().any(|(k, _)| k == "workload.deploy"), "{mine:?}");
    assert!(
        mine.iter().all(|(_, t)| t.contains(&"bob".to_string())),
        "{mine:?}"
    );
    let out = as_(&eve, &["audit", "ls", "--json"]);
    let eves = kinds_of(&out);
    assert!(
        eves.iter().all(|(_, t)| t == &["eve".to_string()]),
        "{eves:?}"
    );
    // Another tenant's records, or verification, are the operator's.
    assert!(!as_(&eve, &["audit", "ls", "--tenant", "bob"])
        .status
        .success());
    assert!(!as_(&eve, &["audit", "verify"]).status.success());
    let out = dev.cli(&["audit", "ls", "--since", "1h"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("ledger.deposit"), "{}", out.stdout);

    let out = dev.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("audit log verified"), "{}", out.stdout);
    let key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("cluster key: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the cluster key is printed")
        .to_string();
    let out = dev.cli(&["audit", "verify", "--cluster-key", &key]);
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    let out = dev.cli(&["audit", "verify", "--cluster-key", &"ab".repeat(32)]);
    assert_ne!(out.status.code(), Some(0), "another cluster key pinned");
    assert!(out.stderr.contains("not a replica"), "{}", out.stderr);
}

/// The acceptance on a local cloud: bob deposits, runs a task on a
/// lender's node, and the money moves exactly — bob pays the charge, the
/// lender and the pool operator get their shares, the total is unchanged.
/// An order no offer fits is refused with the reason.
#[test]
fn a_paid_run_moves_exactly_the_charge_to_lender_and_operator() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    let bob = tenant_token(&dev, "bob");
    let as_bob = |args: &[&str]| dev.cli_env(args, &[("STRATUS_TOKEN", bob.as_str())]);
    let balance = |tenant: &str| -> u64 {
        let out = dev.cli(&["account", "--tenant", tenant, "--json"]);
        assert!(out.status.success(), "{}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        v["balance"].as_u64().expect("balance")
    };
    wait_priced(&dev);
    let out = dev.cli(&["account", "deposit", "bob", "1000000"]);
    assert!(out.status.success(), "{}", out.stderr);
    let hello = format!(
        "{}/../../examples/wasm/hello.wat",
        env!("CARGO_MANIFEST_DIR")
    );

    // A maximum under every node's worst case: no offer fits, nothing held.
    let out = as_bob(&["run", &hello, "--max-price", "10", "--", "world"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("no offer fits"), "{}", out.stderr);
    assert!(out.stderr.contains("maximum price 10"), "{}", out.stderr);
    assert_eq!(balance("bob"), 1_000_000);

    let out = as_bob(&["run", &hello, "--prefer", "cheapest", "--", "world"]);
    assert_eq!(out.stdout, "Hello, world!\n", "stderr: {}", out.stderr);
    // The last usage report closes the deal just after the exit.
    let held = wait_until("the deal to close", Duration::from_secs(30), || {
        let out = as_bob(&["account", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        if v["held"] == 0 {
            Ok(v)
        } else {
            Err(out.stdout)
        }
    });
    let charge = 1_000_000 - held["balance"].as_u64().expect("balance");
    let lender = balance("lender-0");
    let operator = balance("admin");
    assert!(charge >= 100, "at least the per-task price: {charge}");
    assert_eq!(lender + operator, charge, "the sum is unchanged");
    assert_eq!(operator, charge * 500 / 10_000, "the pool's 5%");
    let out = dev.cli(&["market", "deals", "--json"]);
    assert_eq!(out.stdout.trim(), "[]", "no deal left open");
    let out = dev.cli(&["market", "fee"]);
    assert!(out.stdout.contains("500 basis points"), "{}", out.stdout);
    let out = dev.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
}

/// Signed orders: once bob registers an order key, `stratus run` signs its
/// orders with it; an order signed with another key, or not signed, is
/// refused.
#[test]
fn orders_are_signed_by_the_requesters_key_and_others_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    let bob = tenant_token(&dev, "bob");
    wait_priced(&dev);
    assert!(dev
        .cli(&["account", "deposit", "bob", "10000000"])
        .status
        .success());
    let keys = root.path().join("bob-key");
    let other = root.path().join("other-key");
    let as_bob = |dir: &std::path::Path, args: &[&str]| {
        dev.cli_env(
            args,
            &[
                ("STRATUS_TOKEN", bob.as_str()),
                ("STRATUS_ORDER_KEY_DIR", &dir.to_string_lossy()),
            ],
        )
    };
    let out = as_bob(&keys, &["account", "order-key", "--create"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("signs its orders"), "{}", out.stdout);
    let hello = format!(
        "{}/../../examples/wasm/hello.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = |dir: &std::path::Path| {
        as_bob(
            dir,
            &["run", &hello, "--max-price", "1000000", "--", "world"],
        )
    };
    let out = run(&keys);
    assert_eq!(out.stdout, "Hello, world!\n", "stderr: {}", out.stderr);
    // A key bob never registered (eve's): refused, nothing runs.
    let out = dev.cli_env(
        &["account", "order-key", "--create", "--tenant", "eve"],
        &[("STRATUS_ORDER_KEY_DIR", &other.to_string_lossy())],
    );
    assert!(!out.status.success(), "eve does not exist yet");
    assert!(dev.cli(&["tenants", "create", "eve"]).status.success());
    let out = dev.cli_env(
        &["account", "order-key", "--create", "--tenant", "eve"],
        &[("STRATUS_ORDER_KEY_DIR", &other.to_string_lossy())],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let out = run(&other);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("not tenant bob's order key"),
        "{}",
        out.stderr
    );
    // No key on this machine: the order is unsigned, refused.
    std::fs::remove_file(other.join("node.key")).expect("remove");
    let out = run(&other);
    assert!(!out.status.success());
    assert!(out.stderr.contains("not signed"), "{}", out.stderr);
    // Unregistered: unsigned orders are taken again.
    let out = as_bob(&keys, &["account", "order-key", "--remove"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = run(&other);
    assert_eq!(out.stdout, "Hello, world!\n", "stderr: {}", out.stderr);
}
