//! Unit and property tests of the state machine's core commands.

use super::*;
use proptest::prelude::*;
use stratus_types::ErrorCode;
use stratus_types::{Attributes, Capacity};

/// A node description for tests: id `[b; 32]`, named `n<b>`, WASM only.
pub(crate) fn info(b: u8) -> NodeInfo {
    NodeInfo {
        id: NodeId([b; 32]),
        name: format!("n{b}"),
        version: "0".into(),
        capacity: Capacity::default(),
        attributes: Attributes::default(),
        storage: None,
        runtimes: vec![stratus_types::Runtime::Wasm],
        ports: stratus_types::PortRange::DEFAULT,
    }
}

fn arb_command() -> impl Strategy<Value = Command> {
    let name = prop::sample::select(vec!["admin", "acme", "beta", "Bad!", ""]);
    let key = prop::sample::select(vec!["a", "b/c", "", "x y"]);
    prop_oneof![
        (0u8..4, 0u64..100).prop_map(|(b, t)| Command::RegisterNode {
            info: info(b),
            now_ms: t
        }),
        (0u8..4, any::<bool>(), 0u64..100).prop_map(|(b, l, t)| Command::SetNodeStatus {
            id: NodeId([b; 32]),
            status: if l {
                NodeStatus::Lost
            } else {
                NodeStatus::Ready
            },
            now_ms: t
        }),
        (0u8..4).prop_map(|b| Command::RemoveNode {
            id: NodeId([b; 32])
        }),
        (name.clone(), 0u64..100).prop_map(|(n, t)| Command::CreateTenant {
            name: n.into(),
            now_ms: t
        }),
        (name.clone(), key.clone(), "[a-z]{0,8}", 0u64..100).prop_map(|(n, k, v, t)| {
            Command::PutVar {
                tenant: n.into(),
                key: k.into(),
                value: v,
                now_ms: t,
            }
        }),
        (name.clone(), key).prop_map(|(n, k)| Command::DeleteVar {
            tenant: n.into(),
            key: k.into()
        }),
        (name.clone(), prop::option::of(0u64..3)).prop_map(|(n, v)| Command::SetQuota {
            tenant: n.into(),
            changes: [(quotas::Resource::Vars, v)].into(),
        }),
        (0u64..100).prop_map(|t| Command::Prune {
            now_ms: t,
            tasks_ms: 10,
            uploads_ms: 10,
        }),
        (name.clone(), 0u64..1_000, any::<bool>(), 0u64..100).prop_map(|(n, a, d, t)| {
            let (tenant, amount, reference) = (n.into(), stratus_market::Amount(a), "r".into());
            Command::Market(if d {
                accounts::MarketCommand::Deposit {
                    tenant,
                    amount,
                    reference,
                    now_ms: t,
                }
            } else {
                accounts::MarketCommand::Withdraw {
                    tenant,
                    amount,
                    reference,
                    now_ms: t,
                }
            })
        }),
    ]
}

fn arb_command_or_batch() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => arb_command(),
        1 => prop::collection::vec(arb_command(), 0..6).prop_map(Command::Batch),
    ]
}

proptest! {
    /// Two replicas applying the same log end in the same state, and the
    /// state survives a snapshot round trip through both codecs we use.
    #[test]
    fn apply_is_deterministic(cmds in prop::collection::vec(arb_command_or_batch(), 0..60)) {
        let mut a = State::default();
        let mut b = State::default();
        for (i, c) in cmds.iter().enumerate() {
            let ra = a.apply(i as u64 + 1, c);
            let rb = b.apply(i as u64 + 1, c);
            prop_assert_eq!(ra, rb);
        }
        let dump = a.dump();
        prop_assert_eq!(&dump, &b.dump());
        // What is stored reads back as the same state.
        let mut back = State::open(Box::new(a.fork_kv())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back.dump(), &dump);
    }

    /// Invariants: every variable belongs to an existing tenant; every
    /// token's tenant exists; every tenant name is valid.
    #[test]
    fn invariants_hold(cmds in prop::collection::vec(arb_command_or_batch(), 0..60)) {
        let mut s = State::default();
        for (i, c) in cmds.iter().enumerate() {
            s.apply(i as u64 + 1, c);
            for t in s.vars.keys() { prop_assert!(s.tenants.contains_key(t)); }
            for t in s.tenants.keys() { prop_assert!(validate_tenant_name(t).is_ok()); }
            for tok in s.tokens.values() { prop_assert!(s.tenants.contains_key(&tok.tenant)); }
        }
    }
}

