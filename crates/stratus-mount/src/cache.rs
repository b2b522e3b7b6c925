//! The on-disk chunk cache: verified chunk bytes, one file per chunk, total
//! size bounded, least recently used evicted first.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use lru::LruCache;
use nix::fcntl::{Flock, FlockArg};
use stratus_flist::FileChunk;

use crate::MountError;

/// Name of the lock file held (flock) while a [`ChunkCache`] has the
/// directory open.
const LOCK_FILE: &str = "LOCK";
/// Prefix of files being written; removed at open.
const TMP_PREFIX: &str = ".tmp-";

/// Counters of a [`ChunkCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Chunks held now.
    pub entries: u64,
    /// Bytes held now (the sum of the chunk lengths).
    pub bytes: u64,
    /// The configured limit in bytes.
    pub limit: u64,
    /// [`ChunkCache::get`] calls answered with verified bytes.
    pub hits: u64,
    /// [`ChunkCache::get`] calls that found nothing usable.
    pub misses: u64,
    /// Cache files that failed verification on read (deleted, never served).
    pub corrupt: u64,
    /// Chunks evicted to stay under the limit.
    pub evicted: u64,
    /// Chunks written by [`ChunkCache::put`].
    pub inserted: u64,
}

struct Index {
    /// Plain hash → length of the cached chunk, least recently used first out.
    lru: LruCache<[u8; 32], u64>,
    /// Sum of the lengths in `lru`.
    bytes: u64,
}

/// A bounded on-disk cache of chunk bytes, keyed by the chunk's plain BLAKE3
/// hash (so equal bytes named by different store ids are kept once).
///
/// * Every chunk is stored as `dir/<64 hex of the plain hash>`, written to a
///   temporary file and renamed into place, so a reader sees a whole file or
///   none. Files are not fsynced: the cache is disposable and every read is
///   verified, so a torn file after a crash is only a miss.
/// * The total of the cached chunk lengths never exceeds the limit: a
///   [`ChunkCache::put`] first evicts the least recently used chunks. A chunk
///   larger than the whole limit is not cached.
/// * [`ChunkCache::open`] rescans the directory, so the cache survives
///   restarts; recency after a restart is approximated by the files'
///   modification times (when they were written). Files are not re-hashed at open (that would read the whole cache):
///   [`ChunkCache::get`] verifies every read and deletes a file that fails,
///   so a corrupted file is never returned.
/// * One directory is used by one `ChunkCache` at a time (an exclusive
///   `flock` on `dir/LOCK`); share one cache between the mounts of a node
///   with an `Arc`.
pub struct ChunkCache {
    dir: PathBuf,
    limit: u64,
    index: Mutex<Index>,
    tmp_seq: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    evicted: AtomicU64,
    inserted: AtomicU64,
    _lock: Flock<File>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MountError + '_ {
    move |source| MountError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ChunkCache {
    /// Opens (creating it if needed) the cache in `dir`, holding at most
    /// `limit_bytes` of chunks. Chunk files already there are indexed
    /// (oldest modification first out) and evicted down to the limit;
    /// leftover temporary files and files whose names are not chunk hashes
    /// are removed.
    pub fn open(dir: &Path, limit_bytes: u64) -> Result<ChunkCache, MountError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| MountError::CacheLocked(dir.to_path_buf()))?;

