//! [`Gateway`]: the s3s [`S3`] implementation over a [`Backend`].

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use md5::{Digest, Md5};
use s3s::dto::{
    self, AbortMultipartUploadInput, AbortMultipartUploadOutput, BucketVersioningStatus,
    CommonPrefix, CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CopyObjectInput,
    CopyObjectOutput, CopyObjectResult, CopySource, CreateBucketInput, CreateBucketOutput,
    CreateMultipartUploadInput, CreateMultipartUploadOutput, DeleteBucketInput, DeleteBucketOutput,
    DeleteMarkerEntry, DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput,
    DeleteObjectsOutput, DeletedObject, ETag, ETagCondition, EncodingType, GetBucketLocationInput,
    GetBucketLocationOutput, GetBucketVersioningInput, GetBucketVersioningOutput, GetObjectInput,
    GetObjectOutput, HeadBucketInput, HeadBucketOutput, HeadObjectInput, HeadObjectOutput,
    ListBucketsInput, ListBucketsOutput, ListMultipartUploadsInput, ListMultipartUploadsOutput,
    ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsInput, ListObjectsOutput,
    ListObjectsV2Input, ListObjectsV2Output, ListPartsInput, ListPartsOutput, MultipartUpload,
    Object, ObjectStorageClass, ObjectVersion, ObjectVersionStorageClass, Owner, Part,
    PutBucketVersioningInput, PutBucketVersioningOutput, PutObjectInput, PutObjectOutput,
    StreamingBlob, Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use crate::backend::{
    Backend, BackendError, ByteRange, ByteStream, KeyStore, MetadataDirective, ObjectInfo, PutMeta,
    Versioning, MAX_PART_NUMBER, NULL_VERSION,
};
use crate::listing::{self, Item};
use crate::sse;
use crate::unsupported;

/// Default and maximum page size of listings (S3's 1000).
const MAX_KEYS: i32 = 1000;

/// The S3 gateway: an s3s [`S3`] implementation over a [`Backend`], acting
/// for the tenant of the request's access key (looked up in a [`KeyStore`]).
pub struct Gateway<B, K> {
    backend: Arc<B>,
    keys: Arc<K>,
    region: String,
}

impl<B, K> Clone for Gateway<B, K> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            keys: Arc::clone(&self.keys),
            region: self.region.clone(),
        }
    }
}

impl<B: Backend, K: KeyStore> Gateway<B, K> {
    /// A gateway over `backend` authenticating with `keys`, in region
    /// `us-east-1`.
    pub fn new(backend: Arc<B>, keys: Arc<K>) -> Self {
        Self {
            backend,
            keys,
            region: "us-east-1".to_owned(),
        }
    }

    /// Sets the region reported by GetBucketLocation.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// The key store.
    pub fn keys(&self) -> &Arc<K> {
        &self.keys
    }

    /// The tenant of the request's (already SigV4-checked) access key.
    fn tenant<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let cred = req
            .credentials
            .as_ref()
            .ok_or_else(|| s3_error!(AccessDenied, "anonymous requests are not allowed"))?;
        self.keys
            .lookup(&cred.access_key)
            .map(|r| r.tenant)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))
    }
}

