//! Quotas play the attacker: a tenant growing each resource past its limit
//! is refused (and another tenant is not), the stored-bytes counter stays
//! equal to the objects it counts whatever happens, and two replicas racing
//! writes cannot take a tenant past its limit.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::objects::{
    Bucket, DedupeScope, ErasureProfile, KeyScope, ManifestChunk, NewChunk, ObjectData,
    ObjectVersion, Part, Upload,
};
use crate::CommandResult;
use proptest::prelude::*;
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::ErrorCode;
use stratus_types::{NodeId, TokenRecord, TokenScope};

const A: &str = "acme";
const B: &str = "beta";

fn ok(r: CommandResult) -> CommandResult {
    assert!(r.error.is_none(), "{r:?}");
    r
}

fn refused(r: CommandResult, what: &str) -> String {
    let e = r.error.unwrap_or_else(|| panic!("{what}: not refused"));
    assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{what}: {e:?}");
    assert_eq!(ErrorCode::QuotaExceeded.http_status(), 403);
    e.message().to_owned()
}

fn store(c: StoreCommand) -> Command {
    Command::Store(c)
}

/// A state with tenants `acme` and `beta` and one pack holding chunks 0..8
/// (chunk `i` is `100 * (i + 1)` bytes).
fn base() -> State {
    let mut s = State::default();
    for t in [A, B] {
        ok(s.apply(
            1,
            &Command::CreateTenant {
                name: t.into(),
                now_ms: 0,
            },
        ));
    }
    ok(s.apply(
        2,
        &store(StoreCommand::CommitPack {
            profile: ErasureProfile { k: 1, m: 0 },
            data_len: 1 << 20,
            piece_len: 1 << 20,
            pieces: vec![(PieceId([1; 32]), NodeId([1; 32]))],
            chunks: (0..8u8)
                .map(|i| NewChunk {
                    id: ChunkId([i; 32]),
                    offset: 0,
                    sealed_len: 10,
                    plain_len: chunk_len(i),
                })
                .collect(),
            now_ms: 0,
        }),
    ));
    s
}

fn chunk_len(i: u8) -> u32 {
    100 * (u32::from(i) + 1)
}

fn bucket(tenant: &str, name: &str, versioning: Versioning) -> Command {
    store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: name.into(),
            tenant: tenant.into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning,
            created_ms: 0,
        },
    })
}

fn data(tenant: &str, ids: &[u8]) -> ObjectData {
    ObjectData {
        scope: KeyScope::Tenant(tenant.into()),
        chunks: ids
            .iter()
            .map(|i| ManifestChunk {
                id: ChunkId([*i; 32]),
                len: chunk_len(*i),
            })
            .collect(),
    }
}

fn size(ids: &[u8]) -> u64 {
    ids.iter().map(|i| u64::from(chunk_len(*i))).sum()
}

fn put(tenant: &str, bucket: &str, key: &str, ids: &[u8]) -> Command {
    store(StoreCommand::PutObject {
        tenant: tenant.into(),
        bucket: bucket.into(),
        key: key.into(),
        version: ObjectVersion {
            version_id: String::new(),
            size: size(ids),
            etag: "e".into(),
            blake3: String::new(),
            created_ms: 0,
            content_type: None,
            user_meta: BTreeMap::new(),
            data: Some(data(tenant, ids)),
        },
    })
}

fn limit(tenant: &str, r: Resource, n: u64) -> Command {
    Command::SetQuota {
        tenant: tenant.into(),
        changes: [(r, Some(n))].into(),
    }
}

/// What the counters should say, counted from the objects themselves.
fn recount(s: &State, tenant: &str) -> StoreUsage {
    let mut u = StoreUsage::default();
    for b in s.store.buckets.values().filter(|b| b.tenant == tenant) {
        let (keys, _) = s.store.list_keys(&b.name, "", None, usize::MAX);
        for v in keys.iter().flat_map(|(_, vs)| vs) {
            u.objects += 1;
            if !v.is_delete_marker() {
                u.bytes += v.size;
            }
        }
    }
    for up in s.store.uploads.values().filter(|u| u.tenant == tenant) {
        for p in up.parts.values() {
            u.objects += 1;
            u.bytes += p.size;
        }
    }
    u
}

