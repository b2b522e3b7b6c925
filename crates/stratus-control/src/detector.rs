//! Failure detector for agents, run by the leader only.
//!
//! Heartbeats are *not* written to the Raft log (that would cost one
//! replicated write per node per interval); the leader keeps the last time it
//! heard from each node in memory and proposes a status change only when a
//! node crosses the timeout or comes back. A new leader starts every node's
//! clock afresh, which gives each node one full timeout of grace after an
//! election. This module is pure: time is passed in.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use stratus_types::{NodeId, NodeStatus};

/// Last-heard times of nodes, as seen by the current leader.
#[derive(Debug, Default)]
pub struct Detector {
    last_seen: HashMap<NodeId, Instant>,
}

impl Detector {
    /// Records a heartbeat.
    pub fn heard(&mut self, id: NodeId, now: Instant) {
        self.last_seen.insert(id, now);
    }

    /// Forgets everything (on losing leadership).
    pub fn clear(&mut self) {
        self.last_seen.clear();
    }

    /// Nodes to mark lost, given each registered node's current status.
    /// A node never heard by this leader gets `now` as its first sighting.
    pub fn changes(
        &mut self,
        nodes: impl IntoIterator<Item = (NodeId, NodeStatus)>,
        now: Instant,
        timeout: Duration,
    ) -> Vec<(NodeId, NodeStatus)> {
        let mut out = Vec::new();
        let mut present = HashSet::new();
        for (id, status) in nodes {
            present.insert(id);
            let seen = *self.last_seen.entry(id).or_insert(now);
            let alive = now.saturating_duration_since(seen) <= timeout;
            // Revival (lost -> ready) is proposed by the heartbeat handler the
            // moment a lost node speaks again, not here.
            if status == NodeStatus::Ready && !alive {
                out.push((id, NodeStatus::Lost));
            }
        }
        self.last_seen.retain(|id, _| present.contains(id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn silent_node_is_lost_after_timeout() {
        let mut d = Detector::default();
        let t0 = Instant::now();
        let n = NodeId([1; 32]);
        assert!(d.changes([(n, NodeStatus::Ready)], t0, T).is_empty());
        assert!(d.changes([(n, NodeStatus::Ready)], t0 + T, T).is_empty());
        assert_eq!(
            d.changes(
                [(n, NodeStatus::Ready)],
                t0 + T + Duration::from_millis(1),
                T
            ),
            vec![(n, NodeStatus::Lost)]
        );
    }

    #[test]
    fn heartbeating_node_stays_ready() {
        let mut d = Detector::default();
        let t0 = Instant::now();
        let n = NodeId([1; 32]);
        for i in 0..100u64 {
            let now = t0 + Duration::from_secs(i);
            d.heard(n, now);
            assert!(d.changes([(n, NodeStatus::Ready)], now, T).is_empty());
        }
    }

    #[test]
    fn forgotten_nodes_are_dropped() {
        let mut d = Detector::default();
        let t0 = Instant::now();
        d.heard(NodeId([1; 32]), t0);
        d.changes(std::iter::empty(), t0, T);
        assert!(d.last_seen.is_empty());
    }
}
