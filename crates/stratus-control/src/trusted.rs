//! The leader's side of trusted runs (`stratus_state::trusted`): how many
//! replicas to place and where, when to apply the verdict, and when to
//! give up.
//!
//! * **Start:** the fewest replicas whose agreement could reach the trust
//!   level, given the reputations of the candidates
//!   ([`stratus_verify::replicas_to_start`]): one node per owner, the
//!   requester's own excluded, most credible first, sites the run does not
//!   use yet before the others. Each is placed on its node alone, so two
//!   replicas never share an owner. Too few candidates:
//!   the run waits, blocked with the reason.
//! * **Counted and agreed:** propose the verdict ([`TrustCommand::Decide`]).
//! * **Counted and undecided:** add the replicas that could decide it if
//!   they agreed with the leading result ([`stratus_verify::more_replicas`]),
//!   up to [`MAX_REPLICAS`] and while the requester can pay; otherwise end
//!   the run without consensus ([`TrustCommand::Fail`], everything refunded).

use stratus_state::trusted::{votes, Progress, TrustCommand, MAX_REPLICAS};
use stratus_state::Command;
use stratus_verify::{more_replicas, replicas_to_start, Reputation, Verdict};

use crate::reconcile::Placer;

/// One reconciliation of a trusted run's workload.
pub(crate) fn reconcile_trusted(p: &mut Placer<'_>) {
    let Some(run) = p.state.trusted_run(p.w.id.as_str()) else {
        return;
    };
    let starting = run.replicas.is_empty();
    // Decided runs stay until they are pruned, and running ones are
    // reconciled at every state change: only a run that may place
    // replicas (it is starting, or its votes are undecided) pays for a
    // pass over the nodes.
    match p.state.trusted_progress(run, p.now_ms) {
        Progress::Over => return,
        Progress::Waiting if !starting => return,
        Progress::Counted(Verdict::Agreed { .. }) => {
            p.d.commands.push(Command::Trust(TrustCommand::Decide {
                workload: p.w.id.to_string(),
                now_ms: p.now_ms,
            }));
            return;
        }
        Progress::Waiting | Progress::Counted(Verdict::Undecided) => {}
    }
    let id = p.w.id.to_string();
    let trust = run.trust;
    let candidates = p.state.trusted_candidates(p.w);
    let reputations: Vec<Reputation> = candidates.iter().map(|c| c.1).collect();
    let room = MAX_REPLICAS.saturating_sub(run.replicas.len());
    let wanted = if starting {
        replicas_to_start(&reputations, trust)
    } else {
        more_replicas(&votes(run), &reputations, trust).filter(|k| (1..=room).contains(k))
    };
    let Some(wanted) = wanted else {
        if starting {
            p.d.blocked.push((
                id,
                format!(
                    "a verified run at trust {trust} needs replicas on nodes of distinct owners \
                     (not yours, ready, running WASM, with a good record) whose agreement could \
                     reach it: {} such owner(s) now",
                    candidates.len()
                ),
            ));
        } else {
            let votes = votes(run);
            let results = votes
                .iter()
                .map(|v| v.result)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            fail(
                p,
                id,
                format!(
                    "no consensus at trust {trust}: {} replica(s) revealed {results} different result(s), \
                     and the {} other eligible owner(s) (at most {MAX_REPLICAS} replicas) could not decide it",
                    votes.len(),
                    candidates.len()
                ),
            );
        }
        return;
    };
    let mut placed = 0;
    let mut why = None;
    for node in by_site(p, run, candidates) {
        if placed == wanted {
            break;
        }
        match p.place_on(node, 0) {
            (true, _) => placed += 1,
            (false, w) => why = why.or(w),
        }
    }
    let why = why.unwrap_or_else(|| "no eligible node".into());
    if placed == 0 && !starting {
        fail(
            p,
            id,
            format!("no consensus at trust {trust}, and no more replicas can be placed: {why}"),
        );
    } else if placed < wanted {
        p.d.blocked.push((
            id,
            format!("{placed} of {wanted} replica(s) of the verified run placed: {why}"),
        ));
    }
}

/// `candidates` (best first) reordered so that sites the run does not use
/// yet come first, each new site once, best first within each pass.
fn by_site(
    p: &Placer<'_>,
    run: &stratus_state::trusted::TrustedRun,
    candidates: Vec<(stratus_types::NodeId, Reputation)>,
) -> Vec<stratus_types::NodeId> {
    let site = |n: &stratus_types::NodeId| {
        p.state
            .nodes
            .get(n)
            .map(|r| r.info.attributes.site.clone())
            .unwrap_or_default()
    };
    let mut used: std::collections::BTreeSet<String> =
        run.replicas.values().map(|r| site(&r.node)).collect();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for (n, _) in candidates {
        if used.insert(site(&n)) {
            first.push(n);
        } else {
            rest.push(n);
        }
    }
    first.extend(rest);
    first
}

fn fail(p: &mut Placer<'_>, workload: String, reason: String) {
    p.d.commands.push(Command::Trust(TrustCommand::Fail {
        workload,
        reason,
        now_ms: p.now_ms,
    }));
}
