//! Storage billing: exact amounts, free storage (own nodes, the operator),
//! tenants that cannot pay, and money conserved through random sequences
//! of pack commits, object puts and deletes, garbage collection, piece
//! moves and billings.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use stratus_chunk::{ChunkId, PieceId};
use stratus_market::settle::MONTH_MS;
use stratus_market::{Account, Amount, Offer, Prices, Reason};
use stratus_types::{NodeId, NodeStatus, ADMIN_TENANT};

use crate::accounts::MarketCommand;
use crate::deals::tests::{balance, conserved, deposit, ok};
use crate::kv::Kv;
use crate::objects::{
    Bucket, DedupeScope, ErasureProfile, KeyScope, ManifestChunk, NewChunk, ObjectData,
    ObjectVersion, PieceMove, StoreCommand, Versioning,
};
use crate::{Command, CommandResult, State};

const ACME: &str = "acme";
const LENA: &str = "lena";
const LARS: &str = "lars";
const GIB: u64 = 1 << 30;
const DAY_MS: u64 = 86_400_000;
const T0: u64 = 1_000_000;

fn node(i: u8) -> NodeId {
    NodeId([i; 32])
}

fn chunk(i: u8) -> ChunkId {
    ChunkId([i; 32])
}

fn bill(s: &mut State, now_ms: u64) -> CommandResult {
    s.apply(9, &Command::Market(MarketCommand::BillStorage { now_ms }))
}

fn offer(s: &mut State, n: u8, price: u64) {
    let offer = Offer {
        prices: Prices {
            storage_gib_month: Amount(price),
            ..Prices::default()
        },
        ..Offer::default()
    };
    ok(s.apply(
        1,
        &Command::Market(MarketCommand::SetOffer {
            node: node(n),
            offer: Some(offer),
        }),
    ));
}

/// Tenants acme, lena, lars and the operator's; nodes 1 and 2 lena's at
/// 1000 per GiB-month, 3 lars's at 3000, 4 acme's own at 5000, 5 lena's
/// without an offer; a bucket each for acme and the operator.
fn cell() -> State {
    let mut s = State::default();
    for t in [ADMIN_TENANT, ACME, LENA, LARS] {
        ok(s.apply(
            1,
            &Command::CreateTenant {
                name: t.into(),
                now_ms: 0,
            },
        ));
    }
    for (n, owner) in [(1, LENA), (2, LENA), (3, LARS), (4, ACME), (5, LENA)] {
        ok(s.apply(
            1,
            &Command::RegisterNode {
                info: crate::tests::info(n),
                now_ms: 0,
            },
        ));
        s.nodes.get_mut(&node(n)).unwrap().owner = owner.into();
    }
    offer(&mut s, 1, 1_000);
    offer(&mut s, 2, 1_000);
    offer(&mut s, 3, 3_000);
    offer(&mut s, 4, 5_000);
    for (t, b) in [(ACME, "acme-data"), (ADMIN_TENANT, "ops-data")] {
        ok(s.apply(
            1,
            &Command::Store(StoreCommand::CreateBucket {
                bucket: Bucket {
                    name: b.into(),
                    tenant: t.into(),
                    profile: None,
                    scope: DedupeScope::Tenant,
                    versioning: Versioning::Unversioned,
                    created_ms: 0,
                },
            }),
        ));
    }
    s
}

/// Commits a 2+1 pack of one chunk `c` (`len` bytes) with pieces of
/// `len / 2` bytes on `nodes`.
fn pack(c: u8, len: u64, nodes: [u8; 3]) -> Command {
    Command::Store(StoreCommand::CommitPack {
        profile: ErasureProfile { k: 2, m: 1 },
        data_len: len,
        piece_len: len / 2,
        pieces: nodes
            .iter()
            .map(|n| (PieceId([*n; 32]), node(*n)))
            .collect(),
        chunks: vec![NewChunk {
            id: chunk(c),
            offset: 0,
            sealed_len: u32::try_from(len).unwrap(),
            plain_len: u32::try_from(len).unwrap(),
        }],
        now_ms: 0,
    })
}

fn put(tenant: &str, bucket: &str, key: &str, c: u8, len: u64) -> Command {
    Command::Store(StoreCommand::PutObject {
        tenant: tenant.into(),
        bucket: bucket.into(),
        key: key.into(),
        version: ObjectVersion {
            version_id: String::new(),
            size: len,
            etag: "e".into(),
            blake3: String::new(),
            created_ms: 0,
            content_type: None,
            user_meta: BTreeMap::new(),
            data: Some(ObjectData {
                scope: KeyScope::Tenant(tenant.into()),
                chunks: vec![ManifestChunk {
                    id: chunk(c),
                    len: u32::try_from(len).unwrap(),
                }],
            }),
        },
    })
}

