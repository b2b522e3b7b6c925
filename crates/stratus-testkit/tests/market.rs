//! Deals on a real cluster (issue 15, items 3 and 4): a lender's priced
//! node, a requester with money, real agents metering real WASM runs and
//! signing their usage reports.

use std::time::Duration;

use anyhow::Result;
use stratus_control::{now_ms, Control};
use stratus_market::{Amount, Offer, Prices};
use stratus_state::accounts::MarketCommand;
use stratus_state::{Command, InstanceState};
use stratus_testkit::{instances, put_module, wait_until, Cluster, Options, WAIT};
use stratus_types::NodeStatus;

const BOB: &str = "bob";
const LENDER: &str = "lender-0";
const DEPOSIT: u64 = 10_000_000;

/// One replica and one agent (lent by `lender-0`) priced at 1000 per
/// CPU-second, 1000 per GiB-hour and 100 per task; a pool fee of 5%; bob
/// with 10,000,000.
async fn market(opts: Options) -> Result<(Cluster, Control)> {
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let node = cluster.agent_id(0)?;
    let offer = Offer {
        prices: Prices {
            cpu_second: Amount(1_000),
            memory_gib_hour: Amount(1_000),
            ..Prices::default()
        },
        ..Offer::default()
    };
    for cmd in [
        Command::CreateTenant {
            name: BOB.into(),
            now_ms: now_ms(),
        },
        Command::Market(MarketCommand::SetOfferWithTask {
            node,
            offer: Some(offer),
            task: Amount(100),
        }),
        Command::Market(MarketCommand::SetPoolFee { bps: 500 }),
        Command::Market(MarketCommand::Deposit {
            tenant: BOB.into(),
            amount: Amount(DEPOSIT),
            reference: String::new(),
            now_ms: now_ms(),
        }),
    ] {
        c.write(cmd).await?;
    }
    Ok((cluster, c))
}

async fn deploy_bob(c: &Control, wat: &[u8], name: &str, wall_secs: u64) -> Result<String> {
    let module = put_module(c, BOB, wat.to_vec()).await?;
    let spec = stratus_spec::parse(
        &format!(
            "version: 1\nname: {name}\nkind: task\nwasm: {{ module: m.wat }}\nrestart: {{ attempts: 0 }}\nresources: {{ memory_mb: 16, wall_time_secs: {wall_secs} }}\n"
        ),
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    c.write(Command::DeployWorkload {
        tenant: BOB.into(),
        spec: Box::new(spec),
        module,
        now_ms: now_ms(),
    })
    .await?;
    Ok(format!("{BOB}/{name}"))
}

fn balance(c: &Control, t: &str) -> u64 {
    c.state().read(|s| s.account(t).balance.0)
}

/// A paid task moves exactly its cost: the requester pays the lender's
/// share and the pool's fee, gets the rest of its escrow back, and the
/// money in the pool is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_task_moves_exactly_its_cost_to_lender_and_pool() -> Result<()> {
    let (cluster, c) = market(Options::new(1, 1)).await?;
    let hello = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/wasm/hello.wat"
    ))?;
    let w = deploy_bob(&c, &hello, "hello", 60).await?;
    // Escrow while it runs or right after; then the deal closes.
    wait_until(
        "the task to complete and its deal to close",
        WAIT,
        || async {
            let done = instances(&c, &w)
                .iter()
                .any(|i| i.state == InstanceState::Completed);
            let open = c.state().read(|s| !s.deals.is_empty());
            (done && !open).then_some(())
        },
    )
    .await?;
    let (lender, fees, held) = c.state().read(|s| {
        (
            s.account(LENDER).balance.0,
            s.pool_totals().0 .0,
            s.account(BOB).held.0,
        )
    });
    let charge = DEPOSIT - balance(&c, BOB);
    assert_eq!(held, 0, "the escrow is empty");
    assert!(charge >= 100, "at least the per-task price: {charge}");
    assert_eq!(
        lender + fees,
        charge,
        "the requester pays exactly what lender and pool get"
    );
    assert_eq!(
        fees,
        charge * 500 / 10_000,
        "5% of the lender's amount, rounded down"
    );
    assert_eq!(c.state().read(|s| s.pool_totals().1), Amount(DEPOSIT));
    // The settlement names the deal (the instance) in the ledger.
    let inst = instances(&c, &w)[0].id.clone();
    let page = c
        .state()
        .read(|s| s.ledger_page(Some(BOB), 0, 0..u64::MAX, 100));
    assert!(page
        .records
        .iter()
        .any(|r| r.entry.refs.deal.as_deref() == Some(inst.as_str())));
    cluster.shutdown().await;
    Ok(())
}

/// The node running a paid task is killed: its lender is paid nothing more
/// and the requester gets its escrow back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_task_pays_its_lender_nothing_and_refunds_the_requester() -> Result<()> {
    let (mut cluster, c) = market(Options::new(1, 1)).await?;
    let spin = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/wasm/loop.wat"
    ))?;
    let w = deploy_bob(&c, &spin, "spin", 600).await?;
    wait_until("the task to run under a deal", WAIT, || async {
        let running = instances(&c, &w)
            .iter()
            .any(|i| i.state == InstanceState::Running);
        let held = c.state().read(|s| s.account(BOB).held.0);
        (running && held > 0).then_some(())
    })
    .await?;
    let paid_before = balance(&c, LENDER);
    cluster.stop_agent(0).await?;
    wait_until(
        "the deal to be refunded",
        Duration::from_secs(60),
        || async {
            c.state()
                .read(|s| s.deals.is_empty() && s.account(BOB).held.is_zero())
                .then_some(())
        },
    )
    .await?;
    assert_eq!(
        balance(&c, LENDER),
        paid_before,
        "nothing more for the lender"
    );
    let fees = c.state().read(|s| s.pool_totals().0 .0);
    assert_eq!(
        balance(&c, BOB) + balance(&c, LENDER) + fees,
        DEPOSIT,
        "everything not earned before the loss went back to bob"
    );
    assert!(instances(&c, &w)
        .iter()
        .any(|i| i.state == InstanceState::Lost));
    cluster.shutdown().await;
    Ok(())
}
