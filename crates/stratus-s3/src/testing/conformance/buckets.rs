//! Buckets: create/list/head/delete and their errors; tenant isolation.

use super::*;

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
    b.delete_object(A, "alpha", "k", None, None)
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
    // A delete marker in a versioned bucket keeps it non-empty.
    b.set_versioning(A, "zeta", Versioning::Enabled)
        .await
        .expect("enable");
    b.delete_object(A, "zeta", "gone", None, None)
        .await
        .expect("marker");
    assert_eq!(
        b.delete_bucket(A, "zeta").await,
        Err(BackendError::BucketNotEmpty),
        "delete markers"
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
        b.delete_object(B, "private", "secret", None, None).await,
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
        .complete_multipart(
            B,
            "private",
            "up",
            &id,
            vec![(1, EMPTY_MD5.to_owned())],
            None,
        )
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

/// Configuration documents: set, read back, replaced, removed, bounded,
/// private to the owner and gone with the bucket.
pub async fn bucket_configs<Bk: Backend>(b: &Bk) {
    use crate::backend::{BucketConfigKind as K, MAX_BUCKET_CONFIG_BYTES};
    b.create_bucket(A, "conf").await.expect("create");
    assert_eq!(b.get_bucket_config(A, "conf", K::Cors).await, Ok(None));
    let doc = r#"{"rules":[1]}"#.to_string();
    b.put_bucket_config(A, "conf", K::Cors, Some(doc.clone()))
        .await
        .expect("set");
    assert_eq!(b.get_bucket_config(A, "conf", K::Cors).await, Ok(Some(doc)));
    assert_eq!(
        b.get_bucket_config(A, "conf", K::Policy).await,
        Ok(None),
        "kinds are separate"
    );
    isolated(b.get_bucket_config(B, "conf", K::Cors).await, "get config");
    isolated(
        b.put_bucket_config(B, "conf", K::Cors, Some("{}".into()))
            .await,
        "put config",
    );
    let huge = format!("\"{}\"", "x".repeat(MAX_BUCKET_CONFIG_BYTES));
    for bad in ["not json".to_string(), huge] {
        assert!(
            matches!(
                b.put_bucket_config(A, "conf", K::Cors, Some(bad)).await,
                Err(BackendError::InvalidArgument(_))
            ),
            "a bad document is refused"
        );
    }
    b.put_bucket_config(A, "conf", K::Cors, Some("{}".into()))
        .await
        .expect("replace");
    b.put_bucket_config(A, "conf", K::Cors, None)
        .await
        .expect("remove");
    assert_eq!(b.get_bucket_config(A, "conf", K::Cors).await, Ok(None));
    b.put_bucket_config(A, "conf", K::Policy, Some("{}".into()))
        .await
        .expect("set policy");
    b.delete_bucket(A, "conf").await.expect("delete");
    b.create_bucket(A, "conf").await.expect("create again");
    assert_eq!(
        b.get_bucket_config(A, "conf", K::Policy).await,
        Ok(None),
        "a new bucket of the same name starts without the old documents"
    );
}

/// The tenant-free view of a bucket's owner and access documents: absent
/// for a missing bucket, exactly the stored documents otherwise (lifecycle
/// and tags are not part of it), gone with the bucket.
pub async fn bucket_access<Bk: Backend>(b: &Bk) {
    use crate::backend::{BucketAccessDocs, BucketConfigKind as K};
    assert_eq!(b.bucket_access("acc").await, Ok(None), "no bucket yet");
    b.create_bucket(A, "acc").await.expect("create");
    assert_eq!(
        b.bucket_access("acc").await,
        Ok(Some(BucketAccessDocs {
            owner: A.to_owned(),
            ..BucketAccessDocs::default()
        }))
    );
    let doc = |k: K| format!(r#"{{"kind":"{k:?}"}}"#);
    for k in [K::Policy, K::Acl, K::PublicAccessBlock, K::Cors, K::Tagging] {
        b.put_bucket_config(A, "acc", k, Some(doc(k)))
            .await
            .expect("set");
    }
    assert_eq!(
        b.bucket_access("acc").await,
        Ok(Some(BucketAccessDocs {
            owner: A.to_owned(),
            policy: Some(doc(K::Policy)),
            acl: Some(doc(K::Acl)),
            public_access_block: Some(doc(K::PublicAccessBlock)),
            cors: Some(doc(K::Cors)),
        }))
    );
    assert_eq!(
        b.bucket_access("acc").await.map(|d| d.map(|d| d.owner)),
        Ok(Some(A.to_owned())),
        "the owner is the creator, whoever asks"
    );
    b.delete_bucket(A, "acc").await.expect("delete");
    assert_eq!(
        b.bucket_access("acc").await,
        Ok(None),
        "gone with the bucket"
    );
}
