//! Shared harness of the `stratus` binary's integration tests: free loopback
//! ports, child processes that are killed on drop, bounded waits, and small
//! HTTP and CLI helpers.
//!
//! Every test file uses only part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod app;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

/// The binary under test.
pub const STRATUS: &str = env!("CARGO_BIN_EXE_stratus");

/// How long a process may take to come up (debug builds on a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- ports

/// A loopback port free for both UDP (QUIC) and TCP (API) right now.
///
/// Ports are taken below the kernel's ephemeral range (32768+ on Linux), so
/// no outgoing client socket can grab the port of a killed process before
/// the test restarts it on the same port. Each call returns a new port.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Spread concurrently running test binaries over the range.
    let offset = (std::process::id() % 400) * 29;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (offset + n) % SPAN).expect("port fits in u16");
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN);
}

// ---------------------------------------------------------------- waits

/// Polls `f` until it returns `Ok`, at most `timeout`; panics with the last
/// observation (`Err`) otherwise.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!(
                        "timed out after {timeout:?} waiting for {what}; last observation: {last}"
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

// ---------------------------------------------------------------- processes

/// A command running the binary with a clean environment: no `STRATUS_*`
/// variable or proxy leaks in from the caller, logs at `warn`.
pub fn stratus_command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(STRATUS);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("STRATUS_") || k.to_ascii_lowercase().ends_with("_proxy") {
            cmd.env_remove(k);
        }
    }
    cmd.env("STRATUS_LOG", "warn");
    // Never let a client command fall back to a real ~/.stratus/dev.
    cmd.env("HOME", std::env::temp_dir().join("stratus-tests-no-home"));
    cmd.args(args);
    cmd
}

/// A child process that is killed (SIGKILL) and reaped on drop.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child process already reaped")
    }
}

/// How long a process asked to stop (SIGTERM) has before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(20);

impl Drop for ChildGuard {
    /// Stops the process as an operator would (SIGTERM: a node stops the
    /// containers it runs, which a SIGKILL would leave running on the
    /// machine), and kills it if it has not exited after [`STOP_WAIT`].
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
                let deadline = Instant::now() + STOP_WAIT;
                while Instant::now() < deadline {
                    if !matches!(c.try_wait(), Ok(None)) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    closed: bool,
}

/// A long-running `stratus` process: stdout is collected line by line,
/// stderr goes to a log file whose tail is printed if the test fails.
pub struct Proc {
    /// Name used in messages and log file names.
    pub name: String,
    args: Vec<String>,
    /// Network namespace it runs in (a [`stratus_testkit::netns::NatLab`]'s).
    netns: Option<String>,
    log_dir: PathBuf,
    starts: u32,
    child: ChildGuard,
    stdout: Arc<(Mutex<Lines>, Condvar)>,
    stderr_path: PathBuf,
}

impl Proc {
    /// Starts `stratus ARGS`, logging stderr under `log_dir`.
    pub fn spawn(name: &str, log_dir: &Path, args: Vec<String>) -> Proc {
        Proc::spawn_in(None, name, log_dir, args)
    }

