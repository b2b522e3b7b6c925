//! The storage the replicated state is applied into: ordered byte tables.
//!
//! [`State::apply`](crate::State::apply) stays pure and deterministic; what
//! it keeps goes through the [`Kv`] trait. The product runs it on redb
//! (`stratus-raft`'s `RedbKv`: every applied batch is one write transaction
//! that also records the applied log id, and queries read committed data);
//! property tests run it on [`MemKv`]. One conformance suite
//! ([`conformance`]) holds both to the same contract, as TiKV's
//! `engine_traits` do.
//!
//! Storage errors are not the state machine's business: a backend that fails
//! remembers its first error (reads then answer "absent"), and the caller
//! that commits the batch gets it from [`Kv::commit`] and refuses to
//! acknowledge anything (the write transaction is dropped, nothing of the
//! batch persists).

use std::collections::BTreeMap;
use std::ops::Bound;

/// The tables of the state. The discriminant is the table's id in snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Table {
    /// The small state (nodes, tenants, workloads, ...): one row per field or
    /// per entry of the larger maps, loaded into memory at start.
    Rows = 0,
    /// Object versions: `bucket \0 key \0 seq(u64 BE)` → version.
    Versions = 1,
    /// The chunk index: chunk id → entry.
    Chunks = 2,
    /// Chunks no version references (garbage-collection candidates).
    ZeroRefs = 3,
    /// Packs: id (u64 BE) → pack.
    Packs = 4,
    /// What the storage holds about itself: applied log id, membership,
    /// format version. Written by the state machine store, not by `apply`.
    Meta = 5,
    /// Where pieces are: `node ‖ piece ‖ pack(u64 BE) ‖ slot(u8)` → nothing.
    NodePieces = 6,
    /// Packs with no live chunk left: pack id → nothing.
    EmptyPacks = 7,
    /// Packs with a slot known bad: pack id → nothing.
    BadPacks = 8,
    /// Attributes of object versions (stored headers, tags, part sizes):
    /// `bucket \0 key \0 version_id` → JSON document
    /// (`objects::VersionAttrs`; absent = default).
    VersionAttrs = 9,
    /// The market's ledger: entry seq (u64 BE) → JSON record
    /// (`accounts::LedgerRecord`).
    Ledger = 10,
    /// Which ledger entries concern a tenant: `tenant \0 seq(u64 BE)` →
    /// nothing.
    LedgerIndex = 11,
    /// The audit log: record seq (u64 BE) → JSON record
    /// (`audit::AuditRecord`), hash-chained.
    Audit = 12,
    /// Which audit records concern a tenant: `tenant \0 seq(u64 BE)` →
    /// nothing.
    AuditIndex = 13,
    /// Signed checkpoints of the audit log: the seq (u64 BE) of the record
    /// they sign → JSON checkpoint (`audit::Checkpoint`).
    AuditCheckpoints = 14,
}

impl Table {
    /// Every table, in snapshot order.
    pub const ALL: [Table; 15] = [
        Table::Rows,
        Table::Versions,
        Table::Chunks,
        Table::ZeroRefs,
        Table::Packs,
        Table::NodePieces,
        Table::EmptyPacks,
        Table::BadPacks,
        Table::Meta,
        Table::VersionAttrs,
        Table::Ledger,
        Table::LedgerIndex,
        Table::Audit,
        Table::AuditIndex,
        Table::AuditCheckpoints,
    ];

    /// Stable name (redb table name).
    pub fn name(self) -> &'static str {
        match self {
            Table::Rows => "state_rows",
            Table::Versions => "state_versions",
            Table::Chunks => "state_chunks",
            Table::ZeroRefs => "state_zero_refs",
            Table::Packs => "state_packs",
            Table::Meta => "state_meta",
            Table::NodePieces => "state_node_pieces",
            Table::EmptyPacks => "state_empty_packs",
            Table::BadPacks => "state_bad_packs",
            Table::VersionAttrs => "state_version_attrs",
            Table::Ledger => "state_ledger",
            Table::LedgerIndex => "state_ledger_index",
            Table::Audit => "state_audit",
            Table::AuditIndex => "state_audit_index",
            Table::AuditCheckpoints => "state_audit_checkpoints",
        }
    }

    /// The table with snapshot id `id`.
    pub fn from_id(id: u8) -> Option<Table> {
        Table::ALL.into_iter().find(|t| *t as u8 == id)
    }
}

/// Why a backend failed (kept as text: the state machine cannot act on it,
/// only stop and report).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state storage failed: {0}")]
pub struct KvError(pub String);

