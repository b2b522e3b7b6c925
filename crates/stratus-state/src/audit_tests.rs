//! Tests of the audit log: what is recorded, the chain, checkpoints and
//! their refusals, and that one changed byte of a stored record is found.

use ed25519_dalek::{Signer, SigningKey};
use stratus_market::Amount;
use stratus_types::{NodeId, TokenRecord, TokenScope};

use crate::accounts::MarketCommand;
use crate::audit::{checkpoint_message, vouch_message, AuditRecord, CheckpointCommand};
use crate::audit_verify::{verify, Broken};
use crate::{Command, State, Table};

fn tenant(name: &str, now_ms: u64) -> Command {
    Command::CreateTenant {
        name: name.into(),
        now_ms,
    }
}

fn deposit(t: &str, amount: u64, now_ms: u64) -> Command {
    Command::Market(MarketCommand::Deposit {
        tenant: t.into(),
        amount: Amount(amount),
        reference: format!("wire-{now_ms}"),
        now_ms,
    })
}

fn token(t: &str, id: &str) -> Command {
    Command::IssueToken {
        record: TokenRecord {
            id: id.into(),
            tenant: t.into(),
            secret_sha256: "ab".repeat(32),
            created_ms: 5,
            scope: TokenScope::Full,
            expires_ms: None,
        },
    }
}

/// A state with two tenants, a token, a deposit each and a refused command.
fn history() -> State {
    let mut s = State::default();
    let cmds = [
        tenant("alice", 1),
        tenant("bob", 2),
        token("bob", "tok1"),
        deposit("bob", 1_000, 10),
        deposit("alice", 50, 11),
        // Refused (bob exists): no record.
        tenant("bob", 12),
    ];
    for (i, c) in cmds.iter().enumerate() {
        s.apply(i as u64 + 1, c);
    }
    s.apply(
        9,
        &Command::Batch(vec![
            Command::RevokeToken { id: "tok1".into() },
            deposit("nobody", 1, 13),
        ]),
    );
    s
}

fn all(s: &State) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = s.audit_page(None, after, 0..u64::MAX, 2);
        out.extend(page.records);
        match page.next {
            Some(n) => after = n,
            None => return out,
        }
    }
}

struct Replica {
    node: SigningKey,
    cluster: SigningKey,
}

impl Replica {
    fn new(node: u8, cluster: u8) -> Replica {
        Replica {
            node: SigningKey::from_bytes(&[node; 32]),
            cluster: SigningKey::from_bytes(&[cluster; 32]),
        }
    }

    fn id(&self) -> NodeId {
        NodeId(self.node.verifying_key().to_bytes())
    }

    fn checkpoint(&self, s: &State) -> CheckpointCommand {
        let (seq, head, _) = s.audit_head();
        CheckpointCommand {
            seq,
            head,
            replica: self.id(),
            signature: self
                .node
                .sign(&checkpoint_message(seq, &head))
                .to_bytes()
                .to_vec(),
            cluster_key: self.cluster.verifying_key().to_bytes(),
            vouch: self
                .cluster
                .sign(&vouch_message(self.id()))
                .to_bytes()
                .to_vec(),
            now_ms: 99,
        }
    }
}

#[test]
fn commands_that_apply_are_recorded_in_a_chain_without_secrets() {
    let s = history();
    let records = all(&s);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "tenant.create",
            "tenant.create",
            "token.issue",
            "ledger.deposit",
            "ledger.deposit",
            "token.revoke"
        ]
    );
    assert_eq!(records[3].tenants, ["bob"]);
    assert_eq!(records[3].at_ms, 10);
    assert!(records[3].detail.contains("1000"), "{}", records[3].detail);
    assert!(
        records[3].detail.contains("wire-10"),
        "{}",
        records[3].detail
    );
    assert_eq!(records[5].tenants, ["bob"], "the revoked token's tenant");
    assert_eq!(records[5].index, 9);
    for r in &records {
        assert!(
            !r.detail.contains(&"ab".repeat(32)),
            "no secret hash: {r:?}"
        );
    }
    let v = verify(records, &[], None).expect("verifies");
    assert_eq!((v.records, v.signed_through, v.unsigned()), (6, 0, 6));
}

