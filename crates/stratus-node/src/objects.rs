//! Objects agents read and write through this replica: the archives of
//! volumes kept in the object store and the input and output objects of
//! WASM tasks. The control plane has checked that the asking node runs a
//! workload declaring them; here the bucket must belong to the tenant.

use futures::future::BoxFuture;
use stratus_proto::Response;
use stratus_types::ErrorCode;

use crate::StoreImages;

type Answer = BoxFuture<'static, Result<Response, (ErrorCode, String)>>;

/// The version string of a volume's archive: the version id and the ETag
/// (an unversioned bucket reuses the id `null` for every save).
fn object_version(v: &stratus_state::objects::ObjectVersion) -> String {
    format!("{}:{}", v.version_id, v.etag)
}

/// `Ok` when `tenant` owns `bucket`, or a clear error about `what`.
fn tenant_bucket(
    store: &stratus_store::Store,
    what: &str,
    tenant: &str,
    bucket: &str,
) -> Result<(), (ErrorCode, String)> {
    store.state(|s| match s.store.buckets.get(bucket) {
        Some(b) if b.tenant == tenant => Ok(()),
        Some(_) => Err((
            ErrorCode::Forbidden,
            format!("{what}: bucket {bucket} belongs to another tenant"),
        )),
        None => Err((
            ErrorCode::NotFound,
            format!("{what}: bucket {bucket} does not exist"),
        )),
    })
}

/// Up to `len` bytes from `offset` of a version of `bucket/key` (the latest
/// when `version` is `None`): a [`Response::VolumeData`], with version
/// `None` when there is no such object.
fn read_part(
    store: stratus_store::Store,
    what: &'static str,
    (tenant, bucket, key): (String, String, String),
    version: Option<String>,
    offset: u64,
    len: u64,
) -> Answer {
    use futures::TryStreamExt;
    Box::pin(async move {
        tenant_bucket(&store, what, &tenant, &bucket)?;
        let len = len.min(stratus_proto::MAX_VOLUME_PART);
        // The version asked for, or the latest; `None` when there is no
        // such object (or it was deleted): the volume starts empty.
        let wanted = version
            .as_deref()
            .map(|v| v.split_once(':').unwrap_or((v, "")));
        let found = store.state(|s| {
            let v = s.store.version(&bucket, &key, wanted.map(|w| w.0)).ok()?;
            (!v.is_delete_marker()).then(|| v.clone())
        });
        let v = match (found, wanted) {
            (None, None) => {
                return Ok(Response::VolumeData {
                    version: None,
                    size: 0,
                    data: Vec::new(),
                })
            }
            (Some(v), Some((_, etag))) if v.etag != etag => {
                return Err((
                    ErrorCode::Conflict,
                    format!("{what}: {bucket}/{key} changed while it was read; start again"),
                ))
            }
            (Some(v), _) => v,
            (None, Some(_)) => {
                return Err((
                    ErrorCode::Conflict,
                    format!(
                        "{what}: the version of {bucket}/{key} being read is gone; start again"
                    ),
                ))
            }
        };
        let start = offset.min(v.size);
        let end = start.saturating_add(len).min(v.size);
        let data = if start == end {
            Vec::new()
        } else {
            let (_, stream) = store
                .get(
                    &tenant,
                    &bucket,
                    &key,
                    Some(&v.version_id),
                    Some(stratus_store::ByteRange { start, end }),
                )
                .await
                .map_err(|e| (e.code(), format!("{what}: {e}")))?;
            let parts: Vec<bytes::Bytes> = stream
                .try_collect()
                .await
                .map_err(|e| (e.code(), format!("{what}: {e}")))?;
            parts.concat()
        };
        Ok(Response::VolumeData {
            version: Some(object_version(&v)),
            size: v.size,
            data,
        })
    })
}

