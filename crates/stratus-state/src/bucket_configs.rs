//! A bucket's configuration documents: lifecycle rules, access policy, CORS,
//! tags and the like, one document per [`BucketConfigKind`].
//!
//! The state stores each document as the JSON its owner wrote (the S3
//! gateway for policy and CORS, the lifecycle module for rules) and checks
//! only its size and that it is JSON: its meaning belongs to its reader.
//! JSON, unlike the bincode of the other rows, is self-describing, so a
//! document can grow fields without a state-format change; a data directory
//! written before these documents existed simply has none.

use serde::{Deserialize, Serialize};

use crate::objects::{ObjectStore, StoreCommand, StoreResult};
use crate::{ApplyError, State};

/// The largest configuration document the state accepts (AWS allows 20 KiB
/// for a bucket policy; lifecycle and CORS documents are of the same order).
pub const MAX_BUCKET_CONFIG_BYTES: usize = 64 * 1024;

/// Which configuration document of a bucket. New kinds are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BucketConfigKind {
    /// Lifecycle rules (expiration, noncurrent versions, incomplete uploads).
    Lifecycle,
    /// The bucket policy.
    Policy,
    /// CORS rules.
    Cors,
    /// The bucket's tags.
    Tagging,
    /// Block Public Access settings.
    PublicAccessBlock,
    /// The canned ACL the bucket was given.
    Acl,
    /// The default server-side encryption (S3 `PutBucketEncryption`).
    Encryption,
    /// Object lock configuration ([`crate::object_lock::LockConfig`]).
    ObjectLock,
}

impl BucketConfigKind {
    /// Every kind.
    pub const ALL: [BucketConfigKind; 8] = [
        BucketConfigKind::Lifecycle,
        BucketConfigKind::Policy,
        BucketConfigKind::Cors,
        BucketConfigKind::Tagging,
        BucketConfigKind::PublicAccessBlock,
        BucketConfigKind::Acl,
        BucketConfigKind::Encryption,
        BucketConfigKind::ObjectLock,
    ];
}

