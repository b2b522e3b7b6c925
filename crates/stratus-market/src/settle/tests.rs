use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::ledger::{post, totals, Balances, Transfer};

fn tenant(t: &str) -> Account {
    Account::Tenant(t.into())
}

fn terms(held: u64) -> Terms {
    Terms {
        deal: "d1".into(),
        requester: "bob".into(),
        lender: "lena".into(),
        prices: Prices {
            cpu_second: Amount(10),
            memory_gib_hour: Amount(3_600),
            storage_gib_month: Amount(0),
            egress_gib: Amount(1_024),
        },
        task: Amount(0),
        app: Some(("appco".into(), Amount(7))),
        dataset: Some(("datco".into(), Amount(5))),
        fee_bps: 1_000,
        held: Amount(held),
    }
}

fn funded(t: &Terms, amount: u64) -> BTreeMap<Account, Amount> {
    let mut b = BTreeMap::new();
    b.set_balance(&Account::External, Amount(amount));
    b.set_balance(&Account::Tenant(t.requester.clone()), Amount(amount));
    b
}

#[test]
fn usage_cost_adds_every_term_and_rounds_once() {
    let p = terms(0).prices;
    // 1.5 CPU-s at 10 = 15; 1 GiB for 1 s at 3600/GiB-h = 1; 1 MiB at
    // 1024/GiB = 1.
    let u = Usage {
        cpu_ms: 1_500,
        memory_peak_bytes: 1 << 30,
        wall_ms: 1_000,
        bytes_served: 1 << 20,
    };
    assert_eq!(usage_cost(&p, &u), Ok(Amount(17)));
    // Fractions of units are not charged, and they add up before rounding:
    // 0.99 CPU-s at 1 is nothing, 1.98 of it is 1.
    let one = Prices {
        cpu_second: Amount(1),
        ..Prices::default()
    };
    let u = |cpu_ms| Usage {
        cpu_ms,
        ..Usage::default()
    };
    assert_eq!(usage_cost(&one, &u(990)), Ok(Amount(0)));
    assert_eq!(usage_cost(&one, &u(1_980)), Ok(Amount(1)));
}

#[test]
fn usage_cost_overflow_is_an_error_not_a_wrap() {
    let p = Prices {
        cpu_second: Amount(u64::MAX),
        ..Prices::default()
    };
    let u = Usage {
        cpu_ms: u64::MAX,
        ..Usage::default()
    };
    assert!(matches!(
        usage_cost(&p, &u),
        Err(MoneyError::Overflow { .. })
    ));
}

#[test]
fn a_settled_deal_pays_each_party_exactly() {
    let t = terms(1_000);
    let mut b = funded(&t, 1_000);
    post(&mut b, &t.hold().expect("hold")).expect("post hold");
    assert_eq!(b.balance(&tenant("bob")), Amount(0));
    assert_eq!(b.balance(&Account::Held("bob".into())), Amount(1_000));
    // 20 CPU-s at 10 = 200; fee 10% = 20.
    let usage = Usage {
        cpu_ms: 20_000,
        ..Usage::default()
    };
    post(&mut b, &t.settle(&usage).expect("settle")).expect("post settle");
    assert_eq!(b.balance(&tenant("lena")), Amount(180));
    assert_eq!(b.balance(&Account::Operator), Amount(20));
    assert_eq!(b.balance(&tenant("appco")), Amount(7));
    assert_eq!(b.balance(&tenant("datco")), Amount(5));
    assert_eq!(b.balance(&tenant("bob")), Amount(1_000 - 200 - 12));
    assert_eq!(b.balance(&Account::Held("bob".into())), Amount(0));
    assert_eq!(totals(&b), Ok((Amount(1_000), Amount(1_000))));
}

