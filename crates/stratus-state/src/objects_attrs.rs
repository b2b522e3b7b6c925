//! What a version carries beyond [`ObjectVersion`]: its stored HTTP headers
//! (`Cache-Control`, `Content-Encoding`, ...), its tags and the sizes of the
//! parts it was completed from ([`VersionAttrs`]); and the preconditions a
//! write can be made under ([`WriteCondition`]).
//!
//! **Why a table of its own.** [`ObjectVersion`] rows and [`StoreCommand`]
//! variants are bincode: a field added to them would make every existing
//! data directory and Raft log unreadable. So the attributes live in their
//! own table, [`Table::VersionAttrs`], keyed `bucket \0 key \0 version_id`,
//! holding a serde_json document (fields can be added later; unknown or
//! absent ones read as their default). A version without a row has the
//! default attributes (no header, no tag, no part sizes): an old data
//! directory needs no migration. The row goes when its version goes
//! (`take_version`, the one way a version leaves), so a version id reused
//! later (the `null` version) never inherits another's tags.
//!
//! The attributes of a multipart upload wait in
//! [`ObjectStore::upload_attrs`] (by upload id, a JSON document too) until
//! [`StoreCommand::CompleteUploadWith`] carries them to the version, with
//! the part sizes.
//!
//! **Conditions are checked in `apply`**, against the state the command
//! meets in log order: `If-None-Match: *` and `If-Match` on a put or a
//! completion, `If-Match` on a delete are atomic with the write. A failed
//! condition is a [`ApplyError::Conflict`] whose message starts with
//! [`PRECONDITION_FAILED`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kv::Table;
use crate::objects::{ObjectStore, ObjectVersion, StoreCommand, StoreResult};
use crate::{ApplyError, State};

/// Most tags per version (S3's limit).
pub const MAX_TAGS: usize = 10;
/// Longest tag key, in characters (S3's limit).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in characters (S3's limit).
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// Most bytes of stored headers per version (names and values).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// The stored headers: the only names [`VersionAttrs::headers`] may hold
/// (lower case).
pub const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];
/// Largest ACL document of a version (100 grants of 63-character tenant
/// names fit several times over).
pub const MAX_ACL_DOC_BYTES: usize = 32 * 1024;
/// The start of the message of a refusal for a failed precondition.
pub const PRECONDITION_FAILED: &str = "PreconditionFailed:";

/// A version's attributes beyond [`ObjectVersion`] (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionAttrs {
    /// Stored HTTP headers, lower-case names from [`STORED_HEADERS`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Tags.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Sizes of the parts of a version completed from a multipart upload,
    /// in order (empty for a simple upload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
    /// The multipart upload the version was completed from (so completing
    /// it again answers with this version, as S3 does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The additional checksum (`x-amz-checksum-*`) of the version; for a
    /// multipart upload, the algorithm and type asked at its creation (with
    /// an empty value). See [`crate::objects::StoredChecksum`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<super::checksums::StoredChecksum>,
    /// Checksums of the parts (base64): by part number for an upload, by
    /// position (1 = the first part) for a completed version.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub part_checksums: BTreeMap<u32, String>,
    /// Of a multipart upload under a client's key (S3 SSE-C): the salt and
    /// check its parts are sealed with ([`crate::objects::KeyScope::Customer`]),
    /// set when it is created. Never the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_seal: Option<CustomerSealDoc>,
    /// The version's access control list, a JSON document the S3 gateway
    /// writes and reads (owner and grants; opaque here, at most
    /// [`MAX_ACL_DOC_BYTES`]); `None`: the default (the bucket's owner has
    /// full control).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl: Option<String>,
    /// Object lock retention ([`crate::object_lock`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::object_lock::Retention>,
    /// Object lock legal hold: `None` never set, `Some(true)` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold: Option<bool>,
}

/// The salt and check of a customer key ([`stratus_chunk::CustomerSeal`]),
/// as a JSON document holds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSealDoc {
    /// Salt of the scope key.
    pub salt: [u8; 32],
    /// Keyed check of the key.
    pub check: [u8; 32],
}

