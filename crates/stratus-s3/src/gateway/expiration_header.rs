//! The `x-amz-expiration` header of PutObject, GetObject and HeadObject:
//! when the bucket's lifecycle rules will expire the object and which rule
//! does (`expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="r"`), as
//! S3 answers it: the first enabled rule whose prefix, tag and size filters
//! the version meets and that expires current versions, at creation plus
//! its days rounded up to the next midnight UTC, or at its date.
//!
//! Informational: it reads the rules as stored; the leader's lifecycle
//! pass (with its own length of a day) is what expires objects.

use stratus_state::lifecycle::LifecycleConfig;
use stratus_state::objects::{KeyScope, ObjectData, ObjectVersion};

use super::Gateway;
use crate::backend::{Backend, BucketConfigKind, KeyStore, ObjectInfo};

const DAY_MS: u64 = 86_400_000;

/// The header value for `info` of `tenant`'s `bucket`, if a rule expires it.
pub(super) async fn expiration<B: Backend, K: KeyStore>(
    gw: &Gateway<B, K>,
    tenant: &str,
    bucket: &str,
    info: &ObjectInfo,
) -> Option<String> {
    let doc = gw
        .backend
        .get_bucket_config(tenant, bucket, BucketConfigKind::Lifecycle)
        .await
        .ok()??;
    let config = LifecycleConfig::parse(&doc).ok()?;
    header_for(&config, info)
}

/// The header for `info` under `config` (see the module docs).
pub(super) fn header_for(config: &LifecycleConfig, info: &ObjectInfo) -> Option<String> {
    if info.is_delete_marker {
        return None;
    }
    // The filters read a version's size (and delete-marker state) only.
    let v = ObjectVersion {
        version_id: String::new(),
        size: info.size,
        etag: String::new(),
        blake3: String::new(),
        created_ms: info.last_modified_ms,
        content_type: None,
        user_meta: Default::default(),
        data: Some(ObjectData {
            scope: KeyScope::Tenant(String::new()),
            chunks: Vec::new(),
        }),
    };
    config
        .rules
        .iter()
        .filter(|r| r.enabled && info.key.starts_with(&r.prefix) && r.matches(&v, &info.tags))
        .find_map(|r| {
            let at = match (r.expiration_days, r.expiration_date_ms) {
                (Some(d), _) => {
                    let due = info
                        .last_modified_ms
                        .saturating_add(u64::from(d).saturating_mul(DAY_MS));
                    // Rounded up to the next midnight UTC.
                    (due / DAY_MS + 1).saturating_mul(DAY_MS)
                }
                (None, Some(t)) => t,
                (None, None) => return None,
            };
            Some(format!(
                "expiry-date=\"{}\", rule-id=\"{}\"",
                http_date(at),
                r.id.replace(['"', '\r', '\n'], "")
            ))
        })
}

fn http_date(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return String::new();
    };
    let day = t.weekday().to_string();
    let month = t.month().to_string();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        day.get(..3).unwrap_or_default(),
        t.day(),
        month.get(..3).unwrap_or_default(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stratus_state::lifecycle::LifecycleRule;

    fn info(key: &str, size: u64, created_ms: u64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            version_id: "null".into(),
            size,
            etag: String::new(),
            last_modified_ms: created_ms,
            content_type: None,
            user_metadata: Default::default(),
            is_delete_marker: false,
            headers: Default::default(),
            tags: Default::default(),
            part_sizes: Vec::new(),
            checksum: None,
            part_checksums: Default::default(),
            customer_seal: None,
            acl: None,
            lock: Default::default(),
        }
    }

    #[test]
    fn the_first_matching_rule_names_the_next_midnight() {
        let config = LifecycleConfig {
            rules: vec![
                LifecycleRule {
                    id: "big".into(),
                    enabled: true,
                    expiration_days: Some(1),
                    size_greater_than: Some(100),
                    ..LifecycleRule::default()
                },
                LifecycleRule {
                    id: "logs".into(),
                    enabled: true,
                    prefix: "logs/".into(),
                    expiration_days: Some(2),
                    ..LifecycleRule::default()
                },
            ],
        };
        // 2012-12-21 10:30 UTC + 2 days, rounded up: 2012-12-24 00:00.
        let created = 1_356_085_800_000;
        assert_eq!(
            header_for(&config, &info("logs/a", 5, created)).as_deref(),
            Some("expiry-date=\"Mon, 24 Dec 2012 00:00:00 GMT\", rule-id=\"logs\"")
        );
        assert_eq!(header_for(&config, &info("other", 5, created)), None);
        assert!(header_for(&config, &info("other", 500, created))
            .is_some_and(|h| h.ends_with("rule-id=\"big\"")));
    }
}
