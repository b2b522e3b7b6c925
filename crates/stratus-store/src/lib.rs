//! The object store.
//!
//! **Owns** the object store's data path and upkeep on a replica: put, get,
//! repair, scrub, audits, garbage collection, images as objects, and the
//! storage node's piece service. **Does not own** the metadata's rules
//! (`stratus-state`'s `objects`), the piece files on a lender's disk
//! (`stratus-pieces`) or the protocols (`stratus-api`, `stratus-s3`).
//!
//! A [`Store`] runs on a control replica (the trusted gateway side). It turns
//! a byte stream into a versioned object whose data lives, erasure coded and
//! encrypted, on storage nodes (untrusted lenders), and back:
//!
//! * **put** ([`Store::put`]): the body streams through the pure data path of
//!   `stratus-chunk` on a blocking thread — content-defined chunks, keyed
//!   BLAKE3 ids, dedupe against the chunk index (a chunk already stored in
//!   the bucket's scope is only referenced), zstd, AES-256-GCM — into packs
//!   of about [`StoreConfig::pack_bytes`]. Each full pack is Reed–Solomon
//!   coded into `k + m` pieces, placed on distinct nodes (distinct sites when
//!   there are enough; weighted by free space: `stratus_sched::place_pieces`),
//!   written to them (they fsync before answering), and only then committed
//!   to the replicated metadata (`CommitPack`). When the body ends, the
//!   manifest is committed (`PutObject`): **a put is acknowledged only once
//!   every piece is durable on its node and the manifest is committed on a
//!   quorum.** An upload that dies midway commits no version, so nothing is
//!   visible; its packs and pieces are reclaimed by garbage collection.
//!   At most [`StoreConfig::packs_in_flight`] packs are in memory, whatever
//!   the object's size.
//! * **get** ([`Store::get`]): the manifest gives the chunks covering the
//!   asked range; their packs are fetched (any `k` pieces, data pieces
//!   first, the next pack prefetched while the current one is sent), every
//!   piece is checked against its BLAKE3 id, a piece that fails (or a node
//!   that answers with wrong bytes) is reported bad and replaced by another
//!   piece, and each chunk is decrypted and verified against its id.
//! * **maintenance** ([`Store::maintain`], on the Raft leader only): repair
//!   rebuilds the pieces of stripes that lost some (node lost, piece bad)
//!   onto healthy nodes; scrub asks storage nodes to re-hash their pieces
//!   and then *challenges* them ([`audit`]: Bao proofs of random ranges,
//!   checked against the piece ids; failures mark the node, whose pieces
//!   are then rebuilt elsewhere and which gets no new pieces);
//!   garbage collection drops unreferenced chunks and empty packs and deletes
//!   their pieces, and deletes orphan pieces nodes hold that nothing
//!   references (interrupted uploads, pieces moved away by repair);
//!   [`lifecycle`] passes carry out buckets' lifecycle rules (bounded,
//!   resumable range scans proposing conditional deletes and aborts).
//! * **modules** ([`modules`]): WASM modules are objects of their tenant's
//!   images bucket (`modules/<hex BLAKE3>`), streamed in by
//!   [`Store::ingest_module`] and committed with their state reference by
//!   [`Store::commit_module`]; agents read their chunks as they read images'.
//! * **free space** (`usage`): every replica measures each storage node's
//!   free space and places by the smaller of it and the metadata's figure;
//!   a node that refuses a piece as full gets none until it has space.
//! * **serve** ([`server::serve`]): the storage node's side, answering
//!   [`PieceRequest`]s from control replicas out of a local
//!   [`stratus_pieces::PieceStore`].
//!
//! The metadata and the network are traits ([`Meta`], [`Pieces`]), so the
//! store is tested without either.

pub mod audit;
mod customer;
mod images;
mod keys;
pub mod lifecycle;
mod maintain;
pub mod modules;
mod net;
mod read;
mod s3api;
pub mod server;
mod usage;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use stratus_chunk::ChunkerParams;
use stratus_proto::{PieceRequest, PieceResponse};
use stratus_state::objects::{Bucket, ErasureProfile};
use stratus_state::{Command, CommandResult, State};
use stratus_types::{ErrorCode, NodeId, NodeStatus};

