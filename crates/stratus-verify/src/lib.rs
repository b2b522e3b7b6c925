//! Results verified by independent lenders (issue 16): the pure rules, with
//! no IO, so the replicated state can apply them and tests can drive them.
//!
//! **Owns:**
//! * [`commit`]: what a replica of a task commits to before anyone reveals
//!   (so no lender can copy another's answer) and how a reveal is checked;
//!   the canonical digest of a result ([`commit::result_digest`]).
//! * [`reputation`]: a node's record (agreeing results raise it, a losing
//!   one cuts it by a third), its credibility and whether it may take
//!   trusted work.
//! * [`consensus`]: the reputation-weighted rule of iExec's Proof of
//!   Contribution (Sarmenta's credibility-based voting): a result is
//!   accepted once the probability that it is right, given who voted for
//!   what, reaches `1 − 1/trust`; and adaptive replication — the fewest
//!   replicas that could reach the level, and how many more to add while
//!   it is not reached.
//!
//! **Does not own:** placing replicas, collecting commits and reveals, and
//! paying the winners (the control plane and the market do, with these
//! rules). Everything here is integer arithmetic (probabilities in fixed
//! point), so every replica computes the same verdict.

pub mod commit;
pub mod consensus;
pub mod reputation;

pub use commit::{check_reveal, commitment, files_digest, result_digest, ResultParts, RevealError};
pub use consensus::{more_replicas, replicas_to_start, verdict, Verdict, Vote};
pub use reputation::Reputation;

/// Probabilities in fixed point: `ONE` is certainty (Q62, so the product of
/// two fits in a `u128`).
pub(crate) const ONE: u128 = 1 << 62;

/// `a × b` of two fixed-point probabilities.
pub(crate) fn mul(a: u128, b: u128) -> u128 {
    (a * b) >> 62
}
