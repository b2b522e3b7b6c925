//! What the gateway accepts once s3s has checked a request's signature.
//!
//! s3s 0.14 checks AWS Signature V2 as well as V4 (header, presigned URL
//! and POST form) and accepts a V4 presigned URL of any `X-Amz-Expires` that
//! fits in a `u32` (136 years). The gateway takes neither: SigV2 is refused
//! (SHA-1, no date-skew check, and s3s compares its signatures in variable
//! time — refusing every SigV2 request after the check means no forged or
//! guessed V2 signature ever gets anything), and a presigned URL may live at
//! most [`MAX_PRESIGNED_EXPIRES_SECS`] (7 days, as AWS). A presigned URL
//! living longer, or with a negative or non-numeric `X-Amz-Expires`, is
//! answered as AWS does: `AuthorizationQueryParametersError` (400), by
//! [`presigned_expiry_error`] before s3s parses the request (s3s's own
//! parser would say `InvalidRequest`) and again by [`SignaturePolicy`].
//!
//! Anonymous (unsigned) requests are refused except for what a bucket
//! policy or an ACL can grant ([`ANONYMOUS_OPERATIONS`]); the gateway then
//! decides each one from the bucket's documents (`gateway::readers`).

use s3s::access::{S3Access, S3AccessContext};
use s3s::{s3_error, S3Result};

/// Longest lifetime of a presigned URL: 7 days, AWS's limit.
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 7 * 24 * 3600;

/// The operations an unsigned request may reach the gateway with: what a
/// bucket policy or an ACL can grant to everyone (reads, listings, simple
/// writes and deletes, and the ACLs themselves); the gateway then decides
/// each from the bucket's documents. Every other unsigned request
/// (ListBuckets, multipart uploads, copies, configuration included) is
/// `AccessDenied`.
pub const ANONYMOUS_OPERATIONS: [&str; 16] = [
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "ListObjectVersions",
    "HeadBucket",
    "PutObject",
    "DeleteObject",
    "DeleteObjects",
    "GetBucketAcl",
    "PutBucketAcl",
    "GetObjectAcl",
    "PutObjectAcl",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
];

/// Why a signed request is refused regardless of its signature.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// Signed with AWS Signature Version 2.
    #[error("AWS Signature Version 2 is not accepted: sign requests with Signature Version 4")]
    SigV2,
    /// A presigned URL that lives too long.
    #[error("a presigned URL may live at most {max} seconds (7 days); this one says X-Amz-Expires={found}")]
    PresignedTooLong {
        /// The `X-Amz-Expires` found.
        found: String,
        /// The limit.
        max: u64,
    },
}

/// Checks the signature scheme of a request from its `Authorization` header
/// and query string (both as sent).
pub fn check_signature_scheme(
    authorization: Option<&str>,
    query: Option<&str>,
) -> Result<(), SignatureRefusal> {
    // SigV2 header: `AWS AKID:signature` (V4 starts `AWS4-HMAC-SHA256 `).
    if authorization.is_some_and(|a| a.starts_with("AWS ")) {
        return Err(SignatureRefusal::SigV2);
    }
    let pairs = || form_urlencoded::parse(query.unwrap_or("").as_bytes());
    if pairs().any(|(k, _)| k == "Signature" || k == "AWSAccessKeyId") {
        return Err(SignatureRefusal::SigV2);
    }
    if let Some((_, v)) = pairs().find(|(k, _)| k == "X-Amz-Expires") {
        if v.parse::<u64>()
            .map_or(true, |s| s > MAX_PRESIGNED_EXPIRES_SECS)
        {
            return Err(SignatureRefusal::PresignedTooLong {
                found: v.into_owned(),
                max: MAX_PRESIGNED_EXPIRES_SECS,
            });
        }
    }
    Ok(())
}

/// The answer to a presigned SigV4 URL whose `X-Amz-Expires` is not a
/// number of seconds from 0 to [`MAX_PRESIGNED_EXPIRES_SECS`] (0 is
/// accepted here and has expired when s3s checks it: 403): AWS's
/// `AuthorizationQueryParametersError` (400). `None` for other requests.
pub fn presigned_expiry_error(query: Option<&str>) -> Option<s3s::S3Error> {
    let pairs = || form_urlencoded::parse(query.unwrap_or("").as_bytes());
    if !pairs().any(|(k, _)| k == "X-Amz-Algorithm") {
        return None;
    }
    let (_, v) = pairs().find(|(k, _)| k == "X-Amz-Expires")?;
    let ok = v
        .parse::<u64>()
        .is_ok_and(|s| s <= MAX_PRESIGNED_EXPIRES_SECS);
    (!ok).then(|| {
        let why = if v.starts_with('-') {
            "X-Amz-Expires must be non-negative".to_owned()
        } else {
            format!(
                "X-Amz-Expires must be less than a week (in seconds) that is 604800; found {v:?}"
            )
        };
        s3s::S3Error::with_message(s3s::S3ErrorCode::AuthorizationQueryParametersError, why)
    })
}

/// The gateway's [`S3Access`]: a signed request, signed with SigV4, and a
/// presigned URL of at most 7 days.
pub struct SignaturePolicy;

#[async_trait::async_trait]
impl S3Access for SignaturePolicy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            if ANONYMOUS_OPERATIONS.contains(&cx.s3_op().name()) {
                return Ok(());
            }
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        let authorization = cx
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        check_signature_scheme(authorization, cx.uri().query()).map_err(|e| match e {
            SignatureRefusal::PresignedTooLong { .. } => s3s::S3Error::with_message(
                s3s::S3ErrorCode::AuthorizationQueryParametersError,
                e.to_string(),
            ),
            e => s3_error!(AccessDenied, "{e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_expiry_out_of_bounds_is_an_authorization_query_error() {
        let q = |e: &str| format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={e}");
        for bad in ["-1", "-604800", "604801", "x", "99999999999999999999"] {
            let e = presigned_expiry_error(Some(&q(bad))).expect(bad);
            assert_eq!(e.code().as_str(), "AuthorizationQueryParametersError");
            assert_eq!(e.code().status_code().map(|s| s.as_u16()), Some(400));
        }
        for ok in ["0", "1", "604800"] {
            assert!(presigned_expiry_error(Some(&q(ok))).is_none(), "{ok}");
        }
        assert!(presigned_expiry_error(Some("X-Amz-Expires=-1")).is_none());
        assert!(presigned_expiry_error(None).is_none());
    }

    #[test]
    fn sigv2_and_long_presigned_urls_are_refused() {
        let v4 = "AWS4-HMAC-SHA256 Credential=AK/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
        assert_eq!(check_signature_scheme(Some(v4), None), Ok(()));
        assert_eq!(
            check_signature_scheme(Some("AWS AKID:c2lnbmF0dXJl"), None),
            Err(SignatureRefusal::SigV2)
        );
        assert_eq!(
            check_signature_scheme(None, Some("AWSAccessKeyId=AK&Expires=1&Signature=x")),
            Err(SignatureRefusal::SigV2)
        );
        let presigned = |e: &str| {
            format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={e}&X-Amz-Signature=00")
        };
        assert_eq!(
            check_signature_scheme(None, Some(&presigned("604800"))),
            Ok(())
        );
        assert_eq!(check_signature_scheme(None, Some(&presigned("1"))), Ok(()));
        for bad in ["604801", "4294967295", "-1", "1e9", ""] {
            assert!(
                matches!(
                    check_signature_scheme(None, Some(&presigned(bad))),
                    Err(SignatureRefusal::PresignedTooLong { .. })
                ),
                "{bad}"
            );
        }
    }
}
