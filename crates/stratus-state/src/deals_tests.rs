//! Deals in the replicated state: holds, signed usage, refunds, and money
//! conserved through all of it.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use stratus_market::{Amount, Offer, Order, Prices, Usage, UsageReport};
use stratus_types::{ErrorCode, NodeId};

use crate::accounts::MarketCommand;
use crate::retention::tests::setup;
use crate::{Command, CommandResult, Instance, InstanceState, State};

pub(crate) const BOB: &str = "acme";
pub(crate) const LENA: &str = "lena";

pub(crate) fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

pub(crate) fn node_of(k: &SigningKey) -> NodeId {
    NodeId(k.verifying_key().to_bytes())
}

pub(crate) fn code(r: &CommandResult) -> Option<ErrorCode> {
    r.error.as_ref().map(|e| e.code())
}

pub(crate) fn ok(r: CommandResult) -> CommandResult {
    assert!(r.error.is_none(), "{r:?}");
    r
}

/// Bob (the retention tests' tenant, with a module) and Lena, whose node
/// (key 1) has an offer: 1000 per CPU-second, 3600 per GiB-hour, 50 per
/// task; the pool takes 10%.
pub(crate) fn market() -> (State, String) {
    let (mut s, module) = setup();
    lender_node(&mut s, 1, LENA, 3_600);
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetPoolFee { bps: 1_000 }),
    ));
    (s, module)
}

/// Tenant `owner` and its node of key `k`, offered at 1000 per CPU-second,
/// `gib_hour` per GiB-hour and 50 per task.
pub(crate) fn lender_node(s: &mut State, k: u8, owner: &str, gib_hour: u64) {
    ok(s.apply(
        1,
        &Command::CreateTenant {
            name: owner.into(),
            now_ms: 0,
        },
    ));
    let mut info = crate::tests::info(k);
    info.id = node_of(&key(k));
    let id = info.id;
    ok(s.apply(1, &Command::RegisterNode { info, now_ms: 0 }));
    s.nodes.get_mut(&id).unwrap().owner = owner.into();
    let offer = Offer {
        prices: Prices {
            cpu_second: Amount(1_000),
            memory_gib_hour: Amount(gib_hour),
            ..Prices::default()
        },
        ..Offer::default()
    };
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetOfferWithTask {
            node: id,
            offer: Some(offer),
            task: Amount(50),
        }),
    ));
}

pub(crate) fn deposit(s: &mut State, t: &str, amount: u64) {
    ok(s.apply(
        2,
        &Command::Market(MarketCommand::Deposit {
            tenant: t.into(),
            amount: Amount(amount),
            reference: String::new(),
            now_ms: 1,
        }),
    ));
}

