//! Object-store metadata: buckets, object versions (manifests), the chunk
//! index, packs and where their pieces are.
//!
//! The data itself never passes through the control plane: gateways write
//! erasure-coded pieces straight to storage nodes, then commit here what
//! they wrote. The model:
//!
//! * a **chunk** (content-defined, compressed, encrypted) is addressed by a
//!   keyed BLAKE3 id; the chunk index says which pack holds it, where, and how
//!   many object versions reference it (`refs`);
//! * a **pack** is a run of sealed chunks, erasure coded into `k + m`
//!   **pieces** of equal length; each piece slot names the piece (BLAKE3 of its
//!   bytes) and the node that holds it;
//! * an **object version** is a list of chunk ids (the manifest) plus its
//!   size, ETag and metadata — or a delete marker.
//!
//! Reference counts make garbage collection a deterministic command: chunks
//! no version references (after a grace period that protects uploads in
//! flight) leave the index; packs with no chunk left are dropped and their
//! pieces queued for deletion on their nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stratus_chunk::wrap::Sealed;
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::{ErrorCode, NodeId, NodeStatus, TenantName};
use utoipa::ToSchema;

use crate::kv::{Kv, KvError};
use crate::rows::{Cell, Tracked};
use crate::{ApplyError, State};

/// Longest object key accepted (as S3).
pub const MAX_KEY_LEN: usize = 1024;
/// Most user metadata bytes per version (as S3: 2 KiB).
pub const MAX_USER_META: usize = 2048;
/// Version id of versions written while versioning is off (S3's `null`).
pub const NULL_VERSION: &str = "null";

/// An erasure-coding profile: `k` data pieces and `m` parity pieces per
/// stripe; any `k` of the `k + m` pieces rebuild it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasureProfile {
    /// Data pieces.
    pub k: u8,
    /// Parity pieces (how many lost pieces a stripe survives).
    pub m: u8,
}

impl ErasureProfile {
    /// Pieces per stripe.
    pub fn width(self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Checks the bounds the coder supports.
    pub fn validate(self) -> Result<(), String> {
        if self.k == 0 {
            return Err("an erasure profile needs k >= 1".into());
        }
        if self.width() > 32 {
            return Err(format!(
                "an erasure profile has at most 32 pieces; {}+{} has {}",
                self.k,
                self.m,
                self.width()
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for ErasureProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.k, self.m)
    }
}

impl std::str::FromStr for ErasureProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, m) = s
            .split_once('+')
            .ok_or_else(|| format!("erasure profile {s:?} is not K+M (e.g. 4+2)"))?;
        let p = ErasureProfile {
            k: k.trim()
                .parse()
                .map_err(|_| format!("k in {s:?} is not a small number"))?,
            m: m.trim()
                .parse()
                .map_err(|_| format!("m in {s:?} is not a small number"))?,
        };
        p.validate()?;
        Ok(p)
    }
}

/// Which objects may share chunks (and so what convergent encryption can
/// reveal; see ARCHITECTURE.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DedupeScope {
    /// Equal content of one tenant is stored once (the default).
    #[default]
    Tenant,
    /// Equal content of anyone is stored once (public data: packages, images).
    Public,
    /// No dedupe: every object has its own random key.
    Private,
}

/// S3 bucket versioning state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Versioning {
    /// Never enabled: a put replaces the `null` version.
    Unversioned,
    /// Every put is a new version.
    Enabled,
    /// Was enabled; new puts replace the `null` version, old versions stay.
    Suspended,
}

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// Name (unique in the cluster, S3 rules).
    pub name: String,
    /// Owner.
    pub tenant: TenantName,
    /// Erasure profile of new data; `None` = automatic (chosen per stripe from
    /// the number of storage nodes: survive 2 lost nodes, keep 2 spare).
    pub profile: Option<ErasureProfile>,
    /// Dedupe scope of new data.
    pub scope: DedupeScope,
    /// Versioning state.
    pub versioning: Versioning,
    /// Creation time (leader clock, ms).
    pub created_ms: u64,
}

/// The key scope a version's chunks were sealed with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyScope {
    /// The tenant's scope key (derived from the cluster storage secret).
    Tenant(TenantName),
    /// The public scope key.
    Public,
    /// A random key of this version alone, sealed under the cluster KEK
    /// ([`crate::sealing::PRIVATE_SEED`]).
    Private(Sealed),
}

/// One chunk of a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestChunk {
    /// Chunk id.
    pub id: ChunkId,
    /// Plaintext length (for ranged reads).
    pub len: u32,
}

/// What an object version's bytes are made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectData {
    /// Key scope of its chunks.
    pub scope: KeyScope,
    /// Its chunks, in order.
    pub chunks: Vec<ManifestChunk>,
}

/// One version of an object (or a delete marker).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// Version id (assigned by the state machine).
    pub version_id: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag: hex MD5 of the content, or `<hex>-<parts>` for multipart.
    pub etag: String,
    /// Hex BLAKE3 of the content (empty for multipart and markers).
    pub blake3: String,
    /// When it was written (leader clock, ms).
    pub created_ms: u64,
    /// Content type, if given.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub user_meta: BTreeMap<String, String>,
    /// `None` for a delete marker.
    pub data: Option<ObjectData>,
}

impl ObjectVersion {
    /// Whether this is a delete marker.
    pub fn is_delete_marker(&self) -> bool {
        self.data.is_none()
    }
}