        let mut found: Vec<(SystemTime, [u8; 32], u64)> = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let path = entry.path();
            if name == LOCK_FILE {
                continue;
            }
            let hash = name
                .to_str()
                .filter(|n| n.len() == 64)
                .and_then(|n| hex::decode(n).ok())
                .and_then(|h| <[u8; 32]>::try_from(h).ok());
            let meta = entry.metadata().map_err(io_err(&path))?;
            match hash {
                Some(hash) if meta.is_file() => {
                    let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    found.push((mtime, hash, meta.len()));
                }
                _ => {
                    // Temporary files of an interrupted put, or strangers.
                    let removed = if meta.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    if let Err(e) = removed {
                        tracing::warn!(path = %path.display(), "cannot remove from chunk cache: {e}");
                    }
                }
            }
        }
        found.sort();
        let mut index = Index {
            lru: LruCache::unbounded(),
            bytes: 0,
        };
        for (_, hash, len) in found {
            index.lru.put(hash, len);
            index.bytes += len;
        }
        let cache = ChunkCache {
            dir: dir.to_path_buf(),
            limit: limit_bytes,
            index: Mutex::new(index),
            tmp_seq: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            inserted: AtomicU64::new(0),
            _lock: lock,
        };
        {
            let mut index = cache.lock();
            cache.evict_until(&mut index, limit_bytes);
        }
        Ok(cache)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index is consistent after every statement that changes it;
        // a panic elsewhere while holding the lock leaves it usable.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(hash))
    }

    /// Evicts least recently used chunks until at most `target` bytes remain.
    fn evict_until(&self, index: &mut Index, target: u64) {
        while index.bytes > target {
            let Some((hash, len)) = index.lru.pop_lru() else {
                break;
            };
            index.bytes -= len;
            self.evicted.fetch_add(1, Ordering::Relaxed);
            let path = self.path_of(&hash);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "cannot evict chunk: {e}");
                }
            }
        }
    }

    /// Whether the chunk is cached (not verified; does not count as a use).
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.lock().lru.contains(hash)
    }

    /// The chunk's bytes, verified against `chunk` (length and plain
    /// BLAKE3). A file that fails verification is deleted and counted in
    /// [`CacheStats::corrupt`]; `None` is returned, never the bad bytes.
    pub fn get(&self, chunk: &FileChunk) -> Option<Vec<u8>> {
        let known = self.lock().lru.get(&chunk.hash).is_some();
        if !known {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let path = self.path_of(&chunk.hash);
        match fs::read(&path) {
            Ok(bytes) if chunk.verify(&bytes) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(bytes)
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "cached chunk failed verification; deleted");
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                self.misses.fetch_add(1, Ordering::Relaxed);
                let mut index = self.lock();
                if let Some(len) = index.lru.pop(&chunk.hash) {
                    index.bytes -= len;
                }
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), "cannot delete corrupt chunk: {e}");
                }
                None
            }
            Err(e) => {
                // Evicted between the lookup and the read, or removed behind
                // our back: forget it.
                if e.kind() == io::ErrorKind::NotFound {
                    let mut index = self.lock();
                    if let Some(len) = index.lru.pop(&chunk.hash) {
                        index.bytes -= len;
                    }
                } else {
                    tracing::warn!(path = %path.display(), "cannot read cached chunk: {e}");
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores the chunk's bytes. Bytes that do not verify against `chunk`
    /// are refused ([`MountError::NotVerified`]); a chunk larger than the
    /// limit is silently not cached. Evicts least recently used chunks to
    /// make room.
    pub fn put(&self, chunk: &FileChunk, bytes: &[u8]) -> Result<(), MountError> {
        if !chunk.verify(bytes) {
            return Err(MountError::NotVerified);
        }
        let len = bytes.len() as u64;
        if len > self.limit || self.lock().lru.contains(&chunk.hash) {
            return Ok(());
        }
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}-{seq}",
            hex::encode(&chunk.hash[..8]),
            std::process::id()
        ));
        let written = File::create(&tmp).and_then(|mut f| f.write_all(bytes));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(MountError::Io {
                path: tmp,
                source: e,
            });
        }
        let path = self.path_of(&chunk.hash);
        let mut index = self.lock();
        if index.lru.contains(&chunk.hash) {
            // A concurrent put won.
            drop(index);
            let _ = fs::remove_file(&tmp);
            return Ok(());
        }
        self.evict_until(&mut index, self.limit - len);
        if let Err(e) = fs::rename(&tmp, &path) {
            drop(index);
            let _ = fs::remove_file(&tmp);
            return Err(MountError::Io { path, source: e });
        }
        index.lru.put(chunk.hash, len);
        index.bytes += len;
        self.inserted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = {
            let index = self.lock();
            (index.lru.len() as u64, index.bytes)
        };
        CacheStats {
            entries,
            bytes,
            limit: self.limit,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            inserted: self.inserted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chunk(bytes: &[u8]) -> FileChunk {
        FileChunk {
            id: [7; 32],
            hash: *blake3::hash(bytes).as_bytes(),
            len: bytes.len() as u32,
        }
    }

    fn files_bytes(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name() != LOCK_FILE)
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn put_get_roundtrip_and_refuses_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        let c = chunk(b"hello chunk");
        assert!(cache.get(&c).is_none());
        assert!(matches!(
            cache.put(&c, b"hello chunK"),
            Err(MountError::NotVerified)
        ));
        assert!(cache.get(&c).is_none());
        cache.put(&c, b"hello chunk").unwrap();
        assert_eq!(cache.get(&c).unwrap(), b"hello chunk");
        let s = cache.stats();
        assert_eq!((s.entries, s.bytes, s.hits, s.misses), (1, 11, 1, 2));
        assert!(dir.path().join(hex::encode(c.hash)).is_file());
    }

    #[test]
    fn corrupt_file_is_deleted_and_never_returned() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        let c = chunk(b"some bytes here");
        cache.put(&c, b"some bytes here").unwrap();
        let path = dir.path().join(hex::encode(c.hash));
        fs::write(&path, b"some bytes HERE").unwrap();
        assert!(cache.get(&c).is_none());
        assert!(!path.exists());
        let s = cache.stats();
        assert_eq!((s.corrupt, s.entries, s.bytes), (1, 0, 0));
    }

    #[test]
    fn evicts_least_recently_used_to_stay_under_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(dir.path(), 250).unwrap();
        let blobs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 100]).collect();
        let chunks: Vec<FileChunk> = blobs.iter().map(|b| chunk(b)).collect();
        cache.put(&chunks[0], &blobs[0]).unwrap();
        cache.put(&chunks[1], &blobs[1]).unwrap();
        // Touch 0 so that 1 is the least recently used.
        assert!(cache.get(&chunks[0]).is_some());
        cache.put(&chunks[2], &blobs[2]).unwrap();
        assert!(cache.contains(&chunks[0].hash));
        assert!(!cache.contains(&chunks[1].hash));
        assert!(cache.contains(&chunks[2].hash));
        assert!(files_bytes(dir.path()) <= 250);
        // Larger than the limit: not cached, nothing evicted.
        let big = vec![9u8; 300];
        cache.put(&chunk(&big), &big).unwrap();
        assert_eq!(cache.stats().entries, 2);
        assert_eq!(cache.stats().evicted, 1);
    }

    #[test]
    fn survives_reopen_with_smaller_limit_and_cleans_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 100]).collect();
        let chunks: Vec<FileChunk> = blobs.iter().map(|b| chunk(b)).collect();
        {
            let cache = ChunkCache::open(dir.path(), 1000).unwrap();
            for (c, b) in chunks.iter().zip(&blobs) {
                cache.put(c, b).unwrap();
            }
            // A second instance on the same directory is refused.
            assert!(matches!(
                ChunkCache::open(dir.path(), 1000),
                Err(MountError::CacheLocked(_))
            ));
        }
        fs::write(dir.path().join(".tmp-leftover"), b"x").unwrap();
        let cache = ChunkCache::open(dir.path(), 1000).unwrap();
        assert_eq!(cache.stats().entries, 3);
        assert_eq!(cache.get(&chunks[1]).unwrap(), blobs[1]);
        assert!(!dir.path().join(".tmp-leftover").exists());
        drop(cache);
        let cache = ChunkCache::open(dir.path(), 150).unwrap();
        assert_eq!(cache.stats().entries, 1);
        assert!(files_bytes(dir.path()) <= 150);
    }
}
