//! Objects in a never-versioned bucket: put/get/head/delete, ranges, copy,
//! and bodies that fail.

use super::*;

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
        .delete_object(A, "b", "dir/obj", None, None)
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
    b.delete_object(A, "b", "dir/obj", None, None)
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
