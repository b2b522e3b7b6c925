//! Requests by anyone but the bucket's owner: anonymous requests and other
//! tenants, granted by the bucket's policy or ACLs ([`crate::public`]).
//!
//! The operations a policy or an ACL can grant ask this module which tenant
//! to act for instead of taking the key's tenant ([`Actor`]): the owner's
//! own requests act for it as always; a request from anyone else acts for
//! the bucket's owner exactly when [`AccessView::allows`] grants the action,
//! and otherwise acts for itself (the backend then refuses it as it always
//! has: `NoSuchBucket` or `AccessDenied`) or, anonymous, is `AccessDenied`.
//! Acting for the owner means what a grantee writes is stored, and
//! charged, as the owner's; the ACL of the version records the writer as
//! its owner. Anonymous requests for other operations are refused before
//! they reach the gateway ([`crate::access::SignaturePolicy`]).
//!
//! Object reads by non-owners follow AWS on missing keys ([`object_actor`]):
//! whether a key exists is told only to whoever may list the bucket, so a
//! missing key is `NoSuchKey` when `s3:ListBucket` on that prefix is
//! granted and `AccessDenied` otherwise (an anonymous client cannot probe
//! key names of a bucket that only publishes some objects).

use s3s::{s3_error, S3Request, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::acl::{Requester, ANONYMOUS_ID};
use crate::backend::{Backend, BackendError, KeyStore, ObjectInfo};
use crate::policy::{Action, Request};
use crate::public::AccessView;

/// Who makes a request, and whom the gateway acts for.
pub(super) struct Actor {
    /// The tenant the backend is called as: the bucket's owner when the
    /// request is the owner's or granted.
    pub(super) tenant: String,
    /// The requester's canonical ID (its tenant, or [`ANONYMOUS_ID`]).
    pub(super) requester: String,
    /// The bucket's access documents (`None`: the bucket does not exist,
    /// or the request was not granted).
    pub(super) view: Option<AccessView>,
}

impl Actor {
    /// The bucket's owner (the requester's own tenant when not granted).
    pub(super) fn bucket_owner(&self) -> &str {
        self.view
            .as_ref()
            .map_or(&self.tenant, |v| v.owner.as_str())
    }
}

/// The requester's tenant (`None`: anonymous).
fn requester<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
) -> S3Result<Option<String>> {
    match req.credentials {
        Some(_) => Ok(Some(gw.tenant(req)?)),
        None => Ok(None),
    }
}

/// The [`Actor`] of a bucket-level request (or a write of `asked.key`):
/// see the module doc.
pub(super) async fn bucket_actor<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    asked: Request<'_>,
) -> S3Result<Actor> {
    let tenant = requester(gw, req)?;
    let id = tenant.clone().unwrap_or_else(|| ANONYMOUS_ID.to_owned());
    let docs = gw
        .backend
        .bucket_access(bucket)
        .await
        .map_err(to_s3_error)?;
    let who = match &tenant {
        Some(t) => Requester::Tenant(t),
        None => Requester::Anonymous,
    };
    match (&tenant, docs) {
        (Some(t), Some(docs)) if docs.owner == *t => Ok(Actor {
            tenant: t.clone(),
            requester: id,
            view: Some(AccessView::new(bucket, &docs)),
        }),
        (_, Some(docs)) => {
            let view = AccessView::new(bucket, &docs);
            if view.allows(who, &asked, None) {
                Ok(Actor {
                    tenant: docs.owner.clone(),
                    requester: id,
                    view: Some(view),
                })
            } else {
                refused(tenant)
            }
        }
        (_, None) => refused(tenant),
    }
}

/// Not granted: another tenant acts for itself (the backend refuses it as
/// it always has, `NoSuchBucket` or `AccessDenied`); anonymous is
/// `AccessDenied`.
fn refused(tenant: Option<String>) -> S3Result<Actor> {
    match tenant {
        Some(t) => Ok(Actor {
            tenant: t.clone(),
            requester: t,
            view: None,
        }),
        None => Err(s3_error!(AccessDenied)),
    }
}

