//! Storage nodes marked as failing (issue 13, item 5).
//!
//! The Raft leader challenges storage nodes for proofs of pieces the
//! metadata says they hold (`stratus-store`'s `audit`); every challenge a
//! node fails is a [`Strike`] recorded here, replicated like any write.
//! A node is **marked** ([`NodeMark::marked`]) when
//!
//! * it sent a proof that does not verify ([`Failure::WrongProof`]) or
//!   served a read bytes that do not hash to the piece
//!   ([`Failure::WrongBytes`]): an honest node verifies a piece on every
//!   read and answers `Corrupt` for rot, so either is a lie, marked at
//!   once; or
//! * it failed [`MARK_AFTER`] challenges (pieces lost, challenges left
//!   unanswered) within [`STRIKE_WINDOW_MS`].
//!
//! Marking is pure state: the node's piece slots are flagged bad at the
//! same moment, so repair rebuilds them elsewhere; placement leaves marked
//! nodes out (the store reads [`State::marked`]). Only an operator clears a
//! mark ([`MarkCommand::Clear`]); the slots stay where repair moved them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use stratus_types::NodeId;
use utoipa::ToSchema;

use crate::{ApplyError, State};

/// Failed challenges within [`STRIKE_WINDOW_MS`] that mark a node.
pub const MARK_AFTER: usize = 3;
/// How far back strikes count toward [`MARK_AFTER`] (24 hours).
pub const STRIKE_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// Strikes kept per node (the most recent ones).
pub const MAX_STRIKES_KEPT: usize = 16;
/// Longest reason kept (longer ones are cut at a character boundary).
pub const MAX_REASON: usize = 256;
/// Most strikes one command may carry.
pub const MAX_STRIKES_PER_COMMAND: usize = 64;

/// How a node failed a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// It answered with a proof that does not verify against the piece id.
    WrongProof,
    /// It does not have the piece (missing, rotten, unreadable).
    Lost,
    /// It did not answer the challenge.
    Unanswered,
    /// It served a piece (to a read) whose bytes do not hash to its id.
    WrongBytes,
}

impl Failure {
    /// An answer an honest node never gives (it verifies every piece it
    /// reads and reports rot as such): the node is marked at once.
    pub fn is_lie(self) -> bool {
        matches!(self, Failure::WrongProof | Failure::WrongBytes)
    }
}

/// One failed challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Strike {
    /// When (ms since the Unix epoch, leader clock).
    pub at_ms: u64,
    /// How it failed.
    pub failure: Failure,
    /// What happened (piece and answer), at most [`MAX_REASON`] bytes.
    pub reason: String,
}

/// Why and since when a node is marked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Mark {
    /// When it was marked (ms since the Unix epoch, leader clock).
    pub since_ms: u64,
    /// Why.
    pub reason: String,
}

/// The challenge record of one storage node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeMark {
    /// The most recent failed challenges (at most [`MAX_STRIKES_KEPT`]).
    pub strikes: Vec<Strike>,
    /// Set while the node is marked: it gets no new pieces and its pieces
    /// are rebuilt elsewhere.
    pub marked: Option<Mark>,
}

/// A change to the challenge records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarkCommand {
    /// Record failed challenges of `node`.
    Strikes {
        /// The node.
        node: NodeId,
        /// What failed (at most [`MAX_STRIKES_PER_COMMAND`]).
        failures: Vec<(Failure, String)>,
        /// Leader time.
        now_ms: u64,
    },
    /// An operator clears a node's mark and strikes.
    Clear {
        /// The node.
        node: NodeId,
    },
}

/// Cuts `s` to at most [`MAX_REASON`] bytes at a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl NodeMark {
    /// Records `failures` at `now_ms`; returns the reason when this marks
    /// the node (it was not marked before).
    pub fn strike(&mut self, failures: &[(Failure, String)], now_ms: u64) -> Option<String> {
        for (failure, reason) in failures {
            self.strikes.push(Strike {
                at_ms: now_ms,
                failure: *failure,
                reason: bounded(reason),
            });
        }
        let excess = self.strikes.len().saturating_sub(MAX_STRIKES_KEPT);
        self.strikes.drain(..excess);
        if self.marked.is_some() {
            return None;
        }
        let recent: Vec<&Strike> = self
            .strikes
            .iter()
            .filter(|s| s.at_ms.saturating_add(STRIKE_WINDOW_MS) > now_ms)
            .collect();
        let reason = if let Some(lie) = recent.iter().find(|s| s.failure.is_lie()) {
            let what = match lie.failure {
                Failure::WrongBytes => "served wrong bytes for a piece",
                _ => "answered a storage challenge with a wrong proof",
            };
            format!("{what}: {}", lie.reason)
        } else if recent.len() >= MARK_AFTER {
            let last = recent.last().map(|s| s.reason.as_str()).unwrap_or_default();
            format!(
                "failed {} storage challenges within 24 h (last: {last})",
                recent.len()
            )
        } else {
            return None;
        };
        let reason = bounded(&reason);
        self.marked = Some(Mark {
            since_ms: now_ms,
            reason: reason.clone(),
        });
        Some(reason)
    }
}

