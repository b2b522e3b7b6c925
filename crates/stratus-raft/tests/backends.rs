//! The state applied on disk (redb) and in memory gives identical results
//! and identical rows; a state database survives reopening; a data
//! directory of format 3 is migrated on first start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, StoredMembership};
use proptest::prelude::*;
use redb::TableDefinition;
use stratus_raft::statedb::{open_db, RedbKv};
use stratus_raft::ChunkRunTuning;
use stratus_state::objects::StoreCommand;
use stratus_state::{synth, Command, Kv, MemKv, State};
use stratus_types::{NodeId, FORMAT_VERSION};

#[derive(Clone, Debug)]
enum Op {
    /// Store `n` objects starting at object `from`.
    Put(u64, u64),
    /// Delete object `i` (a delete of a missing key is fine).
    Delete(u64),
    /// Garbage collection at time `t` with grace `g`.
    Gc(u64, u64),
    /// A variable of the tenant.
    Var(u8),
    /// Commit the disk backend here.
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..300, 1u64..40).prop_map(|(f, n)| Op::Put(f, n)),
        (0u64..300).prop_map(Op::Delete),
        (0u64..10, 0u64..5).prop_map(|(t, g)| Op::Gc(t, g)),
        (0u8..5).prop_map(Op::Var),
        Just(Op::Commit),
    ]
}

fn commands(op: &Op) -> Vec<Command> {
    match op {
        Op::Put(f, n) => synth::small_objects("t", "bkt", *f, *n),
        Op::Delete(i) => vec![Command::Store(StoreCommand::DeleteObject {
            tenant: "t".into(),
            bucket: "bkt".into(),
            key: synth::key(*i),
            version_id: None,
            now_ms: 5,
        })],
        Op::Gc(t, g) => vec![Command::Store(StoreCommand::CollectGarbage {
            now_ms: *t,
            grace_ms: *g,
        })],
        Op::Var(k) => vec![Command::PutVar {
            tenant: "t".into(),
            key: format!("k{k}"),
            value: "v".into(),
            now_ms: 6,
        }],
        Op::Commit => Vec::new(),
    }
}

/// Chunk-index runs small enough that these tests seal and merge them.
const TINY_RUNS: ChunkRunTuning = ChunkRunTuning {
    seal_rows: 8,
    fanout: 2,
    merge_pace: 2,
};

fn redb_kv(path: &std::path::Path) -> RedbKv {
    let db = open_db(path, 4 << 20).expect("db");
    RedbKv::with_tuning(Arc::new(db), TINY_RUNS).expect("kv")
}

fn redb_state() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = State::open(Box::new(redb_kv(&dir.path().join("state.redb")))).expect("open");
    (dir, state)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The same commands give the same results and the same rows on both
    /// backends, whatever the commit points; what redb committed reads
    /// back identical after reopening.
    #[test]
    fn apply_is_identical_on_disk_and_in_memory(ops in prop::collection::vec(op(), 1..40)) {
        let mut mem = State::default();
        let (dir, mut disk) = redb_state();
        let mut index = 0;
        for c in synth::setup("t", "bkt") {
            index += 1;
            prop_assert_eq!(mem.apply(index, &c), disk.apply(index, &c));
        }
        for op in &ops {
            for c in commands(op) {
                index += 1;
                prop_assert_eq!(mem.apply(index, &c), disk.apply(index, &c));
            }
            if matches!(op, Op::Commit) {
                disk.commit().expect("commit");
                prop_assert_eq!(mem.dump(), disk.dump());
            }
        }
        disk.commit().expect("commit");
        let dump = mem.dump();
        prop_assert_eq!(&dump, &disk.dump());
        drop(disk);
        let mut back = State::open(Box::new(redb_kv(&dir.path().join("state.redb")))).expect("open");
        prop_assert_eq!(&back.dump(), &dump);
    }
}

fn node(n: u8) -> NodeId {
    NodeId([n; 32])
}

