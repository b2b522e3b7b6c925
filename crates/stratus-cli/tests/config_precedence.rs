//! Settings precedence: command-line flag > STRATUS_* environment > config file > default.
//! Observed through the API address `stratus server` reports at start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// Starts a server and returns the API address it reports.
fn reported_api(config: &std::path::Path, env: Option<u16>, flag: Option<u16>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratus"));
    cmd.arg("server")
        .arg("--config")
        .arg(config)
        .arg("--log")
        .arg("warn")
        .env_remove("STRATUS_API_LISTEN")
        .env_remove("STRATUS_DATA_DIR")
        .env_remove("STRATUS_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(p) = env {
        cmd.env("STRATUS_API_LISTEN", format!("127.0.0.1:{p}"));
    }
    if let Some(p) = flag {
        cmd.arg("--api-listen").arg(format!("127.0.0.1:{p}"));
    }
    let mut child = Guard(cmd.spawn().expect("spawn stratus server"));
    let out = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("read first line");
    assert!(
        line.starts_with("stratus server: node "),
        "unexpected first line {line:?}"
    );
    line.split(" api ")
        .nth(1)
        .expect("api field")
        .trim()
        .to_string()
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let quic = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    let config = dir.path().join("stratus.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\ndata_dir = \"{}\"\n[server]\nlisten = \"127.0.0.1:{quic}\"\napi = \"127.0.0.1:{file_port}\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    assert_eq!(
        reported_api(&config, None, None),
        format!("http://127.0.0.1:{file_port}")
    );
    assert_eq!(
        reported_api(&config, Some(env_port), None),
        format!("http://127.0.0.1:{env_port}")
    );
    assert_eq!(
        reported_api(&config, Some(env_port), Some(flag_port)),
        format!("http://127.0.0.1:{flag_port}")
    );
}

#[test]
fn a_bad_config_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "version = 1\n[server]\nlisten = 7400\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_stratus"))
        .arg("server")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("listen"), "{err}");
}
