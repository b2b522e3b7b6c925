//! Stored headers, tags, part sizes, write preconditions, repeated
//! completions and buckets holding only uploads (issue 19).

use super::*;
use crate::backend::{WriteCondition, MAX_TAGS};

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const HEADERS: &[(&str, &str)] = &[
    ("cache-control", "max-age=60"),
    ("content-disposition", "attachment; filename=\"a.txt\""),
    ("content-encoding", "gzip"),
    ("content-language", "fr"),
    ("expires", "Wed, 01 Dec 2094 16:00:00 GMT"),
];

/// Stored headers and tags are kept by a put, a multipart upload and a
/// `Copy`, replaced by a `Replace`, and returned by head and get; a
/// multipart object knows its part sizes.
pub async fn stored_headers_and_tags<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "h").await.expect("create");
    let mut m = meta("text/plain", &[("who", "me")]);
    m.headers = pairs(HEADERS);
    m.tags = pairs(&[("project", "x"), ("empty", "")]);
    b.put_object(A, "h", "k", m.clone(), chunked(b"hello", 2), None)
        .await
        .expect("put");
    let info = b.head_object(A, "h", "k", None).await.expect("head");
    assert_eq!(info.headers, pairs(HEADERS), "headers stored by a put");
    assert_eq!(info.tags, m.tags, "tags stored by a put");
    assert!(info.part_sizes.is_empty(), "a put is one part");
    assert_eq!(info.part_range(1), Ok((0, 4, 1)), "part 1 is every byte");
    assert_eq!(info.part_range(2), Err(BackendError::InvalidPartNumber));
    let (got, _) = b.get_object(A, "h", "k", None, None).await.expect("get");
    assert_eq!(got.headers, pairs(HEADERS), "headers returned by a get");

    // Copy keeps them, Replace takes the new ones.
    b.copy_object(A, "h", "k", None, "h", "copy", MetadataDirective::Copy)
        .await
        .expect("copy");
    let c = b
        .head_object(A, "h", "copy", None)
        .await
        .expect("head copy");
    assert_eq!((c.headers, c.tags), (pairs(HEADERS), m.tags.clone()));
    let mut r = meta("text/html", &[]);
    r.headers = pairs(&[("cache-control", "no-store")]);
    r.tags = pairs(&[("new", "1")]);
    b.copy_object(
        A,
        "h",
        "k",
        None,
        "h",
        "replaced",
        MetadataDirective::Replace(r.clone()),
    )
    .await
    .expect("copy replace");
    let c = b
        .head_object(A, "h", "replaced", None)
        .await
        .expect("head replaced");
    assert_eq!((c.headers, c.tags), (r.headers, r.tags));

    // A multipart upload carries them to its object, with its part sizes.
    let id = b
        .create_multipart(A, "h", "mp", m.clone())
        .await
        .expect("create mpu");
    let part = usize::try_from(MIN_PART_SIZE).expect("fits");
    let p1 = b
        .upload_part(A, "h", "mp", &id, 1, chunked(&vec![1; part], 1 << 20), None)
        .await
        .expect("part 1");
    let p2 = b
        .upload_part(A, "h", "mp", &id, 2, chunked(b"end", 2), None)
        .await
        .expect("part 2");
    let done = b
        .complete_multipart(A, "h", "mp", &id, vec![(1, p1.etag), (2, p2.etag)], None)
        .await
        .expect("complete");
    let info = b.head_object(A, "h", "mp", None).await.expect("head mp");
    assert_eq!(
        info.headers,
        pairs(HEADERS),
        "headers of a multipart object"
    );
    assert_eq!(info.tags, m.tags, "tags of a multipart object");
    assert_eq!(info.part_sizes, [MIN_PART_SIZE, 3]);
    assert_eq!(
        info.part_range(2),
        Ok((MIN_PART_SIZE, MIN_PART_SIZE + 2, 2))
    );
    assert_eq!(info.part_range(3), Err(BackendError::InvalidPartNumber));
    assert_eq!(info.part_range(0), Err(BackendError::InvalidPartNumber));
    assert_eq!(done.part_sizes, info.part_sizes);
}

