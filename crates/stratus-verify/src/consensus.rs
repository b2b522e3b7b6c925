//! The consensus rule: reputation-weighted votes, accepted past
//! `1 − 1/trust` (iExec's Proof of Contribution, after Sarmenta's
//! credibility-based fault tolerance), and adaptive replication.
//!
//! Replicas that revealed the same result form a group. Each voter is right
//! with its credibility `c` ([`Reputation::credibility`]) and wrong with
//! `1 − c`; assuming, as the worst case, that wrong voters could all have
//! colluded on one wrong answer, the probability that group `g` holds the
//! right result is
//!
//! ```text
//!   P(g) = T(g) · Π_{h≠g} F(h)  /  ( Π_h F(h) + Σ_k T(k) · Π_{h≠k} F(h) )
//! ```
//!
//! with `T(g) = Π_{v∈g} c_v` and `F(g) = Π_{v∈g} (1 − c_v)`. A group is
//! accepted when `P(g) > 1 − 1/trust` (strictly: one new node, credibility
//! 0.8, does not pass trust 5 alone) and at least [`MIN_AGREEING`] replicas
//! voted for it. For `trust ≥ 2` at most one group can pass. Everything is computed in fixed point, so every replica of the
//! state reaches the same verdict.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reputation::Reputation;
use crate::{mul, ONE};

/// One replica's revealed result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The node that ran it.
    pub node: [u8; 32],
    /// Its result ([`crate::result_digest`]).
    pub result: [u8; 32],
    /// The node's reputation when it was chosen.
    pub reputation: Reputation,
}

/// Fewest replicas that must agree on a result: one lender alone is never
/// a verification, however good its record.
pub const MIN_AGREEING: usize = 2;

/// What the votes so far decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// A result reached the trust level.
    Agreed {
        /// The accepted result.
        result: [u8; 32],
        /// Nodes that voted for it (paid, reputation raised).
        winners: Vec<[u8; 32]>,
        /// Nodes that voted otherwise (not paid, reputation cut).
        losers: Vec<[u8; 32]>,
    },
    /// No result is credible enough yet.
    Undecided,
}

/// Whether probability `n / d` passes `trust`: `n/d > 1 − 1/trust`.
fn passes(n: u128, d: u128, trust: u32) -> bool {
    let t = u128::from(trust.max(1));
    d > 0 && n * t > d * (t - 1)
}

/// Per group: (result, T, F).
fn groups(votes: &[Vote]) -> Vec<([u8; 32], u128, u128)> {
    let mut g: BTreeMap<[u8; 32], (u128, u128)> = BTreeMap::new();
    for v in votes {
        let c = v.reputation.credibility();
        let e = g.entry(v.result).or_insert((ONE, ONE));
        e.0 = mul(e.0, c);
        e.1 = mul(e.1, ONE - c);
    }
    g.into_iter().map(|(r, (t, f))| (r, t, f)).collect()
}

/// Each group's numerator and the common denominator of `P(g)`.
fn weights(groups: &[([u8; 32], u128, u128)]) -> (Vec<u128>, u128) {
    let all_wrong = groups.iter().fold(ONE, |acc, g| mul(acc, g.2));
    let numerators: Vec<u128> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            groups
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(g.1, |acc, (_, h)| mul(acc, h.2))
        })
        .collect();
    let d = numerators.iter().sum::<u128>() + all_wrong;
    (numerators, d)
}

/// The verdict of `votes` at `trust`.
pub fn verdict(votes: &[Vote], trust: u32) -> Verdict {
    let groups = groups(votes);
    let (numerators, d) = weights(&groups);
    let best = numerators
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .map(|(i, n)| (i, *n));
    let Some((i, n)) = best else {
        return Verdict::Undecided;
    };
    if !passes(n, d, trust) {
        return Verdict::Undecided;
    }
    let result = groups[i].0;
    let (winners, losers): (Vec<&Vote>, Vec<&Vote>) =
        votes.iter().partition(|v| v.result == result);
    if winners.len() < MIN_AGREEING {
        return Verdict::Undecided;
    }
    Verdict::Agreed {
        result,
        winners: winners.into_iter().map(|v| v.node).collect(),
        losers: losers.into_iter().map(|v| v.node).collect(),
    }
}

/// Candidates, most credible first (ties in the order given).
fn best_first(candidates: &[Reputation]) -> Vec<Reputation> {
    let mut c = candidates.to_vec();
    c.sort_by_key(|r| std::cmp::Reverse(r.credibility()));
    c
}

/// How many replicas to start with: the fewest of `candidates` (the
/// eligible nodes of distinct owners), most credible first, whose results
/// would reach `trust` if they all agreed; `None` when all of them could
/// not.
pub fn replicas_to_start(candidates: &[Reputation], trust: u32) -> Option<usize> {
    let (mut t, mut f) = (ONE, ONE);
    for (k, r) in best_first(candidates).into_iter().enumerate() {
        let c = r.credibility();
        t = mul(t, c);
        f = mul(f, ONE - c);
        if k + 1 >= MIN_AGREEING && passes(t, t + f, trust) {
            return Some(k + 1);
        }
    }
    None
}

