//! Conversions between the replicated state's types and the
//! [`crate::backend`] ones for [`crate::store::StoreBackend`]: object
//! infos from versions and their attributes, write conditions, and the
//! mapping of store errors onto [`BackendError`]s.

use std::collections::BTreeMap;

use stratus_state::objects::{
    validate_key, ObjectVersion, VersionAttrs, WriteCondition as StateCondition,
    PRECONDITION_FAILED,
};
use stratus_store::{CustomerKeyError, CustomerSeal, StoreError};
use stratus_types::ErrorCode;

use crate::backend::{
    BackendError, BackendResult, ObjectInfo, PutMeta, VersionLock, WriteCondition,
};

/// Maps a store error; `not_found` is what `NotFound` means in context.
pub(crate) fn store_err(e: StoreError, not_found: BackendError) -> BackendError {
    if let StoreError::CustomerKey(k) = &e {
        return match k {
            CustomerKeyError::Required => BackendError::CustomerKeyRequired,
            CustomerKeyError::Mismatch => BackendError::CustomerKeyMismatch,
            CustomerKeyError::NotApplicable => BackendError::CustomerKeyNotApplicable,
        };
    }
    match e.code() {
        ErrorCode::NotFound => not_found,
        ErrorCode::Forbidden | ErrorCode::Unauthenticated => BackendError::AccessDenied,
        ErrorCode::BadRequest => BackendError::InvalidArgument(e.to_string()),
        ErrorCode::Conflict
        | ErrorCode::NoLeader
        | ErrorCode::Unavailable
        | ErrorCode::InsufficientStorage => BackendError::ServiceUnavailable(e.to_string()),
        ErrorCode::Internal => BackendError::Internal(e.to_string()),
        ErrorCode::TooLarge => BackendError::EntityTooLarge(e.to_string()),
        // S3 has no payment error; a write the tenant cannot pay for is
        // refused like one past its quota (403), the message says why.
        ErrorCode::QuotaExceeded | ErrorCode::InsufficientFunds => {
            BackendError::QuotaExceeded(e.to_string())
        }
    }
}

/// A version as listed (listings carry no headers or tags).
pub(crate) fn info(key: &str, v: &ObjectVersion) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        version_id: v.version_id.clone(),
        size: v.size,
        etag: v.etag.clone(),
        last_modified_ms: v.created_ms,
        content_type: v.content_type.clone(),
        user_metadata: v.user_meta.clone(),
        is_delete_marker: v.is_delete_marker(),
        headers: BTreeMap::new(),
        tags: BTreeMap::new(),
        part_sizes: Vec::new(),
        checksum: None,
        part_checksums: BTreeMap::new(),
        customer_seal: seal_of(v),
        acl: None,
        lock: VersionLock::default(),
    }
}

/// The customer seal of a version sealed under a client's key (SSE-C).
pub(crate) fn seal_of(v: &ObjectVersion) -> Option<CustomerSeal> {
    v.data.as_ref().and_then(|d| d.scope.customer_seal())
}

/// A version with its attributes.
pub(crate) fn full_info(key: &str, v: &ObjectVersion, attrs: VersionAttrs) -> ObjectInfo {
    ObjectInfo {
        acl: attrs.acl,
        headers: attrs.headers,
        tags: attrs.tags,
        part_sizes: attrs.part_sizes,
        checksum: attrs.checksum,
        part_checksums: attrs.part_checksums,
        lock: VersionLock {
            retention: attrs.retention,
            legal_hold: attrs.legal_hold,
        },
        ..info(key, v)
    }
}

pub(crate) fn state_condition(c: Option<WriteCondition>) -> Option<StateCondition> {
    c.map(|c| match c {
        WriteCondition::IfAbsent => StateCondition::IfAbsent,
        WriteCondition::IfMatch(e) => StateCondition::IfMatch(e),
        WriteCondition::IfNoneMatch(e) => StateCondition::IfNoneMatch(e),
    })
}

/// Whether the store refused a write for its precondition.
pub(crate) fn precondition_failed(e: &StoreError) -> bool {
    e.code() == ErrorCode::Conflict && e.to_string().starts_with(PRECONDITION_FAILED)
}

/// [`store_err`], with a failed precondition as such.
pub(crate) fn write_err(e: StoreError, not_found: BackendError) -> BackendError {
    if precondition_failed(&e) {
        BackendError::PreconditionFailed
    } else {
        store_err(e, not_found)
    }
}

pub(crate) fn check_key(key: &str) -> BackendResult<()> {
    validate_key(key).map_err(BackendError::InvalidArgument)
}

pub(crate) fn store_meta(meta: PutMeta) -> stratus_store::PutMeta {
    stratus_store::PutMeta {
        content_type: meta.content_type,
        user_meta: meta.user_metadata,
        attrs: VersionAttrs {
            headers: meta.headers,
            tags: meta.tags,
            acl: meta.acl,
            retention: meta.lock.retention,
            legal_hold: meta.lock.legal_hold,
            ..VersionAttrs::default()
        },
        condition: state_condition(meta.condition),
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