/// Deploys `name` (a task of 10 s and 64 MiB unless `kind` says
/// otherwise), with `order` if given.
fn deploy(s: &mut State, module: &str, name: &str, kind: &str, order: Option<Order>) {
    let spec = stratus_spec::parse(
        &format!(
            "version: 1\nname: {name}\nkind: {kind}\nwasm: {{ module: m.wat }}\nresources: {{ memory_mb: 64, wall_time_secs: 10 }}\n"
        ),
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let deploy = Command::DeployWorkload {
        tenant: BOB.into(),
        spec: Box::new(spec),
        module: module.into(),
        now_ms: 1,
    };
    let cmd = match order {
        Some(order) => Command::DeployOrdered {
            deploy: Box::new(deploy),
            order,
        },
        None => deploy,
    };
    ok(s.apply(3, &cmd));
}

fn place(s: &mut State, name: &str, node: NodeId) -> CommandResult {
    place_for(s, BOB, name, node)
}

/// Places instance `<name>-i` of `tenant/name` on `node`.
pub(crate) fn place_for(s: &mut State, tenant: &str, name: &str, node: NodeId) -> CommandResult {
    s.apply(
        4,
        &Command::PlaceInstances {
            instances: vec![Instance::pending(
                format!("{name}-i"),
                format!("{tenant}/{name}").parse().unwrap(),
                node,
                1,
                0,
                5,
            )],
        },
    )
}

/// Instance `id` on `node` is lost with its node.
pub(crate) fn lost(id: &str, node: NodeId) -> Command {
    Command::ReportInstance {
        id: id.into(),
        node,
        state: InstanceState::Lost,
        restarts: 0,
        exit_code: None,
        kind: "lost".into(),
        message: String::new(),
        now_ms: 6,
    }
}

pub(crate) fn report(k: &SigningKey, instance: &str, seq: u64, cpu_ms: u64, last: bool) -> Command {
    let mut r = UsageReport {
        instance: instance.into(),
        node: k.verifying_key().to_bytes(),
        seq,
        usage: Usage {
            cpu_ms,
            memory_peak_bytes: 1 << 20,
            wall_ms: 1_000,
            bytes_served: 0,
        },
        last,
        time_ms: 9,
        signature: [0; 64],
    };
    r.signature = k.sign(&r.signed_bytes()).to_bytes();
    Command::ReportUsage(r)
}

pub(crate) fn balance(s: &State, t: &str) -> u64 {
    s.account(t).balance.0
}

/// Every balance but the outside world's adds up to what is in circulation.
pub(crate) fn conserved(s: &State) -> bool {
    let (circulation, rest) = stratus_market::ledger::totals(&s.balances).expect("fits");
    circulation == rest
}

// Worst case of a 10 s task: a whole core for 10 s (10 CPU-s = 10,000),
// 64 MiB for 10 s (3600/GiB-h = 1/GiB-s: 0.625 → 0 alone; with the CPU
// term added first: 10,000.625 → 10,000) plus 50 per task.
pub(crate) const WORST: u64 = 10_050;

#[test]
fn a_paid_task_holds_its_worst_case_and_pays_each_party_exactly() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    ok(place(&mut s, "job", node));
    assert_eq!(s.account(BOB).held, Amount(WORST));
    assert_eq!(balance(&s, BOB), 1_000_000 - WORST);
    // 2.5 CPU-s = 2,500; 1 MiB for 1 s ≈ 0; + 50 per task = 2,550:
    // the pool's 10% is 255, Lena's 2,295.
    ok(s.apply(5, &report(&key(1), "job-i", 1, 2_500, true)));
    assert_eq!(balance(&s, LENA), 2_295);
    assert_eq!(s.pool_totals().0, Amount(255));
    assert_eq!(balance(&s, BOB), 1_000_000 - 2_550);
    assert_eq!(s.account(BOB).held, Amount::ZERO);
    assert!(s.deals.is_empty());
    assert!(conserved(&s));
}

#[test]
fn forged_replayed_and_misdirected_reports_are_refused() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    ok(place(&mut s, "job", node));
    // Another key signs a report naming the instance's node.
    let Command::ReportUsage(mut forged) = report(&key(2), "job-i", 1, 9_000, true) else {
        unreachable!()
    };
    forged.node = node.0;
    assert_eq!(
        code(&s.apply(5, &Command::ReportUsage(forged))),
        Some(ErrorCode::Forbidden)
    );
    // A real node reports on an instance that is not its own.
    let other = report(&key(2), "job-i", 1, 9_000, true);
    assert_eq!(code(&s.apply(5, &other)), Some(ErrorCode::Forbidden));
    // The real report once; again, it is a replay.
    let first = report(&key(1), "job-i", 1, 1_000, false);
    ok(s.apply(6, &first));
    let paid = balance(&s, LENA);
    assert_eq!(code(&s.apply(7, &first)), Some(ErrorCode::Conflict));
    assert_eq!(balance(&s, LENA), paid);
    // Usage that goes down is refused.
    let lower = report(&key(1), "job-i", 2, 500, false);
    assert_eq!(code(&s.apply(8, &lower)), Some(ErrorCode::BadRequest));
    assert!(conserved(&s));
}

#[test]
fn a_lost_node_pays_its_lender_nothing_more_and_refunds_the_requester() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    ok(place(&mut s, "job", node));
    ok(s.apply(5, &lost("job-i", node)));
    assert_eq!(balance(&s, BOB), 1_000_000);
    assert_eq!(balance(&s, LENA), 0);
    assert_eq!(s.pool_totals().0, Amount::ZERO);
    assert!(s.deals.is_empty());
}

