//! What applying a command gives back.

use serde::{Deserialize, Serialize};
use stratus_types::ErrorCode;

/// Why a command was refused by the state machine. Refusals are
/// deterministic: every replica refuses the same command the same way.
///
/// The variant is the kind of refusal (callers match on it); it carries the
/// sentence shown to people, which names the thing and what to do. The
/// stable [`ErrorCode`] of each kind is [`ApplyError::code`]. On the wire
/// (results forwarded between replicas, bincode) an `ApplyError` is the
/// `{code, message}` pair it always was ([`WireApplyError`]), so replicas
/// of different versions still understand each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "WireApplyError", from = "WireApplyError")]
pub enum ApplyError {
    /// A credential is unknown, revoked or expired.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (another tenant's thing, a banned node,
    /// the wrong node).
    #[error("{0}")]
    Forbidden(String),
    /// The command is malformed (a bad name, a missing field, a value out
    /// of range).
    #[error("{0}")]
    Invalid(String),
    /// The thing the command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing already exists or is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// The command is larger than a limit allows; the message names it.
    #[error("{0}")]
    TooLarge(String),
    /// A tenant quota would be exceeded; the message names the quota, its
    /// limit and the current use.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A command reached the wrong part of the state machine (a bug).
    #[error("{0}")]
    Internal(String),
    /// An account lacks the money an entry takes; the message names the
    /// account, its balance and the shortfall.
    #[error("{0}")]
    InsufficientFunds(String),
    /// A refusal whose code this version never produces (read from another
    /// version's answer), kept as received.
    #[error("{message}")]
    Other {
        /// Stable code as received.
        code: ErrorCode,
        /// Message as received.
        message: String,
    },
}

impl ApplyError {
    /// The stable code of this kind of refusal (JSON `code`, HTTP status and
    /// S3 error code derive from it).
    pub fn code(&self) -> ErrorCode {
        match self {
            ApplyError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApplyError::Forbidden(_) => ErrorCode::Forbidden,
            ApplyError::Invalid(_) => ErrorCode::BadRequest,
            ApplyError::NotFound(_) => ErrorCode::NotFound,
            ApplyError::Conflict(_) => ErrorCode::Conflict,
            ApplyError::TooLarge(_) => ErrorCode::TooLarge,
            ApplyError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            ApplyError::Internal(_) => ErrorCode::Internal,
            ApplyError::InsufficientFunds(_) => ErrorCode::InsufficientFunds,
            ApplyError::Other { code, .. } => *code,
        }
    }

    /// The sentence shown to people.
    pub fn message(&self) -> &str {
        match self {
            ApplyError::Unauthenticated(m)
            | ApplyError::Forbidden(m)
            | ApplyError::Invalid(m)
            | ApplyError::NotFound(m)
            | ApplyError::Conflict(m)
            | ApplyError::TooLarge(m)
            | ApplyError::QuotaExceeded(m)
            | ApplyError::Internal(m)
            | ApplyError::InsufficientFunds(m)
            | ApplyError::Other { message: m, .. } => m,
        }
    }

    /// The error of kind `code` saying `message` (the inverse of
    /// [`ApplyError::code`] and [`ApplyError::message`]).
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        let m = message.into();
        match code {
            ErrorCode::Unauthenticated => ApplyError::Unauthenticated(m),
            ErrorCode::Forbidden => ApplyError::Forbidden(m),
            ErrorCode::BadRequest => ApplyError::Invalid(m),
            ErrorCode::NotFound => ApplyError::NotFound(m),
            ErrorCode::Conflict => ApplyError::Conflict(m),
            ErrorCode::TooLarge => ApplyError::TooLarge(m),
            ErrorCode::QuotaExceeded => ApplyError::QuotaExceeded(m),
            ErrorCode::Internal => ApplyError::Internal(m),
            ErrorCode::InsufficientFunds => ApplyError::InsufficientFunds(m),
            code @ (ErrorCode::NoLeader
            | ErrorCode::Unavailable
            | ErrorCode::InsufficientStorage) => ApplyError::Other { code, message: m },
        }
    }

    pub(crate) fn unauthenticated(m: impl Into<String>) -> Self {
        ApplyError::Unauthenticated(m.into())
    }
    pub(crate) fn forbidden(m: impl Into<String>) -> Self {
        ApplyError::Forbidden(m.into())
    }
    pub(crate) fn invalid(m: impl Into<String>) -> Self {
        ApplyError::Invalid(m.into())
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        ApplyError::NotFound(m.into())
    }
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        ApplyError::Conflict(m.into())
    }
    pub(crate) fn too_large(m: impl Into<String>) -> Self {
        ApplyError::TooLarge(m.into())
    }
    pub(crate) fn quota_exceeded(m: impl Into<String>) -> Self {
        ApplyError::QuotaExceeded(m.into())
    }
    pub(crate) fn internal(m: impl Into<String>) -> Self {
        ApplyError::Internal(m.into())
    }
}

