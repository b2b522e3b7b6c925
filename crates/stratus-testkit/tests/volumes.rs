//! Container volumes kept in the object store, on an in-process cluster: a
//! service writes into a bucket-backed volume on one node, is stopped, and a
//! new instance on another node finds the data; the archive is an object of
//! the bucket; replicas serve a volume only to nodes that run a workload
//! declaring it.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use stratus_control::Control;
use stratus_flist::build::busybox_image;
use stratus_proto::{Request, Response};
use stratus_state::objects::{Bucket, DedupeScope, StoreCommand, Versioning};
use stratus_state::{Command, Instance, InstanceState};
use stratus_store::ImportReport;
use stratus_testkit::{instances, wait_storage_secret, wait_until, Cluster, Options};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};

const BUCKET: &str = "vol-data";
const KEY: &str = "volumes/db/data.tar";

/// One replica and three agents (sites site-0, site-1, site-2) that store
/// pieces and run containers.
async fn cluster() -> Result<(Cluster, Control)> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    Ok((cluster, c))
}

async fn import_busybox(cluster: &Cluster) -> Result<ImportReport> {
    let dir = tempfile::tempdir()?;
    let tar = dir.path().join("image.tar");
    busybox_image(Path::new("/bin/busybox")).write_docker_save(&tar, "busybox:latest")?;
    Ok(cluster
        .store(0)?
        .import_image(ADMIN_TENANT, tar, Some("busybox"))
        .await?)
}

async fn deploy(c: &Control, r: &ImportReport, yaml: &str) -> Result<String> {
    stratus_testkit::deploy(c, yaml, r.image.pinned().to_string()).await
}

/// The `db` service pinned to `site`, with a volume kept in the bucket.
fn db_spec(site: &str, script: &str) -> String {
    format!(
        "version: 1\nname: db\nkind: service\nconstraints: {{ site: {site} }}\n\
         image:\n  name: busybox\n  volumes: [{{ name: data, path: /data, bucket: {BUCKET} }}]\n\
         args: [sh, -c, '{script}']\n"
    )
}