/// [`cell`] with 1 GiB of acme's on nodes 1 (lena), 3 (lars), 4 (its own)
/// and 1 GiB of the operator's on nodes 2 (lena), 5 (no offer), 3 (lars):
/// lena's priced nodes hold 1 GiB of pieces, lars's 1 GiB, acme's 0.5 GiB;
/// acme stores half of all stored bytes.
fn stored() -> State {
    let mut s = cell();
    ok(s.apply(3, &pack(1, GIB, [1, 3, 4])));
    ok(s.apply(3, &put(ACME, "acme-data", "a", 1, GIB)));
    ok(s.apply(3, &pack(2, GIB, [2, 5, 3])));
    ok(s.apply(3, &put(ADMIN_TENANT, "ops-data", "o", 2, GIB)));
    s
}

#[test]
fn a_tenant_pays_each_lender_at_its_price_pro_rata() {
    let mut s = stored();
    deposit(&mut s, ACME, 1_000_000);
    deposit(&mut s, ADMIN_TENANT, 1_000);
    // The first billing only starts the clock.
    assert!(s.storage_billing_due(T0, DAY_MS));
    assert_eq!(ok(bill(&mut s, T0)).version, Some(0));
    assert!(!s.storage_billing_due(T0 + DAY_MS - 1, DAY_MS));
    assert!(s.storage_billing_due(T0 + DAY_MS, DAY_MS));
    assert_eq!(balance(&s, ACME), 1_000_000);
    // Half of lena's 1 GiB at 1000 and half of lars's 1 GiB at 3000 for a
    // month: 500 and 1500; its own node is free.
    let holdings = s.storage_holdings(ACME);
    assert_eq!(holdings.len(), 2, "{holdings:?}");
    assert!(holdings.iter().all(|h| h.bytes == GIB / 2));
    assert_eq!(ok(bill(&mut s, T0 + MONTH_MS)).version, Some(1));
    assert_eq!(balance(&s, ACME), 1_000_000 - 2_000);
    assert_eq!(balance(&s, LENA), 500);
    assert_eq!(balance(&s, LARS), 1_500);
    // The operator's storage is free.
    assert_eq!(balance(&s, ADMIN_TENANT), 1_000);
    assert!(s.storage_holdings(ADMIN_TENANT).is_empty());
    assert!(conserved(&s));
    // The entry says why and whom.
    let seq = *s.ledger_seq;
    let r = s.ledger_record(seq).unwrap();
    assert_eq!(r.entry.reason, Reason::StorageBill);
    assert_eq!(r.entry.refs.tenant.as_deref(), Some(ACME));
    assert_eq!(r.entry.refs.shortfall, None);
    assert_eq!(r.at_ms, T0 + MONTH_MS);
    // A day more: 500/30 = 16.67 → 16 and 1500/30 = 50, rounded down each.
    ok(bill(&mut s, T0 + MONTH_MS + DAY_MS));
    assert_eq!(balance(&s, LENA), 516);
    assert_eq!(balance(&s, LARS), 1_550);
    assert_eq!(balance(&s, ACME), 1_000_000 - 2_066);
    assert!(conserved(&s));
    // A clock behind the last billing bills nothing and keeps the time.
    ok(bill(&mut s, T0));
    assert_eq!(*s.storage_billed_ms, Some(T0 + MONTH_MS + DAY_MS));
    assert_eq!(balance(&s, ACME), 1_000_000 - 2_066);
}

#[test]
fn own_nodes_lost_banned_and_unpriced_nodes_earn_nothing() {
    let mut s = stored();
    deposit(&mut s, ACME, 1_000_000);
    ok(bill(&mut s, T0));
    // Lars's node is lost at billing time: only lena is paid.
    ok(s.apply(
        4,
        &Command::SetNodeStatus {
            id: node(3),
            status: NodeStatus::Lost,
            now_ms: 5,
        },
    ));
    ok(bill(&mut s, T0 + MONTH_MS));
    assert_eq!((balance(&s, LENA), balance(&s, LARS)), (500, 0));
    // Lena withdraws the offers: nothing is billed at all.
    for n in [1, 2] {
        ok(s.apply(
            1,
            &Command::Market(MarketCommand::SetOffer {
                node: node(n),
                offer: None,
            }),
        ));
    }
    assert_eq!(ok(bill(&mut s, T0 + 2 * MONTH_MS)).version, Some(0));
    assert_eq!(balance(&s, ACME), 1_000_000 - 500);
    // Lena storing on acme's node pays acme; acme never pays itself.
    assert!(s
        .storage_holdings(ACME)
        .iter()
        .all(|h| h.lender.as_str() != ACME));
    assert!(conserved(&s));
}

