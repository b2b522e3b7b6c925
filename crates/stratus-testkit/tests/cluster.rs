//! In-process cluster tests: replication, forwarding, failover, catch-up,
//! snapshots, membership and the agents' failure detector.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use stratus_proto::{MembershipChange, Peer};
use stratus_state::Command;
use stratus_testkit::{wait_until, Cluster, Options, WAIT};
use stratus_types::{NodeStatus, ADMIN_TENANT};

fn put(key: &str, value: &str) -> Command {
    Command::PutVar {
        tenant: ADMIN_TENANT.into(),
        key: key.into(),
        value: value.into(),
        now_ms: 0,
    }
}

fn var(c: &stratus_control::Control, key: &str) -> Option<String> {
    c.state().read(|s| {
        s.vars
            .get(ADMIN_TENANT)
            .and_then(|m| m.get(key))
            .map(|v| v.value.clone())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_register_everywhere_and_followers_forward_writes() -> Result<()> {
    let cluster = Cluster::start(Options::new(3, 3)).await?;
    for i in 0..3 {
        cluster.wait_nodes(i, NodeStatus::Ready, 3).await?;
    }
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % 3;
    let applied = cluster
        .control(follower)?
        .write(put("via-follower", "yes"))
        .await?;
    assert!(applied.index > 0);
    // The write is visible on every replica once applied there.
    for i in 0..3 {
        let c = cluster.control(i)?;
        wait_until("the write on every replica", WAIT, || async {
            (var(&c, "via-follower").as_deref() == Some("yes")).then_some(())
        })
        .await?;
    }
    // A refused command is refused the same way through a follower.
    let err = cluster
        .control(follower)?
        .write(Command::CreateTenant {
            name: ADMIN_TENANT.into(),
            now_ms: 0,
        })
        .await
        .expect_err("admin exists");
    assert_eq!(err.code(), stratus_types::ErrorCode::Conflict);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_node_is_lost_and_ready_again_when_it_returns() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(1, 2)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let id = cluster.agent_id(0)?;
    let other = cluster.agent_id(1)?;
    cluster.stop_agent(0).await?;
    cluster.wait_nodes(0, NodeStatus::Lost, 1).await?;
    let c = cluster.control(0)?;
    let statuses = c
        .state()
        .read(|s| (s.nodes[&id].status, s.nodes[&other].status));
    assert_eq!(statuses, (NodeStatus::Lost, NodeStatus::Ready));
    cluster.start_agent(0).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    assert_eq!(
        c.state().read(|s| s.nodes.len()),
        2,
        "a returning node keeps its identity"
    );
    cluster.shutdown().await;
    Ok(())
}

/// Stops the leader while 1,000 writes are in flight; every acknowledged
/// write survives the election and reaches the restarted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_losing_the_leader() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(3, 0)).await?;
    let leader = cluster.leader().await?;
    let controls: Vec<_> = (0..3).map(|i| cluster.control(i)).collect::<Result<_>>()?;
    let controls = Arc::new(controls);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    let load = {
        let acked = acked.clone();
        tokio::spawn(async move {
            futures::stream::iter(0..1000usize)
                .for_each_concurrent(32, |i| {
                    let controls = controls.clone();
                    let acked = acked.clone();
                    async move {
                        let (k, v) = (format!("k{i}"), format!("v{i}"));
                        // A client retries a write whose outcome it does not
                        // know, through another replica (the leader went away).
                        for attempt in 0..300 {
                            let c = &controls[(i + attempt) % 3];
                            if c.write(put(&k, &v)).await.is_ok() {
                                if let Ok(mut a) = acked.lock() {
                                    a.insert(k, v);
                                }
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                })
                .await
        })
    };
    wait_until("200 acknowledged writes", WAIT, || async {
        (acked.lock().map(|a| a.len()).unwrap_or(0) >= 200).then_some(())
    })
    .await?;
    cluster.stop_replica(leader).await?;
    load.await?;
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    assert!(
        acked.len() == 1000,
        "only {} of 1000 writes acknowledged after retries",
        acked.len()
    );

    let new_leader = cluster.leader().await?;
    assert_ne!(new_leader, leader);
    let c = cluster.control(new_leader)?;
    for (k, v) in &acked {
        assert_eq!(
            var(&c, k).as_deref(),
            Some(v.as_str()),
            "acknowledged write {k} lost"
        );
    }
    cluster.start_replica(leader).await?;
    let back = cluster.control(leader)?;
    wait_until(
        "the restarted replica to catch up",
        Duration::from_secs(60),
        || async {
            acked
                .iter()
                .all(|(k, v)| var(&back, k).as_deref() == Some(v.as_str()))
                .then_some(())
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// With a small snapshot threshold the log is compacted; a restart restores
/// from snapshot + log, and a replica added afterwards is brought up to date
/// by snapshot installation (the entries it needs were purged).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_compact_the_log_and_seed_new_replicas() -> Result<()> {
    let mut opts = Options::new(1, 0);
    opts.snapshot_every = 100;
    let mut cluster = Cluster::start(opts).await?;
    let c = cluster.control(0)?;
    for i in 0..350 {
        c.write(put(&format!("s{i}"), "x")).await?;
    }
    wait_until("a snapshot and a purged log", WAIT, || async {
        let m = c.raft().metrics().borrow().clone();
        (m.snapshot.is_some_and(|s| s.index >= 200) && m.purged.is_some()).then_some(())
    })
    .await?;

    // Handles keep the replica's endpoint (and its port) alive: drop ours first.
    drop(c);
    cluster.stop_replica(0).await?;
    cluster.start_replica(0).await?;
    let c = cluster.control(0)?;
    wait_until("state restored after restart", WAIT, || async {
        (0..350)
            .all(|i| var(&c, &format!("s{i}")).is_some())
            .then_some(())
    })
    .await?;

    // A new replica joins after compaction.
    let mut extra = cluster.cfg.clone();
    extra.replicas = 2;
    extra.base_port = stratus_node::dev::free_port_run(2)?;
    extra.api_port = stratus_node::dev::free_port_run(2)?;
    let mut cfg = extra.replica(1)?;
    cfg.data_dir = cluster.cfg.data_dir.join("late-replica");
    if let Some(s) = cfg.server.as_mut() {
        s.bootstrap = false;
        s.join = Some(Peer {
            id: c.id(),
            addr: cluster.cfg.control_addrs()?[0].clone(),
        });
    }
    let late = stratus_node::start(cfg).await?;
    c.change_membership(MembershipChange::Add(Peer {
        id: late.node_id,
        addr: late.quic_addr.to_string(),
    }))
    .await?;
    let lc = late
        .control
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no control"))?;
    wait_until(
        "the late replica to install the snapshot and catch up",
        WAIT,
        || async {
            let m = lc.raft().metrics().borrow().clone();
            (m.snapshot.is_some() && (0..350).all(|i| var(&lc, &format!("s{i}")).is_some()))
                .then_some(())
        },
    )
    .await?;
    assert_eq!(c.peers().len(), 2);

    // And it can be removed again.
    c.change_membership(MembershipChange::Remove(late.node_id))
        .await?;
    wait_until("membership of one", WAIT, || async {
        (c.peers().len() == 1).then_some(())
    })
    .await?;
    late.shutdown().await;
    cluster.shutdown().await;
    Ok(())
}

/// An agent whose control replica goes away moves to another one and stays
/// registered and ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_fail_over_to_another_replica() -> Result<()> {
    let mut opts = Options::new(3, 1);
    // Generous: the agent must fail over well within it.
    opts.node_lost_after = Duration::from_secs(10);
    let mut cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let mut state = cluster.agents[0]
        .as_ref()
        .and_then(|a| a.agent_state())
        .ok_or_else(|| anyhow::anyhow!("no agent"))?;
    let first = wait_until("the agent to connect", WAIT, || {
        let s = state.borrow().clone();
        async move {
            match s {
                stratus_node::AgentState::Connected(id) => Some(id),
                _ => None,
            }
        }
    })
    .await?;
    let idx = cluster
        .replicas
        .iter()
        .position(|r| r.as_ref().is_some_and(|r| r.node_id == first))
        .ok_or_else(|| anyhow::anyhow!("unknown replica"))?;
    cluster.stop_replica(idx).await?;
    let second = wait_until("the agent to fail over", WAIT, || {
        let s = state.borrow_and_update().clone();
        async move {
            match s {
                stratus_node::AgentState::Connected(id) if id != first => Some(id),
                _ => None,
            }
        }
    })
    .await?;
    assert_ne!(first, second);
    let survivor = (idx + 1) % 3;
    let node = cluster.agent_id(0)?;
    let c = cluster.control(survivor)?;
    wait_until("the node ready on the survivors", WAIT, || async {
        (c.state().read(|s| s.nodes.get(&node).map(|n| n.status)) == Some(NodeStatus::Ready))
            .then_some(())
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}
