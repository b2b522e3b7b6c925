//! `stratus bench ingress`: HTTP requests per second through the ingress,
//! beside nginx serving the same page, each measured by wrk in the same
//! run on this machine.
//!
//! Four rows, the same bytes answered each time:
//!
//! * **nginx** serving the page from a file (the reference);
//! * **ingress → nginx**: the ingress's proxy alone, its router dialing
//!   nginx on loopback (what the door, routing and forwarding cost);
//! * **WASM component**: `examples/wasm/http.wasm` served by the runtime
//!   directly (a fresh instance per request);
//! * **ingress → WASM service**: the whole path of a request from outside —
//!   a local cloud's replica routes it by `Host`, dials the instance over
//!   its node's tunnel link (QUIC, TLS to the node's key inside), the node
//!   hands it to the component.
//!
//! wrk and everything it measures share this machine's cores.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_ingress::{Conn, Dialing, Route, Router};
use stratus_runtime::{Executor, HttpDoor, TaskSpec, WasmExecutor};
use tokio::net::{TcpListener, TcpStream};

use crate::error::{bail, Context, Result};

const COMPONENT: &[u8] = include_bytes!("../../../examples/wasm/http.wasm");
const HOST: &str = "bench.example.com";

/// What wrk measured.
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// A latency of wrk's (`812.00us`, `1.20ms`, `2.01s`) in ms.
fn ms(s: &str) -> Option<f64> {
    let (n, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

/// Runs wrk against `url` with `Host: host`.
fn wrk(url: &str, host: &str, secs: u64, connections: usize) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-H",
            &format!("Host: {host}"),
            url,
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running wrk (apt install wrk; scripts/setup-toolchain.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("{url} answered errors: {}", line.trim());
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let rps = field("Requests/sec:").and_then(|v| v.parse().ok());
    let p50 = field("50%").and_then(|v| ms(&v));
    let p99 = field("99%").and_then(|v| ms(&v));
    match (rps, p50, p99) {
        (Some(rps), Some(p50_ms), Some(p99_ms)) => Ok(Wrk {
            rps,
            p50_ms,
            p99_ms,
        }),
        _ => bail!("cannot read wrk's output: {text}"),
    }
}

/// nginx serving `page` as `/` on a free port, until [`stop_nginx`].
fn nginx(dir: &Path, page: &[u8]) -> Result<(std::process::Child, SocketAddr)> {
    use std::os::unix::fs::PermissionsExt;
    let port = crate::util::free_port_run(1)?;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), page)?;
    // Its workers run as another user: they must be able to read the page.
    for d in [dir, www.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {pid};\nerror_log {err};\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; default_type text/plain;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ root {www}; }} }} }}\n",
            pid = dir.join("nginx.pid").display(),
            err = dir.join("error.log").display(),
            www = www.display(),
        ),
    )?;
    let child = Command::new("nginx")
        .args(["-c", &conf.to_string_lossy(), "-p", &dir.to_string_lossy()])
        .stdin(Stdio::null())
        .spawn()
        .context("starting nginx (apt install nginx-light)")?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!(
                "nginx did not listen on {addr} (see {})",
                dir.join("error.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, addr))
}

/// Stops the nginx of `dir` (its workers too: killing the master alone
/// would leave them running).
fn stop_nginx(dir: &Path, mut child: std::process::Child) {
    let conf = dir.join("nginx.conf");
    let _ = Command::new("nginx")
        .args([
            "-s",
            "stop",
            "-c",
            &conf.to_string_lossy(),
            "-p",
            &dir.to_string_lossy(),
        ])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

/// A router sending every host's requests to one address.
struct To(SocketAddr);

impl Router for To {
    fn route(&self, _host: &str) -> Option<Route> {
        Some(Route {
            port: self.0.port(),
            instances: vec!["nginx".into()],
        })
    }
    fn dial(&self, _instance: String, _port: u16) -> Dialing {
        let addr = self.0;
        Box::pin(async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as Conn)
        })
    }
}

/// Serves `router` on a free loopback port.
async fn ingress_to(router: Arc<dyn Router>) -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(stratus_ingress::serve(
        l,
        router,
        stratus_http::Limits::default(),
        std::future::pending(),
    ));
    Ok(addr)
}

/// The component served by the runtime on a free loopback port.
async fn component() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let mut spec = TaskSpec::new("bench", Arc::new(COMPONENT.to_vec()));
    spec.limits.memory_bytes = 64 << 20;
    spec.http = Some(HttpDoor {
        listener: Arc::new(l),
        published: Vec::new(),
        egress: Arc::new(|_| false),
    });
    let exec = WasmExecutor::new()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    tokio::spawn(async move {
        exec.run(spec, tx, tokio_util::sync::CancellationToken::new())
            .await
    });
    Ok(addr)
}

