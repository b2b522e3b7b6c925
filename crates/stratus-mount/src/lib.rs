//! The **lazy FUSE mount of an flist**, and the overlayfs upper
//! layer a container writes to.
//!
//! **Owns** serving an flist through FUSE with verified lazy chunks, the
//! node's chunk cache, and the overlay upper layer. **Does not own** where
//! chunks come from (a [`ChunkSource`] the agent provides) or the disk limit
//! of the upper layer (the agent measures it).
//!
//! A lending node that runs a container image does not download the image.
//! It mounts the image's [`Flist`] read-only with [`mount`]: the whole tree
//! (names, modes, owners, times, link counts, xattrs, symlinks, devices) is
//! answered from the flist in memory, and a file's bytes are fetched chunk
//! by chunk, only when read, from a [`ChunkSource`] (on a node: a control
//! replica over the network). A container then gets an [`Overlay`]: its
//! writes land in a per-container upper directory on the node's disk while
//! the flist mount stays untouched and shared.
//!
//! # How a read is served
//!
//! The kernel sends `read(ino, offset, size)`. The session thread maps the
//! range to the covering chunks (binary search over the chunk start offsets
//! precomputed per file at mount), notes them in the access log, and hands
//! the request to a small worker pool ([`MountOptions::fetch_threads`]), so
//! a slow fetch never stalls lookups or other reads. A worker gets each
//! chunk from, in order: an in-memory LRU of hot chunks
//! ([`MountOptions::memory_bytes`]), the on-disk [`ChunkCache`], the
//! source. Concurrent requests for one missing chunk share one fetch
//! (single flight). Files are opened with `keep_cache`, so pages the kernel
//! once read are not asked for again while they stay in the page cache.
//!
//! # Trust
//!
//! * **The flist is untrusted input** (it comes over the network):
//!   [`mount`] refuses one that fails [`Flist::validate`] (a tree, no
//!   cycles, every name valid, sizes equal to chunk sums) before touching
//!   the kernel.
//! * **Chunk bytes are untrusted** (the source, and the local disk): every
//!   chunk is checked with [`FileChunk::verify`] (length and plain BLAKE3)
//!   before it is cached or served. A source answer that fails is counted
//!   ([`MountStats::refused`]) and asked once more; if that fails too the
//!   read fails with `EIO`. A cache file that fails is deleted and fetched
//!   again ([`CacheStats::corrupt`]). Wrong bytes never reach a reader.
//! * **Readers are other users**: the mount uses `allow_other` (a
//!   container runs as any uid) with `default_permissions` (the kernel
//!   enforces the flist's modes and owners), `ro`, and — unless
//!   [`MountOptions::suid`] / [`MountOptions::dev`] say otherwise — `nosuid`
//!   and `nodev`, so an image cannot plant a set-uid root binary or a device
//!   node usable on the host through the flist mount itself. (The container
//!   sees the image through its [`Overlay`], which decides that for it.)
//! * Every write operation answers `EROFS`.
//!
//! # Limits
//!
//! * Memory is the flist (already in memory), per file the chunk start
//!   offsets (8 bytes per chunk), the hot-chunk LRU, and the access log
//!   (32 bytes per distinct chunk read). Chunk bytes live on disk, bounded
//!   by the cache's limit.
//! * A chunk the cache cannot hold (larger than its limit, or evicted
//!   between reads) is fetched again when read again; a working set larger
//!   than the cache refetches.
//! * The prefetch list ([`MountOptions::prefetch`]) is worked through by one
//!   background thread, in order, up to the cache's limit in bytes; reads
//!   never wait for it (a read that needs a chunk being prefetched joins
//!   that fetch).
//! * Inode numbers are flist indexes + 1 and are stable for a given flist;
//!   `forget` is ignored (nothing per inode is allocated).
//! * Unmounting takes the mount out of the namespace (lazily when it is
//!   busy: open files, a working directory). The file system is served
//!   until the kernel's last reference goes: an [`Overlay`] holds its lower
//!   through a private clone, and a container's mount namespace holds a
//!   copy, so the session thread is never joined.
//! * Needs root (or `CAP_SYS_ADMIN`), `/dev/fuse`, and overlayfs for
//!   [`Overlay`]. No libfuse: `fuser` speaks the protocol itself.

mod cache;
mod fetch;
mod fs;
mod overlay;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::{Config, MountOption, SessionACL};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use stratus_flist::{FileChunk, Flist, FlistError};

