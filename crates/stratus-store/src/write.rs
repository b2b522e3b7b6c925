//! The put path: body stream → chunks → dedupe → sealed packs → pieces on
//! nodes → committed pack → committed manifest.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use stratus_chunk::{
    chunk_id, encode_stripe, piece_id, piece_len, seal_chunk, ChunkId, PackBuilder, PieceId,
    Profile, ScopeKey, StreamChunker,
};
use stratus_proto::{piece_rpc, PieceRpcError};
use stratus_sched::{place_stripe, Held, StorageNode};
use stratus_state::objects::{
    validate_key, ErasureProfile, KeyScope, ManifestChunk, NewChunk, ObjectData, ObjectVersion,
    StoreCommand, VersionAttrs, WriteCondition,
};
use stratus_types::NodeId;
use tokio::sync::mpsc;

use crate::customer::{CustomerKeyError, Sealing};
use crate::net::PieceCallError;
use crate::{now_ms, read_state, StorageTarget, Store, StoreError};
use stratus_chunk::CustomerKey;

/// Attempts to find a node for each piece before a put fails.
const PLACEMENT_ROUNDS: usize = 3;
/// Body buffers queued for the encoder.
const BODY_QUEUE: usize = 8;

/// Content type, user metadata, attributes and precondition of a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutMeta {
    /// Content type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_meta: BTreeMap<String, String>,
    /// Stored headers and tags (part sizes are the store's to set).
    pub attrs: VersionAttrs,
    /// Checked by the state machine against the key's latest version when
    /// the version is committed (after the body is stored).
    pub condition: Option<WriteCondition>,
}

/// What a put stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// Version id.
    pub version_id: String,
    /// Bytes of the object.
    pub size: u64,
    /// Hex MD5 of the object.
    pub etag: String,
    /// Hex BLAKE3 of the object.
    pub blake3: String,
    /// Chunks in the object.
    pub chunks: u64,
    /// Chunks that were not stored yet (the rest deduped).
    pub new_chunks: u64,
    /// Bytes of pieces written to storage nodes.
    pub piece_bytes: u64,
}

/// An ingested body, before its manifest is committed.
pub(crate) struct Ingested {
    pub data: ObjectData,
    pub size: u64,
    pub md5: String,
    pub blake3: String,
    pub new_chunks: u64,
    pub piece_bytes: u64,
}

/// A pack coded into pieces, ready to upload.
struct EncodedPack {
    data_len: u64,
    piece_len: u64,
    pieces: Vec<Vec<u8>>,
    ids: Vec<PieceId>,
    chunks: Vec<NewChunk>,
}

/// What the encoder thread produced besides its packs.
struct Encoded {
    chunks: Vec<ManifestChunk>,
    new_chunks: u64,
}

struct EncodeCtx {
    scope: ScopeKey,
    profile: Profile,
    params: stratus_chunk::ChunkerParams,
    pack_bytes: usize,
    zstd_level: i32,
    known: Box<dyn Fn(&ChunkId) -> bool + Send>,
    /// Every body buffer is one chunk, cut by the caller (images cut at
    /// file ends); otherwise the body is chunked here.
    prechunked: bool,
}