/// Where a chunk is, and how many versions reference it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Pack holding it.
    pub pack: u64,
    /// Offset of its sealed bytes in the pack.
    pub offset: u64,
    /// Sealed length.
    pub sealed_len: u32,
    /// Plaintext length.
    pub plain_len: u32,
    /// Versions (and multipart parts) referencing it.
    pub refs: u64,
    /// When it was committed (grace period of garbage collection).
    pub created_ms: u64,
}

/// A chunk as a gateway commits it with its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewChunk {
    /// Chunk id.
    pub id: ChunkId,
    /// Offset in the pack.
    pub offset: u64,
    /// Sealed length.
    pub sealed_len: u32,
    /// Plaintext length.
    pub plain_len: u32,
}

/// One piece of a pack and the node holding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceSlot {
    /// BLAKE3 of the piece's bytes.
    pub id: PieceId,
    /// Node holding it.
    pub node: NodeId,
    /// The piece failed verification there (scrub or read): to be rebuilt.
    pub bad: bool,
}

/// An erasure-coded run of sealed chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pack {
    /// Pack id (assigned by the state machine).
    pub id: u64,
    /// Coding profile.
    pub profile: ErasureProfile,
    /// Bytes of sealed chunks (before padding and parity).
    pub data_len: u64,
    /// Length of every piece.
    pub piece_len: u64,
    /// Piece slots, `k` data then `m` parity.
    pub pieces: Vec<PieceSlot>,
    /// Chunks of the index still in this pack.
    pub live_chunks: u64,
    /// When it was committed.
    pub created_ms: u64,
}

/// A piece moved by repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceMove {
    /// Pack.
    pub pack: u64,
    /// Piece index in the pack.
    pub index: u32,
    /// Node the slot must still name (otherwise the move is stale and skipped).
    pub from: NodeId,
    /// New node (which now holds a verified copy).
    pub to: NodeId,
}

/// The last scrub round a storage node reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScrubRecord {
    /// Pieces checked in the round.
    pub checked_pieces: u64,
    /// Bytes checked in the round.
    pub checked_bytes: u64,
    /// Corrupt pieces found (all rounds).
    pub corrupt_total: u64,
    /// Full passes over the node's pieces completed.
    pub passes: u64,
    /// When the round ended (leader clock, ms).
    pub at_ms: u64,
}

/// A multipart upload in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// Upload id.
    pub id: String,
    /// Owner.
    pub tenant: TenantName,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Content type and user metadata of the object to be.
    pub content_type: Option<String>,
    /// User metadata of the object to be.
    pub user_meta: BTreeMap<String, String>,
    /// Parts by number: size, hex MD5 and data.
    pub parts: BTreeMap<u32, Part>,
    /// When it was created.
    pub created_ms: u64,
}

/// One part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Size.
    pub size: u64,
    /// Hex MD5 of the part.
    pub md5: String,
    /// Its data.
    pub data: ObjectData,
    /// When it was uploaded.
    pub created_ms: u64,
}

/// An S3 access key.
///
/// The secret is stored **retrievably** (SigV4 is an HMAC whose verifier
/// needs the secret itself, so it cannot be hashed), sealed under the cluster
/// KEK ([`crate::sealing`]): control replicas holding the KEK can open it; it
/// is never sent to agents or storage nodes, and the API shows it only once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The secret key, sealed ([`crate::sealing::s3_secret_label`]).
    pub secret: Sealed,
    /// The tenant the key acts for.
    pub tenant: TenantName,
    /// When it was created (ms).
    pub created_ms: u64,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// A secret string whose `Debug` output is redacted (commands are logged).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Longest access key id accepted.
pub const MAX_ACCESS_KEY_LEN: usize = 128;

/// Counters kept with the large tables (so their sizes are known without
/// walking them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Chunks in the index.
    pub chunks: u64,
    /// Packs.
    pub packs: u64,
    /// Object versions (markers included).
    pub versions: u64,
    /// Bytes of every version.
    pub logical_bytes: u64,
    /// Plaintext bytes of the chunks in the index (stored once).
    pub unique_bytes: u64,
}

/// What a bucket holds now: keys whose latest version is not a delete
/// marker, and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketStats {
    /// Live objects.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Object-store metadata, part of [`State`]: small fields in memory
/// ([`crate::rows`]), versions, chunks and packs in the state's storage
/// ([`crate::tables`]).
pub struct ObjectStore {
    /// The state's storage (shared with the rest of [`State`]).
    pub(crate) kv: Box<dyn Kv>,
    /// Cluster storage secret (tenant scope keys derive from it), set once,
    /// sealed under the cluster KEK ([`crate::sealing::STORAGE_SECRET`]).
    pub secret: Cell<Option<Sealed>>,
    /// Buckets by name.
    pub buckets: Tracked<String, Bucket>,
    /// Bytes of pieces per node (kept with the packs).
    pub node_used: Cell<BTreeMap<NodeId, u64>>,
    /// Pieces of dropped packs still to delete from their nodes.
    pub deletions: Cell<BTreeMap<NodeId, BTreeSet<PieceId>>>,
    /// Multipart uploads by id.
    pub uploads: Tracked<String, Upload>,
    /// Last scrub round per node.
    pub scrubs: Cell<BTreeMap<NodeId, ScrubRecord>>,
    /// Next pack id.
    pub next_pack: Cell<u64>,
    /// Next version / upload id counter.
    pub next_version: Cell<u64>,
    /// Next row sequence of the versions table.
    pub(crate) next_seq: Cell<u64>,
    /// Sizes of the large tables.
    pub counts: Cell<Counts>,
    /// Live objects and bytes per bucket.
    pub bucket_stats: Tracked<String, BucketStats>,
    /// S3 access keys by access key id (see [`AccessKey`] on why the secret
    /// is stored sealed, not hashed).
    pub access_keys: Tracked<String, AccessKey>,
    /// Stored bytes and versions per tenant (see [`crate::quotas`]).
    pub usage: Cell<BTreeMap<TenantName, crate::quotas::StoreUsage>>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("buckets", &self.buckets.len())
            .field("counts", &*self.counts)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// The object store held in `kv` (small fields loaded into memory).
    pub(crate) fn load(kv: Box<dyn Kv>) -> Result<Self, KvError> {
        let k = kv.as_ref();
        Ok(Self {
            secret: Cell::load(k, "store.secret")?,
            buckets: Tracked::load(k, "store.buckets")?,
            node_used: Cell::load(k, "store.node_used")?,
            deletions: Cell::load(k, "store.deletions")?,
            uploads: Tracked::load(k, "store.uploads")?,
            scrubs: Cell::load(k, "store.scrubs")?,
            next_pack: Cell::load(k, "store.next_pack")?,
            next_version: Cell::load(k, "store.next_version")?,
            next_seq: Cell::load(k, "store.next_seq")?,
            counts: Cell::load(k, "store.counts")?,
            bucket_stats: Tracked::load(k, "store.bucket_stats")?,
            access_keys: Tracked::load(k, "store.access_keys")?,
            usage: Cell::load(k, "store.usage")?,
            kv,
        })
    }

