//! The local piece store of a storage node.
//!
//! **Owns** a storage node's pieces on its own disk: durable writes,
//! verification on read, quarantine, scrub, capacity. **Does not own**
//! which pieces it should hold (the replicas' metadata) or the network
//! service (`stratus-store`'s piece service).
//!
//! A storage node is an untrusted lender's machine. It keeps erasure-coded,
//! encrypted *pieces* of objects on its disk. Pieces are content addressed:
//! a piece's id ([`PieceId`]) is the BLAKE3 hash of its bytes, so the store
//! can check every piece it is given and every piece it serves.
//!
//! The API is synchronous `std::fs` (async callers wrap it in
//! `spawn_blocking`). A [`PieceStore`] is `Send + Sync` and every method takes
//! `&self`, so one store can be shared by many threads.
//!
//! # On-disk layout
//!
//! ```text
//! root/FORMAT               "1\n": the layout version (see FORMAT_VERSION)
//! root/LOCK                 held (flock) while a PieceStore has the directory open
//! root/p/<2 hex>/<64 hex>   the pieces, sharded by the id's first byte
//! root/tmp/                 pieces being written; emptied at open
//! root/quarantine/          pieces found corrupt: <64 hex>.<ms>.<n>
//! ```
//!
//! # Guarantees
//!
//! * **Atomic, durable writes.** [`PieceStore::put`] writes a temporary file,
//!   fsyncs it, renames it into place and fsyncs the shard directory before
//!   it answers: after a crash a piece is either whole or absent, and leftover
//!   temporary files are removed by the next [`PieceStore::open`].
//! * **A rotted piece is never served.** [`PieceStore::get`] re-hashes the
//!   piece; on a mismatch the file is moved to `quarantine/` and the call
//!   fails with [`PieceError::Corrupt`]. [`PieceStore::scrub`] does the same in
//!   the background, a bounded number of bytes per call.
//!   ([`PieceStore::get_range`] does not verify: ranged readers verify at a
//!   higher level.)
//! * **Capacity.** The bytes of stored pieces (plus writes in flight) never
//!   exceed the capacity the lender lends, and a write is refused up front
//!   when the filesystem lacks the space. Usage is kept in memory: computed
//!   at open by walking the tree and updated by every put, delete and
//!   quarantine.
//! * **Concurrency.** Operations on the same piece are serialized by one of
//!   256 lock stripes (by the id's first byte) around the short commit step
//!   only; hashing and writing the temporary file happen outside it.
//!   Concurrent puts of one piece all succeed and leave one file, counted
//!   once.
//!
//! Deletes are not fsynced: after a crash a deleted piece may reappear, which
//! garbage collection by the control plane tolerates.

#![forbid(unsafe_code)]

mod error;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::PieceError;

/// A piece id: the BLAKE3 hash (32 bytes) of the piece's bytes.
pub type PieceId = [u8; 32];

/// The on-disk layout version this build reads and writes (the content of
/// `root/FORMAT`).
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_FILE: &str = "FORMAT";
const LOCK_FILE: &str = "LOCK";
const PIECES_DIR: &str = "p";
const TMP_DIR: &str = "tmp";
const QUARANTINE_DIR: &str = "quarantine";

/// One stored piece, as listed by [`PieceStore::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PieceMeta {
    /// The piece id.
    pub id: PieceId,
    /// Its size in bytes.
    pub size: u64,
    /// When its file was last modified (written), in milliseconds since the
    /// Unix epoch.
    pub modified_ms: u64,
}

/// The store's usage, from [`PieceStore::usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Usage {
    /// The capacity lent to the store (from [`PieceStore::open`]).
    pub capacity_bytes: u64,
    /// Bytes of the pieces stored (not counting writes in flight).
    pub used_bytes: u64,
    /// Number of pieces stored.
    pub pieces: u64,
    /// Bytes available to this user on the filesystem holding the store (0
    /// when it cannot be measured).
    pub fs_available_bytes: u64,
}

/// What one [`PieceStore::scrub`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScrubReport {
    /// Pieces re-hashed by this call.
    pub checked_pieces: u64,
    /// Bytes re-hashed by this call.
    pub checked_bytes: u64,
    /// Pieces found corrupt by this call (now in quarantine, no longer stored).
    pub corrupt: Vec<PieceId>,
    /// Whether this call reached the end of the store: the next call starts
    /// again from the first piece.
    pub wrapped: bool,
}

