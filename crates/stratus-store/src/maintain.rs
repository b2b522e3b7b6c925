//! Repair, scrub, garbage collection, pruning (retention of finished
//! workloads, expiry of abandoned multipart uploads) and lifecycle passes
//! (`lifecycle`), run by the Raft leader.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use stratus_chunk::{piece_id, rebuild_pieces, PieceId, Profile};
use stratus_proto::{piece_rpc, PieceRpcError};
use stratus_sched::{place_stripe, Held, StorageNode};
use stratus_state::objects::{PieceMove, StoreCommand};
use stratus_state::Command;
use stratus_types::NodeId;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::LifecycleReport;
use crate::net::PieceCallError;
use crate::read::pack_view;
use crate::{now_ms, StorageTarget, Store, StoreError};

/// Stripes repaired per round of the maintenance loop.
const REPAIR_BATCH: usize = 8;

/// What one repair round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Stripes brought back to full redundancy.
    pub stripes: u64,
    /// Pieces rebuilt and written.
    pub pieces: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Stripes that could not be repaired now (too few pieces readable or no
    /// node to put them on).
    pub stuck: u64,
}

/// What one scrub round found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Nodes asked.
    pub nodes: u64,
    /// Pieces checked.
    pub pieces: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Corrupt pieces found (marked bad, so repair rebuilds them).
    pub corrupt: u64,
    /// Storage challenges sent by the replica (`audit`).
    pub challenged: u64,
    /// Challenges failed (wrong proof, piece missing, no answer).
    pub challenges_failed: u64,
    /// Nodes marked as failing in this round.
    pub marked: u64,
}

/// What one garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Chunks dropped from the index.
    pub chunks: u64,
    /// Pieces of dropped packs deleted from nodes.
    pub pieces: u64,
    /// Orphan pieces (referenced by nothing) deleted from nodes.
    pub orphans: u64,
}

/// Totals of the maintenance worker of this replica (while it leads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceStats {
    /// Repair totals.
    pub repair: RepairReport,
    /// Scrub totals.
    pub scrub: ScrubReport,
    /// Garbage collection totals.
    pub gc: GcReport,
    /// Last scrub round (ms since the epoch).
    pub last_scrub_ms: Option<u64>,
    /// Last garbage collection (ms since the epoch).
    pub last_gc_ms: Option<u64>,
    /// Lifecycle totals (`at_ms`: the last pass).
    pub lifecycle: LifecycleReport,
    /// What the last lifecycle pass did.
    pub last_lifecycle: Option<LifecycleReport>,
}

impl Store {
    /// Repairs up to `max_stripes` stripes of the repair queue.
    pub async fn repair_once(&self, max_stripes: usize) -> RepairReport {
        let queue = self.read(|s| s.repair_queue());
        let mut report = RepairReport::default();
        for item in queue.into_iter().take(max_stripes) {
            match self.repair_stripe(item.pack, &item.missing).await {
                Ok((pieces, bytes)) if pieces == item.missing.len() as u64 => {
                    report.stripes += 1;
                    report.pieces += pieces;
                    report.bytes += bytes;
                }
                Ok((pieces, bytes)) => {
                    report.pieces += pieces;
                    report.bytes += bytes;
                    report.stuck += 1;
                }
                Err(e) => {
                    tracing::warn!(pack = item.pack, error = %e, "stripe not repaired now");
                    report.stuck += 1;
                }
            }
        }
        report
    }

    /// Rebuilds the `missing` pieces of `pack` onto new nodes. Returns the
    /// pieces and bytes written.
    async fn repair_stripe(&self, pack: u64, missing: &[u32]) -> Result<(u64, u64), StoreError> {
        let view = self.read(|s| pack_view(s, pack))?;
        let k = usize::from(view.pack.profile.k);
        let pieces = self.fetch_pieces(&view, k).await?;
        let profile = Profile {
            k: view.pack.profile.k,
            m: view.pack.profile.m,
        };
        let want: Vec<usize> = missing.iter().map(|i| *i as usize).collect();
        let ids: Vec<PieceId> = want.iter().map(|i| view.pack.pieces[*i].id).collect();
        let rebuilt = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>, StoreError> {
            let rebuilt = rebuild_pieces(profile, &pieces, &want)?;
            if rebuilt.iter().zip(&ids).any(|(b, id)| piece_id(b) != *id) {
                return Err(StoreError::internal(
                    "a rebuilt piece does not match its recorded id",
                ));
            }
            Ok(rebuilt)
        })
        .await
        .map_err(StoreError::thread("repair"))??;