#[test]
fn placement_without_funds_or_over_the_maximum_is_refused_whole() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    deposit(&mut s, BOB, WORST - 1);
    deploy(&mut s, &m, "job", "task", None);
    let r = place(&mut s, "job", node);
    assert_eq!(code(&r), Some(ErrorCode::InsufficientFunds));
    assert!(r.error.unwrap().message().contains("short by 1"));
    assert!(s.instances.is_empty() && s.deals.is_empty());
    assert_eq!(balance(&s, BOB), WORST - 1);
    // An order whose maximum is under the worst case does not fit.
    deposit(&mut s, BOB, 1_000_000);
    let order = Order {
        max_price: Some(Amount(WORST - 1)),
        prefer: None,
        signature: None,
    };
    deploy(&mut s, &m, "cheap", "task", Some(order.clone()));
    assert_eq!(s.order("acme/cheap"), order);
    let r = place(&mut s, "cheap", node);
    assert_eq!(code(&r), Some(ErrorCode::Conflict));
    assert!(r.error.unwrap().message().contains("maximum price"));
    // Redeployed without an order: the default order again.
    deploy(&mut s, &m, "cheap", "task", None);
    assert_eq!(s.order("acme/cheap"), Order::default());
}

#[test]
fn the_operator_a_lenders_own_work_and_unpriced_nodes_run_free() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    // Lena's node now belongs to Bob: his own machine.
    s.nodes.get_mut(&node).unwrap().owner = BOB.into();
    deploy(&mut s, &m, "own", "task", None);
    ok(place(&mut s, "own", node));
    assert!(s.deals.is_empty());
    // A node without an offer.
    s.nodes.get_mut(&node).unwrap().owner = LENA.into();
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetOffer { node, offer: None }),
    ));
    deploy(&mut s, &m, "free", "task", None);
    ok(place(&mut s, "free", node));
    assert!(s.deals.is_empty());
}

#[test]
fn a_service_tops_up_its_escrow_and_is_marked_unfunded_when_it_cannot() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    // A service holds one hour: 3,600 CPU-s = 3,600,000, 64 MiB-h = 225,
    // + 50 = 3,600,275.
    let period = 3_600_275;
    deposit(&mut s, BOB, period + period / 2);
    deploy(&mut s, &m, "web", "service", None);
    ok(place(&mut s, "web", node));
    assert_eq!(s.account(BOB).held, Amount(period));
    // Used more than half: topped up by one period — there is not enough.
    ok(s.apply(5, &report(&key(1), "web-i", 1, 2_000_000, false)));
    assert!(s.deals["web-i"].unfunded);
    let (refund, stop) = s.stale_deals(10);
    assert!(refund.is_empty());
    assert_eq!(stop, ["web-i"]);
    // With more money the next report tops it up.
    deposit(&mut s, BOB, period);
    ok(s.apply(6, &report(&key(1), "web-i", 2, 2_000_001, false)));
    assert_eq!(s.deals["web-i"].deal.terms.held, Amount(2 * period));
    assert!(conserved(&s));
}

#[test]
fn a_deal_without_a_last_report_is_refunded_after_the_grace() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    ok(place(&mut s, "job", node));
    ok(s.apply(5, &report(&key(1), "job-i", 1, 1_000, false)));
    s.instances.get_mut("job-i").unwrap().state = InstanceState::Completed;
    assert_eq!(
        s.stale_deals(5 + crate::deals::LAST_REPORT_GRACE_MS),
        (vec![], vec![])
    );
    let (refund, _) = s.stale_deals(6 + crate::deals::LAST_REPORT_GRACE_MS);
    assert_eq!(refund, ["job-i"]);
    ok(s.apply(
        6,
        &Command::Market(MarketCommand::CloseDeal {
            instance: "job-i".into(),
            now_ms: 99,
        }),
    ));
    // What was reported is paid (1 CPU-s + 50 = 1,050), the rest returns.
    assert_eq!(balance(&s, BOB), 1_000_000 - 1_050);
    assert!(conserved(&s));
}