/// Tags are replaced per version, removed with an empty set, checked
/// against S3's limits, and a delete marker has none.
pub async fn tagging<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "t").await.expect("create");
    b.set_versioning(A, "t", Versioning::Enabled)
        .await
        .expect("enable");
    let v1 = put(b, A, "t", "k", b"one").await;
    let v2 = put(b, A, "t", "k", b"two").await;
    let got = b
        .set_object_tags(A, "t", "k", None, pairs(&[("a", "1")]))
        .await
        .expect("tag latest");
    assert_eq!(got, v2.version_id, "the latest version is tagged");
    b.set_object_tags(A, "t", "k", Some(&v1.version_id), pairs(&[("old", "y")]))
        .await
        .expect("tag v1");
    let h2 = b.head_object(A, "t", "k", None).await.expect("head");
    assert_eq!(h2.tags, pairs(&[("a", "1")]));
    let h1 = b
        .head_object(A, "t", "k", Some(&v1.version_id))
        .await
        .expect("head v1");
    assert_eq!(h1.tags, pairs(&[("old", "y")]), "tags are per version");
    b.set_object_tags(A, "t", "k", None, BTreeMap::new())
        .await
        .expect("untag");
    assert!(b
        .head_object(A, "t", "k", None)
        .await
        .expect("head")
        .tags
        .is_empty());

    // S3's limits.
    let eleven: BTreeMap<String, String> = (0..=MAX_TAGS)
        .map(|i| (format!("k{i}"), "v".to_owned()))
        .collect();
    let too_long_key = pairs(&[(&"k".repeat(129), "v")]);
    let too_long_value = pairs(&[("k", &"v".repeat(257))]);
    for (bad, what) in [
        (eleven, "eleven tags"),
        (too_long_key, "a 129-character key"),
        (too_long_value, "a 257-character value"),
    ] {
        assert!(
            matches!(
                b.set_object_tags(A, "t", "k", None, bad.clone()).await,
                Err(BackendError::InvalidTag(_))
            ),
            "{what} is InvalidTag"
        );
        let m = PutMeta {
            tags: bad,
            ..PutMeta::default()
        };
        assert!(
            matches!(
                b.put_object(A, "t", "bad", m, chunked(b"x", 1), None).await,
                Err(BackendError::InvalidTag(_))
            ),
            "a put with {what} is InvalidTag"
        );
    }
    let ok: BTreeMap<String, String> = (0..MAX_TAGS)
        .map(|i| (format!("{i}{}", "k".repeat(127)), "v".repeat(256)))
        .collect();
    b.set_object_tags(A, "t", "k", None, ok)
        .await
        .expect("ten tags at the limits");

    // A delete marker has no tags.
    let del = b
        .delete_object(A, "t", "k", None, None)
        .await
        .expect("marker");
    let marker = del.version_id.expect("marker id");
    assert_eq!(
        b.set_object_tags(A, "t", "k", Some(&marker), pairs(&[("a", "1")]))
            .await,
        Err(BackendError::MethodNotAllowed)
    );
    assert_eq!(
        b.set_object_tags(A, "t", "k", None, pairs(&[("a", "1")]))
            .await,
        Err(BackendError::NoSuchKey)
    );
}

