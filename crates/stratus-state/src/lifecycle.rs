//! Lifecycle rules of a bucket: the document ([`LifecycleConfig`], stored
//! as the bucket's [`BucketConfigKind::Lifecycle`] JSON document), its
//! checks, and the pure evaluation of which versions and uploads a rule set
//! expires at a given time ([`evaluate_key`], [`upload_expires`]).
//!
//! Nothing here does IO or reads a clock: the leader's maintenance pass
//! (`stratus-store`'s `lifecycle` module) scans the versions of a bucket by
//! key range, asks [`evaluate_key`] what to do with each key and proposes
//! [`StoreCommand::Expire`] / [`StoreCommand::AbortUpload`] commands. The
//! length of a "day" is an argument so tests can shorten it.
//!
//! Semantics (as S3's, minus the rounding of times to midnight UTC):
//! - `expiration_days`: a current version (not a delete marker) older than
//!   that expires: removed in a never-versioned bucket, hidden behind a
//!   delete marker in a versioned (or suspended) one.
//! - `expired_object_delete_marker`: a delete marker that is the only
//!   version left of its key is removed.
//! - `noncurrent_days` (and `newer_noncurrent_versions`): a noncurrent
//!   version (or marker) expires once it has been noncurrent that long
//!   (from the creation of the version that replaced it) and, if
//!   `newer_noncurrent_versions` is set, more than that many noncurrent
//!   versions are newer than it.
//! - `abort_upload_days`: a multipart upload started that long ago is
//!   aborted.
//!
//! A key is affected when any enabled rule whose prefix it starts with
//! asks for it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stratus_types::TenantName;

use crate::bucket_configs::BucketConfigKind;
use crate::objects::{ObjectVersion, StoreCommand, StoreResult};
use crate::{ApplyError, State};

/// Most rules in one configuration (as S3).
pub const MAX_RULES: usize = 1000;
/// Longest rule id (as S3).
pub const MAX_RULE_ID: usize = 255;
/// Most newer noncurrent versions a rule may keep (as S3).
pub const MAX_NEWER_NONCURRENT: u32 = 100;
/// The default length of a lifecycle day (ms).
pub const DAY_MS: u64 = 86_400_000;

/// A bucket's lifecycle configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    /// The rules, in the order they were given.
    pub rules: Vec<LifecycleRule>,
}

/// One lifecycle rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecycleRule {
    /// Unique id within the configuration.
    pub id: String,
    /// `Enabled` (true) or `Disabled`.
    pub enabled: bool,
    /// Keys this rule applies to start with this (empty: every key).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// Expire current versions this many days after they were written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<u32>,
    /// Remove a delete marker that is the only version of its key.
    #[serde(skip_serializing_if = "is_false")]
    pub expired_object_delete_marker: bool,
    /// Expire noncurrent versions this many days after they became
    /// noncurrent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
    /// ... but keep this many newest noncurrent versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
    /// Abort multipart uploads this many days after they were started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<u32>,
    /// The prefix was given as the rule's own `Prefix` (S3's older form)
    /// rather than in a `Filter`: it is shown back the same way.
    #[serde(skip_serializing_if = "is_false")]
    pub legacy_prefix: bool,
    /// Filter: a version must carry every one of these tags
    /// ([`crate::lifecycle_filters`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Filter: a version must be larger than this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    /// Filter: a version must be smaller than this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
    /// Expire current versions from this time on (ms since the epoch; S3
    /// wants midnight UTC), whatever their age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date_ms: Option<u64>,
    /// The filter was given as an `And` (shown back the same way).
    #[serde(skip_serializing_if = "is_false")]
    pub filter_and: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a lifecycle configuration is refused (the S3 gateway maps each to
/// `MalformedXML` or `InvalidArgument`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// No rule at all.
    #[error("a lifecycle configuration needs at least one rule")]
    NoRules,
    /// Over [`MAX_RULES`] rules.
    #[error("a lifecycle configuration has at most {MAX_RULES} rules; this one has {0}")]
    TooManyRules(usize),
    /// Two rules share an id.
    #[error("rule id {0:?} is used by more than one rule")]
    DuplicateId(String),
    /// A rule id over [`MAX_RULE_ID`] bytes.
    #[error("rule id {0:?}... is longer than {MAX_RULE_ID} bytes")]
    IdTooLong(String),
    /// A rule with no action.
    #[error("rule {0:?} has no action (Expiration, NoncurrentVersionExpiration or AbortIncompleteMultipartUpload)")]
    NoAction(String),
    /// A number of days that is not a positive integer.
    #[error("rule {rule:?}: {field} must be a positive number of days, not {value}")]
    BadDays {
        /// The rule.
        rule: String,
        /// Which field.
        field: &'static str,
        /// The value given.
        value: i64,
    },
    /// `NewerNoncurrentVersions` outside 1..=100.
    #[error("rule {0:?}: NewerNoncurrentVersions must be between 1 and {MAX_NEWER_NONCURRENT}")]
    BadNewerNoncurrent(String),
    /// `NewerNoncurrentVersions` without `NoncurrentDays`.
    #[error("rule {0:?}: NoncurrentVersionExpiration needs NoncurrentDays")]
    NoncurrentWithoutDays(String),
    /// `ExpiredObjectDeleteMarker` together with `Days`.
    #[error("rule {0:?}: ExpiredObjectDeleteMarker cannot be specified with Days or Date")]
    MarkerWithDays(String),
    /// The stored document is not a lifecycle configuration.
    #[error("not a lifecycle configuration: {0}")]
    NotAConfig(String),
    /// A filter breaks S3's rules (tags, sizes; the message says which).
    #[error("rule {0:?}: {1}")]
    BadFilter(String, String),
    /// `Expiration` with both `Date` and `Days`.
    #[error("rule {0:?}: Expiration holds Days or Date, not both")]
    DateWithDays(String),
}

