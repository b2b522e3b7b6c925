//! Stored checksums and size/time delete conditions in `apply`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use stratus_types::TenantName;

use super::*;
use crate::objects::{
    Bucket, DedupeScope, KeyScope, ObjectData, ObjectVersion, Part, Upload, Versioning,
    WriteCondition,
};
use crate::{Command, CommandResult};

const T: &str = "acme";

fn state() -> State {
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
                versioning: Versioning::Enabled,
                created_ms: 0,
            },
        }),
    );
    assert!(r.error.is_none(), "{r:?}");
    s
}

fn apply(s: &mut State, cmd: StoreCommand) -> CommandResult {
    s.apply(10, &Command::Store(cmd))
}

fn data() -> ObjectData {
    ObjectData {
        scope: KeyScope::Tenant(T.into()),
        chunks: Vec::new(),
    }
}

fn part(md5: &str, size: u64) -> Part {
    Part {
        size,
        md5: md5.into(),
        data: data(),
        created_ms: 0,
    }
}

fn asked(alg: &str, composite: bool) -> StoredChecksum {
    StoredChecksum {
        algorithm: alg.into(),
        value: String::new(),
        composite,
    }
}

fn create(s: &mut State, checksum: Option<StoredChecksum>) -> String {
    let attrs = VersionAttrs {
        checksum,
        ..VersionAttrs::default()
    };
    apply(
        s,
        StoreCommand::CreateUploadWith {
            upload: Upload {
                id: String::new(),
                tenant: T.into(),
                bucket: "bkt".into(),
                key: "k".into(),
                content_type: None,
                user_meta: BTreeMap::new(),
                parts: BTreeMap::new(),
                created_ms: 0,
            },
            attrs: attrs.to_doc(),
        },
    )
    .id
    .unwrap()
}

fn put_part(s: &mut State, id: &str, n: u32, md5: &str, sum: Option<&str>) -> CommandResult {
    apply(
        s,
        StoreCommand::PutPartWith {
            tenant: T.into(),
            upload: id.into(),
            number: n,
            part: part(md5, 0),
            checksum: sum.map(str::to_owned),
        },
    )
}

/// Parts record their checksums (a part replaced without one forgets it);
/// completion gives the version the checksum sent and the listed parts'
/// checksums by position; the upload's own document goes.
#[test]
fn parts_and_completion_keep_checksums() {
    let mut s = state();
    let id = create(&mut s, Some(asked("CRC32", false)));
    assert!(put_part(&mut s, &id, 1, "aa", Some("AAAAAA=="))
        .error
        .is_none());
    assert!(put_part(&mut s, &id, 3, "cc", Some("first"))
        .error
        .is_none());
    assert!(put_part(&mut s, &id, 3, "cc", None).error.is_none());
    assert!(!s.store.upload_attrs_of(&id).part_checksums.contains_key(&3));
    assert!(put_part(&mut s, &id, 3, "cc", Some("CCCCCC=="))
        .error
        .is_none());
    let whole = StoredChecksum {
        value: "WWWWWW==".into(),
        ..asked("CRC32", false)
    };
    let r = apply(
        &mut s,
        StoreCommand::CompleteUploadChecked {
            tenant: T.into(),
            upload: id.clone(),
            parts: vec![(1, "aa".into()), (3, "cc".into())],
            now_ms: 5,
            condition: None,
            checksum: serde_json::to_string(&whole).unwrap(),
        },
    );
    assert!(r.error.is_none(), "{r:?}");
    let v = r.id.unwrap();
    let got = s.store.version_attrs("bkt", "k", &v);
    assert_eq!(got.checksum, Some(whole));
    let by_pos: BTreeMap<u32, String> = [(1, "AAAAAA==".into()), (2, "CCCCCC==".into())].into();
    assert_eq!(got.part_checksums, by_pos);
    assert!(s.store.upload_attrs.is_empty());
}