/// Maps a backend error to the S3 error clients expect.
pub fn to_s3_error(e: BackendError) -> S3Error {
    use BackendError as E;
    match e {
        E::NoSuchBucket => s3_error!(NoSuchBucket),
        E::BucketAlreadyOwnedByYou => s3_error!(BucketAlreadyOwnedByYou),
        E::BucketAlreadyExists => s3_error!(BucketAlreadyExists),
        E::BucketNotEmpty => s3_error!(BucketNotEmpty),
        E::NoSuchKey => s3_error!(NoSuchKey),
        E::NoSuchVersion => s3_error!(NoSuchVersion),
        E::NoSuchUpload => s3_error!(NoSuchUpload),
        E::InvalidPart => s3_error!(InvalidPart),
        E::InvalidPartOrder => s3_error!(InvalidPartOrder),
        E::EntityTooSmall => s3_error!(EntityTooSmall),
        E::MethodNotAllowed => s3_error!(MethodNotAllowed),
        E::InvalidRange => s3_error!(InvalidRange),
        E::AccessDenied => s3_error!(AccessDenied),
        E::InvalidBucketName => s3_error!(InvalidBucketName),
        E::InvalidArgument(m) => S3Error::with_message(S3ErrorCode::InvalidArgument, m),
        E::EntityTooLarge(m) => S3Error::with_message(S3ErrorCode::EntityTooLarge, m),
        E::Internal(m) => {
            tracing::error!(error = %m, "backend internal error");
            S3Error::with_message(S3ErrorCode::InternalError, m)
        }
        E::ServiceUnavailable(m) => S3Error::with_message(S3ErrorCode::ServiceUnavailable, m),
        E::QuotaExceeded(m) => {
            // Not one of AWS's codes: Ceph RGW's, which S3 clients show as is.
            let mut e = S3Error::with_message(S3ErrorCode::Custom("QuotaExceeded".into()), m);
            e.set_status_code(http::StatusCode::FORBIDDEN);
            e
        }
    }
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

fn timestamp_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

/// Version ids as headers: the null version is not announced.
fn version_header(v: &str) -> Option<String> {
    (v != NULL_VERSION).then(|| v.to_owned())
}

fn owner(tenant: &str) -> Owner {
    Owner {
        display_name: Some(tenant.to_owned()),
        id: Some(tenant.to_owned()),
    }
}

fn put_meta(content_type: Option<String>, metadata: Option<dto::Metadata>) -> PutMeta {
    PutMeta {
        content_type,
        user_metadata: metadata
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn metadata_out(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn content_type_out(info: &ObjectInfo) -> String {
    info.content_type
        .clone()
        .unwrap_or_else(|| "binary/octet-stream".to_owned())
}

fn byte_range(r: &dto::Range) -> ByteRange {
    match *r {
        dto::Range::Int { first, last } => ByteRange::FromTo { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix { len: length },
    }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n.min(MAX_KEYS)).unwrap_or(0)),
    }
}

fn is_url_encoding(e: &Option<EncodingType>) -> bool {
    e.as_ref().is_some_and(|e| e.as_str() == EncodingType::URL)
}

/// Opaque continuation token of ListObjectsV2: the hex of the marker.
fn encode_token(marker: &str) -> String {
    hex::encode(marker.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "invalid continuation token"))
}

/// An object body from s3s, as the backend's stream type.
fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(b) => Box::pin(b.map_err(std::io::Error::other)),
        None => Box::pin(futures::stream::empty()),
    }
}

/// A backend stream as an s3s body (s3s wants `Sync`; the mutex is only ever
/// accessed through `&mut`, so it is never locked).
struct SyncStream(std::sync::Mutex<ByteStream>);

impl Stream for SyncStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(s) => s.as_mut().poll_next(cx),
            Err(_) => Poll::Ready(Some(Err(std::io::Error::other("poisoned body stream")))),
        }
    }
}

fn blob(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(std::sync::Mutex::new(stream)))
}

/// Checks a body against the client's `Content-MD5` while it streams: on a
/// mismatch the stream ends with an error (so the backend writes nothing)
/// and `mismatch` is set (so the gateway answers `BadDigest`).
struct Md5Check {
    inner: ByteStream,
    hasher: Md5,
    expected: Vec<u8>,
    mismatch: Arc<AtomicBool>,
    done: bool,
}

impl Stream for Md5Check {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.done = true;
                let got = std::mem::take(&mut this.hasher).finalize();
                if got.as_slice() == this.expected.as_slice() {
                    Poll::Ready(None)
                } else {
                    this.mismatch.store(true, Ordering::SeqCst);
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "Content-MD5 mismatch",
                    ))))
                }
            }
            other => other,
        }
    }
}

/// Wraps `body` in a Content-MD5 check if the client sent one.
fn checked_body(
    body: Option<StreamingBlob>,
    content_md5: Option<&str>,
) -> S3Result<(ByteStream, Option<Arc<AtomicBool>>)> {
    let stream = body_stream(body);
    let Some(b64) = content_md5 else {
        return Ok((stream, None));
    };
    let expected = base64_decode(b64)
        .filter(|d| d.len() == 16)
        .ok_or_else(|| s3_error!(InvalidDigest))?;
    let mismatch = Arc::new(AtomicBool::new(false));
    let checked = Md5Check {
        inner: stream,
        hasher: Md5::new(),
        expected,
        mismatch: Arc::clone(&mismatch),
        done: false,
    };
    Ok((Box::pin(checked), Some(mismatch)))
}

