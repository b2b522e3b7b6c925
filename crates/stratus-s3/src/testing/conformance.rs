//! The [`Backend`] conformance suite.
//!
//! Each check takes a fresh backend and panics (with a message naming the
//! rule) when the backend breaks the contract written on [`Backend`].

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use crate::backend::{
    Backend, BackendError, ByteRange, ByteStream, MetadataDirective, PutMeta, Versioning,
    EMPTY_MD5, MIN_PART_SIZE, NULL_VERSION,
};

const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// A stream of `data` in chunks of `chunk` bytes.
pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

/// A stream that yields some bytes, then an error.
pub fn failing(data: &[u8]) -> ByteStream {
    let items = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::other("client went away")),
    ];
    Box::pin(futures::stream::iter(items))
}

/// Reads a whole stream (tests only).
pub async fn read_all(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.expect("body stream failed"));
    }
    out
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn meta(ct: &str, pairs: &[(&str, &str)]) -> PutMeta {
    PutMeta {
        content_type: Some(ct.to_owned()),
        user_metadata: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

async fn put<Bk: Backend>(
    b: &Bk,
    tenant: &str,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> crate::ObjectInfo {
    b.put_object(
        tenant,
        bucket,
        key,
        PutMeta::default(),
        chunked(data, 7),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e}"))
}

async fn get<Bk: Backend>(
    b: &Bk,
    tenant: &str,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Vec<u8> {
    let (_, s) = b
        .get_object(tenant, bucket, key, version, None)
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}@{version:?}: {e}"));
    read_all(s).await
}

/// Runs every check, each on a fresh backend from `make`.
pub async fn backend_conformance<Bk: Backend>(make: impl Fn() -> Bk) {
    buckets(&make()).await;
    objects(&make()).await;
    ranges(&make()).await;
    versioning(&make()).await;
    suspended_versioning(&make()).await;
    list_ordering(&make()).await;
    list_versions_paging(&make()).await;
    multipart(&make()).await;
    multipart_errors(&make()).await;
    copy(&make()).await;
    failed_body(&make()).await;
    tenant_isolation(&make()).await;
}

fn isolated<T: std::fmt::Debug>(r: Result<T, BackendError>, what: &str) {
    match r {
        Err(BackendError::NoSuchBucket | BackendError::AccessDenied) => {}
        other => {
            panic!("tenant isolation: {what} gave {other:?}, want NoSuchBucket or AccessDenied")
        }
    }
}

/// Bucket create/list/head/delete and their errors.
pub async fn buckets<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "zeta").await.expect("create zeta");
    b.create_bucket(A, "alpha").await.expect("create alpha");
    assert_eq!(
        b.create_bucket(A, "alpha").await,
        Err(BackendError::BucketAlreadyOwnedByYou),
        "creating an owned bucket again"
    );
    let names: Vec<String> = b
        .list_buckets(A)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["alpha", "zeta"], "buckets are listed sorted");
    assert_eq!(b.head_bucket(A, "alpha").await.expect("head").name, "alpha");
    assert_eq!(
        b.head_bucket(A, "nope").await,
        Err(BackendError::NoSuchBucket)
    );
    assert_eq!(
        b.get_versioning(A, "alpha").await,
        Ok(None),
        "versioning starts unset"
    );
    put(b, A, "alpha", "k", b"x").await;
    assert_eq!(
        b.delete_bucket(A, "alpha").await,
        Err(BackendError::BucketNotEmpty)
    );
    b.delete_object(A, "alpha", "k", None)
        .await
        .expect("delete k");
    b.delete_bucket(A, "alpha")
        .await
        .expect("delete emptied bucket");
    assert_eq!(
        b.head_bucket(A, "alpha").await,
        Err(BackendError::NoSuchBucket)
    );
    assert_eq!(
        b.delete_bucket(A, "alpha").await,
        Err(BackendError::NoSuchBucket)
    );
    // An upload in progress keeps a bucket non-empty.
    let id = b
        .create_multipart(A, "zeta", "m", PutMeta::default())
        .await
        .expect("mpu");
    assert_eq!(
        b.delete_bucket(A, "zeta").await,
        Err(BackendError::BucketNotEmpty),
        "uploads in progress"
    );
    b.abort_multipart(A, "zeta", "m", &id).await.expect("abort");
    // So does a delete marker in a versioned bucket.
    b.set_versioning(A, "zeta", Versioning::Enabled)
        .await
        .expect("enable");
    b.delete_object(A, "zeta", "gone", None)
        .await
        .expect("marker");
    assert_eq!(
        b.delete_bucket(A, "zeta").await,
        Err(BackendError::BucketNotEmpty),
        "delete markers"
    );
}

