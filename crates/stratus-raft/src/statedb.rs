//! The replicated state on disk: [`RedbKv`], the redb backend of
//! `stratus_state::Kv`, in its own file `state.redb` (so applying never waits
//! for the log's write lock), and the streamed snapshot format.
//!
//! Applying a batch of log entries is one write transaction holding the
//! state's changes and the applied log id together. The batch's writes wait
//! in memory ([`crate::batch`]) and reach the B-trees once per row, in key
//! order, at commit (or when they outgrow a bound); every query, during a
//! batch or between two, reads the last commit through one shared read
//! transaction (MVCC) with the batch's rows over it.
//! Commits are `Durability::Eventual` except at least once a second and
//! before a snapshot (`Immediate`): a crash loses at most the last second of
//! *applied* entries, which openraft applies again from the durable log.
//!
//! A snapshot is a file: a header, then every row of every table
//! (`table u8, key len u32, value len u32, key, value`), then an end marker
//! and the BLAKE3 of everything before it. It is written from one read
//! transaction (a consistent view, while applies go on) and loaded in one
//! write transaction that is committed only if the checksum matches: the
//! state is never in memory whole, and a torn or altered file changes
//! nothing.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition,
    WriteTransaction,
};
use stratus_state::{Kv, KvError, Table};

use crate::batch::Batch;
use crate::runs::{self, RunSet, Tuning};

const MAGIC: &[u8; 16] = b"stratus-snapshot";
/// Version of the snapshot file (rows of the logical tables).
pub const STATE_FORMAT: u16 = 1;
/// Version of the state database's layout: 2 keeps the chunk index in
/// sorted runs ([`crate::runs`]); a database of format 1 (one chunk table)
/// is read as it is and upgraded by its first write.
pub const DB_FORMAT: u16 = 2;
const END: u8 = 0xff;
/// Largest key or value a snapshot row may carry (a module is the largest
/// row today: 16 MiB).
const MAX_ROW: u32 = 64 << 20;
/// Most memory the pending writes of one batch take before they are
/// written into the open write transaction.
const SPILL_BYTES: usize = 32 << 20;
/// Longest the state goes without a durable commit.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

fn def(t: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(t.name())
}

fn kv_err(e: impl std::fmt::Display) -> KvError {
    KvError(e.to_string())
}

type ReadTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The view queries read between two commits: one read transaction and the
/// tables opened from it, shared by every query until the next commit
/// (beginning a read transaction and opening a table per lookup cost a
/// small GET about a fifth of its time).
#[derive(Default)]
struct ReadView {
    txn: Option<ReadTransaction>,
    /// Per table: not opened yet, absent, or open.
    tables: [Option<Option<Arc<ReadTable>>>; Table::ALL.len()],
    /// The chunk index's runs, by table name, the same way.
    runs: HashMap<String, Option<Arc<ReadTable>>>,
}

/// The redb backend of the replicated state.
pub struct RedbKv {
    /// The batch being applied, until commit (or until it outgrows
    /// [`SPILL_BYTES`]: then it is written into `txn` and goes on there).
    batch: Batch,
    // Declared (so dropped) before `db`: dropping the last handle on a
    // database waits for its open write transaction to end.
    /// Open only once a batch spilled, and during commit.
    txn: Mutex<Option<WriteTransaction>>,
    view: Mutex<ReadView>,
    /// The chunk index ([`Table::Chunks`]), as sorted runs.
    runs: RunSet,
    tuning: Tuning,
    db: Arc<Database>,
    error: Mutex<Option<KvError>>,
    last_durable: Instant,
    force_durable: bool,
}

impl RedbKv {
    /// The state in `db` (tables are created on first write). One `RedbKv`
    /// per database: its queries read a view that its own commits renew, so
    /// another writer's commits would not be seen.
    pub fn new(db: Arc<Database>) -> Result<Self, KvError> {
        Self::with_tuning(db, Tuning::default())
    }