/// A `raft.redb` as format 3 left it: its snapshot holds the whole state,
/// serialized; the state database does not exist yet.
#[tokio::test(flavor = "multi_thread")]
async fn a_format_3_data_directory_is_migrated_on_first_start() {
    // The state format 3 held, built by applying commands in memory and
    // re-shaped as its in-memory structs were.
    let mut s = State::default();
    let mut cmds = synth::setup("t", "bkt");
    cmds.extend(synth::small_objects("t", "bkt", 0, 500));
    cmds.push(Command::Store(StoreCommand::DeleteObject {
        tenant: "t".into(),
        bucket: "bkt".into(),
        key: synth::key(7),
        version_id: None,
        now_ms: 9,
    }));
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(s.apply(i as u64 + 1, c).error, None, "{c:?}");
    }
    let legacy = stratus_state::legacy::LegacyState::from_state(&s);
    let applied = LogId::new(CommittedLeaderId::new(1, node(1)), 42);
    let voters: BTreeSet<NodeId> = [node(1)].into();
    let nodes: BTreeMap<NodeId, BasicNode> = [(node(1), BasicNode::new("127.0.0.1:1"))].into();
    let membership = StoredMembership::new(
        Some(LogId::new(CommittedLeaderId::new(1, node(1)), 1)),
        Membership::new(vec![voters], nodes),
    );
    let mut data = FORMAT_VERSION.to_le_bytes().to_vec();
    bincode::serialize_into(&mut data, &(Some(applied), &membership, &legacy)).expect("encode");
    let meta = openraft::SnapshotMeta {
        last_log_id: Some(applied),
        last_membership: membership.clone(),
        snapshot_id: "old".into(),
    };
    let mut meta_bytes = FORMAT_VERSION.to_le_bytes().to_vec();
    bincode::serialize_into(&mut meta_bytes, &meta).expect("encode");
    let dir = tempfile::tempdir().expect("tempdir");
    {
        const SNAPSHOT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("snapshot");
        let db = redb::Database::create(dir.path().join("raft.redb")).expect("db");
        let txn = db.begin_write().expect("txn");
        {
            let mut t = txn.open_table(SNAPSHOT).expect("table");
            t.insert("meta", meta_bytes.as_slice()).expect("meta");
            t.insert("data", data.as_slice()).expect("data");
        }
        txn.commit().expect("commit");
    }

    // Migrated in memory, for the rows to expect (row sequence numbers are
    // assigned anew in key order, so they differ from the original's).
    let mut expected_state = stratus_state::legacy::LegacyState::from_state(&s)
        .migrate(Box::new(MemKv::default()))
        .expect("migrate");
    let expected = expected_state.dump();
    // What the migration must keep, read from the original.
    let (keys, _) = s.store.list_keys("bkt", "", None, usize::MAX);
    assert_eq!(
        expected_state
            .store
            .list_keys("bkt", "", None, usize::MAX)
            .0,
        keys
    );
    assert_eq!(*expected_state.store.counts, *s.store.counts);
    assert_eq!(*expected_state.store.bucket_stats, *s.store.bucket_stats);
    assert_eq!(*expected_state.store.usage, *s.store.usage);
    assert_eq!(expected_state.store.packs(), s.store.packs());
    {
        let (_log, mut sm) = stratus_raft::store::open(dir.path()).await.expect("open");
        let (got_applied, got_membership) = sm.applied_state().await.expect("applied");
        assert_eq!(got_applied, Some(applied));
        assert_eq!(got_membership, membership);
        let mut rows = sm.reader().read(|s| {
            let mut copy = State::open(Box::new(s.fork_kv())).expect("open");
            copy.dump()
        });
        rows.retain(|r| r.0 != stratus_state::Table::Meta);
        assert_eq!(rows, expected, "every row migrated");
        let v = sm.reader().read(|s| s.store.latest("bkt", &synth::key(3)));
        assert_eq!(v.map(|v| v.size), Some(u64::from(synth::OBJECT_BYTES)));
        assert!(sm
            .reader()
            .read(|s| s.store.latest("bkt", &synth::key(7)).is_none()));
        // The old snapshot was replaced by one of the new format, of the
        // same state, that a new replica can be sent.
        let current = sm
            .get_current_snapshot()
            .await
            .expect("current")
            .expect("a snapshot");
        assert_eq!(current.meta.last_log_id, Some(applied));
        let other = tempfile::tempdir().expect("tempdir");
        let (_l, mut fresh) = stratus_raft::store::open(other.path()).await.expect("open");
        let mut bytes = Vec::new();
        let mut from = current.snapshot;
        tokio::io::AsyncReadExt::read_to_end(&mut from, &mut bytes)
            .await
            .expect("read");
        let mut into = fresh.begin_receiving_snapshot().await.expect("receive");
        tokio::io::AsyncWriteExt::write_all(&mut into, &bytes)
            .await
            .expect("write");
        fresh
            .install_snapshot(&current.meta, into)
            .await
            .expect("install");
        let mut installed = fresh.reader().read(|s| {
            let mut copy = State::open(Box::new(s.fork_kv())).expect("open");
            copy.dump()
        });
        installed.retain(|r| r.0 != stratus_state::Table::Meta);
        assert_eq!(installed, expected);
    }
    // A second start opens the migrated state as it is.
    let (_log, mut sm) = stratus_raft::store::open(dir.path()).await.expect("reopen");
    assert_eq!(sm.applied_state().await.expect("applied").0, Some(applied));
    assert_eq!(
        sm.reader().read(|s| s.store.counts.versions),
        499,
        "500 put, 1 deleted"
    );
}