/// Checks a document before it is stored: JSON, at most
/// [`MAX_BUCKET_CONFIG_BYTES`]. The message says which limit failed.
pub fn check_bucket_config(bucket: &str, kind: BucketConfigKind, doc: &str) -> Result<(), String> {
    if doc.len() > MAX_BUCKET_CONFIG_BYTES {
        return Err(format!(
            "the {kind:?} document of bucket {bucket:?} is {} bytes; at most {MAX_BUCKET_CONFIG_BYTES} are allowed",
            doc.len()
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(doc)
        .map_err(|e| format!("the {kind:?} document of bucket {bucket:?} is not JSON: {e}"))?;
    crate::lifecycle::check_doc(kind, doc)
        .map_err(|e| format!("the {kind:?} document of bucket {bucket:?}: {e}"))?;
    crate::object_lock::check_doc(kind, doc)
        .map_err(|e| format!("the {kind:?} document of bucket {bucket:?}: {e}"))
}

impl ObjectStore {
    /// The bucket's document of that kind, if one is set.
    pub fn bucket_config(&self, bucket: &str, kind: BucketConfigKind) -> Option<&str> {
        self.bucket_configs
            .get(&(bucket.to_string(), kind))
            .map(String::as_str)
    }

    /// Every bucket that has a document of that kind, with it.
    pub fn bucket_configs_of(&self, kind: BucketConfigKind) -> Vec<(&str, &str)> {
        self.bucket_configs
            .iter()
            .filter(|((_, k), _)| *k == kind)
            .map(|((b, _), doc)| (b.as_str(), doc.as_str()))
            .collect()
    }

    /// Forgets every document of a bucket (it is being deleted).
    pub(crate) fn drop_bucket_configs(&mut self, bucket: &str) {
        for kind in BucketConfigKind::ALL {
            self.bucket_configs.remove(&(bucket.to_string(), kind));
        }
    }
}

impl State {
    /// Applies [`StoreCommand::SetBucketConfig`].
    pub(crate) fn apply_bucket_config(
        &mut self,
        cmd: &StoreCommand,
    ) -> Result<StoreResult, ApplyError> {
        let StoreCommand::SetBucketConfig {
            tenant,
            bucket,
            kind,
            doc,
        } = cmd
        else {
            return Err(ApplyError::invalid("not a bucket configuration command"));
        };
        let st = &mut self.store;
        let had_lock = st.lock_config(bucket).is_some();
        crate::object_lock::check_config_change(
            st.bucket_of(tenant, bucket)?,
            had_lock,
            *kind,
            doc.is_none(),
        )?;
        let key = (bucket.clone(), *kind);
        match doc {
            None => {
                st.bucket_configs.remove(&key);
            }
            Some(doc) => {
                check_bucket_config(bucket, *kind, doc).map_err(ApplyError::invalid)?;
                st.bucket_configs.insert(key, doc.clone());
            }
        }
        Ok(StoreResult::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Bucket, DedupeScope, Versioning};
    use crate::{Command, State};

    fn apply(s: &mut State, cmd: Command) -> Result<(), ApplyError> {
        s.apply(1, &cmd).into_result().map(|_| ())
    }

    fn state_with_bucket() -> State {
        let mut s = State::default();
        for t in ["acme", "evil"] {
            let tenant = Command::CreateTenant {
                name: t.into(),
                now_ms: 1,
            };
            assert_eq!(apply(&mut s, tenant), Ok(()));
        }
        let bucket = Bucket {
            name: "bkt1".into(),
            tenant: "acme".into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Unversioned,
            created_ms: 1,
        };
        let create = Command::Store(StoreCommand::CreateBucket { bucket });
        assert_eq!(apply(&mut s, create), Ok(()));
        s
    }

    fn set(tenant: &str, kind: BucketConfigKind, doc: Option<&str>) -> Command {
        Command::Store(StoreCommand::SetBucketConfig {
            tenant: tenant.into(),
            bucket: "bkt1".into(),
            kind,
            doc: doc.map(str::to_string),
        })
    }

    #[test]
    fn a_document_is_kept_replaced_and_removed() {
        let mut s = state_with_bucket();
        let k = BucketConfigKind::Cors;
        assert_eq!(apply(&mut s, set("acme", k, Some(r#"{"a":1}"#))), Ok(()));
        assert_eq!(s.store.bucket_config("bkt1", k), Some(r#"{"a":1}"#));
        assert_eq!(
            s.store.bucket_config("bkt1", BucketConfigKind::Policy),
            None
        );
        assert_eq!(apply(&mut s, set("acme", k, Some(r#"{"a":2}"#))), Ok(()));
        assert_eq!(s.store.bucket_configs_of(k), vec![("bkt1", r#"{"a":2}"#)]);
        assert_eq!(apply(&mut s, set("acme", k, None)), Ok(()));
        assert_eq!(s.store.bucket_config("bkt1", k), None);
    }

    #[test]
    fn another_tenant_cannot_configure_the_bucket_and_bad_documents_are_refused() {
        let mut s = state_with_bucket();
        let k = BucketConfigKind::Policy;
        assert!(apply(&mut s, set("evil", k, Some("{}"))).is_err());
        assert!(apply(&mut s, set("acme", k, Some("not json"))).is_err());
        let huge = format!("\"{}\"", "x".repeat(MAX_BUCKET_CONFIG_BYTES));
        assert!(apply(&mut s, set("acme", k, Some(&huge))).is_err());
        assert_eq!(s.store.bucket_config("bkt1", k), None);
    }

    #[test]
    fn deleting_the_bucket_forgets_its_documents() {
        let mut s = state_with_bucket();
        let k = BucketConfigKind::Lifecycle;
        let rules = r#"{"rules":[{"id":"r","enabled":true,"expiration_days":1}]}"#;
        assert_eq!(apply(&mut s, set("acme", k, Some(rules))), Ok(()));
        let delete = Command::Store(StoreCommand::DeleteBucket {
            tenant: "acme".into(),
            name: "bkt1".into(),
        });
        assert_eq!(apply(&mut s, delete), Ok(()));
        assert!(s.store.bucket_configs_of(k).is_empty());
    }
}
