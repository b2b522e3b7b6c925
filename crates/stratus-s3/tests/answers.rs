//! Correct answers for what is served (issue 19, item 2), through the
//! service as a client sees it: request ids, stored headers and tags,
//! `partNumber` reads, delete-marker answers, CreateBucket of an owned
//! bucket, bucket names, ListObjects v1 and conditional writes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use http_body_util::BodyExt;
use stratus_s3::fuzzing::sign_v4;
use stratus_s3::s3s::service::S3Service;
use stratus_s3::s3s::Body;
use stratus_s3::testing::{MemBackend, MemKeys};
use stratus_s3::{Backend, ByteStream, Gateway, PutMeta, Versioning};

fn gateway(backend: &Arc<MemBackend>) -> Gateway<MemBackend, MemKeys> {
    let keys = Arc::new(MemKeys::new().with("AKA", "SKA", "ta"));
    Gateway::new(Arc::clone(backend), keys)
}

fn body(data: &[u8]) -> ByteStream {
    let data = bytes::Bytes::copy_from_slice(data);
    Box::pin(futures::stream::iter([Ok(data)]))
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn call(
    service: &S3Service,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    data: &[u8],
) -> Answer {
    let mut b = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if !data.is_empty() {
        b = b.header("content-length", data.len().to_string());
    }
    let mut req = b
        .body(Body::from(bytes::Bytes::copy_from_slice(data)))
        .unwrap();
    sign_v4(&mut req, "AKA", "SKA", "us-east-1");
    let resp = service.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Every answer, success or error, carries `x-amz-request-id` and
/// `x-amz-id-2`; an error body names its `Resource` and the same
/// `RequestId`; each request gets its own.
#[tokio::test]
async fn every_answer_has_a_request_id() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "photos").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stratus_s3::serve(listener, gateway(&backend), async {
        let _ = stopped.await;
    }));
    let raw = |req: http::Request<()>| {
        let mut head = format!("{} {} HTTP/1.1\r\n", req.method(), req.uri());
        for (k, v) in req.headers() {
            head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
        }
        head.push_str("connection: close\r\n\r\n");
        head
    };
    let send = |head: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let header = |resp: &str, name: &str| -> Option<String> {
        resp.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };

    // An error s3s raises itself (anonymous request).
    let req = http::Request::builder()
        .uri("/photos/missing.jpg")
        .header("host", "localhost")
        .body(())
        .unwrap();
    let anon = send(raw(req)).await;
    assert!(anon.starts_with("HTTP/1.1 403"), "{anon}");
    let id = header(&anon, "x-amz-request-id").expect("a request id on an error");
    assert!(header(&anon, "x-amz-id-2").is_some(), "{anon}");
    assert!(
        anon.contains(&format!(
            "<Resource>/photos/missing.jpg</Resource><RequestId>{id}</RequestId></Error>"
        )),
        "{anon}"
    );
    // An error of the gateway (signed, missing key).
    let mut req = http::Request::builder()
        .uri("/photos/missing.jpg")
        .header("host", "localhost")
        .body(())
        .unwrap();
    sign_v4(&mut req, "AKA", "SKA", "us-east-1");
    let missing = send(raw(req)).await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let id2 = header(&missing, "x-amz-request-id").expect("a request id");
    assert_ne!(id, id2, "one id per request");
    assert!(
        missing.contains("<Code>NoSuchKey</Code><Message>"),
        "an error has a message: {missing}"
    );
    assert!(
        missing.contains(&format!("<RequestId>{id2}</RequestId>")),
        "{missing}"
    );
    // A success.
    let mut req = http::Request::builder()
        .uri("/photos?list-type=2")
        .header("host", "localhost")
        .body(())
        .unwrap();
    sign_v4(&mut req, "AKA", "SKA", "us-east-1");
    let ok = send(raw(req)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(header(&ok, "x-amz-request-id").is_some(), "{ok}");
    assert!(header(&ok, "x-amz-id-2").is_some(), "{ok}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Stored headers and `x-amz-tagging` on PUT come back on GET and HEAD;
/// the tagging operations read, replace and remove tags; bad tags are
/// `InvalidTag`.
#[tokio::test]
async fn stored_headers_and_tags() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "bkt").await.unwrap();
    let service = stratus_s3::service(gateway(&backend));
    let stored = [
        ("cache-control", "no-cache"),
        ("content-disposition", "attachment; filename=\"x.bin\""),
        ("content-encoding", "identity"),
        ("content-language", "de-DE"),
        ("expires", "Wed, 01 Dec 2094 16:00:00 GMT"),
    ];
    let mut put_headers = stored.to_vec();
    put_headers.push(("x-amz-tagging", "a=1&b=two%20words"));
    // aws-chunked is how a body travels, not how the object is encoded.
    let r = call(
        &service,
        "PUT",
        "/bkt/enc",
        &[("content-encoding", "aws-chunked, gzip")],
        b"z",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&service, "HEAD", "/bkt/enc", &[], b"").await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = call(&service, "PUT", "/bkt/k", &put_headers, b"data").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for method in ["GET", "HEAD"] {
        let r = call(&service, method, "/bkt/k", &[], b"").await;
        assert_eq!(r.status, 200);
        for (k, v) in stored {
            assert_eq!(r.header(k), Some(v), "{method} {k}");
        }
        assert_eq!(r.header("x-amz-tagging-count"), Some("2"), "{method}");
    }
    let r = call(&service, "GET", "/bkt/k?tagging", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<Key>b</Key><Value>two words</Value>"),
        "{}",
        r.body
    );
    let doc = "<Tagging><TagSet><Tag><Key>x</Key><Value>y</Value></Tag></TagSet></Tagging>";
    let r = call(&service, "PUT", "/bkt/k?tagging", &[], doc.as_bytes()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&service, "HEAD", "/bkt/k", &[], b"").await;
    assert_eq!(r.header("x-amz-tagging-count"), Some("1"));
    let dup = "<Tagging><TagSet><Tag><Key>x</Key><Value>1</Value></Tag><Tag><Key>x</Key><Value>2</Value></Tag></TagSet></Tagging>";
    let r = call(&service, "PUT", "/bkt/k?tagging", &[], dup.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>InvalidTag</Code>"), "{}", r.body);
    let eleven: String = (0..11).map(|i| format!("k{i}=v&")).collect();
    let r = call(
        &service,
        "PUT",
        "/bkt/n",
        &[("x-amz-tagging", &eleven)],
        b"x",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("<Code>InvalidTag</Code>"), "{}", r.body);
    let r = call(&service, "DELETE", "/bkt/k?tagging", &[], b"").await;
    assert_eq!(r.status, 204);
    let r = call(&service, "GET", "/bkt/k", &[], b"").await;
    assert_eq!(r.header("x-amz-tagging-count"), None);
    // A copy keeps the tags, or replaces them with the directive.
    call(&service, "PUT", "/bkt/k?tagging", &[], doc.as_bytes()).await;
    let r = call(
        &service,
        "PUT",
        "/bkt/c1",
        &[("x-amz-copy-source", "/bkt/k")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&service, "HEAD", "/bkt/c1", &[], b"").await;
    assert_eq!(r.header("x-amz-tagging-count"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let r = call(
        &service,
        "PUT",
        "/bkt/c2",
        &[
            ("x-amz-copy-source", "/bkt/k"),
            ("x-amz-tagging-directive", "REPLACE"),
            ("x-amz-tagging", "p=1&q=2&r=3"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&service, "HEAD", "/bkt/c2", &[], b"").await;
    assert_eq!(r.header("x-amz-tagging-count"), Some("3"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache"),
        "metadata copied"
    );
}

/// `partNumber` reads exactly one part, says how many there are, and a
/// part beyond them is 416 `InvalidPartNumber`.
#[tokio::test]
async fn part_number_reads_one_part() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "bkt").await.unwrap();
    let id = backend
        .create_multipart("ta", "bkt", "mp", PutMeta::default())
        .await
        .unwrap();
    let big = vec![b'a'; 5 * 1024 * 1024];
    let p1 = backend
        .upload_part("ta", "bkt", "mp", &id, 1, body(&big), None)
        .await
        .unwrap();
    let p2 = backend
        .upload_part("ta", "bkt", "mp", &id, 2, body(b"tail"), None)
        .await
        .unwrap();
    backend
        .complete_multipart(
            "ta",
            "bkt",
            "mp",
            &id,
            vec![(1, p1.etag), (2, p2.etag)],
            None,
        )
        .await
        .unwrap();
    backend
        .put_object(
            "ta",
            "bkt",
            "simple",
            PutMeta::default(),
            body(b"whole"),
            None,
        )
        .await
        .unwrap();
    let service = stratus_s3::service(gateway(&backend));
    let total = big.len() + 4;
    let r = call(&service, "GET", "/bkt/mp?partNumber=2", &[], b"").await;
    assert_eq!(r.status, 206, "{}", r.body);
    assert_eq!(r.body, "tail");
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("2"));
    let want = format!("bytes {}-{}/{total}", big.len(), total - 1);
    assert_eq!(r.header("content-range"), Some(want.as_str()));
    let r = call(&service, "HEAD", "/bkt/mp?partNumber=1", &[], b"").await;
    // s3s 0.14 sends HEAD answers as 200; the part's length is what counts.
    assert!(r.status == 200 || r.status == 206, "{}", r.status);
    assert_eq!(r.header("content-length"), Some("5242880"));
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("2"));
    let r = call(&service, "GET", "/bkt/mp?partNumber=3", &[], b"").await;
    assert_eq!(r.status, 416);
    assert!(
        r.body.contains("<Code>InvalidPartNumber</Code>"),
        "{}",
        r.body
    );
    let r = call(&service, "GET", "/bkt/simple?partNumber=1", &[], b"").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, "whole");
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("1"));
    let r = call(&service, "GET", "/bkt/simple?partNumber=2", &[], b"").await;
    assert_eq!(r.status, 416);
    // Part 1 of an empty object is its empty body.
    backend
        .put_object("ta", "bkt", "empty", PutMeta::default(), body(b""), None)
        .await
        .unwrap();
    let r = call(&service, "GET", "/bkt/empty?partNumber=1", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-amz-mp-parts-count"), Some("1"));
}

/// A delete marker answers with `x-amz-delete-marker: true`: on the
/// delete, on a GET/HEAD of the key (404) and of its version (405).
#[tokio::test]
async fn delete_markers_say_so() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "ver").await.unwrap();
    backend
        .set_versioning("ta", "ver", Versioning::Enabled)
        .await
        .unwrap();
    backend
        .put_object("ta", "ver", "k", PutMeta::default(), body(b"x"), None)
        .await
        .unwrap();
    let service = stratus_s3::service(gateway(&backend));
    let r = call(&service, "DELETE", "/ver/k", &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-amz-delete-marker"), Some("true"));
    let marker = r.header("x-amz-version-id").unwrap().to_owned();
    for method in ["GET", "HEAD"] {
        let r = call(&service, method, "/ver/k", &[], b"").await;
        assert_eq!(r.status, 404, "{method}");
        assert_eq!(r.header("x-amz-delete-marker"), Some("true"), "{method}");
        assert_eq!(r.header("x-amz-version-id"), Some(marker.as_str()));
        let r = call(
            &service,
            method,
            &format!("/ver/k?versionId={marker}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("x-amz-delete-marker"), Some("true"), "{method}");
    }
    // A key whose latest version is no marker says so (as Ceph RGW does).
    let r = call(&service, "GET", "/ver/never", &[], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-amz-delete-marker"), Some("false"));
}

/// CreateBucket of an owned bucket is 200 in us-east-1 and
/// `BucketAlreadyOwnedByYou` elsewhere; bad names are `InvalidBucketName`.
#[tokio::test]
async fn create_bucket_answers_as_aws() {
    let backend = Arc::new(MemBackend::new());
    let service = stratus_s3::service(gateway(&backend));
    assert_eq!(call(&service, "PUT", "/mine", &[], b"").await.status, 200);
    let again = call(&service, "PUT", "/mine", &[], b"").await;
    assert_eq!(again.status, 200, "{}", again.body);
    let eu = stratus_s3::service(gateway(&backend).with_region("eu-west-1"));
    let r = call(&eu, "PUT", "/mine", &[], b"").await;
    assert_eq!(r.status, 409);
    assert!(
        r.body.contains("<Code>BucketAlreadyOwnedByYou</Code>"),
        "{}",
        r.body
    );
    for bad in [
        "foo..bar",
        "foo-",
        "xn--abc",
        "abc-s3alias",
        "192.168.1.1",
        "foo.-bar",
    ] {
        let r = call(&service, "PUT", &format!("/{bad}"), &[], b"").await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body.contains("InvalidBucketName"), "{bad}: {}", r.body);
    }
}

/// ListObjects v1 echoes `Prefix` and `Marker`, `max-keys=0` is not
/// truncated, and an empty delimiter is not echoed.
#[tokio::test]
async fn list_objects_v1_answers() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "lst").await.unwrap();
    for k in ["a/1", "b", "sp ace"] {
        backend
            .put_object("ta", "lst", k, PutMeta::default(), body(b"x"), None)
            .await
            .unwrap();
    }
    let service = stratus_s3::service(gateway(&backend));
    let r = call(&service, "GET", "/lst?max-keys=0", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("<IsTruncated>false</IsTruncated>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<Prefix></Prefix>") || r.body.contains("<Prefix/>"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("<Marker></Marker>") || r.body.contains("<Marker/>"),
        "{}",
        r.body
    );
    let r = call(&service, "GET", "/lst?delimiter=", &[], b"").await;
    assert!(!r.body.contains("<Delimiter>"), "{}", r.body);
    assert!(r.body.contains("<Key>a/1</Key>"), "{}", r.body);
    // ListObjectsV2 likewise.
    let r = call(
        &service,
        "GET",
        "/lst?list-type=2&max-keys=0&delimiter=",
        &[],
        b"",
    )
    .await;
    assert!(
        r.body.contains("<IsTruncated>false</IsTruncated>"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("<Delimiter>"), "{}", r.body);
    let r = call(&service, "GET", "/lst?delimiter=/&prefix=", &[], b"").await;
    assert!(r.body.contains("<Prefix>a/</Prefix>"), "{}", r.body);
    // With encoding-type=url, v1's own Prefix stays as sent.
    let r = call(
        &service,
        "GET",
        "/lst?encoding-type=url&prefix=sp%20",
        &[],
        b"",
    )
    .await;
    assert!(r.body.contains("<Prefix>sp </Prefix>"), "{}", r.body);
    assert!(
        !r.body.contains("<Key>sp ace</Key>"),
        "keys are encoded: {}",
        r.body
    );
}

/// `If-None-Match: *` and `If-Match` on PUT, `If-Match` on DELETE: 412
/// when they do not hold, and nothing changes.
#[tokio::test]
async fn conditional_writes() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "cnd").await.unwrap();
    let service = stratus_s3::service(gateway(&backend));
    let r = call(&service, "PUT", "/cnd/k", &[("if-none-match", "*")], b"one").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let etag = r.header("etag").unwrap().to_owned();
    let r = call(&service, "PUT", "/cnd/k", &[("if-none-match", "*")], b"two").await;
    assert_eq!(r.status, 412, "{}", r.body);
    let r = call(
        &service,
        "PUT",
        "/cnd/k",
        &[("if-match", "\"0000\"")],
        b"two",
    )
    .await;
    assert_eq!(r.status, 412);
    let r = call(
        &service,
        "DELETE",
        "/cnd/k",
        &[("if-match", "\"0000\"")],
        b"",
    )
    .await;
    assert_eq!(r.status, 412);
    assert_eq!(call(&service, "GET", "/cnd/k", &[], b"").await.body, "one");
    // If-None-Match with the current etag: 412; with another: written.
    let r = call(&service, "PUT", "/cnd/k", &[("if-none-match", &etag)], b"2").await;
    assert_eq!(r.status, 412);
    let r = call(
        &service,
        "PUT",
        "/cnd/o",
        &[("if-none-match", "\"00\"")],
        b"x",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(&service, "PUT", "/cnd/k", &[("if-match", &etag)], b"two").await;
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_owned();
    let r = call(&service, "DELETE", "/cnd/k", &[("if-match", &etag)], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(call(&service, "GET", "/cnd/k", &[], b"").await.status, 404);
    // If-Match on a key with no object: 404 NoSuchKey on a put, 204 on a
    // delete (nothing to delete), as S3 answers.
    let r = call(&service, "PUT", "/cnd/k", &[("if-match", "*")], b"x").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("<Code>NoSuchKey</Code>"), "{}", r.body);
    let r = call(&service, "DELETE", "/cnd/k", &[("if-match", "\"00\"")], b"").await;
    assert_eq!(r.status, 204);
}

/// Conditions on deletes are honoured, never ignored: a DeleteObjects
/// entry's `ETag`, `Size` and `LastModifiedTime`, and DeleteObject's
/// `x-amz-if-match-size` and `x-amz-if-match-last-modified-time`, are
/// checked with the delete (412 / `PreconditionFailed` deletes nothing); a
/// malformed one is refused.
#[tokio::test]
async fn delete_conditions_are_honoured_or_refused() {
    use base64::Engine;
    use md5::{Digest, Md5};
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "dcnd").await.unwrap();
    let service = stratus_s3::service(gateway(&backend));
    let mut etags = Vec::new();
    for k in ["a", "b", "c", "d"] {
        let r = call(&service, "PUT", &format!("/dcnd/{k}"), &[], k.as_bytes()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        etags.push(r.header("etag").unwrap().to_owned());
    }
    let xml = format!(
        "<Delete><Object><ETag>\"00000000000000000000000000000000\"</ETag><Key>a</Key></Object>\
         <Object><Key>b</Key><Size>2</Size></Object>\
         <Object><Key>c</Key><LastModifiedTime>Wed, 01 Jan 2020 00:00:00 GMT</LastModifiedTime></Object>\
         <Object><ETag>{}</ETag><Key>d</Key></Object></Delete>",
        etags[3]
    );
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(xml.as_bytes()));
    let r = call(
        &service,
        "POST",
        "/dcnd?delete",
        &[("content-md5", &md5)],
        xml.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A wrong ETag, size (b is 1 byte) or time: each entry refused alone.
    assert_eq!(
        r.body.matches("<Code>PreconditionFailed</Code>").count(),
        3,
        "{}",
        r.body
    );
    assert!(r.body.contains("<Deleted><Key>d</Key>"), "{}", r.body);
    for k in ["a", "b", "c"] {
        let got = call(&service, "GET", &format!("/dcnd/{k}"), &[], b"").await;
        assert_eq!(got.status, 200, "{k} must survive its refused delete");
    }
    assert_eq!(call(&service, "GET", "/dcnd/d", &[], b"").await.status, 404);
    for (h, value) in [
        ("x-amz-if-match-size", "2"),
        (
            "x-amz-if-match-last-modified-time",
            "Wed, 01 Jan 2020 00:00:00 GMT",
        ),
    ] {
        let r = call(&service, "DELETE", "/dcnd/a", &[(h, value)], b"").await;
        assert_eq!(r.status, 412, "{h}: {}", r.body);
        assert_eq!(call(&service, "GET", "/dcnd/a", &[], b"").await.status, 200);
    }
    let r = call(
        &service,
        "DELETE",
        "/dcnd/a",
        &[("x-amz-if-match-size", "abc")],
        b"",
    )
    .await;
    assert_eq!(r.status, 400, "a malformed size: {}", r.body);
    let r = call(
        &service,
        "DELETE",
        "/dcnd/a",
        &[("x-amz-if-match-size", "1")],
        b"",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(call(&service, "GET", "/dcnd/a", &[], b"").await.status, 404);
}

/// An `aws-chunked` upload without `Content-Length` (the decoded length in
/// `x-amz-decoded-content-length`, a trailing checksum) is stored whole.
#[tokio::test]
async fn aws_chunked_put_without_content_length() {
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "chk").await.unwrap();
    let service = stratus_s3::service(gateway(&backend));
    // CRC32("hello world") = 0x0d4a1185.
    let chunked = "6\r\nhello \r\n5\r\nworld\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(chunked))]);
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/chk/k")
        .header("host", "localhost")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "11")
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(Body::from(stratus_s3::s3s::dto::StreamingBlob::wrap(
            stream,
        )))
        .unwrap();
    assert!(req.headers().get("content-length").is_none());
    stratus_s3::fuzzing::sign_v4_payload(
        &mut req,
        "AKA",
        "SKA",
        "us-east-1",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let resp = service.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
    let r = call(&service, "GET", "/chk/k", &[], b"").await;
    assert_eq!(r.body, "hello world");
}

/// The same upload over a socket, framed with `Transfer-Encoding: chunked`
/// as clients send it when they do not know the length.
#[tokio::test]
async fn aws_chunked_put_over_http_without_content_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Arc::new(MemBackend::new());
    backend.create_bucket("ta", "chk").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stratus_s3::serve(listener, gateway(&backend), async {
        let _ = stopped.await;
    }));
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/chk/streamed")
        .header("host", "localhost")
        .header("content-encoding", "aws-chunked")
        .header("x-amz-decoded-content-length", "11")
        .header("x-amz-trailer", "x-amz-checksum-crc32")
        .body(())
        .unwrap();
    stratus_s3::fuzzing::sign_v4_payload(
        &mut req,
        "AKA",
        "SKA",
        "us-east-1",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let aws = "6\r\nhello \r\n5\r\nworld\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
    let mut head = format!("PUT {} HTTP/1.1\r\n", req.uri());
    for (k, v) in req.headers() {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    head.push_str(&format!("{:x}\r\n{aws}\r\n0\r\n\r\n", aws.len()));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let (_, body) = backend
        .get_object("ta", "chk", "streamed", None, None)
        .await
        .unwrap();
    assert_eq!(
        stratus_s3::testing::read_all(body).await,
        b"hello world".to_vec()
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
