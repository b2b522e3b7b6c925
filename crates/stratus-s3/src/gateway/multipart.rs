//! Multipart uploads: create, upload part, complete, abort, list parts and
//! uploads.

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput,
    MultipartUpload, Part, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::attrs::{headers_of, tags_of_header, write_condition};
use super::body::checked_body;
use super::convert::{
    content_length, enc, etag, is_url_encoding, max_keys, owner, put_meta, timestamp,
    version_header, MAX_KEYS,
};
use super::errors::{to_s3_error, write_error};
use super::Gateway;
use crate::backend::{Backend, BackendError, KeyStore, MAX_PART_NUMBER};
use crate::listing;
use crate::{sse, unsupported};

pub(super) fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part number must be between 1 and 10000"))
}

pub(super) async fn create_multipart_upload<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let actor =
        super::readers::bucket_actor(gw, &req, &req.input.bucket, writes(&req.input.key)).await?;
    let tenant = actor.tenant.clone();
    let input = req.input;
    sse::refuse_unsupported(&sse::asked_of!(input))?;
    let sent = sse::customer_key(sse::customer_of!(input))?;
    unsupported::refuse_extras(&unsupported::extras_of!(input))?;
    let acl = super::acl_ops::object_write_acl(
        gw,
        &actor,
        input.acl.as_ref().map(|a| a.as_str()),
        &crate::acl::grant_headers_of!(input, crate::acl::object_grant_write(&req.headers)),
    )?;
    let headers = headers_of!(input);
    let tags = tags_of_header(input.tagging.as_deref())?;
    let lock = super::object_lock::lock_of!(input)?;
    super::object_lock::check_lock_allowed(gw, &tenant, &input.bucket, &lock).await?;
    let mut meta = put_meta(input.content_type, input.metadata);
    meta.headers = headers;
    meta.tags = tags;
    meta.customer_key = sent.as_ref().map(|k| k.key.clone());
    meta.acl = acl;
    meta.lock = lock;
    let upload_id = gw
        .backend
        .create_multipart(&tenant, &input.bucket, &input.key, meta)
        .await
        .map_err(to_s3_error)?;
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(sent.as_ref());
    Ok(S3Response::new(CreateMultipartUploadOutput {
        server_side_encryption: sent.is_none().then(sse::at_rest).flatten(),
        sse_customer_algorithm,
        sse_customer_key_md5,
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        ..Default::default()
    }))
}

pub(super) async fn upload_part<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let tenant =
        super::readers::read_as(gw, &req, &req.input.bucket, writes(&req.input.key)).await?;
    let input = req.input;
    let sent = sse::customer_key(sse::customer_of!(input))?;
    let n = part_number(input.part_number)?;
    let sums = super::checksums::sent_of!(input);
    let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
    let (body, sums) =
        super::checksums::check(body, &sums, &req.headers, req.trailing_headers.as_ref())?;
    let part = gw
        .backend
        .upload_part_sealed(
            &tenant,
            &input.bucket,
            &input.key,
            &input.upload_id,
            n,
            body,
            content_length(input.content_length),
            sent.as_ref().map(|k| &k.key),
        )
        .await
        .map_err(|e| match e {
            BackendError::CustomerKeyMismatch => sse::part_key_mismatch(),
            e => sums.error_or(write_error(e, mismatch.as_ref())),
        })?;
    let sums = sums.verified();
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(sent.as_ref());
    Ok(S3Response::new(UploadPartOutput {
        server_side_encryption: sent.is_none().then(sse::at_rest).flatten(),
        sse_customer_algorithm,
        sse_customer_key_md5,
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        e_tag: Some(etag(&part.etag)),
        ..Default::default()
    }))
}

