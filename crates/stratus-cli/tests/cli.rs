//! The command line itself: help, and clear errors when the API is
//! unreachable or a node is unknown, and a quiet end when the reader of
//! our output goes away.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cli, free_port, Server, STRATUS};

#[test]
fn help_lists_the_subcommands() {
    let out = cli(&["--help"]).success("stratus --help");
    for sub in [
        "dev", "server", "node", "status", "nodes", "replicas", "tenants", "vars", "openapi",
        "bench",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "--help lists `{sub}`:\n{out}"
        );
    }
    let bad = cli(&["no-such-command"]);
    assert!(!bad.status.success(), "an unknown subcommand fails");
    assert!(
        bad.stderr.contains("no-such-command"),
        "and names it: {}",
        bad.stderr
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    use std::io::Read;
    // `stratus openapi | head -c 10`: the OpenAPI document is far larger.
    let mut child = std::process::Command::new(STRATUS)
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 10];
    stdout.read_exact(&mut head).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn status_against_a_dead_port_says_the_api_cannot_be_reached() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(&["status", "--api", &url, "--token", "x"]);
    assert!(!out.status.success(), "status must fail: {}", out.stdout);
    assert!(
        out.stderr.contains("cannot reach the Stratus API") && out.stderr.contains(&url),
        "stderr says the API at {url} cannot be reached: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn showing_an_unknown_node_fails_clearly() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let server = Server::start("server", tmp.path(), &[]);
    let token = server.wait_bootstrapped();
    let url = server.api_url();

    let unknown = "f".repeat(64);
    for id in [unknown.as_str(), "no-such-node"] {
        let out = cli(&["nodes", "show", id, "--api", &url, "--token", &token]);
        assert!(
            !out.status.success(),
            "nodes show {id} must fail: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains("no node matches") && out.stderr.contains(id),
            "stderr says no node matches {id:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("not_found"), "{}", out.stderr);
    }

    // A wrong token is refused too, with a message rather than a crash.
    let out = cli(&["nodes", "ls", "--api", &url, "--token", "wrong"]);
    assert!(
        !out.status.success(),
        "a wrong token must fail: {}",
        out.stdout
    );
    assert!(out.stderr.contains("401"), "{}", out.stderr);
}
