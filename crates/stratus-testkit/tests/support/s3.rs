//! What the S3 cluster tests share (included with `#[path]` by `s3.rs`,
//! `s3_public.rs` and `s3_lifecycle.rs`): a cluster with storage nodes,
//! two tenants and an object store ready for writes, and access keys made
//! through the API.

use anyhow::{bail, Result};
use stratus_control::now_ms;
use stratus_s3::backend::{Backend, PutMeta};
use stratus_s3::StoreBackend;
use stratus_state::Command;
use stratus_testkit::{wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::NodeStatus;

/// The tenants every S3 cluster test starts with.
pub const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];

/// Starts `opts` (whose agents lend storage), creates [`TENANTS`] and waits
/// until a write goes through: piece services accept a replica only once
/// their agent has learned it. The probe bucket is gone again on return.
pub async fn start_s3_cluster(opts: Options) -> Result<Cluster> {
    let agents = opts.agents;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, agents).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    for t in TENANTS {
        c.write(Command::CreateTenant {
            name: t.into(),
            now_ms: now_ms(),
        })
        .await?;
    }
    let b = StoreBackend::new(cluster.store(0)?);
    b.create_bucket(TENANTS[0], "probe-bucket").await?;
    wait_until("piece services", WAIT, || async {
        let body = stratus_s3::testing::chunked(b"probe", 5);
        b.put_object(
            TENANTS[0],
            "probe-bucket",
            "p",
            PutMeta::default(),
            body,
            None,
        )
        .await
        .is_ok()
        .then_some(())
    })
    .await?;
    b.delete_object(TENANTS[0], "probe-bucket", "p", None, None)
        .await?;
    b.delete_bucket(TENANTS[0], "probe-bucket").await?;
    Ok(cluster)
}

/// An S3 access key for `tenant`, made through `POST /v1/s3/keys`.
pub async fn create_key(cluster: &Cluster, tenant: &str) -> Result<(String, String)> {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/s3/keys", cluster.api_url(0)?))
        .bearer_auth(&cluster.admin_token)
        .json(&serde_json::json!({ "tenant": tenant }))
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("POST /v1/s3/keys: {} {}", resp.status(), resp.text().await?);
    }
    let v: serde_json::Value = resp.json().await?;
    assert_eq!(v["tenant"], tenant);
    Ok((
        v["access_key"].as_str().unwrap_or_default().to_owned(),
        v["secret"].as_str().unwrap_or_default().to_owned(),
    ))
}
