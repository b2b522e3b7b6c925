//! Object lock rules in `apply`: retention, legal hold, deletes, lifecycle
//! expiry, bucket configuration and versioning.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use stratus_types::TenantName;

use super::*;
use crate::lifecycle::Expiring;
use crate::objects::{DedupeScope, KeyScope, ObjectData, ObjectVersion};
use crate::{Command, CommandResult};

const T: &str = "acme";
const B: &str = "vault";
const NOW: u64 = 1_000_000;

fn bucket(name: &str, versioning: Versioning) -> Bucket {
    Bucket {
        name: name.into(),
        tenant: T.into(),
        profile: None,
        scope: DedupeScope::Tenant,
        versioning,
        created_ms: 0,
    }
}

fn apply(s: &mut State, cmd: StoreCommand) -> CommandResult {
    s.apply(10, &Command::Store(cmd))
}

fn ok(r: CommandResult) -> Option<String> {
    assert!(r.error.is_none(), "{r:?}");
    r.id
}

/// A state with tenant `acme` and bucket `vault` created with object lock
/// (and `default`, if given).
fn locked_state(default: Option<DefaultRetention>) -> State {
    let mut s = State::default();
    s.apply(
        1,
        &Command::CreateTenant {
            name: TenantName::from(T),
            now_ms: 0,
        },
    );
    let lock = LockConfig {
        enabled: true,
        default,
    };
    ok(apply(
        &mut s,
        StoreCommand::CreateBucketWithConfigs {
            bucket: bucket(B, Versioning::Unversioned),
            configs: vec![(BucketConfigKind::ObjectLock, lock.to_doc())],
        },
    ));
    s
}

fn put(s: &mut State, key: &str, at: u64, attrs: VersionAttrs) -> CommandResult {
    apply(
        s,
        StoreCommand::PutObjectWith {
            tenant: T.into(),
            bucket: B.into(),
            key: key.into(),
            version: ObjectVersion {
                version_id: String::new(),
                size: 0,
                etag: "e".into(),
                blake3: String::new(),
                created_ms: at,
                content_type: None,
                user_meta: BTreeMap::new(),
                data: Some(ObjectData {
                    scope: KeyScope::Tenant(T.into()),
                    chunks: Vec::new(),
                }),
            },
            attrs: attrs.to_doc(),
            condition: None,
        },
    )
}

fn retained(mode: LockMode, until_ms: u64) -> VersionAttrs {
    VersionAttrs {
        retention: Some(Retention { mode, until_ms }),
        ..VersionAttrs::default()
    }
}

fn delete(key: &str, v: &str, now_ms: u64) -> StoreCommand {
    StoreCommand::DeleteObject {
        tenant: T.into(),
        bucket: B.into(),
        key: key.into(),
        version_id: Some(v.into()),
        now_ms,
    }
}

fn bypass_delete(key: &str, v: &str, now_ms: u64, bypass: bool) -> StoreCommand {
    StoreCommand::DeleteObjectBypassing {
        tenant: T.into(),
        bucket: B.into(),
        key: key.into(),
        version_id: Some(v.into()),
        now_ms,
        condition: None,
        bypass_governance: bypass,
    }
}

fn set_retention(v: &str, r: Option<Retention>, bypass: bool, now_ms: u64) -> StoreCommand {
    StoreCommand::SetObjectRetention {
        tenant: T.into(),
        bucket: B.into(),
        key: "k".into(),
        version_id: Some(v.into()),
        retention: r,
        bypass_governance: bypass,
        now_ms,
    }
}

fn exists(s: &State, key: &str, v: &str) -> bool {
    s.store.versions(B, key).iter().any(|x| x.version_id == v)
}

fn forbidden(r: &CommandResult) -> bool {
    matches!(r.error, Some(ApplyError::Forbidden(_)))
}

