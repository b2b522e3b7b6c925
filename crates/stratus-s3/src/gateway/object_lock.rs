//! Object lock (WORM) on the wire: Put/GetObjectLockConfiguration,
//! Put/GetObjectRetention, Put/GetObjectLegalHold, the
//! `x-amz-object-lock-*` headers of writes (PutObject, CopyObject,
//! CreateMultipartUpload) and of GET/HEAD answers.
//!
//! The gateway parses and checks the XML and headers (S3's error codes);
//! the rules — who may remove or shorten what, and when — are the
//! backend's, applied atomically with each change (see
//! `stratus_state::object_lock`). Stratus has no per-user IAM: the bucket
//! owner's keys may send `x-amz-bypass-governance-retention`. A write with
//! lock headers is accepted without `Content-MD5` (AWS asks for one or an
//! additional checksum; ceph/s3-tests' clients send neither).

use s3s::dto::{
    self, GetObjectLegalHoldInput, GetObjectLegalHoldOutput, GetObjectLockConfigurationInput,
    GetObjectLockConfigurationOutput, GetObjectRetentionInput, GetObjectRetentionOutput,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
    PutObjectLegalHoldInput, PutObjectLegalHoldOutput, PutObjectLockConfigurationInput,
    PutObjectLockConfigurationOutput, PutObjectRetentionInput, PutObjectRetentionOutput, Timestamp,
};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::convert::timestamp;
use super::errors::to_s3_error;
use super::Gateway;
use crate::backend::{
    Backend, BucketConfigKind, DefaultRetention, KeyStore, LockConfig, LockConfigError, LockMode,
    Retention, VersionLock, Versioning,
};

/// The lock a write asks for with its `x-amz-object-lock-*` headers
/// (`$i`: a put, copy or multipart input), checked.
macro_rules! lock_of {
    ($i:expr) => {
        $crate::gateway::object_lock::requested_lock(
            $i.object_lock_mode.as_ref().map(|m| m.as_str()),
            $i.object_lock_retain_until_date.as_ref(),
            $i.object_lock_legal_hold_status
                .as_ref()
                .map(|s| s.as_str()),
        )
    };
}
pub(super) use lock_of;

/// Sets the `x-amz-object-lock-*` fields of a GET/HEAD output `$out` from
/// the version `$info`.
macro_rules! lock_out {
    ($out:expr, $info:expr) => {
        let (mode, until, hold) = $crate::gateway::object_lock::lock_fields(&$info.lock);
        $out.object_lock_mode = mode;
        $out.object_lock_retain_until_date = until;
        $out.object_lock_legal_hold_status = hold;
    };
}
pub(super) use lock_out;

/// Milliseconds since the Unix epoch of a timestamp (0 before it).
fn ms_of(t: &Timestamp) -> u64 {
    let nanos = time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}

/// Checks the lock headers of a write: mode and date come together, the
/// mode is `GOVERNANCE` or `COMPLIANCE`, the legal hold `ON` or `OFF`.
pub(super) fn requested_lock(
    mode: Option<&str>,
    until: Option<&Timestamp>,
    hold: Option<&str>,
) -> S3Result<VersionLock> {
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(m), Some(t)) => {
            let mode = LockMode::parse(m).ok_or_else(|| {
                s3_error!(InvalidArgument, "unknown x-amz-object-lock-mode {:?}", m)
            })?;
            Some(Retention {
                mode,
                until_ms: ms_of(t),
            })
        }
        _ => {
            return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied"
        ))
        }
    };
    let legal_hold = match hold {
        None => None,
        Some(ObjectLockLegalHoldStatus::ON) => Some(true),
        Some(ObjectLockLegalHoldStatus::OFF) => Some(false),
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-legal-hold must be ON or OFF, not {:?}",
                other
            ))
        }
    };
    Ok(VersionLock {
        retention,
        legal_hold,
    })
}

/// The `x-amz-object-lock-*` answer fields of a version's lock.
pub(super) fn lock_fields(
    lock: &VersionLock,
) -> (
    Option<ObjectLockMode>,
    Option<Timestamp>,
    Option<ObjectLockLegalHoldStatus>,
) {
    let mode = lock
        .retention
        .map(|r| ObjectLockMode::from(r.mode.as_str().to_owned()));
    let until = lock.retention.map(|r| timestamp(r.until_ms));
    let hold = lock
        .legal_hold
        .map(|on| ObjectLockLegalHoldStatus::from(if on { "ON" } else { "OFF" }.to_owned()));
    (mode, until, hold)
}

