//! The chunk index as sorted runs: a log-structured merge tree made of
//! redb tables in the state database, so that adding a chunk costs the same
//! at ten million chunks as at a hundred thousand.
//!
//! Chunk ids are content hashes: in one B-tree every new chunk lands on a
//! random leaf, and once the index outgrows memory each put rewrites a leaf
//! of its own (measured: the put rate at 10 M objects fell to 0.33–0.43× of
//! the rate at 100 k, while with ids that grow it did not fall). Here
//! writes (new rows, changed rows, deletions as tombstones) go to one small
//! *open* run; at [`Tuning::seal_rows`] rows it is *sealed* (read-only,
//! with a [`Bloom`] filter of its keys) and a new one opens. When
//! [`Tuning::fanout`] sealed runs share a level they are merged, in key
//! order, into one run of the next level, a bounded number of rows per
//! commit ([`Tuning::merge_pace`] per row written), while reads go on
//! against the inputs; the merged run replaces them in one commit. A read
//! asks the open run, then the sealed runs newest first, skipping those
//! whose filter rules the key out; the newest row wins and a tombstone
//! means absent. Merges into the oldest run drop tombstones.
//!
//! Everything lives in the state database and changes in the state's own
//! write transactions: the run list, filters and merge progress are rows of
//! `state_chunk_runs`, so a crash leaves runs and list consistent. A merge
//! under way when the process stops starts over (its filter is in memory
//! only); tables no list names are dropped at the first write. A database
//! of format 1 (one `state_chunks` table) is read as one sealed *legacy* run,
//! whose filter is built when it is first opened.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;

use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use stratus_state::KvError;

use crate::bloom::Bloom;

type Def<'a> = TableDefinition<'a, &'static [u8], &'static [u8]>;
/// The rows of one run from a bound on.
type RunRange<'a> = redb::Range<'a, &'static [u8], &'static [u8]>;
/// What [`merge_raw`] hands each key: its newest row (`None`: a
/// tombstone); returns whether to go on.
type MergeVisitor<'a> = &'a mut dyn FnMut(&[u8], Option<&[u8]>) -> Result<bool, KvError>;

/// The table of the run list and the runs' filters.
const META: Def<'static> = TableDefinition::new("state_chunk_runs");
const ROW_META: &[u8] = b"meta";
const BLOOM_PREFIX: &[u8] = b"bloom/";
/// The single chunk table of format 1, now the legacy run.
const LEGACY: &str = "state_chunks";
/// Prefix of the runs' table names.
const RUN_PREFIX: &str = "state_chunks_run_";
/// First byte of a value in a run: a row, or a tombstone.
const TAG_ROW: u8 = 1;
const TAG_GONE: u8 = 0;

/// How large runs grow and how fast they merge.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// Rows the open run takes before it is sealed.
    pub seal_rows: u64,
    /// Sealed runs of one level that are merged into one of the next.
    pub fanout: usize,
    /// Rows a merge moves per row written to the open run.
    pub merge_pace: u64,
}

impl Default for Tuning {
    /// An open run of 16 Ki rows (~1.5 MiB: a batch of random inserts
    /// dirties at most its few hundred leaves, which stay cached), eight
    /// runs per merge (a row is rewritten about three times on its way to
    /// a 10 M-row run; a read asks a filter per run, one cache line each),
    /// two merged rows per written row and merge: a level's merge keeps up
    /// with the writes that fill that level (one row per row is enough)
    /// without stalling puts while a large one runs (at eight, puts ran at
    /// a third of their rate during the 8.7 M-row merge at 9 M objects).
    fn default() -> Self {
        Tuning {
            seal_rows: 16 << 10,
            fanout: 8,
            merge_pace: 2,
        }
    }
}

/// One run as the list records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RunInfo {
    id: u64,
    level: u8,
    rows: u64,
    /// The format-1 table: plain values, no tombstones.
    legacy: bool,
}

impl RunInfo {
    fn name(&self) -> String {
        if self.legacy {
            LEGACY.to_string()
        } else {
            format!("{RUN_PREFIX}{:016x}", self.id)
        }
    }
}