impl State {
    /// Whether `node` is marked as failing (no new pieces go to it).
    pub fn marked(&self, node: &NodeId) -> bool {
        self.marks.get(node).is_some_and(|m| m.marked.is_some())
    }

    pub(crate) fn apply_marks(&mut self, cmd: &MarkCommand) -> Result<Option<u64>, ApplyError> {
        match cmd {
            MarkCommand::Strikes {
                node,
                failures,
                now_ms,
            } => {
                if failures.len() > MAX_STRIKES_PER_COMMAND {
                    return Err(ApplyError::too_large(format!(
                        "{} strikes in one command; at most {MAX_STRIKES_PER_COMMAND}",
                        failures.len()
                    )));
                }
                if !self.nodes.contains_key(node) {
                    return Err(ApplyError::not_found(format!(
                        "node {} is not registered",
                        node.short()
                    )));
                }
                let newly = self
                    .marks
                    .entry(*node)
                    .or_default()
                    .strike(failures, *now_ms);
                // Failed challenges count against its reputation: one lost
                // result per command of strikes.
                if !failures.is_empty() {
                    self.record_result(node, false);
                }
                if newly.is_some() {
                    // Its pieces are not trusted any more: repair moves them.
                    let packs: BTreeSet<u64> = self
                        .store
                        .slots_on(node)
                        .into_iter()
                        .map(|(p, _, _)| p)
                        .collect();
                    for id in packs {
                        let Some(mut p) = self.store.pack(id) else {
                            continue;
                        };
                        let mut changed = false;
                        for slot in p.pieces.iter_mut().filter(|s| s.node == *node) {
                            changed |= !slot.bad;
                            slot.bad = true;
                        }
                        if changed {
                            self.store.set_pack(&p);
                        }
                    }
                }
                Ok(None)
            }
            MarkCommand::Clear { node } => match self.marks.remove(node) {
                Some(_) => Ok(None),
                None => Err(ApplyError::not_found(format!(
                    "node {} has no mark or strikes",
                    node.short()
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn f(kind: Failure) -> (Failure, String) {
        (kind, format!("{kind:?}"))
    }

    #[test]
    fn a_wrong_proof_marks_at_once() {
        let mut m = NodeMark::default();
        let r = m.strike(&[f(Failure::WrongProof)], 10).unwrap();
        assert!(r.contains("wrong proof"), "{r}");
        assert_eq!(m.marked.as_ref().unwrap().since_ms, 10);
        // Further strikes do not re-mark.
        assert_eq!(m.strike(&[f(Failure::Lost)], 11), None);
        assert_eq!(m.marked.as_ref().unwrap().since_ms, 10);
    }

    #[test]
    fn losses_mark_only_when_enough_fall_in_the_window() {
        let mut m = NodeMark::default();
        assert_eq!(m.strike(&[f(Failure::Lost)], 0), None);
        assert_eq!(m.strike(&[f(Failure::Unanswered)], 1), None);
        // The first two have left the window by now.
        assert_eq!(m.strike(&[f(Failure::Lost)], STRIKE_WINDOW_MS + 1), None);
        assert!(m.marked.is_none());
        assert!(m
            .strike(&[f(Failure::Lost), f(Failure::Lost)], STRIKE_WINDOW_MS + 2)
            .is_some());
    }

    #[test]
    fn reasons_are_bounded_at_a_character_boundary() {
        let mut m = NodeMark::default();
        let long = "é".repeat(MAX_REASON);
        m.strike(&[(Failure::WrongProof, long)], 5);
        assert!(m.strikes[0].reason.len() <= MAX_REASON);
        assert!(m.marked.unwrap().reason.len() <= MAX_REASON);
    }

    proptest! {
        #[test]
        fn strikes_stay_bounded_and_marking_follows_the_rule(
            rounds in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 0..6), 0u64..(2 * STRIKE_WINDOW_MS)),
                1..30,
            )
        ) {
            let mut m = NodeMark::default();
            let mut now = 0u64;
            let mut all: Vec<(u64, Failure)> = Vec::new();
            for (kinds, step) in rounds {
                now += step;
                let failures: Vec<(Failure, String)> = kinds
                    .iter()
                    .map(|k| f([Failure::WrongProof, Failure::Lost, Failure::Unanswered, Failure::WrongBytes][*k as usize]))
                    .collect();
                let was = m.marked.is_some();
                let newly = m.strike(&failures, now);
                all.extend(failures.iter().map(|(k, _)| (now, *k)));
                prop_assert!(m.strikes.len() <= MAX_STRIKES_KEPT);
                prop_assert!(!(was && newly.is_some()));
                // Once marked, a node stays marked until cleared.
                if was { prop_assert!(m.marked.is_some()); }
                if !was {
                    let kept = &all[all.len().saturating_sub(MAX_STRIKES_KEPT)..];
                    let recent: Vec<_> = kept.iter().filter(|(t, _)| t + STRIKE_WINDOW_MS > now).collect();
                    let should = recent.iter().any(|(_, k)| k.is_lie())
                        || recent.len() >= MARK_AFTER;
                    prop_assert_eq!(m.marked.is_some(), should);
                }
            }
        }
    }
}
