//! Joining is pinned and accountable (issue 13, item 4). Each test plays
//! the attacker: a fake replica at the control address, a stolen one-time
//! or expired credential, a banned node coming back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use stratus_agent::{Agent, AgentConfig, AgentError, AgentState};
use stratus_control::joining::JoinCredentialSpec;
use stratus_control::{now_ms, Control};
use stratus_net::{Endpoint, Identity};
use stratus_proto::{Request, Response};
use stratus_state::objects::DedupeScope;
use stratus_state::Command;
use stratus_store::PutMeta;
use stratus_testkit::{create_bucket, wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};

const T: Duration = Duration::from_secs(30);

/// An agent with the key kept in `dir` (a new one for a new folder) and
/// `credential`, dialing `control`.
async fn agent(dir: &std::path::Path, control: Vec<String>, credential: &str) -> Result<Agent> {
    let id = Identity::load_or_create(dir)?;
    let ep = Endpoint::dial_only(&id, "127.0.0.1:0".parse()?).await?;
    let cfg = AgentConfig {
        data_dir: dir.to_path_buf(),
        name: "joiner".into(),
        control,
        join_token: credential.into(),
        attributes: Default::default(),
        capacity: None,
        storage: None,
        containers: false,
        ports: stratus_types::PortRange::DEFAULT,
        userns: None,
        egress: Default::default(),
        offer: None,
    };
    Ok(Agent::start(cfg, ep, None)?)
}

/// Waits until `a` ends by itself and returns why.
async fn ended(mut a: Agent) -> Result<AgentError> {
    match tokio::time::timeout(T, a.join()).await {
        Ok(Err(e)) => Ok(e),
        Ok(Ok(())) => bail!("the agent ended without an error"),
        Err(_) => bail!("the agent did not give up within {T:?}"),
    }
}

async fn registered(c: &Control, a: &Agent) -> Result<()> {
    let mut st = a.state();
    wait_until("the agent to register", WAIT, || {
        let s = st.borrow_and_update().clone();
        async move { matches!(s, AgentState::Connected(_)).then_some(()) }
    })
    .await?;
    let _ = c;
    Ok(())
}

/// A man in the middle at the control address (another key) relays the
/// real replica's proof, hoping to be taken for it: the agent refuses it
/// with a clear error and never sends its credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fake_replica_gets_no_secret_and_is_refused() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 0)).await?;
    let real = cluster.cfg.control_addrs()?[0].clone();
    let fake = Endpoint::bind(&Identity::generate(), "127.0.0.1:0".parse()?).await?;
    let fake_addr = fake.local_addr()?.to_string();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let relay_addr = real.clone();
    tokio::spawn(async move {
        while let Some(conn) = fake.accept().await {
            let log = log.clone();
            let real = relay_addr.clone();
            tokio::spawn(stratus_net::serve_connection(
                conn,
                move |_peer, req: Request| {
                    let log = log.clone();
                    let real = real.clone();
                    async move {
                        log.lock().map(|mut l| l.push(format!("{req:?}"))).ok();
                        match req {
                            // Relay the real replica's proof.
                            Request::ClusterProof => {
                                let relay = async {
                                    let ep = Endpoint::dial_only(
                                        &Identity::generate(),
                                        "127.0.0.1:0".parse().ok()?,
                                    )
                                    .await
                                    .ok()?;
                                    let conn = ep.connect(real.parse().ok()?, None).await.ok()?;
                                    conn.call::<_, Response>(&Request::ClusterProof, T)
                                        .await
                                        .ok()
                                };
                                relay.await.unwrap_or(Response::Error {
                                    code: ErrorCode::Internal,
                                    message: "relay failed".into(),
                                })
                            }
                            _ => Response::Welcome {
                                heartbeat_interval_ms: 1000,
                                peers: vec![],
                            },
                        }
                    }
                },
            ));
        }
    });

    let dir = tempfile::tempdir()?;
    let a = agent(dir.path(), vec![fake_addr], &cluster.join_token).await?;
    let err = ended(a).await?;
    let msg = err.to_string();
    assert!(matches!(err, AgentError::Untrusted(_)), "{msg}");
    assert!(msg.contains("not vouched for"), "clear error: {msg}");
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(!seen.is_empty(), "the fake was asked for a proof");
    let secret = cluster.join_token.split('_').nth(2).unwrap_or("none");
    for r in &seen {
        assert!(
            !r.contains("Register"),
            "the agent registered with the fake: {r}"
        );
        assert!(!r.contains(secret), "the fake saw the secret: {r}");
    }

    // The same credential joins through the real replica.
    let dir = tempfile::tempdir()?;
    let good = agent(dir.path(), vec![real], &cluster.join_token).await?;
    registered(&cluster.control(0)?, &good).await?;
    good.stop().await.ok();
    cluster.shutdown().await;
    Ok(())
}

