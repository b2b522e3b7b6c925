//! The typed errors of a pull.

use std::path::PathBuf;

/// Why a pull failed.
///
/// The variants are the distinctions a caller acts on: fix the reference,
/// supply (other) credentials, retry later (network), or distrust the
/// registry (digest or size mismatch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The image reference does not parse.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry does not know the repository, tag or digest.
    #[error("image {reference} not found on the registry")]
    NotFound {
        /// The normalized reference (or the manifest digest) that was asked for.
        reference: String,
    },
    /// The registry wants credentials and none were given.
    #[error(
        "registry {registry} needs credentials to pull {repository} \
         (some registries also answer so for a repository that does not exist)"
    )]
    AuthRequired {
        /// The registry host.
        registry: String,
        /// The repository asked for.
        repository: String,
    },
    /// The registry refused the credentials that were given (wrong user or
    /// password, or no pull right on the repository).
    #[error("registry {registry} refused the credentials for {repository}")]
    AuthRefused {
        /// The registry host.
        registry: String,
        /// The repository asked for.
        repository: String,
    },
    /// The registry could not be reached or the connection broke.
    #[error("network error talking to registry {registry}: {message}")]
    Network {
        /// The registry host.
        registry: String,
        /// The transport's description of the failure.
        message: String,
    },
    /// The registry answered with an error this crate has no better variant for.
    #[error("registry {registry} answered with an error: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// The registry's description of the error.
        message: String,
    },
    /// Content does not hash to the digest it was named by. Nothing of it is
    /// kept in the layout.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being fetched (`manifest`, `config`, `layer`).
        what: &'static str,
        /// The digest that named the content.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A blob is longer or shorter than its descriptor says.
    #[error("size mismatch for blob {digest}: descriptor says {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// The size in the descriptor.
        expected: u64,
        /// The bytes received (at least this many when the blob was too long).
        actual: u64,
    },
    /// A digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("unsupported or malformed digest {digest:?} (only sha256 is supported)")]
    UnsupportedDigest {
        /// The digest as found.
        digest: String,
    },
    /// A manifest of a kind this crate does not pull (e.g. Docker schema 1).
    #[error("unsupported manifest media type {media_type}")]
    UnsupportedMediaType {
        /// The media type (or a description of the document) found.
        media_type: String,
    },
    /// A manifest is not valid JSON of the expected shape.
    #[error("invalid manifest: {reason}")]
    InvalidManifest {
        /// What is wrong with it.
        reason: String,
    },
    /// The image index has no manifest for the wanted platform.
    #[error(
        "image {reference} has no manifest for platform {wanted}; available: {}",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatchingPlatform {
        /// The normalized reference.
        reference: String,
        /// The wanted platform as `os/arch`.
        wanted: String,
        /// The platforms the index offers, as `os/arch[/variant]`.
        available: Vec<String>,
    },
    /// A local file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The existing layout's `index.json` (or `oci-layout`) cannot be read or
    /// updated.
    #[error("invalid OCI layout at {path}: {reason}")]
    InvalidLayout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image's blobs, as its manifest declares them, exceed the pull limit.
    #[error("image {reference} declares {total} bytes of blobs; the pull limit is {limit} bytes")]
    TooLarge {
        /// The image.
        reference: String,
        /// Bytes its config and layers declare.
        total: u64,
        /// [`crate::MAX_PULL_BYTES`].
        limit: u64,
    },
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }
}
