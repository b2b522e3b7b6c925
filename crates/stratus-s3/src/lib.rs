//! The S3-compatible gateway.
//!
//! **Owns** the S3 protocol door: SigV4, addressing, the S3 error codes and
//! the mapping onto the [`Backend`] trait. **Does not own** the object
//! store (`stratus-store` behind [`Backend`]) or connection limits
//! (`stratus-http`).
//!
//! The gateway speaks the S3 protocol (through [`s3s`] 0.14, served by hyper)
//! over an abstract object store, the [`Backend`] trait. The real backend is
//! Stratus's erasure-coded, versioned object store. Behind the `testing`
//! feature (never enabled by the product; enabled by this crate's tests,
//! `stratus-testkit`'s tests, the fuzz crate and the `mem_gateway` example):
//! `testing::MemBackend` is an in-memory backend, `testing::backend_conformance`
//! the suite every backend must pass, and `fuzzing` the fuzz entry point with
//! its fixed test keys and a SigV4 signer.
//!
//! ```text
//! S3 client ──HTTP──▶ hyper ──▶ cors ──▶ s3s (routing, SigV4, XML) ──▶ Gateway ──▶ Backend
//!                                                │                       │
//!                KeyStore: access key → (secret, tenant)   policy, ACL, Block Public Access
//! ```
//!
//! Start it with [`serve`] (a `TcpListener`, a [`Gateway`], a shutdown
//! future), or take the hyper/tower service from [`service`] (without the
//! CORS layer, which [`serve`] adds).
//!
//! # Authentication and tenant isolation
//!
//! Every request must be signed with AWS Signature V4, in the `Authorization`
//! header or as a presigned URL (query-string SigV4, checked by s3s, which
//! honours `X-Amz-Expires`); `aws-chunked` streaming uploads (signed or
//! `UNSIGNED-PAYLOAD`, with or without `Content-Length`: the length is
//! `x-amz-decoded-content-length`) are decoded by s3s. s3s asks the [`KeyStore`] for the
//! access key's secret and checks the signature (a wrong secret is
//! `SignatureDoesNotMatch`, an unknown key `InvalidAccessKeyId`); anonymous
//! requests are `AccessDenied`, except what policies and ACLs grant (below). s3s also
//! checks SigV2 and presigned URLs of any lifetime; [`access::SignaturePolicy`] then refuses SigV2
//! (`AccessDenied` saying why), and presigned URLs living over 7 days or with
//! a negative expiry get AWS's `AuthorizationQueryParametersError`. The [`Gateway`] then looks up the key's
//! **tenant** and passes it to every [`Backend`] call. Tenants are isolated by
//! the backend: a tenant never sees, lists or touches another tenant's buckets
//! (it gets `NoSuchBucket` or `AccessDenied`) unless the owner grants it
//! (below). Copies stay within one owner's buckets.
//!
//! # Access by others: policies and ACLs
//!
//! A bucket's owner may open its bucket and objects to others (anonymous
//! requests and other tenants) with a bucket policy ([`policy`], a subset of
//! AWS's: principal `*`) and with ACLs ([`acl`]: owner and grants to
//! tenants, `AllUsers` and `AuthenticatedUsers`, the six canned ACLs,
//! `x-amz-acl`/`x-amz-grant-*` headers and `AccessControlPolicy` bodies on
//! buckets and on every object version), bounded by its Block Public Access
//! settings ([`public`]). The decision is AWS's: an explicit `Deny` wins,
//! then a policy `Allow`, then the ACL (bucket `READ` lists and heads the
//! bucket, `WRITE` puts, copies into and deletes objects and runs multipart
//! uploads, `READ_ACP`/`WRITE_ACP` read/replace the bucket ACL; an object's
//! `READ` reads that version, its `READ_ACP`/`WRITE_ACP` its ACL). The
//! owner's own requests are never bound by policy or ACL. A grantee acts
//! for the bucket's owner: what it writes is stored and charged as the
//! owner's, its ACL records the writer as the object's owner. Unsigned
//! requests for any operation an ACL or policy cannot grant are refused
//! before they reach the gateway ([`access::ANONYMOUS_OPERATIONS`]). CORS
//! rules ([`cors`]) answer browser preflights without authentication and
//! grant nothing by themselves.
//!
//! # Version ids
//!
//! A bucket whose versioning was never enabled, or is suspended, keeps one
//! version per key with the id `"null"` ([`backend::NULL_VERSION`]); with
//! versioning enabled each write and each unversioned delete gets a fresh
//! backend-chosen id. `"null"` is accepted as a `versionId` to address the
//! null version and is listed as such by ListObjectVersions, but is not sent
//! as an `x-amz-version-id` response header (so unversioned buckets look
//! unversioned to clients).
//!
//! # Supported
//!
//! - Buckets: CreateBucket (any location constraint is accepted; names
//!   checked by AWS's rules → `InvalidBucketName`; a bucket the caller
//!   already owns answers 200 in `us-east-1`, `BucketAlreadyOwnedByYou`
//!   elsewhere), DeleteBucket (multipart uploads in progress are aborted with
//!   it), HeadBucket, ListBuckets, GetBucketLocation, Get/PutBucketVersioning,
//!   Put/Get/DeleteBucketTagging (50 tags, keys ≤ 128 and values ≤ 256
//!   characters, unique keys; `InvalidTag` otherwise),
//!   Put/Get/DeleteBucketLifecycleConfiguration (rules with `ID`, `Status`,
//!   a `Filter` or `Prefix` on the key prefix, `Expiration` `Days` and
//!   `ExpiredObjectDeleteMarker`, `NoncurrentVersionExpiration`
//!   `NoncurrentDays` and `NewerNoncurrentVersions`,
//!   `AbortIncompleteMultipartUpload`; carried out by the leader's
//!   maintenance; transitions, expiration `Date` and tag or size filters are
//!   `NotImplemented`).
//! - Objects: PutObject, GetObject (single `Range`, `partNumber=N` with
//!   `x-amz-mp-parts-count` and `Content-Range`, out of range
//!   `InvalidPartNumber` 416,
//!   `If-Match`/`If-None-Match`/`If-Modified-Since`/`If-Unmodified-Since` →
//!   412/304, `response-*` overrides), HeadObject (same conditions and
//!   `partNumber`), DeleteObject (`If-Match`), DeleteObjects, CopyObject
//!   (`COPY`/`REPLACE` metadata and tagging directives,
//!   `x-amz-copy-source-if-*`, source `versionId`; DeleteObjects checks each entry's `ETag` with its delete and refuses `Size`/`LastModifiedTime` entries, DeleteObject refuses `x-amz-if-match-size`/`-last-modified-time`), content type,
//!   `x-amz-meta-*` user metadata and the stored headers (`Cache-Control`,
//!   `Content-Disposition`, `Content-Encoding`, `Content-Language`,
//!   `Expires`), `Content-MD5` (checked while streaming: a mismatch is
//!   `BadDigest` and nothing is written), atomic conditional writes
//!   (`If-None-Match: *`, `If-Match` on PutObject and
//!   CompleteMultipartUpload, checked in the state machine with the write),
//!   delete markers answered with `x-amz-delete-marker` (404 on the key, 405
//!   on the marker's version).
//! - Tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging (with
//!   `versionId`), `x-amz-tagging` on PutObject, CreateMultipartUpload and
//!   CopyObject, `x-amz-tagging-count` on GET and HEAD; S3's limits (10
//!   tags, keys ≤128 and values ≤256 characters, unique keys) → `InvalidTag`.
//! - Every answer carries `x-amz-request-id` and `x-amz-id-2`; every error
//!   body `Code`, `Message`, `Resource` and `RequestId` (on the
//!   [`serve`]d service).
//! - Checksums: the additional checksums
//!   `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}` on PutObject, POST
//!   Object and UploadPart (as a header, form field or `aws-chunked` trailer
//!   named by `x-amz-trailer`: computed while the body streams; a mismatch is
//!   `BadDigest` naming the algorithm, a malformed, conflicting or missing
//!   announced value `InvalidRequest`, and nothing is written; the verified
//!   checksum is echoed; `x-amz-sdk-checksum-algorithm` without a value
//!   checks nothing) — verified but not stored, so GET/HEAD with
//!   `x-amz-checksum-mode: ENABLED` return no checksum (as S3 for an object
//!   stored without one) and CompleteMultipartUpload accepts per-part
//!   checksums without comparing them and answers no composite one.
//! - Listing: ListObjectsV2 (prefix, delimiter, `max-keys`, continuation token,
//!   `start-after`, `fetch-owner`), ListObjects v1 (marker; `Prefix` and
//!   `Marker` always echoed, `max-keys=0` not truncated, an empty delimiter
//!   not echoed), ListObjectVersions
//!   (key/version-id markers, delete markers, delimiter), `encoding-type=url`.
//! - Multipart: CreateMultipartUpload, UploadPart, UploadPartCopy (source
//!   `versionId`, `x-amz-copy-source-range`, `x-amz-copy-source-if-*`; the
//!   source is streamed into the part), CompleteMultipartUpload
//!   (S3's `md5-of-md5s-N` etag; an empty part list is `MalformedXML`;
//!   completing a completed upload again with the same parts answers its
//!   object, as S3 does), AbortMultipartUpload, ListParts,
//!   ListMultipartUploads.
//! - Public access: Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus,
//!   Put/GetBucketAcl, Put/GetObjectAcl (with `versionId`), ACLs on
//!   CreateBucket, PutObject, CopyObject and CreateMultipartUpload,
//!   Put/Get/DeletePublicAccessBlock, anonymous requests as they grant.
//! - CORS: Put/Get/DeleteBucketCors, preflight `OPTIONS` and
//!   `Access-Control-*` response headers (in [`serve`]; path-style).
//! - POST Object (browser form upload) signed with SigV4: s3s checks the
//!   signature, expiration and every condition of the policy (each form
//!   field must be covered); files up to [`MAX_POST_OBJECT_BYTES`].
//! - Path-style addressing; virtual-hosted style with
//!   [`service_with_domain`].
//! - Streaming: object bodies go from the socket to the backend and back as
//!   streams; the gateway never buffers a body (a 5 GiB PUT works), except
//!   a POST Object's file, which s3s holds (at most
//!   [`MAX_POST_OBJECT_BYTES`]) to check the policy's size range first.
//!
//! # Not supported
//!
//! ACL grants to email addresses (`UnresolvableGrantByEmailAddress`: tenants
//! have none) and to AWS's `LogDelivery` group (`log-delivery-write`),
//! copies between buckets of different owners, policy elements outside the
//! subset of [`policy`] (named principals, other actions, other condition
//! keys: refused when the policy is written), account-level Block Public
//! Access, anonymous POST Object, IAM/STS, SSE-C and SSE-KMS (refused with
//! `NotImplemented`, never ignored; SSE-S3 is answered `AES256`, as every
//! object is encrypted at rest), object lock and legal hold, lifecycle
//! transitions, `Expiration Date` and tag or size filters, replication,
//! website hosting, notifications, Select, SigV2 (header, presigned URL and
//! POST form), storing the additional checksums (they are verified on
//! upload, see above, but not returned by reads) and composite multipart
//! checksums, and
//! MFA delete. These answer `NotImplemented` (s3s's default); on object
//! writes, headers asking for them (object lock, a storage class
//! other than `STANDARD`, website redirects) are refused the same way
//! (`unsupported`), never dropped.

