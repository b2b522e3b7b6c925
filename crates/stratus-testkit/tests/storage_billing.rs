//! Storage billing on a real cluster (issue 15, item 4): a tenant stores an
//! object through the HTTP API on nodes lent by four lenders at four storage
//! prices; the leader bills every second (configured); the tenant's balance
//! falls and the lenders' rise by exactly what the ledger entries say, and
//! the money in the pool is unchanged.

#![allow(clippy::unwrap_used)]

#[path = "support/http.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use reqwest::StatusCode;
use serde_json::json;
use stratus_control::now_ms;
use stratus_market::{Account, Amount, Offer, Prices, Reason};
use stratus_state::accounts::MarketCommand;
use stratus_state::Command;
use stratus_testkit::{noise, wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::NodeStatus;
use support::call;

const AGENTS: usize = 4;
const BOB: &str = "bob";
const DEPOSIT: u64 = 1_000_000_000_000_000;
/// Lender j's price per GiB-month: (j + 1) × this (large, so a second of a
/// small object is worth a few units).
const PRICE: u64 = 1_000_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_bytes_are_billed_to_the_lenders_that_hold_them() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.storage_billing_every = Some(Duration::from_secs(1));
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, AGENTS).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    for j in 0..AGENTS {
        let offer = Offer {
            prices: Prices {
                storage_gib_month: Amount(PRICE * (j as u64 + 1)),
                ..Prices::default()
            },
            ..Offer::default()
        };
        c.write(Command::Market(MarketCommand::SetOffer {
            node: cluster.agent_id(j)?,
            offer: Some(offer),
        }))
        .await?;
    }
    // Bob, through the API: a tenant, a bucket, an object.
    let http = reqwest::Client::new();
    let api = cluster.api_url(0)?;
    let admin = cluster.admin_token.clone();
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        &format!("{api}/v1/tenants"),
        &admin,
        None,
        Some(json!({ "name": BOB })),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let bob = v["token"].as_str().unwrap_or_default().to_owned();
    c.write(Command::Market(MarketCommand::Deposit {
        tenant: BOB.into(),
        amount: Amount(DEPOSIT),
        reference: "test".into(),
        now_ms: now_ms(),
    }))
    .await?;
    let (s, v) = call(
        &http,
        reqwest::Method::POST,
        &format!("{api}/v1/buckets"),
        &bob,
        None,
        Some(json!({ "name": "bob-data" })),
    )
    .await?;
    assert!(s.is_success(), "{s} {v}");
    let mut stored = false;
    for _ in 0..100 {
        let (s, v) = call(
            &http,
            reqwest::Method::PUT,
            &format!("{api}/v1/buckets/bob-data/objects/big"),
            &bob,
            Some(noise(1 << 20, 0x9E37_79B9_7F4A_7C15).into()),
            None,
        )
        .await?;
        if s.is_success() {
            stored = true;
            break;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !stored {
        bail!("the object could not be stored");
    }
    // A few billings after the object is stored.
    let bills = |c: &stratus_control::Control| {
        c.state().read(|s| {
            s.ledger_page(Some(BOB), 0, 0..u64::MAX, 1_000)
                .records
                .into_iter()
                .filter(|r| r.entry.reason == Reason::StorageBill)
                .collect::<Vec<_>>()
        })
    };
    wait_until("three storage bills", WAIT, || async {
        (bills(&c).len() >= 3).then_some(())
    })
    .await?;
    // One consistent read: balances and the entries that moved them.
    let (records, balances, circulation) = c.state().read(|s| {
        let records: Vec<_> = s
            .ledger_page(Some(BOB), 0, 0..u64::MAX, 1_000)
            .records
            .into_iter()
            .filter(|r| r.entry.reason == Reason::StorageBill)
            .collect();
        let balances: BTreeMap<Account, Amount> =
            s.balances.iter().map(|(a, b)| (a.clone(), *b)).collect();
        (records, balances, s.pool_totals().1)
    });
    let mut expected: BTreeMap<Account, i128> = BTreeMap::new();
    expected.insert(Account::Tenant(BOB.into()), i128::from(DEPOSIT));
    for r in &records {
        assert_eq!(r.entry.refs.tenant.as_deref(), Some(BOB));
        assert_eq!(r.entry.refs.shortfall, None, "bob can pay");
        for t in &r.entry.transfers {
            assert_eq!(t.from, Account::Tenant(BOB.into()));
            *expected.entry(t.from.clone()).or_default() -= i128::from(t.amount.0);
            *expected.entry(t.to.clone()).or_default() += i128::from(t.amount.0);
        }
    }
    let lenders_paid = expected
        .iter()
        .filter(|(a, v)| **a != Account::Tenant(BOB.into()) && **v > 0)
        .count();
    assert!(
        lenders_paid >= 2,
        "the pieces are spread over several lenders' nodes: {expected:?}"
    );
    for (account, want) in &expected {
        let have = balances.get(account).copied().unwrap_or_default();
        assert_eq!(i128::from(have.0), *want, "{account}");
    }
    assert!(
        balances[&Account::Tenant(BOB.into())].0 < DEPOSIT,
        "bob paid for storage"
    );
    // Nothing else moved money, and the sum is unchanged.
    assert_eq!(circulation, Amount(DEPOSIT));
    let sum: u64 = balances
        .iter()
        .filter(|(a, _)| **a != Account::External)
        .map(|(_, b)| b.0)
        .sum();
    assert_eq!(sum, DEPOSIT);
    cluster.shutdown().await;
    Ok(())
}
