//! Trusted runs (issue 16, item 2): a WASM task (or a published image app
//! its owner declares deterministic, [`crate::catalog`]) deployed with
//! `market.trust: N > 1` runs as replicas on nodes of distinct owners, and
//! its result is the one their reputation-weighted votes agree on
//! ([`stratus_verify`]).
//!
//! **A run** is a row per workload ([`State::trusted`]): the trust level,
//! the deterministic environment every replica gets (seed and clock, from
//! the deploy), the replicas with their commitments and reveals, and the
//! outcome once there is one.
//!
//! **Commit, then reveal.** When its replica ends, a node commits to its
//! result ([`TrustCommand::Commit`]): `H(node ‖ result ‖ salt)`. It may
//! reveal the result and salt ([`TrustCommand::Reveal`]) only once no live
//! replica of the run is still without a commitment, so a node that waits
//! to copy another's answer has nothing to copy when it must commit, and a
//! commitment made after reveals began is refused. Results are never shown
//! to other lenders; only the requester reads them.
//!
//! **The verdict** ([`TrustCommand::Decide`], proposed by the leader's
//! reconciler when every replica has revealed or dropped out) applies
//! [`stratus_verify::verdict`] to the reveals, each weighted by the
//! reputation its node had when it was chosen. Winners have their
//! reputation raised and their deals paid (usage reports of a replica are
//! held until then, [`State::hold_trusted_usage`]); losers have their
//! reputation cut by a third and their deals refunded; replicas that never
//! revealed are refunded and their reputation is left alone. Undecided,
//! the reconciler adds replicas ([`stratus_verify::more_replicas`]) while
//! distinct owners and the requester's money last, and otherwise proposes
//! [`TrustCommand::Fail`]: every deal is refunded and the reason is kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_market::{Account, Amount, Entry, Reason, Refs, Transfer, UsageReport};
use stratus_spec::WorkloadKind;
use stratus_types::{NodeId, NodeStatus, Payload, WorkloadId};
use stratus_verify::{Reputation, ResultParts, Verdict, Vote};
use utoipa::ToSchema;

use crate::{ApplyError, Command, Instance, InstanceState, State};

/// Highest trust level a requester may ask for.
pub const MAX_TRUST: u32 = 1000;
/// Most replicas one run may use.
pub const MAX_REPLICAS: usize = 16;
/// How long a replica that committed has to reveal once its instance ended
/// and reveals are open, before it is counted out.
pub const REVEAL_GRACE_MS: u64 = 120_000;
/// The part of its stake a losing replica's owner forfeits (to the
/// winners' owners), as a ratio.
pub const FORFEIT: (u64, u64) = (1, 3);
/// Fuel a trusted run may burn per second of its wall-clock limit (about
/// one wasm instruction per unit: a generous core's worth).
pub const FUEL_PER_SEC: u64 = 2_000_000_000;

/// A run of a trusted task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustedRun {
    /// The trust level asked for.
    pub trust: u32,
    /// The workload generation it runs.
    pub generation: u64,
    /// Seed of every replica's random numbers.
    #[schema(value_type = String)]
    #[serde(with = "hex32")]
    pub seed: [u8; 32],
    /// Every replica's wall clock starts here (ms since the Unix epoch).
    pub start_ms: u64,
    /// Replicas by instance id.
    pub replicas: BTreeMap<String, Replica>,
    /// The outcome, once there is one.
    pub outcome: Option<Outcome>,
}

