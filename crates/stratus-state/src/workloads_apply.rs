//! Applying the workload commands: deploy, stop, place, desired state,
//! instance and exec reports.

use stratus_spec::WorkloadSpec;
use stratus_types::{ImageRef, NodeId, Payload, RefError, WorkloadId};

use crate::{
    objects, workloads, ApplyError, Command, Desired, Instance, InstanceState, State, Workload,
};

impl State {
    /// What `DeployWorkload`'s `module` names, if `tenant` may run it: a
    /// module it uploaded itself, or a stored version of one of its images
    /// (with a spec that has `image:`).
    ///
    /// With `app` (a published app the deploy names, already checked to be
    /// what `module` names), what it runs is the app's, held by its owner.
    fn deployable(
        &self,
        tenant: &str,
        spec: &WorkloadSpec,
        module: &str,
        app: Option<&str>,
    ) -> Result<Payload, ApplyError> {
        let holder = app.unwrap_or(tenant);
        match module.parse::<Payload>() {
            Ok(Payload::Image(image)) => {
                // A pinned container image: `NAME:TAG@VERSION` of the
                // holder's images bucket.
                if !self.image_stored(holder, &image) {
                    return Err(image_not_stored(module));
                }
                if spec.image.is_none() {
                    return Err(ApplyError::invalid(
                        "a container image needs a spec with `image:`",
                    ));
                }
                Ok(Payload::Image(image))
            }
            Err(RefError::Image(_)) => Err(image_not_stored(module)),
            // Only modules the tenant uploaded itself (possession of the
            // bytes), and the same answer whether or not another tenant
            // stored it: a hash confirms nothing. An app's module is its
            // owner's.
            Ok(Payload::Wasm(m)) if self.module_available(holder, m.as_str()) => {
                Ok(Payload::Wasm(m))
            }
            _ => Err(ApplyError::not_found(format!(
                "module {module} is not stored; upload it first"
            ))),
        }
    }

    /// Whether version `image` of `tenant`'s images bucket is stored.
    pub(crate) fn image_stored(&self, tenant: &str, image: &ImageRef) -> bool {
        self.store
            .version(
                &objects::images_bucket(tenant),
                &format!("flists/{}", image.name_tag()),
                Some(&image.version),
            )
            .is_ok_and(|v| !v.is_delete_marker())
    }

    /// Applies a deploy with a market order (`deploy` must be a
    /// `DeployWorkload`), running `app`'s module when given.
    pub(crate) fn deploy_ordered(
        &mut self,
        index: u64,
        deploy: &Command,
        order: &stratus_market::Order,
        app: Option<&str>,
    ) -> Result<Option<u64>, ApplyError> {
        let Command::DeployWorkload {
            tenant,
            spec,
            now_ms,
            ..
        } = deploy
        else {
            return Err(ApplyError::invalid("an order goes with a deploy"));
        };
        self.check_order(tenant, spec, order, *now_ms)?;
        let id =
            WorkloadId::new(tenant, &spec.name).map_err(|e| ApplyError::invalid(e.to_string()))?;
        let version = self.deploy(index, deploy, app)?;
        self.orders.insert(id.to_string(), order.clone());
        Ok(version)
    }

    /// Applies `DeployUsing`: the deploy, with what it uses resolved and
    /// kept (see [`crate::catalog`]).
    pub(crate) fn deploy_using(
        &mut self,
        index: u64,
        deploy: &Command,
        uses: &crate::catalog::Uses,
    ) -> Result<Option<u64>, ApplyError> {
        let inner = match deploy {
            Command::DeployOrdered { deploy, .. } => deploy.as_ref(),
            d => d,
        };
        let Command::DeployWorkload {
            tenant,
            spec,
            module,
            ..
        } = inner
        else {
            return Err(ApplyError::invalid("what a deploy uses goes with a deploy"));
        };
        if uses.is_empty() {
            return Err(ApplyError::invalid(
                "a deploy using nothing is a plain deploy",
            ));
        }
        if uses.dataset.is_some()
            && (spec.wasm.is_none()
                || spec.kind != stratus_spec::WorkloadKind::Task
                || spec.input.is_some())
        {
            return Err(ApplyError::invalid(
                "a dataset is the /input of a WASM task that names no input of its own",
            ));
        }
        // A signed order names the app and dataset it pays for.
        if let Command::DeployOrdered { order, .. } = deploy {
            if let Some(sig) = &order.signature {
                let named = uses.signed_module(if uses.app.is_some() { "" } else { module });
                if sig.module != named {
                    return Err(ApplyError::forbidden(format!(
                        "the order is signed for {:?}, not for what the deploy uses ({named:?})",
                        sig.module
                    )));
                }
            }
        }
        let used = self.resolve_uses(uses, module)?;
        if used.app.is_some() && spec.image.is_some() {
            image_app_runs_as_published(spec)?;
        }
        let id =
            WorkloadId::new(tenant, &spec.name).map_err(|e| ApplyError::invalid(e.to_string()))?;
        let holder = used.app.as_ref().map(|(owner, _)| owner.clone());
        let version = match deploy {
            Command::DeployOrdered { deploy, order } => {
                self.deploy_ordered(index, deploy, order, holder.as_deref())?
            }
            d => self.deploy(index, d, holder.as_deref())?,
        };
        self.uses.insert(id.to_string(), used);
        Ok(version)
    }