/// Refuses a write asking for a lock of a bucket without object lock
/// (`InvalidRequest`, as S3), before its body is read; the backend checks
/// again when it commits.
pub(super) async fn check_lock_allowed<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    lock: &VersionLock,
) -> S3Result<()> {
    if lock.retention.is_none() && lock.legal_hold.is_none() {
        return Ok(());
    }
    lock_config(gw, tenant, bucket).await.map(|_| ())
}

/// The bucket's lock configuration; `InvalidRequest` without one.
async fn lock_config<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
) -> S3Result<LockConfig> {
    let doc = gw
        .backend
        .get_bucket_config(tenant, bucket, BucketConfigKind::ObjectLock)
        .await
        .map_err(to_s3_error)?;
    doc.and_then(|d| LockConfig::from_doc(&d).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Bucket is missing Object Lock Configuration"
            )
        })
}

fn malformed(why: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedXML, why.to_owned())
}

/// The lock configuration of a PutObjectLockConfiguration body, checked.
fn config_of(c: Option<&ObjectLockConfiguration>) -> S3Result<LockConfig> {
    let c = c.ok_or_else(|| malformed("the body has no ObjectLockConfiguration"))?;
    match c.object_lock_enabled.as_ref().map(|e| e.as_str()) {
        Some(ObjectLockEnabled::ENABLED) => {}
        _ => return Err(malformed("ObjectLockEnabled must be Enabled")),
    }
    let default = match &c.rule {
        None => None,
        Some(rule) => {
            let d = rule
                .default_retention
                .as_ref()
                .ok_or_else(|| malformed("a Rule needs a DefaultRetention"))?;
            let mode = d
                .mode
                .as_ref()
                .and_then(|m| LockMode::parse(m.as_str()))
                .ok_or_else(|| malformed("Mode must be GOVERNANCE or COMPLIANCE"))?;
            let period = |n: Option<i32>| -> S3Result<Option<u32>> {
                match n {
                    None => Ok(None),
                    Some(n) => u32::try_from(n).map(Some).map_err(|_| invalid_period(n)),
                }
            };
            Some(DefaultRetention {
                mode,
                days: period(d.days)?,
                years: period(d.years)?,
            })
        }
    };
    if let Some(d) = &default {
        d.validate().map_err(|e| match e {
            LockConfigError::Malformed(m) => malformed(&m),
            LockConfigError::InvalidPeriod(m) => invalid_period_msg(m),
        })?;
    }
    Ok(LockConfig {
        enabled: true,
        default,
    })
}

fn invalid_period(n: i32) -> S3Error {
    invalid_period_msg(format!("the retention period must be positive, not {n}"))
}

fn invalid_period_msg(m: String) -> S3Error {
    // Not in s3s's table of codes: AWS answers it with 400.
    let mut e = S3Error::with_message(S3ErrorCode::Custom("InvalidRetentionPeriod".into()), m);
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

pub(super) async fn put_object_lock_configuration<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let config = config_of(input.object_lock_configuration.as_ref())?;
    // AWS enables object lock on an existing bucket only while versioning
    // is enabled (the backend checks again, atomically).
    let versioning = gw
        .backend
        .get_versioning(&tenant, &input.bucket)
        .await
        .map_err(to_s3_error)?;
    if versioning != Some(Versioning::Enabled) {
        return Err(s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        ));
    }
    gw.backend
        .put_bucket_config(
            &tenant,
            &input.bucket,
            BucketConfigKind::ObjectLock,
            Some(config.to_doc()),
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_object_lock_configuration<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let tenant = gw.tenant(&req)?;
    let doc = gw
        .backend
        .get_bucket_config(&tenant, &req.input.bucket, BucketConfigKind::ObjectLock)
        .await
        .map_err(to_s3_error)?;
    let Some(config) = doc.and_then(|d| LockConfig::from_doc(&d).ok()) else {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    };
    let rule = config.default.map(|d| ObjectLockRule {
        default_retention: Some(dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
            days: d.days.and_then(|n| i32::try_from(n).ok()),
            years: d.years.and_then(|n| i32::try_from(n).ok()),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from(
                ObjectLockEnabled::ENABLED.to_owned(),
            )),
            rule,
        }),
    }))
}

