//! Stored additional checksums: a simple upload's, an upload's asked
//! algorithm, parts' checksums, the object checksum a completion combines.

use s3s::crypto::{Checksum as _, Crc32, Sha256};

use super::*;
use crate::backend::{combine_checksums, ChecksumSlot, ObjectChecksum};
use crate::checksum_combine::base64_encode;

fn sum(alg: &str, value: String, composite: bool) -> ObjectChecksum {
    ObjectChecksum {
        algorithm: alg.to_owned(),
        value,
        composite,
    }
}

/// A put stores the checksum its slot holds when the body has ended; a
/// multipart upload keeps its asked algorithm, its parts' checksums (a
/// part replaced without one loses it), and its completion stores the
/// checksum its parts combine to (a full-object CRC32 equals the CRC32 of
/// the whole) and the parts' by position; a completion whose parts lack
/// checksums the upload asked for commits nothing.
pub async fn stored_checksums<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "ck").await.expect("create");
    let data = b"hello checksums";
    let sha = base64_encode(&Sha256::checksum(data));
    let m = PutMeta {
        checksum: ChecksumSlot::with(sum("SHA256", sha.clone(), false)),
        ..PutMeta::default()
    };
    let put = b
        .put_object(A, "ck", "one", m, chunked(data, 4), None)
        .await
        .expect("put");
    assert_eq!(
        put.checksum.as_ref().map(|c| c.value.as_str()),
        Some(sha.as_str())
    );
    let head = b.head_object(A, "ck", "one", None).await.expect("head");
    assert_eq!(
        head.checksum,
        Some(sum("SHA256", sha, false)),
        "put's checksum is stored"
    );
    put_plain(b).await;

    // A full-object CRC32 upload of two parts.
    let asked = sum("CRC32", String::new(), false);
    let m = PutMeta {
        checksum: ChecksumSlot::with(asked.clone()),
        ..PutMeta::default()
    };
    let id = b
        .create_multipart(A, "ck", "mp", m)
        .await
        .expect("create mpu");
    assert_eq!(
        b.upload_checksum(A, "ck", "mp", &id).await.expect("asked"),
        Some(asked.clone())
    );
    let part = usize::try_from(MIN_PART_SIZE).expect("fits");
    let p1: Vec<u8> = (0..part).map(|i| (i % 251) as u8).collect();
    let p2: Vec<u8> = b"the last part".to_vec();
    let crc = |d: &[u8]| base64_encode(&Crc32::checksum(d));
    let slot = |d: &[u8]| ChecksumSlot::with(sum("CRC32", crc(d), false));
    let i1 = b
        .upload_part_sealed(
            A,
            "ck",
            "mp",
            &id,
            1,
            chunked(&p1, 1 << 20),
            None,
            None,
            slot(&p1),
        )
        .await
        .expect("part 1");
    assert_eq!(i1.checksum, Some(crc(&p1)));
    // Replaced without a checksum: the part has none any more.
    b.upload_part(A, "ck", "mp", &id, 2, chunked(b"first try", 3), None)
        .await
        .expect("part 2, first");
    let listed = b.list_parts(A, "ck", "mp", &id).await.expect("parts");
    assert_eq!(
        listed[1].checksum, None,
        "a replaced part keeps no checksum"
    );
    let i2 = b
        .upload_part_sealed(
            A,
            "ck",
            "mp",
            &id,
            2,
            chunked(&p2, 5),
            None,
            None,
            slot(b"x"),
        )
        .await
        .expect("part 2");
    // (the slot carries what the gateway verified; here a stand-in)
    let listed = b.list_parts(A, "ck", "mp", &id).await.expect("parts");
    assert_eq!(listed[0].checksum, Some(crc(&p1)));
    assert_eq!(listed[1].checksum, Some(crc(b"x")));
    let again = b
        .upload_part_sealed(
            A,
            "ck",
            "mp",
            &id,
            2,
            chunked(&p2, 5),
            None,
            None,
            slot(&p2),
        )
        .await
        .expect("part 2 again");
    assert_eq!(again.etag, i2.etag);
    let i2 = again;
    let info = b
        .complete_multipart(
            A,
            "ck",
            "mp",
            &id,
            vec![(1, i1.etag.clone()), (2, i2.etag.clone())],
            None,
        )
        .await
        .expect("complete");
    let whole: Vec<u8> = [p1.as_slice(), p2.as_slice()].concat();
    let want = sum("CRC32", crc(&whole), false);
    assert_eq!(
        info.checksum,
        Some(want.clone()),
        "full-object CRC of the whole"
    );
    let head = b.head_object(A, "ck", "mp", None).await.expect("head mp");
    assert_eq!(head.checksum, Some(want));
    let by_pos: BTreeMap<u32, String> = [(1, crc(&p1)), (2, crc(&p2))].into_iter().collect();
    assert_eq!(head.part_checksums, by_pos, "parts' checksums by position");

    // A composite SHA-256 upload whose part has no checksum: nothing is
    // committed.
    let asked = sum("SHA256", String::new(), true);
    let m = PutMeta {
        checksum: ChecksumSlot::with(asked.clone()),
        ..PutMeta::default()
    };
    let id = b.create_multipart(A, "ck", "bad", m).await.expect("create");
    let p = b
        .upload_part(A, "ck", "bad", &id, 1, chunked(b"abc", 2), None)
        .await
        .expect("part");
    let r = b
        .complete_multipart(A, "ck", "bad", &id, vec![(1, p.etag.clone())], None)
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidArgument(_))),
        "a part without the asked checksum: {r:?}"
    );
    assert_eq!(
        b.head_object(A, "ck", "bad", None).await.err(),
        Some(BackendError::NoSuchKey),
        "nothing committed"
    );
    let sha = base64_encode(&Sha256::checksum(b"abc"));
    let p = b
        .upload_part_sealed(
            A,
            "ck",
            "bad",
            &id,
            1,
            chunked(b"abc", 2),
            None,
            None,
            ChecksumSlot::with(sum("SHA256", sha.clone(), false)),
        )
        .await
        .expect("part with checksum");
    let info = b
        .complete_multipart(A, "ck", "bad", &id, vec![(1, p.etag)], None)
        .await
        .expect("complete composite");
    let want = combine_checksums(&asked, &[(Some(sha.as_str()), 3)]).expect("combine");
    assert_eq!(info.checksum, want);
    assert!(info
        .checksum
        .as_ref()
        .is_some_and(|c| c.composite && c.value.ends_with("-1")));
}