    /// A copy of the small fields over `kv` (see [`State::fork`]).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn fork(&self, kv: Box<dyn Kv>) -> Self {
        Self {
            kv,
            secret: self.secret.clone(),
            buckets: self.buckets.clone(),
            node_used: self.node_used.clone(),
            deletions: self.deletions.clone(),
            uploads: self.uploads.clone(),
            scrubs: self.scrubs.clone(),
            next_pack: self.next_pack.clone(),
            next_version: self.next_version.clone(),
            next_seq: self.next_seq.clone(),
            counts: self.counts.clone(),
            bucket_stats: self.bucket_stats.clone(),
            access_keys: self.access_keys.clone(),
            usage: self.usage.clone(),
        }
    }

    /// Writes the changed small fields to the storage.
    pub(crate) fn flush(&mut self) {
        let kv = self.kv.as_mut();
        self.secret.flush(kv, "store.secret");
        self.buckets.flush(kv, "store.buckets");
        self.node_used.flush(kv, "store.node_used");
        self.deletions.flush(kv, "store.deletions");
        self.uploads.flush(kv, "store.uploads");
        self.scrubs.flush(kv, "store.scrubs");
        self.next_pack.flush(kv, "store.next_pack");
        self.next_version.flush(kv, "store.next_version");
        self.next_seq.flush(kv, "store.next_seq");
        self.counts.flush(kv, "store.counts");
        self.bucket_stats.flush(kv, "store.bucket_stats");
        self.access_keys.flush(kv, "store.access_keys");
        self.usage.flush(kv, "store.usage");
    }
}

fn err(code: ErrorCode, msg: impl Into<String>) -> ApplyError {
    ApplyError::new(code, msg)
}

