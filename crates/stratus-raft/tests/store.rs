//! Tests of the redb Raft storage: openraft's conformance suite, and
//! persistence across reopening.

use std::collections::{BTreeMap, BTreeSet};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder,
    StorageError, StorageIOError, Vote,
};
use stratus_raft::store::{open, open_generic, LogStore, StateMachineStore};
use stratus_state::{Command, CommandResult, TypeConfig};
use stratus_types::{NodeId, TenantName};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

openraft::declare_raft_types!(
    /// The Stratus types with integer node ids, as the suite requires.
    pub TestConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TestConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

struct Builder;

impl StoreBuilder<TestConfig, LogStore<TestConfig>, StateMachineStore<TestConfig>, TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TestConfig>, StateMachineStore<TestConfig>), StorageError<u64>>
    {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let (log, sm) = open_generic::<TestConfig>(dir.path(), 1 << 20)
            .await
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_conformance_suite() {
    Suite::test_all(Builder).expect("the store passes openraft's storage suite");
}

fn node(n: u8) -> NodeId {
    NodeId([n; 32])
}

fn lid(term: u64, index: u64) -> LogId<NodeId> {
    log_id(term, node(1), index)
}

fn tenant(name: &str) -> TenantName {
    name.parse().expect("valid tenant name")
}

fn create_tenant(term: u64, index: u64, name: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(Command::CreateTenant {
            name: tenant(name),
            now_ms: 1000 + index,
        }),
    }
}

fn membership(term: u64, index: u64) -> Entry<TypeConfig> {
    let voters: BTreeSet<NodeId> = [node(1)].into_iter().collect();
    let nodes: BTreeMap<NodeId, BasicNode> = [(
        node(1),
        BasicNode {
            addr: "127.0.0.1:7000".into(),
        },
    )]
    .into_iter()
    .collect();
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], nodes)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn log_vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raft");
    let entries = vec![
        membership(1, 1),
        create_tenant(1, 2, "acme"),
        create_tenant(1, 3, "globex"),
        create_tenant(2, 4, "initech"),
        create_tenant(2, 5, "umbrella"),
    ];
    let vote = Vote::new_committed(2, node(1));
    {
        let (mut log, _sm) = open(&path).await.expect("open");
        log.blocking_append(entries.clone()).await.expect("append");
        log.save_vote(&vote).await.expect("save vote");
        log.save_committed(Some(lid(2, 4)))
            .await
            .expect("save committed");
        log.truncate(lid(2, 5)).await.expect("truncate");
        log.purge(lid(1, 1)).await.expect("purge");
    }
    let (mut log, mut sm) = open(&path).await.expect("reopen");
    let state = log.get_log_state().await.expect("log state");
    assert_eq!(state.last_purged_log_id, Some(lid(1, 1)));
    assert_eq!(state.last_log_id, Some(lid(2, 4)));
    assert_eq!(log.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(
        log.read_committed().await.expect("committed"),
        Some(lid(2, 4))
    );
    let got = log.try_get_log_entries(0..100).await.expect("entries");
    assert_eq!(got, entries[1..4].to_vec());
    // Nothing was applied, there is no snapshot: the state machine is empty.
    let (applied, _) = sm.applied_state().await.expect("applied state");
    assert_eq!(applied, None);
    assert!(sm.get_current_snapshot().await.expect("snapshot").is_none());
}