/// A put without a checksum stores none.
async fn put_plain<Bk: Backend>(b: &Bk) {
    put(b, A, "ck", "plain", b"no checksum").await;
    let head = b.head_object(A, "ck", "plain", None).await.expect("head");
    assert_eq!(head.checksum, None);
    assert!(head.part_checksums.is_empty());
}

/// Checksums and customer keys (SSE-C) together: a put under a key stores
/// its checksum and its seal; an upload under a key with an asked
/// algorithm stores each keyed part's checksum and completes to a version
/// with both the combined checksum and the seal.
pub async fn checksums_under_customer_keys<Bk: Backend>(b: &Bk) {
    let key = crate::backend::CustomerKey::new([9; 32]);
    b.create_bucket(A, "cks").await.expect("create");
    let data = b"sealed and summed";
    let crc = |d: &[u8]| base64_encode(&Crc32::checksum(d));
    let m = PutMeta {
        checksum: ChecksumSlot::with(sum("CRC32", crc(data), false)),
        customer_key: Some(key.clone()),
        ..PutMeta::default()
    };
    b.put_object(A, "cks", "one", m, chunked(data, 4), None)
        .await
        .expect("put under a key with a checksum");
    let head = b.head_object(A, "cks", "one", None).await.expect("head");
    assert_eq!(head.checksum, Some(sum("CRC32", crc(data), false)));
    assert!(head.customer_seal.is_some_and(|s| s.opens_with(&key)));

    let m = PutMeta {
        checksum: ChecksumSlot::with(sum("CRC32", String::new(), false)),
        customer_key: Some(key.clone()),
        ..PutMeta::default()
    };
    let id = b
        .create_multipart(A, "cks", "mp", m)
        .await
        .expect("create keyed upload");
    let part = b
        .upload_part_sealed(
            A,
            "cks",
            "mp",
            &id,
            1,
            chunked(data, 4),
            None,
            Some(&key),
            ChecksumSlot::with(sum("CRC32", crc(data), false)),
        )
        .await
        .expect("keyed part with a checksum");
    assert_eq!(part.checksum, Some(crc(data)));
    let info = b
        .complete_multipart(A, "cks", "mp", &id, vec![(1, part.etag)], None)
        .await
        .expect("complete");
    assert_eq!(
        info.checksum.map(|c| c.value),
        Some(crc(data)),
        "a full-object CRC32 of one part is the part's"
    );
    assert!(info.customer_seal.is_some_and(|s| s.opens_with(&key)));
}
