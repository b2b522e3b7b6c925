//! Health of the stored data: the repair queue and the redundancy summary,
//! computed from the state (moved out of `objects.rs`, unchanged).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use stratus_types::NodeStatus;
use utoipa::ToSchema;

use super::{ObjectStore, Pack};
use crate::State;

/// Health of the stored data, computed from the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedundancyHealth {
    /// Packs (stripes).
    pub stripes: u64,
    /// Stripes with every piece healthy.
    pub full: u64,
    /// Stripes missing pieces but readable (the repair queue).
    pub degraded: u64,
    /// Stripes with exactly `k` healthy pieces (one more loss and they are gone).
    pub at_risk: u64,
    /// Stripes with fewer than `k` healthy pieces (unreadable until nodes return).
    pub unreadable: u64,
    /// Pieces to rebuild.
    pub missing_pieces: u64,
    /// Bytes of pieces to rebuild.
    pub missing_bytes: u64,
    /// Pieces of dropped data still to delete from nodes.
    pub pending_deletions: u64,
}

/// A stripe that needs repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairItem {
    /// Pack id.
    pub pack: u64,
    /// Indexes of the pieces to rebuild.
    pub missing: Vec<u32>,
    /// Healthy pieces left.
    pub healthy: usize,
}

impl State {
    /// The packs with a slot that cannot be read: those with a piece on a
    /// node that is not ready (lost, banned, removed) and those with a slot
    /// known bad — found through the piece index, without walking every
    /// pack (a healthy cluster reads nothing but the small bad-pack index).
    fn unhealthy_packs(&self) -> Vec<Pack> {
        let mut ids: BTreeSet<u64> = self.store.bad_packs().into_iter().collect();
        for node in self.store.slot_nodes() {
            let ready = self
                .nodes
                .get(&node)
                .is_some_and(|n| n.status == NodeStatus::Ready);
            if !ready {
                ids.extend(self.store.slots_on(&node).into_iter().map(|(p, _, _)| p));
            }
        }
        ids.into_iter()
            .filter_map(|id| self.store.pack(id))
            .collect()
    }

    /// Stripes that miss pieces, fewest healthy pieces first (most urgent).
    pub fn repair_queue(&self) -> Vec<RepairItem> {
        let mut q: Vec<RepairItem> = self
            .unhealthy_packs()
            .into_iter()
            .filter_map(|p| {
                let missing: Vec<u32> = p
                    .pieces
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !ObjectStore::slot_healthy(s, &self.nodes))
                    .map(|(i, _)| i as u32)
                    .collect();
                (!missing.is_empty()).then(|| RepairItem {
                    pack: p.id,
                    healthy: p.pieces.len() - missing.len(),
                    missing,
                })
            })
            .collect();
        q.sort_by_key(|r| (r.healthy, r.pack));
        q
    }

    /// Redundancy health of all stored data.
    pub fn redundancy(&self) -> RedundancyHealth {
        let mut h = RedundancyHealth {
            pending_deletions: self.store.deletions.values().map(|s| s.len() as u64).sum(),
            stripes: self.store.pack_count(),
            ..Default::default()
        };
        let mut unhealthy = 0;
        for p in self.unhealthy_packs() {
            let healthy = p
                .pieces
                .iter()
                .filter(|s| ObjectStore::slot_healthy(s, &self.nodes))
                .count();
            let missing = p.pieces.len() - healthy;
            if missing == 0 {
                continue;
            }
            unhealthy += 1;
            h.missing_pieces += missing as u64;
            h.missing_bytes += missing as u64 * p.piece_len;
            let k = usize::from(p.profile.k);
            if healthy >= k {
                h.degraded += 1;
            } else {
                h.unreadable += 1;
            }
            if healthy == k {
                h.at_risk += 1;
            }
        }
        h.full = h.stripes.saturating_sub(unhealthy);
        h
    }
}
