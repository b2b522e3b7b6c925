//! [`MemBackend`] and [`MemKeys`].

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::backend::{
    check_bucket_config, check_tags, combine_checksums, Backend, BackendError, BackendResult,
    BucketAccessDocs, BucketConfigKind, BucketInfo, ByteRange, ByteStream, ChecksumSlot,
    CustomerKey, CustomerSeal, DeleteCondition, DeleteOutcome, MetadataDirective, ObjectChecksum,
    ObjectInfo, PartInfo, PutMeta, Retention, UploadInfo, VersionEntry, VersionLock, Versioning,
    WriteCondition, MIN_PART_SIZE, NULL_VERSION,
};

#[path = "mem_lock.rs"]
mod lock;

#[path = "mem_delete.rs"]
mod delete;

#[path = "mem_keys.rs"]
mod keys;
pub use keys::MemKeys;

/// An in-memory [`Backend`] with S3's versioning semantics.
///
/// **For tests only**: it holds every object in memory (it collects each
/// body before storing it), keeps nothing on disk and has no limits. Bucket
/// names are per tenant: two tenants may each have a bucket `photos`.
#[derive(Default)]
pub struct MemBackend {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    buckets: BTreeMap<(String, String), Bucket>,
    uploads: BTreeMap<String, Upload>,
    /// Completed uploads: id → (tenant, bucket, key, version id).
    completed: BTreeMap<String, (String, String, String, String)>,
    counter: u64,
    last_ms: u64,
}

struct Bucket {
    created_ms: u64,
    versioning: Option<Versioning>,
    /// Versions of each key, newest first.
    objects: BTreeMap<String, Vec<Stored>>,
    /// Configuration documents.
    configs: BTreeMap<BucketConfigKind, String>,
}

#[derive(Clone)]
struct Stored {
    info: ObjectInfo,
    data: Bytes,
}

struct Upload {
    tenant: String,
    bucket: String,
    key: String,
    meta: PutMeta,
    /// The seal of its customer key (SSE-C); the key itself is not kept.
    seal: Option<CustomerSeal>,
    initiated_ms: u64,
    parts: BTreeMap<u32, (PartInfo, Bytes)>,
}

/// Whether a request carrying `key` may read (or add a part to) what
/// `seal` seals: the errors of [`Backend::get_object_sealed`]. (This
/// backend keeps plaintext in memory: it checks keys, it does not encrypt.)
fn check_key(seal: Option<&CustomerSeal>, key: Option<&CustomerKey>) -> BackendResult<()> {
    match (seal, key) {
        (None, None) => Ok(()),
        (Some(s), Some(k)) if s.opens_with(k) => Ok(()),
        (Some(_), Some(_)) => Err(BackendError::CustomerKeyMismatch),
        (Some(_), None) => Err(BackendError::CustomerKeyRequired),
        (None, Some(_)) => Err(BackendError::CustomerKeyNotApplicable),
    }
}

impl State {
    fn now(&mut self) -> u64 {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ms = self.last_ms.max(ms);
        self.last_ms
    }

    fn fresh_id(&mut self) -> String {
        self.counter += 1;
        format!("{:016x}{:08x}", self.last_ms, self.counter)
    }

    fn bucket(&mut self, tenant: &str, bucket: &str) -> BackendResult<&mut Bucket> {
        self.buckets
            .get_mut(&(tenant.to_owned(), bucket.to_owned()))
            .ok_or(BackendError::NoSuchBucket)
    }

