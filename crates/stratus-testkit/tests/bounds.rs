//! What lenders and HTTP clients feed a replica is bounded (issue 13,
//! item 6): node descriptions a registered agent sends, and request bodies
//! that stall.

#![allow(clippy::unwrap_used)]

use anyhow::Result;
use stratus_proto::{Request, Response};
use stratus_testkit::{Cluster, Options};
use stratus_types::{ErrorCode, NodeStatus};

/// A registered lender re-registers (its frames may be 24 MiB) with a
/// 10 MB name, then with 100,000 labels: both refused, naming the limit,
/// and nothing of it reaches the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lender_registering_huge_strings_is_refused() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 1)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let id = cluster.agent_id(0)?;
    let info = c.state().read(|s| s.nodes[&id].info.clone());

    let mut big_name = info.clone();
    big_name.name = "n".repeat(10_000_000);
    let mut many_labels = info.clone();
    for n in 0..100_000 {
        many_labels
            .attributes
            .labels
            .insert(format!("label-{n}"), "v".into());
    }
    for (what, bad, limit) in [
        ("name", big_name, "the limit is 253"),
        ("attributes.labels", many_labels, "the limit is 64"),
    ] {
        let answer = c
            .handle(
                id,
                Request::Register {
                    info: bad,
                    join_token: cluster.join_token.clone(),
                },
            )
            .await;
        match answer {
            Response::Error { code, message } => {
                assert_eq!(code, ErrorCode::BadRequest, "{message}");
                assert!(
                    message.contains(what) && message.contains(limit),
                    "{message}"
                );
            }
            other => panic!("{what}: accepted: {other:?}"),
        }
    }
    let kept = c.state().read(|s| s.nodes[&id].info.clone());
    assert_eq!(kept, info);
    cluster.shutdown().await;
    Ok(())
}

/// An object upload through the API that stalls mid-body is cut off after
/// the body timeout, is not acknowledged, and leaves no object behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_object_upload_through_the_api_is_cut_off() -> Result<()> {
    use std::time::Duration;
    use stratus_state::objects::{Bucket, DedupeScope, StoreCommand, Versioning};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = Cluster::start(Options::new(1, 3)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    stratus_testkit::wait_storage_secret(&c).await?;
    c.write(stratus_state::Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: "uploads".into(),
            tenant: "admin".into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Enabled,
            created_ms: stratus_control::now_ms(),
        },
    }))
    .await?;
    let store = cluster.store(0)?;
    // The API of this replica with a 1 s body timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let limits = stratus_http::Limits {
        body_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    tokio::spawn(stratus_api::serve_with(
        listener,
        c.clone(),
        store.clone(),
        limits,
        std::future::pending(),
    ));
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "PUT /v1/buckets/uploads/objects/stalled.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 4000000\r\n\r\n",
        cluster.admin_token
    );
    s.write_all(head.as_bytes()).await?;
    // Enough for the store to chunk, seal and write packs, then nothing.
    let noise: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.write_all(&noise).await?;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        closed.is_ok(),
        "a stalled upload kept its connection: {text}"
    );
    assert!(!text.starts_with("HTTP/1.1 200"), "acknowledged: {text}");
    let stored = c
        .state()
        .read(|s| !s.store.versions("uploads", "stalled.bin").is_empty());
    assert!(!stored, "a partial upload became an object version");
    assert!(store
        .get("admin", "uploads", "stalled.bin", None, None)
        .await
        .is_err());
    cluster.shutdown().await;
    Ok(())
}
