//! The get path: manifest → packs (any `k` verified pieces) → chunks
//! (decrypted, verified) → the bytes of the asked range.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::StreamExt;
use stratus_chunk::{
    decode_stripe_owned, open_chunk, open_chunk_in_place, piece_id, ChunkId, Opened, Profile,
    ScopeKey, MAX_CHUNK_LEN,
};
use stratus_proto::{piece_rpc, PieceErrorKind, PieceRpcError};
use stratus_state::marks::Failure;
use stratus_state::objects::{KeyScope, ObjectStore, ObjectVersion, Pack, StoreCommand};
use stratus_types::NodeId;

use crate::net::PieceCallError;
use crate::{Store, StoreError};

/// Packs fetched ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// A byte range of an object: `start..end` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// The part of one chunk a read needs.
#[derive(Clone, Debug)]
struct ChunkRead {
    id: ChunkId,
    offset: u64,
    sealed_len: u32,
    skip: usize,
    take: usize,
}

/// Consecutive chunks of a read that live in one pack.
#[derive(Clone, Debug)]
struct PackRead {
    pack: u64,
    chunks: Vec<ChunkRead>,
}

impl PackRead {
    /// The bytes of the pack its chunks lie in.
    fn span(&self) -> std::ops::Range<u64> {
        let start = self.chunks.iter().map(|c| c.offset).min().unwrap_or(0);
        let end = self
            .chunks
            .iter()
            .map(|c| c.offset + u64::from(c.sealed_len))
            .max()
            .unwrap_or(start);
        start..end
    }

    /// The same read of bytes that start at pack offset `base`.
    fn shifted(&self, base: u64) -> Self {
        let mut p = self.clone();
        for c in &mut p.chunks {
            c.offset -= base;
        }
        p
    }
}

/// What one node answered to a ranged read of a data piece.
struct RangePart {
    /// The piece's index in the pack.
    index: usize,
    /// Pack offset of the first byte.
    offset: u64,
    bytes: Vec<u8>,
}

/// A pack slot as a reader sees it.
#[derive(Clone, Debug)]
pub(crate) struct SlotView {
    pub index: usize,
    pub node: NodeId,
    pub addr: Option<String>,
    pub healthy: bool,
}

/// A pack with the addresses of its pieces' nodes.
#[derive(Clone, Debug)]
pub(crate) struct PackView {
    pub pack: Pack,
    pub slots: Vec<SlotView>,
}

impl Store {
    /// Streams `range` (all of it when `None`) of a version of
    /// `bucket/key` (the latest when `version_id` is `None`).
    pub async fn get(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
    ) -> Result<(ObjectVersion, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        self.get_sealed(tenant, bucket, key, version_id, range, None)
            .await
    }