/// Ordered byte tables the state is applied into.
///
/// Writes are visible to later reads through the same handle at once and
/// become durable (and visible to other readers of the backend) together at
/// [`Kv::commit`].
pub trait Kv: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, table: Table, key: &[u8]) -> Option<Vec<u8>>;
    /// Sets `key` to `value`.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]);
    /// Removes `key` (absent keys are fine).
    fn delete(&mut self, table: Table, key: &[u8]);
    /// Visits the rows from `from` on, in key order, until `f` returns false.
    fn scan(&self, table: Table, from: Bound<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> bool);
    /// Removes every row of `table`.
    fn clear(&mut self, table: Table);
    /// Makes every write since the last commit durable, atomically; returns
    /// the first error met since then (and then nothing of it is kept).
    fn commit(&mut self) -> Result<(), KvError>;
    /// Drops every write since the last commit (backends that write
    /// through, like [`MemKv`], cannot, and are never asked to).
    fn abort(&mut self) {}
    /// Asks that the next commit be durable at once (backends that batch
    /// durability, like redb's `Eventual` commits, honour it).
    fn durable_next(&mut self) {}
}

/// An in-memory [`Kv`] for tests and tools: commit is a no-op.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemKv {
    tables: BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl Kv for MemKv {
    fn get(&self, table: Table, key: &[u8]) -> Option<Vec<u8>> {
        self.tables.get(&table)?.get(key).cloned()
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.tables
            .entry(table)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        if let Some(t) = self.tables.get_mut(&table) {
            t.remove(key);
        }
    }

    fn scan(&self, table: Table, from: Bound<&[u8]>, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
        let Some(t) = self.tables.get(&table) else {
            return;
        };
        for (k, v) in t.range::<[u8], _>((from, Bound::Unbounded)) {
            if !f(k, v) {
                return;
            }
        }
    }

    fn clear(&mut self, table: Table) {
        self.tables.remove(&table);
    }

    fn commit(&mut self) -> Result<(), KvError> {
        Ok(())
    }
}

/// Every row of `kv` (all tables but [`Table::Meta`]), in order: what two
/// replicas that applied the same log must agree on.
pub fn dump(kv: &dyn Kv) -> Vec<(Table, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for table in Table::ALL.into_iter().filter(|t| *t != Table::Meta) {
        kv.scan(table, Bound::Unbounded, &mut |k, v| {
            out.push((table, k.to_vec(), v.to_vec()));
            true
        });
    }
    out
}

/// The smallest key greater than every key starting with `prefix`, if any
/// (`None` when `prefix` is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The contract every [`Kv`] backend passes. Call each function with a fresh,
/// empty backend (`reopen` turns a committed backend into a new handle on the
/// same storage, for durability checks).
#[cfg(any(test, feature = "testing"))]
pub mod conformance {
    use super::*;

