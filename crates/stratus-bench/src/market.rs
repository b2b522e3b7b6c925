//! `stratus bench market`: deals settled per second through the control
//! plane (each deal two commits: the placement that holds its escrow, the
//! signed last usage report that settles it), beside plain commits of the
//! same control plane in the same run.

use std::time::{Duration, Instant};

use futures::StreamExt;
use stratus_market::{Amount, Offer, Prices, Usage, UsageReport};
use stratus_node::dev::DevConfig;
use stratus_state::accounts::MarketCommand;
use stratus_state::{Command, Instance};
use stratus_types::{NodeInfo, ADMIN_TENANT};

use crate::error::{Context, Result};
use crate::util::{dev_config, percentile};

const REQUESTER: &str = "bench-requester";

/// Runs the benchmark.
pub(crate) async fn market(deals: usize, concurrency: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cloud = stratus_node::dev::start(DevConfig {
        node_lost_after: Duration::from_secs(3600),
        ..dev_config(dir.path(), 1, 0)?
    })
    .await?;
    let control = cloud.replicas[0].control.clone().context("no control")?;
    // A priced node (its key signs the usage reports), a requester with
    // money, and a task workload no node matches (the reconciler leaves it
    // alone: this benchmark places its instances itself).
    let node = stratus_net::Identity::generate();
    let now = stratus_control::now_ms();
    let spec = stratus_spec::parse(
        "version: 1\nname: bench\nkind: task\nwasm: { module: m.wat }\nconstraints: { labels: { bench: none } }\nresources: { wall_time_secs: 10 }\n",
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| crate::error::BenchError::Check(e.to_string()))?;
    let module = stratus_state::workloads::module_hash(b"(module)");
    for cmd in [
        Command::RegisterNode {
            info: NodeInfo {
                id: node.node_id(),
                name: "bench-node".into(),
                version: "bench".into(),
                capacity: Default::default(),
                attributes: Default::default(),
                storage: None,
                runtimes: vec![stratus_types::Runtime::Wasm],
                ports: stratus_types::PortRange::DEFAULT,
            },
            now_ms: now,
        },
        Command::CreateTenant {
            name: REQUESTER.into(),
            now_ms: now,
        },
        Command::Market(MarketCommand::SetOfferWithTask {
            node: node.node_id(),
            offer: Some(Offer {
                prices: Prices {
                    cpu_second: Amount(1_000),
                    ..Prices::default()
                },
                ..Offer::default()
            }),
            task: Amount(100),
        }),
        Command::Market(MarketCommand::SetPoolFee { bps: 500 }),
        Command::Market(MarketCommand::Deposit {
            tenant: REQUESTER.into(),
            amount: Amount(u64::MAX / 4),
            reference: String::new(),
            now_ms: now,
        }),
        Command::PutTenantModule {
            tenant: REQUESTER.into(),
            bytes: b"(module)".to_vec(),
            now_ms: now,
        },
        Command::DeployWorkload {
            tenant: REQUESTER.into(),
            spec: Box::new(spec),
            module,
            now_ms: now,
        },
    ] {
        control.write(cmd).await?;
    }

    // The reference: plain commits, same concurrency, same run.
    let refs = concurrency.max(1) * 40;
    let started = Instant::now();
    futures::stream::iter(0..refs)
        .map(|i| {
            let c = control.clone();
            async move {
                c.write(Command::PutVar {
                    tenant: ADMIN_TENANT.into(),
                    key: format!("ref/{i}"),
                    value: "v".into(),
                    now_ms: 0,
                })
                .await
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let commit_rate = refs as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let node_id = node.node_id();
    let mut lat: Vec<Duration> = futures::stream::iter(0..deals)
        .map(|i| {
            let c = control.clone();
            let node = node.clone();
            async move {
                let t = Instant::now();
                let id = format!("bench-{i}");
                let now = stratus_control::now_ms();
                c.write(Command::PlaceInstances {
                    instances: vec![Instance::pending(
                        id.clone(),
                        format!("{REQUESTER}/bench")
                            .parse()
                            .map_err(|e| crate::error::BenchError::Check(format!("{e}")))?,
                        node_id,
                        1,
                        0,
                        now,
                    )],
                })
                .await?;
                let mut r = UsageReport {
                    instance: id,
                    node: node_id.0,
                    seq: 1,
                    usage: Usage {
                        cpu_ms: 1 + i as u64 % 5_000,
                        memory_peak_bytes: 1 << 20,
                        wall_ms: 2_000,
                        bytes_served: 0,
                    },
                    last: true,
                    time_ms: now,
                    signature: [0; 64],
                };
                r.signature = node.sign(&r.signed_bytes());
                c.write(Command::ReportUsage(r)).await?;
                Ok::<_, crate::error::BenchError>(t.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let elapsed = started.elapsed();
    lat.sort();
    let (open, held, totals) = control.state().read(|s| {
        (
            s.deals.len(),
            s.account(REQUESTER).held,
            stratus_market::ledger::totals(&s.balances),
        )
    });
    drop(control);
    cloud.shutdown().await;
    let rate = deals as f64 / elapsed.as_secs_f64();
    println!("market deals: 1 replica, {deals} deals (placement + signed last usage report), {concurrency} in flight");
    println!("  settled          {rate:>10.0} deals/s   (goal >= 5000)");
    println!(
        "  deal p50         {:>10.2} ms   p99 {:.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "  left open {open}, held {held}; money conserved: {}",
        totals.is_ok_and(|(circulation, rest)| circulation == rest)
    );
    println!("reference (same control plane, same run): plain commits");
    println!("  commits          {commit_rate:>10.0} /s; a deal is 2 commits: deals/s / (commits/s / 2) = {:.2}", rate / (commit_rate / 2.0));
    Ok(())
}
