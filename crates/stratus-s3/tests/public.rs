//! Public artifacts through the S3 API (in-process, in-memory backend):
//! bucket policies, canned ACLs, Block Public Access, CORS and browser form
//! uploads, each played by the attacker it keeps out (an anonymous client,
//! another tenant, a policy naming another bucket, a tampered form).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base64::Engine;
use http_body_util::BodyExt;
use stratus_s3::fuzzing::{sign_post_policy, sign_v4};
use stratus_s3::s3s::service::S3Service;
use stratus_s3::s3s::Body;
use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::{Backend, Gateway, PutMeta};

const A: Option<(&str, &str)> = Some(("AKA", "SKA"));
const B: Option<(&str, &str)> = Some(("AKB", "SKB"));
const ANON: Option<(&str, &str)> = None;

struct Resp {
    status: u16,
    body: String,
}

async fn setup() -> (Arc<MemBackend>, Gateway<MemBackend, MemKeys>) {
    let backend = Arc::new(MemBackend::new());
    for bucket in ["pub", "priv"] {
        backend.create_bucket("ta", bucket).await.unwrap();
        for key in ["art/a.txt", "other.txt"] {
            let body: stratus_s3::ByteStream = Box::pin(futures::stream::iter([Ok(
                bytes::Bytes::from(format!("{bucket}/{key}")),
            )]));
            backend
                .put_object("ta", bucket, key, PutMeta::default(), body, None)
                .await
                .unwrap();
        }
    }
    let keys = Arc::new(
        MemKeys::new()
            .with("AKA", "SKA", "ta")
            .with("AKB", "SKB", "tb"),
    );
    (Arc::clone(&backend), Gateway::new(backend, keys))
}

async fn call(
    service: &S3Service,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
    key: Option<(&str, &str)>,
) -> Resp {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(body.into()).unwrap();
    if let Some((ak, sk)) = key {
        sign_v4(&mut req, ak, sk, "us-east-1");
    }
    let resp = service.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(s: &S3Service, uri: &str, key: Option<(&str, &str)>) -> Resp {
    call(s, "GET", uri, &[], Body::empty(), key).await
}

fn policy(bucket: &str, statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#).replace("$B", bucket)
}

const ALLOW_ART: &str = r#"{"Sid":"art","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::$B/art/*"}"#;

#[tokio::test]
async fn a_public_read_policy_lets_anyone_read_that_and_nothing_else() {
    let (_, gw) = setup().await;
    let s = stratus_s3::service(gw);
    let doc = policy("pub", ALLOW_ART);
    let r = call(&s, "PUT", "/pub?policy", &[], doc.clone(), A).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(&s, "/pub?policy", A).await.body, doc);

    let r = get(&s, "/pub/art/a.txt", ANON).await;
    assert_eq!((r.status, r.body.as_str()), (200, "pub/art/a.txt"));
    let r = call(&s, "HEAD", "/pub/art/a.txt", &[], Body::empty(), ANON).await;
    assert_eq!(r.status, 200);
    let r = get(&s, "/pub/art/a.txt", B).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "pub/art/a.txt"),
        "another tenant reads like anyone"
    );
    // Without s3:ListBucket, a missing key is not told apart from a
    // forbidden one (no probing of key names).
    let r = get(&s, "/pub/art/missing.txt", ANON).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(get(&s, "/pub/art/missing.txt", A).await.status, 404);

    // An anonymous bucket list is refused (only reads can be opened).
    assert_eq!(get(&s, "/", ANON).await.status, 403);

    // Everything the policy does not grant stays refused.
    for (what, status) in [
        ("/pub/other.txt", 403),
        ("/priv/art/a.txt", 403),
        ("/pub", 403),
        ("/pub?policy", 403),
        ("/pub?acl", 403),
        ("/pub/art/a.txt?versionId=null", 403),
        ("/pub/art/a.txt?response-content-type=text/html", 400),
    ] {
        let r = get(&s, what, ANON).await;
        assert_eq!(r.status, status, "anonymous GET {what}: {}", r.body);
    }
    for (method, uri) in [
        ("PUT", "/pub/art/a.txt"),
        ("DELETE", "/pub/art/a.txt"),
        ("PUT", "/pub?policy"),
        ("DELETE", "/pub"),
    ] {
        let r = call(&s, method, uri, &[], "x".to_string(), ANON).await;
        assert_eq!(r.status, 403, "anonymous {method} {uri}: {}", r.body);
        let r = call(&s, method, uri, &[], "x".to_string(), B).await;
        assert!(
            r.status == 403 || r.status == 404,
            "tenant B {method} {uri}: {} {}",
            r.status,
            r.body
        );
    }
    let r = get(&s, "/priv/art/a.txt", B).await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    assert_eq!(get(&s, "/pub/art/a.txt", A).await.status, 200);
    assert_eq!(
        get(&s, "/pub/other.txt", A).await.status,
        200,
        "the owner keeps full control"
    );

    let r = call(&s, "DELETE", "/pub?policy", &[], Body::empty(), A).await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&s, "/pub/art/a.txt", ANON).await.status, 403);
    let r = get(&s, "/pub?policy", A).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("NoSuchBucketPolicy"), "{}", r.body);
}