/// `If-None-Match: *` and `If-Match` on puts, completions and deletes:
/// a failed condition writes nothing.
pub async fn conditional_writes<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "c").await.expect("create");
    let with = |c: WriteCondition| PutMeta {
        condition: Some(c),
        ..PutMeta::default()
    };
    let first = b
        .put_object(
            A,
            "c",
            "k",
            with(WriteCondition::IfAbsent),
            chunked(b"1", 1),
            None,
        )
        .await
        .expect("create-only put of an absent key");
    assert_eq!(
        b.put_object(
            A,
            "c",
            "k",
            with(WriteCondition::IfAbsent),
            chunked(b"2", 1),
            None
        )
        .await,
        Err(BackendError::PreconditionFailed),
        "create-only put of a present key"
    );
    assert_eq!(get(b, A, "c", "k", None).await, b"1", "nothing written");
    assert_eq!(
        b.put_object(
            A,
            "c",
            "k",
            with(WriteCondition::IfMatch(md5_hex(b"other"))),
            chunked(b"3", 1),
            None
        )
        .await,
        Err(BackendError::PreconditionFailed),
        "If-Match with another etag"
    );
    assert_eq!(
        b.put_object(
            A,
            "c",
            "absent",
            with(WriteCondition::IfMatch("*".into())),
            chunked(b"3", 1),
            None
        )
        .await,
        Err(BackendError::PreconditionFailed),
        "If-Match on an absent key"
    );
    assert_eq!(
        b.put_object(
            A,
            "c",
            "k",
            with(WriteCondition::IfNoneMatch(first.etag.clone())),
            chunked(b"5", 1),
            None
        )
        .await,
        Err(BackendError::PreconditionFailed),
        "If-None-Match with the current etag"
    );
    b.put_object(
        A,
        "c",
        "other",
        with(WriteCondition::IfNoneMatch(first.etag.clone())),
        chunked(b"5", 1),
        None,
    )
    .await
    .expect("If-None-Match: etag on an absent key");
    b.put_object(
        A,
        "c",
        "k",
        with(WriteCondition::IfMatch(first.etag.clone())),
        chunked(b"4", 1),
        None,
    )
    .await
    .expect("If-Match with the current etag");
    assert_eq!(get(b, A, "c", "k", None).await, b"4");

    // Completions.
    let id = b
        .create_multipart(A, "c", "k", PutMeta::default())
        .await
        .expect("mpu");
    let p = b
        .upload_part(A, "c", "k", &id, 1, chunked(b"mp", 1), None)
        .await
        .expect("part");
    assert_eq!(
        b.complete_multipart(
            A,
            "c",
            "k",
            &id,
            vec![(1, p.etag.clone())],
            Some(WriteCondition::IfAbsent)
        )
        .await,
        Err(BackendError::PreconditionFailed),
        "create-only completion of a present key"
    );
    assert_eq!(get(b, A, "c", "k", None).await, b"4", "nothing completed");
    b.complete_multipart(
        A,
        "c",
        "k",
        &id,
        vec![(1, p.etag)],
        Some(WriteCondition::IfMatch(md5_hex(b"4"))),
    )
    .await
    .expect("the upload is still there and completes under a true condition");
    assert_eq!(get(b, A, "c", "k", None).await, b"mp");

    // Deletes.
    assert_eq!(
        b.delete_object(A, "c", "k", None, Some(&md5_hex(b"other")))
            .await,
        Err(BackendError::PreconditionFailed),
        "If-Match delete with another etag"
    );
    assert_eq!(get(b, A, "c", "k", None).await, b"mp", "nothing deleted");
    let etag = b.head_object(A, "c", "k", None).await.expect("head").etag;
    b.delete_object(A, "c", "k", None, Some(&etag))
        .await
        .expect("If-Match delete with the current etag");
    assert_eq!(
        b.head_object(A, "c", "k", None).await,
        Err(BackendError::NoSuchKey)
    );
    // A delete of nothing succeeds whatever its condition.
    b.delete_object(A, "c", "k", None, Some(&md5_hex(b"other")))
        .await
        .expect("If-Match delete of an absent key");
    // In a versioned bucket, a conditional delete of a key that never had a
    // version adds no delete marker (so a second one still finds nothing).
    b.set_versioning(A, "c", Versioning::Enabled)
        .await
        .expect("versioning");
    for want in ["*", "\"badetag\""] {
        let out = b
            .delete_object(A, "c", "never", None, Some(want))
            .await
            .expect("a conditional delete of nothing succeeds");
        assert!(!out.delete_marker, "{want}: no delete marker");
    }
    let versions = b
        .list_versions(A, "c", "never", None, None, 10)
        .await
        .expect("versions");
    assert!(versions.is_empty(), "nothing was written for the key");
}

/// A bucket holding only uploads in progress can be deleted (they go with
/// it); completing an upload again with the same parts answers its object,
/// with other parts `NoSuchUpload`.
pub async fn uploads_end<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "u").await.expect("create");
    let id = b
        .create_multipart(A, "u", "k", PutMeta::default())
        .await
        .expect("mpu");
    b.upload_part(A, "u", "k", &id, 1, chunked(b"part", 2), None)
        .await
        .expect("part");
    b.delete_bucket(A, "u")
        .await
        .expect("a bucket with only uploads in progress is deleted");
    assert_eq!(b.head_bucket(A, "u").await, Err(BackendError::NoSuchBucket));
    b.create_bucket(A, "u").await.expect("create again");
    assert_eq!(
        b.list_multipart_uploads(A, "u").await,
        Ok(Vec::new()),
        "the uploads went with the old bucket"
    );

    let id = b
        .create_multipart(A, "u", "k", PutMeta::default())
        .await
        .expect("mpu");
    let p = b
        .upload_part(A, "u", "k", &id, 1, chunked(b"data", 2), None)
        .await
        .expect("part");
    let parts = vec![(1, p.etag.clone())];
    let first = b
        .complete_multipart(A, "u", "k", &id, parts.clone(), None)
        .await
        .expect("complete");
    let again = b
        .complete_multipart(A, "u", "k", &id, parts, None)
        .await
        .expect("complete again with the same parts");
    assert_eq!(
        (again.etag, again.version_id, again.size),
        (first.etag, first.version_id, first.size)
    );
    assert_eq!(
        b.complete_multipart(A, "u", "k", &id, vec![(1, md5_hex(b"x"))], None)
            .await,
        Err(BackendError::NoSuchUpload),
        "complete again with other parts"
    );
    assert_eq!(
        b.complete_multipart(A, "u", "other", &id, vec![(1, p.etag)], None)
            .await,
        Err(BackendError::NoSuchUpload),
        "complete again naming another key"
    );
}
