//! Storage challenges: the replicas check that nodes hold their pieces
//! (issue 13, item 5), without trusting what a node says about itself.
//!
//! **The challenge.** The leader picks pieces the replicated metadata says
//! a node holds and, for each, a random range of [`CHALLENGE_LEN`] bytes.
//! The node answers with a *Bao slice* (BLAKE3 verified streaming): the
//! bytes of the range and the BLAKE3 tree nodes that tie them to the root.
//! A piece's id **is** its BLAKE3 root, so the replica verifies the answer
//! against the id it already has — it needs neither the piece nor any
//! precomputed answer, and nothing new is stored when a piece is written.
//!
//! **Why it is sound.** The slice must hash, through the range's place in
//! the tree, to the id: a node that dropped the
//! piece cannot make one up (that would be a BLAKE3 second preimage), cannot
//! answer from earlier challenges (the range is fresh and random each
//! time; an answer is only good for its own range), and cannot fetch the
//! bytes from another storage node (piece services answer only replicas).
//! A node that keeps a fraction `f` of a piece passes a challenge with
//! probability about `f`, so keeping part of the data does not pay. A nonce
//! is not needed: the answer is the data itself, not a keyed hash of it.
//!
//! **What it costs.** The node reads and hashes the whole piece (BLAKE3
//! runs at several GB/s; a piece is about 2 MiB with the default 8 MiB
//! packs and `k = 4`), the network carries ~4 KiB plus ~1 KiB of tree
//! nodes, the replica hashes ~4 KiB. Storj's audits (download the same
//! stripe range from every node and decode with Berlekamp–Welch) cost `k`
//! or more ranged reads per audit, and Filecoin's proofs need sealing and
//! SNARKs; Sia's storage proofs (a Merkle proof of a random segment against
//! the contract's root) are the closest, with BLAKE3's own tree as the
//! Merkle tree.
//!
//! The node's own scrub still runs (it quarantines rot early), but its
//! report only ever marks pieces bad; it never counts for the node.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use rand::seq::SliceRandom;
use rand::Rng;
use stratus_chunk::PieceId;
use stratus_proto::{piece_rpc, PieceErrorKind, PieceRpcError};
use stratus_state::marks::{Failure, MarkCommand, MAX_STRIKES_PER_COMMAND};
use stratus_state::objects::StoreCommand;
use stratus_state::{Command, State};
use stratus_types::NodeId;

use crate::net::PieceCallError;
use crate::{now_ms, StorageTarget, Store};

/// Bytes of a challenged range.
pub const CHALLENGE_LEN: u64 = 4 << 10;
/// Largest range a node proves (a request for more is refused).
pub const MAX_CHALLENGE_LEN: u64 = 64 << 10;
/// Largest proof accepted: the range and up to 64 levels of tree nodes.
pub const MAX_PROOF_BYTES: usize = (MAX_CHALLENGE_LEN as usize) + 64 * 64 + 8;

/// Why a proof was not made or not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The range is empty, too long, or outside the piece.
    #[error("range {offset}+{len} of a {piece_len}-byte piece cannot be proved (at most {MAX_CHALLENGE_LEN} bytes inside the piece)")]
    BadRange {
        /// First byte.
        offset: u64,
        /// Bytes.
        len: u64,
        /// The piece's length.
        piece_len: u64,
    },
    /// The proof does not tie the range to the piece id.
    #[error("the proof does not verify against the piece id: {0}")]
    Invalid(String),
    /// The proof is larger than [`MAX_PROOF_BYTES`].
    #[error("a {0}-byte proof is larger than any honest one ({MAX_PROOF_BYTES} bytes)")]
    TooLarge(usize),
}

fn check_range(offset: u64, len: u64, piece_len: u64) -> Result<(), ProofError> {
    if len == 0 || len > MAX_CHALLENGE_LEN || offset.saturating_add(len) > piece_len {
        return Err(ProofError::BadRange {
            offset,
            len,
            piece_len,
        });
    }
    Ok(())
}

