//! Nodes' and owners' reputations (issue 16, item 3), kept by the
//! replicated state with the rules of [`stratus_verify::reputation`].
//!
//! A node's record is a row ([`State::reputations`]; no row is a new node's
//! record). It is cut by every command of failed storage challenges
//! ([`crate::marks`]: a node that lost or corrupted pieces is less
//! credible), and will be raised and cut by the verdicts on verified
//! results. An owner's reputation is the sum of its nodes' records, so a
//! lender cannot shed a bad record by adding new machines.

use std::collections::BTreeMap;

use stratus_types::NodeId;
use stratus_verify::Reputation;

use crate::State;

impl State {
    /// Node `node`'s reputation.
    pub fn reputation(&self, node: &NodeId) -> Reputation {
        self.reputations.get(node).copied().unwrap_or_default()
    }

    /// The reputation of `owner`: its nodes' records added up.
    pub fn owner_reputation(&self, owner: &str) -> Reputation {
        self.owner_reputations().remove(owner).unwrap_or_default()
    }

    /// Every owner's reputation, in one pass over the nodes.
    pub fn owner_reputations(&self) -> BTreeMap<String, Reputation> {
        let mut out: BTreeMap<String, Reputation> = BTreeMap::new();
        for n in self.nodes.values() {
            let r = self.reputation(&n.info.id);
            let o = out.entry(n.owner.clone()).or_default();
            o.score = o.score.saturating_add(r.score);
            o.lost = o.lost.saturating_add(r.lost);
        }
        out
    }

    /// Records one more result of `node`: `agreed` with the verdict, or
    /// lost.
    pub(crate) fn record_result(&mut self, node: &NodeId, agreed: bool) {
        let r = self.reputation(node).after(agreed);
        self.reputations.insert(*node, r);
    }
}

#[cfg(test)]
mod tests {
    use crate::marks::{Failure, MarkCommand};
    use crate::{Command, State};

    #[test]
    fn failed_challenges_cut_a_nodes_reputation_and_its_owners() {
        let mut s = State::default();
        let a = crate::tests::info(1);
        let b = crate::tests::info(2);
        let (ia, ib) = (a.id, b.id);
        for info in [a, b] {
            let r = s.apply(1, &Command::RegisterNode { info, now_ms: 0 });
            assert!(r.error.is_none(), "{r:?}");
        }
        for id in [ia, ib] {
            s.nodes.get_mut(&id).expect("node").owner = "lena".into();
        }
        assert_eq!(s.reputation(&ia).credibility_ppm(), 799_999);
        for _ in 0..2 {
            let r = s.apply(
                2,
                &Command::Marks(MarkCommand::Strikes {
                    node: ia,
                    failures: vec![(Failure::WrongBytes, "bad piece".into())],
                    now_ms: 5,
                }),
            );
            assert!(r.error.is_none(), "{r:?}");
        }
        let bad = s.reputation(&ia);
        assert_eq!(bad.lost, 2);
        assert!(!bad.eligible(), "two lost results bar a new node");
        assert!(s.reputation(&ib).eligible());
        assert_eq!(s.owner_reputation("lena").lost, 2);
        assert_eq!(s.owner_reputation("nobody").lost, 0);
        // The record is stored: a state reopened from a copy of the
        // storage has it.
        s.flush();
        let reopened = State::open(Box::new(s.fork_kv())).expect("opens");
        assert_eq!(reopened.reputation(&ia), bad);
    }
}