/// Checks a bucket name against S3's rules (3–63 chars of `a-z0-9.-`,
/// starting and ending with a letter or digit, not an IP address).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    let ok_len = (3..=63).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok_len
        || !ok_chars
        || !ends(name.bytes().next())
        || !ends(name.bytes().last())
        || name.contains("..")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
    {
        return Err(format!(
            "invalid bucket name {name:?}: use 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Buckets whose names start with this are the system's: a tenant's
/// container images live in [`images_bucket`] of that tenant, which only it
/// may own.
pub const IMAGES_BUCKET_PREFIX: &str = "stratus-images-";

/// The bucket holding `tenant`'s container images (flists and their
/// contents): a fixed name derived from the tenant, so no other tenant can
/// take it first.
pub fn images_bucket(tenant: &str) -> String {
    let h = blake3::hash(tenant.as_bytes()).to_hex();
    format!("{IMAGES_BUCKET_PREFIX}{}", &h[..16])
}

/// Checks an object key (1–1024 bytes, no NUL).
pub fn validate_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.contains('\0') {
        return Err(format!(
            "invalid object key: it must be 1-{MAX_KEY_LEN} bytes without NUL"
        ));
    }
    Ok(())
}

impl ObjectStore {
    /// The bucket `name` if `tenant` owns it.
    pub fn bucket_of(&self, tenant: &str, name: &str) -> Result<&Bucket, ApplyError> {
        match self.buckets.get(name) {
            Some(b) if b.tenant == tenant => Ok(b),
            Some(_) => Err(err(
                ErrorCode::Forbidden,
                format!("bucket {name:?} belongs to another tenant"),
            )),
            None => Err(err(
                ErrorCode::NotFound,
                format!("bucket {name:?} does not exist"),
            )),
        }
    }

    /// The latest version of `key` (which may be a delete marker).
    pub fn latest(&self, bucket: &str, key: &str) -> Option<ObjectVersion> {
        self.versions_seq(bucket, key).pop().map(|(_, v)| v)
    }

    /// A version of `key`: the given one, or the latest (`NotFound` if it is a
    /// delete marker or absent).
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectVersion, ApplyError> {
        let mut versions = self.versions(bucket, key);
        if versions.is_empty() {
            return Err(err(
                ErrorCode::NotFound,
                format!("{bucket}/{key} does not exist"),
            ));
        }
        match version_id {
            Some(v) => versions
                .into_iter()
                .find(|x| x.version_id == v)
                .ok_or_else(|| {
                    err(
                        ErrorCode::NotFound,
                        format!("{bucket}/{key} has no version {v:?}"),
                    )
                }),
            None => match versions.pop() {
                Some(x) if !x.is_delete_marker() => Ok(x),
                _ => Err(err(
                    ErrorCode::NotFound,
                    format!("{bucket}/{key} does not exist (deleted)"),
                )),
            },
        }
    }

    /// Whether a piece slot can be read: its node is ready and the piece is
    /// not known bad.
    pub fn slot_healthy(
        slot: &PieceSlot,
        nodes: &BTreeMap<NodeId, stratus_types::NodeRecord>,
    ) -> bool {
        !slot.bad
            && nodes
                .get(&slot.node)
                .is_some_and(|n| n.status == NodeStatus::Ready)
    }

    fn add_refs(&mut self, data: &ObjectData) -> Result<(), ApplyError> {
        let mut entries = Vec::with_capacity(data.chunks.len());
        for c in &data.chunks {
            let Some(e) = self.chunk(&c.id) else {
                return Err(err(
                    ErrorCode::Conflict,
                    format!(
                        "chunk {} is not stored (garbage collected during the upload?); upload again",
                        c.id
                    ),
                ));
            };
            entries.push(e);
        }
        // A manifest may name a chunk twice: count each reference.
        let mut bumped: BTreeMap<ChunkId, ChunkEntry> = BTreeMap::new();
        for (c, e) in data.chunks.iter().zip(entries) {
            bumped.entry(c.id).or_insert(e).refs += 1;
        }
        for (id, e) in bumped {
            self.set_chunk(&id, &e);
        }
        Ok(())
    }

    pub(crate) fn drop_refs(&mut self, data: &ObjectData) {
        let mut dropped: BTreeMap<ChunkId, ChunkEntry> = BTreeMap::new();
        for c in &data.chunks {
            if let Some(e) = dropped.get_mut(&c.id) {
                e.refs = e.refs.saturating_sub(1);
            } else if let Some(mut e) = self.chunk(&c.id) {
                e.refs = e.refs.saturating_sub(1);
                dropped.insert(c.id, e);
            }
        }
        for (id, e) in dropped {
            self.set_chunk(&id, &e);
        }
    }

    fn next_version_id(&mut self) -> String {
        *self.next_version += 1;
        format!("{:016x}", *self.next_version)
    }

    /// Adds `version` to `bucket/key`, honouring the bucket's versioning.
    fn put_version(&mut self, bucket: &str, key: &str, mut version: ObjectVersion) -> String {
        let versioning = self
            .buckets
            .get(bucket)
            .map(|b| b.versioning)
            .unwrap_or(Versioning::Enabled);
        version.version_id = match versioning {
            Versioning::Enabled => self.next_version_id(),
            Versioning::Unversioned | Versioning::Suspended => NULL_VERSION.to_string(),
        };
        let id = version.version_id.clone();
        let replaced = if id == NULL_VERSION {
            self.take_version(bucket, key, NULL_VERSION)
        } else {
            None
        };
        self.push_version(bucket, key, &version);
        self.account_last(bucket, key, &version);
        if let Some(v) = replaced {
            self.drop_version(bucket, v);
        }
        id
    }

    /// Used and lent bytes of every storage node.
    pub fn node_usage(&self, node: &NodeId) -> u64 {
        self.node_used.get(node).copied().unwrap_or(0)
    }

    fn add_usage(&mut self, node: NodeId, bytes: u64) {
        *self.node_used.entry(node).or_default() += bytes;
    }

    fn sub_usage(&mut self, node: NodeId, bytes: u64) {
        if let Some(u) = self.node_used.get_mut(&node) {
            *u = u.saturating_sub(bytes);
            if *u == 0 {
                self.node_used.remove(&node);
            }
        }
    }
}

/// Commands of the object store (wrapped in [`crate::Command::Store`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StoreCommand {
    /// Set the cluster storage secret (once).
    SetSecret {
        /// 32 random bytes, sealed ([`crate::sealing`]).
        secret: Sealed,
    },
    /// Create a bucket.
    CreateBucket {
        /// Bucket as it should be (`created_ms` is the leader time).
        bucket: Bucket,
    },
    /// Delete an empty bucket.
    DeleteBucket {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        name: String,
    },
    /// Change a bucket's versioning.
    SetVersioning {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        name: String,
        /// New state (`Enabled` or `Suspended`).
        versioning: Versioning,
    },
    /// A gateway wrote every piece of a pack durably; record the pack and
    /// its chunks (chunks already indexed elsewhere keep their place).
    CommitPack {
        /// Coding profile.
        profile: ErasureProfile,
        /// Bytes of sealed chunks.
        data_len: u64,
        /// Length of each piece.
        piece_len: u64,
        /// Pieces and their nodes, in piece order.
        pieces: Vec<(PieceId, NodeId)>,
        /// Chunks in the pack.
        chunks: Vec<NewChunk>,
        /// Leader time.
        now_ms: u64,
    },
    /// Commit a new version of an object (its chunks must be indexed).
    PutObject {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version (`version_id` is assigned).
        version: ObjectVersion,
    },
    /// Delete: without a version, add a delete marker; with one, remove that
    /// version for good.
    DeleteObject {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version to remove.
        version_id: Option<String>,
        /// Leader time.
        now_ms: u64,
    },
    /// Repair moved pieces to new nodes.
    MovePieces {
        /// The moves.
        moves: Vec<PieceMove>,
    },
    /// Pieces failed verification on their node.
    MarkBad {
        /// (pack, piece index, node that served it).
        pieces: Vec<(u64, u32, NodeId)>,
    },
    /// Garbage collection: forget unreferenced chunks older than the grace
    /// period and drop packs left empty (queuing their pieces for deletion).
    CollectGarbage {
        /// Leader time.
        now_ms: u64,
        /// Grace period protecting uploads in flight.
        grace_ms: u64,
    },
    /// A node deleted queued pieces.
    PiecesDeleted {
        /// Node.
        node: NodeId,
        /// Pieces gone.
        pieces: Vec<PieceId>,
    },
    /// A node finished a scrub round.
    RecordScrub {
        /// Node.
        node: NodeId,
        /// Pieces checked.
        checked_pieces: u64,
        /// Bytes checked.
        checked_bytes: u64,
        /// Corrupt pieces found this round.
        corrupt: u64,
        /// The round completed a full pass.
        wrapped: bool,
        /// Leader time.
        now_ms: u64,
    },
    /// Start a multipart upload.
    CreateUpload {
        /// The upload (`id` assigned).
        upload: Upload,
    },
    /// Record an uploaded part (replacing a part of the same number).
    PutPart {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
        /// Part number (1–10000).
        number: u32,
        /// The part.
        part: Part,
    },
    /// Complete an upload: the listed parts, in order, become a version.
    CompleteUpload {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
        /// Part numbers with the MD5 the client expects for each.
        parts: Vec<(u32, String)>,
        /// Leader time.
        now_ms: u64,
    },
    /// Abort an upload.
    AbortUpload {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
    },
    /// Create an S3 access key for a tenant.
    CreateAccessKey {
        /// Access key id (unique).
        access_key: String,
        /// Its secret, sealed (SigV4 needs it back; [`crate::sealing`]).
        secret: Sealed,
        /// Tenant it acts for (must exist).
        tenant: TenantName,
        /// Leader time.
        created_ms: u64,
    },
    /// Delete an S3 access key.
    DeleteAccessKey {
        /// Access key id.
        access_key: String,
        /// The key's tenant (`None`: any tenant, for the administrator).
        tenant: Option<TenantName>,
    },
}

/// What a store command produced.
pub(crate) enum StoreResult {
    None,
    Id(String),
    Number(u64),
}

impl State {
    pub(crate) fn apply_store(&mut self, cmd: &StoreCommand) -> Result<StoreResult, ApplyError> {
        let tenant_exists = |s: &State, t: &str| s.tenants.contains_key(t);
        let st = &mut self.store;
        match cmd {
            StoreCommand::SetSecret { secret } => {
                if st.secret.is_some() {
                    return Err(err(
                        ErrorCode::Conflict,
                        "the storage secret is already set",
                    ));
                }
                crate::sealing::check_len(secret, 32, 32)?;
                *st.secret = Some(secret.clone());
                Ok(StoreResult::None)
            }
            StoreCommand::CreateBucket { bucket } => {
                validate_bucket_name(&bucket.name).map_err(|m| err(ErrorCode::BadRequest, m))?;
                if bucket.name.starts_with(IMAGES_BUCKET_PREFIX)
                    && bucket.name != images_bucket(&bucket.tenant)
                {
                    return Err(err(
                        ErrorCode::Forbidden,
                        format!(
                            "bucket names starting with {IMAGES_BUCKET_PREFIX:?} are reserved for container images"
                        ),
                    ));
                }
                if let Some(p) = bucket.profile {
                    p.validate().map_err(|m| err(ErrorCode::BadRequest, m))?;
                }
                if !tenant_exists(self, &bucket.tenant) {
                    return Err(err(
                        ErrorCode::NotFound,
                        format!("tenant {:?} does not exist", bucket.tenant),
                    ));
                }
                let st = &mut self.store;
                if let Some(b) = st.buckets.get(&bucket.name) {
                    let whose = if b.tenant == bucket.tenant {
                        "you already own it"
                    } else {
                        "another tenant owns it"
                    };
                    return Err(err(
                        ErrorCode::Conflict,
                        format!("bucket {:?} already exists: {whose}", bucket.name),
                    ));
                }
                st.buckets.insert(bucket.name.clone(), bucket.clone());
                Ok(StoreResult::None)
            }
            StoreCommand::DeleteBucket { tenant, name } => {
                st.bucket_of(tenant, name)?;
                if !st.bucket_is_empty(name) {
                    return Err(err(
                        ErrorCode::Conflict,
                        format!("bucket {name:?} is not empty (delete every object version first)"),
                    ));
                }
                if st.uploads.values().any(|u| u.bucket == *name) {
                    return Err(err(
                        ErrorCode::Conflict,
                        format!(
                            "bucket {name:?} has multipart uploads in progress; abort them first"
                        ),
                    ));
                }
                st.buckets.remove(name);
                st.bucket_stats.remove(name);
                Ok(StoreResult::None)
            }
            StoreCommand::SetVersioning {
                tenant,
                name,
                versioning,
            } => {
                st.bucket_of(tenant, name)?;
                if *versioning == Versioning::Unversioned {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "versioning can only be enabled or suspended",
                    ));
                }
                if let Some(b) = st.buckets.get_mut(name) {
                    b.versioning = *versioning;
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CommitPack {
                profile,
                data_len,
                piece_len,
                pieces,
                chunks,
                now_ms,
            } => {
                profile
                    .validate()
                    .map_err(|m| err(ErrorCode::BadRequest, m))?;
                if pieces.len() != profile.width() {
                    return Err(err(
                        ErrorCode::BadRequest,
                        format!(
                            "a {profile} pack has {} pieces, not {}",
                            profile.width(),
                            pieces.len()
                        ),
                    ));
                }
                let distinct: BTreeSet<_> = pieces.iter().map(|p| p.1).collect();
                if distinct.len() != pieces.len() {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "the pieces of a pack must be on distinct nodes",
                    ));
                }
                if chunks
                    .iter()
                    .any(|c| c.offset + u64::from(c.sealed_len) > *data_len)
                {
                    return Err(err(ErrorCode::BadRequest, "a chunk lies outside its pack"));
                }
                *st.next_pack += 1;
                let id = *st.next_pack;
                let mut live = 0;
                for c in chunks {
                    if st.chunk(&c.id).is_some() {
                        continue;
                    }
                    live += 1;
                    st.set_chunk(
                        &c.id,
                        &ChunkEntry {
                            pack: id,
                            offset: c.offset,
                            sealed_len: c.sealed_len,
                            plain_len: c.plain_len,
                            refs: 0,
                            created_ms: *now_ms,
                        },
                    );
                }
                for (_, node) in pieces {
                    st.add_usage(*node, *piece_len);
                }
                st.set_pack(&Pack {
                    id,
                    profile: *profile,
                    data_len: *data_len,
                    piece_len: *piece_len,
                    pieces: pieces
                        .iter()
                        .map(|(p, n)| PieceSlot {
                            id: *p,
                            node: *n,
                            bad: false,
                        })
                        .collect(),
                    live_chunks: live,
                    created_ms: *now_ms,
                });
                Ok(StoreResult::Number(id))
            }
            StoreCommand::PutObject {
                tenant,
                bucket,
                key,
                version,
            } => {
                st.bucket_of(tenant, bucket)?;
                validate_key(key).map_err(|m| err(ErrorCode::BadRequest, m))?;
                validate_meta(&version.user_meta)?;
                if let Some(d) = &version.data {
                    let sum: u64 = d.chunks.iter().map(|c| u64::from(c.len)).sum();
                    if sum != version.size {
                        return Err(err(
                            ErrorCode::BadRequest,
                            format!("the chunks add up to {sum} bytes, not {}", version.size),
                        ));
                    }
                    st.add_refs(d)?;
                }
                Ok(StoreResult::Id(st.put_version(
                    bucket,
                    key,
                    version.clone(),
                )))
            }
            StoreCommand::DeleteObject {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
            } => {
                let versioning = st.bucket_of(tenant, bucket)?.versioning;
                match version_id {
                    None if versioning == Versioning::Unversioned => {
                        // Never versioned: the object goes, no marker (S3).
                        if let Some(v) = st.take_version(bucket, key, NULL_VERSION) {
                            st.drop_version(bucket, v);
                        }
                        Ok(StoreResult::None)
                    }
                    None => {
                        let marker = ObjectVersion {
                            version_id: String::new(),
                            size: 0,
                            etag: String::new(),
                            blake3: String::new(),
                            created_ms: *now_ms,
                            content_type: None,
                            user_meta: BTreeMap::new(),
                            data: None,
                        };
                        Ok(StoreResult::Id(st.put_version(bucket, key, marker)))
                    }
                    Some(v) => {
                        let removed = st.take_version(bucket, key, v).ok_or_else(|| {
                            err(
                                ErrorCode::NotFound,
                                format!("{bucket}/{key} has no version {v:?}"),
                            )
                        })?;
                        st.drop_version(bucket, removed);
                        Ok(StoreResult::Id(v.clone()))
                    }
                }
            }
            StoreCommand::MovePieces { moves } => {
                for mv in moves {
                    let Some(mut pack) = st.pack(mv.pack) else {
                        continue;
                    };
                    let piece_len = pack.piece_len;
                    let others_on_target = pack.pieces.iter().any(|s| s.node == mv.to);
                    let Some(slot) = pack.pieces.get_mut(mv.index as usize) else {
                        continue;
                    };
                    if slot.node != mv.from || others_on_target {
                        continue; // stale, or would put two pieces on one node
                    }
                    slot.node = mv.to;
                    slot.bad = false;
                    st.set_pack(&pack);
                    // The old copy (if its node comes back) is an orphan for GC.
                    st.sub_usage(mv.from, piece_len);
                    st.add_usage(mv.to, piece_len);
                }
                Ok(StoreResult::None)
            }
            StoreCommand::MarkBad { pieces } => {
                for (pack, index, node) in pieces {
                    let Some(mut p) = st.pack(*pack) else {
                        continue;
                    };
                    if let Some(slot) = p.pieces.get_mut(*index as usize) {
                        if slot.node == *node && !slot.bad {
                            slot.bad = true;
                            st.set_pack(&p);
                        }
                    }
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CollectGarbage { now_ms, grace_ms } => {
                let cutoff = now_ms.saturating_sub(*grace_ms);
                let dead: Vec<ChunkId> = st
                    .unreferenced_chunks()
                    .into_iter()
                    .filter(|id| st.chunk(id).is_some_and(|e| e.created_ms <= cutoff))
                    .collect();
                for id in &dead {
                    if let Some(e) = st.remove_chunk(id) {
                        if let Some(mut p) = st.pack(e.pack) {
                            p.live_chunks = p.live_chunks.saturating_sub(1);
                            st.set_pack(&p);
                        }
                    }
                }
                // Packs left empty now, and packs committed empty (every
                // chunk already indexed elsewhere) once past the grace.
                let empty: Vec<u64> = st
                    .empty_packs()
                    .into_iter()
                    .filter(|id| st.pack(*id).is_some_and(|p| p.created_ms <= cutoff))
                    .collect();
                let mut freed = 0u64;
                for id in empty {
                    if let Some(p) = st.remove_pack(id) {
                        for s in &p.pieces {
                            st.sub_usage(s.node, p.piece_len);
                            st.deletions.entry(s.node).or_default().insert(s.id);
                        }
                        freed += 1;
                    }
                }
                // A piece shared by a live pack on the same node (identical
                // packs written by concurrent uploads) must stay.
                if freed > 0 {
                    let mut deletions = std::mem::take(&mut *st.deletions);
                    for (node, set) in deletions.iter_mut() {
                        set.retain(|p| !st.holds(node, p));
                    }
                    deletions.retain(|_, s| !s.is_empty());
                    *st.deletions = deletions;
                }
                Ok(StoreResult::Number(dead.len() as u64))
            }
            StoreCommand::PiecesDeleted { node, pieces } => {
                if let Some(set) = st.deletions.get_mut(node) {
                    for p in pieces {
                        set.remove(p);
                    }
                    if set.is_empty() {
                        st.deletions.remove(node);
                    }
                }
                Ok(StoreResult::None)
            }
            StoreCommand::RecordScrub {
                node,
                checked_pieces,
                checked_bytes,
                corrupt,
                wrapped,
                now_ms,
            } => {
                let r = st.scrubs.entry(*node).or_default();
                r.checked_pieces = *checked_pieces;
                r.checked_bytes = *checked_bytes;
                r.corrupt_total += corrupt;
                r.passes += u64::from(*wrapped);
                r.at_ms = *now_ms;
                Ok(StoreResult::None)
            }
            StoreCommand::CreateUpload { upload } => {
                st.bucket_of(&upload.tenant, &upload.bucket)?;
                validate_key(&upload.key).map_err(|m| err(ErrorCode::BadRequest, m))?;
                validate_meta(&upload.user_meta)?;
                *st.next_version += 1;
                let id = format!("u{:016x}", *st.next_version);
                let mut u = upload.clone();
                u.id = id.clone();
                u.parts.clear();
                st.uploads.insert(id.clone(), u);
                Ok(StoreResult::Id(id))
            }
            StoreCommand::PutPart {
                tenant,
                upload,
                number,
                part,
            } => {
                if !(1..=10_000).contains(number) {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "part numbers go from 1 to 10000",
                    ));
                }
                upload_of(st, tenant, upload)?;
                st.add_refs(&part.data)?;
                let old = st
                    .uploads
                    .get_mut(upload)
                    .and_then(|u| u.parts.insert(*number, part.clone()));
                st.charge(tenant, part.size, 1);
                if let Some(old) = old {
                    st.drop_part(tenant, old);
                }
                Ok(StoreResult::None)
            }
            StoreCommand::CompleteUpload {
                tenant,
                upload,
                parts,
                now_ms,
            } => {
                let u = upload_of(st, tenant, upload)?;
                if parts.is_empty() {
                    return Err(err(ErrorCode::BadRequest, "no parts given"));
                }
                if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "parts must be listed in ascending order (InvalidPartOrder)",
                    ));
                }
                let mut chunks = Vec::new();
                let mut size = 0;
                let mut md5s = Vec::new();
                for (n, etag) in parts {
                    let p = u.parts.get(n).ok_or_else(|| {
                        err(
                            ErrorCode::BadRequest,
                            format!("part {n} was not uploaded (InvalidPart)"),
                        )
                    })?;
                    if !etag.trim_matches('"').eq_ignore_ascii_case(&p.md5) {
                        return Err(err(
                            ErrorCode::BadRequest,
                            format!("part {n} has ETag {:?}, not {etag:?} (InvalidPart)", p.md5),
                        ));
                    }
                    chunks.extend_from_slice(&p.data.chunks);
                    size += p.size;
                    md5s.push(p.md5.clone());
                }
                let scope = u
                    .parts
                    .get(&parts[0].0)
                    .map(|p| p.data.scope.clone())
                    .unwrap_or(KeyScope::Public);
                if parts
                    .iter()
                    .filter_map(|(n, _)| u.parts.get(n))
                    .any(|p| p.data.scope != scope)
                {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "the parts were sealed with different keys (bucket scope changed during the upload?)",
                    ));
                }
                let etag = multipart_etag(&md5s);
                let version = ObjectVersion {
                    version_id: String::new(),
                    size,
                    etag,
                    blake3: String::new(),
                    created_ms: *now_ms,
                    content_type: u.content_type.clone(),
                    user_meta: u.user_meta.clone(),
                    data: Some(ObjectData { scope, chunks }),
                };
                let (bucket, key) = (u.bucket.clone(), u.key.clone());
                let data = version.data.clone();
                if let Some(d) = &data {
                    st.add_refs(d)?;
                }
                // The parts' own references (and use) end with the upload.
                st.remove_upload(upload);
                Ok(StoreResult::Id(st.put_version(&bucket, &key, version)))
            }
            StoreCommand::AbortUpload { tenant, upload } => {
                upload_of(st, tenant, upload)?;
                st.remove_upload(upload);
                Ok(StoreResult::None)
            }
            StoreCommand::CreateAccessKey {
                access_key,
                secret,
                tenant,
                created_ms,
            } => {
                let ok_id = !access_key.is_empty()
                    && access_key.len() <= MAX_ACCESS_KEY_LEN
                    && access_key.bytes().all(|b| b.is_ascii_alphanumeric());
                if !ok_id || crate::sealing::check_len(secret, 16, 256).is_err() {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "an access key id is 1-128 ASCII letters and digits; a secret 16-256 bytes",
                    ));
                }
                if !tenant_exists(self, tenant) {
                    return Err(err(
                        ErrorCode::NotFound,
                        format!("tenant {tenant:?} does not exist"),
                    ));
                }
                let st = &mut self.store;
                if st.access_keys.contains_key(access_key) {
                    return Err(err(
                        ErrorCode::Conflict,
                        format!("access key {access_key:?} already exists"),
                    ));
                }
                st.access_keys.insert(
                    access_key.clone(),
                    AccessKey {
                        secret: secret.clone(),
                        tenant: tenant.clone(),
                        created_ms: *created_ms,
                    },
                );
                Ok(StoreResult::Id(access_key.clone()))
            }
            StoreCommand::DeleteAccessKey { access_key, tenant } => {
                match st.access_keys.get(access_key) {
                    Some(k) if tenant.as_ref().is_none_or(|t| *t == k.tenant) => {
                        st.access_keys.remove(access_key);
                        Ok(StoreResult::None)
                    }
                    _ => Err(err(
                        ErrorCode::NotFound,
                        format!("access key {access_key:?} does not exist"),
                    )),
                }
            }
        }
    }
}

