//! What a version carries beyond its body and metadata, at the S3 door:
//! the stored headers (`Cache-Control`, `Content-Disposition`,
//! `Content-Encoding`, `Content-Language`, `Expires`), tags (the
//! `x-amz-tagging` header and the tagging documents), write preconditions
//! and the delete-marker answers.

use std::collections::BTreeMap;

use s3s::dto::{self, ETagCondition, Tag, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Error, S3Result};

use crate::backend::{check_tags, BackendError, ObjectInfo, WriteCondition};

/// The stored headers of a write, from its input `$i` (put, copy and
/// multipart inputs share the field names).
macro_rules! headers_of {
    ($i:expr) => {
        $crate::gateway::attrs::stored_headers([
            ("cache-control", $i.cache_control.clone()),
            ("content-disposition", $i.content_disposition.clone()),
            ("content-encoding", $i.content_encoding.clone()),
            ("content-language", $i.content_language.clone()),
            (
                "expires",
                $i.expires
                    .as_ref()
                    .and_then($crate::gateway::attrs::http_date),
            ),
        ])
    };
}
pub(super) use headers_of;

/// Fills the stored-header fields of a GET or HEAD output `$o` from `$info`.
macro_rules! headers_out {
    ($o:expr, $info:expr) => {{
        let h = &$info.headers;
        $o.cache_control = h.get("cache-control").cloned();
        $o.content_disposition = h.get("content-disposition").cloned();
        $o.content_encoding = h.get("content-encoding").cloned();
        $o.content_language = h.get("content-language").cloned();
        $o.expires = h
            .get("expires")
            .and_then(|e| s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, e).ok());
    }};
}
pub(super) use headers_out;

/// The stored headers among `pairs`; `aws-chunked` is a transfer detail,
/// not the object's encoding, and is left out of `Content-Encoding` (as S3
/// does: `gzip, aws-chunked` is stored `gzip`).
pub(crate) fn stored_headers<const N: usize>(
    pairs: [(&str, Option<String>); N],
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let v = if k == "content-encoding" {
                let v = v?;
                let kept: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
                    .collect();
                Some(kept.join(", ")).filter(|s| !s.is_empty())
            } else {
                v
            };
            v.map(|v| (k.to_owned(), v))
        })
        .collect()
}

pub(crate) fn http_date(t: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn invalid_tag(why: impl Into<String>) -> S3Error {
    S3Error::with_message(s3s::S3ErrorCode::InvalidTag, why.into())
}

fn insert_tag(tags: &mut BTreeMap<String, String>, k: String, v: String) -> S3Result<()> {
    if tags.contains_key(&k) {
        return Err(invalid_tag(format!(
            "Cannot provide multiple Tags with the same key: {k:?}"
        )));
    }
    tags.insert(k, v);
    Ok(())
}

/// The tags of an `x-amz-tagging` header (a URL-encoded query string),
/// checked against S3's rules.
pub(super) fn tags_of_header(h: Option<&str>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    if let Some(h) = h {
        for (k, v) in form_urlencoded::parse(h.as_bytes()) {
            insert_tag(&mut tags, k.into_owned(), v.into_owned())?;
        }
    }
    check_tags(&tags).map_err(super::errors::to_s3_error)?;
    Ok(tags)
}

/// The tags of a `Tagging` document, checked against S3's rules.
pub(super) fn tags_of_set(set: Vec<Tag>) -> S3Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    for t in set {
        let k = t.key.ok_or_else(|| invalid_tag("a tag has no Key"))?;
        insert_tag(&mut tags, k, t.value.unwrap_or_default())?;
    }
    check_tags(&tags).map_err(super::errors::to_s3_error)?;
    Ok(tags)
}

/// The tag set of a document.
pub(super) fn tag_set(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// `x-amz-tagging-count`: the number of tags, when there are any.
pub(super) fn tag_count(info: &ObjectInfo) -> Option<i32> {
    (!info.tags.is_empty()).then(|| i32::try_from(info.tags.len()).unwrap_or(i32::MAX))
}

/// The precondition of a write from `If-None-Match` and `If-Match`
/// (`If-None-Match: etag` as Ceph RGW and ceph/s3-tests define it: refused
/// while the current object has that etag).
pub(super) fn write_condition(
    if_none_match: Option<&ETagCondition>,
    if_match: Option<&ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    match (if_none_match, if_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-None-Match and If-Match together on a write"
        )),
        (Some(ETagCondition::Any), None) => Ok(Some(WriteCondition::IfAbsent)),
        (Some(ETagCondition::ETag(t)), None) => {
            Ok(Some(WriteCondition::IfNoneMatch(t.value().to_owned())))
        }
        (None, Some(ETagCondition::Any)) => Ok(Some(WriteCondition::IfMatch("*".to_owned()))),
        (None, Some(ETagCondition::ETag(t))) => {
            Ok(Some(WriteCondition::IfMatch(t.value().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The answer to a GET or HEAD whose key's current version is a delete
/// marker (404 `NoSuchKey`) or that names a delete marker's version (405
/// `MethodNotAllowed`): with `x-amz-delete-marker: true` and the marker's
/// `x-amz-version-id`, as S3 answers.
pub(super) fn delete_marker_error(e: BackendError, marker_version: Option<&str>) -> S3Error {
    let mut err = super::errors::to_s3_error(e);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Some(v) = marker_version.filter(|v| *v != crate::backend::NULL_VERSION) {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            headers.insert("x-amz-version-id", v);
        }
    }
    err.set_headers(headers);
    err
}

/// The tagging directive of a copy: `true` for `REPLACE`.
pub(super) fn replaces_tags(d: Option<&dto::TaggingDirective>) -> bool {
    d.is_some_and(|d| d.as_str() == dto::TaggingDirective::REPLACE)
}