/// A local cloud with the component deployed as a service exposed as
/// [`HOST`]: the cloud (kept alive) and its ingress.
async fn cloud(dir: &Path) -> Result<(stratus_node::dev::DevCloud, SocketAddr)> {
    use stratus_state::Command as Cmd;
    let cloud = stratus_node::dev::start(stratus_node::dev::DevConfig {
        ingress_port: Some(0),
        ..crate::util::dev_config(dir, 1, 1)?
    })
    .await?;
    let control = cloud.replicas[0].control.clone().context("no control")?;
    let ingress = cloud.replicas[0].ingress_addr.context("no ingress")?;
    let now = stratus_control::now_ms();
    let hash = stratus_state::workloads::module_hash(COMPONENT);
    control
        .write(Cmd::PutTenantModule {
            tenant: stratus_types::ADMIN_TENANT.into(),
            bytes: COMPONENT.to_vec(),
            now_ms: now,
        })
        .await?;
    let file = stratus_spec::parse_file(
        &format!(
            "version: 1\nname: web\nkind: service\nwasm: {{ module: m.wasm }}\n\
             resources: {{ memory_mb: 64 }}\nexpose: {{ http: {{ host: {HOST} }} }}\n"
        ),
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| crate::error::BenchError::Check(e.to_string()))?;
    control
        .write(Cmd::DeployNetworked {
            deploy: Box::new(Cmd::DeployWorkload {
                tenant: stratus_types::ADMIN_TENANT.into(),
                spec: Box::new(file.spec),
                module: hash,
                now_ms: now,
            }),
            network: file.network,
        })
        .await?;
    // Up once a request through the ingress is answered.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(page) = get(ingress, HOST, "/").await {
            if page.contains("hello from wasm") {
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("the service did not answer through the ingress within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((cloud, ingress))
}

/// GET `path` of `host` from `addr` (HTTP/1.0): the whole answer.
async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .map_err(|_| crate::error::BenchError::Check(format!("{addr} did not answer in 10 s")))??;
    Ok(out)
}

/// Runs the benchmark: `secs` seconds of wrk with `connections` open
/// connections per row.
pub(crate) async fn ingress(secs: u64, connections: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let page = format!("hello from wasm: GET / (host {HOST})\n");
    let nginx_dir = dir.path().join("nginx");
    let (nginx, nginx_addr) = nginx(&nginx_dir, page.as_bytes())?;
    let measured = measure(nginx_addr, &page, secs, connections, dir.path()).await;
    stop_nginx(&nginx_dir, nginx);
    measured
}

/// The rows, nginx running at `nginx_addr`.
async fn measure(
    nginx_addr: SocketAddr,
    page: &str,
    secs: u64,
    connections: usize,
    dir: &Path,
) -> Result<()> {
    let proxy = ingress_to(Arc::new(To(nginx_addr))).await?;
    let wasm = component().await?;
    let (_cloud, full) = cloud(dir).await?;
    // Every row answers the same bytes.
    for (name, addr) in [
        ("nginx", nginx_addr),
        ("proxy", proxy),
        ("component", wasm),
        ("cloud", full),
    ] {
        let answer = get(addr, HOST, "/").await?;
        if !answer.ends_with(page) {
            bail!("{name} answered {answer:?}, not the page");
        }
    }
    println!(
        "HTTP GET of a {}-byte page, wrk -t1 -c{connections} -d{secs}s per row",
        page.len()
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>10}",
        "path", "requests/s", "p50 ms", "p99 ms", "vs nginx"
    );
    let rows = [
        ("nginx, static file (reference)", nginx_addr),
        ("ingress -> nginx (proxy alone)", proxy),
        ("WASM component (runtime alone)", wasm),
        ("ingress -> WASM service (cloud)", full),
    ];
    let mut base = None;
    for (name, addr) in rows {
        let w = tokio::task::spawn_blocking({
            let url = format!("http://{addr}/");
            move || wrk(&url, HOST, secs, connections)
        })
        .await??;
        let reference = *base.get_or_insert(w.rps);
        println!(
            "{name:<34} {:>12.0} {:>10.2} {:>10.2} {:>9.3}×",
            w.rps,
            w.p50_ms,
            w.p99_ms,
            w.rps / reference
        );
    }
    Ok(())
}
