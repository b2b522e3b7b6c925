//! The additional checksums (`x-amz-checksum-*`) played by a
//! man-in-the-middle: a body whose bytes do not match the checksum its
//! client sent (as a header, or as an `aws-chunked` trailer, signed or not)
//! is refused with `BadDigest` and nothing is stored; a matching one is
//! stored and its checksum echoed. A verified checksum is stored with the
//! version (or part) and answered by reads with `x-amz-checksum-mode:
//! ENABLED`; a multipart upload's object gets the checksum of its parts'.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use futures::StreamExt;
use http_body_util::BodyExt;
use stratus_s3::fuzzing::{sign_v4, sign_v4_streaming};
use stratus_s3::s3s::checksum::ChecksumHasher;
use stratus_s3::s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use stratus_s3::s3s::service::S3Service;
use stratus_s3::s3s::Body;
use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::{Backend, BackendError, Gateway, PutMeta};

const HOST: &str = "s3.test";
const BODY: &[u8] = b"the build artifact, as the client computed it";
const TAMPERED: &[u8] = b"the build artifact, as an attacker edited it!";

async fn setup() -> (Arc<MemBackend>, S3Service) {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "artifacts").await.unwrap();
    let keys = Arc::new(MemKeys::new().with("AKA", "SKA", "ta"));
    let gateway = Gateway::new(Arc::clone(&backend), keys);
    (backend, stratus_s3::service(gateway))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

