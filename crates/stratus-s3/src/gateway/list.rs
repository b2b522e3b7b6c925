//! ListObjects, ListObjectsV2 and ListObjectVersions: the backend's grouped
//! listings (`crate::listing`) paged into S3 answers.

use s3s::dto::{
    CommonPrefix, DeleteMarkerEntry, ListObjectVersionsInput, ListObjectVersionsOutput,
    ListObjectsInput, ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
    ObjectStorageClass, ObjectVersion, ObjectVersionStorageClass,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{enc, etag, is_url_encoding, max_keys, owner, timestamp, MAX_KEYS};
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, KeyStore, ObjectInfo};
use crate::listing::{self, Item};

/// Opaque continuation token of ListObjectsV2: the hex of the marker.
pub(super) fn encode_token(marker: &str) -> String {
    hex::encode(marker.as_bytes())
}

pub(super) fn decode_token(token: &str) -> S3Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

pub(super) fn object_entry(info: ObjectInfo, url: bool, fetch_owner: Option<&str>) -> Object {
    Object {
        e_tag: Some(etag(&info.etag)),
        key: Some(if url {
            listing::url_encode(&info.key)
        } else {
            info.key
        }),
        last_modified: Some(timestamp(info.last_modified_ms)),
        owner: fetch_owner.map(owner),
        size: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

pub(super) fn split_items(
    items: Vec<Item<ObjectInfo>>,
    url: bool,
    fetch_owner: Option<&str>,
) -> (Vec<Object>, Vec<CommonPrefix>, Option<String>) {
    let last = items.last().map(|i| match i {
        Item::Entry(o) => o.key.clone(),
        Item::Prefix(p) => p.clone(),
    });
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in items {
        match item {
            Item::Entry(o) => objects.push(object_entry(o, url, fetch_owner)),
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(if url { listing::url_encode(&p) } else { p }),
            }),
        }
    }
    (objects, prefixes, last)
}

pub(super) async fn list_objects<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let asked = crate::policy::Request {
        action: crate::policy::Action::ListBucket,
        key: None,
        prefix: req.input.prefix.as_deref(),
    };
    let tenant = super::readers::read_as(gw, &req, &req.input.bucket, asked).await?;
    let input = req.input;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let page = listing::list_objects_grouped(
        &*gw.backend,
        &tenant,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref().filter(|d| !d.is_empty()),
        input.marker.as_deref().filter(|m| !m.is_empty()),
        max,
    )
    .await
    .map_err(to_s3_error)?;
    let url = is_url_encoding(&input.encoding_type);
    let (contents, prefixes, last) = split_items(page.items, url, Some(&tenant));
    // A page of at most zero keys is not truncated (S3 says so too).
    let truncated = page.truncated && max > 0;
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // v1 echoes Prefix and Marker even when empty; an empty delimiter
        // is not echoed. v1's Prefix is never URL-encoded (AWS encodes only
        // keys, common prefixes, Delimiter, Marker and NextMarker there, and
        // clients decode only those).
        prefix: Some(input.prefix.unwrap_or_default()),
        marker: Some(enc(url, input.marker).unwrap_or_default()),
        max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
        is_truncated: Some(truncated),
        next_marker: enc(url, if truncated { last } else { None }),
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: enc(url, input.delimiter.filter(|d| !d.is_empty())),
        encoding_type: input.encoding_type,
        request_charged: None,
    }))
}

