//! Version attributes and write preconditions in `apply`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use stratus_types::TenantName;

use super::*;
use crate::objects::{Bucket, DedupeScope, KeyScope, ObjectData, Part, Upload, Versioning};
use crate::{Command, CommandResult};

const T: &str = "acme";

fn state(versioning: Versioning) -> State {
    let mut s = State::default();
    s.apply(
        1,
        &Command::CreateTenant {
            name: TenantName::from(T),
            now_ms: 0,
        },
    );
    let r = s.apply(
        2,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "bkt".into(),
                tenant: T.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning,
                created_ms: 0,
            },
        }),
    );
    assert!(r.error.is_none(), "{r:?}");
    s
}

fn empty_version(etag: &str) -> ObjectVersion {
    ObjectVersion {
        version_id: String::new(),
        size: 0,
        etag: etag.into(),
        blake3: String::new(),
        created_ms: 0,
        content_type: None,
        user_meta: BTreeMap::new(),
        data: Some(ObjectData {
            scope: KeyScope::Tenant(T.into()),
            chunks: Vec::new(),
        }),
    }
}

fn apply(s: &mut State, cmd: StoreCommand) -> CommandResult {
    s.apply(10, &Command::Store(cmd))
}

fn put_with(etag: &str, attrs: &VersionAttrs, condition: Option<WriteCondition>) -> StoreCommand {
    StoreCommand::PutObjectWith {
        tenant: T.into(),
        bucket: "bkt".into(),
        key: "k".into(),
        version: empty_version(etag),
        attrs: attrs.to_doc(),
        condition,
    }
}

fn tags(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn attr_rows(s: &mut State) -> usize {
    s.dump()
        .into_iter()
        .filter(|(t, _, _)| *t == Table::VersionAttrs)
        .count()
}

/// Two create-only puts racing: the log orders them and the second is
/// refused in `apply`, leaving one version.
#[test]
fn create_only_puts_race_and_one_wins() {
    let mut s = state(Versioning::Enabled);
    let none = VersionAttrs::default();
    let first = apply(
        &mut s,
        put_with("e1", &none, Some(WriteCondition::IfAbsent)),
    );
    assert!(first.error.is_none(), "{first:?}");
    let second = apply(
        &mut s,
        put_with("e2", &none, Some(WriteCondition::IfAbsent)),
    );
    let e = second.error.expect("the second create-only put is refused");
    assert!(is_precondition_failed(&e), "{e:?}");
    assert_eq!(s.store.versions("bkt", "k").len(), 1);
    // If-Match: only the current etag passes.
    let stale = apply(
        &mut s,
        put_with("e3", &none, Some(WriteCondition::IfMatch("e2".into()))),
    );
    assert!(stale.error.is_some());
    let ok = apply(
        &mut s,
        put_with("e3", &none, Some(WriteCondition::IfMatch("\"e1\"".into()))),
    );
    assert!(ok.error.is_none(), "{ok:?}");
    // A delete under a stale If-Match changes nothing.
    let del = apply(
        &mut s,
        StoreCommand::DeleteObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 1,
            condition: Some(WriteCondition::IfMatch("e1".into())),
        },
    );
    assert!(del.error.is_some());
    assert_eq!(s.store.versions("bkt", "k").len(), 2);
}

/// Attributes are stored with their version, go when it goes, and a later
/// `null` version (written by the old command) does not inherit them.
#[test]
fn attributes_live_and_die_with_their_version() {
    let mut s = state(Versioning::Unversioned);
    let attrs = VersionAttrs {
        headers: tags(&[("cache-control", "no-cache")]),
        tags: tags(&[("a", "1")]),
        ..VersionAttrs::default()
    };
    let r = apply(&mut s, put_with("e1", &attrs, None));
    assert_eq!(r.id.as_deref(), Some("null"));
    assert_eq!(s.store.version_attrs("bkt", "k", "null"), attrs);
    assert_eq!(attr_rows(&mut s), 1);
    // The old command replaces the null version: its attributes go too.
    let r = apply(
        &mut s,
        StoreCommand::PutObject {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version: empty_version("e2"),
        },
    );
    assert!(r.error.is_none(), "{r:?}");
    assert_eq!(
        s.store.version_attrs("bkt", "k", "null"),
        VersionAttrs::default()
    );
    assert_eq!(attr_rows(&mut s), 0);
    // Tags set later, then the version deleted: no row is left behind.
    let r = apply(
        &mut s,
        StoreCommand::SetObjectTags {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: None,
            tags: tags(&[("b", "2")]),
        },
    );
    assert_eq!(r.id.as_deref(), Some("null"), "{r:?}");
    assert_eq!(attr_rows(&mut s), 1);
    apply(
        &mut s,
        StoreCommand::DeleteObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 1,
            condition: None,
        },
    );
    assert!(s.store.versions("bkt", "k").is_empty());
    assert_eq!(attr_rows(&mut s), 0);
}

