//! Lifecycle rules on an in-process cluster, set and checked with a real
//! S3 client (boto3, `tests/lifecycle_s3.py`), carried out by one pass of
//! the leader's lifecycle worker (a lifecycle day lasts 1 ms here), and
//! shown by `GET /v1/storage` (what `stratus storage status` prints).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::Result;
use stratus_control::now_ms;
use stratus_state::Command;
use stratus_testkit::{Cluster, Options};

const AGENTS: usize = 4;

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

async fn boto3(endpoint: &str, keys: &[&(String, String)], phase: &str) -> Result<()> {
    support::boto3_phase("lifecycle_s3.py", endpoint, keys, phase).await
}

/// The acceptance: a rule keeping 3 noncurrent versions trims a key
/// with 10 versions to 4 within one maintenance pass; with it, current
/// versions expire behind a marker, an expired marker goes, an old upload
/// is aborted, and no other bucket (of the tenant or another) is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_lifecycle_pass_trims_versions_markers_and_uploads() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = true;
    opts.store.lifecycle_day = Duration::from_millis(1);
    // Passes are driven by the test.
    opts.store.lifecycle_interval = Duration::from_secs(3600);
    let cluster = start_s3_cluster(opts).await?;
    let c = cluster.control(0)?;
    let a = create_key(&cluster, "tenant-a").await?;
    let b = create_key(&cluster, "tenant-b").await?;
    let endpoint = cluster.s3_url(0)?;
    boto3(&endpoint, &[&a, &b], "setup").await?;
    let count = |bucket: &'static str| c.state().read(move |s| s.store.versions(bucket, "k").len());
    assert_eq!(count("lc-rules"), 10);

    // Let a "day" (1 ms) pass, then one pass on the leader.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = cluster.store(0)?.lifecycle_once().await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.buckets, 1, "only lc-rules has rules: {report:?}");
    assert_eq!(report.versions_expired, 6 + 1, "6 of k, tmp/x: {report:?}");
    assert_eq!(report.markers_removed, 1, "{report:?}");
    assert_eq!(report.uploads_aborted, 1, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(count("lc-rules"), 4);
    assert_eq!(count("lc-plain"), 10);
    assert_eq!(count("lc-other"), 10);
    boto3(&endpoint, &[&a, &b], "check").await?;

    // A second pass finds nothing more to do.
    let again = cluster.store(0)?.lifecycle_once().await;
    assert_eq!(
        (
            again.versions_expired,
            again.markers_removed,
            again.uploads_aborted
        ),
        (0, 0, 0),
        "{again:?}"
    );

    // `stratus storage status` shows the last pass.
    let status: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/storage", cluster.api_url(0)?))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await?
        .json()
        .await?;
    let l = &status["worker"]["lifecycle"];
    // k and tmp/x are left (dm/x went in the first pass).
    assert_eq!(l["keys"], serde_json::json!(2), "{status}");
    assert_eq!(l["versions_expired"], serde_json::json!(0), "{status}");
    assert!(l["at_ms"].as_u64().unwrap_or(0) >= report.at_ms, "{status}");
    cluster.shutdown().await;
    Ok(())
}

/// Passes are bounded: with 2 keys per pass, the pass stops and the next
/// one resumes where it stopped, until every key was seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounded_pass_resumes_where_it_stopped() -> Result<()> {
    use stratus_state::bucket_configs::BucketConfigKind;
    use stratus_state::lifecycle::{LifecycleConfig, LifecycleRule};
    use stratus_state::objects::{Bucket, DedupeScope, StoreCommand, Versioning};

    let mut opts = Options::new(1, 0);
    opts.storage_capacity = 0;
    opts.store.lifecycle_day = Duration::from_millis(1);
    opts.store.lifecycle_interval = Duration::from_secs(3600);
    opts.store.lifecycle_keys_per_pass = 2;
    let cluster = Cluster::start(opts).await?;
    let c = cluster.control(0)?;
    c.write(Command::CreateTenant {
        name: "acme".into(),
        now_ms: now_ms(),
    })
    .await?;
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: "resume".into(),
            tenant: "acme".into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Enabled,
            created_ms: now_ms(),
        },
    }))
    .await?;
    // Five keys whose only version is a delete marker.
    for k in ["a", "b", "c", "d", "e"] {
        c.write(Command::Store(StoreCommand::DeleteObject {
            tenant: "acme".into(),
            bucket: "resume".into(),
            key: k.into(),
            version_id: None,
            now_ms: now_ms(),
        }))
        .await?;
    }
    let rules = LifecycleConfig {
        rules: vec![LifecycleRule {
            id: "markers".into(),
            enabled: true,
            expired_object_delete_marker: true,
            ..LifecycleRule::default()
        }],
    };
    c.write(Command::Store(StoreCommand::SetBucketConfig {
        tenant: "acme".into(),
        bucket: "resume".into(),
        kind: BucketConfigKind::Lifecycle,
        doc: Some(rules.to_doc()),
    }))
    .await?;
    let store = cluster.store(0)?;
    let mut removed = Vec::new();
    let mut passes = 0;
    loop {
        let r = store.lifecycle_once().await;
        passes += 1;
        assert!(r.keys <= 2, "a pass looked at {} keys", r.keys);
        removed.push(r.markers_removed);
        if r.complete || passes > 10 {
            break;
        }
    }
    assert_eq!(removed.iter().sum::<u64>(), 5, "{removed:?}");
    assert!(passes >= 3, "5 keys, 2 per pass: {passes} passes");
    assert!(c.state().read(|s| s.store.bucket_is_empty("resume")));
    cluster.shutdown().await;
    Ok(())
}