#[derive(Clone, Debug)]
enum Op {
    Deposit(u64),
    Place,
    Report {
        cpu_ms: u64,
        last: bool,
    },
    Lost,
    Close,
    /// Storage billing after this many ms.
    Bill(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..50_000u64).prop_map(Op::Deposit),
        Just(Op::Place),
        (0..20_000u64, any::<bool>()).prop_map(|(cpu_ms, last)| Op::Report { cpu_ms, last }),
        Just(Op::Lost),
        Just(Op::Close),
        (0..86_400_000u64).prop_map(Op::Bill),
    ]
}

proptest! {
    /// Random deposits, placements, usage reports, losses, refunds and
    /// storage billings: money is conserved after every step, whatever is
    /// refused, and billing never takes escrow.
    #[test]
    fn money_is_conserved_through_random_deals(ops in proptest::collection::vec(op(), 1..40)) {
        let (mut s, m) = market();
        let node = node_of(&key(1));
        // Bob stores 1 GiB, all on Lena's node, at a price that makes a
        // day's storage cost about as much as a deposit.
        let mut offer = s.offers[&node].clone();
        offer.prices.storage_gib_month = Amount(1_000_000);
        let task = s.task_prices[&node];
        ok(s.apply(1, &Command::Market(MarketCommand::SetOfferWithTask { node, offer: Some(offer), task })));
        s.store.usage.insert(BOB.into(), crate::quotas::StoreUsage { bytes: 1 << 30, objects: 1 });
        s.store.node_used.insert(node, 1 << 30);
        let mut now = 1_000;
        let mut n = 0;
        let mut seq = 0;
        let mut cpu = 0;
        for op in ops {
            let name = format!("j{n}");
            match op {
                Op::Deposit(a) => deposit(&mut s, BOB, a),
                Op::Place => {
                    n += 1;
                    seq = 0;
                    cpu = 0;
                    let name = format!("j{n}");
                    deploy(&mut s, &m, &name, "task", None);
                    place(&mut s, &name, node);
                }
                Op::Report { cpu_ms, last } => {
                    seq += 1;
                    cpu += cpu_ms;
                    s.apply(5, &report(&key(1), &format!("{name}-i"), seq, cpu, last));
                }
                Op::Lost => {
                    s.apply(5, &Command::ReportInstance {
                        id: format!("{name}-i"), node, state: InstanceState::Lost, restarts: 0,
                        exit_code: None, kind: "lost".into(), message: String::new(), now_ms: 7,
                    });
                }
                Op::Close => {
                    s.apply(5, &Command::Market(MarketCommand::CloseDeal { instance: format!("{name}-i"), now_ms: 7 }));
                }
                Op::Bill(ms) => {
                    now += ms;
                    ok(s.apply(6, &Command::Market(MarketCommand::BillStorage { now_ms: now })));
                }
            }
            prop_assert!(conserved(&s));
            let held: u64 = s.deals.values().map(|d| d.deal.left().0).sum();
            prop_assert_eq!(s.account(BOB).held, Amount(held));
        }
    }
}

#[test]
fn the_operator_sees_and_withdraws_the_pools_fees() {
    let (mut s, m) = market();
    if !s.tenants.contains_key(stratus_types::ADMIN_TENANT) {
        ok(s.apply(
            1,
            &Command::CreateTenant {
                name: stratus_types::ADMIN_TENANT.into(),
                now_ms: 0,
            },
        ));
    }
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    ok(place(&mut s, "job", node_of(&key(1))));
    ok(s.apply(5, &report(&key(1), "job-i", 1, 2_500, true)));
    let admin = stratus_types::ADMIN_TENANT;
    assert_eq!(s.account(admin).balance, Amount(255));
    let withdraw = |amount| {
        Command::Market(MarketCommand::Withdraw {
            tenant: admin.into(),
            amount: Amount(amount),
            reference: String::new(),
            now_ms: 9,
        })
    };
    assert_eq!(
        code(&s.apply(6, &withdraw(256))),
        Some(ErrorCode::InsufficientFunds)
    );
    ok(s.apply(7, &withdraw(200)));
    assert_eq!(s.account(admin).balance, Amount(55));
    let page = s.ledger_page(Some(admin), 0, 0..u64::MAX, 10);
    assert_eq!(page.records.len(), 2, "the fee and its withdrawal");
    assert!(conserved(&s));
}