/// Tags past S3's limits and headers a version does not store are refused
/// by `apply` itself, whatever the gateway let through.
#[test]
fn attributes_past_the_limits_are_refused_in_apply() {
    let mut s = state(Versioning::Enabled);
    let eleven: BTreeMap<String, String> =
        (0..11).map(|i| (format!("k{i}"), String::new())).collect();
    let too_many = VersionAttrs {
        tags: eleven.clone(),
        ..VersionAttrs::default()
    };
    assert!(apply(&mut s, put_with("e", &too_many, None))
        .error
        .is_some());
    let odd_header = VersionAttrs {
        headers: tags(&[("x-evil", "1")]),
        ..VersionAttrs::default()
    };
    assert!(apply(&mut s, put_with("e", &odd_header, None))
        .error
        .is_some());
    let huge = VersionAttrs {
        headers: tags(&[("cache-control", &"x".repeat(MAX_HEADER_BYTES))]),
        ..VersionAttrs::default()
    };
    assert!(apply(&mut s, put_with("e", &huge, None)).error.is_some());
    assert!(s.store.versions("bkt", "k").is_empty(), "nothing written");
    apply(&mut s, put_with("e", &VersionAttrs::default(), None));
    let r = apply(
        &mut s,
        StoreCommand::SetObjectTags {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: None,
            tags: eleven,
        },
    );
    assert!(r.error.is_some());
    let long_key = tags(&[(&"k".repeat(MAX_TAG_KEY_CHARS + 1), "v")]);
    assert!(validate_tags(&long_key).is_err());
    let long_value = tags(&[("k", &"v".repeat(MAX_TAG_VALUE_CHARS + 1))]);
    assert!(validate_tags(&long_value).is_err());
}

/// An upload's attributes reach its version with the part sizes; a bucket
/// holding only an upload is deleted with it.
#[test]
fn uploads_carry_attributes_and_go_with_their_bucket() {
    let mut s = state(Versioning::Enabled);
    let attrs = VersionAttrs {
        tags: tags(&[("t", "1")]),
        ..VersionAttrs::default()
    };
    let upload = |key: &str| Upload {
        id: String::new(),
        tenant: T.into(),
        bucket: "bkt".into(),
        key: key.into(),
        content_type: None,
        user_meta: BTreeMap::new(),
        parts: BTreeMap::new(),
        created_ms: 0,
    };
    let id = apply(
        &mut s,
        StoreCommand::CreateUploadWith {
            upload: upload("k"),
            attrs: attrs.to_doc(),
        },
    )
    .id
    .unwrap();
    let part = |md5: &str| Part {
        size: 0,
        md5: md5.into(),
        data: ObjectData {
            scope: KeyScope::Tenant(T.into()),
            chunks: Vec::new(),
        },
        created_ms: 0,
    };
    for (n, md5) in [(1, "aa"), (2, "bb")] {
        let r = apply(
            &mut s,
            StoreCommand::PutPart {
                tenant: T.into(),
                upload: id.clone(),
                number: n,
                part: part(md5),
            },
        );
        assert!(r.error.is_none(), "{r:?}");
    }
    let v = apply(
        &mut s,
        StoreCommand::CompleteUploadWith {
            tenant: T.into(),
            upload: id.clone(),
            parts: vec![(1, "aa".into()), (2, "bb".into())],
            now_ms: 1,
            condition: None,
        },
    )
    .id
    .unwrap();
    let got = s.store.version_attrs("bkt", "k", &v);
    assert_eq!(got.tags, attrs.tags);
    assert_eq!(got.part_sizes, [0, 0]);
    assert_eq!(got.upload_id.as_deref(), Some(id.as_str()));
    assert!(
        s.store.upload_attrs.is_empty(),
        "the upload's attributes moved"
    );

    // A bucket with a version is not empty; with only an upload it goes.
    let pending = apply(
        &mut s,
        StoreCommand::CreateUploadWith {
            upload: upload("later"),
            attrs: attrs.to_doc(),
        },
    )
    .id
    .unwrap();
    let del = StoreCommand::DeleteBucketAbortingUploads {
        tenant: T.into(),
        name: "bkt".into(),
    };
    assert!(
        apply(&mut s, del.clone()).error.is_some(),
        "versions remain"
    );
    assert!(s.store.uploads.contains_key(&pending), "nothing aborted");
    apply(
        &mut s,
        StoreCommand::DeleteObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: Some(v),
            now_ms: 2,
            condition: None,
        },
    );
    let r = apply(&mut s, del);
    assert!(r.error.is_none(), "{r:?}");
    assert!(s.store.uploads.is_empty());
    assert!(s.store.upload_attrs.is_empty());
    assert!(!s.store.buckets.contains_key("bkt"));
}

