//! Object-store routes: buckets, objects (streamed both ways, ranged
//! reads), versions, and storage status. A caller acts on its own tenant's
//! buckets.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_state::objects::{
    Bucket, DedupeScope, ErasureProfile, ObjectVersion, RedundancyHealth, ScrubRecord,
    StoreCommand, Versioning,
};
use stratus_state::Command;
use stratus_store::{ByteRange, PutMeta};
use stratus_types::{NodeId, NodeStatus};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, JsonBody};

/// Prefix of user-metadata headers.
const META_PREFIX: &str = "x-stratus-meta-";
/// Header carrying the version id.
const VERSION_HEADER: &str = "x-stratus-version";

/// Request to create a bucket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateBucket {
    /// Name (S3 rules: 3–63 characters of a-z, 0-9, '.', '-').
    pub name: String,
    /// Erasure profile `K+M` (e.g. `4+2`); automatic when absent.
    #[serde(default)]
    pub profile: Option<String>,
    /// Dedupe scope (default `tenant`).
    #[serde(default)]
    pub scope: DedupeScope,
}

/// A bucket with its usage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketView {
    /// The bucket.
    #[serde(flatten)]
    pub bucket: Bucket,
    /// Objects (latest version not a delete marker).
    pub objects: u64,
    /// Bytes of those objects' latest versions.
    pub bytes: u64,
}

/// One object version as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// Size.
    pub size: u64,
    /// Hex MD5 (or multipart ETag).
    pub etag: String,
    /// Hex BLAKE3 of the content (empty for multipart uploads).
    pub blake3: String,
    /// Written at (ms since the epoch).
    pub created_ms: u64,
    /// Content type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_meta: BTreeMap<String, String>,
    /// A delete marker.
    pub delete_marker: bool,
    /// The latest version of its key.
    pub latest: bool,
    /// Chunks.
    pub chunks: u64,
}

impl VersionView {
    fn new(key: &str, v: &ObjectVersion, latest: bool) -> Self {
        VersionView {
            key: key.to_string(),
            version_id: v.version_id.clone(),
            size: v.size,
            etag: v.etag.clone(),
            blake3: v.blake3.clone(),
            created_ms: v.created_ms,
            content_type: v.content_type.clone(),
            user_meta: v.user_meta.clone(),
            delete_marker: v.is_delete_marker(),
            latest,
            chunks: v.data.as_ref().map_or(0, |d| d.chunks.len() as u64),
        }
    }
}

/// Answer of a put.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PutObjectResult {
    /// Key.
    pub key: String,
    /// New version id.
    pub version_id: String,
    /// Size.
    pub size: u64,
    /// Hex MD5.
    pub etag: String,
    /// Hex BLAKE3.
    pub blake3: String,
    /// Chunks in the object.
    pub chunks: u64,
    /// Chunks not stored before (the others were deduplicated).
    pub new_chunks: u64,
    /// Bytes of pieces written to storage nodes.
    pub piece_bytes: u64,
}

/// Answer of a delete.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeleteResult {
    /// Version id of the delete marker, or of the version removed.
    pub version_id: String,
    /// A delete marker was added (no version given).
    pub delete_marker: bool,
}

/// Query of object lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// Only keys after this one (pagination).
    #[serde(default)]
    pub after: Option<String>,
    /// Most entries (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Query selecting a version.
#[derive(Debug, Deserialize, IntoParams)]
pub struct VersionQuery {
    /// Version id (default: the latest).
    pub version: Option<String>,
}

/// Usage of one storage node.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeStorageView {
    /// Node.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Site.
    pub site: String,
    /// Status.
    pub status: NodeStatus,
    /// Bytes lent.
    pub capacity_bytes: u64,
    /// Bytes of pieces placed there.
    pub used_bytes: u64,
    /// Last scrub round.
    pub scrub: Option<ScrubRecord>,
    /// Bytes it can still take as this replica last measured them (its
    /// disk's free space capped by what it lent), if measured.
    #[serde(default)]
    pub free_bytes: Option<u64>,
    /// Out of space: it gets no new pieces.
    #[serde(default)]
    pub full: bool,
    /// Why it is marked as failing storage challenges, if it is: it gets no
    /// new pieces and its pieces are rebuilt elsewhere.
    #[serde(default)]
    pub marked: Option<stratus_state::marks::Mark>,
    /// Storage challenges it failed (the most recent ones).
    #[serde(default)]
    pub strikes: usize,
    /// Banned by the operator (`stratus nodes ban`): lost for good.
    #[serde(default)]
    pub banned: bool,
    /// The node holds a live piece link to the answering replica (it dialed
    /// it; how a node behind a NAT is reached). Without one, the replica
    /// dials the node's advertised address.
    #[serde(default)]
    pub piece_link: bool,
}

