//! The reconciler: from the replicated state to the commands that make it
//! converge. Pure (no IO, no clock: `now_ms` is passed in), run by the leader
//! on every state change and on a short timer; its commands go through Raft
//! like any other write, so a new leader simply carries on.
//!
//! Per workload kind:
//! - **task**: `count` slots; a slot with no instance, or whose last instance
//!   failed or was lost with retries left (`restart.attempts`), gets a new one.
//! - **service**: `count` live instances of the current generation. An update
//!   places new instances at most `update.max_parallel` at a time and stops an
//!   old one for each new one that has run `healthy_after_secs`; a new
//!   instance that fails, or is not healthy within `deadline_secs`, reverts
//!   the workload to its previous spec when `auto_revert` is set.
//! - **daemon**: one live instance on every eligible node that matches.
//!
//! Everywhere: instances on a node lost for longer than the workload's
//! `disconnect.wait_secs` are marked lost and (with `disconnect.replace`)
//! replaced elsewhere; instances on a draining node are stopped and replaced.

use std::collections::{BTreeMap, BTreeSet};

use stratus_sched::{Cluster, Demand, NodeView, Request, Strategy, Usage};
use stratus_spec::WorkloadKind;
use stratus_state::{Command, Desired, Instance, InstanceState, State, Workload};
use stratus_types::{NodeId, NodeStatus};

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Commands to propose, in order.
    pub commands: Vec<Command>,
    /// Workloads that could not be fully placed, with the reasons.
    pub blocked: Vec<(String, String)>,
}

fn instance_id(workload: &str, generation: u64, slot: u32, n: usize) -> String {
    let h = stratus_state::workloads::module_hash(
        format!("{workload}|{generation}|{slot}|{n}").as_bytes(),
    );
    h.trim_start_matches("blake3:").chars().take(12).collect()
}

/// A command asking instance `id` to stop, recording why.
fn stop(id: &str, kind: &str, message: String, now_ms: u64) -> Command {
    Command::SetDesired {
        id: id.to_string(),
        desired: Desired::Stop,
        kind: kind.into(),
        message,
        now_ms,
    }
}

/// Time the instance entered `Running` (its last `started`/`restarted` event).
fn running_since(i: &Instance) -> Option<u64> {
    if i.state != InstanceState::Running {
        return None;
    }
    i.events
        .iter()
        .rev()
        .find(|e| e.kind == "started" || e.kind == "restarted")
        .map(|e| e.time_ms)
}

