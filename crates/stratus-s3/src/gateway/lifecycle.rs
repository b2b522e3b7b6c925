//! Bucket lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration.
//!
//! The rules are checked here as S3 checks them and stored as the bucket's
//! lifecycle document ([`LifecycleConfig`], JSON); the leader's maintenance
//! carries them out (`stratus-store`'s `lifecycle`). What Stratus does not
//! do is refused with `NotImplemented`, never dropped: transitions (there
//! is one storage class). Filters on object tags and sizes and expiration
//! at a `Date` are stored and carried out (`stratus_state::lifecycle_filters`).

use std::collections::BTreeMap;

use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, DeleteBucketLifecycleInput,
    DeleteBucketLifecycleOutput, ExpirationStatus, GetBucketLifecycleConfigurationInput,
    GetBucketLifecycleConfigurationOutput, LifecycleExpiration, LifecycleRule as Rule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
    PutBucketLifecycleConfigurationInput, PutBucketLifecycleConfigurationOutput, Tag,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};
use stratus_state::lifecycle::{LifecycleConfig, LifecycleError, LifecycleRule, MAX_RULES};
use stratus_state::objects::MAX_TAGS;

use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{Backend, BucketConfigKind, KeyStore};

fn refused(e: LifecycleError) -> S3Error {
    let msg = e.to_string();
    match e {
        LifecycleError::NoRules | LifecycleError::NoAction(_) | LifecycleError::NotAConfig(_) => {
            s3_error!(MalformedXML, "{msg}")
        }
        _ => s3_error!(InvalidArgument, "{msg}"),
    }
}

fn days(rule: &str, field: &str, v: i32) -> S3Result<u32> {
    u32::try_from(v).ok().filter(|d| *d > 0).ok_or_else(|| {
        s3_error!(
            InvalidArgument,
            "rule {rule:?}: '{field}' must be a positive integer, not {v}"
        )
    })
}

/// A rule's filter: its prefix (and whether it was the rule's own
/// `Prefix`, S3's older form), the tags and size bounds a version must
/// meet, and whether it came as an `And`.
#[derive(Default)]
struct Filter {
    prefix: String,
    legacy: bool,
    tags: BTreeMap<String, String>,
    gt: Option<u64>,
    lt: Option<u64>,
    and: bool,
}

fn size(id: &str, field: &str, v: Option<i64>) -> S3Result<Option<u64>> {
    v.map(|n| {
        u64::try_from(n)
            .map_err(|_| s3_error!(InvalidArgument, "rule {id:?}: {field} must not be negative"))
    })
    .transpose()
}

fn add_tags(f: &mut Filter, id: &str, tags: &[Tag]) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(s3_error!(
            InvalidArgument,
            "rule {id:?}: a filter holds at most {MAX_TAGS} tags"
        ));
    }
    for t in tags {
        let (Some(k), v) = (&t.key, &t.value) else {
            return Err(s3_error!(MalformedXML, "rule {id:?}: a Tag needs a Key"));
        };
        let v = v.clone().unwrap_or_default();
        if f.tags
            .insert(k.clone(), v.clone())
            .is_some_and(|old| old != v)
        {
            return Err(s3_error!(
                InvalidArgument,
                "rule {id:?}: tag {k:?} is given twice with different values"
            ));
        }
    }
    Ok(())
}

/// Both prefixes must hold: the longer one, if one starts with the other.
fn join_prefix(f: &mut Filter, id: &str, p: &str) -> S3Result<()> {
    if p.starts_with(&f.prefix) {
        f.prefix = p.to_owned();
        Ok(())
    } else if f.prefix.starts_with(p) {
        Ok(())
    } else {
        Err(s3_error!(
            InvalidArgument,
            "rule {id:?}: the filter's prefixes {:?} and {p:?} exclude each other",
            f.prefix
        ))
    }
}

