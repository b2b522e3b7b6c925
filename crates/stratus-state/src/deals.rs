//! Deals: what a placement on a lender's priced node costs, the escrow it
//! holds, and the usage reports that pay the lender (issue 15).
//!
//! **When a placement is a deal.** An instance placed on a node that has an
//! offer, of a workload whose tenant is neither the node's owner nor the
//! operator, is a deal. Anything else runs free: the operator's own work,
//! a lender running on its own machine, and nodes without an offer (their
//! owners lend them for nothing).
//!
//! **What it holds.** The worst case of one instance at the node's offer
//! ([`stratus_market::worst_case`]: the per-task price plus the reserved
//! CPU and memory for the task's wall-clock limit, or one
//! [`SERVICE_PERIOD_MS`] for services and daemons). It fits the order when
//! that is within its `max_price`; the requester's balance must cover every
//! instance placed at once, or the placement is refused whole (402).
//!
//! **How it is paid.** The node's agent sends signed, numbered, cumulative
//! usage reports ([`stratus_market::UsageReport`]); each one taken pays the
//! lender and the pool what it adds, the last one closes the deal (the
//! requester gets the rest back). A report that is not signed by the
//! instance's node, names another node, or is not newer than the last one
//! taken is refused. A service's escrow is topped up by one more period
//! when it runs low; when the requester cannot pay, the deal is marked
//! unfunded and the control plane stops the instance. An instance lost
//! with its node, or that ended without a last report, is refunded: what
//! is left in escrow goes back to the requester and the lender gets
//! nothing more.
//!
//! Open deals are rows ([`State::deals`], one per instance); a closed deal
//! leaves the rows and lives on in the ledger entries that name it.

use serde::{Deserialize, Serialize};
use stratus_market::{worst_case, Amount, Deal, Order, Reserved, Terms, UsageReport};
use stratus_spec::WorkloadKind;
use stratus_types::{NodeId, Payload, ADMIN_TENANT};

use crate::{ApplyError, InstanceState, State, Workload};

/// A service's billing period: its escrow holds this long a worst case.
pub const SERVICE_PERIOD_MS: u64 = 3_600_000;
/// A task's wall-clock limit when its spec sets none (the agent runs it
/// this long at most, and its deal holds this long a worst case).
pub const DEFAULT_TASK_WALL_MS: u64 = 3_600_000;
/// How long after an instance ended its last usage report may arrive
/// before the deal is refunded (an edge node may be offline a while: the
/// agent keeps the report and sends it when it is back).
pub const LAST_REPORT_GRACE_MS: u64 = 600_000;
/// Highest pool fee, basis points (50%).
pub const MAX_POOL_FEE_BPS: u32 = 5_000;

/// An open deal, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRecord {
    /// Terms and progress.
    pub deal: Deal,
    /// The node running the instance.
    pub node: NodeId,
    /// The workload (`tenant/name`).
    pub workload: String,
    /// When it was placed (leader clock).
    pub opened_ms: u64,
    /// Number of the last usage report taken (0: none yet).
    pub report_seq: u64,
    /// A service's top-up (one period's worst case); `None` for tasks.
    pub period: Option<Amount>,
    /// A top-up failed for lack of funds: the instance is to be stopped.
    pub unfunded: bool,
}

/// Why a node's offer does not fit an order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoFit {
    /// The worst case is over the order's maximum.
    #[error("its worst case {worst} is over the maximum price {max}")]
    Price {
        /// The worst case at this node.
        worst: Amount,
        /// The order's maximum.
        max: Amount,
    },
    /// The offer's availability excludes now.
    #[error("its offer is not available now")]
    Unavailable,
    /// Prices that overflow.
    #[error("its prices overflow: {0}")]
    Overflow(String),
    /// The requester owns it, and the workload uses a paid app or dataset
    /// (whose bytes the node's owner could read).
    #[error(
        "it is the requester's own, and a paid app or dataset never runs on the requester's nodes"
    )]
    OwnNode,
}

/// The hash a signed order names its workload spec by: BLAKE3 of the
/// spec's JSON (the client and every replica compute it from the same
/// struct).
pub fn spec_hash(spec: &stratus_spec::WorkloadSpec) -> [u8; 32] {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    *blake3::hash(&json).as_bytes()
}

/// What one instance of `w` reserves for pricing.
pub fn reserved(w: &Workload) -> Reserved {
    let spec = &w.spec;
    let wall_ms = match spec.kind {
        WorkloadKind::Task => spec
            .resources
            .wall_time_secs
            .map_or(DEFAULT_TASK_WALL_MS, |s| s.saturating_mul(1000)),
        WorkloadKind::Service | WorkloadKind::Daemon => SERVICE_PERIOD_MS,
    };
    // A WASM guest runs on one thread: up to a whole core whatever it
    // reserved; a container is held to its reservation by its cgroup.
    let mut cpu_millis = match w.module {
        Payload::Wasm(_) => 1000,
        Payload::Image(_) => u64::from(spec.resources.cpu_millis),
    };
    if let (Some(secs), true) = (spec.resources.cpu_secs, wall_ms > 0) {
        let budget = u128::from(secs) * 1_000_000 / u128::from(wall_ms);
        cpu_millis = cpu_millis.min(u64::try_from(budget).unwrap_or(u64::MAX).max(1));
    }
    Reserved {
        cpu_millis,
        memory_bytes: spec.resources.memory_mb.saturating_mul(1 << 20),
        wall_ms,
    }
}

