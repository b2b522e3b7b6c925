//! Object operations: put, get, head, delete (one or many), copy.

use s3s::dto::{
    self, CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, GetObjectInput,
    GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput, PutObjectOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::body::{blob, checked_body};
use super::conditions::{etag_matches, evaluate, precondition_error, Precondition};
use super::convert::{
    byte_range, content_length, content_type_out, etag, metadata_out, put_meta, timestamp,
    version_header,
};
use super::errors::{to_s3_error, write_error};
use super::Gateway;
use crate::backend::{Backend, BackendError, KeyStore, MetadataDirective};
use crate::{sse, unsupported};

pub(super) async fn put_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    sse::refuse_unsupported(&sse::asked_of!(input))?;
    unsupported::refuse_extras(&unsupported::extras_of!(input))?;
    if let Some(cond) = &input.if_none_match {
        // Best effort (not atomic): create only if absent.
        if cond.is_any() {
            match gw
                .backend
                .head_object(&tenant, &input.bucket, &input.key, None)
                .await
            {
                Ok(_) => return Err(s3_error!(PreconditionFailed)),
                Err(BackendError::NoSuchKey) => {}
                Err(e) => return Err(to_s3_error(e)),
            }
        }
    }
    if let Some(cond) = &input.if_match {
        let info = gw
            .backend
            .head_object(&tenant, &input.bucket, &input.key, None)
            .await
            .map_err(|e| match e {
                BackendError::NoSuchKey => s3_error!(NoSuchKey),
                e => to_s3_error(e),
            })?;
        if !etag_matches(cond, &info) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    let sums = super::checksums::sent_of!(input);
    let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
    let (body, sums) =
        super::checksums::check(body, &sums, &req.headers, req.trailing_headers.as_ref())?;
    let meta = put_meta(input.content_type, input.metadata);
    let info = gw
        .backend
        .put_object(
            &tenant,
            &input.bucket,
            &input.key,
            meta,
            body,
            content_length(input.content_length),
        )
        .await
        .map_err(|e| sums.error_or(write_error(e, mismatch.as_ref())))?;
    let sums = sums.verified();
    Ok(S3Response::new(PutObjectOutput {
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        e_tag: Some(etag(&info.etag)),
        size: i64::try_from(info.size).ok(),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest(),
        ..Default::default()
    }))
}

pub(super) async fn get_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let tenant =
        super::readers::object_reader(gw, &req, &input.bucket, &input.key, &input.version_id)
            .await?;
    super::readers::refuse_anonymous_overrides(
        &req,
        input.response_cache_control.is_some()
            || input.response_content_disposition.is_some()
            || input.response_content_encoding.is_some()
            || input.response_content_language.is_some()
            || input.response_content_type.is_some()
            || input.response_expires.is_some(),
    )?;
    sse::refuse_unsupported(&sse::Asked {
        customer_key: sse::customer_key!(input),
        ..sse::Asked::default()
    })?;
    let mut version = input.version_id.clone();
    let conditional = input.if_match.is_some()
        || input.if_none_match.is_some()
        || input.if_modified_since.is_some()
        || input.if_unmodified_since.is_some();
    if conditional {
        let info = gw
            .backend
            .head_object(&tenant, &input.bucket, &input.key, version.as_deref())
            .await
            .map_err(to_s3_error)?;
        precondition_error(
            evaluate(
                &info,
                input.if_match.as_ref(),
                input.if_unmodified_since.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
            ),
            &info,
        )?;
        // Read exactly the version the conditions were checked against.
        version = Some(info.version_id);
    }
    let mut range = input.range.as_ref().map(byte_range);
    if let Some(n) = input.part_number {
        if n != 1 {
            return Err(s3_error!(NotImplemented, "GetObject by partNumber > 1"));
        }
        range = None;
    }
    let (info, stream) = gw
        .backend
        .get_object(
            &tenant,
            &input.bucket,
            &input.key,
            version.as_deref(),
            range,
        )
        .await
        .map_err(to_s3_error)?;
    let (len, content_range) = match range {
        Some(r) => {
            let (first, last) = r.resolve(info.size).map_err(to_s3_error)?;
            (
                last - first + 1,
                Some(format!("bytes {first}-{last}/{}", info.size)),
            )
        }
        None => (info.size, None),
    };
    Ok(S3Response::new(GetObjectOutput {
        accept_ranges: Some("bytes".to_owned()),
        body: Some(blob(stream)),
        content_length: i64::try_from(len).ok(),
        content_range,
        content_type: Some(content_type_out(&info)),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        metadata: metadata_out(&info.user_metadata),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest(),
        ..Default::default()
    }))
}

