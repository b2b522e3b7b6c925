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

use s3s::{s3_error, S3Request, S3Result};

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, KeyStore};
use crate::policy::Request;
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