impl LifecycleConfig {
    /// Checks the rules as S3 does: 1 to [`MAX_RULES`] rules, unique ids
    /// of at most [`MAX_RULE_ID`] bytes, at least one action per rule,
    /// positive day counts.
    pub fn validate(&self) -> Result<(), LifecycleError> {
        if self.rules.is_empty() {
            return Err(LifecycleError::NoRules);
        }
        if self.rules.len() > MAX_RULES {
            return Err(LifecycleError::TooManyRules(self.rules.len()));
        }
        let mut ids = BTreeSet::new();
        for r in &self.rules {
            if r.id.len() > MAX_RULE_ID {
                let shown: String = r.id.chars().take(32).collect();
                return Err(LifecycleError::IdTooLong(shown));
            }
            if !ids.insert(r.id.as_str()) {
                return Err(LifecycleError::DuplicateId(r.id.clone()));
            }
            r.validate()?;
        }
        Ok(())
    }

    /// Parses and checks a stored document.
    pub fn parse(doc: &str) -> Result<Self, LifecycleError> {
        let c: LifecycleConfig =
            serde_json::from_str(doc).map_err(|e| LifecycleError::NotAConfig(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// The document as stored.
    pub fn to_doc(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The shortest set of prefixes covering every enabled rule's keys, in
    /// order (no prefix in it starts with another): the key ranges a pass
    /// has to scan.
    pub fn scan_prefixes(&self) -> Vec<String> {
        let all: BTreeSet<&str> = self
            .rules
            .iter()
            .filter(|r| r.enabled)
            .map(|r| r.prefix.as_str())
            .collect();
        let mut out: Vec<String> = Vec::new();
        for p in all {
            if !out.last().is_some_and(|l| p.starts_with(l.as_str())) {
                out.push(p.to_owned());
            }
        }
        out
    }
}

impl LifecycleRule {
    fn validate(&self) -> Result<(), LifecycleError> {
        let days = |field: &'static str, v: Option<u32>| match v {
            Some(0) => Err(LifecycleError::BadDays {
                rule: self.id.clone(),
                field,
                value: 0,
            }),
            _ => Ok(()),
        };
        days("Expiration Days", self.expiration_days)?;
        days("NoncurrentDays", self.noncurrent_days)?;
        days("DaysAfterInitiation", self.abort_upload_days)?;
        if let Some(n) = self.newer_noncurrent_versions {
            if !(1..=MAX_NEWER_NONCURRENT).contains(&n) {
                return Err(LifecycleError::BadNewerNoncurrent(self.id.clone()));
            }
            if self.noncurrent_days.is_none() {
                return Err(LifecycleError::NoncurrentWithoutDays(self.id.clone()));
            }
        }
        if self.expired_object_delete_marker
            && (self.expiration_days.is_some() || self.expiration_date_ms.is_some())
        {
            return Err(LifecycleError::MarkerWithDays(self.id.clone()));
        }
        if self.expiration_days.is_some() && self.expiration_date_ms.is_some() {
            return Err(LifecycleError::DateWithDays(self.id.clone()));
        }
        self.validate_filter()?;
        if self.expiration_days.is_none()
            && self.expiration_date_ms.is_none()
            && !self.expired_object_delete_marker
            && self.noncurrent_days.is_none()
            && self.abort_upload_days.is_none()
        {
            return Err(LifecycleError::NoAction(self.id.clone()));
        }
        Ok(())
    }

    fn applies_to(&self, key: &str) -> bool {
        self.enabled && key.starts_with(&self.prefix)
    }
}

/// A version a lifecycle rule expires, as [`StoreCommand::Expire`] carries
/// it: if `bucket/key` still has the version `version_id` created at
/// `created_ms` (and, with `current`, it is still the latest and not a
/// delete marker), it is deleted as by [`StoreCommand::DeleteObject`]
/// (without a version id when `current`, with it otherwise); if not,
/// nothing happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    /// The bucket's tenant.
    pub tenant: TenantName,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The version the rule expired.
    pub version_id: String,
    /// Its creation time.
    pub created_ms: u64,
    /// It was the current version.
    pub current: bool,
    /// Leader time.
    pub now_ms: u64,
}

/// What a rule set does to one version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The current version expires (removed, or hidden behind a delete
    /// marker in a versioned bucket).
    Current {
        /// Its version id.
        version_id: String,
        /// Its creation time (the command checks it is still that version).
        created_ms: u64,
    },
    /// A noncurrent version (or marker) is removed for good.
    Noncurrent {
        /// Its version id.
        version_id: String,
        /// Its creation time.
        created_ms: u64,
    },
    /// A delete marker that is the only version of its key is removed.
    Marker {
        /// Its version id.
        version_id: String,
        /// Its creation time.
        created_ms: u64,
    },
}

impl Expiry {
    /// The command that carries it out on `tenant`'s `bucket/key`.
    pub fn command(&self, tenant: &str, bucket: &str, key: &str, now_ms: u64) -> StoreCommand {
        let (version_id, created_ms, current) = match self {
            Expiry::Current {
                version_id,
                created_ms,
            } => (version_id, *created_ms, true),
            Expiry::Noncurrent {
                version_id,
                created_ms,
            }
            | Expiry::Marker {
                version_id,
                created_ms,
            } => (version_id, *created_ms, false),
        };
        StoreCommand::Expire(Expiring {
            tenant: tenant.into(),
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.clone(),
            created_ms,
            current,
            now_ms,
        })
    }
}

fn old(since_ms: u64, days: u32, now_ms: u64, day_ms: u64) -> bool {
    since_ms.saturating_add(u64::from(days).saturating_mul(day_ms)) <= now_ms
}

/// What `rules` expire of `key`'s `versions` (oldest first, as stored) at
/// `now_ms`, a day lasting `day_ms`. Each version appears at most once.
pub fn evaluate_key(
    rules: &[LifecycleRule],
    key: &str,
    versions: &[ObjectVersion],
    now_ms: u64,
    day_ms: u64,
) -> Vec<Expiry> {
    evaluate_key_tagged(rules, key, versions, &[], now_ms, day_ms)
}

/// [`evaluate_key`], with `tags[i]` the tags of `versions[i]` (a version
/// past the end of `tags` has none), for rules that filter on tags.
pub fn evaluate_key_tagged(
    rules: &[LifecycleRule],
    key: &str,
    versions: &[ObjectVersion],
    tags: &[BTreeMap<String, String>],
    now_ms: u64,
    day_ms: u64,
) -> Vec<Expiry> {
    let Some(current) = versions.last() else {
        return Vec::new();
    };
    let none = BTreeMap::new();
    let tags_of = |i: usize| tags.get(i).unwrap_or(&none);
    let matching = |i: usize| -> Vec<&LifecycleRule> {
        rules
            .iter()
            .filter(|r| r.applies_to(key) && r.matches(&versions[i], tags_of(i)))
            .collect()
    };
    let n = versions.len();
    let rules_now = matching(n - 1);
    let mut out = Vec::new();
    if current.is_delete_marker() {
        if versions.len() == 1 && rules_now.iter().any(|r| r.expired_object_delete_marker) {
            out.push(Expiry::Marker {
                version_id: current.version_id.clone(),
                created_ms: current.created_ms,
            });
        }
    } else if rules_now.iter().any(|r| {
        r.expiration_days
            .is_some_and(|d| old(current.created_ms, d, now_ms, day_ms))
            || r.expiration_date_ms.is_some_and(|t| t <= now_ms)
    }) {
        out.push(Expiry::Current {
            version_id: current.version_id.clone(),
            created_ms: current.created_ms,
        });
    }
    // Noncurrent versions: versions[i] became noncurrent when versions[i+1]
    // was written; versions[i+1..n-1] are the noncurrent ones newer than it.
    for i in 0..n.saturating_sub(1) {
        let since = versions[i + 1].created_ms;
        let newer = (n - 2 - i) as u64;
        let expires = matching(i).iter().any(|r| {
            r.noncurrent_days.is_some_and(|d| {
                old(since, d, now_ms, day_ms)
                    && r.newer_noncurrent_versions
                        .is_none_or(|keep| newer >= u64::from(keep))
            })
        });
        if expires {
            out.push(Expiry::Noncurrent {
                version_id: versions[i].version_id.clone(),
                created_ms: versions[i].created_ms,
            });
        }
    }
    out
}

/// Whether `rules` abort an upload of `key` started at `created_ms`.
pub fn upload_expires(
    rules: &[LifecycleRule],
    key: &str,
    created_ms: u64,
    now_ms: u64,
    day_ms: u64,
) -> bool {
    rules.iter().any(|r| {
        r.applies_to(key)
            && r.abort_upload_days
                .is_some_and(|d| old(created_ms, d, now_ms, day_ms))
    })
}

/// Checks a lifecycle document before the state stores it.
pub(crate) fn check_doc(kind: BucketConfigKind, doc: &str) -> Result<(), String> {
    if kind == BucketConfigKind::Lifecycle {
        LifecycleConfig::parse(doc).map_err(|e| e.to_string())?;
    }
    Ok(())
}

impl State {
    /// Applies [`StoreCommand::Expire`]: if the named version is still
    /// there (same id and creation time; for `current`, still the latest
    /// and not a marker), deletes it as a client's delete would (a marker
    /// for a current version of a versioned bucket, removal otherwise).
    /// A version that changed meanwhile is left alone (`Number(0)`).
    pub(crate) fn apply_expire(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let StoreCommand::Expire(Expiring {
            tenant,
            bucket,
            key,
            version_id,
            created_ms,
            current,
            now_ms,
        }) = cmd
        else {
            return Err(ApplyError::invalid("not an expire command"));
        };
        let st = &self.store;
        st.bucket_of(tenant, bucket)?;
        let versions = st.versions(bucket, key);
        let still = |v: &ObjectVersion| v.version_id == *version_id && v.created_ms == *created_ms;
        let ok = if *current {
            versions
                .last()
                .is_some_and(|v| still(v) && !v.is_delete_marker())
        } else {
            versions.iter().any(still)
        };
        if !ok {
            return Ok(StoreResult::Number(0));
        }
        // Object lock: a locked version is never removed by a rule (a
        // current one only gets a delete marker, which is allowed).
        if !*current
            && st
                .guard_removal(bucket, key, version_id, *now_ms, false)
                .is_err()
        {
            return Ok(StoreResult::Number(0));
        }
        // A current version: deleted as a client's unversioned delete
        // (removed in a never-versioned bucket, a delete marker in a
        // versioned one, a null marker in a suspended one), as S3's
        // lifecycle does; a noncurrent one: removed for good.
        let delete = StoreCommand::DeleteObject {
            tenant: tenant.clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            version_id: (!*current).then(|| version_id.clone()),
            now_ms: *now_ms,
        };
        self.apply_store(&delete)?;
        Ok(StoreResult::Number(1))
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "lifecycle_filters_tests.rs"]
mod filters_tests;
