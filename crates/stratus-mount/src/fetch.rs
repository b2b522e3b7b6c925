//! Getting verified chunk bytes: a small in-memory LRU of hot chunks, then
//! the on-disk [`ChunkCache`], then the [`ChunkSource`] (single-flight,
//! verified, retried once); the counters and the access log of a mount; the
//! worker pool that answers reads off the FUSE session thread.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use lru::LruCache;
use stratus_flist::FileChunk;

use crate::{ChunkCache, MountError};

/// Why a [`ChunkSource`] could not deliver a chunk.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source does not know the chunk.
    #[error("chunk not found")]
    NotFound,
    /// The source could not be reached or failed.
    #[error("chunk source failed: {0}")]
    Failed(String),
}

/// Where chunk bytes come from (on a node: a control replica, over the
/// network). Called from worker threads and may block; the bytes it returns
/// are untrusted and verified by the mount before any use.
pub trait ChunkSource: Send + Sync + 'static {
    /// The bytes of `chunk` (its plain content: decrypted and decompressed).
    fn fetch(&self, chunk: &FileChunk) -> Result<Vec<u8>, SourceError>;
}

/// Counters of a mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountStats {
    /// Chunks fetched from the source and verified.
    pub fetched_chunks: u64,
    /// Bytes of those chunks.
    pub fetched_bytes: u64,
    /// Chunks answered by the on-disk cache.
    pub cache_hits: u64,
    /// Chunks answered by the in-memory LRU of hot chunks.
    pub memory_hits: u64,
    /// Read requests answered with data.
    pub reads: u64,
    /// Bytes returned to readers.
    pub bytes_served: u64,
    /// Read requests answered with an error (EIO).
    pub read_errors: u64,
    /// Source answers refused because the bytes did not verify.
    pub refused: u64,
    /// Source calls that failed.
    pub fetch_errors: u64,
    /// Chunks brought into the cache by the prefetch list.
    pub prefetched_chunks: u64,
    /// Whether the prefetch list has been worked through (or stopped).
    pub prefetch_done: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) fetched_chunks: AtomicU64,
    pub(crate) fetched_bytes: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) memory_hits: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) bytes_served: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
    pub(crate) prefetched_chunks: AtomicU64,
}

/// Why a chunk could not be had (all map to EIO for the reader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The source answered bytes that did not verify, twice.
    Refused,
    /// The source failed.
    Source,
}

type Outcome = Result<Arc<[u8]>, Failure>;

struct Flight {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

struct Hot {
    lru: LruCache<[u8; 32], Arc<[u8]>>,
    bytes: u64,
    limit: u64,
}

struct AccessLog {
    seen: HashSet<[u8; 32]>,
    order: Vec<[u8; 32]>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent; a panicking
    // holder does not make it unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The chunk getter of one mount.
pub(crate) struct Fetcher {
    source: Arc<dyn ChunkSource>,
    pub(crate) cache: Arc<ChunkCache>,
    hot: Mutex<Hot>,
    flights: Mutex<HashMap<[u8; 32], Arc<Flight>>>,
    pub(crate) counters: Counters,
    log: Mutex<AccessLog>,
}

/// Publishes a failure to the waiters of a flight if its leader unwinds
/// before publishing, so that no reader waits forever.
struct FlightGuard<'a> {
    fetcher: &'a Fetcher,
    hash: [u8; 32],
    flight: Arc<Flight>,
    published: bool,
}

impl FlightGuard<'_> {
    fn publish(&mut self, outcome: Outcome) {
        *lock(&self.flight.outcome) = Some(outcome);
        self.flight.done.notify_all();
        lock(&self.fetcher.flights).remove(&self.hash);
        self.published = true;
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.published {
            self.publish(Err(Failure::Source));
        }
    }
}

impl Fetcher {
    pub(crate) fn new(
        source: Arc<dyn ChunkSource>,
        cache: Arc<ChunkCache>,
        memory_bytes: u64,
    ) -> Fetcher {
        Fetcher {
            source,
            cache,
            hot: Mutex::new(Hot {
                lru: LruCache::unbounded(),
                bytes: 0,
                limit: memory_bytes,
            }),
            flights: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            log: Mutex::new(AccessLog {
                seen: HashSet::new(),
                order: Vec::new(),
            }),
        }
    }

