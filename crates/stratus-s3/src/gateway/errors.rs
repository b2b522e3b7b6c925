//! Backend errors to S3 errors: the one place a [`BackendError`] gets its
//! S3 error code and HTTP status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use s3s::{s3_error, S3Error, S3ErrorCode};

use crate::backend::BackendError;

/// Maps a backend error to the S3 error clients expect.
pub fn to_s3_error(e: BackendError) -> S3Error {
    use BackendError as E;
    match e {
        E::NoSuchBucket => s3_error!(NoSuchBucket),
        E::BucketAlreadyOwnedByYou => s3_error!(BucketAlreadyOwnedByYou),
        E::BucketAlreadyExists => s3_error!(BucketAlreadyExists),
        E::BucketNotEmpty => s3_error!(BucketNotEmpty),
        E::NoSuchKey => s3_error!(NoSuchKey),
        E::NoSuchVersion => s3_error!(NoSuchVersion),
        E::NoSuchUpload => s3_error!(NoSuchUpload),
        E::InvalidPart => s3_error!(InvalidPart),
        E::InvalidPartOrder => s3_error!(InvalidPartOrder),
        E::EntityTooSmall => s3_error!(EntityTooSmall),
        E::MethodNotAllowed => s3_error!(MethodNotAllowed),
        E::InvalidRange => s3_error!(InvalidRange),
        E::AccessDenied => s3_error!(AccessDenied),
        E::InvalidBucketName => s3_error!(InvalidBucketName),
        E::InvalidArgument(m) => S3Error::with_message(S3ErrorCode::InvalidArgument, m),
        E::EntityTooLarge(m) => S3Error::with_message(S3ErrorCode::EntityTooLarge, m),
        E::Internal(m) => {
            tracing::error!(error = %m, "backend internal error");
            S3Error::with_message(S3ErrorCode::InternalError, m)
        }
        E::ServiceUnavailable(m) => S3Error::with_message(S3ErrorCode::ServiceUnavailable, m),
        E::QuotaExceeded(m) => {
            // Not one of AWS's codes: Ceph RGW's, which S3 clients show as is.
            let mut e = S3Error::with_message(S3ErrorCode::Custom("QuotaExceeded".into()), m);
            e.set_status_code(http::StatusCode::FORBIDDEN);
            e
        }
        E::PreconditionFailed => s3_error!(PreconditionFailed),
        E::InvalidTag(m) => S3Error::with_message(S3ErrorCode::InvalidTag, m),
        E::InvalidPartNumber => {
            // Not in s3s's table of codes: AWS answers it with 416.
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("InvalidPartNumber".into()),
                "The requested partnumber is not satisfiable",
            );
            e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
            e
        }
        E::CustomerKeyRequired => crate::sse::key_required(),
        E::CustomerKeyMismatch => crate::sse::key_mismatch(),
        E::CustomerKeyNotApplicable => crate::sse::key_not_applicable(),
        E::InvalidRequest(m) => S3Error::with_message(S3ErrorCode::InvalidRequest, m),
        E::InvalidBucketState(m) => S3Error::with_message(S3ErrorCode::InvalidBucketState, m),
        E::NotImplemented(m) => S3Error::with_message(S3ErrorCode::NotImplemented, m),
    }
}

/// The result of write errors, taking a Content-MD5 mismatch into account.
pub(super) fn write_error(e: BackendError, mismatch: Option<&Arc<AtomicBool>>) -> S3Error {
    if mismatch.is_some_and(|m| m.load(Ordering::SeqCst)) {
        return s3_error!(BadDigest);
    }
    to_s3_error(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every backend error keeps the S3 code, HTTP status and message
    /// clients saw before the gateway was split.
    #[test]
    fn every_backend_error_keeps_its_s3_code_and_status() {
        use BackendError as E;
        let m = || "why".to_owned();
        let cases = [
            (E::NoSuchBucket, "NoSuchBucket", 404),
            (E::BucketAlreadyOwnedByYou, "BucketAlreadyOwnedByYou", 409),
            (E::BucketAlreadyExists, "BucketAlreadyExists", 409),
            (E::BucketNotEmpty, "BucketNotEmpty", 409),
            (E::NoSuchKey, "NoSuchKey", 404),
            (E::NoSuchVersion, "NoSuchVersion", 404),
            (E::NoSuchUpload, "NoSuchUpload", 404),
            (E::InvalidPart, "InvalidPart", 400),
            (E::InvalidPartOrder, "InvalidPartOrder", 400),
            (E::EntityTooSmall, "EntityTooSmall", 400),
            (E::MethodNotAllowed, "MethodNotAllowed", 405),
            (E::InvalidRange, "InvalidRange", 416),
            (E::AccessDenied, "AccessDenied", 403),
            (E::InvalidBucketName, "InvalidBucketName", 400),
            (E::InvalidArgument(m()), "InvalidArgument", 400),
            (E::EntityTooLarge(m()), "EntityTooLarge", 400),
            (E::Internal(m()), "InternalError", 500),
            (E::ServiceUnavailable(m()), "ServiceUnavailable", 503),
            (E::QuotaExceeded(m()), "QuotaExceeded", 403),
            (E::PreconditionFailed, "PreconditionFailed", 412),
            (E::InvalidTag(m()), "InvalidTag", 400),
            (E::InvalidPartNumber, "InvalidPartNumber", 416),
            (E::InvalidRequest(m()), "InvalidRequest", 400),
            (E::InvalidBucketState(m()), "InvalidBucketState", 409),
            (E::NotImplemented(m()), "NotImplemented", 501),
        ];
        for (e, code, status) in cases {
            let with_message = matches!(
                e,
                E::InvalidArgument(_)
                    | E::EntityTooLarge(_)
                    | E::Internal(_)
                    | E::ServiceUnavailable(_)
                    | E::QuotaExceeded(_)
                    | E::InvalidTag(_)
            );
            let s3 = to_s3_error(e);
            assert_eq!(s3.code().as_str(), code);
            let got = s3
                .status_code()
                .unwrap_or_else(|| s3.code().status_code().expect("a status"));
            assert_eq!(got.as_u16(), status, "{code}");
            if with_message {
                assert_eq!(s3.message(), Some("why"), "{code}");
            }
        }
    }

    /// A Content-MD5 mismatch wins over the backend's error.
    #[test]
    fn a_digest_mismatch_is_bad_digest() {
        let mismatch = Arc::new(AtomicBool::new(true));
        let e = write_error(BackendError::Internal("aborted".into()), Some(&mismatch));
        assert_eq!(e.code().as_str(), "BadDigest");
        let e = write_error(
            BackendError::NoSuchBucket,
            Some(&Arc::new(AtomicBool::new(false))),
        );
        assert_eq!(e.code().as_str(), "NoSuchBucket");
    }
}