/// A one-time credential joins one node, never a second (even through
/// another replica); an expired or revoked one joins none; the agent prints
/// why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_used_and_revoked_credentials_are_refused() -> Result<()> {
    let mut opts = Options::new(2, 0);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    let addrs = cluster.cfg.control_addrs()?;
    let c = cluster.control(0)?;
    c.write(Command::CreateTenant {
        name: "acme".into(),
        now_ms: now_ms(),
    })
    .await?;
    let once = c
        .create_join_credential(JoinCredentialSpec {
            owner: Some("acme".into()),
            once: true,
            ..Default::default()
        })
        .await?;
    let d1 = tempfile::tempdir()?;
    let first = agent(d1.path(), vec![addrs[0].clone()], &once.credential).await?;
    registered(&c, &first).await?;
    let id = c
        .state()
        .read(|s| s.nodes.values().find(|n| n.info.name == "joiner").cloned())
        .ok_or_else(|| anyhow!("no node"))?;
    assert_eq!(id.owner, "acme", "the owner comes from the credential");

    // Second use, through the other replica.
    let d2 = tempfile::tempdir()?;
    let err = ended(agent(d2.path(), vec![addrs[1].clone()], &once.credential).await?).await?;
    assert!(err.to_string().contains("one use"), "{err}");

    let expired = c
        .create_join_credential(JoinCredentialSpec {
            expires_ms: Some(now_ms() - 1),
            ..Default::default()
        })
        .await?;
    let d3 = tempfile::tempdir()?;
    let err = ended(agent(d3.path(), vec![addrs[0].clone()], &expired.credential).await?).await?;
    assert!(err.to_string().contains("expired"), "{err}");

    // Rotation: the old default joins nobody new; the node already joined
    // (by the one-time credential) keeps working.
    let old = cluster.join_token.clone();
    c.create_join_credential(JoinCredentialSpec {
        default: true,
        ..Default::default()
    })
    .await?;
    let d4 = tempfile::tempdir()?;
    let err = ended(agent(d4.path(), vec![addrs[1].clone()], &old).await?).await?;
    assert!(err.to_string().contains("unknown or revoked"), "{err}");
    first.stop().await.ok();
    let again = agent(d1.path(), vec![addrs[1].clone()], &once.credential).await?;
    registered(&c, &again).await?;
    again.stop().await.ok();
    cluster.shutdown().await;
    Ok(())
}

/// `stratus nodes ban`: the banned node is lost for good, its pieces are
/// repaired elsewhere (the data still reads back), it gets no new pieces,
/// and its key cannot register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_banned_node_stays_out_and_its_pieces_are_repaired() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(1, 6)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 6).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    create_bucket(&c, ADMIN_TENANT, "bkt", DedupeScope::Tenant).await?;
    let store = cluster.store(0)?;
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let body =
        |d: &[u8]| futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::copy_from_slice(d))]);
    wait_until("piece services", WAIT, || async {
        store
            .put(ADMIN_TENANT, "bkt", "obj", PutMeta::default(), body(&data))
            .await
            .ok()
    })
    .await?;
    // The node holding the most pieces is banned.
    let (victim, held) = c.state().read(|s| {
        let mut counts = std::collections::BTreeMap::new();
        for p in s.store.packs().into_iter() {
            for sl in &p.pieces {
                *counts.entry(sl.node).or_insert(0usize) += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .unwrap_or_default()
    });
    assert!(held > 0);
    let j = (0..6)
        .find(|j| cluster.agent_id(*j).ok() == Some(victim))
        .ok_or_else(|| anyhow!("no agent holds pieces"))?;
    c.ban_node(victim).await?;

    // Its pieces are rebuilt on other nodes, and the object reads back.
    wait_until(
        "the banned node's pieces repaired",
        Duration::from_secs(60),
        || async {
            let (on_victim, missing) = c.state().read(|s| {
                let on = s
                    .store
                    .packs()
                    .into_iter()
                    .flat_map(|p| p.pieces)
                    .filter(|sl| sl.node == victim)
                    .count();
                (on, s.redundancy().missing_pieces)
            });
            (on_victim == 0 && missing == 0).then_some(())
        },
    )
    .await?;
    let (_, mut s) = store.get(ADMIN_TENANT, "bkt", "obj", None, None).await?;
    let mut out = Vec::new();
    while let Some(b) = futures::StreamExt::next(&mut s).await {
        out.extend_from_slice(&b?);
    }
    assert_eq!(out, data, "the object after the ban");
    // New writes never go to it.
    store
        .put(ADMIN_TENANT, "bkt", "obj2", PutMeta::default(), body(&data))
        .await?;
    let on_victim = c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .flat_map(|p| p.pieces)
            .filter(|sl| sl.node == victim)
            .count()
    });
    assert_eq!(on_victim, 0, "no new piece on the banned node");

    // Its running agent is turned away; restarted, it cannot register.
    let e = match cluster.agents[j].as_mut() {
        Some(a) => tokio::time::timeout(T, a.agent_failed()).await?,
        None => None,
    };
    assert!(
        e.as_ref().is_some_and(|e| e.to_string().contains("banned")),
        "{e:?}"
    );
    cluster.stop_agent(j).await?;
    cluster.start_agent(j).await?;
    let e = match cluster.agents[j].as_mut() {
        Some(a) => tokio::time::timeout(T, a.agent_failed()).await?,
        None => None,
    };
    assert!(
        e.as_ref().is_some_and(|e| e.to_string().contains("banned")),
        "{e:?}"
    );
    let rec = c.state().read(|s| s.nodes.get(&victim).cloned());
    assert!(rec.is_some_and(|r| r.banned && r.status == NodeStatus::Lost));
    cluster.shutdown().await;
    Ok(())
}