/// The rule's filter from its `Filter` (or its own `Prefix`). A `Filter`
/// holding an `And` beside other elements (which AWS refuses and Ceph
/// accepts) is read as the conjunction of them all.
fn filter_of(r: &Rule, id: &str) -> S3Result<Filter> {
    match (&r.filter, &r.prefix) {
        (Some(_), Some(_)) => Err(s3_error!(
            MalformedXML,
            "rule {id:?} has both a Filter and a Prefix"
        )),
        (None, Some(p)) => Ok(Filter {
            prefix: p.clone(),
            legacy: true,
            ..Filter::default()
        }),
        (None, None) => Err(s3_error!(
            MalformedXML,
            "rule {id:?} needs a Filter (or a Prefix)"
        )),
        (Some(lf), None) => {
            let LifecycleRuleFilter {
                and,
                object_size_greater_than,
                object_size_less_than,
                prefix,
                tag,
            } = lf;
            let mut f = Filter {
                prefix: prefix.clone().unwrap_or_default(),
                gt: size(id, "ObjectSizeGreaterThan", *object_size_greater_than)?,
                lt: size(id, "ObjectSizeLessThan", *object_size_less_than)?,
                ..Filter::default()
            };
            if let Some(t) = tag {
                add_tags(&mut f, id, std::slice::from_ref(t))?;
            }
            if let Some(a) = and {
                f.and = true;
                if let Some(p) = &a.prefix {
                    join_prefix(&mut f, id, p)?;
                }
                add_tags(&mut f, id, a.tags.as_deref().unwrap_or_default())?;
                let gt = size(id, "ObjectSizeGreaterThan", a.object_size_greater_than)?;
                let lt = size(id, "ObjectSizeLessThan", a.object_size_less_than)?;
                f.gt = f.gt.max(gt);
                f.lt = match (f.lt, lt) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
            Ok(f)
        }
    }
}

/// An `Expiration` `Date`: midnight UTC, as S3 requires.
fn date_ms(id: &str, d: &s3s::dto::Timestamp) -> S3Result<u64> {
    let t = time::OffsetDateTime::from(d.clone()).to_offset(time::UtcOffset::UTC);
    let midnight = t.hour() == 0 && t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0;
    let ms = u64::try_from(t.unix_timestamp()).ok().map(|s| s * 1000);
    match ms {
        Some(ms) if midnight => Ok(ms),
        _ => Err(s3_error!(
            InvalidArgument,
            "rule {id:?}: 'Date' must be at midnight GMT"
        )),
    }
}

/// One S3 rule as a stored rule (`id` already chosen).
fn rule_from(r: &Rule, id: String) -> S3Result<LifecycleRule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "lifecycle transitions are not supported (Stratus has one storage class)"
        ));
    }
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        other => {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: Status must be Enabled or Disabled, not {other:?}"
            ))
        }
    };
    let f = filter_of(r, &id)?;
    let mut out = LifecycleRule {
        enabled,
        prefix: f.prefix,
        legacy_prefix: f.legacy,
        tags: f.tags,
        size_greater_than: f.gt,
        size_less_than: f.lt,
        filter_and: f.and,
        ..LifecycleRule::default()
    };
    if let Some(e) = &r.expiration {
        out.expiration_date_ms = e.date.as_ref().map(|d| date_ms(&id, d)).transpose()?;
        out.expiration_days = e.days.map(|d| days(&id, "Days", d)).transpose()?;
        out.expired_object_delete_marker = e.expired_object_delete_marker == Some(true);
        if e.days.is_none() && e.date.is_none() && e.expired_object_delete_marker.is_none() {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: Expiration needs Days, Date or ExpiredObjectDeleteMarker"
            ));
        }
    }
    if let Some(n) = &r.noncurrent_version_expiration {
        let d = n.noncurrent_days.ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "rule {id:?}: NoncurrentVersionExpiration needs NoncurrentDays"
            )
        })?;
        out.noncurrent_days = Some(days(&id, "NoncurrentDays", d)?);
        out.newer_noncurrent_versions = n
            .newer_noncurrent_versions
            .map(|v| days(&id, "NewerNoncurrentVersions", v))
            .transpose()?;
    }
    if let Some(a) = &r.abort_incomplete_multipart_upload {
        let d = a.days_after_initiation.ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "rule {id:?}: AbortIncompleteMultipartUpload needs DaysAfterInitiation"
            )
        })?;
        out.abort_upload_days = Some(days(&id, "DaysAfterInitiation", d)?);
    }
    out.id = id;
    Ok(out)
}

