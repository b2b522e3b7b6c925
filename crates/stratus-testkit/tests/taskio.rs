//! A WASM task's `/input` and `/output` on an in-process cluster (issue 13,
//! "no spec field reaches the host"): `/input` holds objects of the
//! workload's own tenant, fetched by the node; another tenant cannot name
//! them; `/output` is stored in the tenant's bucket when the task ends, and
//! a task that writes past `resources.disk_mb` is stopped and fails.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures::StreamExt;
use stratus_control::Control;
use stratus_proto::{Request, Response};
use stratus_state::objects::{Bucket, DedupeScope, StoreCommand, Versioning};
use stratus_state::{Command, Instance, InstanceState};
use stratus_store::PutMeta;
use stratus_testkit::{instances, wait_storage_secret, wait_until, Cluster, Options};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};

const IOCAT: &str = include_str!("../../../examples/wasm/iocat.wat");
const OTHER: &str = "mallory";

async fn create_bucket(c: &Control, tenant: &str, name: &str) -> Result<()> {
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: name.into(),
            tenant: tenant.into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Unversioned,
            created_ms: stratus_control::now_ms(),
        },
    }))
    .await?;
    Ok(())
}

async fn put(cluster: &Cluster, bucket: &str, key: &str, data: &[u8]) -> Result<()> {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(data))]);
    cluster
        .store(0)?
        .put(ADMIN_TENANT, bucket, key, PutMeta::default(), body)
        .await?;
    Ok(())
}

async fn get(cluster: &Cluster, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let (_, mut stream) = cluster
        .store(0)?
        .get(ADMIN_TENANT, bucket, key, None, None)
        .await?;
    let mut bytes = Vec::new();
    while let Some(b) = stream.next().await {
        bytes.extend_from_slice(&b?);
    }
    Ok(bytes)
}

