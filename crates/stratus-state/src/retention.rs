//! Retention: what the state forgets once it has served its purpose.
//!
//! The leader proposes [`crate::Command::Prune`] with its clock (`now_ms`)
//! and the retention periods; apply never reads a clock, so every replica
//! prunes exactly the same things. One prune:
//!
//! * drops **finished workloads** with all their instances: a task none of
//!   whose instances is live any more, or a stopped workload of any kind with
//!   no live instance, once nothing about it changed for the task retention
//!   period ([`DEFAULT_TASK_RETENTION_MS`]);
//! * drops **ended instances of workloads that go on** (services and
//!   daemons that restarted, were rescheduled or updated) once they ended
//!   that long ago; a task's instances stay until the task is pruned (its
//!   retries are counted from them). New instance ids are numbered from
//!   [`crate::Workload::instances_created`], so they never repeat;
//! * drops a tenant's claim on a **module** it uploaded that none of its
//!   workloads uses, after the same period, and the module itself once no
//!   tenant claims it and no workload uses it (modules stored by the first
//!   command layout, with no owner, are kept); a module stored as an object
//!   ([`crate::modules`]) has its object version deleted with the claim;
//! * aborts **multipart uploads** open longer than the upload expiry
//!   ([`DEFAULT_UPLOAD_EXPIRY_MS`]): their parts lose their chunk references,
//!   so the next garbage collection drops the data and deletes its pieces.

use std::collections::{BTreeMap, BTreeSet};

use crate::State;

/// Default time a finished workload is kept: 24 hours.
pub const DEFAULT_TASK_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// Default time a multipart upload may stay open: 7 days (as the usual S3
/// lifecycle rule `AbortIncompleteMultipartUpload`).
pub const DEFAULT_UPLOAD_EXPIRY_MS: u64 = 7 * 24 * 3600 * 1000;

/// What a prune would remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prunable {
    /// Finished workloads (their instances go with them).
    pub workloads: Vec<String>,
    /// Ended instances of workloads that go on.
    pub instances: Vec<String>,
    /// Module claims `(tenant, module)` no longer used.
    pub modules: Vec<(String, String)>,
    /// Expired multipart uploads.
    pub uploads: Vec<String>,
}

impl Prunable {
    /// Whether there is nothing to prune.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Things removed.
    pub fn len(&self) -> usize {
        self.workloads.len() + self.instances.len() + self.modules.len() + self.uploads.len()
    }
}

/// Per workload: any live instance, instances, last change.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) live: bool,
    pub(crate) instances: usize,
    pub(crate) last_ms: u64,
}

impl State {
    pub(crate) fn instances_by_workload(&self) -> BTreeMap<&str, Seen> {
        let mut by: BTreeMap<&str, Seen> = BTreeMap::new();
        for i in self.instances.values() {
            let s = by.entry(i.workload.as_str()).or_default();
            s.live |= i.is_live();
            s.instances += 1;
            s.last_ms = s.last_ms.max(i.updated_ms);
        }
        by
    }

    /// Whether `w` has ended: a task with instances none of which is live,
    /// or a stopped workload with no live instance.
    pub fn workload_finished(&self, w: &crate::Workload) -> bool {
        let mut live = false;
        let mut any = false;
        for i in self.instances.values().filter(|i| i.workload == w.id) {
            any = true;
            live |= i.is_live();
        }
        finished(w, live, any)
    }

