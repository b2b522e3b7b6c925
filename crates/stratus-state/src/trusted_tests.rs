//! Trusted runs in the replicated state: placement on distinct owners,
//! commit before reveal, the verdict, and who is paid.

#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use stratus_market::{Amount, Order};
use stratus_types::{ErrorCode, NodeId};
use stratus_verify::{commitment, ResultParts, Verdict};

use super::{Outcome, Progress, TrustCommand};
use crate::accounts::MarketCommand;
use crate::deals::tests::{
    balance, code, conserved, deposit, key, lender_node, market, node_of, ok, report, BOB,
};
use crate::{Command, Instance, InstanceState, State};

const LENDERS: [&str; 4] = ["lena", "lars", "liv", "lou"];
const WORKLOAD: &str = "acme/sum";

/// The deals tests' market with four lenders (keys 1–4), each owning one
/// priced node; Bob has money.
fn four_lenders() -> (State, String) {
    let (mut s, module) = market();
    for (k, owner) in LENDERS.iter().enumerate().skip(1) {
        lender_node(&mut s, k as u8 + 1, owner, 0);
    }
    deposit(&mut s, BOB, 1_000_000);
    (s, module)
}

fn deploy(s: &mut State, module: &str, trust: u32) -> crate::CommandResult {
    let spec = stratus_spec::parse(
        "version: 1\nname: sum\nkind: task\nwasm: { module: m.wat }\nresources: { memory_mb: 64, wall_time_secs: 10 }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    s.apply(
        3,
        &Command::DeployTrusted {
            deploy: Box::new(Command::DeployOrdered {
                deploy: Box::new(Command::DeployWorkload {
                    tenant: BOB.into(),
                    spec: Box::new(spec),
                    module: module.into(),
                    now_ms: 1,
                }),
                order: Order::default(),
            }),
            trust,
        },
    )
}

fn replica(id: &str, node: NodeId) -> Instance {
    Instance::pending(id.into(), WORKLOAD.parse().unwrap(), node, 1, 0, 5)
}

fn place(s: &mut State, replicas: &[(&str, u8)]) -> crate::CommandResult {
    s.apply(
        4,
        &Command::PlaceInstances {
            instances: replicas
                .iter()
                .map(|(id, k)| replica(id, node_of(&key(*k))))
                .collect(),
        },
    )
}

fn parts(stdout: &str) -> ResultParts {
    ResultParts {
        exit_code: 0,
        output: *blake3::hash(stdout.as_bytes()).as_bytes(),
        files: stratus_verify::files_digest(&[]),
    }
}

fn commit(k: &SigningKey, id: &str, p: &ResultParts, salt: u8) -> Command {
    let node = node_of(k);
    Command::Trust(TrustCommand::Commit {
        instance: id.into(),
        node,
        commitment: commitment(&node.0, &p.digest(), &[salt; 32]),
        now_ms: 7,
    })
}

fn reveal(k: &SigningKey, id: &str, p: &ResultParts, salt: u8) -> Command {
    Command::Trust(TrustCommand::Reveal {
        instance: id.into(),
        node: node_of(k),
        parts: *p,
        salt: [salt; 32],
    })
}

fn ended(k: &SigningKey, id: &str) -> Command {
    Command::ReportInstance {
        id: id.into(),
        node: node_of(k),
        state: InstanceState::Completed,
        restarts: 0,
        exit_code: Some(0),
        kind: "exited".into(),
        message: String::new(),
        now_ms: 8,
    }
}

fn decide(s: &mut State) -> crate::CommandResult {
    s.apply(
        9,
        &Command::Trust(TrustCommand::Decide {
            workload: WORKLOAD.into(),
            now_ms: 10,
        }),
    )
}

/// Replicas on keys `ks` each commit to, end with, and send the last
/// usage report of `results[i]`.
fn run_to_the_end(s: &mut State, ks: &[u8], results: &[ResultParts]) {
    for (k, p) in ks.iter().zip(results) {
        let id = format!("r{k}");
        ok(s.apply(5, &commit(&key(*k), &id, p, *k)));
        ok(s.apply(6, &ended(&key(*k), &id)));
        ok(s.apply(6, &report(&key(*k), &id, 1, 2_000, true)));
    }
}