    /// Applies a `DeployWorkload` (`cmd`), running `app`'s module when
    /// given (see [`State::deployable`]).
    fn deploy(
        &mut self,
        index: u64,
        cmd: &Command,
        app: Option<&str>,
    ) -> Result<Option<u64>, ApplyError> {
        let Command::DeployWorkload {
            tenant,
            spec,
            module,
            now_ms,
        } = cmd
        else {
            return Err(ApplyError::invalid("not a deploy"));
        };
        spec.validate().map_err(|errs| {
            ApplyError::invalid(stratus_spec::SpecError::Invalid(errs).to_string())
        })?;
        self.require_tenant(tenant)?;
        let payload = self.deployable(tenant, spec, module, app)?;
        let id =
            WorkloadId::new(tenant, &spec.name).map_err(|e| ApplyError::invalid(e.to_string()))?;
        let key = id.to_string();
        match self.workloads.get_mut(id.as_str()) {
            Some(w) if w.spec == **spec && w.module == payload && !w.stopped => {}
            Some(w) => {
                if w.spec.kind != spec.kind {
                    return Err(ApplyError::conflict(format!(
                        "workload {id} is a {:?}; stop it before deploying it as a {:?}",
                        w.spec.kind, spec.kind
                    )));
                }
                w.previous = Some((w.spec.clone(), w.module.clone()));
                w.spec = (**spec).clone();
                w.module = payload;
                w.generation += 1;
                w.stopped = false;
                w.updated_ms = *now_ms;
            }
            None => {
                self.workloads.insert(
                    id.to_string(),
                    Workload {
                        id,
                        tenant: tenant.clone(),
                        spec: (**spec).clone(),
                        module: payload,
                        generation: 1,
                        previous: None,
                        stopped: false,
                        created_ms: *now_ms,
                        updated_ms: *now_ms,
                        instances_created: 0,
                    },
                );
            }
        }
        // Deployed without an order or uses: the defaults from now on
        // (`DeployOrdered` and `DeployUsing` set their own after this).
        self.orders.remove(&key);
        self.uses.remove(&key);
        if self
            .trusted
            .get(&key)
            .is_some_and(|r| r.generation != self.workloads.get(&key).map_or(0, |w| w.generation))
        {
            // A new generation: a trusted deploy opens its own run.
            self.trusted.remove(&key);
        }
        Ok(Some(index))
    }

