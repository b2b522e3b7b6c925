//! Reads by anyone but the bucket's owner: anonymous requests and other
//! tenants, granted by the bucket's policy or canned ACL ([`crate::public`]).
//!
//! GetObject, HeadObject, ListObjects and ListObjectsV2 ask [`read_as`] which
//! tenant to act for instead of taking the key's tenant: the owner's own
//! requests act for it as always; a request from anyone else acts for the
//! owner exactly when [`AccessView::allows`] grants the action on that key or
//! prefix, and is `AccessDenied` otherwise. Every other operation still needs
//! the owner's signature (anonymous ones are refused by
//! [`crate::access::SignaturePolicy`] before they reach the gateway).
//!
//! Object reads by non-owners follow AWS on missing keys ([`object_reader`]):
//! whether a key exists is told only to whoever may list it, so a missing
//! key is `NoSuchKey` when `s3:ListBucket` on that prefix is granted and
//! `AccessDenied` otherwise (an anonymous client cannot probe key names of a
//! bucket that only publishes some objects), and reading a specific version
//! (`s3:GetObjectVersion`) is the owner's alone.

use s3s::{s3_error, S3Request, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BackendError, KeyStore};
use crate::policy::{Action, Request};
use crate::public::AccessView;

/// The tenant a read of `bucket` acts for, per the module doc.
pub(super) async fn read_as<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    asked: Request<'_>,
) -> S3Result<String> {
    let tenant = match req.credentials {
        Some(_) => Some(gw.tenant(req)?),
        None => None,
    };
    let docs = gw
        .backend
        .bucket_access(bucket)
        .await
        .map_err(to_s3_error)?;
    match (tenant, docs) {
        (Some(tenant), Some(docs)) if docs.owner == tenant => Ok(tenant),
        (_, Some(docs)) if AccessView::new(bucket, &docs).allows(&asked) => Ok(docs.owner),
        // Another tenant, not granted: it acts for itself, and the backend
        // refuses it as it always has (`NoSuchBucket` or `AccessDenied`).
        (Some(tenant), _) => Ok(tenant),
        (None, _) => Err(s3_error!(AccessDenied)),
    }
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

/// The tenant a GetObject/HeadObject of `key` acts for (see the module doc).
pub(super) async fn object_reader<B: Backend, K: KeyStore, T>(
    gw: &Gateway<B, K>,
    req: &S3Request<T>,
    bucket: &str,
    key: &str,
    version_id: &Option<String>,
) -> S3Result<String> {
    let tenant = match req.credentials {
        Some(_) => Some(gw.tenant(req)?),
        None => None,
    };
    let refused = |tenant: Option<String>| tenant.ok_or_else(|| s3_error!(AccessDenied));
    let Some(docs) = gw
        .backend
        .bucket_access(bucket)
        .await
        .map_err(to_s3_error)?
    else {
        return refused(tenant);
    };
    if tenant.as_deref() == Some(docs.owner.as_str()) {
        return Ok(docs.owner);
    }
    let view = AccessView::new(bucket, &docs);
    let get = view.allows(&Request {
        action: Action::GetObject,
        key: Some(key),
        prefix: None,
    });
    let list = view.allows(&Request {
        action: Action::ListBucket,
        key: None,
        prefix: Some(key),
    });
    if !get && !list {
        return refused(tenant);
    }
    if version_id.is_some() {
        return Err(s3_error!(
            AccessDenied,
            "reading a specific version needs s3:GetObjectVersion, which only the owner has"
        ));
    }
    match gw.backend.head_object(&docs.owner, bucket, key, None).await {
        Ok(_) if get => Ok(docs.owner),
        Err(BackendError::NoSuchKey) if list => Err(s3_error!(NoSuchKey)),
        Ok(_) | Err(BackendError::NoSuchKey) => Err(s3_error!(AccessDenied)),
        Err(e) => Err(to_s3_error(e)),
    }
}