fn task_spec(name: &str, count: u32) -> Box<stratus_spec::WorkloadSpec> {
    Box::new(
        stratus_spec::parse(
            &format!(
                "version: 1\nname: {name}\nkind: task\ncount: {count}\nwasm: {{ module: m.wat }}\n"
            ),
            stratus_spec::Format::Yaml,
        )
        .unwrap(),
    )
}

fn module_of(s: &mut State, tenant: &str, bytes: &[u8]) -> (CommandResult, String) {
    let r = s.apply(
        3,
        &Command::PutTenantModule {
            tenant: tenant.into(),
            bytes: bytes.to_vec(),
            now_ms: 0,
        },
    );
    (r, module_hash(bytes))
}

fn deploy(tenant: &str, name: &str, count: u32, module: &str) -> Command {
    Command::DeployWorkload {
        tenant: tenant.into(),
        spec: task_spec(name, count),
        module: module.into(),
        now_ms: 0,
    }
}

#[test]
fn stored_bytes_quota_refuses_and_names_limit_and_use() {
    let mut s = base();
    ok(s.apply(3, &bucket(A, "a-bkt", Versioning::Unversioned)));
    ok(s.apply(3, &bucket(B, "b-bkt", Versioning::Unversioned)));
    ok(s.apply(4, &limit(A, Resource::StoredBytes, 1000)));
    ok(s.apply(5, &put(A, "a-bkt", "k1", &[0, 1, 2]))); // 600 bytes
    let msg = refused(
        s.apply(6, &put(A, "a-bkt", "k2", &[4])),
        "over stored bytes",
    );
    ok(s.apply(6, &put(A, "a-bkt", "k2", &[3]))); // exactly at the limit
    ok(s.apply(6, &put(A, "a-bkt", "k2", &[0]))); // shrink it again
    assert!(msg.contains("stored-bytes"), "{msg}");
    assert!(msg.contains("1000 bytes"), "{msg}");
    assert!(msg.contains("600 bytes"), "{msg}");
    // Overwriting the same key only counts the difference.
    ok(s.apply(7, &put(A, "a-bkt", "k1", &[5]))); // 600 bytes replaces 600
    assert_eq!(s.store.usage_of(A).bytes, 700);
    // The other tenant is not affected.
    ok(s.apply(8, &put(B, "b-bkt", "k", &[7, 7, 7])));
    assert_eq!(s.store.usage_of(B).bytes, 2400);
}