pub(super) async fn complete_multipart_upload<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let tenant =
        super::readers::read_as(gw, &req, &req.input.bucket, writes(&req.input.key)).await?;
    let input = req.input;
    // An upload under a customer key completes only with that key.
    let sent = sse::customer_key(sse::customer_of!(input))?;
    match gw
        .backend
        .upload_customer_seal(&tenant, &input.bucket, &input.key, &input.upload_id)
        .await
    {
        Ok(seal) => sse::check_part_key(seal.as_ref(), sent.as_ref())?,
        // A completed upload is answered by the completion itself.
        Err(BackendError::NoSuchUpload) => {}
        Err(e) => return Err(to_s3_error(e)),
    }
    let listed = input
        .multipart_upload
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if listed.is_empty() {
        // What S3 answers a completion listing no part.
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    // Checked by the backend with the completion (atomic).
    let condition = write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
    let if_match = input.if_match.is_some();
    let mut parts = Vec::with_capacity(listed.len());
    for p in listed {
        let n = p
            .part_number
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
        let n = part_number(n).map_err(|_| s3_error!(InvalidPart))?;
        let tag = p
            .e_tag
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
        parts.push((n, tag.value().trim_matches('"').to_owned()));
    }
    let info = gw
        .backend
        .complete_multipart(
            &tenant,
            &input.bucket,
            &input.key,
            &input.upload_id,
            parts,
            condition,
        )
        .await
        .map_err(to_s3_error);
    let info = match info {
        Err(e) if if_match && e.code() == &s3s::S3ErrorCode::PreconditionFailed => {
            Err(super::objects::if_match_error(gw, &tenant, &input.bucket, &input.key).await)
        }
        r => r,
    }?;
    let mut resp = S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        e_tag: Some(etag(&info.etag)),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        ..Default::default()
    });
    // s3s 0.14's output has no SSE-C fields; S3 sends the headers.
    sse::echo_headers(&mut resp.headers, sent.as_ref());
    Ok(resp)
}

pub(super) async fn abort_multipart_upload<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let tenant =
        super::readers::read_as(gw, &req, &req.input.bucket, writes(&req.input.key)).await?;
    let input = &req.input;
    gw.backend
        .abort_multipart(&tenant, &input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let tenant =
        super::readers::read_as(gw, &req, &req.input.bucket, writes(&req.input.key)).await?;
    let input = req.input;
    let max = max_keys(input.max_parts)?;
    let marker = input.part_number_marker.unwrap_or(0);
    let all = gw
        .backend
        .list_parts(&tenant, &input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(to_s3_error)?;
    let mut rest = all
        .into_iter()
        .filter(|p| i64::from(p.part_number) > i64::from(marker))
        .peekable();
    let mut parts = Vec::new();
    while parts.len() < max {
        let Some(p) = rest.next() else { break };
        parts.push(p);
    }
    let truncated = rest.peek().is_some();
    let next = parts.last().and_then(|p| i32::try_from(p.part_number).ok());
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        is_truncated: Some(truncated),
        key: Some(input.key),
        max_parts: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
        next_part_number_marker: if truncated { next } else { None },
        owner: Some(owner(&tenant)),
        part_number_marker: input.part_number_marker,
        parts: Some(
            parts
                .into_iter()
                .map(|p| Part {
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    part_number: i32::try_from(p.part_number).ok(),
                    size: i64::try_from(p.size).ok(),
                    ..Default::default()
                })
                .collect(),
        ),
        upload_id: Some(input.upload_id),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let max = max_keys(input.max_uploads)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let all = gw
        .backend
        .list_multipart_uploads(&tenant, &input.bucket)
        .await
        .map_err(to_s3_error)?;
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone();
    let mut rest = all
        .into_iter()
        .filter(|u| u.key.starts_with(&prefix))
        .filter(|u| match &id_marker {
            _ if key_marker.is_empty() => true,
            Some(id) => (u.key.as_str(), u.upload_id.as_str()) > (key_marker.as_str(), id.as_str()),
            None => u.key.as_str() > key_marker.as_str(),
        })
        .peekable();
    let mut uploads = Vec::new();
    while uploads.len() < max {
        let Some(u) = rest.next() else { break };
        uploads.push(u);
    }
    let truncated = rest.peek().is_some();
    let (next_key, next_id) = match uploads.last() {
        Some(u) if truncated => (Some(u.key.clone()), Some(u.upload_id.clone())),
        _ => (None, None),
    };
    let url = is_url_encoding(&input.encoding_type);
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        encoding_type: input.encoding_type.clone(),
        is_truncated: Some(truncated),
        key_marker: enc(url, input.key_marker),
        max_uploads: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
        next_key_marker: enc(url, next_key),
        next_upload_id_marker: next_id,
        prefix: enc(url, input.prefix),
        upload_id_marker: input.upload_id_marker,
        uploads: Some(
            uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    initiated: Some(timestamp(u.initiated_ms)),
                    initiator: None,
                    key: Some(if url {
                        listing::url_encode(&u.key)
                    } else {
                        u.key
                    }),
                    owner: Some(owner(&tenant)),
                    upload_id: Some(u.upload_id),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

/// A multipart write of `key` as a policy or ACL sees it: `s3:PutObject`
/// (bucket `WRITE`).
fn writes(key: &str) -> crate::policy::Request<'_> {
    crate::policy::Request {
        action: crate::policy::Action::PutObject,
        key: Some(key),
        prefix: None,
    }
}
