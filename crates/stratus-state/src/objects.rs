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
//! A version's stored headers, tags and part sizes are its
//! [`VersionAttrs`], kept beside it in their own table (see
//! `objects_attrs.rs` for why; conditional writes are checked there too).
//!
//! Reference counts make garbage collection a deterministic command: chunks
//! no version references (after a grace period that protects uploads in
//! flight) leave the index; packs with no chunk left are dropped and their
//! pieces queued for deletion on their nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stratus_chunk::wrap::Sealed;
use stratus_chunk::{ChunkId, PieceId};
use stratus_types::{NodeId, NodeStatus, TenantName};
use utoipa::ToSchema;

use crate::bucket_configs::BucketConfigKind;
use crate::kv::{Kv, KvError};
use crate::rows::{Cell, Tracked};
use crate::ApplyError;

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
    /// A key only the client holds (S3 SSE-C): the scope key is derived
    /// from the client's key and `salt`
    /// ([`stratus_chunk::CustomerKey::scope`]); `check` tells the right key
    /// from a wrong one ([`stratus_chunk::CustomerSeal`]). Neither gives
    /// the key back: without it the version cannot be read.
    Customer {
        /// Salt of the scope key (random per object or multipart upload).
        salt: [u8; 32],
        /// Keyed check of the client's key.
        check: [u8; 32],
    },
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
    /// Buckets' configuration documents ([`crate::bucket_configs`]).
    pub bucket_configs: Tracked<(String, BucketConfigKind), String>,
    /// Attributes of multipart uploads' objects to be, by upload id
    /// ([`VersionAttrs`] JSON documents; absent = none).
    pub upload_attrs: Tracked<String, String>,
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
            bucket_configs: Tracked::load(k, "store.bucket_configs")?,
            upload_attrs: Tracked::load(k, "store.upload_attrs")?,
            kv,
        })
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
        self.bucket_configs.flush(kv, "store.bucket_configs");
        self.upload_attrs.flush(kv, "store.upload_attrs");
    }
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
            Some(_) => Err(ApplyError::forbidden(format!(
                "bucket {name:?} belongs to another tenant"
            ))),
            None => Err(ApplyError::not_found(format!(
                "bucket {name:?} does not exist"
            ))),
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
            return Err(ApplyError::not_found(format!(
                "{bucket}/{key} does not exist"
            )));
        }
        match version_id {
            Some(v) => versions
                .into_iter()
                .find(|x| x.version_id == v)
                .ok_or_else(|| {
                    ApplyError::not_found(format!("{bucket}/{key} has no version {v:?}"))
                }),
            None => match versions.pop() {
                Some(x) if !x.is_delete_marker() => Ok(x),
                _ => Err(ApplyError::not_found(format!(
                    "{bucket}/{key} does not exist (deleted)"
                ))),
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
                return Err(ApplyError::conflict(format!(
                    "chunk {} is not stored (garbage collected during the upload?); upload again",
                    c.id
                )));
            };
            entries.push(e);
        }
        // A manifest may name a chunk twice: count each reference.
        let mut bumped: BTreeMap<ChunkId, (u64, ChunkEntry)> = BTreeMap::new();
        for (c, e) in data.chunks.iter().zip(entries) {
            bumped.entry(c.id).or_insert((e.refs, e)).1.refs += 1;
        }
        for (id, (old, e)) in bumped {
            self.update_chunk(&id, old, &e);
        }
        Ok(())
    }

    pub(crate) fn drop_refs(&mut self, data: &ObjectData) {
        let mut dropped: BTreeMap<ChunkId, (u64, ChunkEntry)> = BTreeMap::new();
        for c in &data.chunks {
            if let Some((_, e)) = dropped.get_mut(&c.id) {
                e.refs = e.refs.saturating_sub(1);
            } else if let Some(mut e) = self.chunk(&c.id) {
                let old = e.refs;
                e.refs = e.refs.saturating_sub(1);
                dropped.insert(c.id, (old, e));
            }
        }
        for (id, (old, e)) in dropped {
            self.update_chunk(&id, old, &e);
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

/// What a store command produced.
pub(crate) enum StoreResult {
    None,
    Id(String),
    Number(u64),
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

#[path = "objects_health.rs"]
mod health;
pub use health::{RedundancyHealth, RepairItem};

#[path = "objects_attrs.rs"]
mod attrs;
pub use attrs::{
    check_tag_rules, is_precondition_failed, precondition_failed, validate_tags, CustomerSealDoc,
    VersionAttrs, WriteCondition, MAX_ACL_DOC_BYTES, MAX_HEADER_BYTES, MAX_TAGS, MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS, PRECONDITION_FAILED, STORED_HEADERS,
};

#[path = "objects_apply.rs"]
mod apply;

#[path = "objects_checksums.rs"]
mod checksums;
pub use checksums::{StoredChecksum, MAX_CHECKSUM_CHARS};
#[path = "objects_customer.rs"]
mod customer;

#[path = "objects_commands.rs"]
mod commands;
pub use commands::StoreCommand;

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
