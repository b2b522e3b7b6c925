//! Bucket lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration.
//!
//! The rules are checked here as S3 checks them and stored as the bucket's
//! lifecycle document ([`LifecycleConfig`], JSON); the leader's maintenance
//! carries them out (`stratus-store`'s `lifecycle`). What Stratus does not
//! do is refused with `NotImplemented`, never dropped: transitions (there
//! is one storage class), expiration at a `Date`, and filters on object
//! tags or sizes.

use s3s::dto::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, DeleteBucketLifecycleInput,
    DeleteBucketLifecycleOutput, ExpirationStatus, GetBucketLifecycleConfigurationInput,
    GetBucketLifecycleConfigurationOutput, LifecycleExpiration, LifecycleRule as Rule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, PutBucketLifecycleConfigurationInput,
    PutBucketLifecycleConfigurationOutput,
};
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};
use stratus_state::lifecycle::{LifecycleConfig, LifecycleError, LifecycleRule, MAX_RULES};

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

/// The rule's prefix from its `Filter` (or its own `Prefix`).
fn prefix_of(r: &Rule, id: &str) -> S3Result<(String, bool)> {
    match (&r.filter, &r.prefix) {
        (Some(_), Some(_)) => Err(s3_error!(
            MalformedXML,
            "rule {id:?} has both a Filter and a Prefix"
        )),
        (None, Some(p)) => Ok((p.clone(), true)),
        (None, None) => Err(s3_error!(
            MalformedXML,
            "rule {id:?} needs a Filter (or a Prefix)"
        )),
        (Some(f), None) => {
            let LifecycleRuleFilter {
                and,
                object_size_greater_than,
                object_size_less_than,
                prefix,
                tag,
            } = f;
            if tag.is_some() {
                return Err(s3_error!(
                    NotImplemented,
                    "lifecycle rules filtering on object tags are not supported"
                ));
            }
            if object_size_greater_than.is_some() || object_size_less_than.is_some() {
                return Err(s3_error!(
                    NotImplemented,
                    "lifecycle rules filtering on object sizes are not supported"
                ));
            }
            match (and, prefix) {
                (Some(_), Some(_)) => Err(s3_error!(
                    MalformedXML,
                    "rule {id:?}: a Filter holds one of Prefix, Tag or And"
                )),
                (None, p) => Ok((p.clone().unwrap_or_default(), false)),
                (Some(a), None) => {
                    if a.tags.as_ref().is_some_and(|t| !t.is_empty()) {
                        return Err(s3_error!(
                            NotImplemented,
                            "lifecycle rules filtering on object tags are not supported"
                        ));
                    }
                    if a.object_size_greater_than.is_some() || a.object_size_less_than.is_some() {
                        return Err(s3_error!(
                            NotImplemented,
                            "lifecycle rules filtering on object sizes are not supported"
                        ));
                    }
                    Ok((a.prefix.clone().unwrap_or_default(), false))
                }
            }
        }
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
    let (prefix, legacy_prefix) = prefix_of(r, &id)?;
    let mut out = LifecycleRule {
        enabled,
        prefix,
        legacy_prefix,
        ..LifecycleRule::default()
    };
    if let Some(e) = &r.expiration {
        if e.date.is_some() {
            return Err(s3_error!(
                NotImplemented,
                "lifecycle expiration at a Date is not supported; use Days"
            ));
        }
        out.expiration_days = e.days.map(|d| days(&id, "Days", d)).transpose()?;
        out.expired_object_delete_marker = e.expired_object_delete_marker == Some(true);
        if e.days.is_none() && e.expired_object_delete_marker.is_none() {
            return Err(s3_error!(
                MalformedXML,
                "rule {id:?}: Expiration needs Days or ExpiredObjectDeleteMarker"
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
    let expiration = (r.expiration_days.is_some() || r.expired_object_delete_marker).then(|| {
        LifecycleExpiration {
            days: r.expiration_days.map(|d| d as i32),
            expired_object_delete_marker: r.expired_object_delete_marker.then_some(true),
            ..Default::default()
        }
    });
    let (filter, prefix) = if r.legacy_prefix {
        (None, Some(r.prefix.clone()))
    } else {
        let f = LifecycleRuleFilter {
            prefix: Some(r.prefix.clone()),
            ..Default::default()
        };
        (Some(f), None)
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
