//! The harness's error type and the few helpers that attach context to it.

use std::error::Error as StdError;

/// Why a benchmark could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A benchmark found something other than it expected: bytes that
    /// differ, a cluster not ready in time, a child process that failed.
    #[error("{0}")]
    Check(String),
    /// An error, with what the harness was doing when it happened.
    #[error("{context}")]
    Context {
        /// What the harness was doing.
        context: String,
        /// The error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// An error of something the harness drives (files, processes, HTTP,
    /// the node, the state machine), passed on as it is.
    #[error(transparent)]
    Foreign(Box<dyn StdError + Send + Sync>),
}

/// The harness's result.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Conversions of the foreign errors the harness meets into
/// [`BenchError::Foreign`], so `?` works on them.
macro_rules! foreign {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for BenchError {
            fn from(e: $t) -> Self {
                BenchError::Foreign(Box::new(e))
            }
        })*
    };
}

foreign!(
    std::io::Error,
    reqwest::Error,
    serde_json::Error,
    tokio::task::JoinError,
    stratus_node::NodeError,
    stratus_control::ControlError,
    stratus_raft::StoreError,
    stratus_runtime::RuntimeError,
    openraft::StorageError<stratus_types::NodeId>,
    stratus_net::NetError,
    std::net::AddrParseError,
);

/// Adds what the harness was doing to an error (or to a missing value).
pub(crate) trait Context<T> {
    /// With a fixed text.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// With a text built only on error.
    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| BenchError::Context {
            context: context.into(),
            source: Box::new(e),
        })
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| BenchError::Context {
            context: f().into(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| BenchError::Check(context.into()))
    }

    fn with_context<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.ok_or_else(|| BenchError::Check(f().into()))
    }
}

/// Returns a [`BenchError::Check`] with a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::BenchError::Check(format!($($arg)*)))
    };
}
pub(crate) use bail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_cause_as_source() {
        let e: Result<()> = Err(std::io::Error::other("disk gone")).context("reading x");
        let e = e.err().map(|e| {
            let src = e.source().map(ToString::to_string);
            (e.to_string(), src)
        });
        assert_eq!(
            e,
            Some(("reading x".to_string(), Some("disk gone".to_string())))
        );
    }

    #[test]
    fn foreign_errors_read_as_themselves() {
        let e = BenchError::from(std::io::Error::other("no such file"));
        assert_eq!(e.to_string(), "no such file");
        assert!(e.source().is_none());
    }
}