    /// Adds a version (object or delete marker) per the bucket's versioning.
    fn write(
        &mut self,
        tenant: &str,
        bucket: &str,
        mut info: ObjectInfo,
        data: Bytes,
    ) -> BackendResult<ObjectInfo> {
        let now = self.now();
        let versioning = self.bucket(tenant, bucket)?.versioning;
        if !info.is_delete_marker {
            lock::lock_new(bucket, self.bucket(tenant, bucket)?, &mut info.lock, now)?;
        }
        info.version_id = match versioning {
            Some(Versioning::Enabled) => self.fresh_id(),
            _ => NULL_VERSION.to_owned(),
        };
        info.last_modified_ms = now;
        let b = self.bucket(tenant, bucket)?;
        let versions = b.objects.entry(info.key.clone()).or_default();
        if info.version_id == NULL_VERSION {
            versions.retain(|v| v.info.version_id != NULL_VERSION);
        }
        versions.insert(
            0,
            Stored {
                info: info.clone(),
                data,
            },
        );
        Ok(info)
    }

    fn find(
        &mut self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> BackendResult<Stored> {
        let b = self.bucket(tenant, bucket)?;
        let versions = b.objects.get(key);
        match version {
            None => {
                let latest = versions
                    .and_then(|v| v.first())
                    .ok_or(BackendError::NoSuchKey)?;
                if latest.info.is_delete_marker {
                    return Err(BackendError::NoSuchKey);
                }
                Ok(latest.clone())
            }
            Some(id) => {
                let v = versions
                    .and_then(|vs| vs.iter().find(|v| v.info.version_id == id))
                    .ok_or(BackendError::NoSuchVersion)?;
                if v.info.is_delete_marker {
                    return Err(BackendError::MethodNotAllowed);
                }
                Ok(v.clone())
            }
        }
    }

    /// Checks a write's precondition against the key's current object.
    fn check(
        &mut self,
        tenant: &str,
        bucket: &str,
        key: &str,
        cond: Option<&WriteCondition>,
    ) -> BackendResult<()> {
        let Some(cond) = cond else { return Ok(()) };
        let current = match self.find(tenant, bucket, key, None) {
            Ok(v) => Some(v.info.etag),
            Err(BackendError::NoSuchKey) => None,
            Err(e) => return Err(e),
        };
        let ok = match (cond, current) {
            (WriteCondition::IfAbsent, c) => c.is_none(),
            (WriteCondition::IfMatch(_), None) => false,
            (WriteCondition::IfMatch(want), Some(etag)) => {
                let want = want.trim_matches('"');
                want == "*" || want == etag
            }
            (WriteCondition::IfNoneMatch(other), c) => {
                c.is_none_or(|etag| other.trim_matches('"') != etag)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(BackendError::PreconditionFailed)
        }
    }

    fn upload(
        &mut self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<&mut Upload> {
        self.bucket(tenant, bucket)?;
        match self.uploads.get_mut(upload_id) {
            Some(u) if u.tenant == tenant && u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(BackendError::NoSuchUpload),
        }
    }
}

/// Collects a body (the in-memory backend may; real ones must not).
async fn collect(mut body: ByteStream) -> BackendResult<Bytes> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| BackendError::InvalidArgument(format!("body: {e}")))?;
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn size_of(data: &Bytes) -> u64 {
    u64::try_from(data.len()).unwrap_or(u64::MAX)
}

/// A body of one chunk (or none) as a [`ByteStream`], in chunks of at most
/// 64 KiB so readers see several.
fn body_of(data: Bytes) -> ByteStream {
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = rest.len().min(64 * 1024);
        chunks.push(Ok(rest.split_to(n)));
    }
    Box::pin(futures::stream::iter(chunks))
}

impl MemBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a test panicked; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Backend for MemBackend {
    async fn create_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        if bucket.is_empty() {
            return Err(BackendError::InvalidBucketName);
        }
        let mut s = self.lock();
        let now = s.now();
        let id = (tenant.to_owned(), bucket.to_owned());
        if s.buckets.contains_key(&id) {
            return Err(BackendError::BucketAlreadyOwnedByYou);
        }
        s.buckets.insert(
            id,
            Bucket {
                created_ms: now,
                versioning: None,
                objects: BTreeMap::new(),
                configs: BTreeMap::new(),
            },
        );
        Ok(())
    }

