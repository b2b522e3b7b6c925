//! Unit and property tests of the object-store metadata.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::{Command, State};
use proptest::prelude::*;
use stratus_types::ErrorCode;
use stratus_types::{NodeId, TenantName};

const T: &str = "acme";

fn state() -> State {
    let mut s = State::default();
    s.apply(
        1,
        &Command::CreateTenant {
            name: TenantName::from(T),
            now_ms: 0,
        },
    );
    let r = s.apply(
        2,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "bkt".into(),
                tenant: T.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Enabled,
                created_ms: 0,
            },
        }),
    );
    assert!(r.error.is_none(), "{r:?}");
    s
}

fn chunk(i: u8) -> ChunkId {
    ChunkId([i; 32])
}

fn data(ids: &[u8]) -> ObjectData {
    ObjectData {
        scope: KeyScope::Tenant(T.into()),
        chunks: ids
            .iter()
            .map(|i| ManifestChunk {
                id: chunk(*i),
                len: 10,
            })
            .collect(),
    }
}

fn version(ids: &[u8]) -> ObjectVersion {
    ObjectVersion {
        version_id: String::new(),
        size: 10 * ids.len() as u64,
        etag: "e".into(),
        blake3: String::new(),
        created_ms: 0,
        content_type: None,
        user_meta: BTreeMap::new(),
        data: Some(data(ids)),
    }
}

