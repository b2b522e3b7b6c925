//! What the requester sees of a verified run (`market.trust` above 1,
//! `stratus_state::trusted`): each replica's vote and the outcome, in the
//! workload's view (`GET /v1/workloads/{tenant}/{name}`, `stratus inspect`).

use serde::{Deserialize, Serialize};
use stratus_state::trusted::{Outcome, TrustedRun};
use stratus_state::State;
use utoipa::ToSchema;

/// A verified run.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TrustView {
    /// The trust level asked for.
    pub trust: u32,
    /// `pending`, `agreed` or `failed`.
    pub outcome: String,
    /// Agreed: the accepted result's digest (hex).
    pub result: Option<String>,
    /// Agreed: BLAKE3 (hex) of the accepted output stream — what
    /// `stratus logs` of a winning replica serves.
    pub output: Option<String>,
    /// Agreed: the accepted exit code.
    pub exit_code: Option<i32>,
    /// Failed: why.
    pub reason: Option<String>,
    /// One vote per replica.
    pub votes: Vec<VoteView>,
}

/// One replica's vote.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VoteView {
    /// The replica (instance id).
    pub instance: String,
    /// Its node.
    pub node: String,
    /// The node's owner.
    pub owner: String,
    /// Its weight: the node's credibility when it was chosen, in parts
    /// per million.
    pub credibility_ppm: u32,
    /// Whether it committed.
    pub committed: bool,
    /// Its revealed result's digest (hex), once revealed.
    pub result: Option<String>,
    /// Decided: `won`, `lost` or `none` (no vote).
    pub verdict: Option<String>,
}

impl TrustView {
    /// The view of `run`.
    pub fn of(run: &TrustedRun) -> TrustView {
        let (outcome, winners, losers) = match &run.outcome {
            None => ("pending", &[][..], &[][..]),
            Some(Outcome::Agreed {
                winners, losers, ..
            }) => ("agreed", &winners[..], &losers[..]),
            Some(Outcome::Failed { .. }) => ("failed", &[][..], &[][..]),
        };
        let votes = run
            .replicas
            .iter()
            .map(|(id, r)| VoteView {
                instance: id.clone(),
                node: r.node.to_string(),
                owner: r.owner.clone(),
                credibility_ppm: r.reputation.credibility_ppm(),
                committed: r.commitment.is_some(),
                result: r.revealed.map(|p| hex::encode(p.digest())),
                verdict: run.outcome.as_ref().map(|_| {
                    if winners.contains(id) {
                        "won"
                    } else if losers.contains(id) {
                        "lost"
                    } else {
                        "none"
                    }
                    .to_string()
                }),
            })
            .collect();
        let agreed = match &run.outcome {
            Some(Outcome::Agreed { result, .. }) => Some(*result),
            _ => None,
        };
        TrustView {
            trust: run.trust,
            outcome: outcome.to_string(),
            result: agreed.map(|p| hex::encode(p.digest())),
            output: agreed.map(|p| hex::encode(p.output)),
            exit_code: agreed.map(|p| p.exit_code),
            reason: match &run.outcome {
                Some(Outcome::Failed { reason, .. }) => Some(reason.clone()),
                _ => None,
            },
            votes,
        }
    }

    /// The view of workload `id`'s run, if it is one.
    pub fn of_workload(s: &State, id: &str) -> Option<TrustView> {
        s.trusted_run(id).map(TrustView::of)
    }
}
