//! Raft over the real QUIC transport on loopback: a three-node cluster
//! replicates writes, a learner added after the log was purged catches up by
//! snapshot, and the network maps failures to openraft's errors.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::VoteRequest;
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory, Vote};
use stratus_net::{serve_connection, Endpoint, Identity, Pool};
use stratus_proto::{Request, Response};
use stratus_raft::{default_config, store, Network, Raft, StateReader};
use stratus_state::Command;
use stratus_types::{ErrorCode, NodeId};
use tempfile::TempDir;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

struct TestNode {
    id: NodeId,
    addr: SocketAddr,
    raft: Raft,
    reader: StateReader,
    _dir: TempDir,
}

async fn bind() -> Endpoint {
    Endpoint::bind(&Identity::generate(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind")
}

/// Serves the Raft RPCs of `raft` on `endpoint`.
fn serve(endpoint: Endpoint, raft: Raft) {
    tokio::spawn(async move {
        while let Some(conn) = endpoint.accept().await {
            let raft = raft.clone();
            tokio::spawn(serve_connection(conn, move |_peer, req: Request| {
                let raft = raft.clone();
                async move {
                    match req {
                        Request::AppendEntries(r) => {
                            Response::AppendEntries(raft.append_entries(r).await)
                        }
                        Request::Vote(r) => Response::Vote(raft.vote(r).await),
                        Request::InstallSnapshot(r) => {
                            Response::InstallSnapshot(raft.install_snapshot(r).await)
                        }
                        _ => Response::Error {
                            code: ErrorCode::Internal,
                            message: "not served in this test".into(),
                        },
                    }
                }
            }));
        }
    });
}

async fn start_node() -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = bind().await;
    let id = endpoint.node_id();
    let addr = endpoint.local_addr().expect("local addr");
    let (log, sm) = store::open(dir.path()).await.expect("open store");
    let reader = sm.reader();
    let config = Arc::new(default_config("cluster-test").expect("config"));
    let network = Network::new(Pool::new(endpoint.clone()));
    let raft = Raft::new(id, config, network, log, sm)
        .await
        .expect("start raft");
    serve(endpoint, raft.clone());
    TestNode {
        id,
        addr,
        raft,
        reader,
        _dir: dir,
    }
}

fn basic(node: &TestNode) -> BasicNode {
    BasicNode {
        addr: node.addr.to_string(),
    }
}

async fn leader_of(nodes: &[TestNode]) -> &TestNode {
    let id = nodes[0]
        .raft
        .wait(WAIT)
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("leader elected")
        .current_leader
        .expect("leader");
    nodes.iter().find(|n| n.id == id).expect("leader is a node")
}

async fn write(leader: &TestNode, name: &str) -> u64 {
    let resp = leader
        .raft
        .client_write(Command::CreateTenant {
            name: name.to_string(),
            now_ms: 1,
        })
        .await
        .expect("write");
    assert!(resp.data.error.is_none(), "{:?}", resp.data);
    resp.log_id.index
}

async fn wait_applied(node: &TestNode, index: u64) {
    tokio::time::timeout(Duration::from_secs(20), node.reader.wait_applied(index))
        .await
        .expect("applied in time");
}

/// Snapshots the leader and purges its log up to `last`: a new node can
/// then only catch up by snapshot.
async fn snapshot_and_purge(leader: &TestNode, last: u64, wait: Option<Duration>) {
    leader.raft.trigger().snapshot().await.expect("snapshot");
    leader
        .raft
        .wait(wait)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "snapshot built",
        )
        .await
        .expect("snapshot built");
    leader.raft.trigger().purge_log(last).await.expect("purge");
    leader
        .raft
        .wait(WAIT)
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "purged")
        .await
        .expect("purged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_replicate_and_a_learner_catches_up_by_snapshot() {
    let nodes = vec![start_node().await, start_node().await, start_node().await];
    let members: BTreeMap<NodeId, BasicNode> = nodes.iter().map(|n| (n.id, basic(n))).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");

    let leader = leader_of(&nodes).await;
    let mut last = 0;
    for i in 0..20 {
        last = write(leader, &format!("tenant-{i}")).await;
    }
    for node in &nodes {
        wait_applied(node, last).await;
        assert!(node.reader.read(|s| s.tenants.contains_key("tenant-19")));
    }

    // Snapshot and purge everything on the leader: a new node can only
    // catch up by snapshot.
    snapshot_and_purge(leader, last, WAIT).await;

    let learner = start_node().await;
    leader
        .raft
        .add_learner(learner.id, basic(&learner), true)
        .await
        .expect("add learner");
    wait_applied(&learner, last).await;
    assert!(learner
        .reader
        .read(|s| s.tenants.contains_key("tenant-0") && s.tenants.contains_key("tenant-19")));
    learner
        .raft
        .wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "learner installed the snapshot",
        )
        .await
        .expect("learner caught up by snapshot");

    // Writes keep flowing to everyone.
    let next = write(leader, "after-snapshot").await;
    for node in nodes.iter().chain([&learner]) {
        wait_applied(node, next).await;
        assert!(node
            .reader
            .read(|s| s.tenants.contains_key("after-snapshot")));
    }

    for node in nodes.iter().chain([&learner]) {
        node.raft.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_maps_failures() {
    let client = bind().await;
    let mut network = Network::new(Pool::new(client.clone()));
    let vote = || VoteRequest::new(Vote::new(1, client.node_id()), None);
    let option = RPCOption::new(Duration::from_secs(3));

    // A peer that answers every request with an error: Network error.
    let server = bind().await;
    let server_id = server.node_id();
    let server_addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(serve_connection(conn, |_peer, _req: Request| async {
                Response::Error {
                    code: ErrorCode::Forbidden,
                    message: "not a member".into(),
                }
            }));
        }
    });
    let mut conn = network
        .new_client(
            server_id,
            &BasicNode {
                addr: server_addr.to_string(),
            },
        )
        .await;
    match conn.vote(vote(), option.clone()).await {
        Err(RPCError::Network(e)) => assert!(e.to_string().contains("not a member"), "{e}"),
        other => panic!("expected a network error, got {other:?}"),
    }

    // The right address but another identity: Unreachable.
    let mut conn = network
        .new_client(
            NodeId([9; 32]),
            &BasicNode {
                addr: server_addr.to_string(),
            },
        )
        .await;
    match conn.vote(vote(), option.clone()).await {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }

    // A host name that does not resolve: Unreachable.
    let mut conn = network
        .new_client(
            server_id,
            &BasicNode {
                addr: "does-not-exist.invalid:7000".into(),
            },
        )
        .await;
    match conn.vote(vote(), option.clone()).await {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }

    // A host name that resolves (localhost) reaches the server.
    let mut conn = network
        .new_client(
            server_id,
            &BasicNode {
                addr: format!("localhost:{}", server_addr.port()),
            },
        )
        .await;
    match conn.vote(vote(), option).await {
        Err(RPCError::Network(e)) => assert!(e.to_string().contains("not a member"), "{e}"),
        other => panic!("expected a network error, got {other:?}"),
    }
}

