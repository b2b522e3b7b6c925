//! A lender reports only on what runs on its own node.

#![allow(clippy::unwrap_used)]

use stratus_types::{ErrorCode, NodeId};

use crate::retention::tests::{deploy, setup, NODE};
use crate::workloads::ExecState;
use crate::{Command, InstanceState, State};

fn report_from(s: &mut State, node: NodeId, state: InstanceState) -> Option<ErrorCode> {
    let r = s.apply(
        10,
        &Command::ReportInstance {
            id: "job-i".into(),
            node,
            state,
            restarts: 0,
            exit_code: Some(0),
            kind: "exited".into(),
            message: String::new(),
            now_ms: 1,
        },
    );
    r.error.map(|e| e.code())
}

#[test]
fn another_lenders_report_on_an_instance_is_refused_and_changes_nothing() {
    let (mut s, m) = setup();
    deploy(&mut s, "job", "task", &m, 0);
    let liar = NodeId([9; 32]);
    // A lender claims someone else's task succeeded (to be paid, or to end it).
    assert_eq!(
        report_from(&mut s, liar, InstanceState::Completed),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(s.instances["job-i"].state, InstanceState::Pending);
    let exec = s.apply(
        11,
        &Command::ReportExec {
            instance: "job-i".into(),
            node: liar,
            n: 1,
            state: ExecState::Running,
        },
    );
    assert_eq!(exec.error.map(|e| e.code()), Some(ErrorCode::Forbidden));
    // An instance that does not exist is not found, whoever asks.
    let gone = s.apply(
        12,
        &Command::SetDesired {
            id: "nope".into(),
            desired: crate::Desired::Stop,
            kind: "stop".into(),
            message: String::new(),
            now_ms: 1,
        },
    );
    assert_eq!(gone.error.map(|e| e.code()), Some(ErrorCode::NotFound));
    // The node it runs on is heard.
    assert_eq!(report_from(&mut s, NODE, InstanceState::Running), None);
    assert_eq!(s.instances["job-i"].state, InstanceState::Running);
}