/// One replica of a trusted run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replica {
    /// Its node.
    pub node: NodeId,
    /// The node's owner.
    pub owner: String,
    /// The node's reputation when it was chosen (its vote's weight).
    #[schema(value_type = Object)]
    pub reputation: Reputation,
    /// Reveals the run had when it was placed: it may commit only while
    /// there are no more (a later replica commits before anyone reveals
    /// again).
    pub reveals_before: usize,
    /// Its commitment, once made (hex).
    #[schema(value_type = Option<String>)]
    #[serde(with = "hex32_opt")]
    pub commitment: Option<[u8; 32]>,
    /// When it committed or, without a commitment, when its instance ended
    /// (leader clock).
    pub done_ms: Option<u64>,
    /// Its revealed result, once revealed.
    #[schema(value_type = Option<Object>)]
    pub revealed: Option<ResultParts>,
    /// The latest usage report of its deal, held until the verdict.
    #[schema(value_type = Option<Object>)]
    pub held: Option<UsageReport>,
    /// The stake its owner holds for it (returned at the verdict, less
    /// [`FORFEIT`] of it when it loses).
    #[schema(value_type = u64)]
    pub stake: Amount,
}

/// How a trusted run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The votes agreed.
    Agreed {
        /// The accepted result.
        #[schema(value_type = Object)]
        result: ResultParts,
        /// Replicas that voted for it (paid, reputation raised).
        winners: Vec<String>,
        /// Replicas that voted otherwise (unpaid, reputation cut).
        losers: Vec<String>,
        /// When (leader clock).
        decided_ms: u64,
    },
    /// No result reached the trust level; the requester was refunded.
    Failed {
        /// Why.
        reason: String,
        /// When (leader clock).
        decided_ms: u64,
    },
}

/// A step of a trusted run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrustCommand {
    /// A replica's node commits to its result.
    Commit {
        /// The replica.
        instance: String,
        /// The node sending it (must be the replica's).
        node: NodeId,
        /// `stratus_verify::commitment(node, result, salt)`.
        commitment: [u8; 32],
        /// Time of the replica that took it.
        now_ms: u64,
    },
    /// A replica's node reveals its result.
    Reveal {
        /// The replica.
        instance: String,
        /// The node sending it (must be the replica's).
        node: NodeId,
        /// The result.
        parts: ResultParts,
        /// The salt of its commitment.
        salt: [u8; 32],
    },
    /// Apply the verdict of the reveals (the leader saw every replica
    /// revealed or out, and the votes agree).
    Decide {
        /// The workload.
        workload: String,
        /// Leader time.
        now_ms: u64,
    },
    /// End the run without consensus and refund the requester.
    Fail {
        /// The workload.
        workload: String,
        /// Why.
        reason: String,
        /// Leader time.
        now_ms: u64,
    },
}

/// Where a run stands, as the reconciler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Replicas are running, committing or revealing.
    Waiting,
    /// Every replica revealed or is out: this is what the votes say.
    Counted(Verdict),
    /// Decided.
    Over,
}

impl Replica {
    /// Whether it still counts, given `opened_ms` (when reveals opened,
    /// `None` while they are not): it may yet commit or reveal.
    fn pending(&self, inst: Option<&Instance>, opened_ms: Option<u64>, now_ms: u64) -> bool {
        if self.revealed.is_some() {
            return false;
        }
        let Some(i) = inst else { return false };
        match (&self.commitment, opened_ms) {
            // Agents commit before they report the end: an ended replica
            // without a commitment never will.
            (None, _) => !i.state.is_terminal(),
            (Some(_), None) => true,
            (Some(_), Some(t)) => {
                i.state != InstanceState::Lost && now_ms.saturating_sub(t) < REVEAL_GRACE_MS
            }
        }
    }
}

impl State {
    /// The trusted run of workload `id`, if it is one.
    pub fn trusted_run(&self, id: &str) -> Option<&TrustedRun> {
        self.trusted.get(id)
    }

    /// The run instance `id` is a replica of (and its workload id).
    pub fn trusted_run_of(&self, instance: &str) -> Option<(&str, &TrustedRun)> {
        let i = self.instances.get(instance)?;
        let run = self.trusted.get(i.workload.as_str())?;
        run.replicas
            .contains_key(instance)
            .then_some((i.workload.as_str(), run))
    }