    /// Notes that a reader asked for the chunk (first time only).
    pub(crate) fn record_access(&self, hash: &[u8; 32]) {
        let mut log = lock(&self.log);
        if log.seen.insert(*hash) {
            log.order.push(*hash);
        }
    }

    pub(crate) fn access_log(&self) -> Vec<[u8; 32]> {
        lock(&self.log).order.clone()
    }

    /// Whether the chunk is already local (memory or disk).
    pub(crate) fn is_local(&self, hash: &[u8; 32]) -> bool {
        lock(&self.hot).lru.contains(hash) || self.cache.contains(hash)
    }

    /// Verified bytes of `chunk`. `keep_hot`: remember them in memory (reads
    /// do, prefetch does not). Concurrent calls for one chunk share one
    /// load.
    pub(crate) fn get(&self, chunk: &FileChunk, keep_hot: bool) -> Outcome {
        if let Some(bytes) = lock(&self.hot).lru.get(&chunk.hash).cloned() {
            self.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes);
        }
        let (flight, leader) = {
            let mut flights = lock(&self.flights);
            match flights.get(&chunk.hash) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight {
                        outcome: Mutex::new(None),
                        done: Condvar::new(),
                    });
                    flights.insert(chunk.hash, f.clone());
                    (f, true)
                }
            }
        };
        if !leader {
            let mut outcome = lock(&flight.outcome);
            loop {
                if let Some(o) = outcome.as_ref() {
                    return o.clone();
                }
                outcome = flight
                    .done
                    .wait(outcome)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let mut guard = FlightGuard {
            fetcher: self,
            hash: chunk.hash,
            flight,
            published: false,
        };
        let outcome = self.load(chunk);
        if let (Ok(bytes), true) = (&outcome, keep_hot) {
            self.keep_hot(chunk.hash, bytes.clone());
        }
        guard.publish(outcome.clone());
        outcome
    }

    fn keep_hot(&self, hash: [u8; 32], bytes: Arc<[u8]>) {
        let mut hot = lock(&self.hot);
        let len = bytes.len() as u64;
        if len > hot.limit {
            return;
        }
        if let Some(old) = hot.lru.put(hash, bytes) {
            hot.bytes -= old.len() as u64;
        }
        hot.bytes += len;
        while hot.bytes > hot.limit {
            match hot.lru.pop_lru() {
                Some((_, b)) => hot.bytes -= b.len() as u64,
                None => break,
            }
        }
    }

    /// The disk cache, then the source (verified, one retry).
    fn load(&self, chunk: &FileChunk) -> Outcome {
        if let Some(bytes) = self.cache.get(chunk) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(bytes.into());
        }
        let mut failure = Failure::Source;
        for attempt in 0..2 {
            match self.source.fetch(chunk) {
                Ok(bytes) if chunk.verify(&bytes) => {
                    self.counters.fetched_chunks.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .fetched_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    if let Err(e) = self.cache.put(chunk, &bytes) {
                        tracing::warn!("cannot cache chunk {}: {e}", hex::encode(chunk.hash));
                    }
                    return Ok(bytes.into());
                }
                Ok(_) => {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        attempt,
                        "source returned bytes that do not match chunk {}; refused",
                        hex::encode(chunk.hash)
                    );
                    failure = Failure::Refused;
                }
                Err(e) => {
                    self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        attempt,
                        "cannot fetch chunk {}: {e}",
                        hex::encode(chunk.hash)
                    );
                    failure = Failure::Source;
                }
            }
        }
        Err(failure)
    }
}

/// A unit of work for the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// Starts `threads` workers that run jobs until every sender is dropped.
/// A panicking job is contained (its FUSE reply, dropped, answers EIO).
pub(crate) fn start_pool(
    threads: usize,
) -> Result<(crossbeam_channel::Sender<Job>, Vec<JoinHandle<()>>), MountError> {
    let (tx, rx) = crossbeam_channel::unbounded::<Job>();
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let rx = rx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("stratus-mount-{i}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if catch_unwind(AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a read job panicked");
                    }
                }
            })
            .map_err(MountError::Thread)?;
        handles.push(handle);
    }
    Ok((tx, handles))
}