    /// [`Store::get`] with the client's key of a version sealed under one
    /// (S3 SSE-C): a version sealed under a customer key reads only with
    /// that key ([`crate::CustomerKeyError`] otherwise, before any piece is
    /// fetched), and a key given for any other version is refused.
    pub async fn get_sealed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        customer: Option<&stratus_chunk::CustomerKey>,
    ) -> Result<(ObjectVersion, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        let kek = self.kek()?;
        let (version, scope, plan) = self.read(|s| {
            s.store.bucket_of(tenant, bucket)?;
            let v = s.store.version(bucket, key, version_id)?.clone();
            if v.is_delete_marker() {
                return Err(StoreError::not_found(format!(
                    "{bucket}/{key} version {} is a delete marker",
                    v.version_id
                )));
            }
            let r = range.unwrap_or(ByteRange {
                start: 0,
                end: v.size,
            });
            if r.start > r.end || r.end > v.size {
                return Err(StoreError::invalid(format!(
                    "range {}..{} is outside the object's {} bytes",
                    r.start, r.end, v.size
                )));
            }
            let Some(data) = &v.data else {
                return Err(StoreError::internal("version without data"));
            };
            let scope = crate::customer::scope_for(&kek, s, &data.scope, customer)?;
            let plan = plan_read(&s.store, data, r)?;
            Ok((v, scope, plan))
        })?;
        let store = self.clone();
        let scope = Arc::new(scope);
        let stream = futures::stream::iter(plan)
            .map(move |p| {
                let store = store.clone();
                let scope = scope.clone();
                async move { store.read_pack(&scope, p).await }
            })
            .buffered(READ_AHEAD)
            .flat_map(|r| match r {
                Ok(parts) => futures::stream::iter(parts.into_iter().map(Ok)).left_stream(),
                Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
            })
            .boxed();
        Ok((version, stream))
    }

    async fn read_pack(
        &self,
        scope: &Arc<ScopeKey>,
        p: PackRead,
    ) -> Result<Vec<Bytes>, StoreError> {
        let view = self.read(|s| pack_view(s, p.pack))?;
        let span = p.span();
        self.read_span(&view, span, |bytes, base| {
            let (scope, p) = (scope.clone(), p.shifted(base));
            async move {
                tokio::task::spawn_blocking(move || open_pack_chunks(&scope, p, bytes))
                    .await
                    .map_err(StoreError::thread("decoder"))?
            }
        })
        .await
    }

    /// What `open` makes of the bytes `span` of a pack's data. First by
    /// ranged reads of the data pieces that hold them, hashed neither on the
    /// nodes nor here: AES-GCM authenticates every sealed chunk, so bytes a
    /// node altered do not open. When a range cannot be read or `open`
    /// refuses what was read, `open` is given the whole stripe decoded from
    /// `k` verified pieces instead (which reports pieces that fail
    /// verification), and a node whose range differs from the verified
    /// stripe is reported as a liar. `open` gets the bytes and the pack
    /// offset of their first byte.
    async fn read_span<T, F, Fut>(
        &self,
        view: &PackView,
        span: std::ops::Range<u64>,
        open: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(Vec<u8>, u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let pack = view.pack.id;
        let ranged = match self.read_sealed_parts(view, span.clone()).await {
            Ok(parts) => {
                // A copy: `open` works in place, and `parts` stay to find
                // a liar if it fails.
                let bytes = parts
                    .iter()
                    .map(|p| p.bytes.as_slice())
                    .collect::<Vec<_>>()
                    .concat();
                match open(bytes, span.start).await {
                    Ok(out) => return Ok(out),
                    Err(e) => {
                        tracing::warn!(pack, error = %e, "ranged read did not open; reading the whole stripe");
                        Some(parts)
                    }
                }
            }
            Err(e) => {
                tracing::debug!(pack, error = %e, "ranged read failed; reading the whole stripe");
                None
            }
        };
        let (data, verified) = self.fetch_pack(view).await?;
        if let Some(parts) = ranged {
            self.report_range_liars(view, &parts, &data, &verified);
        }
        open(data, 0).await
    }

    /// Reports the nodes whose ranged answer in `parts` differs from the
    /// verified stripe `data` although the same node just served that
    /// piece whole and right (`verified`): its disk is sound, so the altered
    /// range is a lie, struck as one. A range that differs from a piece not
    /// read whole may be rot the node could not see (ranges are not hashed):
    /// that is for the piece read or the scrub to find, not a strike.
    fn report_range_liars(
        &self,
        view: &PackView,
        parts: &[RangePart],
        data: &[u8],
        verified: &[bool],
    ) {
        let liars: Vec<&RangePart> = parts
            .iter()
            .filter(|p| {
                let at = p.offset as usize;
                verified.get(p.index).copied().unwrap_or(false)
                    && data.get(at..at + p.bytes.len()) != Some(p.bytes.as_slice())
            })
            .collect();
        if liars.is_empty() {
            return;
        }
        let bad = liars
            .iter()
            .map(|p| (view.pack.id, p.index as u32, view.slots[p.index].node))
            .collect();
        let strikes = liars
            .iter()
            .map(|p| {
                (
                    view.slots[p.index].node,
                    Failure::WrongBytes,
                    format!(
                        "piece {}: served a range that does not match the piece",
                        view.pack.pieces[p.index].id
                    ),
                )
            })
            .collect();
        self.report_bad_pieces(bad, strikes);
    }

    /// Marks `bad` pieces (pack, index, node) and strikes their nodes with
    /// `strikes`, in the background: a read does not wait for Raft.
    fn report_bad_pieces(
        &self,
        bad: Vec<(u64, u32, NodeId)>,
        strikes: Vec<(NodeId, Failure, String)>,
    ) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(e) = store.write(StoreCommand::MarkBad { pieces: bad }).await {
                tracing::warn!(error = %e, "could not report bad pieces");
            }
            // Lost or lied-about pieces count against their nodes.
            let mut by_node: BTreeMap<NodeId, Vec<(Failure, String)>> = BTreeMap::new();
            for (node, f, why) in strikes {
                by_node.entry(node).or_default().push((f, why));
            }
            for (node, failures) in by_node {
                store.strike(node, failures).await;
            }
        });
    }

    /// Fetches and decodes a whole pack; also says which pieces were read
    /// whole and verified.
    pub(crate) async fn fetch_pack(
        &self,
        view: &PackView,
    ) -> Result<(Vec<u8>, Vec<bool>), StoreError> {
        let pieces = self
            .fetch_pieces(view, usize::from(view.pack.profile.k))
            .await?;
        let verified = pieces.iter().map(Option::is_some).collect();
        let profile = Profile {
            k: view.pack.profile.k,
            m: view.pack.profile.m,
        };
        let data_len = view.pack.data_len;
        let data =
            tokio::task::spawn_blocking(move || decode_stripe_owned(profile, data_len, pieces))
                .await
                .map_err(StoreError::thread("decoder"))??;
        Ok((data, verified))
    }

    /// Fetches `need` verified pieces of a pack (data pieces first), trying
    /// further pieces when one is unreachable or fails verification; reports
    /// pieces that fail verification as bad.
    pub(crate) async fn fetch_pieces(
        &self,
        view: &PackView,
        need: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let width = view.pack.pieces.len();
        let mut candidates: Vec<&SlotView> = view
            .slots
            .iter()
            .filter(|s| s.healthy && s.addr.is_some())
            .collect();
        // Nodes that failed recently last; data pieces first (decoding a
        // systematic stripe from them is a copy).
        let k = usize::from(view.pack.profile.k);
        candidates.sort_by_key(|s| (self.suspect(&s.node), s.index >= k));
        let mut candidates = candidates.into_iter();
        let mut pieces: Vec<Option<Vec<u8>>> = vec![None; width];
        let mut got = 0;
        let mut bad = Vec::new();
        let mut strikes: Vec<(NodeId, Failure, String)> = Vec::new();
        let mut errors = Vec::new();
        let mut inflight = FuturesUnordered::new();
        let launch = |slot: &SlotView| {
            let store = self.clone();
            let slot = slot.clone();
            let id = view.pack.pieces[slot.index].id;
            async move {
                let addr = slot.addr.clone().unwrap_or_default();
                let r = store.piece(slot.node, &addr, piece_rpc::Get { id }).await;
                let verdict = match r {
                    Ok(b) => {
                        let (b, ok) = tokio::task::spawn_blocking(move || {
                            let ok = piece_id(&b) == id;
                            (b, ok)
                        })
                        .await
                        .unwrap_or_default();
                        if ok {
                            Fetched::Ok(b)
                        } else {
                            Fetched::Bad(
                                format!("node {} served wrong bytes", slot.node.short()),
                                true,
                            )
                        }
                    }
                    Err(PieceCallError::Answer(PieceRpcError::Refused {
                        kind: PieceErrorKind::Corrupt,
                        message,
                    })) => Fetched::Bad(message, false),
                    Err(PieceCallError::Answer(e)) => Fetched::Failed(e.to_string()),
                    Err(PieceCallError::Call(e)) => Fetched::Failed(e.to_string()),
                };
                (slot, verdict)
            }
        };
        for s in candidates.by_ref().take(need) {
            inflight.push(launch(s));
        }
        while let Some((slot, verdict)) = inflight.next().await {
            match verdict {
                Fetched::Ok(b) => {
                    pieces[slot.index] = Some(b);
                    got += 1;
                    if got >= need {
                        break;
                    }
                    continue;
                }
                Fetched::Bad(why, lie) => {
                    tracing::warn!(pack = view.pack.id, piece = slot.index, node = %slot.node.short(), "bad piece: {why}");
                    bad.push((view.pack.id, slot.index as u32, slot.node));
                    let piece = view.pack.pieces[slot.index].id;
                    strikes.push(if lie {
                        (
                            slot.node,
                            Failure::WrongBytes,
                            format!("piece {piece}: served bytes that do not hash to it"),
                        )
                    } else {
                        (
                            slot.node,
                            Failure::Lost,
                            format!("piece {piece}: corrupt (found by a read)"),
                        )
                    });
                    errors.push(why);
                }
                Fetched::Failed(why) => errors.push(why),
            }
            if let Some(s) = candidates.next() {
                inflight.push(launch(s));
            }
        }
        if !bad.is_empty() {
            self.report_bad_pieces(bad, strikes);
        }
        if got < need {
            return Err(StoreError::unavailable(format!(
                "pack {}: only {got} of the {need} pieces needed could be read ({})",
                view.pack.id,
                errors.join("; ")
            )));
        }
        Ok(pieces)
    }
}