pub use audit::AuditReport;
pub use customer::{fresh_seal, CustomerKeyError};
pub use images::{normalize_image_name, ImageInfo, ImportReport, FLIST_CONTENT_TYPE};
pub use lifecycle::LifecycleReport;
pub use maintain::{GcReport, MaintenanceStats, RepairReport, ScrubReport};
pub use modules::{IngestedModule, StoredModule, MODULE_CONTENT_TYPE};
pub use net::NetPieces;
pub use read::ByteRange;
pub use s3api::PartPut;
pub use stratus_chunk::{CustomerKey, CustomerSeal};
/// A pinned image (defined with the other workload references).
pub use stratus_types::ImageRef;
pub use usage::NodeSpace;
pub use write::{PutMeta, PutResult};

/// An object-store failure. The variant says what went wrong (callers
/// match on it); [`StoreError::code`] gives its stable [`ErrorCode`], from
/// which the API's HTTP status and the S3 gateway's error code derive.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state machine refused the command (its kind and words).
    #[error(transparent)]
    Rejected(#[from] stratus_state::ApplyError),
    /// The replicated metadata could not take the command (no leader, the
    /// control plane out of reach), in the control plane's words.
    #[error("{message}")]
    Meta {
        /// The control plane's code for it.
        code: ErrorCode,
        /// The control plane's message.
        message: String,
    },
    /// The request is malformed: a key, range, part number or image name.
    #[error("{0}")]
    Invalid(String),
    /// Reading the client's upload body failed.
    #[error("reading the upload: {0}")]
    Body(#[source] std::io::Error),
    /// An object version, upload, chunk or image does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A module is larger than the limit.
    #[error("the module is larger than the limit of {limit} bytes")]
    ModuleTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A container image could not be imported: over an import limit
    /// ([`ErrorCode::TooLarge`]) or not a valid image
    /// ([`ErrorCode::BadRequest`]).
    #[error(transparent)]
    Image(stratus_flist::FlistError),
    /// A storage node could not be reached or did not answer in time.
    #[error("storage node {node} at {addr}: {source}")]
    Node {
        /// The node (short id).
        node: String,
        /// The address dialled.
        addr: String,
        /// Why (boxed: the transport's error is large).
        #[source]
        source: Box<stratus_net::NetError>,
    },
    /// No storage nodes can take the pieces of a stripe (too few, too full,
    /// too few owners): `what` says which stripe, `source` why, and
    /// `last_failure` the last node that refused a piece of it, if any.
    #[error("{what}: {source}{}", last_failure.as_ref().map(|l| format!(" (last failure: {l})")).unwrap_or_default())]
    NoPlacement {
        /// What was being placed.
        what: String,
        /// Why the scheduler found no homes.
        #[source]
        source: stratus_sched::PiecePlacementError,
        /// The last refusal of a node, when earlier placements failed.
        last_failure: Option<String>,
    },
    /// Storage is out of reach: too few healthy nodes, a node refused or
    /// answered wrongly, the upload was aborted, a key is not here yet.
    #[error("{0}")]
    Unavailable(String),
    /// The data path failed (a chunk or pack did not encode or decode).
    #[error("data path: {0}")]
    DataPath(#[from] stratus_chunk::ChunkError),
    /// A chunk did not open although it was read (`what` names it).
    #[error("{what}: {source}")]
    Chunk {
        /// Which chunk, and where it was read from.
        what: String,
        /// Why it did not open.
        #[source]
        source: stratus_chunk::ChunkError,
    },
    /// A sealed secret did not open or seal with the cluster's key.
    #[error(transparent)]
    Sealing(#[from] stratus_chunk::wrap::WrapError),
    /// An image's flist did not encode.
    #[error(transparent)]
    Flist(stratus_flist::FlistError),
    /// A worker thread of the store died (panicked or was cancelled).
    #[error("{what} thread failed: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A bug or an inconsistency of the metadata.
    #[error("{0}")]
    Internal(String),
    /// A version sealed under a client's key (S3 SSE-C) was asked for
    /// without it or with another, or a key was given for a version that
    /// has none.
    #[error(transparent)]
    CustomerKey(#[from] CustomerKeyError),
}

impl StoreError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Rejected(e) => e.code(),
            StoreError::Meta { code, .. } => *code,
            StoreError::Invalid(_) | StoreError::Body(_) => ErrorCode::BadRequest,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::ModuleTooLarge { .. } => ErrorCode::TooLarge,
            StoreError::Image(stratus_flist::FlistError::Limit(_)) => ErrorCode::TooLarge,
            StoreError::Image(_) => ErrorCode::BadRequest,
            StoreError::Node { .. }
            | StoreError::NoPlacement { .. }
            | StoreError::Unavailable(_) => ErrorCode::Unavailable,
            StoreError::DataPath(_)
            | StoreError::Chunk { .. }
            | StoreError::Sealing(_)
            | StoreError::Flist(_)
            | StoreError::Thread { .. }
            | StoreError::Internal(_) => ErrorCode::Internal,
            StoreError::CustomerKey(CustomerKeyError::Mismatch) => ErrorCode::Forbidden,
            StoreError::CustomerKey(_) => ErrorCode::BadRequest,
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable(message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        StoreError::Internal(message.into())
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        StoreError::NotFound(message.into())
    }

    pub(crate) fn thread(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| StoreError::Thread { what, source }
    }
}

/// The replicated metadata, as the store needs it.
pub trait Meta: Send + Sync + 'static {
    /// Runs `f` on the applied state of this replica.
    fn read(&self, f: &mut dyn FnMut(&State));
    /// Commits `cmd` through Raft and returns what applying it produced
    /// (`Err` when it was refused or could not be committed).
    fn write(&self, cmd: Command) -> BoxFuture<'static, Result<CommandResult, StoreError>>;
    /// The cluster's key-encryption key, which opens the sealed secrets of
    /// the state (`None` while this replica has not received it yet).
    fn kek(&self) -> Option<stratus_state::sealing::Kek>;
}

/// Reads the state through `meta`.
pub fn read_state<R>(meta: &dyn Meta, f: impl FnOnce(&State) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    meta.read(&mut |s| {
        if let Some(f) = f.take() {
            out = Some(f(s));
        }
    });
    out.expect("Meta::read runs the closure")
}

/// Calls to storage nodes' piece services.
pub trait Pieces: Send + Sync + 'static {
    /// Sends `req` to `node` at `addr` and returns its answer.
    fn call(
        &self,
        node: NodeId,
        addr: String,
        req: PieceRequest,
    ) -> BoxFuture<'static, Result<PieceResponse, StoreError>>;
}

/// Settings of the object store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Content-defined chunking sizes.
    pub chunker: ChunkerParams,
    /// Target size of a pack (bytes of sealed chunks per stripe).
    pub pack_bytes: usize,
    /// zstd level.
    pub zstd_level: i32,
    /// Packs being coded or uploaded at once per put (bounds memory).
    pub packs_in_flight: usize,
    /// Garbage collection keeps unreferenced data at least this long (it
    /// protects uploads in flight).
    pub gc_grace: Duration,
    /// How often garbage collection runs.
    pub gc_interval: Duration,
    /// How often storage nodes are asked to scrub.
    pub scrub_interval: Duration,
    /// Bytes each node re-hashes per scrub round.
    pub scrub_bytes: u64,
    /// Pieces challenged per storage node per scrub round (`audit`).
    pub audit_pieces: usize,
    /// How often storage nodes' free space is measured (`usage`).
    pub usage_interval: Duration,
    /// How often the repair queue is looked at.
    pub repair_interval: Duration,
    /// Timeout of one piece call.
    pub call_timeout: Duration,
    /// A finished workload (and an unused module) is forgotten this long
    /// after its last change (see `stratus_state::retention`).
    pub task_retention: Duration,
    /// A multipart upload open this long is aborted; its data becomes
    /// garbage.
    pub upload_expiry: Duration,
    /// How often the leader looks for things to prune.
    pub prune_interval: Duration,
    /// Size caps of image imports (the API also caps the upload with
    /// `max_archive_bytes`).
    pub image_limits: stratus_flist::ImportLimits,
    /// How often the leader runs a lifecycle pass (`lifecycle`).
    pub lifecycle_interval: Duration,
    /// The length of a "day" in lifecycle rules: 86,400 s; tests shorten
    /// it so rules of a few days can be seen acting.
    pub lifecycle_day: Duration,
    /// Keys a lifecycle pass looks at before it stops (the next pass
    /// resumes there).
    pub lifecycle_keys_per_pass: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            chunker: ChunkerParams::default(),
            pack_bytes: 8 << 20,
            zstd_level: 3,
            packs_in_flight: 2,
            gc_grace: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(300),
            scrub_interval: Duration::from_secs(600),
            scrub_bytes: 256 << 20,
            audit_pieces: 8,
            usage_interval: Duration::from_secs(10),
            repair_interval: Duration::from_secs(1),
            call_timeout: Duration::from_secs(30),
            task_retention: Duration::from_millis(
                stratus_state::retention::DEFAULT_TASK_RETENTION_MS,
            ),
            upload_expiry: Duration::from_millis(
                stratus_state::retention::DEFAULT_UPLOAD_EXPIRY_MS,
            ),
            prune_interval: Duration::from_secs(60),
            image_limits: Default::default(),
            lifecycle_interval: Duration::from_secs(300),
            lifecycle_day: Duration::from_millis(stratus_state::lifecycle::DAY_MS),
            lifecycle_keys_per_pass: 10_000,
        }
    }
}