/// The tenant a ListObjects(V2), ListObjectVersions or HeadBucket of
/// `bucket` acts for.
pub(super) async fn read_as<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    asked: Request<'_>,
) -> S3Result<String> {
    Ok(bucket_actor(gw, req, bucket, asked).await?.tenant)
}

/// Refuses `response-*` overrides on an anonymous GET, as AWS does.
pub(super) fn refuse_anonymous_overrides<T>(req: &S3Request<T>, overrides: bool) -> S3Result<()> {
    if req.credentials.is_none() && overrides {
        return Err(s3_error!(
            InvalidRequest,
            "Request specific response headers cannot be used for anonymous GET requests."
        ));
    }
    Ok(())
}

/// The [`Actor`] of a request about one object version (`action`:
/// GetObject, GetObjectAcl or PutObjectAcl; a GetObject naming a version is
/// `s3:GetObjectVersion`), decided with that version's ACL; with it, the
/// version as the owner sees it when the requester is not the owner.
pub(super) async fn object_actor<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    action: Action,
) -> S3Result<(Actor, Option<ObjectInfo>)> {
    let tenant = requester(gw, req)?;
    let Some(docs) = gw
        .backend
        .bucket_access(bucket)
        .await
        .map_err(to_s3_error)?
    else {
        return Ok((refused(tenant)?, None));
    };
    let id = tenant.clone().unwrap_or_else(|| ANONYMOUS_ID.to_owned());
    let view = AccessView::new(bucket, &docs);
    if tenant.as_deref() == Some(docs.owner.as_str()) {
        let actor = Actor {
            tenant: docs.owner.clone(),
            requester: id,
            view: Some(view),
        };
        return Ok((actor, None));
    }
    let who = match &tenant {
        Some(t) => Requester::Tenant(t),
        None => Requester::Anonymous,
    };
    let action = match (action, version_id) {
        (Action::GetObject, Some(_)) => Action::GetObjectVersion,
        // The tagging of a version named by id is the owner's alone.
        (
            Action::GetObjectTagging | Action::PutObjectTagging | Action::DeleteObjectTagging,
            Some(_),
        ) => return Err(s3_error!(AccessDenied)),
        (a, _) => a,
    };
    let asked = Request {
        action,
        key: Some(key),
        prefix: None,
    };
    let list = view.allows(
        who,
        &Request {
            action: Action::ListBucket,
            key: None,
            prefix: Some(key),
        },
        None,
    );
    let info = match gw
        .backend
        .head_object(&docs.owner, bucket, key, version_id)
        .await
    {
        Ok(info) => info,
        // Listing is granted: whether the key exists is no secret.
        Err(e @ (BackendError::NoSuchKey | BackendError::NoSuchVersion)) if list => {
            return Err(to_s3_error(e))
        }
        Err(BackendError::NoSuchKey | BackendError::NoSuchVersion) => {
            return Err(s3_error!(AccessDenied))
        }
        Err(BackendError::MethodNotAllowed) if list => {
            return Err(to_s3_error(BackendError::MethodNotAllowed))
        }
        Err(BackendError::MethodNotAllowed) => return Err(s3_error!(AccessDenied)),
        Err(e) => return Err(to_s3_error(e)),
    };
    let acl = view.object_acl(info.acl.as_deref());
    if !view.allows(who, &asked, Some(&acl)) {
        return Err(s3_error!(AccessDenied));
    }
    let actor = Actor {
        tenant: docs.owner.clone(),
        requester: id,
        view: Some(view),
    };
    Ok((actor, Some(info)))
}

/// The tenant a GetObject/HeadObject of `key` acts for (see the module
/// doc), and the version to read: for anyone but the owner, exactly the
/// version whose ACL granted the read (a version written after the check,
/// with another ACL, is never served on the strength of the old one).
pub(super) async fn object_reader<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: &Option<String>,
) -> S3Result<(String, Option<String>)> {
    let (actor, info) = object_actor(
        gw,
        req,
        bucket,
        key,
        version_id.as_deref(),
        Action::GetObject,
    )
    .await?;
    let version = match info {
        Some(checked) => Some(checked.version_id),
        None => version_id.clone(),
    };
    Ok((actor.tenant, version))
}
