//! Multipart uploads and their errors.

use super::*;

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
            None,
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
            vec![(2, p2.etag.clone()), (1, small.etag.clone())],
            None
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
            vec![(1, small.etag.clone()), (1, small.etag.clone())],
            None
        )
        .await,
        Err(BackendError::InvalidPartOrder),
        "duplicate part numbers"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![(1, md5_hex(b"other"))], None)
            .await,
        Err(BackendError::InvalidPart),
        "wrong etag"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![(7, small.etag.clone())], None)
            .await,
        Err(BackendError::InvalidPart),
        "part never uploaded"
    );
    assert_eq!(
        b.complete_multipart(A, "m", "k", &id, vec![], None).await,
        Err(BackendError::InvalidPart),
        "no parts"
    );
    assert_eq!(
        b.complete_multipart(
            A,
            "m",
            "k",
            &id,
            vec![(1, small.etag.clone()), (2, p2.etag.clone())],
            None
        )
        .await,
        Err(BackendError::EntityTooSmall)
    );
    // A single small part is fine (the last part may be small).
    let info = b
        .complete_multipart(A, "m", "k", &id, vec![(2, p2.etag.clone())], None)
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
