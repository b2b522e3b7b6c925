//! The ingress of every replica (issue 17): a WASM HTTP service exposed as
//! a host answers through any replica's ingress, over its node's tunnel
//! links; when a replica is lost, the others still route to it; a stopped
//! workload's host is no longer served; another tenant cannot take the
//! host.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Result};
use stratus_state::{Command, InstanceState};
use stratus_testkit::{funded_tenant, instances, put_module, wait_until, Cluster, Options, WAIT};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMPONENT: &[u8] = include_bytes!("../../../examples/wasm/http.wasm");
const HOST: &str = "hello.example.com";

/// GET `path` of [`HOST`] from `addr` (HTTP/1.0): the whole answer.
async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut out)).await??;
    Ok(out)
}

/// A deploy of `tenant`'s service `name` running `module`, exposed as
/// [`HOST`].
fn exposed(tenant: &str, name: &str, module: String) -> Command {
    let file = stratus_spec::parse_file(
        &format!(
            "version: 1\nname: {name}\nkind: service\nwasm: {{ module: m.wasm }}\n\
             resources: {{ memory_mb: 64 }}\nexpose: {{ http: {{ host: {HOST} }} }}\n"
        ),
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    Command::DeployNetworked {
        deploy: Box::new(Command::DeployWorkload {
            tenant: tenant.into(),
            spec: Box::new(file.spec),
            module,
            now_ms: stratus_control::now_ms(),
        }),
        network: file.network,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_replicas_ingress_reaches_a_wasm_service_and_one_lost_changes_nothing() -> Result<()> {
    let mut opts = Options::new(3, 1);
    opts.storage_capacity = 0;
    let mut cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let module = put_module(&c, ADMIN_TENANT, COMPONENT.to_vec()).await?;
    c.write(exposed(ADMIN_TENANT, "hello", module)).await?;
    wait_until("the service running", WAIT, || async {
        instances(&c, "admin/hello")
            .into_iter()
            .find(|i| i.state == InstanceState::Running)
    })
    .await?;
    let doors: Vec<SocketAddr> = cluster
        .replicas
        .iter()
        .map(|r| r.as_ref().and_then(|r| r.ingress_addr))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("a replica without an ingress"))?;
    for (i, door) in doors.iter().enumerate() {
        let page = wait_until("an answer through the ingress", WAIT, || async {
            get(*door, &format!("/via/{i}"))
                .await
                .ok()
                .filter(|p| p.starts_with("HTTP/1.0 200"))
        })
        .await?;
        assert!(
            page.ends_with(&format!("hello from wasm: GET /via/{i} (host {HOST})\n")),
            "{page}"
        );
    }

    // Another tenant cannot take the host while it is served.
    funded_tenant(&c, "mallory", 1_000_000).await?;
    let theirs = put_module(&c, "mallory", COMPONENT.to_vec()).await?;
    let taken = c.write(exposed("mallory", "phish", theirs)).await;
    let code = taken.err().map(|e| e.code());
    assert_eq!(code, Some(ErrorCode::Conflict));

    // A replica is lost: the others still route to the service.
    cluster.stop_replica(0).await?;
    for door in &doors[1..] {
        let page = wait_until("an answer after a replica was lost", WAIT, || async {
            get(*door, "/after")
                .await
                .ok()
                .filter(|p| p.starts_with("HTTP/1.0 200"))
        })
        .await?;
        assert!(page.contains("hello from wasm: GET /after"), "{page}");
    }

    // Stopped: the host is no longer served.
    let c = cluster.control(1)?;
    c.write(Command::StopWorkload {
        id: "admin/hello".into(),
        now_ms: stratus_control::now_ms(),
    })
    .await?;
    let page = wait_until("the host unserved", WAIT, || async {
        get(doors[1], "/")
            .await
            .ok()
            .filter(|p| p.contains(" 404 "))
    })
    .await?;
    assert!(
        page.contains("no service is exposed as hello.example.com"),
        "{page}"
    );
    cluster.shutdown().await;
    Ok(())
}
