//! Modules as objects: one object version per tenant and module, counted in
//! the tenant's storage, runnable only by tenants that uploaded it, deleted
//! when retention drops the claim.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::objects::{Bucket, DedupeScope, ErasureProfile, ManifestChunk, NewChunk, Versioning};
use crate::quotas::Resource;
use crate::{Command, CommandResult};
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::ErrorCode;
use stratus_types::NodeId;

const A: &str = "acme";
const B: &str = "beta";
const HOUR: u64 = 3600 * 1000;

fn ok(r: CommandResult) -> CommandResult {
    assert!(r.error.is_none(), "{r:?}");
    r
}

/// Tenants `acme` and `beta`, their images buckets, and one pack holding
/// chunks 1 and 2 (1,000 bytes each).
fn setup() -> State {
    let mut s = State::default();
    for t in [A, B] {
        ok(s.apply(
            1,
            &Command::CreateTenant {
                name: t.into(),
                now_ms: 0,
            },
        ));
        ok(s.apply(
            2,
            &Command::Store(StoreCommand::CreateBucket {
                bucket: Bucket {
                    name: images_bucket(t),
                    tenant: t.into(),
                    profile: None,
                    scope: DedupeScope::Tenant,
                    versioning: Versioning::Enabled,
                    created_ms: 0,
                },
            }),
        ));
    }
    ok(s.apply(
        3,
        &Command::Store(StoreCommand::CommitPack {
            profile: ErasureProfile { k: 1, m: 0 },
            data_len: 1 << 20,
            piece_len: 1 << 20,
            pieces: vec![(PieceId([1; 32]), NodeId([1; 32]))],
            chunks: [1u8, 2]
                .iter()
                .map(|i| NewChunk {
                    id: ChunkId([*i; 32]),
                    offset: 0,
                    sealed_len: 10,
                    plain_len: 1000,
                })
                .collect(),
            now_ms: 0,
        }),
    ));
    s
}

fn hash_of(n: u8) -> String {
    format!("blake3:{}", hex::encode([n; 32]))
}

fn version(tenant: &str, n: u8) -> ObjectVersion {
    ObjectVersion {
        version_id: String::new(),
        size: 2000,
        etag: "00".into(),
        blake3: hex::encode([n; 32]),
        created_ms: 0,
        content_type: Some("application/wasm".into()),
        user_meta: Default::default(),
        data: Some(ObjectData {
            scope: KeyScope::Tenant(tenant.into()),
            chunks: [1u8, 2]
                .iter()
                .map(|i| ManifestChunk {
                    id: ChunkId([*i; 32]),
                    len: 1000,
                })
                .collect(),
        }),
    }
}

fn put(tenant: &str, n: u8, now_ms: u64) -> Command {
    Command::PutModuleObject {
        tenant: tenant.into(),
        hash: hash_of(n),
        version: version(tenant, n),
        now_ms,
    }
}

fn deploy(tenant: &str, name: &str, module: &str) -> Command {
    Command::DeployWorkload {
        tenant: tenant.into(),
        spec: Box::new(
            stratus_spec::parse(
                &format!("version: 1\nname: {name}\nkind: service\nwasm: {{ module: m.wasm }}\n"),
                stratus_spec::Format::Yaml,
            )
            .unwrap(),
        ),
        module: module.into(),
        now_ms: 0,
    }
}

fn versions(s: &State, tenant: &str, n: u8) -> usize {
    s.store
        .versions(&images_bucket(tenant), &module_key(&hash_of(n)).unwrap())
        .len()
}

#[test]
fn a_module_is_one_object_version_of_its_tenant_and_a_reupload_adds_none() {
    let mut s = setup();
    ok(s.apply(4, &put(A, 9, 0)));
    let m = s.module_object(A, &hash_of(9)).unwrap().clone();
    assert_eq!(m.size, 2000);
    let (size, data) = s.module_data(A, &hash_of(9)).unwrap();
    assert_eq!((size, data.chunks.len()), (2000, 2));
    assert_eq!(versions(&s, A, 9), 1);
    // Counted as the tenant's storage and as its modules.
    assert_eq!(s.quota_used(A, Resource::StoredBytes), 2000);
    assert_eq!(s.quota_used(A, Resource::Objects), 1);
    assert_eq!(s.quota_used(A, Resource::Modules), 1);
    assert_eq!(s.quota_used(A, Resource::ModuleBytes), 2000);
    ok(s.apply(5, &put(A, 9, 5)));
    assert_eq!(versions(&s, A, 9), 1, "a re-upload renews the claim only");
    assert_eq!(s.module_object(A, &hash_of(9)), Some(&m));
    assert_eq!(s.quotas.modules[A][&hash_of(9)], 5);
    assert_eq!(s.quota_used(A, Resource::StoredBytes), 2000);
    assert!(s.module_object(B, &hash_of(9)).is_none());
}

/// The attacker knows another tenant's module hash: deploying it is
/// answered exactly as an unknown hash is, until it uploads the bytes
/// itself (which stores a copy of its own).
#[test]
fn a_tenant_cannot_run_another_tenants_module_object_by_its_hash() {
    let mut s = setup();
    ok(s.apply(4, &put(A, 9, 0)));
    let stolen = s.apply(5, &deploy(B, "steal", &hash_of(9)));
    let unknown = s.apply(5, &deploy(B, "steal", &hash_of(8)));
    let (e1, e2) = (stolen.error.unwrap(), unknown.error.unwrap());
    assert_eq!(e1.code(), ErrorCode::NotFound);
    assert_eq!(
        e1.message().replace(&hash_of(9), "H"),
        e2.message().replace(&hash_of(8), "H")
    );
    ok(s.apply(6, &put(B, 9, 0)));
    ok(s.apply(7, &deploy(B, "mine", &hash_of(9))));
    assert_eq!(versions(&s, B, 9), 1, "B's own object, in B's bucket");
}

