//! Durable openraft storage on [redb](https://docs.rs/redb).
//!
//! One database file, `raft.redb`, holds three tables:
//!
//! - `logs`: log index → log entry;
//! - `meta`: the vote, the committed log id and the last purged log id;
//! - `snapshot`: the current snapshot's metadata (its data is a file, see
//!   [`crate::sm`]; a data directory of format 3 kept the data here too).
//!
//! Every value starts with a little-endian `u16`
//! [`stratus_types::FORMAT_VERSION`] followed by the bincode
//! encoding; values of another version are refused rather than misread.
//!
//! Every vote, truncation, purge and snapshot is one redb write transaction
//! committed with `Durability::Immediate` (fsync) before openraft is told it
//! is done. Appends are group-committed: visible at once, and reported flushed
//! to openraft only after a durable commit that covers them (see
//! [`log_writer`]). Only the committed log id, which openraft treats as an
//! optimisation, is written without its own fsync: it becomes durable with the
//! next durable transaction, and losing it only means re-applying from the
//! snapshot on restart.
//!
//! The state machine ([`StateMachineStore`], in [`crate::sm`]) applies into
//! its own database, `state.redb` ([`crate::statedb`]); on open it continues
//! from the applied id stored there and openraft re-applies the committed
//! log after it. [`StateReader`] gives other components cheap, consistent
//! read access to it.
//!
//! Blocking database work runs on tokio's blocking thread pool
//! (`spawn_blocking`), so the stores work on any tokio runtime flavour.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader, RaftTypeConfig,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_state::{Command, CommandResult, TypeConfig};

pub use crate::sm::{StateMachineStore, StateReader};
use stratus_types::FORMAT_VERSION;
use tokio::sync::watch;

/// Name of the database file inside the Raft directory.
pub const DB_FILE: &str = "raft.redb";

const LOGS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("logs");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
pub(crate) const SNAPSHOT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("snapshot");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
pub(crate) const KEY_SNAPSHOT_META: &str = "meta";
pub(crate) const KEY_SNAPSHOT_DATA: &str = "data";

/// The openraft type configurations these stores work with: the Stratus
/// command and result types, openraft's own entry type and in-memory
/// snapshot data. [`TypeConfig`] is the one used in production; the stores are
/// generic only so that openraft's conformance suite (which needs integer
/// node ids) can run against them.
pub trait StoreConfig:
    RaftTypeConfig<D = Command, R = CommandResult, Entry = Entry<Self>, SnapshotData = tokio::fs::File>
{
}

impl<C> StoreConfig for C where
    C: RaftTypeConfig<
        D = Command,
        R = CommandResult,
        Entry = Entry<C>,
        SnapshotData = tokio::fs::File,
    >
{
}

pub(crate) type NodeIdOf<C> = <C as RaftTypeConfig>::NodeId;
type NodeOf<C> = <C as RaftTypeConfig>::Node;
pub(crate) type StErr<C> = StorageError<NodeIdOf<C>>;
pub(crate) type Membership<C> = StoredMembership<NodeIdOf<C>, NodeOf<C>>;
pub(crate) type Meta<C> = SnapshotMeta<NodeIdOf<C>, NodeOf<C>>;

/// Why the Raft store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Raft directory could not be created.
    #[error("cannot create the raft directory {path}: {source}")]
    CreateDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The database file is held by another Stratus process (or by a Raft
    /// instance of this process that was not shut down).
    #[error(
        "the raft database {path} is already in use; is another Stratus node running with \
         this data directory?"
    )]
    InUse {
        /// Database file.
        path: PathBuf,
    },
    /// The database file could not be opened (corrupted, unreadable...).
    #[error("cannot open the raft database {path}: {source}")]
    Open {
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: Box<redb::DatabaseError>,
    },
    /// A database operation failed.
    #[error("raft database error: {0}")]
    Db(Box<redb::Error>),
    /// A value could not be encoded.
    #[error("cannot encode the {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Cause.
        source: bincode::Error,
    },
    /// A stored value could not be decoded.
    #[error("cannot decode the stored {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Cause.
        source: bincode::Error,
    },
    /// A stored value is too short to carry a format version.
    #[error("the stored {what} is truncated ({len} bytes)")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A stored value was written by a version of Stratus with another format.
    #[error(
        "the stored {what} has format version {found} but this build of Stratus reads only \
         version {expected}; run a Stratus release that matches the data directory"
    )]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// Version found.
        found: u16,
        /// Version this build understands.
        expected: u16,
    },
    /// A blocking storage task panicked or was cancelled.
    #[error("raft storage task failed: {0}")]
    Task(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Converts a [`StoreError`] into openraft's storage error.
pub(crate) fn sto_err<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
) -> impl FnOnce(StoreError) -> StorageError<NID> {
    move |e| StorageIOError::new(subject, verb, &e).into()
}

