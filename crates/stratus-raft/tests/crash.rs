//! kill -9 of a replica's storage while it applies entries and while it
//! installs a snapshot, then restart: no committed entry is lost, and an
//! interrupted install leaves the previous state whole.
//!
//! The test binary runs itself as the child (`crash_child`, ignored unless
//! `STRATUS_CRASH_MODE` is set) and SIGKILLs it at a random moment.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};
use stratus_raft::store::{self, LogStore, StateMachineStore};
use stratus_state::objects::StoreCommand;
use stratus_state::{synth, Command, TypeConfig};
use stratus_types::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PER_BATCH: u64 = 400;

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, NodeId([1; 32])), index),
        payload: EntryPayload::Normal(cmd),
    }
}

/// The entries, from index 1, that create bucket `bkt` holding `objects`
/// objects (in packs of up to 1000).
fn fresh_bucket(objects: u64) -> Vec<Entry<TypeConfig>> {
    let mut cmds = synth::setup("t", "bkt");
    for from in (0..objects).step_by(1000) {
        cmds.extend(synth::small_objects(
            "t",
            "bkt",
            from,
            1000.min(objects - from),
        ));
    }
    cmds.into_iter()
        .enumerate()
        .map(|(i, c)| entry(i as u64 + 1, c))
        .collect()
}

/// What openraft does at start: apply the log after the applied id.
async fn recover(log: &mut LogStore, sm: &mut StateMachineStore) -> u64 {
    let applied = sm
        .applied_state()
        .await
        .expect("applied")
        .0
        .map_or(0, |l| l.index);
    let last = log
        .get_log_state()
        .await
        .expect("log state")
        .last_log_id
        .map_or(0, |l| l.index);
    if last > applied {
        let entries = log
            .try_get_log_entries(applied + 1..last + 1)
            .await
            .expect("read log");
        sm.apply(entries).await.expect("re-apply");
    }
    last
}

/// Objects stored by the entries `1..=last` of the log.
async fn objects_in_log(log: &mut LogStore, last: u64) -> u64 {
    let entries = log.try_get_log_entries(1..last + 1).await.expect("read");
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.payload,
                EntryPayload::Normal(Command::Store(StoreCommand::PutObject { .. }))
            )
        })
        .count() as u64
}

fn spawn(mode: &str, dir: &Path) -> Child {
    Proc::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STRATUS_CRASH_MODE", mode)
        .env("STRATUS_CRASH_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child")
}

/// Reads the child's lines until `until` says stop; returns the last number
/// printed after `logged`. (The test harness may print `test crash_child ...`
/// on the line of the child's first words: lines are matched by their end.)
fn watch(child: &mut Child, mut until: impl FnMut(&str) -> bool) -> u64 {
    let out = child.stdout.take().expect("stdout");
    let mut logged = 0;
    for line in BufReader::new(out).lines() {
        let line = line.expect("line");
        if let Some((_, n)) = line.rsplit_once("logged ") {
            logged = n.trim().parse().expect("number");
        }
        if until(&line) {
            break;
        }
    }
    logged
}