#[test]
fn a_tenant_sees_only_its_records() {
    let s = history();
    let bob = s.audit_page(Some("bob"), 0, 0..u64::MAX, 100);
    assert_eq!(bob.records.len(), 4);
    assert!(bob
        .records
        .iter()
        .all(|r| r.tenants.contains(&"bob".into())));
    let alice = s.audit_page(Some("alice"), 0, 0..u64::MAX, 100);
    assert_eq!(alice.records.len(), 2);
    let window = s.audit_page(None, 0, 10..11, 100);
    assert_eq!(window.records.len(), 1);
    assert_eq!(window.records[0].kind, "ledger.deposit");
}

#[test]
fn checkpoints_sign_the_head_and_the_verifier_checks_them() {
    let mut s = history();
    let r = Replica::new(1, 7);
    let c = r.checkpoint(&s);
    assert_eq!(
        s.apply(20, &Command::AuditCheckpoint(c.clone())).error,
        None
    );
    // A checkpoint is not a record: the head does not move.
    assert_eq!(s.audit_head().0, 6);
    assert_eq!(s.audit_head().2, 6);
    // The same head twice is a conflict.
    let again = s
        .apply(21, &Command::AuditCheckpoint(c))
        .error
        .expect("refused");
    assert_eq!(again.code(), stratus_types::ErrorCode::Conflict);
    s.apply(22, &deposit("alice", 5, 30));
    let v = verify(all(&s), &s.audit_checkpoints(0, 100), None).expect("verifies");
    assert_eq!((v.records, v.signed_through, v.unsigned()), (7, 6, 1));
    assert!(v.replicas.contains(&r.id()));
    let key = hex::encode(r.cluster.verifying_key().to_bytes());
    assert_eq!(v.cluster_key.as_deref(), Some(key.as_str()));
    // Another replica of the same cluster signs the rest.
    let other = Replica::new(2, 7);
    let c2 = other.checkpoint(&s);
    assert_eq!(s.apply(23, &Command::AuditCheckpoint(c2)).error, None);
    let v = verify(all(&s), &s.audit_checkpoints(0, 100), None).expect("verifies");
    assert_eq!((v.signed_through, v.checkpoints), (7, 2));
    // Pinning another cluster key fails at the first checkpoint.
    let e = verify(all(&s), &s.audit_checkpoints(0, 100), Some([9; 32])).expect_err("pinned");
    assert_eq!(e.seq(), 6);
    assert!(e.to_string().contains("not a replica"), "{e}");
}

#[test]
fn forged_checkpoints_are_refused() {
    let mut s = history();
    let r = Replica::new(1, 7);
    let good = r.checkpoint(&s);
    let mut wrong_head = good.clone();
    wrong_head.head[0] ^= 1;
    let mut bad_sig = good.clone();
    bad_sig.signature[3] ^= 1;
    let mut unvouched = good.clone();
    unvouched.vouch = Replica::new(1, 8).checkpoint(&s).vouch;
    let mut beyond = good.clone();
    beyond.seq = 7;
    for (what, c) in [
        ("wrong head", wrong_head),
        ("bad signature", bad_sig),
        ("not vouched", unvouched),
        ("past the head", beyond),
    ] {
        let before = s.dump();
        let e = s.apply(30, &Command::AuditCheckpoint(c)).error;
        assert!(e.is_some(), "{what} accepted");
        assert_eq!(s.dump(), before, "{what} changed the state");
    }
    assert_eq!(s.apply(31, &Command::AuditCheckpoint(good)).error, None);
    // A replica of another cluster cannot sign the log afterwards.
    s.apply(32, &deposit("alice", 5, 30));
    let foreign = Replica::new(3, 8).checkpoint(&s);
    assert!(s
        .apply(33, &Command::AuditCheckpoint(foreign))
        .error
        .is_some());
}

