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