    /// [`Proc::spawn`] inside network namespace `netns`, if given.
    pub fn spawn_in(netns: Option<&str>, name: &str, log_dir: &Path, args: Vec<String>) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            args,
            netns: netns.map(str::to_string),
            log_dir: log_dir.to_path_buf(),
            starts: 0,
            child: ChildGuard(None),
            stdout: Arc::new((Mutex::new(Lines::default()), Condvar::new())),
            stderr_path: PathBuf::new(),
        };
        p.start();
        p
    }

    fn start(&mut self) {
        assert!(self.child.0.is_none(), "{} is still running", self.name);
        std::fs::create_dir_all(&self.log_dir).expect("creating the log directory");
        self.starts += 1;
        self.stderr_path = self
            .log_dir
            .join(format!("{}.{}.stderr", self.name, self.starts));
        let stderr = std::fs::File::create(&self.stderr_path).expect("creating the stderr log");
        let mut cmd = stratus_command(&self.args);
        if let Some(ns) = &self.netns {
            cmd = stratus_testkit::netns::in_namespace(ns, &cmd);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawning the stratus binary");
        let out = child.stdout.take().expect("piped stdout");
        self.child = ChildGuard(Some(child));
        let shared = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        self.stdout = shared.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let (m, cv) = &*shared;
                if let Ok(mut l) = m.lock() {
                    l.lines.push(line);
                }
                cv.notify_all();
            }
            let (m, cv) = &*shared;
            if let Ok(mut l) = m.lock() {
                l.closed = true;
            }
            cv.notify_all();
        });
    }

    /// Starts the process again with the same arguments (it must have exited).
    pub fn restart(&mut self) {
        self.start();
    }

    /// Its process id.
    pub fn pid(&mut self) -> u32 {
        self.child.child().id()
    }

    /// Waits for a stdout line matching `pred` and returns it.
    pub fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.stdout;
        let mut l = m.lock().expect("stdout lock");
        loop {
            if let Some(line) = l.lines.iter().find(|s| pred(s)) {
                return line.clone();
            }
            if l.closed {
                panic!(
                    "{} exited before printing {what}; stdout:\n{}\nstderr:\n{}",
                    self.name,
                    l.lines.join("\n"),
                    self.stderr()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                panic!(
                    "{} did not print {what} within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    self.name,
                    l.lines.join("\n"),
                    self.stderr()
                );
            }
            l = cv.wait_timeout(l, deadline - now).expect("stdout lock").0;
        }
    }

    /// Everything the process wrote on stderr so far (this run).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends `sig`.
    pub fn signal(&mut self, sig: Signal) {
        let pid = i32::try_from(self.pid()).expect("pid fits in i32");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .unwrap_or_else(|e| panic!("sending {sig} to {}: {e}", self.name));
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let c = self.child.child();
        c.kill().expect("sending SIGKILL");
        c.wait().expect("reaping the killed process");
        self.child.0 = None;
    }

    /// Waits up to `timeout` for the process to exit by itself; reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.child().try_wait().expect("polling the child") {
                self.child.0 = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let err = self.stderr();
            let tail: Vec<&str> = err.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "---- stderr of {} (run {}, last {} lines) ----\n{}",
                self.name,
                self.starts,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------- CLI

/// Result of a finished client command.
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// Stdout of a successful command; panics with stderr otherwise.
    pub fn success(self, what: &str) -> String {
        assert!(
            self.status.success(),
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// Runs `stratus ARGS` to completion (at most 90 s).
pub fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> CliOutput {
    cli_env(args, &[])
}

/// [`cli`] with extra environment variables.
pub fn cli_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> CliOutput {
    cli_in(None, args, env)
}

/// [`cli_env`] inside network namespace `netns` (a
/// [`stratus_testkit::netns::NatLab`]'s), if given.
pub fn cli_in<S: AsRef<std::ffi::OsStr>>(
    netns: Option<&str>,
    args: &[S],
    env: &[(&str, &str)],
) -> CliOutput {
    let mut cmd = stratus_command(args);
    cmd.envs(env.iter().copied());
    if let Some(ns) = netns {
        cmd = stratus_testkit::netns::in_namespace(ns, &cmd);
    }
    let mut child = ChildGuard(Some(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the stratus binary"),
    ));
    let read = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(
        child
            .child()
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .child()
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(st) = child.child().try_wait().expect("polling the child") {
            child.0 = None;
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "`stratus {}` did not finish within 90 s",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

// ---------------------------------------------------------------- HTTP

/// The runtime every HTTP helper runs on (shared by the tests of a binary).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building the tokio runtime")
    })
}

/// A shared HTTP client (no proxy, bounded per request).
pub fn http() -> &'static reqwest::Client {
    static C: OnceLock<reqwest::Client> = OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(25))
            .build()
            .expect("building the HTTP client")
    })
}

/// One replica's API.
#[derive(Clone, Debug)]
pub struct Api {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Bearer token, if any.
    pub token: Option<String>,
}

/// Status code and JSON body (`Null` when the body is not JSON).
pub type HttpResult = Result<(u16, Value), String>;

