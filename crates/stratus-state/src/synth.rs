//! Synthetic object-store commands, as a gateway commits them for many
//! small objects: for `stratus bench meta` and for tests that need a state
//! of a given size without writing any piece. Compiled only for tests and
//! with the `testing` or `bench` feature (`stratus-bench` enables `bench`).

use std::collections::BTreeMap;

use stratus_chunk::{ChunkId, PieceId};
use stratus_types::NodeId;

use crate::objects::{
    Bucket, DedupeScope, ErasureProfile, KeyScope, ManifestChunk, NewChunk, ObjectData,
    ObjectVersion, StoreCommand, Versioning,
};
use crate::quotas::Resource;
use crate::Command;

/// Plaintext size of every synthetic object.
pub const OBJECT_BYTES: u32 = 1024;

/// How synthetic chunk ids are spread over the id space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkIds {
    /// Content hashes, as real chunks have: each new chunk lands at a random
    /// place of the chunk index.
    Hashed,
    /// The object's number first, then the hash: each new chunk lands after
    /// the last one. A control, not something a gateway can produce: what
    /// the index would cost if its inserts were appends.
    Ordered,
}

/// The id of object `i`'s single chunk.
pub fn chunk(i: u64) -> ChunkId {
    chunk_id(i, ChunkIds::Hashed)
}

/// The id of object `i`'s single chunk, spread as `ids` says.
pub fn chunk_id(i: u64, ids: ChunkIds) -> ChunkId {
    let mut id = *blake3::hash(&i.to_le_bytes()).as_bytes();
    if ids == ChunkIds::Ordered {
        id[..8].copy_from_slice(&i.to_be_bytes());
    }
    ChunkId(id)
}

/// Key of object `i`: spread over 10 prefixes `pN/`.
pub fn key(i: u64) -> String {
    format!("p{}/obj{:010}", i % 10, i)
}

/// Creates `tenant` with no object or byte quota and its unversioned
/// `bucket`.
pub fn setup(tenant: &str, bucket: &str) -> Vec<Command> {
    let quotas: BTreeMap<Resource, Option<u64>> = [
        (Resource::Objects, Some(u64::MAX)),
        (Resource::StoredBytes, Some(u64::MAX)),
    ]
    .into();
    vec![
        Command::CreateTenant {
            name: tenant.into(),
            now_ms: 1,
        },
        Command::SetQuota {
            tenant: tenant.into(),
            changes: quotas,
        },
        Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: bucket.into(),
                tenant: tenant.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Unversioned,
                created_ms: 1,
            },
        }),
    ]
}

/// The commands storing objects `from..from + n` of `tenant` in `bucket`:
/// one pack holding their chunks, then one version each.
pub fn small_objects(tenant: &str, bucket: &str, from: u64, n: u64) -> Vec<Command> {
    small_objects_with(tenant, bucket, from, n, ChunkIds::Hashed)
}

/// [`small_objects`] with chunk ids spread as `ids` says.
pub fn small_objects_with(
    tenant: &str,
    bucket: &str,
    from: u64,
    n: u64,
    ids: ChunkIds,
) -> Vec<Command> {
    let sealed = OBJECT_BYTES + 76;
    let mut out = Vec::with_capacity(n as usize + 1);
    out.push(Command::Store(StoreCommand::CommitPack {
        profile: ErasureProfile { k: 1, m: 1 },
        data_len: n * u64::from(sealed),
        piece_len: n * u64::from(sealed),
        pieces: vec![
            (PieceId([1; 32]), NodeId([1; 32])),
            (PieceId([2; 32]), NodeId([2; 32])),
        ],
        chunks: (0..n)
            .map(|j| NewChunk {
                id: chunk_id(from + j, ids),
                offset: j * u64::from(sealed),
                sealed_len: sealed,
                plain_len: OBJECT_BYTES,
            })
            .collect(),
        now_ms: 2,
    }));
    for i in from..from + n {
        out.push(Command::Store(StoreCommand::PutObject {
            tenant: tenant.into(),
            bucket: bucket.into(),
            key: key(i),
            version: ObjectVersion {
                version_id: String::new(),
                size: u64::from(OBJECT_BYTES),
                etag: format!("{i:032x}"),
                blake3: String::new(),
                created_ms: 3,
                content_type: None,
                user_meta: BTreeMap::new(),
                data: Some(ObjectData {
                    scope: KeyScope::Tenant(tenant.into()),
                    chunks: vec![ManifestChunk {
                        id: chunk_id(i, ids),
                        len: OBJECT_BYTES,
                    }],
                }),
            },
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

    #[test]
    fn synthetic_objects_are_accepted_and_listed_in_key_order() {
        let mut s = State::default();
        for (i, c) in setup("t", "bkt").iter().enumerate() {
            assert_eq!(s.apply(i as u64 + 1, c).error, None);
        }
        for c in small_objects("t", "bkt", 0, 2000) {
            assert_eq!(s.apply(9, &c).error, None);
        }
        assert_eq!(s.store.counts.versions, 2000);
        let (page, more) = s
            .store
            .list_latest("bkt", "p7/", Some("p7/obj0000001500"), 1000);
        assert!(!more);
        let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
        let want: Vec<String> = (1507..2000).step_by(10).map(key).collect();
        assert_eq!(keys, want);
    }

    #[test]
    fn ordered_chunk_ids_grow_with_the_object_and_store_the_same_objects() {
        let ids: Vec<ChunkId> = (0..300).map(|i| chunk_id(i, ChunkIds::Ordered)).collect();
        assert!(ids.windows(2).all(|w| w[0].0 < w[1].0));
        let hashed: Vec<ChunkId> = (0..300).map(chunk).collect();
        assert!(!hashed.windows(2).all(|w| w[0].0 < w[1].0));
        let mut s = State::default();
        for (i, c) in setup("t", "bkt").iter().enumerate() {
            assert_eq!(s.apply(i as u64 + 1, c).error, None);
        }
        for c in small_objects_with("t", "bkt", 0, 300, ChunkIds::Ordered) {
            assert_eq!(s.apply(9, &c).error, None);
        }
        assert_eq!(s.store.counts.versions, 300);
        assert_eq!(s.store.chunk_count(), 300);
    }
}
