//! The boundary between the gateway and the object store: [`Backend`] and
//! [`KeyStore`], and the types they exchange.
//!
//! The contract is written down here and checked by
//! `testing::backend_conformance` (behind the `testing` feature), which every
//! implementation should run.

use std::collections::BTreeMap;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

pub use stratus_state::bucket_configs::{
    check_bucket_config, BucketConfigKind, MAX_BUCKET_CONFIG_BYTES,
};

/// An object body: a stream of chunks. An `Err` item aborts the transfer.
///
/// Bodies are never collected into memory by the gateway; a backend that
/// receives one for a write must likewise stream it to storage, and must treat
/// an `Err` item as "the upload failed": nothing becomes visible.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The MD5 etag of the empty object.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The minimum size of every multipart part but the last (S3's 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The highest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// The version id of the "null" version: the version written while a
/// bucket's versioning was never enabled or is suspended.
pub const NULL_VERSION: &str = "null";

/// The HTTP headers a version stores and GET/HEAD return (lower case), as
/// S3 does: `Cache-Control`, `Content-Disposition`, `Content-Encoding`,
/// `Content-Language`, `Expires`.
pub const STORED_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

pub use stratus_state::objects::{MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS};
pub use stratus_store::{CustomerKey, CustomerSeal};

/// Object lock (WORM): the types a write, a version and a bucket's
/// configuration carry, and the state's rules ([`stratus_state::object_lock`]).
pub use stratus_state::object_lock::{
    check_removal, check_retention_change, DefaultRetention, LockConfig, LockConfigError, LockMode,
    Retention, VersionLock, DAY_MS,
};

/// Checks S3's tag rules ([`MAX_TAGS`], [`MAX_TAG_KEY_CHARS`],
/// [`MAX_TAG_VALUE_CHARS`]: the state's, which checks them again in
/// `apply`); a broken one is [`BackendError::InvalidTag`].
pub fn check_tags(tags: &BTreeMap<String, String>) -> BackendResult<()> {
    stratus_state::objects::check_tag_rules(tags).map_err(BackendError::InvalidTag)
}

/// A precondition of a write (`If-None-Match: *`, `If-Match: etag`),
/// checked against the key's current object as part of the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// The key has no current object (absent, or a delete marker).
    IfAbsent,
    /// The key's current object has this etag (without quotes; `*`: any
    /// current object).
    IfMatch(String),
    /// The key has no current object with this etag (without quotes).
    IfNoneMatch(String),
}