impl From<stratus_chunk::CustomerSeal> for CustomerSealDoc {
    fn from(s: stratus_chunk::CustomerSeal) -> Self {
        CustomerSealDoc {
            salt: s.salt,
            check: s.check,
        }
    }
}

impl From<CustomerSealDoc> for stratus_chunk::CustomerSeal {
    fn from(s: CustomerSealDoc) -> Self {
        stratus_chunk::CustomerSeal {
            salt: s.salt,
            check: s.check,
        }
    }
}

impl VersionAttrs {
    /// Whether these are the default attributes (nothing to store).
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
            && self.tags.is_empty()
            && self.part_sizes.is_empty()
            && self.upload_id.is_none()
            && self.checksum.is_none()
            && self.part_checksums.is_empty()
            && self.customer_seal.is_none()
            && self.acl.is_none()
            && self.retention.is_none()
            && self.legal_hold.is_none()
    }

    /// The JSON document carried in commands and stored in rows.
    pub fn to_doc(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a document written by [`VersionAttrs::to_doc`] (an empty
    /// string is the default).
    pub fn from_doc(doc: &str) -> Result<Self, ApplyError> {
        if doc.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(doc)
            .map_err(|e| ApplyError::invalid(format!("unreadable version attributes: {e}")))
    }

    /// Checks the limits: known header names within [`MAX_HEADER_BYTES`],
    /// and S3's tag rules ([`validate_tags`]).
    pub fn validate(&self) -> Result<(), ApplyError> {
        if let Some(h) = self
            .headers
            .keys()
            .find(|h| !STORED_HEADERS.contains(&h.as_str()))
        {
            return Err(ApplyError::invalid(format!(
                "header {h:?} is not one a version stores"
            )));
        }
        let size: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if size > MAX_HEADER_BYTES {
            return Err(ApplyError::TooLarge(format!(
                "stored headers are {size} bytes; the limit is {MAX_HEADER_BYTES}"
            )));
        }
        super::checksums::validate_checksums(self)?;
        check_acl_doc(self.acl.as_deref())?;
        validate_tags(&self.tags)
    }
}

/// Checks an ACL document's size ([`MAX_ACL_DOC_BYTES`]) and that it is JSON.
fn check_acl_doc(acl: Option<&str>) -> Result<(), ApplyError> {
    let Some(doc) = acl else { return Ok(()) };
    if doc.len() > MAX_ACL_DOC_BYTES {
        return Err(ApplyError::TooLarge(format!(
            "an ACL document is {} bytes; the limit is {MAX_ACL_DOC_BYTES}",
            doc.len()
        )));
    }
    serde_json::from_str::<serde_json::Value>(doc)
        .map(|_| ())
        .map_err(|e| ApplyError::invalid(format!("an ACL document is not JSON: {e}")))
}

/// Checks S3's tag rules: at most [`MAX_TAGS`], keys of 1 to
/// [`MAX_TAG_KEY_CHARS`] characters, values of at most
/// [`MAX_TAG_VALUE_CHARS`]. (Unique keys are given by the map; a request
/// naming a key twice is refused where it is parsed.)
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ApplyError> {
    check_tag_rules(tags).map_err(|why| ApplyError::invalid(format!("{why} (InvalidTag)")))
}

/// [`validate_tags`]'s rules, saying which one a tag set breaks (for the S3
/// gateway's `InvalidTag`, checked before anything is proposed).
pub fn check_tag_rules(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags; an object has at most {MAX_TAGS}",
            tags.len()
        ));
    }
    for (k, v) in tags {
        let n = k.chars().count();
        if n == 0 || n > MAX_TAG_KEY_CHARS {
            return Err(format!(
                "a tag key is 1-{MAX_TAG_KEY_CHARS} characters, not {n}"
            ));
        }
        let n = v.chars().count();
        if n > MAX_TAG_VALUE_CHARS {
            return Err(format!(
                "a tag value is at most {MAX_TAG_VALUE_CHARS} characters, not {n}"
            ));
        }
    }
    Ok(())
}

