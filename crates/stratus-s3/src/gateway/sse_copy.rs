//! CopyObject when either side is under a customer key (SSE-C).
//!
//! A copy is metadata-only otherwise (the new version shares the source's
//! chunks). Under a customer key it cannot be: the source's chunks open only
//! with the source's key, and the copy is sealed under the destination's
//! key (or the bucket's) with a salt of its own. So the source is read with
//! `x-amz-copy-source-server-side-encryption-customer-*` and streamed into a
//! put with `x-amz-server-side-encryption-customer-*`, nothing buffered.

use s3s::dto::{CopyObjectOutput, CopyObjectResult};
use s3s::{S3Response, S3Result};

use super::convert::{etag, timestamp, version_header};
use super::errors::to_s3_error;
use super::objects::copied_meta;
use super::Gateway;
use crate::backend::{Backend, KeyStore, MetadataDirective};
use crate::sse::{self, SentKey};

/// What is copied where.
pub(super) struct Copy<'a> {
    /// The tenant.
    pub(super) tenant: &'a str,
    /// Source bucket.
    pub(super) src_bucket: &'a str,
    /// Source key.
    pub(super) src_key: &'a str,
    /// Source version (the latest when `None`).
    pub(super) src_version: Option<&'a str>,
    /// Destination bucket.
    pub(super) dst_bucket: &'a str,
    /// Destination key.
    pub(super) dst_key: &'a str,
}

/// Copies `c` reading with `src_key` and writing with `dst_key`, giving the
/// destination `meta`.
pub(super) async fn copy_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    c: Copy<'_>,
    meta: MetadataDirective,
    src_key: Option<SentKey>,
    dst_key: Option<SentKey>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let b = &gw.backend;
    let src = b
        .head_object(c.tenant, c.src_bucket, c.src_key, c.src_version)
        .await
        .map_err(to_s3_error)?;
    sse::check_read(src.customer_seal.as_ref(), src_key.as_ref())?;
    let mut m = match meta {
        MetadataDirective::Copy => copied_meta(&src),
        MetadataDirective::Replace(m) => m,
    };
    m.customer_key = dst_key.as_ref().map(|k| k.key.clone());
    let (_, body) = b
        .get_object_sealed(
            c.tenant,
            c.src_bucket,
            c.src_key,
            Some(&src.version_id),
            None,
            src_key.as_ref().map(|k| &k.key),
        )
        .await
        .map_err(to_s3_error)?;
    let info = b
        .put_object(c.tenant, c.dst_bucket, c.dst_key, m, body, Some(src.size))
        .await
        .map_err(to_s3_error)?;
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(dst_key.as_ref());
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            ..Default::default()
        }),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        sse_customer_algorithm,
        sse_customer_key_md5,
        ..Default::default()
    }))
}
