//! ACL operations: Put/GetBucketAcl, Put/GetObjectAcl, and the ACL a bucket
//! or object write asks for (`x-amz-acl`, `x-amz-grant-*`). The model is
//! [`crate::acl`]; who may do what is [`crate::public::AccessView`],
//! applied through `readers`.
//!
//! Every ACL set is checked before it is stored: one of canned, grant
//! headers or body (two at once: `InvalidRequest`), at most
//! [`crate::acl::MAX_GRANTS`] grants, every user grantee an existing
//! tenant (`InvalidArgument`), no group grant when the bucket blocks public
//! ACLs (`AccessDenied`), and the owner named in a body the one the bucket
//! or object has (`AccessDenied`: an ACL never changes hands).

use s3s::dto::{
    GetBucketAclInput, GetBucketAclOutput, GetObjectAclInput, GetObjectAclOutput,
    PutBucketAclInput, PutBucketAclOutput, PutObjectAclInput, PutObjectAclOutput,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::errors::to_s3_error;
use super::readers::{bucket_actor, object_actor, Actor};
use super::Gateway;
use crate::acl::{self, Acl, Canned, GrantHeaders, Grantee};
use crate::backend::{Backend, BucketConfigKind as Kind, KeyStore, ObjectInfo};
use crate::policy::{Action, Request};
use crate::public::{AclDoc, PublicAccessBlock};

/// The ACL a request asks for, from whichever of its three forms it used
/// (`None`: none of them). `owner` owns the bucket or object, in a bucket
/// of `bucket_owner`.
fn asked_acl(
    canned: Option<&str>,
    headers: &GrantHeaders<'_>,
    body: Option<&s3s::dto::AccessControlPolicy>,
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Option<Acl>> {
    let forms =
        usize::from(canned.is_some()) + usize::from(headers.any()) + usize::from(body.is_some());
    if forms > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Specify one of x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body, not several"
        ));
    }
    if let Some(c) = canned {
        return Ok(Some(Canned::parse(c)?.acl(owner, bucket_owner)));
    }
    if let Some(grants) = headers.grants()? {
        return Ok(Some(Acl {
            owner: owner.to_owned(),
            grants,
        }));
    }
    if let Some(body) = body {
        let (named, grants) = acl::from_policy(body)?;
        if named.as_deref().is_some_and(|n| n != owner) {
            return Err(s3_error!(
                AccessDenied,
                "the AccessControlPolicy names another owner; an ACL cannot change its owner"
            ));
        }
        return Ok(Some(Acl {
            owner: owner.to_owned(),
            grants,
        }));
    }
    Ok(None)
}

/// Checks an ACL about to be stored: its user grantees exist, and it is
/// not public where public ACLs are blocked.
fn check_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    acl: &Acl,
    block: PublicAccessBlock,
) -> S3Result<()> {
    if acl.is_public() && block.block_public_acls {
        return Err(s3_error!(
            AccessDenied,
            "the bucket's Block Public Access settings (BlockPublicAcls) refuse public ACLs"
        ));
    }
    for g in &acl.grants {
        if let Grantee::User(id) = &g.grantee {
            if id != &acl.owner && id != acl::ANONYMOUS_ID && !gw.keys.tenant_exists(id) {
                return Err(s3_error!(
                    InvalidArgument,
                    "Invalid id: no tenant {:?} exists (a grantee's ID is a tenant name)",
                    id
                ));
            }
        }
    }
    Ok(())
}

/// The ACL document a new version written by `actor` gets from its
/// request's `x-amz-acl` and `x-amz-grant-*` headers (PutObject, CopyObject,
/// CreateMultipartUpload): `None` is the default (the bucket owner's own
/// write without an ACL); a write by anyone else records the writer as the
/// version's owner.
pub(super) fn object_write_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    actor: &Actor,
    canned: Option<&str>,
    headers: &GrantHeaders<'_>,
) -> S3Result<Option<String>> {
    let bucket_owner = actor.bucket_owner().to_owned();
    let asked = asked_acl(canned, headers, None, &actor.requester, &bucket_owner)?;
    let acl = match asked {
        Some(acl) => acl,
        None if actor.requester == bucket_owner => return Ok(None),
        None => Acl::private(&actor.requester),
    };
    let block = actor.view.as_ref().map(|v| v.block).unwrap_or_default();
    check_acl(gw, &acl, block)?;
    Ok(stored_object_acl(&acl, &bucket_owner))
}

/// What an object version stores for `acl` (`None` for the default).
fn stored_object_acl(acl: &Acl, bucket_owner: &str) -> Option<String> {
    (*acl != Acl::private(bucket_owner)).then(|| acl.to_doc())
}

