//! The object store through the real binary: `stratus dev` runs each node as
//! its own process; `stratus put`/`get` round-trip a file; after two node
//! processes are killed the file still reads back and `stratus storage
//! status` shows repair bringing redundancy back to full.

mod common;

use std::time::Duration;

use common::{wait_until, Dev};
use rand::RngCore;
use serde_json::Value;

fn status(dev: &Dev) -> Value {
    let out = dev
        .cli(&["storage", "status", "--json"])
        .success("storage status");
    serde_json::from_str(&out).expect("storage status JSON")
}

#[test]
fn put_get_survive_two_killed_nodes_and_repair_to_full() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 6, 3);
    let out = dev
        .cli(&["bucket", "create", "artifacts"])
        .success("bucket create");
    assert!(out.contains("created bucket artifacts"), "{out}");

    let mut data = vec![0u8; 24 << 20];
    rand::thread_rng().fill_bytes(&mut data);
    let file = root.path().join("release.bin");
    std::fs::write(&file, &data).expect("write");
    let out = dev
        .cli(&["put", &file.to_string_lossy(), "artifacts/v1/release.bin"])
        .success("put");
    assert!(out.contains("stored artifacts/v1/release.bin"), "{out}");

    let back = root.path().join("back.bin");
    dev.cli(&["get", "artifacts/v1/release.bin", &back.to_string_lossy()])
        .success("get");
    assert!(std::fs::read(&back).expect("read") == data, "round trip");
    // Ranged reads (HTTP `Range`): a span across the first chunk boundary,
    // an open end, a suffix; an unsatisfiable one is refused.
    let len = data.len();
    for (range, want) in [
        ("4194000-4194999", &data[4_194_000..4_195_000]),
        (&format!("{}-", len - 7)[..], &data[len - 7..]),
        ("-5", &data[len - 5..]),
    ] {
        let part = root.path().join("part.bin");
        dev.cli(&[
            "get",
            "artifacts/v1/release.bin",
            &part.to_string_lossy(),
            "--range",
            range,
        ])
        .success("ranged get");
        assert!(std::fs::read(&part).expect("read") == want, "range {range}");
    }
    let bad = dev.cli(&[
        "get",
        "artifacts/v1/release.bin",
        "-",
        "--range",
        &format!("{len}-"),
    ]);
    assert!(!bad.status.success(), "a range past the end is refused");
    assert!(bad.stderr.contains("range"), "{}", bad.stderr);

    let ls = dev.cli(&["ls", "artifacts/v1/"]).success("ls");
    assert!(
        ls.contains("v1/release.bin") && ls.contains("24.0 MiB"),
        "{ls}"
    );

    // Kill two node processes.
    for j in [0, 1] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(dev.node_pid(j)),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
    }
    // Still readable, bit-exact, even before they are declared lost.
    std::fs::remove_file(&back).expect("rm");
    dev.cli(&["get", "artifacts/v1/release.bin", &back.to_string_lossy()])
        .success("get with two nodes killed");
    assert!(
        std::fs::read(&back).expect("read") == data,
        "read with 2 nodes down"
    );

    // Repair brings redundancy back to full, and the status says so.
    wait_until(
        "repair to full redundancy",
        Duration::from_secs(120),
        || {
            let s = status(&dev);
            let lost = s["nodes"]
                .as_array()
                .map(|n| n.iter().filter(|n| n["status"] == "lost").count())
                .unwrap_or(0);
            let missing = s["redundancy"]["missing_pieces"]
                .as_u64()
                .unwrap_or(u64::MAX);
            let repaired = s["worker"]["repaired_pieces"].as_u64().unwrap_or(0);
            if lost == 2 && missing == 0 && repaired > 0 {
                Ok(())
            } else {
                Err(format!(
                    "lost {lost}, missing {missing}, repaired {repaired}"
                ))
            }
        },
    );
    let text = dev.cli(&["storage", "status"]).success("storage status");
    assert!(
        text.contains(" 0 degraded") && text.contains("lost"),
        "{text}"
    );

    // A second version, the version list, a delete marker.
    std::fs::write(&file, b"v2").expect("write");
    dev.cli(&["put", &file.to_string_lossy(), "artifacts/v1/release.bin"])
        .success("put v2");
    let versions = dev
        .cli(&["versions", "artifacts", "--json"])
        .success("versions");
    let v: Value = serde_json::from_str(&versions).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{versions}");
    dev.cli(&["rm", "artifacts/v1/release.bin"]).success("rm");
    let out = dev.cli(&["get", "artifacts/v1/release.bin", "-"]);
    assert!(
        !out.status.success() && out.stderr.contains("not_found"),
        "{}",
        out.stderr
    );
}