    async fn delete_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        if !b.objects.is_empty() {
            return Err(BackendError::BucketNotEmpty);
        }
        // Uploads in progress go with the bucket.
        s.uploads
            .retain(|_, u| !(u.tenant == tenant && u.bucket == bucket));
        s.buckets.remove(&(tenant.to_owned(), bucket.to_owned()));
        Ok(())
    }

    async fn list_buckets(&self, tenant: &str) -> BackendResult<Vec<BucketInfo>> {
        let s = self.lock();
        Ok(s.buckets
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|((_, name), b)| BucketInfo {
                name: name.clone(),
                created_ms: b.created_ms,
            })
            .collect())
    }

    async fn head_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<BucketInfo> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        Ok(BucketInfo {
            name: bucket.to_owned(),
            created_ms: b.created_ms,
        })
    }

    async fn set_versioning(
        &self,
        tenant: &str,
        bucket: &str,
        versioning: Versioning,
    ) -> BackendResult<()> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        lock::check_versioning(b, versioning)?;
        // Suspending a never-versioned bucket is recorded too (as S3 does).
        b.versioning = Some(versioning);
        Ok(())
    }

    async fn get_versioning(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> BackendResult<Option<Versioning>> {
        let mut s = self.lock();
        Ok(s.bucket(tenant, bucket)?.versioning)
    }

    async fn put_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
        body: ByteStream,
        _size_hint: Option<u64>,
    ) -> BackendResult<ObjectInfo> {
        self.lock().bucket(tenant, bucket)?;
        check_tags(&meta.tags)?;
        let data = collect(body).await?;
        let info = ObjectInfo {
            key: key.to_owned(),
            version_id: String::new(),
            size: size_of(&data),
            etag: md5_hex(&data),
            last_modified_ms: 0,
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
            is_delete_marker: false,
            headers: meta.headers,
            tags: meta.tags,
            part_sizes: Vec::new(),
            checksum: meta.checksum.get().filter(|c| !c.value.is_empty()),
            part_checksums: BTreeMap::new(),
            customer_seal: meta.customer_key.as_ref().map(stratus_store::fresh_seal),
            acl: meta.acl,
            lock: meta.lock,
        };
        let mut s = self.lock();
        s.check(tenant, bucket, key, meta.condition.as_ref())?;
        s.write(tenant, bucket, info, data)
    }

    async fn get_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        self.get_object_sealed(tenant, bucket, key, version_id, range, None)
            .await
    }

    async fn get_object_sealed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        customer: Option<&CustomerKey>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        let v = self.lock().find(tenant, bucket, key, version_id)?;
        check_key(v.info.customer_seal.as_ref(), customer)?;
        let data = match range {
            Some(r) => {
                let (first, last) = r.resolve(v.info.size)?;
                let first = usize::try_from(first).map_err(|_| BackendError::InvalidRange)?;
                let last = usize::try_from(last).map_err(|_| BackendError::InvalidRange)?;
                v.data.slice(first..=last)
            }
            None => v.data.clone(),
        };
        Ok((v.info, body_of(data)))
    }

    async fn head_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> BackendResult<ObjectInfo> {
        Ok(self.lock().find(tenant, bucket, key, version_id)?.info)
    }

    async fn delete_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        if_match: Option<&str>,
    ) -> BackendResult<DeleteOutcome> {
        let cond = DeleteCondition {
            etag: if_match.map(str::to_owned),
            ..DeleteCondition::default()
        };
        self.delete_checked(tenant, bucket, key, version_id, cond, false)
    }

    async fn delete_object_if(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cond: DeleteCondition,
        bypass_governance: bool,
    ) -> BackendResult<DeleteOutcome> {
        self.delete_checked(tenant, bucket, key, version_id, cond, bypass_governance)
    }

    async fn create_bucket_locked(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        self.lock_create_bucket(tenant, bucket)
    }

    async fn set_object_retention(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> BackendResult<String> {
        self.lock_set_retention(
            tenant,
            bucket,
            key,
            version_id,
            retention,
            bypass_governance,
        )
    }

    async fn set_object_legal_hold(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> BackendResult<String> {
        self.lock_set_legal_hold(tenant, bucket, key, version_id, on)
    }

    async fn copy_object(
        &self,
        tenant: &str,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        dst_bucket: &str,
        dst_key: &str,
        meta: MetadataDirective,
    ) -> BackendResult<ObjectInfo> {
        let mut s = self.lock();
        let src = s.find(tenant, src_bucket, src_key, src_version)?;
        if src.info.customer_seal.is_some() {
            return Err(BackendError::CustomerKeyRequired);
        }
        s.bucket(tenant, dst_bucket)?;
        let m = match meta {
            MetadataDirective::Copy => PutMeta {
                content_type: src.info.content_type.clone(),
                user_metadata: src.info.user_metadata.clone(),
                headers: src.info.headers.clone(),
                tags: src.info.tags.clone(),
                condition: None,
                checksum: ChecksumSlot::default(),
                customer_key: None,
                // An ACL is never copied.
                acl: None,
                // A copy does not inherit the source's lock (as S3).
                lock: VersionLock::default(),
            },
            MetadataDirective::Replace(m) => {
                check_tags(&m.tags)?;
                m
            }
        };
        s.check(tenant, dst_bucket, dst_key, m.condition.as_ref())?;
        let info = ObjectInfo {
            key: dst_key.to_owned(),
            version_id: String::new(),
            size: src.info.size,
            etag: md5_hex(&src.data),
            last_modified_ms: 0,
            content_type: m.content_type,
            user_metadata: m.user_metadata,
            is_delete_marker: false,
            headers: m.headers,
            tags: m.tags,
            // The copy is one simple upload: a full-object checksum of the
            // same bytes still holds, a composite one does not.
            part_sizes: Vec::new(),
            checksum: src.info.checksum.clone().filter(|c| !c.composite),
            part_checksums: BTreeMap::new(),
            customer_seal: None,
            acl: m.acl,
            lock: m.lock,
        };
        s.write(tenant, dst_bucket, info, src.data)
    }

    async fn list_objects(
        &self,
        tenant: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> BackendResult<Vec<ObjectInfo>> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        let lower = match start_after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        Ok(b.objects
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(_, vs)| vs.first())
            .filter(|v| !v.info.is_delete_marker)
            .take(limit)
            .map(|v| v.info.clone())
            .collect())
    }

    async fn list_versions(
        &self,
        tenant: &str,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        version_marker: Option<&str>,
        limit: usize,
    ) -> BackendResult<Vec<VersionEntry>> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        let lower = match key_marker {
            Some(k) if k >= prefix => {
                if version_marker.is_some() {
                    Bound::Included(k.to_owned())
                } else {
                    Bound::Excluded(k.to_owned())
                }
            }
            _ => Bound::Included(prefix.to_owned()),
        };
        let mut out = Vec::new();
        for (key, vs) in b.objects.range((lower, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            let skip = match (key_marker, version_marker) {
                (Some(k), Some(vm)) if k == key => vs
                    .iter()
                    .position(|v| v.info.version_id == vm)
                    .map_or(vs.len(), |i| i + 1),
                _ => 0,
            };
            for (i, v) in vs.iter().enumerate().skip(skip) {
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(VersionEntry {
                    info: v.info.clone(),
                    is_latest: i == 0,
                });
            }
        }
        Ok(out)
    }

    async fn create_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        mut meta: PutMeta,
    ) -> BackendResult<String> {
        check_tags(&meta.tags)?;
        let seal = meta
            .customer_key
            .take()
            .as_ref()
            .map(stratus_store::fresh_seal);
        let mut s = self.lock();
        let now = s.now();
        lock::lock_new(
            bucket,
            s.bucket(tenant, bucket)?,
            &mut meta.lock.clone(),
            now,
        )?;
        let id = format!("mpu{}", s.fresh_id());
        s.uploads.insert(
            id.clone(),
            Upload {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                meta,
                seal,
                initiated_ms: now,
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> BackendResult<PartInfo> {
        self.upload_part_sealed(
            tenant,
            bucket,
            key,
            upload_id,
            part_number,
            body,
            size_hint,
            None,
            ChecksumSlot::default(),
        )
        .await
    }

    async fn upload_part_sealed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        _size_hint: Option<u64>,
        customer: Option<&CustomerKey>,
        checksum: ChecksumSlot,
    ) -> BackendResult<PartInfo> {
        let seal = self.lock().upload(tenant, bucket, key, upload_id)?.seal;
        check_key(seal.as_ref(), customer)?;
        let data = collect(body).await?;
        let mut s = self.lock();
        let now = s.now();
        let upload = s.upload(tenant, bucket, key, upload_id)?;
        let part = PartInfo {
            part_number,
            etag: md5_hex(&data),
            size: size_of(&data),
            last_modified_ms: now,
            checksum: checksum.get().map(|c| c.value).filter(|v| !v.is_empty()),
        };
        upload.parts.insert(part_number, (part.clone(), data));
        Ok(part)
    }

    async fn complete_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(u32, String)>,
        condition: Option<WriteCondition>,
    ) -> BackendResult<ObjectInfo> {
        let mut s = self.lock();
        if !s.uploads.contains_key(upload_id) {
            // Completed already: the version it made, while it exists and
            // the parts are the same (S3 answers so).
            let done = s.completed.get(upload_id).cloned();
            if let Some((t, b, k, v)) = done {
                if (t.as_str(), b.as_str(), k.as_str()) == (tenant, bucket, key) {
                    if let Ok(found) = s.find(tenant, bucket, key, Some(&v)) {
                        let md5s: Vec<u8> = parts
                            .iter()
                            .filter_map(|(_, e)| hex::decode(e.trim_matches('"')).ok())
                            .flatten()
                            .collect();
                        if found.info.etag == format!("{}-{}", md5_hex(&md5s), parts.len()) {
                            return Ok(found.info);
                        }
                    }
                }
            }
        }
        let upload = s.upload(tenant, bucket, key, upload_id)?;
        if parts.is_empty() {
            return Err(BackendError::InvalidPart);
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(BackendError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(parts.len());
        for (n, tag) in &parts {
            let (info, data) = upload.parts.get(n).ok_or(BackendError::InvalidPart)?;
            if !info.etag.eq_ignore_ascii_case(tag.trim_matches('"')) {
                return Err(BackendError::InvalidPart);
            }
            chosen.push((info.clone(), data.clone()));
        }
        let last = chosen.len() - 1;
        if chosen
            .iter()
            .take(last)
            .any(|(p, _)| p.size < MIN_PART_SIZE)
        {
            return Err(BackendError::EntityTooSmall);
        }
        let mut md5s = Vec::with_capacity(16 * chosen.len());
        let mut data = BytesMut::new();
        for (p, d) in &chosen {
            md5s.extend(hex::decode(&p.etag).map_err(|e| BackendError::Internal(e.to_string()))?);
            data.extend_from_slice(d);
        }
        let data = data.freeze();
        let meta = upload.meta.clone();
        let sums: Vec<(Option<&str>, u64)> = chosen
            .iter()
            .map(|(p, _)| (p.checksum.as_deref(), p.size))
            .collect();
        let checksum = match meta.checksum.get() {
            Some(asked) => combine_checksums(&asked, &sums)?,
            None => None,
        };
        let part_checksums = chosen
            .iter()
            .zip(1u32..)
            .filter_map(|((p, _), i)| p.checksum.clone().map(|v| (i, v)))
            .collect();
        let seal = upload.seal;
        let info = ObjectInfo {
            key: key.to_owned(),
            version_id: String::new(),
            size: size_of(&data),
            etag: format!("{}-{}", md5_hex(&md5s), chosen.len()),
            last_modified_ms: 0,
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
            is_delete_marker: false,
            headers: meta.headers,
            tags: meta.tags,
            part_sizes: chosen.iter().map(|(p, _)| p.size).collect(),
            checksum,
            part_checksums,
            customer_seal: seal,
            acl: meta.acl,
            lock: meta.lock,
        };
        s.check(tenant, bucket, key, condition.as_ref())?;
        let info = s.write(tenant, bucket, info, data)?;
        s.uploads.remove(upload_id);
        s.completed.insert(
            upload_id.to_owned(),
            (
                tenant.to_owned(),
                bucket.to_owned(),
                key.to_owned(),
                info.version_id.clone(),
            ),
        );
        Ok(info)
    }

    async fn upload_customer_seal(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Option<CustomerSeal>> {
        Ok(self.lock().upload(tenant, bucket, key, upload_id)?.seal)
    }

    async fn abort_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<()> {
        let mut s = self.lock();
        s.upload(tenant, bucket, key, upload_id)?;
        s.uploads.remove(upload_id);
        Ok(())
    }

    async fn list_parts(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Vec<PartInfo>> {
        let mut s = self.lock();
        let u = s.upload(tenant, bucket, key, upload_id)?;
        Ok(u.parts.values().map(|(p, _)| p.clone()).collect())
    }

    async fn upload_checksum(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Option<ObjectChecksum>> {
        let mut s = self.lock();
        Ok(s.upload(tenant, bucket, key, upload_id)?
            .meta
            .checksum
            .get())
    }

    async fn list_multipart_uploads(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> BackendResult<Vec<UploadInfo>> {
        let mut s = self.lock();
        s.bucket(tenant, bucket)?;
        let mut out: Vec<UploadInfo> = s
            .uploads
            .iter()
            .filter(|(_, u)| u.tenant == tenant && u.bucket == bucket)
            .map(|(id, u)| UploadInfo {
                key: u.key.clone(),
                upload_id: id.clone(),
                initiated_ms: u.initiated_ms,
            })
            .collect();
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        Ok(out)
    }

    async fn get_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
    ) -> BackendResult<Option<String>> {
        let mut s = self.lock();
        Ok(s.bucket(tenant, bucket)?.configs.get(&kind).cloned())
    }

    async fn put_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
        doc: Option<String>,
    ) -> BackendResult<()> {
        let mut s = self.lock();
        let b = s.bucket(tenant, bucket)?;
        lock::check_config(b, kind, doc.is_none())?;
        match doc {
            None => {
                b.configs.remove(&kind);
            }
            Some(doc) => {
                check_bucket_config(bucket, kind, &doc).map_err(BackendError::InvalidArgument)?;
                b.configs.insert(kind, doc);
            }
        }
        Ok(())
    }

    async fn bucket_access(&self, bucket: &str) -> BackendResult<Option<BucketAccessDocs>> {
        let s = self.lock();
        Ok(s.buckets
            .iter()
            .find(|((_, name), _)| name == bucket)
            .map(|((owner, _), b)| {
                BucketAccessDocs::collect(owner, |k| b.configs.get(&k).map(String::as_str))
            }))
    }

    async fn set_object_tags(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> BackendResult<String> {
        check_tags(&tags)?;
        let mut s = self.lock();
        let v = s.find(tenant, bucket, key, version_id)?;
        let id = v.info.version_id;
        let b = s.bucket(tenant, bucket)?;
        if let Some(stored) = b
            .objects
            .get_mut(key)
            .and_then(|vs| vs.iter_mut().find(|x| x.info.version_id == id))
        {
            stored.info.tags = tags;
        }
        Ok(id)
    }

    async fn set_object_acl(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: Option<String>,
    ) -> BackendResult<String> {
        let mut s = self.lock();
        let v = s.find(tenant, bucket, key, version_id)?;
        let id = v.info.version_id;
        let b = s.bucket(tenant, bucket)?;
        if let Some(stored) = b
            .objects
            .get_mut(key)
            .and_then(|vs| vs.iter_mut().find(|x| x.info.version_id == id))
        {
            stored.info.acl = acl;
        }
        Ok(id)
    }
}
