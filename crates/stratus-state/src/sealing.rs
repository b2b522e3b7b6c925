//! Secrets in the replicated state are sealed, never plaintext.
//!
//! The Raft log and snapshots are files on every replica's disk (and in its
//! backups), so the state holds the cluster storage secret, S3 secret keys and
//! private-scope seeds only as [`Sealed`] values: AES-256-GCM under the
//! cluster's key-encryption key (KEK), which lives outside the state
//! (`stratus-control`'s `kek` module). The state machine never sees a KEK: it
//! stores what the proposer sealed and checks only lengths. Each kind of
//! secret is sealed under its own label (the AEAD's associated data), so one
//! sealed value cannot be passed off as another.

pub use stratus_chunk::wrap::{Kek, KekId, Sealed, WrapError};

use crate::ApplyError;

/// Label of the cluster storage secret.
pub const STORAGE_SECRET: &str = "stratus storage secret";
/// Label of the seed of the cluster key (`nodes`), which proves a replica
/// to joining agents.
pub const CLUSTER_KEY: &str = "stratus cluster key seed";
/// Label of a private-scope seed (a random key per object or upload).
pub const PRIVATE_SEED: &str = "stratus private scope seed";

/// Label of the secret of S3 access key `access_key`.
pub fn s3_secret_label(access_key: &str) -> String {
    format!("stratus s3 secret key {access_key}")
}

/// Refuses a sealed value whose plaintext is not `min..=max` bytes.
pub(crate) fn check_len(s: &Sealed, min: usize, max: usize) -> Result<(), ApplyError> {
    let n = s.plaintext_len();
    if s.ciphertext.len() < 16 || n < min || n > max {
        return Err(ApplyError::invalid(format!(
            "a sealed secret of {n} bytes; expected {min}-{max}"
        )));
    }
    Ok(())
}