    /// Applies `DeployTrusted`: the deploy (an ordered one), then a fresh
    /// run for its generation.
    pub(crate) fn deploy_trusted(
        &mut self,
        index: u64,
        deploy: &Command,
        trust: u32,
    ) -> Result<Option<u64>, ApplyError> {
        let inner = match deploy {
            Command::DeployUsing { deploy, .. } => deploy.as_ref(),
            d => d,
        };
        let Command::DeployOrdered { deploy: plain, .. } = inner else {
            return Err(ApplyError::invalid(
                "a trust level goes with a market order",
            ));
        };
        let Command::DeployWorkload {
            tenant,
            spec,
            now_ms,
            ..
        } = plain.as_ref()
        else {
            return Err(ApplyError::invalid("a trust level goes with a deploy"));
        };
        if !(2..=MAX_TRUST).contains(&trust) {
            return Err(ApplyError::invalid(format!(
                "a trust level of a verified run is 2 to {MAX_TRUST}, not {trust}"
            )));
        }
        let declared = match deploy {
            Command::DeployUsing { uses, .. } => uses
                .app
                .as_deref()
                .is_some_and(|a| self.is_deterministic_app(a)),
            _ => false,
        };
        if spec.image.is_some() && !declared {
            return Err(ApplyError::invalid(
                "a container is not deterministic, so its replicas' results could not be compared; \
                 only a published image app its owner declares deterministic runs verified",
            ));
        }
        if spec.kind != WorkloadKind::Task || spec.count != 1 {
            return Err(ApplyError::invalid(
                "only a task of count 1 runs verified (market.trust above 1)",
            ));
        }
        if spec.output.upload().is_some() {
            return Err(ApplyError::invalid(
                "a verified run keeps /output on its nodes (counted in the vote); \
                 storing it in a bucket is not supported with market.trust above 1",
            ));
        }
        let version = match deploy {
            Command::DeployUsing { deploy, uses } => self.deploy_using(index, deploy, uses)?,
            Command::DeployOrdered { deploy, order } => {
                self.deploy_ordered(index, deploy, order, None)?
            }
            _ => return Err(ApplyError::invalid("a trust level goes with a deploy")),
        };
        let id =
            WorkloadId::new(tenant, &spec.name).map_err(|e| ApplyError::invalid(e.to_string()))?;
        let generation = self
            .workloads
            .get(id.as_str())
            .map(|w| w.generation)
            .unwrap_or_default();
        let same = self
            .trusted
            .get(id.as_str())
            .is_some_and(|r| r.generation == generation && r.trust == trust);
        if !same {
            let mut h = blake3::Hasher::new();
            h.update(b"stratus trusted run seed v1");
            h.update(id.as_str().as_bytes());
            h.update(&generation.to_le_bytes());
            h.update(&index.to_le_bytes());
            self.trusted.insert(
                id.to_string(),
                TrustedRun {
                    trust,
                    generation,
                    seed: *h.finalize().as_bytes(),
                    start_ms: *now_ms,
                    replicas: BTreeMap::new(),
                    outcome: None,
                },
            );
        }
        Ok(version)
    }

    /// Nodes that may take a new replica of `w`'s run, best first: one per
    /// owner (its most credible ready node that runs WASM), neither the
    /// requester's nor of an owner the run already uses, and eligible by
    /// reputation.
    pub fn trusted_candidates(&self, w: &crate::Workload) -> Vec<(NodeId, Reputation)> {
        let Some(run) = self.trusted.get(w.id.as_str()) else {
            return Vec::new();
        };
        let runtime = match w.module {
            Payload::Wasm(_) => stratus_types::Runtime::Wasm,
            Payload::Image(_) => stratus_types::Runtime::Oci,
        };
        let mut best: BTreeMap<&str, (NodeId, Reputation)> = BTreeMap::new();
        for n in self.nodes.values() {
            let owner = n.owner.as_str();
            let r = self.reputation(&n.info.id);
            let usable = n.status == NodeStatus::Ready
                && !n.banned
                && !self.draining.contains(&n.info.id)
                && n.info.runtimes.contains(&runtime)
                && self.may_take_replica(run, &w.tenant, owner, &n.info.id, 1);
            if !usable {
                continue;
            }
            let e = best.entry(owner).or_insert((n.info.id, r));
            if r.credibility() > e.1.credibility() {
                *e = (n.info.id, r);
            }
        }
        let mut out: Vec<(NodeId, Reputation)> = best.into_values().collect();
        out.sort_by_key(|(id, r)| (std::cmp::Reverse(r.credibility()), *id));
        out
    }

