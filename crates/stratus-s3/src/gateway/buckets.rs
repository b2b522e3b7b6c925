//! Bucket operations: create, delete, head, list, location, versioning.

use s3s::dto::{
    self, BucketVersioningStatus, CreateBucketInput, CreateBucketOutput, DeleteBucketInput,
    DeleteBucketOutput, GetBucketLocationInput, GetBucketLocationOutput, GetBucketVersioningInput,
    GetBucketVersioningOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput, PutBucketVersioningInput, PutBucketVersioningOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::convert::{owner, timestamp};
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, KeyStore, Versioning};

pub(super) async fn create_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let bucket = &input.bucket;
    let acl = super::access_ops::create_bucket_acl(
        input.acl.as_ref(),
        input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some(),
    )?;
    gw.backend
        .create_bucket(&tenant, bucket)
        .await
        .map_err(to_s3_error)?;
    if let Some(acl @ crate::public::CannedAcl::PublicRead) = acl {
        gw.set_canned_acl(&tenant, bucket, acl).await?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

pub(super) async fn delete_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .delete_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn head_bucket<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .head_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gw.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn list_buckets<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let tenant = gw.tenant(&req)?;
    let buckets = gw
        .backend
        .list_buckets(&tenant)
        .await
        .map_err(to_s3_error)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let buckets = buckets
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .map(|b| dto::Bucket {
            bucket_region: Some(gw.region.clone()),
            creation_date: Some(timestamp(b.created_ms)),
            name: Some(b.name),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&tenant)),
        prefix: req.input.prefix,
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .head_bucket(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    // S3 reports us-east-1 as an empty constraint.
    let location_constraint =
        (gw.region != "us-east-1").then(|| dto::BucketLocationConstraint::from(gw.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

pub(super) async fn get_bucket_versioning<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let tenant = gw.tenant(&req)?;
    let v = gw
        .backend
        .get_versioning(&tenant, &req.input.bucket)
        .await
        .map_err(to_s3_error)?;
    let status = v.map(|v| {
        BucketVersioningStatus::from_static(match v {
            Versioning::Enabled => BucketVersioningStatus::ENABLED,
            Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
        })
    });
    Ok(S3Response::new(GetBucketVersioningOutput {
        status,
        ..Default::default()
    }))
}

pub(super) async fn put_bucket_versioning<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let tenant = gw.tenant(&req)?;
    let v = match req
        .input
        .versioning_configuration
        .status
        .as_ref()
        .map(|s| s.as_str())
    {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "versioning status must be Enabled or Suspended"
            ))
        }
    };
    gw.backend
        .set_versioning(&tenant, &req.input.bucket, v)
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}
