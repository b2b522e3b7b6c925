//! The service in-process: virtual-hosted-style addressing, anonymous
//! requests, tenant resolution.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use http_body_util::BodyExt;
use stratus_s3::fuzzing::sign_v4;
use stratus_s3::s3s::service::S3Service;
use stratus_s3::s3s::Body;
use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::{Backend, Gateway, PutMeta};

async fn setup() -> (Arc<MemBackend>, Gateway<MemBackend, MemKeys>) {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "photos").await.unwrap();
    let body: stratus_s3::ByteStream = Box::pin(futures::stream::iter([Ok(
        bytes::Bytes::from_static(b"cat picture"),
    )]));
    backend
        .put_object("ta", "photos", "cat.jpg", PutMeta::default(), body, None)
        .await
        .unwrap();
    let keys = Arc::new(
        MemKeys::new()
            .with("AKA", "SKA", "ta")
            .with("AKB", "SKB", "tb"),
    );
    (Arc::clone(&backend), Gateway::new(backend, keys))
}

async fn call(
    service: &S3Service,
    host: &str,
    uri: &str,
    key: Option<(&str, &str)>,
) -> (u16, String) {
    let mut req = http::Request::builder()
        .uri(uri)
        .header("host", host)
        .body(Body::empty())
        .unwrap();
    if let Some((ak, sk)) = key {
        sign_v4(&mut req, ak, sk, "us-east-1");
    }
    let resp = service.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn virtual_hosted_style() {
    let (_, gateway) = setup().await;
    let service = stratus_s3::service_with_domain(gateway, "s3.example.com").unwrap();
    let (status, body) = call(
        &service,
        "photos.s3.example.com",
        "/cat.jpg",
        Some(("AKA", "SKA")),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "cat picture"));
    // Path style still works on the base domain.
    let (status, body) = call(
        &service,
        "s3.example.com",
        "/photos/cat.jpg",
        Some(("AKA", "SKA")),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "cat picture"));
    assert!(stratus_s3::service_with_domain(setup().await.1, "not a domain").is_err());
}

#[tokio::test]
async fn anonymous_and_cross_tenant() {
    let (_, gateway) = setup().await;
    let service = stratus_s3::service(gateway);
    let (status, body) = call(&service, "localhost", "/photos/cat.jpg", None).await;
    assert_eq!(status, 403);
    assert!(body.contains("AccessDenied"), "{body}");
    let (status, body) = call(
        &service,
        "localhost",
        "/photos/cat.jpg",
        Some(("AKB", "SKB")),
    )
    .await;
    // As in AWS: bucket names are global and another tenant's bucket is
    // refused, not hidden (it could grant B access by ACL or policy).
    assert_eq!(status, 403, "tenant B may not read A's object: {body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (status, body) = call(&service, "localhost", "/", Some(("AKB", "SKB"))).await;
    assert_eq!(status, 200);
    assert!(!body.contains("photos"), "B's bucket list: {body}");
    let (status, body) = call(&service, "localhost", "/", Some(("AKA", "SKA"))).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<Name>photos</Name>"),
        "A's bucket list: {body}"
    );
    let (status, body) = call(&service, "localhost", "/", Some(("AKA", "wrong"))).await;
    assert_eq!(status, 403);
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}

#[tokio::test]
async fn serve_and_shut_down() {
    let (_, gateway) = setup().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stratus_s3::serve(listener, gateway, async {
        let _ = stopped.await;
    }));
    // A raw HTTP/1.1 request: anonymous, so 403, but served.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /photos/cat.jpg HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(
        out.starts_with(b"HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A request head past the limit is refused before the gateway sees it.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(stratus_http_limit() + 1024);
    let req =
        format!("GET /photos/cat.jpg HTTP/1.1\r\nhost: localhost\r\nx-amz-meta-big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

fn stratus_http_limit() -> usize {
    stratus_s3::default_limits().max_header_bytes
}

/// A client that sends its headers and part of a PUT body, then stalls, is
/// cut off after the body timeout, and nothing is stored.
#[tokio::test]
async fn a_stalled_upload_is_cut_off_and_stores_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (backend, gateway) = setup().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = stratus_http::Limits {
        body_timeout: std::time::Duration::from_secs(1),
        ..stratus_s3::default_limits()
    };
    tokio::spawn(stratus_s3::serve_service(
        listener,
        stratus_s3::service(gateway),
        limits,
        std::future::pending(),
    ));
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/photos/stalled.bin")
        .header("host", "localhost")
        .header("content-length", "1000000")
        .body(())
        .unwrap();
    sign_v4(&mut req, "AKA", "SKA", "us-east-1");
    let mut head = String::from("PUT /photos/stalled.bin HTTP/1.1\r\n");
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&[9u8; 300_000]).await.unwrap();
    // Then nothing: the connection must be closed well before 20 s.
    let mut out = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "a stalled upload kept its connection");
    assert!(
        !String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"),
        "a partial upload was acknowledged: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        backend
            .head_object("ta", "photos", "stalled.bin", None)
            .await
            .is_err(),
        "a partial upload was stored"
    );
}