/// Work done by the maintenance worker of the answering replica (only the
/// Raft leader runs it).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    /// The answering replica leads (its worker is the active one).
    pub active: bool,
    /// Stripes repaired.
    pub repaired_stripes: u64,
    /// Pieces rebuilt.
    pub repaired_pieces: u64,
    /// Bytes rebuilt.
    pub repaired_bytes: u64,
    /// Stripes the last repair round could not fix.
    pub stuck_stripes: u64,
    /// Pieces scrubbed.
    pub scrubbed_pieces: u64,
    /// Corrupt pieces found by scrub.
    pub scrub_corrupt: u64,
    /// Last scrub round (ms since the epoch).
    pub last_scrub_ms: Option<u64>,
    /// Chunks collected.
    pub gc_chunks: u64,
    /// Pieces deleted by garbage collection (dropped packs and orphans).
    pub gc_pieces: u64,
    /// Last garbage collection (ms since the epoch).
    pub last_gc_ms: Option<u64>,
    /// What the last lifecycle pass did (none yet: `None`).
    #[serde(default)]
    pub lifecycle: Option<LifecycleView>,
}

/// One lifecycle pass of the maintenance worker (buckets' lifecycle rules).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct LifecycleView {
    /// When it ran (ms since the epoch).
    pub at_ms: u64,
    /// Buckets with rules visited.
    pub buckets: u64,
    /// Keys looked at.
    pub keys: u64,
    /// Versions expired.
    pub versions_expired: u64,
    /// Expired delete markers removed.
    pub markers_removed: u64,
    /// Incomplete multipart uploads aborted.
    pub uploads_aborted: u64,
    /// Commands that failed (retried by the next pass).
    pub failed: u64,
    /// The pass covered every bucket (otherwise the next one resumes).
    pub complete: bool,
}

/// Storage status: capacity and use per node, redundancy, repair.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StorageStatus {
    /// Storage nodes.
    pub nodes: Vec<NodeStorageView>,
    /// Redundancy of the stored data (the repair queue is `degraded + unreadable`).
    pub redundancy: RedundancyHealth,
    /// Buckets.
    pub buckets: u64,
    /// Object versions (including delete markers).
    pub versions: u64,
    /// Chunks in the index.
    pub chunks: u64,
    /// Plaintext bytes of indexed chunks (each stored once).
    pub unique_bytes: u64,
    /// Plaintext bytes of all versions (before dedupe).
    pub logical_bytes: u64,
    /// The maintenance worker.
    pub worker: WorkerView,
}

fn put_meta(headers: &HeaderMap) -> PutMeta {
    let user_meta = headers
        .iter()
        .filter_map(|(k, v)| {
            let k = k.as_str().strip_prefix(META_PREFIX)?;
            Some((k.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    PutMeta {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        user_meta,
        ..PutMeta::default()
    }
}

/// Parses a `Range: bytes=a-b` header against an object size (single
/// ranges; `a-`, `-n` suffix forms).
pub fn parse_range(value: &str, size: u64) -> Result<ByteRange, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "unsupported or unsatisfiable range {value:?} for {size} bytes"
        ))
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| bad())?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().map_err(|_| bad())?, size),
        (a, b) => {
            let a: u64 = a.parse().map_err(|_| bad())?;
            let b: u64 = b.parse().map_err(|_| bad())?;
            (a, b.saturating_add(1).min(size))
        }
    };
    if start >= end || start >= size {
        return Err(bad());
    }
    Ok(ByteRange { start, end })
}