pub mod access;
pub mod acl;
pub mod backend;
mod checksum_combine;
pub mod cors;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod gateway;
mod keepalive;
mod listing;
pub mod policy;
pub mod public;
pub mod request_id;
mod sse;
pub mod store;
mod store_convert;
mod store_lock;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod unsupported;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{s3_error, S3Result};

/// Re-exported so backends can implement [`Backend`] without naming the crate.
pub use async_trait::async_trait;
pub use backend::{
    Backend, BackendError, BackendResult, BucketAccessDocs, BucketConfigKind, BucketInfo,
    ByteRange, ByteStream, CustomerKey, CustomerSeal, DeleteOutcome, KeyRecord, KeyStore,
    MetadataDirective, ObjectInfo, PartInfo, PutMeta, UploadInfo, VersionEntry, Versioning,
    WriteCondition,
};
pub use gateway::{to_s3_error, Gateway};
pub use s3s;
pub use store::{store_gateway, StoreBackend, StoreKeys};
pub use stratus_http::Limits;

/// Errors of [`serve`] and [`service_with_domain`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Accepting a connection failed.
    #[error("accept: {0}")]
    Accept(#[source] std::io::Error),
    /// The virtual-host base domain is not a valid domain.
    #[error("invalid base domain {0:?}")]
    InvalidDomain(String),
}