/// The serialized form of an [`ApplyError`]: the `{code, message}` struct
/// `ApplyError` was before it became an enum (same fields, same order, so
/// bincode and JSON bytes are unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireApplyError {
    /// Stable code.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
}

impl From<ApplyError> for WireApplyError {
    fn from(e: ApplyError) -> Self {
        WireApplyError {
            code: e.code(),
            message: e.message().to_owned(),
        }
    }
}

impl From<WireApplyError> for ApplyError {
    fn from(w: WireApplyError) -> Self {
        ApplyError::from_code(w.code, w.message)
    }
}

/// Outcome of applying one command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// `None` if the command took effect.
    pub error: Option<ApplyError>,
    /// Version (log index) of the variable written by `PutVar`.
    pub version: Option<u64>,
    /// Results of the commands of a [`Command::Batch`], in order.
    #[serde(default)]
    pub batch: Vec<CommandResult>,
    /// Id produced (object version, multipart upload).
    #[serde(default)]
    pub id: Option<String>,
}

impl CommandResult {
    /// Converts into a `Result`.
    pub fn into_result(self) -> Result<Option<u64>, ApplyError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CODES: [ErrorCode; 12] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::BadRequest,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::NoLeader,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::TooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::InsufficientStorage,
        ErrorCode::InsufficientFunds,
    ];

    /// Each kind keeps the code (and so the HTTP status) the
    /// `{code, message}` struct had for the same refusal.
    #[test]
    fn every_variant_keeps_its_code() {
        let cases = [
            (
                ApplyError::unauthenticated("m"),
                ErrorCode::Unauthenticated,
                401,
            ),
            (ApplyError::forbidden("m"), ErrorCode::Forbidden, 403),
            (ApplyError::invalid("m"), ErrorCode::BadRequest, 400),
            (ApplyError::not_found("m"), ErrorCode::NotFound, 404),
            (ApplyError::conflict("m"), ErrorCode::Conflict, 409),
            (ApplyError::too_large("m"), ErrorCode::TooLarge, 413),
            (
                ApplyError::quota_exceeded("m"),
                ErrorCode::QuotaExceeded,
                403,
            ),
            (ApplyError::internal("m"), ErrorCode::Internal, 500),
            (
                ApplyError::InsufficientFunds("m".into()),
                ErrorCode::InsufficientFunds,
                402,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.code().http_status(), status, "{e:?}");
            assert_eq!(e.to_string(), "m");
            assert_eq!(e.message(), "m");
        }
        for code in ALL_CODES {
            let e = ApplyError::from_code(code, "why");
            assert_eq!(e.code(), code);
            assert_eq!(e.to_string(), "why");
        }
    }

    /// The serialized form is the old `{code, message}` struct, byte for
    /// byte (bincode between replicas, JSON in tools), both ways.
    #[test]
    fn wire_form_is_the_old_struct() {
        for code in ALL_CODES {
            let e = ApplyError::from_code(code, "node n1 is not registered");
            let old = WireApplyError {
                code,
                message: "node n1 is not registered".into(),
            };
            let bytes = bincode::serialize(&e).expect("encode");
            assert_eq!(bytes, bincode::serialize(&old).expect("encode old"));
            let back: ApplyError = bincode::deserialize(&bytes).expect("decode");
            assert_eq!(back, e);
            let json = serde_json::to_string(&e).expect("json");
            assert_eq!(json, serde_json::to_string(&old).expect("json old"));
            let back: ApplyError = serde_json::from_str(&json).expect("json back");
            assert_eq!(back, e);
        }
        let r = CommandResult {
            error: Some(ApplyError::quota_exceeded("quota exceeded: x")),
            ..CommandResult::default()
        };
        let back: CommandResult =
            bincode::deserialize(&bincode::serialize(&r).expect("encode")).expect("decode");
        assert_eq!(back, r);
    }
}