/// Deploys `yaml` for `tenant`, running the iocat guest.
async fn deploy(c: &Control, tenant: &str, yaml: &str) -> Result<String> {
    let bytes = IOCAT.as_bytes().to_vec();
    let module = stratus_testkit::put_module(c, tenant, bytes).await?;
    let spec = stratus_spec::parse(yaml, stratus_spec::Format::Yaml).map_err(|e| anyhow!("{e}"))?;
    let name = spec.name.clone();
    c.write(Command::DeployWorkload {
        tenant: tenant.into(),
        spec: Box::new(spec),
        module,
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    Ok(format!("{tenant}/{name}"))
}

/// Waits for the single instance of `workload` to end.
async fn ended(c: &Control, workload: &str) -> Result<Instance> {
    wait_until(
        &format!("{workload} to end"),
        Duration::from_secs(60),
        || async {
            instances(c, workload)
                .into_iter()
                .find(|i| i.state.is_terminal())
        },
    )
    .await
}

/// Asks the replica as node `dir`'s identity (an agent's data folder).
async fn ask_as(cluster: &Cluster, dir: &Path, req: Request) -> Result<Response> {
    let identity = stratus_net::Identity::load_or_create(dir)?;
    let ep = stratus_net::Endpoint::dial_only(&identity, "127.0.0.1:0".parse()?).await?;
    let addr = cluster.cfg.control_addrs()?[0].parse()?;
    let conn = ep.connect(addr, None).await?;
    Ok(conn
        .call::<_, Response>(&req, Duration::from_secs(30))
        .await?)
}

fn get_input(tenant: &str, key: &str) -> Request {
    Request::GetInput {
        tenant: tenant.into(),
        bucket: "task-in".into(),
        key: key.into(),
        version: None,
        offset: 0,
        len: 1 << 20,
    }
}

fn is_forbidden(r: &Response) -> bool {
    matches!(
        r,
        Response::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_reads_its_tenants_objects_and_stores_its_output() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    c.write(Command::CreateTenant {
        name: OTHER.into(),
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    create_bucket(&c, ADMIN_TENANT, "task-in").await?;
    create_bucket(&c, ADMIN_TENANT, "task-out").await?;
    put(&cluster, "task-in", "jobs/a.txt", b"alpha\n").await?;
    put(&cluster, "task-in", "jobs/sub/b.txt", b"beta\n").await?;
    put(&cluster, "task-in", "secret.txt", b"not under the prefix\n").await?;

    // The tenant's task reads its objects as /input files and its
    // /output lands in its bucket.
    let id = deploy(
        &c,
        ADMIN_TENANT,
        "version: 1\nname: cat\nkind: task\nwasm: { module: iocat.wat }\nargs: [a.txt, sub/b.txt]\n\
         input: { bucket: task-in, prefix: jobs/ }\noutput: { bucket: task-out, prefix: results/ }\n\
         restart: { attempts: 0 }\n",
    )
    .await?;
    let done = ended(&c, &id).await?;
    let (_, out) = c.read_logs(&done.id, 0).await?;
    assert_eq!(
        done.state,
        InstanceState::Completed,
        "{:?} {}",
        done.events,
        String::from_utf8_lossy(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out), "alpha\nbeta\n");
    assert_eq!(
        get(&cluster, "task-out", "results/result.txt").await?,
        b"alpha\nbeta\n"
    );
    assert!(
        done.events.iter().any(|e| e.kind == "output"),
        "{:?}",
        done.events
    );
    // The instance has ended: no node may read the input any more, nor
    // store output; keys outside the declared prefix never could be.
    for j in 0..3 {
        let dir = cluster.agent_dir(j);
        let r = ask_as(&cluster, &dir, get_input(ADMIN_TENANT, "jobs/a.txt")).await?;
        assert!(is_forbidden(&r), "agent {j}: {r:?}");
        let r = ask_as(&cluster, &dir, get_input(ADMIN_TENANT, "secret.txt")).await?;
        assert!(is_forbidden(&r), "agent {j}: {r:?}");
        let r = ask_as(
            &cluster,
            &dir,
            Request::PutOutput {
                tenant: ADMIN_TENANT.into(),
                bucket: "task-out".into(),
                key: "results/x".into(),
                step: stratus_proto::VolumePut::Begin,
            },
        )
        .await?;
        assert!(is_forbidden(&r), "agent {j}: {r:?}");
    }

    // Another tenant names the first tenant's bucket as its input: the
    // task fails before it starts, and reads nothing.
    let stolen = deploy(
        &c,
        OTHER,
        "version: 1\nname: steal\nkind: task\nwasm: { module: iocat.wat }\nargs: [a.txt]\n\
         input: { bucket: task-in, prefix: jobs/ }\noutput: true\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let i = ended(&c, &stolen).await?;
    match &i.state {
        InstanceState::Failed { reason, .. } => {
            assert!(reason.contains("another tenant"), "{reason}")
        }
        other => panic!("the other tenant's task did not fail: {other:?}"),
    }
    let (_, out) = c.read_logs(&i.id, 0).await.unwrap_or_default();
    assert!(!String::from_utf8_lossy(&out).contains("alpha"));
    // Nor can a node running the other tenant's workload claim to be the
    // first tenant.
    let r = ask_as(
        &cluster,
        &cluster.agent_dir(0),
        get_input(OTHER, "jobs/a.txt"),
    )
    .await?;
    assert!(!matches!(r, Response::VolumeData { .. }), "{r:?}");

    // A task that writes past resources.disk_mb is stopped and fails
    // with a reason that says so.
    let fill = deploy(
        &c,
        ADMIN_TENANT,
        "version: 1\nname: fill\nkind: task\nwasm: { module: iocat.wat }\nargs: [fill]\n\
         output: true\nresources: { disk_mb: 1 }\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let i = ended(&c, &fill).await?;
    match &i.state {
        InstanceState::Failed { reason, .. } => {
            // How far past the limit the guest got before it was stopped.
            eprintln!("over-writing task: {reason}");
            assert!(
                reason.contains("/output holds") && reason.contains("limit 1 MiB"),
                "{reason}"
            )
        }
        other => panic!("the over-writing task did not fail: {other:?}"),
    }
    cluster.shutdown().await;
    Ok(())
}