/// Module bytes count against the tenant's stored bytes: over the quota,
/// nothing is stored (no version, no reference, no claim).
#[test]
fn a_module_over_the_storage_quota_is_refused_and_leaves_nothing() {
    let mut s = setup();
    ok(s.apply(
        4,
        &Command::SetQuota {
            tenant: A.into(),
            changes: [(Resource::StoredBytes, Some(1999))].into(),
        },
    ));
    let e = s.apply(5, &put(A, 9, 0)).error.unwrap();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{e:?}");
    assert!(e.message().contains("stored-bytes"), "{}", e.message());
    assert_eq!(versions(&s, A, 9), 0);
    assert!(s.module_object(A, &hash_of(9)).is_none());
    assert!(!s.quotas.modules.contains_key(A));
    assert_eq!(s.store.chunk(&ChunkId([1; 32])).unwrap().refs, 0);
}

/// A reference that would not name its own content, or another scope's
/// chunks, or more than the limit, is refused.
#[test]
fn a_forged_module_object_is_refused() {
    let mut s = setup();
    let mut wrong_hash = version(A, 9);
    wrong_hash.blake3 = hex::encode([8; 32]);
    let mut other_scope = version(A, 9);
    if let Some(d) = other_scope.data.as_mut() {
        d.scope = KeyScope::Tenant(B.into());
    }
    let mut huge = version(A, 9);
    huge.size = MAX_MODULE_OBJECT_BYTES + 1;
    for (v, code) in [
        (wrong_hash, ErrorCode::BadRequest),
        (other_scope, ErrorCode::BadRequest),
        (huge, ErrorCode::TooLarge),
    ] {
        let r = s.apply(
            5,
            &Command::PutModuleObject {
                tenant: A.into(),
                hash: hash_of(9),
                version: v,
                now_ms: 0,
            },
        );
        assert_eq!(r.error.unwrap().code(), code);
    }
    let r = s.apply(
        5,
        &Command::PutModuleObject {
            tenant: A.into(),
            hash: "blake3:../../x".into(),
            version: version(A, 9),
            now_ms: 0,
        },
    );
    assert_eq!(r.error.unwrap().code(), ErrorCode::BadRequest);
    assert!(s.module_objects.is_empty() && versions(&s, A, 9) == 0);
}

#[test]
fn an_unused_module_object_is_deleted_after_the_retention_and_a_used_one_kept() {
    let mut s = setup();
    ok(s.apply(4, &put(A, 9, 0)));
    ok(s.apply(4, &put(A, 7, 0)));
    ok(s.apply(5, &deploy(A, "web", &hash_of(7))));
    let prune = |s: &mut State, now_ms| {
        s.apply(
            6,
            &Command::Prune {
                now_ms,
                tasks_ms: 24 * HOUR,
                uploads_ms: 7 * 24 * HOUR,
            },
        )
    };
    ok(prune(&mut s, HOUR));
    assert_eq!(versions(&s, A, 9), 1, "too early");
    ok(prune(&mut s, 24 * HOUR));
    assert!(s.module_object(A, &hash_of(9)).is_none());
    assert_eq!(versions(&s, A, 9), 0, "its object version is deleted");
    assert!(!s.module_available(A, &hash_of(9)));
    // The used module keeps its object, and so its chunks' references.
    assert_eq!(versions(&s, A, 7), 1);
    assert!(s.module_available(A, &hash_of(7)));
    assert_eq!(s.store.chunk(&ChunkId([1; 32])).unwrap().refs, 1);
    assert_eq!(s.quota_used(A, Resource::StoredBytes), 2000);
}

#[test]
fn module_keys_are_only_blake3_addresses() {
    assert_eq!(
        module_key(&hash_of(10)).unwrap(),
        format!("modules/{}", hex::encode([10; 32]))
    );
    for bad in [
        "blake3:",
        "sha256:00",
        "blake3:../x",
        &format!("blake3:{}", "A".repeat(64)),
    ] {
        assert_eq!(module_key(bad), None, "{bad}");
    }
}

/// A tenant at its buckets quota still gets its images bucket (one per
/// tenant, named by the system) for its modules; it is not counted.
#[test]
fn the_images_bucket_does_not_count_against_the_buckets_quota() {
    let mut s = State::default();
    ok(s.apply(
        1,
        &Command::CreateTenant {
            name: A.into(),
            now_ms: 0,
        },
    ));
    ok(s.apply(
        2,
        &Command::SetQuota {
            tenant: A.into(),
            changes: [(Resource::Buckets, Some(1))].into(),
        },
    ));
    let bucket = |name: String| {
        Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name,
                tenant: A.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Enabled,
                created_ms: 0,
            },
        })
    };
    ok(s.apply(3, &bucket("mine".into())));
    let e = s.apply(4, &bucket("more".into())).error.unwrap();
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    ok(s.apply(5, &bucket(images_bucket(A))));
    assert_eq!(s.quota_used(A, Resource::Buckets), 1);
}

#[test]
fn a_malformed_module_or_image_reference_is_refused_as_unknown() {
    let mut s = setup();
    for bad in [
        "",
        "blake3:zz",
        "sha256:00",
        "image:",
        "image:web",
        "image:web:1",
        "image:web:1@",
        "image:web@7",
        "image:web:1@7@8",
    ] {
        let r = s.apply(9, &deploy(A, "x", bad));
        let e = r.error.unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert_eq!(e.code(), ErrorCode::NotFound, "{bad:?}: {e:?}");
        assert!(e.message().contains("is not stored"), "{bad:?}: {e:?}");
    }
    assert!(s.workloads.is_empty());
}
