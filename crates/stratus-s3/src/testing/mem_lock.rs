//! [`MemBackend`]'s object lock: the same rules as the state machine's
//! ([`stratus_state::object_lock`]), applied under the backend's lock so a
//! check and the change it guards are one step.

use std::collections::BTreeMap;

use stratus_state::object_lock::{prepare_lock, INVALID_REQUEST};
use stratus_state::ApplyError;

use super::{Bucket, MemBackend, State};
use crate::backend::{
    check_removal, check_retention_change, BackendError, BackendResult, BucketConfigKind,
    LockConfig, Retention, VersionLock, Versioning,
};

/// A state refusal as the backend error S3 answers.
pub(super) fn lock_error(e: ApplyError) -> BackendError {
    match e {
        ApplyError::Forbidden(_) => BackendError::AccessDenied,
        ApplyError::Invalid(m) => match m.strip_prefix(INVALID_REQUEST) {
            Some(rest) => BackendError::InvalidRequest(rest.trim().to_owned()),
            None => BackendError::InvalidArgument(m),
        },
        other => BackendError::InvalidArgument(other.to_string()),
    }
}

/// The bucket's lock configuration, if object lock is enabled.
pub(super) fn config_of(b: &Bucket) -> Option<LockConfig> {
    b.configs
        .get(&BucketConfigKind::ObjectLock)
        .and_then(|d| LockConfig::from_doc(d).ok())
}

/// The lock a new version of `b` written at `now` gets.
pub(super) fn lock_new(
    bucket: &str,
    b: &Bucket,
    lock: &mut VersionLock,
    now: u64,
) -> BackendResult<()> {
    prepare_lock(bucket, config_of(b), lock, now).map_err(lock_error)
}

/// Refuses removing a version under a lock.
pub(super) fn guard(lock: VersionLock, now: u64, bypass: bool) -> BackendResult<()> {
    check_removal(lock, now, bypass).map_err(lock_error)
}

/// Checks a change of a bucket's configuration documents against the lock
/// rules (as the state does).
pub(super) fn check_config(
    b: &Bucket,
    kind: BucketConfigKind,
    removing: bool,
) -> BackendResult<()> {
    if kind != BucketConfigKind::ObjectLock {
        return Ok(());
    }
    if removing && config_of(b).is_some() {
        return Err(BackendError::InvalidBucketState(
            "object lock cannot be disabled once enabled".into(),
        ));
    }
    if !removing && b.versioning != Some(Versioning::Enabled) {
        return Err(BackendError::InvalidBucketState(
            "object lock needs versioning enabled".into(),
        ));
    }
    Ok(())
}

/// Checks a versioning change: a bucket with object lock stays enabled.
pub(super) fn check_versioning(b: &Bucket, v: Versioning) -> BackendResult<()> {
    if v != Versioning::Enabled && config_of(b).is_some() {
        return Err(BackendError::InvalidBucketState(
            "versioning cannot be suspended: object lock is enabled".into(),
        ));
    }
    Ok(())
}

impl State {
    /// The lock of a version (the current object when `version_id` is
    /// `None`), changed by `f`; returns the version id.
    fn change_lock(
        &mut self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        f: impl FnOnce(&mut VersionLock, u64) -> BackendResult<()>,
    ) -> BackendResult<String> {
        let now = self.now();
        let found = self.find(tenant, bucket, key, version_id)?;
        let b = self.bucket(tenant, bucket)?;
        if config_of(b).is_none() {
            return Err(BackendError::InvalidRequest(format!(
                "bucket {bucket:?} does not have object lock enabled"
            )));
        }
        let id = found.info.version_id;
        let v = b
            .objects
            .get_mut(key)
            .and_then(|vs| vs.iter_mut().find(|v| v.info.version_id == id))
            .ok_or(BackendError::NoSuchVersion)?;
        f(&mut v.info.lock, now)?;
        Ok(id)
    }
}

impl MemBackend {
    /// [`crate::Backend::create_bucket_locked`].
    pub(super) fn lock_create_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()> {
        if bucket.is_empty() {
            return Err(BackendError::InvalidBucketName);
        }
        let mut s = self.lock();
        let now = s.now();
        let id = (tenant.to_owned(), bucket.to_owned());
        if s.buckets.contains_key(&id) {
            return Err(BackendError::BucketAlreadyOwnedByYou);
        }
        let mut configs = BTreeMap::new();
        configs.insert(BucketConfigKind::ObjectLock, LockConfig::ENABLED.to_doc());
        s.buckets.insert(
            id,
            Bucket {
                created_ms: now,
                versioning: Some(Versioning::Enabled),
                objects: BTreeMap::new(),
                configs,
            },
        );
        Ok(())
    }

    /// [`crate::Backend::set_object_retention`].
    pub(super) fn lock_set_retention(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        retention: Option<Retention>,
        bypass: bool,
    ) -> BackendResult<String> {
        self.lock()
            .change_lock(tenant, bucket, key, version_id, |l, now| {
                check_retention_change(l.retention, retention, now, bypass).map_err(lock_error)?;
                l.retention = retention;
                Ok(())
            })
    }

    /// [`crate::Backend::set_object_legal_hold`].
    pub(super) fn lock_set_legal_hold(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> BackendResult<String> {
        self.lock()
            .change_lock(tenant, bucket, key, version_id, |l, _| {
                l.legal_hold = Some(on);
                Ok(())
            })
    }
}
