//! `stratus tenants quota` through the real binary: the operator shows and
//! sets a tenant's quotas (sizes like `10GiB`, `unlimited`, `default`).

mod common;

use std::time::Duration;

use common::{wait_until, Dev};
use serde_json::Value;

#[test]
fn the_operator_shows_and_sets_a_tenants_quotas() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    wait_until("the API", Duration::from_secs(60), || {
        let out = dev.cli(&["tenants", "create", "acme"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    let out = dev.cli(&[
        "tenants",
        "quota",
        "acme",
        "--stored-bytes",
        "10GiB",
        "--workloads",
        "unlimited",
        "--vars",
        "7",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("10.0 GiB"), "{}", out.stdout);
    assert!(out.stdout.contains("unlimited"), "{}", out.stdout);

    let out = dev.cli(&["tenants", "quota", "acme", "--vars", "default", "--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let line = |r: &str| {
        v["quotas"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["resource"] == r).cloned())
            .expect("quota line")
    };
    assert_eq!(line("stored_bytes")["limit"], 10u64 << 30);
    assert_eq!(line("stored_bytes")["default"], false);
    assert_eq!(line("workloads")["limit"], u64::MAX);
    assert_eq!(line("vars")["default"], true);

    let out = dev.cli(&["tenants", "quota", "acme", "--objects", "lots"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("--objects"), "{}", out.stderr);
    let out = dev.cli(&["tenants", "quota", "nobody"]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}