/// Creates a bucket of the caller's tenant.
#[utoipa::path(post, path = "/v1/buckets", tag = "objects", security(("bearer" = [])),
    request_body = CreateBucket,
    responses((status = 201, body = Bucket), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_bucket(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<CreateBucket>,
) -> Result<(StatusCode, Json<Bucket>), ApiError> {
    let profile = req
        .profile
        .as_deref()
        .filter(|p| *p != "auto")
        .map(str::parse::<ErasureProfile>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let bucket = Bucket {
        name: req.name,
        tenant: c.tenant.clone(),
        profile,
        scope: req.scope,
        versioning: Versioning::Enabled,
        created_ms: now_ms(),
    };
    st.control
        .write(Command::Store(StoreCommand::CreateBucket {
            bucket: bucket.clone(),
        }))
        .await?;
    Ok((StatusCode::CREATED, Json(bucket)))
}

/// Buckets of the caller's tenant.
#[utoipa::path(get, path = "/v1/buckets", tag = "objects", security(("bearer" = [])),
    responses((status = 200, body = [BucketView])))]
pub async fn list_buckets(State(st): State<AppState>, c: Caller) -> Json<Vec<BucketView>> {
    Json(st.control.state().read(|s| {
        s.store
            .buckets
            .values()
            .filter(|b| b.tenant == c.tenant)
            .map(|b| {
                let stats = s
                    .store
                    .bucket_stats
                    .get(&b.name)
                    .copied()
                    .unwrap_or_default();
                let (objects, bytes) = (stats.objects, stats.bytes);
                BucketView {
                    bucket: b.clone(),
                    objects,
                    bytes,
                }
            })
            .collect()
    }))
}

/// Deletes an empty bucket.
#[utoipa::path(delete, path = "/v1/buckets/{bucket}", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_bucket(
    State(st): State<AppState>,
    c: Caller,
    Path(bucket): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.control
        .write(Command::Store(StoreCommand::DeleteBucket {
            tenant: c.tenant,
            name: bucket,
        }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores the request body as a new version of the object (streamed; any
/// size). `Content-Type` and `x-stratus-meta-*` headers are kept.
#[utoipa::path(put, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ("key" = String, Path, description = "object key (may contain '/')")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = PutObjectResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn put_object(
    State(st): State<AppState>,
    c: Caller,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PutObjectResult>, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let r = st
        .store
        .put(
            &c.tenant,
            &bucket,
            &key,
            put_meta(&headers),
            Box::pin(stream),
        )
        .await?;
    Ok(Json(PutObjectResult {
        key,
        version_id: r.version_id,
        size: r.size,
        etag: r.etag,
        blake3: r.blake3,
        chunks: r.chunks,
        new_chunks: r.new_chunks,
        piece_bytes: r.piece_bytes,
    }))
}

fn object_headers(v: &ObjectVersion) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut set = |k: &str, v: &str| {
        if let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    };
    set("etag", &format!("\"{}\"", v.etag));
    set(VERSION_HEADER, &v.version_id);
    set("accept-ranges", "bytes");
    if !v.blake3.is_empty() {
        set("x-stratus-blake3", &v.blake3);
    }
    set(
        "content-type",
        v.content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    for (k, val) in &v.user_meta {
        set(&format!("{META_PREFIX}{k}"), val);
    }
    h
}

/// Reads an object (the latest version, or `?version=`), streamed; honours
/// a single `Range` (206 with `Content-Range`).
#[utoipa::path(get, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ("key" = String, Path), VersionQuery),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>), (status = 206), (status = 404, body = ErrorBody)))]
pub async fn get_object(
    State(st): State<AppState>,
    c: Caller,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // A range is resolved against one version's size, and that very version
    // is read (a newer "latest" may have come meanwhile).
    let (version, range) = match range_header {
        Some(r) => {
            let (id, size) = st.control.state().read(|s| {
                s.store.bucket_of(&c.tenant, &bucket)?;
                s.store
                    .version(&bucket, &key, q.version.as_deref())
                    .map(|v| (v.version_id.clone(), v.size))
            })?;
            (Some(id), Some(parse_range(r, size)?))
        }
        None => (q.version.clone(), None),
    };
    let (v, stream) = st
        .store
        .get(&c.tenant, &bucket, &key, version.as_deref(), range)
        .await?;
    let mut h = object_headers(&v);
    let (status, len) = match range {
        Some(r) => {
            if let Ok(cr) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, v.size))
            {
                h.insert(header::CONTENT_RANGE, cr);
            }
            (StatusCode::PARTIAL_CONTENT, r.end - r.start)
        }
        None => (StatusCode::OK, v.size),
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    Ok((status, h, body).into_response())
}

/// Metadata of an object version, as headers.
#[utoipa::path(head, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ("key" = String, Path), VersionQuery),
    responses((status = 200), (status = 404)))]