/// A precondition of a write, checked in `apply` against the key's latest
/// version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteCondition {
    /// `If-None-Match: *`: the key has no current object (absent, or its
    /// latest version is a delete marker).
    IfAbsent,
    /// `If-Match: etag`: the key's current object has this ETag (without
    /// quotes; `*` matches any current object).
    IfMatch(String),
    /// `If-None-Match: etag`: the key has no current object with this ETag
    /// (without quotes).
    IfNoneMatch(String),
    /// The conditions of a delete on the version it would remove or hide,
    /// all of which must hold: its ETag (`If-Match`, `*` any), its size
    /// (`x-amz-if-match-size`) and its modification time in whole seconds
    /// since the epoch (`x-amz-if-match-last-modified-time`). A delete
    /// marker has no size or time: those conditions fail on it. Only for
    /// deletes.
    DeleteIf {
        /// The ETag (without quotes; `*` matches any version).
        etag: Option<String>,
        /// The size in bytes.
        size: Option<u64>,
        /// The modification time, seconds since the Unix epoch.
        modified_secs: Option<u64>,
    },
}

impl WriteCondition {
    /// Checks the condition against `latest`, the key's latest version.
    pub fn check(&self, latest: Option<&ObjectVersion>) -> Result<(), ApplyError> {
        let current = latest.filter(|v| !v.is_delete_marker());
        let ok = match (self, current) {
            (WriteCondition::IfAbsent, c) => c.is_none(),
            (WriteCondition::IfMatch(_), None) => false,
            (WriteCondition::IfMatch(want), Some(v)) => {
                let want = want.trim_matches('"');
                want == "*" || want == v.etag
            }
            (WriteCondition::IfNoneMatch(other), c) => {
                c.is_none_or(|v| other.trim_matches('"') != v.etag)
            }
            (WriteCondition::DeleteIf { .. }, _) => {
                return Err(ApplyError::invalid(
                    "size and modification-time conditions are only for deletes",
                ))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(precondition_failed(match self {
                WriteCondition::IfAbsent => "the key already has an object (If-None-Match: *)",
                WriteCondition::IfMatch(_) => {
                    "the key's current object does not have the ETag given (If-Match)"
                }
                WriteCondition::IfNoneMatch(_) | WriteCondition::DeleteIf { .. } => {
                    "the key's current object has the ETag given (If-None-Match)"
                }
            }))
        }
    }
}

impl WriteCondition {
    /// Checks the condition of a delete against the version it would
    /// remove or hide (`None`: there is none, and a delete of nothing
    /// succeeds whatever its condition, as S3 answers). A delete marker is
    /// a version with an empty ETag: only `*` matches it.
    pub fn check_delete(&self, target: Option<&ObjectVersion>) -> Result<(), ApplyError> {
        let Some(v) = target else { return Ok(()) };
        let ok = match self {
            WriteCondition::IfAbsent => v.is_delete_marker(),
            WriteCondition::IfMatch(want) => {
                let want = want.trim_matches('"');
                want == "*" || want == v.etag
            }
            WriteCondition::IfNoneMatch(other) => other.trim_matches('"') != v.etag,
            WriteCondition::DeleteIf {
                etag,
                size,
                modified_secs,
            } => {
                let marker = v.is_delete_marker();
                let etag_ok = etag.as_ref().is_none_or(|want| {
                    let want = want.trim_matches('"');
                    want == "*" || want == v.etag
                });
                let size_ok = size.is_none_or(|s| !marker && s == v.size);
                let time_ok = modified_secs.is_none_or(|t| !marker && t == v.created_ms / 1000);
                if !(etag_ok && size_ok && time_ok) {
                    return Err(precondition_failed(if !etag_ok {
                        "the version to delete does not have the ETag given (If-Match)"
                    } else if !size_ok {
                        "the version to delete does not have the size given (x-amz-if-match-size)"
                    } else {
                        "the version to delete was not last modified at the time given (x-amz-if-match-last-modified-time)"
                    }));
                }
                true
            }
        };
        if ok {
            Ok(())
        } else {
            Err(precondition_failed(
                "the version to delete does not have the ETag given (If-Match)",
            ))
        }
    }
}

/// The refusal of a failed precondition.
pub fn precondition_failed(why: &str) -> ApplyError {
    ApplyError::conflict(format!("{PRECONDITION_FAILED} {why}"))
}

/// Whether `e` is the refusal of a failed precondition.
pub fn is_precondition_failed(e: &ApplyError) -> bool {
    matches!(e, ApplyError::Conflict(m) if m.starts_with(PRECONDITION_FAILED))
}

fn attrs_key(bucket: &str, key: &str, version_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + key.len() + version_id.len() + 2);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(version_id.as_bytes());
    k
}

