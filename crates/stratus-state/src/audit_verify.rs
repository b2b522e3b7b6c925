//! Verifying the audit log ([`crate::audit`]) from what a server serves:
//! pure, so the client (`stratus audit verify`) recomputes everything
//! itself rather than trusting the server's verdict, and tests run the
//! same code on a tampered storage.
//!
//! The verifier walks the records in order and checks that seqs follow
//! each other from 1, that each record's `prev` is the hash of the record
//! before, and that its `hash` is `BLAKE3(prev ‖ body)`. Each checkpoint
//! must name the hash of the record at its seq, carry that replica's valid
//! signature over it and the cluster key's vouch for the replica, and every
//! checkpoint must be vouched by the same cluster key (the one the caller
//! pins, if it pins one). A checkpoint past the last record means signed
//! records were removed. The first failure names its record.

use std::collections::BTreeSet;

use stratus_types::NodeId;

use crate::audit::{
    checkpoint_message, signed_by, vouch_message, AuditRecord, Checkpoint, UNREADABLE,
};

/// Why the log does not verify; each names the first broken record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A record is missing (or out of order).
    #[error("record {expected} is missing (found record {found} in its place)")]
    Missing {
        /// The seq expected.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The stored record does not read back.
    #[error("record {seq} is unreadable: {reason}")]
    Unreadable {
        /// The record.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The record does not link to the one before.
    #[error("record {seq} does not link to the record before it (its prev hash differs)")]
    Link {
        /// The record.
        seq: u64,
    },
    /// The record's contents do not match its hash.
    #[error("record {seq} was altered: its hash does not match its contents")]
    Hash {
        /// The record.
        seq: u64,
    },
    /// A checkpoint does not match its record or its signatures fail.
    #[error("record {seq}: its checkpoint is invalid: {reason}")]
    Checkpoint {
        /// The record the checkpoint signs.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A checkpoint signs a record that is not there.
    #[error("record {seq} is missing: a checkpoint signs it but the log ends at record {last}")]
    Truncated {
        /// The record the checkpoint signs.
        seq: u64,
        /// The last record served.
        last: u64,
    },
}

impl Broken {
    /// The seq of the first broken record.
    pub fn seq(&self) -> u64 {
        match self {
            Broken::Missing { expected, .. } => *expected,
            Broken::Unreadable { seq, .. }
            | Broken::Link { seq }
            | Broken::Hash { seq }
            | Broken::Checkpoint { seq, .. }
            | Broken::Truncated { seq, .. } => *seq,
        }
    }
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// The last record covered by a valid checkpoint (0: none).
    pub signed_through: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The replicas that signed.
    pub replicas: BTreeSet<NodeId>,
    /// Hex public key of the cluster that vouched for them.
    pub cluster_key: Option<String>,
}

impl Verified {
    /// Records after the last checkpoint (valid links, no signature yet).
    pub fn unsigned(&self) -> u64 {
        self.records - self.signed_through
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok().map(|_| out)
}

/// Verifies the whole log: `records` in seq order from 1, `checkpoints` in
/// seq order; `pinned`, if given, is the cluster key the caller trusts.
pub fn verify(
    records: impl IntoIterator<Item = AuditRecord>,
    checkpoints: &[Checkpoint],
    pinned: Option<[u8; 32]>,
) -> Result<Verified, Broken> {
    let mut out = Verified::default();
    let mut prev = [0u8; 32];
    let mut cps = checkpoints.iter().peekable();
    let mut cluster: Option<[u8; 32]> = pinned;
    for r in records {
        let expected = out.records + 1;
        if r.seq != expected {
            return Err(Broken::Missing {
                expected,
                found: r.seq,
            });
        }
        if r.kind == UNREADABLE && r.hash.is_empty() {
            return Err(Broken::Unreadable {
                seq: r.seq,
                reason: r.detail,
            });
        }
        // Compared as lowercase hex strings, exactly as stored: an
        // uppercase digit decodes the same but is a changed byte.
        if r.prev != hex::encode(prev) {
            return Err(Broken::Link { seq: r.seq });
        }
        let hash = r.compute_hash(&prev);
        if r.hash != hex::encode(hash) {
            return Err(Broken::Hash { seq: r.seq });
        }
        while let Some(c) = cps.next_if(|c| c.seq <= r.seq) {
            if c.seq < r.seq {
                // Checkpoints come in seq order and each record passes
                // through here, so this one was skipped: out of order.
                return Err(Broken::Checkpoint {
                    seq: c.seq,
                    reason: "checkpoints are out of order".into(),
                });
            }
            check_checkpoint(c, &hash, &mut cluster)?;
            out.checkpoints += 1;
            out.signed_through = c.seq;
            out.replicas.insert(c.replica);
        }
        prev = hash;
        out.records = r.seq;
    }
    if let Some(c) = cps.next() {
        return Err(Broken::Truncated {
            seq: c.seq,
            last: out.records,
        });
    }
    out.cluster_key = cluster.filter(|_| out.checkpoints > 0).map(hex::encode);
    Ok(out)
}

fn check_checkpoint(
    c: &Checkpoint,
    hash: &[u8; 32],
    cluster: &mut Option<[u8; 32]>,
) -> Result<(), Broken> {
    let bad = |reason: &str| Broken::Checkpoint {
        seq: c.seq,
        reason: reason.to_string(),
    };
    if c.head != hex::encode(hash) {
        return Err(bad("it signs another hash than the record's"));
    }
    let sig = hex::decode(&c.signature).map_err(|_| bad("the signature is not hex"))?;
    if !signed_by(&c.replica.0, &checkpoint_message(c.seq, hash), &sig) {
        return Err(Broken::Checkpoint {
            seq: c.seq,
            reason: format!("bad signature: not replica {}'s", c.replica),
        });
    }
    let key = hex32(&c.cluster_key).ok_or_else(|| bad("the cluster key is not 32 hex bytes"))?;
    match cluster {
        Some(k) if *k != key => {
            return Err(Broken::Checkpoint {
                seq: c.seq,
                reason: format!(
                    "signed by {}, which is not a replica of this cluster (vouched by cluster key {}, expected {})",
                    c.replica,
                    c.cluster_key,
                    hex::encode(*k)
                ),
            })
        }
        Some(_) => {}
        None => *cluster = Some(key),
    }
    let vouch = hex::decode(&c.vouch).map_err(|_| bad("the vouch is not hex"))?;
    if !signed_by(&key, &vouch_message(c.replica), &vouch) {
        return Err(Broken::Checkpoint {
            seq: c.seq,
            reason: format!(
                "signed by {}, which the cluster key does not vouch for (not a replica)",
                c.replica
            ),
        });
    }
    Ok(())
}
