//! Retention with explicit leader times: finished work and abandoned uploads
//! go after their periods, and nothing that is still in use does.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::objects::{
    Bucket, DedupeScope, ErasureProfile, KeyScope, ManifestChunk, NewChunk, ObjectData, Part,
    StoreCommand, Upload, Versioning,
};
use crate::workloads::module_hash;
use crate::{Command, CommandResult, Instance, InstanceState};
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::NodeId;

pub(crate) const T: &str = "acme";
const HOUR: u64 = 3600 * 1000;
pub(crate) const NODE: NodeId = NodeId([7; 32]);

fn ok(r: CommandResult) -> CommandResult {
    assert!(r.error.is_none(), "{r:?}");
    r
}

pub(crate) fn setup() -> (State, String) {
    let mut s = State::default();
    ok(s.apply(
        1,
        &Command::CreateTenant {
            name: T.into(),
            now_ms: 0,
        },
    ));
    let bytes = b"a module".to_vec();
    let hash = module_hash(&bytes);
    ok(s.apply(
        2,
        &Command::PutTenantModule {
            tenant: T.into(),
            bytes,
            now_ms: 0,
        },
    ));
    (s, hash)
}

fn instance(id: &str, workload: &str, now_ms: u64) -> Instance {
    Instance::pending(
        id.into(),
        workload.parse().expect("a workload id"),
        NODE,
        1,
        0,
        now_ms,
    )
}

pub(crate) fn deploy(s: &mut State, name: &str, kind: &str, module: &str, now_ms: u64) -> String {
    let spec = stratus_spec::parse(
        &format!("version: 1\nname: {name}\nkind: {kind}\ncount: 1\nwasm: {{ module: m.wat }}\n"),
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    ok(s.apply(
        3,
        &Command::DeployWorkload {
            tenant: T.into(),
            spec: Box::new(spec),
            module: module.into(),
            now_ms,
        },
    ));
    let id = format!("{T}/{name}");
    ok(s.apply(
        4,
        &Command::PlaceInstances {
            instances: vec![instance(&format!("{name}-i"), &id, now_ms)],
        },
    ));
    id
}

fn report(s: &mut State, instance: &str, state: InstanceState, now_ms: u64) {
    ok(s.apply(
        5,
        &Command::ReportInstance {
            id: instance.into(),
            node: NODE,
            state,
            restarts: 0,
            exit_code: Some(0),
            kind: "exited".into(),
            message: String::new(),
            now_ms,
        },
    ));
}

fn prune(s: &mut State, now_ms: u64) -> u64 {
    ok(s.apply(
        9,
        &Command::Prune {
            now_ms,
            tasks_ms: 24 * HOUR,
            uploads_ms: 7 * 24 * HOUR,
        },
    ))
    .version
    .unwrap()
}

#[test]
fn finished_tasks_go_after_the_retention_period_and_nothing_else_does() {
    let (mut s, m) = setup();
    let task = deploy(&mut s, "job", "task", &m, 0);
    let svc = deploy(&mut s, "web", "service", &m, 0);
    report(&mut s, "web-i", InstanceState::Running, HOUR);
    // A task still running is kept, however old.
    report(&mut s, "job-i", InstanceState::Running, HOUR);
    assert_eq!(prune(&mut s, 100 * HOUR), 0);
    report(&mut s, "job-i", InstanceState::Completed, 200 * HOUR);
    assert_eq!(prune(&mut s, 200 * HOUR + 24 * HOUR - 1), 0, "too early");
    assert!(s.workloads.contains_key(&task));
    assert_eq!(prune(&mut s, 224 * HOUR), 1);
    assert!(!s.workloads.contains_key(&task));
    assert!(
        !s.instances.contains_key("job-i"),
        "its instances go with it"
    );
    // The running service, its instance and the module it uses stay.
    assert!(s.workloads.contains_key(&svc) && s.instances.contains_key("web-i"));
    assert!(s.modules.contains_key(&m));
    assert_eq!(s.prunable(1000 * HOUR, 24 * HOUR, 1), Default::default());

    // A stopped service goes once its instance has stopped and the period passed.
    ok(s.apply(
        6,
        &Command::StopWorkload {
            id: svc.clone(),
            now_ms: 300 * HOUR,
        },
    ));
    report(&mut s, "web-i", InstanceState::Stopped, 301 * HOUR);
    assert_eq!(prune(&mut s, 324 * HOUR), 0, "counted from the last change");
    // The workload and then the unused module claim (both old) go.
    assert_eq!(prune(&mut s, 325 * HOUR), 2);
    assert!(s.workloads.is_empty() && s.instances.is_empty());
    assert!(s.modules.is_empty(), "an unused module is forgotten");
    assert!(s.quotas.modules.is_empty());
}

#[test]
fn a_recent_module_upload_is_kept_for_the_deploy_that_follows() {
    let (mut s, m) = setup();
    assert_eq!(prune(&mut s, HOUR), 0);
    assert!(s.modules.contains_key(&m));
    assert_eq!(prune(&mut s, 24 * HOUR), 1);
    assert!(!s.modules.contains_key(&m));
}

#[test]
fn an_abandoned_multipart_upload_expires_and_its_data_becomes_garbage() {
    let (mut s, _) = setup();
    ok(s.apply(
        2,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "bkt".into(),
                tenant: T.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Unversioned,
                created_ms: 0,
            },
        }),
    ));
    let chunk = ChunkId([3; 32]);
    ok(s.apply(
        3,
        &Command::Store(StoreCommand::CommitPack {
            profile: ErasureProfile { k: 1, m: 1 },
            data_len: 10,
            piece_len: 10,
            pieces: vec![
                (PieceId([1; 32]), NodeId([1; 32])),
                (PieceId([2; 32]), NodeId([2; 32])),
            ],
            chunks: vec![NewChunk {
                id: chunk,
                offset: 0,
                sealed_len: 10,
                plain_len: 10,
            }],
            now_ms: 0,
        }),
    ));
    let upload = ok(s.apply(
        4,
        &Command::Store(StoreCommand::CreateUpload {
            upload: Upload {
                id: String::new(),
                tenant: T.into(),
                bucket: "bkt".into(),
                key: "big".into(),
                content_type: None,
                user_meta: BTreeMap::new(),
                parts: BTreeMap::new(),
                created_ms: HOUR,
            },
        }),
    ))
    .id
    .unwrap();
    ok(s.apply(
        5,
        &Command::Store(StoreCommand::PutPart {
            tenant: T.into(),
            upload: upload.clone(),
            number: 1,
            part: Part {
                size: 10,
                md5: "00".into(),
                data: ObjectData {
                    scope: KeyScope::Tenant(T.into()),
                    chunks: vec![ManifestChunk { id: chunk, len: 10 }],
                },
                created_ms: HOUR,
            },
        }),
    ));
    assert_eq!(s.store.usage_of(T).bytes, 10);
    // Garbage collection keeps data an open upload references.
    let gc = |s: &mut State, now_ms| {
        ok(s.apply(
            6,
            &Command::Store(StoreCommand::CollectGarbage {
                now_ms,
                grace_ms: 0,
            }),
        ))
    };
    gc(&mut s, 2 * HOUR);
    assert!(s.store.chunk(&chunk).is_some());
    // Open for less than 7 days: kept.
    prune(&mut s, HOUR + 7 * 24 * HOUR - 1);
    assert!(s.store.uploads.contains_key(&upload));
    prune(&mut s, HOUR + 7 * 24 * HOUR);
    assert!(!s.store.uploads.contains_key(&upload), "expired");
    assert_eq!(s.store.usage_of(T).bytes, 0, "its parts no longer count");
    gc(&mut s, 200 * 24 * HOUR);
    assert!(s.store.chunk(&chunk).is_none(), "its chunk is collected");
    assert!(s.store.packs().is_empty(), "its pack is dropped");
    let queued: usize = s.store.deletions.values().map(|d| d.len()).sum();
    assert_eq!(
        queued, 2,
        "its pieces are queued for deletion on their nodes"
    );
}