async fn send(service: &S3Service, req: http::Request<Body>) -> Answer {
    let resp = service.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A signed request with `headers`, carrying `body`.
async fn call(
    service: &S3Service,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Answer {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", HOST)
        .header("content-length", body.len().to_string());
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let mut req = b.body(Body::from(bytes::Bytes::from_static(body))).unwrap();
    sign_v4(&mut req, "AKA", "SKA", "us-east-1");
    send(service, req).await
}

/// The value of `data` under the algorithm whose header is `header`,
/// base64, by s3s's hashers (what an honest client computes).
fn checksum(header: &str, data: &[u8]) -> String {
    let mut h = ChecksumHasher::default();
    match header {
        "x-amz-checksum-crc32" => h.crc32 = Some(Crc32::new()),
        "x-amz-checksum-crc32c" => h.crc32c = Some(Crc32c::new()),
        "x-amz-checksum-crc64nvme" => h.crc64nvme = Some(Crc64Nvme::new()),
        "x-amz-checksum-sha1" => h.sha1 = Some(Sha1::new()),
        _ => h.sha256 = Some(Sha256::new()),
    }
    h.update(data);
    let c = h.finalize();
    [
        c.checksum_crc32,
        c.checksum_crc32c,
        c.checksum_crc64nvme,
        c.checksum_sha1,
        c.checksum_sha256,
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap()
}

const ALGORITHMS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

async fn stored(backend: &MemBackend, key: &str) -> Option<Vec<u8>> {
    match backend.get_object("ta", "artifacts", key, None, None).await {
        Ok((_, mut s)) => {
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap());
            }
            Some(out)
        }
        Err(BackendError::NoSuchKey) => None,
        Err(e) => panic!("get: {e}"),
    }
}

#[test]
fn the_crc32_is_the_standard_one() {
    // CRC-32 (ISO-HDLC) of "hello world" is 0x0d4a1185.
    assert_eq!(checksum("x-amz-checksum-crc32", b"hello world"), "DUoRhQ==");
}

#[tokio::test]
async fn a_body_that_does_not_match_its_checksum_header_is_refused_and_not_stored() {
    let (backend, service) = setup().await;
    for header in ALGORITHMS {
        let value = checksum(header, BODY);
        // The client's checksum, an attacker's bytes (same length: the
        // Content-Length does not give it away).
        assert_eq!(BODY.len(), TAMPERED.len());
        let key = format!("/artifacts/bad-{header}");
        let a = call(&service, "PUT", &key, &[(header, &value)], TAMPERED).await;
        assert_eq!(a.status, 400, "{header}: {}", a.body);
        assert!(a.body.contains("<Code>BadDigest</Code>"), "{}", a.body);
        let name = header.trim_start_matches("x-amz-checksum-").to_uppercase();
        assert!(a.body.contains(&name), "{header}: {}", a.body);
        assert_eq!(stored(&backend, &key["/artifacts/".len()..]).await, None);

        let key = format!("/artifacts/good-{header}");
        let a = call(&service, "PUT", &key, &[(header, &value)], BODY).await;
        assert_eq!(a.status, 200, "{header}: {}", a.body);
        assert_eq!(
            a.headers.get(header).and_then(|v| v.to_str().ok()),
            Some(value.as_str()),
            "{header}: the verified checksum is echoed"
        );
        assert_eq!(
            stored(&backend, &key["/artifacts/".len()..])
                .await
                .as_deref(),
            Some(BODY)
        );
    }
}

#[tokio::test]
async fn malformed_or_conflicting_checksums_are_invalid_requests() {
    let (backend, service) = setup().await;
    let crc = checksum("x-amz-checksum-crc32", BODY);
    let sha = checksum("x-amz-checksum-sha256", BODY);
    for headers in [
        vec![("x-amz-checksum-crc32", "not base64!")],
        vec![("x-amz-checksum-crc32", sha.as_str())],
        vec![
            ("x-amz-checksum-crc32", crc.as_str()),
            ("x-amz-checksum-sha256", sha.as_str()),
        ],
        vec![
            ("x-amz-checksum-crc32", crc.as_str()),
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ],
    ] {
        let a = call(&service, "PUT", "/artifacts/k", &headers, BODY).await;
        assert_eq!(a.status, 400, "{headers:?}: {}", a.body);
        assert!(a.body.contains("<Code>InvalidRequest</Code>"), "{}", a.body);
    }
    assert_eq!(stored(&backend, "k").await, None);
    // An algorithm named without a value computes nothing and passes.
    let a = call(
        &service,
        "PUT",
        "/artifacts/k",
        &[("x-amz-sdk-checksum-algorithm", "CRC32")],
        BODY,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.headers.get("x-amz-checksum-crc32").is_none());
}

/// A PUT whose body is `aws-chunked` with the checksum in a trailer:
/// `data` is what is sent, `claimed` what the trailer's checksum is of,
/// `trailer` whether the announced trailer is sent at all.
async fn put_with_trailer(
    service: &S3Service,
    key: &str,
    signed: bool,
    data: &[u8],
    claimed: &[u8],
    trailer: bool,
) -> Answer {
    let header = "x-amz-checksum-crc32";
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(format!("/artifacts/{key}"))
        .header("host", HOST)
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", data.len().to_string())
        .header("x-amz-trailer", header)
        .body(())
        .unwrap();
    let mut signer = sign_v4_streaming(&mut req, "AKA", "SKA", "us-east-1", signed);
    let mut wire = Vec::new();
    for piece in data.chunks(16) {
        wire.extend(signer.chunk(piece));
    }
    wire.extend(signer.chunk(b""));
    if trailer {
        wire.extend(signer.trailers(&[(header, &checksum(header, claimed))]));
    }
    let (mut parts, ()) = req.into_parts();
    parts.headers.insert(
        "content-length",
        http::HeaderValue::from_str(&wire.len().to_string()).unwrap(),
    );
    let req = http::Request::from_parts(parts, Body::from(bytes::Bytes::from(wire)));
    send(service, req).await
}

#[tokio::test]
async fn a_trailer_checksum_is_verified_before_anything_is_stored() {
    let (backend, service) = setup().await;
    let value = checksum("x-amz-checksum-crc32", BODY);
    for signed in [true, false] {
        // Unsigned chunks (the SDKs' HTTPS default): an attacker on the
        // path rewrites the bytes. Signed: the client's own bytes changed
        // after it computed the checksum. Either way the trailer disagrees.
        let key = format!("tampered-{signed}");
        let a = put_with_trailer(&service, &key, signed, TAMPERED, BODY, true).await;
        assert_eq!(a.status, 400, "signed={signed}: {}", a.body);
        assert!(a.body.contains("<Code>BadDigest</Code>"), "{}", a.body);
        assert!(a.body.contains("CRC32"), "{}", a.body);
        assert_eq!(stored(&backend, &key).await, None);

        // The announced trailer stripped from the body.
        let key = format!("stripped-{signed}");
        let a = put_with_trailer(&service, &key, signed, BODY, BODY, false).await;
        assert_eq!(a.status, 400, "signed={signed}: {}", a.body);
        assert!(a.body.contains("<Code>InvalidRequest</Code>"), "{}", a.body);
        assert_eq!(stored(&backend, &key).await, None);

        let key = format!("good-{signed}");
        let a = put_with_trailer(&service, &key, signed, BODY, BODY, true).await;
        assert_eq!(a.status, 200, "signed={signed}: {}", a.body);
        assert_eq!(
            a.headers
                .get("x-amz-checksum-crc32")
                .and_then(|v| v.to_str().ok()),
            Some(value.as_str())
        );
        assert_eq!(stored(&backend, &key).await.as_deref(), Some(BODY));
    }
}

#[tokio::test]
async fn upload_part_checks_its_checksum_and_complete_does_not_fail_on_part_checksums() {
    let (backend, service) = setup().await;
    let id = backend
        .create_multipart("ta", "artifacts", "big", PutMeta::default())
        .await
        .unwrap();
    let value = checksum("x-amz-checksum-sha256", BODY);
    let uri = format!("/artifacts/big?partNumber=1&uploadId={id}");
    let header = [("x-amz-checksum-sha256", value.as_str())];
    let a = call(&service, "PUT", &uri, &header, TAMPERED).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("<Code>BadDigest</Code>"), "{}", a.body);
    assert!(backend
        .list_parts("ta", "artifacts", "big", &id)
        .await
        .unwrap()
        .is_empty());

    let a = call(&service, "PUT", &uri, &header, BODY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.headers
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok()),
        Some(value.as_str())
    );
    let etag = a.headers.get("etag").unwrap().to_str().unwrap().to_owned();

    // Per-part checksums in CompleteMultipartUpload: nothing stored to
    // compare them with (each was checked on upload); the upload completes,
    // without a composite checksum.
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag><ChecksumSHA256>{value}</ChecksumSHA256></Part></CompleteMultipartUpload>"
    );
    let xml: &'static [u8] = Box::leak(xml.into_bytes().into_boxed_slice());
    let a = call(
        &service,
        "POST",
        &format!("/artifacts/big?uploadId={id}"),
        &[],
        xml,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(!a.body.contains("ChecksumSHA256"), "{}", a.body);
    assert_eq!(stored(&backend, "big").await.as_deref(), Some(BODY));

    // Checksums are not stored: a read asking for them gets none.
    for method in ["GET", "HEAD"] {
        let a = call(
            &service,
            method,
            "/artifacts/big",
            &[("x-amz-checksum-mode", "ENABLED")],
            b"",
        )
        .await;
        assert_eq!(a.status, 200, "{method}: {}", a.body);
        assert!(
            !a.headers
                .keys()
                .any(|k| k.as_str().starts_with("x-amz-checksum-")),
            "{method}: {:?}",
            a.headers
        );
    }
}