/// Only the operator mints join credentials or bans nodes: a tenant's full
/// token is refused (403) — otherwise a tenant could join nodes owned by
/// anyone, or ban other lenders' nodes. The admin's credential works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_operator_manages_join_credentials_and_bans() -> Result<()> {
    let mut opts = Options::new(1, 1);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let api = cluster.api_url(0)?;
    let http = reqwest::Client::new();
    let admin = cluster.admin_token.clone();
    let r = http
        .post(format!("{api}/v1/tenants"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "acme"}))
        .send()
        .await?;
    let body: serde_json::Value = r.json().await?;
    let tenant = body["token"].as_str().unwrap_or_default().to_string();
    let node = cluster.agent_id(0)?;
    for (method, path) in [
        (reqwest::Method::POST, "/v1/join-tokens".to_string()),
        (reqwest::Method::GET, "/v1/join-tokens".to_string()),
        (reqwest::Method::POST, format!("/v1/nodes/{node}/ban")),
    ] {
        let r = http
            .request(method.clone(), format!("{api}{path}"))
            .bearer_auth(&tenant)
            .json(&serde_json::json!({"owner": "acme"}))
            .send()
            .await?;
        assert_eq!(
            r.status(),
            reqwest::StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    assert!(!cluster.control(0)?.is_banned(&node));
    let r = http
        .post(format!("{api}/v1/join-tokens"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"owner": "acme", "once": true}))
        .send()
        .await?;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let body: serde_json::Value = r.json().await?;
    let credential = body["credential"].as_str().unwrap_or_default().to_string();
    let d = tempfile::tempdir()?;
    let a = agent(d.path(), cluster.cfg.control_addrs()?, &credential).await?;
    registered(&cluster.control(0)?, &a).await?;
    let owner = cluster.control(0)?.state().read(|s| {
        s.nodes
            .values()
            .find(|n| n.info.name == "joiner")
            .map(|n| n.owner.clone())
    });
    assert_eq!(owner.as_deref(), Some("acme"));
    a.stop().await.ok();
    cluster.shutdown().await;
    Ok(())
}

/// The instances of a banned node are placed elsewhere at once, even when
/// the workload would wait an hour for a lost node to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_banned_nodes_instances_move_elsewhere_at_once() -> Result<()> {
    let mut opts = Options::new(1, 2);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    let module = include_str!("../../../examples/wasm/service.wat")
        .as_bytes()
        .to_vec();
    let hash = stratus_testkit::put_module(&c, stratus_types::ADMIN_TENANT, module).await?;
    let id = stratus_testkit::deploy(
        &c,
        "version: 1\nname: svc\nkind: service\ncount: 1\nwasm: { module: service.wat }\nargs: [\"100\"]\n\
         resources: { cpu_millis: 100, memory_mb: 16 }\ndisconnect: { wait_secs: 3600, replace: true }\n",
        hash,
    )
    .await?;
    let running = |c: &Control| {
        stratus_testkit::instances(c, &id)
            .into_iter()
            .filter(|i| i.state == stratus_state::InstanceState::Running)
            .map(|i| i.node)
            .collect::<Vec<_>>()
    };
    let first = wait_until("the service running", WAIT, || async {
        running(&c).first().copied()
    })
    .await?;
    c.ban_node(first).await?;
    let moved = wait_until("a replacement on the other node", WAIT, || async {
        running(&c).into_iter().find(|n| *n != first)
    })
    .await?;
    assert_ne!(moved, first);
    cluster.shutdown().await;
    Ok(())
}