/// Opens the chunks `p` reads out of their decoded pack `data`, in place:
/// a raw chunk's bytes are handed out as slices of `data`, not copied. A
/// chunk read more than once (an object repeating content) is opened once:
/// its bytes are plaintext after the first opening.
fn open_pack_chunks(
    scope: &ScopeKey,
    p: PackRead,
    mut data: Vec<u8>,
) -> Result<Vec<Bytes>, StoreError> {
    // Where each chunk's plaintext is, by the chunk's offset in the pack.
    let mut opened: BTreeMap<u64, Result<std::ops::Range<usize>, Bytes>> = BTreeMap::new();
    for c in &p.chunks {
        if opened.contains_key(&c.offset) {
            continue;
        }
        let start = c.offset as usize;
        let sealed = data
            .get_mut(start..start + c.sealed_len as usize)
            .ok_or_else(|| {
                StoreError::internal(format!("chunk {} outside pack {}", c.id, p.pack))
            })?;
        let o = open_chunk_in_place(scope, &c.id, sealed, MAX_CHUNK_LEN).map_err(|source| {
            StoreError::Chunk {
                what: format!(
                    "chunk {} of pack {} does not verify although its pieces did",
                    c.id, p.pack
                ),
                source,
            }
        })?;
        let place = match o {
            Opened::InPlace(r) => Ok(start + r.start..start + r.end),
            Opened::Owned(v) => Err(Bytes::from(v)),
        };
        opened.insert(c.offset, place);
    }
    let data = Bytes::from(data);
    p.chunks
        .iter()
        .map(|c| {
            let plain = match opened.get(&c.offset) {
                Some(Ok(r)) => data.slice(r.clone()),
                Some(Err(owned)) => owned.clone(),
                None => return Err(StoreError::internal("a chunk was not opened")),
            };
            let end = (c.skip + c.take).min(plain.len());
            Ok(plain.slice(c.skip.min(end)..end))
        })
        .collect()
}

