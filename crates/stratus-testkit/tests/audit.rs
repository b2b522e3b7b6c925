//! Storage nodes that lie about their pieces, storage nodes that are full,
//! and a control replica whose disk is nearly full (issue 13, items 5 and
//! 10), on an in-process cluster.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rand::{RngCore, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stratus_control::Control;
use stratus_proto::{PieceErrorKind, PieceRequest, PieceResponse};
use stratus_state::objects::DedupeScope;
use stratus_store::server::PieceBackend;
use stratus_store::{PutMeta, Store};
use stratus_testkit::{create_bucket, wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::{NodeId, NodeStatus};

const TENANT: &str = "admin";

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn body(bytes: &[u8]) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(bytes))])
}

async fn read_all(store: &Store, key: &str) -> Result<Vec<u8>> {
    let (_, mut s) = store.get(TENANT, "bkt", key, None, None).await?;
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

async fn start(agents: usize) -> Result<(Cluster, Store, Control)> {
    let cluster = Cluster::start(Options::new(1, agents)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, agents).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    create_bucket(&c, TENANT, "bkt", DedupeScope::Tenant).await?;
    let store = cluster.store(0)?;
    wait_until("piece services", WAIT, || async {
        let r = store
            .put(TENANT, "bkt", "probe", PutMeta::default(), body(b"x"))
            .await;
        r.is_ok().then_some(())
    })
    .await?;
    Ok((cluster, store, c))
}

/// A storage node of the cluster whose piece service is `backend`.
struct Custom {
    id: NodeId,
    agent: stratus_agent::Agent,
    cancel: tokio_util::sync::CancellationToken,
    _dir: tempfile::TempDir,
}

impl Custom {
    async fn start(
        cluster: &Cluster,
        name: &str,
        backend: Arc<dyn PieceBackend>,
    ) -> Result<Custom> {
        let dir = tempfile::tempdir()?;
        let identity = stratus_net::Identity::load_or_create(dir.path())?;
        let ep = stratus_net::Endpoint::bind(&identity, "127.0.0.1:0".parse()?).await?;
        let dial = stratus_net::Endpoint::dial_only(&identity, "127.0.0.1:0".parse()?).await?;
        let id = ep.node_id();
        let agent = stratus_agent::Agent::start(
            stratus_agent::AgentConfig {
                data_dir: dir.path().to_path_buf(),
                name: name.into(),
                control: cluster.cfg.control_addrs()?,
                join_token: cluster.join_token.clone(),
                attributes: Default::default(),
                capacity: None,
                storage: Some(stratus_types::StorageInfo {
                    addr: ep.local_addr()?.to_string(),
                    // The most lent space: placement prefers it.
                    capacity_bytes: 1 << 40,
                }),
                containers: false,
                ports: stratus_types::PortRange::DEFAULT,
                userns: None,
                egress: Default::default(),
                offer: None,
            },
            dial,
            None,
        )?;
        let cancel = tokio_util::sync::CancellationToken::new();
        tokio::spawn(stratus_store::server::serve(
            ep,
            backend,
            agent.replicas(),
            cancel.clone(),
        ));
        Ok(Custom {
            id,
            agent,
            cancel,
            _dir: dir,
        })
    }

    async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        self.agent.stop().await?;
        Ok(())
    }
}

/// A storage node that acknowledges every piece, keeps none once
/// `dropping`, tells the replica's scrub it is healthy, and answers
/// challenges with made-up proofs.
struct Dropper {
    store: stratus_pieces::PieceStore,
    dropping: AtomicBool,
    puts: AtomicU64,
}

impl PieceBackend for Dropper {
    fn handle(&self, req: PieceRequest) -> PieceResponse {
        let dropping = self.dropping.load(Ordering::SeqCst);
        match req {
            PieceRequest::Put { .. } if dropping => {
                self.puts.fetch_add(1, Ordering::SeqCst);
                PieceResponse::Stored(true)
            }
            PieceRequest::Scrub { max_bytes } => PieceResponse::Scrub {
                checked_pieces: 100,
                checked_bytes: max_bytes.min(1 << 30),
                corrupt: Vec::new(),
                wrapped: true,
            },
            PieceRequest::Prove { len, .. } if dropping => {
                PieceResponse::Proof(data(len as usize + 600, len))
            }
            other => {
                if matches!(other, PieceRequest::Put { .. }) {
                    self.puts.fetch_add(1, Ordering::SeqCst);
                }
                self.store.handle(other)
            }
        }
    }
}