/// Completing without a checksum gives the version neither the upload's
/// asked algorithm nor its parts' checksums keyed by part number.
#[test]
fn a_plain_completion_claims_no_checksum() {
    let mut s = state();
    let id = create(&mut s, Some(asked("SHA256", true)));
    assert!(put_part(&mut s, &id, 2, "bb", Some("x")).error.is_none());
    let r = apply(
        &mut s,
        StoreCommand::CompleteUploadWith {
            tenant: T.into(),
            upload: id,
            parts: vec![(2, "bb".into())],
            now_ms: 5,
            condition: None,
        },
    );
    let got = s.store.version_attrs("bkt", "k", &r.id.unwrap());
    assert_eq!(got.checksum, None);
    assert!(got.part_checksums.is_empty());
}

#[test]
fn oversized_or_unknown_checksums_are_refused() {
    let mut s = state();
    let id = create(&mut s, None);
    let long = "A".repeat(MAX_CHECKSUM_CHARS + 1);
    assert!(put_part(&mut s, &id, 1, "aa", Some(&long)).error.is_some());
    assert!(s.store.uploads[&id].parts.is_empty(), "nothing stored");
    let bad = VersionAttrs {
        checksum: Some(asked("MD4", false)),
        ..VersionAttrs::default()
    };
    assert!(bad.validate().is_err());
    let many = VersionAttrs {
        part_checksums: [(0u32, "x".to_owned())].into(),
        ..VersionAttrs::default()
    };
    assert!(many.validate().is_err(), "part number 0");
    // An upload's document holds no part checksums when created.
    let upload = s.store.uploads[&id].clone();
    let r = apply(
        &mut s,
        StoreCommand::CreateUploadWith {
            upload,
            attrs: VersionAttrs {
                part_checksums: [(1u32, "x".to_owned())].into(),
                ..VersionAttrs::default()
            }
            .to_doc(),
        },
    );
    assert!(r.error.is_some());
    let r = apply(
        &mut s,
        StoreCommand::CompleteUploadChecked {
            tenant: T.into(),
            upload: id,
            parts: vec![],
            now_ms: 5,
            condition: None,
            checksum: "{not json".into(),
        },
    );
    assert!(r.error.is_some());
}

fn version(size: u64, created_ms: u64) -> ObjectVersion {
    ObjectVersion {
        version_id: String::new(),
        size,
        etag: "e1".into(),
        blake3: String::new(),
        created_ms,
        content_type: None,
        user_meta: BTreeMap::new(),
        data: Some(data()),
    }
}

/// DeleteIf: every condition must hold on the version; a marker matches
/// no size or time; a put cannot carry it.
#[test]
fn delete_conditions_on_size_and_time() {
    let mut s = state();
    let r = apply(
        &mut s,
        StoreCommand::PutObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k".into(),
            version: version(0, 3_500),
            attrs: String::new(),
            condition: None,
        },
    );
    assert!(r.error.is_none(), "{r:?}");
    let del = |cond: WriteCondition| StoreCommand::DeleteObjectWith {
        tenant: T.into(),
        bucket: "bkt".into(),
        key: "k".into(),
        version_id: None,
        now_ms: 9_000,
        condition: Some(cond),
    };
    let when =
        |etag: Option<&str>, size: Option<u64>, secs: Option<u64>| WriteCondition::DeleteIf {
            etag: etag.map(str::to_owned),
            size,
            modified_secs: secs,
        };
    for bad in [
        when(None, Some(8), None),
        when(None, None, Some(4)),
        when(Some("other"), Some(0), Some(3)),
    ] {
        let r = apply(&mut s, del(bad));
        assert!(r
            .error
            .is_some_and(|e| crate::objects::is_precondition_failed(&e)));
    }
    assert_eq!(s.store.versions("bkt", "k").len(), 1, "nothing deleted");
    let r = apply(&mut s, del(when(Some("e1"), Some(0), Some(3))));
    assert!(r.error.is_none(), "{r:?}");
    // The latest is now a marker: no size matches it.
    let r = apply(&mut s, del(when(None, Some(0), None)));
    assert!(r.error.is_some());
    // A put may not carry delete conditions.
    let r = apply(
        &mut s,
        StoreCommand::PutObjectWith {
            tenant: T.into(),
            bucket: "bkt".into(),
            key: "k2".into(),
            version: version(0, 1),
            attrs: String::new(),
            condition: Some(when(None, Some(1), None)),
        },
    );
    assert!(r.error.is_some());
}