/// The S3 configuration as a checked [`LifecycleConfig`]. Rules without an
/// `ID` get one (as S3 does).
pub(crate) fn config_from(c: &BucketLifecycleConfiguration) -> S3Result<LifecycleConfig> {
    if c.rules.len() > MAX_RULES {
        return Err(refused(LifecycleError::TooManyRules(c.rules.len())));
    }
    let given: std::collections::BTreeSet<&str> =
        c.rules.iter().filter_map(|r| r.id.as_deref()).collect();
    let mut next = 0usize;
    let mut rules = Vec::with_capacity(c.rules.len());
    for r in &c.rules {
        let id = match &r.id {
            Some(id) => id.clone(),
            None => loop {
                next += 1;
                let id = format!("rule-{next}");
                if !given.contains(id.as_str()) {
                    break id;
                }
            },
        };
        rules.push(rule_from(r, id)?);
    }
    let config = LifecycleConfig { rules };
    config.validate().map_err(refused)?;
    Ok(config)
}

/// A stored rule as S3 shows it.
fn rule_to(r: &LifecycleRule) -> Rule {
    let expiration = (r.expiration_days.is_some()
        || r.expiration_date_ms.is_some()
        || r.expired_object_delete_marker)
        .then(|| LifecycleExpiration {
            days: r.expiration_days.map(|d| d as i32),
            date: r.expiration_date_ms.and_then(|ms| {
                let secs = i64::try_from(ms / 1000).ok()?;
                time::OffsetDateTime::from_unix_timestamp(secs)
                    .ok()
                    .map(s3s::dto::Timestamp::from)
            }),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
        });
    let (filter, prefix) = if r.legacy_prefix {
        (None, Some(r.prefix.clone()))
    } else {
        (Some(filter_to(r)), None)
    };
    Rule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter,
        prefix,
        expiration,
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: Some(d as i32),
            newer_noncurrent_versions: r.newer_noncurrent_versions.map(|n| n as i32),
        }),
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

/// A stored rule's filter as S3 shows it: one element alone, or an `And`
/// when it was given so or holds more than one condition.
fn filter_to(r: &LifecycleRule) -> LifecycleRuleFilter {
    let tags: Vec<Tag> = r
        .tags
        .iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect();
    let gt = r.size_greater_than.and_then(|n| i64::try_from(n).ok());
    let lt = r.size_less_than.and_then(|n| i64::try_from(n).ok());
    let parts = usize::from(!r.prefix.is_empty())
        + tags.len()
        + usize::from(gt.is_some())
        + usize::from(lt.is_some());
    if r.filter_and || parts > 1 {
        return LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: (!r.prefix.is_empty()).then(|| r.prefix.clone()),
                tags: (!tags.is_empty()).then_some(tags),
                object_size_greater_than: gt,
                object_size_less_than: lt,
            }),
            ..Default::default()
        };
    }
    LifecycleRuleFilter {
        prefix: (tags.is_empty() && gt.is_none() && lt.is_none()).then(|| r.prefix.clone()),
        tag: tags.into_iter().next(),
        object_size_greater_than: gt,
        object_size_less_than: lt,
        ..Default::default()
    }
}

pub(super) async fn put_bucket_lifecycle_configuration<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = req.input;
    let c = input
        .lifecycle_configuration
        .as_ref()
        .ok_or_else(|| s3_error!(MalformedXML, "the request has no LifecycleConfiguration"))?;
    let config = config_from(c)?;
    gw.backend
        .put_bucket_config(
            &tenant,
            &input.bucket,
            BucketConfigKind::Lifecycle,
            Some(config.to_doc()),
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(super) async fn get_bucket_lifecycle_configuration<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let tenant = gw.tenant(&req)?;
    let doc = gw
        .backend
        .get_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::Lifecycle)
        .await
        .map_err(to_s3_error)?
        .ok_or_else(|| s3_error!(NoSuchLifecycleConfiguration))?;
    let config = LifecycleConfig::parse(&doc).map_err(|e| {
        s3_error!(
            InternalError,
            "the stored lifecycle rules are unreadable: {e}"
        )
    })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(config.rules.iter().map(rule_to).collect()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket_lifecycle<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let tenant = gw.tenant(&req)?;
    gw.backend
        .put_bucket_config(
            &tenant,
            &req.input.bucket,
            BucketConfigKind::Lifecycle,
            None,
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
