//! Object lock checks: buckets with object lock, retention, legal hold,
//! and the deletes they refuse.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{chunked, put, A, B};
use crate::backend::{
    Backend, BackendError, BucketConfigKind, DefaultRetention, LockConfig, LockMode,
    MetadataDirective, PutMeta, Retention, VersionLock, Versioning, DAY_MS,
};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn retention(mode: LockMode, until_ms: u64) -> Option<Retention> {
    Some(Retention { mode, until_ms })
}

fn locked(mode: LockMode, until_ms: u64) -> PutMeta {
    PutMeta {
        lock: VersionLock {
            retention: retention(mode, until_ms),
            legal_hold: None,
        },
        ..PutMeta::default()
    }
}

fn denied<T: std::fmt::Debug>(r: Result<T, BackendError>, what: &str) {
    assert!(
        matches!(r, Err(BackendError::AccessDenied)),
        "{what}: want AccessDenied, got {r:?}"
    );
}

/// A bucket created with object lock is versioned for good; lock on an
/// existing bucket needs versioning enabled; a lock asked of a bucket
/// without object lock is `InvalidRequest`.
pub async fn object_lock_buckets<Bk: Backend>(b: &Bk) {
    b.create_bucket_locked(A, "l").await.expect("create locked");
    assert_eq!(
        b.get_versioning(A, "l").await.expect("versioning"),
        Some(Versioning::Enabled),
        "a bucket with object lock is versioned"
    );
    let doc = b
        .get_bucket_config(A, "l", BucketConfigKind::ObjectLock)
        .await
        .expect("config")
        .expect("a lock document");
    assert_eq!(
        LockConfig::from_doc(&doc).expect("valid"),
        LockConfig::ENABLED
    );
    assert!(
        matches!(
            b.set_versioning(A, "l", Versioning::Suspended).await,
            Err(BackendError::InvalidBucketState(_))
        ),
        "versioning of a bucket with object lock cannot be suspended"
    );
    assert!(
        matches!(
            b.put_bucket_config(A, "l", BucketConfigKind::ObjectLock, None)
                .await,
            Err(BackendError::InvalidBucketState(_))
        ),
        "object lock cannot be removed"
    );

    b.create_bucket(A, "p").await.expect("create plain");
    let enable = || {
        b.put_bucket_config(
            A,
            "p",
            BucketConfigKind::ObjectLock,
            Some(LockConfig::ENABLED.to_doc()),
        )
    };
    assert!(
        matches!(enable().await, Err(BackendError::InvalidBucketState(_))),
        "object lock needs versioning enabled"
    );
    let future = now_ms() + 3_600_000;
    let r = b
        .put_object(
            A,
            "p",
            "k",
            locked(LockMode::Governance, future),
            chunked(b"x", 1),
            None,
        )
        .await;
    assert!(
        matches!(r, Err(BackendError::InvalidRequest(_))),
        "a lock on a bucket without object lock: {r:?}"
    );
    b.set_versioning(A, "p", Versioning::Enabled)
        .await
        .expect("enable");
    enable().await.expect("object lock on a versioned bucket");
    // Another tenant cannot lock A's objects.
    let v = put(b, A, "l", "k", b"data").await.version_id;
    let r = b.set_object_legal_hold(B, "l", "k", Some(&v), true).await;
    assert!(
        matches!(
            r,
            Err(BackendError::NoSuchBucket | BackendError::AccessDenied)
        ),
        "another tenant's legal hold: {r:?}"
    );
}