/// One reconciliation pass over `state` at `now_ms`.
pub fn reconcile(state: &State, now_ms: u64) -> Decisions {
    let mut d = Decisions::default();

    // Nodes as the scheduler sees them, with what live instances reserve.
    let mut usage: BTreeMap<NodeId, Usage> = BTreeMap::new();
    for i in state.instances.values().filter(|i| i.is_live()) {
        if let Some(w) = state.workloads.get(i.workload.as_str()) {
            let dm = Demand::from(&w.spec.resources);
            let u = usage.entry(i.node).or_default();
            u.cpu_millis += dm.cpu_millis;
            u.memory_bytes += dm.memory_bytes;
            u.disk_bytes += dm.disk_bytes;
        }
    }
    let views: Vec<NodeView> = state
        .nodes
        .values()
        .map(|n| NodeView {
            id: n.info.id,
            eligible: n.status == NodeStatus::Ready && !state.draining.contains(&n.info.id),
            capacity: n.info.capacity.clone(),
            attributes: n.info.attributes.clone(),
            runtimes: n.info.runtimes.clone(),
            ports: n.info.ports,
            used: usage.get(&n.info.id).copied().unwrap_or_default(),
        })
        .collect();
    let mut cluster = Cluster::new(views);

    // Instances that must go: on lost nodes past the grace, or on draining nodes.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for i in state.instances.values().filter(|i| i.is_live()) {
        let Some(w) = state.workloads.get(i.workload.as_str()) else {
            continue;
        };
        let Some(node) = state.nodes.get(&i.node) else {
            continue;
        };
        if node.status == NodeStatus::Lost {
            let waited = now_ms.saturating_sub(node.status_changed_ms);
            // A banned node never comes back: its instances move now,
            // whatever the workload's disconnect policy.
            if node.banned
                || (w.spec.disconnect.replace
                    && waited >= w.spec.disconnect.wait_secs.saturating_mul(1000))
            {
                d.commands.push(Command::ReportInstance {
                    id: i.id.clone(),
                    node: i.node,
                    state: InstanceState::Lost,
                    restarts: i.restarts,
                    exit_code: i.exit_code,
                    kind: "lost".into(),
                    message: if node.banned {
                        format!("node {} is banned; replacing it elsewhere", i.node.short())
                    } else {
                        format!(
                            "node {} lost for {} s; replacing it elsewhere",
                            i.node.short(),
                            waited / 1000
                        )
                    },
                    now_ms,
                });
                gone.insert(i.id.clone());
            }
        } else if state.draining.contains(&i.node) {
            d.commands.push(stop(
                &i.id,
                "drain",
                format!("node {} is draining; moving elsewhere", i.node.short()),
                now_ms,
            ));
            gone.insert(i.id.clone());
        }
    }

    // Instances per workload, and how many each workload ever had (for ids).
    let mut by_workload: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in state.instances.values() {
        by_workload.entry(i.workload.as_str()).or_default().push(i);
    }

    d.commands
        .extend(crate::market::deal_commands(state, now_ms));
    let mut spent: BTreeMap<String, u64> = BTreeMap::new();
    for w in state.workloads.values().filter(|w| !w.stopped) {
        let all = by_workload.get(w.id.as_str()).cloned().unwrap_or_default();
        let live: Vec<&Instance> = all
            .iter()
            .copied()
            .filter(|i| i.is_live() && !gone.contains(&i.id))
            .collect();
        let mut ctx = Placer {
            w,
            cluster: &mut cluster,
            // Ended instances may have been pruned: number on from every
            // instance ever placed.
            created: all
                .len()
                .max(usize::try_from(w.instances_created).unwrap_or(usize::MAX)),
            now_ms,
            d: &mut d,
            state,
            market: None,
            spent: &mut spent,
        };
        match w.spec.kind {
            WorkloadKind::Task if state.runs_verified(w) => {
                crate::trusted::reconcile_trusted(&mut ctx)
            }
            WorkloadKind::Task => reconcile_task(&mut ctx, &all, &gone),
            WorkloadKind::Service => reconcile_service(&mut ctx, &live, &all, &gone, state),
            WorkloadKind::Daemon => reconcile_daemon(&mut ctx, &live),
        }
    }
    d
}

pub(crate) struct Placer<'a> {
    pub(crate) w: &'a Workload,
    cluster: &'a mut Cluster,
    created: usize,
    pub(crate) now_ms: u64,
    pub(crate) d: &'a mut Decisions,
    pub(crate) state: &'a State,
    /// The market side of the workload's placements (outer `None`: not
    /// priced yet; priced only when something is to be placed, as it costs
    /// a pass over the nodes).
    market: Option<Option<stratus_sched::Market>>,
    /// Escrow held by this pass's placements, per tenant.
    spent: &'a mut BTreeMap<String, u64>,
}

