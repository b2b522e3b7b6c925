//! Random requests through the whole service never panic.

use proptest::prelude::*;
use stratus_s3::fuzzing::fuzz_request;

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH",
    ])
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "/",
        "/bucket",
        "/bucket/",
        "/bucket/key",
        "/bucket/a/b%20c",
        "/nobucket/k",
        "/bucket/key?versions",
        "/bucket?uploads",
        "/bucket/key?uploads",
        "/bucket/key?uploadId=x&partNumber=1",
        "/bucket?versioning",
        "/bucket?list-type=2&max-keys=1&delimiter=/",
        "/bucket?delete",
        "/bucket/key?uploadId=mpu",
        "/bucket?location",
        "/bucket?list-type=2&continuation-token=zz",
        "/bucket?versions&key-marker=k",
        "/%ff%fe/k",
        "/bucket/%",
        "//",
        "/bucket//key",
        "/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256",
    ])
    .prop_map(str::to_owned)
}

fn header() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "range",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "content-md5",
        "x-amz-copy-source",
        "x-amz-content-sha256",
        "x-amz-date",
        "authorization",
        "content-length",
        "x-amz-meta-a",
        "content-type",
        "x-amz-decoded-content-length",
        "content-encoding",
        "transfer-encoding",
        "x-amz-metadata-directive",
        "expect",
    ]);
    let values = prop::sample::select(vec![
        "bytes=0-1", "bytes=-5", "bytes=9-", "bytes=5-1", "*", "\"abc\"", "W/\"x\"", "Sat, 01 Jan 2000 00:00:00 GMT",
        "garbage", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "UNSIGNED-PAYLOAD", "aws-chunked", "bucket/key",
        "/bucket/key?versionId=null", "1B2M2Y8AsgTpgAmY7PhCfg==", "0", "18446744073709551616", "REPLACE",
        "AWS4-HMAC-SHA256 Credential=FUZZACCESSKEYA/20000101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        "100-continue",
        "multipart/form-data; boundary=xx",
    ]);
    (names, values).prop_map(|(n, v)| format!("{n}: {v}"))
}

fn structured() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        method(),
        path(),
        prop::collection::vec(header(), 0..5),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(flags, m, p, hs, body)| {
            let mut out = vec![flags];
            out.extend_from_slice(format!("{m} {p}\n{}\n\n", hs.join("\n")).as_bytes());
            out.extend_from_slice(&body);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_request(&data);
    }

    #[test]
    fn structured_requests_never_panic(data in structured()) {
        fuzz_request(&data);
    }
}

#[test]
fn signed_requests_reach_the_gateway() {
    // Smoke: a signed GET of the seeded object and a PUT go through without panicking.
    fuzz_request(b"\x01GET /bucket/key\n\n");
    fuzz_request(b"\x01PUT /bucket/new\ncontent-type: text/plain\n\nbody");
    fuzz_request(b"\x03GET /bucket/key\n\n");
    fuzz_request(b"\x05GET /bucket/key\n\n");
    // POST object forms (s3s parses them before the gateway sees anything).
    fuzz_request(b"\x00POST /bucket\ncontent-type: multipart/form-data; boundary=xx\n\n--xx\r\ncontent-disposition: form-data; name=\"key\"\r\n\r\nk\r\n--xx--\r\n");
    fuzz_request(b"\x00POST /bucket\ncontent-type: multipart/form-data; boundary=xx\n\n--xx\r\ncontent-disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--xx--\r\n");
    fuzz_request(b"\x00POST /bucket\ncontent-type: multipart/form-data; boundary=xx\n\n--xx\r\ncontent-disposition: form-data; name=\"key\"\r\n\r\nk\r\n--xx\r\ncontent-disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--xx--\r\n");
}

/// The fuzzer's signer produces signatures s3s accepts, so fuzzed requests
/// really reach the gateway (and a wrong secret does not).
#[tokio::test]
async fn fuzz_signer_is_accepted() {
    use std::sync::Arc;
    use stratus_s3::fuzzing::{sign_v4, FUZZ_ACCESS_KEY, FUZZ_SECRET};
    use stratus_s3::testing::{MemBackend, MemKeys};
    use stratus_s3::Backend;

    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("t", "bucket").await.expect("create");
    let keys = Arc::new(MemKeys::new().with(FUZZ_ACCESS_KEY, FUZZ_SECRET, "t"));
    let service = stratus_s3::service(stratus_s3::Gateway::new(backend, keys));
    for (uri, secret, want) in [
        ("/bucket?list-type=2&prefix=a%20b", FUZZ_SECRET, 200),
        ("/", FUZZ_SECRET, 200),
        ("/bucket/missing", FUZZ_SECRET, 404),
        ("/", "wrong", 403),
    ] {
        let mut req = http::Request::builder()
            .uri(uri)
            .header("host", "localhost:9000")
            .body(stratus_s3::s3s::Body::empty())
            .expect("request");
        sign_v4(&mut req, FUZZ_ACCESS_KEY, secret, "us-east-1");
        let resp = service.call(req).await.expect("response");
        assert_eq!(resp.status().as_u16(), want, "{uri} with {secret}");
    }
    // Unsigned: AccessDenied.
    let req = http::Request::builder()
        .uri("/")
        .header("host", "localhost:9000")
        .body(stratus_s3::s3s::Body::empty())
        .expect("request");
    assert_eq!(
        service.call(req).await.expect("response").status().as_u16(),
        403
    );
}
