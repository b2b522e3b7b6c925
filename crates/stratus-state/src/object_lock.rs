//! S3 Object Lock (WORM): a bucket's lock configuration, each version's
//! retention and legal hold, and the rules that keep a locked version from
//! being removed or its lock from being weakened.
//!
//! **Where the data lives.** A bucket's lock configuration is its
//! [`BucketConfigKind::ObjectLock`] document ([`LockConfig`], JSON); a
//! version's retention and legal hold are fields of its
//! [`VersionAttrs`] (JSON too), so no bincode layout changes.
//!
//! **Enforcement is in `apply`.** Every way a version leaves the state —
//! a client's delete of a version (plain, conditional, in a batch, from any
//! door: S3, the native API), a lifecycle expiry — goes through
//! [`ObjectStore::guard_removal`] against the command's own time (the
//! leader's clock, stamped into the command), so no code path and no race
//! between replicas can remove a version under a legal hold or an
//! unexpired retention. `COMPLIANCE` holds against everyone, the owner
//! included; `GOVERNANCE` gives way only to a command that carries
//! `bypass_governance` (Stratus has no per-user IAM: the bucket owner's keys
//! may bypass, as an AWS principal with `s3:BypassGovernanceRetention`).
//! A delete without a version id only adds a delete marker and is allowed.
//! A bucket whose lock is enabled keeps versioning enabled for good
//! (versioning cannot be suspended, the configuration cannot be removed).

use serde::{Deserialize, Serialize};

use crate::bucket_configs::BucketConfigKind;
use crate::objects::{Bucket, ObjectStore, StoreCommand, StoreResult, VersionAttrs, Versioning};
use crate::{ApplyError, State};

/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// The longest default retention, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// The longest default retention, in years.
pub const MAX_RETENTION_YEARS: u32 = 100;
/// The start of the message of a refusal S3 answers with
/// `InvalidRequest` (a lock asked of a bucket without object lock).
pub const INVALID_REQUEST: &str = "InvalidRequest:";
/// The start of the message of a refusal S3 answers with
/// `InvalidBucketState` (409).
pub const INVALID_BUCKET_STATE: &str = "InvalidBucketState:";

/// A retention mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LockMode {
    /// Removable before its date only with `bypass_governance`; may be
    /// shortened or lifted with it.
    Governance,
    /// Removable by no one before its date; may only be extended.
    Compliance,
}

impl LockMode {
    /// S3's name (`GOVERNANCE`, `COMPLIANCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// Parses S3's name (case-sensitive, as S3).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A version's retention: its mode and the time until which it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Mode.
    pub mode: LockMode,
    /// Retain until (ms since the Unix epoch).
    pub until_ms: u64,
}