/// A browser form upload (POST Object) of `file` carrying `checksum` as its
/// `x-amz-checksum-crc32` field, with a policy covering every field.
fn form(key: &str, checksum: &str, file: &[u8]) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!("{date}T{:02}{:02}00Z", now.hour(), now.minute());
    let credential = format!("AKA/{date}/us-east-1/s3/aws4_request");
    let policy = format!(
        r#"{{"expiration":"2099-01-01T00:00:00.000Z","conditions":[{{"bucket":"artifacts"}},["starts-with","$key",""],["starts-with","$x-amz-checksum-crc32",""],{{"x-amz-algorithm":"AWS4-HMAC-SHA256"}},{{"x-amz-credential":"{credential}"}},{{"x-amz-date":"{amz_date}"}}]}}"#
    );
    let policy = base64::engine::general_purpose::STANDARD.encode(policy);
    let signature = stratus_s3::fuzzing::sign_post_policy(&policy, "SKA", &date, "us-east-1");
    let boundary = "----checksumboundary";
    let mut body = Vec::new();
    for (k, v) in [
        ("key", key.to_owned()),
        ("x-amz-checksum-crc32", checksum.to_owned()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential", credential),
        ("x-amz-date", amz_date),
        ("policy", policy),
        ("x-amz-signature", signature),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_form_upload_is_checked_against_its_checksum_field() {
    let (backend, service) = setup().await;
    let value = checksum("x-amz-checksum-crc32", BODY);
    for (key, file, status) in [("forged", TAMPERED, 400), ("honest", BODY, 204)] {
        let (ct, body) = form(key, &value, file);
        let req = http::Request::builder()
            .method("POST")
            .uri("/artifacts")
            .header("host", HOST)
            .header("content-type", ct)
            .header("content-length", body.len().to_string())
            .body(Body::from(bytes::Bytes::from(body)))
            .unwrap();
        let a = send(&service, req).await;
        assert_eq!(a.status, status, "{key}: {}", a.body);
        if status == 400 {
            assert!(a.body.contains("<Code>BadDigest</Code>"), "{}", a.body);
            assert_eq!(stored(&backend, key).await, None);
        } else {
            assert_eq!(stored(&backend, key).await.as_deref(), Some(BODY));
        }
    }
}

fn between<'a>(body: &'a str, open: &str, close: &str) -> &'a str {
    let start = body.find(open).map(|i| i + open.len()).unwrap_or(0);
    let end = body[start..].find(close).map_or(body.len(), |i| start + i);
    &body[start..end]
}