/// Waits for a running instance of `workload` whose output contains
/// `want`; returns it and the output.
async fn output_with(c: &Control, workload: &str, want: &str) -> Result<(Instance, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        for i in instances(c, workload) {
            if i.state != InstanceState::Running {
                continue;
            }
            if let Ok((_, out)) = c.read_logs(&i.id, 0).await {
                let out = String::from_utf8_lossy(&out).into_owned();
                if out.contains(want) {
                    return Ok((i, out));
                }
            }
        }
        if std::time::Instant::now() > deadline {
            let all: Vec<_> = instances(c, workload)
                .into_iter()
                .map(|i| format!("{} {:?} {:?}", i.id, i.state, i.events))
                .collect();
            bail!("no instance of {workload} printed {want:?}: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(c: &Control, workload: &str) -> Result<()> {
    c.write(Command::StopWorkload {
        id: workload.into(),
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    wait_until("the workload to stop", Duration::from_secs(60), || async {
        instances(c, workload)
            .iter()
            .all(|i| i.state == InstanceState::Stopped)
            .then_some(())
    })
    .await
}

/// The latest version of the volume's archive: (version id, files in it).
async fn archive(cluster: &Cluster) -> Result<(String, Vec<(String, Vec<u8>)>)> {
    let (v, mut stream) = cluster
        .store(0)?
        .get(ADMIN_TENANT, BUCKET, KEY, None, None)
        .await?;
    let mut bytes = Vec::new();
    while let Some(b) = stream.next().await {
        bytes.extend_from_slice(&b?);
    }
    assert_eq!(bytes.len() as u64, v.size);
    let mut files = Vec::new();
    let mut a = tar::Archive::new(&bytes[..]);
    for e in a.entries()? {
        let mut e = e?;
        let path = e.path()?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        files.push((path, data));
    }
    Ok((v.version_id, files))
}

/// Asks the replica for the volume as node `dir`'s identity (an agent's
/// data folder) would.
async fn ask_as(cluster: &Cluster, dir: &Path, req: Request) -> Result<Response> {
    let identity = stratus_net::Identity::load_or_create(dir)?;
    let ep = stratus_net::Endpoint::dial_only(&identity, "127.0.0.1:0".parse()?).await?;
    let addr = cluster.cfg.control_addrs()?[0].parse()?;
    let conn = ep.connect(addr, None).await?;
    let r = conn
        .call::<_, Response>(&req, Duration::from_secs(30))
        .await?;
    Ok(r)
}

fn get_volume(bucket: &str, key: &str) -> Request {
    Request::GetVolume {
        tenant: ADMIN_TENANT.into(),
        bucket: bucket.into(),
        key: key.into(),
        version: None,
        offset: 0,
        len: 1 << 20,
    }
}

fn assert_forbidden(r: Response) {
    match r {
        Response::Error {
            code: ErrorCode::Forbidden,
            ..
        } => {}
        other => panic!("expected forbidden, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_volume_follows_its_workload_to_another_node() -> Result<()> {
    let (cluster, c) = cluster().await?;
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: BUCKET.into(),
            tenant: ADMIN_TENANT.into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Enabled,
            created_ms: stratus_control::now_ms(),
        },
    }))
    .await?;
    let image = import_busybox(&cluster).await?;
    let node = |j: usize| cluster.agent_id(j);

    // On site-0 (agent 0): write into the volume, then keep running.
    let id = deploy(
        &c,
        &image,
        &db_spec(
            "site-0",
            "echo hello-from-site-0 > /data/greeting; busybox mkdir -p /data/sub; busybox chmod 700 /data/sub; \
             busybox ln -s ../greeting /data/sub/link; echo written; exec sleep 3600",
        ),
    )
    .await?;
    let (first, out) = output_with(&c, &id, "written").await?;
    assert_eq!(first.node, node(0)?, "{out}");

    // The replica serves the volume to agent 0, which runs the workload
    // (nothing saved yet: no object) ...
    match ask_as(&cluster, &cluster.agent_dir(0), get_volume(BUCKET, KEY)).await? {
        Response::VolumeData { version: None, .. } => {}
        other => panic!("expected an empty volume, got {other:?}"),
    }
    // ... but not another key of the bucket, even to that node ...
    assert_forbidden(
        ask_as(
            &cluster,
            &cluster.agent_dir(0),
            get_volume(BUCKET, "volumes/other.tar"),
        )
        .await?,
    );
    // ... and not to agent 2, a registered node that runs no such workload.
    let identity2 = stratus_net::Identity::load_or_create(&cluster.agent_dir(2))?;
    assert_eq!(identity2.node_id(), node(2)?);
    assert_forbidden(ask_as(&cluster, &cluster.agent_dir(2), get_volume(BUCKET, KEY)).await?);
    assert_forbidden(
        ask_as(
            &cluster,
            &cluster.agent_dir(2),
            Request::PutVolume {
                tenant: ADMIN_TENANT.into(),
                bucket: BUCKET.into(),
                key: KEY.into(),
                step: stratus_proto::VolumePut::Begin,
            },
        )
        .await?,
    );

    // Stopping the service saves the volume into the bucket.
    stop(&c, &id).await?;
    let (v1, files) = archive(&cluster).await?;
    let greeting = files
        .iter()
        .find(|(p, _)| p == "greeting")
        .ok_or_else(|| anyhow!("no greeting in the archive: {files:?}"))?;
    assert_eq!(greeting.1, b"hello-from-site-0\n");
    // The marker sits next to agent 0's copy, not inside it.
    let vol0 = cluster.agent_dir(0).join("agent/oci/volumes/admin_db/data");
    assert!(vol0.join("greeting").exists());
    assert!(vol0.with_file_name("data.version").exists());
    assert!(!vol0.join("data.version").exists());

    // Now agent 0 runs nothing with the volume: refused.
    assert_forbidden(ask_as(&cluster, &cluster.agent_dir(0), get_volume(BUCKET, KEY)).await?);

    // On site-1 (agent 1, which never held the volume): the data is there,
    // with its symlink and modes, and the service adds to it.
    deploy(
        &c,
        &image,
        &db_spec(
            "site-1",
            "cat /data/greeting; echo link=$(busybox readlink /data/sub/link) mode=$(busybox stat -c %a /data/sub); \
             echo appended-on-site-1 >> /data/greeting; echo written; exec sleep 3600",
        ),
    )
    .await?;
    let (second, out) = output_with(&c, &id, "written").await?;
    assert_eq!(second.node, node(1)?, "{out}");
    assert!(out.contains("hello-from-site-0\n"), "{out}");
    assert!(out.contains("link=../greeting mode=700"), "{out}");
    stop(&c, &id).await?;
    let (v2, files) = archive(&cluster).await?;
    assert_ne!(v1, v2, "stopping the second instance saved a new version");
    let greeting = files.iter().find(|(p, _)| p == "greeting").unwrap();
    assert_eq!(greeting.1, b"hello-from-site-0\nappended-on-site-1\n");
    let versions = cluster
        .store(0)?
        .state(|s| Some(s.store.versions(BUCKET, KEY).len()).filter(|n| *n > 0));
    assert_eq!(versions, Some(2), "one version per save");

    // A read-only volume of another workload on the same object: restored
    // on agent 2, which may read it but not write it.
    let reader = deploy(
        &c,
        &image,
        &format!(
            "version: 1\nname: reader\nkind: service\nconstraints: {{ site: site-2 }}\n\
             image:\n  name: busybox\n  volumes: [{{ name: seed, path: /seed, bucket: {BUCKET}, key: {KEY}, read_only: true }}]\n\
             args: [sh, -c, 'cat /seed/greeting; echo read; exec sleep 3600']\n"
        ),
    )
    .await?;
    let (third, out) = output_with(&c, &reader, "read").await?;
    assert_eq!(third.node, node(2)?);
    assert!(
        out.contains("hello-from-site-0\nappended-on-site-1\n"),
        "{out}"
    );
    assert!(matches!(
        ask_as(&cluster, &cluster.agent_dir(2), get_volume(BUCKET, KEY)).await?,
        Response::VolumeData {
            version: Some(_),
            ..
        }
    ));
    assert_forbidden(
        ask_as(
            &cluster,
            &cluster.agent_dir(2),
            Request::PutVolume {
                tenant: ADMIN_TENANT.into(),
                bucket: BUCKET.into(),
                key: KEY.into(),
                step: stratus_proto::VolumePut::Begin,
            },
        )
        .await?,
    );
    stop(&c, &reader).await?;
    let after = cluster
        .store(0)?
        .state(|s| Some(s.store.versions(BUCKET, KEY).len()).filter(|n| *n > 0));
    assert_eq!(after, Some(2), "a read-only volume is never saved");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_in_a_missing_bucket_fails_the_start_clearly() -> Result<()> {
    let (cluster, c) = cluster().await?;
    let image = import_busybox(&cluster).await?;
    let id = deploy(
        &c,
        &image,
        "version: 1\nname: lost\nkind: task\nimage:\n  name: busybox\n  \
         volumes: [{ name: data, path: /data, bucket: no-such-bucket }]\n\
         args: [sh, -c, 'echo ran']\nrestart: { attempts: 0 }\n",
    )
    .await?;
    let i = wait_until("the task to fail", Duration::from_secs(120), || async {
        instances(&c, &id)
            .into_iter()
            .find(|i| matches!(i.state, InstanceState::Failed { .. }))
    })
    .await?;
    match &i.state {
        InstanceState::Failed { reason, .. } => assert!(
            reason.contains("volume data: bucket no-such-bucket does not exist"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_synced_volume_survives_the_loss_of_its_node() -> Result<()> {
    // Four storage nodes, so writes still find three after one is lost.
    let mut cluster = Cluster::start(Options::new(1, 4)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 4).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: BUCKET.into(),
            tenant: ADMIN_TENANT.into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Enabled,
            created_ms: stratus_control::now_ms(),
        },
    }))
    .await?;
    let image = import_busybox(&cluster).await?;
    let id = deploy(
        &c,
        &image,
        &format!(
            "version: 1\nname: keeper\nkind: service\ndisconnect: {{ wait_secs: 0, replace: true }}\n\
             image:\n  name: busybox\n  volumes: [{{ name: data, path: /data, bucket: {BUCKET}, sync_secs: 1 }}]\n\
             args: [sh, -c, 'if [ -f /data/count ]; then echo found=$(cat /data/count); fi; \
             echo kept-while-running > /data/count; echo written; exec sleep 3600']\n"
        ),
    )
    .await?;
    let (first, out) = output_with(&c, &id, "written").await?;
    assert!(!out.contains("found="), "{out}");
    // Saved while the container still runs.
    let key = "volumes/keeper/data.tar";
    wait_until("a periodic save", Duration::from_secs(30), || async {
        let store = cluster.store(0).ok()?;
        store.state(|s| s.store.latest(BUCKET, key).map(|_| ()))
    })
    .await?;
    assert!(instances(&c, &id)
        .iter()
        .any(|i| i.id == first.id && i.state == InstanceState::Running && i.restarts == 0));

    // Its node goes away without a word: the replacement elsewhere finds the data.
    let lost = (0..4)
        .find(|&j| cluster.agent_id(j).ok() == Some(first.node))
        .ok_or_else(|| anyhow!("no agent runs {}", first.id))?;
    cluster.stop_agent(lost).await?;
    let (second, out) = output_with(&c, &id, "found=kept-while-running").await?;
    assert_ne!(second.node, first.node, "{out}");
    cluster.shutdown().await;
    Ok(())
}
