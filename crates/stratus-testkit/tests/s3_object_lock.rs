//! Object lock on an in-process cluster, played with a real S3 client
//! (boto3, `tests/object_lock_s3.py`): an owner who tries to delete locked
//! versions, to shorten a COMPLIANCE retention, and a lifecycle rule (one
//! pass of the leader's worker, a lifecycle day lasting 1 ms) that would
//! expire locked versions.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::Result;
use stratus_testkit::Options;

const AGENTS: usize = 4;

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

async fn boto3(endpoint: &str, keys: &[&(String, String)], phase: &str) -> Result<()> {
    support::boto3_phase("object_lock_s3.py", endpoint, keys, phase).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locked_versions_survive_their_owner_and_lifecycle_rules() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = true;
    opts.store.lifecycle_day = Duration::from_millis(1);
    opts.store.lifecycle_interval = Duration::from_secs(3600);
    let cluster = start_s3_cluster(opts).await?;
    let c = cluster.control(0)?;
    let a = create_key(&cluster, "tenant-a").await?;
    let b = create_key(&cluster, "tenant-b").await?;
    let endpoint = cluster.s3_url(0)?;
    boto3(&endpoint, &[&a, &b], "setup").await?;
    let count = |key: &'static str| {
        c.state()
            .read(move |s| s.store.versions("ol-vault", key).len())
    };
    assert_eq!(count("doc"), 2);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = cluster.store(0)?.lifecycle_once().await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    // `doc`: its COMPLIANCE version stays, its current one gets a marker.
    assert_eq!(count("doc"), 3, "{report:?}");
    boto3(&endpoint, &[&a, &b], "check").await?;
    cluster.shutdown().await;
    Ok(())
}