#[test]
fn usage_beyond_the_escrow_is_capped_at_it() {
    let t = terms(112);
    let usage = Usage {
        cpu_ms: 1_000_000,
        ..Usage::default()
    };
    let e = t.settle(&usage).expect("settle");
    let to_lender: u64 = e
        .transfers
        .iter()
        .filter(|x| x.to == tenant("lena") || x.to == Account::Operator)
        .map(|x| x.amount.0)
        .sum();
    assert_eq!(to_lender, 100);
    assert!(!e.transfers.iter().any(|x| x.to == tenant("bob")));
}

#[test]
fn a_lenders_fault_pays_nobody_and_refunds_all() {
    let t = terms(500);
    let mut b = funded(&t, 500);
    post(&mut b, &t.hold().expect("hold")).expect("post hold");
    post(&mut b, &t.refund()).expect("refund");
    assert_eq!(b.balance(&tenant("bob")), Amount(500));
    assert_eq!(b.balance(&tenant("lena")), Amount(0));
    assert_eq!(b.balance(&Account::Operator), Amount(0));
}

#[test]
fn terms_that_cannot_settle_are_refused_up_front() {
    assert!(matches!(
        terms(11).hold(),
        Err(TermsError::FixedOverHeld { .. })
    ));
    let mut t = terms(100);
    t.fee_bps = BPS + 1;
    assert_eq!(t.hold(), Err(TermsError::Fee(BPS + 1)));
    let mut t = terms(100);
    t.app = Some(("a".into(), Amount(u64::MAX)));
    assert!(matches!(t.hold(), Err(TermsError::Money(_))));
}

#[test]
fn storage_is_billed_pro_rata_at_each_lenders_price() {
    let holdings = [
        Holding {
            lender: "l1".into(),
            bytes: 1 << 30,
            price: Amount(300),
        },
        Holding {
            lender: "l2".into(),
            bytes: 2 << 30,
            price: Amount(30),
        },
        // A bucket owner holding its own pieces bills itself nothing.
        Holding {
            lender: "bob".into(),
            bytes: 1 << 30,
            price: Amount(300),
        },
    ];
    let e = storage_bill(&"bob".into(), "b", &holdings, MONTH_MS / 3)
        .expect("bill")
        .expect("some");
    assert_eq!(
        e.transfers,
        vec![
            Transfer {
                from: tenant("bob"),
                to: tenant("l1"),
                amount: Amount(100)
            },
            Transfer {
                from: tenant("bob"),
                to: tenant("l2"),
                amount: Amount(20)
            },
        ]
    );
    assert_eq!(storage_bill(&"bob".into(), "b", &holdings, 0), Ok(None));
}

/// One step of a random market history.
#[derive(Clone, Debug)]
enum Op {
    Deposit(usize, u64),
    Withdraw(usize, u64),
    Deal {
        requester: usize,
        lender: usize,
        held: u64,
        cpu_ms: u64,
        fee_bps: u32,
        app_price: u64,
        fault: bool,
    },
    Store(usize, usize, u64, u64),
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..10_000u64).prop_map(|(t, n)| Op::Deposit(t, n)),
        (0..4usize, 0..10_000u64).prop_map(|(t, n)| Op::Withdraw(t, n)),
        (
            0..4usize,
            0..4usize,
            0..5_000u64,
            0..100_000u64,
            0..=BPS,
            0..100u64,
            any::<bool>()
        )
            .prop_map(
                |(requester, lender, held, cpu_ms, fee_bps, app_price, fault)| Op::Deal {
                    requester,
                    lender,
                    held,
                    cpu_ms,
                    fee_bps,
                    app_price,
                    fault,
                }
            ),
        (0..4usize, 0..4usize, 0..(4u64 << 30), 0..MONTH_MS)
            .prop_map(|(p, l, bytes, ms)| Op::Store(p, l, bytes, ms)),
    ]
}

/// Posts `e` if it is well formed and affordable; a refused entry must
/// leave the balances as they were.
fn try_post(b: &mut BTreeMap<Account, Amount>, e: &Entry) -> bool {
    let before = b.clone();
    match post(b, e) {
        Ok(()) => true,
        Err(_) => {
            assert_eq!(*b, before, "a refused entry changed balances");
            false
        }
    }
}

