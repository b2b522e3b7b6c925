//! The replica's relay of service connections (issue 17), played by the
//! attacker with raw QUIC clients: a stranger, and a registered node that
//! runs nothing of the service's tenant. Neither learns where the
//! tenant's services run nor gets a connection to one; a node's tunnel
//! link is taken only from a registered node; an instance's network is
//! told only to the node running it; and a replica opens tunnels, it takes
//! none.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{bail, Result};
use stratus_net::Identity;
use stratus_proto::{Request, Response};
use stratus_state::InstanceState;
use stratus_testkit::{
    code_of, deploy, dial_as, instances, put_module, wait_until, Cluster, Options, WAIT,
};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};

const SERVICE: &str = include_str!("../../../examples/wasm/service.wat");
const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_nodes_of_the_tenant_learn_and_reach_its_services() -> Result<()> {
    let mut opts = Options::new(1, 2);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    // One instance of the admin's service, on agent 0 only.
    let module = put_module(&c, ADMIN_TENANT, SERVICE.as_bytes().to_vec()).await?;
    let agent0 = cluster.agent_id(0)?;
    let spec = format!(
        "version: 1\nname: svc\nkind: service\nwasm: {{ module: service.wat }}\nconstraints: {{ site: {} }}\n",
        c.state()
            .read(|s| s.nodes.get(&agent0).map(|n| n.info.attributes.site.clone()))
            .unwrap_or_default()
    );
    let workload = deploy(&c, &spec, module).await?;
    let instance = wait_until("the service running on agent 0", WAIT, || async {
        instances(&c, &workload)
            .into_iter()
            .find(|i| i.state == InstanceState::Running && i.node == agent0)
            .map(|i| i.id)
    })
    .await?;
    let addr = cluster.cfg.control_addrs()?[0].clone();
    let tunnel = || Request::Tunnel {
        instance: instance.clone(),
        port: 80,
    };

    // The node running it learns where it runs.
    let own = dial_as(&Identity::load_or_create(&cluster.agent_dir(0))?, &addr).await?;
    match own.call(&Request::ServiceDirectory, T).await? {
        Response::Directory(d) => {
            assert!(
                d.iter().any(|e| e.instance == instance && e.name == "svc"),
                "{d:?}"
            )
        }
        other => bail!("directory: {other:?}"),
    }

    // A stranger: no link, no directory, no tunnel.
    let stranger = dial_as(&Identity::generate(), &addr).await?;
    let r: Response = stranger.call(&Request::TunnelLink, T).await?;
    assert_eq!(code_of(&r), Some(ErrorCode::Forbidden), "{r:?}");
    match stranger.call(&Request::ServiceDirectory, T).await? {
        Response::Directory(d) => assert!(d.is_empty(), "{d:?}"),
        other => assert!(code_of(&other).is_some(), "{other:?}"),
    }
    let (r, _) = stranger.open_stream::<_, Response>(&tunnel(), T).await?;
    assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{r:?}");

    // A registered node running nothing of the tenant: the same.
    let other = dial_as(&Identity::load_or_create(&cluster.agent_dir(1))?, &addr).await?;
    match other.call(&Request::ServiceDirectory, T).await? {
        Response::Directory(d) => assert!(d.is_empty(), "{d:?}"),
        other => bail!("directory: {other:?}"),
    }
    let (r, _) = other.open_stream::<_, Response>(&tunnel(), T).await?;
    assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{r:?}");
    // Said the same way as an instance that does not exist at all.
    let (r, _) = other
        .open_stream::<_, Response>(
            &Request::Tunnel {
                instance: "admin/nosuch/1-0-0".into(),
                port: 80,
            },
            T,
        )
        .await?;
    assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{r:?}");

    // An instance's network (its tenant's egress) is told to the node
    // running it only: not to another lender, not to a stranger.
    let network = Request::InstanceNetwork {
        instance: instance.clone(),
    };
    match own.call(&network, T).await? {
        Response::Network(n) => assert!(n.is_default(), "{n:?}"),
        other => bail!("network: {other:?}"),
    }
    for (who, peer) in [("another node", &other), ("a stranger", &stranger)] {
        let r: Response = peer.call(&network, T).await?;
        assert_eq!(code_of(&r), Some(ErrorCode::NotFound), "{who}: {r:?}");
    }

    // Nobody sends a replica what replicas send nodes.
    let r: Response = own
        .call(
            &Request::TunnelOpen {
                instance: instance.clone(),
                port: 80,
                from: agent0,
            },
            T,
        )
        .await?;
    assert_eq!(code_of(&r), Some(ErrorCode::BadRequest), "{r:?}");
    cluster.shutdown().await;
    Ok(())
}
