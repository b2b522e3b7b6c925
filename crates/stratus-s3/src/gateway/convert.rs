//! Small conversions between backend and s3s types.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use s3s::dto::{self, ETag, EncodingType, Owner, Timestamp};
use s3s::{s3_error, S3Result};

use crate::backend::{ByteRange, ObjectInfo, PutMeta, NULL_VERSION};
use crate::listing;

/// Default and maximum page size of listings (S3's 1000).
pub(super) const MAX_KEYS: i32 = 1000;

pub(super) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

pub(super) fn timestamp_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

pub(super) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

/// Version ids as headers: the null version is not announced.
pub(super) fn version_header(v: &str) -> Option<String> {
    (v != NULL_VERSION).then(|| v.to_owned())
}

pub(super) fn owner(tenant: &str) -> Owner {
    Owner {
        display_name: Some(tenant.to_owned()),
        id: Some(tenant.to_owned()),
    }
}

pub(super) fn put_meta(content_type: Option<String>, metadata: Option<dto::Metadata>) -> PutMeta {
    PutMeta {
        content_type,
        user_metadata: metadata
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default(),
        ..PutMeta::default()
    }
}

pub(super) fn metadata_out(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) fn content_type_out(info: &ObjectInfo) -> String {
    info.content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_owned())
}

pub(super) fn byte_range(r: &dto::Range) -> ByteRange {
    match *r {
        dto::Range::Int { first, last } => ByteRange::FromTo { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix { len: length },
    }
}

pub(super) fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n.min(MAX_KEYS)).unwrap_or(0)),
    }
}

pub(super) fn is_url_encoding(e: &Option<EncodingType>) -> bool {
    e.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL)
}

pub(super) fn enc(url: bool, s: Option<String>) -> Option<String> {
    if url {
        s.map(|s| listing::url_encode(&s))
    } else {
        s
    }
}

pub(super) fn content_length(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}
