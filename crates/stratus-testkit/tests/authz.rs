//! Node-to-node requests are authorized by role and ownership (issue 13,
//! item 3). Each test plays the attacker with a raw QUIC client: a fresh
//! key (a stranger), or the key of a registered agent asking for what is
//! not its own.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use stratus_flist::build::{busybox_image, LayerEntry};
use stratus_net::{Connection, Endpoint, Identity, NetError};
use stratus_proto::{LogChunk, PieceErrorKind, PieceRequest, PieceResponse, Request, Response};
use stratus_state::{Command, InstanceState};
use stratus_testkit::{
    dial_as, instances, wait_storage_secret, wait_until, Cluster, Options, WAIT,
};
use stratus_types::{ErrorCode, NodeId, NodeStatus, ADMIN_TENANT};

const HELLO: &str = include_str!("../../../examples/wasm/hello.wat");
const T: Duration = Duration::from_secs(30);

/// A connection to replica 0 with a key nobody knows.
async fn stranger(cluster: &Cluster) -> Result<Connection> {
    dial_as(&Identity::generate(), &cluster.cfg.control_addrs()?[0]).await
}

/// A connection to replica 0 with agent `j`'s key.
async fn as_agent(cluster: &Cluster, j: usize) -> Result<Connection> {
    let identity = Identity::load_or_create(&cluster.agent_dir(j))?;
    dial_as(&identity, &cluster.cfg.control_addrs()?[0]).await
}

fn assert_forbidden(r: Response, what: &str) {
    match r {
        Response::Error {
            code: ErrorCode::Forbidden,
            ..
        } => {}
        other => panic!("{what}: expected forbidden, got {other:?}"),
    }
}

fn read_logs(instance: &str) -> Request {
    Request::ReadLogs {
        instance: instance.into(),
        offset: 0,
    }
}

/// Logs go only to replicas; modules only to nodes that run them; an agent
/// cannot make up exec streams; big frames from strangers are cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_and_modules_go_only_to_whom_they_belong() -> Result<()> {
    let mut opts = Options::new(1, 2);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let bytes = HELLO.as_bytes().to_vec();
    let hash = stratus_testkit::put_module(&c, stratus_types::ADMIN_TENANT, bytes).await?;
    let id = stratus_testkit::deploy(
        &c,
        "version: 1\nname: hi\nkind: task\nwasm: { module: hello.wat }\nargs: [\"secret\"]\n",
        hash.clone(),
    )
    .await?;
    let inst = wait_until("the task to complete", WAIT, || async {
        instances(&c, &id)
            .into_iter()
            .find(|i| i.state == InstanceState::Completed)
    })
    .await?;
    let out = wait_until("its output", WAIT, || async {
        let (_, out) = c.read_logs(&inst.id, 0).await.ok()?;
        (!out.is_empty()).then_some(out)
    })
    .await?;
    assert_eq!(String::from_utf8_lossy(&out), "Hello, secret!\n");
    let runner = (0..2)
        .find(|j| cluster.agent_id(*j).is_ok_and(|a| a == inst.node))
        .ok_or_else(|| anyhow!("the task ran on no agent"))?;
    let other = 1 - runner;

    // A foreign key cannot read the instance's output ...
    let s = stranger(&cluster).await?;
    assert_forbidden(s.call(&read_logs(&inst.id), T).await?, "stranger ReadLogs");
    // ... nor can a registered agent, even the one that ran it.
    for j in [runner, other] {
        let a = as_agent(&cluster, j).await?;
        assert_forbidden(a.call(&read_logs(&inst.id), T).await?, "agent ReadLogs");
    }

    // Modules: the node that runs it gets it; another node and a stranger do not.
    let get = || Request::GetModule { hash: hash.clone() };
    match as_agent(&cluster, runner).await?.call(&get(), T).await? {
        Response::Module(m) => assert_eq!(m, HELLO.as_bytes()),
        other => bail!("the runner's module: {other:?}"),
    }
    let o = as_agent(&cluster, other).await?;
    assert_forbidden(o.call(&get(), T).await?, "another node's GetModule");
    assert_forbidden(s.call(&get(), T).await?, "stranger GetModule");

    // Output pushed for a made-up exec of its own instance is dropped, and
    // so is output for another node's instance.
    let forged = format!("{}#exec-7", inst.id);
    let push = |instance: &str| {
        Request::PushLogs(vec![LogChunk {
            instance: instance.into(),
            offset: 0,
            stderr: false,
            data: b"forged".to_vec(),
        }])
    };
    let r = as_agent(&cluster, runner).await?;
    assert!(matches!(r.call(&push(&forged), T).await?, Response::Ok));
    assert!(matches!(o.call(&push(&inst.id), T).await?, Response::Ok));
    let (_, data) = c.read_logs(&forged, 0).await?;
    assert!(data.is_empty(), "forged exec output was kept: {data:?}");
    let (_, data) = c.read_logs(&inst.id, 0).await?;
    assert_eq!(data, out, "another node's push changed the output");

    // A stranger's 60 MiB frame is refused after its length prefix; an
    // agent's 30 MiB one too (agents get at most a volume part and change).
    let err = s
        .call::<_, Response>(&push_bytes(&inst.id, 60 << 20), T)
        .await
        .expect_err("a stranger's 60 MiB frame");
    assert!(matches!(err, NetError::FrameRefused), "{err:?}");
    let err = o
        .call::<_, Response>(&push_bytes(&inst.id, 30 << 20), T)
        .await
        .expect_err("an agent's 30 MiB frame");
    assert!(matches!(err, NetError::FrameRefused), "{err:?}");
    // Small requests still work on those connections.
    assert_forbidden(s.call(&read_logs(&inst.id), T).await?, "stranger again");
    cluster.shutdown().await;
    Ok(())
}