pub use cache::{CacheStats, ChunkCache};
pub use fetch::{ChunkSource, MountStats, SourceError};
pub use overlay::Overlay;

use fetch::Fetcher;

/// What can go wrong mounting, serving or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The flist breaks an invariant; nothing was mounted.
    #[error("refusing to mount an invalid flist: {0}")]
    InvalidFlist(#[from] FlistError),
    /// The mountpoint is missing or not a directory.
    #[error("mountpoint {path}: {reason}")]
    Mountpoint {
        /// The mountpoint given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The kernel refused the FUSE mount (no `/dev/fuse`, no permission...).
    #[error("cannot mount FUSE at {path}: {source}")]
    Fuse {
        /// The mountpoint.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Unmounting failed (even a lazy detach).
    #[error("cannot unmount {path}: {source}")]
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// The error.
        source: Errno,
    },
    /// A full fetch found an image larger than the chunk cache.
    #[error("the image's {bytes} bytes do not fit the {limit}-byte chunk cache: use lazy fetch, or a larger cache")]
    TooLargeForCache {
        /// Bytes of the image's distinct chunks.
        bytes: u64,
        /// The cache's limit.
        limit: u64,
    },
    /// A full fetch could not get every chunk.
    #[error("fetching the whole image: {failed} of {total} chunks could not be fetched (unreachable or corrupt)")]
    FullFetch {
        /// Chunks that failed.
        failed: u64,
        /// Distinct chunks of the image.
        total: u64,
    },
    /// An overlayfs mount failed or was refused.
    #[error("overlay at {target}: {reason}")]
    Overlay {
        /// The path concerned.
        target: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file-system operation of the chunk cache failed.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another [`ChunkCache`] holds this directory.
    #[error("chunk cache {0} is in use by another process or instance")]
    CacheLocked(PathBuf),
    /// Bytes given to [`ChunkCache::put`] do not match the chunk.
    #[error("bytes do not match the chunk's length and hash")]
    NotVerified,
    /// A worker thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(io::Error),
}

/// How to mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Plain chunk hashes to fetch into the cache in the background at
    /// mount, in order (typically the [`Mounted::access_log`] of an earlier
    /// start of the same image). Hashes the flist does not contain are
    /// ignored; the list is cut at the cache's limit in bytes.
    pub prefetch: Vec<[u8; 32]>,
    /// Worker threads that answer reads (and so fetch in parallel).
    pub fetch_threads: usize,
    /// Bytes of recently read chunks kept in memory (0: none).
    pub memory_bytes: u64,
    /// How long the kernel may cache attributes and names. The tree is
    /// immutable, so this can be long.
    pub ttl: Duration,
    /// Honour set-uid/set-gid bits when executing from the flist mount
    /// directly (default off: `nosuid`).
    pub suid: bool,
    /// Allow device nodes of the flist to be opened (default off:
    /// `nodev`).
    pub dev: bool,
    /// Source name shown in the mount table.
    pub fs_name: String,
    /// Added to every owner uid and gid the mount shows (0: none), for
    /// containers in a user namespace whose ids `0..65536` are host ids
    /// `id_shift..`: the image's root-owned files are then owned by the
    /// container's root and by no host user. Owners at or above 65,536
    /// show as the shifted `nobody` (65,534), never outside the range.
    pub id_shift: u32,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            prefetch: Vec::new(),
            fetch_threads: 4,
            memory_bytes: 16 << 20,
            ttl: Duration::from_secs(3600),
            suid: false,
            dev: false,
            fs_name: "stratus-flist".into(),
            id_shift: 0,
        }
    }
}

