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
//! S3 client ──HTTP──▶ hyper ──▶ s3s (routing, SigV4, XML) ──▶ Gateway ──▶ Backend
//!                                       │
//!                                       └─ KeyStore: access key → (secret, tenant)
//! ```
//!
//! Start it with [`serve`] (a `TcpListener`, a [`Gateway`], a shutdown
//! future), or take the hyper/tower service from [`service`].
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
//! requests are `AccessDenied`. s3s also checks SigV2 and presigned URLs of
//! any lifetime; [`access::SignaturePolicy`] then refuses SigV2
//! (`AccessDenied` saying why), and presigned URLs living over 7 days or with
//! a negative expiry get AWS's `AuthorizationQueryParametersError`. The [`Gateway`] then looks up the key's
//! **tenant** and passes it to every [`Backend`] call. Tenants are isolated by
//! the backend: a tenant never sees, lists or touches another tenant's buckets
//! (it gets `NoSuchBucket` or `AccessDenied`). Copies stay within a tenant.
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
//!   it), HeadBucket, ListBuckets, GetBucketLocation,
//!   Get/PutBucketVersioning.
//! - Objects: PutObject, GetObject (single `Range`, `partNumber=N` with
//!   `x-amz-mp-parts-count` and `Content-Range`, out of range
//!   `InvalidPartNumber` 416,
//!   `If-Match`/`If-None-Match`/`If-Modified-Since`/`If-Unmodified-Since` →
//!   412/304, `response-*` overrides), HeadObject (same conditions and
//!   `partNumber`), DeleteObject (`If-Match`), DeleteObjects, CopyObject
//!   (`COPY`/`REPLACE` metadata and tagging directives,
//!   `x-amz-copy-source-if-*`, source `versionId`), content type,
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
//! - Listing: ListObjectsV2 (prefix, delimiter, `max-keys`, continuation token,
//!   `start-after`, `fetch-owner`), ListObjects v1 (marker; `Prefix` and
//!   `Marker` always echoed, `max-keys=0` not truncated, an empty delimiter
//!   not echoed), ListObjectVersions
//!   (key/version-id markers, delete markers, delimiter), `encoding-type=url`.
//! - Multipart: CreateMultipartUpload, UploadPart, CompleteMultipartUpload
//!   (S3's `md5-of-md5s-N` etag; an empty part list is `MalformedXML`;
//!   completing a completed upload again with the same parts answers its
//!   object, as S3 does), AbortMultipartUpload, ListParts,
//!   ListMultipartUploads.
//! - Path-style addressing; virtual-hosted style with
//!   [`service_with_domain`].
//! - Streaming: object bodies go from the socket to the backend and back as
//!   streams; the gateway never buffers a body (a 5 GiB PUT works).
//!
//! # Not supported
//!
//! ACLs and bucket policies (every key has full control of its tenant's
//! buckets, nothing else), IAM/STS, SSE-C and SSE-KMS (refused with
//! `NotImplemented`, never ignored; SSE-S3 is answered `AES256`, as every
//! object is encrypted at rest), object lock and legal hold, lifecycle, replication, CORS,
//! website hosting, notifications, Select, UploadPartCopy, POST-policy
//! uploads (s3s parses them but the gateway does not implement PostObject),
//! SigV2, checking the additional checksums
//! (`x-amz-checksum-*`; they are accepted but not verified or returned), and
//! MFA delete. These answer `NotImplemented` (s3s's default); on object
//! writes, headers asking for them (`x-amz-acl` other than `private` or
//! `bucket-owner-full-control`, grants, object lock, a storage class
//! other than `STANDARD`, website redirects) are refused the same way
//! (`unsupported`), never dropped.

pub mod access;
pub mod backend;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
mod gateway;
mod keepalive;
mod listing;
pub mod request_id;
mod sse;
pub mod store;
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
    Backend, BackendError, BackendResult, BucketInfo, ByteRange, ByteStream, DeleteOutcome,
    KeyRecord, KeyStore, MetadataDirective, ObjectInfo, PartInfo, PutMeta, UploadInfo,
    VersionEntry, Versioning, WriteCondition,
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
    b
}

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
/// connections finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve<B: Backend, K: KeyStore>(
    listener: tokio::net::TcpListener,
    gateway: Gateway<B, K>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_service(listener, service(gateway), default_limits(), shutdown).await
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
