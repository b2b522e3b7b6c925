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
use super::checksum_answers;
use super::convert::{
    content_length, enc, etag, is_url_encoding, max_keys, owner, put_meta, timestamp,
    version_header, MAX_KEYS,
};
use super::errors::{to_s3_error, write_error};
use super::Gateway;
use crate::backend::{Backend, BackendError, ChecksumSlot, KeyStore, MAX_PART_NUMBER};
use crate::listing;
use crate::{sse, unsupported};
use s3s::dto::{Checksum, ChecksumAlgorithm};

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
    let asked = checksum_answers::asked_for_upload(
        input.checksum_algorithm.as_ref(),
        input.checksum_type.as_ref(),
    )?;
    let lock = super::object_lock::lock_of!(input)?;
    super::object_lock::check_lock_allowed(gw, &tenant, &input.bucket, &lock).await?;
    let mut meta = put_meta(input.content_type, input.metadata);
    meta.headers = headers;
    meta.tags = tags;
    if let Some(a) = &asked {
        meta.checksum = ChecksumSlot::with(a.clone());
    }
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
        checksum_algorithm: asked
            .as_ref()
            .map(|a| ChecksumAlgorithm::from(a.algorithm.clone())),
        checksum_type: asked
            .as_ref()
            .and_then(|a| checksum_answers::checksum_dto(a, "").checksum_type),
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
    let asked = gw
        .backend
        .upload_checksum(&tenant, &input.bucket, &input.key, &input.upload_id)
        .await
        .map_err(to_s3_error)?;
    let sums = super::checksums::sent_of!(input);
    let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
    let (body, sums) = super::checksums::check_part(
        body,
        &sums,
        &req.headers,
        req.trailing_headers.as_ref(),
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
            content_length(input.content_length),
            sent.as_ref().map(|k| &k.key),
            sums.slot(),
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
    let mut sums = checksum_answers::CompleteSums {
        parts: Vec::with_capacity(listed.len()),
        whole: Checksum {
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_type: None,
        },
        kind: input.checksum_type.clone(),
    };
    for p in listed {
        let n = p
            .part_number
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
        let n = part_number(n).map_err(|_| s3_error!(InvalidPart))?;
        sums.parts.push((
            n,
            Checksum {
                checksum_crc32: p.checksum_crc32,
                checksum_crc32c: p.checksum_crc32c,
                checksum_crc64nvme: p.checksum_crc64nvme,
                checksum_sha1: p.checksum_sha1,
                checksum_sha256: p.checksum_sha256,
                checksum_type: None,
            },
        ));
        let tag = p
            .e_tag
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
        parts.push((n, tag.value().trim_matches('"').to_owned()));
    }
    // A part number listed again right after itself (a part re-sent while
    // its first upload was still in flight, both recorded by the client):
    // the last entry stands for it, as Ceph and MinIO take it. Part numbers
    // going down stay InvalidPartOrder.
    let (parts, sums) = last_of_repeats(parts, sums);
    checksum_answers::check_completion(
        gw,
        &tenant,
        (&input.bucket, &input.key, &input.upload_id),
        &sums,
    )
    .await?;
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
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        e_tag: Some(etag(&info.etag)),
        key: Some(input.key.clone()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        ..Default::default()
    };
    checksum_answers::checksum_out!(
        out,
        info.checksum
            .as_ref()
            .map(|c| checksum_answers::checksum_dto(c, &c.value))
    );
    let mut resp = S3Response::new(out);
    // s3s 0.14's output has no SSE-C fields; S3 sends the headers.
    sse::echo_headers(&mut resp.headers, sent.as_ref());
    Ok(resp)
}

/// Keeps the last of each run of entries with the same part number (in
/// the parts and their checksums alike).
fn last_of_repeats(
    parts: Vec<(u32, String)>,
    mut sums: checksum_answers::CompleteSums,
) -> (Vec<(u32, String)>, checksum_answers::CompleteSums) {
    let keep: Vec<bool> = (0..parts.len())
        .map(|i| parts.get(i + 1).is_none_or(|next| next.0 != parts[i].0))
        .collect();
    let mut k = keep.iter();
    sums.parts.retain(|_| *k.next().unwrap_or(&true));
    let mut k = keep.iter();
    let parts = parts
        .into_iter()
        .filter(|_| *k.next().unwrap_or(&true))
        .collect();
    (parts, sums)
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
    let asked = gw
        .backend
        .upload_checksum(&tenant, &input.bucket, &input.key, &input.upload_id)
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
                .map(|p| {
                    let mut part = Part {
                        e_tag: Some(etag(&p.etag)),
                        last_modified: Some(timestamp(p.last_modified_ms)),
                        part_number: i32::try_from(p.part_number).ok(),
                        size: i64::try_from(p.size).ok(),
                        ..Default::default()
                    };
                    if let (Some(a), Some(v)) = (&asked, &p.checksum) {
                        let c = checksum_answers::checksum_dto(a, v);
                        part.checksum_crc32 = c.checksum_crc32;
                        part.checksum_crc32c = c.checksum_crc32c;
                        part.checksum_crc64nvme = c.checksum_crc64nvme;
                        part.checksum_sha1 = c.checksum_sha1;
                        part.checksum_sha256 = c.checksum_sha256;
                    }
                    part
                })
                .collect(),
        ),
        checksum_algorithm: asked
            .as_ref()
            .map(|a| ChecksumAlgorithm::from(a.algorithm.clone())),
        checksum_type: asked
            .as_ref()
            .and_then(|a| checksum_answers::checksum_dto(a, "").checksum_type),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_part_numbers_keep_their_last_entry() {
        let sums = checksum_answers::CompleteSums {
            parts: [1, 1, 2, 3, 3, 3]
                .iter()
                .map(|n| (*n, Checksum::default()))
                .collect(),
            whole: Checksum::default(),
            kind: None,
        };
        let parts: Vec<(u32, String)> =
            [(1, "a"), (1, "b"), (2, "c"), (3, "d"), (3, "e"), (3, "f")]
                .iter()
                .map(|(n, e)| (*n, (*e).to_owned()))
                .collect();
        let (parts, sums) = last_of_repeats(parts, sums);
        let tags: Vec<&str> = parts.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(tags, ["b", "c", "f"]);
        assert_eq!(sums.parts.len(), 3);
        // Going down is left for the backend to refuse.
        let down = vec![(2, "x".to_owned()), (1, "y".to_owned())];
        let empty = checksum_answers::CompleteSums {
            parts: vec![(2, Checksum::default()), (1, Checksum::default())],
            whole: Checksum::default(),
            kind: None,
        };
        assert_eq!(last_of_repeats(down.clone(), empty).0, down);
    }
}