/// Errors of a [`Backend`]; each maps to one S3 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The bucket does not exist (for this tenant).
    #[error("no such bucket")]
    NoSuchBucket,
    /// The tenant already owns a bucket of that name.
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    /// Another tenant owns a bucket of that name (only for backends with a
    /// global bucket namespace).
    #[error("bucket already exists")]
    BucketAlreadyExists,
    /// The bucket still holds objects, versions, delete markers or uploads.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// No such key (or its latest version is a delete marker).
    #[error("no such key")]
    NoSuchKey,
    /// No such version of the key.
    #[error("no such version")]
    NoSuchVersion,
    /// No such multipart upload (or it belongs to another bucket/key/tenant).
    #[error("no such upload")]
    NoSuchUpload,
    /// A part named in a complete request was not uploaded or its etag differs.
    #[error("invalid part")]
    InvalidPart,
    /// The parts named in a complete request are not in ascending order.
    #[error("invalid part order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than [`MIN_PART_SIZE`].
    #[error("entity too small")]
    EntityTooSmall,
    /// The version named is a delete marker, which cannot be read (S3's 405).
    #[error("method not allowed on a delete marker")]
    MethodNotAllowed,
    /// The requested range does not overlap the object.
    #[error("invalid range")]
    InvalidRange,
    /// The tenant may not access this resource.
    #[error("access denied")]
    AccessDenied,
    /// The bucket name is not valid.
    #[error("invalid bucket name")]
    InvalidBucketName,
    /// A request argument is not valid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request is larger than a limit allows (the message names it).
    #[error("too large: {0}")]
    EntityTooLarge(String),
    /// A failure of the store itself.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store cannot serve the request now (e.g. too few pieces reachable).
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// A quota of the tenant would be exceeded (the message names it, its
    /// limit and the current use); S3 `QuotaExceeded`, HTTP 403.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// A write's precondition ([`WriteCondition`]) does not hold (412).
    #[error("precondition failed")]
    PreconditionFailed,
    /// Tags break S3's rules (the message says which); S3 `InvalidTag`.
    #[error("invalid tag: {0}")]
    InvalidTag(String),
    /// `partNumber` names no part of the object (S3's 416
    /// `InvalidPartNumber`).
    #[error("invalid part number")]
    InvalidPartNumber,
    /// The version (or upload) is sealed under a customer key (SSE-C) and
    /// the request carries none (S3's 400 `InvalidRequest`).
    #[error("the object is encrypted with a customer-provided key; the request must carry it")]
    CustomerKeyRequired,
    /// The request's customer key is not the version's (or upload's).
    #[error("the customer-provided key does not match the object's")]
    CustomerKeyMismatch,
    /// The request carries a customer key for a version (or upload) that
    /// was stored without one (S3's 400 `InvalidRequest`).
    #[error("the encryption parameters are not applicable to this object")]
    CustomerKeyNotApplicable,
    /// S3's `InvalidRequest` (400): e.g. an object lock asked of a bucket
    /// without object lock.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// S3's `InvalidBucketState` (409): e.g. suspending versioning on a
    /// bucket with object lock.
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    /// The backend does not implement what was asked (S3's 501).
    #[error("not implemented: {0}")]
    NotImplemented(String),
}

/// Result of a [`Backend`] call.
pub type BackendResult<T> = Result<T, BackendError>;

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    /// Bucket name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// A bucket's versioning state once it has been configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Every write creates a new version with a fresh id.
    Enabled,
    /// Writes replace the "null" version; older versions are kept.
    Suspended,
}

/// Metadata given when an object is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutMeta {
    /// `Content-Type`, if the client gave one.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys lower-case without the prefix.
    pub user_metadata: BTreeMap<String, String>,
    /// Stored headers ([`STORED_HEADERS`], lower-case names).
    pub headers: BTreeMap<String, String>,
    /// Tags (S3's rules: [`check_tags`]).
    pub tags: BTreeMap<String, String>,
    /// A precondition the write must meet, checked atomically with it
    /// (puts and copies; ignored by `create_multipart`).
    pub condition: Option<WriteCondition>,
    /// The additional checksum to store with the version, filled once the
    /// body has streamed and verified (`put_object`); the algorithm and
    /// type asked for an upload's object (`create_multipart`, empty value).
    pub checksum: ChecksumSlot,
    /// The client's key (S3 SSE-C) of a put or of a multipart upload to
    /// be: the version (or every part) is sealed under it, and only it
    /// reads the version back ([`Backend::get_object_sealed`]). Ignored by
    /// `copy_object` (a copy under a key is a read and a put).
    pub customer_key: Option<CustomerKey>,
    /// The version's ACL document ([`crate::acl::Acl::to_doc`]; `None`: the
    /// default, the bucket owner's). Kept with the version like the tags
    /// (a multipart upload gives it to the version it completes).
    pub acl: Option<String>,
    /// The object lock the new version gets (only in a bucket with object
    /// lock enabled, [`BackendError::InvalidRequest`] otherwise); without a
    /// retention, the bucket's default retention applies.
    pub lock: VersionLock,
}

/// What metadata a copy gives the destination.
// One is made per copy request and moved once: boxing `PutMeta` would add an
// allocation and buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source object's content type and user metadata.
    Copy,
    /// Replace them with these.
    Replace(PutMeta),
}