    fn collect(kv: &dyn Kv, table: Table, from: Bound<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        kv.scan(table, from, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        });
        out
    }

    /// Runs every check; `new` makes a fresh empty backend, `reopen` a new
    /// handle on the storage of a committed one.
    pub fn run_all<K: Kv>(mut new: impl FnMut() -> K, reopen: impl Fn(K) -> K) {
        reads_its_own_writes(new());
        scans_in_order_from_a_bound(new());
        scan_stops_when_asked(new());
        tables_are_separate_and_clear(new());
        a_batch_reads_over_what_was_committed(new(), &reopen);
        commits_survive_reopening(new(), &reopen);
    }

    /// Puts, overwrites and deletes are visible at once.
    pub fn reads_its_own_writes(mut kv: impl Kv) {
        assert_eq!(kv.get(Table::Rows, b"a"), None);
        kv.put(Table::Rows, b"a", b"1");
        assert_eq!(kv.get(Table::Rows, b"a").as_deref(), Some(&b"1"[..]));
        kv.put(Table::Rows, b"a", b"22");
        assert_eq!(kv.get(Table::Rows, b"a").as_deref(), Some(&b"22"[..]));
        kv.delete(Table::Rows, b"a");
        kv.delete(Table::Rows, b"never");
        assert_eq!(kv.get(Table::Rows, b"a"), None);
        kv.put(Table::Rows, b"", b"");
        assert_eq!(kv.get(Table::Rows, b"").as_deref(), Some(&b""[..]));
        kv.commit().expect("commit");
    }

    /// Scans are in byte order and honour included and excluded bounds.
    pub fn scans_in_order_from_a_bound(mut kv: impl Kv) {
        for k in [&b"b"[..], b"a\0z", b"a", b"ab", b"\xff\x00", b"a\xff"] {
            kv.put(Table::Versions, k, k);
        }
        let keys = |from| -> Vec<Vec<u8>> {
            collect(&kv, Table::Versions, from)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        let all: Vec<Vec<u8>> = [&b"a"[..], b"a\0z", b"ab", b"a\xff", b"b", b"\xff\x00"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(keys(Bound::Unbounded), all);
        assert_eq!(keys(Bound::Included(b"ab")), all[2..].to_vec());
        assert_eq!(keys(Bound::Excluded(b"ab")), all[3..].to_vec());
        assert_eq!(keys(Bound::Included(b"aa")), all[2..].to_vec());
        assert!(keys(Bound::Excluded(b"\xff\x00")).is_empty());
        let end = prefix_end(b"a").expect("end");
        assert_eq!(keys(Bound::Included(&end)), all[4..].to_vec());
        kv.commit().expect("commit");
    }

    /// A scan ends as soon as the visitor says so.
    pub fn scan_stops_when_asked(mut kv: impl Kv) {
        for i in 0u8..10 {
            kv.put(Table::Chunks, &[i], &[i]);
        }
        let mut seen = Vec::new();
        kv.scan(Table::Chunks, Bound::Included(&[3]), &mut |k, _| {
            seen.push(k[0]);
            seen.len() < 2
        });
        assert_eq!(seen, vec![3, 4]);
    }

    /// Equal keys in two tables are two rows; clearing one table leaves the
    /// others.
    pub fn tables_are_separate_and_clear(mut kv: impl Kv) {
        for t in Table::ALL {
            kv.put(t, b"k", &[t as u8]);
        }
        for t in Table::ALL {
            assert_eq!(kv.get(t, b"k"), Some(vec![t as u8]), "{t:?}");
        }
        kv.clear(Table::Packs);
        assert_eq!(kv.get(Table::Packs, b"k"), None);
        assert!(collect(&kv, Table::Packs, Bound::Unbounded).is_empty());
        assert_eq!(kv.get(Table::Chunks, b"k"), Some(vec![Table::Chunks as u8]));
        kv.commit().expect("commit");
    }

    /// Writes since the last commit replace, remove and add to committed
    /// rows in gets and scans, before and after they are committed; a
    /// cleared table hides its committed rows.
    pub fn a_batch_reads_over_what_was_committed<K: Kv>(mut kv: K, reopen: &impl Fn(K) -> K) {
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            kv.put(Table::Chunks, k, b"old");
            kv.put(Table::Packs, k, b"old");
        }
        kv.commit().expect("commit");
        kv.put(Table::Chunks, b"b", b"new");
        kv.delete(Table::Chunks, b"c");
        kv.put(Table::Chunks, b"e", b"new");
        kv.put(Table::Chunks, b"0", b"new");
        kv.delete(Table::Chunks, b"0");
        kv.clear(Table::Packs);
        kv.put(Table::Packs, b"z", b"new");
        let want: Vec<(Vec<u8>, Vec<u8>)> = [
            (&b"a"[..], &b"old"[..]),
            (b"b", b"new"),
            (b"d", b"old"),
            (b"e", b"new"),
        ]
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
        let packs = vec![(b"z".to_vec(), b"new".to_vec())];
        let check = |kv: &K| {
            assert_eq!(collect(kv, Table::Chunks, Bound::Unbounded), want);
            assert_eq!(collect(kv, Table::Chunks, Bound::Excluded(b"b")), want[2..]);
            assert_eq!(kv.get(Table::Chunks, b"c"), None);
            assert_eq!(kv.get(Table::Chunks, b"0"), None);
            assert_eq!(kv.get(Table::Chunks, b"b"), Some(b"new".to_vec()));
            assert_eq!(kv.get(Table::Packs, b"a"), None);
            assert_eq!(collect(kv, Table::Packs, Bound::Unbounded), packs);
        };
        check(&kv);
        kv.commit().expect("commit");
        check(&kv);
        check(&reopen(kv));
    }

    /// What was committed is there after reopening; large values survive.
    pub fn commits_survive_reopening<K: Kv>(mut kv: K, reopen: &impl Fn(K) -> K) {
        let big = vec![7u8; 3 << 20];
        kv.put(Table::Rows, b"big", &big);
        for i in 0u32..2000 {
            kv.put(Table::Versions, &i.to_be_bytes(), &i.to_le_bytes());
        }
        kv.commit().expect("commit");
        kv.delete(Table::Versions, &5u32.to_be_bytes());
        kv.commit().expect("commit");
        let kv = reopen(kv);
        assert_eq!(kv.get(Table::Rows, b"big"), Some(big));
        let rows = collect(&kv, Table::Versions, Bound::Unbounded);
        assert_eq!(rows.len(), 1999);
        assert_eq!(kv.get(Table::Versions, &5u32.to_be_bytes()), None);
        assert_eq!(
            kv.get(Table::Versions, &1999u32.to_be_bytes()),
            Some(1999u32.to_le_bytes().to_vec())
        );
    }

    #[test]
    fn mem_kv_passes() {
        run_all(MemKv::default, |kv| kv);
    }
}