/// Put/get/head/delete in a never-versioned bucket.
pub async fn objects<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "b").await.expect("create");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let info = b
        .put_object(
            A,
            "b",
            "dir/obj",
            meta("text/plain", &[("color", "blue")]),
            chunked(&data, 65_536),
            Some(200_000),
        )
        .await
        .expect("put");
    assert_eq!(info.etag, md5_hex(&data), "etag is the hex md5 of the body");
    assert_eq!(info.size, 200_000);
    assert_eq!(
        info.version_id, NULL_VERSION,
        "unversioned writes are the null version"
    );
    assert!(!info.is_delete_marker);
    assert_eq!(get(b, A, "b", "dir/obj", None).await, data, "round trip");
    let head = b.head_object(A, "b", "dir/obj", None).await.expect("head");
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        head.user_metadata.get("color").map(String::as_str),
        Some("blue")
    );
    assert_eq!(head.etag, info.etag);
    assert!(head.last_modified_ms > 0, "last modified is set");
    assert_eq!(
        get(b, A, "b", "dir/obj", Some(NULL_VERSION)).await,
        data,
        "versionId=null reads it"
    );

    let empty = put(b, A, "b", "empty", b"").await;
    assert_eq!(empty.etag, EMPTY_MD5);
    assert_eq!(empty.size, 0);
    assert!(get(b, A, "b", "empty", None).await.is_empty());

    // Overwrite replaces the null version.
    put(b, A, "b", "dir/obj", b"second").await;
    assert_eq!(get(b, A, "b", "dir/obj", None).await, b"second");
    let versions = b
        .list_versions(A, "b", "dir/", None, None, 100)
        .await
        .expect("versions");
    assert_eq!(
        versions.len(),
        1,
        "an unversioned bucket keeps one version per key"
    );

    assert_eq!(
        b.head_object(A, "b", "missing", None).await,
        Err(BackendError::NoSuchKey)
    );
    assert!(matches!(
        b.get_object(A, "b", "missing", None, None).await,
        Err(BackendError::NoSuchKey)
    ));
    assert!(matches!(
        b.get_object(A, "nobucket", "k", None, None).await,
        Err(BackendError::NoSuchBucket)
    ));

    let out = b
        .delete_object(A, "b", "dir/obj", None)
        .await
        .expect("delete");
    assert!(
        !out.delete_marker,
        "no delete marker in a never-versioned bucket"
    );
    assert_eq!(
        b.head_object(A, "b", "dir/obj", None).await,
        Err(BackendError::NoSuchKey)
    );
    b.delete_object(A, "b", "dir/obj", None)
        .await
        .expect("deleting a missing key succeeds");
    assert!(b
        .list_versions(A, "b", "dir/", None, None, 100)
        .await
        .expect("versions")
        .is_empty());
}

