//! Who may read a bucket: its policy, its canned ACL and its Block Public
//! Access settings (the owner's operations; the decision itself is
//! [`crate::public::AccessView`], applied by `readers`).

use s3s::dto::{
    BucketCannedACL, DeleteBucketPolicyInput, DeleteBucketPolicyOutput,
    DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput, GetBucketAclInput,
    GetBucketAclOutput, GetBucketPolicyInput, GetBucketPolicyOutput, GetBucketPolicyStatusInput,
    GetBucketPolicyStatusOutput, GetPublicAccessBlockInput, GetPublicAccessBlockOutput, Grant,
    Grantee, Permission, PolicyStatus, PublicAccessBlockConfiguration, PutBucketAclInput,
    PutBucketAclOutput, PutBucketPolicyInput, PutBucketPolicyOutput, PutPublicAccessBlockInput,
    PutPublicAccessBlockOutput, Type,
};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::convert::owner;
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketAccessDocs, BucketConfigKind as Kind, KeyStore};
use crate::policy::BucketPolicy;
use crate::public::{AccessView, AclDoc, CannedAcl, PublicAccessBlock};

/// AWS's group of everyone, anonymous included.
pub(super) const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

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

    /// Sets the bucket's canned ACL, refused when it is public and the
    /// bucket blocks public ACLs.
    pub(super) async fn set_canned_acl(
        &self,
        tenant: &str,
        bucket: &str,
        acl: CannedAcl,
    ) -> S3Result<()> {
        if acl == CannedAcl::PublicRead && self.block(tenant, bucket).await?.block_public_acls {
            return Err(s3_error!(
                AccessDenied,
                "the bucket's Block Public Access settings (BlockPublicAcls) refuse public ACLs"
            ));
        }
        self.set_config(tenant, bucket, Kind::Acl, acl.to_doc())
            .await
    }
}

/// Refuses an object write asking for a public canned ACL on a bucket that
/// blocks public ACLs with `AccessDenied`, as AWS does (such ACLs are not
/// implemented on objects: without the block they are `NotImplemented`).
pub(super) async fn refuse_blocked_object_acl<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    acl: Option<&str>,
) -> S3Result<()> {
    if !acl.is_some_and(CannedAcl::is_public_name) {
        return Ok(());
    }
    let tenant = gw.tenant(req)?;
    if gw.block(&tenant, bucket).await?.block_public_acls {
        return Err(s3_error!(
            AccessDenied,
            "the bucket's Block Public Access settings (BlockPublicAcls) refuse public ACLs"
        ));
    }
    Ok(())
}

/// Refuses the ACL grants of a bucket request (`x-amz-grant-*`, an
/// `AccessControlPolicy` body): only canned ACLs are implemented.
pub(super) fn refuse_grants(grants: bool) -> S3Result<()> {
    if grants {
        return Err(s3_error!(
            NotImplemented,
            "ACL grants (x-amz-grant-*, AccessControlPolicy) are not supported: use x-amz-acl: private or public-read"
        ));
    }
    Ok(())
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

pub(super) async fn put_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    refuse_grants(
        input.access_control_policy.is_some()
            || input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some(),
    )?;
    let Some(acl) = &input.acl else {
        return Err(s3_error!(
            InvalidRequest,
            "PutBucketAcl needs an x-amz-acl header (private or public-read)"
        ));
    };
    // A public ACL the gateway does not implement is still a public ACL:
    // BlockPublicAcls refuses it first, as AWS does.
    if CannedAcl::is_public_name(acl.as_str())
        && gw.block(&tenant, &input.bucket).await?.block_public_acls
    {
        return Err(s3_error!(
            AccessDenied,
            "the bucket's Block Public Access settings (BlockPublicAcls) refuse public ACLs"
        ));
    }
    let acl = CannedAcl::parse(acl.as_str())?;
    gw.set_canned_acl(&tenant, &input.bucket, acl).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub(super) async fn get_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let tenant = gw.tenant(&req)?;
    let acl = match gw.config(&tenant, &req.input.bucket, Kind::Acl).await? {
        None => CannedAcl::Private,
        Some(doc) => {
            serde_json::from_str::<AclDoc>(&doc)
                .map_err(|e| s3_error!(InternalError, "stored ACL: {}", e))?
                .canned
        }
    };
    // The AllUsers grant first, then the owner's (the order Ceph RGW
    // answers and ceph/s3-tests checks).
    let mut grants = Vec::new();
    if acl == CannedAcl::PublicRead {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(ALL_USERS.to_owned()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    grants.push(Grant {
        grantee: Some(Grantee {
            display_name: Some(tenant.clone()),
            email_address: None,
            id: Some(tenant.clone()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    });
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner(&tenant)),
    }))
}

/// The canned ACL of a CreateBucket, if it asks for one the gateway keeps.
pub(super) fn create_bucket_acl(
    acl: Option<&BucketCannedACL>,
    grants: bool,
) -> S3Result<Option<CannedAcl>> {
    refuse_grants(grants)?;
    acl.map(|a| CannedAcl::parse(a.as_str())).transpose()
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