#[test]
fn a_bucket_created_with_lock_is_versioned_and_stays_so() {
    let mut s = locked_state(None);
    assert_eq!(
        s.store.buckets.get(B).unwrap().versioning,
        Versioning::Enabled
    );
    assert!(s.store.lock_config(B).is_some());
    let suspend = StoreCommand::SetVersioning {
        tenant: T.into(),
        name: B.into(),
        versioning: Versioning::Suspended,
    };
    let r = apply(&mut s, suspend);
    assert!(
        matches!(&r.error, Some(ApplyError::Conflict(m)) if m.starts_with(INVALID_BUCKET_STATE))
    );
    let remove = StoreCommand::SetBucketConfig {
        tenant: T.into(),
        bucket: B.into(),
        kind: BucketConfigKind::ObjectLock,
        doc: None,
    };
    assert!(apply(&mut s, remove).error.is_some());
    assert!(s.store.lock_config(B).is_some());
}

#[test]
fn lock_on_an_existing_bucket_needs_versioning_enabled() {
    let mut s = locked_state(None);
    ok(apply(
        &mut s,
        StoreCommand::CreateBucket {
            bucket: bucket("plain", Versioning::Unversioned),
        },
    ));
    let enable = || StoreCommand::SetBucketConfig {
        tenant: T.into(),
        bucket: "plain".into(),
        kind: BucketConfigKind::ObjectLock,
        doc: Some(LockConfig::ENABLED.to_doc()),
    };
    assert!(apply(&mut s, enable()).error.is_some());
    ok(apply(
        &mut s,
        StoreCommand::SetVersioning {
            tenant: T.into(),
            name: "plain".into(),
            versioning: Versioning::Enabled,
        },
    ));
    ok(apply(&mut s, enable()));
    // Another tenant cannot, and a bad document is refused.
    let bad = StoreCommand::SetBucketConfig {
        tenant: T.into(),
        bucket: "plain".into(),
        kind: BucketConfigKind::ObjectLock,
        doc: Some(r#"{"enabled":true,"default":{"mode":"GOVERNANCE","days":1,"years":1}}"#.into()),
    };
    assert!(apply(&mut s, bad).error.is_some());
}

#[test]
fn default_retention_rules() {
    let d = |days, years| DefaultRetention {
        mode: LockMode::Governance,
        days,
        years,
    };
    assert!(d(Some(1), None).validate().is_ok());
    assert!(d(None, Some(1)).validate().is_ok());
    assert!(matches!(
        d(Some(1), Some(1)).validate(),
        Err(LockConfigError::Malformed(_))
    ));
    assert!(matches!(
        d(None, None).validate(),
        Err(LockConfigError::Malformed(_))
    ));
    assert!(matches!(
        d(Some(0), None).validate(),
        Err(LockConfigError::InvalidPeriod(_))
    ));
    assert!(matches!(
        d(None, Some(0)).validate(),
        Err(LockConfigError::InvalidPeriod(_))
    ));
    assert!(matches!(
        d(None, Some(MAX_RETENTION_YEARS + 1)).validate(),
        Err(LockConfigError::InvalidPeriod(_))
    ));
    assert_eq!(d(Some(2), None).retention_from(5).until_ms, 5 + 2 * DAY_MS);
    assert_eq!(d(None, Some(1)).retention_from(0).until_ms, 365 * DAY_MS);
}

#[test]
fn new_versions_get_the_default_retention_from_their_creation_time() {
    let default = DefaultRetention {
        mode: LockMode::Compliance,
        days: Some(1),
        years: None,
    };
    let mut s = locked_state(Some(default));
    let v = ok(put(&mut s, "k", NOW, VersionAttrs::default())).unwrap();
    let a = s.store.version_attrs(B, "k", &v);
    assert_eq!(
        a.retention,
        Some(Retention {
            mode: LockMode::Compliance,
            until_ms: NOW + DAY_MS
        })
    );
    // An explicit retention wins over the default.
    let v2 = ok(put(
        &mut s,
        "k",
        NOW,
        retained(LockMode::Governance, NOW + 5),
    ))
    .unwrap();
    let a = s.store.version_attrs(B, "k", &v2);
    assert_eq!(a.retention.unwrap().mode, LockMode::Governance);
    // Not removable before the day is over, removable after.
    assert!(forbidden(&apply(&mut s, delete("k", &v, NOW + DAY_MS - 1))));
    assert!(forbidden(&apply(
        &mut s,
        bypass_delete("k", &v, NOW + 1, true)
    )));
    ok(apply(&mut s, delete("k", &v, NOW + DAY_MS)));
    assert!(!exists(&s, "k", &v));
}

#[test]
fn lock_on_a_bucket_without_lock_is_an_invalid_request() {
    let mut s = locked_state(None);
    ok(apply(
        &mut s,
        StoreCommand::CreateBucket {
            bucket: bucket("plain", Versioning::Enabled),
        },
    ));
    let mut cmd = StoreCommand::PutObjectWith {
        tenant: T.into(),
        bucket: "plain".into(),
        key: "k".into(),
        version: ObjectVersion {
            version_id: String::new(),
            size: 0,
            etag: "e".into(),
            blake3: String::new(),
            created_ms: NOW,
            content_type: None,
            user_meta: BTreeMap::new(),
            data: Some(ObjectData {
                scope: KeyScope::Tenant(T.into()),
                chunks: Vec::new(),
            }),
        },
        attrs: retained(LockMode::Governance, NOW + 10).to_doc(),
        condition: None,
    };
    let r = apply(&mut s, cmd.clone());
    assert!(matches!(&r.error, Some(ApplyError::Invalid(m)) if m.starts_with(INVALID_REQUEST)));
    if let StoreCommand::PutObjectWith { attrs, .. } = &mut cmd {
        *attrs = VersionAttrs {
            legal_hold: Some(true),
            ..VersionAttrs::default()
        }
        .to_doc();
    }
    assert!(apply(&mut s, cmd).error.is_some());
    // A retention in the past is refused on a locked bucket.
    assert!(put(&mut s, "k", NOW, retained(LockMode::Governance, NOW))
        .error
        .is_some());
}

#[test]
fn governance_needs_bypass_compliance_holds_against_everyone() {
    let mut s = locked_state(None);
    let g = ok(put(
        &mut s,
        "k",
        NOW,
        retained(LockMode::Governance, NOW + 100),
    ))
    .unwrap();
    let c = ok(put(
        &mut s,
        "k",
        NOW,
        retained(LockMode::Compliance, NOW + 100),
    ))
    .unwrap();
    // Plain, conditional and bypass-less deletes are refused.
    assert!(forbidden(&apply(&mut s, delete("k", &g, NOW))));
    assert!(forbidden(&apply(
        &mut s,
        bypass_delete("k", &g, NOW, false)
    )));
    let conditional = StoreCommand::DeleteObjectWith {
        tenant: T.into(),
        bucket: B.into(),
        key: "k".into(),
        version_id: Some(g.clone()),
        now_ms: NOW,
        condition: Some(crate::objects::WriteCondition::IfMatch("*".into())),
    };
    assert!(forbidden(&apply(&mut s, conditional)));
    assert!(forbidden(&apply(&mut s, bypass_delete("k", &c, NOW, true))));
    assert!(forbidden(&apply(&mut s, delete("k", &c, NOW + 99))));
    // A delete without a version id adds a marker.
    let marker = StoreCommand::DeleteObject {
        tenant: T.into(),
        bucket: B.into(),
        key: "k".into(),
        version_id: None,
        now_ms: NOW,
    };
    ok(apply(&mut s, marker));
    assert!(exists(&s, "k", &g) && exists(&s, "k", &c));
    // Bypass removes GOVERNANCE.
    ok(apply(&mut s, bypass_delete("k", &g, NOW, true)));
    assert!(!exists(&s, "k", &g));
    // Once the date passes, COMPLIANCE goes too.
    ok(apply(&mut s, delete("k", &c, NOW + 100)));
}

#[test]
fn retention_changes() {
    let mut s = locked_state(None);
    let v = ok(put(&mut s, "k", NOW, VersionAttrs::default())).unwrap();
    let r = |mode, until_ms| Some(Retention { mode, until_ms });
    use LockMode::{Compliance as C, Governance as G};
    ok(apply(&mut s, set_retention(&v, r(G, NOW + 50), false, NOW)));
    ok(apply(&mut s, set_retention(&v, r(G, NOW + 60), false, NOW)));
    // Shorten, lift or change GOVERNANCE: only with bypass.
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, r(G, NOW + 10), false, NOW)
    )));
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, None, false, NOW)
    )));
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, r(C, NOW + 60), false, NOW)
    )));
    ok(apply(&mut s, set_retention(&v, r(G, NOW + 10), true, NOW)));
    ok(apply(&mut s, set_retention(&v, r(C, NOW + 20), true, NOW)));
    // COMPLIANCE: extend only, bypass or not.
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, r(C, NOW + 19), true, NOW)
    )));
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, r(G, NOW + 30), true, NOW)
    )));
    assert!(forbidden(&apply(
        &mut s,
        set_retention(&v, None, true, NOW)
    )));
    ok(apply(&mut s, set_retention(&v, r(C, NOW + 30), false, NOW)));
    // A date in the past is invalid.
    let e = apply(&mut s, set_retention(&v, r(C, NOW - 1), false, NOW)).error;
    assert!(matches!(e, Some(ApplyError::Invalid(_))));
    // After the date, anything goes.
    ok(apply(&mut s, set_retention(&v, None, false, NOW + 30)));
}

