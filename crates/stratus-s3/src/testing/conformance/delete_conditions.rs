//! Deletes under size and modification-time conditions
//! ([`Backend::delete_object_if`]).

use super::*;
use crate::backend::DeleteCondition;

fn cond(size: Option<u64>, modified_secs: Option<u64>) -> DeleteCondition {
    DeleteCondition {
        etag: None,
        size,
        modified_secs,
    }
}

/// Size and time conditions hold or the delete is `PreconditionFailed`
/// (nothing deleted); a delete marker matches neither; a delete of nothing
/// succeeds whatever the conditions and adds no marker; every condition
/// given must hold (a right ETag with a wrong size fails).
pub async fn delete_conditions<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "dc").await.expect("create");
    let v = put(b, A, "dc", "k", b"12345").await;
    let head = b.head_object(A, "dc", "k", None).await.expect("head");
    let secs = head.last_modified_ms / 1000;
    for bad in [
        cond(Some(9), None),
        cond(None, Some(secs + 3600)),
        cond(Some(5), Some(1)),
    ] {
        let r = b
            .delete_object_if(A, "dc", "k", None, bad.clone(), false)
            .await;
        assert_eq!(r, Err(BackendError::PreconditionFailed), "{bad:?}");
    }
    let both = DeleteCondition {
        etag: Some(v.etag.clone()),
        size: Some(4),
        modified_secs: None,
    };
    assert_eq!(
        b.delete_object_if(A, "dc", "k", None, both, false).await,
        Err(BackendError::PreconditionFailed),
        "every condition must hold"
    );
    assert_eq!(
        get(b, A, "dc", "k", None).await,
        b"12345",
        "nothing deleted"
    );
    b.delete_object_if(A, "dc", "k", None, cond(Some(5), Some(secs)), false)
        .await
        .expect("conditions hold");
    let gone = b
        .delete_object_if(A, "dc", "k", None, cond(Some(9), None), false)
        .await
        .expect("a delete of nothing succeeds");
    assert!(!gone.delete_marker);

    // Versioned: the marker has no size; a version named is the target.
    b.create_bucket(A, "dcv").await.expect("create");
    b.set_versioning(A, "dcv", Versioning::Enabled)
        .await
        .expect("versioning");
    let v1 = put(b, A, "dcv", "k", b"one").await;
    let v2 = put(b, A, "dcv", "k", b"second").await;
    let r = b
        .delete_object_if(A, "dcv", "k", None, cond(Some(3), None), false)
        .await;
    assert_eq!(
        r,
        Err(BackendError::PreconditionFailed),
        "latest is 6 bytes"
    );
    let m = b
        .delete_object_if(A, "dcv", "k", None, cond(Some(6), None), false)
        .await
        .expect("latest matches");
    assert!(m.delete_marker);
    let r = b
        .delete_object_if(A, "dcv", "k", None, cond(Some(0), None), false)
        .await;
    assert_eq!(
        r,
        Err(BackendError::PreconditionFailed),
        "a marker has no size"
    );
    let r = b
        .delete_object_if(
            A,
            "dcv",
            "k",
            Some(&v1.version_id),
            cond(Some(6), None),
            false,
        )
        .await;
    assert_eq!(r, Err(BackendError::PreconditionFailed), "v1 is 3 bytes");
    let h1 = b
        .head_object(A, "dcv", "k", Some(&v1.version_id))
        .await
        .expect("head v1");
    b.delete_object_if(
        A,
        "dcv",
        "k",
        Some(&v1.version_id),
        cond(Some(3), Some(h1.last_modified_ms / 1000)),
        false,
    )
    .await
    .expect("v1 matches");
    assert_eq!(
        get(b, A, "dcv", "k", Some(&v2.version_id)).await,
        b"second",
        "v2 kept"
    );
}
