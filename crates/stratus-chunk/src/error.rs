//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong on the data path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// Chunker parameters out of range (the message names the bound).
    #[error("invalid chunker parameters: {0}")]
    InvalidParams(String),
    /// An erasure profile outside what this crate supports.
    #[error("invalid erasure profile {k}+{m}: {reason}")]
    InvalidProfile {
        /// Data pieces.
        k: u8,
        /// Parity pieces.
        m: u8,
        /// Which bound was violated.
        reason: &'static str,
    },
    /// Sealed bytes too short, failed authentication (tampered, wrong scope
    /// or wrong id), or carry an unknown format flag.
    #[error("sealed chunk failed to open (tampered, truncated, or wrong scope/id)")]
    Decrypt,
    /// The authenticated payload did not decompress.
    #[error("sealed chunk payload does not decompress: {0}")]
    Decompress(String),
    /// The chunk would open to more bytes than allowed.
    #[error("chunk opens to {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Announced or actual length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The opened plaintext does not hash to the chunk id it was asked for.
    #[error("opened chunk does not match its id")]
    IdMismatch,
    /// The slice of pieces does not have `k + m` entries.
    #[error("expected {expected} piece slots, got {got}")]
    PieceCount {
        /// `k + m`.
        expected: usize,
        /// Slots given.
        got: usize,
    },
    /// Fewer than `k` pieces are present.
    #[error("need at least {need} pieces, have {have}")]
    TooFewPieces {
        /// Pieces present.
        have: usize,
        /// `k`.
        need: usize,
    },
    /// A present piece has the wrong length.
    #[error("piece {index} is {len} bytes, expected {expected}")]
    PieceLength {
        /// Index of the piece within the stripe.
        index: usize,
        /// Its length.
        len: usize,
        /// The length every piece of the stripe must have.
        expected: usize,
    },
    /// A wanted piece index is not below `k + m`.
    #[error("piece index {index} out of range for {count} pieces")]
    PieceIndex {
        /// The requested index.
        index: usize,
        /// `k + m`.
        count: usize,
    },
    /// The Reed–Solomon library refused the operation.
    #[error("erasure coding failed: {0}")]
    Erasure(String),
    /// A hex id or key did not parse (64 lowercase or uppercase hex digits).
    #[error("invalid hex id: {0}")]
    InvalidHex(String),
}
