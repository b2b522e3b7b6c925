//! Packs: sealed chunks back to back.

use serde::{Deserialize, Serialize};

use crate::ChunkId;

/// Where a chunk lives, for the caller's metadata: the pack holds the sealed
/// bytes at `offset .. offset + sealed_len`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's id in its scope.
    pub id: ChunkId,
    /// Plaintext length.
    pub plain_len: u32,
    /// Offset of the sealed bytes in the pack.
    pub offset: u64,
    /// Length of the sealed bytes.
    pub sealed_len: u32,
}

/// Packs sealed chunks back to back. There is no header: the boundaries live
/// in the caller's metadata ([`ChunkRef`]), so storage nodes cannot see them.
#[derive(Debug, Clone)]
pub struct PackBuilder {
    target: usize,
    buf: Vec<u8>,
}

impl PackBuilder {
    /// An empty pack that counts as full once it holds `target_bytes`.
    pub fn new(target_bytes: usize) -> Self {
        PackBuilder {
            target: target_bytes,
            // One chunk may overshoot the target; reserve a little slack.
            buf: Vec::with_capacity(target_bytes.saturating_add(target_bytes / 4)),
        }
    }

    /// Appends a sealed chunk; returns its `(offset, len)` in the pack.
    ///
    /// # Panics
    /// If `sealed` is 4 GiB or longer (sealed chunks are at most 16 MiB plus
    /// a few bytes).
    pub fn add(&mut self, sealed: &[u8]) -> (u64, u32) {
        #[allow(clippy::expect_used)]
        let len = u32::try_from(sealed.len()).expect("sealed chunk shorter than 4 GiB");
        let offset = self.buf.len() as u64;
        self.buf.extend_from_slice(sealed);
        (offset, len)
    }

    /// Bytes in the pack so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether the pack reached its target size (`len() >= target`).
    pub fn is_full(&self) -> bool {
        self.buf.len() >= self.target
    }

    /// The pack's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn offsets_and_fullness() {
        let mut p = PackBuilder::new(10);
        assert!(p.is_empty() && !p.is_full());
        assert_eq!(p.add(b"abcd"), (0, 4));
        assert_eq!(p.add(b""), (4, 0));
        assert_eq!(p.add(b"efghij"), (4, 6));
        assert!(p.is_full());
        assert_eq!(p.len(), 10);
        assert_eq!(p.finish(), b"abcdefghij");
        let r = ChunkRef {
            id: ChunkId([1; 32]),
            plain_len: 5,
            offset: 7,
            sealed_len: 9,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains(&"01".repeat(32)));
        assert_eq!(serde_json::from_str::<ChunkRef>(&j).unwrap(), r);
    }
}
