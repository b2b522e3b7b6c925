//! Tests of lifecycle tag and size filters and of `Expiration Date`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use crate::objects::{KeyScope, ObjectData};

const DAY: u64 = 1000;

fn v(id: &str, created_ms: u64, size: u64) -> ObjectVersion {
    ObjectVersion {
        version_id: id.into(),
        size,
        etag: "e".into(),
        blake3: String::new(),
        created_ms,
        content_type: None,
        user_meta: BTreeMap::new(),
        data: Some(ObjectData {
            scope: KeyScope::Tenant("acme".into()),
            chunks: Vec::new(),
        }),
    }
}

fn marker(id: &str, created_ms: u64) -> ObjectVersion {
    ObjectVersion {
        data: None,
        size: 0,
        ..v(id, created_ms, 0)
    }
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn expire_after(days: u32) -> LifecycleRule {
    LifecycleRule {
        id: "r".into(),
        enabled: true,
        expiration_days: Some(days),
        ..LifecycleRule::default()
    }
}

#[test]
fn tag_filters_need_every_tag_with_its_value() {
    let r = LifecycleRule {
        tags: tags(&[("tom", "sawyer"), ("huck", "finn")]),
        ..expire_after(1)
    };
    let vs = [v("a", 0, 5)];
    let now = 5 * DAY;
    let all = tags(&[("tom", "sawyer"), ("huck", "finn"), ("x", "y")]);
    assert_eq!(
        evaluate_key_tagged(std::slice::from_ref(&r), "k", &vs, &[all], now, DAY).len(),
        1
    );
    for partial in [
        tags(&[("tom", "sawyer")]),
        tags(&[("tom", "sawyer"), ("huck", "other")]),
        BTreeMap::new(),
    ] {
        assert!(
            evaluate_key_tagged(std::slice::from_ref(&r), "k", &vs, &[partial], now, DAY)
                .is_empty()
        );
    }
    // No tags given at all: a tag rule matches nothing.
    assert!(evaluate_key(&[r], "k", &vs, now, DAY).is_empty());
}

#[test]
fn size_filters_are_strict_and_skip_markers() {
    let gt = LifecycleRule {
        size_greater_than: Some(2000),
        ..expire_after(1)
    };
    let lt = LifecycleRule {
        size_less_than: Some(2000),
        ..expire_after(1)
    };
    let now = 5 * DAY;
    let hit = |r: &LifecycleRule, size| {
        !evaluate_key(std::slice::from_ref(r), "k", &[v("a", 0, size)], now, DAY).is_empty()
    };
    assert!(hit(&gt, 3000) && !hit(&gt, 2000) && !hit(&gt, 1000));
    assert!(hit(&lt, 1000) && !hit(&lt, 2000) && !hit(&lt, 3000));
    // Noncurrent versions are filtered one by one.
    let nc = LifecycleRule {
        expiration_days: None,
        noncurrent_days: Some(1),
        size_greater_than: Some(10),
        ..expire_after(1)
    };
    let vs = [v("big", 0, 100), v("small", 1, 1), marker("m", 2)];
    let out = evaluate_key(&[nc], "k", &vs, 10 * DAY, DAY);
    assert_eq!(
        out,
        vec![Expiry::Noncurrent {
            version_id: "big".into(),
            created_ms: 0
        }]
    );
}

#[test]
fn expiration_date_expires_current_versions_from_that_time() {
    let r = LifecycleRule {
        expiration_days: None,
        expiration_date_ms: Some(1_000_000),
        ..expire_after(1)
    };
    let vs = [v("a", 999_999, 5)];
    assert!(evaluate_key(std::slice::from_ref(&r), "k", &vs, 999_999, DAY).is_empty());
    assert_eq!(evaluate_key(&[r], "k", &vs, 1_000_000, DAY).len(), 1);
}

#[test]
fn filters_are_checked_when_stored() {
    let ok = LifecycleConfig {
        rules: vec![LifecycleRule {
            tags: tags(&[("k", "v")]),
            size_greater_than: Some(1),
            size_less_than: Some(10),
            ..expire_after(1)
        }],
    };
    ok.validate().unwrap();
    let eleven: BTreeMap<String, String> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    for bad in [
        LifecycleRule {
            tags: eleven,
            ..expire_after(1)
        },
        LifecycleRule {
            tags: tags(&[("", "v")]),
            ..expire_after(1)
        },
        LifecycleRule {
            tags: tags(&[("k", &"v".repeat(257))]),
            ..expire_after(1)
        },
        LifecycleRule {
            size_greater_than: Some(10),
            size_less_than: Some(10),
            ..expire_after(1)
        },
        LifecycleRule {
            size_less_than: Some(0),
            ..expire_after(1)
        },
        LifecycleRule {
            expiration_days: None,
            abort_upload_days: Some(1),
            size_less_than: Some(5),
            ..expire_after(1)
        },
        LifecycleRule {
            expiration_date_ms: Some(86_400_000),
            ..expire_after(1)
        },
    ] {
        let c = LifecycleConfig {
            rules: vec![bad.clone()],
        };
        assert!(c.validate().is_err(), "{bad:?}");
        // A stored document breaking the rules is refused too.
        assert!(LifecycleConfig::parse(&c.to_doc()).is_err());
    }
}

/// An old document (no filter fields) reads as before.
#[test]
fn documents_without_filters_still_read() {
    let c = LifecycleConfig::parse(r#"{"rules":[{"id":"a","enabled":true,"expiration_days":3}]}"#)
        .unwrap();
    assert!(c.rules[0].tags.is_empty() && c.rules[0].expiration_date_ms.is_none());
}