    /// [`RedbKv::new`] with the chunk index's runs sized by `tuning`
    /// (tests make them tiny to exercise seals and merges).
    pub fn with_tuning(db: Arc<Database>, tuning: Tuning) -> Result<Self, KvError> {
        Ok(Self {
            batch: Batch::default(),
            txn: Mutex::new(None),
            view: Mutex::new(ReadView::default()),
            runs: RunSet::load(&db, tuning)?,
            tuning,
            db,
            error: Mutex::new(None),
            last_durable: Instant::now(),
            force_durable: false,
        })
    }

    /// The chunk index's sealed runs (level, rows) and whether a merge is
    /// under way.
    #[cfg(test)]
    pub(crate) fn runs_shape(&self) -> (Vec<(u8, u64)>, bool) {
        self.runs.shape()
    }

    /// Forgets what a transaction that did not commit did to the runs.
    fn reload_runs(&mut self) {
        match RunSet::load(&self.db, self.tuning) {
            Ok(r) => self.runs = r,
            Err(e) => self.fail(e),
        }
    }

    /// The database.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    fn fail(&self, e: KvError) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        tracing::error!(error = %e, "state storage failed");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Writes the pending batch into the write transaction (opened if need
    /// be), each table's rows in key order.
    fn spill(&mut self) -> Result<(), KvError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut guard = self.txn.lock().unwrap_or_else(|p| p.into_inner());
        let txn = match &mut *guard {
            Some(txn) => txn,
            none => none.insert(self.db.begin_write().map_err(kv_err)?),
        };
        for w in self.batch.drain() {
            if w.table == Table::Chunks {
                let rows = w.rows.iter().map(|(k, v)| (k.as_slice(), v.as_deref()));
                self.runs.write(txn, w.cleared, rows)?;
                continue;
            }
            if w.cleared {
                txn.delete_table(def(w.table)).map_err(kv_err)?;
            }
            let mut t = txn.open_table(def(w.table)).map_err(kv_err)?;
            for (k, v) in &w.rows {
                match v {
                    Some(v) => drop(t.insert(k.as_slice(), v.as_slice()).map_err(kv_err)?),
                    None => drop(t.remove(k.as_slice()).map_err(kv_err)?),
                }
            }
        }
        self.runs.flush(txn)
    }

    /// `table` as of the last commit (`None` if it was never written).
    fn read_table(&self, table: Table) -> Result<Option<Arc<ReadTable>>, KvError> {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = &view.tables[table as usize] {
            return Ok(t.clone());
        }
        let txn = match &mut view.txn {
            Some(txn) => txn,
            none => none.insert(self.db.begin_read().map_err(kv_err)?),
        };
        let t = match txn.open_table(def(table)) {
            Ok(t) => Some(Arc::new(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(kv_err(e)),
        };
        view.tables[table as usize] = Some(t.clone());
        Ok(t)
    }

    /// The table `name` as of the last commit (`None` if it does not exist).
    fn read_named(&self, name: &str) -> Result<Option<Arc<ReadTable>>, KvError> {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = view.runs.get(name) {
            return Ok(t.clone());
        }
        let txn = match &mut view.txn {
            Some(txn) => txn,
            none => none.insert(self.db.begin_read().map_err(kv_err)?),
        };
        let t = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(name)) {
            Ok(t) => Some(Arc::new(t)),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(kv_err(e)),
        };
        view.runs.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// The chunk-index row of `key` under the batch (as [`Self::base_get`]).
    fn chunk_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if let Some(txn) = &*self.txn.lock().unwrap_or_else(|p| p.into_inner()) {
            return self.runs.get(key, |name| {
                let t = txn
                    .open_table(TableDefinition::<&[u8], &[u8]>::new(name))
                    .map_err(kv_err)?;
                let v = t.get(key).map_err(kv_err)?.map(|v| v.value().to_vec());
                Ok(v)
            });
        }
        self.runs.get(key, |name| match self.read_named(name)? {
            Some(t) => Ok(t.get(key).map_err(kv_err)?.map(|v| v.value().to_vec())),
            None => Ok(None),
        })
    }

    /// [`Kv::scan`] of the chunk index under the batch.
    fn chunk_scan(
        &self,
        from: Bound<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        if let Some(txn) = &*self.txn.lock().unwrap_or_else(|p| p.into_inner()) {
            let mut tables = Vec::new();
            for name in self.runs.all() {
                tables.push(
                    txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                        .map_err(kv_err)?,
                );
            }
            let tables: Vec<_> = tables.iter().map(Some).collect();
            return self.runs.scan(&tables, from, f);
        }
        let mut tables = Vec::new();
        for name in self.runs.all() {
            tables.push(self.read_named(&name)?);
        }
        let tables: Vec<_> = tables.iter().map(|t| t.as_deref()).collect();
        self.runs.scan(&tables, from, f)
    }

    /// Drops the read view: the next query sees the latest commit.
    fn forget_view(&self) {
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = ReadView::default();
    }

    /// The row of `key` under the batch: in the spilled part of the batch
    /// if there is one, else as of the last commit.
    fn base_get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if table == Table::Chunks {
            return self.chunk_get(key);
        }
        if let Some(txn) = &*self.txn.lock().unwrap_or_else(|p| p.into_inner()) {
            let t = txn.open_table(def(table)).map_err(kv_err)?;
            let v = t.get(key).map_err(kv_err)?.map(|v| v.value().to_vec());
            return Ok(v);
        }
        let Some(t) = self.read_table(table)? else {
            return Ok(None);
        };
        let v = t.get(key).map_err(kv_err)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    /// [`Kv::scan`] of the rows under the batch (as [`Self::base_get`]).
    fn base_scan(
        &self,
        table: Table,
        from: Bound<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        if table == Table::Chunks {
            return self.chunk_scan(from, f);
        }
        if let Some(txn) = &*self.txn.lock().unwrap_or_else(|p| p.into_inner()) {
            return scan_table(&txn.open_table(def(table)).map_err(kv_err)?, from, f);
        }
        match self.read_table(table)? {
            Some(t) => scan_table(&*t, from, f),
            None => Ok(()),
        }
    }

    /// Spills the batch once it outgrows [`SPILL_BYTES`] (a snapshot being
    /// installed, a migration): memory stays bounded whatever one batch holds.
    fn bound_batch(&mut self) {
        if self.batch.bytes() > SPILL_BYTES {
            if let Err(e) = self.spill() {
                self.fail(e);
            }
        }
    }
}