/// A batch has exactly the effect of its commands applied one by one.
#[test]
fn batch_equals_sequence() {
    let cmds = vec![
        Command::CreateTenant {
            name: "acme".into(),
            now_ms: 1,
        },
        Command::PutVar {
            tenant: "acme".into(),
            key: "k".into(),
            value: "v".into(),
            now_ms: 2,
        },
        Command::CreateTenant {
            name: "acme".into(),
            now_ms: 3,
        },
        Command::Batch(vec![]),
    ];
    let mut one_by_one = State::default();
    let singles: Vec<_> = cmds[..3].iter().map(|c| one_by_one.apply(7, c)).collect();
    let mut batched = State::default();
    let r = batched.apply(7, &Command::Batch(cmds));
    assert_eq!(batched.dump(), one_by_one.dump());
    assert_eq!(r.batch.len(), 4);
    assert_eq!(r.batch[..3], singles[..3]);
    assert_eq!(
        r.batch[2].error.as_ref().map(|e| e.code()),
        Some(ErrorCode::Conflict)
    );
    assert_eq!(
        r.batch[3].error.as_ref().map(|e| e.code()),
        Some(ErrorCode::BadRequest),
        "no nesting"
    );
}

#[test]
fn node_lifecycle() {
    let mut s = State::default();
    assert!(s
        .apply(
            1,
            &Command::RegisterNode {
                info: info(1),
                now_ms: 10
            }
        )
        .error
        .is_none());
    let id = NodeId([1; 32]);
    s.apply(
        2,
        &Command::SetNodeStatus {
            id,
            status: NodeStatus::Lost,
            now_ms: 20,
        },
    );
    assert_eq!(s.nodes[&id].status, NodeStatus::Lost);
    assert_eq!(s.nodes[&id].status_changed_ms, 20);
    s.apply(
        3,
        &Command::RegisterNode {
            info: info(1),
            now_ms: 30,
        },
    );
    assert_eq!(s.nodes[&id].status, NodeStatus::Ready);
    assert_eq!(s.nodes[&id].registered_ms, 10);
    let r = s.apply(
        4,
        &Command::SetNodeStatus {
            id: NodeId([9; 32]),
            status: NodeStatus::Lost,
            now_ms: 1,
        },
    );
    assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::NotFound));
}

#[test]
fn vars_need_tenant_and_valid_key() {
    let mut s = State::default();
    let put = |t: &str, k: &str| Command::PutVar {
        tenant: t.into(),
        key: k.into(),
        value: "v".into(),
        now_ms: 0,
    };
    assert_eq!(
        s.apply(1, &put("acme", "k")).error.map(|e| e.code()),
        Some(ErrorCode::NotFound)
    );
    s.apply(
        2,
        &Command::CreateTenant {
            name: "acme".into(),
            now_ms: 0,
        },
    );
    assert_eq!(s.apply(3, &put("acme", "k")).into_result(), Ok(Some(3)));
    assert_eq!(
        s.apply(4, &put("acme", "bad key")).error.map(|e| e.code()),
        Some(ErrorCode::BadRequest)
    );
    let dup = s.apply(
        5,
        &Command::CreateTenant {
            name: "acme".into(),
            now_ms: 0,
        },
    );
    assert_eq!(dup.error.map(|e| e.code()), Some(ErrorCode::Conflict));
}