/// Encodes `value` as `FORMAT_VERSION` (u16, little endian) followed by bincode.
pub(crate) fn encode<T: Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = FORMAT_VERSION.to_le_bytes().to_vec();
    bincode::serialize_into(&mut buf, value)
        .map_err(|source| StoreError::Encode { what, source })?;
    Ok(buf)
}

/// Decodes what [`encode`] produced, refusing other format versions.
pub(crate) fn decode<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let Some((version, rest)) = bytes.split_first_chunk::<2>() else {
        return Err(StoreError::Truncated {
            what,
            len: bytes.len(),
        });
    };
    let found = u16::from_le_bytes(*version);
    if found != FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            what,
            found,
            expected: FORMAT_VERSION,
        });
    }
    bincode::deserialize(rest).map_err(|source| StoreError::Decode { what, source })
}

/// Runs blocking database work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // The data is only replaced wholesale or mutated by `State::apply`, which
    // does not panic; a poisoned lock still holds usable data.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Reads and decodes one `meta` value.
fn read_meta<T: DeserializeOwned>(
    db: &Database,
    key: &'static str,
) -> Result<Option<T>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(META)?;
    let value = table.get(key)?;
    value.map(|v| decode(key, v.value())).transpose()
}

/// Writes one `meta` value in its own transaction.
fn write_meta<T: Serialize>(
    db: &Database,
    key: &'static str,
    value: &T,
    durability: Durability,
) -> Result<(), StoreError> {
    let bytes = encode(key, value)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(durability);
    {
        let mut table = txn.open_table(META)?;
        table.insert(key, bytes.as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Opens (creating if needed) `dir/raft.redb` and returns the Raft log store
/// and the state machine store, which share the database.
///
/// The state machine is restored from the last persisted snapshot, if any;
/// openraft then re-applies the committed log entries that follow it.
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    open_with_cache(dir, DEFAULT_STATE_CACHE).await
}

/// [`open`] with a page cache of `state_cache` bytes for the state database.
pub async fn open_with_cache(
    dir: &Path,
    state_cache: usize,
) -> Result<(LogStore, StateMachineStore), StoreError> {
    open_generic::<TypeConfig>(dir, state_cache).await
}

/// Page cache of the Raft log database: appends are sequential and reads
/// are of recent entries (redb's own default, 1 GiB, would let the log's
/// pages fill a replica's memory).
pub const LOG_CACHE: usize = 32 << 20;

/// Page cache of the state database by default: sized for a small machine
/// (the state itself may be far larger; what is not cached is read from disk).
pub const DEFAULT_STATE_CACHE: usize = 64 << 20;

/// How long [`open`] waits for a database still held by a Raft instance of
/// this process that is shutting down.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(5);

/// Opens the database file, creating the directory if needed.
///
/// redb allows one open handle per file. After `Raft::shutdown` openraft
/// drops the stores asynchronously, so an in-process restart may briefly
/// find the file still open: that is retried for [`OPEN_RETRY_FOR`].
async fn open_db(dir: &Path) -> Result<Database, StoreError> {
    open_with_retry(dir, DB_FILE, |path| {
        Database::builder().set_cache_size(LOG_CACHE).create(path)
    })
    .await
}

/// Opens `dir/file` with `open`, creating the directory, retrying while the
/// file is still held by a Raft instance of this process (see [`open_db`]).
async fn open_with_retry(
    dir: &Path,
    file: &'static str,
    open: impl Fn(&Path) -> Result<Database, redb::DatabaseError> + Send + Sync + Clone + 'static,
) -> Result<Database, StoreError> {
    let started = Instant::now();
    loop {
        let dir_buf = dir.to_path_buf();
        let open = open.clone();
        let result = blocking(move || {
            let dir = dir_buf;
            std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
                path: dir.clone(),
                source,
            })?;
            let path = dir.join(file);
            open(&path).map_err(|source| match source {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path },
                source => StoreError::Open {
                    path,
                    source: Box::new(source),
                },
            })
        })
        .await;
        match result {
            Err(StoreError::InUse { .. }) if started.elapsed() < OPEN_RETRY_FOR => {
                tracing::debug!(dir = %dir.display(), file, "database still open, retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// [`open`] for any [`StoreConfig`]. Production code uses [`open`].
pub async fn open_generic<C: StoreConfig>(
    dir: &Path,
    cache_bytes: usize,
) -> Result<(LogStore<C>, StateMachineStore<C>), StoreError> {
    let db = open_db(dir).await?;
    let db = blocking(move || {
        let txn = db.begin_write()?;
        txn.open_table(LOGS)?;
        txn.open_table(META)?;
        txn.open_table(SNAPSHOT)?;
        txn.commit()?;
        Ok(db)
    })
    .await?;

    let db = Arc::new(db);
    let state_db = open_with_retry(dir, crate::sm::STATE_DB_FILE, move |path| {
        crate::statedb::open_db(path, cache_bytes)
    })
    .await?;
    let state_db = Arc::new(state_db);
    let data = {
        let (db, state_db) = (db.clone(), state_db.clone());
        let dir = dir.to_path_buf();
        blocking(move || crate::sm::open_state::<C>(&db, state_db, &dir)).await?
    };
    tracing::info!(
        last_log_id = ?data.last_applied,
        "opened the replicated state"
    );
    let (applied_tx, _) = watch::channel(data.last_applied_index());
    let (writer, writer_rx) = std::sync::mpsc::channel();
    let pending = Arc::new(Mutex::new(BTreeMap::new()));
    let (writer_db, writer_pending) = (db.clone(), pending.clone());
    std::thread::Builder::new()
        .name("raft-log-writer".into())
        .spawn(move || log_writer::<C>(writer_db, writer_pending, writer_rx))
        .map_err(|e| StoreError::Task(format!("cannot start the raft log writer thread: {e}")))?;
    let log = LogStore {
        db: db.clone(),
        pending,
        seq: Arc::new(AtomicU64::new(0)),
        writer,
        _config: PhantomData,
    };
    let sm = StateMachineStore {
        raft_db: db,
        state_db,
        dir: dir.to_path_buf(),
        data: Arc::new(RwLock::new(data)),
        applied_tx: Arc::new(applied_tx),
        incoming: Arc::new(Mutex::new(None)),
    };
    Ok((log, sm))
}

// ---------------------------------------------------------------------------
// Log store
// ---------------------------------------------------------------------------

/// The Raft log, vote and commit pointer, persisted in redb.
///
/// Cheap to clone: clones share the database (and serve as the log reader).
pub struct LogStore<C: StoreConfig = TypeConfig> {
    db: Arc<Database>,
    /// Appended entries not yet committed to `db`, by index, with the
    /// sequence number of the append that wrote them (see [`log_writer`]).
    pending: Pending<C>,
    seq: Arc<AtomicU64>,
    writer: std::sync::mpsc::Sender<WriterOp<C>>,
    _config: PhantomData<fn() -> C>,
}

impl<C: StoreConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            pending: self.pending.clone(),
            seq: self.seq.clone(),
            writer: self.writer.clone(),
            _config: PhantomData,
        }
    }
}

/// Appended entries not yet committed, by index, with the sequence number of
/// the append that wrote them.
type Pending<C> = Arc<Mutex<BTreeMap<u64, (u64, Entry<C>)>>>;

/// Work for the log writer thread.
enum WriterOp<C: StoreConfig> {
    /// Persist these encoded entries, then report through `callback`.
    Append {
        seq: u64,
        entries: Vec<(u64, Vec<u8>)>,
        callback: LogFlushed<C>,
    },
    /// Answer once every earlier append is committed.
    Barrier(tokio::sync::oneshot::Sender<()>),
    /// Record the committed log id (encoded) with the next commit.
    Committed(Vec<u8>),
}

/// The log writer: group commit of appended entries.
///
/// openraft 0.9 awaits each `append` inside its core loop, one client write
/// at a time, so the time `append` takes caps the write rate. `append`
/// therefore only parks the entries in `pending` (where readers see them at
/// once, as openraft requires) and queues them here. This thread takes
/// everything queued so far, writes it in *one* redb transaction committed
/// with `Durability::Immediate` (one fsync for many appends), removes the
/// written entries from `pending`, and only then tells openraft they are
/// flushed. Truncate and purge first wait on a [`WriterOp::Barrier`] so they
/// never race queued appends. The thread ends with the last handle.
fn log_writer<C: StoreConfig>(
    db: Arc<Database>,
    pending: Pending<C>,
    rx: std::sync::mpsc::Receiver<WriterOp<C>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = (|| -> Result<(), StoreError> {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(LOGS)?;
                let mut committed = None;
                for op in &batch {
                    match op {
                        WriterOp::Append { entries, .. } => {
                            for (index, bytes) in entries {
                                table.insert(*index, bytes.as_slice())?;
                            }
                        }
                        WriterOp::Committed(bytes) => committed = Some(bytes),
                        WriterOp::Barrier(_) => {}
                    }
                }
                if let Some(bytes) = committed {
                    txn.open_table(META)?
                        .insert(KEY_COMMITTED, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })();
        if result.is_ok() {
            let mut pending = lock(&pending);
            for op in &batch {
                if let WriterOp::Append { seq, entries, .. } = op {
                    for (index, _) in entries {
                        // A later append (after a truncation) may own the slot now.
                        if pending.get(index).is_some_and(|(s, _)| s == seq) {
                            pending.remove(index);
                        }
                    }
                }
            }
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "writing the raft log failed");
        }
        for op in batch {
            match op {
                WriterOp::Append { callback, .. } => callback.log_io_completed(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::other(e.to_string())),
                }),
                WriterOp::Barrier(done) => {
                    let _ = done.send(());
                }
                WriterOp::Committed(_) => {}
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<C: StoreConfig> fmt::Debug for LogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// `range` as an inclusive `(first, last)` pair, or `None` if it is empty.
fn inclusive_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let first = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}

impl<C: StoreConfig> LogStore<C> {
    /// Waits until every append queued before this call is committed.
    async fn barrier(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(WriterOp::Barrier(tx))
            .map_err(|_| StoreError::Task("the raft log writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Task("the raft log writer stopped".into()))
    }

    async fn write<F>(&self, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            // Default durability: `Immediate`, the commit is fsynced.
            let txn = db.begin_write()?;
            f(&txn)?;
            txn.commit()?;
            Ok(())
        })
        .await
    }
}

impl<C: StoreConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StErr<C>> {
        let Some((first, last)) = inclusive_bounds(&range) else {
            return Ok(Vec::new());
        };
        // Pending first, then the database: an entry leaves `pending` only
        // after it is committed, so reading in this order never misses it.
        let mut entries: BTreeMap<u64, Entry<C>> = lock(&self.pending)
            .range(first..=last)
            .map(|(i, (_, e))| (*i, e.clone()))
            .collect();
        let db = self.db.clone();
        let stored = blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(LOGS)?;
            let mut stored = Vec::new();
            for item in table.range(first..=last)? {
                let (index, value) = item?;
                stored.push((
                    index.value(),
                    decode::<Entry<C>>("log entry", value.value())?,
                ));
            }
            Ok(stored)
        })
        .await
        .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Read))?;
        for (index, entry) in stored {
            entries.entry(index).or_insert(entry);
        }
        Ok(entries.into_values().collect())
    }
}

