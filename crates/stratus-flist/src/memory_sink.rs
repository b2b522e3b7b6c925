//! [`MemorySink`]: a [`ContentSink`] that keeps chunks in memory. Test
//! support (this crate's tests and the fuzz crate), compiled only for tests
//! and with the `testing` feature, never in the product.

use std::collections::HashMap;
use std::io::Read;

use stratus_chunk::{ChunkerParams, ScopeKey};

use crate::sink::{ChunkingSink, ContentSink};
use crate::{FileChunk, FlistError};

/// A [`ContentSink`] that chunks like [`ChunkingSink`] and keeps every chunk
/// in memory, by plain BLAKE3 hash; counts files and bytes it was handed.
/// For tests.
#[derive(Debug)]
pub struct MemorySink {
    params: ChunkerParams,
    scope: ScopeKey,
    /// Chunk bytes by plain BLAKE3 hash.
    pub chunks: HashMap<[u8; 32], Vec<u8>>,
    /// Number of [`ContentSink::file`] calls.
    pub files: u64,
    /// Bytes handed over in total.
    pub bytes: u64,
}

impl MemorySink {
    /// A sink with small chunks (1 KiB / 4 KiB / 16 KiB) in the public scope.
    pub fn new() -> MemorySink {
        MemorySink::with_params(
            ChunkerParams {
                min: 1 << 10,
                avg: 4 << 10,
                max: 16 << 10,
            },
            ScopeKey::public(),
        )
    }

    /// A sink with the given bounds and scope.
    pub fn with_params(params: ChunkerParams, scope: ScopeKey) -> MemorySink {
        MemorySink {
            params,
            scope,
            chunks: HashMap::new(),
            files: 0,
            bytes: 0,
        }
    }

    /// The contents of a file from its chunks (`None` if a chunk is missing
    /// or does not verify).
    pub fn read(&self, chunks: &[FileChunk]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for c in chunks {
            let bytes = self.chunks.get(&c.hash)?;
            if !c.verify(bytes) {
                return None;
            }
            out.extend_from_slice(bytes);
        }
        Some(out)
    }
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::new()
    }
}

impl ContentSink for MemorySink {
    fn file(&mut self, data: &mut dyn Read, size: u64) -> Result<Vec<FileChunk>, FlistError> {
        let store = &mut self.chunks;
        let mut inner = ChunkingSink::new(self.params, self.scope, |c: &FileChunk, b: &[u8]| {
            store.entry(c.hash).or_insert_with(|| b.to_vec());
            Ok(())
        })?;
        let chunks = inner.file(data, size)?;
        self.files += 1;
        self.bytes += size;
        Ok(chunks)
    }
}
