//! Owner-aware piece placement (issue 13, item 5): one lender with many
//! nodes (a Sybil) never holds more than `m` pieces of a stripe, so taking
//! all of its nodes away loses no data.

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures::StreamExt;
use stratus_control::joining::JoinCredentialSpec;
use stratus_control::{now_ms, Control};
use stratus_state::objects::{Bucket, DedupeScope, ErasureProfile, StoreCommand, Versioning};
use stratus_state::Command;
use stratus_store::{PutMeta, Store};
use stratus_testkit::{wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::{NodeId, NodeStatus, ADMIN_TENANT};

async fn bucket(c: &Control, name: &str, profile: Option<ErasureProfile>) -> Result<()> {
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: name.into(),
            tenant: ADMIN_TENANT.into(),
            profile,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Enabled,
            created_ms: now_ms(),
        },
    }))
    .await?;
    Ok(())
}

fn body(d: &[u8]) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin {
    futures::stream::iter(vec![Ok(Bytes::copy_from_slice(d))])
}

async fn read(store: &Store, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let (_, mut s) = store.get(ADMIN_TENANT, bucket, key, None, None).await?;
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

/// Three lenders with one node each and a Sybil lender with six: with the
/// automatic profile every stripe has at most `m` pieces on the Sybil's
/// nodes, and everything reads back once all six are gone. A fixed profile
/// that cannot be spread that way is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_owner_with_six_nodes_holds_at_most_m_pieces_of_a_stripe() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    c.write(Command::CreateTenant {
        name: "sybil".into(),
        now_ms: now_ms(),
    })
    .await?;
    let cred = c
        .create_join_credential(JoinCredentialSpec {
            owner: Some("sybil".into()),
            ..Default::default()
        })
        .await?;
    for j in 3..9 {
        let a = stratus_node::start(cluster.cfg.agent(j, &cred.credential)?).await?;
        cluster.agents.push(Some(a));
    }
    cluster.wait_nodes(0, NodeStatus::Ready, 9).await?;
    let sybil: Vec<NodeId> = c.state().read(|s| {
        s.nodes
            .values()
            .filter(|n| n.owner == "sybil")
            .map(|n| n.info.id)
            .collect()
    });
    assert_eq!(sybil.len(), 6, "the owner comes from the credential");

    bucket(&c, "auto", None).await?;
    let store = cluster.store(0)?;
    let data: Vec<Vec<u8>> = (0..4u32)
        .map(|i| {
            (0..400_000u32)
                .map(|b| (b.wrapping_mul(31 + i) % 253) as u8)
                .collect()
        })
        .collect();
    wait_until("piece services", WAIT, || async {
        store
            .put(
                ADMIN_TENANT,
                "auto",
                "probe",
                PutMeta::default(),
                body(b"x"),
            )
            .await
            .ok()
    })
    .await?;
    for (i, d) in data.iter().enumerate() {
        store
            .put(
                ADMIN_TENANT,
                "auto",
                &format!("o{i}"),
                PutMeta::default(),
                body(d),
            )
            .await?;
    }
    let packs = c.state().read(|s| s.store.packs());
    assert!(packs.len() >= 4);
    for p in &packs {
        let on_sybil = p
            .pieces
            .iter()
            .filter(|sl| sybil.contains(&sl.node))
            .count();
        assert!(
            on_sybil <= usize::from(p.profile.m),
            "pack {}: {on_sybil} of {}+{} pieces on one owner",
            p.id,
            p.profile.k,
            p.profile.m
        );
        assert!(p.pieces.len() - on_sybil >= usize::from(p.profile.k));
    }

    // 4+2 needs 6 pieces; the owners can take 2 + 1 + 1 + 1: refused.
    bucket(&c, "wide", Some(ErasureProfile { k: 4, m: 2 })).await?;
    // (New bytes: stored chunks would be deduplicated, writing no stripe.)
    let fresh: Vec<u8> = (0..300_000u32).map(|b| (b % 241) as u8 ^ 0x5a).collect();
    let err = store
        .put(ADMIN_TENANT, "wide", "x", PutMeta::default(), body(&fresh))
        .await
        .err()
        .ok_or_else(|| anyhow!("a 4+2 stripe was placed on too few owners"))?;
    assert!(err.to_string().contains("more owners"), "{err}");

    // The Sybil walks away with all six nodes: nothing is lost.
    for j in 3..9 {
        cluster.stop_agent(j).await?;
    }
    cluster.wait_nodes(0, NodeStatus::Lost, 6).await?;
    for (i, d) in data.iter().enumerate() {
        assert_eq!(&read(&store, "auto", &format!("o{i}")).await?, d, "o{i}");
    }
    cluster.shutdown().await;
    Ok(())
}