#[test]
fn legal_hold_blocks_every_delete_until_lifted() {
    let mut s = locked_state(None);
    let v = ok(put(
        &mut s,
        "k",
        NOW,
        VersionAttrs {
            legal_hold: Some(true),
            ..VersionAttrs::default()
        },
    ))
    .unwrap();
    assert!(forbidden(&apply(&mut s, bypass_delete("k", &v, NOW, true))));
    let hold = |on| StoreCommand::SetObjectLegalHold {
        tenant: T.into(),
        bucket: B.into(),
        key: "k".into(),
        version_id: Some(v.clone()),
        on,
    };
    // Another tenant cannot lift it.
    let mut evil = hold(false);
    if let StoreCommand::SetObjectLegalHold { tenant, .. } = &mut evil {
        *tenant = "evil".into();
    }
    assert!(apply(&mut s, evil).error.is_some());
    ok(apply(&mut s, hold(false)));
    assert_eq!(s.store.version_attrs(B, "k", &v).legal_hold, Some(false));
    ok(apply(&mut s, delete("k", &v, NOW)));
}

#[test]
fn lifecycle_expiry_skips_locked_versions() {
    let mut s = locked_state(None);
    let old = ok(put(
        &mut s,
        "k",
        NOW,
        retained(LockMode::Compliance, NOW + 100),
    ))
    .unwrap();
    ok(put(&mut s, "k", NOW + 1, VersionAttrs::default()));
    let expire = |now_ms| {
        StoreCommand::Expire(Expiring {
            tenant: T.into(),
            bucket: B.into(),
            key: "k".into(),
            version_id: old.clone(),
            created_ms: NOW,
            current: false,
            now_ms,
        })
    };
    let r = apply(&mut s, expire(NOW + 50));
    assert!(r.error.is_none());
    assert!(exists(&s, "k", &old));
    ok(apply(&mut s, expire(NOW + 100)));
    assert!(!exists(&s, "k", &old));
}