/// A merge under way: `count` sealed runs from index `first` into `output`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Merge {
    first: usize,
    count: usize,
    output: RunInfo,
    /// The inputs include the oldest run: tombstones end here.
    drop_tombstones: bool,
    /// Last key moved.
    after: Option<Vec<u8>>,
}

/// The run list (the row [`ROW_META`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Oldest first; levels never grow from one to the next.
    sealed: Vec<RunInfo>,
    open: RunInfo,
    next_id: u64,
    /// Merges under way, at most one per level (so a merge of small runs
    /// never waits behind a large one).
    merges: Vec<Merge>,
}

fn err(e: impl std::fmt::Display) -> KvError {
    KvError(format!("chunk index runs: {e}"))
}

fn bloom_key(id: u64) -> Vec<u8> {
    [BLOOM_PREFIX, &id.to_be_bytes()].concat()
}

/// A stored value as a row (`Some`) or a tombstone (`None`).
fn decode<'v>(run: &RunInfo, v: &'v [u8]) -> Result<Option<&'v [u8]>, KvError> {
    if run.legacy {
        return Ok(Some(v));
    }
    match v.split_first() {
        Some((&TAG_ROW, row)) => Ok(Some(row)),
        Some((&TAG_GONE, _)) => Ok(None),
        _ => Err(err(format!("a row of run {} has no tag", run.id))),
    }
}

/// The stored run list in `t` (the table [`META`]), if there is one.
fn stored_meta(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Option<Meta>, KvError> {
    match t.get(ROW_META).map_err(err)? {
        Some(v) => Ok(Some(bincode::deserialize::<Meta>(v.value()).map_err(err)?)),
        None => Ok(None),
    }
}

/// The run list of the database as `txn` sees it (the open run first, then
/// sealed runs newest first); a database of format 1 has its legacy run.
fn read_list(txn: &ReadTransaction) -> Result<Vec<RunInfo>, KvError> {
    let meta = match txn.open_table(META) {
        Ok(t) => stored_meta(&t)?,
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(err(e)),
    };
    Ok(match meta {
        Some(m) => std::iter::once(m.open)
            .chain(m.sealed.into_iter().rev())
            .collect(),
        None => vec![RunInfo {
            legacy: true,
            ..RunInfo::default()
        }],
    })
}

/// Visits the rows of `runs` (newest first, with their tables; `None`: the
/// table does not exist) from `from` on in key order, the newest row of a
/// key winning and tombstones skipped, until `f` returns false.
fn merged_scan<T: ReadableTable<&'static [u8], &'static [u8]>>(
    runs: &[(&RunInfo, Option<&T>)],
    from: Bound<&[u8]>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), KvError> {
    let mut iters = Vec::with_capacity(runs.len());
    for (run, table) in runs {
        if let Some(t) = table {
            iters.push((
                *run,
                t.range::<&[u8]>((from, Bound::Unbounded)).map_err(err)?,
            ));
        }
    }
    merge_raw(iters, &mut |k, v| Ok(v.is_none_or(|v| f(k, v))))
}

/// The rows of the chunk index as `txn` sees them, for a snapshot.
pub(crate) fn scan_read_txn(
    txn: &ReadTransaction,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), KvError> {
    let list = read_list(txn)?;
    let mut tables = Vec::with_capacity(list.len());
    for run in &list {
        let name = run.name();
        tables.push(match txn.open_table(Def::new(&name)) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err(e)),
        });
    }
    let runs: Vec<_> = list.iter().zip(tables.iter().map(Option::as_ref)).collect();
    merged_scan(&runs, Bound::Unbounded, f)
}

/// The chunk index's runs as this replica holds them: the list (as of the
/// last write), the sealed runs' filters, and the merges' filters so far.
pub(crate) struct RunSet {
    meta: Meta,
    filters: HashMap<u64, Arc<Bloom>>,
    /// Filters of the merge outputs' rows so far, by output id.
    merging: HashMap<u64, Bloom>,
    /// A snapshot is being loaded (the index was cleared in this
    /// transaction): its rows, in key order, are appended to the open run,
    /// which is neither sealed nor merged until the transaction commits.
    bulk: bool,
    /// Filters to store with the next write.
    unsaved: Vec<u64>,
    /// The list changed since it was last stored.
    dirty: bool,
    /// Tables of runs no list names are dropped by the first write.
    swept: bool,
    tuning: Tuning,
}

