//! Direct connections between nodes (issue 17, hole punching), played with
//! raw QUIC endpoints against a real cluster: a node's endpoint answers
//! nobody it was not introduced to; a replica introduces only a node that
//! runs an instance of the service's tenant; the node it introduces then
//! dials the service's node directly and reaches the service over that
//! connection (no relay, both keys pinned), and nothing else there.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use stratus_net::{Endpoint, Identity};
use stratus_proto::{Request, Response};
use stratus_state::InstanceState;
use stratus_testkit::{code_of, deploy, instances, put_module, wait_until, Cluster, Options, WAIT};
use stratus_types::{ErrorCode, NodeId, NodeStatus, ADMIN_TENANT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMPONENT: &[u8] = include_bytes!("../../../examples/wasm/http.wasm");
const SERVICE: &str = include_str!("../../../examples/wasm/service.wat");
const T: Duration = Duration::from_secs(30);

/// The site attribute of `node` (to pin a workload to it).
fn site_of(c: &stratus_control::Control, node: NodeId) -> String {
    c.state()
        .read(|s| s.nodes.get(&node).map(|n| n.info.attributes.site.clone()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn introduced_nodes_reach_the_tenants_services_directly_and_strangers_nothing() -> Result<()>
{
    let mut opts = Options::new(1, 2);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let (agent0, agent1) = (cluster.agent_id(0)?, cluster.agent_id(1)?);
    // An HTTP component on agent 0; any service of the same tenant on
    // agent 1, which makes agent 1 a node that may reach it.
    let component = put_module(&c, ADMIN_TENANT, COMPONENT.to_vec()).await?;
    let service = put_module(&c, ADMIN_TENANT, SERVICE.as_bytes().to_vec()).await?;
    let hello = deploy(
        &c,
        &format!(
            "version: 1\nname: hello\nkind: service\nwasm: {{ module: m.wasm }}\n\
             resources: {{ memory_mb: 64 }}\nconstraints: {{ site: {} }}\n",
            site_of(&c, agent0)
        ),
        component,
    )
    .await?;
    let svc = deploy(
        &c,
        &format!(
            "version: 1\nname: svc\nkind: service\nwasm: {{ module: service.wat }}\n\
             constraints: {{ site: {} }}\n",
            site_of(&c, agent1)
        ),
        service,
    )
    .await?;
    let running = |w: String, node: NodeId| {
        let c = c.clone();
        async move {
            wait_until("an instance running", WAIT, || async {
                instances(&c, &w)
                    .into_iter()
                    .find(|i| i.state == InstanceState::Running && i.node == node)
                    .map(|i| i.id)
            })
            .await
        }
    };
    let instance = running(hello, agent0).await?;
    running(svc, agent1).await?;

    let replica: SocketAddr = cluster.cfg.control_addrs()?[0].parse()?;
    let agent0_port = cluster.agents[0].as_ref().unwrap().quic_addr.port();
    let agent0_addr = SocketAddr::from(([127, 0, 0, 1], agent0_port));
    let any: SocketAddr = "127.0.0.1:0".parse()?;

    // A stranger dialing agent 0 is not answered at all.
    let stranger = Endpoint::dial_only(&Identity::generate(), any).await?;
    let err = stranger
        .connect(agent0_addr, Some(agent0))
        .await
        .expect_err("a node answers no one it was not introduced to");
    assert!(err.is_transport(), "{err}");
    // ...nor introduced: the replica refuses it as it refuses it a relay.
    let to_replica = stranger.connect(replica, None).await?;
    let punch = Request::Punch {
        instance: instance.clone(),
        local: vec![],
    };
    let r: Response = to_replica.call(&punch, T).await?;
    assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{r:?}");
    // Nobody sends a replica what replicas send nodes.
    let r: Response = to_replica
        .call(
            &Request::PunchOpen {
                from: stranger.node_id(),
                addr: "127.0.0.1:1".into(),
                tenant: ADMIN_TENANT.into(),
                local: vec![],
            },
            T,
        )
        .await?;
    assert_eq!(code_of(&r), Some(ErrorCode::BadRequest), "{r:?}");

    // Agent 1 (its key, from a socket of its own) asks to be introduced,
    // and is told where agent 0's packets come from.
    let a1 = Endpoint::dial_only(&Identity::load_or_create(&cluster.agent_dir(1))?, any).await?;
    let to_replica = a1.connect(replica, None).await?;
    let addr = match to_replica.call(&punch, T).await? {
        Response::Punched { addr, .. } => addr,
        other => bail!("punch: {other:?}"),
    };
    assert_eq!(addr.parse::<SocketAddr>()?.port(), agent0_port, "{addr}");
    // Now agent 0 answers it, with agent 0's key.
    let direct = a1.connect(addr.parse()?, Some(agent0)).await?;
    assert_eq!(direct.remote_id(), agent0);
    let open = |instance: &str| Request::TunnelOpen {
        instance: instance.to_string(),
        port: 80,
        // Claims to be someone else: over a direct connection the key
        // decides who is asking.
        from: stranger.node_id(),
    };
    let (r, mut stream) = direct
        .open_stream::<_, Response>(&open(&instance), T)
        .await?;
    assert!(matches!(r, Response::Ok), "{r:?}");
    stream
        .write_all(b"GET /direct HTTP/1.0\r\nHost: hello\r\n\r\n")
        .await?;
    let mut page = String::new();
    tokio::time::timeout(T, stream.read_to_string(&mut page)).await??;
    assert!(
        page.contains("hello from wasm: GET /direct"),
        "the component answered over the direct connection: {page}"
    );
    // Nothing but listed service instances of the tenant it was
    // introduced for.
    let (r, _) = direct
        .open_stream::<_, Response>(&open("admin/nosuch/1-0-0"), T)
        .await?;
    assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{r:?}");
    // And it introduces nobody over it.
    let r: Response = direct
        .call(
            &Request::PunchOpen {
                from: stranger.node_id(),
                addr: stranger.local_addr()?.to_string(),
                tenant: ADMIN_TENANT.into(),
                local: vec![],
            },
            T,
        )
        .await?;
    assert_eq!(code_of(&r), Some(ErrorCode::BadRequest), "{r:?}");
    let err = stranger
        .connect(agent0_addr, Some(agent0))
        .await
        .expect_err("still not answered");
    assert!(err.is_transport(), "{err}");
    cluster.shutdown().await;
    Ok(())
}
