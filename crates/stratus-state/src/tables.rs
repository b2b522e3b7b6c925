//! The object store's large tables — object versions, the chunk index and
//! packs — read and written through the state's [`Kv`], never held in
//! memory: their size follows what is stored, not the cluster.
//!
//! Keys are ordered so the questions asked are range scans:
//!
//! * versions: `bucket \0 key \0 seq`, `seq` a big-endian counter that only
//!   grows, so a key's versions are adjacent, oldest first, and keys come in
//!   byte order (S3's listing order; keys and bucket names hold no NUL);
//! * chunks: the 32-byte chunk id; chunks no version references are also in
//!   [`Table::ZeroRefs`], so garbage collection never walks the index;
//! * packs: the big-endian pack id, indexed by where their pieces are
//!   (`node ‖ piece ‖ pack ‖ slot`), so a node's pieces, whether a node holds
//!   a piece, and a random sample of a node's pieces are range scans; packs
//!   left empty and packs with a bad slot have their own small indexes, so
//!   garbage collection and repair never walk every pack.

use std::ops::Bound;

use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::NodeId;

use crate::kv::{prefix_end, Table};
use crate::objects::{ChunkEntry, ObjectStore, ObjectVersion, Pack};

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).unwrap_or_else(|e| panic!("cannot encode a state row: {e}"))
}

/// Decodes a row of `table`. A row this code wrote always decodes: failing is
/// a corrupted database, which no answer may be built on.
pub(crate) fn decode<T: DeserializeOwned>(table: Table, bytes: &[u8]) -> T {
    bincode::deserialize(bytes).unwrap_or_else(|e| {
        panic!(
            "the state database is corrupted: a row of {} is unreadable ({e}); \
             restore this replica from another (remove DATA/control/raft and rejoin)",
            table.name()
        )
    })
}

fn key_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(bucket.len() + key.len() + 10);
    p.extend_from_slice(bucket.as_bytes());
    p.push(0);
    p.extend_from_slice(key.as_bytes());
    p.push(0);
    p
}

fn bucket_prefix(bucket: &str) -> Vec<u8> {
    let mut p = bucket.as_bytes().to_vec();
    p.push(0);
    p
}

fn slot_key(node: &NodeId, piece: &PieceId, pack: u64, index: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(73);
    k.extend_from_slice(&node.0);
    k.extend_from_slice(&piece.0);
    k.extend_from_slice(&pack.to_be_bytes());
    k.push(index as u8);
    k
}

/// Splits a versions row key into (object key, seq).
fn split_version_key(bucket_len: usize, k: &[u8]) -> Option<(&str, u64)> {
    let rest = k.get(bucket_len + 1..)?;
    let (key, seq) = rest.split_at(rest.len().checked_sub(9)?);
    let seq = u64::from_be_bytes(seq.get(1..)?.try_into().ok()?);
    Some((std::str::from_utf8(key).ok()?, seq))
}

