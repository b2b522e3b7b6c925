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
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: Some(k.into()),
        value: Some(v.into()),
    }
}

fn midnight(days: i64) -> s3s::dto::Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp(days * 86_400).unwrap();
    s3s::dto::Timestamp::from(t)
}

/// Tag, size and And filters and an Expiration Date are stored and shown
/// back as given.
#[test]
fn filters_and_dates_round_trip() {
    let date = Rule {
        expiration: Some(LifecycleExpiration {
            date: Some(midnight(17_436)),
            ..Default::default()
        }),
        ..rule("d")
    };
    let by_tag = Rule {
        filter: Some(LifecycleRuleFilter {
            tag: Some(tag("k", "v")),
            ..Default::default()
        }),
        ..rule("tag")
    };
    let and = Rule {
        filter: Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("p".into()),
                tags: Some(vec![tag("a", "1"), tag("b", "2")]),
                object_size_greater_than: Some(10),
                object_size_less_than: Some(20),
            }),
            ..Default::default()
        }),
        ..rule("and")
    };
    let by_size = Rule {
        filter: Some(LifecycleRuleFilter {
            object_size_greater_than: Some(10),
            ..Default::default()
        }),
        ..rule("size")
    };
    let given = vec![date, by_tag, and, by_size];
    let c = config_from(&conf(given.clone())).unwrap();
    assert_eq!(c.rules[0].expiration_date_ms, Some(17_436 * 86_400_000));
    assert_eq!(c.rules[2].tags.len(), 2);
    assert_eq!(c.rules[3].size_greater_than, Some(10));
    let back: Vec<Rule> = c.rules.iter().map(rule_to).collect();
    assert_eq!(back, given);
}

/// Ceph's conjunction of a Filter's Prefix, Tag and And is read as all of
/// them; contradictory prefixes are refused.
#[test]
fn a_filter_with_and_beside_other_elements_is_a_conjunction() {
    let mixed = |and_prefix: &str| Rule {
        filter: Some(LifecycleRuleFilter {
            prefix: Some("days1/".into()),
            tag: Some(tag("tom", "sawyer")),
            and: Some(LifecycleRuleAndOperator {
                prefix: Some(and_prefix.into()),
                tags: Some(vec![tag("huck", "finn")]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rule("m")
    };
    let c = config_from(&conf(vec![mixed("days1")])).unwrap();
    assert_eq!(c.rules[0].prefix, "days1/");
    assert_eq!(c.rules[0].tags.len(), 2);
    assert_eq!(code(vec![mixed("other/")]), S3ErrorCode::InvalidArgument);
}

#[test]
fn bad_filters_and_dates_are_refused() {
    let at = |t: s3s::dto::Timestamp| Rule {
        expiration: Some(LifecycleExpiration {
            date: Some(t),
            ..Default::default()
        }),
        ..rule("d")
    };
    // Not midnight (what a client sends for "20200101": epoch seconds).
    let odd = time::OffsetDateTime::from_unix_timestamp(20_200_101).unwrap();
    assert_eq!(code(vec![at(odd.into())]), S3ErrorCode::InvalidArgument);
    let with_days = Rule {
        expiration: Some(LifecycleExpiration {
            date: Some(midnight(1)),
            days: Some(3),
            ..Default::default()
        }),
        ..rule("dd")
    };
    assert_eq!(code(vec![with_days]), S3ErrorCode::InvalidArgument);
    let eleven: Vec<Tag> = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
    let many = Rule {
        filter: Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                tags: Some(eleven),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..rule("many")
    };
    assert_eq!(code(vec![many]), S3ErrorCode::InvalidArgument);
    let negative = Rule {
        filter: Some(LifecycleRuleFilter {
            object_size_less_than: Some(-1),
            ..Default::default()
        }),
        ..rule("neg")
    };
    assert_eq!(code(vec![negative]), S3ErrorCode::InvalidArgument);
}

/// The largest configuration S3 allows (1000 rules of 10 tags of the
/// longest keys and values) is accepted here but over the stored
/// document limit, which refuses it (InvalidArgument), never truncates it.
#[test]
fn a_configuration_at_the_limits_is_refused_by_the_document_limit() {
    let tags: Vec<Tag> = (0..10)
        .map(|i| tag(&format!("{i}{}", "k".repeat(127)), &"v".repeat(256)))
        .collect();
    let rules: Vec<Rule> = (0..MAX_RULES)
        .map(|i| Rule {
            filter: Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: Some("p".into()),
                    tags: Some(tags.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..rule(&i.to_string())
        })
        .collect();
    let c = config_from(&conf(rules)).unwrap();
    let doc = c.to_doc();
    assert!(crate::backend::check_bucket_config("b", BucketConfigKind::Lifecycle, &doc).is_err());
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