/// Standard base64 (with padding), enough for Content-MD5.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The result of write errors, taking a Content-MD5 mismatch into account.
fn write_error(e: BackendError, mismatch: Option<&Arc<AtomicBool>>) -> S3Error {
    if mismatch.is_some_and(|m| m.load(Ordering::SeqCst)) {
        return s3_error!(BadDigest);
    }
    to_s3_error(e)
}

fn etag_matches(cond: &ETagCondition, info: &ObjectInfo) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(t) => t.value() == info.etag,
    }
}

/// The outcome of HTTP preconditions.
enum Precondition {
    Pass,
    NotModified,
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since` as RFC 9110 §13.2.2 orders them (dates at second
/// granularity, as HTTP dates are).
fn evaluate(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> Precondition {
    let modified = i64::try_from(info.last_modified_ms / 1000).unwrap_or(i64::MAX);
    if let Some(c) = if_match {
        if !etag_matches(c, info) {
            return Precondition::Failed;
        }
    } else if let Some(t) = if_unmodified_since {
        if modified > timestamp_secs(t) {
            return Precondition::Failed;
        }
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, info) {
            return Precondition::NotModified;
        }
    } else if let Some(t) = if_modified_since {
        if modified <= timestamp_secs(t) {
            return Precondition::NotModified;
        }
    }
    Precondition::Pass
}

fn precondition_error(p: Precondition, info: &ObjectInfo) -> S3Result<()> {
    match p {
        Precondition::Pass => Ok(()),
        Precondition::Failed => Err(s3_error!(PreconditionFailed)),
        Precondition::NotModified => {
            let mut e = s3_error!(NotModified);
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", info.etag)) {
                headers.insert(http::header::ETAG, v);
            }
            e.set_headers(headers);
            Err(e)
        }
    }
}

fn object_entry(info: ObjectInfo, url: bool, fetch_owner: Option<&str>) -> Object {
    Object {
        e_tag: Some(etag(&info.etag)),
        key: Some(if url {
            listing::url_encode(&info.key)
        } else {
            info.key
        }),
        last_modified: Some(timestamp(info.last_modified_ms)),
        owner: fetch_owner.map(owner),
        size: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

fn split_items(
    items: Vec<Item<ObjectInfo>>,
    url: bool,
    fetch_owner: Option<&str>,
) -> (Vec<Object>, Vec<CommonPrefix>, Option<String>) {
    let last = items.last().map(|i| match i {
        Item::Entry(o) => o.key.clone(),
        Item::Prefix(p) => p.clone(),
    });
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in items {
        match item {
            Item::Entry(o) => objects.push(object_entry(o, url, fetch_owner)),
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(if url { listing::url_encode(&p) } else { p }),
            }),
        }
    }
    (objects, prefixes, last)
}

fn enc(url: bool, s: Option<String>) -> Option<String> {
    if url {
        s.map(|s| listing::url_encode(&s))
    } else {
        s
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part number must be between 1 and 10000"))
}

fn content_length(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

#[async_trait::async_trait]
impl<B: Backend, K: KeyStore> S3 for Gateway<B, K> {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let tenant = self.tenant(&req)?;
        let bucket = &req.input.bucket;
        self.backend
            .create_bucket(&tenant, bucket)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let tenant = self.tenant(&req)?;
        self.backend
            .delete_bucket(&tenant, &req.input.bucket)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let tenant = self.tenant(&req)?;
        self.backend
            .head_bucket(&tenant, &req.input.bucket)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..Default::default()
        }))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let tenant = self.tenant(&req)?;
        let buckets = self
            .backend
            .list_buckets(&tenant)
            .await
            .map_err(to_s3_error)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = buckets
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| dto::Bucket {
                bucket_region: Some(self.region.clone()),
                creation_date: Some(timestamp(b.created_ms)),
                name: Some(b.name),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner(&tenant)),
            prefix: req.input.prefix,
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let tenant = self.tenant(&req)?;
        self.backend
            .head_bucket(&tenant, &req.input.bucket)
            .await
            .map_err(to_s3_error)?;
        // S3 reports us-east-1 as an empty constraint.
        let location_constraint = (self.region != "us-east-1")
            .then(|| dto::BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let tenant = self.tenant(&req)?;
        let v = self
            .backend
            .get_versioning(&tenant, &req.input.bucket)
            .await
            .map_err(to_s3_error)?;
        let status = v.map(|v| {
            BucketVersioningStatus::from_static(match v {
                Versioning::Enabled => BucketVersioningStatus::ENABLED,
                Versioning::Suspended => BucketVersioningStatus::SUSPENDED,
            })
        });
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let tenant = self.tenant(&req)?;
        let v = match req
            .input
            .versioning_configuration
            .status
            .as_ref()
            .map(|s| s.as_str())
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "versioning status must be Enabled or Suspended"
                ))
            }
        };
        self.backend
            .set_versioning(&tenant, &req.input.bucket, v)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        sse::refuse_unsupported(&sse::asked_of!(input))?;
        unsupported::refuse_extras(&unsupported::extras_of!(input))?;
        if let Some(cond) = &input.if_none_match {
            // Best effort (not atomic): create only if absent.
            if cond.is_any() {
                match self
                    .backend
                    .head_object(&tenant, &input.bucket, &input.key, None)
                    .await
                {
                    Ok(_) => return Err(s3_error!(PreconditionFailed)),
                    Err(BackendError::NoSuchKey) => {}
                    Err(e) => return Err(to_s3_error(e)),
                }
            }
        }
        if let Some(cond) = &input.if_match {
            let info = self
                .backend
                .head_object(&tenant, &input.bucket, &input.key, None)
                .await
                .map_err(|e| match e {
                    BackendError::NoSuchKey => s3_error!(NoSuchKey),
                    e => to_s3_error(e),
                })?;
            if !etag_matches(cond, &info) {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
        let meta = put_meta(input.content_type, input.metadata);
        let info = self
            .backend
            .put_object(
                &tenant,
                &input.bucket,
                &input.key,
                meta,
                body,
                content_length(input.content_length),
            )
            .await
            .map_err(|e| write_error(e, mismatch.as_ref()))?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&info.etag)),
            size: i64::try_from(info.size).ok(),
            version_id: version_header(&info.version_id),
            server_side_encryption: sse::at_rest(),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let tenant = self.tenant(&req)?;
        let input = &req.input;
        sse::refuse_unsupported(&sse::Asked {
            customer_key: sse::customer_key!(input),
            ..sse::Asked::default()
        })?;
        let mut version = input.version_id.clone();
        let conditional = input.if_match.is_some()
            || input.if_none_match.is_some()
            || input.if_modified_since.is_some()
            || input.if_unmodified_since.is_some();
        if conditional {
            let info = self
                .backend
                .head_object(&tenant, &input.bucket, &input.key, version.as_deref())
                .await
                .map_err(to_s3_error)?;
            precondition_error(
                evaluate(
                    &info,
                    input.if_match.as_ref(),
                    input.if_unmodified_since.as_ref(),
                    input.if_none_match.as_ref(),
                    input.if_modified_since.as_ref(),
                ),
                &info,
            )?;
            // Read exactly the version the conditions were checked against.
            version = Some(info.version_id);
        }
        let mut range = input.range.as_ref().map(byte_range);
        if let Some(n) = input.part_number {
            if n != 1 {
                return Err(s3_error!(NotImplemented, "GetObject by partNumber > 1"));
            }
            range = None;
        }
        let (info, stream) = self
            .backend
            .get_object(
                &tenant,
                &input.bucket,
                &input.key,
                version.as_deref(),
                range,
            )
            .await
            .map_err(to_s3_error)?;
        let (len, content_range) = match range {
            Some(r) => {
                let (first, last) = r.resolve(info.size).map_err(to_s3_error)?;
                (
                    last - first + 1,
                    Some(format!("bytes {first}-{last}/{}", info.size)),
                )
            }
            None => (info.size, None),
        };
        Ok(S3Response::new(GetObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            body: Some(blob(stream)),
            content_length: i64::try_from(len).ok(),
            content_range,
            content_type: Some(content_type_out(&info)),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: metadata_out(&info.user_metadata),
            version_id: version_header(&info.version_id),
            server_side_encryption: sse::at_rest(),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let tenant = self.tenant(&req)?;
        let input = &req.input;
        sse::refuse_unsupported(&sse::Asked {
            customer_key: sse::customer_key!(input),
            ..sse::Asked::default()
        })?;
        let info = self
            .backend
            .head_object(
                &tenant,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await
            .map_err(to_s3_error)?;
        precondition_error(
            evaluate(
                &info,
                input.if_match.as_ref(),
                input.if_unmodified_since.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
            ),
            &info,
        )?;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: i64::try_from(info.size).ok(),
            content_type: Some(content_type_out(&info)),
            e_tag: Some(etag(&info.etag)),
            last_modified: Some(timestamp(info.last_modified_ms)),
            metadata: metadata_out(&info.user_metadata),
            version_id: version_header(&info.version_id),
            server_side_encryption: sse::at_rest(),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let tenant = self.tenant(&req)?;
        let input = &req.input;
        let out = self
            .backend
            .delete_object(
                &tenant,
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
            )
            .await
            .map_err(to_s3_error)?;
        // Echo a version id the client named; otherwise hide "null" as
        // everywhere else.
        let version_id = match &input.version_id {
            Some(_) => out.version_id,
            None => out.version_id.as_deref().and_then(version_header),
        };
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: out.delete_marker.then_some(true),
            version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "at most 1000 keys per DeleteObjects"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in input.delete.objects {
            match self
                .backend
                .delete_object(&tenant, &input.bucket, &obj.key, obj.version_id.as_deref())
                .await
            {
                Ok(out) => {
                    if !quiet {
                        let (version_id, marker_id) = match (&obj.version_id, out.delete_marker) {
                            (None, true) => (None, out.version_id),
                            _ => (out.version_id, None),
                        };
                        deleted.push(DeletedObject {
                            delete_marker: out.delete_marker.then_some(true),
                            delete_marker_version_id: marker_id,
                            key: Some(obj.key),
                            version_id,
                        });
                    }
                }
                Err(BackendError::NoSuchBucket) => return Err(s3_error!(NoSuchBucket)),
                Err(e) => {
                    let s3e = to_s3_error(e);
                    errors.push(dto::Error {
                        code: Some(s3e.code().as_str().to_owned()),
                        key: Some(obj.key),
                        message: s3e.message().map(str::to_owned),
                        version_id: obj.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        sse::refuse_unsupported(&sse::Asked {
            sse: input.server_side_encryption.as_ref(),
            customer_key: sse::customer_key!(input)
                || input.copy_source_sse_customer_algorithm.is_some()
                || input.copy_source_sse_customer_key.is_some()
                || input.copy_source_sse_customer_key_md5.is_some(),
            kms: sse::kms!(input),
        })?;
        unsupported::refuse_extras(&unsupported::extras_of!(input))?;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            version_id: src_version,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copy from access points or outposts"
            ));
        };
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == dto::MetadataDirective::REPLACE);
        if !replace
            && **src_bucket == *input.bucket
            && **src_key == *input.key
            && src_version.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata."
            ));
        }
        let conditional = input.copy_source_if_match.is_some()
            || input.copy_source_if_none_match.is_some()
            || input.copy_source_if_modified_since.is_some()
            || input.copy_source_if_unmodified_since.is_some();
        let mut src_version = src_version.as_deref().map(str::to_owned);
        if conditional {
            let info = self
                .backend
                .head_object(&tenant, src_bucket, src_key, src_version.as_deref())
                .await
                .map_err(to_s3_error)?;
            match evaluate(
                &info,
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
            ) {
                Precondition::Pass => {}
                // For copies every failed condition is 412.
                _ => return Err(s3_error!(PreconditionFailed)),
            }
            src_version = Some(info.version_id);
        }
        let meta = if replace {
            MetadataDirective::Replace(put_meta(input.content_type, input.metadata))
        } else {
            MetadataDirective::Copy
        };
        let info = self
            .backend
            .copy_object(
                &tenant,
                src_bucket,
                src_key,
                src_version.as_deref(),
                &input.bucket,
                &input.key,
                meta,
            )
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&info.etag)),
                last_modified: Some(timestamp(info.last_modified_ms)),
                ..Default::default()
            }),
            version_id: version_header(&info.version_id),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = listing::list_objects_grouped(
            &*self.backend,
            &tenant,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            input.marker.as_deref().filter(|m| !m.is_empty()),
            max,
        )
        .await
        .map_err(to_s3_error)?;
        let url = is_url_encoding(&input.encoding_type);
        let (contents, prefixes, last) = split_items(page.items, url, Some(&tenant));
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc(url, input.prefix),
            marker: enc(url, input.marker),
            max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            is_truncated: Some(page.truncated),
            next_marker: enc(url, if page.truncated { last } else { None }),
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            delimiter: enc(url, input.delimiter),
            encoding_type: input.encoding_type,
            request_charged: None,
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let marker = match &input.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = listing::list_objects_grouped(
            &*self.backend,
            &tenant,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            marker.as_deref(),
            max,
        )
        .await
        .map_err(to_s3_error)?;
        let url = is_url_encoding(&input.encoding_type);
        let fetch_owner = input
            .fetch_owner
            .unwrap_or(false)
            .then_some(tenant.as_str());
        let count = page.items.len();
        let (contents, prefixes, last) = split_items(page.items, url, fetch_owner);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc(url, input.prefix),
            max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            key_count: Some(i32::try_from(count).unwrap_or(MAX_KEYS)),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.truncated),
            next_continuation_token: if page.truncated {
                last.as_deref().map(encode_token)
            } else {
                None
            },
            contents: Some(contents),
            common_prefixes: Some(prefixes),
            delimiter: enc(url, input.delimiter),
            encoding_type: input.encoding_type,
            start_after: enc(url, input.start_after),
            request_charged: None,
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let max = max_keys(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        let version_marker = input
            .version_id_marker
            .clone()
            .filter(|m| !m.is_empty() && key_marker.is_some());
        let page = listing::list_versions_grouped(
            &*self.backend,
            &tenant,
            &input.bucket,
            &prefix,
            input.delimiter.as_deref(),
            key_marker.as_deref(),
            version_marker.as_deref(),
            max,
        )
        .await
        .map_err(to_s3_error)?;
        let url = is_url_encoding(&input.encoding_type);
        let (next_key, next_version) = match page.items.last() {
            Some(Item::Entry(e)) if page.truncated => {
                (Some(e.info.key.clone()), Some(e.info.version_id.clone()))
            }
            Some(Item::Prefix(p)) if page.truncated => (Some(p.clone()), None),
            _ => (None, None),
        };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        for item in page.items {
            match item {
                Item::Entry(e) => {
                    let key = if url {
                        listing::url_encode(&e.info.key)
                    } else {
                        e.info.key
                    };
                    if e.info.is_delete_marker {
                        markers.push(DeleteMarkerEntry {
                            is_latest: Some(e.is_latest),
                            key: Some(key),
                            last_modified: Some(timestamp(e.info.last_modified_ms)),
                            owner: Some(owner(&tenant)),
                            version_id: Some(e.info.version_id),
                        });
                    } else {
                        versions.push(ObjectVersion {
                            e_tag: Some(etag(&e.info.etag)),
                            is_latest: Some(e.is_latest),
                            key: Some(key),
                            last_modified: Some(timestamp(e.info.last_modified_ms)),
                            owner: Some(owner(&tenant)),
                            size: Some(i64::try_from(e.info.size).unwrap_or(i64::MAX)),
                            storage_class: Some(ObjectVersionStorageClass::from_static(
                                ObjectVersionStorageClass::STANDARD,
                            )),
                            version_id: Some(e.info.version_id),
                            ..Default::default()
                        });
                    }
                }
                Item::Prefix(p) => prefixes.push(CommonPrefix {
                    prefix: Some(if url { listing::url_encode(&p) } else { p }),
                }),
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            common_prefixes: Some(prefixes),
            delete_markers: Some(markers),
            delimiter: enc(url, input.delimiter),
            encoding_type: input.encoding_type,
            is_truncated: Some(page.truncated),
            key_marker: enc(url, input.key_marker),
            max_keys: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            name: Some(input.bucket),
            next_key_marker: enc(url, next_key),
            next_version_id_marker: next_version,
            prefix: enc(url, input.prefix),
            version_id_marker: input.version_id_marker,
            versions: Some(versions),
            request_charged: None,
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        sse::refuse_unsupported(&sse::asked_of!(input))?;
        unsupported::refuse_extras(&unsupported::extras_of!(input))?;
        let meta = put_meta(input.content_type, input.metadata);
        let upload_id = self
            .backend
            .create_multipart(&tenant, &input.bucket, &input.key, meta)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        sse::refuse_unsupported(&sse::Asked {
            customer_key: sse::customer_key!(input),
            ..sse::Asked::default()
        })?;
        let n = part_number(input.part_number)?;
        let (body, mismatch) = checked_body(input.body, input.content_md5.as_deref())?;
        let part = self
            .backend
            .upload_part(
                &tenant,
                &input.bucket,
                &input.key,
                &input.upload_id,
                n,
                body,
                content_length(input.content_length),
            )
            .await
            .map_err(|e| write_error(e, mismatch.as_ref()))?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&part.etag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let listed = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let mut parts = Vec::with_capacity(listed.len());
        for p in listed {
            let n = p
                .part_number
                .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
            let n = part_number(n).map_err(|_| s3_error!(InvalidPart))?;
            let tag = p
                .e_tag
                .ok_or_else(|| s3_error!(InvalidPart, "a part has no ETag"))?;
            parts.push((n, tag.value().trim_matches('"').to_owned()));
        }
        let info = self
            .backend
            .complete_multipart(&tenant, &input.bucket, &input.key, &input.upload_id, parts)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            e_tag: Some(etag(&info.etag)),
            key: Some(input.key.clone()),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: version_header(&info.version_id),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let tenant = self.tenant(&req)?;
        let input = &req.input;
        self.backend
            .abort_multipart(&tenant, &input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(to_s3_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let max = max_keys(input.max_parts)?;
        let marker = input.part_number_marker.unwrap_or(0);
        let all = self
            .backend
            .list_parts(&tenant, &input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(to_s3_error)?;
        let mut rest = all
            .into_iter()
            .filter(|p| i64::from(p.part_number) > i64::from(marker))
            .peekable();
        let mut parts = Vec::new();
        while parts.len() < max {
            let Some(p) = rest.next() else { break };
            parts.push(p);
        }
        let truncated = rest.peek().is_some();
        let next = parts.last().and_then(|p| i32::try_from(p.part_number).ok());
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            is_truncated: Some(truncated),
            key: Some(input.key),
            max_parts: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            next_part_number_marker: if truncated { next } else { None },
            owner: Some(owner(&tenant)),
            part_number_marker: input.part_number_marker,
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| Part {
                        e_tag: Some(etag(&p.etag)),
                        last_modified: Some(timestamp(p.last_modified_ms)),
                        part_number: i32::try_from(p.part_number).ok(),
                        size: i64::try_from(p.size).ok(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            upload_id: Some(input.upload_id),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let tenant = self.tenant(&req)?;
        let input = req.input;
        let max = max_keys(input.max_uploads)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let all = self
            .backend
            .list_multipart_uploads(&tenant, &input.bucket)
            .await
            .map_err(to_s3_error)?;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let id_marker = input.upload_id_marker.clone();
        let mut rest = all
            .into_iter()
            .filter(|u| u.key.starts_with(&prefix))
            .filter(|u| match &id_marker {
                _ if key_marker.is_empty() => true,
                Some(id) => {
                    (u.key.as_str(), u.upload_id.as_str()) > (key_marker.as_str(), id.as_str())
                }
                None => u.key.as_str() > key_marker.as_str(),
            })
            .peekable();
        let mut uploads = Vec::new();
        while uploads.len() < max {
            let Some(u) = rest.next() else { break };
            uploads.push(u);
        }
        let truncated = rest.peek().is_some();
        let (next_key, next_id) = match uploads.last() {
            Some(u) if truncated => (Some(u.key.clone()), Some(u.upload_id.clone())),
            _ => (None, None),
        };
        let url = is_url_encoding(&input.encoding_type);
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            encoding_type: input.encoding_type.clone(),
            is_truncated: Some(truncated),
            key_marker: enc(url, input.key_marker),
            max_uploads: Some(i32::try_from(max).unwrap_or(MAX_KEYS)),
            next_key_marker: enc(url, next_key),
            next_upload_id_marker: next_id,
            prefix: enc(url, input.prefix),
            upload_id_marker: input.upload_id_marker,
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        initiated: Some(timestamp(u.initiated_ms)),
                        initiator: None,
                        key: Some(if url {
                            listing::url_encode(&u.key)
                        } else {
                            u.key
                        }),
                        owner: Some(owner(&tenant)),
                        upload_id: Some(u.upload_id),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("1B2M2Y8AsgTpgAmY7PhCfg==")
                .map(hex::encode)
                .as_deref(),
            Some(crate::backend::EMPTY_MD5)
        );
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn tokens_round_trip() {
        let t = encode_token("a/é");
        assert_eq!(decode_token(&t).ok().as_deref(), Some("a/é"));
        assert!(decode_token("zz").is_err());
    }
}
