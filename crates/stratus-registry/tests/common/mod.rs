//! Test support: a real registry on loopback (Debian's `docker-registry`),
//! skopeo to push and inspect, and a tiny OCI image builder.
//!
//! Every tool is required: a missing one fails the test with a message
//! naming the package (see scripts/setup-toolchain.sh), it never skips.

#![allow(clippy::unwrap_used, dead_code, missing_docs)]

pub mod image;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest as _;

/// Panics with an install hint when `tool` is not on PATH.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is required by this test but is not installed: \
         apt-get install {package} (scripts/setup-toolchain.sh installs it)"
    );
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A `docker-registry serve` process with filesystem storage in a temp dir,
/// killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The storage root (`docker/registry/v2/...` lives below it).
    pub storage: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `Some((user, pass))` it requires htpasswd auth.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        require("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir_all(&storage).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, pass)) = auth {
            require("htpasswd", "apache2-utils");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd failed: {out:?}");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: stratus-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("registry.log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut reg = Registry {
            child,
            addr,
            storage,
            log,
            _dir: dir,
        };
        reg.wait_ready();
        reg
    }

    /// Waits until `GET /v2/` answers 200 or 401 (a generous bound: this is
    /// readiness, not a timing assertion).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited with {status}: {}", self.log());
            }
            if let Some(code) = http_status(&self.addr, "/v2/") {
                if code == 200 || code == 401 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {}: {}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `docker://ADDR/REPO:TAG`.
    pub fn docker_ref(&self, repo: &str, tag: &str) -> String {
        format!("docker://{}/{repo}:{tag}", self.addr)
    }

    /// The registry's on-disk data file of a blob.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs skopeo with `args`, panicking with its output on failure; returns stdout.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    require("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Pushes the layout `src` (its `tag`) to `dest` (`docker://...`).
pub fn push(src: &Path, tag: &str, dest: &str, creds: Option<&str>, extra: &[&str]) {
    let src = format!("oci:{}:{tag}", src.display());
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend(extra);
    args.extend([src.as_str(), dest]);
    skopeo(&args);
}

/// `skopeo inspect --raw` of a registry image: the manifest bytes as served.
pub fn raw_manifest(docker_ref: &str, creds: Option<&str>) -> Vec<u8> {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(docker_ref);
    skopeo(&args)
}

/// Collects progress reports.
#[derive(Default)]
pub struct Progress(pub std::sync::Mutex<Vec<stratus_registry::PullProgress>>);

impl Progress {
    pub fn callback(&self) -> impl Fn(stratus_registry::PullProgress) + Send + Sync + '_ {
        move |p| self.0.lock().unwrap().push(p)
    }

    pub fn take(&self) -> Vec<stratus_registry::PullProgress> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Names of the files in the layout's `blobs/sha256`.
pub fn blob_files(layout: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
