//! Unit and property tests of lifecycle rules: their checks, what they
//! expire, and the conditional `Expire` command.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::objects::{Bucket, DedupeScope, KeyScope, ObjectData, Versioning};
use crate::Command;

const DAY: u64 = 1000;

fn v(id: &str, created_ms: u64, marker: bool) -> ObjectVersion {
    ObjectVersion {
        version_id: id.into(),
        size: 1,
        etag: "e".into(),
        blake3: String::new(),
        created_ms,
        content_type: None,
        user_meta: BTreeMap::new(),
        data: (!marker).then(|| ObjectData {
            scope: KeyScope::Tenant("acme".into()),
            chunks: Vec::new(),
        }),
    }
}

fn rule(id: &str) -> LifecycleRule {
    LifecycleRule {
        id: id.into(),
        enabled: true,
        ..LifecycleRule::default()
    }
}

fn keep(n: u32, days: u32) -> LifecycleRule {
    LifecycleRule {
        noncurrent_days: Some(days),
        newer_noncurrent_versions: Some(n),
        ..rule("keep")
    }
}

fn ten_versions() -> Vec<ObjectVersion> {
    (0..10)
        .map(|i| v(&format!("v{i}"), i * 10, false))
        .collect()
}

#[test]
fn keeping_three_noncurrent_versions_trims_ten_to_four() {
    let out = evaluate_key(&[keep(3, 1)], "k", &ten_versions(), 10 * DAY, DAY);
    let gone: Vec<&str> = out
        .iter()
        .map(|e| match e {
            Expiry::Noncurrent { version_id, .. } => version_id.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(gone, ["v0", "v1", "v2", "v3", "v4", "v5"]);
}

#[test]
fn noncurrent_age_counts_from_the_successor() {
    // v0 became noncurrent at 5 days, v1 at 9 days; now is 10 days.
    let vs = [
        v("v0", 0, false),
        v("v1", 5 * DAY, false),
        v("v2", 9 * DAY, false),
    ];
    let r = LifecycleRule {
        noncurrent_days: Some(3),
        ..rule("nc")
    };
    let out = evaluate_key(&[r], "k", &vs, 10 * DAY, DAY);
    assert_eq!(
        out,
        [Expiry::Noncurrent {
            version_id: "v0".into(),
            created_ms: 0
        }]
    );
}

#[test]
fn current_versions_expire_after_their_days_and_markers_when_alone() {
    let r = LifecycleRule {
        expiration_days: Some(2),
        ..rule("exp")
    };
    let young = [v("a", 9 * DAY, false)];
    assert!(evaluate_key(std::slice::from_ref(&r), "k", &young, 10 * DAY, DAY).is_empty());
    let aged = [v("a", 8 * DAY, false)];
    assert_eq!(
        evaluate_key(std::slice::from_ref(&r), "k", &aged, 10 * DAY, DAY),
        [Expiry::Current {
            version_id: "a".into(),
            created_ms: 8 * DAY
        }]
    );
    // A marker is never "expired" as a current version.
    let marker = [v("m", 0, true)];
    assert!(evaluate_key(&[r], "k", &marker, 10 * DAY, DAY).is_empty());
    let m = LifecycleRule {
        expired_object_delete_marker: true,
        ..rule("m")
    };
    assert_eq!(
        evaluate_key(std::slice::from_ref(&m), "k", &marker, 0, DAY),
        [Expiry::Marker {
            version_id: "m".into(),
            created_ms: 0
        }]
    );
    // Not alone: the marker stays.
    let two = [v("a", 0, false), v("m", 1, true)];
    assert!(evaluate_key(&[m], "k", &two, 10 * DAY, DAY).is_empty());
}

#[test]
fn disabled_rules_and_other_prefixes_do_nothing() {
    let off = LifecycleRule {
        enabled: false,
        ..keep(1, 1)
    };
    assert!(evaluate_key(&[off], "k", &ten_versions(), 100 * DAY, DAY).is_empty());
    let logs = LifecycleRule {
        prefix: "logs/".into(),
        ..keep(1, 1)
    };
    assert!(evaluate_key(
        std::slice::from_ref(&logs),
        "data/x",
        &ten_versions(),
        100 * DAY,
        DAY
    )
    .is_empty());
    assert_eq!(
        evaluate_key(&[logs], "logs/x", &ten_versions(), 100 * DAY, DAY).len(),
        8
    );
    let up = LifecycleRule {
        abort_upload_days: Some(1),
        prefix: "tmp/".into(),
        ..rule("u")
    };
    assert!(upload_expires(
        std::slice::from_ref(&up),
        "tmp/a",
        0,
        DAY,
        DAY
    ));
    assert!(!upload_expires(
        std::slice::from_ref(&up),
        "tmp/a",
        1,
        DAY,
        DAY
    ));
    assert!(!upload_expires(&[up], "keep/a", 0, DAY, DAY));
}

#[test]
fn configurations_are_checked_as_s3_does() {
    let ok = LifecycleConfig {
        rules: vec![keep(3, 1)],
    };
    assert_eq!(ok.validate(), Ok(()));
    let bad = |rules: Vec<LifecycleRule>| LifecycleConfig { rules }.validate().unwrap_err();
    assert_eq!(bad(vec![]), LifecycleError::NoRules);
    assert_eq!(
        bad(vec![keep(1, 1), keep(2, 1)]),
        LifecycleError::DuplicateId("keep".into())
    );
    let many: Vec<LifecycleRule> = (0..=MAX_RULES)
        .map(|i| LifecycleRule {
            id: format!("r{i}"),
            ..keep(1, 1)
        })
        .collect();
    assert_eq!(bad(many), LifecycleError::TooManyRules(MAX_RULES + 1));
    assert!(matches!(
        bad(vec![rule("none")]),
        LifecycleError::NoAction(_)
    ));
    assert!(matches!(
        bad(vec![LifecycleRule {
            expiration_days: Some(0),
            ..rule("z")
        }]),
        LifecycleError::BadDays { .. }
    ));
    assert!(matches!(
        bad(vec![keep(101, 1)]),
        LifecycleError::BadNewerNoncurrent(_)
    ));
    assert!(matches!(
        bad(vec![LifecycleRule {
            newer_noncurrent_versions: Some(2),
            ..rule("x")
        }]),
        LifecycleError::NoncurrentWithoutDays(_)
    ));
    assert!(matches!(
        bad(vec![LifecycleRule {
            expiration_days: Some(1),
            expired_object_delete_marker: true,
            ..rule("x")
        }]),
        LifecycleError::MarkerWithDays(_)
    ));
    let long = LifecycleRule {
        id: "x".repeat(MAX_RULE_ID + 1),
        ..keep(1, 1)
    };
    assert!(matches!(bad(vec![long]), LifecycleError::IdTooLong(_)));
    assert!(LifecycleConfig::parse("[]").is_err());
    assert_eq!(LifecycleConfig::parse(&ok.to_doc()), Ok(ok));
}

#[test]
fn scan_prefixes_cover_every_enabled_rule_once() {
    let c = LifecycleConfig {
        rules: vec![
            LifecycleRule {
                prefix: "logs/a".into(),
                ..keep(1, 1)
            },
            LifecycleRule {
                id: "2".into(),
                prefix: "logs/".into(),
                ..keep(1, 1)
            },
            LifecycleRule {
                id: "3".into(),
                prefix: "tmp/".into(),
                ..keep(1, 1)
            },
            LifecycleRule {
                id: "4".into(),
                prefix: "off/".into(),
                enabled: false,
                ..keep(1, 1)
            },
        ],
    };
    assert_eq!(c.scan_prefixes(), ["logs/", "tmp/"]);
}

fn arb_rule() -> impl Strategy<Value = LifecycleRule> {
    (
        prop::option::of(1u32..5),
        any::<bool>(),
        prop::option::of(1u32..5),
        prop::option::of(1u32..6),
        prop::sample::select(vec!["", "a", "b"]),
    )
        .prop_map(|(exp, marker, nc, keep, prefix)| LifecycleRule {
            id: String::new(),
            enabled: true,
            prefix: prefix.into(),
            expiration_days: exp,
            expired_object_delete_marker: marker,
            noncurrent_days: nc,
            newer_noncurrent_versions: keep.filter(|_| nc.is_some()),
            abort_upload_days: None,
            legacy_prefix: false,
            ..LifecycleRule::default()
        })
}

proptest! {
    /// Whatever the rules: each version is expired at most once; a current
    /// version only if some rule's days passed since it was written; a
    /// noncurrent one only if some rule's days passed since its successor
    /// was written and that rule keeps fewer newer noncurrent versions than
    /// it has; a marker only when it is the only version.
    #[test]
    fn expiries_follow_the_rules(
        rules in prop::collection::vec(arb_rule(), 0..4),
        shape in prop::collection::vec((0u64..3000, any::<bool>()), 1..12),
        now in 0u64..20_000,
        key in prop::sample::select(vec!["a1", "b1", "c1"]),
    ) {
        let mut t = 0;
        let vs: Vec<ObjectVersion> = shape
            .iter()
            .enumerate()
            .map(|(i, (gap, marker))| {
                t += gap;
                v(&format!("v{i}"), t, *marker)
            })
            .collect();
        let out = evaluate_key(&rules, key, &vs, now, DAY);
        let mut seen = BTreeSet::new();
        let live: Vec<&LifecycleRule> = rules.iter().filter(|r| key.starts_with(&r.prefix)).collect();
        for e in &out {
            let (id, created) = match e {
                Expiry::Current { version_id, created_ms }
                | Expiry::Noncurrent { version_id, created_ms }
                | Expiry::Marker { version_id, created_ms } => (version_id, *created_ms),
            };
            prop_assert!(seen.insert(id.clone()), "{id} expired twice");
            let i = vs.iter().position(|x| x.version_id == *id).unwrap();
            prop_assert_eq!(vs[i].created_ms, created);
            match e {
                Expiry::Current { .. } => {
                    prop_assert_eq!(i, vs.len() - 1);
                    prop_assert!(!vs[i].is_delete_marker());
                    let allowed = live.iter().any(|r| r.expiration_days.is_some_and(|d| vs[i].created_ms + u64::from(d) * DAY <= now));
                    prop_assert!(allowed, "{} expired against the rules", id);
                }
                Expiry::Marker { .. } => {
                    prop_assert_eq!(vs.len(), 1);
                    prop_assert!(vs[0].is_delete_marker());
                }
                Expiry::Noncurrent { .. } => {
                    prop_assert!(i + 1 < vs.len());
                    let newer = (vs.len() - 2 - i) as u64;
                    let since = vs[i + 1].created_ms;
                    let allowed = live.iter().any(|r| r.noncurrent_days.is_some_and(|d| {
                        since + u64::from(d) * DAY <= now
                            && r.newer_noncurrent_versions.is_none_or(|k| newer >= u64::from(k))
                    }));
                    prop_assert!(allowed, "{} expired against the rules", id);
                }
            }
        }
    }
}

// The conditional command, applied to a real state.

fn state(versioning: Versioning) -> State {
    let mut s = State::default();
    for t in ["acme", "evil"] {
        let r = s.apply(
            1,
            &Command::CreateTenant {
                name: t.into(),
                now_ms: 0,
            },
        );
        assert!(r.error.is_none(), "{r:?}");
    }
    let r = s.apply(
        2,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "bkt".into(),
                tenant: "acme".into(),
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

fn put(s: &mut State, key: &str, created_ms: u64) {
    let r = s.apply(
        3,
        &Command::Store(StoreCommand::PutObject {
            tenant: "acme".into(),
            bucket: "bkt".into(),
            key: key.into(),
            version: ObjectVersion {
                size: 0,
                ..v("", created_ms, false)
            },
        }),
    );
    assert!(r.error.is_none(), "{r:?}");
}

fn run(s: &mut State, e: &Expiry, tenant: &str) -> Result<Option<u64>, ApplyError> {
    let r = s.apply(4, &Command::Store(e.command(tenant, "bkt", "k", 99)));
    r.into_result()
}

#[test]
fn expiring_the_current_version_of_a_versioned_bucket_adds_a_marker() {
    let mut s = state(Versioning::Enabled);
    put(&mut s, "k", 5);
    let vs = s.store.versions("bkt", "k");
    let e = Expiry::Current {
        version_id: vs[0].version_id.clone(),
        created_ms: 5,
    };
    assert_eq!(run(&mut s, &e, "acme"), Ok(Some(1)));
    let vs = s.store.versions("bkt", "k");
    assert_eq!(vs.len(), 2);
    assert!(vs[1].is_delete_marker());
    // Applied again: the version is no longer current, nothing happens.
    assert_eq!(run(&mut s, &e, "acme"), Ok(Some(0)));
    assert_eq!(s.store.versions("bkt", "k").len(), 2);
}

#[test]
fn a_version_replaced_since_the_scan_is_left_alone() {
    let mut s = state(Versioning::Unversioned);
    put(&mut s, "k", 5);
    // The scan saw the null version of time 5; a new put replaced it.
    put(&mut s, "k", 7);
    let e = Expiry::Current {
        version_id: "null".into(),
        created_ms: 5,
    };
    assert_eq!(run(&mut s, &e, "acme"), Ok(Some(0)));
    assert_eq!(
        s.store.versions("bkt", "k").len(),
        1,
        "the new object stays"
    );
    let e = Expiry::Current {
        version_id: "null".into(),
        created_ms: 7,
    };
    assert_eq!(run(&mut s, &e, "acme"), Ok(Some(1)));
    assert!(s.store.versions("bkt", "k").is_empty(), "unversioned: gone");
}

#[test]
fn noncurrent_versions_go_for_good_and_another_tenant_cannot_expire_them() {
    let mut s = state(Versioning::Enabled);
    put(&mut s, "k", 1);
    put(&mut s, "k", 2);
    let old = s.store.versions("bkt", "k")[0].clone();
    let e = Expiry::Noncurrent {
        version_id: old.version_id.clone(),
        created_ms: 1,
    };
    assert!(run(&mut s, &e, "evil").is_err(), "not evil's bucket");
    assert_eq!(s.store.versions("bkt", "k").len(), 2);
    assert_eq!(run(&mut s, &e, "acme"), Ok(Some(1)));
    let left = s.store.versions("bkt", "k");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].created_ms, 2);
}

#[test]
fn the_state_refuses_a_malformed_lifecycle_document() {
    let mut s = state(Versioning::Enabled);
    let set = |doc: &str| {
        Command::Store(StoreCommand::SetBucketConfig {
            tenant: "acme".into(),
            bucket: "bkt".into(),
            kind: BucketConfigKind::Lifecycle,
            doc: Some(doc.into()),
        })
    };
    for bad in [r#"{"rules":[]}"#, r#"{"rules":5}"#, "[]"] {
        let r = s.apply(5, &set(bad));
        assert!(r.error.is_some(), "{bad} accepted");
    }
    let good = LifecycleConfig {
        rules: vec![keep(3, 1)],
    }
    .to_doc();
    let r = s.apply(6, &set(&good));
    assert!(r.error.is_none(), "{r:?}");
}
