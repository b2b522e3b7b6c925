//! Storage nodes behind a NAT: a node no replica can dial lends disk over
//! the piece links it dials to the replicas
//! (`stratus_store::server::dial_links`), and only registered storage nodes
//! may link.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use futures::StreamExt;
use stratus_net::{Endpoint, Identity};
use stratus_proto::{Request, Response};
use stratus_state::objects::DedupeScope;
use stratus_store::PutMeta;
use stratus_testkit::{
    create_bucket, wait_storage_secret, wait_until, Cluster, Options, NAT_ADDR, WAIT,
};
use stratus_types::{ErrorCode, NodeStatus};

/// One replica and `agents` storage nodes, every one restarted behind a
/// NAT (advertising [`NAT_ADDR`]).
async fn behind_nats(agents: usize) -> Result<Cluster> {
    let mut cluster = Cluster::start(Options::new(1, agents)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, agents).await?;
    for j in 0..agents {
        cluster.restart_agent_behind_nat(j).await?;
    }
    Ok(cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_nodes_no_replica_can_dial_lend_disk_over_their_links() -> Result<()> {
    let cluster = behind_nats(4).await?;
    let c = cluster.control(0)?;
    wait_until(
        "every node registered behind its NAT, and linked",
        WAIT,
        || async {
            let behind = c.state().read(|s| {
                s.nodes
                    .values()
                    .filter(|n| {
                        n.info
                            .storage
                            .as_ref()
                            .is_some_and(|st| st.addr == NAT_ADDR)
                    })
                    .count()
            });
            (behind == 4 && c.piece_links().peers().len() == 4).then_some(())
        },
    )
    .await?;
    wait_storage_secret(&c).await?;
    create_bucket(&c, "admin", "bkt", DedupeScope::Tenant).await?;
    let store = cluster.store(0)?;
    // Several packs, so every node holds pieces.
    let data: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
        .collect();
    let parts: Vec<std::io::Result<Bytes>> = data
        .chunks(100_000)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    store
        .put(
            "admin",
            "bkt",
            "far/away",
            PutMeta::default(),
            futures::stream::iter(parts),
        )
        .await?;
    let (_, mut s) = store.get("admin", "bkt", "far/away", None, None).await?;
    let mut back = Vec::new();
    while let Some(b) = s.next().await {
        back.extend_from_slice(&b?);
    }
    assert!(back == data, "the object read back differs");
    // The pieces are on nodes no replica can dial.
    let unreachable = c.state().read(|s| {
        let holders = s.store.slot_nodes();
        !holders.is_empty()
            && holders.iter().all(|id| {
                s.nodes[id]
                    .info
                    .storage
                    .as_ref()
                    .is_some_and(|st| st.addr == NAT_ADDR)
            })
    });
    assert!(unreachable, "pieces are held by nodes a replica could dial");
    // A banned node's link is closed, and it cannot link again.
    let banned = c.piece_links().peers()[0];
    c.ban_node(banned).await?;
    wait_until("the banned node's link closed", WAIT, || async {
        (!c.piece_links().peers().contains(&banned)).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !c.piece_links().peers().contains(&banned),
        "it linked again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_registered_storage_nodes_link_and_a_link_is_not_taken_by_handle() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 1)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let replica = c.id();
    let addr = cluster.cfg.control_addrs()?.remove(0).parse()?;
    // A stranger's key: refused, and not kept.
    let stranger = Endpoint::dial_only(&Identity::generate(), "127.0.0.1:0".parse()?).await?;
    let conn = stranger.connect(addr, Some(replica)).await?;
    let answer: Response = conn
        .call(&Request::PieceLink, Duration::from_secs(5))
        .await?;
    match answer {
        Response::Error {
            code: ErrorCode::Forbidden,
            message,
        } => {
            assert!(
                message.contains("not a registered storage node"),
                "{message}"
            )
        }
        other => bail!("a stranger's link was answered {other:?}"),
    }
    assert!(!c.piece_links().peers().contains(&stranger.node_id()));
    // Asked of the request handler (no connection to keep): a bad request.
    match c.handle(stranger.node_id(), Request::PieceLink).await {
        Response::Error {
            code: ErrorCode::BadRequest,
            ..
        } => {}
        other => bail!("handle answered {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_come_back_after_the_replica_restarts_and_the_data_reads() -> Result<()> {
    let mut cluster = behind_nats(3).await?;
    let linked = |c: stratus_control::Control| async move {
        wait_until("every node linked", WAIT, || async {
            (c.piece_links().peers().len() == 3).then_some(())
        })
        .await
    };
    let c = cluster.control(0)?;
    linked(c.clone()).await?;
    wait_storage_secret(&c).await?;
    create_bucket(&c, "admin", "bkt", DedupeScope::Tenant).await?;
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 31 % 253) as u8).collect();
    let body =
        |d: &[u8]| futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(d))]);
    cluster
        .store(0)?
        .put("admin", "bkt", "k", PutMeta::default(), body(&data))
        .await?;
    // The replica goes away: every link breaks; the nodes dial again.
    // (Handles keep the replica's endpoint and its port alive: ours go first.)
    drop(c);
    cluster.stop_replica(0).await?;
    cluster.start_replica(0).await?;
    let c = cluster.control(0)?;
    linked(c.clone()).await?;
    let store = cluster.store(0)?;
    let (_, mut s) = store.get("admin", "bkt", "k", None, None).await?;
    let mut back = Vec::new();
    while let Some(b) = s.next().await {
        back.extend_from_slice(&b?);
    }
    assert!(
        back == data,
        "the object read back after the restart differs"
    );
    Ok(())
}