/// Verified checksums are stored: a read asking for them gets the value
/// (from a header or a trailer), a read not asking or ranged gets none; an
/// upload asking for SHA-256 computes a part's checksum its client did not
/// send, refuses a wrong expected object checksum before completing, and
/// answers the composite one, per part on `partNumber` reads and in
/// GetObjectAttributes.
#[tokio::test]
async fn verified_checksums_are_stored_and_returned_when_asked() {
    let (backend, service) = setup().await;
    let sha = checksum("x-amz-checksum-sha256", BODY);
    let a = call(
        &service,
        "PUT",
        "/artifacts/s",
        &[("x-amz-checksum-sha256", sha.as_str())],
        BODY,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mode = [("x-amz-checksum-mode", "ENABLED")];
    let header = |a: &Answer, h: &str| {
        a.headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    for method in ["GET", "HEAD"] {
        let a = call(&service, method, "/artifacts/s", &mode, b"").await;
        assert_eq!(
            header(&a, "x-amz-checksum-sha256"),
            Some(sha.clone()),
            "{method}"
        );
        assert_eq!(
            header(&a, "x-amz-checksum-type").as_deref(),
            Some("FULL_OBJECT")
        );
        let a = call(&service, method, "/artifacts/s", &[], b"").await;
        assert_eq!(
            header(&a, "x-amz-checksum-sha256"),
            None,
            "{method} without the mode"
        );
    }
    let a = call(
        &service,
        "GET",
        "/artifacts/s",
        &[mode[0], ("range", "bytes=0-3")],
        b"",
    )
    .await;
    assert_eq!(a.status, 206);
    assert_eq!(
        header(&a, "x-amz-checksum-sha256"),
        None,
        "a range has no checksum"
    );
    // A trailer's checksum, known only at the end of the body, is stored.
    let a = put_with_trailer(&service, "t", false, BODY, BODY, true).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = call(&service, "HEAD", "/artifacts/t", &mode, b"").await;
    assert_eq!(
        header(&a, "x-amz-checksum-crc32"),
        Some(checksum("x-amz-checksum-crc32", BODY))
    );

    // Multipart asking for SHA-256 (composite).
    let a = call(
        &service,
        "POST",
        "/artifacts/mp?uploads",
        &[("x-amz-checksum-algorithm", "SHA256")],
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        header(&a, "x-amz-checksum-algorithm").as_deref(),
        Some("SHA256")
    );
    let id = between(&a.body, "<UploadId>", "</UploadId>").to_owned();
    let uri = format!("/artifacts/mp?partNumber=1&uploadId={id}");
    let a = call(&service, "PUT", &uri, &[], BODY).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        header(&a, "x-amz-checksum-sha256"),
        Some(sha.clone()),
        "computed"
    );
    // A part checksum of another algorithm is refused.
    let crc = checksum("x-amz-checksum-crc32", BODY);
    let a = call(
        &service,
        "PUT",
        &uri,
        &[("x-amz-checksum-crc32", crc.as_str())],
        BODY,
    )
    .await;
    assert!(a.body.contains("<Code>InvalidRequest</Code>"), "{}", a.body);
    let etag = a
        .headers
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let etag = etag.unwrap_or_else(|| format!("\"{}\"", hex_md5(BODY)));
    let digest = Sha256::checksum(BODY);
    let composite = format!("{}-1", checksum("x-amz-checksum-sha256", &digest));
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let xml: &'static [u8] = Box::leak(xml.into_bytes().into_boxed_slice());
    let done = format!("/artifacts/mp?uploadId={id}");
    let wrong = format!("{sha}-1");
    let a = call(
        &service,
        "POST",
        &done,
        &[("x-amz-checksum-sha256", wrong.as_str())],
        xml,
    )
    .await;
    assert!(a.body.contains("<Code>BadDigest</Code>"), "{}", a.body);
    assert_eq!(stored(&backend, "mp").await, None, "nothing completed");
    let a = call(
        &service,
        "POST",
        &done,
        &[("x-amz-checksum-sha256", composite.as_str())],
        xml,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains(&format!("<ChecksumSHA256>{composite}</ChecksumSHA256>")),
        "{}",
        a.body
    );
    let a = call(&service, "HEAD", "/artifacts/mp", &mode, b"").await;
    assert_eq!(header(&a, "x-amz-checksum-sha256"), Some(composite.clone()));
    assert_eq!(
        header(&a, "x-amz-checksum-type").as_deref(),
        Some("COMPOSITE")
    );
    let a = call(&service, "GET", "/artifacts/mp", &mode, b"").await;
    assert_eq!(header(&a, "x-amz-checksum-sha256"), Some(composite.clone()));
    assert_eq!(
        header(&a, "x-amz-checksum-type").as_deref(),
        Some("COMPOSITE"),
        "{:?}",
        a.headers
    );
    let a = call(&service, "GET", "/artifacts/mp?partNumber=1", &mode, b"").await;
    assert_eq!(
        header(&a, "x-amz-checksum-sha256"),
        Some(sha.clone()),
        "the part's"
    );
    let a = call(
        &service,
        "GET",
        "/artifacts/mp?attributes",
        &[("x-amz-object-attributes", "Checksum,ObjectParts,ObjectSize")],
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body
            .contains(&format!("<ChecksumSHA256>{composite}</ChecksumSHA256>")),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains(&format!("<ChecksumSHA256>{sha}</ChecksumSHA256>")),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains(&format!("<ObjectSize>{}</ObjectSize>", BODY.len())),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("<TotalPartsCount>1</TotalPartsCount>")
            || a.body.contains("<PartsCount>1</PartsCount>"),
        "{}",
        a.body
    );
}

fn hex_md5(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}
