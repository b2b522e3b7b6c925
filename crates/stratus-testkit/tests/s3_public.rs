//! Public artifacts on a real cluster, seen by a plain HTTP client: an
//! anonymous download from a bucket with a public-read policy works and the
//! same download from a private bucket is refused (issue 19's acceptance),
//! another tenant reads the public bucket only, and a browser's CORS
//! preflight is answered by the bucket's rules through the node's gateway.

#![allow(clippy::unwrap_used)]

use anyhow::Result;
use stratus_s3::fuzzing::sign_v4;
use stratus_testkit::{Cluster, Options};

const AGENTS: usize = 4;

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

async fn start() -> Result<Cluster> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = true;
    start_s3_cluster(opts).await
}

/// A request to the gateway at `endpoint`, SigV4-signed with `key` or
/// anonymous; answers the status, the headers (lower-case) and the body.
async fn send(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    key: Option<&(String, String)>,
) -> Result<(u16, reqwest::header::HeaderMap, String)> {
    let host = endpoint.trim_start_matches("http://");
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{endpoint}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(body.to_vec())?;
    if let Some((ak, sk)) = key {
        sign_v4(&mut req, ak, sk, "us-east-1");
    }
    let resp = reqwest::Client::new()
        .execute(reqwest::Request::try_from(req)?)
        .await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Ok((status, headers, resp.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_anonymous_client_downloads_public_artifacts_and_nothing_else() -> Result<()> {
    let cluster = start().await?;
    let a = create_key(&cluster, "tenant-a").await?;
    let b = create_key(&cluster, "tenant-b").await?;
    let s3 = cluster.s3_url(0)?;
    let artifact = b"release tarball bytes".to_vec();
    for (path, body) in [
        ("/artifacts", &b""[..]),
        ("/artifacts/build-1.tar.gz", &artifact[..]),
        ("/private-a", &b""[..]),
        ("/private-a/secret.txt", &b"secret"[..]),
    ] {
        let (status, _, text) = send(&s3, "PUT", path, &[], body, Some(&a)).await?;
        assert_eq!(status, 200, "PUT {path}: {text}");
    }
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::artifacts/*"}]}"#;
    let (status, _, text) = send(
        &s3,
        "PUT",
        "/artifacts?policy",
        &[],
        policy.as_bytes(),
        Some(&a),
    )
    .await?;
    assert_eq!(status, 204, "{text}");

    // The acceptance: a plain anonymous GET downloads from the public
    // bucket and is refused on the private one.
    let resp = reqwest::get(format!("{s3}/artifacts/build-1.tar.gz")).await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await?.to_vec(), artifact);
    let resp = reqwest::get(format!("{s3}/private-a/secret.txt")).await?;
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().await?.contains("AccessDenied"));

    // Anonymous writes, listings and configuration stay refused.
    for (method, path) in [
        ("PUT", "/artifacts/build-1.tar.gz"),
        ("DELETE", "/artifacts/build-1.tar.gz"),
        ("GET", "/artifacts"),
        ("GET", "/artifacts?policy"),
        ("PUT", "/artifacts?policy"),
    ] {
        let (status, _, text) = send(&s3, method, path, &[], b"x", None).await?;
        assert_eq!(status, 403, "anonymous {method} {path}: {text}");
    }
    // Another tenant reads the public artifact like anyone, and nothing else.
    let (status, _, text) =
        send(&s3, "GET", "/artifacts/build-1.tar.gz", &[], b"", Some(&b)).await?;
    assert_eq!((status, text.as_bytes()), (200, &artifact[..]));
    let (status, _, text) = send(&s3, "GET", "/private-a/secret.txt", &[], b"", Some(&b)).await?;
    assert_eq!(status, 403, "{text}");
    let (status, _, text) = send(
        &s3,
        "DELETE",
        "/artifacts/build-1.tar.gz",
        &[],
        b"",
        Some(&b),
    )
    .await?;
    assert_eq!(status, 403, "{text}");

    // CORS through the node's gateway.
    let cors = "<CORSConfiguration><CORSRule><AllowedOrigin>https://ci.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>";
    let (status, _, text) = send(
        &s3,
        "PUT",
        "/artifacts?cors",
        &[],
        cors.as_bytes(),
        Some(&a),
    )
    .await?;
    assert_eq!(status, 200, "{text}");
    let preflight = |origin: &'static str| {
        let s3 = s3.clone();
        async move {
            let h = [("origin", origin), ("access-control-request-method", "GET")];
            send(&s3, "OPTIONS", "/artifacts/build-1.tar.gz", &h, b"", None).await
        }
    };
    let (status, headers, _) = preflight("https://ci.example.com").await?;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://ci.example.com"[..])
    );
    let (status, headers, _) = preflight("https://evil.example.net").await?;
    assert_eq!(status, 403);
    assert!(headers.get("access-control-allow-origin").is_none());
    cluster.shutdown().await;
    Ok(())
}
