use stratus_market::{Account, Amount, Reason};
use stratus_types::ErrorCode;

use super::*;
use crate::Command;

fn tenant(s: &mut State, name: &str) {
    let r = s.apply(
        1,
        &Command::CreateTenant {
            name: name.into(),
            now_ms: 1,
        },
    );
    assert_eq!(r.error, None);
}

fn deposit(s: &mut State, t: &str, amount: u64, now_ms: u64) -> crate::CommandResult {
    s.apply(
        2,
        &Command::Market(MarketCommand::Deposit {
            tenant: t.into(),
            amount: Amount(amount),
            reference: format!("wire-{now_ms}"),
            now_ms,
        }),
    )
}

fn withdraw(s: &mut State, t: &str, amount: u64, now_ms: u64) -> crate::CommandResult {
    s.apply(
        3,
        &Command::Market(MarketCommand::Withdraw {
            tenant: t.into(),
            amount: Amount(amount),
            reference: String::new(),
            now_ms,
        }),
    )
}

#[test]
fn deposits_and_withdrawals_move_money_and_are_recorded() {
    let mut s = State::default();
    tenant(&mut s, "bob");
    assert_eq!(deposit(&mut s, "bob", 1_000, 10).version, Some(1));
    assert_eq!(withdraw(&mut s, "bob", 300, 20).version, Some(2));
    assert_eq!(
        s.account("bob"),
        AccountView {
            tenant: "bob".into(),
            balance: Amount(700),
            held: Amount::ZERO,
        }
    );
    assert_eq!(s.pool_totals(), (Amount::ZERO, Amount(700)));
    let page = s.ledger_page(Some("bob"), 0, 0..u64::MAX, 10);
    assert_eq!(page.next, None);
    let reasons: Vec<_> = page.records.iter().map(|r| r.entry.reason).collect();
    assert_eq!(reasons, [Reason::Deposit, Reason::Withdrawal]);
    assert_eq!(
        page.records[0].entry.refs.external.as_deref(),
        Some("wire-10")
    );
    assert_eq!(page.records[1].at_ms, 20);
}

#[test]
fn overdrawing_is_refused_with_the_shortfall_and_changes_nothing() {
    let mut s = State::default();
    tenant(&mut s, "bob");
    deposit(&mut s, "bob", 100, 1);
    let before = s.dump();
    let r = withdraw(&mut s, "bob", 250, 2);
    let e = r.error.expect("refused");
    assert_eq!(e.code(), ErrorCode::InsufficientFunds);
    assert_eq!(e.code().http_status(), 402);
    assert!(e.message().contains("short by 150"), "{e}");
    s.flush();
    assert_eq!(s.dump(), before);
    assert_eq!(s.ledger_page(None, 0, 0..u64::MAX, 10).records.len(), 1);
}

#[test]
fn bad_commands_are_refused() {
    let mut s = State::default();
    tenant(&mut s, "bob");
    let r = deposit(&mut s, "nobody", 5, 1);
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::NotFound));
    let r = deposit(&mut s, "bob", 0, 1);
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::BadRequest));
    let r = s.apply(
        4,
        &Command::Market(MarketCommand::Deposit {
            tenant: "bob".into(),
            amount: Amount(1),
            reference: "x".repeat(MAX_REFERENCE + 1),
            now_ms: 1,
        }),
    );
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::BadRequest));
    deposit(&mut s, "bob", u64::MAX, 1);
    let r = deposit(&mut s, "bob", 1, 1);
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::Conflict));
    assert_eq!(s.account("bob").balance, Amount(u64::MAX));
}

#[test]
fn history_pages_by_tenant_and_time() {
    let mut s = State::default();
    tenant(&mut s, "bob");
    tenant(&mut s, "eve");
    for i in 0..25 {
        deposit(&mut s, if i % 2 == 0 { "bob" } else { "eve" }, 10, i * 100);
    }
    // bob: seqs 1, 3, ..., 25 (13 entries); pages of 5.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.ledger_page(Some("bob"), after, 0..u64::MAX, 5);
        seen.extend(page.records.iter().map(|r| r.seq));
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, (0..13).map(|i| 2 * i + 1).collect::<Vec<u64>>());
    // eve never sees bob's entries.
    let eve = s.ledger_page(Some("eve"), 0, 0..u64::MAX, 100);
    assert_eq!(eve.records.len(), 12);
    assert!(eve
        .records
        .iter()
        .all(|r| r.entry.transfers[0].to == Account::Tenant("eve".into())));
    // A time window: at_ms in [400, 1000) = i in 4..10.
    let w = s.ledger_page(None, 0, 400..1_000, 100);
    assert_eq!(
        w.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<u64>>()
    );
}

#[test]
fn balances_and_ledger_survive_a_reopen() {
    let mut s = State::default();
    tenant(&mut s, "bob");
    deposit(&mut s, "bob", 42, 1);
    s.flush();
    let mut back = State::open(Box::new(s.fork_kv())).expect("reopen");
    assert_eq!(back.account("bob").balance, Amount(42));
    assert_eq!(deposit(&mut back, "bob", 1, 2).version, Some(2));
    assert_eq!(back.ledger_record(1).map(|r| r.at_ms), Some(1));
}

#[test]
fn offers_are_set_replaced_and_withdrawn_for_registered_nodes() {
    let mut s = State::default();
    let node = crate::tests::info(7);
    let id = node.id;
    let set = |offer| Command::Market(MarketCommand::SetOffer { node: id, offer });
    let offer = stratus_market::Offer {
        prices: stratus_market::Prices {
            cpu_second: Amount(3),
            ..stratus_market::Prices::default()
        },
        availability: stratus_market::Availability::parse("sat-sun").expect("parse"),
    };
    let r = s.apply(1, &set(Some(offer.clone())));
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::NotFound));
    s.apply(
        2,
        &Command::RegisterNode {
            info: node,
            now_ms: 1,
        },
    );
    assert_eq!(s.apply(3, &set(Some(offer.clone()))).error, None);
    assert_eq!(s.offers.get(&id), Some(&offer));
    let mut bad = offer.clone();
    bad.availability.windows[0].days = 0;
    let r = s.apply(4, &set(Some(bad)));
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::BadRequest));
    assert_eq!(s.offers.get(&id), Some(&offer));
    assert_eq!(s.apply(5, &set(None)).error, None);
    assert!(s.offers.is_empty());
}
