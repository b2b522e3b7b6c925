//! A single-node Raft running on the redb stores: writes are applied, and
//! survive restarts through the log (committed pointer) and snapshots.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory, ServerState};
use stratus_raft::{default_config, store, Raft, StateReader};
use stratus_state::{Command, TypeConfig};
use stratus_types::NodeId;

/// A network with no peers: a single-node cluster never uses it.
struct NoNetwork;

#[derive(Debug, thiserror::Error)]
#[error("no network in this test")]
struct NoPeers;

impl RaftNetworkFactory<TypeConfig> for NoNetwork {
    type Network = NoNetwork;
    async fn new_client(&mut self, _target: NodeId, _node: &BasicNode) -> NoNetwork {
        NoNetwork
    }
}

impl RaftNetwork<TypeConfig> for NoNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
    }
}

const ME: NodeId = NodeId([1; 32]);
const WAIT: Option<Duration> = Some(Duration::from_secs(10));

async fn start(dir: &Path) -> (Raft, StateReader) {
    let (log, sm) = store::open(dir).await.expect("open store");
    let reader = sm.reader();
    let config = Arc::new(default_config("test").expect("config"));
    let raft = Raft::new(ME, config, NoNetwork, log, sm)
        .await
        .expect("start raft");
    (raft, reader)
}

async fn create_tenant(raft: &Raft, name: &str) -> u64 {
    let resp = raft
        .client_write(Command::CreateTenant {
            name: name.to_string(),
            now_ms: 1,
        })
        .await
        .expect("write");
    assert!(resp.data.error.is_none(), "{:?}", resp.data);
    resp.log_id.index
}

fn has_tenant(reader: &StateReader, name: &str) -> bool {
    reader.read(|s| s.tenants.contains_key(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_writes_survive_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");

    // First life: initialize, write, restart replays the committed log.
    let (raft, reader) = start(dir.path()).await;
    let members = BTreeMap::from([(
        ME,
        BasicNode {
            addr: "127.0.0.1:1".into(),
        },
    )]);
    raft.initialize(members).await.expect("initialize");
    raft.wait(WAIT)
        .state(ServerState::Leader, "leader")
        .await
        .expect("becomes leader");
    let index = create_tenant(&raft, "acme").await;
    assert!(reader.last_applied_index() >= index);
    assert!(has_tenant(&reader, "acme"));
    raft.shutdown().await.expect("shutdown");
    drop(raft);

    // Second life: no snapshot yet, the state comes back from the log.
    let (raft, reader) = start(dir.path()).await;
    tokio::time::timeout(Duration::from_secs(10), reader.wait_applied(index))
        .await
        .expect("committed log re-applied");
    assert!(has_tenant(&reader, "acme"));
    raft.wait(WAIT)
        .state(ServerState::Leader, "leader again")
        .await
        .expect("leader again");
    let index = create_tenant(&raft, "globex").await;
    raft.trigger().snapshot().await.expect("trigger snapshot");
    raft.wait(WAIT)
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= index),
            "snapshot built",
        )
        .await
        .expect("snapshot built");
    raft.trigger().purge_log(index).await.expect("purge");
    raft.wait(WAIT)
        .metrics(|m| m.purged.is_some_and(|p| p.index >= index), "log purged")
        .await
        .expect("log purged");
    raft.shutdown().await.expect("shutdown");
    drop(raft);

    // Third life: the log is purged, the state comes from the snapshot.
    let (raft, reader) = start(dir.path()).await;
    assert!(reader.last_applied_index() >= index);
    assert!(has_tenant(&reader, "acme"));
    assert!(has_tenant(&reader, "globex"));
    raft.wait(WAIT)
        .state(ServerState::Leader, "leader once more")
        .await
        .expect("leader once more");
    create_tenant(&raft, "initech").await;
    assert!(has_tenant(&reader, "initech"));
    raft.shutdown().await.expect("shutdown");
}