/// How long [`serve`] lets open connections finish after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// s3s's [`S3Auth`] over a [`KeyStore`]: gives s3s the secret to check SigV4.
pub struct KeyAuth<K>(pub Arc<K>);

#[async_trait::async_trait]
impl<K: KeyStore> S3Auth for KeyAuth<K> {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.lookup(access_key) {
            Some(r) => Ok(SecretKey::from(r.secret)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}

fn builder<B: Backend, K: KeyStore>(gateway: Gateway<B, K>) -> S3ServiceBuilder {
    let auth = KeyAuth(Arc::clone(gateway.keys()));
    let mut b = S3ServiceBuilder::new(gateway);
    b.set_auth(auth);
    b.set_access(access::SignaturePolicy);
    let mut config = s3s::config::S3Config::default();
    config.post_object_max_file_size = MAX_POST_OBJECT_BYTES;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    b
}

/// The largest file a browser form upload (POST Object) may carry: s3s holds
/// the whole file in memory to check the policy's `content-length-range`
/// before the object is written, so the gateway bounds it well below AWS's
/// 5 GB (larger uploads use PutObject or multipart, which stream).
pub const MAX_POST_OBJECT_BYTES: u64 = 64 * 1024 * 1024;

/// The S3 service (a hyper and tower service) for `gateway`, path-style
/// addressing only (`http://host/bucket/key`).
pub fn service<B: Backend, K: KeyStore>(gateway: Gateway<B, K>) -> S3Service {
    builder(gateway).build()
}

/// The S3 service accepting virtual-hosted-style requests
/// (`http://bucket.<base_domain>/key`) as well as path-style ones.
pub fn service_with_domain<B: Backend, K: KeyStore>(
    gateway: Gateway<B, K>,
    base_domain: &str,
) -> Result<S3Service, ServeError> {
    let host = s3s::host::SingleDomain::new(base_domain)
        .map_err(|_| ServeError::InvalidDomain(base_domain.to_owned()))?;
    let mut b = builder(gateway);
    b.set_host(host);
    Ok(b.build())
}

/// Serves `gateway` (path-style) on `listener` (HTTP/1.1 and HTTP/2, no TLS)
/// within the default [`Limits`] until `shutdown` completes, then lets open
/// connections finish for up to [`SHUTDOWN_GRACE`]. Every answer carries a
/// request id ([`request_id`]); the bucket's CORS rules answer preflights
/// and decorate responses ([`cors`]).
pub async fn serve<B: Backend, K: KeyStore>(
    listener: tokio::net::TcpListener,
    gateway: Gateway<B, K>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let backend = Arc::clone(gateway.backend());
    let service = request_id::RequestIds(cors::Cors {
        inner: keepalive::CloseAfterEmptyExpect(service(gateway)),
        backend,
    });
    stratus_http::serve(listener, service, default_limits(), shutdown)
        .await
        .map_err(|stratus_http::ServeError::Accept(e)| ServeError::Accept(e))
}

/// The gateway's default connection limits ([`stratus_http::Limits`]).
pub fn default_limits() -> Limits {
    Limits {
        shutdown_grace: SHUTDOWN_GRACE,
        ..Limits::default()
    }
}

/// Serves an S3 service built by [`service`] or [`service_with_domain`]
/// within `limits` (connections, request heads; bodies stream).
///
/// HTTP/1.1 requests that expect `100-continue` but carry no body are
/// answered with `Connection: close` (see the `keepalive` module: botocore
/// otherwise misreads the next response on that connection and hangs).
pub async fn serve_service(
    listener: tokio::net::TcpListener,
    service: S3Service,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let service = request_id::RequestIds(keepalive::CloseAfterEmptyExpect(service));
    stratus_http::serve(listener, service, limits, shutdown)
        .await
        .map_err(|stratus_http::ServeError::Accept(e)| ServeError::Accept(e))
}