enum Fetched {
    Ok(Vec<u8>),
    /// The piece is bad: `true` when the node served bytes that do not hash
    /// to the id (a lie: an honest node verifies what it reads), `false`
    /// when it admits the piece is corrupt.
    Bad(String, bool),
    Failed(String),
}

/// The pack `id` with its slots' addresses and health.
pub(crate) fn pack_view(s: &stratus_state::State, id: u64) -> Result<PackView, StoreError> {
    let pack = s
        .store
        .pack(id)
        .ok_or_else(|| StoreError::internal(format!("pack {id} is missing from the metadata")))?;
    let slots = pack
        .pieces
        .iter()
        .enumerate()
        .map(|(index, slot)| SlotView {
            index,
            node: slot.node,
            addr: Store::addr_of(s, &slot.node),
            healthy: ObjectStore::slot_healthy(slot, &s.nodes),
        })
        .collect();
    Ok(PackView { pack, slots })
}

/// Which chunks of which packs cover `range`.
fn plan_read(
    st: &ObjectStore,
    data: &stratus_state::objects::ObjectData,
    range: ByteRange,
) -> Result<Vec<PackRead>, StoreError> {
    let mut plan: Vec<PackRead> = Vec::new();
    let mut pos = 0u64;
    for c in &data.chunks {
        let len = u64::from(c.len);
        let (cs, ce) = (pos, pos + len);
        pos = ce;
        if ce <= range.start || cs >= range.end || len == 0 {
            continue;
        }
        let e = st.chunk(&c.id).ok_or_else(|| {
            StoreError::internal(format!("chunk {} is missing from the index", c.id))
        })?;
        let skip = range.start.saturating_sub(cs) as usize;
        let take = (range.end.min(ce) - cs.max(range.start)) as usize;
        let read = ChunkRead {
            id: c.id,
            offset: e.offset,
            sealed_len: e.sealed_len,
            skip,
            take,
        };
        match plan.last_mut() {
            Some(p) if p.pack == e.pack => p.chunks.push(read),
            _ => plan.push(PackRead {
                pack: e.pack,
                chunks: vec![read],
            }),
        }
    }
    Ok(plan)
}