fn encode_loop(
    mut rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<EncodedPack>,
    ctx: EncodeCtx,
) -> Result<Encoded, StoreError> {
    let mut chunker = StreamChunker::new(ctx.params)?;
    let mut out = Encoded {
        chunks: Vec::new(),
        new_chunks: 0,
    };
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut pack = PackBuilder::new(ctx.pack_bytes);
    let mut pack_chunks: Vec<NewChunk> = Vec::new();
    let mut failed = None;

    let flush = |pack: &mut PackBuilder, chunks: &mut Vec<NewChunk>| -> Result<(), StoreError> {
        if pack.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(pack, PackBuilder::new(ctx.pack_bytes)).finish();
        let pieces = encode_stripe(ctx.profile, &data)?;
        let ids = pieces.iter().map(|p| piece_id(p)).collect();
        let encoded = EncodedPack {
            data_len: data.len() as u64,
            piece_len: piece_len(ctx.profile, data.len() as u64),
            pieces,
            ids,
            chunks: std::mem::take(chunks),
        };
        tx.blocking_send(encoded)
            .map_err(|_| StoreError::unavailable("the upload was aborted"))
    };
    let mut on_chunk = |plain: &[u8], out: &mut Encoded| -> Result<(), StoreError> {
        let id = chunk_id(&ctx.scope, plain);
        out.chunks.push(ManifestChunk {
            id,
            len: plain.len() as u32,
        });
        if seen.contains(&id) || (ctx.known)(&id) {
            return Ok(());
        }
        seen.insert(id);
        out.new_chunks += 1;
        let sealed = seal_chunk(&ctx.scope, &id, plain, ctx.zstd_level);
        if !pack.is_empty() && pack.len() + sealed.len() > ctx.pack_bytes {
            flush(&mut pack, &mut pack_chunks)?;
        }
        let (offset, sealed_len) = pack.add(&sealed);
        pack_chunks.push(NewChunk {
            id,
            offset,
            sealed_len,
            plain_len: plain.len() as u32,
        });
        Ok(())
    };
    while let Some(data) = rx.blocking_recv() {
        if ctx.prechunked {
            on_chunk(&data, &mut out)?;
            continue;
        }
        chunker.push_with(&data, |c| {
            if failed.is_none() {
                if let Err(e) = on_chunk(c, &mut out) {
                    failed = Some(e);
                }
            }
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
    }
    if let Some(last) = chunker.finish() {
        on_chunk(&last, &mut out)?;
    }
    flush(&mut pack, &mut pack_chunks)?;
    Ok(out)
}

/// MD5 and BLAKE3 of the whole body, on their own thread.
fn hash_loop(mut rx: mpsc::Receiver<Bytes>) -> (u64, String, String) {
    let mut md5 = Md5::new();
    let mut b3 = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some(data) = rx.blocking_recv() {
        size += data.len() as u64;
        md5.update(&data);
        b3.update(&data);
    }
    (
        size,
        hex::encode(md5.finalize()),
        b3.finalize().to_hex().to_string(),
    )
}

impl Store {
    /// Stores `body` as a new version of `bucket/key` of `tenant`. Returns
    /// once every piece is durable on its node and the manifest is
    /// committed. A body that fails midway stores no version.
    pub async fn put<S>(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
        body: S,
    ) -> Result<PutResult, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        self.put_sealed(tenant, bucket, key, meta, body, None, |_| {})
            .await
    }

    /// [`Store::put`], sealed under the client's key when `customer` is
    /// given (S3 SSE-C: a fresh random salt, see [`crate::customer`]), with
    /// `finish` completing the version's attributes once the body has
    /// streamed (e.g. with a checksum the body's trailer carried) and before
    /// the version is committed.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_sealed<S>(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
        body: S,
        customer: Option<&CustomerKey>,
        finish: impl FnOnce(&mut VersionAttrs) + Send,
    ) -> Result<PutResult, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        validate_key(key).map_err(StoreError::invalid)?;
        // A tenant already at its stored-bytes quota is refused before any
        // piece is written (the commit checks the quota exactly).
        if let Some(e) = self.read(|s| s.stored_bytes_full(tenant, bucket, key)) {
            return Err(e.into());
        }
        let sealing = match customer {
            None => Sealing::Bucket(rand::random()),
            Some(key) => Sealing::Customer {
                seal: key.seal(rand::random()),
                key,
            },
        };
        let ing = self
            .ingest_sealed(tenant, bucket, body, sealing, false)
            .await?;
        let version = ObjectVersion {
            version_id: String::new(),
            size: ing.size,
            etag: ing.md5.clone(),
            blake3: ing.blake3.clone(),
            created_ms: now_ms(),
            content_type: meta.content_type,
            user_meta: meta.user_meta,
            data: Some(ing.data.clone()),
        };
        let mut attrs = meta.attrs;
        attrs.part_sizes.clear();
        attrs.upload_id = None;
        finish(&mut attrs);
        let r = self
            .write(StoreCommand::PutObjectWith {
                tenant: tenant.to_string(),
                bucket: bucket.to_string(),
                key: key.to_string(),
                version,
                attrs: attrs.to_doc(),
                condition: meta.condition,
            })
            .await?;
        Ok(PutResult {
            version_id: r.id.unwrap_or_default(),
            size: ing.size,
            etag: ing.md5,
            blake3: ing.blake3,
            chunks: ing.data.chunks.len() as u64,
            new_chunks: ing.new_chunks,
            piece_bytes: ing.piece_bytes,
        })
    }

    /// Streams `body` into committed packs and returns its manifest (not
    /// committed as a version). With `prechunked`, every item of `body` is
    /// one chunk.
    pub(crate) async fn ingest<S>(
        &self,
        tenant: &str,
        bucket: &str,
        body: S,
        private_seed: [u8; 32],
        prechunked: bool,
    ) -> Result<Ingested, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        self.ingest_sealed(
            tenant,
            bucket,
            body,
            Sealing::Bucket(private_seed),
            prechunked,
        )
        .await
    }

    /// [`Store::ingest`] under the key `sealing` says.
    pub(crate) async fn ingest_sealed<S>(
        &self,
        tenant: &str,
        bucket: &str,
        mut body: S,
        sealing: Sealing<'_>,
        prechunked: bool,
    ) -> Result<Ingested, StoreError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin,
    {
        let kek = self.kek()?;
        let (scope, key_scope, profile) = self.read(|s| {
            let b = s.store.bucket_of(tenant, bucket)?;
            let (key_scope, scope) = match &sealing {
                Sealing::Bucket(private_seed) => {
                    let key_scope = Store::key_scope(&kek, b, *private_seed)?;
                    let scope = Store::scope_key(&kek, s, &key_scope)?;
                    (key_scope, scope)
                }
                Sealing::Customer { key, seal } => (
                    KeyScope::customer(*seal),
                    seal.scope(key).ok_or(CustomerKeyError::Mismatch)?,
                ),
            };
            let profile = Store::profile_for(s, b);
            let ready = Store::targets(s).len();
            if ready < profile.width() {
                return Err(StoreError::unavailable(format!(
                    "bucket {bucket:?} stores {profile} stripes, which need {} storage nodes; {ready} are ready",
                    profile.width()
                )));
            }
            Ok::<_, StoreError>((scope, key_scope, profile))
        })?;
        let cfg = &self.inner.cfg;
        let meta = self.inner.meta.clone();
        let ctx = EncodeCtx {
            scope,
            profile: Profile {
                k: profile.k,
                m: profile.m,
            },
            params: cfg.chunker,
            pack_bytes: cfg.pack_bytes,
            zstd_level: cfg.zstd_level,
            known: Box::new(move |id| read_state(meta.as_ref(), |s| s.store.chunk(id).is_some())),
            prechunked,
        };
        let (body_tx, body_rx) = mpsc::channel::<Bytes>(BODY_QUEUE);
        let (hash_tx, hash_rx) = mpsc::channel::<Bytes>(BODY_QUEUE);
        let (pack_tx, mut pack_rx) = mpsc::channel::<EncodedPack>(1);
        let encoder = tokio::task::spawn_blocking(move || encode_loop(body_rx, pack_tx, ctx));
        let hasher = tokio::task::spawn_blocking(move || hash_loop(hash_rx));

        let feed = async move {
            while let Some(data) = body.next().await {
                let data = data.map_err(StoreError::Body)?;
                if data.is_empty() {
                    continue;
                }
                let aborted = || StoreError::unavailable("the upload was aborted");
                hash_tx.send(data.clone()).await.map_err(|_| aborted())?;
                body_tx.send(data).await.map_err(|_| aborted())?;
            }
            Ok::<(), StoreError>(())
        };
        let packs = futures::stream::poll_fn(move |cx| pack_rx.poll_recv(cx));
        let upload = packs
            .map(|p| self.upload_pack(profile, p))
            .buffer_unordered(cfg.packs_in_flight.max(1))
            .try_fold(0u64, |acc, n| async move { Ok(acc + n) });
        let (_, piece_bytes) = tokio::try_join!(feed, upload)?;
        let enc = encoder.await.map_err(StoreError::thread("encoder"))??;
        let (size, md5, blake3) = hasher.await.map_err(StoreError::thread("hasher"))?;
        Ok(Ingested {
            data: ObjectData {
                scope: key_scope,
                chunks: enc.chunks,
            },
            size,
            md5,
            blake3,
            new_chunks: enc.new_chunks,
            piece_bytes,
        })
    }

    /// Places and writes the pieces of one pack, then commits it. Returns the
    /// bytes written.
    async fn upload_pack(
        &self,
        profile: ErasureProfile,
        pack: EncodedPack,
    ) -> Result<u64, StoreError> {
        let width = pack.pieces.len();
        let mut chosen: Vec<Option<StorageTarget>> = vec![None; width];
        let mut failed: Vec<NodeId> = Vec::new();
        let mut last_error = String::new();
        for _ in 0..PLACEMENT_ROUNDS {
            let todo: Vec<usize> = (0..width).filter(|i| chosen[*i].is_none()).collect();
            if todo.is_empty() {
                break;
            }
            let targets = self.placeable();
            let holding: Vec<Held> = chosen
                .iter()
                .flatten()
                .map(|t| Held {
                    id: t.id,
                    site: t.site.clone(),
                    owner: t.owner.clone(),
                })
                .collect();
            let usable = |avoid_suspects: bool| -> Vec<StorageNode> {
                targets
                    .iter()
                    .filter(|t| !failed.contains(&t.id))
                    .filter(|t| !avoid_suspects || !self.suspect(&t.id))
                    .map(StorageTarget::placement_node)
                    .collect()
            };
            // Nodes that failed recently only when there is no other choice.
            let mut nodes = usable(true);
            if nodes.len() < todo.len() {
                nodes = usable(false);
            }
            // One owner's nodes take at most m pieces of the stripe.
            let picked = place_stripe(
                &nodes,
                &holding,
                todo.len(),
                pack.piece_len,
                usize::from(profile.m.max(1)),
                rand::random(),
            )
            .map_err(|source| StoreError::NoPlacement {
                what: format!("cannot place {profile} pieces of {} bytes", pack.piece_len),
                source,
                last_failure: (!last_error.is_empty()).then(|| last_error.clone()),
            })?;
            let puts = todo.iter().zip(picked).map(|(&i, node)| {
                let target = targets.iter().find(|t| t.id == node).cloned();
                let req = piece_rpc::Put {
                    id: pack.ids[i],
                    bytes: pack.pieces[i].clone(),
                };
                async move {
                    let Some(t) = target else {
                        return (
                            i,
                            Err((
                                node,
                                StoreError::internal("placement chose an unknown node"),
                            )),
                        );
                    };
                    let id = t.id;
                    let r = match self.piece(t.id, &t.addr, req).await {
                        Ok(_) => Ok(t),
                        Err(PieceCallError::Answer(PieceRpcError::Refused { kind, message })) => {
                            if kind == stratus_proto::PieceErrorKind::Full {
                                self.note_full(t.id);
                            }
                            Err(StoreError::unavailable(format!(
                                "node {} refused a piece: {message}",
                                t.id.short()
                            )))
                        }
                        Err(PieceCallError::Answer(e)) => Err(StoreError::unavailable(format!(
                            "node {} answered a put with {e}",
                            t.id.short()
                        ))),
                        Err(PieceCallError::Call(e)) => Err(e),
                    };
                    (i, r.map_err(|e| (id, e)))
                }
            });
            for (i, r) in futures::future::join_all(puts).await {
                match r {
                    Ok(t) => chosen[i] = Some(t),
                    Err((node, e)) => {
                        tracing::warn!(node = %node.short(), error = %e, "piece write failed; placing it elsewhere");
                        failed.push(node);
                        last_error = e.to_string();
                    }
                }
            }
        }
        let pieces: Vec<(PieceId, NodeId)> = chosen
            .iter()
            .zip(&pack.ids)
            .map(|(t, id)| t.as_ref().map(|t| (*id, t.id)))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                StoreError::unavailable(format!(
                    "could not write every piece of a stripe after {PLACEMENT_ROUNDS} placements: {last_error}"
                ))
            })?;
        self.write(StoreCommand::CommitPack {
            profile,
            data_len: pack.data_len,
            piece_len: pack.piece_len,
            pieces,
            chunks: pack.chunks,
            now_ms: now_ms(),
        })
        .await?;
        Ok(pack.piece_len * width as u64)
    }
}
