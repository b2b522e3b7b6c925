//! Measured free space of storage nodes (issue 13, item 10).
//!
//! The replicated metadata knows what a node lent and what was placed on
//! it, not what its disk really has left (other files share the disk; a
//! lender can shrink it). Every replica therefore asks each storage node
//! for its usage every [`StoreConfig::usage_interval`](crate::StoreConfig)
//! (`PieceRequest::Usage`: the file system's free space by `statvfs` and
//! the bytes its piece store holds against the lent capacity) and places
//! pieces by the smaller of the two figures. A node that refuses a put for
//! lack of space is recorded as full at once (free = 0) — full, not
//! failing: it is neither suspected nor struck. The figures are in memory
//! only (like heartbeats): nothing is written to the log per node and
//! interval.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use stratus_proto::{piece_rpc, PieceRpc};
use stratus_types::NodeId;
use utoipa::ToSchema;

use crate::{StorageTarget, Store};

/// A node's last measured free space.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measured {
    /// Bytes it can still take: min(lent − held, file system free).
    pub free: u64,
    /// When measured (or when it refused a put as full).
    pub at: Instant,
}

/// A storage node's measured space, as status shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeSpace {
    /// The node.
    pub node: NodeId,
    /// Bytes it can still take: the smaller of its lent capacity minus the
    /// pieces it holds and its file system's free space.
    pub free_bytes: u64,
    /// Less than one pack's worth free: it gets no new pieces.
    pub full: bool,
    /// Milliseconds since it was measured.
    pub measured_ms_ago: u64,
}

/// The free space a node reports, capped by what it lent.
pub fn free_of(capacity: u64, used: u64, fs_available: u64) -> u64 {
    capacity.saturating_sub(used).min(fs_available)
}

impl Store {
    /// Asks every ready storage node for its usage (concurrently).
    pub async fn refresh_usage(&self) {
        let targets = self.read(Store::targets);
        let calls = targets.into_iter().map(|t| async move {
            let r = self
                .inner
                .pieces
                .call(t.id, t.addr.clone(), piece_rpc::Usage.into_request());
            (t.id, crate::net::typed::<piece_rpc::Usage>(r.await))
        });
        for (node, r) in futures::future::join_all(calls).await {
            match r {
                Ok(u) => self.set_measured(
                    node,
                    free_of(u.capacity_bytes, u.used_bytes, u.fs_available_bytes),
                ),
                Err(e) => tracing::debug!(node = %node.short(), error = %e, "usage not measured"),
            }
        }
    }

    fn set_measured(&self, node: NodeId, free: u64) {
        if let Ok(mut m) = self.inner.measured.lock() {
            m.insert(
                node,
                Measured {
                    free,
                    at: Instant::now(),
                },
            );
        }
    }

    /// `node` refused a piece for lack of space.
    pub(crate) fn note_full(&self, node: NodeId) {
        tracing::info!(node = %node.short(), "storage node is full; no pieces go to it until it has space");
        self.set_measured(node, 0);
    }

    /// `targets` with their free space capped by what was measured.
    pub(crate) fn cap_measured(&self, mut targets: Vec<StorageTarget>) -> Vec<StorageTarget> {
        if let Ok(m) = self.inner.measured.lock() {
            for t in &mut targets {
                if let Some(x) = m.get(&t.id) {
                    t.free = t.free.min(x.free);
                }
            }
        }
        targets
    }

    /// Ready storage nodes as placement sees them: the metadata's free
    /// space capped by the measured one.
    pub(crate) fn placeable(&self) -> Vec<StorageTarget> {
        self.cap_measured(self.read(Store::targets))
    }

    /// Measured space of the storage nodes (those measured at least once).
    pub fn node_space(&self) -> Vec<NodeSpace> {
        let full_below = self.inner.cfg.pack_bytes as u64;
        self.inner
            .measured
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(node, x)| NodeSpace {
                        node: *node,
                        free_bytes: x.free,
                        full: x.free < full_below,
                        measured_ms_ago: x.at.elapsed().as_millis().min(u128::from(u64::MAX))
                            as u64,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether a measurement is recent enough to refresh again.
pub(crate) fn due(last: Option<Instant>, every: Duration) -> bool {
    last.is_none_or(|t| t.elapsed() >= every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn free_is_never_more_than_lent_or_the_disk(c in any::<u64>(), u in any::<u64>(), f in any::<u64>()) {
            let x = free_of(c, u, f);
            prop_assert!(x <= f && x <= c.saturating_sub(u));
            prop_assert!(x == f || x == c.saturating_sub(u));
        }
    }

    #[test]
    fn refresh_is_due_first_and_after_the_interval() {
        assert!(due(None, Duration::from_secs(10)));
        assert!(!due(Some(Instant::now()), Duration::from_secs(10)));
        assert!(due(Some(Instant::now()), Duration::ZERO));
    }
}