impl Retention {
    /// Whether it still holds at `now_ms`.
    pub fn active(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

/// A bucket's default retention: exactly one of `days` and `years`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// Mode given to new versions.
    pub mode: LockMode,
    /// Days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Years (of 365 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl DefaultRetention {
    /// Checks S3's rules: exactly one of days and years, positive, bounded.
    pub fn validate(&self) -> Result<(), LockConfigError> {
        match (self.days, self.years) {
            (Some(_), Some(_)) | (None, None) => Err(LockConfigError::Malformed(
                "a default retention has exactly one of Days and Years".into(),
            )),
            (Some(d), None) if d == 0 || d > MAX_RETENTION_DAYS => {
                Err(LockConfigError::InvalidPeriod(format!(
                    "Days must be 1-{MAX_RETENTION_DAYS}, not {d}"
                )))
            }
            (None, Some(y)) if y == 0 || y > MAX_RETENTION_YEARS => {
                Err(LockConfigError::InvalidPeriod(format!(
                    "Years must be 1-{MAX_RETENTION_YEARS}, not {y}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The retention a version created at `created_ms` gets.
    pub fn retention_from(&self, created_ms: u64) -> Retention {
        let days = u64::from(self.days.unwrap_or(0)) + 365 * u64::from(self.years.unwrap_or(0));
        Retention {
            mode: self.mode,
            until_ms: created_ms.saturating_add(days.saturating_mul(DAY_MS)),
        }
    }
}

/// A bucket's object lock configuration (its
/// [`BucketConfigKind::ObjectLock`] document).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfig {
    /// Object lock is enabled (always true in a stored document).
    pub enabled: bool,
    /// The retention new versions get when their write names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultRetention>,
}

impl LockConfig {
    /// Lock enabled, no default retention.
    pub const ENABLED: LockConfig = LockConfig {
        enabled: true,
        default: None,
    };

    /// The JSON document.
    pub fn to_doc(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks a document.
    pub fn from_doc(doc: &str) -> Result<Self, LockConfigError> {
        let c: LockConfig = serde_json::from_str(doc)
            .map_err(|e| LockConfigError::Malformed(format!("unreadable: {e}")))?;
        if !c.enabled {
            return Err(LockConfigError::Malformed(
                "ObjectLockEnabled must be Enabled".into(),
            ));
        }
        if let Some(d) = &c.default {
            d.validate()?;
        }
        Ok(c)
    }
}

/// Why a lock configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockConfigError {
    /// S3's `MalformedXML`.
    #[error("{0}")]
    Malformed(String),
    /// S3's `InvalidRetentionPeriod`.
    #[error("{0}")]
    InvalidPeriod(String),
}

/// A version's lock state as stored in its [`VersionAttrs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionLock {
    /// Retention.
    pub retention: Option<Retention>,
    /// Legal hold: `None` never set, `Some(true)` on.
    pub legal_hold: Option<bool>,
}

impl VersionAttrs {
    /// The version's lock.
    pub fn lock(&self) -> VersionLock {
        VersionLock {
            retention: self.retention,
            legal_hold: self.legal_hold,
        }
    }
}

/// Why a version may not be removed at `now_ms` (or `Ok`): a legal hold, an
/// unexpired `COMPLIANCE` retention, an unexpired `GOVERNANCE` retention
/// without `bypass`.
pub fn check_removal(lock: VersionLock, now_ms: u64, bypass: bool) -> Result<(), ApplyError> {
    if lock.legal_hold == Some(true) {
        return Err(ApplyError::forbidden(
            "the version is under a legal hold (AccessDenied)",
        ));
    }
    match lock.retention {
        Some(r) if r.active(now_ms) => match r.mode {
            LockMode::Compliance => Err(ApplyError::forbidden(
                "the version is under COMPLIANCE retention (AccessDenied)",
            )),
            LockMode::Governance if !bypass => Err(ApplyError::forbidden(
                "the version is under GOVERNANCE retention; bypass it with x-amz-bypass-governance-retention (AccessDenied)",
            )),
            LockMode::Governance => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a version's retention may go from `old` to `new` at `now_ms`:
/// an active `COMPLIANCE` retention may only be extended (same mode, a date
/// no earlier); an active `GOVERNANCE` one may be extended, and with
/// `bypass` also shortened, lifted or turned into `COMPLIANCE`. A new
/// retention must end in the future.
pub fn check_retention_change(
    old: Option<Retention>,
    new: Option<Retention>,
    now_ms: u64,
    bypass: bool,
) -> Result<(), ApplyError> {
    if let Some(n) = new {
        if !n.active(now_ms) {
            return Err(ApplyError::invalid(
                "the retain-until date must be in the future (InvalidArgument)",
            ));
        }
    }
    let Some(o) = old.filter(|o| o.active(now_ms)) else {
        return Ok(());
    };
    let extends = new.is_some_and(|n| n.mode == o.mode && n.until_ms >= o.until_ms);
    match o.mode {
        _ if extends => Ok(()),
        LockMode::Compliance => Err(ApplyError::forbidden(
            "a COMPLIANCE retention can only be extended (AccessDenied)",
        )),
        LockMode::Governance if bypass => Ok(()),
        LockMode::Governance => Err(ApplyError::forbidden(
            "shortening, lifting or changing a GOVERNANCE retention needs x-amz-bypass-governance-retention (AccessDenied)",
        )),
    }
}

impl ObjectStore {
    /// The bucket's lock configuration, if object lock is enabled on it.
    pub fn lock_config(&self, bucket: &str) -> Option<LockConfig> {
        self.bucket_config(bucket, BucketConfigKind::ObjectLock)
            .and_then(|d| LockConfig::from_doc(d).ok())
    }

    /// Refuses removing `bucket/key` version `version_id` at `now_ms` if it
    /// is locked ([`check_removal`]). Every removal of a version by a
    /// command calls this.
    pub(crate) fn guard_removal(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        now_ms: u64,
        bypass: bool,
    ) -> Result<(), ApplyError> {
        check_removal(
            self.version_attrs(bucket, key, version_id).lock(),
            now_ms,
            bypass,
        )
    }

    /// Prepares the lock of a new version of `bucket` created at
    /// `created_ms`: a lock asked of a bucket without object lock is
    /// refused; a retention must end in the future; without one, the
    /// bucket's default retention applies.
    pub(crate) fn lock_new_version(
        &self,
        bucket: &str,
        attrs: &mut VersionAttrs,
        created_ms: u64,
    ) -> Result<(), ApplyError> {
        let mut lock = attrs.lock();
        prepare_lock(bucket, self.lock_config(bucket), &mut lock, created_ms)?;
        attrs.retention = lock.retention;
        attrs.legal_hold = lock.legal_hold;
        Ok(())
    }
}

/// The lock of a new version of `bucket` (lock configuration `config`)
/// created at `created_ms`, from the `lock` its write asks for: a lock asked
/// of a bucket without object lock is refused ([`INVALID_REQUEST`]); a
/// retention must end in the future; without one, the bucket's default
/// retention applies.
pub fn prepare_lock(
    bucket: &str,
    config: Option<LockConfig>,
    lock: &mut VersionLock,
    created_ms: u64,
) -> Result<(), ApplyError> {
    let asked = lock.retention.is_some() || lock.legal_hold.is_some();
    let Some(config) = config else {
        if asked {
            return Err(ApplyError::invalid(format!(
                "{INVALID_REQUEST} bucket {bucket:?} does not have object lock enabled"
            )));
        }
        return Ok(());
    };
    match lock.retention {
        Some(r) if !r.active(created_ms) => Err(ApplyError::invalid(
            "the retain-until date must be in the future (InvalidArgument)",
        )),
        Some(_) => Ok(()),
        None => {
            lock.retention = config.default.map(|d| d.retention_from(created_ms));
            Ok(())
        }
    }
}

/// Checks a [`BucketConfigKind::ObjectLock`] document (other kinds pass).
pub(crate) fn check_doc(kind: BucketConfigKind, doc: &str) -> Result<(), String> {
    if kind == BucketConfigKind::ObjectLock {
        LockConfig::from_doc(doc).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Checks a change of a bucket configuration document against the lock
/// rules: the lock document needs versioning enabled and cannot be removed.
pub(crate) fn check_config_change(
    bucket: &Bucket,
    had_lock: bool,
    kind: BucketConfigKind,
    removing: bool,
) -> Result<(), ApplyError> {
    if kind != BucketConfigKind::ObjectLock {
        return Ok(());
    }
    if removing && had_lock {
        return Err(ApplyError::conflict(format!(
            "{INVALID_BUCKET_STATE} object lock cannot be disabled once enabled"
        )));
    }
    if !removing && bucket.versioning != Versioning::Enabled {
        return Err(ApplyError::conflict(format!(
            "{INVALID_BUCKET_STATE} object lock needs versioning enabled on bucket {:?}",
            bucket.name
        )));
    }
    Ok(())
}

/// Checks a versioning change: a bucket with object lock stays enabled.
pub(crate) fn check_versioning_change(
    store: &ObjectStore,
    bucket: &str,
    versioning: Versioning,
) -> Result<(), ApplyError> {
    if versioning != Versioning::Enabled && store.lock_config(bucket).is_some() {
        return Err(ApplyError::conflict(format!(
            "{INVALID_BUCKET_STATE} versioning cannot be suspended on bucket {bucket:?}: object lock is enabled"
        )));
    }
    Ok(())
}

impl State {
    /// Applies the object lock commands.
    pub(crate) fn apply_lock(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        match cmd {
            StoreCommand::CreateBucketWithConfigs { bucket, configs } => {
                let mut bucket = bucket.clone();
                if configs
                    .iter()
                    .any(|(k, _)| *k == BucketConfigKind::ObjectLock)
                {
                    bucket.versioning = Versioning::Enabled;
                }
                for (kind, doc) in configs {
                    crate::bucket_configs::check_bucket_config(&bucket.name, *kind, doc)
                        .map_err(ApplyError::invalid)?;
                }
                let name = bucket.name.clone();
                let r = self.apply_store(&StoreCommand::CreateBucket { bucket })?;
                for (kind, doc) in configs {
                    self.store
                        .bucket_configs
                        .insert((name.clone(), *kind), doc.clone());
                }
                Ok(r)
            }
            StoreCommand::SetObjectRetention {
                tenant,
                bucket,
                key,
                version_id,
                retention,
                bypass_governance,
                now_ms,
            } => {
                let st = &mut self.store;
                st.bucket_of(tenant, bucket)?;
                if st.lock_config(bucket).is_none() {
                    return Err(ApplyError::invalid(format!(
                        "{INVALID_REQUEST} bucket {bucket:?} does not have object lock enabled"
                    )));
                }
                let v = locked_target(st, bucket, key, version_id.as_deref())?;
                let mut attrs = st.version_attrs(bucket, key, &v);
                check_retention_change(attrs.retention, *retention, *now_ms, *bypass_governance)?;
                attrs.retention = *retention;
                st.set_version_attrs(bucket, key, &v, &attrs);
                Ok(StoreResult::Id(v))
            }
            StoreCommand::SetObjectLegalHold {
                tenant,
                bucket,
                key,
                version_id,
                on,
            } => {
                let st = &mut self.store;
                st.bucket_of(tenant, bucket)?;
                if st.lock_config(bucket).is_none() {
                    return Err(ApplyError::invalid(format!(
                        "{INVALID_REQUEST} bucket {bucket:?} does not have object lock enabled"
                    )));
                }
                let v = locked_target(st, bucket, key, version_id.as_deref())?;
                let mut attrs = st.version_attrs(bucket, key, &v);
                attrs.legal_hold = Some(*on);
                st.set_version_attrs(bucket, key, &v, &attrs);
                Ok(StoreResult::Id(v))
            }
            StoreCommand::DeleteObjectBypassing {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
                condition,
                bypass_governance,
            } => {
                let Some(id) = version_id else {
                    // Without a version id: a delete marker, never locked.
                    return self.apply_attrs(&StoreCommand::DeleteObjectWith {
                        tenant: tenant.clone(),
                        bucket: bucket.clone(),
                        key: key.clone(),
                        version_id: None,
                        now_ms: *now_ms,
                        condition: condition.clone(),
                    });
                };
                let st = &mut self.store;
                st.bucket_of(tenant, bucket)?;
                let target = st
                    .versions(bucket, key)
                    .into_iter()
                    .find(|v| v.version_id == *id);
                if let Some(c) = condition {
                    c.check_delete(target.as_ref())?;
                }
                if target.is_none() {
                    return Err(ApplyError::not_found(format!(
                        "{bucket}/{key} has no version {id:?}"
                    )));
                }
                st.guard_removal(bucket, key, id, *now_ms, *bypass_governance)?;
                let removed = st.take_version(bucket, key, id).ok_or_else(|| {
                    ApplyError::not_found(format!("{bucket}/{key} has no version {id:?}"))
                })?;
                st.drop_version(bucket, removed);
                Ok(StoreResult::Id(id.clone()))
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }
}

/// The version a retention or legal hold names (the latest when `None`),
/// which must not be a delete marker.
fn locked_target(
    st: &ObjectStore,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<String, ApplyError> {
    let v = st.version(bucket, key, version_id)?;
    if v.is_delete_marker() {
        return Err(ApplyError::invalid(format!(
            "{bucket}/{key} version {:?} is a delete marker, which cannot be locked (MethodNotAllowed)",
            v.version_id
        )));
    }
    Ok(v.version_id)
}

#[cfg(test)]
#[path = "object_lock_tests.rs"]
mod tests;
