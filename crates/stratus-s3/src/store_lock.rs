//! [`StoreBackend`]'s object lock and deletes: creating a bucket with
//! object lock, retention and legal hold of versions, and deletes (which
//! may bypass a `GOVERNANCE` retention). The rules themselves are applied
//! by the state machine ([`stratus_state::object_lock`]); this maps the
//! calls onto its commands and its refusals onto [`BackendError`]s.

use stratus_state::bucket_configs::BucketConfigKind;
use stratus_state::object_lock::{LockConfig, Retention, INVALID_BUCKET_STATE, INVALID_REQUEST};
use stratus_state::objects::{
    validate_bucket_name, Bucket, DedupeScope, ObjectVersion, StoreCommand,
    Versioning as StateVersioning, WriteCondition as StateCondition, NULL_VERSION,
};
use stratus_state::State;
use stratus_store::StoreError;
use stratus_types::ErrorCode;

use crate::backend::{BackendError, BackendResult, DeleteCondition, DeleteOutcome};
use crate::store::{now_ms, owned, write_err, StoreBackend};

/// [`write_err`], with the lock refusals the state names by a prefix.
pub(crate) fn lock_err(e: StoreError, not_found: BackendError) -> BackendError {
    let m = e.to_string();
    if let Some(rest) = m.strip_prefix(INVALID_BUCKET_STATE) {
        return BackendError::InvalidBucketState(rest.trim().to_owned());
    }
    if let Some(rest) = m.strip_prefix(INVALID_REQUEST) {
        return BackendError::InvalidRequest(rest.trim().to_owned());
    }
    write_err(e, not_found)
}

impl StoreBackend {
    /// [`crate::Backend::create_bucket_locked`].
    pub(crate) async fn lock_create_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
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
        if let Some(e) = self.store().state(taken) {
            return Err(e);
        }
        let r = self
            .store()
            .command(StoreCommand::CreateBucketWithConfigs {
                bucket: Bucket {
                    name: bucket.to_owned(),
                    tenant: tenant.to_owned(),
                    profile: None,
                    scope: DedupeScope::Tenant,
                    versioning: StateVersioning::Enabled,
                    created_ms: now_ms(),
                },
                configs: vec![(BucketConfigKind::ObjectLock, LockConfig::ENABLED.to_doc())],
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == ErrorCode::Conflict => Err(self
                .store()
                .state(taken)
                .unwrap_or(BackendError::BucketAlreadyExists)),
            Err(e) => Err(lock_err(e, BackendError::AccessDenied)),
        }
    }

    /// The version a lock call names (read rules of a GET), checked here
    /// for the answer's error; the state checks again in `apply`.
    fn lock_target(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> BackendResult<String> {
        self.store().state(|s| {
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
            Ok(v.version_id)
        })
    }

    /// [`crate::Backend::set_object_retention`].
    pub(crate) async fn lock_set_retention(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<Retention>,
        bypass_governance: bool,
    ) -> BackendResult<String> {
        let v = self.lock_target(tenant, bucket, key, version_id)?;
        self.store()
            .command(StoreCommand::SetObjectRetention {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Some(v.clone()),
                retention,
                bypass_governance,
                now_ms: now_ms(),
            })
            .await
            .map_err(|e| lock_err(e, BackendError::NoSuchVersion))?;
        Ok(v)
    }

    /// [`crate::Backend::set_object_legal_hold`].
    pub(crate) async fn lock_set_legal_hold(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> BackendResult<String> {
        let v = self.lock_target(tenant, bucket, key, version_id)?;
        self.store()
            .command(StoreCommand::SetObjectLegalHold {
                tenant: tenant.to_owned(),
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: Some(v.clone()),
                on,
            })
            .await
            .map_err(|e| lock_err(e, BackendError::NoSuchVersion))?;
        Ok(v)
    }

    /// [`crate::Backend::delete_object`] and
    /// [`crate::Backend::delete_object_if`]: a locked version is
    /// refused by the state, atomically with the delete (`AccessDenied`).
    pub(crate) async fn delete_checked(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cond: DeleteCondition,
        bypass_governance: bool,
    ) -> BackendResult<DeleteOutcome> {
        let b = self.store().state(|s| owned(s, tenant, bucket).cloned())?;
        let conditional = cond.is_some();
        // An ETag alone keeps the older command's condition.
        let condition = match cond {
            DeleteCondition {
                etag: Some(e),
                size: None,
                modified_secs: None,
            } => Some(StateCondition::IfMatch(e)),
            c if c.is_some() => Some(StateCondition::DeleteIf {
                etag: c.etag,
                size: c.size,
                modified_secs: c.modified_secs,
            }),
            _ => None,
        };
        let cmd = |version_id: Option<String>| {
            let condition = condition.clone();
            if bypass_governance {
                StoreCommand::DeleteObjectBypassing {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version_id,
                    now_ms: now_ms(),
                    condition,
                    bypass_governance,
                }
            } else {
                StoreCommand::DeleteObjectWith {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    version_id,
                    now_ms: now_ms(),
                    condition,
                }
            }
        };
        match version_id {
            // A conditional delete of a key with no version does nothing
            // (no delete marker); the state machine holds to the same.
            None if conditional
                && self
                    .store()
                    .state(|s| s.store.versions(bucket, key).is_empty()) =>
            {
                Ok(DeleteOutcome {
                    version_id: None,
                    delete_marker: false,
                })
            }
            None => {
                let r = self
                    .store()
                    .command(cmd(None))
                    .await
                    .map_err(|e| write_err(e, BackendError::NoSuchBucket))?;
                Ok(match b.versioning {
                    StateVersioning::Unversioned => DeleteOutcome {
                        version_id: None,
                        delete_marker: false,
                    },
                    StateVersioning::Enabled | StateVersioning::Suspended => DeleteOutcome {
                        version_id: Some(r.id.unwrap_or_else(|| NULL_VERSION.to_owned())),
                        delete_marker: true,
                    },
                })
            }
            Some(id) => {
                let marker = self.store().state(|s| {
                    s.store
                        .versions(bucket, key)
                        .iter()
                        .find(|v| v.version_id == id)
                        .map(ObjectVersion::is_delete_marker)
                });
                let Some(marker) = marker else {
                    // A missing version: success, as in S3 (whatever the
                    // condition: there is nothing it could be about).
                    return Ok(DeleteOutcome {
                        version_id: Some(id.to_owned()),
                        delete_marker: false,
                    });
                };
                match self.store().command(cmd(Some(id.to_owned()))).await {
                    Ok(_) => {}
                    Err(e) if e.code() == ErrorCode::NotFound => {}
                    Err(e) => return Err(write_err(e, BackendError::NoSuchBucket)),
                }
                Ok(DeleteOutcome {
                    version_id: Some(id.to_owned()),
                    delete_marker: marker,
                })
            }
        }
    }
}