/// Range reads.
pub async fn ranges<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "b").await.expect("create");
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    put(b, A, "b", "k", &data).await;
    let cases: [(ByteRange, std::ops::Range<usize>); 6] = [
        (
            ByteRange::FromTo {
                first: 0,
                last: Some(0),
            },
            0..1,
        ),
        (
            ByteRange::FromTo {
                first: 10,
                last: Some(19),
            },
            10..20,
        ),
        (
            ByteRange::FromTo {
                first: 990,
                last: None,
            },
            990..1000,
        ),
        (
            ByteRange::FromTo {
                first: 500,
                last: Some(5000),
            },
            500..1000,
        ),
        (ByteRange::Suffix { len: 100 }, 900..1000),
        (ByteRange::Suffix { len: 5000 }, 0..1000),
    ];
    for (r, want) in cases {
        let (info, s) = b
            .get_object(A, "b", "k", None, Some(r))
            .await
            .expect("ranged get");
        assert_eq!(info.size, 1000, "info.size is the whole object's size");
        assert_eq!(read_all(s).await, &data[want.clone()], "range {r:?}");
    }
    for r in [
        ByteRange::FromTo {
            first: 1000,
            last: None,
        },
        ByteRange::Suffix { len: 0 },
    ] {
        assert!(
            matches!(
                b.get_object(A, "b", "k", None, Some(r)).await,
                Err(BackendError::InvalidRange)
            ),
            "range {r:?} is not satisfiable"
        );
    }
}

/// Versioning: ids, delete markers, reading and deleting versions.
pub async fn versioning<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "v").await.expect("create");
    let null = put(b, A, "v", "k", b"zero").await;
    assert_eq!(null.version_id, NULL_VERSION);
    b.set_versioning(A, "v", Versioning::Enabled)
        .await
        .expect("enable");
    assert_eq!(
        b.get_versioning(A, "v").await,
        Ok(Some(Versioning::Enabled))
    );
    let v1 = put(b, A, "v", "k", b"one").await;
    let v2 = put(b, A, "v", "k", b"two").await;
    assert_ne!(
        v1.version_id, NULL_VERSION,
        "enabled versioning gives fresh ids"
    );
    assert_ne!(v1.version_id, v2.version_id, "each write gets its own id");
    assert_eq!(get(b, A, "v", "k", None).await, b"two");
    assert_eq!(get(b, A, "v", "k", Some(&v1.version_id)).await, b"one");
    assert_eq!(
        get(b, A, "v", "k", Some(NULL_VERSION)).await,
        b"zero",
        "the old null version is kept"
    );

    let del = b.delete_object(A, "v", "k", None).await.expect("delete");
    assert!(del.delete_marker, "an unversioned delete adds a marker");
    let marker = del.version_id.clone().expect("marker has an id");
    assert_ne!(marker, NULL_VERSION);
    assert_eq!(
        b.head_object(A, "v", "k", None).await,
        Err(BackendError::NoSuchKey),
        "latest is a marker"
    );
    assert_eq!(
        b.head_object(A, "v", "k", Some(&marker)).await,
        Err(BackendError::MethodNotAllowed),
        "a marker's version cannot be read"
    );
    assert_eq!(
        get(b, A, "v", "k", Some(&v2.version_id)).await,
        b"two",
        "old versions stay readable"
    );
    assert_eq!(
        b.head_object(A, "v", "k", Some("no-such-version")).await,
        Err(BackendError::NoSuchVersion)
    );
    assert!(
        b.list_objects(A, "v", "", None, 100)
            .await
            .expect("list")
            .is_empty(),
        "deleted keys are not listed"
    );

    let vs = b
        .list_versions(A, "v", "", None, None, 100)
        .await
        .expect("versions");
    let ids: Vec<(&str, bool, bool)> = vs
        .iter()
        .map(|e| {
            (
                e.info.version_id.as_str(),
                e.info.is_delete_marker,
                e.is_latest,
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            (marker.as_str(), true, true),
            (v2.version_id.as_str(), false, false),
            (v1.version_id.as_str(), false, false),
            (NULL_VERSION, false, false),
        ],
        "versions newest first, marker latest"
    );

    let undo = b
        .delete_object(A, "v", "k", Some(&marker))
        .await
        .expect("delete marker");
    assert!(
        undo.delete_marker,
        "deleting a marker by id reports it was a marker"
    );
    assert_eq!(
        get(b, A, "v", "k", None).await,
        b"two",
        "removing the marker restores the object"
    );
    let gone = b
        .delete_object(A, "v", "k", Some(&v2.version_id))
        .await
        .expect("delete v2");
    assert!(!gone.delete_marker);
    assert_eq!(gone.version_id.as_deref(), Some(v2.version_id.as_str()));
    assert_eq!(
        get(b, A, "v", "k", None).await,
        b"one",
        "deleting the latest version exposes the previous"
    );
    assert_eq!(
        b.head_object(A, "v", "k", Some(&v2.version_id)).await,
        Err(BackendError::NoSuchVersion)
    );
}