fn upload_of<'a>(st: &'a ObjectStore, tenant: &str, id: &str) -> Result<&'a Upload, ApplyError> {
    match st.uploads.get(id) {
        Some(u) if u.tenant == tenant => Ok(u),
        _ => Err(err(
            ErrorCode::NotFound,
            format!("multipart upload {id:?} does not exist (NoSuchUpload)"),
        )),
    }
}

fn validate_meta(meta: &BTreeMap<String, String>) -> Result<(), ApplyError> {
    let size: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_META {
        return Err(err(
            ErrorCode::BadRequest,
            format!("user metadata is {size} bytes; the limit is {MAX_USER_META}"),
        ));
    }
    Ok(())
}

/// S3's multipart ETag: MD5 of the concatenated binary part MD5s, `-N`.
pub fn multipart_etag(part_md5_hex: &[String]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in part_md5_hex {
        if let Ok(b) = hex::decode(p) {
            h.update(b);
        }
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5_hex.len())
}

/// Health of the stored data, computed from the state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RedundancyHealth {
    /// Packs (stripes).
    pub stripes: u64,
    /// Stripes with every piece healthy.
    pub full: u64,
    /// Stripes missing pieces but readable (the repair queue).
    pub degraded: u64,
    /// Stripes with exactly `k` healthy pieces (one more loss and they are gone).
    pub at_risk: u64,
    /// Stripes with fewer than `k` healthy pieces (unreadable until nodes return).
    pub unreadable: u64,
    /// Pieces to rebuild.
    pub missing_pieces: u64,
    /// Bytes of pieces to rebuild.
    pub missing_bytes: u64,
    /// Pieces of dropped data still to delete from nodes.
    pub pending_deletions: u64,
}

