//! Customer-provided keys (SSE-C): a version or upload sealed under a
//! client's key reads (and takes parts) only with that key.

use super::{chunked, read_all, A, MIN_PART_SIZE};
use crate::backend::{Backend, BackendError, ByteRange, CustomerKey, MetadataDirective, PutMeta};

fn keyed(k: &CustomerKey) -> PutMeta {
    PutMeta {
        customer_key: Some(k.clone()),
        ..PutMeta::default()
    }
}

fn err<T>(r: Result<T, BackendError>) -> Option<BackendError> {
    r.err()
}

/// Reads and writes under a customer key: only the key opens the version
/// (range reads too), another key or none is refused, a key on a plain
/// version is refused, the seal is reported and opens with the key only, a
/// metadata-only copy of a sealed version is refused, and every part of an
/// upload under a key needs that key.
pub async fn customer_keys<Bk: Backend>(b: &Bk) {
    let (key, other) = (CustomerKey::new([7; 32]), CustomerKey::new([8; 32]));
    b.create_bucket(A, "sse").await.expect("create");
    let body = b"my secret diary".to_vec();
    let put = b
        .put_object(A, "sse", "k", keyed(&key), chunked(&body, 4), None)
        .await
        .expect("put under a customer key");
    let seal = put
        .customer_seal
        .expect("a put under a key reports its seal");
    assert!(seal.opens_with(&key) && !seal.opens_with(&other));
    let head = b.head_object(A, "sse", "k", None).await.expect("head");
    assert_eq!(head.customer_seal, Some(seal), "head reports the seal");

    let (_, s) = b
        .get_object_sealed(A, "sse", "k", None, None, Some(&key))
        .await
        .expect("the key reads it");
    assert_eq!(read_all(s).await, body);
    let range = Some(ByteRange::FromTo {
        first: 3,
        last: Some(8),
    });
    let (_, s) = b
        .get_object_sealed(A, "sse", "k", None, range, Some(&key))
        .await
        .expect("ranged read with the key");
    assert_eq!(read_all(s).await, body[3..=8]);
    assert_eq!(
        err(b.get_object(A, "sse", "k", None, None).await),
        Some(BackendError::CustomerKeyRequired),
        "no key, no read"
    );
    assert_eq!(
        err(b
            .get_object_sealed(A, "sse", "k", None, None, Some(&other))
            .await),
        Some(BackendError::CustomerKeyMismatch),
        "another key does not read it"
    );
    assert_eq!(
        err(b
            .copy_object(A, "sse", "k", None, "sse", "copy", MetadataDirective::Copy)
            .await),
        Some(BackendError::CustomerKeyRequired),
        "a sealed version is not copied without its key"
    );

    b.put_object(
        A,
        "sse",
        "plain",
        PutMeta::default(),
        chunked(b"x", 1),
        None,
    )
    .await
    .expect("plain put");
    assert_eq!(
        err(b
            .get_object_sealed(A, "sse", "plain", None, None, Some(&key))
            .await),
        Some(BackendError::CustomerKeyNotApplicable),
        "a key for a version stored without one"
    );
    assert!(b
        .head_object(A, "sse", "plain", None)
        .await
        .expect("head")
        .customer_seal
        .is_none());

    // Multipart: every part carries the upload's key.
    let id = b
        .create_multipart(A, "sse", "mp", keyed(&key))
        .await
        .expect("create upload under a key");
    let useal = b
        .upload_customer_seal(A, "sse", "mp", &id)
        .await
        .expect("the upload's seal");
    assert!(useal.is_some_and(|s| s.opens_with(&key) && !s.opens_with(&other)));
    let part = vec![3u8; usize::try_from(MIN_PART_SIZE).expect("fits")];
    let p1 = b
        .upload_part_sealed(
            A,
            "sse",
            "mp",
            &id,
            1,
            chunked(&part, 1 << 16),
            None,
            Some(&key),
            crate::backend::ChecksumSlot::default(),
        )
        .await
        .expect("part with the key");
    for (k, want) in [
        (Some(&other), BackendError::CustomerKeyMismatch),
        (None, BackendError::CustomerKeyRequired),
    ] {
        assert_eq!(
            err(b
                .upload_part_sealed(
                    A,
                    "sse",
                    "mp",
                    &id,
                    2,
                    chunked(b"z", 1),
                    None,
                    k,
                    crate::backend::ChecksumSlot::default()
                )
                .await),
            Some(want),
            "a part without the upload's key"
        );
    }
    let p2 = b
        .upload_part_sealed(
            A,
            "sse",
            "mp",
            &id,
            2,
            chunked(b"tail", 2),
            None,
            Some(&key),
            crate::backend::ChecksumSlot::default(),
        )
        .await
        .expect("last part");
    let done = b
        .complete_multipart(A, "sse", "mp", &id, vec![(1, p1.etag), (2, p2.etag)], None)
        .await
        .expect("complete");
    assert!(done.customer_seal.is_some_and(|s| s.opens_with(&key)));
    assert_eq!(
        err(b.get_object(A, "sse", "mp", None, None).await),
        Some(BackendError::CustomerKeyRequired)
    );
    let (_, s) = b
        .get_object_sealed(A, "sse", "mp", None, None, Some(&key))
        .await
        .expect("multipart object with its key");
    let all = read_all(s).await;
    assert_eq!(all.len(), part.len() + 4);
    assert_eq!(&all[part.len()..], b"tail");

    // A plain upload takes no key.
    let plain = b
        .create_multipart(A, "sse", "mp2", PutMeta::default())
        .await
        .expect("plain upload");
    assert_eq!(
        b.upload_customer_seal(A, "sse", "mp2", &plain).await,
        Ok(None)
    );
    assert_eq!(
        err(b
            .upload_part_sealed(
                A,
                "sse",
                "mp2",
                &plain,
                1,
                chunked(b"z", 1),
                None,
                Some(&key),
                crate::backend::ChecksumSlot::default()
            )
            .await),
        Some(BackendError::CustomerKeyNotApplicable)
    );
}
