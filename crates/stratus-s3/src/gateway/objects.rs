//! Object operations: put, get, head, delete (one or many), copy.

use s3s::dto::{
    self, CopyObjectInput, CopyObjectOutput, CopyObjectResult, DeleteObjectInput,
    DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, ETagCondition,
    GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, PutObjectInput,
    PutObjectOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::attrs::{
    delete_marker_error, headers_of, headers_out, replaces_tags, tag_count, tags_of_header,
    write_condition,
};
use super::body::{blob, checked_body};
use super::checksum_answers::{checksum_out, read_checksum};
use super::conditions::{check_copy_source, copy_source, evaluate, precondition_error};
use super::convert::{
    byte_range, content_length, content_type_out, etag, metadata_out, put_meta, timestamp,
    version_header,
};
use super::errors::{to_s3_error, write_error};
use super::Gateway;
use crate::backend::{
    Backend, BackendError, ByteRange, DeleteCondition, KeyStore, MetadataDirective, ObjectInfo,
    PutMeta,
};
use crate::policy::Action;
use crate::{sse, unsupported};

pub(super) async fn put_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let actor = super::readers::bucket_actor(
        gw,
        &req,
        &req.input.bucket,
        writes(&req.input.key, Action::PutObject),
    )
    .await?;
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
    // Checked by the backend when the version is committed (atomic).
    let condition = write_condition(input.if_none_match.as_ref(), input.if_match.as_ref())?;
    let if_match = input.if_match.is_some();
    let headers = headers_of!(input);
    let tags = tags_of_header(input.tagging.as_deref())?;
    let lock = super::object_lock::lock_of!(input)?;
    super::object_lock::check_lock_allowed(gw, &tenant, &input.bucket, &lock).await?;
    let sums = super::checksums::sent_of!(input);
    let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
    let (body, sums) =
        super::checksums::check(body, &sums, &req.headers, req.trailing_headers.as_ref())?;
    let mut meta = put_meta(input.content_type, input.metadata);
    meta.headers = headers;
    meta.tags = tags;
    meta.condition = condition;
    meta.checksum = sums.slot();
    meta.customer_key = sent.as_ref().map(|k| k.key.clone());
    meta.acl = acl;
    meta.lock = lock;
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
        .await;
    let info = match info {
        Err(BackendError::PreconditionFailed) if if_match => {
            Err(if_match_error(gw, &tenant, &input.bucket, &input.key).await)
        }
        r => r.map_err(|e| sums.error_or(write_error(e, mismatch.as_ref()))),
    }?;
    let sums = sums.verified();
    let expiration = super::expiration_header::expiration(gw, &tenant, &input.bucket, &info).await;
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(sent.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        expiration,
        sse_customer_algorithm,
        sse_customer_key_md5,
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        e_tag: Some(etag(&info.etag)),
        size: i64::try_from(info.size).ok(),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        ..Default::default()
    }))
}

pub(super) async fn get_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = &req.input;
    let (tenant, checked) =
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
    sse::refuse_on_read(&req.headers)?;
    let sent = sse::customer_key(sse::customer_of!(input))?;
    let mut version = checked;
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
        sse::check_read(info.customer_seal.as_ref(), sent.as_ref())?;
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
    let mut parts_count = None;
    if let Some(n) = input.part_number {
        if range.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        let n = u32::try_from(n).map_err(|_| to_s3_error(BackendError::InvalidPartNumber))?;
        // The part's place in exactly the version read.
        let info = gw
            .backend
            .head_object(&tenant, &input.bucket, &input.key, version.as_deref())
            .await
            .map_err(to_s3_error)?;
        sse::check_read(info.customer_seal.as_ref(), sent.as_ref())?;
        let (first, last, count) = info.part_range(n).map_err(to_s3_error)?;
        version = Some(info.version_id);
        parts_count = Some(count);
        // The one part of an empty object is the whole (empty) body.
        range = (info.size > 0).then_some(ByteRange::FromTo {
            first,
            last: Some(last),
        });
    }
    let (info, stream) = match gw
        .backend
        .get_object_sealed(
            &tenant,
            &input.bucket,
            &input.key,
            version.as_deref(),
            range,
            sent.as_ref().map(|k| &k.key),
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return Err(read_error(gw, &tenant, &input.bucket, &input.key, e).await),
    };
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
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(sent.as_ref());
    let mut out = GetObjectOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        accept_ranges: Some("bytes".to_owned()),
        body: Some(blob(stream)),
        content_length: i64::try_from(len).ok(),
        content_range,
        content_type: Some(content_type_out(&info)),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        metadata: metadata_out(&info.user_metadata),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        tag_count: tag_count(&info),
        parts_count: parts_count.and_then(|c| i32::try_from(c).ok()),
        expiration: super::expiration_header::expiration(gw, &tenant, &input.bucket, &info).await,
        ..Default::default()
    };
    checksum_out!(
        out,
        read_checksum(
            &info,
            input.checksum_mode.as_ref(),
            input.part_number,
            input.range.is_some()
        )
    );
    headers_out!(out, info);
    super::object_lock::lock_out!(out, info);
    let mut resp = S3Response::new(out);
    if parts_count.is_some() && info.size > 0 {
        resp.status = Some(http::StatusCode::PARTIAL_CONTENT);
    }
    Ok(resp)
}