/// `PushLogs` of `len` bytes of output of `instance`.
fn push_bytes(instance: &str, len: usize) -> Request {
    Request::PushLogs(vec![LogChunk {
        instance: instance.into(),
        offset: 0,
        stderr: false,
        data: vec![b'x'; len],
    }])
}

fn vote_from(id: NodeId) -> Request {
    Request::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(7, id),
        None,
    ))
}

/// A replica with no membership takes Raft messages from nobody unless it
/// was told whom to join, and then only from that replica's members.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uninitialized_replica_takes_raft_messages_only_from_its_cluster() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 0)).await?;
    let c = cluster.control(0)?;
    let start_empty = |name: &str, join: bool| {
        let mut extra = cluster.cfg.clone();
        extra.replicas = 2;
        let dir = cluster.cfg.data_dir.join(name);
        let anchor = stratus_proto::Peer {
            id: c.id(),
            addr: cluster.cfg.control_addrs().unwrap_or_default().remove(0),
        };
        async move {
            extra.base_port = stratus_node::dev::free_port_run(2)?;
            extra.api_port = stratus_node::dev::free_port_run(2)?;
            let mut cfg = extra.replica(1)?;
            cfg.data_dir = dir;
            if let Some(s) = cfg.server.as_mut() {
                s.bootstrap = false;
                s.join = join.then_some(anchor);
            }
            anyhow::Ok(stratus_node::start(cfg).await?)
        }
    };

    // Started without --join: nobody may send it Raft messages.
    let lone = start_empty("lone", false).await?;
    let s = dial_as(&Identity::generate(), &lone.quic_addr.to_string()).await?;
    let id = NodeId([9; 32]);
    match s.call::<_, Response>(&vote_from(id), T).await? {
        Response::Error {
            code: ErrorCode::Forbidden,
            message,
        } => assert!(message.contains("--join"), "{message}"),
        other => bail!("an empty replica answered a stranger's vote: {other:?}"),
    }
    lone.shutdown().await;

    // With --join: a stranger is refused, the cluster adds it.
    let late = start_empty("late", true).await?;
    let s = dial_as(&Identity::generate(), &late.quic_addr.to_string()).await?;
    assert_forbidden(s.call(&vote_from(id), T).await?, "stranger vote");
    c.write(Command::PutVar {
        tenant: ADMIN_TENANT.into(),
        key: "k".into(),
        value: "v".into(),
        now_ms: 1,
    })
    .await?;
    c.change_membership(stratus_proto::MembershipChange::Add(stratus_proto::Peer {
        id: late.node_id,
        addr: late.quic_addr.to_string(),
    }))
    .await?;
    let lc = late.control.clone().ok_or_else(|| anyhow!("no control"))?;
    wait_until("the new replica to catch up", WAIT, || async {
        lc.state()
            .read(|s| {
                s.vars
                    .get(ADMIN_TENANT)
                    .is_some_and(|v| v.contains_key("k"))
            })
            .then_some(())
    })
    .await?;
    // Initialized now: still no stranger.
    assert_forbidden(s.call(&vote_from(id), T).await?, "stranger vote later");
    c.change_membership(stratus_proto::MembershipChange::Remove(late.node_id))
        .await?;
    late.shutdown().await;
    cluster.shutdown().await;
    Ok(())
}