fn scan_table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    from: Bound<&[u8]>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), KvError> {
    for row in table
        .range::<&[u8]>((from, Bound::Unbounded))
        .map_err(kv_err)?
    {
        let (k, v) = row.map_err(kv_err)?;
        if !f(k.value(), v.value()) {
            break;
        }
    }
    Ok(())
}

impl Kv for RedbKv {
    fn get(&self, table: Table, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.batch.get(table, key) {
            return v.map(<[u8]>::to_vec);
        }
        self.base_get(table, key).unwrap_or_else(|e| {
            self.fail(e);
            None
        })
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.batch.put(table, key, value);
        self.bound_batch();
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        self.batch.delete(table, key);
        self.bound_batch();
    }

    fn scan(&self, table: Table, from: Bound<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        let scanned = self
            .batch
            .scan(table, from, |visit| self.base_scan(table, from, visit), f);
        if let Err(e) = scanned {
            self.fail(e);
        }
    }

    fn clear(&mut self, table: Table) {
        self.batch.clear(table);
    }

    fn commit(&mut self) -> Result<(), KvError> {
        let failed = self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
        let spilled = match failed {
            Some(e) => Err(e),
            None => self.spill(),
        };
        let txn = self.txn.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Err(e) = spilled {
            // Dropping the transaction aborts it: nothing of the batch stays.
            drop(txn);
            self.batch = Batch::default();
            self.reload_runs();
            return Err(e);
        }
        let Some(mut txn) = txn else {
            return Ok(());
        };
        let durable =
            std::mem::take(&mut self.force_durable) || self.last_durable.elapsed() >= DURABLE_EVERY;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::Eventual
        });
        let committed = txn.commit().map_err(kv_err);
        self.forget_view();
        if committed.is_err() {
            self.reload_runs();
        }
        committed?;
        self.runs.committed();
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    fn abort(&mut self) {
        let open = self.txn.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.batch = Batch::default();
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
        if open.is_some() {
            drop(open);
            self.reload_runs();
        }
    }

    fn durable_next(&mut self) {
        self.force_durable = true;
    }
}

