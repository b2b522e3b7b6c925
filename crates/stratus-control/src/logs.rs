//! Output of instances, held by the replica their agent sends it to.
//!
//! Agents dial out, so output travels on the agent's own connection to the
//! replica it is attached to; other replicas ask that one
//! ([`stratus_proto::Request::ReadLogs`]). Each instance keeps its last
//! [`MAX_LOG_BYTES`] in memory, addressed by absolute byte offset so readers
//! can follow without gaps or repeats. The complete output also stays in the
//! agent's data directory.
//!
//! A buffer is freed [`LOG_RETENTION`] after its instance ended (or left the
//! state; a replica of a verified run, after the verdict): [`LogBuffers::prune`] runs on every replica a few times a
//! second, so memory follows the instances that run, not every instance that
//! ever ran. Exec streams (`<instance>#exec-<n>`) go with their instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stratus_proto::LogChunk;

/// Bytes of output kept per instance.
pub const MAX_LOG_BYTES: usize = 1024 * 1024;

/// How long the output of an ended instance stays readable here.
pub const LOG_RETENTION: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Buf {
    /// Absolute offset of `data[0]`.
    start: u64,
    data: Vec<u8>,
    /// When this replica first saw its instance ended or gone.
    ended_at: Option<Instant>,
}

/// The instance a log stream belongs to (exec streams name theirs).
fn instance_of(stream: &str) -> &str {
    stratus_types::LogStream::parse(stream).map_or(stream, |l| l.instance)
}

/// Log buffers of the instances whose agents report here.
#[derive(Default)]
pub struct LogBuffers {
    bufs: Mutex<HashMap<String, Buf>>,
}

impl LogBuffers {
    /// Appends chunks (out-of-date or overlapping bytes are skipped).
    pub fn append(&self, chunks: Vec<LogChunk>) {
        let Ok(mut bufs) = self.bufs.lock() else {
            return;
        };
        for c in chunks {
            let b = bufs.entry(c.instance).or_insert_with(|| Buf {
                start: c.offset,
                data: Vec::new(),
                ended_at: None,
            });
            let end = b.start + b.data.len() as u64;
            let chunk_end = c.offset + c.data.len() as u64;
            if chunk_end <= end {
                continue;
            }
            if c.offset > end {
                // A gap (this replica missed output): restart the window here.
                b.start = c.offset;
                b.data.clear();
                b.data.extend_from_slice(&c.data);
            } else {
                let skip = (end - c.offset) as usize;
                b.data.extend_from_slice(&c.data[skip..]);
            }
            if b.data.len() > MAX_LOG_BYTES {
                let drop = b.data.len() - MAX_LOG_BYTES;
                b.data.drain(..drop);
                b.start += drop as u64;
            }
        }
    }

    /// Frees the buffers of instances that ended (or are gone: `live`
    /// answers `false`) at least `retention` before `now`; the clock of an
    /// instance starts when a prune first sees it ended.
    pub fn prune(&self, now: Instant, retention: Duration, live: impl Fn(&str) -> bool) {
        let Ok(mut bufs) = self.bufs.lock() else {
            return;
        };
        bufs.retain(|stream, b| {
            if live(instance_of(stream)) {
                b.ended_at = None;
                return true;
            }
            let since = *b.ended_at.get_or_insert(now);
            now.saturating_duration_since(since) < retention
        });
    }

    /// Buffers held and the bytes in them.
    pub fn usage(&self) -> (usize, usize) {
        self.bufs.lock().map_or((0, 0), |b| {
            (b.len(), b.values().map(|b| b.data.capacity()).sum())
        })
    }

    /// Bytes from `offset` on (from the oldest kept if `offset` is older), and
    /// whether this replica holds the instance's log.
    pub fn read(&self, instance: &str, offset: u64) -> (u64, Vec<u8>, bool) {
        let Ok(bufs) = self.bufs.lock() else {
            return (offset, Vec::new(), false);
        };
        match bufs.get(instance) {
            None => (offset, Vec::new(), false),
            Some(b) => {
                let from = offset.max(b.start);
                let skip = (from - b.start) as usize;
                (
                    from,
                    b.data.get(skip..).map(<[u8]>::to_vec).unwrap_or_default(),
                    true,
                )
            }
        }
    }
}

impl crate::Control {
    /// Frees the log buffers of instances ended for [`LOG_RETENTION`]. A
    /// replica of a verified run counts as running until the verdict: its
    /// output is what the requester reads if it wins.
    pub(crate) fn prune_logs(&self) {
        let now = Instant::now();
        self.inner.reader.read(|s| {
            self.inner.logs.prune(now, LOG_RETENTION, |id| {
                let running = s.instances.get(id).is_some_and(|i| {
                    !i.state.is_terminal() && i.state != stratus_state::InstanceState::Lost
                });
                running
                    || s.trusted_run_of(id)
                        .is_some_and(|(_, run)| run.outcome.is_none())
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, data: &str) -> LogChunk {
        LogChunk {
            instance: "i".into(),
            offset,
            stderr: false,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn appends_skip_overlaps_and_readers_follow_by_offset() {
        let l = LogBuffers::default();
        l.append(vec![
            chunk(0, "hello "),
            chunk(3, "lo world"),
            chunk(0, "he"),
        ]);
        assert_eq!(l.read("i", 0), (0, b"hello world".to_vec(), true));
        assert_eq!(l.read("i", 6), (6, b"world".to_vec(), true));
        assert_eq!(l.read("i", 11), (11, Vec::new(), true));
        assert_eq!(l.read("other", 0), (0, Vec::new(), false));
    }

    #[test]
    fn buffers_of_ended_instances_are_freed_after_the_retention() {
        let l = LogBuffers::default();
        let out = "y".repeat(512 * 1024);
        for id in ["a", "b", "a#exec-1"] {
            l.append(vec![LogChunk {
                instance: id.into(),
                offset: 0,
                stderr: false,
                data: out.as_bytes().to_vec(),
            }]);
        }
        assert_eq!(l.usage().0, 3);
        assert!(l.usage().1 >= 3 * out.len());
        let t0 = Instant::now();
        let live = |i: &str| i == "b";
        // Ended "a" (and its exec stream) stays readable for the retention...
        l.prune(t0, LOG_RETENTION, live);
        l.prune(t0 + LOG_RETENTION / 2, LOG_RETENTION, live);
        assert_eq!(l.usage().0, 3);
        assert!(l.read("a", 0).2);
        // ...then its memory is given back; the live one stays.
        l.prune(t0 + LOG_RETENTION, LOG_RETENTION, live);
        assert_eq!(l.usage().0, 1);
        assert!(l.usage().1 < 2 * out.len());
        assert!(!l.read("a", 0).2 && !l.read("a#exec-1", 0).2);
        assert!(l.read("b", 0).2);
        // An instance seen ended and then live again (a report that came
        // late) starts its clock over.
        l.prune(t0, LOG_RETENTION, |_| false);
        l.prune(t0, LOG_RETENTION, |_| true);
        l.prune(t0 + LOG_RETENTION, LOG_RETENTION, |_| false);
        assert_eq!(l.usage().0, 1);
    }

    #[test]
    fn old_output_is_dropped_beyond_the_limit() {
        let l = LogBuffers::default();
        let big = "x".repeat(MAX_LOG_BYTES);
        l.append(vec![chunk(0, &big), chunk(MAX_LOG_BYTES as u64, "tail")]);
        let (from, data, _) = l.read("i", 0);
        assert_eq!(from, 4);
        assert!(data.ends_with(b"tail"));
        assert_eq!(data.len(), MAX_LOG_BYTES);
    }
}