#[test]
fn a_tenant_with_an_order_key_deploys_only_orders_it_signed_and_that_have_not_expired() {
    let (mut s, m) = market();
    let k = key(7);
    // A small-order key (the identity point: anyone could forge under
    // it) is refused.
    let mut identity = [0; 32];
    identity[0] = 1;
    let bad = s.apply(
        1,
        &Command::Market(MarketCommand::SetOrderKey {
            tenant: BOB.into(),
            key: Some(identity),
        }),
    );
    assert_eq!(code(&bad), Some(ErrorCode::BadRequest));
    assert!(s.order_keys.is_empty());
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetOrderKey {
            tenant: BOB.into(),
            key: Some(k.verifying_key().to_bytes()),
        }),
    ));
    let spec = stratus_spec::parse(
        "version: 1\nname: job\nkind: task\nwasm: { module: m.wat }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let signed = |o: &Order, by: &SigningKey, expires_ms: u64| {
        let mut o = o.clone();
        let key = by.verifying_key().to_bytes();
        let bytes = o.signed_bytes(BOB, &crate::deals::spec_hash(&spec), &m, &key, expires_ms);
        o.signature = Some(stratus_market::OrderSignature {
            key,
            expires_ms,
            module: m.clone(),
            signature: by.sign(&bytes).to_bytes(),
        });
        o
    };
    let deploy = |order: Order, now_ms: u64| Command::DeployOrdered {
        deploy: Box::new(Command::DeployWorkload {
            tenant: BOB.into(),
            spec: Box::new(spec.clone()),
            module: m.clone(),
            now_ms,
        }),
        order,
    };
    let order = Order {
        max_price: Some(Amount(50_000)),
        prefer: None,
        signature: None,
    };
    assert_eq!(
        code(&s.apply(3, &deploy(order.clone(), 10))),
        Some(ErrorCode::Forbidden)
    );
    let forged = signed(&order, &key(8), 100);
    assert_eq!(
        code(&s.apply(3, &deploy(forged, 10))),
        Some(ErrorCode::Forbidden)
    );
    let mut raised = signed(&order, &k, 100);
    raised.max_price = Some(Amount(60_000));
    assert_eq!(
        code(&s.apply(3, &deploy(raised, 10))),
        Some(ErrorCode::Forbidden)
    );
    let good = signed(&order, &k, 100);
    assert_eq!(
        code(&s.apply(3, &deploy(good.clone(), 100))),
        Some(ErrorCode::BadRequest),
        "expired"
    );
    assert!(s.workloads.is_empty());
    ok(s.apply(3, &deploy(good.clone(), 99)));
    // The stored order keeps its signature, for anyone to check later.
    assert_eq!(s.order("acme/job"), good);
}

#[test]
fn prices_that_overflow_fit_no_order_and_hold_nothing() {
    let (mut s, m) = market();
    let node = node_of(&key(1));
    let offer = Offer {
        prices: Prices {
            cpu_second: Amount(u64::MAX),
            memory_gib_hour: Amount(u64::MAX),
            ..Prices::default()
        },
        ..Offer::default()
    };
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetOfferWithTask {
            node,
            offer: Some(offer),
            task: Amount(u64::MAX),
        }),
    ));
    deposit(&mut s, BOB, 1_000_000);
    deploy(&mut s, &m, "job", "task", None);
    let r = place(&mut s, "job", node);
    assert_eq!(code(&r), Some(ErrorCode::Conflict));
    assert!(r.error.unwrap().message().contains("overflow"));
    assert_eq!(balance(&s, BOB), 1_000_000);
    assert!(s.deals.is_empty());
}