impl RunSet {
    /// The runs of `db` (none yet, the legacy run of a format-1 database,
    /// or the stored list with its filters). A merge that was under way
    /// starts over.
    pub fn load(db: &Database, tuning: Tuning) -> Result<RunSet, KvError> {
        let txn = db.begin_read().map_err(err)?;
        let mut set = RunSet {
            meta: Meta::default(),
            filters: HashMap::new(),
            merging: HashMap::new(),
            bulk: false,
            unsaved: Vec::new(),
            dirty: false,
            swept: false,
            tuning,
        };
        let stored = match txn.open_table(META) {
            Ok(t) => {
                let meta = stored_meta(&t)?;
                if let Some(m) = &meta {
                    for run in &m.sealed {
                        let bytes = t
                            .get(bloom_key(run.id).as_slice())
                            .map_err(err)?
                            .ok_or_else(|| err(format!("run {} has no filter", run.id)))?;
                        let bloom = Bloom::from_bytes(bytes.value()).ok_or_else(|| {
                            err(format!("the filter of run {} is damaged", run.id))
                        })?;
                        set.filters.insert(run.id, Arc::new(bloom));
                    }
                }
                meta
            }
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err(e)),
        };
        match stored {
            Some(mut m) => {
                set.dirty = !m.merges.is_empty();
                m.merges.clear();
                set.meta = m;
            }
            None => {
                set.meta.next_id = 1;
                // Format 1: the one chunk table becomes the oldest run.
                let legacy = RunInfo {
                    legacy: true,
                    ..RunInfo::default()
                };
                if let Ok(t) = txn.open_table(Def::new(LEGACY)) {
                    let rows = t.len().map_err(err)?;
                    if rows > 0 {
                        tracing::info!(
                            rows,
                            "indexing the chunk table of a format-1 state database as a sealed run"
                        );
                        let mut bloom = Bloom::with_capacity(rows);
                        for r in t.iter().map_err(err)? {
                            bloom.insert(r.map_err(err)?.0.value());
                        }
                        set.filters.insert(0, Arc::new(bloom));
                        set.unsaved.push(0);
                        set.meta.sealed.push(RunInfo {
                            rows,
                            level: level_of(rows, &tuning),
                            ..legacy
                        });
                    }
                }
                set.open_new_run();
            }
        }
        Ok(set)
    }

    /// Every run, newest first: the open one, then the sealed ones.
    fn newest_first(&self) -> impl Iterator<Item = &RunInfo> {
        std::iter::once(&self.meta.open).chain(self.meta.sealed.iter().rev())
    }

    /// Whether run `r` may hold `key`: its filter (a sealed run's) does
    /// not rule it out.
    fn may_hold(&self, r: &RunInfo, key: &[u8]) -> bool {
        self.filters.get(&r.id).is_none_or(|b| b.may_contain(key))
    }

    /// The tables of every run a scan reads, newest first.
    pub fn all(&self) -> impl Iterator<Item = String> + '_ {
        self.newest_first().map(RunInfo::name)
    }

    /// The row of `key`: `lookup` reads one run's table by name (`None`:
    /// no such row or table).
    pub fn get(
        &self,
        key: &[u8],
        mut lookup: impl FnMut(&str) -> Result<Option<Vec<u8>>, KvError>,
    ) -> Result<Option<Vec<u8>>, KvError> {
        // The open run has no filter: it is always asked.
        for run in self.newest_first().filter(|r| self.may_hold(r, key)) {
            if let Some(v) = lookup(&run.name())? {
                return Ok(decode(run, &v)?.map(<[u8]>::to_vec));
            }
        }
        Ok(None)
    }

    /// [`merged_scan`] over this set's runs, whose tables `tables` holds
    /// in the order of [`RunSet::all`].
    pub fn scan<T: ReadableTable<&'static [u8], &'static [u8]>>(
        &self,
        tables: &[Option<&T>],
        from: Bound<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), KvError> {
        let runs: Vec<_> = self.newest_first().zip(tables.iter().copied()).collect();
        merged_scan(&runs, from, f)
    }

    /// Writes a batch's chunk rows (`None`: deleted) into the open run; with
    /// `cleared`, every run is dropped first. Then seals and merges as
    /// needed ([`RunSet::flush`] stores the list).
    pub fn write<'k>(
        &mut self,
        txn: &WriteTransaction,
        cleared: bool,
        rows: impl Iterator<Item = (&'k [u8], Option<&'k [u8]>)>,
    ) -> Result<(), KvError> {
        if cleared {
            self.clear(txn)?;
            self.bulk = true;
        }
        let mut written = 0u64;
        {
            let name = self.meta.open.name();
            let mut t = txn.open_table(Def::new(&name)).map_err(err)?;
            let mut buf = Vec::new();
            for (k, v) in rows {
                written += 1;
                let old = match v {
                    Some(v) => {
                        buf.clear();
                        buf.push(TAG_ROW);
                        buf.extend_from_slice(v);
                        t.insert(k, buf.as_slice()).map_err(err)?.is_some()
                    }
                    // Only a sealed run may still hold it: else forget it.
                    None if self.sealed_may_hold(k) => {
                        t.insert(k, [TAG_GONE].as_slice()).map_err(err)?.is_some()
                    }
                    None => {
                        if t.remove(k).map_err(err)?.is_some() {
                            self.meta.open.rows = self.meta.open.rows.saturating_sub(1);
                        }
                        true
                    }
                };
                if !old {
                    self.meta.open.rows += 1;
                }
            }
        }
        if written > 0 {
            self.dirty = true;
        }
        self.maintain(txn, written)
    }

    fn sealed_may_hold(&self, key: &[u8]) -> bool {
        self.meta.sealed.iter().any(|r| self.may_hold(r, key))
    }

    /// Opens an empty run for the writes to come.
    fn open_new_run(&mut self) {
        self.meta.open = RunInfo {
            id: self.meta.next_id,
            ..RunInfo::default()
        };
        self.meta.next_id += 1;
        self.dirty = true;
    }

    /// The tables of every run the list names (merge outputs included).
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.meta.sealed.iter().map(RunInfo::name).collect();
        names.push(self.meta.open.name());
        names.extend(self.meta.merges.iter().map(|m| m.output.name()));
        names
    }

    /// Drops every run (and the merges under way).
    fn clear(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        for name in self.table_names() {
            txn.delete_table(Def::new(&name)).map_err(err)?;
        }
        let mut meta_t = txn.open_table(META).map_err(err)?;
        for r in &self.meta.sealed {
            meta_t.remove(bloom_key(r.id).as_slice()).map_err(err)?;
        }
        self.meta.sealed.clear();
        self.meta.merges.clear();
        self.merging.clear();
        self.filters.clear();
        self.unsaved.clear();
        self.open_new_run();
        Ok(())
    }

    /// Seals a full open run and moves each merge on by `merge_pace` rows
    /// per row `written` (nothing while a snapshot is loaded: merging in
    /// its one transaction could not reuse the pages it frees).
    fn maintain(&mut self, txn: &WriteTransaction, written: u64) -> Result<(), KvError> {
        if self.bulk {
            return Ok(());
        }
        if self.meta.open.rows >= self.tuning.seal_rows {
            self.seal(txn)?;
        }
        self.start_merges();
        let budget = written.saturating_mul(self.tuning.merge_pace);
        let mut i = 0;
        while i < self.meta.merges.len() && budget > 0 {
            if !self.merge_step(txn, i, budget)? {
                i += 1;
            }
        }
        Ok(())
    }

    /// The transaction the last writes went into committed.
    pub fn committed(&mut self) {
        self.bulk = false;
    }

    /// Stores what changed (the list, new filters) in `txn`, and drops the
    /// tables of runs no list names the first time. Every write
    /// transaction of the state calls it before committing.
    pub fn flush(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        if !self.swept {
            self.sweep(txn)?;
        }
        self.save(txn)
    }

    /// Drops the tables of runs the list does not name (a merge cut short
    /// by a restart, a run of a list a snapshot replaced).
    fn sweep(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        let known = self.table_names();
        let stale: Vec<String> = txn
            .list_tables()
            .map_err(err)?
            .map(|h| h.name().to_string())
            .filter(|n| n.starts_with(RUN_PREFIX) && !known.contains(n))
            .collect();
        for name in stale {
            tracing::debug!(table = %name, "dropping a chunk-index run no list names");
            txn.delete_table(Def::new(&name)).map_err(err)?;
        }
        self.swept = true;
        Ok(())
    }

    fn seal(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        let mut run = self.meta.open.clone();
        // A run loaded whole from a snapshot is large: its level by size,
        // no higher than the newest sealed run's (levels never grow from
        // older to newer runs).
        run.level = level_of(run.rows, &self.tuning)
            .min(self.meta.sealed.last().map_or(u8::MAX, |r| r.level));
        let mut bloom = Bloom::with_capacity(run.rows);
        let name = run.name();
        let t = txn.open_table(Def::new(&name)).map_err(err)?;
        for r in t.iter().map_err(err)? {
            bloom.insert(r.map_err(err)?.0.value());
        }
        self.filters.insert(run.id, Arc::new(bloom));
        self.unsaved.push(run.id);
        tracing::debug!(
            run = run.id,
            rows = run.rows,
            sealed = self.meta.sealed.len() + 1,
            "chunk-index run sealed"
        );
        self.meta.sealed.push(run);
        self.open_new_run();
        Ok(())
    }

    /// Starts merging the runs of each level that has `fanout` of them and
    /// no merge under way (a level's runs are next to each other: levels
    /// never grow from older to newer runs, and a merge takes every run of
    /// its level).
    fn start_merges(&mut self) {
        let mut levels: Vec<u8> = self.meta.sealed.iter().map(|r| r.level).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels {
            let busy = self.meta.merges.iter().any(|m| {
                self.meta.sealed[m.first..m.first + m.count]
                    .iter()
                    .any(|r| r.level == level)
            });
            let sealed = &self.meta.sealed;
            if busy
                || sealed.iter().filter(|r| r.level == level).count() < self.tuning.fanout.max(2)
            {
                continue;
            }
            let Some(first) = sealed.iter().position(|r| r.level == level) else {
                continue;
            };
            let count = sealed[first..]
                .iter()
                .take_while(|r| r.level == level)
                .count();
            debug_assert_eq!(
                count,
                sealed.iter().filter(|r| r.level == level).count(),
                "the runs of one level are next to each other"
            );
            let rows: u64 = sealed[first..first + count].iter().map(|r| r.rows).sum();
            let output = RunInfo {
                id: self.meta.next_id,
                level: level.saturating_add(1),
                rows: 0,
                legacy: false,
            };
            self.meta.next_id += 1;
            tracing::debug!(level, runs = count, rows, "chunk-index merge started");
            self.merging.insert(output.id, Bloom::with_capacity(rows));
            self.meta.merges.push(Merge {
                first,
                count,
                output,
                drop_tombstones: first == 0,
                after: None,
            });
            self.dirty = true;
        }
    }

    /// Moves up to `budget` rows of the inputs of merge `i` into its
    /// output, in key order; once all are moved, the output takes the
    /// inputs' place and the merge is gone from the list (`true`).
    fn merge_step(
        &mut self,
        txn: &WriteTransaction,
        i: usize,
        budget: u64,
    ) -> Result<bool, KvError> {
        let mut m = self.meta.merges[i].clone();
        let inputs: Vec<RunInfo> = self.meta.sealed[m.first..m.first + m.count]
            .iter()
            .rev()
            .cloned()
            .collect();
        let names: Vec<String> = inputs.iter().map(RunInfo::name).collect();
        let mut tables = Vec::with_capacity(inputs.len());
        for name in &names {
            tables.push(txn.open_table(Def::new(name)).map_err(err)?);
        }
        let from = m.after.clone();
        let from = match &from {
            Some(k) => Bound::Excluded(k.as_slice()),
            None => Bound::Unbounded,
        };
        let mut iters = Vec::with_capacity(inputs.len());
        for (run, t) in inputs.iter().zip(&tables) {
            iters.push((
                run,
                t.range::<&[u8]>((from, Bound::Unbounded)).map_err(err)?,
            ));
        }
        let out_name = m.output.name();
        let mut out = txn.open_table(Def::new(&out_name)).map_err(err)?;
        let bloom = self
            .merging
            .entry(m.output.id)
            .or_insert_with(|| Bloom::with_capacity(1));
        let mut moved = 0u64;
        let mut done = true;
        let mut buf = Vec::new();
        merge_raw(iters, &mut |k, row| {
            if moved >= budget {
                done = false;
                return Ok(false);
            }
            moved += 1;
            let after = m.after.get_or_insert_with(Vec::new);
            after.clear();
            after.extend_from_slice(k);
            match row {
                None if m.drop_tombstones => return Ok(true),
                None => {
                    out.insert(k, [TAG_GONE].as_slice()).map_err(err)?;
                }
                Some(v) => {
                    buf.clear();
                    buf.push(TAG_ROW);
                    buf.extend_from_slice(v);
                    out.insert(k, buf.as_slice()).map_err(err)?;
                }
            }
            bloom.insert(k);
            m.output.rows += 1;
            Ok(true)
        })?;
        drop(out);
        drop(tables);
        self.dirty = true;
        if !done {
            self.meta.merges[i] = m;
            return Ok(false);
        }
        // All moved: the output takes the inputs' place.
        self.meta.merges.remove(i);
        let bloom = self
            .merging
            .remove(&m.output.id)
            .unwrap_or_else(|| Bloom::with_capacity(1));
        let mut meta_t = txn.open_table(META).map_err(err)?;
        for (run, name) in inputs.iter().zip(&names) {
            txn.delete_table(Def::new(name)).map_err(err)?;
            meta_t.remove(bloom_key(run.id).as_slice()).map_err(err)?;
            self.filters.remove(&run.id);
        }
        drop(meta_t);
        self.filters.insert(m.output.id, Arc::new(bloom));
        self.unsaved.push(m.output.id);
        tracing::debug!(
            run = m.output.id,
            level = m.output.level,
            rows = m.output.rows,
            "chunk-index merge done"
        );
        self.meta
            .sealed
            .splice(m.first..m.first + m.count, [m.output]);
        // Merges of newer runs moved left.
        for other in &mut self.meta.merges {
            if other.first > m.first {
                other.first -= m.count - 1;
            }
        }
        Ok(true)
    }

    /// Stores the list and new filters if they changed.
    fn save(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        if !self.dirty && self.unsaved.is_empty() {
            return Ok(());
        }
        let mut t = txn.open_table(META).map_err(err)?;
        for id in std::mem::take(&mut self.unsaved) {
            if let Some(b) = self.filters.get(&id) {
                t.insert(bloom_key(id).as_slice(), b.to_bytes().as_slice())
                    .map_err(err)?;
            }
        }
        let meta = bincode::serialize(&self.meta).map_err(err)?;
        t.insert(ROW_META, meta.as_slice()).map_err(err)?;
        self.dirty = false;
        Ok(())
    }

    /// Runs (sealed, open) and merge state, for tests and tools.
    #[cfg(test)]
    pub fn shape(&self) -> (Vec<(u8, u64)>, bool) {
        (
            self.meta.sealed.iter().map(|r| (r.level, r.rows)).collect(),
            !self.meta.merges.is_empty(),
        )
    }
}

