//! Where the contents of imported files go.
//!
//! The importer hands each surviving regular file to a [`ContentSink`] once;
//! the sink returns the file's chunks. [`ChunkingSink`] is the real one: it
//! cuts each file on its own with FastCDC (chunk boundaries never straddle
//! two files, so equal files in any image chunk to the same ids) and hands
//! every chunk to a writer closure (e.g. the object store's put).
//! `MemorySink` (feature `testing`) keeps chunks in memory, for tests.

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
