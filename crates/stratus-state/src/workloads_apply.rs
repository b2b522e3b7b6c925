//! Applying the workload commands: deploy, stop, place, desired state,
//! instance and exec reports.

use crate::{objects, workloads, ApplyError, Command, Desired, InstanceState, State, Workload};

impl State {
    /// Applies one workload command: deploy, stop, place instances.
    pub(crate) fn apply_workloads(
        &mut self,
        index: u64,
        cmd: &Command,
    ) -> Result<Option<u64>, ApplyError> {
        match cmd {
            Command::DeployWorkload {
                tenant,
                spec,
                module,
                now_ms,
            } => {
                spec.validate().map_err(|errs| {
                    let msg = errs
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    ApplyError::invalid(msg)
                })?;
                self.require_tenant(tenant)?;
                if let Some(image) = module.strip_prefix("image:") {
                    // A pinned container image: `NAME:TAG@VERSION` of the
                    // tenant's images bucket.
                    let found = image.rsplit_once('@').is_some_and(|(name, version)| {
                        self.store
                            .version(
                                &objects::images_bucket(tenant),
                                &format!("flists/{name}"),
                                Some(version),
                            )
                            .is_ok_and(|v| !v.is_delete_marker())
                    });
                    if !found {
                        return Err(ApplyError::not_found(format!(
                            "image {image} is not stored; import it first"
                        )));
                    }
                    if spec.image.is_none() {
                        return Err(ApplyError::invalid(
                            "a container image needs a spec with `image:`",
                        ));
                    }
                } else if !self.module_available(tenant, module) {
                    // Only modules the tenant uploaded itself (possession of
                    // the bytes), and the same answer whether or not another
                    // tenant stored it: a hash confirms nothing.
                    return Err(ApplyError::not_found(format!(
                        "module {module} is not stored; upload it first"
                    )));
                }
                let id = format!("{tenant}/{}", spec.name);
                match self.workloads.get_mut(&id) {
                    Some(w) if w.spec == **spec && w.module == *module && !w.stopped => {}
                    Some(w) => {
                        if w.spec.kind != spec.kind {
                            return Err(ApplyError::conflict(format!(
                                "workload {id} is a {:?}; stop it before deploying it as a {:?}",
                                w.spec.kind, spec.kind
                            )));
                        }
                        w.previous = Some((w.spec.clone(), w.module.clone()));
                        w.spec = (**spec).clone();
                        w.module = module.clone();
                        w.generation += 1;
                        w.stopped = false;
                        w.updated_ms = *now_ms;
                    }
                    None => {
                        self.workloads.insert(
                            id.clone(),
                            Workload {
                                id,
                                tenant: tenant.clone(),
                                spec: (**spec).clone(),
                                module: module.clone(),
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
                Ok(Some(index))
            }
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
                    if !self.workloads.contains_key(&i.workload) {
                        return Err(ApplyError::not_found(format!(
                            "workload {} does not exist",
                            i.workload
                        )));
                    }
                }
                for i in instances {
                    if let Some(w) = self.workloads.get_mut(&i.workload) {
                        w.instances_created += 1;
                    }
                    self.instances.insert(i.id.clone(), i.clone());
                }
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
                let inst = self.instances.get_mut(id).ok_or_else(|| {
                    ApplyError::not_found(format!("instance {id} does not exist"))
                })?;
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
                let inst = self.instances.get_mut(id).ok_or_else(|| {
                    ApplyError::not_found(format!("instance {id} does not exist"))
                })?;
                if inst.node != *node {
                    return Err(ApplyError::forbidden(format!(
                        "instance {id} is not on node {node}"
                    )));
                }
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
                let image = self
                    .instances
                    .get(instance)
                    .and_then(|i| self.workloads.get(&i.workload))
                    .is_some_and(|w| w.module.starts_with("image:"));
                let inst = self.instances.get_mut(instance).ok_or_else(|| {
                    ApplyError::not_found(format!("instance {instance} does not exist"))
                })?;
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
                let inst = self.instances.get_mut(instance).ok_or_else(|| {
                    ApplyError::not_found(format!("instance {instance} does not exist"))
                })?;
                if inst.node != *node {
                    return Err(ApplyError::forbidden(format!(
                        "instance {instance} is not on node {node}"
                    )));
                }
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