/// One version of an object (or a delete marker), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The key.
    pub key: String,
    /// The version id. [`NULL_VERSION`] (`"null"`) for a version written while
    /// the bucket's versioning was never enabled or suspended; otherwise an
    /// opaque id chosen by the backend (never `"null"`).
    pub version_id: String,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
    /// The etag without quotes: the hex MD5 of the body for a simple upload,
    /// `hex(md5(concat of part md5s))-N` for a multipart upload (empty for a
    /// delete marker).
    pub etag: String,
    /// Last modification, milliseconds since the Unix epoch.
    pub last_modified_ms: u64,
    /// Content type given at upload.
    pub content_type: Option<String>,
    /// User metadata given at upload.
    pub user_metadata: BTreeMap<String, String>,
    /// True if this version is a delete marker.
    pub is_delete_marker: bool,
    /// Stored headers ([`STORED_HEADERS`]) given at upload.
    pub headers: BTreeMap<String, String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Sizes of the parts of a version completed from a multipart upload,
    /// in order; empty for a simple upload (which is one part).
    pub part_sizes: Vec<u64>,
    /// The stored additional checksum (`x-amz-checksum-*`), if the version
    /// was written with one.
    pub checksum: Option<ObjectChecksum>,
    /// The checksums of the parts of a multipart version, by position
    /// (1 = first part).
    pub part_checksums: BTreeMap<u32, String>,
    /// The seal of the customer key (S3 SSE-C) the version is sealed
    /// under, if any: [`CustomerSeal::opens_with`] tells the right key.
    pub customer_seal: Option<CustomerSeal>,
    /// The version's ACL document ([`PutMeta::acl`]); listings leave it
    /// `None`.
    pub acl: Option<String>,
    /// The version's object lock (retention, legal hold).
    pub lock: VersionLock,
}

impl ObjectInfo {
    /// The byte range `(first, last)` (inclusive) of part `n` (1-based) and
    /// the number of parts: a simple upload is one part holding every byte.
    /// A part number beyond the parts is [`BackendError::InvalidPartNumber`].
    pub fn part_range(&self, n: u32) -> BackendResult<(u64, u64, usize)> {
        let sizes: Vec<u64> = if self.part_sizes.is_empty() {
            vec![self.size]
        } else {
            self.part_sizes.clone()
        };
        let idx = usize::try_from(n).unwrap_or(usize::MAX);
        if idx == 0 || idx > sizes.len() {
            return Err(BackendError::InvalidPartNumber);
        }
        let first: u64 = sizes[..idx - 1].iter().sum();
        let len = sizes[idx - 1];
        Ok((first, (first + len).saturating_sub(1), sizes.len()))
    }
}

/// One entry of [`Backend::list_versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// The version (or delete marker, see [`ObjectInfo::is_delete_marker`]).
    pub info: ObjectInfo,
    /// True if this is the newest version of its key.
    pub is_latest: bool,
}

/// The outcome of [`Backend::delete_object`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The version deleted (when a version id was given), or the id of the
    /// delete marker created; `None` when an unversioned object was removed.
    pub version_id: Option<String>,
    /// True if a delete marker was created, or the version deleted was one.
    pub delete_marker: bool,
}

/// A part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    /// Part number, 1..=10000.
    pub part_number: u32,
    /// Hex MD5 of the part's bytes, without quotes.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time, milliseconds since the Unix epoch.
    pub last_modified_ms: u64,
    /// Its verified additional checksum (base64), if it has one.
    pub checksum: Option<String>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// The key the upload will create.
    pub key: String,
    /// The upload id.
    pub upload_id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub initiated_ms: u64,
}

/// A byte range as requested (`Range: bytes=...`), before it is resolved
/// against the object's size with [`ByteRange::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (inclusive) or `bytes=first-` (`last: None`).
    FromTo {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive; `None` means "to the end".
        last: Option<u64>,
    },
    /// `bytes=-len`: the last `len` bytes.
    Suffix {
        /// Number of bytes at the end of the object.
        len: u64,
    },
}