impl Placer<'_> {
    /// Places one instance per entry of `slots` (slot, replaces, avoid);
    /// what could not be placed is reported as blocked.
    fn place(
        &mut self,
        slots: Vec<(u32, Option<String>)>,
        existing: Vec<NodeId>,
        avoid: Vec<NodeId>,
    ) {
        if let Some(why) = self.try_place(slots, existing, avoid).1 {
            self.d.blocked.push((self.w.id.to_string(), why));
        }
    }

    /// Places one instance (in `slot`) on `node` and nowhere else: whether
    /// it was placed, and why not.
    pub(crate) fn place_on(&mut self, node: NodeId, slot: u32) -> (bool, Option<String>) {
        let avoid: Vec<NodeId> = self
            .cluster
            .nodes()
            .iter()
            .map(|n| n.id)
            .filter(|id| *id != node)
            .collect();
        let (placed, why) = self.try_place(vec![(slot, None)], Vec::new(), avoid);
        (placed == 1, why)
    }

    /// [`Placer::place`]: how many were placed, and why the rest were not.
    fn try_place(
        &mut self,
        slots: Vec<(u32, Option<String>)>,
        existing: Vec<NodeId>,
        avoid: Vec<NodeId>,
    ) -> (usize, Option<String>) {
        if slots.is_empty() {
            return (0, None);
        }
        if self.market.is_none() {
            self.market = Some(crate::market::market_for(
                self.state,
                self.w,
                self.now_ms,
                self.spent,
            ));
        }
        let market = self.market.as_mut().and_then(Option::as_mut);
        let spec = &self.w.spec;
        let req = Request {
            count: slots.len(),
            demand: demand_of(self.state, self.w),
            constraints: &spec.constraints,
            spread: spec.spread,
            strategy: if spec.kind == WorkloadKind::Task {
                Strategy::BinPack
            } else {
                Strategy::Spread
            },
            existing,
            avoid,
            distinct_nodes: spec.kind == WorkloadKind::Service,
            seed: self.w.generation ^ self.created as u64,
            market: market.as_deref(),
        };
        let plan = self.cluster.place(&req);
        if let Some(m) = market {
            let held: u64 = plan
                .placements
                .iter()
                .map(|n| match m.quotes.get(n) {
                    Some(stratus_sched::Quote::Cost(c)) => *c,
                    _ => 0,
                })
                .sum();
            m.budget = m.budget.saturating_sub(held);
            *self.spent.entry(self.w.tenant.clone()).or_default() += held;
        }
        let mut instances = Vec::new();
        for ((slot, replaces), node) in slots.into_iter().zip(plan.placements) {
            let id = instance_id(self.w.id.as_str(), self.w.generation, slot, self.created);
            self.created += 1;
            let mut i = Instance {
                replaces: replaces.clone(),
                ..Instance::pending(
                    id,
                    self.w.id.clone(),
                    node,
                    self.w.generation,
                    slot,
                    self.now_ms,
                )
            };
            let msg = match &replaces {
                Some(r) => format!("rescheduled on node {} (replaces {r})", node.short()),
                None => format!("scheduled on node {}", node.short()),
            };
            i.push_event(
                self.now_ms,
                if replaces.is_some() {
                    "rescheduled"
                } else {
                    "scheduled"
                },
                msg,
            );
            instances.push(i);
        }
        let blocked = (plan.unplaced > 0).then(|| {
            let why: Vec<String> = plan
                .reasons
                .iter()
                .map(|(r, n)| format!("{n} node(s): {r}"))
                .collect();
            format!(
                "{} instance(s) cannot be placed: {}",
                plan.unplaced,
                if why.is_empty() {
                    "no eligible node".into()
                } else {
                    why.join(", ")
                }
            )
        });
        let placed = instances.len();
        if !instances.is_empty() {
            self.d.commands.push(Command::PlaceInstances { instances });
        }
        (placed, blocked)
    }
}

fn reconcile_task(p: &mut Placer<'_>, all: &[&Instance], gone: &BTreeSet<String>) {
    let spec = &p.w.spec;
    let mut wanted = Vec::new();
    let mut avoid = Vec::new();
    for slot in 0..spec.count {
        let mut tries: Vec<&&Instance> = all
            .iter()
            .filter(|i| i.slot == slot && i.generation == p.w.generation)
            .collect();
        tries.sort_by_key(|i| (i.created_ms, i.id.clone()));
        match tries.last() {
            None => wanted.push((slot, None)),
            Some(last) => {
                let lost = gone.contains(&last.id) || last.state == InstanceState::Lost;
                let failed = matches!(last.state, InstanceState::Failed { .. });
                let retries_used = tries.len().saturating_sub(1) as u32;
                if (failed || lost)
                    && last.desired == Desired::Run
                    && retries_used < spec.restart.attempts
                {
                    wanted.push((slot, Some(last.id.clone())));
                    if lost {
                        avoid.push(last.node);
                    }
                }
            }
        }
    }
    p.place(wanted, Vec::new(), avoid);
}