pub(super) async fn list_objects_v2<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let asked = crate::policy::Request {
        action: crate::policy::Action::ListBucket,
        key: None,
        prefix: req.input.prefix.as_deref(),
    };
    let tenant = super::readers::read_as(gw, &req, &req.input.bucket, asked).await?;
    let input = req.input;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let marker = match &input.continuation_token {
        Some(t) => Some(decode_token(t)?),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let page = listing::list_objects_grouped(
        &*gw.backend,
        &tenant,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref().filter(|d| !d.is_empty()),
        marker.as_deref(),
        max,
    )
    .await
    .map_err(to_s3_error)?;
    // As in v1: a page of at most zero keys is not truncated.
    let truncated = page.truncated && max > 0;
    let url = is_url_encoding(&input.encoding_type);
    let fetch_owner = input
        .fetch_owner
        .unwrap_or(false)
        .then_some(tenant.as_str());
    let count = page.items.len();
    let (contents, prefixes, last) = split_items(page.items, url, fetch_owner);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: enc(url, input.prefix),
        max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
        key_count: Some(i32::try_from(count).unwrap_or(MAX_KEYS)),
        continuation_token: input.continuation_token,
        is_truncated: Some(truncated),
        next_continuation_token: if truncated {
            last.as_deref().map(encode_token)
        } else {
            None
        },
        contents: Some(contents),
        common_prefixes: Some(prefixes),
        delimiter: enc(url, input.delimiter.filter(|d| !d.is_empty())),
        encoding_type: input.encoding_type,
        start_after: enc(url, input.start_after),
        request_charged: None,
    }))
}

pub(super) async fn list_object_versions<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let asked = crate::policy::Request {
        action: crate::policy::Action::ListBucketVersions,
        key: None,
        prefix: req.input.prefix.as_deref(),
    };
    let tenant = super::readers::read_as(gw, &req, &req.input.bucket, asked).await?;
    let input = req.input;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_marker = input
        .version_id_marker
        .clone()
        .filter(|m| !m.is_empty() && key_marker.is_some());
    let page = listing::list_versions_grouped(
        &*gw.backend,
        &tenant,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        key_marker.as_deref(),
        version_marker.as_deref(),
        max,
    )
    .await
    .map_err(to_s3_error)?;
    let url = is_url_encoding(&input.encoding_type);
    let (next_key, next_version) = match page.items.last() {
        Some(Item::Entry(e)) if page.truncated => {
            (Some(e.info.key.clone()), Some(e.info.version_id.clone()))
        }
        Some(Item::Prefix(p)) if page.truncated => (Some(p.clone()), None),
        _ => (None, None),
    };
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut prefixes = Vec::new();
    for item in page.items {
        match item {
            Item::Entry(e) => {
                let key = if url {
                    listing::url_encode(&e.info.key)
                } else {
                    e.info.key
                };
                if e.info.is_delete_marker {
                    markers.push(DeleteMarkerEntry {
                        is_latest: Some(e.is_latest),
                        key: Some(key),
                        last_modified: Some(timestamp(e.info.last_modified_ms)),
                        owner: Some(owner(&tenant)),
                        version_id: Some(e.info.version_id),
                    });
                } else {
                    versions.push(ObjectVersion {
                        e_tag: Some(etag(&e.info.etag)),
                        is_latest: Some(e.is_latest),
                        key: Some(key),
                        last_modified: Some(timestamp(e.info.last_modified_ms)),
                        owner: Some(owner(&tenant)),
                        size: Some(i64::try_from(e.info.size).unwrap_or(i64::MAX)),
                        storage_class: Some(ObjectVersionStorageClass::from_static(
                            ObjectVersionStorageClass::STANDARD,
                        )),
                        version_id: Some(e.info.version_id),
                        ..Default::default()
                    });
                }
            }
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(if url { listing::url_encode(&p) } else { p }),
            }),
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        common_prefixes: Some(prefixes),
        delete_markers: Some(markers),
        delimiter: enc(url, input.delimiter),
        encoding_type: input.encoding_type,
        is_truncated: Some(page.truncated),
        key_marker: enc(url, input.key_marker),
        max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
        name: Some(input.bucket),
        next_key_marker: enc(url, next_key),
        next_version_id_marker: next_version,
        prefix: enc(url, input.prefix),
        version_id_marker: input.version_id_marker,
        versions: Some(versions),
        request_charged: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = encode_token("a/é");
        assert_eq!(decode_token(&t).ok().as_deref(), Some("a/é"));
        assert!(decode_token("zz").is_err());
    }
}
