//! [`MemBackend`]'s deletes: the conditions of
//! [`crate::backend::Backend::delete_object_if`] (ETag, size, time) and
//! the object lock guard, checked under the backend's lock with the
//! delete itself.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{lock, MemBackend};
use crate::backend::{
    BackendError, BackendResult, DeleteCondition, DeleteOutcome, ObjectInfo, VersionLock,
};

impl MemBackend {
    /// A delete (see [`Backend::delete_object`]); a locked version is
    /// refused unless `bypass` lifts its `GOVERNANCE` retention.
    pub(super) fn delete_checked(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cond: DeleteCondition,
        bypass: bool,
    ) -> BackendResult<DeleteOutcome> {
        let mut s = self.lock();
        let now = s.now();
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
                    lock::guard(vs[i].info.lock, now, bypass)?;
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
                    customer_seal: None,
                    acl: None,
                    lock: VersionLock::default(),
                };
                let info = s.write(tenant, bucket, marker, Bytes::new())?;
                Ok(DeleteOutcome {
                    version_id: Some(info.version_id),
                    delete_marker: true,
                })
            }
        }
    }
}
