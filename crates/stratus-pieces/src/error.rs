//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong in the piece store.
///
/// Every variant says which piece or path is concerned and, where the caller
/// or the operator can do something about it, what to do.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// The bytes offered for a piece do not hash to the piece id. Nothing was
    /// written.
    #[error(
        "piece {expected}: the bytes hash to {actual}, not to the piece id; \
         nothing was stored (the sender has the wrong bytes or the wrong id: fetch the piece again)"
    )]
    HashMismatch {
        /// The piece id that was claimed (hex).
        expected: String,
        /// The BLAKE3 hash of the bytes that were offered (hex).
        actual: String,
    },

    /// Storing the piece would exceed the capacity lent to the store, or the
    /// filesystem has not enough free space. Nothing was written.
    #[error(
        "piece store full: a piece of {needed_bytes} bytes does not fit \
         ({used_bytes} of {capacity_bytes} lent bytes used, {fs_available_bytes} bytes free on the filesystem); \
         delete pieces, raise the capacity or free disk space"
    )]
    Full {
        /// The size of the piece that was refused.
        needed_bytes: u64,
        /// Bytes used by stored pieces (plus writes in flight) when it was refused.
        used_bytes: u64,
        /// The capacity the store was opened with.
        capacity_bytes: u64,
        /// Bytes available on the filesystem (after writes in flight).
        fs_available_bytes: u64,
    },

    /// The piece is not in the store.
    #[error("piece {id} is not in this store")]
    NotFound {
        /// The piece id (hex).
        id: String,
    },

    /// The piece's bytes on disk no longer hash to its id (bit rot, a bad
    /// disk, tampering). The file was moved to the quarantine directory and
    /// the piece is no longer stored: it must be repaired from other pieces.
    #[error(
        "piece {id} is corrupt on disk: moved to {quarantined_to}; \
         it is no longer stored here and must be repaired from the other pieces of its object"
    )]
    Corrupt {
        /// The piece id (hex).
        id: String,
        /// Where the corrupt file now is.
        quarantined_to: PathBuf,
    },

    /// A ranged read reaches past the end of the piece.
    #[error(
        "piece {id}: range of {len} bytes at offset {offset} reaches past its end ({size} bytes)"
    )]
    OutOfRange {
        /// The piece id (hex).
        id: String,
        /// The requested offset.
        offset: u64,
        /// The requested length.
        len: u64,
        /// The size of the piece.
        size: u64,
    },

    /// The store's FORMAT file names a version this build does not know, or
    /// cannot be parsed.
    #[error(
        "piece store format file {path} says {found:?}, but this build supports only version {supported}; \
         run a stratus build that matches the store, or point the node at another directory"
    )]
    UnsupportedFormat {
        /// The FORMAT file.
        path: PathBuf,
        /// What the file contains (trimmed).
        found: String,
        /// The version this build reads and writes.
        supported: u32,
    },

    /// Another `PieceStore` (in this or another process) has the directory
    /// open.
    #[error(
        "piece store {path} is in use by another process (or another store in this one); \
         stop it first, or use another directory"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// An operating-system IO error on a given path.
    #[error("{action} {path}: {source}; {hint}")]
    Io {
        /// What was being done ("reading", "creating"...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operator can do about it.
        hint: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Hint for IO errors on the store's own files.
pub(crate) const HINT_DISK: &str =
    "check that the directory exists, is writable by this user and that the disk is healthy";

impl PieceError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PieceError::Io {
            action,
            path: path.into(),
            hint: HINT_DISK,
            source,
        }
    }
}
