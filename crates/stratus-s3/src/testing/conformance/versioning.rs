//! Versioning: ids, delete markers, reading and deleting versions, and
//! suspended versioning.

use super::*;

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

    let del = b
        .delete_object(A, "v", "k", None, None)
        .await
        .expect("delete");
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
        .delete_object(A, "v", "k", Some(&marker), None)
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
        .delete_object(A, "v", "k", Some(&v2.version_id), None)
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
    let del = b
        .delete_object(A, "s", "k", None, None)
        .await
        .expect("delete");
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
