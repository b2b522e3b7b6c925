//! Commit, then reveal: each replica first publishes a commitment to its
//! result, and reveals the result only once enough commitments are in. A
//! lender that waits to copy another's answer has nothing to copy when it
//! must commit, and cannot commit to another's answer after seeing it: the
//! commitment binds the committing node, so another's commitment is of no
//! use, and changing its result afterwards breaks its own.

use serde::{Deserialize, Serialize};

/// Domain tag of commitments.
const COMMIT_DOMAIN: &[u8] = b"stratus result commit v1";
/// Domain tag of result digests.
const RESULT_DOMAIN: &[u8] = b"stratus result v1";
/// Domain tag of `/output` digests.
const FILES_DOMAIN: &[u8] = b"stratus output files v1";

/// Why a reveal is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RevealError {
    /// The node never committed.
    #[error("no commitment from this node: it must commit before anyone reveals")]
    NotCommitted,
    /// The revealed result and salt are not what was committed to.
    #[error("the revealed result does not match the node's commitment")]
    Mismatch,
}

/// The commitment of `node` to `result` (a [`result_digest`]) with a
/// random `salt` the node keeps until it reveals.
pub fn commitment(node: &[u8; 32], result: &[u8; 32], salt: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(COMMIT_DOMAIN);
    h.update(node);
    h.update(result);
    h.update(salt);
    *h.finalize().as_bytes()
}

/// Checks `node`'s reveal of `result` with `salt` against what it committed
/// (`None`: nothing).
pub fn check_reveal(
    committed: Option<&[u8; 32]>,
    node: &[u8; 32],
    result: &[u8; 32],
    salt: &[u8; 32],
) -> Result<(), RevealError> {
    let committed = committed.ok_or(RevealError::NotCommitted)?;
    if commitment(node, result, salt) == *committed {
        Ok(())
    } else {
        Err(RevealError::Mismatch)
    }
}

/// A task's result as a replica reveals it: enough to compare runs, and
/// for the requester to check the output it reads against the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResultParts {
    /// The exit code.
    pub exit_code: i32,
    /// BLAKE3 of the output stream (standard output and error, in the
    /// order the guest wrote them: what `stratus logs` serves).
    pub output: [u8; 32],
    /// [`files_digest`] of the `/output` folder.
    pub files: [u8; 32],
}

impl ResultParts {
    /// The digest two runs agree on when they are equal.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(RESULT_DOMAIN);
        h.update(&self.exit_code.to_le_bytes());
        h.update(&self.output);
        h.update(&self.files);
        *h.finalize().as_bytes()
    }
}

/// The digest of a task's `/output` files: each file's path and the BLAKE3
/// of its bytes, in path order, whatever order they are given in.
pub fn files_digest(files: &[(String, [u8; 32])]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(FILES_DOMAIN);
    let mut files: Vec<&(String, [u8; 32])> = files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    h.update(&(files.len() as u64).to_le_bytes());
    for (path, hash) in files {
        h.update(&(path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update(hash);
    }
    *h.finalize().as_bytes()
}

/// The digest of a result from its exit code, output stream and files.
pub fn result_digest(exit_code: i32, output: &[u8], files: &[(String, [u8; 32])]) -> [u8; 32] {
    ResultParts {
        exit_code,
        output: *blake3::hash(output).as_bytes(),
        files: files_digest(files),
    }
    .digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reveal_must_match_the_nodes_own_commitment() {
        let (a, b) = ([1; 32], [2; 32]);
        let result = result_digest(0, b"42\n", &[]);
        let salt = [7; 32];
        let c = commitment(&a, &result, &salt);
        assert_eq!(check_reveal(Some(&c), &a, &result, &salt), Ok(()));
        assert_eq!(
            check_reveal(None, &a, &result, &salt),
            Err(RevealError::NotCommitted)
        );
        // Another result, another salt, or another node's commitment.
        let other = result_digest(0, b"41\n", &[]);
        assert_eq!(
            check_reveal(Some(&c), &a, &other, &salt),
            Err(RevealError::Mismatch)
        );
        assert_eq!(
            check_reveal(Some(&c), &a, &result, &[8; 32]),
            Err(RevealError::Mismatch)
        );
        assert_eq!(
            check_reveal(Some(&c), &b, &result, &salt),
            Err(RevealError::Mismatch),
            "a copied commitment is useless to another node"
        );
    }

    #[test]
    fn every_part_of_a_result_counts_and_file_order_does_not() {
        let f = |p: &str, b: u8| (p.to_string(), [b; 32]);
        let base = result_digest(0, b"out", &[f("a", 1), f("b", 2)]);
        assert_eq!(base, result_digest(0, b"out", &[f("b", 2), f("a", 1)]));
        for other in [
            result_digest(1, b"out", &[f("a", 1), f("b", 2)]),
            result_digest(0, b"ou", &[f("a", 1), f("b", 2)]),
            result_digest(0, b"out", &[f("a", 1), f("b", 3)]),
            result_digest(0, b"out", &[f("a", 1), f("c", 2)]),
            result_digest(0, b"out", &[f("a", 1)]),
            result_digest(0, b"out", &[f("ab", 1), f("b", 2)]),
        ] {
            assert_ne!(base, other);
        }
    }
}
