//! The S3 gateway on the real object store: the backend conformance suite
//! against `StoreBackend`, and real S3 clients (aws cli, rclone, s3cmd,
//! boto3, through `crates/stratus-s3/tests/clients/s3_clients.py`) against
//! an in-process cluster with storage nodes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use stratus_s3::backend::{
    Backend, BackendResult, BucketAccessDocs, BucketConfigKind, BucketInfo, ByteRange, ByteStream,
    ChecksumSlot, CustomerKey, CustomerSeal, DeleteCondition, DeleteOutcome, MetadataDirective,
    ObjectChecksum, ObjectInfo, PartInfo, PutMeta, Retention, UploadInfo, VersionEntry, Versioning,
    WriteCondition,
};
use stratus_s3::StoreBackend;
use stratus_testkit::{Cluster, Options};

const AGENTS: usize = 4;

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

async fn start(s3: bool) -> Result<Cluster> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = s3;
    start_s3_cluster(opts).await
}

/// A [`StoreBackend`] whose bucket names carry a prefix, so that each check
/// of the conformance suite gets a fresh namespace on one cluster (bucket
/// names are global there, and the suite reuses names such as `b`).
struct Fresh {
    inner: StoreBackend,
    prefix: String,
}

impl Fresh {
    fn b(&self, bucket: &str) -> String {
        format!("{}{bucket}", self.prefix)
    }
}