impl<C: StoreConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StErr<C>> {
        let pending_last = lock(&self.pending)
            .values()
            .next_back()
            .map(|(_, e)| e.log_id.clone());
        let db = self.db.clone();
        blocking(move || {
            let last_purged_log_id: Option<LogId<NodeIdOf<C>>> = read_meta(&db, KEY_PURGED)?;
            let txn = db.begin_read()?;
            let table = txn.open_table(LOGS)?;
            let stored_last = match table.last()? {
                Some((_, value)) => Some(decode::<Entry<C>>("log entry", value.value())?.log_id),
                None => None,
            };
            let last = match (pending_last, stored_last) {
                (Some(p), Some(s)) => Some(if p.index >= s.index { p } else { s }),
                (p, s) => p.or(s),
            };
            Ok(LogState {
                last_log_id: last.or_else(|| last_purged_log_id.clone()),
                last_purged_log_id,
            })
        })
        .await
        .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Read))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeIdOf<C>>) -> Result<(), StErr<C>> {
        let db = self.db.clone();
        let vote = vote.clone();
        blocking(move || write_meta(&db, KEY_VOTE, &vote, Durability::Immediate))
            .await
            .map_err(sto_err(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeIdOf<C>>>, StErr<C>> {
        let db = self.db.clone();
        blocking(move || read_meta(&db, KEY_VOTE))
            .await
            .map_err(sto_err(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeIdOf<C>>>,
    ) -> Result<(), StErr<C>> {
        // An optimisation hint for openraft (re-apply on restart without
        // waiting for an election): recorded with the log writer's next
        // commit instead of a transaction of its own on openraft's hot path.
        let bytes = encode(KEY_COMMITTED, &committed)
            .map_err(sto_err(ErrorSubject::Store, ErrorVerb::Write))?;
        self.writer
            .send(WriterOp::Committed(bytes))
            .map_err(|_| StoreError::Task("the raft log writer stopped".into()))
            .map_err(sto_err(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeIdOf<C>>>, StErr<C>> {
        let db = self.db.clone();
        blocking(move || {
            let committed: Option<Option<LogId<NodeIdOf<C>>>> = read_meta(&db, KEY_COMMITTED)?;
            Ok(committed.flatten())
        })
        .await
        .map_err(sto_err(ErrorSubject::Store, ErrorVerb::Read))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StErr<C>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let appended: Vec<Entry<C>> = entries.into_iter().collect();
        let encoded = appended
            .iter()
            .map(|entry| Ok((entry.log_id.index, encode("log entry", entry)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Write))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut pending = lock(&self.pending);
            for entry in &appended {
                pending.insert(entry.log_id.index, (seq, entry.clone()));
            }
        }
        let op = WriterOp::Append {
            seq,
            entries: encoded,
            callback,
        };
        if let Err(std::sync::mpsc::SendError(op)) = self.writer.send(op) {
            if let WriterOp::Append { callback, .. } = op {
                callback.log_io_completed(Err(io::Error::other("the raft log writer stopped")));
            }
            return Err(sto_err(ErrorSubject::Logs, ErrorVerb::Write)(
                StoreError::Task("the raft log writer stopped".into()),
            ));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeIdOf<C>>) -> Result<(), StErr<C>> {
        tracing::debug!(%log_id, "truncating the raft log");
        self.barrier()
            .await
            .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Delete))?;
        lock(&self.pending).retain(|i, _| *i < log_id.index);
        self.write(move |txn| {
            let mut table = txn.open_table(LOGS)?;
            table.retain_in(log_id.index.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<NodeIdOf<C>>) -> Result<(), StErr<C>> {
        tracing::debug!(%log_id, "purging the raft log");
        let purged =
            encode(KEY_PURGED, &log_id).map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Delete))?;
        self.barrier()
            .await
            .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Delete))?;
        self.write(move |txn| {
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(KEY_PURGED, purged.as_slice())?;
            }
            let mut table = txn.open_table(LOGS)?;
            table.retain_in(..=log_id.index, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(sto_err(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