pub async fn head_object(
    State(st): State<AppState>,
    c: Caller,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, ApiError> {
    let v = st.control.state().read(|s| {
        s.store.bucket_of(&c.tenant, &bucket)?;
        s.store.version(&bucket, &key, q.version.as_deref())
    })?;
    let mut h = object_headers(&v);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(v.size));
    Ok((StatusCode::OK, h).into_response())
}

/// Deletes an object: adds a delete marker, or with `?version=` removes that
/// version for good (its data is then garbage collected).
#[utoipa::path(delete, path = "/v1/buckets/{bucket}/objects/{key}", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ("key" = String, Path), VersionQuery),
    responses((status = 200, body = DeleteResult), (status = 404, body = ErrorBody)))]
pub async fn delete_object(
    State(st): State<AppState>,
    c: Caller,
    Path((bucket, key)): Path<(String, String)>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<DeleteResult>, ApiError> {
    let delete_marker = q.version.is_none();
    let a = st
        .control
        .write(Command::Store(StoreCommand::DeleteObject {
            tenant: c.tenant,
            bucket,
            key,
            version_id: q.version,
            now_ms: now_ms(),
        }))
        .await?;
    Ok(Json(DeleteResult {
        version_id: a.id.unwrap_or_default(),
        delete_marker,
    }))
}

/// Objects of a bucket (latest versions that are not delete markers), by key.
#[utoipa::path(get, path = "/v1/buckets/{bucket}/objects", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ListQuery),
    responses((status = 200, body = [VersionView]), (status = 404, body = ErrorBody)))]
pub async fn list_objects(
    State(st): State<AppState>,
    c: Caller,
    Path(bucket): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let limit = q.limit.unwrap_or(1000).min(1000);
    let list = st.control.state().read(|s| {
        s.store.bucket_of(&c.tenant, &bucket)?;
        let (page, _) = s
            .store
            .list_latest(&bucket, &q.prefix, q.after.as_deref(), limit);
        Ok::<_, stratus_state::ApplyError>(
            page.iter()
                .map(|(k, v)| VersionView::new(k, v, true))
                .collect(),
        )
    })?;
    Ok(Json(list))
}

/// Every version (and delete marker) of the keys of a bucket, newest first
/// per key.
#[utoipa::path(get, path = "/v1/buckets/{bucket}/versions", tag = "objects", security(("bearer" = [])),
    params(("bucket" = String, Path), ListQuery),
    responses((status = 200, body = [VersionView]), (status = 404, body = ErrorBody)))]
pub async fn list_versions(
    State(st): State<AppState>,
    c: Caller,
    Path(bucket): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    let limit = q.limit.unwrap_or(1000).min(1000);
    let list = st.control.state().read(|s| {
        s.store.bucket_of(&c.tenant, &bucket)?;
        let (page, _) = s
            .store
            .list_keys(&bucket, &q.prefix, q.after.as_deref(), limit);
        Ok::<_, stratus_state::ApplyError>(
            page.iter()
                .flat_map(|(k, vs)| {
                    let n = vs.len();
                    vs.iter()
                        .enumerate()
                        .rev()
                        .map(move |(i, v)| VersionView::new(k, v, i + 1 == n))
                })
                .take(limit)
                .collect(),
        )
    })?;
    Ok(Json(list))
}

/// Capacity and use per storage node, redundancy health, the repair queue,
/// scrub and garbage collection.
#[utoipa::path(get, path = "/v1/storage", tag = "objects", security(("bearer" = [])),
    responses((status = 200, body = StorageStatus)))]