    /// Applies one workload command: deploy, stop, place instances.
    pub(crate) fn apply_workloads(
        &mut self,
        index: u64,
        cmd: &Command,
    ) -> Result<Option<u64>, ApplyError> {
        match cmd {
            Command::DeployWorkload { .. } => self.deploy(index, cmd, None),
            Command::StopWorkload { id, now_ms } => {
                let w = self.workloads.get_mut(id).ok_or_else(|| {
                    ApplyError::not_found(format!("workload {id} does not exist"))
                })?;
                w.stopped = true;
                w.updated_ms = *now_ms;
                for inst in self
                    .instances
                    .values_mut()
                    .filter(|i| i.workload == *id && i.desired == Desired::Run)
                {
                    inst.desired = Desired::Stop;
                    inst.push_event(*now_ms, "stop-requested", "the workload was stopped");
                }
                Ok(None)
            }
            Command::PlaceInstances { instances } => {
                for i in instances {
                    if self.instances.contains_key(&i.id) {
                        return Err(ApplyError::conflict(format!(
                            "instance {} already exists",
                            i.id
                        )));
                    }
                    if !self.workloads.contains_key(i.workload.as_str()) {
                        return Err(ApplyError::not_found(format!(
                            "workload {} does not exist",
                            i.workload
                        )));
                    }
                }
                let placed: Vec<_> = instances
                    .iter()
                    .map(|i| (i.id.clone(), i.workload.to_string(), i.node, i.created_ms))
                    .collect();
                self.check_trusted_placement(instances)?;
                self.open_deals(&placed)?;
                for i in instances {
                    if let Some(w) = self.workloads.get_mut(i.workload.as_str()) {
                        w.instances_created += 1;
                    }
                    self.instances.insert(i.id.clone(), i.clone());
                }
                self.record_trusted_placement(instances)?;
                Ok(None)
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }

    /// Applies one instance command: desired state, reports and execs.
    pub(crate) fn apply_instances(&mut self, cmd: &Command) -> Result<Option<u64>, ApplyError> {
        match cmd {
            Command::SetDesired {
                id,
                desired,
                kind,
                message,
                now_ms,
            } => {
                let inst = self.instance_mut(id)?;
                inst.desired = *desired;
                inst.push_event(*now_ms, kind, message.clone());
                Ok(None)
            }
            Command::ReportInstance {
                id,
                node,
                state,
                restarts,
                exit_code,
                kind,
                message,
                now_ms,
            } => {
                let inst = self.reported_instance(id, node)?;
                if inst.state.is_terminal() && !state.is_terminal() {
                    // A late report for an instance that has ended: keep the end.
                    return Ok(None);
                }
                inst.state = state.clone();
                inst.restarts = *restarts;
                if exit_code.is_some() {
                    inst.exit_code = *exit_code;
                }
                inst.push_event(*now_ms, kind, message.clone());
                if *state == InstanceState::Lost {
                    // Lost with its node: the lender's fault, nothing more
                    // is paid for it.
                    self.refund_deal(id, *now_ms)?;
                }
                Ok(None)
            }
            Command::Exec {
                instance,
                args,
                now_ms,
            } => {
                if args.is_empty() || args[0].is_empty() {
                    return Err(ApplyError::invalid("exec needs a command"));
                }
                let workload = self
                    .instances
                    .get(instance)
                    .and_then(|i| self.workloads.get(i.workload.as_str()));
                let image = workload.is_some_and(|w| w.module.image().is_some());
                if workload.is_some_and(|w| self.payload_holder(w) != w.tenant) {
                    // A command in a published app's container would read
                    // its files out to the requester.
                    return Err(ApplyError::forbidden(format!(
                        "instance {instance} runs a published app: no exec into it"
                    )));
                }
                let inst = self.instance_mut(instance)?;
                if !image {
                    return Err(ApplyError::invalid(format!(
                        "instance {instance} runs a WASM module; exec works in containers"
                    )));
                }
                if inst.state != InstanceState::Running || inst.desired != Desired::Run {
                    return Err(ApplyError::conflict(format!(
                        "instance {instance} is not running"
                    )));
                }
                let n = inst.execs.last().map_or(1, |e| e.n + 1);
                inst.execs.push(workloads::ExecRecord {
                    n,
                    args: args.clone(),
                    state: workloads::ExecState::Pending,
                    created_ms: *now_ms,
                });
                while inst.execs.len() > workloads::MAX_EXECS {
                    match inst.execs.iter().position(|e| e.state.is_over()) {
                        Some(i) => {
                            inst.execs.remove(i);
                        }
                        None => break,
                    }
                }
                Ok(Some(u64::from(n)))
            }
            Command::ReportExec {
                instance,
                node,
                n,
                state,
            } => {
                let inst = self.reported_instance(instance, node)?;
                if let Some(e) = inst.execs.iter_mut().find(|e| e.n == *n) {
                    if !e.state.is_over() {
                        e.state = state.clone();
                    }
                }
                Ok(None)
            }
            _ => Err(ApplyError::internal("command routed to the wrong family")),
        }
    }
}

/// The answer to an image that is not stored (or not an image reference).
/// A published image runs exactly as published: a requester who could
/// choose its command, entrypoint, user, environment or volumes could make
/// it copy its own files out (`cat`, a volume saved to the requester's
/// bucket). A WASM app cannot read its own bytes, so it takes arguments.
fn image_app_runs_as_published(spec: &WorkloadSpec) -> Result<(), ApplyError> {
    let Some(image) = &spec.image else {
        return Ok(());
    };
    let mut set = Vec::new();
    for (what, given) in [
        ("args", !spec.args.is_empty()),
        ("env", !spec.env.is_empty()),
        ("image.entrypoint", !image.entrypoint.is_empty()),
        ("image.user", image.user.is_some()),
        ("image.workdir", image.workdir.is_some()),
        ("image.volumes", !image.volumes.is_empty()),
    ] {
        if given {
            set.push(what);
        }
    }
    if set.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::invalid(format!(
            "a published image runs as published: drop {} (they could copy its files out)",
            set.join(", ")
        )))
    }
}

fn image_not_stored(module: &str) -> ApplyError {
    let image = module.strip_prefix(ImageRef::PREFIX).unwrap_or(module);
    ApplyError::not_found(format!("image {image} is not stored; import it first"))
}

impl State {
    /// The instance `id`, to change it.
    fn instance_mut(&mut self, id: &str) -> Result<&mut Instance, ApplyError> {
        self.instances
            .get_mut(id)
            .ok_or_else(|| ApplyError::not_found(format!("instance {id} does not exist")))
    }

    /// The instance `id` a report from `node` is about: only the node it
    /// was placed on may report on it.
    fn reported_instance(&mut self, id: &str, node: &NodeId) -> Result<&mut Instance, ApplyError> {
        let inst = self.instance_mut(id)?;
        if inst.node != *node {
            return Err(ApplyError::forbidden(format!(
                "instance {id} is not on node {node}"
            )));
        }
        Ok(inst)
    }
}

#[cfg(test)]
#[path = "workloads_apply_tests.rs"]
mod tests;