#[stratus_s3::async_trait]
impl Backend for Fresh {
    async fn create_bucket(&self, t: &str, b: &str) -> BackendResult<()> {
        self.inner.create_bucket(t, &self.b(b)).await
    }
    async fn delete_bucket(&self, t: &str, b: &str) -> BackendResult<()> {
        self.inner.delete_bucket(t, &self.b(b)).await
    }
    async fn list_buckets(&self, t: &str) -> BackendResult<Vec<BucketInfo>> {
        Ok(self
            .inner
            .list_buckets(t)
            .await?
            .into_iter()
            .filter_map(|mut i| {
                i.name = i.name.strip_prefix(&self.prefix)?.to_owned();
                Some(i)
            })
            .collect())
    }
    async fn head_bucket(&self, t: &str, b: &str) -> BackendResult<BucketInfo> {
        let mut i = self.inner.head_bucket(t, &self.b(b)).await?;
        i.name = b.to_owned();
        Ok(i)
    }
    async fn set_versioning(&self, t: &str, b: &str, v: Versioning) -> BackendResult<()> {
        self.inner.set_versioning(t, &self.b(b), v).await
    }
    async fn get_versioning(&self, t: &str, b: &str) -> BackendResult<Option<Versioning>> {
        self.inner.get_versioning(t, &self.b(b)).await
    }
    async fn put_object(
        &self,
        t: &str,
        b: &str,
        k: &str,
        m: PutMeta,
        body: ByteStream,
        h: Option<u64>,
    ) -> BackendResult<ObjectInfo> {
        self.inner.put_object(t, &self.b(b), k, m, body, h).await
    }
    async fn get_object(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        r: Option<ByteRange>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        self.inner.get_object(t, &self.b(b), k, v, r).await
    }
    async fn get_object_sealed(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        r: Option<ByteRange>,
        c: Option<&CustomerKey>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        self.inner
            .get_object_sealed(t, &self.b(b), k, v, r, c)
            .await
    }
    async fn head_object(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
    ) -> BackendResult<ObjectInfo> {
        self.inner.head_object(t, &self.b(b), k, v).await
    }
    async fn delete_object(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        if_match: Option<&str>,
    ) -> BackendResult<DeleteOutcome> {
        self.inner
            .delete_object(t, &self.b(b), k, v, if_match)
            .await
    }
    async fn copy_object(
        &self,
        t: &str,
        sb: &str,
        sk: &str,
        sv: Option<&str>,
        db: &str,
        dk: &str,
        m: MetadataDirective,
    ) -> BackendResult<ObjectInfo> {
        self.inner
            .copy_object(t, &self.b(sb), sk, sv, &self.b(db), dk, m)
            .await
    }
    async fn list_objects(
        &self,
        t: &str,
        b: &str,
        p: &str,
        sa: Option<&str>,
        l: usize,
    ) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list_objects(t, &self.b(b), p, sa, l).await
    }
    async fn list_versions(
        &self,
        t: &str,
        b: &str,
        p: &str,
        km: Option<&str>,
        vm: Option<&str>,
        l: usize,
    ) -> BackendResult<Vec<VersionEntry>> {
        self.inner.list_versions(t, &self.b(b), p, km, vm, l).await
    }
    async fn create_multipart(
        &self,
        t: &str,
        b: &str,
        k: &str,
        m: PutMeta,
    ) -> BackendResult<String> {
        self.inner.create_multipart(t, &self.b(b), k, m).await
    }
    async fn upload_part(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
        n: u32,
        body: ByteStream,
        h: Option<u64>,
    ) -> BackendResult<PartInfo> {
        self.inner
            .upload_part(t, &self.b(b), k, id, n, body, h)
            .await
    }
    #[allow(clippy::too_many_arguments)]
    async fn upload_part_sealed(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
        n: u32,
        body: ByteStream,
        h: Option<u64>,
        c: Option<&CustomerKey>,
        checksum: ChecksumSlot,
    ) -> BackendResult<PartInfo> {
        self.inner
            .upload_part_sealed(t, &self.b(b), k, id, n, body, h, c, checksum)
            .await
    }
    async fn complete_multipart(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
        parts: Vec<(u32, String)>,
        condition: Option<WriteCondition>,
    ) -> BackendResult<ObjectInfo> {
        self.inner
            .complete_multipart(t, &self.b(b), k, id, parts, condition)
            .await
    }
    async fn upload_customer_seal(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
    ) -> BackendResult<Option<CustomerSeal>> {
        self.inner.upload_customer_seal(t, &self.b(b), k, id).await
    }
    async fn abort_multipart(&self, t: &str, b: &str, k: &str, id: &str) -> BackendResult<()> {
        self.inner.abort_multipart(t, &self.b(b), k, id).await
    }
    async fn list_parts(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
    ) -> BackendResult<Vec<PartInfo>> {
        self.inner.list_parts(t, &self.b(b), k, id).await
    }
    async fn list_multipart_uploads(&self, t: &str, b: &str) -> BackendResult<Vec<UploadInfo>> {
        self.inner.list_multipart_uploads(t, &self.b(b)).await
    }
    async fn get_bucket_config(
        &self,
        t: &str,
        b: &str,
        k: BucketConfigKind,
    ) -> BackendResult<Option<String>> {
        self.inner.get_bucket_config(t, &self.b(b), k).await
    }
    async fn put_bucket_config(
        &self,
        t: &str,
        b: &str,
        k: BucketConfigKind,
        doc: Option<String>,
    ) -> BackendResult<()> {
        self.inner.put_bucket_config(t, &self.b(b), k, doc).await
    }
    async fn bucket_access(&self, b: &str) -> BackendResult<Option<BucketAccessDocs>> {
        self.inner.bucket_access(&self.b(b)).await
    }

    async fn set_object_tags(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        tags: std::collections::BTreeMap<String, String>,
    ) -> BackendResult<String> {
        self.inner.set_object_tags(t, &self.b(b), k, v, tags).await
    }

    async fn upload_checksum(
        &self,
        t: &str,
        b: &str,
        k: &str,
        id: &str,
    ) -> BackendResult<Option<ObjectChecksum>> {
        self.inner.upload_checksum(t, &self.b(b), k, id).await
    }

    async fn set_object_acl(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        acl: Option<String>,
    ) -> BackendResult<String> {
        self.inner.set_object_acl(t, &self.b(b), k, v, acl).await
    }
    async fn create_bucket_locked(&self, t: &str, b: &str) -> BackendResult<()> {
        self.inner.create_bucket_locked(t, &self.b(b)).await
    }
    async fn set_object_retention(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        r: Option<Retention>,
        bypass: bool,
    ) -> BackendResult<String> {
        self.inner
            .set_object_retention(t, &self.b(b), k, v, r, bypass)
            .await
    }
    async fn set_object_legal_hold(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        on: bool,
    ) -> BackendResult<String> {
        self.inner
            .set_object_legal_hold(t, &self.b(b), k, v, on)
            .await
    }
    async fn delete_object_if(
        &self,
        t: &str,
        b: &str,
        k: &str,
        v: Option<&str>,
        cond: DeleteCondition,
        bypass: bool,
    ) -> BackendResult<DeleteOutcome> {
        self.inner
            .delete_object_if(t, &self.b(b), k, v, cond, bypass)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_backend_passes_the_conformance_suite() -> Result<()> {
    let cluster = start(false).await?;
    let store = cluster.store(0)?;
    let n = Arc::new(AtomicUsize::new(0));
    stratus_s3::testing::backend_conformance(|| Fresh {
        inner: StoreBackend::new(store.clone()),
        prefix: format!("c{}-", n.fetch_add(1, Ordering::SeqCst)),
    })
    .await;
    cluster.shutdown().await;
    Ok(())
}

async fn run_clients(clients: &'static str) -> Result<()> {
    let cluster = start(true).await?;
    let (ak_a, sk_a) = create_key(&cluster, "tenant-a").await?;
    let (ak_b, sk_b) = create_key(&cluster, "tenant-b").await?;
    let endpoint = cluster.s3_url(0)?;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../stratus-s3/tests/clients/s3_clients.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--endpoint", &endpoint])
            .args(["--access-key", &ak_a, "--secret", &sk_a])
            .args(["--access-key-b", &ak_b, "--secret-b", &sk_b])
            .args(["--only", clients])
            .output()
    })
    .await??;
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.shutdown().await;
    if !out.status.success() {
        bail!("the S3 client harness failed for {clients}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_clients_against_the_cloud() -> Result<()> {
    run_clients("aws,rclone,s3cmd,boto3").await
}