#[derive(Debug, Default)]
struct Accounting {
    /// Bytes of committed pieces.
    used: u64,
    /// Number of committed pieces.
    pieces: u64,
    /// Bytes reserved by puts in flight.
    reserved: u64,
}

/// The piece store of one storage node. See the [crate docs](crate).
pub struct PieceStore {
    root: PathBuf,
    pieces_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    capacity_bytes: u64,
    acct: Mutex<Accounting>,
    /// Serializes the commit step of operations on pieces sharing a first byte.
    stripes: Box<[Mutex<()>]>,
    /// The last piece checked by `scrub` (None: start from the beginning).
    scrub_cursor: Mutex<Option<PieceId>>,
    /// Makes temporary and quarantine file names unique within the process.
    seq: AtomicU64,
    /// Holds the directory's flock for the store's lifetime.
    _lock: File,
}

impl std::fmt::Debug for PieceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PieceStore")
            .field("root", &self.root)
            .field("capacity_bytes", &self.capacity_bytes)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these mutexes is updated in single statements; a panic
    // elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn fsync_dir(dir: &Path) -> Result<(), PieceError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PieceError::io("syncing directory", dir, e))
}

fn create_dir(dir: &Path) -> Result<(), PieceError> {
    fs::create_dir_all(dir).map_err(|e| PieceError::io("creating directory", dir, e))
}

fn not_found(id: &PieceId) -> PieceError {
    PieceError::NotFound {
        id: hex::encode(id),
    }
}

/// Hashes a file without loading it whole; returns its hash and size.
fn hash_file(path: &Path) -> io::Result<(blake3::Hash, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&mut file)?;
    Ok((hasher.finalize(), hasher.count()))
}

/// Removes a temporary file on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover is removed at the next open.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Bytes reserved against the capacity by a put in flight; released on drop.
struct Reservation<'a> {
    store: &'a PieceStore,
    len: u64,
}

impl Reservation<'_> {
    /// Turns the reservation into a stored piece.
    fn commit(mut self) {
        let mut a = lock(&self.store.acct);
        a.reserved = a.reserved.saturating_sub(self.len);
        a.used = a.used.saturating_add(self.len);
        a.pieces += 1;
        drop(a);
        // Nothing left to release on drop.
        self.len = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut a = lock(&self.store.acct);
        a.reserved = a.reserved.saturating_sub(self.len);
    }
}