/// Level of a run of `rows` rows: how many times `fanout` runs of the
/// sealed size make it.
fn level_of(rows: u64, tuning: &Tuning) -> u8 {
    let mut level = 0u8;
    let mut size = tuning.seal_rows.max(1);
    let fanout = tuning.fanout.max(2) as u64;
    while rows >= size.saturating_mul(fanout) && level < u8::MAX {
        size = size.saturating_mul(fanout);
        level += 1;
    }
    level
}

/// The k-way merge of open ranges (newest run first): `f` gets each key
/// once, with its newest row (`None`: a tombstone), and says whether to go
/// on. Rows are read in place (no copies).
fn merge_raw(mut iters: Vec<(&RunInfo, RunRange<'_>)>, f: MergeVisitor<'_>) -> Result<(), KvError> {
    let mut heads = Vec::with_capacity(iters.len());
    for (_, it) in &mut iters {
        heads.push(it.next().transpose().map_err(err)?);
    }
    loop {
        // The smallest key; on a tie the newest run (lowest index) holds it.
        let mut best: Option<usize> = None;
        for (i, h) in heads.iter().enumerate() {
            let Some((k, _)) = h else { continue };
            let smaller = match best.and_then(|b| heads[b].as_ref()) {
                Some((bk, _)) => k.value() < bk.value(),
                None => true,
            };
            if smaller {
                best = Some(i);
            }
        }
        let Some(b) = best else {
            return Ok(());
        };
        let Some((key, value)) = heads[b].take() else {
            return Ok(());
        };
        heads[b] = iters[b].1.next().transpose().map_err(err)?;
        // Older runs' rows of the same key are shadowed.
        for i in b + 1..heads.len() {
            if heads[i]
                .as_ref()
                .is_some_and(|(k, _)| k.value() == key.value())
            {
                heads[i] = iters[i].1.next().transpose().map_err(err)?;
            }
        }
        if !f(key.value(), decode(iters[b].0, value.value())?)? {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use proptest::prelude::*;
    use stratus_state::kv::dump;
    use stratus_state::{Kv, MemKv, Table};

    use super::*;
    use crate::statedb::{open_db, write_snapshot, RedbKv};

    /// Runs so small that a few writes seal, merge and drop tombstones.
    const TINY: Tuning = Tuning {
        seal_rows: 3,
        fanout: 2,
        merge_pace: 4,
    };

    fn db() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&dir.path().join("state.redb"), 4 << 20).unwrap();
        (dir, Arc::new(db))
    }

    /// The names of the tables in `db`.
    fn tables(db: &Database) -> Vec<String> {
        let txn = db.begin_read().unwrap();
        let names = txn.list_tables().unwrap().map(|h| h.name().to_string());
        names.collect()
    }

    fn rows(kv: &dyn Kv, from: Bound<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        kv.scan(Table::Chunks, from, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        });
        out
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        Other(u8),
        Clear,
        Commit,
        Abort,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => (0u8..40, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            6 => (0u8..40).prop_map(Op::Delete),
            1 => any::<u8>().prop_map(Op::Other),
            1 => Just(Op::Clear),
            6 => Just(Op::Commit),
            1 => Just(Op::Abort),
            1 => Just(Op::Reopen),
        ]
    }

    /// What `kv` holds equals the model, row by row and in scans.
    fn same(kv: &dyn Kv, model: &MemKv) -> Result<(), TestCaseError> {
        for k in 0u8..40 {
            prop_assert_eq!(kv.get(Table::Chunks, &[k]), model.get(Table::Chunks, &[k]));
        }
        for from in [
            Bound::Unbounded,
            Bound::Included(&[9u8][..]),
            Bound::Excluded(&[20u8][..]),
        ] {
            prop_assert_eq!(rows(kv, from), rows(model, from));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Through writes, deletes, clears, commits, aborted batches and
        /// restarts, the chunk index on runs reads as a plain table (the
        /// in-memory `Kv`) would, and a snapshot of it holds the same rows.
        #[test]
        fn runs_read_as_one_table(
            ops in prop::collection::vec(op(), 1..120),
            (seal_rows, fanout, merge_pace) in prop_oneof![
                Just((3u64, 2usize, 4u64)),
                // Merges slower than writes: many runs, merges under way.
                Just((2, 2, 1)),
                Just((4, 3, 2)),
            ],
        ) {
            let tuning = Tuning { seal_rows, fanout, merge_pace };
            let (_dir, db) = db();
            let mut kv = RedbKv::with_tuning(db.clone(), tuning).unwrap();
            let mut committed = MemKv::default();
            let mut working = MemKv::default();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        kv.put(Table::Chunks, &[k], &[v]);
                        working.put(Table::Chunks, &[k], &[v]);
                    }
                    Op::Delete(k) => {
                        kv.delete(Table::Chunks, &[k]);
                        working.delete(Table::Chunks, &[k]);
                    }
                    Op::Other(v) => {
                        kv.put(Table::Rows, b"other", &[v]);
                        working.put(Table::Rows, b"other", &[v]);
                    }
                    Op::Clear => {
                        kv.clear(Table::Chunks);
                        working.clear(Table::Chunks);
                    }
                    Op::Commit => {
                        kv.commit().unwrap();
                        committed = working.clone();
                    }
                    Op::Abort => {
                        kv.abort();
                        working = committed.clone();
                    }
                    Op::Reopen => {
                        drop(kv);
                        kv = RedbKv::with_tuning(db.clone(), tuning).unwrap();
                        working = committed.clone();
                    }
                }
                same(&kv, &working)?;
            }
            kv.commit().unwrap();
            prop_assert_eq!(dump(&kv), dump(&working));
            // A snapshot carries the logical rows.
            let mut snap = Vec::new();
            write_snapshot(&db.begin_read().unwrap(), &mut snap).unwrap();
            let mut back = MemKv::default();
            crate::statedb::read_snapshot(&mut back, snap.as_slice()).unwrap();
            prop_assert_eq!(dump(&back), dump(&working));
        }
    }

    #[test]
    fn runs_seal_merge_and_drop_what_no_list_names() {
        let (_dir, db) = db();
        let mut kv = RedbKv::with_tuning(db.clone(), TINY).unwrap();
        for i in 0u8..40 {
            kv.put(Table::Chunks, &[i], &[i]);
            kv.commit().unwrap();
        }
        let (sealed, _) = kv.runs_shape();
        assert!(sealed.len() < 10, "runs were merged: {sealed:?}");
        assert!(sealed.iter().any(|(level, _)| *level >= 2), "{sealed:?}");
        // Every key is in exactly one place once merges settle.
        assert_eq!(rows(&kv, Bound::Unbounded).len(), 40);
        // A table of a run the list does not name (a merge cut short) is
        // dropped by the first write after a start.
        {
            let txn = db.begin_write().unwrap();
            txn.open_table(Def::new(&format!("{RUN_PREFIX}{:016x}", 9999)))
                .unwrap()
                .insert(&[1u8][..], &[TAG_ROW, 7][..])
                .unwrap();
            txn.commit().unwrap();
        }
        drop(kv);
        let mut kv = RedbKv::with_tuning(db.clone(), TINY).unwrap();
        assert_eq!(kv.get(Table::Chunks, &[1]), Some(vec![1]));
        kv.put(Table::Rows, b"x", b"y");
        kv.commit().unwrap();
        let names = tables(&db);
        assert!(!names.iter().any(|n| n.ends_with("270f")), "{names:?}");
    }

    #[test]
    fn a_format_1_chunk_table_is_read_as_the_oldest_run_and_merged_away() {
        let (_dir, db) = db();
        // A database as format 1 wrote it: plain values in `state_chunks`.
        {
            let txn = db.begin_write().unwrap();
            let mut t = txn.open_table(Def::new(LEGACY)).unwrap();
            for i in 0u8..10 {
                t.insert(&[i][..], &[i, i][..]).unwrap();
            }
            drop(t);
            txn.commit().unwrap();
        }
        let mut model = MemKv::default();
        for i in 0u8..10 {
            model.put(Table::Chunks, &[i], &[i, i]);
        }
        let mut snap = Vec::new();
        write_snapshot(&db.begin_read().unwrap(), &mut snap).unwrap();
        let mut back = MemKv::default();
        crate::statedb::read_snapshot(&mut back, snap.as_slice()).unwrap();
        assert_eq!(
            dump(&back),
            dump(&model),
            "a snapshot of a format-1 database"
        );

        let mut kv = RedbKv::with_tuning(db.clone(), TINY).unwrap();
        assert_eq!(dump(&kv), dump(&model));
        for i in 5u8..30 {
            kv.put(Table::Chunks, &[i], &[i]);
            model.put(Table::Chunks, &[i], &[i]);
            if i % 4 == 0 {
                kv.delete(Table::Chunks, &[i - 5]);
                model.delete(Table::Chunks, &[i - 5]);
            }
            kv.commit().unwrap();
        }
        assert_eq!(dump(&kv), dump(&model));
        // Merged into the runs: the format-1 table is gone.
        let names = tables(&db);
        assert!(!names.iter().any(|n| n == LEGACY), "{names:?}");
        drop(kv);
        let kv = RedbKv::with_tuning(db, TINY).unwrap();
        assert_eq!(dump(&kv), dump(&model));
    }
}