#[test]
fn a_tenant_that_cannot_pay_is_charged_what_it_has_and_never_its_escrow() {
    let mut s = stored();
    deposit(&mut s, ACME, 1_000);
    // 300 of it in escrow (as an open deal would hold it).
    let from = Account::Tenant(ACME.into());
    let held = Account::Held(ACME.into());
    s.balances.insert(from.clone(), Amount(700));
    s.balances.insert(held, Amount(300));
    assert!(conserved(&s));
    ok(bill(&mut s, T0));
    // Owes 2000, has 700: lena 500·700/2000 = 175, lars 1500·700/2000 = 525.
    assert_eq!(ok(bill(&mut s, T0 + MONTH_MS)).version, Some(1));
    assert_eq!(s.account(ACME).balance, Amount::ZERO);
    assert_eq!(s.account(ACME).held, Amount(300));
    assert_eq!((balance(&s, LENA), balance(&s, LARS)), (175, 525));
    let r = s.ledger_record(*s.ledger_seq).unwrap();
    assert_eq!(r.entry.refs.shortfall, Some(Amount(1_300)));
    assert!(conserved(&s));
    // Nothing left: no entry, an audit record of the unpaid bill.
    let seq = *s.ledger_seq;
    assert_eq!(ok(bill(&mut s, T0 + 2 * MONTH_MS)).version, Some(0));
    assert_eq!(*s.ledger_seq, seq);
    let page = s.audit_page(Some(ACME), 0, 0..u64::MAX, 1_000);
    let unpaid = page
        .records
        .iter()
        .find(|r| r.kind == "market.storage-unpaid")
        .expect("an audit record of the unpaid bill");
    assert!(unpaid.detail.contains("short by 2000"), "{}", unpaid.detail);
    assert!(conserved(&s));
}

#[test]
fn billing_time_survives_a_restart_and_a_state_without_it_starts_the_clock() {
    // A data directory from before storage billing has packs but no
    // billing row: the first billing only starts the clock.
    let mut s = stored();
    deposit(&mut s, ACME, 1_000_000);
    s.flush();
    let mut old = s.fork_kv();
    old.delete(crate::Table::Rows, b"storage_billed_ms");
    let mut s = State::open(Box::new(old)).unwrap();
    assert_eq!(*s.storage_billed_ms, None);
    assert_eq!(ok(bill(&mut s, T0)).version, Some(0));
    assert_eq!(balance(&s, ACME), 1_000_000);
    // The time is stored with the state.
    s.flush();
    let mut s = State::open(Box::new(s.fork_kv())).unwrap();
    assert_eq!(*s.storage_billed_ms, Some(T0));
    ok(bill(&mut s, T0 + MONTH_MS));
    assert_eq!(balance(&s, ACME), 1_000_000 - 2_000);
}

#[derive(Clone, Debug)]
enum Op {
    Deposit(u64),
    /// A pack of chunk `c` on three of the nodes from `n`, `len` KiB.
    Pack(u8, u8, u64),
    /// Acme or the operator puts key `k` of chunk `c`.
    Put(bool, u8, u8),
    Delete(bool, u8),
    Gc,
    Move(u64, u32, u8, u8),
    Lost(u8, bool),
    Bill(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..5_000u64).prop_map(Op::Deposit),
        (0u8..6, 1u8..4, 1..4_000u64).prop_map(|(c, n, l)| Op::Pack(c, n, l)),
        (any::<bool>(), 0u8..3, 0u8..6).prop_map(|(a, k, c)| Op::Put(a, k, c)),
        (any::<bool>(), 0u8..3).prop_map(|(a, k)| Op::Delete(a, k)),
        Just(Op::Gc),
        (1u64..6, 0u32..3, 1u8..6, 1u8..6).prop_map(|(p, i, a, b)| Op::Move(p, i, a, b)),
        (1u8..6, any::<bool>()).prop_map(|(n, l)| Op::Lost(n, l)),
        (0..3 * MONTH_MS).prop_map(Op::Bill),
    ]
}

