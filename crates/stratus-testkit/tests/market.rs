//! Deals on a real cluster (issue 15, items 3 and 4): a lender's priced
//! node, a requester with money, real agents metering real WASM runs and
//! signing their usage reports.

use std::time::Duration;

use anyhow::Result;
use stratus_control::{now_ms, Control};
use stratus_market::{Amount, Offer, Prices};
use stratus_proto::{Request, Response};
use stratus_state::accounts::MarketCommand;
use stratus_state::catalog::{CatalogCommand, Uses};
use stratus_state::objects::{Bucket, DedupeScope, StoreCommand, Versioning};
use stratus_state::{Command, InstanceState};
use stratus_store::PutMeta;
use stratus_testkit::{funded_tenant, instances, put_module, wait_until, Cluster, Options, WAIT};
use stratus_types::{ErrorCode, NodeStatus};

const BOB: &str = "bob";
const LENDER: &str = "lender-0";
const DEPOSIT: u64 = 10_000_000;

/// A cluster of `opts`, its agent 0 (lent by `lender-0`) priced at 1000
/// per CPU-second, 1000 per GiB-hour and 100 per task; a pool fee of 5%;
/// bob with 10,000,000.
async fn market(opts: Options) -> Result<(Cluster, Control)> {
    let agents = opts.agents;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, agents).await?;
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
        Command::Market(MarketCommand::SetOfferWithTask {
            node,
            offer: Some(offer),
            task: Amount(100),
        }),
        Command::Market(MarketCommand::SetPoolFee { bps: 500 }),
    ] {
        c.write(cmd).await?;
    }
    funded_tenant(&c, BOB, DEPOSIT).await?;
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

/// A paid dataset on a real cluster: the node running the task reads it as
/// `/input` inside the deal, its owner is paid its price, and once the
/// deal is closed the same node is refused the same objects (a dataset is
/// read only inside a paid deal, for that instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dataset_is_read_inside_its_deal_and_not_after() -> Result<()> {
    const DORA: &str = "dora";
    const PRICE: u64 = 300;
    let (cluster, c) = market(Options::new(1, 3)).await?;
    stratus_testkit::wait_storage_secret(&c).await?;
    c.write(Command::CreateTenant {
        name: DORA.into(),
        now_ms: now_ms(),
    })
    .await?;
    c.write(Command::Store(StoreCommand::CreateBucket {
        bucket: Bucket {
            name: "weather".into(),
            tenant: DORA.into(),
            profile: None,
            scope: DedupeScope::Tenant,
            versioning: Versioning::Unversioned,
            created_ms: now_ms(),
        },
    }))
    .await?;
    let body = futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"sunny\n",
    ))]);
    cluster
        .store(0)?
        .put(DORA, "weather", "2026/today.txt", PutMeta::default(), body)
        .await?;
    c.write(Command::Catalog(CatalogCommand::PublishDataset {
        tenant: DORA.into(),
        name: "weather".into(),
        bucket: "weather".into(),
        prefix: "2026/".into(),
        price: Amount(PRICE),
        apps: Vec::new(),
        now_ms: now_ms(),
    }))
    .await?;
    // Bob's own module reads the dataset as /input.
    let cat = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/wasm/cat.wat"
    ))?;
    let module = put_module(&c, BOB, cat).await?;
    let spec = stratus_spec::parse(
        "version: 1\nname: forecast\nkind: task\nwasm: { module: cat.wat }\nargs: [today.txt]\nrestart: { attempts: 0 }\nresources: { memory_mb: 16, wall_time_secs: 60 }\n",
        stratus_spec::Format::Yaml,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    c.write(Command::DeployUsing {
        deploy: Box::new(Command::DeployWorkload {
            tenant: BOB.into(),
            spec: Box::new(spec),
            module,
            now_ms: now_ms(),
        }),
        uses: Uses {
            app: None,
            dataset: Some(format!("{DORA}/weather")),
        },
    })
    .await?;
    let w = format!("{BOB}/forecast");
    let done = wait_until("the task to end and its deal to close", WAIT, || async {
        let ended = instances(&c, &w)
            .into_iter()
            .find(|i| i.state.is_terminal())?;
        c.state().read(|s| s.deals.is_empty()).then_some(ended)
    })
    .await?;
    let (_, out) = c.read_logs(&done.id, 0).await?;
    assert_eq!(done.state, InstanceState::Completed, "{:?}", done.events);
    assert_eq!(String::from_utf8_lossy(&out), "sunny\n");
    assert_eq!(balance(&c, DORA), PRICE);
    // The deal is closed: the node that ran it reads the dataset no more.
    let j = (0..3)
        .find(|j| cluster.agent_id(*j).ok() == Some(done.node))
        .ok_or_else(|| anyhow::anyhow!("the task ran on no agent of the cluster"))?;
    let identity = stratus_net::Identity::load_or_create(&cluster.agent_dir(j))?;
    let ep = stratus_net::Endpoint::dial_only(&identity, "127.0.0.1:0".parse()?).await?;
    let conn = ep
        .connect(cluster.cfg.control_addrs()?[0].parse()?, None)
        .await?;
    for tenant in [BOB, DORA] {
        let list = Request::ListInput {
            tenant: tenant.into(),
            bucket: "weather".into(),
            prefix: "2026/".into(),
            after: None,
        };
        match conn
            .call::<_, Response>(&list, Duration::from_secs(30))
            .await?
        {
            Response::Error {
                code: ErrorCode::Forbidden,
                ..
            } => {}
            other => panic!("listing the dataset as {tenant} after the deal: {other:?}"),
        }
    }
    cluster.shutdown().await;
    Ok(())
}
