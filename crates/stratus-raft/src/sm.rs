//! The state machine store: [`State`] applied into `state.redb`
//! ([`crate::statedb`]), snapshots streamed to and from files, and the
//! [`StateReader`] the rest of the node reads the state through.
//!
//! - **Apply**: a batch of entries is applied on a blocking thread into one
//!   write transaction, together with the applied log id and membership
//!   (rows of [`Table::Meta`]); readers wait on the state's lock only while a
//!   batch is applied and committed, and queries read committed data.
//! - **Restart**: the state is opened where it is; openraft re-applies the
//!   log after its applied id.
//! - **Snapshots**: built by streaming one read transaction into
//!   `snapshots/<id>.snap` (applies go on meanwhile), kept there as the
//!   current snapshot (its metadata in `raft.redb`), sent to lagging
//!   replicas in chunks straight from the file, and installed by streaming
//!   the received file into one write transaction that commits only if its
//!   checksum holds.
//! - **Upgrade**: a data directory of format 3 (the whole state serialized in
//!   `raft.redb`'s snapshot) is migrated on first start: the old snapshot is
//!   decoded once and written into the tables ([`stratus_state::legacy`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StoredMembership,
};
use redb::{Database, ReadableTable};
use stratus_state::{CommandResult, Kv, State, Table, TypeConfig};
use tokio::sync::watch;

use crate::statedb::{self, RedbKv, DB_FORMAT};
use crate::store::{
    blocking, decode, encode, read_lock, sto_err, write_lock, Membership, Meta, NodeIdOf, StErr,
    StoreConfig, StoreError, KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_META, SNAPSHOT,
};

const ROW_FORMAT: &[u8] = b"format";
const ROW_APPLIED: &[u8] = b"applied";
const ROW_MEMBERSHIP: &[u8] = b"membership";

/// The state database file inside the Raft directory.
pub const STATE_DB_FILE: &str = "state.redb";

/// Folder of snapshot files inside the Raft directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The state machine and what it has applied.
pub(crate) struct SmData<C: StoreConfig> {
    pub(crate) state: State,
    pub(crate) last_applied: Option<LogId<NodeIdOf<C>>>,
    pub(crate) membership: Membership<C>,
}

impl<C: StoreConfig> SmData<C> {
    pub(crate) fn last_applied_index(&self) -> u64 {
        self.last_applied.as_ref().map_or(0, |l| l.index)
    }

    /// Records the applied id and membership beside the state (same
    /// transaction as what they describe).
    fn write_meta(&mut self) -> Result<(), StoreError> {
        let applied = encode("applied log id", &self.last_applied)?;
        let membership = encode("membership", &self.membership)?;
        let kv = self.state.kv_mut();
        kv.put(Table::Meta, ROW_FORMAT, &DB_FORMAT.to_le_bytes());
        kv.put(Table::Meta, ROW_APPLIED, &applied);
        kv.put(Table::Meta, ROW_MEMBERSHIP, &membership);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.write_meta()?;
        self.state
            .commit()
            .map_err(|e| StoreError::Task(e.to_string()))
    }
}