/// A stripe that needs repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairItem {
    /// Pack id.
    pub pack: u64,
    /// Indexes of the pieces to rebuild.
    pub missing: Vec<u32>,
    /// Healthy pieces left.
    pub healthy: usize,
}

impl State {
    /// The packs with a slot that cannot be read: those with a piece on a
    /// node that is not ready (lost, banned, removed) and those with a slot
    /// known bad — found through the piece index, without walking every
    /// pack (a healthy cluster reads nothing but the small bad-pack index).
    fn unhealthy_packs(&self) -> Vec<Pack> {
        let mut ids: BTreeSet<u64> = self.store.bad_packs().into_iter().collect();
        for node in self.store.slot_nodes() {
            let ready = self
                .nodes
                .get(&node)
                .is_some_and(|n| n.status == NodeStatus::Ready);
            if !ready {
                ids.extend(self.store.slots_on(&node).into_iter().map(|(p, _, _)| p));
            }
        }
        ids.into_iter()
            .filter_map(|id| self.store.pack(id))
            .collect()
    }

    /// Stripes that miss pieces, fewest healthy pieces first (most urgent).
    pub fn repair_queue(&self) -> Vec<RepairItem> {
        let mut q: Vec<RepairItem> = self
            .unhealthy_packs()
            .into_iter()
            .filter_map(|p| {
                let missing: Vec<u32> = p
                    .pieces
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !ObjectStore::slot_healthy(s, &self.nodes))
                    .map(|(i, _)| i as u32)
                    .collect();
                (!missing.is_empty()).then(|| RepairItem {
                    pack: p.id,
                    healthy: p.pieces.len() - missing.len(),
                    missing,
                })
            })
            .collect();
        q.sort_by_key(|r| (r.healthy, r.pack));
        q
    }

    /// Redundancy health of all stored data.
    pub fn redundancy(&self) -> RedundancyHealth {
        let mut h = RedundancyHealth {
            pending_deletions: self.store.deletions.values().map(|s| s.len() as u64).sum(),
            stripes: self.store.pack_count(),
            ..Default::default()
        };
        let mut unhealthy = 0;
        for p in self.unhealthy_packs() {
            let healthy = p
                .pieces
                .iter()
                .filter(|s| ObjectStore::slot_healthy(s, &self.nodes))
                .count();
            let missing = p.pieces.len() - healthy;
            if missing == 0 {
                continue;
            }
            unhealthy += 1;
            h.missing_pieces += missing as u64;
            h.missing_bytes += missing as u64 * p.piece_len;
            let k = usize::from(p.profile.k);
            if healthy >= k {
                h.degraded += 1;
            } else {
                h.unreadable += 1;
            }
            if healthy == k {
                h.at_risk += 1;
            }
        }
        h.full = h.stripes.saturating_sub(unhealthy);
        h
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Command;
    use proptest::prelude::*;
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
        assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::Conflict));
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
        assert_eq!(r.error.map(|e| e.code), Some(ErrorCode::Forbidden));
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
}