/// Suspended versioning writes and deletes the null version.
pub async fn suspended_versioning<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "s").await.expect("create");
    b.set_versioning(A, "s", Versioning::Enabled)
        .await
        .expect("enable");
    let v1 = put(b, A, "s", "k", b"one").await;
    b.set_versioning(A, "s", Versioning::Suspended)
        .await
        .expect("suspend");
    assert_eq!(
        b.get_versioning(A, "s").await,
        Ok(Some(Versioning::Suspended))
    );
    let n1 = put(b, A, "s", "k", b"null-1").await;
    assert_eq!(
        n1.version_id, NULL_VERSION,
        "suspended writes are the null version"
    );
    put(b, A, "s", "k", b"null-2").await;
    let vs = b
        .list_versions(A, "s", "k", None, None, 100)
        .await
        .expect("versions");
    assert_eq!(
        vs.len(),
        2,
        "the null version is replaced, the enabled-era version kept"
    );
    assert_eq!(get(b, A, "s", "k", None).await, b"null-2");
    let del = b.delete_object(A, "s", "k", None).await.expect("delete");
    assert!(del.delete_marker);
    assert_eq!(
        del.version_id.as_deref(),
        Some(NULL_VERSION),
        "suspended deletes add a null marker"
    );
    let vs = b
        .list_versions(A, "s", "k", None, None, 100)
        .await
        .expect("versions");
    assert_eq!(vs.len(), 2, "the null marker replaced the null version");
    assert!(vs[0].info.is_delete_marker && vs[0].is_latest);
    assert_eq!(get(b, A, "s", "k", Some(&v1.version_id)).await, b"one");
}

/// list_objects ordering, prefix, start_after and limit.
pub async fn list_ordering<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "l").await.expect("create");
    let keys = ["b/2", "a", "b/1", "c", "b/10", "ab", "b", "é", "Z"];
    for k in keys {
        put(b, A, "l", k, k.as_bytes()).await;
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let all: Vec<String> = b
        .list_objects(A, "l", "", None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, sorted, "sorted by key bytes");
    let pre: Vec<String> = b
        .list_objects(A, "l", "b/", None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(pre, ["b/1", "b/10", "b/2"]);
    let after: Vec<String> = b
        .list_objects(A, "l", "", Some("b/10"), 2)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        after,
        ["b/2", "c"],
        "start_after is exclusive; limit applies"
    );
    let before_prefix: Vec<String> = b
        .list_objects(A, "l", "b/", Some("a"), 100)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        before_prefix,
        ["b/1", "b/10", "b/2"],
        "start_after before the prefix"
    );
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = b
            .list_objects(A, "l", "", cursor.as_deref(), 2)
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|o| o.key.clone());
        paged.extend(page.into_iter().map(|o| o.key));
    }
    assert_eq!(
        paged, sorted,
        "paging with start_after visits each key once"
    );
    let info = &b.list_objects(A, "l", "a", None, 1).await.expect("list")[0];
    assert_eq!(
        (info.size, info.etag.as_str()),
        (1, md5_hex(b"a").as_str()),
        "listed info is complete"
    );
}

