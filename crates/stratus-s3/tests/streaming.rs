//! Bodies stream through the gateway: a 1 GiB PUT and GET leave the peak
//! resident memory of the process nearly unchanged (the backend here counts
//! bytes and keeps none). Alone in its test binary so the measurement is not
//! disturbed by other tests.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use stratus_s3::fuzzing::sign_v4;
use stratus_s3::s3s::dto::StreamingBlob;
use stratus_s3::testing::MemKeys;
use stratus_s3::{
    Backend, BackendError, BackendResult, BucketConfigKind, BucketInfo, ByteRange, ByteStream,
    DeleteOutcome, Gateway, MetadataDirective, ObjectInfo, PartInfo, PutMeta, UploadInfo,
    VersionEntry, Versioning,
};

const SIZE: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;

/// Stores nothing: counts what is put, serves `SIZE` zero bytes on get.
#[derive(Default)]
struct Sink {
    received: AtomicU64,
}

fn unused<T>() -> BackendResult<T> {
    Err(BackendError::Internal("not used by this test".into()))
}

fn zeros(n: u64) -> ByteStream {
    let chunk = Bytes::from(vec![0u8; CHUNK]);
    let count = usize::try_from(n / CHUNK as u64).unwrap();
    Box::pin(futures::stream::iter(
        std::iter::repeat_n(chunk, count).map(Ok),
    ))
}

fn info(size: u64, etag: String) -> ObjectInfo {
    ObjectInfo {
        key: "big".into(),
        version_id: "null".into(),
        size,
        etag,
        last_modified_ms: 1,
        content_type: None,
        user_metadata: BTreeMap::new(),
        is_delete_marker: false,
        headers: BTreeMap::new(),
        tags: BTreeMap::new(),
        part_sizes: Vec::new(),
        checksum: None,
        part_checksums: BTreeMap::new(),
        customer_seal: None,
        acl: None,
        lock: Default::default(),
    }
}

#[async_trait::async_trait]
impl Backend for Sink {
    async fn create_bucket(&self, _: &str, _: &str) -> BackendResult<()> {
        Ok(())
    }
    async fn delete_bucket(&self, _: &str, _: &str) -> BackendResult<()> {
        unused()
    }
    async fn list_buckets(&self, _: &str) -> BackendResult<Vec<BucketInfo>> {
        unused()
    }
    async fn head_bucket(&self, _: &str, b: &str) -> BackendResult<BucketInfo> {
        Ok(BucketInfo {
            name: b.into(),
            created_ms: 1,
        })
    }
    async fn set_versioning(&self, _: &str, _: &str, _: Versioning) -> BackendResult<()> {
        unused()
    }
    async fn get_versioning(&self, _: &str, _: &str) -> BackendResult<Option<Versioning>> {
        Ok(None)
    }
    async fn put_object(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: PutMeta,
        mut body: ByteStream,
        _: Option<u64>,
    ) -> BackendResult<ObjectInfo> {
        let mut md5 = Md5::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BackendError::InvalidArgument(e.to_string()))?;
            md5.update(&chunk);
            n += chunk.len() as u64;
        }
        self.received.store(n, Ordering::SeqCst);
        Ok(info(n, hex::encode(md5.finalize())))
    }
    async fn get_object(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<ByteRange>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        Ok((info(SIZE, "0".into()), zeros(SIZE)))
    }
    async fn head_object(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
    ) -> BackendResult<ObjectInfo> {
        Ok(info(SIZE, "0".into()))
    }
    async fn delete_object(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
    ) -> BackendResult<DeleteOutcome> {
        unused()
    }
    async fn copy_object(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: &str,
        _: &str,
        _: MetadataDirective,
    ) -> BackendResult<ObjectInfo> {
        unused()
    }
    async fn list_objects(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> BackendResult<Vec<ObjectInfo>> {
        unused()
    }
    async fn list_versions(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<&str>,
        _: usize,
    ) -> BackendResult<Vec<VersionEntry>> {
        unused()
    }
    async fn create_multipart(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: PutMeta,
    ) -> BackendResult<String> {
        unused()
    }
    async fn upload_part(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: u32,
        _: ByteStream,
        _: Option<u64>,
    ) -> BackendResult<PartInfo> {
        unused()
    }
    async fn complete_multipart(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: Vec<(u32, String)>,
        _: Option<stratus_s3::WriteCondition>,
    ) -> BackendResult<ObjectInfo> {
        unused()
    }
    async fn abort_multipart(&self, _: &str, _: &str, _: &str, _: &str) -> BackendResult<()> {
        unused()
    }
    async fn list_parts(&self, _: &str, _: &str, _: &str, _: &str) -> BackendResult<Vec<PartInfo>> {
        unused()
    }
    async fn list_multipart_uploads(&self, _: &str, _: &str) -> BackendResult<Vec<UploadInfo>> {
        unused()
    }
    async fn get_bucket_config(
        &self,
        _: &str,
        _: &str,
        _: BucketConfigKind,
    ) -> BackendResult<Option<String>> {
        unused()
    }
    async fn put_bucket_config(
        &self,
        _: &str,
        _: &str,
        _: BucketConfigKind,
        _: Option<String>,
    ) -> BackendResult<()> {
        unused()
    }
    async fn set_object_tags(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: BTreeMap<String, String>,
    ) -> BackendResult<String> {
        unused()
    }
    async fn set_object_acl(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Option<String>,
    ) -> BackendResult<String> {
        unused()
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_put_and_get_stream() {
    let sink = Arc::new(Sink::default());
    let keys = Arc::new(MemKeys::new().with("AK", "SK", "t"));
    let service = stratus_s3::service(Gateway::new(Arc::clone(&sink), keys));
    let before = peak_rss_kib();

    let body = StreamingBlob::wrap::<_, std::io::Error>(futures::stream::iter(
        std::iter::repeat_n(
            Bytes::from(vec![7u8; CHUNK]),
            usize::try_from(SIZE).unwrap() / CHUNK,
        )
        .map(Ok),
    ));
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("/bucket/big")
        .header("host", "localhost")
        .header("content-length", SIZE.to_string())
        .body(stratus_s3::s3s::Body::from(body))
        .unwrap();
    sign_v4(&mut req, "AK", "SK", "us-east-1");
    let resp = service.call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sink.received.load(Ordering::SeqCst), SIZE);

    let mut req = http::Request::builder()
        .uri("/bucket/big")
        .header("host", "localhost")
        .body(stratus_s3::s3s::Body::empty())
        .unwrap();
    sign_v4(&mut req, "AK", "SK", "us-east-1");
    let resp = service.call(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            got += data.len() as u64;
        }
    }
    assert_eq!(got, SIZE);

    let grown = peak_rss_kib().saturating_sub(before);
    assert!(
        grown < 128 * 1024,
        "peak RSS grew by {grown} KiB moving 2 GiB: bodies are buffered"
    );
}
