//! Verified runs on a real cluster (issue 16): real agents, one or two of
//! them lying lenders ([`stratus_testkit::liar`]), real deterministic WASM
//! runs, commit and reveal over the agents' own connections, the verdict
//! and the money.
//!
//! Replicas go to distinct owners, sites the run does not use yet first.
//! The tests put the honest nodes on one site and each liar on its own, so
//! the liars are always among the replicas chosen.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use stratus_control::{now_ms, Control};
use stratus_market::Order;
use stratus_state::trusted::{Outcome, TrustedRun};
use stratus_state::Command;
use stratus_testkit::liar::{Liar, Lie};
use stratus_testkit::{funded_tenant, put_module, wait_until, Cluster, Options, WAIT};
use stratus_types::{NodeId, NodeStatus};

const BOB: &str = "bob";
const DEPOSIT: u64 = 100_000_000;
const HONEST_SITE: &str = "site-honest";

fn hello() -> Result<Vec<u8>> {
    Ok(std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/wasm/hello.wat"
    ))?)
}

/// Reads the clocks and random bytes and computes NaNs, and prints all of
/// it (raw bytes): different on every node unless the run is
/// deterministic.
const PROBE: &str = include_str!("../../../examples/wasm/probe.wat");

/// A cluster of `agents` agents, each lent by its own lender and priced;
/// bob with money.
async fn pool(agents: usize) -> Result<(Cluster, Control)> {
    let cluster = Cluster::start(Options::new(1, agents)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, agents).await?;
    let c = cluster.control(0)?;
    stratus_node::dev::price_dev_nodes(&c, agents, WAIT).await?;
    funded_tenant(&c, BOB, DEPOSIT).await?;
    Ok((cluster, c))
}

/// Restarts agent `j` at `site`, lying with `lie` if given, and waits until
/// the state knows it there.
async fn restart(
    cluster: &mut Cluster,
    c: &Control,
    j: usize,
    site: &str,
    lie: Option<Lie>,
) -> Result<()> {
    let executor = match lie {
        Some(lie) => Some(Arc::new(Liar::new(lie)?) as Arc<dyn stratus_runtime::DynExecutor>),
        None => None,
    };
    cluster.restart_agent_with(j, site, executor).await?;
    let id = cluster.agent_id(j)?;
    wait_until("the restarted node at its site", WAIT, || async {
        c.state()
            .read(|s| {
                s.nodes.get(&id).is_some_and(|n| {
                    n.status == NodeStatus::Ready && n.info.attributes.site == site
                })
            })
            .then_some(())
    })
    .await
}

fn lie(append: &str) -> Lie {
    Lie {
        append: append.as_bytes().to_vec(),
        wait: Duration::ZERO,
    }
}