/// A storage node's piece service answers only control replicas: not a
/// stranger, not another registered agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_piece_service_answers_only_replicas() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 2)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let node0 = cluster.agent_id(0)?;
    let addr = c
        .state()
        .read(|s| s.nodes.get(&node0).and_then(|n| n.info.storage.clone()))
        .ok_or_else(|| anyhow!("agent 0 stores no pieces"))?
        .addr;
    let replica = Identity::load_or_create(&cluster.cfg.data_dir.join("replica-0"))?;
    // Piece services accept a replica once their agent has learned it.
    let r = Endpoint::bind(&replica, "127.0.0.1:0".parse()?).await?;
    wait_until("the replica to be served", WAIT, || async {
        let conn = r.connect(addr.parse().ok()?, None).await.ok()?;
        matches!(
            conn.call::<_, PieceResponse>(&PieceRequest::List, T).await,
            Ok(PieceResponse::List(_))
        )
        .then_some(())
    })
    .await?;
    let agent1 = Identity::load_or_create(&cluster.agent_dir(1))?;
    for (who, identity) in [("a stranger", Identity::generate()), ("agent 1", agent1)] {
        let conn = dial_as(&identity, &addr).await?;
        match conn
            .call::<_, PieceResponse>(&PieceRequest::List, T)
            .await?
        {
            PieceResponse::Error {
                kind: PieceErrorKind::Forbidden,
                ..
            } => {}
            other => bail!("{who} was answered: {other:?}"),
        }
        let err = conn
            .call::<_, PieceResponse>(
                &PieceRequest::Put {
                    id: stratus_chunk::PieceId([1; 32]),
                    bytes: vec![1; 1 << 20],
                },
                T,
            )
            .await
            .expect_err("a 1 MiB put from a non-replica");
        assert!(matches!(err, NetError::FrameRefused), "{who}: {err:?}");
    }
    cluster.shutdown().await;
    Ok(())
}

/// `GetChunk` serves only chunks of the images the node is assigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_reads_only_chunks_of_its_own_images() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    let store = cluster.store(0)?;
    let dir = tempfile::tempdir()?;
    let import = |name: &'static str, secret: &'static [u8]| {
        let tar = dir.path().join(format!("{name}.tar"));
        let store = store.clone();
        async move {
            let mut image = busybox_image(Path::new("/bin/busybox"));
            if !secret.is_empty() {
                image = image.layer(vec![LayerEntry::file("/secret", 0o644, secret.to_vec())]);
            }
            image.write_docker_save(&tar, &format!("{name}:latest"))?;
            anyhow::Ok(store.import_image(ADMIN_TENANT, tar, Some(name)).await?)
        }
    };
    let mine = import("mine", b"").await?;
    let theirs = import(
        "theirs",
        b"a private file of another workload of the tenant",
    )
    .await?;
    let chunks = |pinned: stratus_store::ImageRef| {
        let store = store.clone();
        async move {
            let bytes = store.image_flist(ADMIN_TENANT, &pinned).await?;
            let flist = stratus_flist::Flist::decode(&bytes)?;
            anyhow::Ok(flist.chunks().map(|c| c.id).collect::<Vec<_>>())
        }
    };
    let my_chunks = chunks(mine.image.pinned()).await?;
    let their_chunks = chunks(theirs.image.pinned()).await?;
    let secret_chunk = *their_chunks
        .iter()
        .find(|id| !my_chunks.contains(id))
        .ok_or_else(|| anyhow!("the second image has no chunk of its own"))?;

    let id = stratus_testkit::deploy(
        &c,
        "version: 1\nname: mine\nkind: service\nimage: { name: mine }\nargs: [sleep, '3600']\n",
        mine.image.pinned().to_string(),
    )
    .await?;
    let inst = wait_until("the instance to be placed", WAIT, || async {
        instances(&c, &id).into_iter().next()
    })
    .await?;
    let j = (0..3)
        .find(|j| cluster.agent_id(*j).is_ok_and(|a| a == inst.node))
        .ok_or_else(|| anyhow!("placed on no agent"))?;
    let conn = as_agent(&cluster, j).await?;
    let get = |id: [u8; 32]| Request::GetChunk {
        tenant: ADMIN_TENANT.into(),
        id,
    };
    match conn.call(&get(my_chunks[0]), T).await? {
        Response::Blob(b) => assert!(!b.is_empty()),
        other => bail!("a chunk of its own image: {other:?}"),
    }
    assert_forbidden(
        conn.call(&get(secret_chunk), T).await?,
        "a chunk of an image the node does not run",
    );
    let other = as_agent(&cluster, (j + 1) % 3).await?;
    assert_forbidden(
        other.call(&get(my_chunks[0]), T).await?,
        "a chunk for a node that runs nothing",
    );
    cluster.shutdown().await;
    Ok(())
}