/// A mounted flist. Unmounted by [`Mounted::unmount`] or on drop.
pub struct Mounted {
    mountpoint: PathBuf,
    /// Unmounts through fuser; `None` once unmounted.
    unmounter: Option<fuser::SessionUnmounter>,
    /// The session loop; it ends when the kernel closes the connection,
    /// which is later than the unmount when something else (an overlay, a
    /// container's mount namespace) still holds the file system. Never
    /// joined for that reason.
    _session: JoinHandle<io::Result<()>>,
    fetcher: Arc<Fetcher>,
    stop: Arc<AtomicBool>,
    prefetch_done: Arc<AtomicBool>,
    prefetch: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("mountpoint", &self.mountpoint)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Mounts `flist` read-only at `mountpoint` (an existing directory), with
/// file contents fetched lazily from `source` through `cache`. The flist is
/// validated first. Returns once the kernel has the mount; the prefetch
/// list, if any, is worked through in the background.
pub fn mount(
    flist: Arc<Flist>,
    source: Arc<dyn ChunkSource>,
    cache: Arc<ChunkCache>,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<Mounted, MountError> {
    flist.validate()?;
    match std::fs::metadata(mountpoint) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(MountError::Mountpoint {
                path: mountpoint.to_path_buf(),
                reason: "not a directory".into(),
            })
        }
        Err(e) => {
            return Err(MountError::Mountpoint {
                path: mountpoint.to_path_buf(),
                reason: e.to_string(),
            })
        }
    }
    let canonical = mountpoint
        .canonicalize()
        .map_err(|e| MountError::Mountpoint {
            path: mountpoint.to_path_buf(),
            reason: e.to_string(),
        })?;

    let fetcher = Arc::new(Fetcher::new(source, cache, opts.memory_bytes));
    let (pool, _workers) = fetch::start_pool(opts.fetch_threads)?;
    let fs = fs::FlistFs::new(
        flist.clone(),
        fetcher.clone(),
        pool,
        opts.ttl,
        opts.id_shift,
    );