/// Pieces the metadata places on `node` and does not know bad.
fn pieces_on(c: &Control, node: NodeId) -> usize {
    c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .flat_map(|p| p.pieces)
            .filter(|sl| sl.node == node && !sl.bad)
            .count()
    })
}

async fn call(
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_drops_pieces_and_reports_healthy_is_found_marked_and_repaired() -> Result<()> {
    let (cluster, store, c) = start(5).await?;
    let pieces_dir = tempfile::tempdir()?;
    let dropper = Arc::new(Dropper {
        store: stratus_pieces::PieceStore::open(pieces_dir.path(), 1 << 40)?,
        dropping: AtomicBool::new(true),
        puts: AtomicU64::new(0),
    });
    let node = Custom::start(&cluster, "dropper", dropper.clone()).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 6).await?;
    // Write until the dropper was given pieces (it has the most free space).
    let mut objects = Vec::new();
    for i in 0..20u64 {
        let d = data(150_000, 100 + i);
        let key = format!("k{i}");
        store
            .put(TENANT, "bkt", &key, PutMeta::default(), body(&d))
            .await?;
        objects.push((key, d));
        if pieces_on(&c, node.id) >= 3 && i >= 4 {
            break;
        }
    }
    let held = pieces_on(&c, node.id);
    assert!(held >= 1, "the dropper was given pieces");

    // Its own scrub report says all is well; the replica's challenges do not
    // take its word for it.
    let r = store.scrub_once(u64::MAX).await;
    assert_eq!(r.corrupt, 0, "the node claims no corrupt piece: {r:?}");
    assert!(r.challenges_failed >= 1, "{r:?}");
    assert_eq!(r.marked, 1, "{r:?}");
    let mark = c
        .state()
        .read(|s| s.marks.get(&node.id).and_then(|m| m.marked.clone()))
        .context("the dropper is marked")?;
    assert!(mark.reason.contains("wrong proof"), "{}", mark.reason);

    // Its pieces are rebuilt elsewhere; every object reads back exactly.
    wait_until("the dropper's pieces rebuilt elsewhere", WAIT, || async {
        let h = c.state().read(|s| s.redundancy());
        (pieces_on(&c, node.id) == 0 && h.missing_pieces == 0).then_some(())
    })
    .await?;
    for (key, d) in &objects {
        assert_eq!(&read_all(&store, key).await?, d, "{key}");
    }

    // It gets no new pieces.
    let puts = dropper.puts.load(Ordering::SeqCst);
    for i in 0..6u64 {
        let d = data(150_000, 500 + i);
        store
            .put(
                TENANT,
                "bkt",
                &format!("after{i}"),
                PutMeta::default(),
                body(&d),
            )
            .await?;
    }
    assert_eq!(
        dropper.puts.load(Ordering::SeqCst),
        puts,
        "no piece sent to a marked node"
    );
    let named = c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .flat_map(|p| p.pieces)
            .any(|sl| sl.node == node.id && !sl.bad)
    });
    assert!(!named, "no stripe names the marked node");

    // Operators see the mark and may clear it; nobody else may.
    let api = cluster.api_url(0)?;
    let (code, marks) = call(
        Method::GET,
        &format!("{api}/v1/nodes/marks"),
        &cluster.admin_token,
        None,
    )
    .await?;
    assert_eq!(code, StatusCode::OK);
    assert!(
        marks
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["node"] == json!(node.id.to_string())
                && m["marked"]["reason"].as_str().is_some()),
        "{marks}"
    );
    let (_, storage) = call(
        Method::GET,
        &format!("{api}/v1/storage"),
        &cluster.admin_token,
        None,
    )
    .await?;
    let view = storage["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == json!(node.id.to_string()))
        .cloned()
        .context("the dropper in /v1/storage")?;
    assert!(view["marked"]["reason"].as_str().is_some(), "{view}");
    let (code, _) = call(
        Method::POST,
        &format!("{api}/v1/nodes/{}/unmark", node.id),
        &cluster.admin_token,
        Some(json!({})),
    )
    .await?;
    assert_eq!(code, StatusCode::OK);
    assert!(!c.state().read(|s| s.marked(&node.id)));

    node.stop().await?;
    cluster.shutdown().await;
    Ok(())
}

/// A storage node whose disk is full: it reports no free space and refuses
/// every piece for lack of it.
struct FullNode {
    puts: AtomicU64,
}