/// The key-encryption key opens every secret of the replicated state: a
/// stranger and a registered agent asking for it are refused; replicas get
/// it (`secrets::a_copy_of_a_replicas_raft_store_reveals_no_secret`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_key_encryption_key_goes_only_to_replicas() -> Result<()> {
    let mut opts = Options::new(1, 1);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    assert!(c.kek().is_some(), "the replica holds the KEK");
    for (who, conn) in [
        ("a stranger", stranger(&cluster).await?),
        ("an agent", as_agent(&cluster, 0).await?),
    ] {
        let r: Response = conn.call(&Request::GetKek, Duration::from_secs(30)).await?;
        assert_forbidden(r, who);
    }
    cluster.shutdown().await;
    Ok(())
}

/// A node prices only itself (`stratus node --price`: the agent sends the
/// offer its lender gave at start); a stranger prices nothing, and an
/// agent's usage reports are bounded per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_prices_only_itself_and_usage_reports_are_bounded() -> Result<()> {
    let mut opts = Options::new(1, 2);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let (prices, task) = stratus_market::parse_price_list("cpu-second=7,per-task=3")?;
    let offer = stratus_market::Offer {
        prices,
        availability: stratus_market::Availability::parse("sat-sun")?,
    };
    let set = Request::SetOwnOffer {
        offer: offer.clone(),
        task,
    };
    let me = Identity::load_or_create(&cluster.agent_dir(0))?.node_id();
    let conn = as_agent(&cluster, 0).await?;
    let r: Response = conn.call(&set, T).await?;
    assert!(matches!(r, Response::Ok), "{r:?}");
    let (mine, other) = c.state().read(|s| {
        let other = s.nodes.keys().find(|id| **id != me).copied();
        (
            (s.offers.get(&me).cloned(), s.task_prices.get(&me).copied()),
            other.map(|o| s.offers.contains_key(&o)),
        )
    });
    assert_eq!(mine, (Some(offer.clone()), Some(task)));
    assert_eq!(other, Some(false), "the other node keeps no offer");
    // A stranger's key is no node: nothing to price.
    let r: Response = stranger(&cluster).await?.call(&set, T).await?;
    assert!(matches!(r, Response::Error { .. }), "{r:?}");
    // More usage reports in one call than a replica takes.
    let report = stratus_market::UsageReport {
        instance: "nobody".into(),
        node: me.0,
        seq: 1,
        usage: stratus_market::Usage::default(),
        last: false,
        time_ms: 0,
        signature: [0; 64],
    };
    let too_many = Request::ReportUsage(vec![report; 1_001]);
    match conn.call::<_, Response>(&too_many, T).await? {
        Response::Error {
            code: ErrorCode::TooLarge,
            message,
        } => assert!(message.contains("1000"), "{message}"),
        other => panic!("1,001 reports: {other:?}"),
    }
    cluster.shutdown().await;
    Ok(())
}