impl ByteRange {
    /// Resolves the range against an object of `size` bytes into
    /// `(first, last)`, both inclusive, clamped to the object, as RFC 9110
    /// says. A range that selects no byte is [`BackendError::InvalidRange`].
    pub fn resolve(self, size: u64) -> BackendResult<(u64, u64)> {
        if size == 0 {
            return Err(BackendError::InvalidRange);
        }
        match self {
            ByteRange::FromTo { first, last } => {
                if first >= size || last.is_some_and(|l| l < first) {
                    return Err(BackendError::InvalidRange);
                }
                let last = last.map_or(size - 1, |l| l.min(size - 1));
                Ok((first, last))
            }
            ByteRange::Suffix { len } => {
                if len == 0 {
                    return Err(BackendError::InvalidRange);
                }
                Ok((size.saturating_sub(len), size - 1))
            }
        }
    }
}

/// The object store as the gateway needs it.
///
/// Every call names the tenant that the request's access key belongs to; a
/// tenant never sees another tenant's buckets: a call naming a bucket the
/// tenant does not own fails with [`BackendError::NoSuchBucket`] (or
/// [`BackendError::AccessDenied`]), whether or not another tenant owns it.
/// Whether bucket names are global or per tenant is the backend's choice; a
/// backend with a global namespace answers
/// [`BackendError::BucketAlreadyExists`] when another tenant has the name.
///
/// **Version ids.** While a bucket's versioning was never enabled, or is
/// suspended, a write replaces the version with id [`NULL_VERSION`]
/// (`"null"`), and an unversioned delete removes it (never enabled) or
/// replaces it with a `"null"` delete marker (suspended). With versioning
/// enabled, every write and every unversioned delete adds a version with a
/// fresh, backend-chosen id (not `"null"`); versions written earlier keep
/// their ids (including an existing `"null"` version). `version_id` arguments
/// accept `"null"` to address the null version.
///
/// **Bodies** are streams; an implementation must not need the whole object in
/// memory, and computes the MD5 etag while it streams a write.
///
/// Implement it with `#[stratus_s3::async_trait]` on the impl block, and run
/// `testing::backend_conformance` (feature `testing`) against the
/// implementation.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Creates a bucket for `tenant`.
    async fn create_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()>;
    /// Deletes a bucket holding no version or delete marker
    /// ([`BackendError::BucketNotEmpty`] otherwise); multipart uploads in
    /// progress are aborted with it (their parts released), as S3 does.
    async fn delete_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<()>;
    /// The tenant's buckets, sorted by name.
    async fn list_buckets(&self, tenant: &str) -> BackendResult<Vec<BucketInfo>>;
    /// The bucket, if the tenant owns it.
    async fn head_bucket(&self, tenant: &str, bucket: &str) -> BackendResult<BucketInfo>;

    /// Enables or suspends versioning.
    async fn set_versioning(
        &self,
        tenant: &str,
        bucket: &str,
        versioning: Versioning,
    ) -> BackendResult<()>;
    /// The versioning state; `None` if versioning was never enabled.
    async fn get_versioning(&self, tenant: &str, bucket: &str)
        -> BackendResult<Option<Versioning>>;

    /// Writes an object by streaming `body`; computes its MD5 etag.
    /// `size_hint` is the length the client announced; the stream is
    /// authoritative. If `body` yields an error nothing is written. The
    /// version keeps `meta`'s headers and tags; `meta.condition` is checked
    /// against the key's current object when the version is committed
    /// ([`BackendError::PreconditionFailed`]: nothing is written).
    async fn put_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> BackendResult<ObjectInfo>;

    /// Reads an object: the latest version, or `version_id`. With a `range`
    /// the stream yields exactly the bytes `range.resolve(info.size)` selects
    /// ([`BackendError::InvalidRange`] if it selects none); without, the whole
    /// object. The latest version being a delete marker is
    /// [`BackendError::NoSuchKey`]; naming a delete marker's version id is
    /// [`BackendError::MethodNotAllowed`].
    async fn get_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
    ) -> BackendResult<(ObjectInfo, ByteStream)>;

    /// [`Backend::get_object`] with the request's customer key (S3 SSE-C).
    /// A version sealed under a customer key reads only with that key
    /// ([`BackendError::CustomerKeyRequired`] without one,
    /// [`BackendError::CustomerKeyMismatch`] with another); a key given for
    /// a version without one is [`BackendError::CustomerKeyNotApplicable`].
    /// `get_object` is this without a key. The default is for a backend
    /// without customer keys.
    #[allow(clippy::too_many_arguments)]
    async fn get_object_sealed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Option<ByteRange>,
        customer: Option<&CustomerKey>,
    ) -> BackendResult<(ObjectInfo, ByteStream)> {
        match customer {
            None => {
                self.get_object(tenant, bucket, key, version_id, range)
                    .await
            }
            Some(_) => Err(BackendError::CustomerKeyNotApplicable),
        }
    }

    /// [`Backend::upload_part`] with the request's customer key: a part of
    /// an upload created with [`PutMeta::customer_key`] must carry that
    /// key, and a part of any other upload none (the errors of
    /// [`Backend::get_object_sealed`]). `upload_part` is this without a
    /// key. Stores the part's additional checksum that `checksum` holds
    /// once `body` has streamed (verified by the gateway). The default is
    /// for a backend without customer keys, and stores no checksum.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part_sealed(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
        customer: Option<&CustomerKey>,
        _checksum: ChecksumSlot,
    ) -> BackendResult<PartInfo> {
        match customer {
            None => {
                self.upload_part(tenant, bucket, key, upload_id, part_number, body, size_hint)
                    .await
            }
            Some(_) => Err(BackendError::CustomerKeyNotApplicable),
        }
    }

    /// An object's metadata, with the same version rules as
    /// [`Backend::get_object`].
    async fn head_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> BackendResult<ObjectInfo>;

    /// Deletes. Without `version_id`: removes the object (never-versioned
    /// bucket), or adds a delete marker (versioning enabled: fresh id;
    /// suspended: replaces the null version with a null marker); deleting a
    /// missing key succeeds. With `version_id`: removes that version for good
    /// (a missing version succeeds too, as in S3). With an `if_match` etag
    /// (`If-Match`), the delete happens only if the version named (or the
    /// latest version; a delete marker has an empty etag, which only `*`
    /// matches) has that etag, checked atomically with the delete;
    /// otherwise [`BackendError::PreconditionFailed`]. A delete of nothing
    /// (no such key or version) succeeds whatever its condition.
    async fn delete_object(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        if_match: Option<&str>,
    ) -> BackendResult<DeleteOutcome>;

    /// Copies an object (latest version or `src_version`) within the tenant.
    /// The destination is a new write (versioned like a put); its etag is the
    /// MD5 of the bytes, which is the source's etag when the source was a
    /// simple upload (a backend may keep a multipart source's etag as is).
    /// `Copy` keeps the source's content type, user metadata, stored headers
    /// and tags; `Replace` takes the given ones (and its condition). The
    /// source's ACL is never copied: `Copy` gives the default, `Replace`
    /// its [`PutMeta::acl`]. A source sealed under a customer key is
    /// [`BackendError::CustomerKeyRequired`]: such a copy is a read with the
    /// key and a put.
    #[allow(clippy::too_many_arguments)]
    async fn copy_object(
        &self,
        tenant: &str,
        src_bucket: &str,
        src_key: &str,
        src_version: Option<&str>,
        dst_bucket: &str,
        dst_key: &str,
        meta: MetadataDirective,
    ) -> BackendResult<ObjectInfo>;

    /// Latest versions that are not delete markers, with keys starting with
    /// `prefix` and greater than `start_after`, sorted by key (byte order),
    /// at most `limit` of them.
    async fn list_objects(
        &self,
        tenant: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> BackendResult<Vec<ObjectInfo>>;

    /// All versions and delete markers of keys starting with `prefix`, sorted
    /// by key, then newest first; at most `limit`. They start after
    /// `key_marker`: after all its versions when `version_marker` is `None`,
    /// after the version `version_marker` of `key_marker` otherwise.
    async fn list_versions(
        &self,
        tenant: &str,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        version_marker: Option<&str>,
        limit: usize,
    ) -> BackendResult<Vec<VersionEntry>>;

    /// Starts a multipart upload; returns its id.
    async fn create_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        meta: PutMeta,
    ) -> BackendResult<String>;

    /// Uploads (or replaces) one part by streaming `body`.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> BackendResult<PartInfo>;

    /// Completes an upload from the listed `(part_number, etag)` pairs (etags
    /// without quotes). Part numbers must be strictly ascending
    /// ([`BackendError::InvalidPartOrder`]), each must have been uploaded with
    /// that etag ([`BackendError::InvalidPart`], also for an empty list), and
    /// every part but the last must be at least [`MIN_PART_SIZE`]
    /// ([`BackendError::EntityTooSmall`]). The object's etag is
    /// `hex(md5(concat of the parts' binary md5s))-N`; its size the sum; it
    /// keeps the headers and tags given at creation and its part sizes.
    /// `condition` is checked atomically with the completion
    /// ([`BackendError::PreconditionFailed`]). Completing an upload already
    /// completed, with the same parts, answers the version it made (as S3
    /// does) while that version exists; otherwise
    /// [`BackendError::NoSuchUpload`].
    #[allow(clippy::too_many_arguments)]
    async fn complete_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(u32, String)>,
        condition: Option<WriteCondition>,
    ) -> BackendResult<ObjectInfo>;

    /// The seal of the customer key a multipart upload was created under
    /// ([`PutMeta::customer_key`]), if any, so a completion can be asked
    /// for the same key. The default is for a backend without customer
    /// keys (no upload has one).
    async fn upload_customer_seal(
        &self,
        _tenant: &str,
        _bucket: &str,
        _key: &str,
        _upload_id: &str,
    ) -> BackendResult<Option<CustomerSeal>> {
        Ok(None)
    }

    /// Abandons an upload and frees its parts.
    async fn abort_multipart(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<()>;

    /// The parts uploaded so far, by part number.
    async fn list_parts(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Vec<PartInfo>>;

    /// Uploads in progress in the bucket, sorted by key then upload id.
    async fn list_multipart_uploads(
        &self,
        tenant: &str,
        bucket: &str,
    ) -> BackendResult<Vec<UploadInfo>>;

    /// The bucket's configuration document of `kind` (JSON written by
    /// [`Backend::put_bucket_config`]), if one is set.
    async fn get_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
    ) -> BackendResult<Option<String>>;
    /// Sets (`Some`) or removes (`None`) the bucket's document of `kind`.
    /// A document over [`MAX_BUCKET_CONFIG_BYTES`] or not JSON is
    /// `InvalidArgument`; documents go with their bucket when it is deleted.
    async fn put_bucket_config(
        &self,
        tenant: &str,
        bucket: &str,
        kind: BucketConfigKind,
        doc: Option<String>,
    ) -> BackendResult<()>;

    /// Replaces the tags of a version (the current object when `version_id`
    /// is `None`; empty `tags` removes them); returns the version id. The
    /// version rules are [`Backend::get_object`]'s; tags breaking S3's rules
    /// are [`BackendError::InvalidTag`].
    async fn set_object_tags(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> BackendResult<String>;

    /// Replaces the ACL document of a version (the current object when
    /// `version_id` is `None`; `None` restores the default); returns the
    /// version id. The version rules are [`Backend::get_object`]'s.
    async fn set_object_acl(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        acl: Option<String>,
    ) -> BackendResult<String>;

    /// Who owns `bucket` and the documents that decide who else may read it
    /// ([`BucketAccessDocs`]), without a tenant: the gateway asks this for
    /// anonymous requests, requests of other tenants and CORS. `None` when
    /// the bucket does not exist. The default (a backend without public
    /// access) answers `None`: every bucket stays private to its owner.
    async fn bucket_access(&self, _bucket: &str) -> BackendResult<Option<BucketAccessDocs>> {
        Ok(None)
    }

    /// Creates a bucket with object lock enabled, and so versioning
    /// enabled for good (its [`BucketConfigKind::ObjectLock`] document is
    /// [`LockConfig::ENABLED`]), in one step. Object lock, once enabled
    /// (here or with [`Backend::put_bucket_config`], which needs versioning
    /// enabled: [`BackendError::InvalidBucketState`]), cannot be removed,
    /// and versioning cannot be suspended
    /// ([`BackendError::InvalidBucketState`]).
    async fn create_bucket_locked(&self, _tenant: &str, _bucket: &str) -> BackendResult<()> {
        Err(BackendError::NotImplemented("object lock".into()))
    }

    /// Sets (`Some`) or lifts (`None`) the retention of a version (the
    /// current object when `version_id` is `None`; read rules of
    /// [`Backend::get_object`]); returns the version id. The bucket must
    /// have object lock ([`BackendError::InvalidRequest`]); the change must
    /// keep [`check_retention_change`]'s rules
    /// ([`BackendError::AccessDenied`]): `COMPLIANCE` only extends,
    /// `GOVERNANCE` shortens or lifts only with `bypass_governance`.
    async fn set_object_retention(
        &self,
        _tenant: &str,
        _bucket: &str,
        _key: &str,
        _version_id: Option<&str>,
        _retention: Option<Retention>,
        _bypass_governance: bool,
    ) -> BackendResult<String> {
        Err(BackendError::NotImplemented("object lock".into()))
    }

    /// Puts a legal hold on a version or lifts it (as
    /// [`Backend::set_object_retention`] for the version and bucket rules).
    async fn set_object_legal_hold(
        &self,
        _tenant: &str,
        _bucket: &str,
        _key: &str,
        _version_id: Option<&str>,
        _on: bool,
    ) -> BackendResult<String> {
        Err(BackendError::NotImplemented("object lock".into()))
    }

    /// [`Backend::delete_object`] under every condition of `cond`: a
    /// delete marker matches only the ETag `*` and no size or time; a
    /// delete of nothing succeeds whatever the conditions (and adds no
    /// delete marker). With `x-amz-bypass-governance-retention`
    /// (`bypass_governance`): every delete of a version refuses, atomically
    /// with the delete, a version under a legal hold or an unexpired
    /// retention ([`check_removal`]: [`BackendError::AccessDenied`]); with
    /// `bypass_governance` an unexpired `GOVERNANCE` retention gives way.
    /// The default handles the ETag only, refuses the other conditions and
    /// has no object lock.
    async fn delete_object_if(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        cond: DeleteCondition,
        bypass_governance: bool,
    ) -> BackendResult<DeleteOutcome> {
        if bypass_governance {
            return Err(BackendError::NotImplemented("object lock".into()));
        }
        if cond.size.is_some() || cond.modified_secs.is_some() {
            return Err(BackendError::InvalidArgument(
                "this backend does not evaluate size or time conditions on deletes".into(),
            ));
        }
        self.delete_object(tenant, bucket, key, version_id, cond.etag.as_deref())
            .await
    }

    /// The checksum algorithm and type an upload was created with (its
    /// value empty), `None` if none. Completing it gives the object the
    /// checksum [`combine_checksums`] computes from the listed parts'.
    async fn upload_checksum(
        &self,
        tenant: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> BackendResult<Option<ObjectChecksum>> {
        let _ = (tenant, bucket, key, upload_id);
        Ok(None)
    }
}

/// The conditions of a delete ([`Backend::delete_object_if`]), all checked
/// atomically with it against the version it would remove or hide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteCondition {
    /// `If-Match` / DeleteObjects' `ETag` (without quotes; `*`: any).
    pub etag: Option<String>,
    /// `x-amz-if-match-size` / DeleteObjects' `Size`.
    pub size: Option<u64>,
    /// `x-amz-if-match-last-modified-time` / DeleteObjects'
    /// `LastModifiedTime`, in whole seconds since the epoch.
    pub modified_secs: Option<u64>,
}

impl DeleteCondition {
    /// Whether there is any condition.
    pub fn is_some(&self) -> bool {
        self.etag.is_some() || self.size.is_some() || self.modified_secs.is_some()
    }
}

/// A version's additional checksum: algorithm (`CRC32`...), base64 value
/// (`-N` suffix when composite) and type.
pub use stratus_state::objects::StoredChecksum as ObjectChecksum;

pub use crate::checksum_combine::combine_checksums;

/// A checksum known once a body has streamed: the gateway's check fills
/// it, the backend reads it before committing. Compared by value.
#[derive(Clone, Default)]
pub struct ChecksumSlot(std::sync::Arc<std::sync::Mutex<Option<ObjectChecksum>>>);

impl ChecksumSlot {
    /// A slot already holding `c`.
    pub fn with(c: ObjectChecksum) -> Self {
        let s = Self::default();
        s.set(c);
        s
    }

    /// Fills the slot.
    pub fn set(&self, c: ObjectChecksum) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(c);
        }
    }

    /// What the slot holds.
    pub fn get(&self) -> Option<ObjectChecksum> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

