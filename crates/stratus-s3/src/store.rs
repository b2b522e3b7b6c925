//! The real backend: [`StoreBackend`] maps every [`Backend`] call onto
//! Stratus's object store ([`stratus_store::Store`]) and its replicated
//! metadata; [`StoreKeys`] reads access keys from the same metadata.
//!
//! * Bucket names are global (cluster-wide, as in S3): a name another tenant
//!   holds is `BucketAlreadyExists`; naming another tenant's bucket is
//!   `AccessDenied`.
//! * Buckets created through S3 start never-versioned (`null` versions),
//!   with the automatic erasure profile and the tenant dedupe scope.
//! * Reads of the metadata are local to the replica; the store's writes
//!   return only once this replica has applied them, so a client sees its
//!   own writes on the gateway it wrote through.
//! * Copies are metadata-only: the new version references the source's
//!   chunks (a multipart source keeps its `-N` etag).

use std::sync::Arc;

use futures::StreamExt;
use std::collections::BTreeMap;

use stratus_state::objects::{
    multipart_etag, validate_bucket_name, Bucket, DedupeScope, ObjectVersion, StoreCommand, Upload,
    VersionAttrs, Versioning as StateVersioning, NULL_VERSION,
};
use stratus_state::State;
use stratus_store::{CustomerSeal, Store, StoreError};
use stratus_types::ErrorCode;

use crate::backend::{
    check_bucket_config, combine_checksums, Backend, BackendError, BackendResult, BucketAccessDocs,
    BucketConfigKind, BucketInfo, ByteRange, ByteStream, ChecksumSlot, CustomerKey,
    DeleteCondition, DeleteOutcome, KeyRecord, KeyStore, MetadataDirective, ObjectChecksum,
    ObjectInfo, PartInfo, PutMeta, Retention, UploadInfo, VersionEntry, VersionLock, Versioning,
    WriteCondition, MIN_PART_SIZE,
};
pub(crate) use crate::store_convert::{
    check_key, full_info, info, now_ms, seal_of, state_condition, store_err, store_meta, write_err,
};

/// The [`Backend`] over a replica's [`Store`].
#[derive(Clone)]
pub struct StoreBackend {
    store: Store,
}

impl StoreBackend {
    /// A backend over `store`.
    pub fn new(store: Store) -> Self {
        StoreBackend { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.store.state(f)
    }

    async fn command(&self, cmd: StoreCommand) -> Result<stratus_state::CommandResult, StoreError> {
        self.store.command(cmd).await
    }

    /// The bucket, if `tenant` owns it.
    fn bucket(&self, tenant: &str, bucket: &str) -> BackendResult<Bucket> {
        self.read(|s| owned(s, tenant, bucket).cloned())
    }

    /// The upload `id` of `tenant` for `bucket/key`.
    fn upload(&self, tenant: &str, bucket: &str, key: &str, id: &str) -> BackendResult<Upload> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            match s.store.uploads.get(id) {
                Some(u) if u.tenant == tenant && u.bucket == bucket && u.key == key => {
                    Ok(u.clone())
                }
                _ => Err(BackendError::NoSuchUpload),
            }
        })
    }

    /// A version by the read rules of [`Backend::get_object`].
    fn lookup(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> BackendResult<(ObjectVersion, VersionAttrs)> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            let mut versions = s.store.versions(bucket, key);
            let v = match version_id {
                None => match versions.pop() {
                    Some(v) if !v.is_delete_marker() => v,
                    _ => return Err(BackendError::NoSuchKey),
                },
                Some(id) => match versions.into_iter().find(|x| x.version_id == id) {
                    Some(v) if v.is_delete_marker() => return Err(BackendError::MethodNotAllowed),
                    Some(v) => v,
                    None => return Err(BackendError::NoSuchVersion),
                },
            };
            let attrs = s.store.version_attrs(bucket, key, &v.version_id);
            Ok((v, attrs))
        })
    }
}