#[test]
fn every_count_quota_refuses_past_its_limit() {
    let mut s = base();
    for r in Resource::ALL {
        let n = if r.is_bytes() { 1 << 20 } else { 1 };
        ok(s.apply(3, &limit(A, r, n)));
    }
    // Buckets.
    ok(s.apply(4, &bucket(A, "a-one", Versioning::Enabled)));
    refused(
        s.apply(5, &bucket(A, "a-two", Versioning::Enabled)),
        "buckets",
    );
    ok(s.apply(5, &bucket(B, "b-two", Versioning::Enabled)));
    // Objects (versions).
    ok(s.apply(6, &put(A, "a-one", "k", &[0])));
    refused(s.apply(7, &put(A, "a-one", "k", &[0])), "objects");
    // Uploads.
    let upload = |t: &str, b: &str| {
        store(StoreCommand::CreateUpload {
            upload: Upload {
                id: String::new(),
                tenant: t.into(),
                bucket: b.into(),
                key: "mp".into(),
                content_type: None,
                user_meta: BTreeMap::new(),
                parts: BTreeMap::new(),
                created_ms: 0,
            },
        })
    };
    ok(s.apply(8, &upload(A, "a-one")));
    refused(s.apply(9, &upload(A, "a-one")), "uploads");
    ok(s.apply(9, &upload(B, "b-two")));
    // Vars: a second key is refused, rewriting the first is not.
    let var = |t: &str, k: &str| Command::PutVar {
        tenant: t.into(),
        key: k.into(),
        value: "v".into(),
        now_ms: 0,
    };
    ok(s.apply(10, &var(A, "a")));
    ok(s.apply(11, &var(A, "a")));
    refused(s.apply(12, &var(A, "b")), "vars");
    ok(s.apply(12, &var(B, "b")));
    // Tokens.
    let token = |t: &str, id: &str| Command::IssueToken {
        record: TokenRecord {
            id: id.into(),
            tenant: t.into(),
            secret_sha256: "00".into(),
            created_ms: 0,
            scope: TokenScope::Full,
            expires_ms: None,
        },
    };
    ok(s.apply(13, &token(A, "t1")));
    refused(s.apply(14, &token(A, "t2")), "tokens");
    ok(s.apply(14, &token(B, "t3")));
    // Access keys.
    let key = |t: &str, id: &str| {
        store(StoreCommand::CreateAccessKey {
            access_key: id.into(),
            secret: crate::sealing::Kek::from_bytes([7; 32])
                .seal(&crate::sealing::s3_secret_label(id), b"0123456789abcdef")
                .unwrap(),
            tenant: t.into(),
            created_ms: 0,
        })
    };
    ok(s.apply(15, &key(A, "K1")));
    refused(s.apply(16, &key(A, "K2")), "access keys");
    ok(s.apply(16, &key(B, "K3")));
    // Modules (count), then workloads and instances.
    let (r, m1) = module_of(&mut s, A, b"module one");
    ok(r);
    let (r, _) = module_of(&mut s, A, b"module two");
    refused(r, "modules");
    let (r, m2) = module_of(&mut s, B, b"module two");
    ok(r);
    ok(s.apply(17, &deploy(A, "w1", 1, &m1)));
    let msg = refused(s.apply(18, &deploy(A, "w1", 2, &m1)), "instances");
    assert!(msg.contains("instances"), "{msg}");
    refused(s.apply(18, &deploy(A, "w2", 1, &m1)), "workloads");
    // A deploy inside any wrapper counts the same.
    let boxed = || Box::new(deploy(A, "w2", 1, &m1));
    for wrapped in [
        Command::DeployNetworked {
            deploy: boxed(),
            network: Default::default(),
        },
        Command::DeployUsing {
            deploy: boxed(),
            uses: Default::default(),
        },
        Command::DeployTrusted {
            deploy: boxed(),
            trust: 2,
        },
    ] {
        refused(s.apply(18, &wrapped), "workloads");
    }
    ok(s.apply(19, &deploy(B, "w2", 5, &m2)));
}

#[test]
fn module_bytes_quota_counts_bytes_and_a_reupload_is_free() {
    let mut s = base();
    ok(s.apply(3, &limit(A, Resource::ModuleBytes, 20)));
    ok(module_of(&mut s, A, &[1; 15]).0);
    ok(module_of(&mut s, A, &[1; 15]).0);
    let msg = refused(module_of(&mut s, A, &[2; 15]).0, "module bytes");
    assert!(
        msg.contains("module-bytes") && msg.contains("15 bytes"),
        "{msg}"
    );
    assert_eq!(s.quota_used(A, Resource::ModuleBytes), 15);
}

#[test]
fn admin_is_unlimited_by_default_and_limits_can_be_reset() {
    let mut s = base();
    assert_eq!(s.quota_limit("admin", Resource::StoredBytes), u64::MAX);
    assert_eq!(
        s.quota_limit(A, Resource::StoredBytes),
        Resource::StoredBytes.default_limit()
    );
    ok(s.apply(3, &limit(A, Resource::Workloads, 7)));
    let line = s
        .quota_report(A)
        .into_iter()
        .find(|l| l.resource == Resource::Workloads)
        .unwrap();
    assert_eq!((line.limit, line.default), (7, false));
    ok(s.apply(
        4,
        &Command::SetQuota {
            tenant: A.into(),
            changes: [(Resource::Workloads, None)].into(),
        },
    ));
    assert_eq!(
        s.quota_limit(A, Resource::Workloads),
        Resource::Workloads.default_limit()
    );
    assert!(s.quotas.limits.is_empty());
    let r = s.apply(5, &limit("nobody", Resource::Workloads, 1));
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::NotFound));
}