    let mut mount_options = vec![
        MountOption::FSName(opts.fs_name.clone()),
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    if opts.suid {
        mount_options.push(MountOption::Suid);
    }
    if opts.dev {
        mount_options.push(MountOption::Dev);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = SessionACL::All;
    config.n_threads = Some(1);
    let fuse_err = |e| MountError::Fuse {
        path: canonical.clone(),
        source: e,
    };
    let mut session = fuser::Session::new(fs, &canonical, &config).map_err(fuse_err)?;
    let mut unmounter = session.unmount_callable();
    let session = match std::thread::Builder::new()
        .name("stratus-fuse".into())
        .spawn(move || session.run())
    {
        Ok(handle) => handle,
        Err(e) => {
            // The session (and its mount) went with the closure.
            let _ = unmounter.unmount();
            return Err(MountError::Thread(e));
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let prefetch_done = Arc::new(AtomicBool::new(false));
    let mut mounted = Mounted {
        mountpoint: canonical,
        unmounter: Some(unmounter),
        _session: session,
        fetcher: fetcher.clone(),
        stop: stop.clone(),
        prefetch_done: prefetch_done.clone(),
        prefetch: None,
    };
    let list = prefetch_plan(&flist, &opts.prefetch, fetcher.cache.limit());
    let spawned = std::thread::Builder::new()
        .name("stratus-prefetch".into())
        .spawn(move || {
            for chunk in &list {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if fetcher.is_local(&chunk.hash) {
                    continue;
                }
                if fetcher.get(chunk, false).is_ok() {
                    fetcher
                        .counters
                        .prefetched_chunks
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            prefetch_done.store(true, Ordering::SeqCst);
        });
    match spawned {
        Ok(handle) => mounted.prefetch = Some(handle),
        // `mounted` is dropped, and so unmounted.
        Err(e) => return Err(MountError::Thread(e)),
    }
    Ok(mounted)
}

/// Fetches a whole image before its container starts ("pull first"): the
/// container then never waits on the network, and keeps its files when the
/// replicas are out of reach. Made by [`Mounted::full_fetch`].
#[derive(Clone)]
pub struct FullFetch {
    fetcher: Arc<Fetcher>,
    chunks: Arc<Vec<FileChunk>>,
}

/// What [`FullFetch::run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullFetchReport {
    /// Distinct chunks of the image.
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes fetched from the source now (the rest was local).
    pub fetched_bytes: u64,
}

impl FullFetch {
    /// Bytes of the distinct chunks of the image.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.len)).sum()
    }

    /// Fetches every chunk that is not local yet with `threads` parallel
    /// fetches, verifying each; blocks until done. Fails when the image does
    /// not fit the cache, or when any chunk cannot be had.
    pub fn run(&self, threads: usize) -> Result<FullFetchReport, MountError> {
        let bytes = self.bytes();
        let limit = self.fetcher.cache.limit();
        if bytes > limit {
            return Err(MountError::TooLargeForCache { bytes, limit });
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicU64::new(0);
        let fetched = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    while let Some(c) = self.chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if self.fetcher.is_local(&c.hash) {
                            continue;
                        }
                        match self.fetcher.get(c, false) {
                            Ok(_) => fetched.fetch_add(u64::from(c.len), Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                });
            }
        });
        let failed = failed.into_inner();
        if failed > 0 {
            return Err(MountError::FullFetch {
                failed,
                total: self.chunks.len() as u64,
            });
        }
        Ok(FullFetchReport {
            chunks: self.chunks.len() as u64,
            bytes,
            fetched_bytes: fetched.into_inner(),
        })
    }
}

/// The chunks of `hashes` that the flist has, in order, without repeats,
/// cut where their total would pass `budget` bytes.
fn prefetch_plan(flist: &Flist, hashes: &[[u8; 32]], budget: u64) -> Vec<FileChunk> {
    let wanted: HashSet<&[u8; 32]> = hashes.iter().collect();
    let mut known: HashMap<[u8; 32], FileChunk> = HashMap::new();
    for c in flist.chunks() {
        if wanted.contains(&c.hash) {
            known.entry(c.hash).or_insert(*c);
        }
    }
    let mut total = 0u64;
    let mut plan = Vec::new();
    for h in hashes {
        if let Some(c) = known.remove(h) {
            total += u64::from(c.len);
            if total > budget {
                break;
            }
            plan.push(c);
        }
    }
    plan
}

/// Unmounts `path`; when it is busy, detaches it lazily. A path that is
/// not (any more) a mount point is not an error.
pub(crate) fn unmount_path(path: &Path) -> Result<(), MountError> {
    match umount2(path, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => {
            tracing::warn!(path = %path.display(), "busy; detaching lazily");
            umount2(path, MntFlags::MNT_DETACH).map_err(|source| MountError::Unmount {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(MountError::Unmount {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Mounted {
    /// The (canonical) mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Counters of this mount.
    pub fn stats(&self) -> MountStats {
        let c = &self.fetcher.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        MountStats {
            fetched_chunks: get(&c.fetched_chunks),
            fetched_bytes: get(&c.fetched_bytes),
            cache_hits: get(&c.cache_hits),
            memory_hits: get(&c.memory_hits),
            reads: get(&c.reads),
            bytes_served: get(&c.bytes_served),
            read_errors: get(&c.read_errors),
            refused: get(&c.refused),
            fetch_errors: get(&c.fetch_errors),
            prefetched_chunks: get(&c.prefetched_chunks),
            prefetch_done: self.prefetch_done.load(Ordering::SeqCst),
        }
    }

    /// The plain hashes of the chunks readers asked for, in first-read
    /// order: the prefetch list to record for the next start of the image.
    pub fn access_log(&self) -> Vec<[u8; 32]> {
        self.fetcher.access_log()
    }

    /// The chunk cache of this mount.
    pub fn cache(&self) -> &Arc<ChunkCache> {
        &self.fetcher.cache
    }

    /// A handle that brings every chunk of `flist` (the flist this mount
    /// serves) into the cache: see [`FullFetch::run`].
    pub fn full_fetch(&self, flist: &Flist) -> FullFetch {
        let mut seen = HashSet::new();
        let chunks = flist
            .chunks()
            .filter(|c| seen.insert(c.hash))
            .copied()
            .collect();
        FullFetch {
            fetcher: self.fetcher.clone(),
            chunks: Arc::new(chunks),
        }
    }

    /// Waits until the prefetch list has been worked through, at most
    /// `timeout`; whether it has.
    pub fn wait_prefetch(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.prefetch_done.load(Ordering::SeqCst) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Unmounts. A busy mount (open files) is detached lazily; the file
    /// system stays served while anything (a lazily detached user, an
    /// overlay on top, another mount namespace) still holds it.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        self.stop.store(true, Ordering::Relaxed);
        // The prefetch thread stops after its current chunk; not joined.
        drop(self.prefetch.take());
        let Some(mut unmounter) = self.unmounter.take() else {
            return Ok(());
        };
        match unmounter.unmount() {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(path = %self.mountpoint.display(), "unmount: {e}");
                match umount2(&self.mountpoint, MntFlags::MNT_DETACH) {
                    Ok(()) => {
                        tracing::warn!(path = %self.mountpoint.display(), "busy; detached lazily");
                        Ok(())
                    }
                    // Not mounted (any more): the first attempt did it.
                    Err(Errno::EINVAL) => Ok(()),
                    Err(source) => Err(MountError::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    }),
                }
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("{e}");
        }
    }
}