impl ObjectStore {
    /// Every version of `bucket/key` with its row sequence, oldest first.
    pub(crate) fn versions_seq(&self, bucket: &str, key: &str) -> Vec<(u64, ObjectVersion)> {
        let prefix = key_prefix(bucket, key);
        let mut out = Vec::new();
        self.kv
            .scan(Table::Versions, Bound::Included(&prefix), &mut |k, v| {
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    return false;
                }
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&k[prefix.len()..]);
                out.push((u64::from_be_bytes(seq), decode(Table::Versions, v)));
                true
            });
        out
    }

    /// Every version of `bucket/key`, oldest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Vec<ObjectVersion> {
        self.versions_seq(bucket, key)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Adds `v` as the newest version of `bucket/key`.
    pub(crate) fn push_version(&mut self, bucket: &str, key: &str, v: &ObjectVersion) {
        let before = self.latest(bucket, key);
        self.relatest(bucket, before.as_ref(), Some(v));
        self.counts.versions += 1;
        self.counts.logical_bytes += v.size;
        *self.next_seq += 1;
        let mut k = key_prefix(bucket, key);
        k.extend_from_slice(&self.next_seq.to_be_bytes());
        self.kv.put(Table::Versions, &k, &encode(v));
    }

    /// Removes the version `version_id` of `bucket/key`, if there is one.
    pub(crate) fn take_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Option<ObjectVersion> {
        let mut all = self.versions_seq(bucket, key);
        let pos = all.iter().position(|(_, v)| v.version_id == version_id)?;
        let (seq, v) = all.remove(pos);
        if pos == all.len() {
            // It was the latest: the one before it (if any) is now.
            self.relatest(bucket, Some(&v), all.last().map(|(_, v)| v));
        }
        self.counts.versions = self.counts.versions.saturating_sub(1);
        self.counts.logical_bytes = self.counts.logical_bytes.saturating_sub(v.size);
        self.remove_version_row(bucket, key, seq);
        self.remove_version_attrs(bucket, key, version_id);
        Some(v)
    }

    /// The latest version of a key changes from `before` to `after`.
    fn relatest(
        &mut self,
        bucket: &str,
        before: Option<&ObjectVersion>,
        after: Option<&ObjectVersion>,
    ) {
        let live = |v: Option<&ObjectVersion>| v.filter(|v| !v.is_delete_marker()).map(|v| v.size);
        let (before, after) = (live(before), live(after));
        if before == after && before.is_none() {
            return;
        }
        let stats = self.bucket_stats.entry(bucket.to_owned()).or_default();
        if let Some(size) = before {
            stats.objects = stats.objects.saturating_sub(1);
            stats.bytes = stats.bytes.saturating_sub(size);
        }
        if let Some(size) = after {
            stats.objects += 1;
            stats.bytes += size;
        }
    }

    /// Removes the version row `seq` of `bucket/key`.
    fn remove_version_row(&mut self, bucket: &str, key: &str, seq: u64) {
        let mut k = key_prefix(bucket, key);
        k.extend_from_slice(&seq.to_be_bytes());
        self.kv.delete(Table::Versions, &k);
    }

    /// Whether `bucket` holds no version at all.
    pub fn bucket_is_empty(&self, bucket: &str) -> bool {
        let prefix = bucket_prefix(bucket);
        let mut empty = true;
        self.kv
            .scan(Table::Versions, Bound::Included(&prefix), &mut |k, _| {
                empty = !k.starts_with(&prefix);
                false
            });
        empty
    }

    /// Visits the keys of `bucket` from `from` on, in key order, each with
    /// its versions (oldest first), until `f` returns false. Costs what it
    /// visits, whatever the size of the bucket.
    pub fn scan_keys(
        &self,
        bucket: &str,
        from: Bound<&str>,
        f: &mut dyn FnMut(&str, Vec<ObjectVersion>) -> bool,
    ) {
        let bp = bucket_prefix(bucket);
        let start = match from {
            Bound::Unbounded => bp.clone(),
            Bound::Included(k) => key_prefix(bucket, k),
            // Past every row of `k`: its prefix ends with \0, so the end of
            // that prefix is `k \1`, which no other key starts with.
            Bound::Excluded(k) => prefix_end(&key_prefix(bucket, k)).unwrap_or_default(),
        };
        let mut current: Option<(String, Vec<ObjectVersion>)> = None;
        let mut go_on = true;
        self.kv
            .scan(Table::Versions, Bound::Included(&start), &mut |k, v| {
                if !k.starts_with(&bp) {
                    return false;
                }
                let Some((key, _)) = split_version_key(bucket.len(), k) else {
                    return true;
                };
                let version: ObjectVersion = decode(Table::Versions, v);
                match &mut current {
                    Some((ck, vs)) if ck == key => {
                        vs.push(version);
                        true
                    }
                    _ => {
                        if let Some((ck, vs)) = current.take() {
                            if !f(&ck, vs) {
                                go_on = false;
                                return false;
                            }
                        }
                        current = Some((key.to_owned(), vec![version]));
                        true
                    }
                }
            });
        if go_on {
            if let Some((ck, vs)) = current {
                f(&ck, vs);
            }
        }
    }

    /// The keys of `bucket` that start with `prefix`, after `after` (or from
    /// the first), with their versions (oldest first): at most `limit`
    /// keys, and whether more follow. The one listing every door (native
    /// API, S3, images, task inputs) uses.
    pub fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(String, Vec<ObjectVersion>)>, bool) {
        self.list_filtered(bucket, prefix, after, limit, Some)
    }

    /// Like [`ObjectStore::list_keys`], but only keys whose latest version
    /// is not a delete marker, with that version.
    pub fn list_latest(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(String, ObjectVersion)>, bool) {
        self.list_filtered(bucket, prefix, after, limit, |mut vs| {
            vs.pop().filter(|v| !v.is_delete_marker())
        })
    }

    fn list_filtered<T>(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(Vec<ObjectVersion>) -> Option<T>,
    ) -> (Vec<(String, T)>, bool) {
        let from = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let mut more = false;
        self.scan_keys(bucket, from, &mut |k, vs| {
            if !k.starts_with(prefix) {
                return false;
            }
            let Some(item) = keep(vs) else {
                return true;
            };
            if out.len() == limit {
                more = true;
                return false;
            }
            out.push((k.to_owned(), item));
            true
        });
        (out, more)
    }

    /// The chunk index entry of `id`.
    pub fn chunk(&self, id: &ChunkId) -> Option<ChunkEntry> {
        self.kv
            .get(Table::Chunks, &id.0)
            .map(|b| decode(Table::Chunks, &b))
    }

    /// Indexes `id`, which the index does not hold (its callers looked it
    /// up already; looking an absent id up again would descend the B-tree a
    /// second time for nothing), and whether it is unreferenced.
    pub(crate) fn add_chunk(&mut self, id: &ChunkId, e: &ChunkEntry) {
        debug_assert!(self.chunk(id).is_none(), "chunk {id} is indexed already");
        self.counts.chunks += 1;
        self.counts.unique_bytes += u64::from(e.plain_len);
        self.kv.put(Table::Chunks, &id.0, &encode(e));
        if e.refs == 0 {
            self.kv.put(Table::ZeroRefs, &id.0, &[]);
        } else {
            self.kv.delete(Table::ZeroRefs, &id.0);
        }
    }

    /// Rewrites the entry of an indexed chunk whose reference count was
    /// `old_refs` (the garbage index changes only when it crosses zero).
    pub(crate) fn update_chunk(&mut self, id: &ChunkId, old_refs: u64, e: &ChunkEntry) {
        self.kv.put(Table::Chunks, &id.0, &encode(e));
        match (old_refs == 0, e.refs == 0) {
            (true, false) => self.kv.delete(Table::ZeroRefs, &id.0),
            (false, true) => self.kv.put(Table::ZeroRefs, &id.0, &[]),
            _ => {}
        }
    }

    /// Forgets the chunk `id`.
    pub(crate) fn remove_chunk(&mut self, id: &ChunkId) -> Option<ChunkEntry> {
        let e = self.chunk(id)?;
        self.counts.chunks = self.counts.chunks.saturating_sub(1);
        self.counts.unique_bytes = self
            .counts
            .unique_bytes
            .saturating_sub(u64::from(e.plain_len));
        self.kv.delete(Table::Chunks, &id.0);
        self.kv.delete(Table::ZeroRefs, &id.0);
        Some(e)
    }

    /// Visits every chunk of the index in id order until `f` returns false
    /// (for tools and tests: it walks the whole index).
    pub fn scan_chunks(&self, f: &mut dyn FnMut(ChunkId, ChunkEntry) -> bool) {
        self.kv.scan(
            Table::Chunks,
            Bound::Unbounded,
            &mut |k, v| match <[u8; 32]>::try_from(k) {
                Ok(id) => f(ChunkId(id), decode(Table::Chunks, v)),
                Err(_) => true,
            },
        );
    }

    /// Chunks no version references, in id order.
    pub(crate) fn unreferenced_chunks(&self) -> Vec<ChunkId> {
        let mut out = Vec::new();
        self.kv
            .scan(Table::ZeroRefs, Bound::Unbounded, &mut |k, _| {
                if let Ok(id) = <[u8; 32]>::try_from(k) {
                    out.push(ChunkId(id));
                }
                true
            });
        out
    }

    /// How many chunks the index holds.
    pub fn chunk_count(&self) -> u64 {
        self.counts.chunks
    }

    /// The pack `id`.
    pub fn pack(&self, id: u64) -> Option<Pack> {
        self.kv
            .get(Table::Packs, &id.to_be_bytes())
            .map(|b| decode(Table::Packs, &b))
    }

    /// Writes the pack `p` (and its entries in the piece, empty and bad
    /// indexes).
    pub(crate) fn set_pack(&mut self, p: &Pack) {
        let old = self.pack(p.id);
        match &old {
            None => self.counts.packs += 1,
            Some(o) => self.unindex(o),
        }
        self.kv.put(Table::Packs, &p.id.to_be_bytes(), &encode(p));
        self.index(p);
    }

    /// Forgets the pack `id`.
    pub(crate) fn remove_pack(&mut self, id: u64) -> Option<Pack> {
        let p = self.pack(id)?;
        self.counts.packs = self.counts.packs.saturating_sub(1);
        self.kv.delete(Table::Packs, &id.to_be_bytes());
        self.unindex(&p);
        Some(p)
    }

    fn index(&mut self, p: &Pack) {
        for (i, s) in p.pieces.iter().enumerate() {
            self.kv
                .put(Table::NodePieces, &slot_key(&s.node, &s.id, p.id, i), &[]);
        }
        let id = p.id.to_be_bytes();
        if p.live_chunks == 0 {
            self.kv.put(Table::EmptyPacks, &id, &[]);
        }
        if p.pieces.iter().any(|s| s.bad) {
            self.kv.put(Table::BadPacks, &id, &[]);
        }
    }

    fn unindex(&mut self, p: &Pack) {
        for (i, s) in p.pieces.iter().enumerate() {
            self.kv
                .delete(Table::NodePieces, &slot_key(&s.node, &s.id, p.id, i));
        }
        let id = p.id.to_be_bytes();
        self.kv.delete(Table::EmptyPacks, &id);
        self.kv.delete(Table::BadPacks, &id);
    }

    /// The slots on `node`: (pack, slot index, piece), in piece order.
    pub fn slots_on(&self, node: &NodeId) -> Vec<(u64, u32, PieceId)> {
        self.slots_from(node, &[0; 32], usize::MAX)
    }

    /// Up to `n` slots on `node` from the piece id `from` on, wrapping
    /// around: a uniform sample when `from` is random (piece ids are
    /// hashes). Costs `n` rows, whatever the node holds.
    pub fn sample_slots_on(
        &self,
        node: &NodeId,
        from: &[u8; 32],
        n: usize,
    ) -> Vec<(u64, u32, PieceId)> {
        let mut out = self.slots_from(node, from, n);
        if out.len() < n {
            for s in self.slots_from(node, &[0; 32], n - out.len()) {
                if out.contains(&s) {
                    break;
                }
                out.push(s);
            }
        }
        out
    }

    fn slots_from(&self, node: &NodeId, from: &[u8; 32], n: usize) -> Vec<(u64, u32, PieceId)> {
        let mut start = node.0.to_vec();
        start.extend_from_slice(from);
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        self.kv
            .scan(Table::NodePieces, Bound::Included(&start), &mut |k, _| {
                if k.len() != 73 || k[..32] != node.0 {
                    return false;
                }
                let mut piece = [0u8; 32];
                piece.copy_from_slice(&k[32..64]);
                let mut pack = [0u8; 8];
                pack.copy_from_slice(&k[64..72]);
                out.push((u64::from_be_bytes(pack), u32::from(k[72]), PieceId(piece)));
                out.len() < n
            });
        out
    }

    /// Whether a pack places `piece` on `node`.
    pub fn holds(&self, node: &NodeId, piece: &PieceId) -> bool {
        let mut prefix = node.0.to_vec();
        prefix.extend_from_slice(&piece.0);
        let mut found = false;
        self.kv
            .scan(Table::NodePieces, Bound::Included(&prefix), &mut |k, _| {
                found = k.starts_with(&prefix);
                false
            });
        found
    }

    /// Every node some pack places a piece on (one seek per node).
    pub fn slot_nodes(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut from = Vec::new();
        loop {
            let mut next = None;
            self.kv
                .scan(Table::NodePieces, Bound::Included(&from), &mut |k, _| {
                    if let Ok(n) = <[u8; 32]>::try_from(&k[..32.min(k.len())]) {
                        next = Some(NodeId(n));
                    }
                    false
                });
            let Some(n) = next else {
                return out;
            };
            out.push(n);
            match prefix_end(&n.0) {
                Some(end) => from = end,
                None => return out,
            }
        }
    }

    fn id_table(&self, table: Table) -> Vec<u64> {
        let mut out = Vec::new();
        self.kv.scan(table, Bound::Unbounded, &mut |k, _| {
            if let Ok(b) = <[u8; 8]>::try_from(k) {
                out.push(u64::from_be_bytes(b));
            }
            true
        });
        out
    }

    /// Packs with no live chunk left.
    pub(crate) fn empty_packs(&self) -> Vec<u64> {
        self.id_table(Table::EmptyPacks)
    }

    /// Packs with a slot known bad.
    pub fn bad_packs(&self) -> Vec<u64> {
        self.id_table(Table::BadPacks)
    }

    /// Visits every pack in id order until `f` returns false.
    pub fn scan_packs(&self, f: &mut dyn FnMut(Pack) -> bool) {
        self.kv.scan(Table::Packs, Bound::Unbounded, &mut |_, v| {
            f(decode(Table::Packs, v))
        });
    }

    /// Every pack, in id order (their number follows the bytes stored, one
    /// per ~8 MiB, not the number of objects).
    pub fn packs(&self) -> Vec<Pack> {
        let mut out = Vec::new();
        self.scan_packs(&mut |p| {
            out.push(p);
            true
        });
        out
    }

    /// How many packs there are.
    pub fn pack_count(&self) -> u64 {
        self.counts.packs
    }
}
