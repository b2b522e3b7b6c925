//! UploadPartCopy: a part of a multipart upload copied server-side from an
//! object of the same tenant (latest version or `versionId`), whole or a
//! `x-amz-copy-source-range`, under the `x-amz-copy-source-if-*`
//! conditions (any failed one is 412, as for CopyObject).
//!
//! The source is pinned first (its version and size are read once; the
//! conditions and the range are checked against that version), then its
//! bytes are streamed from the backend's read straight into the part's
//! write: nothing is buffered whole, whatever the part's size.

use s3s::dto::{CopyPartResult, UploadPartCopyInput, UploadPartCopyOutput};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::conditions::{check_copy_source, copy_source};
use super::convert::{etag, timestamp, version_header};
use super::errors::to_s3_error;
use super::multipart::part_number;
use super::Gateway;
use crate::backend::{Backend, BackendError, ByteRange, KeyStore};
use crate::sse;

/// The largest part (and so the largest range a part copies): 5 GiB.
pub const MAX_COPY_PART: u64 = 5 << 30;

/// Parses `x-amz-copy-source-range`: `bytes=first-last`, both given,
/// `first <= last` (S3 accepts no other form here).
pub(crate) fn copy_range(v: &str) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=first-last, not {v:?}"
        )
    };
    let (a, b) = v
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Err(bad());
    }
    let (first, last) = (
        a.parse::<u64>().map_err(|_| bad())?,
        b.parse::<u64>().map_err(|_| bad())?,
    );
    if first > last {
        return Err(bad());
    }
    Ok((first, last))
}

pub(super) async fn upload_part_copy<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let src_sent = sse::customer_key(sse::copy_source_customer_of!(input))?;
    let dst_sent = sse::customer_key(sse::customer_of!(input))?;
    let n = part_number(input.part_number)?;
    let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
    let range = input
        .copy_source_range
        .as_deref()
        .map(copy_range)
        .transpose()?;
    let info = gw
        .backend
        .head_object(&tenant, src_bucket, src_key, src_version)
        .await
        .map_err(to_s3_error)?;
    sse::check_read(info.customer_seal.as_ref(), src_sent.as_ref())?;
    check_copy_source(
        &info,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
    )?;
    let len = match range {
        Some((first, last)) => {
            if last >= info.size {
                return Err(to_s3_error(BackendError::InvalidRange));
            }
            last - first + 1
        }
        None => info.size,
    };
    if len > MAX_COPY_PART {
        return Err(s3_error!(
            InvalidRequest,
            "a part is at most {MAX_COPY_PART} bytes; the copy source range has {len}"
        ));
    }
    let body = match range {
        // An empty source has no byte to range over: an empty part.
        None if info.size == 0 => stream_of_nothing(),
        r => {
            let r = r.map(|(first, last)| ByteRange::FromTo {
                first,
                last: Some(last),
            });
            gw.backend
                .get_object_sealed(
                    &tenant,
                    src_bucket,
                    src_key,
                    Some(&info.version_id),
                    r,
                    src_sent.as_ref().map(|k| &k.key),
                )
                .await
                .map_err(to_s3_error)?
                .1
        }
    };
    // An upload that asked for a checksum gets the copied part's computed.
    let asked = gw
        .backend
        .upload_checksum(&tenant, &input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(to_s3_error)?;
    let (body, sums) = super::checksums::check_part(
        body,
        &super::checksums::Sent::default(),
        &http::HeaderMap::new(),
        None,
        asked.as_ref().map(|a| a.algorithm.as_str()),
    )?;
    let part = gw
        .backend
        .upload_part_sealed(
            &tenant,
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            body,
            Some(len),
            dst_sent.as_ref().map(|k| &k.key),
            sums.slot(),
        )
        .await
        .map_err(|e| match e {
            BackendError::CustomerKeyMismatch => sse::part_key_mismatch(),
            e => to_s3_error(e),
        })?;
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(dst_sent.as_ref());
    Ok(S3Response::new(UploadPartCopyOutput {
        server_side_encryption: dst_sent.is_none().then(sse::at_rest).flatten(),
        sse_customer_algorithm,
        sse_customer_key_md5,
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(timestamp(part.last_modified_ms)),
            ..Default::default()
        }),
        copy_source_version_id: src_version
            .as_ref()
            .and_then(|_| version_header(&info.version_id)),
        ..Default::default()
    }))
}

fn stream_of_nothing() -> crate::backend::ByteStream {
    Box::pin(futures::stream::empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_closed_byte_ranges_are_accepted() {
        assert_eq!(copy_range("bytes=0-9").unwrap(), (0, 9));
        assert_eq!(copy_range("bytes=5-5").unwrap(), (5, 5));
        for bad in [
            "bytes=-1",
            "bytes=0-",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=9-0",
            "0-9",
            "bytes=0-1,3-4",
            "bytes=+1-2",
            "bytes=99999999999999999999-1",
        ] {
            assert!(copy_range(bad).is_err(), "{bad}");
        }
    }
}