/// Writes every row of the state as `txn` sees it (all tables but
/// [`Table::Meta`]) to `out` in the snapshot format; returns the rows written.
pub fn write_snapshot(txn: &ReadTransaction, out: impl Write) -> Result<u64, KvError> {
    let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, out));
    out.write_all(MAGIC).map_err(kv_err)?;
    out.write_all(&STATE_FORMAT.to_le_bytes()).map_err(kv_err)?;
    let mut rows = 0u64;
    let mut write_row = |table: Table, k: &[u8], v: &[u8]| -> io::Result<()> {
        out.write_all(&[table as u8])?;
        out.write_all(&(k.len() as u32).to_le_bytes())?;
        out.write_all(&(v.len() as u32).to_le_bytes())?;
        out.write_all(k)?;
        out.write_all(v)?;
        rows += 1;
        Ok(())
    };
    for table in Table::ALL.into_iter().filter(|t| *t != Table::Meta) {
        if table == Table::Chunks {
            let mut failed = None;
            runs::scan_read_txn(txn, &mut |k, v| match write_row(table, k, v) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
            if let Some(e) = failed {
                return Err(kv_err(e));
            }
            continue;
        }
        let t = match txn.open_table(def(table)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => continue,
            Err(e) => return Err(kv_err(e)),
        };
        for row in t.iter().map_err(kv_err)? {
            let (k, v) = row.map_err(kv_err)?;
            write_row(table, k.value(), v.value()).map_err(kv_err)?;
        }
    }
    out.write_all(&[END]).map_err(kv_err)?;
    let (mut inner, hash) = out.finish();
    inner.write_all(hash.as_bytes()).map_err(kv_err)?;
    inner.flush().map_err(kv_err)?;
    Ok(rows)
}

