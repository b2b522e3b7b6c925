//! [`MemBackend`] and [`MemKeys`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::backend::{
    check_bucket_config, check_tags, combine_checksums, Backend, BackendError, BackendResult,
    BucketAccessDocs, BucketConfigKind, BucketInfo, ByteRange, ByteStream, ChecksumSlot,
    DeleteCondition, DeleteOutcome, KeyRecord, KeyStore, MetadataDirective, ObjectChecksum,
    ObjectInfo, PartInfo, PutMeta, UploadInfo, VersionEntry, Versioning, WriteCondition,
    MIN_PART_SIZE, NULL_VERSION,
};

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
    initiated_ms: u64,
    parts: BTreeMap<u32, (PartInfo, Bytes)>,
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
        let v = self.lock().find(tenant, bucket, key, version_id)?;
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
        self.delete_object_if(tenant, bucket, key, version_id, cond)
            .await
    }

    async fn delete_object_if(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cond: DeleteCondition,
    ) -> BackendResult<DeleteOutcome> {
        let mut s = self.lock();
        let versioning = s.bucket(tenant, bucket)?.versioning;
        if cond.is_some() {
            let b = s.bucket(tenant, bucket)?;
            let target = b.objects.get(key).and_then(|vs| match version_id {
                None => vs.first(),
                Some(id) => vs.iter().find(|v| v.info.version_id == id),
            });
            // Nothing to delete succeeds whatever the condition; a delete
            // marker has an empty etag, no size and no time.
            let ok = target.is_none_or(|v| {
                let marker = v.info.is_delete_marker;
                cond.etag.as_deref().is_none_or(|want| {
                    let want = want.trim_matches('"');
                    want == "*" || v.info.etag == want
                }) && cond.size.is_none_or(|n| !marker && n == v.info.size)
                    && cond
                        .modified_secs
                        .is_none_or(|t| !marker && t == v.info.last_modified_ms / 1000)
            });
            if !ok {
                return Err(BackendError::PreconditionFailed);
            }
            // A conditional delete of nothing adds no delete marker.
            if target.is_none() && version_id.is_none() {
                return Ok(DeleteOutcome {
                    version_id: None,
                    delete_marker: false,
                });
            }
        }
        if let Some(id) = version_id {
            let b = s.bucket(tenant, bucket)?;
            let mut delete_marker = false;
            if let Some(vs) = b.objects.get_mut(key) {
                if let Some(i) = vs.iter().position(|v| v.info.version_id == id) {
                    delete_marker = vs.remove(i).info.is_delete_marker;
                }
                if vs.is_empty() {
                    b.objects.remove(key);
                }
            }
            return Ok(DeleteOutcome {
                version_id: Some(id.to_owned()),
                delete_marker,
            });
        }
        match versioning {
            None => {
                let b = s.bucket(tenant, bucket)?;
                b.objects.remove(key);
                Ok(DeleteOutcome {
                    version_id: None,
                    delete_marker: false,
                })
            }
            Some(_) => {
                let marker = ObjectInfo {
                    key: key.to_owned(),
                    version_id: String::new(),
                    size: 0,
                    etag: String::new(),
                    last_modified_ms: 0,
                    content_type: None,
                    user_metadata: BTreeMap::new(),
                    is_delete_marker: true,
                    headers: BTreeMap::new(),
                    tags: BTreeMap::new(),
                    part_sizes: Vec::new(),
                    checksum: None,
                    part_checksums: BTreeMap::new(),
                };
                let info = s.write(tenant, bucket, marker, Bytes::new())?;
                Ok(DeleteOutcome {
                    version_id: Some(info.version_id),
                    delete_marker: true,
                })
            }
        }
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
        s.bucket(tenant, dst_bucket)?;
        let m = match meta {
            MetadataDirective::Copy => PutMeta {
                content_type: src.info.content_type.clone(),
                user_metadata: src.info.user_metadata.clone(),
                headers: src.info.headers.clone(),
                tags: src.info.tags.clone(),
                condition: None,
                checksum: ChecksumSlot::default(),
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
        meta: PutMeta,
    ) -> BackendResult<String> {
        check_tags(&meta.tags)?;
        let mut s = self.lock();
        s.bucket(tenant, bucket)?;
        let now = s.now();
        let id = format!("mpu{}", s.fresh_id());
        s.uploads.insert(
            id.clone(),
            Upload {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                meta,
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
        self.upload_part_checked(
            tenant,
            bucket,
            key,
            upload_id,
            part_number,
            body,
            size_hint,
            ChecksumSlot::default(),
        )
        .await
    }

    async fn upload_part_checked(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        _size_hint: Option<u64>,
        checksum: ChecksumSlot,
    ) -> BackendResult<PartInfo> {
        self.lock().upload(tenant, bucket, key, upload_id)?;
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
}

/// An in-memory [`KeyStore`] (for tests).
#[derive(Default)]
pub struct MemKeys {
    keys: RwLock<HashMap<String, KeyRecord>>,
}

impl MemKeys {
    /// An empty key store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `access_key` with `secret`, acting for `tenant`.
    pub fn insert(&self, access_key: &str, secret: &str, tenant: &str) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(
            access_key.to_owned(),
            KeyRecord {
                secret: secret.to_owned(),
                tenant: tenant.to_owned(),
            },
        );
    }

    /// Builder form of [`MemKeys::insert`].
    #[must_use]
    pub fn with(self, access_key: &str, secret: &str, tenant: &str) -> Self {
        self.insert(access_key, secret, tenant);
        self
    }
}

impl KeyStore for MemKeys {
    fn lookup(&self, access_key: &str) -> Option<KeyRecord> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(access_key).cloned()
    }
}