/// While `votes` are undecided: how many more replicas (from `candidates`,
/// most credible first) would reach `trust` if they all agreed with the
/// leading result — `Some(0)` when decided already, `None` when even all
/// of them could not (the task then fails and the requester is refunded).
pub fn more_replicas(votes: &[Vote], candidates: &[Reputation], trust: u32) -> Option<usize> {
    if matches!(verdict(votes, trust), Verdict::Agreed { .. }) {
        return Some(0);
    }
    let groups = groups(votes);
    let (numerators, _) = weights(&groups);
    let leader = numerators
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
        .map(|(i, _)| groups[i].0)
        .unwrap_or([0; 32]);
    let mut votes = votes.to_vec();
    for (k, r) in best_first(candidates).into_iter().enumerate() {
        votes.push(Vote {
            node: [0xff; 32],
            result: leader,
            reputation: r,
        });
        if matches!(verdict(&votes, trust), Verdict::Agreed { .. }) {
            return Some(k + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rep(score: u32, lost: u32) -> Reputation {
        Reputation { score, lost }
    }

    fn vote(node: u8, result: u8, r: Reputation) -> Vote {
        Vote {
            node: [node; 32],
            result: [result; 32],
            reputation: r,
        }
    }

    #[test]
    fn new_nodes_need_company_and_a_good_record_needs_less() {
        let new = rep(0, 0);
        // One new node (0.8) does not pass trust 5 (0.8) alone; two that
        // agree do (0.64 / 0.68 ≈ 0.94).
        assert_eq!(replicas_to_start(&[new, new, new], 5), Some(2));
        assert_eq!(verdict(&[vote(1, 9, new)], 5), Verdict::Undecided);
        assert!(matches!(
            verdict(&[vote(1, 9, new), vote(2, 9, new)], 5),
            Verdict::Agreed { .. }
        ));
        // However good its record, one node alone is no verification.
        assert_eq!(replicas_to_start(&[rep(50, 0)], 5), None);
        assert_eq!(replicas_to_start(&[rep(50, 0), rep(50, 0)], 5), Some(2));
        assert_eq!(
            verdict(&[vote(1, 9, rep(50, 0)), vote(2, 8, new)], 5),
            Verdict::Undecided
        );
        // A very high level needs more new nodes than there are: none.
        assert_eq!(replicas_to_start(&[new, new], 1_000), None);
    }

    #[test]
    fn a_disagreement_asks_for_more_replicas_and_losers_are_named() {
        let new = rep(0, 0);
        let votes = [vote(1, 7, new), vote(2, 8, new)];
        assert_eq!(verdict(&votes, 5), Verdict::Undecided);
        let more = more_replicas(&votes, &[new, new, new], 5).expect("reachable");
        assert!(more >= 1, "{more}");
        let mut all = votes.to_vec();
        for k in 0..more {
            all.push(vote(10 + k as u8, 7, new));
        }
        match verdict(&all, 5) {
            Verdict::Agreed {
                result,
                winners,
                losers,
            } => {
                assert_eq!(result, [7; 32]);
                assert_eq!(losers, vec![[2; 32]]);
                assert_eq!(winners.len(), 1 + more);
            }
            Verdict::Undecided => panic!("{more} more agreeing replicas were to decide it"),
        }
        // Nothing left to add: it cannot be decided.
        assert_eq!(more_replicas(&votes, &[], 5), None);
    }

    fn arb_vote() -> impl Strategy<Value = Vote> {
        (any::<u8>(), 0u8..3, 0u32..20, 0u32..4).prop_map(|(n, r, s, l)| vote(n, r, rep(s, l)))
    }

    proptest! {
        /// The verdict does not depend on the order of the votes, and at
        /// most one result passes.
        #[test]
        fn the_verdict_ignores_vote_order(mut votes in proptest::collection::vec(arb_vote(), 0..8), trust in 2u32..50) {
            let a = verdict(&votes, trust);
            votes.reverse();
            let b = verdict(&votes, trust);
            match (&a, &b) {
                (Verdict::Agreed { result: x, winners: wa, .. }, Verdict::Agreed { result: y, winners: wb, .. }) => {
                    prop_assert_eq!(x, y);
                    prop_assert_eq!(wa.len(), wb.len());
                }
                (Verdict::Undecided, Verdict::Undecided) => {}
                _ => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }

        /// One more vote for the accepted result never undoes the verdict.
        #[test]
        fn agreement_is_monotone(votes in proptest::collection::vec(arb_vote(), 1..8), extra in 0u32..20, trust in 2u32..50) {
            if let Verdict::Agreed { result, .. } = verdict(&votes, trust) {
                let mut more = votes.clone();
                more.push(Vote { node: [0xee; 32], result, reputation: rep(extra, 0) });
                let still = matches!(verdict(&more, trust), Verdict::Agreed { result: r, .. } if r == result);
                prop_assert!(still);
            }
        }

        /// Starting with `replicas_to_start` nodes that all agree decides.
        #[test]
        fn the_start_count_decides_when_all_agree(scores in proptest::collection::vec(0u32..30, 1..8), trust in 2u32..100) {
            let cands: Vec<Reputation> = scores.iter().map(|s| rep(*s, 0)).collect();
            if let Some(k) = replicas_to_start(&cands, trust) {
                let votes: Vec<Vote> = best_first(&cands)
                    .into_iter()
                    .take(k)
                    .enumerate()
                    .map(|(i, r)| vote(i as u8, 1, r))
                    .collect();
                let decided = matches!(verdict(&votes, trust), Verdict::Agreed { .. });
                prop_assert!(decided);
                if k > 1 {
                    prop_assert_eq!(verdict(&votes[..k - 1], trust), Verdict::Undecided);
                }
            }
        }
    }
}