/// Operations of the property test.
#[derive(Clone, Debug)]
enum Op {
    Pack(Vec<u8>, u8),
    Put(u8, Vec<u8>),
    Delete(u8, Option<usize>),
    Part(Vec<u8>),
    Complete,
    Abort,
    Gc,
    /// Mark piece `i` of pack `p` bad (on the node it names, or not).
    Bad(u64, u32, u8),
    /// Repair moves piece `i` of pack `p` from node `a` to node `b`.
    Move(u64, u32, u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let ids = prop::collection::vec(0u8..12, 0..5);
    prop_oneof![
        (ids.clone(), 0u8..6).prop_map(|(c, n)| Op::Pack(c, n)),
        (0u8..3, ids.clone()).prop_map(|(k, c)| Op::Put(k, c)),
        (0u8..3, prop::option::of(0usize..4)).prop_map(|(k, v)| Op::Delete(k, v)),
        ids.prop_map(Op::Part),
        Just(Op::Complete),
        Just(Op::Abort),
        Just(Op::Gc),
        (1u64..6, 0u32..3, 0u8..8).prop_map(|(p, i, n)| Op::Bad(p, i, n)),
        (1u64..6, 0u32..3, 0u8..8, 0u8..8).prop_map(|(p, i, a, b)| Op::Move(p, i, a, b)),
    ]
}

fn node(i: u8) -> NodeId {
    NodeId([i; 32])
}

proptest! {
    /// Whatever happens, every chunk's reference count equals the
    /// references versions and upload parts hold, referenced chunks are
    /// never collected, and per-node usage equals the pieces placed.
    #[test]
    fn refcounts_and_usage_stay_exact(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = state();
        let mut upload: Option<String> = None;
        let mut next_part = 1;
        for (i, op) in ops.into_iter().enumerate() {
            let idx = 10 + i as u64;
            let cmd = match op {
                Op::Pack(ids, n) => StoreCommand::CommitPack {
                    profile: ErasureProfile { k: 1, m: 1 },
                    data_len: 100,
                    piece_len: 50 + u64::from(n),
                    pieces: vec![(PieceId([n; 32]), node(n)), (PieceId([n + 1; 32]), node(n + 1))],
                    chunks: ids.iter().map(|c| NewChunk { id: chunk(*c), offset: 0, sealed_len: 10, plain_len: 10 }).collect(),
                    now_ms: idx,
                },
                Op::Put(k, ids) => StoreCommand::PutObject {
                    tenant: T.into(), bucket: "bkt".into(), key: format!("k{k}"), version: version(&ids),
                },
                Op::Delete(k, v) => {
                    let key = format!("k{k}");
                    let version_id = v.and_then(|v| s.store.versions("bkt", &key).get(v).map(|x| x.version_id.clone()));
                    StoreCommand::DeleteObject { tenant: T.into(), bucket: "bkt".into(), key, version_id, now_ms: idx }
                }
                Op::Part(ids) => match &upload {
                    Some(u) => {
                        next_part += 1;
                        StoreCommand::PutPart { tenant: T.into(), upload: u.clone(), number: next_part, part: Part { size: 10 * ids.len() as u64, md5: "00".into(), data: data(&ids), created_ms: idx } }
                    }
                    None => StoreCommand::CreateUpload { upload: Upload { id: String::new(), tenant: T.into(), bucket: "bkt".into(), key: "mp".into(), content_type: None, user_meta: BTreeMap::new(), parts: BTreeMap::new(), created_ms: idx } },
                },
                Op::Complete => match (&upload, s.store.uploads.values().next()) {
                    (Some(u), Some(up)) if !up.parts.is_empty() => StoreCommand::CompleteUpload {
                        tenant: T.into(), upload: u.clone(),
                        parts: up.parts.iter().map(|(n, p)| (*n, p.md5.clone())).collect(),
                        now_ms: idx,
                    },
                    _ => StoreCommand::CollectGarbage { now_ms: idx, grace_ms: 5 },
                },
                Op::Abort => match &upload {
                    Some(u) => StoreCommand::AbortUpload { tenant: T.into(), upload: u.clone() },
                    None => StoreCommand::CollectGarbage { now_ms: idx, grace_ms: 0 },
                },
                Op::Gc => StoreCommand::CollectGarbage { now_ms: idx, grace_ms: 3 },
                Op::Bad(p, i, n) => StoreCommand::MarkBad { pieces: vec![(p, i, node(n))] },
                Op::Move(p, i, a, b) => StoreCommand::MovePieces { moves: vec![PieceMove { pack: p, index: i, from: node(a), to: node(b) }] },
            };
            let r = s.apply(idx, &Command::Store(cmd.clone()));
            match (&cmd, &r.id) {
                (StoreCommand::CreateUpload { .. }, Some(id)) => { upload = Some(id.clone()); next_part = 0; }
                (StoreCommand::CompleteUpload { .. } | StoreCommand::AbortUpload { .. }, _) if r.error.is_none() => upload = None,
                _ => {}
            }

            // Invariants.
            let mut expected: BTreeMap<ChunkId, u64> = BTreeMap::new();
            let (keys, _) = s.store.list_keys("bkt", "", None, usize::MAX);
            for v in keys.iter().flat_map(|(_, vs)| vs) {
                for c in v.data.iter().flat_map(|d| d.chunks.iter()) {
                    *expected.entry(c.id).or_default() += 1;
                }
            }
            for p in s.store.uploads.values().flat_map(|u| u.parts.values()) {
                for c in &p.data.chunks {
                    *expected.entry(c.id).or_default() += 1;
                }
            }
            for (id, n) in &expected {
                let e = s.store.chunk(id);
                prop_assert!(e.is_some(), "referenced chunk {} was collected", id);
                prop_assert_eq!(e.map(|e| e.refs), Some(*n));
            }
            let mut chunks = Vec::new();
            s.store.scan_chunks(&mut |id, e| { chunks.push((id, e)); true });
            let packs = s.store.packs();
            for (id, e) in &chunks {
                prop_assert_eq!(e.refs, expected.get(id).copied().unwrap_or(0));
                prop_assert!(packs.iter().any(|p| p.id == e.pack), "chunk in a dropped pack");
            }
            // The garbage index names exactly the unreferenced chunks.
            let zero: Vec<ChunkId> = chunks.iter().filter(|(_, e)| e.refs == 0).map(|(id, _)| *id).collect();
            prop_assert_eq!(s.store.unreferenced_chunks(), zero);
            // The counters agree with the tables.
            let counts = *s.store.counts;
            prop_assert_eq!(counts.chunks, chunks.len() as u64);
            prop_assert_eq!(counts.unique_bytes, chunks.iter().map(|(_, e)| u64::from(e.plain_len)).sum::<u64>());
            prop_assert_eq!(counts.packs, packs.len() as u64);
            let versions: Vec<&ObjectVersion> = keys.iter().flat_map(|(_, vs)| vs).collect();
            prop_assert_eq!(counts.versions, versions.len() as u64);
            prop_assert_eq!(counts.logical_bytes, versions.iter().map(|v| v.size).sum::<u64>());
            let live: Vec<&ObjectVersion> = keys.iter().filter_map(|(_, vs)| vs.last()).filter(|v| !v.is_delete_marker()).collect();
            let stats = s.store.bucket_stats.get("bkt").copied().unwrap_or_default();
            prop_assert_eq!((stats.objects, stats.bytes), (live.len() as u64, live.iter().map(|v| v.size).sum::<u64>()));
            // The pack indexes agree with the packs.
            let mut slots: Vec<(NodeId, u64, u32, PieceId)> = packs
                .iter()
                .flat_map(|p| p.pieces.iter().enumerate().map(move |(i, sl)| (sl.node, p.id, i as u32, sl.id)))
                .collect();
            slots.sort_by_key(|(n, pack, i, piece)| (*n, *piece, *pack, *i));
            let mut indexed = Vec::new();
            for n in s.store.slot_nodes() {
                indexed.extend(s.store.slots_on(&n).into_iter().map(|(pack, i, piece)| (n, pack, i, piece)));
            }
            prop_assert_eq!(&indexed, &slots);
            for (n, _, _, piece) in &slots {
                prop_assert!(s.store.holds(n, piece));
            }
            let bad: Vec<u64> = packs.iter().filter(|p| p.pieces.iter().any(|sl| sl.bad)).map(|p| p.id).collect();
            prop_assert_eq!(s.store.bad_packs(), bad);
            let empty: Vec<u64> = packs.iter().filter(|p| p.live_chunks == 0).map(|p| p.id).collect();
            prop_assert_eq!(s.store.empty_packs(), empty);
            let mut used: BTreeMap<NodeId, u64> = BTreeMap::new();
            for p in &packs {
                for sl in &p.pieces {
                    *used.entry(sl.node).or_default() += p.piece_len;
                }
            }
            prop_assert_eq!(&used, &*s.store.node_used);
        }
    }
}

#[test]
fn a_version_cannot_reference_missing_chunks() {
    let mut s = state();
    let r = s.apply(
        3,
        &Command::Store(StoreCommand::PutObject {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version: version(&[1]),
        }),
    );
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::Conflict));
}

#[test]
fn other_tenants_cannot_touch_a_bucket() {
    let mut s = state();
    s.apply(
        3,
        &Command::CreateTenant {
            name: "evil".into(),
            now_ms: 0,
        },
    );
    let r = s.apply(
        4,
        &Command::Store(StoreCommand::DeleteBucket {
            tenant: "evil".into(),
            name: "bkt".into(),
        }),
    );
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::Forbidden));
}

#[test]
fn profiles_and_names_are_checked() {
    assert_eq!(
        "4+2".parse::<ErasureProfile>(),
        Ok(ErasureProfile { k: 4, m: 2 })
    );
    assert!("0+2".parse::<ErasureProfile>().is_err());
    assert!("30+3".parse::<ErasureProfile>().is_err());
    assert!(validate_bucket_name("ok-bucket.1").is_ok());
    for bad in ["ab", "Upper", "-start", "end-", "a..b", "10.0.0.1"] {
        assert!(validate_bucket_name(bad).is_err(), "{bad}");
    }
}