/// list_versions paging with key and version markers.
pub async fn list_versions_paging<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "p").await.expect("create");
    b.set_versioning(A, "p", Versioning::Enabled)
        .await
        .expect("enable");
    for k in ["x", "y", "z"] {
        for i in 0..3 {
            put(b, A, "p", k, format!("{k}{i}").as_bytes()).await;
        }
    }
    b.delete_object(A, "p", "y", None).await.expect("marker");
    let all = b
        .list_versions(A, "p", "", None, None, 1000)
        .await
        .expect("all");
    assert_eq!(all.len(), 10);
    let keys: Vec<&str> = all.iter().map(|e| e.info.key.as_str()).collect();
    assert_eq!(
        keys,
        ["x", "x", "x", "y", "y", "y", "y", "z", "z", "z"],
        "sorted by key"
    );
    assert_eq!(
        all.iter().filter(|e| e.is_latest).count(),
        3,
        "one latest per key"
    );
    for page_size in [1, 2, 3, 4] {
        let mut seen = Vec::new();
        let mut km: Option<String> = None;
        let mut vm: Option<String> = None;
        loop {
            let page = b
                .list_versions(A, "p", "", km.as_deref(), vm.as_deref(), page_size)
                .await
                .expect("page");
            let Some(last) = page.last() else { break };
            km = Some(last.info.key.clone());
            vm = Some(last.info.version_id.clone());
            seen.extend(page.into_iter().map(|e| e.info.version_id));
        }
        let want: Vec<String> = all.iter().map(|e| e.info.version_id.clone()).collect();
        assert_eq!(seen, want, "paging by {page_size} with markers");
    }
    let after_y = b
        .list_versions(A, "p", "", Some("y"), None, 1000)
        .await
        .expect("after y");
    assert!(
        after_y.iter().all(|e| e.info.key == "z"),
        "a key marker alone skips all its versions"
    );
}

/// A complete multipart upload: etag, size, content, metadata.
pub async fn multipart<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "m").await.expect("create");
    let id = b
        .create_multipart(A, "m", "big", meta("application/x-test", &[("k", "v")]))
        .await
        .expect("create mpu");
    let part = usize::try_from(MIN_PART_SIZE).expect("fits");
    let p1: Vec<u8> = vec![1; part];
    let p2: Vec<u8> = vec![2; part];
    let p3: Vec<u8> = b"tail".to_vec();
    let i1 = b
        .upload_part(A, "m", "big", &id, 1, chunked(&p1, 1 << 20), None)
        .await
        .expect("part 1");
    // Re-uploading a part replaces it.
    b.upload_part(A, "m", "big", &id, 2, chunked(b"wrong", 3), None)
        .await
        .expect("part 2 (first)");
    let i2 = b
        .upload_part(A, "m", "big", &id, 2, chunked(&p2, 1 << 20), None)
        .await
        .expect("part 2");
    let i3 = b
        .upload_part(A, "m", "big", &id, 3, chunked(&p3, 1), None)
        .await
        .expect("part 3");
    assert_eq!(i1.etag, md5_hex(&p1), "part etag is its md5");
    assert_eq!(i3.size, 4);
    let listed = b.list_parts(A, "m", "big", &id).await.expect("list parts");
    let nums: Vec<(u32, u64)> = listed.iter().map(|p| (p.part_number, p.size)).collect();
    assert_eq!(nums, [(1, MIN_PART_SIZE), (2, MIN_PART_SIZE), (3, 4)]);
    let uploads = b.list_multipart_uploads(A, "m").await.expect("uploads");
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        (uploads[0].key.as_str(), uploads[0].upload_id.as_str()),
        ("big", id.as_str())
    );

    let info = b
        .complete_multipart(
            A,
            "m",
            "big",
            &id,
            vec![
                (1, i1.etag.clone()),
                (2, i2.etag.clone()),
                (3, i3.etag.clone()),
            ],
        )
        .await
        .expect("complete");
    let mut md5s = Vec::new();
    for e in [&i1.etag, &i2.etag, &i3.etag] {
        md5s.extend(hex::decode(e).expect("hex etag"));
    }
    assert_eq!(
        info.etag,
        format!("{}-3", md5_hex(&md5s)),
        "multipart etag is md5-of-md5s-N"
    );
    assert_eq!(info.size, 2 * MIN_PART_SIZE + 4);
    let head = b.head_object(A, "m", "big", None).await.expect("head");
    assert_eq!(
        head.content_type.as_deref(),
        Some("application/x-test"),
        "metadata from create"
    );
    assert_eq!(head.user_metadata.get("k").map(String::as_str), Some("v"));
    let body = get(b, A, "m", "big", None).await;
    assert_eq!(body.len(), part * 2 + 4);
    assert!(body[..part] == p1[..] && body[part..2 * part] == p2[..] && body[2 * part..] == p3[..]);
    let (_, s) = b
        .get_object(
            A,
            "m",
            "big",
            None,
            Some(ByteRange::FromTo {
                first: (MIN_PART_SIZE - 2),
                last: Some(MIN_PART_SIZE + 1),
            }),
        )
        .await
        .expect("range across parts");
    assert_eq!(read_all(s).await, [1, 1, 2, 2], "a range spanning parts");
    assert_eq!(
        b.list_parts(A, "m", "big", &id).await,
        Err(BackendError::NoSuchUpload),
        "completed uploads are gone"
    );
    assert!(b
        .list_multipart_uploads(A, "m")
        .await
        .expect("uploads")
        .is_empty());
}