        // New homes: never a node already named by the stripe (healthy
        // holders stay; lost or bad ones are not trusted with it again).
        let (targets, holding) = self.read(|s| {
            // Measured free space is applied below.
            let targets = Store::targets(s);
            let holding: Vec<Held> = view
                .slots
                .iter()
                .filter(|sl| sl.healthy)
                .map(|sl| {
                    let site = s
                        .nodes
                        .get(&sl.node)
                        .map(|n| n.info.attributes.site.clone())
                        .unwrap_or_default();
                    Held {
                        id: sl.node,
                        site,
                        owner: crate::owner_of(s, &sl.node),
                    }
                })
                .collect();
            (targets, holding)
        });
        let targets = self.cap_measured(targets);
        let named: BTreeSet<NodeId> = view.pack.pieces.iter().map(|p| p.node).collect();
        let nodes: Vec<StorageNode> = targets
            .iter()
            .filter(|t| !named.contains(&t.id))
            .map(StorageTarget::placement_node)
            .collect();
        // One owner's nodes take at most m pieces of the stripe.
        let homes = place_stripe(
            &nodes,
            &holding,
            missing.len(),
            view.pack.piece_len,
            usize::from(view.pack.profile.m.max(1)),
            rand::random(),
        )
        .map_err(|source| StoreError::NoPlacement {
            what: format!("no node to rebuild pack {pack} on"),
            source,
            last_failure: None,
        })?;
        let puts = missing
            .iter()
            .zip(rebuilt)
            .zip(homes)
            .map(|((index, bytes), node)| {
                let addr = targets
                    .iter()
                    .find(|t| t.id == node)
                    .map(|t| t.addr.clone());
                let id = view.pack.pieces[*index as usize].id;
                let from = view.pack.pieces[*index as usize].node;
                async move {
                    let addr = addr.ok_or_else(|| StoreError::internal("unknown target"))?;
                    match self.piece(node, &addr, piece_rpc::Put { id, bytes }).await {
                        Ok(_) => Ok(PieceMove {
                            pack,
                            index: *index,
                            from,
                            to: node,
                        }),
                        Err(PieceCallError::Call(e)) => Err(e),
                        Err(PieceCallError::Answer(PieceRpcError::Refused {
                            kind: stratus_proto::PieceErrorKind::Full,
                            message,
                        })) => {
                            self.note_full(node);
                            Err(StoreError::unavailable(format!(
                                "node {} is full: {message}",
                                node.short()
                            )))
                        }
                        Err(PieceCallError::Answer(e)) => Err(StoreError::unavailable(format!(
                            "node {} refused a rebuilt piece: {e}",
                            node.short()
                        ))),
                    }
                }
            });
        let mut moves = Vec::new();
        for r in futures::future::join_all(puts).await {
            match r {
                Ok(m) => moves.push(m),
                Err(e) => tracing::warn!(pack, error = %e, "rebuilt piece not written"),
            }
        }
        if moves.is_empty() {
            return Ok((0, 0));
        }
        let n = moves.len() as u64;
        self.write(StoreCommand::MovePieces { moves }).await?;
        Ok((n, n * view.pack.piece_len))
    }

    /// One scrub round: asks every ready storage node to re-hash up to
    /// `max_bytes` of its pieces (corrupt ones are marked bad, then
    /// repaired, and count against the node), then challenges every node on
    /// [`StoreConfig::audit_pieces`](crate::StoreConfig) random pieces
    /// (`audit`): a node's own clean report never counts for it.
    pub async fn scrub_once(&self, max_bytes: u64) -> ScrubReport {
        let mut report = self.local_scrub(max_bytes).await;
        let a = self.audit_once(self.inner.cfg.audit_pieces).await;
        report.challenged = a.challenged;
        report.challenges_failed = a.failed;
        report.marked = a.marked;
        report
    }

    /// Asks every ready storage node to re-hash up to `max_bytes` of its
    /// pieces; corrupt ones are marked bad (and then repaired).
    async fn local_scrub(&self, max_bytes: u64) -> ScrubReport {
        let targets = self.read(Store::targets);
        let mut report = ScrubReport::default();
        for t in targets {
            let r = self
                .piece(t.id, &t.addr, piece_rpc::Scrub { max_bytes })
                .await;
            let (checked_pieces, checked_bytes, corrupt, wrapped) = match r {
                Ok(s) => (s.checked_pieces, s.checked_bytes, s.corrupt, s.wrapped),
                Err(PieceCallError::Answer(e)) => {
                    tracing::warn!(node = %t.id.short(), "scrub answered {e}");
                    continue;
                }
                Err(PieceCallError::Call(e)) => {
                    tracing::warn!(node = %t.id.short(), error = %e, "scrub failed");
                    continue;
                }
            };
            report.nodes += 1;
            report.pieces += checked_pieces;
            report.bytes += checked_bytes;
            let found = corrupt.len() as u64;
            report.corrupt += found;
            let mut cmds = Vec::new();
            let mut lost = BTreeSet::new();
            if !corrupt.is_empty() {
                let corrupt: BTreeSet<PieceId> = corrupt.into_iter().collect();
                let bad: Vec<(u64, u32, NodeId)> = self.read(|s| {
                    s.store
                        .slots_on(&t.id)
                        .into_iter()
                        .filter(|(_, _, piece)| corrupt.contains(piece))
                        .map(|(pack, i, _)| (pack, i, t.id))
                        .collect()
                });
                tracing::warn!(node = %t.id.short(), pieces = bad.len(), "scrub found corrupt pieces");
                lost = self.read(|s| {
                    bad.iter()
                        .filter_map(|(pack, i, _)| {
                            s.store.pack(*pack)?.pieces.get(*i as usize).copied()
                        })
                        .map(|sl| sl.id)
                        .collect()
                });
                cmds.push(StoreCommand::MarkBad { pieces: bad });
            }
            cmds.push(StoreCommand::RecordScrub {
                node: t.id,
                checked_pieces,
                checked_bytes,
                corrupt: found,
                wrapped,
                now_ms: now_ms(),
            });
            for c in cmds {
                if let Err(e) = self.write(c).await {
                    tracing::warn!(error = %e, "could not record a scrub result");
                }
            }
            // Only pieces the metadata says it holds count against it.
            self.strike_losses(t.id, &lost).await;
        }
        report
    }

    /// Drops unreferenced data older than the grace period and deletes the
    /// pieces nothing references from the ready nodes.
    pub async fn gc_once(&self) -> Result<GcReport, StoreError> {
        let grace = self.inner.cfg.gc_grace;
        let r = self
            .write(StoreCommand::CollectGarbage {
                now_ms: now_ms(),
                grace_ms: grace.as_millis() as u64,
            })
            .await?;
        let mut report = GcReport {
            chunks: r.version.unwrap_or(0),
            ..GcReport::default()
        };
        let (targets, deletions) = self.read(|s| (Store::targets(s), (*s.store.deletions).clone()));
        let cutoff = now_ms().saturating_sub(grace.as_millis() as u64);
        for t in targets {
            // Queued deletions of dropped packs.
            if let Some(ids) = deletions.get(&t.id) {
                let ids: Vec<PieceId> = ids.iter().copied().collect();
                match self
                    .piece(t.id, &t.addr, piece_rpc::Delete { ids: ids.clone() })
                    .await
                {
                    Ok(n) => {
                        report.pieces += n;
                        self.write(StoreCommand::PiecesDeleted {
                            node: t.id,
                            pieces: ids,
                        })
                        .await?;
                    }
                    Err(e) => tracing::warn!(node = %t.id.short(), "deleting pieces: {e}"),
                }
            }
            // Orphans: held, referenced by nothing, older than the grace period.
            let listed = match self.piece(t.id, &t.addr, piece_rpc::List).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(node = %t.id.short(), "listing pieces: {e}");
                    continue;
                }
            };
            let empty = BTreeSet::new();
            let queued = deletions.get(&t.id).unwrap_or(&empty);
            // Checked against the piece index now (one lookup per piece the
            // node lists), not against a copy of every pack.
            let orphans: Vec<PieceId> = self.read(|s| {
                listed
                    .into_iter()
                    .filter(|p| {
                        p.modified_ms <= cutoff
                            && !queued.contains(&p.id)
                            && !s.store.holds(&t.id, &p.id)
                    })
                    .map(|p| p.id)
                    .collect()
            });
            if orphans.is_empty() {
                continue;
            }
            match self
                .piece(t.id, &t.addr, piece_rpc::Delete { ids: orphans })
                .await
            {
                Ok(n) => report.orphans += n,
                Err(e) => tracing::warn!(node = %t.id.short(), "deleting orphans: {e}"),
            }
        }
        Ok(report)
    }

    /// Proposes a `Prune` if anything is past its retention period (finished
    /// workloads, unused modules, expired multipart uploads); returns how
    /// many things went.
    pub async fn prune_once(&self) -> Result<u64, StoreError> {
        let cfg = &self.inner.cfg;
        let (now, tasks_ms, uploads_ms) = (
            now_ms(),
            cfg.task_retention.as_millis() as u64,
            cfg.upload_expiry.as_millis() as u64,
        );
        if self.read(|s| s.prunable(now, tasks_ms, uploads_ms).is_empty()) {
            return Ok(0);
        }
        let r = self
            .inner
            .meta
            .write(Command::Prune {
                now_ms: now,
                tasks_ms,
                uploads_ms,
            })
            .await?;
        Ok(r.version.unwrap_or(0))
    }

    /// What the maintenance worker of this replica has done.
    pub fn maintenance_stats(&self) -> MaintenanceStats {
        self.inner
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Runs repair, scrub and garbage collection while `is_leader()` holds,
    /// until `cancel`.
    pub async fn maintain(
        self,
        is_leader: Arc<dyn Fn() -> bool + Send + Sync>,
        cancel: CancellationToken,
    ) {
        let cfg = self.inner.cfg.clone();
        let mut last_scrub = Instant::now();
        let mut last_gc = Instant::now();
        let mut last_prune = Instant::now();
        let mut last_lifecycle = Instant::now();
        let mut last_usage: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(cfg.repair_interval) => {}
            }
            // Every replica places pieces, so every replica measures.
            if crate::usage::due(last_usage, cfg.usage_interval) {
                last_usage = Some(Instant::now());
                self.refresh_usage().await;
            }
            if !is_leader() {
                continue;
            }
            loop {
                let r = self.repair_once(REPAIR_BATCH).await;
                if r.pieces > 0 {
                    tracing::info!(
                        stripes = r.stripes,
                        pieces = r.pieces,
                        bytes = r.bytes,
                        "repaired"
                    );
                }
                self.update_stats(|s| {
                    s.repair.stripes += r.stripes;
                    s.repair.pieces += r.pieces;
                    s.repair.bytes += r.bytes;
                    s.repair.stuck = r.stuck;
                });
                if r.pieces == 0 || cancel.is_cancelled() {
                    break;
                }
            }
            if last_scrub.elapsed() >= cfg.scrub_interval {
                last_scrub = Instant::now();
                let r = self.scrub_once(cfg.scrub_bytes).await;
                self.update_stats(|s| {
                    s.scrub.nodes = r.nodes;
                    s.scrub.pieces += r.pieces;
                    s.scrub.bytes += r.bytes;
                    s.scrub.corrupt += r.corrupt;
                    s.scrub.challenged += r.challenged;
                    s.scrub.challenges_failed += r.challenges_failed;
                    s.scrub.marked += r.marked;
                    s.last_scrub_ms = Some(now_ms());
                });
            }
            if last_prune.elapsed() >= cfg.prune_interval {
                last_prune = Instant::now();
                match self.prune_once().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "pruned what outlived its retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
            if last_lifecycle.elapsed() >= cfg.lifecycle_interval {
                last_lifecycle = Instant::now();
                self.lifecycle_once().await;
            }
            if last_gc.elapsed() >= cfg.gc_interval {
                last_gc = Instant::now();
                match self.gc_once().await {
                    Ok(r) => self.update_stats(|s| {
                        s.gc.chunks += r.chunks;
                        s.gc.pieces += r.pieces;
                        s.gc.orphans += r.orphans;
                        s.last_gc_ms = Some(now_ms());
                    }),
                    Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
                }
            }
        }
    }

    /// Adds a lifecycle pass to the maintenance totals (and logs what it did).
    pub(crate) fn record_lifecycle(&self, r: &LifecycleReport) {
        if r.versions_expired + r.markers_removed + r.uploads_aborted > 0 {
            tracing::info!(
                versions = r.versions_expired,
                markers = r.markers_removed,
                uploads = r.uploads_aborted,
                "lifecycle rules applied"
            );
        }
        self.update_stats(|s| {
            s.lifecycle.buckets += r.buckets;
            s.lifecycle.keys += r.keys;
            s.lifecycle.versions_expired += r.versions_expired;
            s.lifecycle.markers_removed += r.markers_removed;
            s.lifecycle.uploads_aborted += r.uploads_aborted;
            s.lifecycle.failed += r.failed;
            s.lifecycle.at_ms = r.at_ms;
            s.last_lifecycle = Some(r.clone());
        });
    }

    fn update_stats(&self, f: impl FnOnce(&mut MaintenanceStats)) {
        if let Ok(mut s) = self.inner.stats.lock() {
            f(&mut s);
        }
    }
}
