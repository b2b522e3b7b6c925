//! What outsiders feed in is bounded (issue 13, item 6): request heads on
//! the API, the size of one replicated command, and log entries larger than
//! one transport frame can carry.

use std::time::Duration;

use anyhow::Result;
use stratus_state::Command;
use stratus_testkit::{noise, wait_until, Cluster, Options};
use stratus_types::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_head_gets_431_from_the_api() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 0)).await?;
    let api = cluster.api_url(0)?;
    let addr = api.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let big = "a".repeat(stratus_http::DEFAULT_MAX_HEADER_BYTES + 1024);
    let req = format!("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_too_large_for_the_log_is_refused_and_large_runs_still_replicate() -> Result<()> {
    let mut cluster = Cluster::start(Options::new(3, 0)).await?;
    let leader = cluster.leader().await?;
    let c = cluster.control(leader)?;

    // Larger than one replicated command may be: refused before the log,
    // with 413 and the limit in the message.
    let limit = stratus_control::proposer::MAX_COMMAND_BYTES as usize;
    let err = c
        .write(Command::PutModule {
            bytes: noise(limit + 1, 1),
        })
        .await
        .expect_err("an oversize command was committed");
    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert_eq!(err.code().http_status(), 413);
    assert!(err.to_string().contains(&limit.to_string()), "{err}");

    // A follower misses 20 MiB of 256 KiB commands (far more than crosses
    // in one heartbeat interval, openraft's deadline for a message); when it
    // comes back it must catch up, in parts.
    let follower = (0..3).find(|i| *i != leader).unwrap_or(0);
    cluster.stop_replica(follower).await?;
    let c = cluster.control(cluster.leader().await?)?;
    let mut hashes = Vec::new();
    for seed in 0..80u64 {
        let bytes = noise(256 << 10, seed + 10);
        hashes.push(stratus_state::workloads::module_hash(&bytes));
        c.write(Command::PutModule { bytes }).await?;
    }
    cluster.start_replica(follower).await?;
    let back = cluster.control(follower)?;
    wait_until(
        "the follower to apply every large command",
        Duration::from_secs(120),
        || {
            let back = back.clone();
            let hashes = hashes.clone();
            async move {
                back.state()
                    .read(|s| hashes.iter().all(|h| s.modules.contains_key(h)))
                    .then_some(())
            }
        },
    )
    .await?;
    cluster.shutdown().await;
    Ok(())
}