/// A service that keeps being replaced (a crash loop, lost nodes) does not
/// grow the state for ever: its ended instances go after the period while it
/// runs on, and the count of instances ever placed survives them, so new
/// instance ids never repeat.
#[test]
fn ended_instances_of_a_running_service_go_after_the_period() {
    let (mut s, m) = setup();
    let svc = deploy(&mut s, "web", "service", &m, 0);
    for n in 0..50u64 {
        let id = format!("web-{n}");
        ok(s.apply(
            10,
            &Command::PlaceInstances {
                instances: vec![instance(&id, &svc, n * HOUR)],
            },
        ));
        report(
            &mut s,
            &id,
            InstanceState::Failed {
                code: 1,
                reason: "exited".into(),
            },
            n * HOUR,
        );
    }
    report(&mut s, "web-i", InstanceState::Running, 60 * HOUR);
    assert_eq!(s.workloads[&svc].instances_created, 51);
    // At 73 h: the failures of hours 0..=49 ended at least 24 h ago.
    assert_eq!(prune(&mut s, 73 * HOUR), 50);
    assert_eq!(s.instances.len(), 1, "only the running one is left");
    assert!(s.instances.contains_key("web-i"));
    assert!(s.workloads.contains_key(&svc), "the service runs on");
    assert_eq!(s.workloads[&svc].instances_created, 51);
    // A task's ended tries stay until the task itself goes.
    let job = deploy(&mut s, "job", "task", &m, 80 * HOUR);
    report(
        &mut s,
        "job-i",
        InstanceState::Failed {
            code: 1,
            reason: "exited".into(),
        },
        80 * HOUR,
    );
    ok(s.apply(
        11,
        &Command::PlaceInstances {
            instances: vec![instance("job-2", &job, 81 * HOUR)],
        },
    ));
    report(&mut s, "job-2", InstanceState::Running, 81 * HOUR);
    assert_eq!(prune(&mut s, 200 * HOUR), 0);
    assert!(s.instances.contains_key("job-i"));
}
