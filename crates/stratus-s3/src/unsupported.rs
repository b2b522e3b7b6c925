//! Object headers asking for what the gateway does not implement: refused
//! with `NotImplemented`, never dropped (issue 19: nothing silently
//! ignored).
//!
//! A write that asks for a public ACL, grants or a
//! website redirect would otherwise be stored without them while its client
//! believes they hold — a "private"
//! grant list that was never read. What clients send by default and is
//! true here passes: `x-amz-acl: private` and `bucket-owner-full-control`
//! (a tenant owns every object in its buckets), and the `STANDARD` storage
//! class.

use s3s::dto::{ObjectCannedACL, StorageClass};
use s3s::{s3_error, S3Result};

/// What a write (put, copy, multipart upload) asks beyond storing bytes.
pub(crate) struct Extras<'a> {
    /// `x-amz-acl`.
    pub(crate) acl: Option<&'a str>,
    /// Any `x-amz-grant-*` header.
    pub(crate) grants: bool,
    /// `x-amz-storage-class`.
    pub(crate) storage_class: Option<&'a str>,
    /// `x-amz-website-redirect-location`.
    pub(crate) website_redirect: bool,
}

/// The [`Extras`] of a write's input `$i` (the put, copy and multipart
/// inputs share these field names).
macro_rules! extras_of {
    ($i:expr) => {
        $crate::unsupported::Extras {
            acl: $i.acl.as_ref().map(|a| a.as_str()),
            grants: $i.grant_full_control.is_some()
                || $i.grant_read.is_some()
                || $i.grant_read_acp.is_some()
                || $i.grant_write_acp.is_some(),
            storage_class: $i.storage_class.as_ref().map(|c| c.as_str()),
            website_redirect: $i.website_redirect_location.is_some(),
        }
    };
}
pub(crate) use extras_of;

/// Refuses a write asking for anything in [`Extras`] the gateway does not
/// do, naming it.
pub(crate) fn refuse_extras(x: &Extras<'_>) -> S3Result<()> {
    match x.acl {
        None | Some(ObjectCannedACL::PRIVATE | ObjectCannedACL::BUCKET_OWNER_FULL_CONTROL) => {}
        Some(acl) => {
            return Err(s3_error!(
                NotImplemented,
                "x-amz-acl: {} is not supported on objects (object ACLs are not implemented): publish objects with a bucket policy or the bucket's public-read ACL",
                acl
            ))
        }
    }
    let refused = if x.grants {
        Some("x-amz-grant-* (ACL grants)")
    } else if x.website_redirect {
        Some("x-amz-website-redirect-location (website hosting)")
    } else {
        None
    };
    if let Some(what) = refused {
        return Err(s3_error!(NotImplemented, "{} is not supported", what));
    }
    match x.storage_class {
        None | Some(StorageClass::STANDARD) => Ok(()),
        Some(other) => Err(s3_error!(
            NotImplemented,
            "x-amz-storage-class: {} is not supported; every object is stored erasure-coded as STANDARD",
            other
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Extras<'static> {
        Extras {
            acl: None,
            grants: false,
            storage_class: None,
            website_redirect: false,
        }
    }

    #[test]
    fn defaults_clients_send_pass_and_the_rest_is_refused() {
        for ok in [
            none(),
            Extras {
                acl: Some("private"),
                storage_class: Some("STANDARD"),
                ..none()
            },
            Extras {
                acl: Some("bucket-owner-full-control"),
                ..none()
            },
        ] {
            assert!(refuse_extras(&ok).is_ok());
        }
        for bad in [
            Extras {
                acl: Some("public-read"),
                ..none()
            },
            Extras {
                grants: true,
                ..none()
            },
            Extras {
                website_redirect: true,
                ..none()
            },
            Extras {
                storage_class: Some("GLACIER"),
                ..none()
            },
        ] {
            let e = refuse_extras(&bad).expect_err("refused");
            assert_eq!(e.code(), &s3s::S3ErrorCode::NotImplemented);
        }
    }
}