/// The answer to a write whose `If-Match` failed: `NoSuchKey` (404) when
/// the key has no current object, as S3 answers, `PreconditionFailed`
/// (412) otherwise.
pub(super) async fn if_match_error<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    key: &str,
) -> s3s::S3Error {
    match gw.backend.head_object(tenant, bucket, key, None).await {
        Err(BackendError::NoSuchKey) => s3_error!(NoSuchKey),
        _ => s3_error!(PreconditionFailed),
    }
}

/// The error of a failed read, with the delete-marker headers S3 sends
/// when the key's current version is a delete marker (404) or the version
/// named is one (405).
pub(super) async fn read_error<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    key: &str,
    e: BackendError,
) -> s3s::S3Error {
    match e {
        BackendError::NoSuchKey => {
            let latest = gw
                .backend
                .list_versions(tenant, bucket, key, None, None, 1)
                .await
                .ok()
                .and_then(|v| v.into_iter().next())
                .filter(|v| v.info.key == key && v.info.is_delete_marker);
            match latest {
                Some(m) => delete_marker_error(e, Some(&m.info.version_id)),
                None => {
                    // Ceph RGW says so explicitly, and ceph/s3-tests reads it.
                    let mut err = to_s3_error(e);
                    let mut h = http::HeaderMap::new();
                    h.insert(
                        "x-amz-delete-marker",
                        http::HeaderValue::from_static("false"),
                    );
                    err.set_headers(h);
                    err
                }
            }
        }
        BackendError::MethodNotAllowed => delete_marker_error(e, None),
        e => to_s3_error(e),
    }
}

pub(super) async fn head_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = &req.input;
    let (tenant, checked) =
        super::readers::object_reader(gw, &req, &input.bucket, &input.key, &input.version_id)
            .await?;
    sse::refuse_on_read(&req.headers)?;
    let sent = sse::customer_key(sse::customer_of!(input))?;
    let info = match gw
        .backend
        .head_object(&tenant, &input.bucket, &input.key, checked.as_deref())
        .await
    {
        Ok(i) => i,
        Err(e) => return Err(read_error(gw, &tenant, &input.bucket, &input.key, e).await),
    };
    sse::check_read(info.customer_seal.as_ref(), sent.as_ref())?;
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
    let (mut len, mut content_range, mut parts_count) = (info.size, None, None);
    if let Some(n) = input.part_number {
        let n = u32::try_from(n).map_err(|_| to_s3_error(BackendError::InvalidPartNumber))?;
        let (first, last, count) = info.part_range(n).map_err(to_s3_error)?;
        parts_count = i32::try_from(count).ok();
        if info.size > 0 {
            len = last - first + 1;
            content_range = Some(format!("bytes {first}-{last}/{}", info.size));
        }
    }
    let (sse_customer_algorithm, sse_customer_key_md5) = sse::echo(sent.as_ref());
    let mut out = HeadObjectOutput {
        sse_customer_algorithm,
        sse_customer_key_md5,
        accept_ranges: Some("bytes".to_owned()),
        content_length: i64::try_from(len).ok(),
        content_range,
        content_type: Some(content_type_out(&info)),
        e_tag: Some(etag(&info.etag)),
        last_modified: Some(timestamp(info.last_modified_ms)),
        metadata: metadata_out(&info.user_metadata),
        version_id: version_header(&info.version_id),
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        parts_count,
        expiration: super::expiration_header::expiration(gw, &tenant, &input.bucket, &info).await,
        ..Default::default()
    };
    checksum_out!(
        out,
        read_checksum(
            &info,
            input.checksum_mode.as_ref(),
            input.part_number,
            input.range.is_some()
        )
    );
    headers_out!(out, info);
    super::object_lock::lock_out!(out, info);
    // s3s 0.14 answers HeadObject with 200 whatever status is asked (AWS
    // says 206 for a part); the part's length and Content-Range are sent.
    let mut resp = S3Response::new(out);
    // HeadObject's output has no tag count; S3 sends the header.
    if let Some(n) = tag_count(&info) {
        resp.headers
            .insert("x-amz-tagging-count", http::HeaderValue::from(n));
    }
    Ok(resp)
}

