//! The object store on an in-process cluster: real storage nodes (piece
//! stores on disk behind QUIC), real Raft metadata, real repair.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rand::{Rng, RngCore, SeedableRng};
use stratus_control::{now_ms, Control};
use stratus_proto::{PieceRequest, PieceResponse};
use stratus_state::objects::{DedupeScope, StoreCommand};
use stratus_state::Command;
use stratus_store::{PutMeta, Store};
use stratus_testkit::{create_bucket, wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::{ErrorCode, NodeStatus};

const TENANT: &str = "admin";

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    // Half of it compressible, as real files are.
    for b in v.iter_mut().take(len / 2) {
        *b %= 4;
    }
    v
}

/// The bytes as a body stream cut into irregular pieces.
fn body(bytes: &[u8], seed: u64) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut parts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let n = rng.gen_range(1..=200_000).min(bytes.len() - pos);
        parts.push(Ok(Bytes::copy_from_slice(&bytes[pos..pos + n])));
        pos += n;
    }
    futures::stream::iter(parts)
}

async fn read_all(store: &Store, key: &str, version: Option<&str>) -> Result<Vec<u8>> {
    let (_, mut s) = store.get(TENANT, "bkt", key, version, None).await?;
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
    // The storage secret is written at bootstrap.
    wait_storage_secret(&c).await?;
    create_bucket(&c, TENANT, "bkt", DedupeScope::Tenant).await?;
    let store = cluster.store(0)?;
    // Piece services accept a replica once its agent has learned it.
    wait_until("piece services", WAIT, || async {
        let r = store
            .put(TENANT, "bkt", "probe", PutMeta::default(), body(b"x", 0))
            .await;
        r.is_ok().then_some(())
    })
    .await?;
    Ok((cluster, store, c))
}