impl Store {
    /// The plain bytes of chunk `id`, sealed under `scope`.
    ///
    /// Reads only the byte ranges of the data pieces that hold the sealed
    /// chunk (a stripe is systematic: data piece `i` is bytes
    /// `i*piece_len..(i+1)*piece_len` of the pack). A range cannot be checked
    /// against its piece id, but AES-GCM authenticates the sealed chunk, so
    /// bytes a node altered never open. When a data piece is unreachable or
    /// the bytes do not open, the whole stripe is read from any `k` verified
    /// pieces instead (which also reports bad pieces for repair).
    pub async fn read_chunk(&self, scope: &KeyScope, id: &ChunkId) -> Result<Vec<u8>, StoreError> {
        let kek = self.kek()?;
        let (key, entry, view) = self.read(|s| {
            let key = Store::scope_key(&kek, s, scope)?;
            let entry = s
                .store
                .chunk(id)
                .ok_or_else(|| StoreError::not_found(format!("chunk {id} is not stored")))?;
            let view = pack_view(s, entry.pack)?;
            Ok::<_, StoreError>((key, entry, view))
        })?;
        let key = Arc::new(key);
        let span = entry.offset..entry.offset + u64::from(entry.sealed_len);
        self.read_span(&view, span.clone(), |bytes, base| {
            let key = key.clone();
            let id = *id;
            let at = (span.start - base) as usize..(span.end - base) as usize;
            async move {
                let sealed = match bytes.get(at.clone()) {
                    Some(s) if s.len() == bytes.len() => bytes,
                    Some(s) => s.to_vec(),
                    None => {
                        return Err(StoreError::internal(format!(
                            "chunk {id} outside pack {}",
                            entry.pack
                        )))
                    }
                };
                tokio::task::spawn_blocking(move || open_chunk(&key, &id, &sealed))
                    .await
                    .map_err(StoreError::thread("decoder"))?
                    .map_err(|source| StoreError::Chunk {
                        what: format!("chunk {id} does not open"),
                        source,
                    })
            }
        })
        .await
    }

    /// The bytes `span` of a pack's data, by ranged reads of the data
    /// pieces that hold them, one part per piece in order (unverified: the
    /// caller authenticates).
    async fn read_sealed_parts(
        &self,
        view: &PackView,
        span: std::ops::Range<u64>,
    ) -> Result<Vec<RangePart>, StoreError> {
        let piece_len = view.pack.piece_len.max(1);
        let (offset, end) = (span.start, span.end);
        if end > view.pack.data_len || offset >= end {
            return Err(StoreError::internal(format!(
                "bytes {offset}..{end} are not in pack {}",
                view.pack.id
            )));
        }
        let first = offset / piece_len;
        let last = end.saturating_sub(1) / piece_len;
        let reads = (first..=last).map(|i| {
            let start = (i * piece_len).max(offset);
            let stop = ((i + 1) * piece_len).min(end);
            let slot = view.slots.get(i as usize).cloned();
            let piece = view.pack.pieces.get(i as usize).map(|p| p.id);
            async move {
                let (Some(slot), Some(id)) = (slot, piece) else {
                    return Err(StoreError::internal(format!(
                        "pack {} has no data piece {i}",
                        view.pack.id
                    )));
                };
                let Some(addr) = slot.addr.clone().filter(|_| slot.healthy) else {
                    return Err(StoreError::unavailable(format!(
                        "data piece {i} is not reachable"
                    )));
                };
                let want = stop - start;
                let req = piece_rpc::GetRange {
                    id,
                    offset: start - i * piece_len,
                    len: want,
                };
                match self.piece(slot.node, &addr, req).await {
                    Ok(bytes) if bytes.len() as u64 == want => Ok(RangePart {
                        index: i as usize,
                        offset: start,
                        bytes,
                    }),
                    Ok(b) => Err(StoreError::unavailable(format!(
                        "node {} returned {} bytes of {want}",
                        slot.node.short(),
                        b.len()
                    ))),
                    Err(PieceCallError::Call(e)) => Err(e),
                    Err(PieceCallError::Answer(e)) => Err(StoreError::unavailable(format!(
                        "node {} answered a ranged read with {e}",
                        slot.node.short()
                    ))),
                }
            }
        });
        futures::future::try_join_all(reads).await
    }
}
