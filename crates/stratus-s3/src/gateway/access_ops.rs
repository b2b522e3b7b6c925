//! Who may read or write a bucket: its policy and its Block Public Access
//! settings (the owner's operations; the ACLs are `acl_ops`'; the decision
//! itself is [`crate::public::AccessView`], applied by `readers`).

use s3s::dto::{
    DeleteBucketPolicyInput, DeleteBucketPolicyOutput, DeletePublicAccessBlockInput,
    DeletePublicAccessBlockOutput, GetBucketPolicyInput, GetBucketPolicyOutput,
    GetBucketPolicyStatusInput, GetBucketPolicyStatusOutput, GetPublicAccessBlockInput,
    GetPublicAccessBlockOutput, PolicyStatus, PublicAccessBlockConfiguration, PutBucketPolicyInput,
    PutBucketPolicyOutput, PutPublicAccessBlockInput, PutPublicAccessBlockOutput,
};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketAccessDocs, BucketConfigKind as Kind, KeyStore};
use crate::policy::BucketPolicy;
use crate::public::{AccessView, PublicAccessBlock};

impl<B: Backend, K: KeyStore> Gateway<B, K> {
    /// The owner's document of `kind` (an owner check: another tenant gets
    /// the backend's `AccessDenied`/`NoSuchBucket`).
    async fn config(&self, tenant: &str, bucket: &str, kind: Kind) -> S3Result<Option<String>> {
        self.backend
            .get_bucket_config(tenant, bucket, kind)
            .await
            .map_err(to_s3_error)
    }

    async fn set_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: Kind,
        doc: Option<String>,
    ) -> S3Result<()> {
        self.backend
            .put_bucket_config(tenant, bucket, kind, doc)
            .await
            .map_err(to_s3_error)
    }

    /// The bucket's Block Public Access settings (all off when unset).
    async fn block(&self, tenant: &str, bucket: &str) -> S3Result<PublicAccessBlock> {
        match self.config(tenant, bucket, Kind::PublicAccessBlock).await? {
            None => Ok(PublicAccessBlock::default()),
            Some(doc) => serde_json::from_str(&doc)
                .map_err(|e| s3_error!(InternalError, "stored public access block: {}", e)),
        }
    }
}

pub(super) async fn put_bucket_policy<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let block = gw.block(&tenant, &input.bucket).await?;
    let policy = BucketPolicy::parse(&input.bucket, &input.policy).map_err(|e| e.to_s3())?;
    if policy.is_public() && block.block_public_policy {
        return Err(s3_error!(
            AccessDenied,
            "the bucket's Block Public Access settings (BlockPublicPolicy) refuse public policies"
        ));
    }
    gw.set_config(
        &tenant,
        &input.bucket,
        Kind::Policy,
        Some(input.policy.clone()),
    )
    .await?;
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

pub(super) async fn get_bucket_policy<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let tenant = gw.tenant(&req)?;
    match gw.config(&tenant, &req.input.bucket, Kind::Policy).await? {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        })),
        None => Err(s3_error!(NoSuchBucketPolicy)),
    }
}

pub(super) async fn delete_bucket_policy<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.set_config(&tenant, &req.input.bucket, Kind::Policy, None)
        .await?;
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

pub(super) async fn get_bucket_policy_status<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let tenant = gw.tenant(&req)?;
    let bucket = &req.input.bucket;
    let docs = BucketAccessDocs {
        owner: tenant.clone(),
        policy: gw.config(&tenant, bucket, Kind::Policy).await?,
        acl: gw.config(&tenant, bucket, Kind::Acl).await?,
        public_access_block: gw.config(&tenant, bucket, Kind::PublicAccessBlock).await?,
        cors: None,
    };
    let is_public = AccessView::new(bucket, &docs).is_public();
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(is_public),
        }),
    }))
}

pub(super) async fn put_public_access_block<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let tenant = gw.tenant(&req)?;
    let c = &req.input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    let doc = serde_json::to_string(&block)
        .map_err(|e| s3_error!(InternalError, "public access block: {}", e))?;
    gw.set_config(
        &tenant,
        &req.input.bucket,
        Kind::PublicAccessBlock,
        Some(doc),
    )
    .await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub(super) async fn get_public_access_block<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let tenant = gw.tenant(&req)?;
    let bucket = &req.input.bucket;
    if gw
        .config(&tenant, bucket, Kind::PublicAccessBlock)
        .await?
        .is_none()
    {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    }
    let b = gw.block(&tenant, bucket).await?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_public_access_block<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.set_config(&tenant, &req.input.bucket, Kind::PublicAccessBlock, None)
        .await?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
}