#[test]
fn the_honest_result_wins_and_the_liar_is_cut_and_unpaid() {
    let (mut s, m) = four_lenders();
    ok(deploy(&mut s, &m, 3));
    ok(place(&mut s, &[("r1", 1), ("r2", 2), ("r3", 3)]));
    let before: Vec<u64> = LENDERS.iter().map(|l| balance(&s, l)).collect();
    let (honest, lie) = (parts("42\n"), parts("41\n"));

    // Nobody reveals before every replica has committed.
    ok(s.apply(5, &commit(&key(1), "r1", &honest, 1)));
    let early = s.apply(5, &reveal(&key(1), "r1", &honest, 1));
    assert_eq!(code(&early), Some(ErrorCode::Conflict), "{early:?}");
    ok(s.apply(5, &commit(&key(2), "r2", &lie, 2)));
    ok(s.apply(5, &commit(&key(3), "r3", &honest, 3)));
    for k in [1u8, 2, 3] {
        ok(s.apply(6, &ended(&key(k), &format!("r{k}"))));
        // The last usage reports arrive: held, nobody is paid yet.
        ok(s.apply(6, &report(&key(k), &format!("r{k}"), 1, 2_000, true)));
    }
    let now: Vec<u64> = LENDERS.iter().map(|l| balance(&s, l)).collect();
    assert_eq!(now, before, "paid before the verdict");
    assert_eq!(
        s.trusted_progress(s.trusted.get(WORKLOAD).unwrap(), 8),
        Progress::Waiting
    );
    ok(s.apply(7, &reveal(&key(1), "r1", &honest, 1)));
    ok(s.apply(7, &reveal(&key(2), "r2", &lie, 2)));
    // Deciding early is refused: r3 has not revealed.
    assert_eq!(code(&decide(&mut s)), Some(ErrorCode::Conflict));
    ok(s.apply(7, &reveal(&key(3), "r3", &honest, 3)));
    // The run, with its commitments, reveals and held reports, survives a
    // restart.
    s.flush();
    let mut s = State::open(Box::new(s.fork_kv())).unwrap();
    assert!(matches!(
        s.trusted_progress(s.trusted.get(WORKLOAD).unwrap(), 8),
        Progress::Counted(Verdict::Agreed { .. })
    ));
    ok(decide(&mut s));
    s.flush();
    let s = State::open(Box::new(s.fork_kv())).unwrap();

    match &s.trusted.get(WORKLOAD).unwrap().outcome {
        Some(Outcome::Agreed {
            result,
            winners,
            losers,
            ..
        }) => {
            assert_eq!(*result, honest);
            assert_eq!(winners, &["r1".to_string(), "r3".to_string()]);
            assert_eq!(losers, &["r2".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    // Paid: the winners' lenders; not the liar's, whose reputation is cut.
    assert!(balance(&s, "lena") > before[0]);
    assert!(balance(&s, "liv") > before[2]);
    assert_eq!(balance(&s, "lars"), before[1]);
    assert_eq!(s.reputation(&node_of(&key(2))).lost, 1);
    assert_eq!(s.reputation(&node_of(&key(1))).score, 1);
    assert!(s.deals.is_empty(), "every deal is closed");
    assert!(conserved(&s));
}

#[test]
fn a_copied_or_changed_answer_and_a_late_commitment_are_refused() {
    let (mut s, m) = four_lenders();
    ok(deploy(&mut s, &m, 3));
    ok(place(&mut s, &[("r1", 1), ("r2", 2), ("r4", 4)]));
    let (honest, guess) = (parts("42\n"), parts("0\n"));
    run_to_the_end(&mut s, &[1, 2], &[honest, guess]);
    // r4 ended without committing: it is out, and reveals open.
    ok(s.apply(6, &ended(&key(4), "r4")));
    ok(s.apply(7, &reveal(&key(1), "r1", &honest, 1)));
    // Committing now, after a reveal, is refused.
    let late = s.apply(7, &commit(&key(4), "r4", &honest, 4));
    assert_eq!(code(&late), Some(ErrorCode::Conflict), "{late:?}");
    // The liar learned the honest answer: revealing it breaks its own
    // commitment, with its salt or anyone else's.
    for salt in [2, 1] {
        let copy = s.apply(7, &reveal(&key(2), "r2", &honest, salt));
        assert_eq!(code(&copy), Some(ErrorCode::Forbidden), "{copy:?}");
    }
    // Another node's commitment is of no use to it either.
    let other = s.apply(7, &reveal(&key(1), "r2", &honest, 1));
    assert_eq!(code(&other), Some(ErrorCode::Forbidden));
    // A commitment changed after the fact is refused.
    let again = s.apply(7, &commit(&key(2), "r2", &honest, 9));
    assert_eq!(code(&again), Some(ErrorCode::Conflict));
    ok(s.apply(7, &reveal(&key(2), "r2", &guess, 2)));
    // One against one: undecided. A replica placed now commits while the
    // others' reveals are in: allowed, as it was placed after them.
    assert_eq!(
        s.trusted_progress(s.trusted.get(WORKLOAD).unwrap(), 8),
        Progress::Counted(Verdict::Undecided)
    );
    ok(place(&mut s, &[("r3", 3)]));
    assert_eq!(
        s.trusted_progress(s.trusted.get(WORKLOAD).unwrap(), 8),
        Progress::Waiting
    );
    ok(s.apply(5, &commit(&key(3), "r3", &honest, 3)));
    ok(s.apply(6, &ended(&key(3), "r3")));
    ok(s.apply(7, &reveal(&key(3), "r3", &honest, 3)));
    ok(decide(&mut s));
    assert_eq!(s.reputation(&node_of(&key(2))).lost, 1);
}

#[test]
fn replicas_go_to_distinct_owners_never_the_requesters() {
    let (mut s, m) = four_lenders();
    ok(deploy(&mut s, &m, 3));
    // Lou's node now belongs to Lena too: one owner, two nodes.
    s.nodes.get_mut(&node_of(&key(4))).unwrap().owner = "lena".into();
    let same = place(&mut s, &[("r1", 1), ("r4", 4)]);
    assert_eq!(code(&same), Some(ErrorCode::Conflict), "{same:?}");
    // And the requester's own node votes for nobody.
    s.nodes.get_mut(&node_of(&key(4))).unwrap().owner = BOB.into();
    let own = place(&mut s, &[("r4", 4)]);
    assert_eq!(code(&own), Some(ErrorCode::Conflict), "{own:?}");
    ok(place(&mut s, &[("r1", 1)]));
    let again = place(&mut s, &[("r9", 1)]);
    assert_eq!(code(&again), Some(ErrorCode::Conflict), "{again:?}");
    // Candidates: one per owner, not Lena (used), not Bob.
    let w = s.workloads.get(WORKLOAD).unwrap().clone();
    let cands: Vec<NodeId> = s.trusted_candidates(&w).into_iter().map(|c| c.0).collect();
    assert_eq!(cands.len(), 2, "{cands:?}");
    assert!(!cands.contains(&node_of(&key(1))) && !cands.contains(&node_of(&key(4))));
    // Nodes with a bad record are not candidates.
    for _ in 0..2 {
        s.record_result(&node_of(&key(2)), false);
    }
    let cands: Vec<NodeId> = s.trusted_candidates(&w).into_iter().map(|c| c.0).collect();
    assert_eq!(cands, vec![node_of(&key(3))]);
}

#[test]
fn a_run_without_consensus_refunds_the_requester_whole() {
    let (mut s, m) = four_lenders();
    let start = balance(&s, BOB);
    ok(deploy(&mut s, &m, 3));
    ok(place(&mut s, &[("r1", 1), ("r2", 2)]));
    assert!(balance(&s, BOB) < start, "escrow held");
    run_to_the_end(&mut s, &[1, 2], &[parts("a"), parts("b")]);
    ok(s.apply(7, &reveal(&key(1), "r1", &parts("a"), 1)));
    ok(s.apply(7, &reveal(&key(2), "r2", &parts("b"), 2)));
    assert_eq!(code(&decide(&mut s)), Some(ErrorCode::Conflict));
    ok(s.apply(
        9,
        &Command::Trust(TrustCommand::Fail {
            workload: WORKLOAD.into(),
            reason: "no two owners agree".into(),
            now_ms: 10,
        }),
    ));
    assert_eq!(balance(&s, BOB), start);
    assert!(s.deals.is_empty());
    assert!(conserved(&s));
    assert!(matches!(
        s.trusted.get(WORKLOAD).unwrap().outcome,
        Some(Outcome::Failed { .. })
    ));
    // Over: nothing more is taken.
    let late = s.apply(7, &reveal(&key(1), "r1", &parts("a"), 1));
    assert!(late.error.is_some());
}

#[test]
fn the_deterministic_terms_are_the_same_for_every_replica_and_only_theirs() {
    let (mut s, m) = four_lenders();
    ok(deploy(&mut s, &m, 2));
    ok(place(&mut s, &[("r1", 1), ("r2", 2)]));
    let a = s.trust_terms("r1", &node_of(&key(1))).unwrap();
    let b = s.trust_terms("r2", &node_of(&key(2))).unwrap();
    assert_eq!(a, b);
    assert!(s.trust_terms("r1", &node_of(&key(2))).is_err());
    // Trust out of range, and what cannot run verified, are refused.
    for t in [1, super::MAX_TRUST + 1] {
        assert_eq!(code(&deploy(&mut s, &m, t)), Some(ErrorCode::BadRequest));
    }
}

#[test]
fn stakes_are_held_returned_and_a_losers_third_goes_to_the_winners() {
    let (mut s, m) = four_lenders();
    ok(s.apply(
        2,
        &Command::Market(MarketCommand::SetTrustedStake {
            amount: Amount(900),
        }),
    ));
    // Lou has no money: it cannot stake, so its node takes no replica.
    for l in &LENDERS[..3] {
        deposit(&mut s, l, 1_000);
    }
    ok(deploy(&mut s, &m, 3));
    let w = s.workloads.get(WORKLOAD).unwrap().clone();
    let cands: Vec<NodeId> = s.trusted_candidates(&w).into_iter().map(|c| c.0).collect();
    assert!(!cands.contains(&node_of(&key(4))), "{cands:?}");
    let broke = place(&mut s, &[("r4", 4)]);
    assert_eq!(code(&broke), Some(ErrorCode::Conflict), "{broke:?}");
    ok(place(&mut s, &[("r1", 1), ("r2", 2), ("r3", 3)]));
    assert_eq!(balance(&s, "lars"), 100, "the stake is held");
    assert_eq!(s.account("lars").held.0, 900);
    let (honest, lie) = (parts("42\n"), parts("41\n"));
    run_to_the_end(&mut s, &[1, 2, 3], &[honest, lie, honest]);
    for (k, p) in [(1u8, honest), (2, lie), (3, honest)] {
        ok(s.apply(7, &reveal(&key(k), &format!("r{k}"), &p, k)));
    }
    let fees = s.pool_totals().0 .0;
    ok(decide(&mut s));
    // Lars forfeits 300 of 900: 150 to each winner's owner.
    assert_eq!(s.account("lars").held.0, 0);
    assert_eq!(balance(&s, "lars"), 100 + 600);
    for l in ["lena", "liv"] {
        assert_eq!(s.account(l).held.0, 0);
        // Stake back, its share of the forfeit, and the deal's pay.
        assert!(balance(&s, l) > 1_000 + 150, "{l}: {}", balance(&s, l));
    }
    assert!(s.pool_totals().0 .0 >= fees);
    assert!(conserved(&s));
}

proptest::proptest! {
    /// Whatever the replicas answer, the stake and the trust level, the
    /// run ends with nothing held and money conserved.
    #[test]
    fn every_verdict_conserves_money_and_releases_every_hold(
        lies in proptest::collection::vec(proptest::bool::ANY, 2..=4),
        stake in 0u64..2_000,
        trust in 2u32..6,
    ) {
        let (mut s, m) = four_lenders();
        ok(s.apply(2, &Command::Market(MarketCommand::SetTrustedStake { amount: Amount(stake) })));
        for l in LENDERS {
            deposit(&mut s, l, 2_000);
        }
        let total = |s: &State| -> u64 {
            std::iter::once(BOB).chain(LENDERS).map(|t| s.account(t).balance.0 + s.account(t).held.0).sum::<u64>()
                + s.pool_totals().0 .0
        };
        let start = total(&s);
        ok(deploy(&mut s, &m, trust));
        let ks: Vec<u8> = (1..=lies.len() as u8).collect();
        let placed: Vec<(String, u8)> = ks.iter().map(|k| (format!("r{k}"), *k)).collect();
        let refs: Vec<(&str, u8)> = placed.iter().map(|(i, k)| (i.as_str(), *k)).collect();
        ok(place(&mut s, &refs));
        let answers: Vec<ResultParts> = lies.iter().map(|l| parts(if *l { "lie" } else { "ok" })).collect();
        run_to_the_end(&mut s, &ks, &answers);
        for (k, p) in ks.iter().zip(&answers) {
            ok(s.apply(7, &reveal(&key(*k), &format!("r{k}"), p, *k)));
        }
        match s.trusted_progress(s.trusted.get(WORKLOAD).unwrap(), 8) {
            Progress::Counted(Verdict::Agreed { .. }) => {
                ok(decide(&mut s));
            }
            Progress::Counted(Verdict::Undecided) => {
                ok(s.apply(9, &Command::Trust(TrustCommand::Fail {
                    workload: WORKLOAD.into(),
                    reason: "undecided".into(),
                    now_ms: 10,
                })));
            }
            other => proptest::prop_assert!(false, "{:?}", other),
        }
        proptest::prop_assert!(conserved(&s));
        proptest::prop_assert_eq!(total(&s), start);
        for t in std::iter::once(BOB).chain(LENDERS) {
            proptest::prop_assert_eq!(s.account(t).held.0, 0, "{} still holds", t);
        }
        proptest::prop_assert!(s.deals.is_empty());
    }
}
