//! ACLs through the S3 API (in-process, in-memory backend): every
//! permission granted to another tenant does what it says and nothing
//! more, object ACLs per version, what a grantee writes, and the attacker
//! (another tenant, an anonymous client) changing ACLs it may not.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use http_body_util::BodyExt;
use stratus_s3::fuzzing::sign_v4;
use stratus_s3::s3s::service::S3Service;
use stratus_s3::s3s::Body;
use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::Gateway;

const A: Option<(&str, &str)> = Some(("AKA", "SKA"));
const B: Option<(&str, &str)> = Some(("AKB", "SKB"));
const ANON: Option<(&str, &str)> = None;
const NONE: &[(&str, &str)] = &[];

fn service() -> S3Service {
    let keys = Arc::new(
        MemKeys::new()
            .with("AKA", "SKA", "ta")
            .with("AKB", "SKB", "tb"),
    );
    stratus_s3::service(Gateway::new(Arc::new(MemBackend::new()), keys))
}

async fn call(
    s: &S3Service,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
    key: Option<(&str, &str)>,
) -> (u16, String) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(Body::from(body.to_owned())).unwrap();
    if let Some((ak, sk)) = key {
        sign_v4(&mut req, ak, sk, "us-east-1");
    }
    let resp = s.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Whether a request was refused: `AccessDenied`, or `NoSuchBucket` (the
/// in-memory backend's bucket names are per tenant, so another tenant
/// not granted meets a bucket it does not have; the store answers 403).
fn refused(status: u16) -> bool {
    status == 403 || status == 404
}

async fn ok(s: &S3Service, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) {
    let (status, text) = call(s, method, uri, headers, body, A).await;
    assert!(status < 300, "owner {method} {uri}: {status} {text}");
}

fn acp(owner: &str, grants: &[(&str, &str)]) -> String {
    let grants: String = grants
        .iter()
        .map(|(who, perm)| {
            let grantee = match *who {
                "all" => "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>".to_owned(),
                "email" => "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"AmazonCustomerByEmail\"><EmailAddress>b@example.com</EmailAddress></Grantee>".to_owned(),
                id => format!("<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{id}</ID></Grantee>"),
            };
            format!("<Grant>{grantee}<Permission>{perm}</Permission></Grant>")
        })
        .collect();
    format!("<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>{owner}</ID></Owner><AccessControlList>{grants}</AccessControlList></AccessControlPolicy>")
}

/// What tenant-b may do on a bucket where it holds `perm`: list, read the
/// ACL, write, write the ACL.
async fn bucket_grant(perm: &str) -> [bool; 4] {
    let s = service();
    ok(&s, "PUT", "/bkt", NONE, "").await;
    ok(&s, "PUT", "/bkt/k", NONE, "x").await;
    ok(
        &s,
        "PUT",
        "/bkt?acl",
        NONE,
        &acp("ta", &[("ta", "FULL_CONTROL"), ("tb", perm)]),
    )
    .await;
    let list = call(&s, "GET", "/bkt", NONE, "", B).await.0;
    let read_acp = call(&s, "GET", "/bkt?acl", NONE, "", B).await.0;
    let write = call(&s, "PUT", "/bkt/new", NONE, "y", B).await.0;
    let write_acp = call(
        &s,
        "PUT",
        "/bkt?acl",
        &[("x-amz-acl", "public-read")],
        "",
        B,
    )
    .await
    .0;
    // Never the objects themselves, whatever the bucket grant.
    assert!(
        refused(call(&s, "GET", "/bkt/k", NONE, "", B).await.0),
        "{perm}"
    );
    for status in [list, read_acp, write, write_acp] {
        assert!(status == 200 || refused(status), "{perm}: {status}");
    }
    [list, read_acp, write, write_acp].map(|s| s == 200)
}

#[tokio::test]
async fn each_bucket_permission_grants_exactly_its_operations() {
    let (t, f) = (true, false);
    assert_eq!(bucket_grant("READ").await, [t, f, f, f]);
    assert_eq!(bucket_grant("WRITE").await, [f, f, t, f]);
    assert_eq!(bucket_grant("READ_ACP").await, [f, t, f, f]);
    assert_eq!(bucket_grant("WRITE_ACP").await, [f, f, f, t]);
    assert_eq!(bucket_grant("FULL_CONTROL").await, [t, t, t, t]);
}

#[tokio::test]
async fn object_acls_are_per_version_and_decide_reads() {
    let s = service();
    ok(&s, "PUT", "/ver", NONE, "").await;
    let cfg = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    ok(&s, "PUT", "/ver?versioning", NONE, cfg).await;
    ok(&s, "PUT", "/ver/k", &[("x-amz-acl", "public-read")], "one").await;
    let (_, listing) = call(&s, "GET", "/ver?versions", NONE, "", A).await;
    let first = listing
        .split("<VersionId>")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap()
        .to_owned();
    ok(&s, "PUT", "/ver/k", NONE, "two").await;
    // The latest is private; the first version stays public-read.
    assert_eq!(call(&s, "GET", "/ver/k", NONE, "", ANON).await.0, 403);
    let old = format!("/ver/k?versionId={first}");
    let (status, body) = call(&s, "GET", &old, NONE, "", ANON).await;
    assert_eq!((status, body.as_str()), (200, "one"));
    let (_, acl) = call(&s, "GET", &format!("{old}&acl"), NONE, "", A).await;
    assert!(acl.contains("AllUsers"), "{acl}");
    let (_, acl) = call(&s, "GET", "/ver/k?acl", NONE, "", A).await;
    assert!(
        !acl.contains("AllUsers") && acl.contains("<ID>ta</ID>"),
        "{acl}"
    );
    // Grants by body, then by header, on the latest version only.
    ok(&s, "PUT", "/ver/k?acl", NONE, &acp("ta", &[("tb", "READ")])).await;
    assert_eq!(call(&s, "GET", "/ver/k", NONE, "", B).await.0, 200);
    assert_eq!(call(&s, "GET", "/ver/k", NONE, "", ANON).await.0, 403);
    assert_eq!(call(&s, "GET", "/ver/k?acl", NONE, "", B).await.0, 403);
    ok(
        &s,
        "PUT",
        "/ver/k?acl",
        &[("x-amz-grant-read-acp", "id=\"tb\"")],
        "",
    )
    .await;
    assert_eq!(call(&s, "GET", "/ver/k?acl", NONE, "", B).await.0, 200);
    assert_eq!(call(&s, "GET", "/ver/k", NONE, "", B).await.0, 403);
    // A copy gets the ACL its request names, never its source's.
    ok(&s, "PUT", "/ver/c", &[("x-amz-copy-source", "/ver/k")], "").await;
    let (_, acl) = call(&s, "GET", "/ver/c?acl", NONE, "", A).await;
    assert_eq!(acl.matches("<Grant>").count(), 1, "{acl}");
    let h = [
        ("x-amz-copy-source", "/ver/k"),
        ("x-amz-acl", "public-read"),
    ];
    ok(&s, "PUT", "/ver/c2", &h, "").await;
    assert_eq!(call(&s, "GET", "/ver/c2", NONE, "", ANON).await.0, 200);
}

#[tokio::test]
async fn what_a_grantee_writes_is_its_own_and_the_owner_keeps_control() {
    let s = service();
    ok(&s, "PUT", "/wrt", &[("x-amz-acl", "public-read-write")], "").await;
    let (status, text) = call(&s, "PUT", "/wrt/by-b", NONE, "b's", B).await;
    assert_eq!(status, 200, "{text}");
    let (_, acl) = call(&s, "GET", "/wrt/by-b?acl", NONE, "", B).await;
    assert!(
        acl.contains("<Owner><DisplayName>tb</DisplayName><ID>tb</ID>"),
        "{acl}"
    );
    assert_eq!(call(&s, "GET", "/wrt/by-b", NONE, "", A).await.0, 200);
    assert_eq!(call(&s, "GET", "/wrt/by-b", NONE, "", ANON).await.0, 403);
    let h = [("x-amz-acl", "bucket-owner-read")];
    let (status, _) = call(&s, "PUT", "/wrt/by-b2", &h, "b's", B).await;
    assert_eq!(status, 200);
    let (_, acl) = call(&s, "GET", "/wrt/by-b2?acl", NONE, "", A).await;
    assert!(acl.contains("<ID>ta</ID>") && acl.contains("READ"), "{acl}");
    // Anonymous writes and deletes through public-read-write, and a
    // multipart upload by the grantee.
    assert_eq!(call(&s, "PUT", "/wrt/anon", NONE, "x", ANON).await.0, 200);
    assert_eq!(call(&s, "DELETE", "/wrt/anon", NONE, "", ANON).await.0, 204);
    let (status, text) = call(&s, "POST", "/wrt/mp?uploads", NONE, "", B).await;
    assert_eq!(status, 200, "{text}");
    // The owner can always re-ACL and delete.
    ok(&s, "PUT", "/wrt/by-b?acl", &[("x-amz-acl", "private")], "").await;
    assert_eq!(call(&s, "GET", "/wrt/by-b", NONE, "", B).await.0, 200);
    ok(&s, "DELETE", "/wrt/by-b", NONE, "").await;
}

#[tokio::test]
async fn the_attacker_cannot_change_or_forge_acls() {
    let s = service();
    ok(&s, "PUT", "/prv", NONE, "").await;
    ok(&s, "PUT", "/prv/k", NONE, "secret").await;
    let public = [("x-amz-acl", "public-read")];
    for who in [B, ANON] {
        assert!(refused(
            call(&s, "PUT", "/prv?acl", &public, "", who).await.0
        ));
        assert!(refused(
            call(&s, "PUT", "/prv/k?acl", &public, "", who).await.0
        ));
        let body = acp("ta", &[("tb", "FULL_CONTROL")]);
        assert!(refused(
            call(&s, "PUT", "/prv?acl", NONE, &body, who).await.0
        ));
        assert!(refused(
            call(&s, "GET", "/prv/k?acl", NONE, "", who).await.0
        ));
    }
    assert!(refused(call(&s, "GET", "/prv/k", NONE, "", B).await.0));
    // READ_ACP is not WRITE_ACP.
    ok(
        &s,
        "PUT",
        "/prv/k?acl",
        NONE,
        &acp("ta", &[("ta", "FULL_CONTROL"), ("tb", "READ_ACP")]),
    )
    .await;
    assert_eq!(call(&s, "GET", "/prv/k?acl", NONE, "", B).await.0, 200);
    assert_eq!(call(&s, "PUT", "/prv/k?acl", &public, "", B).await.0, 403);
    // Forged owners, unknown grantees, emails, too many grants, two forms.
    let forged = acp("tb", &[("tb", "FULL_CONTROL")]);
    assert_eq!(call(&s, "PUT", "/prv?acl", NONE, &forged, A).await.0, 403);
    let (status, text) = call(
        &s,
        "PUT",
        "/prv?acl",
        NONE,
        &acp("ta", &[("nobody", "READ")]),
        A,
    )
    .await;
    assert_eq!(
        (status, text.contains("InvalidArgument")),
        (400, true),
        "{text}"
    );
    let (status, text) = call(
        &s,
        "PUT",
        "/prv?acl",
        NONE,
        &acp("ta", &[("email", "READ")]),
        A,
    )
    .await;
    assert!(
        text.contains("UnresolvableGrantByEmailAddress"),
        "{status} {text}"
    );
    let many: Vec<(&str, &str)> = vec![("tb", "READ"); 101];
    let (status, text) = call(&s, "PUT", "/prv?acl", NONE, &acp("ta", &many), A).await;
    assert_eq!(
        (status, text.contains("MalformedACLError")),
        (400, true),
        "{text}"
    );
    let both = [("x-amz-acl", "private"), ("x-amz-grant-read", "id=\"tb\"")];
    assert_eq!(call(&s, "PUT", "/prv?acl", &both, "", A).await.0, 400);
    let (_, acl) = call(&s, "GET", "/prv?acl", NONE, "", A).await;
    assert_eq!(acl.matches("<Grant>").count(), 1, "unchanged: {acl}");
    // Block Public Access: refused, then ignored.
    ok(&s, "PUT", "/prv?acl", &public, "").await;
    assert_eq!(call(&s, "GET", "/prv", NONE, "", ANON).await.0, 200);
    let pab = "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls></PublicAccessBlockConfiguration>";
    ok(&s, "PUT", "/prv?publicAccessBlock", NONE, pab).await;
    assert_eq!(call(&s, "GET", "/prv", NONE, "", ANON).await.0, 403);
    assert_eq!(call(&s, "PUT", "/prv/k?acl", &public, "", A).await.0, 403);
    let all = acp("ta", &[("all", "READ")]);
    assert_eq!(call(&s, "PUT", "/prv/k?acl", NONE, &all, A).await.0, 403);
    assert_eq!(call(&s, "PUT", "/prv/n", &public, "x", A).await.0, 403);
}