/// The object store client of a control replica. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn Meta>,
    pieces: Arc<dyn Pieces>,
    cfg: StoreConfig,
    stats: std::sync::Mutex<MaintenanceStats>,
    /// Nodes whose last call failed, and when: tried last for a while, so a
    /// dead node that is not yet declared lost does not slow every read.
    suspects: std::sync::Mutex<BTreeMap<NodeId, std::time::Instant>>,
    /// Free space measured on storage nodes (`usage`).
    measured: std::sync::Mutex<BTreeMap<NodeId, usage::Measured>>,
    /// Where the next lifecycle pass resumes (`lifecycle`).
    lifecycle: std::sync::Mutex<lifecycle::Cursor>,
}

/// How long a node whose call failed is tried last.
const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// A storage node as the store sees it.
#[derive(Clone, Debug)]
pub(crate) struct StorageTarget {
    pub id: NodeId,
    pub addr: String,
    pub site: String,
    pub free: u64,
    /// Placement owner: the lending tenant, `""` for the operator's nodes
    /// (see [`placement_owner`]).
    pub owner: String,
    /// Its credibility (`stratus_state::reputation`), parts per million.
    pub credibility_ppm: u32,
}

/// The owner placement sees for a node of `owner`: the operator's own
/// nodes (admin tenant) are trusted and each an owner of its own (`""`);
/// every other tenant's nodes share one owner, so one lender's many nodes
/// take at most `m` pieces of a stripe.
pub(crate) fn placement_owner(owner: &str) -> String {
    if owner == stratus_types::ADMIN_TENANT {
        String::new()
    } else {
        owner.to_string()
    }
}

