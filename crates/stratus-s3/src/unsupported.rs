//! Object headers asking for what the gateway does not implement: refused
//! with `NotImplemented`, never dropped (issue 19: nothing silently
//! ignored).
//!
//! A write that asks for a website redirect or another storage class would
//! otherwise be stored without them while its client believes they hold.
//! What clients send by default and is true here passes: the `STANDARD`
//! storage class. (ACLs and object lock are implemented: `acl`,
//! `gateway::object_lock`.)

use s3s::dto::StorageClass;
use s3s::{s3_error, S3Result};

/// What a write (put, copy, multipart upload) asks beyond storing bytes.
pub(crate) struct Extras<'a> {
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
            storage_class: $i.storage_class.as_ref().map(|c| c.as_str()),
            website_redirect: $i.website_redirect_location.is_some(),
        }
    };
}
pub(crate) use extras_of;

/// Refuses a write asking for anything in [`Extras`] the gateway does not
/// do, naming it.
pub(crate) fn refuse_extras(x: &Extras<'_>) -> S3Result<()> {
    let refused = if x.website_redirect {
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
            storage_class: None,
            website_redirect: false,
        }
    }

    #[test]
    fn defaults_clients_send_pass_and_the_rest_is_refused() {
        for ok in [
            none(),
            Extras {
                storage_class: Some("STANDARD"),
                ..none()
            },
        ] {
            assert!(refuse_extras(&ok).is_ok());
        }
        for bad in [
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