impl std::fmt::Debug for ChecksumSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ChecksumSlot").field(&self.get()).finish()
    }
}

impl PartialEq for ChecksumSlot {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for ChecksumSlot {}

/// A bucket's owner and its access documents ([`Backend::bucket_access`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketAccessDocs {
    /// The owning tenant.
    pub owner: String,
    /// The [`BucketConfigKind::Policy`] document.
    pub policy: Option<String>,
    /// The [`BucketConfigKind::Acl`] document.
    pub acl: Option<String>,
    /// The [`BucketConfigKind::PublicAccessBlock`] document.
    pub public_access_block: Option<String>,
    /// The [`BucketConfigKind::Cors`] document.
    pub cors: Option<String>,
}

impl BucketAccessDocs {
    /// The owner and the documents of `get(kind)`.
    pub fn collect<'a>(owner: &str, get: impl Fn(BucketConfigKind) -> Option<&'a str>) -> Self {
        let doc = |k| get(k).map(str::to_owned);
        Self {
            owner: owner.to_owned(),
            policy: doc(BucketConfigKind::Policy),
            acl: doc(BucketConfigKind::Acl),
            public_access_block: doc(BucketConfigKind::PublicAccessBlock),
            cors: doc(BucketConfigKind::Cors),
        }
    }
}

/// What an access key resolves to.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The secret key (SigV4 needs it to check signatures).
    pub secret: String,
    /// The tenant the key acts for.
    pub tenant: String,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("secret", &"<redacted>")
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// Access keys. s3s checks SigV4 signatures with the secret; the gateway then
/// acts for the key's tenant.
pub trait KeyStore: Send + Sync + 'static {
    /// The secret and tenant of `access_key`, if it exists.
    fn lookup(&self, access_key: &str) -> Option<KeyRecord>;

    /// Whether a tenant of that name exists (an ACL may grant only to
    /// tenants that do). The default knows none.
    fn tenant_exists(&self, _tenant: &str) -> bool {
        false
    }
}

impl<K: KeyStore + ?Sized> KeyStore for std::sync::Arc<K> {
    fn lookup(&self, access_key: &str) -> Option<KeyRecord> {
        (**self).lookup(access_key)
    }

    fn tenant_exists(&self, tenant: &str) -> bool {
        (**self).tenant_exists(tenant)
    }
}
