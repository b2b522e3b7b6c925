//! The object store's commands ([`StoreCommand`]), replicated through the
//! Raft log: their variant order is their bincode index, so new commands are
//! only ever appended at the end.

use serde::{Deserialize, Serialize};
use stratus_chunk::wrap::Sealed;
use stratus_chunk::PieceId;
use stratus_types::{NodeId, TenantName};

use super::*;
use crate::bucket_configs::BucketConfigKind;
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
    /// Set (or with `doc: None` remove) a bucket's configuration document
    /// ([`crate::bucket_configs`]).
    SetBucketConfig {
        /// Caller's tenant (must own the bucket).
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Which document.
        kind: BucketConfigKind,
        /// The document (JSON), or `None` to remove it.
        doc: Option<String>,
    },
    /// A lifecycle rule expires a version, if it is still as the leader's
    /// scan saw it ([`crate::lifecycle::Expiring`]).
    Expire(crate::lifecycle::Expiring),
    /// [`StoreCommand::PutObject`] with the version's attributes, under an
    /// optional precondition (what the store writes since attributes exist;
    /// `PutObject` stays for the log entries written before).
    PutObjectWith {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version (`version_id` is assigned).
        version: ObjectVersion,
        /// Its [`VersionAttrs`], as a JSON document ([`VersionAttrs::to_doc`]).
        attrs: String,
        /// Checked against the key's latest version before the write.
        condition: Option<WriteCondition>,
    },
    /// Replace the tags of a version (the latest when `version_id` is `None`).
    SetObjectTags {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version (`None`: the latest).
        version_id: Option<String>,
        /// The new tags (empty: none).
        tags: BTreeMap<String, String>,
    },
    /// [`StoreCommand::CreateUpload`] with the attributes the object will
    /// have (no part sizes; those come at completion).
    CreateUploadWith {
        /// The upload (`id` assigned).
        upload: Upload,
        /// [`VersionAttrs`] as a JSON document.
        attrs: String,
    },
    /// [`StoreCommand::CompleteUpload`] that gives the version the upload's
    /// attributes and its part sizes, under an optional precondition.
    CompleteUploadWith {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
        /// Part numbers with the MD5 the client expects for each.
        parts: Vec<(u32, String)>,
        /// Leader time.
        now_ms: u64,
        /// Checked against the key's latest version before completing.
        condition: Option<WriteCondition>,
    },
    /// [`StoreCommand::DeleteObject`] under an optional precondition
    /// (checked against the version named, or the latest).
    DeleteObjectWith {
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
        /// The precondition.
        condition: Option<WriteCondition>,
    },
    /// Delete a bucket holding no version, aborting its multipart uploads
    /// (their parts are released), in one step.
    DeleteBucketAbortingUploads {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket.
        name: String,
    },
    /// Replace the ACL document of a version (the latest when `version_id`
    /// is `None`; `None` restores the default); see [`VersionAttrs::acl`].
    SetObjectAcl {
        /// Caller's tenant (must own the bucket).
        tenant: TenantName,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version (`None`: the latest).
        version_id: Option<String>,
        /// The ACL document (at most [`MAX_ACL_DOC_BYTES`]).
        acl: Option<String>,
    },
    /// [`StoreCommand::CreateBucket`] with configuration documents set in
    /// the same step (an [`BucketConfigKind::ObjectLock`] document also
    /// enables versioning: a bucket created with object lock is never
    /// without it).
    CreateBucketWithConfigs {
        /// Bucket as it should be (`created_ms` is the leader time).
        bucket: Bucket,
        /// Its documents ([`crate::bucket_configs`]).
        configs: Vec<(BucketConfigKind, String)>,
    },
    /// Set or (with `None`) lift a version's retention
    /// ([`crate::object_lock`]).
    SetObjectRetention {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket (object lock enabled).
        bucket: String,
        /// Key.
        key: String,
        /// Version (`None`: the latest).
        version_id: Option<String>,
        /// The new retention.
        retention: Option<crate::object_lock::Retention>,
        /// `x-amz-bypass-governance-retention`.
        bypass_governance: bool,
        /// Leader time.
        now_ms: u64,
    },
    /// Put a legal hold on a version or lift it ([`crate::object_lock`]).
    SetObjectLegalHold {
        /// Caller's tenant.
        tenant: TenantName,
        /// Bucket (object lock enabled).
        bucket: String,
        /// Key.
        key: String,
        /// Version (`None`: the latest).
        version_id: Option<String>,
        /// On or off.
        on: bool,
    },
    /// [`StoreCommand::DeleteObjectWith`] that may bypass a `GOVERNANCE`
    /// retention ([`crate::object_lock`]).
    DeleteObjectBypassing {
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
        /// The precondition.
        condition: Option<WriteCondition>,
        /// `x-amz-bypass-governance-retention: true`.
        bypass_governance: bool,
    },
    /// [`StoreCommand::PutPart`] that records the part's verified
    /// additional checksum (base64) in the upload's attributes (`None`
    /// forgets the checksum of a part replaced).
    PutPartWith {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
        /// Part number (1–10000).
        number: u32,
        /// The part.
        part: Part,
        /// Its verified checksum, of the upload's algorithm.
        checksum: Option<String>,
    },
    /// [`StoreCommand::CompleteUploadWith`] that also gives the version the
    /// object checksum computed by the gateway from its parts' checksums
    /// (a [`StoredChecksum`] JSON document; empty: none) and the parts'
    /// checksums.
    CompleteUploadChecked {
        /// Caller's tenant.
        tenant: TenantName,
        /// Upload id.
        upload: String,
        /// Part numbers with the MD5 the client expects for each.
        parts: Vec<(u32, String)>,
        /// Leader time.
        now_ms: u64,
        /// Checked against the key's latest version before completing.
        condition: Option<WriteCondition>,
        /// The object's checksum ([`StoredChecksum`] JSON; empty: none).
        checksum: String,
    },
}