fn reconcile_service(
    p: &mut Placer<'_>,
    live: &[&Instance],
    all: &[&Instance],
    gone: &BTreeSet<String>,
    state: &State,
) {
    let spec = p.w.spec.clone();
    let gen = p.w.generation;
    let count = spec.count as usize;
    let (new, old): (Vec<&Instance>, Vec<&Instance>) =
        live.iter().partition(|i| i.generation == gen);
    let healthy_ms = spec.update.healthy_after_secs.saturating_mul(1000);
    let healthy =
        |i: &Instance| running_since(i).is_some_and(|t| p.now_ms.saturating_sub(t) >= healthy_ms);
    let healthy_new = new.iter().filter(|i| healthy(i)).count();

    // Automatic revert: a new-generation instance failed, or is not healthy in time.
    if !old.is_empty() && spec.update.auto_revert {
        if let Some((prev_spec, prev_module)) = &p.w.previous {
            let deadline_ms = spec.update.deadline_secs.saturating_mul(1000);
            let failed = all
                .iter()
                .any(|i| i.generation == gen && matches!(i.state, InstanceState::Failed { .. }));
            let late = new
                .iter()
                .any(|i| !healthy(i) && p.now_ms.saturating_sub(i.created_ms) > deadline_ms);
            if failed || late {
                let why = if failed {
                    "a new instance failed"
                } else {
                    "a new instance was not healthy in time"
                };
                for i in all
                    .iter()
                    .filter(|i| i.generation == gen && i.desired == Desired::Run)
                {
                    p.d.commands.push(stop(
                        &i.id,
                        "reverted",
                        format!("update to generation {gen} reverted: {why}"),
                        p.now_ms,
                    ));
                }
                p.d.commands.push(Command::DeployWorkload {
                    tenant: p.w.tenant.clone(),
                    spec: Box::new(prev_spec.clone()),
                    module: prev_module.to_string(),
                    now_ms: p.now_ms,
                });
                return;
            }
        }
    }

    // Place missing new-generation replicas (bounded while an update runs).
    let missing = count.saturating_sub(new.len());
    let to_place = if old.is_empty() {
        missing
    } else {
        let in_flight = new.len() - healthy_new;
        missing.min((spec.update.max_parallel as usize).saturating_sub(in_flight))
    };
    let used_slots: BTreeSet<u32> = new.iter().map(|i| i.slot).collect();
    // Lost or drained replicas not replaced yet: their slots are refilled first.
    let replaced: BTreeSet<&str> = all.iter().filter_map(|i| i.replaces.as_deref()).collect();
    let mut orphans: Vec<&Instance> = all
        .iter()
        .copied()
        .filter(|i| {
            i.generation == gen
                && (gone.contains(&i.id)
                    || i.state == InstanceState::Lost
                    || i.desired == Desired::Stop && !i.state.is_terminal())
        })
        .filter(|i| !replaced.contains(i.id.as_str()) && !used_slots.contains(&i.slot))
        .collect();
    orphans.sort_by_key(|i| i.slot);
    orphans.dedup_by_key(|i| i.slot);
    let mut slots: Vec<(u32, Option<String>)> = orphans
        .iter()
        .take(to_place)
        .map(|i| (i.slot, Some(i.id.clone())))
        .collect();
    let taken: BTreeSet<u32> = used_slots
        .iter()
        .copied()
        .chain(slots.iter().map(|(s, _)| *s))
        .collect();
    let fresh = to_place.saturating_sub(slots.len());
    slots.extend(
        (0..u32::MAX)
            .filter(|s| !taken.contains(s))
            .take(fresh)
            .map(|s| (s, None)),
    );
    let existing: Vec<NodeId> = live.iter().map(|i| i.node).collect();
    let avoid: Vec<NodeId> = state.draining.iter().copied().collect();
    p.place(slots, existing, avoid);

    // Retire old-generation replicas as new ones become healthy.
    let excess = (healthy_new + old.len()).saturating_sub(count);
    for i in old.iter().take(excess) {
        p.d.commands.push(stop(
            &i.id,
            "updated",
            format!("replaced by generation {gen}"),
            p.now_ms,
        ));
    }
    // Too many current replicas (count lowered): stop the extra ones.
    if new.len() > count {
        for i in new.iter().skip(count) {
            p.d.commands.push(stop(
                &i.id,
                "scaled-down",
                format!("count is now {count}"),
                p.now_ms,
            ));
        }
    }
}

/// What one instance of `w` needs, with the host ports its extensions
/// publish (UDP, an HTTP component's).
fn demand_of(state: &State, w: &Workload) -> Demand {
    let ext = state.extensions_of(w.id.as_str());
    Demand::from(&w.spec)
        .with_host_ports(ext.udp_ports.iter().map(|p| p.host).chain(ext.http_ports))
}

fn reconcile_daemon(p: &mut Placer<'_>, live: &[&Instance]) {
    let gen = p.w.generation;
    let demand = demand_of(p.state, p.w);
    let targets: BTreeSet<NodeId> =
        stratus_sched::daemon_targets(p.cluster, &demand, &p.w.spec.constraints)
            .into_iter()
            .collect();
    let served: BTreeSet<NodeId> = live
        .iter()
        .filter(|i| i.generation == gen)
        .map(|i| i.node)
        .collect();
    for i in live {
        let stale = i.generation != gen && served.contains(&i.node);
        let unwanted =
            !targets.contains(&i.node) && !served.contains(&i.node) && i.generation == gen;
        if stale || unwanted {
            p.d.commands.push(stop(
                &i.id,
                "updated",
                "no longer wanted on this node".into(),
                p.now_ms,
            ));
        }
    }
    for node in targets.difference(&served) {
        let slot = p.created as u32;
        if let (_, Some(why)) = p.place_on(*node, slot) {
            p.d.blocked.push((p.w.id.to_string(), why));
        }
    }
}