/// A replica added to a cell holding 100 000 objects catches up by the
/// streamed snapshot (the log before it is purged) and holds the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_added_after_100k_objects_catches_up_by_streamed_snapshot() {
    let nodes = vec![start_node().await];
    let members: BTreeMap<NodeId, BasicNode> = nodes.iter().map(|n| (n.id, basic(n))).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    let leader = leader_of(&nodes).await;
    let write_batch = |cmds: Vec<Command>| async move {
        let resp = leader
            .raft
            .client_write(Command::Batch(cmds))
            .await
            .expect("write");
        assert!(
            resp.data.batch.iter().all(|r| r.error.is_none()),
            "{:?}",
            resp.data.batch.iter().find(|r| r.error.is_some())
        );
        resp.log_id.index
    };
    write_batch(stratus_state::synth::setup("t", "bkt")).await;
    let mut last = 0;
    for b in 0..100 {
        last = write_batch(stratus_state::synth::small_objects(
            "t",
            "bkt",
            b * 1000,
            1000,
        ))
        .await;
    }
    snapshot_and_purge(leader, last, Some(Duration::from_secs(120))).await;

    let learner = start_node().await;
    leader
        .raft
        .add_learner(learner.id, basic(&learner), false)
        .await
        .expect("add learner");
    tokio::time::timeout(Duration::from_secs(300), learner.reader.wait_applied(last))
        .await
        .expect("caught up in time");
    let rows = |n: &TestNode| {
        n.reader.read(|s| {
            let mut copy = stratus_state::State::open(Box::new(s.fork_kv())).expect("open a copy");
            copy.dump()
        })
    };
    let (want, got) = (rows(leader), rows(&learner));
    assert_eq!(learner.reader.read(|s| s.store.counts.versions), 100_000);
    assert!(want == got, "the learner's rows differ from the leader's");
    for node in nodes.iter().chain([&learner]) {
        node.raft.shutdown().await.expect("shutdown");
    }
}