#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, mut sm) = open(dir.path()).await.expect("open");
    log.blocking_append([create_tenant(1, 1, "acme")])
        .await
        .expect("append");
    let entries = log.try_get_log_entries(1..2).await.expect("read");
    let results = sm.apply(entries).await.expect("apply");
    assert_eq!(results, vec![CommandResult::default()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_restores_state_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot_meta;
    {
        let (_log, mut sm) = open(dir.path()).await.expect("open");
        let reader = sm.reader();
        let mut applied = reader.subscribe();
        assert_eq!(reader.last_applied_index(), 0);
        let results = sm
            .apply(vec![
                membership(1, 1),
                create_tenant(1, 2, "acme"),
                create_tenant(1, 3, "acme"),
            ])
            .await
            .expect("apply");
        assert_eq!(results.len(), 3);
        assert!(results[1].error.is_none());
        assert!(results[2].error.is_some(), "duplicate tenant is refused");
        assert_eq!(*applied.borrow_and_update(), 3);
        assert_eq!(reader.last_applied_index(), 3);
        assert!(reader.wait_applied(3).await);
        assert!(reader.read(|s| s.tenants.contains_key(&tenant("acme"))));

        let snapshot = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build snapshot");
        assert_eq!(snapshot.meta.last_log_id, Some(lid(1, 3)));
        snapshot_meta = snapshot.meta;

        // Applied after the snapshot: the state lives on disk, so it is
        // kept if its commit became durable, and otherwise openraft applies
        // it again from the log; either way state and applied id agree.
        sm.apply(vec![create_tenant(1, 4, "globex")])
            .await
            .expect("apply");
    }

    let (_log, mut sm) = open(dir.path()).await.expect("reopen");
    let (applied, membership) = sm.applied_state().await.expect("applied state");
    assert!(
        applied == Some(lid(1, 3)) || applied == Some(lid(1, 4)),
        "{applied:?}"
    );
    assert_eq!(membership.log_id(), &Some(lid(1, 1)));
    let reader = sm.reader();
    let index = reader.last_applied_index();
    assert_eq!(*reader.subscribe().borrow(), index);
    assert!(reader.read(|s| s.tenants.contains_key(&tenant("acme"))));
    assert_eq!(
        reader.read(|s| s.tenants.contains_key(&tenant("globex"))),
        index == 4
    );
    let current = sm
        .get_current_snapshot()
        .await
        .expect("read snapshot")
        .expect("a snapshot is persisted");
    assert_eq!(current.meta, snapshot_meta);
}

#[tokio::test(flavor = "multi_thread")]
async fn install_snapshot_replaces_state_and_persists() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let (_l, mut leader) = open(leader_dir.path()).await.expect("open");
    leader
        .apply(vec![membership(1, 1), create_tenant(1, 2, "acme")])
        .await
        .expect("apply");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");

    {
        let (_f, mut follower) = open(follower_dir.path()).await.expect("open");
        follower
            .apply(vec![create_tenant(1, 1, "stale")])
            .await
            .expect("apply");
        let reader = follower.reader();
        let received = receive(&mut follower, snapshot.snapshot, |_| {}).await;
        follower
            .install_snapshot(&snapshot.meta, received)
            .await
            .expect("install");
        assert_eq!(reader.last_applied_index(), 2);
        assert!(reader.read(|s| s.tenants.contains_key(&tenant("acme"))));
        assert!(!reader.read(|s| s.tenants.contains_key(&tenant("stale"))));
    }
    let (_f, mut follower) = open(follower_dir.path()).await.expect("reopen");
    assert_eq!(
        follower.applied_state().await.expect("applied").0,
        Some(lid(1, 2))
    );
    assert!(follower
        .reader()
        .read(|s| s.tenants.contains_key(&tenant("acme"))));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_snapshot_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_l, mut sm) = open(dir.path()).await.expect("open");
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    let received = receive(&mut sm, snapshot.snapshot, |data| {
        assert_eq!(&data[..16], b"stratus-snapshot");
        data[16] += 1;
    })
    .await;
    let err = sm
        .install_snapshot(&snapshot.meta, received)
        .await
        .expect_err("unknown version refused");
    let msg = err.to_string();
    assert!(msg.contains("state format"), "{msg}");
}

/// Copies a snapshot into a file `to` receives it in (as openraft does with
/// the chunks it is sent), after `alter` had its way with the bytes.
async fn receive(
    to: &mut StateMachineStore,
    mut from: Box<tokio::fs::File>,
    alter: impl FnOnce(&mut Vec<u8>),
) -> Box<tokio::fs::File> {
    let mut data = Vec::new();
    from.read_to_end(&mut data).await.expect("read snapshot");
    alter(&mut data);
    let mut file = to.begin_receiving_snapshot().await.expect("receive");
    file.write_all(&data).await.expect("write");
    file.flush().await.expect("flush");
    file
}