pub(super) async fn head_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let tenant =
        super::readers::object_reader(gw, &req, &input.bucket, &input.key, &input.version_id)
            .await?;
    sse::refuse_unsupported(&sse::Asked {
        customer_key: sse::customer_key!(input),
        ..sse::Asked::default()
    })?;
    let info = gw
        .backend
        .head_object(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await
        .map_err(to_s3_error)?;
    precondition_error(
        evaluate(
            &info,
            input.if_match.as_ref(),
            input.if_unmodified_since.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
        ),
        &info,
    )?;
    Ok(S3Response::new(HeadObjectOutput {
        accept_ranges: Some("bytes".to_owned()),
        content_length: i64::try_from(info.size).ok(),
        content_type: Some(content_type_out(&info)),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        metadata: metadata_out(&info.user_metadata),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest(),
        ..Default::default()
    }))
}

pub(super) async fn delete_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let out = gw
        .backend
        .delete_object(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
        )
        .await
        .map_err(to_s3_error)?;
    // Echo a version id the client named; otherwise hide "null" as
    // everywhere else.
    let version_id = match &input.version_id {
        Some(_) => out.version_id,
        None => out.version_id.as_deref().and_then(version_header),
    };
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: out.delete_marker.then_some(true),
        version_id,
        ..Default::default()
    }))
}

pub(super) async fn delete_objects<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "at most 1000 keys per DeleteObjects"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects {
        match gw
            .backend
            .delete_object(&tenant, &input.bucket, &obj.key, obj.version_id.as_deref())
            .await
        {
            Ok(out) => {
                if !quiet {
                    let (version_id, marker_id) = match (&obj.version_id, out.delete_marker) {
                        (None, true) => (None, out.version_id),
                        _ => (out.version_id, None),
                    };
                    deleted.push(DeletedObject {
                        delete_marker: out.delete_marker.then_some(true),
                        delete_marker_version_id: marker_id,
                        key: Some(obj.key),
                        version_id,
                    });
                }
            }
            Err(BackendError::NoSuchBucket) => return Err(s3_error!(NoSuchBucket)),
            Err(e) => {
                let s3e = to_s3_error(e);
                errors.push(dto::Error {
                    code: Some(s3e.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: s3e.message().map(str::to_owned),
                    version_id: obj.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(super) async fn copy_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    sse::refuse_unsupported(&sse::Asked {
        sse: input.server_side_encryption.as_ref(),
        customer_key: sse::customer_key!(input)
            || input.copy_source_sse_customer_algorithm.is_some()
            || input.copy_source_sse_customer_key.is_some()
            || input.copy_source_sse_customer_key_md5.is_some(),
        kms: sse::kms!(input),
    })?;
    unsupported::refuse_extras(&unsupported::extras_of!(input))?;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id: src_version,
    } = &input.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "copy from access points or outposts"
        ));
    };
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == dto::MetadataDirective::REPLACE);
    if !replace && **src_bucket == *input.bucket && **src_key == *input.key && src_version.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata."
        ));
    }
    let conditional = input.copy_source_if_match.is_some()
        || input.copy_source_if_none_match.is_some()
        || input.copy_source_if_modified_since.is_some()
        || input.copy_source_if_unmodified_since.is_some();
    let mut src_version = src_version.as_deref().map(str::to_owned);
    if conditional {
        let info = gw
            .backend
            .head_object(&tenant, src_bucket, src_key, src_version.as_deref())
            .await
            .map_err(to_s3_error)?;
        match evaluate(
            &info,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
        ) {
            Precondition::Pass => {}
            // For copies every failed condition is 412.
            _ => return Err(s3_error!(PreconditionFailed)),
        }
        src_version = Some(info.version_id);
    }
    let meta = if replace {
        MetadataDirective::Replace(put_meta(input.content_type, input.metadata))
    } else {
        MetadataDirective::Copy
    };
    let info = gw
        .backend
        .copy_object(
            &tenant,
            src_bucket,
            src_key,
            src_version.as_deref(),
            &input.bucket,
            &input.key,
            meta,
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            ..Default::default()
        }),
        version_id: version_header(&info.version_id),
        ..Default::default()
    }))
}
