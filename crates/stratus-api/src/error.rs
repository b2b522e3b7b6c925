//! JSON errors with stable codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::ControlError;
use stratus_state::ApplyError;
use stratus_store::StoreError;
use stratus_types::{ErrorCode, ParseNodeIdError};
use utoipa::ToSchema;

/// Body of every error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
}

/// An API error. The variant says what went wrong (callers and tests match
/// on it); [`ApiError::code`] is its stable [`ErrorCode`] and
/// [`ApiError::status`] the HTTP status clients get: the one place the API
/// maps error kinds to statuses. Errors of the layers below keep their own
/// kind ([`ApiError::Control`], [`ApiError::Store`], [`ApiError::Rejected`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A control-plane operation failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state refused a read-side check (a bucket of another tenant).
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// Missing, malformed, unknown, revoked or expired credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's token does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A request body is not the JSON the route takes.
    #[error("malformed request body: {0}")]
    MalformedBody(#[source] serde_json::Error),
    /// A WASM module is neither a valid WebAssembly binary nor WAT text (the
    /// validator's words).
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// A node id in the path does not parse.
    #[error("{0}")]
    BadNodeId(#[from] ParseNodeIdError),
    /// Reading the request body failed.
    #[error("reading the upload: {0}")]
    Body(#[source] axum::Error),
    /// No such route, workload, instance, node or token.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (or several things
    /// match).
    #[error("{0}")]
    Conflict(String),
    /// The request is larger than a limit allows; the message names it.
    #[error("{0}")]
    TooLarge(String),
    /// An upload could not be spooled to a temporary file.
    #[error("cannot spool the upload: {0}")]
    Spool(#[source] std::io::Error),
    /// A bug.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code of this error (the JSON `code`).
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Control(e) => e.code(),
            ApiError::Store(e) => e.code(),
            ApiError::Rejected(e) => e.code(),
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::BadRequest(_)
            | ApiError::MalformedBody(_)
            | ApiError::InvalidModule(_)
            | ApiError::BadNodeId(_)
            | ApiError::Body(_) => ErrorCode::BadRequest,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::TooLarge(_) => ErrorCode::TooLarge,
            ApiError::Spool(_) | ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The HTTP status of this error (from its code, as
    /// [`ErrorCode::http_status`] documents for every client).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub(crate) fn unauthenticated(m: impl Into<String>) -> Self {
        ApiError::Unauthenticated(m.into())
    }
    pub(crate) fn forbidden(m: impl Into<String>) -> Self {
        ApiError::Forbidden(m.into())
    }
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        ApiError::BadRequest(m.into())
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        ApiError::NotFound(m.into())
    }
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        ApiError::Conflict(m.into())
    }
    pub(crate) fn too_large(m: impl Into<String>) -> Self {
        ApiError::TooLarge(m.into())
    }
    pub(crate) fn internal(m: impl Into<String>) -> Self {
        ApiError::Internal(m.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind keeps the JSON code and HTTP status the `{code, message}`
    /// struct gave the same error, and its words.
    #[test]
    fn every_variant_keeps_its_code_status_and_words() {
        let spool = std::io::Error::other("disk full");
        let json_err = serde_json::from_str::<u32>("{").expect_err("not a number");
        let json_words = json_err.to_string();
        let bad_id = "zz".parse::<stratus_types::NodeId>().err();
        let cases: Vec<(ApiError, ErrorCode, u16, String)> = vec![
            (
                ControlError::NoLeader.into(),
                ErrorCode::NoLeader,
                503,
                ControlError::NoLeader.to_string(),
            ),
            (
                ControlError::Rejected(ApplyError::from_code(ErrorCode::NotFound, "gone")).into(),
                ErrorCode::NotFound,
                404,
                "gone".into(),
            ),
            (
                StoreError::ModuleTooLarge { limit: 3 }.into(),
                ErrorCode::TooLarge,
                413,
                "the module is larger than the limit of 3 bytes".into(),
            ),
            (
                ApplyError::from_code(ErrorCode::Forbidden, "not yours").into(),
                ErrorCode::Forbidden,
                403,
                "not yours".into(),
            ),
            (
                ApiError::unauthenticated("invalid or revoked token"),
                ErrorCode::Unauthenticated,
                401,
                "invalid or revoked token".into(),
            ),
            (
                ApiError::forbidden("f"),
                ErrorCode::Forbidden,
                403,
                "f".into(),
            ),
            (
                ApiError::bad_request("b"),
                ErrorCode::BadRequest,
                400,
                "b".into(),
            ),
            (
                ApiError::InvalidModule("empty".into()),
                ErrorCode::BadRequest,
                400,
                "invalid module: empty".into(),
            ),
            (
                ApiError::MalformedBody(json_err),
                ErrorCode::BadRequest,
                400,
                format!("malformed request body: {json_words}"),
            ),
            (
                ApiError::not_found("n"),
                ErrorCode::NotFound,
                404,
                "n".into(),
            ),
            (
                ApiError::conflict("c"),
                ErrorCode::Conflict,
                409,
                "c".into(),
            ),
            (
                ApiError::too_large("t"),
                ErrorCode::TooLarge,
                413,
                "t".into(),
            ),
            (
                ApiError::Spool(spool),
                ErrorCode::Internal,
                500,
                "cannot spool the upload: disk full".into(),
            ),
            (
                ApiError::internal("i"),
                ErrorCode::Internal,
                500,
                "i".into(),
            ),
            (
                ApiError::Body(axum::Error::new(std::io::Error::other("reset"))),
                ErrorCode::BadRequest,
                400,
                "reading the upload: reset".into(),
            ),
        ];
        for (e, code, status, words) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.to_string(), words);
        }
        let bad_id = bad_id.expect("\"zz\" is not a node id");
        let words = bad_id.to_string();
        let e = ApiError::from(bad_id);
        assert_eq!(
            (e.code(), e.status().as_u16()),
            (ErrorCode::BadRequest, 400)
        );
        assert_eq!(e.to_string(), words);
    }

    /// The response body is `{"error": {"code", "message"}}` with the
    /// status of the code.
    #[tokio::test]
    async fn response_body_is_code_and_message() {
        let resp = ApiError::conflict("bucket b exists").into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body.error.code, ErrorCode::Conflict);
        assert_eq!(body.error.message, "bucket b exists");
    }
}