/// Deploys `name` for bob, verified at `trust`.
async fn deploy(c: &Control, wat: &[u8], name: &str, trust: u32) -> Result<String> {
    let module = put_module(c, BOB, wat.to_vec()).await?;
    let spec = stratus_spec::parse(
        &format!(
            "version: 1\nname: {name}\nkind: task\nwasm: {{ module: m.wat }}\nrestart: {{ attempts: 0 }}\nresources: {{ memory_mb: 16, wall_time_secs: 30 }}\n"
        ),
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    c.write(Command::DeployTrusted {
        deploy: Box::new(Command::DeployOrdered {
            deploy: Box::new(Command::DeployWorkload {
                tenant: BOB.into(),
                spec: Box::new(spec),
                module,
                now_ms: now_ms(),
            }),
            order: Order::default(),
        }),
        trust,
    })
    .await?;
    Ok(format!("{BOB}/{name}"))
}

/// The run of `w` once it has an outcome and its deals are closed.
async fn decided(c: &Control, w: &str) -> Result<TrustedRun> {
    wait_until(
        "the verdict and the deals closed",
        Duration::from_secs(90),
        || async {
            c.state().read(|s| {
                let run = s.trusted_run(w)?;
                let open = run.replicas.keys().any(|i| s.deals.contains_key(i));
                (run.outcome.is_some() && !open).then(|| run.clone())
            })
        },
    )
    .await
}

fn balance(c: &Control, t: &str) -> u64 {
    c.state().read(|s| s.account(t).balance.0)
}

fn lender(j: usize) -> String {
    format!("lender-{j}")
}

/// The replicas of `run` on `node`.
fn on(run: &TrustedRun, node: NodeId) -> Vec<String> {
    run.replicas
        .iter()
        .filter(|(_, r)| r.node == node)
        .map(|(i, _)| i.clone())
        .collect()
}

fn agreed(run: &TrustedRun) -> Result<(&stratus_verify::ResultParts, &[String], &[String])> {
    match &run.outcome {
        Some(Outcome::Agreed {
            result,
            winners,
            losers,
            ..
        }) => Ok((result, winners, losers)),
        other => bail!("no agreement: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_trust_3_one_liar_is_outvoted_unpaid_and_cut() -> Result<()> {
    let (mut cluster, c) = pool(3).await?;
    restart(&mut cluster, &c, 0, "site-liar", Some(lie("forged\n"))).await?;
    for j in [1, 2] {
        restart(&mut cluster, &c, j, HONEST_SITE, None).await?;
    }
    let before: Vec<u64> = (0..3).map(|j| balance(&c, &lender(j))).collect();
    let w = deploy(&c, &hello()?, "hello", 3).await?;
    let run = decided(&c, &w).await?;
    let (result, winners, losers) = agreed(&run)?;

    // The honest output won: what hello prints, nothing forged.
    assert_eq!(result.output, *blake3::hash(b"Hello, world!\n").as_bytes());
    let liar = cluster.agent_id(0)?;
    assert_eq!(losers, on(&run, liar).as_slice(), "{run:?}");
    assert_eq!(winners.len(), 2, "{run:?}");
    // The liar is cut and unpaid; the honest lenders are paid.
    let rep = c.state().read(|s| s.reputation(&liar));
    assert_eq!((rep.score, rep.lost), (0, 1));
    assert_eq!(balance(&c, &lender(0)), before[0], "the liar was paid");
    for j in [1, 2] {
        assert!(balance(&c, &lender(j)) > before[j], "lender {j} unpaid");
        let honest = cluster.agent_id(j)?;
        assert_eq!(c.state().read(|s| s.reputation(&honest)).score, 1);
    }
    // Bob paid exactly what the winners earned (the rest came back).
    let (held, conserved) = c.state().read(|s| {
        let (c, r) = stratus_market::ledger::totals(&s.balances).expect("fits");
        (s.account(BOB).held.0, c == r)
    });
    assert_eq!(held, 0);
    assert!(conserved);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_new_colluding_liars_lose_to_reputable_honest_nodes() -> Result<()> {
    let (mut cluster, c) = pool(5).await?;
    // The honest nodes earn a record first, with the liars-to-be away.
    for j in [3, 4] {
        cluster.stop_agent(j).await?;
    }
    for j in [0, 1, 2] {
        restart(&mut cluster, &c, j, HONEST_SITE, None).await?;
    }
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    for k in 0..3 {
        let w = deploy(&c, &hello()?, &format!("warmup-{k}"), 2).await?;
        agreed(&decided(&c, &w).await?)?;
    }
    // Two new nodes that return the same forged result.
    restart(&mut cluster, &c, 3, "site-liar-a", Some(lie("forged\n"))).await?;
    restart(&mut cluster, &c, 4, "site-liar-b", Some(lie("forged\n"))).await?;
    let liars = [cluster.agent_id(3)?, cluster.agent_id(4)?];
    let w = deploy(&c, &hello()?, "hello", 3).await?;
    let run = decided(&c, &w).await?;
    let (result, _, losers) = agreed(&run)?;
    assert_eq!(result.output, *blake3::hash(b"Hello, world!\n").as_bytes());
    // Both liars voted, both lost, both were cut.
    let lying: Vec<String> = liars.iter().flat_map(|l| on(&run, *l)).collect();
    assert_eq!(lying.len(), 2, "both liars took part: {run:?}");
    assert_eq!(
        losers.iter().collect::<BTreeSet<_>>(),
        lying.iter().collect::<BTreeSet<_>>()
    );
    for l in liars {
        assert_eq!(c.state().read(|s| s.reputation(&l)).lost, 1);
    }
    for j in [3, 4] {
        assert_eq!(balance(&c, &lender(j)), 0, "liar {j} was paid");
    }
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_liar_that_waits_to_copy_finds_nothing_to_copy() -> Result<()> {
    let (mut cluster, c) = pool(3).await?;
    // It holds its answer back 3 s, hoping to see the others' first.
    let waiter = Lie {
        append: b"copied?\n".to_vec(),
        wait: Duration::from_secs(3),
    };
    restart(&mut cluster, &c, 0, "site-liar", Some(waiter)).await?;
    for j in [1, 2] {
        restart(&mut cluster, &c, j, HONEST_SITE, None).await?;
    }
    let liar = cluster.agent_id(0)?;
    let w = deploy(&c, &hello()?, "hello", 3).await?;
    // Until it has committed, nobody has revealed: there is nothing to
    // copy while it must still commit.
    let mut watched = 0;
    let run = loop {
        let (run, done) = c.state().read(|s| {
            let run = s.trusted_run(&w).cloned();
            let done = run.as_ref().is_some_and(|r| {
                r.outcome.is_some() && !r.replicas.keys().any(|i| s.deals.contains_key(i))
            });
            (run, done)
        });
        if let Some(run) = &run {
            let liar_committed = run
                .replicas
                .values()
                .filter(|r| r.node == liar)
                .all(|r| r.commitment.is_some());
            let revealed = run.replicas.values().any(|r| r.revealed.is_some());
            assert!(
                liar_committed || !revealed,
                "a reveal before the liar committed: {run:?}"
            );
            watched += 1;
        }
        if done {
            break run;
        }
        if watched > 3_000 {
            bail!("no verdict in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let Some(run) = run else { bail!("no run") };
    let (_, _, losers) = agreed(&run)?;
    assert_eq!(losers, on(&run, liar).as_slice(), "{run:?}");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_reading_clocks_and_randomness_agree_on_every_node() -> Result<()> {
    let (cluster, c) = pool(3).await?;
    // Ten runs of two replicas each: twenty runs of the probe on three
    // nodes. Every run's replicas return one result; each run has its own
    // seed and clock, so the runs differ from each other.
    let mut results = BTreeSet::new();
    for k in 0..10 {
        let w = deploy(&c, PROBE.as_bytes(), &format!("probe-{k}"), 2).await?;
        let run = decided(&c, &w).await?;
        let (result, winners, losers) = agreed(&run)?;
        assert_eq!((winners.len(), losers.len()), (2, 0), "{run:?}");
        let votes: BTreeSet<[u8; 32]> = run
            .replicas
            .values()
            .filter_map(|r| r.revealed.map(|p| p.digest()))
            .collect();
        assert_eq!(votes.len(), 1, "{run:?}");
        results.insert(result.digest());
    }
    assert_eq!(results.len(), 10, "each run its own seed");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_consensus_the_requester_is_refunded() -> Result<()> {
    let (mut cluster, c) = pool(2).await?;
    restart(&mut cluster, &c, 0, "site-liar", Some(lie("forged\n"))).await?;
    let w = deploy(&c, &hello()?, "hello", 3).await?;
    let run = decided(&c, &w).await?;
    match &run.outcome {
        Some(Outcome::Failed { reason, .. }) => {
            assert!(reason.contains("no consensus"), "{reason}")
        }
        other => bail!("expected no consensus: {other:?}"),
    }
    assert_eq!(balance(&c, BOB), DEPOSIT, "bob refunded whole");
    for j in [0, 1] {
        assert_eq!(balance(&c, &lender(j)), 0, "lender {j} paid");
    }
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_restarted_between_commit_and_reveal_still_reveals() -> Result<()> {
    let (mut cluster, c) = pool(3).await?;
    // Agent 0 is honest but slow (3 s): the other replica commits first
    // and waits for it to reveal; its agent restarts meanwhile.
    let slow = Lie {
        append: Vec::new(),
        wait: Duration::from_secs(3),
    };
    restart(&mut cluster, &c, 0, "site-slow", Some(slow)).await?;
    for j in [1, 2] {
        restart(&mut cluster, &c, j, HONEST_SITE, None).await?;
    }
    let w = deploy(&c, &hello()?, "hello", 3).await?;
    let slow_node = cluster.agent_id(0)?;
    // Once an honest replica has committed and the slow one has not,
    // restart the honest one's agent.
    let (replica, node) = wait_until("an honest replica to commit first", WAIT, || async {
        c.state().read(|s| {
            let run = s.trusted_run(&w)?;
            let slow_committed = run
                .replicas
                .values()
                .any(|r| r.node == slow_node && r.commitment.is_some());
            let (id, r) = run
                .replicas
                .iter()
                .find(|(_, r)| r.node != slow_node && r.commitment.is_some())?;
            (!slow_committed).then(|| (id.clone(), r.node))
        })
    })
    .await?;
    let j = [1, 2]
        .into_iter()
        .find(|j| cluster.agent_id(*j).is_ok_and(|id| id == node))
        .ok_or_else(|| anyhow::anyhow!("no agent runs node {node}"))?;
    cluster.stop_agent(j).await?;
    restart(&mut cluster, &c, j, HONEST_SITE, None).await?;
    // (Its deal waits for a usage report the restart lost: only the
    // verdict is awaited.)
    let run = wait_until("the verdict", Duration::from_secs(90), || async {
        c.state()
            .read(|s| s.trusted_run(&w).filter(|r| r.outcome.is_some()).cloned())
    })
    .await?;
    let (result, winners, _) = agreed(&run)?;
    assert_eq!(result.output, *blake3::hash(b"Hello, world!\n").as_bytes());
    assert!(winners.contains(&replica), "{run:?}");
    cluster.shutdown().await;
    Ok(())
}
