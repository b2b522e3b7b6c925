//! The [`Backend`] conformance suite.
//!
//! Each check takes a fresh backend and panics (with a message naming the
//! rule) when the backend breaks the contract written on [`Backend`].

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::backend::{
    Backend, BackendError, ByteRange, ByteStream, MetadataDirective, PutMeta, Versioning,
    EMPTY_MD5, MIN_PART_SIZE, NULL_VERSION,
};

mod acls;
mod attrs;
mod buckets;
mod checksums;
mod customer;
mod delete_conditions;
mod listing;
mod multipart;
mod object_lock;
mod objects;
mod versioning;

pub use acls::object_acls;
pub use attrs::{conditional_writes, stored_headers_and_tags, tagging, uploads_end};
pub use buckets::{bucket_access, bucket_configs, buckets, tenant_isolation};
pub use checksums::{checksums_under_customer_keys, stored_checksums};
pub use customer::customer_keys;
pub use delete_conditions::delete_conditions;
pub use listing::{list_ordering, list_versions_paging};
pub use multipart::{multipart, multipart_errors};
pub use object_lock::{object_lock_buckets, object_lock_legal_hold, object_lock_retention};
pub use objects::{copy, failed_body, objects, ranges};
pub use versioning::{suspended_versioning, versioning};

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// A stream of `data` in chunks of `chunk` bytes.
pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A stream that yields some bytes, then an error.
pub fn failing(data: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::other("client went away")),
    ];
    Box::pin(futures::stream::iter(items))
}

/// Reads a whole stream (tests only).
pub async fn read_all(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("body stream failed"));
    }
    out
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn meta(ct: &str, pairs: &[(&str, &str)]) -> PutMeta {
    PutMeta {
        content_type: Some(ct.to_owned()),
        user_metadata: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PutMeta::default()
    }
}

async fn put<Bk: Backend>(
    b: &Bk,
    tenant: &str,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> crate::ObjectInfo {
    b.put_object(
        tenant,
        bucket,
        key,
        PutMeta::default(),
        chunked(data, 7),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e}"))
}

async fn get<Bk: Backend>(
    b: &Bk,
    tenant: &str,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Vec<u8> {
    let (_, s) = b
        .get_object(tenant, bucket, key, version, None)
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}@{version:?}: {e}"));
    read_all(s).await
}

/// Runs every check, each on a fresh backend from `make`.
pub async fn backend_conformance<Bk: Backend>(make: impl Fn() -> Bk) {
    buckets(&make()).await;
    objects(&make()).await;
    ranges(&make()).await;
    versioning(&make()).await;
    suspended_versioning(&make()).await;
    list_ordering(&make()).await;
    list_versions_paging(&make()).await;
    multipart(&make()).await;
    multipart_errors(&make()).await;
    copy(&make()).await;
    failed_body(&make()).await;
    tenant_isolation(&make()).await;
    bucket_configs(&make()).await;
    bucket_access(&make()).await;
    stored_headers_and_tags(&make()).await;
    tagging(&make()).await;
    conditional_writes(&make()).await;
    uploads_end(&make()).await;
    stored_checksums(&make()).await;
    checksums_under_customer_keys(&make()).await;
    delete_conditions(&make()).await;
    customer_keys(&make()).await;
    object_acls(&make()).await;
    object_lock_buckets(&make()).await;
    object_lock_retention(&make()).await;
    object_lock_legal_hold(&make()).await;
}

fn isolated<T: std::fmt::Debug>(r: Result<T, BackendError>, what: &str) {
    match r {
        Err(BackendError::NoSuchBucket | BackendError::AccessDenied) => {}
        other => {
            panic!("tenant isolation: {what} gave {other:?}, want NoSuchBucket or AccessDenied")
        }
    }
}