/// Operations of the accounting property test.
#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8, Vec<u8>),
    Copy(u8, u8, u8, u8),
    Delete(u8, u8, Option<usize>),
    CreateUpload(u8),
    Part(u32, Vec<u8>),
    Complete(Vec<u32>),
    Abort,
    Expire(u64),
    Versioning(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let ids = prop::collection::vec(0u8..8, 0..4);
    prop_oneof![
        4 => (0u8..3, 0u8..3, ids.clone()).prop_map(|(b, k, c)| Op::Put(b, k, c)),
        1 => (0u8..3, 0u8..3, 0u8..3, 0u8..3).prop_map(|(a, b, c, d)| Op::Copy(a, b, c, d)),
        2 => (0u8..3, 0u8..3, prop::option::of(0usize..3)).prop_map(|(b, k, v)| Op::Delete(b, k, v)),
        1 => (0u8..3).prop_map(Op::CreateUpload),
        2 => (1u32..4, ids).prop_map(|(n, c)| Op::Part(n, c)),
        1 => prop::collection::vec(1u32..4, 0..3).prop_map(Op::Complete),
        1 => Just(Op::Abort),
        1 => (0u64..40).prop_map(Op::Expire),
        1 => (0u8..3, any::<bool>()).prop_map(|(b, e)| Op::Versioning(b, e)),
    ]
}

const BUCKETS: [(&str, Versioning); 3] = [
    ("plain", Versioning::Unversioned),
    ("versioned", Versioning::Enabled),
    ("suspended", Versioning::Suspended),
];