/// The node's side: the Bao slice proving `len` bytes of `piece` from
/// `offset`.
pub fn prove(piece: &[u8], offset: u64, len: u64) -> Result<Vec<u8>, ProofError> {
    check_range(offset, len, piece.len() as u64)?;
    let (outboard, _) = bao::encode::outboard(piece);
    let mut extractor = bao::encode::SliceExtractor::new_outboard(
        Cursor::new(piece),
        Cursor::new(&outboard[..]),
        offset,
        len,
    );
    let mut slice = Vec::new();
    extractor
        .read_to_end(&mut slice)
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    Ok(slice)
}

/// The replica's side: whether `proof` proves `len` bytes from `offset` of
/// the piece `id`, `piece_len` bytes long.
pub fn verify(
    id: &PieceId,
    piece_len: u64,
    offset: u64,
    len: u64,
    proof: &[u8],
) -> Result<(), ProofError> {
    check_range(offset, len, piece_len)?;
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge(proof.len()));
    }
    let hash = blake3::Hash::from_bytes(id.0);
    let mut decoder = bao::decode::SliceDecoder::new(proof, &hash, offset, len);
    let mut out = Vec::with_capacity(len as usize);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    if out.len() as u64 != len {
        return Err(ProofError::Invalid(format!(
            "it proves {} bytes, not {len}",
            out.len()
        )));
    }
    Ok(())
}

/// One piece to challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Pack and piece index (for `MarkBad`).
    pub pack: u64,
    /// Piece index in the pack.
    pub index: u32,
    /// The piece.
    pub id: PieceId,
    /// Its length.
    pub piece_len: u64,
    /// First byte of the range.
    pub offset: u64,
    /// Bytes of the range.
    pub len: u64,
}

/// Up to `per_node` random challenges for each node, over the pieces the
/// metadata says it holds and that are not known bad. Pure: randomness
/// comes from `rng`.
pub fn pick(
    state: &State,
    per_node: usize,
    rng: &mut impl Rng,
) -> BTreeMap<NodeId, Vec<Challenge>> {
    // A sample of each node's slots from a random point of the piece index
    // (piece ids are hashes, so the sample is uniform): the cost is the
    // sample's, not the node's whole holding.
    let mut held: BTreeMap<NodeId, Vec<(u64, u32, PieceId, u64)>> = BTreeMap::new();
    for node in state.store.slot_nodes() {
        let from: [u8; 32] = rng.gen();
        for (pack, i, id) in state.store.sample_slots_on(&node, &from, per_node * 4) {
            let Some(p) = state.store.pack(pack) else {
                continue;
            };
            let ok = p
                .pieces
                .get(i as usize)
                .is_some_and(|sl| !sl.bad && sl.node == node && sl.id == id);
            if ok && p.piece_len > 0 {
                held.entry(node)
                    .or_default()
                    .push((pack, i, id, p.piece_len));
            }
        }
    }
    held.into_iter()
        .map(|(node, pieces)| {
            let chosen = pieces
                .choose_multiple(rng, per_node)
                .map(|(pack, index, id, piece_len)| {
                    let len = CHALLENGE_LEN.min(*piece_len);
                    Challenge {
                        pack: *pack,
                        index: *index,
                        id: *id,
                        piece_len: *piece_len,
                        offset: rng.gen_range(0..=piece_len - len),
                        len,
                    }
                })
                .collect();
            (node, chosen)
        })
        .collect()
}

/// Slots on marked nodes not yet flagged bad (a put that chose the node
/// just before it was marked): they are rebuilt elsewhere too.
pub fn stray_slots(state: &State) -> Vec<(u64, u32, NodeId)> {
    let mut out = Vec::new();
    for node in state
        .store
        .slot_nodes()
        .into_iter()
        .filter(|n| state.marked(n))
    {
        for (pack, i, _) in state.store.slots_on(&node) {
            let bad = state
                .store
                .pack(pack)
                .and_then(|p| p.pieces.get(i as usize).map(|sl| sl.bad));
            if bad == Some(false) {
                out.push((pack, i, node));
            }
        }
    }
    out.sort();
    out
}