    /// The one rule of who may run a replica of `run` for `requester`:
    /// `node` of `owner`, neither the requester nor an owner the run uses
    /// already, with an eligible record, its owner able to hold the
    /// pool's stake for `n` replicas (this one and others being placed).
    fn may_take_replica(
        &self,
        run: &TrustedRun,
        requester: &str,
        owner: &str,
        node: &NodeId,
        n: u64,
    ) -> bool {
        owner != requester
            && !run.replicas.values().any(|r| r.owner == owner)
            && self.reputation(node).eligible()
            && self.account(owner).balance.0 >= self.trusted_stake.0.saturating_mul(n)
    }

    /// Checks instances about to be placed that are replicas of a trusted
    /// run: each on an eligible node of an owner the run does not use yet.
    pub(crate) fn check_trusted_placement(&self, instances: &[Instance]) -> Result<(), ApplyError> {
        let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut staking: BTreeMap<&str, u64> = BTreeMap::new();
        for i in instances {
            let Some(run) = self.trusted.get(i.workload.as_str()) else {
                continue;
            };
            if run.outcome.is_some() || i.generation != run.generation {
                return Err(ApplyError::conflict(format!(
                    "the verified run of {} is over",
                    i.workload
                )));
            }
            if run.replicas.len() + instances.len() > MAX_REPLICAS {
                return Err(ApplyError::conflict(format!(
                    "a verified run has at most {MAX_REPLICAS} replicas"
                )));
            }
            let node = self.nodes.get(&i.node).ok_or_else(|| {
                ApplyError::not_found(format!("node {} does not exist", i.node.short()))
            })?;
            let taken = owners.entry(i.workload.as_str()).or_default();
            let owner = node.owner.as_str();
            let staked = staking.get(owner).copied().unwrap_or(0);
            if taken.contains(&owner)
                || !self.may_take_replica(run, i.workload.tenant(), owner, &i.node, staked + 1)
            {
                return Err(ApplyError::conflict(format!(
                    "node {} cannot take a replica of {}: its owner is the requester's, \
                     already runs one, or cannot stake, or its reputation is too low",
                    i.node.short(),
                    i.workload
                )));
            }
            taken.push(owner);
            *staking.entry(owner).or_default() += 1;
        }
        Ok(())
    }

    /// Records placed replicas in their runs, holding their owners' stakes.
    pub(crate) fn record_trusted_placement(
        &mut self,
        instances: &[Instance],
    ) -> Result<(), ApplyError> {
        let stake = *self.trusted_stake;
        for i in instances {
            let owner = match self.nodes.get(&i.node) {
                Some(n) => n.owner.clone(),
                None => continue,
            };
            if !self.trusted.contains_key(i.workload.as_str()) {
                continue;
            }
            let reputation = self.reputation(&i.node);
            if stake > Amount::ZERO {
                let entry = Entry {
                    reason: Reason::Stake,
                    refs: Refs {
                        instance: Some(i.id.clone()),
                        node: Some(i.node.to_string()),
                        ..Refs::default()
                    },
                    transfers: vec![Transfer {
                        from: Account::Tenant(owner.clone()),
                        to: Account::Held(owner.clone()),
                        amount: stake,
                    }],
                };
                self.post_entry(entry, i.created_ms)?;
            }
            if let Some(run) = self.trusted.get_mut(i.workload.as_str()) {
                run.replicas.insert(
                    i.id.clone(),
                    Replica {
                        node: i.node,
                        owner,
                        reputation,
                        reveals_before: run
                            .replicas
                            .values()
                            .filter(|r| r.revealed.is_some())
                            .count(),
                        commitment: None,
                        done_ms: None,
                        revealed: None,
                        held: None,
                        stake,
                    },
                );
            }
        }
        Ok(())
    }

