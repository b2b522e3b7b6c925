//! Metering: what each instance used on this node, and the signed usage
//! reports that get its lender paid (`stratus_market::metering`).
//!
//! Each instance has one [`Meter`] for its whole life here (the executor
//! adds CPU time and the memory peak to it as it runs, through restarts)
//! and a wall clock summed over its runs, and the bytes it delivered
//! (what it wrote to its output streams, execs' included, and the
//! `/output` files stored for it: the "bytes served" an offer prices per
//! GiB). Every [`USAGE_EVERY`] while it
//! runs, and once when it ends, the runner sends a cumulative report
//! signed with the node key; the control plane pays the deal the
//! difference. An instance that never started sends no report: its deal
//! is refunded (the lender did no work). Usage kept only in memory: after
//! an agent restart the figures start again from zero, the replicas refuse
//! them as lower than the last report taken, and the deal is refunded once
//! the instance ends — the lender keeps what earlier reports paid.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stratus_market::{Usage, UsageReport};
use stratus_runtime::Meter;

use super::{now_ms, Runner};

/// How often a running instance's usage is reported.
pub const USAGE_EVERY: Duration = Duration::from_secs(30);

/// Signs with the node key.
pub type Sign = std::sync::Arc<dyn Fn(&[u8]) -> [u8; 64] + Send + Sync>;

/// One instance's metering.
#[derive(Default)]
pub(super) struct InstanceUsage {
    meter: Meter,
    /// Wall time of the runs that ended.
    wall_done: Duration,
    /// Start of the current run.
    running_since: Option<Instant>,
    /// It ran at least once (since when).
    started: Option<Instant>,
    /// It ended for good: the next report is its last.
    ended: bool,
    /// Bytes it delivered: its output streams and the `/output` files
    /// stored for it.
    served: u64,
    /// Number of the last report sent (0: none).
    seq: u64,
    /// When a report was last sent.
    sent_at: Option<Instant>,
}

impl InstanceUsage {
    fn usage(&self) -> Usage {
        let wall = self.wall_done + self.running_since.map_or(Duration::ZERO, |s| s.elapsed());
        Usage {
            cpu_ms: u64::try_from(self.meter.cpu().as_millis()).unwrap_or(u64::MAX),
            memory_peak_bytes: self.meter.memory_peak(),
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            bytes_served: self.served,
        }
    }
}

/// The metering of every instance on this node.
#[derive(Default)]
pub(super) struct Meters(HashMap<String, InstanceUsage>);

impl Runner {
    fn with_usage<T>(&self, id: &str, f: impl FnOnce(&mut InstanceUsage) -> T) -> Option<T> {
        let mut m = self.inner.meters.lock().ok()?;
        Some(f(m.0.entry(id.to_string()).or_default()))
    }

    /// The meter of instance `id` (the same one for all its runs).
    pub(super) fn meter(&self, id: &str) -> Meter {
        self.with_usage(id, |u| u.meter.clone()).unwrap_or_default()
    }

    /// Instance `id` delivered `bytes` more (output it wrote, files of its
    /// `/output` stored).
    pub(super) fn served(&self, id: &str, bytes: u64) {
        self.with_usage(id, |u| u.served = u.served.saturating_add(bytes));
    }

    /// A run of `id` starts.
    pub(super) fn run_started(&self, id: &str) {
        self.with_usage(id, |u| {
            let now = Instant::now();
            u.started.get_or_insert(now);
            u.running_since = Some(now);
        });
    }

    /// A run of `id` ended.
    pub(super) fn run_ended(&self, id: &str) {
        self.with_usage(id, |u| {
            if let Some(s) = u.running_since.take() {
                u.wall_done += s.elapsed();
            }
        });
    }

    /// `id` ended for good: its last report goes out with the next flush.
    pub(super) fn usage_ended(&self, id: &str) {
        let known = self
            .inner
            .meters
            .lock()
            .map(|mut m| match m.0.get_mut(id) {
                Some(u) if u.started.is_some() => {
                    if let Some(s) = u.running_since.take() {
                        u.wall_done += s.elapsed();
                    }
                    u.ended = true;
                    true
                }
                // Never started: nothing to report.
                Some(_) => {
                    m.0.remove(id);
                    false
                }
                None => false,
            })
            .unwrap_or(false);
        if known {
            self.inner.outbox.notify_one();
        }
    }

    /// The reports due now, signed: every ended instance's last one, and
    /// running ones not reported for [`USAGE_EVERY`].
    pub(super) fn due_usage(&self) -> Vec<UsageReport> {
        let Some(sign) = self.inner.sign.as_ref() else {
            return Vec::new();
        };
        let node = self.inner.node.0;
        let Ok(mut m) = self.inner.meters.lock() else {
            return Vec::new();
        };
        let now = now_ms();
        let mut out = Vec::new();
        for (id, u) in m.0.iter_mut() {
            let due =
                // Periodic reports from one period after the first start: a
                // short task sends only its last one.
                u.ended || u.sent_at.or(u.started).is_some_and(|t| t.elapsed() >= USAGE_EVERY);
            if !due {
                continue;
            }
            let mut r = UsageReport {
                instance: id.clone(),
                node,
                seq: now.max(u.seq + 1),
                usage: u.usage(),
                last: u.ended,
                time_ms: now,
                signature: [0; 64],
            };
            r.signature = sign(&r.signed_bytes());
            out.push(r);
        }
        out
    }

    /// Records reports as delivered: ended instances are forgotten.
    pub(super) fn usage_sent(&self, sent: &[UsageReport]) {
        if let Ok(mut m) = self.inner.meters.lock() {
            for r in sent {
                if r.last {
                    m.0.remove(&r.instance);
                } else if let Some(u) = m.0.get_mut(&r.instance) {
                    u.seq = r.seq;
                    u.sent_at = Some(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_cpu_memory_wall_and_the_bytes_served_over_runs() {
        let mut u = InstanceUsage::default();
        u.meter.add_cpu(Duration::from_millis(1_500));
        u.meter.see_memory(4 << 20);
        u.wall_done = Duration::from_secs(2);
        u.served = 14;
        u.served = u.served.saturating_add(1 << 20);
        let usage = u.usage();
        assert_eq!(usage.cpu_ms, 1_500);
        assert_eq!(usage.memory_peak_bytes, 4 << 20);
        assert_eq!(usage.wall_ms, 2_000);
        assert_eq!(usage.bytes_served, 14 + (1 << 20));
    }
}
