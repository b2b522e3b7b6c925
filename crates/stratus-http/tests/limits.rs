//! The limits of [`stratus_http::serve`], played by hostile clients on real
//! sockets.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use stratus_http::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any answer may take in these tests (a bound, not a measurement).
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = hyper::service::service_fn(|_req| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    tokio::spawn(stratus_http::serve(listener, service, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads until the peer closes or `PATIENCE` passes; returns what came and
/// whether the connection was closed.
async fn read_all(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (got, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let (addr, _stop) = start(Limits {
        header_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = read_all(&mut s).await;
    assert!(
        closed,
        "a slowloris client kept its connection for {PATIENCE:?}"
    );
    // Honest clients are still served.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_all(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn an_oversize_request_head_is_refused_with_431() {
    let (addr, _stop) = start(Limits {
        max_header_bytes: 16 << 10,
        ..Limits::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(64 << 10);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before everything is written.
    let _ = s.write_all(req.as_bytes()).await;
    let (got, closed) = read_all(&mut s).await;
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(closed);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (addr, _stop) = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    // Two clients hold both slots (a request each, kept alive).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    // A third is not served while they stay.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "a connection beyond the cap was served");
    // One leaves: the third is served.
    drop(held.pop());
    let (got, _) = read_all(&mut third).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// A server whose handler reads the whole body: 200 with its length, or
/// 400 with the read error.
async fn start_reading(limits: Limits) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper::service::service_fn(|req: http::Request<stratus_http::TimedBody>| async {
        let (status, text) = match req.into_body().collect().await {
            Ok(b) => (200, format!("got {}", b.to_bytes().len())),
            Err(e) => (400, e.to_string()),
        };
        let mut resp = http::Response::new(Full::new(Bytes::from(text)));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok::<_, Infallible>(resp)
    });
    tokio::spawn(stratus_http::serve(
        listener,
        service,
        limits,
        std::future::pending(),
    ));
    addr
}

fn body_limits() -> Limits {
    Limits {
        body_timeout: Duration::from_secs(1),
        body_min_bytes: 1024,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_client_that_stalls_its_body_is_cut_off() {
    let addr = start_reading(body_limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[7u8; 100]).await.unwrap();
    // ...and nothing more.
    let (got, closed) = read_all(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        closed,
        "a stalled body kept its connection for {PATIENCE:?}"
    );
    assert!(
        text.starts_with("HTTP/1.1 400") && text.contains("the request body stalled"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_body_is_cut_off() {
    let addr = start_reading(body_limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    // A byte every 100 ms never leaves the body idle for a whole second.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        if tokio::time::Instant::now() > deadline {
            break false;
        }
        if s.write_all(b"x").await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    };
    assert!(
        closed,
        "a trickling body kept its connection for {PATIENCE:?}"
    );
    assert!(
        String::from_utf8_lossy(&got).contains("the request body stalled"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn honest_bodies_are_read_whole() {
    let addr = start_reading(body_limits()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    // In parts, with pauses shorter than the timeout.
    for _ in 0..3 {
        s.write_all(&[1u8; 100_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (got, _) = read_all(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("got 300000"),
        "{text}"
    );
}