/// Multipart errors.
pub async fn multipart_errors<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "m").await.expect("create");
    let id = b
        .create_multipart(A, "m", "k", PutMeta::default())
        .await
        .expect("create mpu");
    let small = b
        .upload_part(A, "m", "k", &id, 1, chunked(b"small", 5), None)
        .await
        .expect("p1");
    let p2 = b
        .upload_part(A, "m", "k", &id, 2, chunked(b"two", 5), None)
        .await
        .expect("p2");
    assert_eq!(
        b.complete_multipart(
            A,
            "m",
            "k",
            &id,
            vec![(2, p2.etag.clone()), (1, small.etag.clone())]
        )
        .await,
        Err(BackendError::InvalidPartOrder)
    );
    assert_eq!(
        b.complete_multipart(
            A,
            "m",
            "k",
            &id,
            vec![(1, small.etag.clone()), (1, small.etag.clone())]
        )
        .await,
        Err(BackendError::InvalidPartOrder),
        "duplicate part numbers"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![(1, md5_hex(b"other"))])
            .await,
        Err(BackendError::InvalidPart),
        "wrong etag"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![(7, small.etag.clone())])
            .await,
        Err(BackendError::InvalidPart),
        "part never uploaded"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![]).await,
        Err(BackendError::InvalidPart),
        "no parts"
    );
    assert_eq!(
        b.complete_multipart(
            A,
            "m",
            "k",
            &id,
            vec![(1, small.etag.clone()), (2, p2.etag.clone())]
        )
        .await,
        Err(BackendError::EntityTooSmall)
    );
    // A single small part is fine (the last part may be small).
    let info = b
        .complete_multipart(A, "m", "k", &id, vec![(2, p2.etag.clone())])
        .await
        .expect("complete with one part");
    assert!(info.etag.ends_with("-1"));
    assert_eq!(
        get(b, A, "m", "k", None).await,
        b"two",
        "only listed parts are used"
    );

    let id2 = b
        .create_multipart(A, "m", "k2", PutMeta::default())
        .await
        .expect("create mpu 2");
    assert_eq!(
        b.abort_multipart(A, "m", "other-key", &id2).await,
        Err(BackendError::NoSuchUpload),
        "key must match"
    );
    b.abort_multipart(A, "m", "k2", &id2).await.expect("abort");
    assert_eq!(
        b.abort_multipart(A, "m", "k2", &id2).await,
        Err(BackendError::NoSuchUpload)
    );
    assert!(matches!(
        b.upload_part(A, "m", "k2", &id2, 1, chunked(b"x", 1), None)
            .await,
        Err(BackendError::NoSuchUpload)
    ));
    assert_eq!(
        b.head_object(A, "m", "k2", None).await,
        Err(BackendError::NoSuchKey),
        "aborted uploads leave nothing"
    );
}

