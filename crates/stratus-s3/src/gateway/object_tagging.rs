//! Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging
//! (each with an optional `versionId`; another tenant or an anonymous
//! client only on current versions, as a bucket policy grants).

use s3s::dto::{
    DeleteObjectTaggingInput, DeleteObjectTaggingOutput, GetObjectTaggingInput,
    GetObjectTaggingOutput, PutObjectTaggingInput, PutObjectTaggingOutput,
};
use s3s::{S3Request, S3Response, S3Result};

use super::attrs::{tag_set, tags_of_set};
use super::convert::version_header;
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, KeyStore};
use crate::policy::Action;

/// The tenant a tagging request acts for: the owner's own, or one a bucket
/// policy grants (no ACL grants tagging).
async fn acting<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    action: Action,
) -> S3Result<String> {
    let (actor, _) = super::readers::object_actor(gw, req, bucket, key, version_id, action).await?;
    Ok(actor.tenant)
}

pub(super) async fn put_object_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let tenant = acting(
        gw,
        &req,
        &req.input.bucket,
        &req.input.key,
        req.input.version_id.as_deref(),
        Action::PutObjectTagging,
    )
    .await?;
    let input = req.input;
    let tags = tags_of_set(input.tagging.tag_set)?;
    let v = gw
        .backend
        .set_object_tags(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            tags,
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: version_header(&v),
    }))
}

pub(super) async fn get_object_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let tenant = acting(
        gw,
        &req,
        &req.input.bucket,
        &req.input.key,
        req.input.version_id.as_deref(),
        Action::GetObjectTagging,
    )
    .await?;
    let input = &req.input;
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
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tag_set(&info.tags),
        version_id: version_header(&info.version_id),
    }))
}

pub(super) async fn delete_object_tagging<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let tenant = acting(
        gw,
        &req,
        &req.input.bucket,
        &req.input.key,
        req.input.version_id.as_deref(),
        Action::DeleteObjectTagging,
    )
    .await?;
    let input = &req.input;
    let v = gw
        .backend
        .set_object_tags(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            Default::default(),
        )
        .await
        .map_err(to_s3_error)?;
    let mut resp = S3Response::new(DeleteObjectTaggingOutput {
        version_id: version_header(&v),
    });
    // S3 answers 204 No Content.
    resp.status = Some(http::StatusCode::NO_CONTENT);
    Ok(resp)
}