    /// Settles the stakes of `run`'s replicas: each returned to its owner,
    /// except that a loser's forfeited part ([`FORFEIT`]) goes to the
    /// winners' owners in equal shares (the indivisible rest to the
    /// operator).
    fn settle_stakes(
        &mut self,
        run: &TrustedRun,
        winners: &[String],
        losers: &[String],
        now_ms: u64,
    ) -> Result<(), ApplyError> {
        let winner_owners: Vec<String> = winners
            .iter()
            .filter_map(|w| run.replicas.get(w).map(|r| r.owner.clone()))
            .collect();
        for (id, r) in &run.replicas {
            if r.stake == Amount::ZERO {
                continue;
            }
            let held = Account::Held(r.owner.clone());
            let mut transfers = Vec::new();
            let mut back = r.stake.0;
            if losers.contains(id) && !winner_owners.is_empty() {
                let forfeit = r.stake.0 / FORFEIT.1 * FORFEIT.0;
                let share = forfeit / winner_owners.len() as u64;
                for w in &winner_owners {
                    transfers.push((Account::Tenant(w.clone()), share));
                }
                transfers.push((
                    Account::Operator,
                    forfeit - share * winner_owners.len() as u64,
                ));
                back -= forfeit;
            }
            transfers.push((Account::Tenant(r.owner.clone()), back));
            let entry = Entry {
                reason: Reason::StakeSettled,
                refs: Refs {
                    instance: Some(id.clone()),
                    node: Some(r.node.to_string()),
                    ..Refs::default()
                },
                transfers: transfers
                    .into_iter()
                    .filter(|(_, a)| *a > 0)
                    .map(|(to, a)| Transfer {
                        from: held.clone(),
                        to,
                        amount: Amount(a),
                    })
                    .collect(),
            };
            self.post_entry(entry, now_ms)?;
        }
        Ok(())
    }

    /// The deterministic environment of replica `instance` asked by `node`:
    /// (seed, start of the clock, fuel).
    pub fn trust_terms(
        &self,
        instance: &str,
        node: &NodeId,
    ) -> Result<([u8; 32], u64, u64), ApplyError> {
        let (workload, run) = self.trusted_run_of(instance).ok_or_else(|| {
            ApplyError::not_found(format!("{instance} is not a replica of a verified run"))
        })?;
        if run.replicas.get(instance).map(|r| r.node) != Some(*node) {
            return Err(ApplyError::forbidden(format!(
                "{instance} is not on node {}",
                node.short()
            )));
        }
        let wall_ms = self
            .workloads
            .get(workload)
            .map(|w| crate::deals::reserved(w).wall_ms)
            .unwrap_or(crate::deals::DEFAULT_TASK_WALL_MS);
        Ok((
            run.seed,
            run.start_ms,
            (wall_ms / 1000).max(1).saturating_mul(FUEL_PER_SEC),
        ))
    }