/// The CI test of issue 15: one byte of a stored record changed, anywhere
/// in it, and verification fails naming that record.
#[test]
fn verify_fails_after_any_one_byte_of_a_stored_record_is_changed() {
    let mut s = history();
    let c = Replica::new(1, 7).checkpoint(&s);
    assert_eq!(s.apply(40, &Command::AuditCheckpoint(c)).error, None);
    s.flush();
    let key = 4u64.to_be_bytes();
    let stored = s.kv().get(Table::Audit, &key).expect("record 4");
    for i in 0..stored.len() {
        for flip in [1u8, 0x20] {
            let mut bytes = stored.clone();
            bytes[i] ^= flip;
            s.kv_mut().put(Table::Audit, &key, &bytes);
            let e = verify(all(&s), &s.audit_checkpoints(0, 100), None)
                .expect_err("a changed byte is found");
            assert_eq!(e.seq(), 4, "byte {i} ^ {flip:#x}: {e}");
        }
    }
    s.kv_mut().put(Table::Audit, &key, &stored);
    verify(all(&s), &s.audit_checkpoints(0, 100), None).expect("restored");
    // A record removed after it was signed is found too.
    s.kv_mut().delete(Table::Audit, &6u64.to_be_bytes());
    let e = verify(all(&s), &s.audit_checkpoints(0, 100), None).expect_err("truncated");
    assert!(matches!(e, Broken::Truncated { seq: 6, last: 5 }), "{e}");
    // A record removed from the middle.
    s.kv_mut().delete(Table::Audit, &2u64.to_be_bytes());
    let e = verify(all(&s), &s.audit_checkpoints(0, 100), None).expect_err("gap");
    assert_eq!(e.seq(), 2, "{e}");
}

#[test]
fn a_recomputed_chain_still_fails_its_signature() {
    // An attacker who rewrites a record and every hash after it still
    // cannot forge the checkpoint.
    let mut s = history();
    let c = Replica::new(1, 7).checkpoint(&s);
    assert_eq!(s.apply(40, &Command::AuditCheckpoint(c)).error, None);
    let mut records = all(&s);
    records[3].detail = records[3].detail.replace("1000", "9000");
    let mut prev = [0u8; 32];
    for r in &mut records {
        r.prev = hex::encode(prev);
        prev = r.compute_hash(&prev);
        r.hash = hex::encode(prev);
    }
    let e = verify(records, &s.audit_checkpoints(0, 100), None).expect_err("forged");
    assert_eq!(e.seq(), 6);
    assert!(e.to_string().contains("checkpoint"), "{e}");
}

#[test]
fn long_details_are_cut_and_records_stay_bounded() {
    let mut s = State::default();
    s.apply(1, &tenant("bob", 1));
    let long = "x".repeat(10_000);
    let r = s.apply(
        2,
        &Command::Market(MarketCommand::Deposit {
            tenant: "bob".into(),
            amount: Amount(1),
            reference: long,
            now_ms: 2,
        }),
    );
    assert!(r.error.is_some(), "a reference over the limit is refused");
    s.apply(
        3,
        &Command::RevokeToken {
            id: "y".repeat(5_000),
        },
    );
    let records = all(&s);
    assert_eq!(records.len(), 1, "refused commands leave no record");
    s.apply(
        4,
        &Command::SetDesired {
            id: "none".into(),
            desired: crate::Desired::Stop,
            kind: "k".into(),
            message: "m".repeat(5_000),
            now_ms: 4,
        },
    );
    for r in all(&s) {
        assert!(r.detail.len() <= crate::audit::MAX_DETAIL);
        assert!(r.subject.len() <= crate::audit::MAX_SUBJECT);
    }
}