/// CopyObject.
pub async fn copy<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "src").await.expect("create");
    b.create_bucket(A, "dst").await.expect("create");
    b.set_versioning(A, "src", Versioning::Enabled)
        .await
        .expect("enable");
    let v1 = b
        .put_object(
            A,
            "src",
            "k",
            meta("text/a", &[("m", "1")]),
            chunked(b"first", 2),
            None,
        )
        .await
        .expect("put v1");
    b.put_object(
        A,
        "src",
        "k",
        meta("text/b", &[("m", "2")]),
        chunked(b"second", 2),
        None,
    )
    .await
    .expect("put v2");
    let c = b
        .copy_object(A, "src", "k", None, "dst", "c1", MetadataDirective::Copy)
        .await
        .expect("copy");
    assert_eq!(c.etag, md5_hex(b"second"));
    assert_eq!(c.key, "c1");
    let h = b.head_object(A, "dst", "c1", None).await.expect("head");
    assert_eq!(
        h.content_type.as_deref(),
        Some("text/b"),
        "COPY keeps the metadata"
    );
    assert_eq!(h.user_metadata.get("m").map(String::as_str), Some("2"));
    b.copy_object(
        A,
        "src",
        "k",
        Some(&v1.version_id),
        "dst",
        "c2",
        MetadataDirective::Replace(meta("text/c", &[])),
    )
    .await
    .expect("copy version");
    assert_eq!(
        get(b, A, "dst", "c2", None).await,
        b"first",
        "copy of a given version"
    );
    let h = b.head_object(A, "dst", "c2", None).await.expect("head");
    assert_eq!(
        h.content_type.as_deref(),
        Some("text/c"),
        "REPLACE replaces"
    );
    assert_eq!(h.user_metadata, BTreeMap::new());
    assert_eq!(
        b.copy_object(
            A,
            "src",
            "missing",
            None,
            "dst",
            "x",
            MetadataDirective::Copy
        )
        .await,
        Err(BackendError::NoSuchKey)
    );
    assert_eq!(
        b.copy_object(
            A,
            "src",
            "k",
            None,
            "nobucket",
            "x",
            MetadataDirective::Copy
        )
        .await,
        Err(BackendError::NoSuchBucket)
    );
}

/// A body stream that fails writes nothing.
pub async fn failed_body<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "f").await.expect("create");
    put(b, A, "f", "k", b"old").await;
    assert!(
        b.put_object(A, "f", "k", PutMeta::default(), failing(b"partial"), None)
            .await
            .is_err(),
        "a failing body fails the put"
    );
    assert_eq!(
        get(b, A, "f", "k", None).await,
        b"old",
        "the failed put left the object alone"
    );
    assert!(b
        .put_object(A, "f", "new", PutMeta::default(), failing(b"partial"), None)
        .await
        .is_err());
    assert_eq!(
        b.head_object(A, "f", "new", None).await,
        Err(BackendError::NoSuchKey),
        "and created nothing"
    );
    let id = b
        .create_multipart(A, "f", "m", PutMeta::default())
        .await
        .expect("mpu");
    assert!(b
        .upload_part(A, "f", "m", &id, 1, failing(b"x"), None)
        .await
        .is_err());
    assert!(
        b.list_parts(A, "f", "m", &id)
            .await
            .expect("parts")
            .is_empty(),
        "a failed part is not stored"
    );
}

