//! What the S3 cluster tests share (included with `#[path]` by the
//! `s3*.rs` tests): a cluster with storage nodes, two tenants and an object
//! store ready for writes, access keys made through the API, and the runner
//! of the boto3 scripts that play a phase of a test.

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

/// Runs phase `phase` of the boto3 script `tests/{script}` against
/// `endpoint` with `keys` (access key and secret of each tenant), printing
/// what it said; fails if the script does.
#[allow(dead_code)] // not every test that includes this module runs a script
pub async fn boto3_phase(
    script: &str,
    endpoint: &str,
    keys: &[&(String, String)],
    phase: &str,
) -> Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let mut args = vec![endpoint.to_owned()];
    for (ak, sk) in keys {
        args.push(ak.clone());
        args.push(sk.clone());
    }
    args.push(phase.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg(path)
            .args(&args)
            .output()
    })
    .await??;
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the boto3 script {script} failed in its {phase} phase");
    }
    Ok(())
}