proptest! {
    /// Whatever happens, money is conserved (what is in the pool equals
    /// what entered minus what left), nothing is created by rounding, and
    /// every escrow is empty once its deal ended.
    #[test]
    fn money_is_conserved(ops in proptest::collection::vec(op(), 1..60)) {
        let mut b: BTreeMap<Account, Amount> = BTreeMap::new();
        let mut net_in: u128 = 0;
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Deposit(t, n) => {
                    let e = Entry { reason: Reason::Deposit, refs: Refs::default(),
                        transfers: transfer(&Account::External, &tenant(NAMES[t]), Amount(n)).into_iter().collect() };
                    if try_post(&mut b, &e) { net_in += u128::from(n); }
                }
                Op::Withdraw(t, n) => {
                    let e = Entry { reason: Reason::Withdrawal, refs: Refs::default(),
                        transfers: transfer(&tenant(NAMES[t]), &Account::External, Amount(n)).into_iter().collect() };
                    if try_post(&mut b, &e) { net_in -= u128::from(n); }
                }
                Op::Deal { requester, lender, held, cpu_ms, fee_bps, app_price, fault } => {
                    let t = Terms {
                        deal: format!("d{i}"),
                        requester: NAMES[requester].into(),
                        lender: NAMES[lender].into(),
                        prices: Prices { cpu_second: Amount(3), ..Prices::default() },
                        task: Amount(1),
                        app: Some((NAMES[(requester + 1) % 4].into(), Amount(app_price))),
                        dataset: None,
                        fee_bps,
                        held: Amount(held),
                    };
                    let Ok(hold) = t.hold() else { continue };
                    let escrow_before = b.balance(&Account::Held(t.requester.clone()));
                    if !try_post(&mut b, &hold) { continue; }
                    let end = if fault {
                        t.refund()
                    } else {
                        t.settle(&Usage { cpu_ms, ..Usage::default() }).expect("valid terms settle")
                    };
                    // The end of a placed deal always posts: the escrow
                    // holds exactly what it pays out.
                    prop_assert!(try_post(&mut b, &end));
                    prop_assert_eq!(b.balance(&Account::Held(t.requester.clone())), escrow_before);
                    if fault {
                        prop_assert!(end.transfers.iter().all(|x| x.to == tenant(NAMES[requester])));
                    }
                }
                Op::Store(payer, lender, bytes, ms) => {
                    let h = [Holding { lender: NAMES[lender].into(), bytes, price: Amount(50) }];
                    if let Some(e) = storage_bill(&NAMES[payer].into(), "bk", &h, ms).expect("bill") {
                        try_post(&mut b, &e);
                    }
                }
            }
            let (circulation, rest) = totals(&b).expect("fits");
            prop_assert_eq!(circulation, rest);
            prop_assert_eq!(u128::from(circulation.0), net_in);
        }
    }

    /// Reporting usage in pieces never costs more than reporting it whole.
    #[test]
    fn split_usage_never_costs_more(a in 0..1_000_000u64, b in 0..1_000_000u64, price in 0..1_000u64) {
        let p = Prices { cpu_second: Amount(price), memory_gib_hour: Amount(price), egress_gib: Amount(price), ..Prices::default() };
        let u = |cpu_ms| Usage { cpu_ms, memory_peak_bytes: 1 << 20, wall_ms: cpu_ms, bytes_served: cpu_ms * 1000 };
        let parts = usage_cost(&p, &u(a)).expect("fits").0 + usage_cost(&p, &u(b)).expect("fits").0;
        let whole = Usage { cpu_ms: a + b, memory_peak_bytes: 1 << 20, wall_ms: a + b, bytes_served: (a + b) * 1000 };
        prop_assert!(parts <= usage_cost(&p, &whole).expect("fits").0);
    }
}