/// Tenants never see each other's buckets.
pub async fn tenant_isolation<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "private").await.expect("create");
    put(b, A, "private", "secret", b"a's data").await;
    let id = b
        .create_multipart(A, "private", "up", PutMeta::default())
        .await
        .expect("mpu");

    assert!(
        b.list_buckets(B)
            .await
            .expect("list")
            .iter()
            .all(|i| i.name != "private"),
        "B does not list A's bucket"
    );
    isolated(b.head_bucket(B, "private").await, "head_bucket");
    isolated(
        b.get_object(B, "private", "secret", None, None)
            .await
            .map(|(i, _)| i),
        "get_object",
    );
    isolated(
        b.head_object(B, "private", "secret", None).await,
        "head_object",
    );
    isolated(
        b.put_object(
            B,
            "private",
            "evil",
            PutMeta::default(),
            chunked(b"x", 1),
            None,
        )
        .await,
        "put_object",
    );
    isolated(
        b.delete_object(B, "private", "secret", None).await,
        "delete_object",
    );
    isolated(b.delete_bucket(B, "private").await, "delete_bucket");
    isolated(
        b.list_objects(B, "private", "", None, 10).await,
        "list_objects",
    );
    isolated(
        b.list_versions(B, "private", "", None, None, 10).await,
        "list_versions",
    );
    isolated(
        b.set_versioning(B, "private", Versioning::Enabled).await,
        "set_versioning",
    );
    isolated(b.get_versioning(B, "private").await, "get_versioning");
    isolated(
        b.list_multipart_uploads(B, "private").await,
        "list_multipart_uploads",
    );
    isolated(
        b.create_multipart(B, "private", "x", PutMeta::default())
            .await,
        "create_multipart",
    );
    match b
        .upload_part(B, "private", "up", &id, 1, chunked(b"x", 1), None)
        .await
    {
        Err(
            BackendError::NoSuchBucket | BackendError::AccessDenied | BackendError::NoSuchUpload,
        ) => {}
        other => panic!("tenant isolation: upload_part gave {other:?}"),
    }
    match b
        .complete_multipart(B, "private", "up", &id, vec![(1, EMPTY_MD5.to_owned())])
        .await
    {
        Err(
            BackendError::NoSuchBucket | BackendError::AccessDenied | BackendError::NoSuchUpload,
        ) => {}
        other => panic!("tenant isolation: complete_multipart gave {other:?}"),
    }
    isolated(
        b.copy_object(
            B,
            "private",
            "secret",
            None,
            "private",
            "copy",
            MetadataDirective::Copy,
        )
        .await,
        "copy_object",
    );
    // B may have its own bucket of any name; A's stays intact either way.
    match b.create_bucket(B, "private").await {
        Ok(()) => {
            assert!(
                b.list_objects(B, "private", "", None, 10)
                    .await
                    .expect("list")
                    .is_empty(),
                "B's own bucket is empty"
            );
            b.create_bucket(B, "b-own").await.expect("create");
            b.copy_object(
                B,
                "private",
                "secret",
                None,
                "b-own",
                "x",
                MetadataDirective::Copy,
            )
            .await
            .expect_err("B's namesake bucket does not hold A's object");
        }
        Err(BackendError::BucketAlreadyExists) => {}
        Err(e) => panic!("tenant isolation: create_bucket of a taken name gave {e}"),
    }
    assert_eq!(
        get(b, A, "private", "secret", None).await,
        b"a's data",
        "A's object is intact"
    );
    assert_eq!(
        b.list_parts(A, "private", "up", &id)
            .await
            .expect("parts")
            .len(),
        0
    );
}