proptest! {
    /// Whatever a tenant does (overwrite, delete, versions, markers,
    /// multipart, copy, expiry), its counters equal the sum of what it
    /// stores, and never pass its limits.
    #[test]
    fn stored_bytes_counter_equals_the_objects(ops in prop::collection::vec(op(), 1..50)) {
        let mut s = base();
        for (name, v) in BUCKETS {
            ok(s.apply(3, &bucket(A, name, v)));
        }
        ok(s.apply(3, &limit(A, Resource::StoredBytes, 4000)));
        ok(s.apply(3, &limit(A, Resource::Objects, 12)));
        for (i, op) in ops.into_iter().enumerate() {
            let idx = 10 + i as u64;
            let b = |n: u8| BUCKETS[usize::from(n)].0;
            let first_upload = s.store.uploads.keys().next().cloned().unwrap_or_default();
            let cmd = match op {
                Op::Put(bk, k, ids) => put(A, b(bk), &format!("k{k}"), &ids),
                Op::Copy(fb, fk, tb, tk) => match s.store.version(b(fb), &format!("k{fk}"), None) {
                    Ok(v) => store(StoreCommand::PutObject {
                        tenant: A.into(), bucket: b(tb).into(), key: format!("k{tk}"), version: v.clone(),
                    }),
                    Err(_) => continue,
                },
                Op::Delete(bk, k, v) => {
                    let key = format!("k{k}");
                    let version_id = v.and_then(|v| {
                        s.store.versions(b(bk), &key).get(v).map(|x| x.version_id.clone())
                    });
                    store(StoreCommand::DeleteObject { tenant: A.into(), bucket: b(bk).into(), key, version_id, now_ms: idx })
                }
                Op::CreateUpload(bk) => store(StoreCommand::CreateUpload { upload: Upload {
                    id: String::new(), tenant: A.into(), bucket: b(bk).into(), key: "mp".into(),
                    content_type: None, user_meta: BTreeMap::new(), parts: BTreeMap::new(), created_ms: idx,
                } }),
                Op::Part(n, ids) => store(StoreCommand::PutPart {
                    tenant: A.into(), upload: first_upload, number: n,
                    part: Part { size: size(&ids), md5: "00".into(), data: data(A, &ids), created_ms: idx },
                }),
                Op::Complete(mut ns) => {
                    ns.sort_unstable();
                    ns.dedup();
                    store(StoreCommand::CompleteUpload {
                        tenant: A.into(), upload: first_upload, parts: ns.into_iter().map(|n| (n, "00".into())).collect(), now_ms: idx,
                    })
                }
                Op::Abort => store(StoreCommand::AbortUpload { tenant: A.into(), upload: first_upload }),
                Op::Expire(age) => Command::Prune { now_ms: idx, tasks_ms: u64::MAX, uploads_ms: age },
                Op::Versioning(bk, on) => store(StoreCommand::SetVersioning {
                    tenant: A.into(), name: b(bk).into(),
                    versioning: if on { Versioning::Enabled } else { Versioning::Suspended },
                }),
            };
            s.apply(idx, &cmd);
            let u = s.store.usage_of(A);
            prop_assert_eq!(u, recount(&s, A), "after {:?}", cmd);
            prop_assert!(u.bytes <= 4000, "{} bytes stored past the limit", u.bytes);
            prop_assert!(u.objects <= 12, "{} objects stored past the limit", u.objects);
        }
    }

    /// Two replicas each accept writes they believe fit (each checks its own
    /// view, as an API node would) and propose them; however the log
    /// interleaves them, every replica applies the same result and the
    /// tenant never passes its limit.
    #[test]
    fn racing_writes_through_two_replicas_cannot_exceed(
        a in prop::collection::vec((0u8..4, prop::collection::vec(0u8..8, 1..3)), 1..8),
        b in prop::collection::vec((0u8..4, prop::collection::vec(0u8..8, 1..3)), 1..8),
        order in prop::collection::vec(any::<bool>(), 16),
    ) {
        let mut s = base();
        ok(s.apply(3, &bucket(A, "race", Versioning::Enabled)));
        ok(s.apply(3, &limit(A, Resource::StoredBytes, 3000)));
        ok(s.apply(3, &limit(A, Resource::Objects, 6)));
        // Each replica's proposals pass its own (stale) pre-check.
        let propose = |writes: &[(u8, Vec<u8>)]| -> Vec<Command> {
            let mut view = s.fork();
            writes.iter().filter_map(|(k, ids)| {
                let c = put(A, "race", &format!("k{k}"), ids);
                view.check_quota(&c).ok()?;
                view.apply(1, &c);
                Some(c)
            }).collect()
        };
        let (mut pa, mut pb) = (propose(&a).into_iter(), propose(&b).into_iter());
        let mut log = Vec::new();
        for first in order.iter().chain(std::iter::repeat(&true)) {
            let next = if *first { pa.next().or_else(|| pb.next()) } else { pb.next().or_else(|| pa.next()) };
            match next { Some(c) => log.push(c), None => break }
        }
        let mut r1 = s.fork();
        let mut r2 = s.fork();
        for (i, c) in log.iter().enumerate() {
            prop_assert_eq!(r1.apply(100 + i as u64, c), r2.apply(100 + i as u64, c));
            let u = r1.store.usage_of(A);
            prop_assert!(u.bytes <= 3000 && u.objects <= 6, "{:?} past the limits", u);
        }
        prop_assert_eq!(r1.dump(), r2.dump());
        prop_assert_eq!(r1.store.usage_of(A), recount(&r1, A));
    }
}

/// A tenant runs only modules it uploaded itself: naming another tenant's
/// module by its hash is answered exactly as an unknown hash is, so the
/// hash neither runs the other tenant's code nor confirms it is stored.
#[test]
fn a_tenant_cannot_run_another_tenants_module_by_its_hash() {
    let mut s = base();
    let (r, theirs) = module_of(&mut s, A, b"(module (func (export \"_start\")))");
    ok(r);
    let refused = s.apply(4, &deploy(B, "steal", 1, &theirs));
    let unknown = s.apply(4, &deploy(B, "steal", 1, &"0".repeat(64)));
    let (e1, e2) = (refused.error.unwrap(), unknown.error.unwrap());
    assert_eq!(e1.code(), ErrorCode::NotFound);
    assert_eq!(
        e1.message().replace(&theirs, "H"),
        e2.message().replace(&"0".repeat(64), "H")
    );
    // Uploading the same bytes (possession) is what lets it run.
    ok(module_of(&mut s, B, b"(module (func (export \"_start\")))").0);
    ok(s.apply(5, &deploy(B, "mine", 1, &theirs)));
    ok(s.apply(5, &deploy(A, "theirs", 1, &theirs)));
}