fn step(s: &mut State, op: &Op, now: &mut u64, sizes: &BTreeMap<u8, u64>) {
    let who = |a: bool| {
        if a {
            (ACME, "acme-data")
        } else {
            (ADMIN_TENANT, "ops-data")
        }
    };
    match op {
        Op::Deposit(a) => deposit(s, ACME, *a),
        Op::Pack(c, n, kib) => {
            let nodes = [*n, n + 1, n + 2];
            s.apply(3, &pack(*c, kib * 1024, nodes));
        }
        Op::Put(a, k, c) => {
            let (t, b) = who(*a);
            if let Some(len) = sizes.get(c) {
                s.apply(3, &put(t, b, &format!("k{k}"), *c, *len));
            }
        }
        Op::Delete(a, k) => {
            let (t, b) = who(*a);
            s.apply(
                3,
                &Command::Store(StoreCommand::DeleteObject {
                    tenant: t.into(),
                    bucket: b.into(),
                    key: format!("k{k}"),
                    version_id: None,
                    now_ms: *now,
                }),
            );
        }
        Op::Gc => {
            s.apply(
                3,
                &Command::Store(StoreCommand::CollectGarbage {
                    now_ms: *now,
                    grace_ms: 0,
                }),
            );
        }
        Op::Move(p, i, a, b) => {
            s.apply(
                3,
                &Command::Store(StoreCommand::MovePieces {
                    moves: vec![PieceMove {
                        pack: *p,
                        index: *i,
                        from: node(*a),
                        to: node(*b),
                    }],
                }),
            );
        }
        Op::Lost(n, lost) => {
            s.apply(
                4,
                &Command::SetNodeStatus {
                    id: node(*n),
                    status: if *lost {
                        NodeStatus::Lost
                    } else {
                        NodeStatus::Ready
                    },
                    now_ms: 5,
                },
            );
        }
        Op::Bill(ms) => {
            *now += ms;
            ok(bill(s, *now));
        }
    }
}

proptest! {
    /// Random pack commits, puts, deletes, garbage collection, piece moves,
    /// lost nodes, deposits and billings: money is conserved after every
    /// step, escrow-free balances cover every bill taken, the counters
    /// billing reads equal a full recount, and two replicas agree.
    #[test]
    fn money_is_conserved_through_random_storage_billing(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = cell();
        let mut twin = cell();
        let mut now = T0;
        let mut twin_now = T0;
        // Chunk c's length, fixed by the first pack that holds it.
        let mut sizes = BTreeMap::new();
        for op in &ops {
            if let Op::Pack(c, _, kib) = op {
                sizes.entry(*c).or_insert(kib * 1024);
            }
        }
        // A pack of a chunk already indexed adds pieces but no chunk: use
        // the first length for every pack of it.
        let ops: Vec<Op> = ops
            .into_iter()
            .map(|op| match op {
                Op::Pack(c, n, _) => Op::Pack(c, n, sizes[&c] / 1024),
                op => op,
            })
            .collect();
        for op in &ops {
            let before: u64 = s.balances.get(&Account::External).map_or(0, |a| a.0);
            step(&mut s, op, &mut now, &sizes);
            step(&mut twin, op, &mut twin_now, &sizes);
            prop_assert!(conserved(&s));
            if !matches!(op, Op::Deposit(_)) {
                let after: u64 = s.balances.get(&Account::External).map_or(0, |a| a.0);
                prop_assert_eq!(before, after, "billing creates or destroys no money");
            }
            // The counters billing reads, against a full recount.
            let mut used: BTreeMap<NodeId, u64> = BTreeMap::new();
            for p in s.store.packs() {
                for sl in &p.pieces {
                    *used.entry(sl.node).or_default() += p.piece_len;
                }
            }
            prop_assert_eq!(&used, &*s.store.node_used);
            for (t, b) in [(ACME, "acme-data"), (ADMIN_TENANT, "ops-data")] {
                let (keys, _) = s.store.list_keys(b, "", None, usize::MAX);
                let bytes: u64 = keys.iter().flat_map(|(_, vs)| vs).map(|v| v.size).sum();
                prop_assert_eq!(s.store.usage_of(t).bytes, bytes);
            }
            // Nobody is billed for more than the priced nodes hold.
            let priced: u64 = s
                .offers
                .keys()
                .map(|n| s.store.node_usage(n))
                .sum();
            let held: u64 = s.storage_holdings(ACME).iter().map(|h| h.bytes).sum();
            prop_assert!(held <= priced);
        }
        prop_assert_eq!(s.dump(), twin.dump());
    }
}
