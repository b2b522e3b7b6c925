use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::ledger::{post, totals, Balances};
use crate::settle::Prices;

fn terms(held: u64, fee_bps: u32) -> Terms {
    Terms {
        deal: "d".into(),
        requester: "bob".into(),
        lender: "lena".into(),
        prices: Prices {
            cpu_second: Amount(7),
            memory_gib_hour: Amount(3_600),
            egress_gib: Amount(1_024),
            ..Prices::default()
        },
        task: Amount(3),
        app: Some(("appco".into(), Amount(5))),
        dataset: None,
        fee_bps,
        held: Amount(held),
    }
}

fn cpu(cpu_ms: u64) -> Usage {
    Usage {
        cpu_ms,
        ..Usage::default()
    }
}

fn funded(amount: u64) -> BTreeMap<Account, Amount> {
    let mut b = BTreeMap::new();
    b.set_balance(&Account::External, Amount(amount));
    b.set_balance(&Account::Tenant("bob".into()), Amount(amount));
    b
}

fn balance(b: &BTreeMap<Account, Amount>, t: &str) -> u64 {
    b.balance(&Account::Tenant(t.into())).0
}

#[test]
fn usage_reported_in_steps_pays_the_increments_and_close_empties_the_escrow() {
    let t = terms(1_000, 1_000);
    let mut b = funded(1_000);
    post(&mut b, &t.hold().expect("hold")).expect("post hold");
    let mut d = Deal::new(t);
    // 10 CPU-s at 7 + 3 per task = 73: fee 7, lender 66.
    let e = d
        .charge(&cpu(10_000))
        .expect("charge")
        .expect("something due");
    post(&mut b, &e).expect("post");
    assert_eq!(balance(&b, "lena"), 66);
    assert_eq!(b.balance(&Account::Operator), Amount(7));
    // The same report again adds nothing.
    assert_eq!(d.charge(&cpu(10_000)), Ok(None));
    // 20 CPU-s in all = 143: fee 14, lender 129.
    let e = d.close(&cpu(20_000)).expect("close");
    post(&mut b, &e).expect("post");
    assert_eq!(balance(&b, "lena"), 129);
    assert_eq!(b.balance(&Account::Operator), Amount(14));
    assert_eq!(balance(&b, "appco"), 5);
    assert_eq!(balance(&b, "bob"), 1_000 - 143 - 5);
    assert_eq!(b.balance(&Account::Held("bob".into())), Amount(0));
    assert_eq!(d.left(), Amount(0));
}

#[test]
fn usage_that_goes_down_is_refused() {
    let mut d = Deal::new(terms(1_000, 0));
    d.charge(&cpu(5_000)).expect("charge");
    assert!(matches!(
        d.charge(&cpu(4_000)),
        Err(UsageError::Decreased { what: "cpu_ms", .. })
    ));
}

#[test]
fn a_refund_returns_only_what_is_left() {
    let t = terms(1_000, 0);
    let mut b = funded(1_000);
    post(&mut b, &t.hold().expect("hold")).expect("post hold");
    let mut d = Deal::new(t);
    post(&mut b, &d.charge(&cpu(10_000)).expect("c").expect("due")).expect("post");
    post(&mut b, &d.refund().expect("left")).expect("post refund");
    assert_eq!(balance(&b, "lena"), 73);
    assert_eq!(balance(&b, "appco"), 0, "no app price without a close");
    assert_eq!(balance(&b, "bob"), 1_000 - 73);
    assert_eq!(d.refund(), None, "a second refund returns nothing");
}

#[test]
fn a_top_up_raises_what_the_lender_can_be_paid() {
    let t = terms(20, 0);
    let mut b = funded(1_000);
    post(&mut b, &t.hold().expect("hold")).expect("post hold");
    let mut d = Deal::new(t);
    // Capped at 20 - 5 (app) = 15.
    post(&mut b, &d.charge(&cpu(10_000)).expect("c").expect("due")).expect("post");
    assert_eq!(balance(&b, "lena"), 15);
    post(&mut b, &d.top_up(Amount(100))).expect("top up");
    d.held_more(Amount(100)).expect("fits");
    post(&mut b, &d.charge(&cpu(10_001)).expect("c").expect("due")).expect("post");
    assert_eq!(balance(&b, "lena"), 73);
}

proptest! {
    /// Reporting in steps never costs more than reporting once, and the
    /// escrow always pays out exactly what it holds.
    #[test]
    fn steps_never_cost_more_and_money_is_conserved(
        steps in proptest::collection::vec((0..50_000u64, 0..(1u64 << 30), 0..100_000u64), 1..12),
        held in 0..100_000u64,
        fee_bps in 0..=crate::settle::BPS,
        fault in any::<bool>(),
    ) {
        let t = terms(held, fee_bps);
        let Ok(hold) = t.hold() else { return Ok(()) };
        let mut b = funded(held);
        post(&mut b, &hold).expect("funded");
        let mut d = Deal::new(t.clone());
        let mut total = Usage::default();
        for (i, (cpu_ms, mem, wall)) in steps.iter().enumerate() {
            total.cpu_ms += cpu_ms;
            total.memory_peak_bytes = total.memory_peak_bytes.max(*mem);
            total.wall_ms += wall;
            let last = i + 1 == steps.len();
            let e = if last && !fault {
                Some(d.close(&total).expect("close"))
            } else {
                d.charge(&total).expect("charge")
            };
            if let Some(e) = e {
                prop_assert!(post(&mut b, &e).is_ok());
            }
        }
        if fault {
            if let Some(e) = d.refund() {
                prop_assert!(post(&mut b, &e).is_ok());
            }
        } else {
            let whole = t.settle(&total).expect("settle");
            let whole_paid: u64 = whole.transfers.iter()
                .filter(|x| x.to != Account::Tenant("bob".into())).map(|x| x.amount.0).sum();
            prop_assert!(held - balance(&b, "bob") <= whole_paid);
        }
        prop_assert_eq!(b.balance(&Account::Held("bob".into())), Amount(0));
        let (circulation, rest) = totals(&b).expect("fits");
        prop_assert_eq!(circulation, rest);
        prop_assert_eq!(circulation, Amount(held));
    }
}
