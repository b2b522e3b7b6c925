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
    }
}

/// The result of write errors, taking a Content-MD5 mismatch into account.
pub(super) fn write_error(e: BackendError, mismatch: Option<&Arc<AtomicBool>>) -> S3Error {
    if mismatch.is_some_and(|m| m.load(Ordering::SeqCst)) {
        return s3_error!(BadDigest);
    }
    to_s3_error(e)
}