#[test]
fn a_bucket_with_locked_versions_cannot_be_deleted() {
    let mut s = locked_state(None);
    ok(put(
        &mut s,
        "k",
        NOW,
        retained(LockMode::Compliance, NOW + 100),
    ));
    let del = StoreCommand::DeleteBucketAbortingUploads {
        tenant: T.into(),
        name: B.into(),
    };
    assert!(apply(&mut s, del).error.is_some());
    assert!(s.store.buckets.get(B).is_some());
}

/// One step an owner (without bypass) may try.
#[derive(Clone, Debug)]
enum Step {
    Delete(usize, u64),
    BypassDelete(usize, u64),
    Marker(u64),
    Shorten(usize, u64),
    Governance(usize, u64),
    Lift(usize, u64),
    Expire(usize, u64),
    Suspend,
    DropLock,
}

fn step() -> impl Strategy<Value = Step> {
    let t = 0u64..200;
    prop_oneof![
        (0usize..3, t.clone()).prop_map(|(i, t)| Step::Delete(i, t)),
        (0usize..3, t.clone()).prop_map(|(i, t)| Step::BypassDelete(i, t)),
        t.clone().prop_map(Step::Marker),
        (0usize..3, t.clone()).prop_map(|(i, t)| Step::Shorten(i, t)),
        (0usize..3, t.clone()).prop_map(|(i, t)| Step::Governance(i, t)),
        (0usize..3, t.clone()).prop_map(|(i, t)| Step::Lift(i, t)),
        (0usize..3, t).prop_map(|(i, t)| Step::Expire(i, t)),
        Just(Step::Suspend),
        Just(Step::DropLock),
    ]
}

