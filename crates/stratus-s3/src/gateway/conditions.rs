//! HTTP preconditions: `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` (and their `x-amz-copy-source-if-*` forms).

use s3s::dto::{CopySource, ETagCondition, Timestamp};
use s3s::{s3_error, S3Result};

use super::convert::timestamp_secs;
use crate::backend::ObjectInfo;

pub(super) fn etag_matches(cond: &ETagCondition, info: &ObjectInfo) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == info.etag,
    }
}

/// The outcome of HTTP preconditions.
pub(super) enum Precondition {
    Pass,
    NotModified,
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` as RFC 9110 §13.2.2 orders them (dates at second
/// granularity, as HTTP dates are).
pub(super) fn evaluate(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> Precondition {
    let modified = i64::try_from(info.last_modified_ms / 1000).unwrap_or(i64::MAX);
    if let Some(c) = if_match {
        if !etag_matches(c, info) {
            return Precondition::Failed;
        }
    } else if let Some(t) = if_unmodified_since {
        if modified > timestamp_secs(t) {
            return Precondition::Failed;
        }
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, info) {
            return Precondition::NotModified;
        }
    } else if let Some(t) = if_modified_since {
        if modified <= timestamp_secs(t) {
            return Precondition::NotModified;
        }
    }
    Precondition::Pass
}

pub(super) fn precondition_error(p: Precondition, info: &ObjectInfo) -> S3Result<()> {
    match p {
        Precondition::Pass => Ok(()),
        Precondition::Failed => Err(s3_error!(PreconditionFailed)),
        Precondition::NotModified => {
            let mut e = s3_error!(NotModified);
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
                headers.insert(http::header::ETAG, v);
            }
            e.set_headers(headers);
            Err(e)
        }
    }
}

/// The bucket, key and version an `x-amz-copy-source` names (CopyObject and
/// UploadPartCopy); access points and outposts are not implemented.
pub(super) fn copy_source(src: &CopySource) -> S3Result<(&str, &str, Option<&str>)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((bucket, key, version_id.as_deref())),
        _ => Err(s3_error!(
            NotImplemented,
            "copy from access points or outposts"
        )),
    }
}

/// The `x-amz-copy-source-if-*` conditions against the source: for copies
/// every failed condition, `NotModified` included, is 412.
pub(super) fn check_copy_source(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    match evaluate(
        info,
        if_match,
        if_unmodified_since,
        if_none_match,
        if_modified_since,
    ) {
        Precondition::Pass => Ok(()),
        Precondition::Failed | Precondition::NotModified => Err(s3_error!(PreconditionFailed)),
    }
}
