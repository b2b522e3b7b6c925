//! Output of instances, held by the replica their agent sends it to.
//!
//! Agents dial out, so output travels on the agent's own connection to the
//! replica it is attached to; other replicas ask that one
//! ([`stratus_proto::Request::ReadLogs`]). Each instance keeps its last
//! [`MAX_LOG_BYTES`] in memory, addressed by absolute byte offset so readers
//! can follow without gaps or repeats. The complete output also stays in the
//! agent's data directory.

use std::collections::HashMap;
use std::sync::Mutex;

use stratus_proto::LogChunk;

/// Bytes of output kept per instance.
pub const MAX_LOG_BYTES: usize = 1024 * 1024;

#[derive(Default)]
struct Buf {
    /// Absolute offset of `data[0]`.
    start: u64,
    data: Vec<u8>,
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