#[tokio::test]
async fn policies_are_checked_when_written() {
    let (_, gw) = setup().await;
    let s = stratus_s3::service(gw);
    let put = |doc: String| {
        let s = &s;
        async move { call(s, "PUT", "/pub?policy", &[], doc, A).await }
    };
    // A resource of another bucket.
    let r = put(policy("priv", ALLOW_ART)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("MalformedPolicy"), "{}", r.body);
    // Outside the subset: NotImplemented, never stored.
    let write = r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutBucketPolicy","Resource":"arn:aws:s3:::$B"}"#;
    let r = put(policy("pub", write)).await;
    assert_eq!(r.status, 501, "{}", r.body);
    let big = policy("pub", &vec![ALLOW_ART; 200].join(","));
    assert!(put(big).await.status >= 400);
    assert_eq!(
        get(&s, "/pub?policy", A).await.status,
        404,
        "nothing was stored"
    );
    // Another tenant cannot set a policy on the bucket.
    let r = call(&s, "PUT", "/pub?policy", &[], policy("pub", ALLOW_ART), B).await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    assert_eq!(get(&s, "/pub/art/a.txt", ANON).await.status, 403);

    // A deny overrides an allow.
    let deny = r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::$B/art/a.txt"}"#;
    let all = r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::$B/*"}"#;
    assert_eq!(
        put(policy("pub", &format!("{all},{deny}"))).await.status,
        204
    );
    assert_eq!(get(&s, "/pub/art/a.txt", ANON).await.status, 403);
    assert_eq!(get(&s, "/pub/other.txt", ANON).await.status, 200);
    let r = get(&s, "/pub?policyStatus", A).await;
    assert!(r.body.contains("<IsPublic>true</IsPublic>"), "{}", r.body);

    // Listing by prefix condition.
    let list = r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::$B","Condition":{"StringLike":{"s3:prefix":"art/*"}}}"#;
    assert_eq!(put(policy("pub", list)).await.status, 204);
    let r = get(&s, "/pub?list-type=2&prefix=art/", ANON).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("art/a.txt") && !r.body.contains("other.txt"));
    assert_eq!(get(&s, "/pub?list-type=2", ANON).await.status, 403);
    assert_eq!(get(&s, "/pub?prefix=", ANON).await.status, 403);
    assert_eq!(
        get(&s, "/pub/art/a.txt", ANON).await.status,
        403,
        "listing is not reading"
    );
    // Who may list a prefix learns that a key under it is missing, nothing more.
    let head = |uri: &'static str, key| {
        let s = &s;
        async move { call(s, "HEAD", uri, &[], Body::empty(), key).await.status }
    };
    assert_eq!(head("/pub/art/missing", B).await, 404);
    assert_eq!(head("/pub/art/missing", ANON).await, 404);
    assert_eq!(head("/pub/art/a.txt", ANON).await, 403);
    assert_eq!(head("/pub/private/missing", ANON).await, 403);
}

#[tokio::test]
async fn canned_acls_map_onto_public_read_and_block_public_access_holds() {
    let (_, gw) = setup().await;
    let s = stratus_s3::service(gw);
    let acl = |v: &'static str| [("x-amz-acl", v)];
    let r = get(&s, "/pub?policyStatus", A).await;
    assert!(r.body.contains("<IsPublic>false</IsPublic>"), "{}", r.body);
    let r = call(&s, "PUT", "/pub?acl", &acl("public-read"), Body::empty(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(&s, "/pub?policyStatus", A).await;
    assert!(r.body.contains("<IsPublic>true</IsPublic>"), "{}", r.body);
    // A bucket's public-read lists it; its objects keep their own ACLs
    // (AWS's semantics).
    assert_eq!(get(&s, "/pub/other.txt", ANON).await.status, 403);
    assert_eq!(
        get(&s, "/pub/missing", ANON).await.status,
        404,
        "public-read lists"
    );
    assert_eq!(get(&s, "/pub?list-type=2", ANON).await.status, 200);
    let r = get(&s, "/pub?acl", A).await;
    assert!(
        r.body.contains("AllUsers") && r.body.contains("FULL_CONTROL"),
        "{}",
        r.body
    );
    let r = call(&s, "PUT", "/pub?acl", &acl("private"), Body::empty(), A).await;
    assert_eq!(r.status, 200);
    assert_eq!(get(&s, "/pub/other.txt", ANON).await.status, 403);
    assert!(!get(&s, "/pub?acl", A).await.body.contains("AllUsers"));
    // Every canned ACL and grant header, on PutBucketAcl and CreateBucket;
    // AWS service groups are NotImplemented.
    for (i, h) in [
        ("x-amz-acl", "public-read-write"),
        ("x-amz-acl", "authenticated-read"),
        (
            "x-amz-grant-read",
            "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
        ),
        ("x-amz-grant-write", "id=\"tb\""),
    ]
    .into_iter()
    .enumerate()
    {
        let r = call(&s, "PUT", "/pub?acl", &[h], Body::empty(), A).await;
        assert_eq!(r.status, 200, "{h:?}: {}", r.body);
        let r = call(&s, "PUT", &format!("/newbucket{i}"), &[h], Body::empty(), A).await;
        assert_eq!(r.status, 200, "create with {h:?}: {}", r.body);
    }
    let r = call(
        &s,
        "PUT",
        "/pub?acl",
        &acl("log-delivery-write"),
        Body::empty(),
        A,
    )
    .await;
    assert_eq!(r.status, 501, "{}", r.body);
    let r = call(&s, "PUT", "/pub?acl", &acl("public-read"), Body::empty(), B).await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    let r = call(&s, "PUT", "/pub?acl", &acl("public-read"), Body::empty(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Object ACLs.
    let r = call(&s, "PUT", "/pub/o", &acl("private"), "x".to_string(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s, "/pub/o", ANON).await.status, 403);
    let r = call(&s, "PUT", "/pub/o", &acl("public-read"), "x".to_string(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s, "/pub/o", ANON).await.status, 200);
    assert!(get(&s, "/pub/o?acl", A).await.body.contains("AllUsers"));

    // CreateBucket with public-read.
    let r = call(&s, "PUT", "/opened", &acl("public-read"), Body::empty(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&s, "/opened?list-type=2", ANON).await.status, 200);

    // Block Public Access.
    let pab = |a: bool, i: bool, p: bool, r: bool| {
        format!("<PublicAccessBlockConfiguration><BlockPublicAcls>{a}</BlockPublicAcls><IgnorePublicAcls>{i}</IgnorePublicAcls><BlockPublicPolicy>{p}</BlockPublicPolicy><RestrictPublicBuckets>{r}</RestrictPublicBuckets></PublicAccessBlockConfiguration>")
    };
    let r = get(&s, "/pub?publicAccessBlock", A).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = call(
        &s,
        "PUT",
        "/pub?publicAccessBlock",
        &[],
        pab(true, false, true, false),
        A,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(&s, "/pub?publicAccessBlock", A).await;
    assert!(
        r.body.contains("<BlockPublicAcls>true</BlockPublicAcls>"),
        "{}",
        r.body
    );
    for public in ["public-read", "public-read-write", "authenticated-read"] {
        let r = call(&s, "PUT", "/pub?acl", &acl(public), Body::empty(), A).await;
        assert_eq!(r.status, 403, "BlockPublicAcls {public}: {}", r.body);
    }
    let r = call(&s, "PUT", "/pub?policy", &[], policy("pub", ALLOW_ART), A).await;
    assert_eq!(r.status, 403, "BlockPublicPolicy: {}", r.body);
    let r = call(&s, "PUT", "/pub/o", &acl("public-read"), "x".to_string(), A).await;
    assert_eq!(
        r.status, 403,
        "BlockPublicAcls on an object write: {}",
        r.body
    );
    let r = call(&s, "PUT", "/pub/o", &acl("private"), "x".to_string(), A).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &s,
        "PUT",
        "/pub?publicAccessBlock",
        &[],
        pab(false, false, false, false),
        B,
    )
    .await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    // Restrict/Ignore make existing public settings ineffective.
    let r = call(
        &s,
        "PUT",
        "/opened?policy",
        &[],
        policy("opened", ALLOW_ART),
        A,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        &s,
        "PUT",
        "/opened?publicAccessBlock",
        &[],
        pab(false, true, false, true),
        A,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        get(&s, "/opened?list-type=2", ANON).await.status,
        403,
        "IgnorePublicAcls"
    );
    let r = get(&s, "/opened?policyStatus", A).await;
    assert!(r.body.contains("<IsPublic>false</IsPublic>"), "{}", r.body);
    let r = call(
        &s,
        "DELETE",
        "/opened?publicAccessBlock",
        &[],
        Body::empty(),
        A,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&s, "/opened?list-type=2", ANON).await.status, 200);
}

#[tokio::test]
async fn cors_rules_are_validated_and_kept() {
    let (_, gw) = setup().await;
    let s = stratus_s3::service(gw);
    let rule = |origin: &str, method: &str| {
        format!("<CORSRule><AllowedOrigin>{origin}</AllowedOrigin><AllowedMethod>{method}</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>")
    };
    let conf = |rules: String| format!("<CORSConfiguration>{rules}</CORSConfiguration>");
    let r = call(
        &s,
        "PUT",
        "/pub?cors",
        &[],
        conf(rule("https://*.example.com", "GET")),
        A,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = get(&s, "/pub?cors", A).await;
    assert!(
        r.body.contains("https://*.example.com") && r.body.contains("<MaxAgeSeconds>600"),
        "{}",
        r.body
    );
    for bad in [
        conf(rule("https://*.*.com", "GET")),
        conf(rule("*", "PATCH")),
        conf(rule("*", "GET").repeat(101)),
    ] {
        let r = call(&s, "PUT", "/pub?cors", &[], bad, A).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let r = call(&s, "PUT", "/pub?cors", &[], conf(rule("*", "GET")), B).await;
    assert!(r.status == 403 || r.status == 404, "{}", r.body);
    let r = call(&s, "DELETE", "/pub?cors", &[], Body::empty(), A).await;
    assert_eq!(r.status, 204);
    let r = get(&s, "/pub?cors", A).await;
    assert!(r.body.contains("NoSuchCORSConfiguration"), "{}", r.body);
}

/// Raw HTTP/1.1 over TCP to [`stratus_s3::serve`] (the CORS layer is part
/// of the served stack).
async fn raw(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).to_lowercase()
}

#[tokio::test]
async fn preflights_are_answered_by_the_rules_and_only_by_them() {
    let (_backend, gw) = setup().await;
    let s = stratus_s3::service(gw.clone());
    let conf = "<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>";
    assert_eq!(
        call(&s, "PUT", "/pub?cors", &[], conf.to_string(), A)
            .await
            .status,
        200
    );
    let doc = policy("pub", ALLOW_ART);
    assert_eq!(
        call(&s, "PUT", "/pub?policy", &[], doc, A).await.status,
        204
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(stratus_s3::serve(listener, gw, std::future::pending()));

    let preflight = |path: &str, origin: &str, method: &str, headers: &str| {
        format!("OPTIONS {path} HTTP/1.1\r\nhost: localhost\r\norigin: {origin}\r\naccess-control-request-method: {method}\r\naccess-control-request-headers: {headers}\r\nconnection: close\r\n\r\n")
    };
    let ok = raw(
        addr,
        &preflight(
            "/pub/art/a.txt",
            "https://ci.example.com",
            "PUT",
            "x-amz-date",
        ),
    )
    .await;
    assert!(ok.starts_with("http/1.1 200"), "{ok}");
    assert!(
        ok.contains("access-control-allow-origin: https://ci.example.com"),
        "{ok}"
    );
    assert!(
        ok.contains("access-control-allow-methods: get, put"),
        "{ok}"
    );
    assert!(ok.contains("access-control-max-age: 600"), "{ok}");
    for (path, origin, method, headers) in [
        ("/pub/art/a.txt", "https://evil.com", "GET", "x-amz-date"),
        ("/pub/art/a.txt", "https://example.com.evil.com", "GET", ""),
        ("/pub/art/a.txt", "https://ci.example.com", "DELETE", ""),
        (
            "/pub/art/a.txt",
            "https://ci.example.com",
            "PUT",
            "authorization",
        ),
        ("/priv/art/a.txt", "https://ci.example.com", "GET", ""),
        ("/nosuchbucket/x", "https://ci.example.com", "GET", ""),
    ] {
        let r = raw(addr, &preflight(path, origin, method, headers)).await;
        assert!(
            r.starts_with("http/1.1 403"),
            "{path} {origin} {method} {headers}: {r}"
        );
        assert!(!r.contains("access-control-allow-origin"), "{r}");
    }
    let r = raw(
        addr,
        "OPTIONS /pub/x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("http/1.1 400"), "{r}");

    // The actual request: anonymous GET granted by the policy, with CORS
    // headers for a matching origin and none for another.
    let get = |origin: &str| {
        format!("GET /pub/art/a.txt HTTP/1.1\r\nhost: localhost\r\norigin: {origin}\r\nconnection: close\r\n\r\n")
    };
    let r = raw(addr, &get("https://ci.example.com")).await;
    assert!(r.starts_with("http/1.1 200"), "{r}");
    assert!(
        r.contains("access-control-allow-origin: https://ci.example.com"),
        "{r}"
    );
    assert!(r.contains("access-control-expose-headers: etag"), "{r}");
    let r = raw(addr, &get("https://evil.com")).await;
    assert!(
        r.starts_with("http/1.1 200") && !r.contains("access-control-allow-origin"),
        "{r}"
    );
    // CORS grants nothing by itself.
    let r = raw(addr, "GET /pub/other.txt HTTP/1.1\r\nhost: localhost\r\norigin: https://ci.example.com\r\nconnection: close\r\n\r\n").await;
    assert!(r.starts_with("http/1.1 403"), "{r}");
}

/// A browser form upload: the fields and file, signed with `secret`.
fn form(
    policy: &str,
    signed_policy: &str,
    key: &str,
    secret: &str,
    file: &[u8],
) -> (String, Vec<u8>) {
    let (date, amz_date) = dates();
    let b64 = base64::engine::general_purpose::STANDARD.encode(policy);
    let signed_b64 = base64::engine::general_purpose::STANDARD.encode(signed_policy);
    let signature = sign_post_policy(&signed_b64, secret, &date, "us-east-1");
    let boundary = "----stratusformboundary";
    let mut body = Vec::new();
    let fields = [
        ("key", key.to_owned()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        (
            "x-amz-credential",
            format!("AKA/{date}/us-east-1/s3/aws4_request"),
        ),
        ("x-amz-date", amz_date),
        ("policy", b64),
        ("x-amz-signature", signature),
    ];
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Today (`YYYYMMDD`) and now (`YYYYMMDDTHHMMSSZ`, to the minute, so a
/// policy and its form agree).
fn dates() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz = format!("{date}T{:02}{:02}00Z", now.hour(), now.minute());
    (date, amz)
}

fn post_policy(expiration: &str, max: u64) -> String {
    let (date, amz_date) = dates();
    format!(
        r#"{{"expiration":"{expiration}","conditions":[{{"bucket":"pub"}},["starts-with","$key","uploads/"],["content-length-range",0,{max}],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"AKA/{date}/us-east-1/s3/aws4_request"}},{{"x-amz-date":"{amz_date}"}}]}}"#
    )
}

#[tokio::test]
async fn browser_form_uploads_check_the_signed_policy() {
    let (backend, gw) = setup().await;
    let s = stratus_s3::service(gw);
    let later = "2099-01-01T00:00:00.000Z";
    let post = |(ct, body): (String, Vec<u8>)| {
        let s = &s;
        async move {
            call(
                s,
                "POST",
                "/pub",
                &[("content-type", ct.as_str())],
                body,
                None,
            )
            .await
        }
    };
    let good = post_policy(later, 100);
    let r = post(form(&good, &good, "uploads/ok.txt", "SKA", b"hello")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = get(&s, "/pub/uploads/ok.txt", A).await;
    assert_eq!(r.body, "hello");

    let stored = |key: &'static str| {
        let backend = Arc::clone(&backend);
        async move { backend.head_object("ta", "pub", key, None).await.is_ok() }
    };
    // Expired.
    let old = post_policy("2001-01-01T00:00:00.000Z", 100);
    let r = post(form(&old, &old, "uploads/expired.txt", "SKA", b"x")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Tampered: a larger size limit than the one signed.
    let r = post(form(
        &post_policy(later, 1 << 20),
        &good,
        "uploads/t.txt",
        "SKA",
        b"x",
    ))
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("SignatureDoesNotMatch"), "{}", r.body);
    // Signed with a wrong secret.
    let r = post(form(&good, &good, "uploads/w.txt", "wrong", b"x")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // A key outside the policy's prefix; a file over its size range.
    let r = post(form(&good, &good, "elsewhere.txt", "SKA", b"x")).await;
    assert!(r.status >= 400, "{}", r.body);
    let r = post(form(&good, &good, "uploads/big.txt", "SKA", &[b'x'; 101])).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("EntityTooLarge"), "{}", r.body);
    for key in [
        "uploads/expired.txt",
        "uploads/t.txt",
        "uploads/w.txt",
        "elsewhere.txt",
        "uploads/big.txt",
    ] {
        assert!(!stored(key).await, "{key} was written");
    }
}

/// s3s also accepts a form signed with SigV2 (AWSAccessKeyId, signature),
/// which it checks in variable time; such a request reaches the gateway with
/// credentials but no region (a SigV4 signature always names one) and is
/// refused, whatever its signature.
#[tokio::test]
async fn a_sigv2_signed_write_is_refused_even_when_its_signature_checks() {
    use stratus_s3::s3s::auth::Credentials;
    use stratus_s3::s3s::dto::PutObjectInput;
    use stratus_s3::s3s::{S3Request, S3};
    let (backend, gw) = setup().await;
    let request = |region: Option<&str>| S3Request {
        input: PutObjectInput::builder()
            .bucket("pub".into())
            .key("v2.txt".into())
            .build()
            .unwrap(),
        method: http::Method::PUT,
        uri: "/pub/v2.txt".parse().unwrap(),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(Credentials {
            access_key: "AKA".into(),
            secret_key: "SKA".into(),
        }),
        region: region.map(|r| r.parse().unwrap()),
        service: Some("s3".into()),
        trailing_headers: None,
    };
    let e = gw
        .put_object(request(None))
        .await
        .expect_err("SigV2 refused");
    assert_eq!(e.code(), &stratus_s3::s3s::S3ErrorCode::AccessDenied);
    assert!(backend
        .head_object("ta", "pub", "v2.txt", None)
        .await
        .is_err());
    gw.put_object(request(Some("us-east-1")))
        .await
        .expect("the same write signed with SigV4 is stored");
}