async fn wait_full_redundancy(c: &Control) -> Result<()> {
    wait_until("full redundancy", Duration::from_secs(60), || async {
        let h = c.state().read(|s| s.redundancy());
        (h.missing_pieces == 0).then_some(())
    })
    .await
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trips_survive_two_losses_repair_and_two_more() -> Result<()> {
    let (mut cluster, store, c) = start(6).await?;
    // 0 bytes up to several packs and more than the body channel holds.
    let sizes = [0usize, 1, 1000, 65_537, 300_000, 1 << 20, 3 << 20];
    let mut objects = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let d = data(*n, i as u64);
        let key = format!("obj/{i}");
        let r = store
            .put(
                TENANT,
                "bkt",
                &key,
                PutMeta::default(),
                body(&d, i as u64 + 100),
            )
            .await?;
        assert_eq!(r.size, *n as u64);
        assert_eq!(read_all(&store, &key, None).await?, d, "{key} round trip");
        objects.push((key, d));
    }
    // Ranged reads across chunk and pack boundaries.
    let (key, big) = &objects[6];
    for (a, b) in [
        (0u64, 1u64),
        (12_345, 700_001),
        (big.len() as u64 - 10, big.len() as u64),
    ] {
        let (_, mut s) = store
            .get(
                TENANT,
                "bkt",
                key,
                None,
                Some(stratus_store::ByteRange { start: a, end: b }),
            )
            .await?;
        let mut out = Vec::new();
        while let Some(x) = s.next().await {
            out.extend_from_slice(&x?);
        }
        assert_eq!(out, big[a as usize..b as usize], "range {a}..{b}");
    }
    // Profile with 6 nodes: 2+2 (two spares for repair).
    let widths: BTreeSet<usize> = c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .map(|p| p.pieces.len())
            .collect()
    });
    assert_eq!(widths, BTreeSet::from([4]));

    // Two storage nodes gone: everything still reads back.
    cluster.stop_agent(0).await?;
    cluster.stop_agent(1).await?;
    cluster.wait_nodes(0, NodeStatus::Lost, 2).await?;
    for (key, d) in &objects {
        assert_eq!(
            &read_all(&store, key, None).await?,
            d,
            "{key} with 2 nodes lost"
        );
    }
    // Repair restores full redundancy on the 4 nodes left ...
    wait_full_redundancy(&c).await?;
    // ... so losing 2 more loses nothing.
    cluster.stop_agent(2).await?;
    cluster.stop_agent(3).await?;
    cluster.wait_nodes(0, NodeStatus::Lost, 4).await?;
    for (key, d) in &objects {
        assert_eq!(
            &read_all(&store, key, None).await?,
            d,
            "{key} with 4 nodes lost"
        );
    }
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_piece_is_detected_served_around_and_repaired() -> Result<()> {
    let (cluster, store, c) = start(6).await?;
    let d = data(600_000, 7);
    store
        .put(TENANT, "bkt", "f", PutMeta::default(), body(&d, 1))
        .await?;
    // Flip one bit of every data piece of the object's first pack.
    let (pack, slots) = c.state().read(|s| {
        let v = s.store.version("bkt", "f", None).unwrap();
        let first = v.data.as_ref().unwrap().chunks[0].id;
        let pack = s.store.chunk(&first).unwrap().pack;
        (pack, s.store.pack(pack).unwrap().pieces.clone())
    });
    let j = (0..6)
        .find(|j| cluster.agent_id(*j).ok() == Some(slots[0].node))
        .context("agent of piece 0")?;
    let hex = slots[0].id.to_string();
    let path = cluster
        .agent_dir(j)
        .join("pieces/p")
        .join(&hex[..2])
        .join(&hex);
    let mut bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes)?;
    // The read is still exact (served from the other pieces) ...
    assert_eq!(read_all(&store, "f", None).await?, d);
    // ... the piece is reported bad and rebuilt on another node.
    wait_until("the bad piece moved", WAIT, || async {
        let slot = c.state().read(|s| s.store.pack(pack).unwrap().pieces[0]);
        (slot.node != slots[0].node && !slot.bad).then_some(())
    })
    .await?;
    wait_full_redundancy(&c).await?;
    assert_eq!(read_all(&store, "f", None).await?, d);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scrub_finds_rot_that_no_read_touched() -> Result<()> {
    let (cluster, store, c) = start(5).await?;
    let d = data(200_000, 9);
    store
        .put(TENANT, "bkt", "cold", PutMeta::default(), body(&d, 2))
        .await?;
    let slot = c.state().read(|s| {
        let v = s.store.version("bkt", "cold", None).unwrap();
        let pack = s
            .store
            .chunk(&v.data.as_ref().unwrap().chunks[0].id)
            .unwrap()
            .pack;
        s.store.pack(pack).unwrap().pieces[1]
    });
    let j = (0..5)
        .find(|j| cluster.agent_id(*j).ok() == Some(slot.node))
        .context("agent")?;
    let hex = slot.id.to_string();
    let path = cluster
        .agent_dir(j)
        .join("pieces/p")
        .join(&hex[..2])
        .join(&hex);
    let mut bytes = std::fs::read(&path)?;
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes)?;
    let r = store.scrub_once(u64::MAX).await;
    assert_eq!(r.corrupt, 1, "{r:?}");
    wait_full_redundancy(&c).await?;
    let scrubbed = c.state().read(|s| {
        s.store
            .scrubs
            .values()
            .map(|r| r.corrupt_total)
            .sum::<u64>()
    });
    assert_eq!(scrubbed, 1);
    assert_eq!(read_all(&store, "cold", None).await?, d);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dedupe_versions_delete_markers_and_gc() -> Result<()> {
    let (cluster, store, c) = start(4).await?;
    let d = data(500_000, 3);
    let first = store
        .put(TENANT, "bkt", "a", PutMeta::default(), body(&d, 1))
        .await?;
    assert!(first.piece_bytes > 0);
    let used = || c.state().read(|s| s.store.node_used.values().sum::<u64>());
    let before = used();
    // The same file again, under another key: no new piece space.
    let second = store
        .put(TENANT, "bkt", "copy-of-a", PutMeta::default(), body(&d, 2))
        .await?;
    assert_eq!((second.new_chunks, second.piece_bytes), (0, 0));
    assert_eq!(used(), before);
    // A new version of "a", then a delete marker.
    let d2 = data(100_000, 4);
    let v2 = store
        .put(TENANT, "bkt", "a", PutMeta::default(), body(&d2, 3))
        .await?;
    assert_ne!(v2.version_id, first.version_id);
    assert_eq!(read_all(&store, "a", None).await?, d2);
    assert_eq!(read_all(&store, "a", Some(&first.version_id)).await?, d);
    c.write(Command::Store(StoreCommand::DeleteObject {
        tenant: TENANT.into(),
        bucket: "bkt".into(),
        key: "a".into(),
        version_id: None,
        now_ms: now_ms(),
    }))
    .await?;
    let e = read_all(&store, "a", None).await.unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert_eq!(read_all(&store, "a", Some(&first.version_id)).await?, d);
    let versions = c.state().read(|s| s.store.versions("bkt", "a").len());
    assert_eq!(versions, 3, "two versions and a marker");

    // Removing every version of the data leaves nothing referenced: GC
    // frees its pieces on the nodes.
    for key in ["a", "copy-of-a"] {
        let ids: Vec<String> = c.state().read(|s| {
            s.store
                .versions("bkt", key)
                .iter()
                .map(|v| v.version_id.clone())
                .collect()
        });
        for v in ids {
            c.write(Command::Store(StoreCommand::DeleteObject {
                tenant: TENANT.into(),
                bucket: "bkt".into(),
                key: key.into(),
                version_id: Some(v),
                now_ms: now_ms(),
            }))
            .await?;
        }
    }
    let r = store.gc_once().await?;
    assert!(r.chunks > 0 && r.pieces > 0, "{r:?}");
    let probe_bytes = c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .map(|p| p.piece_len * p.pieces.len() as u64)
            .sum::<u64>()
    });
    assert_eq!(used(), probe_bytes, "only the probe object's pieces remain");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupted_upload_leaves_nothing_visible_and_gc_reclaims_it() -> Result<()> {
    let (cluster, store, c) = start(4).await?;
    let before = c.state().read(|s| s.store.node_used.values().sum::<u64>());
    let d = data(2 << 20, 5);
    // The client sends 2 MiB, waits, and goes away.
    let parts = futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&d[..1 << 20])),
        Ok(Bytes::copy_from_slice(&d[1 << 20..])),
    ])
    .chain(futures::stream::once(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        ))
    }));
    let e = store
        .put(
            TENANT,
            "bkt",
            "partial",
            PutMeta::default(),
            Box::pin(parts),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest, "{e}");
    let visible = c
        .state()
        .read(|s| s.store.latest("bkt", "partial").is_some());
    assert!(!visible, "no version of an interrupted upload");
    // Its packs were written (the upload streamed), and are garbage now.
    assert!(c.state().read(|s| s.store.node_used.values().sum::<u64>()) > before);
    store.gc_once().await?;
    assert_eq!(
        c.state().read(|s| s.store.node_used.values().sum::<u64>()),
        before
    );
    // And on the nodes' disks: only the pieces the metadata names.
    let named = c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .map(|p| p.pieces.len())
            .sum::<usize>()
    });
    let on_disk = files(&cluster.cfg.data_dir)
        .iter()
        .filter(|p| p.to_string_lossy().contains("/pieces/p/"))
        .count();
    assert_eq!(on_disk, named);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_plaintext_on_any_disk() -> Result<()> {
    let (cluster, store, _c) = start(4).await?;
    let marker = b"STRATUS-PLAINTEXT-MARKER-7f3a9c";
    // Incompressible data with the marker sprinkled in, and a compressible file.
    let mut d = data(400_000, 11);
    for i in (0..d.len() - marker.len()).step_by(50_000) {
        d[i..i + marker.len()].copy_from_slice(marker);
    }
    let text: Vec<u8> = marker.iter().copied().cycle().take(300_000).collect();
    store
        .put(TENANT, "bkt", "secret-1", PutMeta::default(), body(&d, 1))
        .await?;
    store
        .put(
            TENANT,
            "bkt",
            "secret-2",
            PutMeta::default(),
            body(&text, 2),
        )
        .await?;
    assert_eq!(read_all(&store, "secret-1", None).await?, d);
    let all = files(&cluster.cfg.data_dir);
    assert!(
        all.iter()
            .any(|p| p.to_string_lossy().contains("/pieces/p/")),
        "pieces on disk"
    );
    for p in all {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext marker found in {}",
            p.display()
        );
    }
    cluster.shutdown().await;
    Ok(())
}

