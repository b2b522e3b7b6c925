//! Stored additional checksums (`x-amz-checksum-{crc32,crc32c,crc64nvme,
//! sha1,sha256}`): the [`StoredChecksum`] of a version, the checksums of a
//! multipart upload's parts, and the commands that record them
//! ([`StoreCommand::PutPartWith`], [`StoreCommand::CompleteUploadChecked`]).
//!
//! The values are computed and verified by the S3 gateway while the bytes
//! stream (the state machine never sees the bytes); they live in the
//! [`VersionAttrs`] JSON documents, so no bincode layout changes. A
//! multipart upload's document holds the algorithm asked at its creation
//! and each part's checksum by part number; completion gives the version
//! the object checksum (composite `-N` or full-object, computed by the
//! gateway from the parts it completes) and the parts' checksums by
//! position. `apply` only checks bounds and copies: it stays deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::attrs::VersionAttrs;
use crate::objects::{StoreCommand, StoreResult};
use crate::{ApplyError, State};

/// Longest checksum value kept, in characters (a base64 SHA-256 with a
/// `-10000` suffix is 50).
pub const MAX_CHECKSUM_CHARS: usize = 64;

/// The algorithms S3 names.
const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// The additional checksum of a version (or, with an empty value, the
/// algorithm a multipart upload was created with).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredChecksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: String,
    /// The base64 value (`...-N` for a composite checksum); empty for an
    /// upload's asked algorithm.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// S3's `COMPOSITE` type (a checksum of the parts' checksums); `false`
    /// is `FULL_OBJECT`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub composite: bool,
}

impl StoredChecksum {
    /// Checks the algorithm name and the value's length.
    pub fn validate(&self) -> Result<(), ApplyError> {
        if !ALGORITHMS.contains(&self.algorithm.as_str()) {
            return Err(ApplyError::invalid(format!(
                "{:?} is not a checksum algorithm",
                self.algorithm
            )));
        }
        check_value(&self.value)
    }
}

fn check_value(v: &str) -> Result<(), ApplyError> {
    if v.len() > MAX_CHECKSUM_CHARS {
        return Err(ApplyError::TooLarge(format!(
            "a checksum is at most {MAX_CHECKSUM_CHARS} characters, not {}",
            v.len()
        )));
    }
    Ok(())
}

/// The checksum bounds of a [`VersionAttrs`] (part numbers 1..=10000).
pub(super) fn validate_checksums(a: &VersionAttrs) -> Result<(), ApplyError> {
    if let Some(c) = &a.checksum {
        c.validate()?;
    }
    if a.part_checksums.len() > 10_000 {
        return Err(ApplyError::TooLarge(
            "more than 10000 part checksums".into(),
        ));
    }
    for (n, v) in &a.part_checksums {
        if !(1..=10_000).contains(n) {
            return Err(ApplyError::invalid(format!("part number {n} out of range")));
        }
        check_value(v)?;
    }
    Ok(())
}

impl State {
    /// Applies the commands that record checksums.
    pub(crate) fn apply_checksums(
        &mut self,
        cmd: &StoreCommand,
    ) -> Result<StoreResult, ApplyError> {
        match cmd {
            StoreCommand::PutPartWith {
                tenant,
                upload,
                number,
                part,
                checksum,
            } => {
                if let Some(v) = checksum {
                    check_value(v)?;
                }
                let r = self.apply_store(&StoreCommand::PutPart {
                    tenant: tenant.clone(),
                    upload: upload.clone(),
                    number: *number,
                    part: part.clone(),
                })?;
                let st = &mut self.store;
                let mut doc = st.upload_attrs_of(upload);
                match checksum {
                    Some(v) => doc.part_checksums.insert(*number, v.clone()),
                    None => doc.part_checksums.remove(number),
                };
                if doc.is_empty() {
                    st.upload_attrs.remove(upload);
                } else {
                    st.upload_attrs.insert(upload.clone(), doc.to_doc());
                }
                Ok(r)
            }
            StoreCommand::CompleteUploadChecked {
                tenant,
                upload,
                parts,
                now_ms,
                condition,
                checksum,
            } => {
                let checksum: Option<StoredChecksum> = if checksum.is_empty() {
                    None
                } else {
                    let c: StoredChecksum = serde_json::from_str(checksum)
                        .map_err(|e| ApplyError::invalid(format!("unreadable checksum: {e}")))?;
                    c.validate()?;
                    Some(c)
                };
                let st = &self.store;
                let (bucket, key) = match st.uploads.get(upload).filter(|u| u.tenant == *tenant) {
                    Some(u) => (u.bucket.clone(), u.key.clone()),
                    None => {
                        return Err(ApplyError::not_found(format!(
                            "multipart upload {upload:?} does not exist (NoSuchUpload)"
                        )))
                    }
                };
                let doc = st.upload_attrs_of(upload);
                let by_position: BTreeMap<u32, String> = parts
                    .iter()
                    .zip(1u32..)
                    .filter_map(|((n, _), i)| doc.part_checksums.get(n).map(|v| (i, v.clone())))
                    .collect();
                let r = self.apply_attrs(&StoreCommand::CompleteUploadWith {
                    tenant: tenant.clone(),
                    upload: upload.clone(),
                    parts: parts.clone(),
                    now_ms: *now_ms,
                    condition: condition.clone(),
                })?;
                if let StoreResult::Id(id) = &r {
                    let st = &mut self.store;
                    let mut attrs = st.version_attrs(&bucket, &key, id);
                    attrs.checksum = checksum;
                    attrs.part_checksums = by_position;
                    st.set_version_attrs(&bucket, &key, id, &attrs);
                }
                Ok(r)
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }
}

#[cfg(test)]
#[path = "objects_checksums_tests.rs"]
mod tests;