/// One step of storing a new version of `bucket/key` (with `content_type`):
/// a [`Response::Volume`] (or [`Response::Ok`] for `Abort`).
fn put_step(
    store: stratus_store::Store,
    what: &'static str,
    content_type: Option<&'static str>,
    tenant: String,
    bucket: String,
    key: String,
    step: stratus_proto::VolumePut,
) -> Answer {
    use stratus_proto::{VolumeAnswer, VolumePut};
    use stratus_state::objects::{StoreCommand, Upload};
    Box::pin(async move {
        let fail = |e: stratus_store::StoreError| (e.code(), format!("{what}: {e}"));
        tenant_bucket(&store, what, &tenant, &bucket)?;
        // Parts and completion name an upload: it must be this volume's.
        let check_upload = |upload: &str| {
            store.state(|s| match s.store.uploads.get(upload) {
                Some(u) if u.tenant == tenant && u.bucket == bucket && u.key == key => Ok(()),
                _ => Err((
                    ErrorCode::NotFound,
                    format!("{what}: no upload {upload:?} of {bucket}/{key}"),
                )),
            })
        };
        match step {
            VolumePut::Begin => {
                let r = store
                    .command(StoreCommand::CreateUpload {
                        upload: Upload {
                            id: String::new(),
                            tenant: tenant.clone(),
                            bucket: bucket.clone(),
                            key: key.clone(),
                            content_type: content_type.map(Into::into),
                            user_meta: Default::default(),
                            parts: Default::default(),
                            created_ms: stratus_control::now_ms(),
                        },
                    })
                    .await
                    .map_err(fail)?;
                let id = r.id.ok_or((
                    ErrorCode::Internal,
                    format!("{what}: the store gave the upload no id"),
                ))?;
                Ok(Response::Volume(VolumeAnswer::Upload(id)))
            }
            VolumePut::Part {
                upload,
                number,
                data,
            } => {
                check_upload(&upload)?;
                if data.len() as u64 > stratus_proto::MAX_VOLUME_PART {
                    return Err((
                        ErrorCode::BadRequest,
                        format!(
                            "{what}: parts are at most {} bytes",
                            stratus_proto::MAX_VOLUME_PART
                        ),
                    ));
                }
                let body =
                    futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(data))]);
                let p = store
                    .put_part(&tenant, &upload, number, body)
                    .await
                    .map_err(fail)?;
                Ok(Response::Volume(VolumeAnswer::Part(p.md5)))
            }
            VolumePut::Complete { upload, parts } => {
                check_upload(&upload)?;
                let r = store
                    .command(StoreCommand::CompleteUpload {
                        tenant: tenant.clone(),
                        upload,
                        parts,
                        now_ms: stratus_control::now_ms(),
                    })
                    .await
                    .map_err(fail)?;
                let id = r.id.unwrap_or_default();
                let v = store
                    .state(|s| s.store.version(&bucket, &key, Some(&id)).ok())
                    .ok_or((
                        ErrorCode::Internal,
                        format!("{what}: version {id} of {bucket}/{key} is not visible"),
                    ))?;
                Ok(Response::Volume(VolumeAnswer::Saved(object_version(&v))))
            }
            VolumePut::Abort { upload } => {
                check_upload(&upload)?;
                store
                    .command(StoreCommand::AbortUpload {
                        tenant: tenant.clone(),
                        upload,
                    })
                    .await
                    .map_err(fail)?;
                Ok(Response::Ok)
            }
        }
    })
}

/// Volume archives (`VolumeSpec::bucket`).
impl stratus_control::VolumeServer for StoreImages {
    fn read_volume(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        version: Option<String>,
        offset: u64,
        len: u64,
    ) -> Answer {
        let store = self.0.clone();
        let target = (tenant, bucket, key);
        read_part(store, "volume data", target, version, offset, len)
    }

    fn put_volume(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        step: stratus_proto::VolumePut,
    ) -> Answer {
        let store = self.0.clone();
        let tar = Some("application/x-tar");
        put_step(store, "volume data", tar, tenant, bucket, key, step)
    }
}

/// A WASM task's input objects and output files.
impl stratus_control::taskio::TaskIoServer for StoreImages {
    fn list_objects(
        &self,
        tenant: String,
        bucket: String,
        prefix: String,
        after: Option<String>,
    ) -> Answer {
        let store = self.0.clone();
        Box::pin(async move {
            tenant_bucket(&store, "task input", &tenant, &bucket)?;
            let limit = stratus_proto::MAX_LIST_PAGE;
            let (objects, truncated) = store.state(|s| {
                let (page, more) = s
                    .store
                    .list_latest(&bucket, &prefix, after.as_deref(), limit);
                let page: Vec<_> = page
                    .into_iter()
                    .map(|(key, v)| stratus_proto::ListedObject { key, size: v.size })
                    .collect();
                (page, more)
            });
            Ok(Response::ObjectList { objects, truncated })
        })
    }

    fn read_object(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        version: Option<String>,
        offset: u64,
        len: u64,
    ) -> Answer {
        let store = self.0.clone();
        let target = (tenant, bucket, key);
        read_part(store, "task input", target, version, offset, len)
    }

    fn put_object(
        &self,
        tenant: String,
        bucket: String,
        key: String,
        step: stratus_proto::VolumePut,
    ) -> Answer {
        let store = self.0.clone();
        put_step(store, "task output", None, tenant, bucket, key, step)
    }
}