    /// A usage report of a replica whose run is undecided: held (the
    /// latest) instead of paid. `false`: not such a replica.
    pub(crate) fn hold_trusted_usage(&mut self, r: &UsageReport) -> bool {
        let Some(w) = self
            .instances
            .get(&r.instance)
            .map(|i| i.workload.to_string())
        else {
            return false;
        };
        let Some(run) = self.trusted.get_mut(&w) else {
            return false;
        };
        if run.outcome.is_some() {
            return false;
        }
        match run.replicas.get_mut(&r.instance) {
            Some(rep) => {
                if rep.held.as_ref().is_none_or(|h| h.seq < r.seq) {
                    rep.held = Some(r.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Where `run` (of workload `w`) stands at `now_ms`.
    pub fn trusted_progress(&self, run: &TrustedRun, now_ms: u64) -> Progress {
        if run.outcome.is_some() {
            return Progress::Over;
        }
        if run.replicas.is_empty() {
            return Progress::Waiting;
        }
        let opened = self.reveals_opened(run);
        let pending = run
            .replicas
            .iter()
            .any(|(id, r)| r.pending(self.instances.get(id), opened, now_ms));
        if pending {
            return Progress::Waiting;
        }
        Progress::Counted(stratus_verify::verdict(&votes(run), run.trust))
    }

    /// Applies one step of a trusted run.
    pub(crate) fn apply_trust(&mut self, c: &TrustCommand) -> Result<Option<u64>, ApplyError> {
        match c {
            TrustCommand::Commit {
                instance,
                node,
                commitment,
                now_ms,
            } => {
                let reveals = self.trusted_run_of(instance).map_or(0, |(_, r)| {
                    r.replicas.values().filter(|x| x.revealed.is_some()).count()
                });
                let rep = self.replica_mut(instance, node)?;
                if rep.commitment == Some(*commitment) {
                    return Ok(None);
                }
                if rep.commitment.is_some() {
                    return Err(ApplyError::conflict(format!(
                        "{instance} has already committed to another result"
                    )));
                }
                if reveals > rep.reveals_before {
                    return Err(ApplyError::conflict(
                        "commitments are closed: other replicas have revealed since this one was placed",
                    ));
                }
                rep.commitment = Some(*commitment);
                rep.done_ms = Some(*now_ms);
                Ok(None)
            }
            TrustCommand::Reveal {
                instance,
                node,
                parts,
                salt,
            } => {
                let open = self
                    .trusted_run_of(instance)
                    .is_some_and(|(_, run)| self.reveals_opened(run).is_some());
                let rep = self.replica_mut(instance, node)?;
                if rep.revealed == Some(*parts) {
                    return Ok(None);
                }
                if !open {
                    return Err(ApplyError::conflict(
                        "other replicas have not committed yet: reveal later",
                    ));
                }
                if rep.revealed.is_some() {
                    return Err(ApplyError::conflict(format!(
                        "{instance} has already revealed"
                    )));
                }
                stratus_verify::check_reveal(
                    rep.commitment.as_ref(),
                    &node.0,
                    &parts.digest(),
                    salt,
                )
                .map_err(|e| ApplyError::forbidden(e.to_string()))?;
                rep.revealed = Some(*parts);
                Ok(None)
            }
            TrustCommand::Decide { workload, now_ms } => self.decide(workload, *now_ms),
            TrustCommand::Fail {
                workload,
                reason,
                now_ms,
            } => {
                let run = self.open_run(workload)?.clone();
                for id in run.replicas.keys() {
                    self.refund_deal(id, *now_ms)?;
                }
                // Nobody is known to be wrong: every stake goes back.
                self.settle_stakes(&run, &[], &[], *now_ms)?;
                if let Some(run) = self.trusted.get_mut(workload) {
                    run.outcome = Some(Outcome::Failed {
                        reason: reason.clone(),
                        decided_ms: *now_ms,
                    });
                }
                Ok(None)
            }
        }
    }

    /// The verdict: winners paid and raised, losers refunded and cut.
    fn decide(&mut self, workload: &str, now_ms: u64) -> Result<Option<u64>, ApplyError> {
        let run = self.open_run(workload)?.clone();
        let Progress::Counted(Verdict::Agreed { result, .. }) = self.trusted_progress(&run, now_ms)
        else {
            return Err(ApplyError::conflict(format!(
                "the votes of {workload} are not in or do not agree"
            )));
        };
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        let mut accepted = None;
        for (id, rep) in &run.replicas {
            match &rep.revealed {
                Some(p) if p.digest() == result => {
                    accepted = Some(*p);
                    winners.push(id.clone());
                    self.record_result(&rep.node, true);
                }
                Some(_) => {
                    losers.push(id.clone());
                    self.record_result(&rep.node, false);
                    self.refund_deal(id, now_ms)?;
                }
                // Never revealed: no vote, no pay.
                None => self.refund_deal(id, now_ms)?,
            }
        }
        let Some(result) = accepted else {
            return Err(ApplyError::internal("an agreed result nobody revealed"));
        };
        self.settle_stakes(&run, &winners, &losers, now_ms)?;
        if let Some(r) = self.trusted.get_mut(workload) {
            r.outcome = Some(Outcome::Agreed {
                result,
                winners: winners.clone(),
                losers,
                decided_ms: now_ms,
            });
        }
        // The winners' held usage: paid now, as if it had just arrived.
        for id in &winners {
            if let Some(report) = run.replicas.get(id).and_then(|r| r.held.clone()) {
                self.take_usage(&report)?;
            }
        }
        Ok(None)
    }

    /// The undecided run of `workload`.
    fn open_run(&self, workload: &str) -> Result<&TrustedRun, ApplyError> {
        let run = self
            .trusted
            .get(workload)
            .ok_or_else(|| ApplyError::not_found(format!("{workload} is not a verified run")))?;
        if run.outcome.is_some() {
            return Err(ApplyError::conflict(format!(
                "the verified run of {workload} is decided"
            )));
        }
        Ok(run)
    }

    /// Replica `instance`, if `node` runs it.
    fn replica_mut(&mut self, instance: &str, node: &NodeId) -> Result<&mut Replica, ApplyError> {
        let w = self
            .instances
            .get(instance)
            .map(|i| i.workload.to_string())
            .ok_or_else(|| ApplyError::not_found(format!("instance {instance} does not exist")))?;
        let run = self
            .trusted
            .get_mut(&w)
            .filter(|r| r.outcome.is_none())
            .ok_or_else(|| {
                ApplyError::not_found(format!("{instance} is not in an undecided verified run"))
            })?;
        match run.replicas.get_mut(instance) {
            Some(r) if r.node == *node => Ok(r),
            _ => Err(ApplyError::forbidden(format!(
                "{instance} is not a replica on node {}",
                node.short()
            ))),
        }
    }

    /// Whether replica `instance` may reveal now (a node that asks too
    /// early is refused; the control plane holds its request until then).
    pub fn reveal_ready(&self, instance: &str) -> bool {
        self.trusted_run_of(instance)
            .is_some_and(|(_, run)| run.outcome.is_some() || self.reveals_opened(run).is_some())
    }

    /// When reveals opened for `run`: once no live replica is still without
    /// a commitment, at the last commitment or end (`None` while one is).
    fn reveals_opened(&self, run: &TrustedRun) -> Option<u64> {
        let mut opened = 0;
        for (id, r) in &run.replicas {
            let inst = self.instances.get(id);
            match (r.done_ms, inst) {
                (Some(t), _) => opened = opened.max(t),
                (None, Some(i)) if !i.state.is_terminal() => return None,
                (None, Some(i)) => opened = opened.max(i.updated_ms),
                (None, None) => {}
            }
        }
        Some(opened)
    }

    /// Whether `w` runs verified (its replicas are placed by the run, not
    /// as task slots).
    pub fn runs_verified(&self, w: &crate::Workload) -> bool {
        self.trusted
            .get(w.id.as_str())
            .is_some_and(|r| r.generation == w.generation)
    }
}

/// The votes of a run's reveals.
pub fn votes(run: &TrustedRun) -> Vec<Vote> {
    run.replicas
        .values()
        .filter_map(|r| {
            Some(Vote {
                node: r.node.0,
                result: r.revealed?.digest(),
                reputation: r.reputation,
            })
        })
        .collect()
}

/// 32 bytes as hex in JSON.
mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            serde::Serialize::serialize(v, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(&s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

/// An optional 32 bytes as hex in JSON.
mod hex32_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match v {
                Some(v) => s.serialize_some(&hex::encode(v)),
                None => s.serialize_none(),
            }
        } else {
            serde::Serialize::serialize(v, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        if d.is_human_readable() {
            let s = Option::<String>::deserialize(d)?;
            s.map(|s| {
                hex::decode(&s)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
            })
            .transpose()
        } else {
            Option::<[u8; 32]>::deserialize(d)
        }
    }
}

#[cfg(test)]
#[path = "trusted_tests.rs"]
mod tests;