pub async fn storage_status(State(st): State<AppState>, _c: Caller) -> Json<StorageStatus> {
    let stats = st.store.maintenance_stats();
    let space = st.store.node_space();
    let linked = st.control.piece_links().peers();
    let mut status = st.control.state().read(|s| {
        let nodes = s
            .nodes
            .values()
            .filter_map(|n| {
                let info = n.info.storage.as_ref()?;
                Some(NodeStorageView {
                    id: n.info.id,
                    name: n.info.name.clone(),
                    site: n.info.attributes.site.clone(),
                    status: n.status,
                    capacity_bytes: info.capacity_bytes,
                    used_bytes: s.store.node_usage(&n.info.id),
                    scrub: s.store.scrubs.get(&n.info.id).cloned(),
                    free_bytes: space
                        .iter()
                        .find(|x| x.node == n.info.id)
                        .map(|x| x.free_bytes),
                    full: space.iter().any(|x| x.node == n.info.id && x.full),
                    marked: s.marks.get(&n.info.id).and_then(|m| m.marked.clone()),
                    strikes: s.marks.get(&n.info.id).map_or(0, |m| m.strikes.len()),
                    banned: n.banned,
                    piece_link: linked.contains(&n.info.id),
                })
            })
            .collect();
        let counts = *s.store.counts;
        StorageStatus {
            nodes,
            redundancy: s.redundancy(),
            buckets: s.store.buckets.len() as u64,
            versions: counts.versions,
            chunks: counts.chunks,
            unique_bytes: counts.unique_bytes,
            logical_bytes: counts.logical_bytes,
            worker: WorkerView::default(),
        }
    });
    status.worker = WorkerView {
        active: st.control.is_leader(),
        repaired_stripes: stats.repair.stripes,
        repaired_pieces: stats.repair.pieces,
        repaired_bytes: stats.repair.bytes,
        stuck_stripes: stats.repair.stuck,
        scrubbed_pieces: stats.scrub.pieces,
        scrub_corrupt: stats.scrub.corrupt,
        last_scrub_ms: stats.last_scrub_ms,
        gc_chunks: stats.gc.chunks,
        gc_pieces: stats.gc.pieces + stats.gc.orphans,
        last_gc_ms: stats.last_gc_ms,
        lifecycle: stats.last_lifecycle.map(|l| LifecycleView {
            at_ms: l.at_ms,
            buckets: l.buckets,
            keys: l.keys,
            versions_expired: l.versions_expired,
            markers_removed: l.markers_removed,
            uploads_aborted: l.uploads_aborted,
            failed: l.failed,
            complete: l.complete,
        }),
    };
    Json(status)
}

/// Runs a repair round, a scrub round, a lifecycle pass and a garbage
/// collection now (admin; on the leader, which runs the maintenance worker).
#[utoipa::path(post, path = "/v1/storage/maintain", tag = "objects", security(("bearer" = [])),
    responses((status = 200, body = StorageStatus), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn maintain_now(
    State(st): State<AppState>,
    c: Caller,
) -> Result<Json<StorageStatus>, ApiError> {
    c.require_admin()?;
    if !st.control.is_leader() {
        return Err(ApiError::conflict(
            "maintenance runs on the leader; send this to the leader's API",
        ));
    }
    st.store.scrub_once(st.store.config().scrub_bytes).await;
    st.store.lifecycle_once().await;
    st.store.gc_once().await?;
    while st.store.repair_once(64).await.pieces > 0 {}
    Ok(storage_status(State(st), c).await)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(value: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(value, size).ok().map(|r| (r.start, r.end))
    }

    #[test]
    fn ranges_resolve_as_http_says() {
        assert_eq!(r("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(r("bytes=90-200", 100), Some((90, 100)), "end clamped");
        assert_eq!(r("bytes=95-", 100), Some((95, 100)));
        assert_eq!(r("bytes=-5", 100), Some((95, 100)));
        assert_eq!(r("bytes=-500", 100), Some((0, 100)), "suffix clamped");
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-1",
            "bytes=-0",
            "bytes=",
        ] {
            assert_eq!(r(bad, 100), None, "{bad}");
        }
        assert_eq!(r("bytes=0-0", 0), None, "an empty object has no byte");
    }

    proptest::proptest! {
        #[test]
        fn a_resolved_range_is_inside_the_object(a in 0u64..300, b in 0u64..300, size in 0u64..200) {
            for value in [format!("bytes={a}-{b}"), format!("bytes={a}-"), format!("bytes=-{b}")] {
                if let Ok(got) = parse_range(&value, size) {
                    proptest::prop_assert!(got.start < got.end && got.end <= size, "{value}: {got:?}");
                }
            }
        }
    }
}
