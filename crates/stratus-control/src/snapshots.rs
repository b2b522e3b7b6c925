//! When a replica snapshots its state.
//!
//! The state lives on disk, so a snapshot is no longer what makes it
//! durable: it exists to let the Raft log be purged and to bring a lagging
//! or new replica up to date. Building one streams every row of the state
//! to a file, so its cost follows the size of the state. A fixed period (a
//! snapshot every `snapshot_every` entries) would make that cost per entry
//! grow with the data stored; instead a snapshot is due once the log since
//! the last one holds at least `snapshot_every` entries **and** at least
//! one entry per [`ROWS_PER_ENTRY`] rows of state. Snapshot work per entry
//! stays bounded (≤ `ROWS_PER_ENTRY` rows written); the log kept between
//! snapshots grows with the state instead (10 M rows: ~500 k entries).

use std::time::Duration;

use crate::Control;

/// Rows of state a snapshot may write per log entry it lets go.
pub const ROWS_PER_ENTRY: u64 = 20;

/// How often the leader-independent check runs (every replica snapshots on
/// its own).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Whether a snapshot is due: `since` entries applied since the last one,
/// a state of `rows` rows, at least `every` entries between snapshots.
pub fn due(since: u64, rows: u64, every: u64) -> bool {
    since >= every.max(1).max(rows / ROWS_PER_ENTRY)
}

impl Control {
    /// Background task: triggers a snapshot when [`due`].
    pub(crate) async fn snapshot_loop(self) {
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
            let (applied, last) = {
                let m = self.inner.raft.metrics();
                let m = m.borrow();
                (
                    m.last_applied.as_ref().map_or(0, |l| l.index),
                    m.snapshot.as_ref().map_or(0, |l| l.index),
                )
            };
            let rows = self.inner.reader.read(|s| s.size_rows());
            if due(
                applied.saturating_sub(last),
                rows,
                self.inner.cfg.snapshot_every,
            ) {
                tracing::debug!(applied, last, rows, "a snapshot is due");
                if let Err(e) = self.inner.raft.trigger().snapshot().await {
                    tracing::warn!(error = %e, "cannot trigger a snapshot");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_state_snapshots_every_period_a_large_one_less_often() {
        assert!(!due(4_999, 100, 5_000));
        assert!(due(5_000, 100, 5_000));
        // 10 M rows: a snapshot every 500 k entries, not every 5 k.
        assert!(!due(499_999, 10_000_000, 5_000));
        assert!(due(500_000, 10_000_000, 5_000));
        assert!(due(1, 0, 0), "a period of 0 means every entry");
    }
}