/// What one challenge round found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Challenges sent.
    pub challenged: u64,
    /// Challenges answered with a valid proof.
    pub passed: u64,
    /// Challenges failed (wrong proof, piece missing, no answer).
    pub failed: u64,
    /// Nodes newly marked.
    pub marked: u64,
}

impl Store {
    /// Challenges every ready storage node on up to `per_node` random pieces
    /// it should hold. Failed pieces are marked bad (repair rebuilds them
    /// elsewhere) and every failure is a strike against the node
    /// (`stratus_state::marks`).
    pub async fn audit_once(&self, per_node: usize) -> AuditReport {
        let (targets, picks, stray) = self.read(|s| {
            let picks = pick(s, per_node, &mut rand::thread_rng());
            (Store::targets(s), picks, stray_slots(s))
        });
        let mut report = AuditReport::default();
        if !stray.is_empty() {
            // Committed by a put that chose the node before it was marked.
            let _ = self.write(StoreCommand::MarkBad { pieces: stray }).await;
        }
        for t in targets {
            let Some(challenges) = picks.get(&t.id) else {
                continue;
            };
            let (failures, bad, passed) = self.challenge(&t, challenges).await;
            report.challenged += (failures.len() as u64) + passed;
            report.passed += passed;
            report.failed += failures.len() as u64;
            if !bad.is_empty() {
                let _ = self.write(StoreCommand::MarkBad { pieces: bad }).await;
            }
            if failures.is_empty() {
                continue;
            }
            if self.strike(t.id, failures).await {
                report.marked += 1;
            }
        }
        report
    }

    /// Records `failures` of `node`; whether that marked it.
    pub(crate) async fn strike(&self, node: NodeId, mut failures: Vec<(Failure, String)>) -> bool {
        failures.truncate(MAX_STRIKES_PER_COMMAND);
        tracing::warn!(node = %node.short(), failures = failures.len(), first = %failures[0].1, "storage challenges failed");
        let was = self.read(|s| s.marked(&node));
        let cmd = Command::Marks(MarkCommand::Strikes {
            node,
            failures,
            now_ms: now_ms(),
        });
        if let Err(e) = self.inner.meta.write(cmd).await {
            tracing::warn!(error = %e, "could not record failed challenges");
            return false;
        }
        let now = self.read(|s| s.marked(&node));
        if now && !was {
            tracing::warn!(node = %node.short(), "storage node marked: it gets no new pieces and its pieces are rebuilt elsewhere");
        }
        now && !was
    }

    /// Sends `challenges` to `t`: the failures, the pieces to mark bad, and
    /// how many passed. Stops at the first unanswered one (one strike per
    /// round for a node that does not answer).
    async fn challenge(
        &self,
        t: &StorageTarget,
        challenges: &[Challenge],
    ) -> (Vec<(Failure, String)>, Vec<(u64, u32, NodeId)>, u64) {
        let mut failures = Vec::new();
        let mut bad = Vec::new();
        let mut passed = 0;
        for c in challenges {
            let req = piece_rpc::Prove {
                id: c.id,
                offset: c.offset,
                len: c.len,
            };
            let piece = format!("piece {} range {}+{}", c.id, c.offset, c.len);
            let failure = match self.piece(t.id, &t.addr, req).await {
                Ok(proof) => match verify(&c.id, c.piece_len, c.offset, c.len, &proof) {
                    Ok(()) => None,
                    Err(e) => Some((Failure::WrongProof, format!("{piece}: {e}"))),
                },
                Err(PieceCallError::Answer(PieceRpcError::Refused { kind, message })) => {
                    let kind = match kind {
                        PieceErrorKind::NotFound => "missing",
                        PieceErrorKind::Corrupt => "corrupt",
                        _ => "unreadable",
                    };
                    Some((Failure::Lost, format!("{piece}: {kind}: {message}")))
                }
                Err(PieceCallError::Answer(PieceRpcError::WrongReply { got, .. })) => {
                    Some((Failure::WrongProof, format!("{piece}: answered {got}")))
                }
                Err(PieceCallError::Call(e)) => {
                    failures.push((Failure::Unanswered, format!("{piece}: {e}")));
                    break;
                }
            };
            match failure {
                None => passed += 1,
                Some(f) => {
                    bad.push((c.pack, c.index, t.id));
                    failures.push(f);
                }
            }
        }
        (failures, bad, passed)
    }

