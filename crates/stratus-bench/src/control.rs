//! `stratus bench control`: control-plane commit throughput and latency
//! (in-process replicas on loopback QUIC, real disk), beside the disk's
//! fsync rate measured in the same run.

use std::time::{Duration, Instant};

use futures::StreamExt;
use stratus_state::Command;
use stratus_types::ADMIN_TENANT;

use crate::error::{Context, Result};
use crate::util::{dev_config, fsync_reference, percentile};

/// Runs the benchmark.
pub(crate) async fn control(replicas: usize, writes: usize, concurrency: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let fs = fsync_reference(dir.path(), 300)?;
    let fs_p50 = percentile(&fs, 0.5);
    let cloud = stratus_node::dev::start(dev_config(dir.path(), replicas, 0)?).await?;
    let control = cloud.replicas[0].control.clone().context("no control")?;
    // Warm up connections and the leader.
    for i in 0..10 {
        control
            .write(Command::PutVar {
                tenant: ADMIN_TENANT.into(),
                key: format!("warm/{i}"),
                value: "x".into(),
                now_ms: 0,
            })
            .await?;
    }
    let started = Instant::now();
    let mut lat: Vec<Duration> = futures::stream::iter(0..writes)
        .map(|i| {
            let c = control.clone();
            async move {
                let t = Instant::now();
                c.write(Command::PutVar {
                    tenant: ADMIN_TENANT.into(),
                    key: format!("bench/{i}"),
                    value: "v".repeat(64),
                    now_ms: 0,
                })
                .await
                .map(|_| t.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    lat.sort();
    cloud.shutdown().await;
    let rate = writes as f64 / elapsed.as_secs_f64();
    let fsync_rate = 1.0 / fs_p50.as_secs_f64().max(1e-9);
    println!(
        "control-plane writes: {replicas} replica(s), {writes} writes, {concurrency} in flight"
    );
    println!("  throughput      {rate:>10.0} writes/s");
    println!(
        "  commit p50      {:>10.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "  commit p99      {:>10.2} ms",
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!("reference (same disk, same run): sequential 4 KiB write+fdatasync");
    println!(
        "  fsync p50       {:>10.2} ms  ({fsync_rate:.0} fsyncs/s)",
        fs_p50.as_secs_f64() * 1e3
    );
    println!(
        "  commit p50 / fsync p50 = {:.1}x; writes per fsync-time = {:.1}",
        percentile(&lat, 0.5).as_secs_f64() / fs_p50.as_secs_f64().max(1e-9),
        rate / fsync_rate
    );
    Ok(())
}
