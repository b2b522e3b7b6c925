//! Workloads through the real binary: `stratus run` streams output and exits
//! with the task's code; `stratus deploy` of a 3-replica service shows three
//! running instances on three different nodes in `stratus ps`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{wait_until, Dev};
use serde_json::Value;

fn examples(path: &str) -> String {
    format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a client command with `--dev-dir` first (so it never lands after `--`).
#[test]
fn run_prints_the_output_and_exits_with_the_code() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    wait_until("the node", Duration::from_secs(60), || {
        let out = dev.cli(&["nodes", "ls", "--json"]);
        if out.stdout.contains("ready") {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });

    let out = dev.cli(&["run", &examples("wasm/hello.wat"), "--", "world"]);
    assert_eq!(out.stdout, "Hello, world!\n", "stderr: {}", out.stderr);
    assert_eq!(out.status.code(), Some(0));

    let out = dev.cli(&["run", &examples("wasm/hello.wasm"), "--", "wasm"]);
    assert_eq!(out.stdout, "Hello, wasm!\n", "stderr: {}", out.stderr);

    // A guest that exits 7: the command exits 7.
    let dir = tempfile::tempdir().expect("tempdir");
    let seven = dir.path().join("seven.wat");
    std::fs::write(
        &seven,
        "(module (import \"wasi_snapshot_preview1\" \"proc_exit\" (func $e (param i32))) (memory (export \"memory\") 1) (func (export \"_start\") (call $e (i32.const 7))))",
    )
    .expect("write");
    let out = dev.cli(&["run", &seven.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", out.stderr);

    // A malformed module is refused at upload with a clear error: nothing is deployed.
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0garbage").expect("write");
    let before = dev.cli(&["ps", "--all", "--json"]).stdout;
    let out = dev.cli(&["run", &bad.to_string_lossy()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        out.stderr.contains("invalid module") && out.stderr.contains("HTTP 400"),
        "{}",
        out.stderr
    );
    assert_eq!(
        dev.cli(&["ps", "--all", "--json"]).stdout,
        before,
        "nothing was deployed"
    );
}

#[test]
fn a_deployed_service_runs_three_replicas_on_three_nodes() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 3, 10);
    wait_until("3 nodes", Duration::from_secs(60), || {
        let out = dev.cli(&["nodes", "ls", "--json"]);
        if out.stdout.matches("\"ready\"").count() == 3 {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    let out = dev.cli(&["deploy", &examples("specs/ticker.yaml")]);
    assert!(out.status.success(), "{}", out.stderr);
    let nodes = wait_until(
        "3 running instances on 3 nodes",
        Duration::from_secs(60),
        || {
            let out = dev.cli(&["ps", "--json"]);
            let v: Value =
                serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.stdout))?;
            let running: Vec<&Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["state"] == "running")
                .collect();
            let nodes: BTreeSet<String> = running
                .iter()
                .map(|i| i["node"].as_str().unwrap_or_default().to_string())
                .collect();
            if running.len() == 3 && nodes.len() == 3 {
                Ok(nodes)
            } else {
                Err(out.stdout)
            }
        },
    );
    assert_eq!(nodes.len(), 3);
    // Human output too, and the logs and events.
    let ps = dev.cli(&["ps"]).stdout;
    assert_eq!(
        ps.lines()
            .filter(|l| l.contains("admin/ticker") && l.contains("running"))
            .count(),
        3,
        "{ps}"
    );
    wait_until("ticks in the logs", Duration::from_secs(30), || {
        let out = dev.cli(&["logs", "ticker"]);
        if out.stdout.contains("tick 1") {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    let inspect = dev.cli(&["inspect", "ticker"]).stdout;
    assert!(
        inspect.contains("scheduled") && inspect.contains("started"),
        "{inspect}"
    );
    let stop = dev.cli(&["stop", "ticker"]);
    assert!(stop.status.success(), "{}", stop.stderr);
    wait_until("all stopped", Duration::from_secs(30), || {
        let out = dev.cli(&["ps", "--json"]);
        if out.stdout.trim() == "[]" {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
}

#[path = "../../stratus-testkit/src/wasm_padding.rs"]
mod wasm_padding;

/// Modules are objects (issue 14): a module larger than 64 MiB (a real
/// program with 65 MiB of incompressible padding) streams up through
/// `stratus run`, into the object store, down to the node chunk by chunk,
/// and runs.
#[test]
fn run_of_a_module_over_64_mib_prints_its_output() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 1, 10);
    wait_until("the node", Duration::from_secs(60), || {
        let out = dev.cli(&["nodes", "ls", "--json"]);
        if out.stdout.contains("ready") {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    let hello = std::fs::read(examples("wasm/hello.wasm")).expect("hello.wasm");
    let big = root.path().join("big.wasm");
    let module = wasm_padding::padded_module(&hello, 65 << 20);
    assert!(module.len() > 64 << 20);
    std::fs::write(&big, &module).expect("write");
    let out = dev.cli(&["run", &big.to_string_lossy(), "--", "big"]);
    assert_eq!(out.stdout, "Hello, big!\n", "stderr: {}", out.stderr);
    assert_eq!(out.status.code(), Some(0));
}