pub(super) async fn delete_object<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let tenant = super::readers::read_as(
        gw,
        &req,
        &req.input.bucket,
        writes(&req.input.key, Action::DeleteObject),
    )
    .await?;
    let (size, modified_secs) = super::delete_conditions::from_headers(&req.headers)?;
    let input = &req.input;
    let etag = match &input.if_match {
        None => None,
        Some(ETagCondition::Any) => Some("*".to_owned()),
        Some(ETagCondition::ETag(t)) => Some(t.value().to_owned()),
    };
    let out = gw
        .backend
        .delete_object_if(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            DeleteCondition {
                etag,
                size,
                modified_secs,
            },
            input.bypass_governance_retention.unwrap_or(false),
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
    let input = &req.input;
    if input.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "at most 1000 keys per DeleteObjects"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in input.delete.objects.iter().cloned() {
        // Each key is granted on its own (a policy may name keys); its
        // conditions are checked with the delete (as DeleteObject's
        // If-Match, x-amz-if-match-size and -last-modified-time).
        let granted = match super::readers::read_as(
            gw,
            &req,
            &input.bucket,
            writes(&obj.key, Action::DeleteObject),
        )
        .await
        {
            Ok(t) => super::delete_conditions::of_entry(&obj).map(|c| (t, c)),
            Err(e) => Err(e),
        };
        let (tenant, cond) = match granted {
            Ok(tc) => tc,
            Err(e) => {
                errors.push(dto::Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_owned),
                    version_id: obj.version_id,
                });
                continue;
            }
        };
        let result = gw
            .backend
            .delete_object_if(
                &tenant,
                &input.bucket,
                &obj.key,
                obj.version_id.as_deref(),
                cond,
                bypass,
            )
            .await;
        match result {
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
    let (src_bucket, src_key, src_version) = copy_source(&req.input.copy_source)?;
    let actor = super::readers::bucket_actor(
        gw,
        &req,
        &req.input.bucket,
        writes(&req.input.key, Action::PutObject),
    )
    .await?;
    let (source, _) = super::readers::object_actor(
        gw,
        &req,
        src_bucket,
        src_key,
        src_version,
        Action::GetObject,
    )
    .await?;
    // The copy runs as one tenant: the source must be readable by the
    // requester and in a bucket of the destination's owner.
    if source.view.is_none() {
        return Err(s3_error!(NoSuchBucket));
    }
    if source.tenant != actor.tenant {
        if actor.view.is_none() {
            return Err(s3_error!(AccessDenied));
        }
        return Err(s3_error!(
            NotImplemented,
            "copying between buckets of different owners is not implemented: GET the object and PUT it"
        ));
    }
    let tenant = actor.tenant.clone();
    let acl = super::acl_ops::object_write_acl(
        gw,
        &actor,
        req.input.acl.as_ref().map(|a| a.as_str()),
        &crate::acl::grant_headers_of!(req.input, crate::acl::object_grant_write(&req.headers)),
    )?;
    let (src_bucket, src_key, src_version) = (
        src_bucket.to_owned(),
        src_key.to_owned(),
        src_version.map(str::to_owned),
    );
    let (src_bucket, src_key) = (src_bucket.as_str(), src_key.as_str());
    let input = req.input;
    sse::refuse_unsupported(&sse::asked_of!(input))?;
    let src_sent = sse::customer_key(sse::copy_source_customer_of!(input))?;
    let dst_sent = sse::customer_key(sse::customer_of!(input))?;
    unsupported::refuse_extras(&unsupported::extras_of!(input))?;
    let lock = super::object_lock::lock_of!(input)?;
    super::object_lock::check_lock_allowed(gw, &tenant, &input.bucket, &lock).await?;
    let locks = lock != crate::backend::VersionLock::default();
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == dto::MetadataDirective::REPLACE);
    let replace_tags = replaces_tags(input.tagging_directive.as_ref());
    let new_tags = tags_of_header(input.tagging.as_deref())?;
    if !replace_tags && input.tagging.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-tagging on a copy needs x-amz-tagging-directive: REPLACE"
        ));
    }
    if !replace
        && !replace_tags
        && dst_sent.is_none()
        && src_bucket == input.bucket.as_str()
        && src_key == input.key.as_str()
        && src_version.is_none()
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
    let mut src_version = src_version;
    // The source as it is now: its directives are resolved against it, and
    // the copy reads exactly that version.
    // A lock on the copy is carried by a `Replace` directive (the source's
    // metadata written again), so it is set with the version, atomically.
    let src_info = if conditional || replace != replace_tags || acl.is_some() || locks {
        Some(
            gw.backend
                .head_object(&tenant, src_bucket, src_key, src_version.as_deref())
                .await
                .map_err(to_s3_error)?,
        )
    } else {
        None
    };
    if let Some(info) = &src_info {
        src_version = Some(info.version_id.clone());
    }
    if conditional {
        let Some(info) = src_info.clone() else {
            return Err(s3_error!(InternalError, "the copy source was not read"));
        };
        check_copy_source(
            &info,
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
        )?;
    }
    let headers = headers_of!(input);
    let meta = match (&src_info, replace, replace_tags) {
        (None, false, false) => MetadataDirective::Copy,
        (src, _, _) => {
            let mut m = if replace {
                let mut m = put_meta(input.content_type, input.metadata);
                m.headers = headers;
                m
            } else {
                src.as_ref().map(copied_meta).unwrap_or_default()
            };
            m.tags = if replace_tags {
                new_tags
            } else {
                src.as_ref().map(|s| s.tags.clone()).unwrap_or_default()
            };
            m.acl = acl;
            m.lock = lock;
            MetadataDirective::Replace(m)
        }
    };
    if src_sent.is_some() || dst_sent.is_some() {
        // Under a customer key: read with the source's, write with the
        // destination's (no chunk is shared).
        let copy = super::sse_copy::Copy {
            tenant: &tenant,
            src_bucket,
            src_key,
            src_version: src_version.as_deref(),
            dst_bucket: &input.bucket,
            dst_key: &input.key,
        };
        return super::sse_copy::copy_object(gw, copy, meta, src_sent, dst_sent).await;
    }
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
        server_side_encryption: sse::at_rest_of(info.customer_seal.as_ref()),
        ..Default::default()
    }))
}

/// The metadata of a version, to write again as it is.
pub(super) fn copied_meta(info: &ObjectInfo) -> PutMeta {
    PutMeta {
        content_type: info.content_type.clone(),
        user_metadata: info.user_metadata.clone(),
        headers: info.headers.clone(),
        tags: info.tags.clone(),
        condition: None,
        customer_key: None,
        // A copy never takes its source's ACL.
        acl: None,
        lock: crate::backend::VersionLock::default(),
        ..PutMeta::default()
    }
}

/// A write of `key` (PutObject, DeleteObject) as a policy sees it.
fn writes(key: &str, action: Action) -> crate::policy::Request<'_> {
    crate::policy::Request {
        action,
        key: Some(key),
        prefix: None,
    }
}
