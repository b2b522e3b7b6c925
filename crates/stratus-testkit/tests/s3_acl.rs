//! S3 ACLs on a real cluster, played by plain HTTP clients: the bucket's
//! owner (tenant-a), another tenant with valid keys (tenant-b) and an
//! anonymous client, against private, public-read, public-read-write and
//! authenticated-read buckets and objects; tenant-b then plays an attacker
//! changing ACLs it has no WRITE_ACP for; Block Public Access bounds it all.

#![allow(clippy::unwrap_used)]

use anyhow::Result;
use stratus_s3::fuzzing::sign_v4;
use stratus_testkit::{Cluster, Options};

const AGENTS: usize = 4;

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

type Key = (String, String);
/// One expected answer: method, path, headers, who (`None`: anonymous),
/// status.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<&'a Key>,
    u16,
);

/// Sends one request, SigV4-signed with `key` or anonymous; answers the
/// status and the body.
async fn send(
    s3: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    key: Option<&Key>,
) -> Result<(u16, String)> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("{s3}{path}"))
        .header("host", s3.trim_start_matches("http://"));
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
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Asserts the status of each `(method, path, headers, who)`.
async fn expect(s3: &str, cases: &[Case<'_>]) {
    for (method, path, headers, key, want) in cases {
        let body: &[u8] =
            if *method == "PUT" && !path.contains('?') && path.matches('/').count() > 1 {
                b"data"
            } else {
                b""
            };
        let (status, text) = send(s3, method, path, headers, body, *key).await.unwrap();
        let who = key.map_or("anonymous", |k| k.0.as_str());
        assert_eq!(status, *want, "{who} {method} {path} {headers:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acls_grant_what_they_say_to_whom_they_say() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = true;
    let cluster: Cluster = start_s3_cluster(opts).await?;
    let a = create_key(&cluster, "tenant-a").await?;
    let b = create_key(&cluster, "tenant-b").await?;
    let s3 = cluster.s3_url(0)?;
    let (oa, ob) = (Some(&a), Some(&b));
    const NONE: &[(&str, &str)] = &[];
    let acl = |c: &'static str| -> [(&'static str, &'static str); 1] { [("x-amz-acl", c)] };
    let (pr, prw, auth) = (
        acl("public-read"),
        acl("public-read-write"),
        acl("authenticated-read"),
    );

    // The owner sets everything up.
    expect(
        &s3,
        &[
            ("PUT", "/priv", NONE, oa, 200),
            ("PUT", "/pubr", &pr, oa, 200),
            ("PUT", "/prw", &prw, oa, 200),
            ("PUT", "/auth", &auth, oa, 200),
            ("PUT", "/priv/o", NONE, oa, 200),
            ("PUT", "/priv/pub", &pr, oa, 200),
            ("PUT", "/pubr/o", NONE, oa, 200),
            ("PUT", "/auth/o", NONE, oa, 200),
            ("PUT", "/auth/shared", &auth, oa, 200),
        ],
    )
    .await;

    // Anonymous: bucket READ lists, object ACLs decide reads, bucket WRITE
    // writes; nothing else.
    expect(
        &s3,
        &[
            ("GET", "/priv", NONE, None, 403),
            ("GET", "/priv/o", NONE, None, 403),
            ("GET", "/priv/pub", NONE, None, 200),
            ("GET", "/pubr", NONE, None, 200),
            ("GET", "/pubr/o", NONE, None, 403),
            ("PUT", "/pubr/anon", NONE, None, 403),
            ("PUT", "/prw/anon", NONE, None, 200),
            ("DELETE", "/prw/anon", NONE, None, 204),
            ("GET", "/auth", NONE, None, 403),
            ("GET", "/auth/shared", NONE, None, 403),
            ("GET", "/priv?acl", NONE, None, 403),
            ("PUT", "/priv?acl", &pr, None, 403),
            ("PUT", "/prw/o2?acl", &pr, None, 404),
            ("GET", "/", NONE, None, 403),
        ],
    )
    .await;

    // Another tenant is AuthenticatedUsers and itself.
    expect(
        &s3,
        &[
            ("GET", "/auth", NONE, ob, 200),
            ("HEAD", "/auth", NONE, ob, 200),
            ("GET", "/auth/o", NONE, ob, 403),
            ("GET", "/auth/shared", NONE, ob, 200),
            ("PUT", "/auth/x", NONE, ob, 403),
            ("GET", "/priv", NONE, ob, 403),
            ("PUT", "/prw/by-b", NONE, ob, 200),
        ],
    )
    .await;
    // What tenant-b wrote is tenant-b's (its ACL), the bucket owner keeps
    // access to it, and nobody else got any.
    let (status, text) = send(&s3, "GET", "/prw/by-b?acl", NONE, b"", oa).await?;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("<ID>tenant-b</ID>"), "{text}");
    assert!(!text.contains("AllUsers"), "{text}");
    expect(
        &s3,
        &[
            ("GET", "/prw/by-b", NONE, oa, 200),
            ("GET", "/prw/by-b", NONE, ob, 200),
            ("GET", "/prw/by-b", NONE, None, 403),
        ],
    )
    .await;

    // The attacker: tenant-b tries to open what it has no WRITE_ACP for.
    expect(
        &s3,
        &[
            ("PUT", "/priv?acl", &pr, ob, 403),
            ("PUT", "/priv/o?acl", &pr, ob, 403),
            ("PUT", "/pubr?acl", &prw, ob, 403),
            ("PUT", "/auth/shared?acl", &pr, ob, 403),
            ("GET", "/priv?acl", NONE, ob, 403),
            ("GET", "/priv/o", NONE, ob, 403),
        ],
    )
    .await;
    let (_, text) = send(&s3, "GET", "/priv?acl", NONE, b"", oa).await?;
    assert_eq!(text.matches("<Grant>").count(), 1, "still private: {text}");

    // Grants by header: tenant-b may read the ACL, not write it.
    let grant = [("x-amz-grant-read-acp", "id=\"tenant-b\"")];
    let (status, text) = send(&s3, "PUT", "/priv?acl", &grant, b"", oa).await?;
    assert_eq!(status, 200, "{text}");
    expect(
        &s3,
        &[
            ("GET", "/priv?acl", NONE, ob, 200),
            ("PUT", "/priv?acl", &pr, ob, 403),
            ("GET", "/priv", NONE, ob, 403),
        ],
    )
    .await;
    // Grantees must exist; emails cannot be resolved.
    let (status, text) = send(
        &s3,
        "PUT",
        "/priv?acl",
        &[("x-amz-grant-read", "id=\"nobody-here\"")],
        b"",
        oa,
    )
    .await?;
    assert_eq!(
        (status, text.contains("InvalidArgument")),
        (400, true),
        "{text}"
    );
    let (status, text) = send(
        &s3,
        "PUT",
        "/priv?acl",
        &[("x-amz-grant-read", "emailAddress=\"b@example.com\"")],
        b"",
        oa,
    )
    .await?;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("UnresolvableGrantByEmailAddress"), "{text}");

    // Block Public Access: public ACLs are refused, then ignored.
    let block = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>";
    for bucket in ["/priv", "/pubr"] {
        let path = format!("{bucket}?publicAccessBlock");
        let (status, text) = send(&s3, "PUT", &path, NONE, block.as_bytes(), oa).await?;
        assert_eq!(status, 200, "{text}");
    }
    expect(
        &s3,
        &[
            ("PUT", "/priv?acl", &pr, oa, 403),
            ("PUT", "/priv/new", &pr, oa, 403),
            ("PUT", "/priv/o?acl", &pr, oa, 403),
            ("GET", "/pubr", NONE, None, 403),
            ("GET", "/priv/pub", NONE, None, 403),
            ("PUT", "/priv/o?acl", &acl("private"), oa, 200),
        ],
    )
    .await;
    cluster.shutdown().await;
    Ok(())
}