/// Opens the state of `state_db`, migrating a format-3 snapshot of
/// `raft_db` into it on first start.
pub(crate) fn open_state<C: StoreConfig>(
    raft_db: &Database,
    state_db: Arc<Database>,
    dir: &Path,
) -> Result<SmData<C>, StoreError> {
    clean_snapshot_dir(dir);
    let task = |e: stratus_state::KvError| StoreError::Task(e.to_string());
    let kv = RedbKv::new(state_db.clone()).map_err(task)?;
    if let Some(format) = kv.get(Table::Meta, ROW_FORMAT) {
        let format = u16::from_le_bytes(format.try_into().unwrap_or([0, 0]));
        // Format 1 differs only in the chunk index, which `RedbKv` reads
        // as it is and upgrades with the first commit (below).
        if format != DB_FORMAT && format != 1 {
            return Err(StoreError::UnsupportedVersion {
                what: "state database",
                found: format,
                expected: DB_FORMAT,
            });
        }
        let applied = match kv.get(Table::Meta, ROW_APPLIED) {
            Some(b) => decode("applied log id", &b)?,
            None => None,
        };
        let membership = match kv.get(Table::Meta, ROW_MEMBERSHIP) {
            Some(b) => decode("membership", &b)?,
            None => StoredMembership::default(),
        };
        let state = State::open(Box::new(kv)).map_err(task)?;
        return Ok(SmData {
            state,
            last_applied: applied,
            membership,
        });
    }
    // A data directory of format 3 keeps the whole state in its snapshot.
    let legacy = {
        let txn = raft_db.begin_read()?;
        let table = txn.open_table(SNAPSHOT)?;
        table.get(KEY_SNAPSHOT_DATA)?.map(|d| d.value().to_vec())
    };
    let migrated = legacy.is_some();
    let mut data = match legacy {
        Some(bytes) => {
            type Old<C> = (
                Option<LogId<NodeIdOf<C>>>,
                Membership<C>,
                stratus_state::legacy::LegacyState,
            );
            let (applied, membership, old): Old<C> = decode("format-3 snapshot", &bytes)?;
            tracing::info!(
                last_log_id = ?applied,
                "migrating the replicated state of format 3 (one in-memory snapshot) into the state database"
            );
            let state = old.migrate(Box::new(kv)).map_err(task)?;
            SmData {
                state,
                last_applied: applied,
                membership,
            }
        }
        None => SmData {
            state: State::open(Box::new(kv)).map_err(task)?,
            last_applied: None,
            membership: StoredMembership::default(),
        },
    };
    data.state.kv_mut().durable_next();
    data.commit()?;
    if migrated {
        // The old snapshot's data is now in the tables: replace it by a
        // snapshot of the new format of the same state (the log before it
        // is purged), then drop the old data.
        let meta = snapshot_meta::<C>(data.last_applied.clone(), data.membership.clone());
        let read = state_db.begin_read()?;
        let (rows, bytes) = persist_snapshot::<C>(&read, raft_db, dir, &meta)?;
        let txn = raft_db.begin_write()?;
        {
            let mut table = txn.open_table(SNAPSHOT)?;
            table.remove(KEY_SNAPSHOT_DATA)?;
        }
        txn.commit()?;
        tracing::info!(
            rows,
            bytes,
            "migration done; the format-3 snapshot was replaced"
        );
    }
    Ok(data)
}

/// The Stratus state machine: [`State`] in `state.redb`, snapshots in files.
///
/// Cheap to clone: clones share the state (a clone is the snapshot builder).
pub struct StateMachineStore<C: StoreConfig = TypeConfig> {
    pub(crate) raft_db: Arc<Database>,
    pub(crate) state_db: Arc<Database>,
    pub(crate) dir: PathBuf,
    pub(crate) data: Arc<RwLock<SmData<C>>>,
    pub(crate) applied_tx: Arc<watch::Sender<u64>>,
    /// The file a snapshot being received is written to.
    pub(crate) incoming: Arc<Mutex<Option<PathBuf>>>,
}

impl<C: StoreConfig> Clone for StateMachineStore<C> {
    fn clone(&self) -> Self {
        Self {
            raft_db: self.raft_db.clone(),
            state_db: self.state_db.clone(),
            dir: self.dir.clone(),
            data: self.data.clone(),
            applied_tx: self.applied_tx.clone(),
            incoming: self.incoming.clone(),
        }
    }
}

impl<C: StoreConfig> fmt::Debug for StateMachineStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = read_lock(&self.data);
        f.debug_struct("StateMachineStore")
            .field("last_applied", &data.last_applied)
            .finish_non_exhaustive()
    }
}

fn snapshot_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(SNAPSHOT_DIR).join(format!("{id}.snap"))
}

/// Reads the current snapshot's metadata from `raft.redb`.
fn current_meta<C: StoreConfig>(db: &Database) -> Result<Option<Meta<C>>, StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT)?;
    let meta = table.get(KEY_SNAPSHOT_META)?;
    meta.map(|m| decode("snapshot metadata", m.value()))
        .transpose()
}