/// The ACL document of a CreateBucket (`None`: the default); checked like
/// any other (a new bucket has no Block Public Access settings yet).
pub(super) fn create_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    canned: Option<&str>,
    headers: &GrantHeaders<'_>,
) -> S3Result<Option<Option<String>>> {
    let Some(acl) = asked_acl(canned, headers, None, tenant, tenant)? else {
        return Ok(None);
    };
    check_acl(gw, &acl, PublicAccessBlock::default())?;
    Ok(Some(AclDoc::of(&acl)))
}

pub(super) async fn put_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let input = &req.input;
    let asked = Request {
        action: Action::PutBucketAcl,
        key: None,
        prefix: None,
    };
    let actor = bucket_actor(gw, &req, &input.bucket, asked).await?;
    let Some(view) = &actor.view else {
        // Not granted: the backend's answer to the requester's own tenant
        // (`NoSuchBucket` or `AccessDenied`).
        gw.backend
            .head_bucket(&actor.tenant, &input.bucket)
            .await
            .map_err(to_s3_error)?;
        return Err(s3_error!(AccessDenied));
    };
    let owner = view.owner.clone();
    let headers = acl::grant_headers_of!(input, input.grant_write.as_deref());
    let acl = asked_acl(
        input.acl.as_ref().map(|a| a.as_str()),
        &headers,
        input.access_control_policy.as_ref(),
        &owner,
        &owner,
    )?
    .ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "PutBucketAcl needs x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body"
        )
    })?;
    check_acl(gw, &acl, view.block)?;
    set_bucket_acl(gw, &actor.tenant, &input.bucket, AclDoc::of(&acl)).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

async fn set_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    doc: Option<String>,
) -> S3Result<()> {
    gw.backend
        .put_bucket_config(tenant, bucket, Kind::Acl, doc)
        .await
        .map_err(to_s3_error)
}

pub(super) async fn get_bucket_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let asked = Request {
        action: Action::GetBucketAcl,
        key: None,
        prefix: None,
    };
    let actor = bucket_actor(gw, &req, &req.input.bucket, asked).await?;
    // Read through the backend as the tenant acted for: the owner check
    // (a requester not granted gets the backend's refusal).
    let doc = gw
        .backend
        .get_bucket_config(&actor.tenant, &req.input.bucket, Kind::Acl)
        .await
        .map_err(to_s3_error)?;
    let acl = match doc {
        None => Acl::private(&actor.tenant),
        Some(d) => AclDoc::parse(&d)
            .ok_or_else(|| s3_error!(InternalError, "the stored bucket ACL does not parse"))?
            .acl(&actor.tenant),
    };
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(acl.dto_grants()),
        owner: Some(acl.dto_owner()),
    }))
}

/// Who acts on a version's ACL, and the version: [`object_actor`]'s
/// decision, then the version as the actor reads it when the decision did
/// not already read it.
async fn acl_target<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    action: Action,
) -> S3Result<(Actor, ObjectInfo)> {
    let (actor, info) = object_actor(gw, req, bucket, key, version_id, action).await?;
    let info = match info {
        Some(i) => i,
        None => gw
            .backend
            .head_object(&actor.tenant, bucket, key, version_id)
            .await
            .map_err(to_s3_error)?,
    };
    Ok((actor, info))
}

pub(super) async fn get_object_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = &req.input;
    let (actor, info) = acl_target(
        gw,
        &req,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Action::GetObjectAcl,
    )
    .await?;
    let acl = info
        .acl
        .as_deref()
        .and_then(Acl::from_doc)
        .unwrap_or_else(|| Acl::private(actor.bucket_owner()));
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(acl.dto_grants()),
        owner: Some(acl.dto_owner()),
        request_charged: None,
    }))
}

pub(super) async fn put_object_acl<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = &req.input;
    let (actor, info) = acl_target(
        gw,
        &req,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Action::PutObjectAcl,
    )
    .await?;
    let bucket_owner = actor.bucket_owner().to_owned();
    let current = info
        .acl
        .as_deref()
        .and_then(Acl::from_doc)
        .unwrap_or_else(|| Acl::private(&bucket_owner));
    let headers = acl::grant_headers_of!(input, input.grant_write.as_deref());
    let acl = asked_acl(
        input.acl.as_ref().map(|a| a.as_str()),
        &headers,
        input.access_control_policy.as_ref(),
        &current.owner,
        &bucket_owner,
    )?
    .ok_or_else(|| {
        s3_error!(
            InvalidRequest,
            "PutObjectAcl needs x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body"
        )
    })?;
    let block = actor.view.as_ref().map(|v| v.block).unwrap_or_default();
    check_acl(gw, &acl, block)?;
    // Exactly the version whose ACL was checked.
    gw.backend
        .set_object_acl(
            &actor.tenant,
            &input.bucket,
            &input.key,
            Some(&info.version_id),
            stored_object_acl(&acl, &bucket_owner),
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
