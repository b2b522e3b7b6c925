//! Object ACL documents: kept per version, carried by puts, uploads and
//! replacing copies, never by a plain copy; only the owner sets them.

use super::{chunked, isolated, put, A, B};
use crate::backend::{Backend, BackendError, MetadataDirective, PutMeta, Versioning};

const DOC1: &str = r#"{"owner":"tenant-b","grants":[]}"#;
const DOC2: &str = r#"{"owner":"tenant-a","grants":[{"grantee":"all_users","permission":"READ"}]}"#;

fn with_acl(doc: &str) -> PutMeta {
    PutMeta {
        acl: Some(doc.to_owned()),
        ..PutMeta::default()
    }
}

/// The ACL document of versions: set with the write, replaced per
/// version by `set_object_acl`, not copied by `MetadataDirective::Copy`.
pub async fn object_acls<Bk: Backend>(b: &Bk) {
    b.create_bucket(A, "acl").await.expect("create");
    b.set_versioning(A, "acl", Versioning::Enabled)
        .await
        .expect("versioning");
    let first = b
        .put_object(A, "acl", "k", with_acl(DOC1), chunked(b"one", 2), None)
        .await
        .expect("put with an ACL");
    assert_eq!(first.acl.as_deref(), Some(DOC1), "the put answers its ACL");
    let head = b.head_object(A, "acl", "k", None).await.expect("head");
    assert_eq!(head.acl.as_deref(), Some(DOC1), "HEAD reads the ACL");
    let second = put(b, A, "acl", "k", b"two").await;
    let latest = b.head_object(A, "acl", "k", None).await.expect("head");
    assert_eq!(latest.acl, None, "a put without an ACL has the default");

    // Replace the latest, then one named version.
    let id = b
        .set_object_acl(A, "acl", "k", None, Some(DOC2.to_owned()))
        .await
        .expect("set latest");
    assert_eq!(id, second.version_id);
    let old = b
        .head_object(A, "acl", "k", Some(&first.version_id))
        .await
        .expect("head first");
    assert_eq!(old.acl.as_deref(), Some(DOC1), "other versions keep theirs");
    b.set_object_acl(A, "acl", "k", Some(&first.version_id), None)
        .await
        .expect("set first");
    let old = b
        .head_object(A, "acl", "k", Some(&first.version_id))
        .await
        .expect("head first");
    assert_eq!(old.acl, None, "None restores the default");
    let (got, _) = b.get_object(A, "acl", "k", None, None).await.expect("get");
    assert_eq!(got.acl.as_deref(), Some(DOC2), "GET reads the ACL");

    // Another tenant cannot set it.
    isolated(
        b.set_object_acl(B, "acl", "k", None, None).await,
        "set_object_acl of another tenant's object",
    );
    assert_eq!(
        b.set_object_acl(A, "acl", "missing", None, None).await,
        Err(BackendError::NoSuchKey)
    );

    // Copies: the source's ACL stays behind; a replacing copy takes its own.
    let plain = b
        .copy_object(A, "acl", "k", None, "acl", "plain", MetadataDirective::Copy)
        .await
        .expect("copy");
    let plain = b
        .head_object(A, "acl", "plain", Some(&plain.version_id))
        .await
        .expect("head copy");
    assert_eq!(plain.acl, None, "a copy does not take its source's ACL");
    b.copy_object(
        A,
        "acl",
        "k",
        None,
        "acl",
        "replaced",
        MetadataDirective::Replace(with_acl(DOC1)),
    )
    .await
    .expect("copy replacing");
    let replaced = b
        .head_object(A, "acl", "replaced", None)
        .await
        .expect("head");
    assert_eq!(replaced.acl.as_deref(), Some(DOC1));

    // A multipart upload gives its ACL to the version it completes.
    let up = b
        .create_multipart(A, "acl", "mp", with_acl(DOC2))
        .await
        .expect("create upload");
    let p = b
        .upload_part(A, "acl", "mp", &up, 1, chunked(b"part", 2), None)
        .await
        .expect("part");
    let done = b
        .complete_multipart(A, "acl", "mp", &up, vec![(1, p.etag)], None)
        .await
        .expect("complete");
    assert_eq!(done.acl.as_deref(), Some(DOC2));
    let mp = b.head_object(A, "acl", "mp", None).await.expect("head");
    assert_eq!(mp.acl.as_deref(), Some(DOC2));

    // A delete marker has no ACL.
    let del = b
        .delete_object(A, "acl", "k", None, None)
        .await
        .expect("marker");
    let marker = del.version_id.expect("marker id");
    assert_eq!(
        b.set_object_acl(A, "acl", "k", Some(&marker), None).await,
        Err(BackendError::MethodNotAllowed)
    );
    assert_eq!(
        b.set_object_acl(A, "acl", "k", None, None).await,
        Err(BackendError::NoSuchKey)
    );
}
