//! `stratus bench trust`: what verifying a result costs. A CPU-bound WASM
//! task run by a paying tenant on a local cloud of five priced nodes (each
//! lent by its own lender) at trust 1 (one run, no verification) and at
//! higher levels, in the same run: the requester's cost and the wall time
//! of `stratus run` (each a fresh process of this binary), the replicas
//! used, and the consensus overhead — from the last commitment to the
//! verdict (the reveal and decide rounds through the control plane; each
//! commitment is one more round, before its replica reports its end).

use std::process::Command as Proc;
use std::time::Duration;

use stratus_state::trusted::Outcome;

use crate::error::{bail, Context, Result};
use crate::util::{dev_config, make_payer, time_process};

/// Spins a 64-bit LCG `ITERATIONS` times and prints its state (8 bytes).
const SPIN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $i i64) (local $x i64)
    (local.set $x (i64.const 1))
    (loop $l
      (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
                             (i64.const 1442695040888963407)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const ITERATIONS))))
    (i64.store (i32.const 0) (local.get $x))
    (i32.store (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.const 8))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
"#;

/// Nodes of the local cloud (five lenders).
const NODES: usize = 5;

/// One trust level's figures (medians over the runs).
struct Row {
    trust: u32,
    replicas: usize,
    cost: u64,
    wall: Duration,
    consensus: Option<Duration>,
}

/// Runs the benchmark: `runs` runs at each of `levels`.
pub(crate) async fn trust(levels: &[u32], runs: usize, iterations: u64) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("spin.wat");
    std::fs::write(
        &module,
        SPIN_WAT.replace("ITERATIONS", &iterations.to_string()),
    )?;
    let cloud = stratus_node::dev::start(dev_config(dir.path(), 1, NODES)?).await?;
    let (api, token) = (cloud.api_url.clone(), cloud.admin_token.clone());
    let control = cloud.replicas[0].control.clone().context("no control")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while control.state().read(|s| s.nodes.len()) < NODES {
        if std::time::Instant::now() > deadline {
            bail!("the {NODES} agents did not register within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stratus_node::dev::price_dev_nodes(&control, NODES, Duration::from_secs(30)).await?;
    let payer = tokio::task::block_in_place(|| make_payer(&exe, &api, &token, "bench-payer"))?;
    let balance = || control.state().read(|s| s.account("bench-payer").balance.0);
    let mut rows = Vec::new();
    for &trust in levels {
        let (mut costs, mut walls, mut consensus, mut replicas) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for k in 0..runs {
            let name = format!("spin-t{trust}-{k}");
            let before = balance();
            let mut cmd = Proc::new(&exe);
            cmd.args(["run", "--log", "error", "--name", &name, "--trust"])
                .arg(trust.to_string())
                .arg(&module)
                .env("STRATUS_API", &api)
                .env("STRATUS_TOKEN", &payer)
                .env("STRATUS_ORDER_KEY_DIR", dir.path().join("no-order-key"));
            let (_, wall) = tokio::task::block_in_place(|| time_process(cmd))?;
            let id = format!("bench-payer/{name}");
            // The deals settle (the last usage reports) a moment after the
            // verdict: wait until none is open.
            let settled = std::time::Instant::now() + Duration::from_secs(30);
            while control
                .state()
                .read(|s| s.deals.values().any(|d| d.workload == id))
            {
                if std::time::Instant::now() > settled {
                    bail!("the deals of {id} did not settle within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (n, over) = control.state().read(|s| {
                let count = s
                    .instances
                    .values()
                    .filter(|i| i.workload.as_str() == id)
                    .count();
                let over = s.trusted_run(&id).and_then(|run| {
                    let decided = match &run.outcome {
                        Some(Outcome::Agreed { decided_ms, .. }) => *decided_ms,
                        _ => return None,
                    };
                    let last_commit = run.replicas.values().filter_map(|r| r.done_ms).max()?;
                    Some(Duration::from_millis(decided.saturating_sub(last_commit)))
                });
                (count, over)
            });
            if trust > 1 && over.is_none() {
                bail!("the verified run {id} did not agree");
            }
            costs.push(before.saturating_sub(balance()));
            walls.push(wall);
            replicas.push(n);
            consensus.extend(over);
        }
        costs.sort_unstable();
        walls.sort_unstable();
        replicas.sort_unstable();
        consensus.sort_unstable();
        rows.push(Row {
            trust,
            replicas: replicas[replicas.len() / 2],
            cost: costs[costs.len() / 2],
            wall: walls[walls.len() / 2],
            consensus: consensus.get(consensus.len() / 2).copied(),
        });
    }
    drop(control);
    cloud.shutdown().await;
    let base = rows
        .first()
        .map(|r| (r.cost.max(1), r.wall))
        .unwrap_or((1, Duration::from_millis(1)));
    println!(
        "a CPU-bound task ({iterations} LCG steps), {runs} runs per level on {NODES} priced nodes of distinct lenders, medians:"
    );
    println!("  trust  replicas        cost  ×cost(trust 1)    wall   ×wall(trust 1)  consensus");
    for r in &rows {
        println!(
            "  {:>5}  {:>8}  {:>10}  {:>14.2}  {:>6.0} ms  {:>14.2}  {}",
            r.trust,
            r.replicas,
            r.cost,
            r.cost as f64 / base.0 as f64,
            r.wall.as_secs_f64() * 1e3,
            r.wall.as_secs_f64() / base.1.as_secs_f64(),
            r.consensus
                .map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
        );
    }
    println!(
        "  (consensus: from the last commitment to the verdict: the reveal and decide rounds)"
    );
    Ok(())
}