/// Data pieces (the ones reads fetch first) held by `node` and not known bad.
fn liar_data_pieces(c: &Control, node: stratus_types::NodeId) -> usize {
    c.state().read(|s| {
        s.store
            .packs()
            .into_iter()
            .flat_map(|p| p.pieces.into_iter().take(usize::from(p.profile.k)))
            .filter(|sl| sl.node == node && !sl.bad)
            .count()
    })
}

/// A storage node that answers reads with wrong bytes: every read, or
/// (`ranges_only`) only ranged reads, which it knows reads do not hash.
struct Liar {
    pieces: stratus_pieces::PieceStore,
    ranges_only: bool,
}

impl stratus_store::server::PieceBackend for Liar {
    fn handle(&self, req: PieceRequest) -> PieceResponse {
        let lie = !self.ranges_only || matches!(req, PieceRequest::GetRange { .. });
        match stratus_store::server::PieceBackend::handle(&self.pieces, req) {
            PieceResponse::Bytes(mut b) if lie => {
                if let Some(x) = b.first_mut() {
                    *x ^= 0xff;
                }
                PieceResponse::Bytes(b)
            }
            other => other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_lies_is_detected() -> Result<()> {
    a_liar_is_found_out(false).await
}

/// Reads fetch the span they need by ranged reads that nobody hashes (the
/// chunks' AEAD authenticates them): a node lying only there still cannot
/// change what is read, and is found out by the verified read that follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_lies_only_on_ranged_reads_is_detected() -> Result<()> {
    a_liar_is_found_out(true).await
}

async fn a_liar_is_found_out(ranges_only: bool) -> Result<()> {
    let (cluster, store, c) = start(5).await?;
    // A sixth storage node, real in every way but that it corrupts what it serves.
    let dir = tempfile::tempdir()?;
    let identity = stratus_net::Identity::load_or_create(dir.path())?;
    let ep = stratus_net::Endpoint::bind(&identity, "127.0.0.1:0".parse()?).await?;
    let dial = stratus_net::Endpoint::dial_only(&identity, "127.0.0.1:0".parse()?).await?;
    let liar_id = ep.node_id();
    let agent = stratus_agent::Agent::start(
        stratus_agent::AgentConfig {
            data_dir: dir.path().to_path_buf(),
            name: "liar".into(),
            control: cluster.cfg.control_addrs()?,
            join_token: cluster.join_token.clone(),
            attributes: Default::default(),
            capacity: None,
            storage: Some(stratus_types::StorageInfo {
                addr: ep.local_addr()?.to_string(),
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
    let liar = Arc::new(Liar {
        pieces: stratus_pieces::PieceStore::open(&dir.path().join("pieces"), 1 << 40)?,
        ranges_only,
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(stratus_store::server::serve(
        ep,
        liar,
        agent.replicas(),
        cancel.clone(),
    ));
    cluster.wait_nodes(0, NodeStatus::Ready, 6).await?;
    // Write until some stripe has a piece on the liar (it has the most free space).
    let mut objects = Vec::new();
    for i in 0..20 {
        let d = data(100_000, 100 + i);
        let key = format!("k{i}");
        match store
            .put(TENANT, "bkt", &key, PutMeta::default(), body(&d, i))
            .await
        {
            Ok(_) => objects.push((key, d)),
            Err(e) => bail!("put {key}: {e}"),
        }
        if liar_data_pieces(&c, liar_id) > 0 && i >= 5 {
            break;
        }
    }
    assert!(
        liar_data_pieces(&c, liar_id) > 0,
        "some data piece landed on the liar"
    );
    // Every read is still exact: the liar's bytes fail verification.
    for (key, d) in &objects {
        assert_eq!(&read_all(&store, key, None).await?, d, "{key}");
    }
    // Every piece it served was found out and rebuilt elsewhere.
    wait_until("the liar's pieces replaced", WAIT, || async {
        (liar_data_pieces(&c, liar_id) == 0).then_some(())
    })
    .await?;
    for (key, d) in &objects {
        assert_eq!(&read_all(&store, key, None).await?, d, "{key} after repair");
    }
    // Wrong bytes are a lie (an honest node verifies what it serves): it is
    // marked and gets no new pieces.
    wait_until("the liar marked", WAIT, || async {
        c.state().read(|s| s.marked(&liar_id)).then_some(())
    })
    .await?;
    // Its record shows it (issue 16): a lost result per command of strikes.
    let liar_reputation = c.state().read(|s| s.reputation(&liar_id));
    assert!(liar_reputation.lost >= 1, "{liar_reputation:?}");
    cancel.cancel();
    agent.stop().await?;
    cluster.shutdown().await;
    Ok(())
}