/// The placement owner of `node` in `state` (`""` when unknown).
pub(crate) fn owner_of(state: &State, node: &NodeId) -> String {
    state
        .nodes
        .get(node)
        .map(|n| placement_owner(&n.owner))
        .unwrap_or_default()
}

impl StorageTarget {
    /// The node as placement sees it.
    pub(crate) fn placement_node(&self) -> stratus_sched::StorageNode {
        stratus_sched::StorageNode {
            id: self.id,
            site: self.site.clone(),
            free_bytes: self.free,
            owner: self.owner.clone(),
            credibility_ppm: self.credibility_ppm,
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// A store over `meta` and `pieces`.
    pub fn new(meta: Arc<dyn Meta>, pieces: Arc<dyn Pieces>, cfg: StoreConfig) -> Store {
        Store {
            inner: Arc::new(Inner {
                meta,
                pieces,
                cfg,
                stats: Default::default(),
                suspects: Default::default(),
                measured: Default::default(),
                lifecycle: Default::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        read_state(self.inner.meta.as_ref(), f)
    }

    pub(crate) async fn write(
        &self,
        cmd: stratus_state::objects::StoreCommand,
    ) -> Result<CommandResult, StoreError> {
        self.inner.meta.write(Command::Store(cmd)).await
    }

    pub(crate) async fn call(
        &self,
        node: NodeId,
        addr: &str,
        req: PieceRequest,
    ) -> Result<PieceResponse, StoreError> {
        let r = self.inner.pieces.call(node, addr.to_string(), req).await;
        if let Ok(mut s) = self.inner.suspects.lock() {
            match &r {
                Err(_) => {
                    s.insert(node, std::time::Instant::now());
                }
                Ok(_) => {
                    s.remove(&node);
                }
            }
        }
        r
    }

    /// Whether a call to `node` failed recently.
    pub(crate) fn suspect(&self, node: &NodeId) -> bool {
        self.inner
            .suspects
            .lock()
            .map(|s| s.get(node).is_some_and(|t| t.elapsed() < SUSPECT_FOR))
            .unwrap_or(false)
    }

    /// Ready storage nodes with their free space (lent capacity minus the
    /// pieces placed). Marked nodes are left out (`stratus_state::marks`).
    pub(crate) fn targets(state: &State) -> Vec<StorageTarget> {
        state
            .nodes
            .values()
            .filter(|n| n.status == NodeStatus::Ready && !state.draining.contains(&n.info.id))
            .filter(|n| !state.marked(&n.info.id))
            .filter_map(|n| {
                let s = n.info.storage.as_ref()?;
                Some(StorageTarget {
                    id: n.info.id,
                    addr: s.addr.clone(),
                    site: n.info.attributes.site.clone(),
                    free: s
                        .capacity_bytes
                        .saturating_sub(state.store.node_usage(&n.info.id)),
                    owner: placement_owner(&n.owner),
                    credibility_ppm: state.reputation(&n.info.id).credibility_ppm(),
                })
            })
            .collect()
    }

    /// Whether any storage node can take pieces now.
    pub fn has_storage(&self) -> bool {
        self.read(|s| !Self::targets(s).is_empty())
    }

    /// The number of ready storage nodes of each placement owner (each
    /// operator's node on its own).
    pub(crate) fn nodes_per_owner(state: &State) -> Vec<usize> {
        let mut named: BTreeMap<String, usize> = BTreeMap::new();
        let mut own = Vec::new();
        for t in Self::targets(state) {
            if t.owner.is_empty() {
                own.push(1);
            } else {
                *named.entry(t.owner).or_default() += 1;
            }
        }
        own.extend(named.into_values());
        own
    }

    /// The storage address of `node`, if it is a storage node.
    pub(crate) fn addr_of(state: &State, node: &NodeId) -> Option<String> {
        state
            .nodes
            .get(node)
            .and_then(|n| n.info.storage.as_ref())
            .map(|s| s.addr.clone())
    }

    /// The erasure profile new data of `bucket` gets now.
    pub(crate) fn profile_for(state: &State, bucket: &Bucket) -> ErasureProfile {
        bucket.profile.unwrap_or_else(|| {
            let (k, m) = stratus_sched::default_profile_owned(&Self::nodes_per_owner(state));
            ErasureProfile { k, m }
        })
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use stratus_state::ApplyError;

    /// Every kind of store error keeps the code (and so the HTTP status and
    /// S3 error) the `{code, message}` struct gave the same failure, and the
    /// same words.
    #[tokio::test]
    async fn every_variant_keeps_its_code_and_words() {
        let cancelled = {
            let h = tokio::spawn(futures::future::pending::<()>());
            h.abort();
            match h.await {
                Err(e) => e,
                Ok(()) => unreachable!("a pending task never finishes"),
            }
        };
        let cases: Vec<(StoreError, ErrorCode, u16, &str)> = vec![
            (
                ApplyError::from_code(ErrorCode::Conflict, "bucket b exists").into(),
                ErrorCode::Conflict,
                409,
                "bucket b exists",
            ),
            (
                ApplyError::from_code(ErrorCode::QuotaExceeded, "quota exceeded: x").into(),
                ErrorCode::QuotaExceeded,
                403,
                "quota exceeded: x",
            ),
            (
                StoreError::Meta {
                    code: ErrorCode::NoLeader,
                    message: "no leader".into(),
                },
                ErrorCode::NoLeader,
                503,
                "no leader",
            ),
            (
                StoreError::invalid("part numbers go from 1 to 10000"),
                ErrorCode::BadRequest,
                400,
                "part numbers go from 1 to 10000",
            ),
            (
                StoreError::Body(std::io::Error::other("reset")),
                ErrorCode::BadRequest,
                400,
                "reading the upload: reset",
            ),
            (
                StoreError::not_found("image x does not exist"),
                ErrorCode::NotFound,
                404,
                "image x does not exist",
            ),
            (
                StoreError::ModuleTooLarge { limit: 10 },
                ErrorCode::TooLarge,
                413,
                "the module is larger than the limit of 10 bytes",
            ),
            (
                StoreError::Image(stratus_flist::FlistError::Limit("too many files".into())),
                ErrorCode::TooLarge,
                413,
                "",
            ),
            (
                StoreError::Image(stratus_flist::FlistError::Image("no manifest".into())),
                ErrorCode::BadRequest,
                400,
                "",
            ),
            (
                StoreError::Node {
                    node: "abcd".into(),
                    addr: "1.2.3.4:5".into(),
                    source: Box::new(stratus_net::NetError::Closed),
                },
                ErrorCode::Unavailable,
                503,
                "",
            ),
            (
                StoreError::NoPlacement {
                    what: "no node to rebuild pack 7 on".into(),
                    source: stratus_sched::PiecePlacementError::NotEnoughNodes {
                        needed: 3,
                        eligible: 1,
                    },
                    last_failure: None,
                },
                ErrorCode::Unavailable,
                503,
                "no node to rebuild pack 7 on: 3 pieces need 3 distinct nodes with enough free space, only 1 eligible",
            ),
            (
                StoreError::NoPlacement {
                    what: "cannot place 4+2 pieces of 10 bytes".into(),
                    source: stratus_sched::PiecePlacementError::NotEnoughNodes {
                        needed: 3,
                        eligible: 1,
                    },
                    last_failure: Some("node ab is full".into()),
                },
                ErrorCode::Unavailable,
                503,
                "cannot place 4+2 pieces of 10 bytes: 3 pieces need 3 distinct nodes with enough free space, only 1 eligible (last failure: node ab is full)",
            ),
            (
                StoreError::unavailable("the upload was aborted"),
                ErrorCode::Unavailable,
                503,
                "the upload was aborted",
            ),
            (
                stratus_chunk::ChunkError::Decrypt.into(),
                ErrorCode::Internal,
                500,
                "",
            ),
            (
                StoreError::Chunk {
                    what: "chunk c does not open".into(),
                    source: stratus_chunk::ChunkError::Decrypt,
                },
                ErrorCode::Internal,
                500,
                "",
            ),
            (
                stratus_chunk::wrap::WrapError::Random.into(),
                ErrorCode::Internal,
                500,
                "the system random source failed",
            ),
            (
                StoreError::Flist(stratus_flist::FlistError::Encode("x".into())),
                ErrorCode::Internal,
                500,
                "cannot encode flist: x",
            ),
            (
                StoreError::thread("decoder")(cancelled),
                ErrorCode::Internal,
                500,
                "",
            ),
            (
                StoreError::internal("version without data"),
                ErrorCode::Internal,
                500,
                "version without data",
            ),
        ];
        for (e, code, status, words) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.code().http_status(), status, "{e:?}");
            if !words.is_empty() {
                assert_eq!(e.to_string(), words);
            }
        }
        // Foreign errors stay reachable as the source.
        let e = StoreError::Node {
            node: "abcd".into(),
            addr: "a:1".into(),
            source: Box::new(stratus_net::NetError::Closed),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "storage node abcd at a:1: {}",
                stratus_net::NetError::Closed
            )
        );
        assert!(std::error::Error::source(&e).is_some());
        let e = StoreError::Image(stratus_flist::FlistError::Limit("too many files".into()));
        assert_eq!(
            e.to_string(),
            stratus_flist::FlistError::Limit("too many files".into()).to_string()
        );
        let e: StoreError = stratus_chunk::ChunkError::Decrypt.into();
        assert_eq!(
            e.to_string(),
            format!("data path: {}", stratus_chunk::ChunkError::Decrypt)
        );
    }
}
