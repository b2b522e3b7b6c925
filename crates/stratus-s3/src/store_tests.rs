//! Unit tests of `store.rs` (the error mapping of the real backend).

use super::*;
use stratus_state::ApplyError;

/// Every store error kind reaches S3 clients as the backend error (and
/// so the S3 code) its code gave before: the one mapping of store kinds
/// to S3 answers.
#[test]
fn every_store_error_kind_keeps_its_backend_error() {
    let nf = || BackendError::NoSuchKey;
    let rejected = |code| StoreError::Rejected(ApplyError::from_code(code, "why"));
    let cases = [
        (rejected(ErrorCode::NotFound), BackendError::NoSuchKey),
        (StoreError::NotFound("why".into()), BackendError::NoSuchKey),
        (rejected(ErrorCode::Forbidden), BackendError::AccessDenied),
        (
            rejected(ErrorCode::Unauthenticated),
            BackendError::AccessDenied,
        ),
        (
            StoreError::Invalid("why".into()),
            BackendError::InvalidArgument("why".into()),
        ),
        (
            rejected(ErrorCode::Conflict),
            BackendError::ServiceUnavailable("why".into()),
        ),
        (
            StoreError::Meta {
                code: ErrorCode::NoLeader,
                message: "why".into(),
            },
            BackendError::ServiceUnavailable("why".into()),
        ),
        (
            StoreError::Unavailable("why".into()),
            BackendError::ServiceUnavailable("why".into()),
        ),
        (
            rejected(ErrorCode::InsufficientStorage),
            BackendError::ServiceUnavailable("why".into()),
        ),
        (
            StoreError::Internal("why".into()),
            BackendError::Internal("why".into()),
        ),
        (
            rejected(ErrorCode::TooLarge),
            BackendError::EntityTooLarge("why".into()),
        ),
        (
            rejected(ErrorCode::QuotaExceeded),
            BackendError::QuotaExceeded("why".into()),
        ),
    ];
    for (e, want) in cases {
        assert_eq!(store_err(e, nf()), want);
    }
}