impl State {
    /// Checks the signature of `order`, deployed by `tenant` with `spec`
    /// at `now_ms`, when the tenant has an order key (unsigned orders are
    /// taken from tenants without one).
    pub(crate) fn check_order(
        &self,
        tenant: &str,
        spec: &stratus_spec::WorkloadSpec,
        order: &Order,
        now_ms: u64,
    ) -> Result<(), ApplyError> {
        let Some(key) = self.order_keys.get(tenant) else {
            return Ok(());
        };
        order
            .check_signature(tenant, &spec_hash(spec), key, now_ms)
            .map_err(|e| match e {
                stratus_market::OrderError::Expired { .. }
                | stratus_market::OrderError::TooLong(_) => ApplyError::invalid(e.to_string()),
                _ => ApplyError::forbidden(e.to_string()),
            })
    }

    /// The order of workload `id` (the default one when it has none).
    pub fn order(&self, id: &str) -> Order {
        self.orders.get(id).cloned().unwrap_or_default()
    }

    /// The terms of placing one instance of `w` on `node` at `at_ms`:
    /// `Ok(None)` when it runs free, `Err` when the node's offer does not
    /// fit the order. The deal id is filled in by the caller.
    pub fn placement_terms(
        &self,
        w: &Workload,
        node: &NodeId,
        at_ms: u64,
    ) -> Result<Option<Terms>, NoFit> {
        let used = self.uses.get(w.id.as_str());
        self.placement_terms_with(w, node, at_ms, &self.order(w.id.as_str()), used)
    }

    /// [`State::placement_terms`] under `order` and using `used` instead
    /// of the stored ones (to check a deploy before it is written).
    pub fn placement_terms_with(
        &self,
        w: &Workload,
        node: &NodeId,
        at_ms: u64,
        order: &Order,
        used: Option<&crate::catalog::Used>,
    ) -> Result<Option<Terms>, NoFit> {
        let Some(record) = self.nodes.get(node) else {
            return Ok(None);
        };
        let (app, dataset) = used.map(|u| u.prices()).unwrap_or_default();
        let listed = app.is_some() || dataset.is_some();
        if listed && record.owner == w.tenant {
            return Err(NoFit::OwnNode);
        }
        let offer = self.offers.get(node);
        // Free: the operator's own work, a lender's own machines, and
        // nodes lent for nothing, unless an app or dataset is to be paid.
        let free = offer.is_none() || w.tenant == ADMIN_TENANT || record.owner == w.tenant;
        if free && !listed {
            return Ok(None);
        }
        let (prices, task) = match offer.filter(|_| !free) {
            Some(offer) => {
                if !offer.availability.available_at(at_ms) {
                    return Err(NoFit::Unavailable);
                }
                let task = self.task_prices.get(node).copied().unwrap_or_default();
                (offer.prices, task)
            }
            None => (stratus_market::Prices::default(), Amount::ZERO),
        };
        let overflow = |e: stratus_market::MoneyError| NoFit::Overflow(e.to_string());
        let mut worst = worst_case(&prices, task, &reserved(w)).map_err(overflow)?;
        for (_, price) in app.iter().chain(dataset.iter()) {
            worst = worst
                .checked_add(*price, "the worst case")
                .map_err(overflow)?;
        }
        if let Some(max) = order.max_price {
            if worst > max {
                return Err(NoFit::Price { worst, max });
            }
        }
        Ok(Some(Terms {
            deal: String::new(),
            requester: w.tenant.clone(),
            lender: record.owner.clone(),
            prices,
            task,
            app,
            dataset,
            fee_bps: *self.pool_fee_bps,
            held: worst,
        }))
    }