pub(super) async fn put_object_retention<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let r = input
        .retention
        .as_ref()
        .ok_or_else(|| malformed("the body has no Retention"))?;
    // An empty Retention lifts it (GOVERNANCE only, with bypass).
    let retention = match (&r.mode, &r.retain_until_date) {
        (None, None) => None,
        (Some(m), Some(t)) => Some(Retention {
            mode: LockMode::parse(m.as_str())
                .ok_or_else(|| malformed("Mode must be GOVERNANCE or COMPLIANCE"))?,
            until_ms: ms_of(t),
        }),
        _ => return Err(malformed("a Retention has both Mode and RetainUntilDate")),
    };
    lock_config(gw, &tenant, &input.bucket).await?;
    gw.backend
        .set_object_retention(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            retention,
            input.bypass_governance_retention.unwrap_or(false),
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

/// The lock of a version (the current one when `version_id` is `None`) of
/// a bucket with object lock: what GetObjectRetention and
/// GetObjectLegalHold read.
async fn version_lock<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    key: &str,
    version_id: &Option<String>,
) -> S3Result<crate::backend::VersionLock> {
    lock_config(gw, tenant, bucket).await?;
    let info = gw
        .backend
        .head_object(tenant, bucket, key, version_id.as_deref())
        .await
        .map_err(to_s3_error)?;
    Ok(info.lock)
}

pub(super) async fn get_object_retention<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let lock = version_lock(gw, &tenant, &input.bucket, &input.key, &input.version_id).await?;
    let Some(r) = lock.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(r.mode.as_str().to_owned())),
            retain_until_date: Some(timestamp(r.until_ms)),
        }),
    }))
}

pub(super) async fn put_object_legal_hold<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let on = match input
        .legal_hold
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .map(|s| s.as_str())
    {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => return Err(malformed("LegalHold Status must be ON or OFF")),
    };
    lock_config(gw, &tenant, &input.bucket).await?;
    gw.backend
        .set_object_legal_hold(
            &tenant,
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            on,
        )
        .await
        .map_err(to_s3_error)?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_object_legal_hold<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let tenant = gw.tenant(&req)?;
    let input = &req.input;
    let lock = version_lock(gw, &tenant, &input.bucket, &input.key, &input.version_id).await?;
    let Some(on) = lock.legal_hold else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a legal hold"
        ));
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from(
                if on { "ON" } else { "OFF" }.to_owned(),
            )),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(
        enabled: &str,
        mode: Option<&str>,
        days: Option<i32>,
        years: Option<i32>,
    ) -> ObjectLockConfiguration {
        ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from(enabled.to_owned())),
            rule: Some(ObjectLockRule {
                default_retention: Some(dto::DefaultRetention {
                    mode: mode.map(|m| ObjectLockRetentionMode::from(m.to_owned())),
                    days,
                    years,
                }),
            }),
        }
    }

    fn code(r: S3Result<LockConfig>) -> String {
        r.expect_err("refused").code().as_str().to_owned()
    }

    #[test]
    fn lock_configurations_are_checked_as_s3() {
        let ok = config_of(Some(&conf("Enabled", Some("GOVERNANCE"), Some(1), None)));
        assert_eq!(ok.expect("valid").default.map(|d| d.days), Some(Some(1)));
        let c = |e, m, d, y| config_of(Some(&conf(e, m, d, y)));
        assert_eq!(
            code(c("Enabled", Some("GOVERNANCE"), Some(1), Some(1))),
            "MalformedXML"
        );
        assert_eq!(
            code(c("Enabled", Some("governance"), None, Some(1))),
            "MalformedXML"
        );
        assert_eq!(code(c("Enabled", None, Some(1), None)), "MalformedXML");
        assert_eq!(
            code(c("Disabled", Some("GOVERNANCE"), Some(1), None)),
            "MalformedXML"
        );
        assert_eq!(
            code(c("Enabled", Some("GOVERNANCE"), Some(0), None)),
            "InvalidRetentionPeriod"
        );
        assert_eq!(
            code(c("Enabled", Some("COMPLIANCE"), None, Some(-1))),
            "InvalidRetentionPeriod"
        );
        assert_eq!(code(config_of(None)), "MalformedXML");
    }

    #[test]
    fn lock_headers_come_together_and_are_checked() {
        let t = timestamp(5_000);
        let l = requested_lock(Some("COMPLIANCE"), Some(&t), Some("ON")).expect("valid");
        assert_eq!(
            l.retention.map(|r| (r.mode, r.until_ms)),
            Some((LockMode::Compliance, 5_000))
        );
        assert_eq!(l.legal_hold, Some(true));
        assert!(requested_lock(Some("COMPLIANCE"), None, None).is_err());
        assert!(requested_lock(None, Some(&t), None).is_err());
        assert!(requested_lock(Some("compliance"), Some(&t), None).is_err());
        assert!(requested_lock(None, None, Some("on")).is_err());
        assert_eq!(
            requested_lock(None, None, None).expect("none"),
            VersionLock::default()
        );
    }
}
