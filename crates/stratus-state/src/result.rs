//! What applying a command gives back.

use serde::{Deserialize, Serialize};
use stratus_types::ErrorCode;

/// Why a command was refused by the state machine. Refusals are
/// deterministic: every replica refuses the same command the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApplyError {
    /// Stable code.
    pub code: ErrorCode,
    /// What happened and what to do about it.
    pub message: String,
}

impl ApplyError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
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