/// Loads a snapshot from `input` into `kv` (every state table cleared
/// first), checking its format and checksum; returns the rows loaded. On
/// error the caller must drop what was written ([`RedbKv::abort`]).
pub fn read_snapshot(kv: &mut dyn Kv, input: impl Read) -> Result<u64, KvError> {
    let mut input = HashingReader::new(BufReader::with_capacity(1 << 20, input));
    let bad = |m: &str| KvError(format!("the snapshot is not valid: {m}"));
    let mut magic = [0u8; 16];
    input.read_exact(&mut magic).map_err(|_| bad("no header"))?;
    if &magic != MAGIC {
        return Err(bad("wrong header"));
    }
    let mut format = [0u8; 2];
    input
        .read_exact(&mut format)
        .map_err(|_| bad("no format"))?;
    let format = u16::from_le_bytes(format);
    if format != STATE_FORMAT {
        return Err(KvError(format!(
            "the snapshot has state format {format}; this build reads {STATE_FORMAT}: run matching Stratus releases on every replica"
        )));
    }
    for t in Table::ALL.into_iter().filter(|t| *t != Table::Meta) {
        kv.clear(t);
    }
    let mut rows = 0u64;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag).map_err(|_| bad("truncated"))?;
        if tag[0] == END {
            break;
        }
        let table = Table::from_id(tag[0])
            .filter(|t| *t != Table::Meta)
            .ok_or_else(|| bad("unknown table"))?;
        let mut lens = [0u8; 8];
        input.read_exact(&mut lens).map_err(|_| bad("truncated"))?;
        let klen = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]);
        let vlen = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]);
        if klen > MAX_ROW || vlen > MAX_ROW {
            return Err(bad("a row is larger than any the state writes"));
        }
        key.resize(klen as usize, 0);
        value.resize(vlen as usize, 0);
        input.read_exact(&mut key).map_err(|_| bad("truncated"))?;
        input.read_exact(&mut value).map_err(|_| bad("truncated"))?;
        kv.put(table, &key, &value);
        rows += 1;
    }
    let computed = input.hasher.finalize();
    let mut stored = [0u8; 32];
    input
        .inner
        .read_exact(&mut stored)
        .map_err(|_| bad("no checksum"))?;
    if computed.as_bytes() != &stored {
        return Err(bad("checksum mismatch (torn or altered file)"));
    }
    Ok(rows)
}

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }

    fn finish(self) -> (W, blake3::Hash) {
        (self.inner, self.hasher.finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Opens (creating) the state database `path`.
pub fn open_db(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stratus_state::kv::conformance;

    fn fresh() -> (tempfile::TempDir, RedbKv) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&dir.path().join("state.redb"), 16 << 20).unwrap();
        (dir, RedbKv::new(Arc::new(db)).unwrap())
    }

    #[test]
    fn redb_kv_passes_the_state_conformance_suite() {
        let mut dirs = Vec::new();
        conformance::run_all(
            || {
                let (d, kv) = fresh();
                dirs.push(d);
                kv
            },
            |kv| RedbKv::new(kv.db().clone()).unwrap(),
        );
    }

    /// What a reader outside the state machine sees: the last commit.
    fn committed(db: &Database, key: &[u8]) -> Option<Vec<u8>> {
        let txn = db.begin_read().unwrap();
        let t = match txn.open_table(def(Table::Rows)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return None,
            Err(e) => panic!("{e}"),
        };
        let v = t.get(key).unwrap().map(|v| v.value().to_vec());
        v
    }

    #[test]
    fn an_uncommitted_batch_is_invisible_to_readers_and_a_failed_one_is_dropped() {
        let (_d, mut kv) = fresh();
        kv.put(Table::Rows, b"a", b"1");
        assert_eq!(committed(kv.db(), b"a"), None, "MVCC: not committed yet");
        kv.commit().unwrap();
        assert_eq!(committed(kv.db(), b"a").as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get(Table::Rows, b"a").as_deref(), Some(&b"1"[..]));
        kv.put(Table::Rows, b"b", b"2");
        kv.fail(KvError("disk on fire".into()));
        assert!(kv.commit().is_err());
        assert_eq!(committed(kv.db(), b"b"), None, "the failed batch is gone");
        assert_eq!(kv.get(Table::Rows, b"b"), None, "the failed batch is gone");
    }

    #[test]
    fn a_batch_past_the_memory_bound_goes_on_in_the_transaction_and_commits_whole_or_not() {
        let (_d, mut kv) = fresh();
        kv.put(Table::Versions, b"committed", b"1");
        kv.commit().unwrap();
        let row = vec![9u8; 1 << 20];
        let rows = SPILL_BYTES / row.len() + 8;
        for attempt in ["fails", "commits"] {
            kv.clear(Table::Versions);
            for i in 0..rows as u32 {
                kv.put(Table::Versions, &i.to_be_bytes(), &row);
            }
            assert!(
                kv.batch.bytes() < SPILL_BYTES,
                "spilled into the transaction"
            );
            kv.delete(Table::Versions, &3u32.to_be_bytes());
            assert_eq!(kv.get(Table::Versions, b"committed"), None, "cleared");
            assert_eq!(kv.get(Table::Versions, &3u32.to_be_bytes()), None);
            assert_eq!(
                kv.get(Table::Versions, &0u32.to_be_bytes()),
                Some(row.clone())
            );
            let mut n = 0;
            kv.scan(Table::Versions, Bound::Unbounded, &mut |_, _| {
                n += 1;
                true
            });
            assert_eq!(n, rows - 1);
            if attempt == "fails" {
                kv.fail(KvError("disk on fire".into()));
                assert!(kv.commit().is_err());
                assert_eq!(
                    kv.get(Table::Versions, b"committed").as_deref(),
                    Some(&b"1"[..])
                );
                assert_eq!(kv.get(Table::Versions, &0u32.to_be_bytes()), None);
            } else {
                kv.commit().unwrap();
            }
        }
        assert_eq!(kv.get(Table::Versions, b"committed"), None);
        assert_eq!(kv.get(Table::Versions, &7u32.to_be_bytes()), Some(row));
    }

    #[test]
    fn queries_between_commits_share_a_view_that_each_commit_renews() {
        let (_d, mut kv) = fresh();
        // The view opens on a database where no table exists yet.
        assert_eq!(kv.get(Table::Versions, b"k"), None);
        let mut rows = 0;
        kv.scan(Table::Chunks, Bound::Unbounded, &mut |_, _| {
            rows += 1;
            true
        });
        assert_eq!(rows, 0);
        let before = kv.read_table(Table::Versions).unwrap();
        assert!(before.is_none());
        kv.put(Table::Versions, b"k", b"1");
        kv.put(Table::Chunks, b"c", b"x");
        kv.commit().unwrap();
        assert_eq!(kv.get(Table::Versions, b"k").as_deref(), Some(&b"1"[..]));
        let mut seen = Vec::new();
        kv.scan(Table::Chunks, Bound::Unbounded, &mut |k, _| {
            seen.push(k.to_vec());
            true
        });
        assert_eq!(seen, [b"c".to_vec()]);
        // One table handle serves every query until the next commit.
        let a = kv.read_table(Table::Versions).unwrap().unwrap();
        let b = kv.read_table(Table::Versions).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        kv.put(Table::Versions, b"k", b"2");
        kv.commit().unwrap();
        assert_eq!(kv.get(Table::Versions, b"k").as_deref(), Some(&b"2"[..]));
        // A handle taken before the commit still reads its own snapshot.
        assert_eq!(a.get(&b"k"[..]).unwrap().unwrap().value(), b"1");
        let c = kv.read_table(Table::Versions).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
        let (_d, mut kv) = fresh();
        for i in 0u32..5000 {
            kv.put(Table::Versions, &i.to_be_bytes(), &[i as u8; 100]);
        }
        kv.put(Table::Rows, b"r", b"x");
        kv.put(Table::Meta, b"applied", b"not in snapshots");
        kv.commit().unwrap();
        let mut file = Vec::new();
        let read = kv.db().begin_read().unwrap();
        assert_eq!(write_snapshot(&read, &mut file).unwrap(), 5001);
        let (_d2, mut to) = fresh();
        to.put(Table::Chunks, b"stale", b"gone after install");
        to.commit().unwrap();
        assert_eq!(read_snapshot(&mut to, &file[..]).unwrap(), 5001);
        to.commit().unwrap();
        let mem_from = stratus_state::kv::dump(&kv);
        assert_eq!(stratus_state::kv::dump(&to), mem_from);
        // Any flipped byte or a cut is refused, and the target keeps its state.
        for at in [3, 40, file.len() / 2, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(read_snapshot(&mut to, &bad[..]).is_err(), "flip at {at}");
            to.abort();
        }
        assert!(read_snapshot(&mut to, &file[..file.len() - 10]).is_err());
        to.abort();
        assert_eq!(stratus_state::kv::dump(&to), mem_from);
    }
}