/// A conditional delete of a key with no version at all is a no-op: in a
/// versioned bucket it adds no delete marker (so a later conditional delete
/// still finds nothing), as ceph/s3-tests' `test_delete_object_current_if_match`
/// expects.
#[test]
fn a_conditional_delete_of_nothing_adds_no_marker() {
    let mut s = state(Versioning::Enabled);
    for cond in ["*", "badetag"] {
        let del = apply(
            &mut s,
            StoreCommand::DeleteObjectWith {
                tenant: T.into(),
                bucket: "bkt".into(),
                key: "nothing".into(),
                version_id: None,
                now_ms: 1,
                condition: Some(WriteCondition::IfMatch(cond.into())),
            },
        );
        assert!(del.error.is_none(), "{cond}: {del:?}");
        assert!(s.store.versions("bkt", "nothing").is_empty(), "{cond}");
    }
}

/// `SetObjectAcl` replaces only the ACL of the version named (the latest
/// by default), only for the bucket's owner, bounded, never on a delete
/// marker; `None` restores the default and leaves no row.
#[test]
fn object_acls_are_set_per_version_by_the_owner_only() {
    let mut s = state(Versioning::Enabled);
    let r = apply(&mut s, put_with("e1", &VersionAttrs::default(), None));
    let first = r.id.unwrap();
    apply(&mut s, put_with("e2", &VersionAttrs::default(), None));
    let set = |tenant: &str, version_id: Option<String>, acl: Option<String>| {
        StoreCommand::SetObjectAcl {
            tenant: tenant.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id,
            acl,
        }
    };
    let doc = r#"{"owner":"acme","grants":[]}"#.to_owned();
    let r = apply(&mut s, set(T, Some(first.clone()), Some(doc.clone())));
    assert_eq!(r.id.as_deref(), Some(first.as_str()), "{r:?}");
    assert_eq!(
        s.store.version_attrs("bkt", "k", &first).acl.as_deref(),
        Some(doc.as_str())
    );
    let latest = s.store.latest("bkt", "k").unwrap().version_id;
    assert!(s.store.version_attrs("bkt", "k", &latest).acl.is_none());
    // Another tenant, an oversized or non-JSON document: refused.
    assert!(apply(&mut s, set("other", None, Some(doc.clone())))
        .error
        .is_some());
    let huge = format!("\"{}\"", "x".repeat(MAX_ACL_DOC_BYTES));
    assert!(apply(&mut s, set(T, None, Some(huge))).error.is_some());
    assert!(apply(&mut s, set(T, None, Some("{nope".into())))
        .error
        .is_some());
    assert!(s.store.version_attrs("bkt", "k", &latest).acl.is_none());
    // Back to the default: the row goes.
    apply(&mut s, set(T, Some(first.clone()), None));
    assert_eq!(attr_rows(&mut s), 0);
    // A delete marker has no ACL.
    apply(
        &mut s,
        StoreCommand::DeleteObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version_id: None,
            now_ms: 1,
            condition: None,
        },
    );
    assert!(apply(&mut s, set(T, None, Some(doc))).error.is_some());
}