/// `bucket` if `tenant` owns it: `NoSuchBucket` / `AccessDenied` otherwise.
pub(crate) fn owned<'a>(s: &'a State, tenant: &str, bucket: &str) -> BackendResult<&'a Bucket> {
    match s.store.buckets.get(bucket) {
        Some(b) if b.tenant == tenant => Ok(b),
        Some(_) => Err(BackendError::AccessDenied),
        None => Err(BackendError::NoSuchBucket),
    }
}

#[async_trait::async_trait]
impl Backend for StoreBackend {
    async fn create_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        validate_bucket_name(bucket).map_err(|_| BackendError::InvalidBucketName)?;
        let taken = |s: &State| {
            s.store.buckets.get(bucket).map(|b| {
                if b.tenant == tenant {
                    BackendError::BucketAlreadyOwnedByYou
                } else {
                    BackendError::BucketAlreadyExists
                }
            })
        };
        if let Some(e) = self.read(taken) {
            return Err(e);
        }
        let r = self
            .command(StoreCommand::CreateBucket {
                bucket: Bucket {
                    name: bucket.to_owned(),
                    tenant: tenant.to_owned(),
                    profile: None,
                    scope: DedupeScope::Tenant,
                    versioning: StateVersioning::Unversioned,
                    created_ms: now_ms(),
                },
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::Conflict => Err(self
                .read(taken)
                .unwrap_or(BackendError::BucketAlreadyExists)),
            // The key's tenant no longer exists.
            Err(e) => Err(store_err(e, BackendError::AccessDenied)),
        }
    }

    async fn delete_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        let empty = self.read(|s| {
            owned(s, tenant, bucket)?;
            Ok::<_, BackendError>(s.store.bucket_is_empty(bucket))
        })?;
        if !empty {
            return Err(BackendError::BucketNotEmpty);
        }
        // Uploads in progress go with the bucket, in the same command.
        match self
            .command(StoreCommand::DeleteBucketAbortingUploads {
                tenant: tenant.to_owned(),
                name: bucket.to_owned(),
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::Conflict => Err(BackendError::BucketNotEmpty),
            Err(e) => Err(store_err(e, BackendError::NoSuchBucket)),
        }
    }

    async fn list_buckets(&self, tenant: &str) -> BackendResult<Vec<BucketInfo>> {
        Ok(self.read(|s| {
            s.store
                .buckets
                .values()
                .filter(|b| b.tenant == tenant)
                .map(|b| BucketInfo {
                    name: b.name.clone(),
                    created_ms: b.created_ms,
                })
                .collect()
        }))
    }

    async fn head_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<BucketInfo> {
        let b = self.bucket(tenant, bucket)?;
        Ok(BucketInfo {
            name: b.name,
            created_ms: b.created_ms,
        })
    }

    async fn set_versioning(
        &self,
        tenant: &str,
        bucket: &str,
        versioning: Versioning,
    ) -> BackendResult<()> {
        self.bucket(tenant, bucket)?;
        let versioning = match versioning {
            Versioning::Enabled => StateVersioning::Enabled,
            Versioning::Suspended => StateVersioning::Suspended,
        };
        self.command(StoreCommand::SetVersioning {
            tenant: tenant.to_owned(),
            name: bucket.to_owned(),
            versioning,
        })
        .await
        .map_err(|e| crate::store_lock::lock_err(e, BackendError::NoSuchBucket))?;
        Ok(())
    }