    /// What a prune at `now_ms` with these periods would remove.
    pub fn prunable(&self, now_ms: u64, tasks_ms: u64, uploads_ms: u64) -> Prunable {
        let by = self.instances_by_workload();
        let old = |t: u64, period: u64| t.saturating_add(period) <= now_ms;
        let workloads: Vec<String> = self
            .workloads
            .values()
            .filter(|w| {
                let s = by.get(w.id.as_str());
                let (live, any, last) =
                    s.map_or((false, false, 0), |s| (s.live, s.instances > 0, s.last_ms));
                finished(w, live, any) && old(w.updated_ms.max(last), tasks_ms)
            })
            .map(|w| w.id.to_string())
            .collect();
        let gone: BTreeSet<&str> = workloads.iter().map(String::as_str).collect();
        let instances = self
            .instances
            .values()
            .filter(|i| {
                i.state.is_terminal()
                    && old(i.updated_ms, tasks_ms)
                    && !gone.contains(i.workload.as_str())
                    && self
                        .workloads
                        .get(i.workload.as_str())
                        .is_some_and(|w| w.spec.kind != stratus_spec::WorkloadKind::Task)
            })
            .map(|i| i.id.clone())
            .collect();
        let used: BTreeSet<(&str, &str)> = self
            .workloads
            .values()
            .filter(|w| !gone.contains(w.id.as_str()))
            .flat_map(|w| {
                let prev = w.previous.as_ref().and_then(|(_, m)| m.module());
                w.module
                    .module()
                    .into_iter()
                    .chain(prev)
                    .map(|m| m.as_str())
                    .map(|m| (self.payload_holder(w), m))
            })
            // A published app keeps its owner's module.
            .chain(
                self.apps
                    .values()
                    .filter_map(|a| Some((a.owner.as_str(), a.payload.module()?.as_str()))),
            )
            .collect();
        let modules = self
            .quotas
            .modules
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(h, at)| (t, h, *at)))
            .filter(|(t, h, at)| old(*at, tasks_ms) && !used.contains(&(t.as_str(), h.as_str())))
            .map(|(t, h, _)| (t.clone(), h.clone()))
            .collect();
        let uploads = self
            .store
            .uploads
            .values()
            .filter(|u| old(u.created_ms, uploads_ms))
            .map(|u| u.id.clone())
            .collect();
        Prunable {
            workloads,
            instances,
            modules,
            uploads,
        }
    }

    /// Applies `Prune`: removes what [`State::prunable`] finds; returns how
    /// many things went.
    pub(crate) fn prune(&mut self, now_ms: u64, tasks_ms: u64, uploads_ms: u64) -> u64 {
        let p = self.prunable(now_ms, tasks_ms, uploads_ms);
        let gone: BTreeSet<&str> = p.workloads.iter().map(String::as_str).collect();
        self.instances
            .retain(|_, i| !gone.contains(i.workload.as_str()));
        for id in &p.instances {
            self.instances.remove(id);
        }
        for id in &p.workloads {
            self.workloads.remove(id);
            self.orders.remove(id);
            self.uses.remove(id);
            self.trusted.remove(id);
            self.networks.remove(id);
            self.extensions.remove(id);
        }
        let mut dropped = BTreeSet::new();
        for (t, h) in &p.modules {
            if let Some(m) = self.quotas.modules.get_mut(t) {
                m.remove(h);
                if m.is_empty() {
                    self.quotas.modules.remove(t);
                }
            }
            dropped.insert(h.as_str());
        }
        for (t, h) in &p.modules {
            self.drop_module_object(t, h, now_ms);
        }
        for h in dropped {
            let claimed = self.quotas.modules.values().any(|m| m.contains_key(h));
            let used = self.workloads.values().any(|w| {
                [Some(&w.module), w.previous.as_ref().map(|(_, m)| m)]
                    .into_iter()
                    .flatten()
                    .any(|m| m.module().is_some_and(|m| m.as_str() == h))
            });
            if !claimed && !used {
                self.modules.remove(h);
            }
        }
        for id in &p.uploads {
            self.store.remove_upload(id);
        }
        p.len() as u64
    }
}

pub(crate) fn finished(w: &crate::Workload, live: bool, any: bool) -> bool {
    let task = w.spec.kind == stratus_spec::WorkloadKind::Task;
    !live && (w.stopped || (task && any))
}

#[cfg(test)]
#[path = "retention_tests.rs"]
pub(crate) mod tests;
