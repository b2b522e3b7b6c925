//! Where the contents of imported files go.
//!
//! The importer hands each surviving regular file to a [`ContentSink`] once;
//! the sink returns the file's chunks. [`ChunkingSink`] is the real one: it
//! cuts each file on its own with FastCDC (chunk boundaries never straddle
//! two files, so equal files in any image chunk to the same ids) and hands
//! every chunk to a writer closure (e.g. the object store's put).
//! [`MemorySink`] keeps chunks in memory, for tests and examples.

use std::collections::HashMap;
use std::io::Read;

use stratus_chunk::{chunk_id, ChunkerParams, ScopeKey, StreamChunker};

use crate::{FileChunk, FlistError};

/// Receives the contents of imported files.
pub trait ContentSink {
    /// Called once per surviving regular file (hard links: once per inode);
    /// must read exactly `size` bytes from `data`; returns the file's chunks.
    fn file(&mut self, data: &mut dyn Read, size: u64) -> Result<Vec<FileChunk>, FlistError>;
}

/// Read buffer of [`ChunkingSink`].
const READ_BUF: usize = 256 << 10;

/// Chunks every file on its own (FastCDC, [`StreamChunker`] with `params`,
/// so chunk boundaries never straddle files), computes the store id
/// [`stratus_chunk::chunk_id`]`(&scope, bytes)` and the plain
/// `blake3::hash`, and hands each chunk to `write`.
pub struct ChunkingSink<F: FnMut(&FileChunk, &[u8]) -> Result<(), FlistError>> {
    params: ChunkerParams,
    scope: ScopeKey,
    write: F,
    buf: Vec<u8>,
}

impl<F: FnMut(&FileChunk, &[u8]) -> Result<(), FlistError>> std::fmt::Debug for ChunkingSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkingSink")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(&FileChunk, &[u8]) -> Result<(), FlistError>> ChunkingSink<F> {
    /// A sink with the given chunking bounds (validated here) and scope.
    pub fn new(params: ChunkerParams, scope: ScopeKey, write: F) -> Result<Self, FlistError> {
        params
            .validate()
            .map_err(|e| FlistError::Sink(format!("chunker parameters: {e}")))?;
        Ok(ChunkingSink {
            params,
            scope,
            write,
            buf: vec![0; READ_BUF],
        })
    }

    /// The writer closure back.
    pub fn into_inner(self) -> F {
        self.write
    }
}

impl<F: FnMut(&FileChunk, &[u8]) -> Result<(), FlistError>> ContentSink for ChunkingSink<F> {
    fn file(&mut self, data: &mut dyn Read, size: u64) -> Result<Vec<FileChunk>, FlistError> {
        let mut chunker = StreamChunker::new(self.params)
            .map_err(|e| FlistError::Sink(format!("chunker: {e}")))?;
        let mut chunks = Vec::new();
        let mut failed: Option<FlistError> = None;
        let scope = self.scope;
        let write = &mut self.write;
        let mut emit = |bytes: &[u8], chunks: &mut Vec<FileChunk>| {
            if failed.is_some() {
                return;
            }
            let chunk = FileChunk {
                id: chunk_id(&scope, bytes).0,
                hash: *blake3::hash(bytes).as_bytes(),
                // Chunks are at most `max` <= 16 MiB long (validated params).
                len: bytes.len() as u32,
            };
            match write(&chunk, bytes) {
                Ok(()) => chunks.push(chunk),
                Err(e) => failed = Some(e),
            }
        };
        let mut limited = data.take(size);
        let mut read: u64 = 0;
        loop {
            let n = match limited.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FlistError::io("reading a file's contents")(e)),
            };
            read += n as u64;
            chunker.push_with(&self.buf[..n], |c| emit(c, &mut chunks));
        }
        if let Some(last) = chunker.finish() {
            emit(&last, &mut chunks);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if read != size {
            return Err(FlistError::Sink(format!(
                "file contents ended after {read} of {size} bytes"
            )));
        }
        Ok(chunks)
    }
}

/// A [`ContentSink`] that chunks like [`ChunkingSink`] and keeps every chunk
/// in memory, by plain BLAKE3 hash; counts files and bytes it was handed.
/// For tests and examples.
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