fn kill(mut child: Child, after: Duration) {
    std::thread::sleep(after);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_apply_loses_no_committed_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut durable = 0;
    for round in 0..4u64 {
        let mut child = spawn("apply", dir.path());
        let mut batches = 0;
        let logged = watch(&mut child, |l| {
            batches += u64::from(l.contains("logged "));
            batches >= 2 + round
        });
        durable = durable.max(logged);
        // Killed right after a batch was logged: mostly while it applies.
        kill(child, Duration::from_millis(round * 7 % 20));
    }
    let (mut log, mut sm) = store::open(dir.path()).await.expect("open");
    let last = recover(&mut log, &mut sm).await;
    assert!(last >= durable, "the log lost entries: {last} < {durable}");
    let objects = objects_in_log(&mut log, last).await;
    let reader = sm.reader();
    assert_eq!(reader.last_applied_index(), last);
    let (versions, missing) = reader.read(|s| {
        let missing = (0..objects)
            .filter(|i| s.store.latest("bkt", &synth::key(*i)).is_none())
            .count();
        (s.store.counts.versions, missing)
    });
    assert_eq!(missing, 0, "every committed object is there");
    assert_eq!(versions, objects, "and nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_snapshot_install_leaves_the_state_whole() {
    let root = tempfile::tempdir().expect("tempdir");
    // The snapshot to install: 20 000 objects.
    let src = root.path().join("src");
    let big = 20_000;
    {
        let (_log, mut sm) = store::open(&src).await.expect("open");
        sm.apply(fresh_bucket(big)).await.expect("apply");
        let mut snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        let mut bytes = Vec::new();
        snap.snapshot.read_to_end(&mut bytes).await.expect("read");
        std::fs::write(root.path().join("snap.bin"), bytes).expect("write");
        std::fs::write(
            root.path().join("meta.json"),
            serde_json::to_vec(&snap.meta).expect("meta"),
        )
        .expect("write");
    }
    // Kill moments spread over an install (~0.1-0.3 s in a debug build).
    for round in 0..7u64 {
        // The target: a replica holding 300 objects.
        let target = root.path().join(format!("target-{round}"));
        {
            let (_log, mut sm) = store::open(&target).await.expect("open");
            sm.apply(fresh_bucket(300)).await.expect("apply");
        }
        let mut child = spawn("install", &target);
        watch(&mut child, |l| l.ends_with("installing"));
        kill(child, Duration::from_millis(round * 50));
        let (_log, mut sm) = store::open(&target).await.expect("reopen");
        let applied = sm
            .applied_state()
            .await
            .expect("applied")
            .0
            .map_or(0, |l| l.index);
        let versions = sm.reader().read(|s| s.store.counts.versions);
        let listed = sm
            .reader()
            .read(|s| s.store.list_keys("bkt", "", None, usize::MAX).0.len() as u64);
        assert_eq!(versions, listed, "counters and tables agree");
        eprintln!(
            "round {round}: killed after {} ms: {versions} versions",
            round * 50
        );
        match versions {
            300 => assert_eq!(
                applied, 304,
                "the old state, whole (3 setup entries, a pack, 300 puts)"
            ),
            v if v == big => assert!(applied > 304, "the new state, whole"),
            v => panic!("a partial state of {v} versions after a killed install"),
        }
    }
}

/// The child of the tests above (does nothing unless run by them).
#[test]
#[ignore]
fn crash_child() {
    let Ok(mode) = std::env::var("STRATUS_CRASH_MODE") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("STRATUS_CRASH_DIR").expect("dir"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let (mut log, mut sm) = store::open(&dir).await.expect("open");
        match mode.as_str() {
            "apply" => {
                let mut last = recover(&mut log, &mut sm).await;
                if last == 0 {
                    let entries = fresh_bucket(0);
                    last = entries.len() as u64;
                    log.blocking_append(entries.clone()).await.expect("append");
                    sm.apply(entries).await.expect("apply");
                }
                let mut objects = objects_in_log(&mut log, last).await;
                loop {
                    let entries: Vec<_> = synth::small_objects("t", "bkt", objects, PER_BATCH)
                        .into_iter()
                        .map(|c| {
                            last += 1;
                            entry(last, c)
                        })
                        .collect();
                    objects += PER_BATCH;
                    log.blocking_append(entries.clone()).await.expect("append");
                    println!("logged {last}");
                    sm.apply(entries).await.expect("apply");
                    println!("applied {last}");
                }
            }
            "install" => {
                let root = dir.parent().expect("root");
                let bytes = std::fs::read(root.join("snap.bin")).expect("snapshot");
                let meta =
                    serde_json::from_slice(&std::fs::read(root.join("meta.json")).expect("meta"))
                        .expect("meta");
                let mut file = sm.begin_receiving_snapshot().await.expect("receive");
                file.write_all(&bytes).await.expect("write");
                file.flush().await.expect("flush");
                println!("installing");
                sm.install_snapshot(&meta, file).await.expect("install");
                println!("installed");
                std::thread::sleep(Duration::from_secs(60));
            }
            other => panic!("unknown mode {other}"),
        }
    });
}