impl PieceBackend for FullNode {
    fn handle(&self, req: PieceRequest) -> PieceResponse {
        match req {
            PieceRequest::Put { .. } => {
                self.puts.fetch_add(1, Ordering::SeqCst);
                PieceResponse::Error {
                    kind: PieceErrorKind::Full,
                    message: "no space left on the node's disk".into(),
                }
            }
            PieceRequest::Usage => PieceResponse::Usage {
                capacity_bytes: 1 << 40,
                used_bytes: 0,
                pieces: 0,
                fs_available_bytes: 4096,
            },
            PieceRequest::List => PieceResponse::List(Vec::new()),
            _ => PieceResponse::Error {
                kind: PieceErrorKind::NotFound,
                message: "no such piece".into(),
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_storage_node_gets_no_pieces_and_is_shown_full() -> Result<()> {
    let (cluster, store, c) = start(4).await?;
    let full = Arc::new(FullNode {
        puts: AtomicU64::new(0),
    });
    let node = Custom::start(&cluster, "full", full.clone()).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 5).await?;
    // Its piece service answers once its agent learned the replica.
    wait_until("the full node measured", WAIT, || async {
        store.refresh_usage().await;
        store
            .node_space()
            .iter()
            .any(|n| n.node == node.id && n.full)
            .then_some(())
    })
    .await?;
    for i in 0..8u64 {
        let d = data(150_000, 700 + i);
        store
            .put(
                TENANT,
                "bkt",
                &format!("f{i}"),
                PutMeta::default(),
                body(&d),
            )
            .await?;
    }
    assert_eq!(
        full.puts.load(Ordering::SeqCst),
        0,
        "a full node was sent pieces"
    );
    assert_eq!(pieces_on(&c, node.id), 0);
    // Full is not failing: no strike, no mark.
    assert!(c.state().read(|s| !s.marks.contains_key(&node.id)));

    let api = cluster.api_url(0)?;
    let (code, status) = call(
        Method::GET,
        &format!("{api}/v1/status"),
        &cluster.admin_token,
        None,
    )
    .await?;
    assert_eq!(code, StatusCode::OK);
    assert!(
        status["full_storage_nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == json!(node.id.to_string())),
        "{status}"
    );
    let (_, storage) = call(
        Method::GET,
        &format!("{api}/v1/storage"),
        &cluster.admin_token,
        None,
    )
    .await?;
    assert!(
        storage["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == json!(node.id.to_string()) && n["full"] == json!(true)),
        "{storage}"
    );
    node.stop().await?;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_under_its_disk_watermark_refuses_writes_and_still_reads() -> Result<()> {
    let (cluster, store, c) = start(3).await?;
    let api = cluster.api_url(0)?;
    let token = cluster.admin_token.clone();
    let var = format!("{api}/v1/tenants/admin/vars/k");
    let (code, _) = call(Method::PUT, &var, &token, Some(json!({"value": "1"}))).await?;
    assert_eq!(code, StatusCode::OK);
    store
        .put(
            TENANT,
            "bkt",
            "kept",
            PutMeta::default(),
            body(b"kept bytes"),
        )
        .await?;

    // More free space demanded than any disk has: the disk is "low".
    c.set_min_free_bytes(Some(u64::MAX));
    let (code, body_) = call(Method::PUT, &var, &token, Some(json!({"value": "2"}))).await?;
    assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE, "{body_}");
    assert_eq!(
        body_["error"]["code"],
        json!("insufficient_storage"),
        "{body_}"
    );
    let msg = body_["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("nearly full"), "{msg}");
    let (code, _) = call(
        Method::PUT,
        &format!("{api}/v1/buckets/bkt/objects/new"),
        &token,
        None,
    )
    .await?;
    assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE);
    // Reads still work, and so do deletes (they free space).
    let (code, v) = call(Method::GET, &var, &token, None).await?;
    assert_eq!((code, v["value"].clone()), (StatusCode::OK, json!("1")));
    assert_eq!(read_all(&store, "kept").await?, b"kept bytes");
    let (code, _) = call(Method::DELETE, &var, &token, None).await?;
    assert_eq!(code, StatusCode::OK);
    let (_, status) = call(Method::GET, &format!("{api}/v1/status"), &token, None).await?;
    assert_eq!(status["disk"]["low"], json!(true), "{status}");
    assert!(status["disk"]["free_bytes"].as_u64().unwrap() > 0);

    // A watermark the disk is above: writes go through again.
    c.set_min_free_bytes(Some(0));
    let (code, _) = call(Method::PUT, &var, &token, Some(json!({"value": "3"}))).await?;
    assert_eq!(code, StatusCode::OK);
    cluster.shutdown().await;
    Ok(())
}
