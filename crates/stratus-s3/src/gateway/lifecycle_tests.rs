//! S3 lifecycle documents to stored rules and back: what is refused and how.

#![allow(clippy::unwrap_used)]

use s3s::dto::{LifecycleRuleAndOperator, NoncurrentVersionTransition, Tag, Transition};
use s3s::S3ErrorCode;

use super::*;

fn rule(id: &str) -> Rule {
    Rule {
        id: Some(id.into()),
        status: ExpirationStatus::from_static(ExpirationStatus::ENABLED),
        filter: Some(LifecycleRuleFilter {
            prefix: Some("logs/".into()),
            ..Default::default()
        }),
        expiration: Some(LifecycleExpiration {
            days: Some(30),
            ..Default::default()
        }),
        abort_incomplete_multipart_upload: None,
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}

fn conf(rules: Vec<Rule>) -> BucketLifecycleConfiguration {
    BucketLifecycleConfiguration { rules }
}

fn code(rules: Vec<Rule>) -> S3ErrorCode {
    config_from(&conf(rules)).unwrap_err().code().clone()
}

#[test]
fn a_configuration_round_trips() {
    let keep = Rule {
        id: Some("keep3".into()),
        filter: None,
        prefix: Some(String::new()),
        expiration: None,
        noncurrent_version_expiration: Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(3),
        }),
        abort_incomplete_multipart_upload: Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(2),
        }),
        ..rule("x")
    };
    let marker = Rule {
        id: Some("m".into()),
        expiration: Some(LifecycleExpiration {
            expired_object_delete_marker: Some(true),
            ..Default::default()
        }),
        ..rule("x")
    };
    let given = vec![rule("a"), keep, marker];
    let c = config_from(&conf(given.clone())).unwrap();
    assert_eq!(c.rules[1].newer_noncurrent_versions, Some(3));
    let back: Vec<Rule> = c.rules.iter().map(rule_to).collect();
    assert_eq!(back, given);
}

#[test]
fn what_stratus_does_not_do_is_refused_not_dropped() {
    let t = Rule {
        transitions: Some(vec![Transition {
            days: Some(30),
            ..Default::default()
        }]),
        ..rule("t")
    };
    assert_eq!(code(vec![t]), S3ErrorCode::NotImplemented);
    let nt = Rule {
        noncurrent_version_transitions: Some(vec![NoncurrentVersionTransition::default()]),
        ..rule("t")
    };
    assert_eq!(code(vec![nt]), S3ErrorCode::NotImplemented);
    let date = Rule {
        expiration: Some(LifecycleExpiration {
            date: Some(s3s::dto::Timestamp::from(std::time::SystemTime::UNIX_EPOCH)),
            ..Default::default()
        }),
        ..rule("d")
    };
    assert_eq!(code(vec![date]), S3ErrorCode::NotImplemented);
    let tag = Tag {
        key: Some("k".into()),
        value: Some("v".into()),
    };
    let by_tag = Rule {
        filter: Some(LifecycleRuleFilter {
            tag: Some(tag.clone()),
            ..Default::default()
        }),
        ..rule("tag")
    };
    assert_eq!(code(vec![by_tag]), S3ErrorCode::NotImplemented);
    let and_tag = Rule {
        filter: Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("p".into()),
                tags: Some(vec![tag]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rule("and")
    };
    assert_eq!(code(vec![and_tag]), S3ErrorCode::NotImplemented);
    let by_size = Rule {
        filter: Some(LifecycleRuleFilter {
            object_size_greater_than: Some(10),
            ..Default::default()
        }),
        ..rule("size")
    };
    assert_eq!(code(vec![by_size]), S3ErrorCode::NotImplemented);
}

#[test]
fn malformed_and_invalid_rules_get_s3_codes() {
    let status = Rule {
        status: ExpirationStatus::from("enabled".to_owned()),
        ..rule("s")
    };
    assert_eq!(code(vec![status]), S3ErrorCode::MalformedXML);
    assert_eq!(
        code(vec![rule("a"), rule("a")]),
        S3ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(vec![rule(&"i".repeat(256))]),
        S3ErrorCode::InvalidArgument
    );
    assert_eq!(code(vec![]), S3ErrorCode::MalformedXML);
    let many: Vec<Rule> = (0..=MAX_RULES).map(|i| rule(&i.to_string())).collect();
    assert_eq!(code(many), S3ErrorCode::InvalidArgument);
    let zero = Rule {
        expiration: Some(LifecycleExpiration {
            days: Some(0),
            ..Default::default()
        }),
        ..rule("z")
    };
    assert_eq!(code(vec![zero]), S3ErrorCode::InvalidArgument);
    let both = Rule {
        prefix: Some("p".into()),
        ..rule("b")
    };
    assert_eq!(code(vec![both]), S3ErrorCode::MalformedXML);
    let none = Rule {
        filter: None,
        ..rule("n")
    };
    assert_eq!(code(vec![none]), S3ErrorCode::MalformedXML);
    let no_action = Rule {
        expiration: None,
        ..rule("n")
    };
    assert_eq!(code(vec![no_action]), S3ErrorCode::MalformedXML);
    // Rules without an id get distinct ones.
    let anon = || Rule {
        id: None,
        ..rule("")
    };
    let c = config_from(&conf(vec![anon(), rule("rule-1"), anon()])).unwrap();
    let ids: Vec<&str> = c.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["rule-2", "rule-1", "rule-3"]);
}