    /// Opens the deals of instances about to be placed (all or none): holds
    /// each one's worst case. `placed`: (instance id, workload, node,
    /// time).
    pub(crate) fn open_deals(
        &mut self,
        placed: &[(String, String, NodeId, u64)],
    ) -> Result<(), ApplyError> {
        let mut opened = Vec::new();
        // What each requester must hold (a placement is one workload's, so
        // one requester; checked per requester all the same).
        let mut totals: std::collections::BTreeMap<String, (Amount, usize)> =
            std::collections::BTreeMap::new();
        for (instance, workload, node, at_ms) in placed {
            let Some(w) = self.workloads.get(workload.as_str()) else {
                continue;
            };
            let terms = self.placement_terms(w, node, *at_ms).map_err(|e| {
                ApplyError::conflict(format!("node {} does not fit: {e}", node.short()))
            })?;
            if let Some(mut terms) = terms {
                terms.deal = instance.clone();
                let t = totals.entry(terms.requester.clone()).or_default();
                t.0 =
                    t.0.checked_add(terms.held, "the escrow")
                        .map_err(|e| ApplyError::conflict(e.to_string()))?;
                t.1 += 1;
                let period = (w.spec.kind != WorkloadKind::Task).then_some(terms.held);
                opened.push((
                    instance.clone(),
                    workload.clone(),
                    *node,
                    *at_ms,
                    terms,
                    period,
                ));
            }
        }
        for (requester, (total, count)) in &totals {
            let balance = self.account(requester).balance;
            if *total > balance {
                return Err(ApplyError::InsufficientFunds(format!(
                    "tenant {requester} needs {total} in escrow for {count} instance(s) and has {balance}: short by {}",
                    Amount(total.0 - balance.0)
                )));
            }
        }
        for (instance, workload, node, at_ms, terms, period) in opened {
            let hold = terms
                .hold()
                .map_err(|e| ApplyError::conflict(e.to_string()))?;
            self.post_entry(hold, at_ms)?;
            self.deals.insert(
                instance,
                DealRecord {
                    deal: Deal::new(terms),
                    node,
                    workload,
                    opened_ms: at_ms,
                    report_seq: 0,
                    period,
                    unfunded: false,
                },
            );
        }
        Ok(())
    }

    /// Takes a signed usage report (see the module docs).
    pub(crate) fn take_usage(&mut self, r: &UsageReport) -> Result<Option<u64>, ApplyError> {
        r.verify()
            .map_err(|e| ApplyError::forbidden(e.to_string()))?;
        let node = NodeId(r.node);
        let inst = self.instances.get(&r.instance).ok_or_else(|| {
            ApplyError::not_found(format!("instance {} does not exist", r.instance))
        })?;
        if inst.node != node {
            return Err(ApplyError::forbidden(format!(
                "instance {} is not on node {}",
                r.instance,
                node.short()
            )));
        }
        let Some(mut rec) = self.deals.get(&r.instance).cloned() else {
            // A free placement: nothing to pay.
            return Ok(None);
        };
        if self.hold_trusted_usage(r) {
            // A replica of an undecided verified run: paid by the verdict.
            return Ok(Some(r.seq));
        }
        if r.seq <= rec.report_seq {
            return Err(ApplyError::conflict(format!(
                "usage report {} for {} is not newer than report {} already taken",
                r.seq, r.instance, rec.report_seq
            )));
        }
        let entry = if r.last {
            Some(rec.deal.close(&r.usage))
        } else {
            rec.deal.charge(&r.usage).transpose()
        };
        let entry = entry
            .transpose()
            .map_err(|e| ApplyError::invalid(e.to_string()))?;
        if let Some(e) = entry {
            self.post_entry(e, r.time_ms)?;
        }
        rec.report_seq = r.seq;
        if r.last {
            self.deals.remove(&r.instance);
            return Ok(Some(r.seq));
        }
        if let Some(period) = rec.period {
            if rec.deal.left() < Amount(period.0 / 2) {
                let top_up = rec.deal.top_up(period);
                match self.post_entry(top_up, r.time_ms) {
                    Ok(_) => rec
                        .deal
                        .held_more(period)
                        .map_err(|e| ApplyError::conflict(e.to_string()))?,
                    Err(ApplyError::InsufficientFunds(_)) => rec.unfunded = true,
                    Err(e) => return Err(e),
                }
            }
        }
        self.deals.insert(r.instance.clone(), rec);
        Ok(Some(r.seq))
    }

    /// Ends `instance`'s deal through the lender's fault or for want of a
    /// last report: what is left in escrow returns to the requester.
    pub(crate) fn refund_deal(&mut self, instance: &str, now_ms: u64) -> Result<(), ApplyError> {
        let Some(mut rec) = self.deals.remove(instance) else {
            return Ok(());
        };
        if let Some(e) = rec.deal.refund() {
            self.post_entry(e, now_ms)?;
        }
        Ok(())
    }

    /// Open deals the control plane should act on at `now_ms`: those whose
    /// instance ended (or vanished, or was lost) more than
    /// [`LAST_REPORT_GRACE_MS`] ago without a last report (to refund), and
    /// those unfunded (to stop).
    pub fn stale_deals(&self, now_ms: u64) -> (Vec<String>, Vec<String>) {
        let mut refund = Vec::new();
        let mut stop = Vec::new();
        for (id, rec) in self.deals.iter() {
            if self
                .trusted_run_of(id)
                .is_some_and(|(_, run)| run.outcome.is_none())
            {
                // Its verdict pays or refunds it.
                continue;
            }
            match self.instances.get(id) {
                None => refund.push(id.clone()),
                Some(i) if i.state == InstanceState::Lost => refund.push(id.clone()),
                Some(i)
                    if i.state.is_terminal()
                        && now_ms.saturating_sub(i.updated_ms) > LAST_REPORT_GRACE_MS =>
                {
                    refund.push(id.clone())
                }
                Some(i) if rec.unfunded && !i.state.is_terminal() => stop.push(id.clone()),
                Some(_) => {}
            }
        }
        (refund, stop)
    }
}

#[cfg(test)]
#[path = "deals_tests.rs"]
pub(crate) mod tests;