impl ObjectStore {
    /// The attributes of a version (the default when none were stored).
    pub fn version_attrs(&self, bucket: &str, key: &str, version_id: &str) -> VersionAttrs {
        self.kv
            .get(Table::VersionAttrs, &attrs_key(bucket, key, version_id))
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Stores (or, when default, removes) the attributes of a version.
    pub(crate) fn set_version_attrs(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
        attrs: &VersionAttrs,
    ) {
        let k = attrs_key(bucket, key, version_id);
        if attrs.is_empty() {
            self.kv.delete(Table::VersionAttrs, &k);
        } else {
            let doc = serde_json::to_vec(attrs).unwrap_or_default();
            self.kv.put(Table::VersionAttrs, &k, &doc);
        }
    }

    /// Forgets the attributes of a version that goes.
    pub(crate) fn remove_version_attrs(&mut self, bucket: &str, key: &str, version_id: &str) {
        self.kv
            .delete(Table::VersionAttrs, &attrs_key(bucket, key, version_id));
    }

    /// The attributes a multipart upload will give its object.
    pub fn upload_attrs_of(&self, upload_id: &str) -> VersionAttrs {
        self.upload_attrs
            .get(upload_id)
            .and_then(|d| VersionAttrs::from_doc(d).ok())
            .unwrap_or_default()
    }
}

impl State {
    /// Applies the commands that carry attributes or preconditions.
    pub(crate) fn apply_attrs(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        match cmd {
            StoreCommand::PutObjectWith {
                tenant,
                bucket,
                key,
                version,
                attrs,
                condition,
            } => {
                let mut attrs = VersionAttrs::from_doc(attrs)?;
                attrs.validate()?;
                self.store.bucket_of(tenant, bucket)?;
                self.store
                    .lock_new_version(bucket, &mut attrs, version.created_ms)?;
                if let Some(c) = condition {
                    c.check(self.store.latest(bucket, key).as_ref())?;
                }
                let r = self.apply_store(&StoreCommand::PutObject {
                    tenant: tenant.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version: version.clone(),
                })?;
                if let StoreResult::Id(id) = &r {
                    self.store.set_version_attrs(bucket, key, id, &attrs);
                }
                Ok(r)
            }
            StoreCommand::SetObjectTags {
                tenant,
                bucket,
                key,
                version_id,
                tags,
            } => {
                validate_tags(tags)?;
                let st = &mut self.store;
                st.bucket_of(tenant, bucket)?;
                let v = st.version(bucket, key, version_id.as_deref())?;
                if v.is_delete_marker() {
                    return Err(ApplyError::invalid(format!(
                        "{bucket}/{key} version {:?} is a delete marker, which has no tags (MethodNotAllowed)",
                        v.version_id
                    )));
                }
                let mut attrs = st.version_attrs(bucket, key, &v.version_id);
                attrs.tags = tags.clone();
                st.set_version_attrs(bucket, key, &v.version_id, &attrs);
                Ok(StoreResult::Id(v.version_id))
            }
            StoreCommand::SetObjectAcl {
                tenant,
                bucket,
                key,
                version_id,
                acl,
            } => {
                check_acl_doc(acl.as_deref())?;
                let st = &mut self.store;
                st.bucket_of(tenant, bucket)?;
                let v = st.version(bucket, key, version_id.as_deref())?;
                if v.is_delete_marker() {
                    return Err(ApplyError::invalid(format!(
                        "{bucket}/{key} version {:?} is a delete marker, which has no ACL (MethodNotAllowed)",
                        v.version_id
                    )));
                }
                let mut attrs = st.version_attrs(bucket, key, &v.version_id);
                attrs.acl = acl.clone();
                st.set_version_attrs(bucket, key, &v.version_id, &attrs);
                Ok(StoreResult::Id(v.version_id))
            }
            StoreCommand::CreateUploadWith { upload, attrs } => {
                let doc = VersionAttrs::from_doc(attrs)?;
                if !doc.part_sizes.is_empty()
                    || doc.upload_id.is_some()
                    || !doc.part_checksums.is_empty()
                {
                    return Err(ApplyError::invalid(
                        "an upload's attributes hold no part sizes, part checksums or upload id",
                    ));
                }
                doc.validate()?;
                if (doc.retention.is_some() || doc.legal_hold.is_some())
                    && self.store.lock_config(&upload.bucket).is_none()
                {
                    return Err(ApplyError::invalid(format!(
                        "{} bucket {:?} does not have object lock enabled",
                        crate::object_lock::INVALID_REQUEST,
                        upload.bucket
                    )));
                }
                let r = self.apply_store(&StoreCommand::CreateUpload {
                    upload: upload.clone(),
                })?;
                if let StoreResult::Id(id) = &r {
                    if !doc.is_empty() {
                        self.store.upload_attrs.insert(id.clone(), doc.to_doc());
                    }
                }
                Ok(r)
            }
            StoreCommand::CompleteUploadWith {
                tenant,
                upload,
                parts,
                now_ms,
                condition,
            } => {
                let st = &self.store;
                let u = st
                    .uploads
                    .get(upload)
                    .filter(|u| u.tenant == *tenant)
                    .ok_or_else(|| {
                        ApplyError::not_found(format!(
                            "multipart upload {upload:?} does not exist (NoSuchUpload)"
                        ))
                    })?;
                let (bucket, key) = (u.bucket.clone(), u.key.clone());
                let part_sizes: Vec<u64> = parts
                    .iter()
                    .map(|(n, _)| u.parts.get(n).map_or(0, |p| p.size))
                    .collect();
                if let Some(c) = condition {
                    c.check(st.latest(&bucket, &key).as_ref())?;
                }
                let mut attrs = st.upload_attrs_of(upload);
                attrs.part_sizes = part_sizes;
                attrs.upload_id = Some(upload.clone());
                // The upload's asked algorithm and its parts' checksums are
                // not the version's ([`StoreCommand::CompleteUploadChecked`]
                // gives it its own).
                attrs.checksum = None;
                attrs.part_checksums.clear();
                st.lock_new_version(&bucket, &mut attrs, *now_ms)?;
                let r = self.apply_store(&StoreCommand::CompleteUpload {
                    tenant: tenant.clone(),
                    upload: upload.clone(),
                    parts: parts.clone(),
                    now_ms: *now_ms,
                })?;
                if let StoreResult::Id(id) = &r {
                    self.store.set_version_attrs(&bucket, &key, id, &attrs);
                }
                Ok(r)
            }
            StoreCommand::DeleteObjectWith {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
                condition,
            } => {
                let st = &self.store;
                st.bucket_of(tenant, bucket)?;
                if let Some(c) = condition {
                    let target = match version_id {
                        None => st.latest(bucket, key),
                        Some(id) => st
                            .versions(bucket, key)
                            .into_iter()
                            .find(|v| v.version_id == *id),
                    };
                    c.check_delete(target.as_ref())?;
                    // A conditional delete of a key with nothing to delete
                    // does nothing: no delete marker is added.
                    if target.is_none() {
                        return Ok(StoreResult::None);
                    }
                }
                self.apply_store(&StoreCommand::DeleteObject {
                    tenant: tenant.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version_id: version_id.clone(),
                    now_ms: *now_ms,
                })
            }
            StoreCommand::DeleteBucketAbortingUploads { tenant, name } => {
                let st = &mut self.store;
                st.bucket_of(tenant, name)?;
                if !st.bucket_is_empty(name) {
                    return Err(ApplyError::conflict(format!(
                        "bucket {name:?} is not empty (delete every object version first)"
                    )));
                }
                let uploads: Vec<String> = st
                    .uploads
                    .values()
                    .filter(|u| u.bucket == *name)
                    .map(|u| u.id.clone())
                    .collect();
                for id in uploads {
                    st.remove_upload(&id);
                }
                self.apply_store(&StoreCommand::DeleteBucket {
                    tenant: tenant.clone(),
                    name: name.clone(),
                })
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }
}

#[cfg(test)]
#[path = "objects_attrs_tests.rs"]
mod tests;