/// Makes `file` the current snapshot of `meta` (unless, with
/// `only_if_newer`, a newer one is current); removes older snapshot files.
fn set_current<C: StoreConfig>(
    db: &Database,
    dir: &Path,
    meta: &Meta<C>,
    only_if_newer: bool,
) -> Result<bool, StoreError> {
    let meta_bytes = encode("snapshot metadata", meta)?;
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(SNAPSHOT)?;
        if only_if_newer {
            if let Some(current) = table.get(KEY_SNAPSHOT_META)? {
                let current: Meta<C> = decode("snapshot metadata", current.value())?;
                if current.last_log_id > meta.last_log_id {
                    return Ok(false);
                }
            }
        }
        table.insert(KEY_SNAPSHOT_META, meta_bytes.as_slice())?;
    }
    txn.commit()?;
    // Older snapshots are no longer current (files being written or
    // received, `.tmp`, are left to their writer).
    let keep = snapshot_path(dir, &meta.snapshot_id);
    if let Ok(entries) = std::fs::read_dir(dir.join(SNAPSHOT_DIR)) {
        for e in entries.flatten() {
            let p = e.path();
            if p != keep && p.extension().is_some_and(|x| x == "snap") {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(true)
}

/// The metadata of a snapshot of the state at `last_applied`.
fn snapshot_meta<C: StoreConfig>(
    last_applied: Option<LogId<NodeIdOf<C>>>,
    membership: Membership<C>,
) -> Meta<C> {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let snapshot_id = match &last_applied {
        Some(l) => format!("{}-{}-{millis}", l.leader_id, l.index),
        None => format!("none-{millis}"),
    };
    SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id,
    }
}

/// Streams the state `read` sees into `snapshots/<id>.snap` (written to a
/// temporary file, fsynced, renamed, the folder fsynced) and makes it the
/// current snapshot unless a newer one is; returns rows and bytes written.
fn persist_snapshot<C: StoreConfig>(
    read: &redb::ReadTransaction,
    raft_db: &Database,
    dir: &Path,
    meta: &Meta<C>,
) -> Result<(u64, u64), StoreError> {
    std::fs::create_dir_all(dir.join(SNAPSHOT_DIR)).map_err(io_err)?;
    let path = snapshot_path(dir, &meta.snapshot_id);
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(io_err)?;
    let rows = statedb::write_snapshot(read, &file).map_err(|e| StoreError::Task(e.to_string()))?;
    file.sync_all().map_err(io_err)?;
    let bytes = file.metadata().map_err(io_err)?.len();
    std::fs::rename(&tmp, &path).map_err(io_err)?;
    sync_dir(&dir.join(SNAPSHOT_DIR))?;
    if !set_current::<C>(raft_db, dir, meta, true)? {
        tracing::debug!(snapshot = %meta, "a newer snapshot is current; not replacing it");
    }
    Ok((rows, bytes))
}

/// Removes what a crash may leave in the snapshot folder: half-written
/// snapshots and half-received ones.
pub(crate) fn clean_snapshot_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir.join(SNAPSHOT_DIR)) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Task(format!("snapshot file: {e}"))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)
}

impl<C: StoreConfig> StateMachineStore<C> {
    /// A read handle on the state, for the API and the control loops.
    pub fn reader(&self) -> StateReader<C> {
        StateReader {
            data: Arc::downgrade(&self.data),
            applied_rx: self.applied_tx.subscribe(),
        }
    }

    fn notify_applied(&self, index: u64) {
        self.applied_tx.send_replace(index);
    }
}