proptest! {
    /// No sequence of commands without bypass removes a COMPLIANCE-locked
    /// version before its date.
    #[test]
    fn no_command_sequence_removes_a_compliance_version_early(
        steps in proptest::collection::vec(step(), 0..40)
    ) {
        let until = NOW + 150;
        let mut s = locked_state(None);
        let ids: Vec<String> = (0..3)
            .map(|_| ok(put(&mut s, "k", NOW, retained(LockMode::Compliance, until))).unwrap())
            .collect();
        // The clock may go back between commands (as seen by the test), so
        // the check holds while no command has reached the date yet.
        let mut latest = 0;
        for st in steps {
            let cmd = match st {
                Step::Delete(i, t) => delete("k", &ids[i], NOW + t),
                Step::BypassDelete(i, t) => bypass_delete("k", &ids[i], NOW + t, true),
                Step::Marker(t) => StoreCommand::DeleteObject {
                    tenant: T.into(), bucket: B.into(), key: "k".into(),
                    version_id: None, now_ms: NOW + t,
                },
                Step::Shorten(i, t) => set_retention(
                    &ids[i], Some(Retention { mode: LockMode::Compliance, until_ms: NOW + t }), true, NOW + t),
                Step::Governance(i, t) => set_retention(
                    &ids[i], Some(Retention { mode: LockMode::Governance, until_ms: NOW + t + 1 }), true, NOW + t),
                Step::Lift(i, t) => set_retention(&ids[i], None, true, NOW + t),
                Step::Expire(i, t) => StoreCommand::Expire(Expiring {
                    tenant: T.into(), bucket: B.into(), key: "k".into(),
                    version_id: ids[i].clone(), created_ms: NOW, current: false, now_ms: NOW + t,
                }),
                Step::Suspend => StoreCommand::SetVersioning {
                    tenant: T.into(), name: B.into(), versioning: Versioning::Suspended,
                },
                Step::DropLock => StoreCommand::SetBucketConfig {
                    tenant: T.into(), bucket: B.into(), kind: BucketConfigKind::ObjectLock, doc: None,
                },
            };
            let now = match &cmd {
                StoreCommand::DeleteObject { now_ms, .. }
                | StoreCommand::DeleteObjectBypassing { now_ms, .. }
                | StoreCommand::SetObjectRetention { now_ms, .. } => *now_ms,
                StoreCommand::Expire(e) => e.now_ms,
                _ => NOW,
            };
            apply(&mut s, cmd);
            latest = latest.max(now);
            if latest < until {
                for id in &ids {
                    prop_assert!(exists(&s, "k", id), "version {} removed at {}", id, now);
                    let r = s.store.version_attrs(B, "k", id).retention.unwrap();
                    prop_assert_eq!(r.mode, LockMode::Compliance);
                    prop_assert!(r.until_ms >= until);
                }
            }
        }
    }
}