impl PieceStore {
    /// Opens (creating) the store under `root` with a capacity limit in bytes
    /// (what the lender lends).
    ///
    /// Writes the FORMAT file of a new store and refuses a store whose FORMAT
    /// names another version ([`PieceError::UnsupportedFormat`]). Takes an
    /// exclusive lock on the directory ([`PieceError::Locked`] when another
    /// store has it open). Removes temporary files left by a crash and
    /// computes the usage by walking the pieces.
    ///
    /// The capacity may be below the current usage (the lender lent less than
    /// before): nothing is deleted, new puts are refused until enough pieces
    /// are deleted.
    pub fn open(root: &Path, capacity_bytes: u64) -> Result<Self, PieceError> {
        create_dir(root)?;
        let lock_path = root.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| PieceError::io("opening lock file", &lock_path, e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(PieceError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(PieceError::io("locking", &lock_path, e));
            }
        }

        check_or_write_format(root)?;

        let store = PieceStore {
            root: root.to_path_buf(),
            pieces_dir: root.join(PIECES_DIR),
            tmp_dir: root.join(TMP_DIR),
            quarantine_dir: root.join(QUARANTINE_DIR),
            capacity_bytes,
            acct: Mutex::new(Accounting::default()),
            stripes: (0..256).map(|_| Mutex::new(())).collect(),
            scrub_cursor: Mutex::new(None),
            seq: AtomicU64::new(0),
            _lock: lock_file,
        };
        create_dir(&store.pieces_dir)?;
        create_dir(&store.tmp_dir)?;
        create_dir(&store.quarantine_dir)?;
        store.clean_tmp()?;

        let mut acct = Accounting::default();
        for shard in 0..=255u8 {
            for (_, size) in store.shard_pieces(shard)? {
                acct.used = acct.used.saturating_add(size);
                acct.pieces += 1;
            }
        }
        *lock(&store.acct) = acct;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores a piece durably.
    ///
    /// Verifies that `blake3(bytes) == id` (else [`PieceError::HashMismatch`]),
    /// refuses when the used bytes plus `bytes.len()` would exceed the
    /// capacity or the filesystem lacks the space ([`PieceError::Full`]),
    /// writes a temporary file, fsyncs it, renames it into place and fsyncs
    /// the directory. Nothing is left behind when it fails.
    ///
    /// Idempotent: storing a piece already stored is `Ok` and writes nothing.
    /// (A stored file whose size does not match is corrupt: it is quarantined
    /// and replaced.) Returns whether the piece was newly written.
    pub fn put(&self, id: &PieceId, bytes: &[u8]) -> Result<bool, PieceError> {
        let actual = blake3::hash(bytes);
        if actual.as_bytes() != id {
            return Err(PieceError::HashMismatch {
                expected: hex::encode(id),
                actual: actual.to_hex().to_string(),
            });
        }
        let len = bytes.len() as u64;
        let path = self.piece_path(id);
        if fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == len) {
            // Fresh again: garbage collection spares pieces younger than its
            // grace period, and this one is about to be referenced anew.
            touch(&path);
            return Ok(false);
        }

        let reservation = self.reserve(len)?;
        let mut temp = self.write_temp(id, bytes, len)?;

        let _stripe = self.stripe(id);
        match fs::metadata(&path) {
            Ok(m) if m.len() == len => {
                touch(&path);
                return Ok(false);
            }
            Ok(_) => {
                self.quarantine_locked(&path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(PieceError::io("reading metadata of", &path, e)),
        }
        let shard_dir = self.shard_dir(id[0]);
        match fs::create_dir(&shard_dir) {
            Ok(()) => fsync_dir(&self.pieces_dir)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(PieceError::io("creating directory", &shard_dir, e)),
        }
        fs::rename(&temp.path, &path)
            .map_err(|e| PieceError::io("renaming into place", &path, e))?;
        temp.armed = false;
        reservation.commit();
        if let Err(e) = fsync_dir(&shard_dir) {
            // Not durable: take it back so that a retry writes it again.
            if fs::remove_file(&path).is_ok() {
                self.uncount(len);
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Reads a whole piece and verifies its hash.
    ///
    /// On a mismatch the file is moved to `quarantine/` and the call fails
    /// with [`PieceError::Corrupt`]: a rotted piece is never served.
    /// [`PieceError::NotFound`] when the piece is not stored.
    pub fn get(&self, id: &PieceId) -> Result<Vec<u8>, PieceError> {
        let path = self.piece_path(id);
        // A second attempt only happens if the file changed between the read
        // and the check under the lock (a concurrent delete and re-put).
        for _ in 0..2 {
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(id)),
                Err(e) => return Err(PieceError::io("reading piece", &path, e)),
            };
            if blake3::hash(&bytes).as_bytes() == id {
                return Ok(bytes);
            }
            if let Some(dest) = self.quarantine_if_corrupt(id)? {
                return Err(PieceError::Corrupt {
                    id: hex::encode(id),
                    quarantined_to: dest,
                });
            }
        }
        Err(not_found(id))
    }

    /// Reads `len` bytes at `offset` of a piece, *without* verifying its hash
    /// (callers verify at a higher level), for ranged reads.
    ///
    /// [`PieceError::OutOfRange`] when the range reaches past the end of the
    /// piece; [`PieceError::NotFound`] when the piece is not stored.
    pub fn get_range(&self, id: &PieceId, offset: u64, len: u64) -> Result<Vec<u8>, PieceError> {
        let path = self.piece_path(id);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(id)),
            Err(e) => return Err(PieceError::io("opening piece", &path, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| PieceError::io("reading metadata of", &path, e))?
            .len();
        let out_of_range = || PieceError::OutOfRange {
            id: hex::encode(id),
            offset,
            len,
            size,
        };
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(out_of_range());
        }
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| out_of_range())?];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| PieceError::io("reading piece", &path, e))?;
        Ok(buf)
    }

    /// Whether the piece is stored (without verifying it).
    pub fn contains(&self, id: &PieceId) -> bool {
        fs::metadata(self.piece_path(id)).is_ok_and(|m| m.is_file())
    }

    /// Deletes a piece. Returns whether it was stored.
    pub fn delete(&self, id: &PieceId) -> Result<bool, PieceError> {
        let path = self.piece_path(id);
        let _stripe = self.stripe(id);
        let size = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(PieceError::io("reading metadata of", &path, e)),
        };
        match fs::remove_file(&path) {
            Ok(()) => {
                self.uncount(size);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PieceError::io("deleting piece", &path, e)),
        }
    }

    /// Every stored piece with its size and modification time, sorted by id,
    /// for garbage collection by the control plane.
    pub fn list(&self) -> Result<Vec<PieceMeta>, PieceError> {
        let mut out = Vec::new();
        for shard in 0..=255u8 {
            let dir = self.shard_dir(shard);
            for (id, _) in self.shard_pieces(shard)? {
                let path = dir.join(hex::encode(id));
                let meta = match fs::metadata(&path) {
                    Ok(m) => m,
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(PieceError::io("reading metadata of", &path, e)),
                };
                let modified_ms = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                out.push(PieceMeta {
                    id,
                    size: meta.len(),
                    modified_ms,
                });
            }
        }
        Ok(out)
    }

    /// The capacity, the bytes and number of pieces stored, and the space
    /// left on the filesystem.
    pub fn usage(&self) -> Usage {
        let (used_bytes, pieces) = {
            let a = lock(&self.acct);
            (a.used, a.pieces)
        };
        Usage {
            capacity_bytes: self.capacity_bytes,
            used_bytes,
            pieces,
            fs_available_bytes: self.fs_available().unwrap_or(0),
        }
    }

    /// Re-hashes stored pieces, in id order, continuing after the last piece
    /// the previous call checked (a cursor kept in memory, so a new store
    /// starts from the beginning). Corrupt pieces are quarantined and
    /// reported.
    ///
    /// Checks pieces while their total stays within `max_bytes`, but always at
    /// least one, so every call makes progress. When it reaches the last piece
    /// it reports `wrapped` and the next call starts from the first one.
    /// Concurrent scrubs are serialized.
    pub fn scrub(&self, max_bytes: u64) -> Result<ScrubReport, PieceError> {
        let mut cursor = lock(&self.scrub_cursor);
        let start = *cursor;
        let mut report = ScrubReport::default();
        for shard in start.map_or(0, |c| c[0])..=255u8 {
            for (id, size) in self.shard_pieces(shard)? {
                if start.is_some_and(|c| id <= c) {
                    continue;
                }
                if report.checked_pieces > 0
                    && report.checked_bytes.saturating_add(size) > max_bytes
                {
                    return Ok(report);
                }
                let path = self.piece_path(&id);
                let (hash, size) = match hash_file(&path) {
                    Ok(h) => h,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(PieceError::io("reading piece", &path, e)),
                };
                if hash.as_bytes() != &id && self.quarantine_if_corrupt(&id)?.is_some() {
                    report.corrupt.push(id);
                }
                report.checked_pieces += 1;
                report.checked_bytes = report.checked_bytes.saturating_add(size);
                *cursor = Some(id);
            }
        }
        *cursor = None;
        report.wrapped = true;
        Ok(report)
    }

    // ---- internals ----

    fn shard_dir(&self, shard: u8) -> PathBuf {
        self.pieces_dir.join(hex::encode([shard]))
    }

    fn piece_path(&self, id: &PieceId) -> PathBuf {
        self.shard_dir(id[0]).join(hex::encode(id))
    }

    fn stripe(&self, id: &PieceId) -> MutexGuard<'_, ()> {
        lock(&self.stripes[usize::from(id[0])])
    }

    /// The pieces of one shard with their sizes, sorted by id. Files whose
    /// names are not piece ids of this shard are ignored.
    fn shard_pieces(&self, shard: u8) -> Result<Vec<(PieceId, u64)>, PieceError> {
        let dir = self.shard_dir(shard);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PieceError::io("listing directory", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PieceError::io("listing directory", &dir, e))?;
            let Some(id) = entry.file_name().to_str().and_then(parse_id) else {
                continue;
            };
            if id[0] != shard {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push((id, m.len())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(PieceError::io("reading metadata of", entry.path(), e)),
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn fs_available(&self) -> Option<u64> {
        // The statvfs field types differ between platforms (u32 on some 32-bit ones).
        #[allow(clippy::unnecessary_cast)]
        nix::sys::statvfs::statvfs(&self.root)
            .ok()
            .map(|s| (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
    }

    /// Reserves `len` bytes for a put, or refuses with `Full`.
    fn reserve(&self, len: u64) -> Result<Reservation<'_>, PieceError> {
        // When the filesystem cannot be measured, the write itself will tell.
        let fs_free = self.fs_available().unwrap_or(u64::MAX);
        let mut a = lock(&self.acct);
        let committed = a.used.saturating_add(a.reserved);
        let fs_left = fs_free.saturating_sub(a.reserved);
        if committed.saturating_add(len) > self.capacity_bytes || len > fs_left {
            return Err(PieceError::Full {
                needed_bytes: len,
                used_bytes: committed,
                capacity_bytes: self.capacity_bytes,
                fs_available_bytes: fs_left,
            });
        }
        a.reserved += len;
        Ok(Reservation { store: self, len })
    }

    fn uncount(&self, size: u64) {
        let mut a = lock(&self.acct);
        a.used = a.used.saturating_sub(size);
        a.pieces = a.pieces.saturating_sub(1);
    }

    fn write_temp(&self, id: &PieceId, bytes: &[u8], len: u64) -> Result<TempFile, PieceError> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp_dir.join(format!(
            "{}.{}.{n}.tmp",
            hex::encode(id),
            std::process::id()
        ));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| PieceError::io("creating temporary file", &path, e))?;
        let temp = TempFile { path, armed: true };
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                if e.kind() == io::ErrorKind::StorageFull {
                    let a = lock(&self.acct);
                    PieceError::Full {
                        needed_bytes: len,
                        used_bytes: a.used.saturating_add(a.reserved),
                        capacity_bytes: self.capacity_bytes,
                        fs_available_bytes: self.fs_available().unwrap_or(0),
                    }
                } else {
                    PieceError::io("writing temporary file", &temp.path, e)
                }
            })?;
        Ok(temp)
    }

    /// Under the piece's stripe: re-hashes the stored file and, if it is
    /// still corrupt, moves it to quarantine. Returns where it went, or None
    /// when the file is now good or gone.
    fn quarantine_if_corrupt(&self, id: &PieceId) -> Result<Option<PathBuf>, PieceError> {
        let path = self.piece_path(id);
        let _stripe = self.stripe(id);
        match hash_file(&path) {
            Ok((hash, _)) if hash.as_bytes() == id => Ok(None),
            Ok(_) => self.quarantine_locked(&path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PieceError::io("reading piece", &path, e)),
        }
    }

    /// Moves a stored piece file to quarantine and uncounts it. The caller
    /// holds the piece's stripe.
    fn quarantine_locked(&self, path: &Path) -> Result<PathBuf, PieceError> {
        let size = fs::metadata(path)
            .map_err(|e| PieceError::io("reading metadata of", path, e))?
            .len();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("piece");
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let dest = self.quarantine_dir.join(format!("{name}.{}.{n}", now_ms()));
        fs::rename(path, &dest).map_err(|e| PieceError::io("quarantining piece", path, e))?;
        self.uncount(size);
        Ok(dest)
    }

    /// Removes everything in `tmp/` (writes interrupted by a crash).
    fn clean_tmp(&self) -> Result<(), PieceError> {
        let entries = fs::read_dir(&self.tmp_dir)
            .map_err(|e| PieceError::io("listing directory", &self.tmp_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PieceError::io("listing directory", &self.tmp_dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(PieceError::io("removing leftover temporary file", &path, e)),
            }
        }
        Ok(())
    }
}