    /// Local-scrub findings: pieces the node admits it lost are strikes too
    /// (its clean reports never count for it).
    pub(crate) async fn strike_losses(&self, node: NodeId, lost: &BTreeSet<PieceId>) {
        if lost.is_empty() {
            return;
        }
        let failures = lost
            .iter()
            .map(|id| {
                (
                    Failure::Lost,
                    format!("piece {id}: corrupt (found by its own scrub)"),
                )
            })
            .collect();
        self.strike(node, failures).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;
    use stratus_chunk::piece_id;

    fn piece(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn an_honest_proof_verifies() {
        let p = piece(300_000, 1);
        let id = piece_id(&p);
        let proof = prove(&p, 123_456, CHALLENGE_LEN).unwrap();
        assert!(
            proof.len() < (CHALLENGE_LEN as usize) + 2048,
            "{}",
            proof.len()
        );
        verify(&id, p.len() as u64, 123_456, CHALLENGE_LEN, &proof).unwrap();
    }

    #[test]
    fn a_node_without_the_piece_cannot_answer() {
        let p = piece(100_000, 2);
        let id = piece_id(&p);
        // Made-up bytes, a proof of another piece, a proof of another range.
        let other = piece(100_000, 3);
        let (o, l) = (40_000, CHALLENGE_LEN);
        for proof in [
            vec![0u8; 6000],
            prove(&other, o, l).unwrap(),
            prove(&p, o + 1024, l).unwrap(),
            Vec::new(),
        ] {
            assert!(verify(&id, p.len() as u64, o, l, &proof).is_err());
        }
        // The real piece with one byte of the range changed.
        let mut rotten = p.clone();
        rotten[o as usize + 10] ^= 1;
        assert!(matches!(
            verify(&id, p.len() as u64, o, l, &prove(&rotten, o, l).unwrap()),
            Err(ProofError::Invalid(_))
        ));
        // A slice that claims another tree (length 16 MiB more): its nodes do
        // not hash to the root. (The exact length is only bound when the last
        // chunk is in the range; what a challenge proves is the range's bytes
        // at their place in the tree.)
        let mut other_len = prove(&p, o, l).unwrap();
        other_len[3] ^= 1;
        assert!(verify(&id, p.len() as u64, o, l, &other_len).is_err());
    }

    #[test]
    fn ranges_are_bounded() {
        let p = piece(10_000, 4);
        assert!(matches!(prove(&p, 0, 0), Err(ProofError::BadRange { .. })));
        assert!(matches!(
            prove(&p, 9_000, 2_000),
            Err(ProofError::BadRange { .. })
        ));
        assert!(matches!(
            prove(&piece(200_000, 0), 0, MAX_CHALLENGE_LEN + 1),
            Err(ProofError::BadRange { .. })
        ));
        let id = piece_id(&p);
        assert!(matches!(
            verify(&id, 10_000, 0, 4096, &vec![0; MAX_PROOF_BYTES + 1]),
            Err(ProofError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn proofs_verify_exactly_for_their_range(
            len in 1usize..40_000, a in any::<u64>(), l in 1u64..5000, flip in any::<usize>()
        ) {
            let p = piece(len, 9);
            let id = piece_id(&p);
            let l = l.min(len as u64);
            let offset = a % (len as u64 - l + 1);
            let proof = prove(&p, offset, l).unwrap();
            prop_assert!(verify(&id, len as u64, offset, l, &proof).is_ok());
            let mut bad = proof.clone();
            // Past the 8-byte length header (see the test above for it).
            let i = 8 + flip % (bad.len() - 8);
            bad[i] ^= 0x40;
            // Any flipped byte of a tree node or of the range is caught.
            prop_assert!(verify(&id, len as u64, offset, l, &bad).is_err());
        }
    }
}