    async fn get_versioning(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> BackendResult<Option<Versioning>> {
        Ok(match self.bucket(tenant, bucket)?.versioning {
            StateVersioning::Unversioned => None,
            StateVersioning::Enabled => Some(Versioning::Enabled),
            StateVersioning::Suspended => Some(Versioning::Suspended),
        })
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
        self.bucket(tenant, bucket)?;
        check_key(key)?;
        crate::backend::check_tags(&meta.tags)?;
        let slot = meta.checksum.clone();
        let finish = move |a: &mut VersionAttrs| {
            a.checksum = slot.get().filter(|c| !c.value.is_empty());
        };
        let r = self
            .store
            .put_sealed(
                tenant,
                bucket,
                key,
                store_meta(meta.clone()),
                body,
                meta.customer_key.as_ref(),
                finish,
            )
            .await
            .map_err(|e| crate::store_lock::lock_err(e, BackendError::NoSuchBucket))?;
        let customer_seal = self.read(|s| {
            s.store
                .version(bucket, key, Some(&r.version_id))
                .ok()
                .and_then(|v| seal_of(&v))
        });
        let attrs = self.read(|s| s.store.version_attrs(bucket, key, &r.version_id));
        Ok(ObjectInfo {
            lock: VersionLock {
                retention: attrs.retention,
                legal_hold: attrs.legal_hold,
            },
            key: key.to_owned(),
            version_id: r.version_id,
            size: r.size,
            etag: r.etag,
            last_modified_ms: now_ms(),
            content_type: meta.content_type,
            user_metadata: meta.user_metadata,
            is_delete_marker: false,
            headers: meta.headers,
            tags: meta.tags,
            part_sizes: Vec::new(),
            checksum: meta.checksum.get().filter(|c| !c.value.is_empty()),
            part_checksums: BTreeMap::new(),
            customer_seal,
            acl: meta.acl,
        })
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
        let (v, attrs) = self.lookup(tenant, bucket, key, version_id)?;
        let range = match range {
            Some(r) => {
                let (first, last) = r.resolve(v.size)?;
                Some(stratus_store::ByteRange {
                    start: first,
                    end: last + 1,
                })
            }
            None => None,
        };
        let (version, stream) = self
            .store
            .get_sealed(tenant, bucket, key, Some(&v.version_id), range, customer)
            .await
            .map_err(|e| store_err(e, BackendError::NoSuchKey))?;
        let stream: ByteStream = Box::pin(stream.map(|r| r.map_err(std::io::Error::other)));
        Ok((full_info(key, &version, attrs), stream))
    }

    async fn head_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> BackendResult<ObjectInfo> {
        let (v, attrs) = self.lookup(tenant, bucket, key, version_id)?;
        Ok(full_info(key, &v, attrs))
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
            .await
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
        let (src, _) = self.lookup(tenant, src_bucket, src_key, src_version)?;
        self.bucket(tenant, dst_bucket)?;
        check_key(dst_key)?;
        let meta = match meta {
            MetadataDirective::Copy => None,
            MetadataDirective::Replace(m) => {
                crate::backend::check_tags(&m.tags)?;
                Some(store_meta(m))
            }
        };
        let v = self
            .store
            .copy_object(
                tenant,
                src_bucket,
                src_key,
                Some(&src.version_id),
                dst_bucket,
                dst_key,
                meta,
            )
            .await
            .map_err(|e| crate::store_lock::lock_err(e, BackendError::NoSuchKey))?;
        let attrs = self.read(|s| s.store.version_attrs(dst_bucket, dst_key, &v.version_id));
        Ok(full_info(dst_key, &v, attrs))
    }

    async fn list_objects(
        &self,
        tenant: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> BackendResult<Vec<ObjectInfo>> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            let (page, _) = s.store.list_latest(bucket, prefix, start_after, limit);
            Ok(page.iter().map(|(k, v)| info(k, v)).collect())
        })
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
        self.read(|s| {
            owned(s, tenant, bucket)?;
            let mut out = Vec::new();
            // The rest of the marker key's versions, after `version_marker`.
            if let (Some(km), Some(vm)) = (key_marker, version_marker) {
                if km.starts_with(prefix) {
                    let vs = s.store.versions(bucket, km);
                    let newest_first: Vec<&ObjectVersion> = vs.iter().rev().collect();
                    if let Some(pos) = newest_first.iter().position(|v| v.version_id == vm) {
                        for (i, v) in newest_first.iter().enumerate().skip(pos + 1) {
                            if out.len() >= limit {
                                return Ok(out);
                            }
                            out.push(VersionEntry {
                                info: info(km, v),
                                is_latest: i == 0,
                            });
                        }
                    }
                }
            }
            // Every key holds at least one version: `limit` keys fill a page.
            let (keys, _) = s.store.list_keys(bucket, prefix, key_marker, limit);
            for (k, vs) in &keys {
                for (i, v) in vs.iter().rev().enumerate() {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    out.push(VersionEntry {
                        info: info(k, v),
                        is_latest: i == 0,
                    });
                }
            }
            Ok(out)
        })
    }

    async fn create_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
    ) -> BackendResult<String> {
        self.bucket(tenant, bucket)?;
        check_key(key)?;
        crate::backend::check_tags(&meta.tags)?;
        let attrs = VersionAttrs {
            headers: meta.headers,
            tags: meta.tags,
            checksum: meta.checksum.get(),
            customer_seal: meta
                .customer_key
                .as_ref()
                .map(|k| stratus_store::fresh_seal(k).into()),
            acl: meta.acl,
            retention: meta.lock.retention,
            legal_hold: meta.lock.legal_hold,
            ..VersionAttrs::default()
        };
        let r = self
            .command(StoreCommand::CreateUploadWith {
                attrs: attrs.to_doc(),
                upload: Upload {
                    id: String::new(),
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    content_type: meta.content_type,
                    user_meta: meta.user_metadata,
                    parts: Default::default(),
                    created_ms: now_ms(),
                },
            })
            .await
            .map_err(|e| crate::store_lock::lock_err(e, BackendError::NoSuchBucket))?;
        r.id.ok_or_else(|| BackendError::Internal("the store gave the upload no id".into()))
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
        self.upload(tenant, bucket, key, upload_id)?;
        if !(1..=crate::backend::MAX_PART_NUMBER).contains(&part_number) {
            return Err(BackendError::InvalidArgument(
                "part numbers go from 1 to 10000".into(),
            ));
        }
        let slot = checksum.clone();
        let p = self
            .store
            .put_part_sealed(tenant, upload_id, part_number, body, customer, move || {
                slot.get().map(|c| c.value).filter(|v| !v.is_empty())
            })
            .await
            .map_err(|e| store_err(e, BackendError::NoSuchUpload))?;
        Ok(PartInfo {
            part_number,
            etag: p.md5,
            size: p.size,
            last_modified_ms: p.created_ms,
            checksum: checksum.get().map(|c| c.value).filter(|v| !v.is_empty()),
        })
    }

    async fn upload_checksum(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Option<ObjectChecksum>> {
        self.upload(tenant, bucket, key, upload_id)?;
        Ok(self.read(|s| s.store.upload_attrs_of(upload_id).checksum))
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
        let u = match self.upload(tenant, bucket, key, upload_id) {
            Err(BackendError::NoSuchUpload) => {
                return self.completed(tenant, bucket, key, upload_id, &parts)
            }
            r => r?,
        };
        if parts.is_empty() {
            return Err(BackendError::InvalidPart);
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(BackendError::InvalidPartOrder);
        }
        let doc = self.read(|s| s.store.upload_attrs_of(upload_id));
        let mut md5s = Vec::with_capacity(parts.len());
        let mut size = 0u64;
        let mut sums = Vec::with_capacity(parts.len());
        for (i, (n, etag)) in parts.iter().enumerate() {
            if let Some(p) = u.parts.get(n) {
                sums.push((doc.part_checksums.get(n).map(String::as_str), p.size));
            }
            let p = u.parts.get(n).ok_or(BackendError::InvalidPart)?;
            if !etag.trim_matches('"').eq_ignore_ascii_case(&p.md5) {
                return Err(BackendError::InvalidPart);
            }
            if i + 1 < parts.len() && p.size < MIN_PART_SIZE {
                return Err(BackendError::EntityTooSmall);
            }
            md5s.push(p.md5.clone());
            size += p.size;
        }
        let checksum = match &doc.checksum {
            Some(asked) => combine_checksums(asked, &sums)?,
            None => None,
        };
        let r = self
            .command(StoreCommand::CompleteUploadChecked {
                checksum: checksum
                    .as_ref()
                    .and_then(|c| serde_json::to_string(c).ok())
                    .unwrap_or_default(),
                tenant: tenant.to_owned(),
                upload: upload_id.to_owned(),
                parts: parts
                    .iter()
                    .map(|(n, e)| (*n, e.trim_matches('"').to_owned()))
                    .collect(),
                now_ms: now_ms(),
                condition: state_condition(condition),
            })
            .await
            .map_err(|e| match e.code() {
                ErrorCode::BadRequest => BackendError::InvalidPart,
                _ => write_err(e, BackendError::NoSuchUpload),
            })?;
        let version_id = r.id.unwrap_or_else(|| NULL_VERSION.to_owned());
        let attrs = self.read(|s| s.store.version_attrs(bucket, key, &version_id));
        Ok(ObjectInfo {
            key: key.to_owned(),
            version_id,
            size,
            etag: multipart_etag(&md5s),
            last_modified_ms: now_ms(),
            content_type: u.content_type,
            user_metadata: u.user_meta,
            is_delete_marker: false,
            headers: attrs.headers,
            tags: attrs.tags,
            part_sizes: attrs.part_sizes,
            checksum: attrs.checksum,
            part_checksums: attrs.part_checksums,
            customer_seal: u
                .parts
                .values()
                .next()
                .and_then(|p| p.data.scope.customer_seal()),
            acl: attrs.acl,
            lock: VersionLock {
                retention: attrs.retention,
                legal_hold: attrs.legal_hold,
            },
        })
    }

    async fn upload_customer_seal(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Option<CustomerSeal>> {
        self.upload(tenant, bucket, key, upload_id)?;
        Ok(self.read(|s| {
            s.store
                .upload_attrs_of(upload_id)
                .customer_seal
                .map(Into::into)
        }))
    }

    async fn abort_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<()> {
        self.upload(tenant, bucket, key, upload_id)?;
        self.command(StoreCommand::AbortUpload {
            tenant: tenant.to_owned(),
            upload: upload_id.to_owned(),
        })
        .await
        .map_err(|e| store_err(e, BackendError::NoSuchUpload))?;
        Ok(())
    }

    async fn list_parts(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Vec<PartInfo>> {
        let u = self.upload(tenant, bucket, key, upload_id)?;
        let doc = self.read(|s| s.store.upload_attrs_of(upload_id));
        Ok(u.parts
            .iter()
            .map(|(n, p)| PartInfo {
                part_number: *n,
                etag: p.md5.clone(),
                size: p.size,
                last_modified_ms: p.created_ms,
                checksum: doc.part_checksums.get(n).cloned(),
            })
            .collect())
    }

    async fn list_multipart_uploads(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> BackendResult<Vec<UploadInfo>> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            let mut v: Vec<UploadInfo> = s
                .store
                .uploads
                .values()
                .filter(|u| u.bucket == bucket && u.tenant == tenant)
                .map(|u| UploadInfo {
                    key: u.key.clone(),
                    upload_id: u.id.clone(),
                    initiated_ms: u.created_ms,
                })
                .collect();
            v.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
            Ok(v)
        })
    }

    async fn get_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
    ) -> BackendResult<Option<String>> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            Ok(s.store.bucket_config(bucket, kind).map(str::to_owned))
        })
    }

    async fn put_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
        doc: Option<String>,
    ) -> BackendResult<()> {
        self.bucket(tenant, bucket)?;
        if let Some(doc) = &doc {
            check_bucket_config(bucket, kind, doc).map_err(BackendError::InvalidArgument)?;
        }
        self.command(StoreCommand::SetBucketConfig {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            kind,
            doc,
        })
        .await
        .map_err(|e| crate::store_lock::lock_err(e, BackendError::NoSuchBucket))?;
        Ok(())
    }

    async fn bucket_access(&self, bucket: &str) -> BackendResult<Option<BucketAccessDocs>> {
        Ok(self.read(|s| {
            let b = s.store.buckets.get(bucket)?;
            Some(BucketAccessDocs::collect(&b.tenant, |k| {
                s.store.bucket_config(bucket, k)
            }))
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
        crate::backend::check_tags(&tags)?;
        // The read rules of a GET (a delete marker: 404 or 405).
        let (v, _) = self.lookup(tenant, bucket, key, version_id)?;
        let r = self
            .command(StoreCommand::SetObjectTags {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Some(v.version_id.clone()),
                tags,
            })
            .await
            .map_err(|e| store_err(e, BackendError::NoSuchVersion))?;
        Ok(r.id.unwrap_or(v.version_id))
    }

    async fn set_object_acl(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: Option<String>,
    ) -> BackendResult<String> {
        // The read rules of a GET (a delete marker: 404 or 405).
        let (v, _) = self.lookup(tenant, bucket, key, version_id)?;
        let r = self
            .command(StoreCommand::SetObjectAcl {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Some(v.version_id.clone()),
                acl,
            })
            .await
            .map_err(|e| store_err(e, BackendError::NoSuchVersion))?;
        Ok(r.id.unwrap_or(v.version_id))
    }

    async fn create_bucket_locked(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        self.lock_create_bucket(tenant, bucket).await
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
        .await
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
            .await
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
            .await
    }
}

impl StoreBackend {
    /// Completing an upload that is gone: the version it made, if it is
    /// still there and the parts listed are those it was made of (S3
    /// answers a repeated completion with the object); `NoSuchUpload`
    /// otherwise.
    fn completed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> BackendResult<ObjectInfo> {
        self.read(|s| {
            owned(s, tenant, bucket)?;
            let md5s: Vec<String> = parts
                .iter()
                .map(|(_, e)| e.trim_matches('"').to_ascii_lowercase())
                .collect();
            let etag = multipart_etag(&md5s);
            for v in s.store.versions(bucket, key).iter().rev() {
                let attrs = s.store.version_attrs(bucket, key, &v.version_id);
                if attrs.upload_id.as_deref() == Some(upload_id) {
                    if v.etag != etag {
                        break;
                    }
                    return Ok(full_info(key, v, attrs));
                }
            }
            Err(BackendError::NoSuchUpload)
        })
    }
}

/// Access keys from the replicated metadata (`StoreCommand::CreateAccessKey`;
/// secrets are sealed there and opened with the replica's KEK).
#[derive(Clone)]
pub struct StoreKeys {
    store: Store,
}

impl StoreKeys {
    /// Keys of `store`'s metadata.
    pub fn new(store: Store) -> Self {
        StoreKeys { store }
    }
}

impl KeyStore for StoreKeys {
    fn lookup(&self, access_key: &str) -> Option<KeyRecord> {
        self.store
            .s3_secret(access_key)
            .map(|(secret, tenant)| KeyRecord { secret, tenant })
    }

    fn tenant_exists(&self, tenant: &str) -> bool {
        self.store.state(|s| s.tenants.contains_key(tenant))
    }
}

/// A gateway over a replica's store: [`StoreBackend`] with [`StoreKeys`].
pub fn store_gateway(store: Store) -> crate::Gateway<StoreBackend, StoreKeys> {
    crate::Gateway::new(
        Arc::new(StoreBackend::new(store.clone())),
        Arc::new(StoreKeys::new(store)),
    )
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