impl Api {
    /// An API at `url` with `token`.
    pub fn new(url: &str, token: Option<&str>) -> Api {
        Api {
            url: url.to_string(),
            token: token.map(str::to_string),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> HttpResult {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| format!("{e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| format!("{e}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// GET `path`.
    pub async fn get_async(&self, path: &str) -> HttpResult {
        self.send(http().get(format!("{}{path}", self.url))).await
    }

    /// PUT `body` to `path`.
    pub async fn put_async(&self, path: &str, body: &Value) -> HttpResult {
        self.send(http().put(format!("{}{path}", self.url)).json(body))
            .await
    }

    /// GET `path` (blocking).
    pub fn get(&self, path: &str) -> HttpResult {
        rt().block_on(self.get_async(path))
    }

    /// PUT `body` to `path` (blocking).
    pub fn put(&self, path: &str, body: &Value) -> HttpResult {
        rt().block_on(self.put_async(path, body))
    }

    /// `/v1/health` when it answers 200.
    pub fn health(&self) -> Result<Value, String> {
        match self.get("/v1/health")? {
            (200, v) => Ok(v),
            (s, v) => Err(format!("/v1/health answered {s}: {v}")),
        }
    }

    /// Writes admin var `key` (async); `Ok` only on 200.
    pub async fn put_var(&self, key: &str, value: &str) -> Result<u64, String> {
        match self
            .put_async(
                &format!("/v1/tenants/admin/vars/{key}"),
                &serde_json::json!({ "value": value }),
            )
            .await?
        {
            (200, v) => v["index"]
                .as_u64()
                .ok_or_else(|| format!("write answer without index: {v}")),
            (s, v) => Err(format!("HTTP {s}: {v}")),
        }
    }

    /// Reads admin var `key` through this replica (async): `Ok(None)` on 404.
    pub async fn get_var(&self, key: &str) -> Result<Option<String>, String> {
        match self
            .get_async(&format!("/v1/tenants/admin/vars/{key}"))
            .await?
        {
            (200, v) => v["value"]
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| format!("var answer without value: {v}")),
            (404, _) => Ok(None),
            (s, v) => Err(format!("HTTP {s}: {v}")),
        }
    }

    /// All admin vars as this replica has applied them.
    pub fn vars(&self) -> Result<BTreeMap<String, String>, String> {
        match self.get("/v1/tenants/admin/vars")? {
            (200, Value::Array(vs)) => Ok(vs
                .iter()
                .filter_map(|v| {
                    Some((
                        v["key"].as_str()?.to_string(),
                        v["value"].as_str()?.to_string(),
                    ))
                })
                .collect()),
            (s, v) => Err(format!("listing vars answered {s}: {v}")),
        }
    }
}

// ---------------------------------------------------------------- servers

/// A `stratus server` process.
pub struct Server {
    /// The process.
    pub proc: Proc,
    /// Node id it printed at start.
    pub id: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// QUIC port.
    pub quic_port: u16,
    /// API port.
    pub api_port: u16,
}

impl Server {
    /// Starts `stratus server` on fresh ports with `extra` flags and waits
    /// for its start line.
    pub fn start(name: &str, root: &Path, extra: &[&str]) -> Server {
        let data_dir = root.join(name);
        let quic_port = free_port();
        let api_port = free_port();
        let mut args: Vec<String> = vec![
            "server".into(),
            "--data-dir".into(),
            data_dir.to_string_lossy().into(),
            "--name".into(),
            name.into(),
            "--listen".into(),
            format!("127.0.0.1:{quic_port}"),
            "--api-listen".into(),
            format!("127.0.0.1:{api_port}"),
            "--log".into(),
            "warn".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(name, &root.join("logs"), args);
        let mut s = Server {
            proc,
            id: String::new(),
            data_dir,
            quic_port,
            api_port,
        };
        s.id = s.wait_started();
        s
    }

    fn wait_started(&self) -> String {
        let line = self.proc.wait_line("its start line", START_TIMEOUT, |l| {
            l.starts_with("stratus server: node ")
        });
        let id = line
            .split_whitespace()
            .nth(3)
            .expect("node id in the start line")
            .to_string();
        assert_eq!(id.len(), 64, "node id in {line:?}");
        assert!(
            line.contains(&format!("127.0.0.1:{}", self.quic_port))
                && line.contains(&self.api_url()),
            "start line {line:?} names the ports it was given"
        );
        id
    }

    /// Restarts a stopped server with the same flags, data and ports; checks
    /// that it kept its identity.
    pub fn restart(&mut self) {
        self.proc.restart();
        let id = self.wait_started();
        assert_eq!(
            id, self.id,
            "{} kept its node id across restarts",
            self.proc.name
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// `127.0.0.1:PORT` of QUIC.
    pub fn quic_addr(&self) -> String {
        format!("127.0.0.1:{}", self.quic_port)
    }

    /// Its API with `token`.
    pub fn api(&self, token: Option<&str>) -> Api {
        Api::new(&self.api_url(), token)
    }

    /// The admin token file of a bootstrapping server.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("control").join("admin.token")
    }

    /// The join token file of a bootstrapping server.
    pub fn join_token_path(&self) -> PathBuf {
        self.data_dir.join("control").join("join.token")
    }

    /// Waits until the cluster is bootstrapped (admin token committed and
    /// accepted, join token file written) and returns the admin token.
    pub fn wait_bootstrapped(&self) -> String {
        let token = wait_until("the admin token to be accepted", START_TIMEOUT, || {
            let t = std::fs::read_to_string(self.admin_token_path())
                .map_err(|e| format!("admin token file: {e}"))?;
            let t = t.trim().to_string();
            match self.api(Some(&t)).get("/v1/whoami")? {
                (200, _) => Ok(t),
                (s, v) => Err(format!("whoami answered {s}: {v}")),
            }
        });
        wait_until("the join token to be committed", START_TIMEOUT, || {
            if !self.join_token_path().exists() {
                return Err("no join.token file yet".into());
            }
            Ok(())
        });
        token
    }
}

// ---------------------------------------------------------------- dev cloud

/// A `stratus dev` process.
pub struct Dev {
    /// The process.
    pub proc: Proc,
    /// Its folder.
    pub dir: PathBuf,
    /// Its ingress's port (on 127.0.0.1).
    pub ingress_port: u16,
}

impl Dev {
    /// Starts `stratus dev` with one replica and `nodes` agents on fresh
    /// ports; waits until it says it is up.
    pub fn start(name: &str, root: &Path, nodes: usize, node_lost_after_s: u64) -> Dev {
        let dir = root.join(name);
        let ingress_port = free_port();
        let args: Vec<String> = vec![
            "dev".into(),
            "--dev-dir".into(),
            dir.to_string_lossy().into(),
            "--nodes".into(),
            nodes.to_string(),
            "--replicas".into(),
            "1".into(),
            "--port".into(),
            free_port().to_string(),
            "--api-port".into(),
            free_port().to_string(),
            // Many clouds run at once: no S3 gateway on the default port.
            "--s3-port".into(),
            "0".into(),
            "--ingress-port".into(),
            ingress_port.to_string(),
            "--node-lost-after".into(),
            node_lost_after_s.to_string(),
            "--log".into(),
            "warn".into(),
        ];
        let d = Dev {
            proc: Proc::spawn(name, &root.join("logs"), args),
            dir,
            ingress_port,
        };
        d.wait_up();
        d
    }

    fn wait_up(&self) {
        self.proc
            .wait_line("\"Stratus local cloud is up.\"", START_TIMEOUT, |l| {
                l.contains("Stratus local cloud is up.")
            });
    }

    /// Starts the stopped cloud again on the same folder and ports.
    pub fn restart(&mut self) {
        self.proc.restart();
        self.wait_up();
    }

    /// Runs a client command against this cloud (found through `--dev-dir`,
    /// given first so that commands ending in `-- ARGS` work too).
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_env(args, &[])
    }

    /// [`Dev::cli`] with extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> CliOutput {
        let dir = self.dir.to_string_lossy();
        let mut all = vec!["--dev-dir", dir.as_ref()];
        all.extend_from_slice(args);
        cli_env(&all, env)
    }

    /// Waits until at least `n` nodes are ready.
    pub fn wait_ready(&self, n: usize) {
        wait_until(&format!("{n} ready nodes"), Duration::from_secs(90), || {
            let out = self.cli(&["nodes", "ls", "--json"]);
            if out.stdout.matches("\"ready\"").count() >= n {
                Ok(())
            } else {
                Err(out.stdout)
            }
        });
    }

    /// The process id of node `j`, from the pid file `stratus dev` writes.
    pub fn node_pid(&self, j: usize) -> i32 {
        std::fs::read_to_string(self.dir.join(format!("node-{j}/pid")))
            .expect("the node's pid file")
            .trim()
            .parse()
            .expect("a pid")
    }
}

// ---------------------------------------------------------------- nodes

/// `nodes ls --json` as (id, name, status) triples, sorted by id.
pub fn parse_nodes(json: &str) -> Result<Vec<(String, String, String)>, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("nodes ls --json: {e}: {json}"))?;
    let arr = v
        .as_array()
        .ok_or_else(|| format!("nodes ls --json is not an array: {json}"))?;
    let mut out: Vec<(String, String, String)> = arr
        .iter()
        .map(|n| {
            (
                n["info"]["id"].as_str().unwrap_or_default().to_string(),
                n["info"]["name"].as_str().unwrap_or_default().to_string(),
                n["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------- market

/// Creates tenant `name` on `dev` (waiting for the API) and returns its
/// token.
pub fn tenant_token(dev: &Dev, name: &str) -> String {
    wait_until("the API", Duration::from_secs(60), || {
        let out = dev.cli(&["tenants", "create", name]);
        match out.stdout.lines().last() {
            Some(t) if out.status.success() => Ok(t.trim().to_string()),
            _ => Err(out.stderr),
        }
    })
}

/// Waits until dev-node-0 is registered and priced.
pub fn wait_priced(dev: &Dev) {
    wait_until("the priced node", Duration::from_secs(60), || {
        let out = dev.cli(&["market", "offers", "--json"]);
        if out.stdout.contains("dev-node-0") {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
}