#[test]
fn a_state_database_of_another_format_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = open_db(&dir.path().join("state.redb"), 1 << 20).expect("db");
        let mut kv = RedbKv::new(Arc::new(db)).expect("kv");
        kv.put(stratus_state::Table::Meta, b"format", &99u16.to_le_bytes());
        kv.commit().expect("commit");
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let err = rt
        .block_on(stratus_raft::store::open(dir.path()))
        .expect_err("refused");
    let msg = err.to_string();
    assert!(msg.contains("format version 99"), "{msg}");
    assert!(msg.contains("run a Stratus release that matches"), "{msg}");
}

#[test]
fn mem_and_redb_start_empty_alike() {
    let (_d, mut disk) = redb_state();
    assert_eq!(
        State::open(Box::new(MemKv::default()))
            .expect("open")
            .dump(),
        disk.dump()
    );
}

/// A state database of format 1 (the chunk index in one table of plain
/// rows) opens as it is, reads the same, and is upgraded by its first
/// commit; a format-1 binary would then refuse it.
#[tokio::test(flavor = "multi_thread")]
async fn a_format_1_state_database_is_read_in_place_and_upgraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmds = synth::setup("t", "bkt");
    cmds.extend(synth::small_objects("t", "bkt", 0, 300));
    let mut mem = State::default();
    for (i, c) in cmds.iter().enumerate() {
        assert_eq!(mem.apply(i as u64 + 1, c).error, None);
    }
    let expected = mem.dump();
    // Format 1 as it was on disk: the same rows, chunk rows plain in
    // `state_chunks`, the format row saying 1.
    {
        let db = redb::Database::create(dir.path().join("state.redb")).expect("db");
        let txn = db.begin_write().expect("txn");
        for (table, k, v) in &expected {
            let mut t = txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new(table.name()))
                .expect("table");
            t.insert(k.as_slice(), v.as_slice()).expect("row");
        }
        txn.open_table(TableDefinition::<&[u8], &[u8]>::new("state_meta"))
            .expect("meta")
            .insert(&b"format"[..], &1u16.to_le_bytes()[..])
            .expect("format");
        txn.commit().expect("commit");
    }
    let format = |dir: &std::path::Path| {
        let db = redb::Database::open(dir.join("state.redb")).expect("db");
        let txn = db.begin_read().expect("txn");
        let t = txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new("state_meta"))
            .expect("meta");
        let v = t.get(&b"format"[..]).expect("get").expect("format row");
        u16::from_le_bytes(v.value().try_into().expect("u16"))
    };
    let rows_of = |sm: &stratus_raft::StateMachineStore| {
        let mut rows = sm.reader().read(|s| {
            let mut copy = State::open(Box::new(s.fork_kv())).expect("open");
            copy.dump()
        });
        rows.retain(|r| r.0 != stratus_state::Table::Meta);
        rows
    };
    let mut expected_rows = expected.clone();
    expected_rows.retain(|r| r.0 != stratus_state::Table::Meta);
    {
        let (_log, mut sm) = stratus_raft::store::open(dir.path()).await.expect("open");
        assert_eq!(rows_of(&sm), expected_rows, "read in place");
        // One more object, applied: the first commit writes format 2.
        let more = synth::small_objects("t", "bkt", 300, 1);
        let entries: Vec<_> = more
            .into_iter()
            .enumerate()
            .map(|(i, c)| openraft::Entry::<stratus_state::TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, node(1)), i as u64 + 1),
                payload: openraft::EntryPayload::Normal(c),
            })
            .collect();
        sm.apply(entries).await.expect("apply");
        let v = sm
            .reader()
            .read(|s| s.store.latest("bkt", &synth::key(300)));
        assert!(v.is_some());
        assert!(sm
            .reader()
            .read(|s| s.store.latest("bkt", &synth::key(3)).is_some()));
    }
    assert_eq!(format(dir.path()), 2);
    let (_log, sm) = stratus_raft::store::open(dir.path()).await.expect("reopen");
    let rows = rows_of(&sm);
    for r in &expected_rows {
        if r.0 == stratus_state::Table::Chunks {
            assert!(rows.contains(r), "chunk row {:?} kept", r.1);
        }
    }
}
