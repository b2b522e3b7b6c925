//! The ingress against real HTTP servers on loopback, through a router
//! that dials them by instance name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// An instance: answers `NAME HOST PATH XFF CONNECTION BODY-LENGTH`.
async fn instance(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let line = format!(
                        "{name} {} {} {} {} {}",
                        h("host"),
                        req.uri(),
                        h("x-forwarded-for"),
                        h("x-secret-hop"),
                        h("x-forwarded-proto"),
                    );
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let text = format!("{line} {}", body.len());
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("connection", "x-backend-hop")
                            .header("x-backend-hop", "internal")
                            .body(Full::new(Bytes::from(text)))
                            .unwrap(),
                    )
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[derive(Default)]
struct Table {
    hosts: HashMap<String, Route>,
    addrs: HashMap<String, SocketAddr>,
    dials: AtomicUsize,
}

struct Routes(Mutex<Table>);

impl Router for Routes {
    fn route(&self, host: &str) -> Option<Route> {
        let t = self.0.lock().unwrap();
        t.hosts.get(host).map(|r| Route {
            port: r.port,
            instances: r.instances.clone(),
        })
    }
    fn dial(&self, instance: String, _port: u16) -> Dialing {
        let t = self.0.lock().unwrap();
        t.dials.fetch_add(1, Ordering::SeqCst);
        let addr = t.addrs.get(&instance).copied();
        Box::pin(async move {
            let addr = addr.ok_or_else(|| {
                io::Error::new(io::ErrorKind::ConnectionRefused, format!("no {instance}"))
            })?;
            Ok(Box::new(TcpStream::connect(addr).await?) as Conn)
        })
    }
}

async fn door(routes: Arc<Routes>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve(l, routes, Limits::default(), std::future::pending()));
    addr
}

/// Sends raw `request` on a fresh connection and reads the whole answer
/// (the request asks to close).
async fn ask(door: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(door).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn get(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close, x-secret-hop\r\nX-Secret-Hop: 1\r\n\r\n")
}

async fn setup() -> (Arc<Routes>, SocketAddr) {
    let mut t = Table::default();
    t.addrs.insert("a1".into(), instance("a1").await);
    t.addrs.insert("a2".into(), instance("a2").await);
    t.addrs.insert("b1".into(), instance("b1").await);
    t.hosts.insert(
        "app.example.com".into(),
        Route {
            port: 8080,
            instances: vec!["a1".into(), "a2".into()],
        },
    );
    t.hosts.insert(
        "other.example".into(),
        Route {
            port: 80,
            instances: vec!["b1".into()],
        },
    );
    t.hosts.insert(
        "idle.example".into(),
        Route {
            port: 80,
            instances: Vec::new(),
        },
    );
    let routes = Arc::new(Routes(Mutex::new(t)));
    let addr = door(routes.clone()).await;
    (routes, addr)
}

#[tokio::test]
async fn requests_go_by_host_to_the_instances_in_turn_with_proxy_headers() {
    let (_routes, door) = setup().await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let out = ask(door, &get("App.Example.com:7480", "/hits?x=1")).await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        let body = out.rsplit("\r\n\r\n").next().unwrap();
        let f: Vec<&str> = body.split(' ').collect();
        // The host as sent, the path, who asked, the client's hop-by-hop
        // header dropped, the protocol said.
        assert_eq!(
            &f[1..],
            [
                "App.Example.com:7480",
                "/hits?x=1",
                "127.0.0.1",
                "-",
                "http",
                "0"
            ],
            "{body}"
        );
        seen.push(f[0].to_string());
        // The instance's own hop-by-hop header does not reach the client.
        assert!(!out.to_lowercase().contains("x-backend-hop"), "{out}");
    }
    assert!(
        seen.contains(&"a1".into()) && seen.contains(&"a2".into()),
        "{seen:?}"
    );
    let out = ask(door, &get("other.example", "/")).await;
    assert!(
        out.ends_with("b1 other.example / 127.0.0.1 - http 0"),
        "{out}"
    );
}

#[tokio::test]
async fn bodies_are_forwarded_and_connections_kept() {
    let (routes, door) = setup().await;
    let body = "x".repeat(100_000);
    let mut s = TcpStream::connect(door).await.unwrap();
    for _ in 0..3 {
        let req = format!(
            "POST /up HTTP/1.1\r\nHost: other.example\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        let out = String::from_utf8_lossy(&buf[..n]);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.ends_with(" 100000"), "{out}");
    }
    // One connection to the instance served the three requests.
    let dials = routes.0.lock().unwrap().dials.load(Ordering::SeqCst);
    assert_eq!(dials, 1);
}

#[tokio::test]
async fn unknown_hosts_idle_services_and_dead_instances_get_clear_answers() {
    let (routes, door) = setup().await;
    let out = ask(door, &get("nobody.example", "/")).await;
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    assert!(
        out.contains("no service is exposed as nobody.example"),
        "{out}"
    );
    let out = ask(door, &get("idle.example", "/")).await;
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    let out = ask(
        door,
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let long = format!("{}.example", "a".repeat(300));
    let out = ask(door, &get(&long, "/")).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // One instance is gone: a request without a body goes to the other.
    routes.0.lock().unwrap().addrs.remove("a1");
    for _ in 0..3 {
        let out = ask(door, &get("app.example.com", "/")).await;
        assert!(out.contains("\r\n\r\na2 "), "{out}");
    }
    // All are gone: the client is told, not left waiting.
    routes.0.lock().unwrap().addrs.clear();
    let out = ask(door, &get("other.example", "/")).await;
    assert!(out.starts_with("HTTP/1.1 502"), "{out}");
    assert!(out.contains("no b1"), "the router's reason is said: {out}");
}
