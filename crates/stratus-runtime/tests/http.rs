//! A WASI HTTP component served by the executor (issue 17, item 5): the
//! example component `examples/wasm/http.wasm` (built from
//! `examples/wasm/http/`) answers requests, each in its own instance, and
//! its outbound requests go only where the egress check allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use stratus_runtime::{
    serves_http, Executor, ExitReason, HttpDoor, Output, TaskSpec, WasmExecutor,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const COMPONENT: &[u8] = include_bytes!("../../../examples/wasm/http.wasm");

/// Sends `request` (which asks to close) and reads the whole answer.
async fn ask(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn get(path: &str) -> String {
    // HTTP/1.0: the answer is not chunked.
    format!("GET {path} HTTP/1.0\r\nHost: app.example.com\r\n\r\n")
}

/// A plain HTTP server on loopback answering `outside says hi`.
async fn outside() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "outside says hi";
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    addr
}

/// Serves the component with `egress`; its address, output and stop.
async fn serve(
    egress: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    memory_bytes: u64,
) -> (
    SocketAddr,
    tokio::sync::mpsc::Receiver<Output>,
    CancellationToken,
    tokio::task::JoinHandle<stratus_runtime::Exit>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut spec = TaskSpec::new("web", Arc::new(COMPONENT.to_vec()));
    spec.limits.memory_bytes = memory_bytes;
    spec.http = Some(HttpDoor {
        listener: Arc::new(listener),
        published: Vec::new(),
        egress,
    });
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let run = tokio::spawn(async move {
        WasmExecutor::new()
            .unwrap()
            .run(spec, tx, stop)
            .await
            .expect("served")
    });
    (addr, rx, cancel, run)
}

#[test]
fn only_a_component_exporting_the_handler_serves_http() {
    assert!(serves_http(COMPONENT));
    for other in ["hello.wat", "service.wat"] {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/wasm")
                .join(other),
        )
        .unwrap();
        assert!(!serves_http(&bytes), "{other}");
    }
    assert!(!serves_http(b"not wasm at all"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_answers_each_request_and_stops_when_cancelled() {
    let (addr, mut rx, cancel, run) = serve(Arc::new(|_| false), 64 << 20).await;
    let answers = futures_join(
        (0..8)
            .map(|i| {
                let req = get(&format!("/hello/{i}?x=1"));
                tokio::spawn(async move { ask(addr, &req).await })
            })
            .collect(),
    )
    .await;
    for (i, out) in answers.iter().enumerate() {
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        assert!(
            out.ends_with(&format!(
                "hello from wasm: GET /hello/{i}?x=1 (host app.example.com)\n"
            )),
            "{out}"
        );
    }
    // What the guest printed is the instance's output.
    let mut printed = String::new();
    while printed.matches("served GET").count() < 8 {
        match rx.recv().await.expect("output") {
            Output::Stdout(b) | Output::Stderr(b) => printed.push_str(&String::from_utf8_lossy(&b)),
        }
    }
    cancel.cancel();
    assert_eq!(run.await.unwrap().reason, ExitReason::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_go_only_where_egress_allows() {
    let target = outside().await;
    let (open, _rx, c1, _r1) = serve(Arc::new(|ip: IpAddr| ip.is_loopback()), 64 << 20).await;
    let out = ask(open, &get(&format!("/fetch/{target}/x"))).await;
    assert!(out.ends_with("fetched: 200 outside says hi\n"), "{out}");
    let (closed, _rx2, c2, _r2) = serve(Arc::new(|_| false), 64 << 20).await;
    let out = ask(closed, &get(&format!("/fetch/{target}/x"))).await;
    assert!(out.starts_with("HTTP/1.0 502"), "{out}");
    assert!(out.contains("not fetched"), "{out}");
    c1.cancel();
    c2.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_memory_limit_fails_alone() {
    // Less than the component's initial memory: no instance can be made.
    let (addr, _rx, cancel, _run) = serve(Arc::new(|_| false), 256 << 10).await;
    let out = ask(addr, &get("/")).await;
    assert!(out.starts_with("HTTP/1.0 500"), "{out}");
    assert!(out.contains("did not answer"), "{out}");
    // The door stays open for the next request.
    let again = ask(addr, &get("/")).await;
    assert!(again.starts_with("HTTP/1.0 500"), "{again}");
    cancel.cancel();
}

/// Awaits every handle, in order.
async fn futures_join(handles: Vec<tokio::task::JoinHandle<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