/// Retention: `GOVERNANCE` gives way to bypass only, `COMPLIANCE` to no
/// one; retention only extends without bypass; a delete without a version
/// id adds a marker; the default retention applies to new versions.
pub async fn object_lock_retention<Bk: Backend>(b: &Bk) {
    b.create_bucket_locked(A, "r").await.expect("create");
    let future = now_ms() + 3_600_000;
    let g = b
        .put_object(
            A,
            "r",
            "k",
            locked(LockMode::Governance, future),
            chunked(b"g", 1),
            None,
        )
        .await
        .expect("put governance");
    assert_eq!(g.lock.retention, retention(LockMode::Governance, future));
    let head = b
        .head_object(A, "r", "k", Some(&g.version_id))
        .await
        .expect("head");
    assert_eq!(head.lock.retention, retention(LockMode::Governance, future));
    denied(
        b.delete_object(A, "r", "k", Some(&g.version_id), None)
            .await,
        "delete governance",
    );
    denied(
        b.delete_object_if(
            A,
            "r",
            "k",
            Some(&g.version_id),
            crate::backend::DeleteCondition::default(),
            false,
        )
        .await,
        "delete governance without bypass",
    );
    // Size and time conditions do not get round the lock, and a bypass
    // still has to meet them.
    let size = |n: u64| crate::backend::DeleteCondition {
        size: Some(n),
        ..Default::default()
    };
    denied(
        b.delete_object_if(A, "r", "k", Some(&g.version_id), size(1), false)
            .await,
        "conditional delete of governance without bypass",
    );
    assert_eq!(
        b.delete_object_if(A, "r", "k", Some(&g.version_id), size(2), true)
            .await,
        Err(BackendError::PreconditionFailed),
        "a bypass must meet the delete's conditions"
    );
    // Shortening needs bypass; extending does not.
    denied(
        b.set_object_retention(
            A,
            "r",
            "k",
            Some(&g.version_id),
            retention(LockMode::Governance, future - 1),
            false,
        )
        .await,
        "shorten governance",
    );
    b.set_object_retention(
        A,
        "r",
        "k",
        Some(&g.version_id),
        retention(LockMode::Governance, future + 1),
        false,
    )
    .await
    .expect("extend governance");
    // A delete without version id hides it behind a marker.
    let marker = b
        .delete_object(A, "r", "k", None, None)
        .await
        .expect("marker");
    assert!(marker.delete_marker);
    assert!(b
        .head_object(A, "r", "k", Some(&g.version_id))
        .await
        .is_ok());
    b.delete_object_if(A, "r", "k", Some(&g.version_id), size(1), true)
        .await
        .expect("bypass removes governance when the conditions hold");
    assert!(matches!(
        b.head_object(A, "r", "k", Some(&g.version_id)).await,
        Err(BackendError::NoSuchVersion)
    ));

    let c = b
        .put_object(
            A,
            "r",
            "c",
            locked(LockMode::Compliance, future),
            chunked(b"c", 1),
            None,
        )
        .await
        .expect("put compliance");
    denied(
        b.delete_object_if(
            A,
            "r",
            "c",
            Some(&c.version_id),
            crate::backend::DeleteCondition::default(),
            true,
        )
        .await,
        "bypass does not remove compliance",
    );
    for (r, what) in [
        (
            retention(LockMode::Compliance, future - 1),
            "shorten compliance",
        ),
        (
            retention(LockMode::Governance, future + 1),
            "compliance to governance",
        ),
        (None, "lift compliance"),
    ] {
        denied(
            b.set_object_retention(A, "r", "c", Some(&c.version_id), r, true)
                .await,
            what,
        );
    }
    b.set_object_retention(
        A,
        "r",
        "c",
        None,
        retention(LockMode::Compliance, future + 10),
        false,
    )
    .await
    .expect("extend compliance");
    // The bucket holds a locked version: it cannot go.
    assert!(matches!(
        b.delete_bucket(A, "r").await,
        Err(BackendError::BucketNotEmpty)
    ));

    // Default retention: one day from the write.
    let config = LockConfig {
        enabled: true,
        default: Some(DefaultRetention {
            mode: LockMode::Governance,
            days: Some(1),
            years: None,
        }),
    };
    b.put_bucket_config(A, "r", BucketConfigKind::ObjectLock, Some(config.to_doc()))
        .await
        .expect("default retention");
    let before = now_ms();
    let d = put(b, A, "r", "d", b"d").await;
    let head = b
        .head_object(A, "r", "d", Some(&d.version_id))
        .await
        .expect("head");
    let r = head.lock.retention.expect("the default retention applies");
    assert_eq!(r.mode, LockMode::Governance);
    assert!(
        r.until_ms >= before + DAY_MS && r.until_ms <= now_ms() + DAY_MS,
        "one day from the write: {r:?}"
    );
    denied(
        b.delete_object(A, "r", "d", Some(&d.version_id), None)
            .await,
        "default retention",
    );
}

/// Legal hold: no delete of the version while on, even with bypass; copies
/// do not inherit locks; a multipart upload carries its lock to its object.
pub async fn object_lock_legal_hold<Bk: Backend>(b: &Bk) {
    b.create_bucket_locked(A, "h").await.expect("create");
    let v = put(b, A, "h", "k", b"held").await.version_id;
    b.set_object_legal_hold(A, "h", "k", Some(&v), true)
        .await
        .expect("hold");
    let head = b.head_object(A, "h", "k", None).await.expect("head");
    assert_eq!(head.lock.legal_hold, Some(true));
    denied(
        b.delete_object_if(
            A,
            "h",
            "k",
            Some(&v),
            crate::backend::DeleteCondition::default(),
            true,
        )
        .await,
        "legal hold with bypass",
    );
    // A copy does not inherit the hold; a copy asking for one gets it.
    let copy = b
        .copy_object(
            A,
            "h",
            "k",
            Some(&v),
            "h",
            "plain-copy",
            MetadataDirective::Copy,
        )
        .await
        .expect("copy");
    assert_eq!(copy.lock, VersionLock::default(), "a copy inherits no lock");
    b.delete_object(A, "h", "plain-copy", Some(&copy.version_id), None)
        .await
        .expect("the copy is not held");
    let held = PutMeta {
        lock: VersionLock {
            retention: None,
            legal_hold: Some(true),
        },
        ..PutMeta::default()
    };
    let copy = b
        .copy_object(
            A,
            "h",
            "k",
            Some(&v),
            "h",
            "held-copy",
            MetadataDirective::Replace(held.clone()),
        )
        .await
        .expect("copy with hold");
    denied(
        b.delete_object(A, "h", "held-copy", Some(&copy.version_id), None)
            .await,
        "a copy asked to be held",
    );
    // Multipart.
    let id = b
        .create_multipart(A, "h", "mp", held)
        .await
        .expect("create upload");
    let part = b
        .upload_part(A, "h", "mp", &id, 1, chunked(b"part", 2), None)
        .await
        .expect("part");
    let done = b
        .complete_multipart(A, "h", "mp", &id, vec![(1, part.etag)], None)
        .await
        .expect("complete");
    denied(
        b.delete_object(A, "h", "mp", Some(&done.version_id), None)
            .await,
        "a multipart object under a legal hold",
    );
    // Lifting the holds frees the versions.
    for (key, ver) in [
        ("k", v),
        ("held-copy", copy.version_id),
        ("mp", done.version_id),
    ] {
        b.set_object_legal_hold(A, "h", key, Some(&ver), false)
            .await
            .expect("lift");
        b.delete_object(A, "h", key, Some(&ver), None)
            .await
            .expect("delete after the hold is lifted");
    }
}