/// Parses a file name that is exactly a lowercase hex piece id.
fn parse_id(name: &str) -> Option<PieceId> {
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0u8; 32];
    hex::decode_to_slice(name, &mut id).ok()?;
    Some(id)
}

/// Checks `root/FORMAT`, or writes it (atomically) for a new store.
fn check_or_write_format(root: &Path) -> Result<(), PieceError> {
    let path = root.join(FORMAT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found = text.trim();
            if found.parse::<u32>().ok() == Some(FORMAT_VERSION) {
                Ok(())
            } else {
                Err(PieceError::UnsupportedFormat {
                    path,
                    found: found.to_string(),
                    supported: FORMAT_VERSION,
                })
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = root.join("FORMAT.tmp");
            let mut f = File::create(&tmp).map_err(|e| PieceError::io("creating", &tmp, e))?;
            f.write_all(format!("{FORMAT_VERSION}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| PieceError::io("writing", &tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| PieceError::io("renaming into place", &path, e))?;
            fsync_dir(root)
        }
        Err(e) => Err(PieceError::io("reading", &path, e)),
    }
}

/// Sets a file's modification time to now (best effort).
fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PieceStore>();
    }

    #[test]
    fn parse_id_accepts_only_lowercase_hex_ids() {
        let id = *blake3::hash(b"x").as_bytes();
        assert_eq!(parse_id(&hex::encode(id)), Some(id));
        assert_eq!(parse_id(&hex::encode(id).to_uppercase()), None);
        assert_eq!(parse_id("00"), None);
        assert_eq!(parse_id(&format!("{}.tmp", &hex::encode(id)[..60])), None);
    }
}