impl<C: StoreConfig> RaftSnapshotBuilder<C> for StateMachineStore<C> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StErr<C>> {
        let (data, state_db, raft_db, dir) = (
            self.data.clone(),
            self.state_db.clone(),
            self.raft_db.clone(),
            self.dir.clone(),
        );
        let (meta, rows, bytes) = blocking(move || {
            // The applied id and the read transaction are taken together
            // under the lock (no batch is half committed then); the rows are
            // streamed after it is released.
            let (last_applied, membership, read) = {
                let mut sm = write_lock(&data);
                sm.state.flush();
                sm.write_meta()?;
                // The snapshot lets the log before it go: make the state it
                // describes durable first.
                sm.state.kv_mut().durable_next();
                sm.commit()?;
                let read = state_db.begin_read()?;
                (sm.last_applied.clone(), sm.membership.clone(), read)
            };
            let meta = snapshot_meta::<C>(last_applied, membership);
            let (rows, bytes) = persist_snapshot::<C>(&read, &raft_db, &dir, &meta)?;
            Ok((meta, rows, bytes))
        })
        .await
        .map_err(sto_err(ErrorSubject::Snapshot(None), ErrorVerb::Write))?;
        tracing::info!(snapshot = %meta, rows, bytes, "built a snapshot");
        let file = tokio::fs::File::open(snapshot_path(&self.dir, &meta.snapshot_id))
            .await
            .map_err(|e| sto_err(ErrorSubject::Snapshot(None), ErrorVerb::Read)(io_err(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl<C: StoreConfig> RaftStateMachine<C> for StateMachineStore<C> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeIdOf<C>>>, Membership<C>), StErr<C>> {
        let sm = read_lock(&self.data);
        Ok((sm.last_applied.clone(), sm.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StErr<C>>
    where
        I: IntoIterator<Item = Entry<C>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<C>> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let data = self.data.clone();
        let (results, last_index) = blocking(move || {
            let mut guard = write_lock(&data);
            let sm = &mut *guard;
            let mut results = Vec::with_capacity(entries.len());
            for entry in entries {
                let index = entry.log_id.index;
                sm.last_applied = Some(entry.log_id.clone());
                let result = match entry.payload {
                    EntryPayload::Blank => CommandResult::default(),
                    EntryPayload::Normal(cmd) => sm.state.apply(index, &cmd),
                    EntryPayload::Membership(membership) => {
                        sm.membership = StoredMembership::new(Some(entry.log_id), membership);
                        CommandResult::default()
                    }
                };
                results.push(result);
            }
            sm.commit()?;
            Ok((results, sm.last_applied_index()))
        })
        .await
        .map_err(sto_err(ErrorSubject::StateMachine, ErrorVerb::Write))?;
        self.notify_applied(last_index);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StErr<C>> {
        let dir = self.dir.join(SNAPSHOT_DIR);
        let open = async {
            tokio::fs::create_dir_all(&dir).await?;
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = dir.join(format!("incoming-{millis}.tmp"));
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .await?;
            Ok::<_, std::io::Error>((file, path))
        };
        let (file, path) = open
            .await
            .map_err(|e| sto_err(ErrorSubject::Snapshot(None), ErrorVerb::Write)(io_err(e)))?;
        *self.incoming.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta<C>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StErr<C>> {
        let signature = meta.signature();
        let file = snapshot.into_std().await;
        let incoming = self
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (data, raft_db, dir, meta_c) = (
            self.data.clone(),
            self.raft_db.clone(),
            self.dir.clone(),
            meta.clone(),
        );
        let index = blocking(move || {
            use std::io::Seek;
            let mut file = file;
            file.sync_all().map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            let mut sm = write_lock(&data);
            let kv = sm.state.kv_mut();
            let rows = match statedb::read_snapshot(kv, &file) {
                Ok(rows) => rows,
                Err(e) => {
                    kv.abort();
                    return Err(StoreError::Task(e.to_string()));
                }
            };
            kv.durable_next();
            sm.last_applied = meta_c.last_log_id.clone();
            sm.membership = meta_c.last_membership.clone();
            sm.write_meta()?;
            let committed = sm.state.kv_mut().commit();
            committed.map_err(|e| StoreError::Task(e.to_string()))?;
            // Reload the small state from what was installed.
            sm.state
                .reload()
                .map_err(|e| StoreError::Task(e.to_string()))?;
            let index = sm.last_applied_index();
            drop(sm);
            tracing::info!(rows, "loaded the snapshot into the state database");
            // Keep the received file as the current snapshot.
            drop(file);
            if let Some(incoming) = incoming {
                let path = snapshot_path(&dir, &meta_c.snapshot_id);
                std::fs::rename(&incoming, &path).map_err(io_err)?;
                sync_dir(&dir.join(SNAPSHOT_DIR))?;
                set_current::<C>(&raft_db, &dir, &meta_c, false)?;
            }
            Ok(index)
        })
        .await
        .map_err(sto_err(
            ErrorSubject::Snapshot(Some(signature.clone())),
            ErrorVerb::Write,
        ))?;
        self.notify_applied(index);
        tracing::info!(snapshot = %meta, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<C>>, StErr<C>> {
        let db = self.raft_db.clone();
        let meta = blocking(move || current_meta::<C>(&db))
            .await
            .map_err(sto_err(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        match tokio::fs::File::open(snapshot_path(&self.dir, &meta.snapshot_id)).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            })),
            // Its file is gone (a crash between writing the metadata and
            // the file cannot happen: the file is renamed first; but an
            // operator may delete it): openraft builds a new one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(sto_err(ErrorSubject::Snapshot(None), ErrorVerb::Read)(
                io_err(e),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Read handle
// ---------------------------------------------------------------------------

/// Cheap, clonable read access to the replicated [`State`] of this replica.
///
/// What it shows is what this replica has applied: on a follower it may lag
/// the leader. Use [`StateReader::subscribe`] or
/// [`StateReader::wait_applied`] to wait until a write (known by its log
/// index) is visible.
///
/// It does not keep the state machine alive: once the Raft node that owns
/// it has shut down (and its state database is closed, so the node can be
/// started again in the same process), readers see an empty state.
pub struct StateReader<C: StoreConfig = TypeConfig> {
    data: Weak<RwLock<SmData<C>>>,
    applied_rx: watch::Receiver<u64>,
}

impl<C: StoreConfig> Clone for StateReader<C> {
    fn clone(&self) -> Self {
        Self {
            data: self.data.clone(),
            applied_rx: self.applied_rx.clone(),
        }
    }
}

impl<C: StoreConfig> fmt::Debug for StateReader<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateReader")
            .field("last_applied_index", &self.last_applied_index())
            .finish_non_exhaustive()
    }
}

impl<C: StoreConfig> StateReader<C> {
    /// Runs `f` on the current state. Keep `f` short: it holds a read lock
    /// that blocks the application of new log entries.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.data.upgrade() {
            Some(d) => f(&read_lock(&d).state),
            None => f(&State::default()),
        }
    }

    /// Runs `f` on the current state and returns the index of the last
    /// entry that state reflects, under one read lock (calling
    /// [`StateReader::last_applied_index`] from inside [`StateReader::read`]
    /// would take the lock twice and deadlock against a waiting writer).
    pub fn read_indexed<T>(&self, f: impl FnOnce(&State) -> T) -> (u64, T) {
        match self.data.upgrade() {
            Some(d) => {
                let d = read_lock(&d);
                (d.last_applied_index(), f(&d.state))
            }
            None => (0, f(&State::default())),
        }
    }

    /// Index of the last applied log entry (0 before anything was applied).
    pub fn last_applied_index(&self) -> u64 {
        self.data
            .upgrade()
            .map_or(0, |d| read_lock(&d).last_applied_index())
    }

    /// Log id of the last applied log entry, if any.
    pub fn last_applied(&self) -> Option<LogId<NodeIdOf<C>>> {
        self.data
            .upgrade()
            .and_then(|d| read_lock(&d).last_applied.clone())
    }

    /// A receiver of the last applied index, updated after each applied batch
    /// (and installed snapshot), once the state reflects it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_rx.clone()
    }

    /// Waits until the entry at `index` has been applied. Returns `false` if
    /// the state machine was dropped first.
    pub async fn wait_applied(&self, index: u64) -> bool {
        let mut rx = self.applied_rx.clone();
        let reached = rx.wait_for(|applied| *applied >= index).await.is_ok();
        reached
    }
}
