//! Workloads' networks (issue 17): where a workload's containers may
//! connect to, and the host name its HTTP service answers to through the
//! ingress ([`stratus_spec::Networking`], read beside the spec); and what
//! its spec says beyond the stored layouts ([`stratus_spec::Extensions`]:
//! published UDP ports, ports of an HTTP component), kept the same way by
//! [`Command::DeployExtended`].
//!
//! Every deploy through the API is a [`Command::DeployNetworked`] around
//! the deploy it carries, so that a deploy without a network drops the
//! last one. A network that changes makes a new generation (the instances
//! are replaced as in any update: a container's egress is fixed when it
//! starts). A host name belongs to one workload at a time: while a
//! workload that is not stopped exposes it, no other may.

use stratus_spec::{Extensions, Networking, SelfDescribing, SpecError, WorkloadSpec};
use stratus_types::WorkloadId;

use crate::{ApplyError, Command, State};

/// The deploy that a wrapper carrying `what` wraps, checked by `check`:
/// its workload id, spec and time.
fn wrapped<'a>(
    cmd: &'a Command,
    what: &str,
    check: impl FnOnce(&WorkloadSpec) -> Result<(), Vec<stratus_spec::FieldError>>,
) -> Result<(String, &'a WorkloadSpec, u64), ApplyError> {
    let Some((tenant, spec, now_ms)) = deployed(cmd) else {
        return Err(ApplyError::invalid(format!("{what} go with a deploy")));
    };
    check(spec).map_err(|errs| ApplyError::invalid(SpecError::Invalid(errs).to_string()))?;
    let id = WorkloadId::new(tenant, &spec.name).map_err(|e| ApplyError::invalid(e.to_string()))?;
    Ok((id.to_string(), spec, now_ms))
}

/// The deploy inside `cmd` (through its wrappers): tenant, spec and time.
fn deployed(cmd: &Command) -> Option<(&str, &WorkloadSpec, u64)> {
    match cmd {
        Command::DeployWorkload {
            tenant,
            spec,
            now_ms,
            ..
        } => Some((tenant, spec, *now_ms)),
        Command::DeployOrdered { deploy, .. }
        | Command::DeployUsing { deploy, .. }
        | Command::DeployTrusted { deploy, .. }
        | Command::DeployNetworked { deploy, .. } => deployed(deploy),
        _ => None,
    }
}

impl State {
    /// The network of workload `id` (the default when it has none).
    pub fn network_of(&self, id: &str) -> Networking {
        self.networks.get(id).cloned().unwrap_or_default()
    }

    /// The extensions of workload `id` (the default when it has none).
    pub fn extensions_of(&self, id: &str) -> Extensions {
        self.extensions
            .get(id)
            .map(|e| e.0.clone())
            .unwrap_or_default()
    }

    /// The workload (not stopped) exposed as `host`, with the port its
    /// service listens on.
    pub fn exposed_as(&self, host: &str) -> Option<(&crate::Workload, u16)> {
        self.networks.iter().find_map(|(id, n)| {
            let http = n.expose.as_ref().filter(|h| h.host == host)?;
            let w = self.workloads.get(id.as_str()).filter(|w| !w.stopped)?;
            Some((w, http.port))
        })
    }

    /// Applies `DeployNetworked`: the deploy, then its network.
    pub(crate) fn deploy_networked(
        &mut self,
        index: u64,
        deploy: &Command,
        network: &Networking,
    ) -> Result<Option<u64>, ApplyError> {
        let (key, _, now_ms) = wrapped(deploy, "networks", |spec| network.validate(spec))?;
        if let Some(http) = &network.expose {
            if self
                .exposed_as(&http.host)
                .is_some_and(|(w, _)| w.id.as_str() != key)
            {
                // Said without naming the holder: another tenant's
                // workloads are not this tenant's business.
                return Err(ApplyError::conflict(format!(
                    "host {} is exposed by another workload",
                    http.host
                )));
            }
        }
        let before = self.workloads.get(&key).map(|w| w.generation);
        let changed = self.network_of(&key) != *network;
        let version = self.apply_inner(index, deploy)?;
        if network.is_default() {
            self.networks.remove(&key);
        } else {
            self.networks.insert(key.clone(), network.clone());
        }
        self.new_generation_if(changed, &key, before, now_ms);
        Ok(version)
    }

    /// Applies `DeployExtended`: the deploy, then its extensions.
    pub(crate) fn deploy_extended(
        &mut self,
        index: u64,
        deploy: &Command,
        extensions: &Extensions,
    ) -> Result<Option<u64>, ApplyError> {
        let (key, _, now_ms) = wrapped(deploy, "extensions", |spec| extensions.validate(spec))?;
        let before = self.workloads.get(&key).map(|w| w.generation);
        let changed = self.extensions_of(&key) != *extensions;
        let version = self.apply_inner(index, deploy)?;
        if extensions.is_default() {
            self.extensions.remove(&key);
        } else {
            self.extensions
                .insert(key.clone(), SelfDescribing(extensions.clone()));
        }
        self.new_generation_if(changed, &key, before, now_ms);
        Ok(version)
    }

    /// Makes a new generation of workload `key` when what its wrapper keeps
    /// `changed` and the deploy it carried did not make one (it was at
    /// generation `before`): its instances are replaced as in any update.
    fn new_generation_if(&mut self, changed: bool, key: &str, before: Option<u64>, now_ms: u64) {
        if let Some(w) = self.workloads.get_mut(key) {
            if changed && before == Some(w.generation) {
                w.previous = Some((w.spec.clone(), w.module.clone()));
                w.generation += 1;
                w.updated_ms = now_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use stratus_spec::{EgressSpec, HttpExpose};
    use stratus_types::ErrorCode;

    use super::*;
    use crate::retention::tests::{setup, T};

    fn web(name: &str) -> Box<WorkloadSpec> {
        Box::new(
            stratus_spec::parse(
                &format!("version: 1\nname: {name}\nkind: service\nimage: {{ name: app }}\n"),
                stratus_spec::Format::Yaml,
            )
            .unwrap(),
        )
    }

    fn deploy(
        s: &mut State,
        tenant: &str,
        name: &str,
        module: &str,
        n: &Networking,
    ) -> Option<ErrorCode> {
        let cmd = Command::DeployNetworked {
            deploy: Box::new(Command::DeployWorkload {
                tenant: tenant.into(),
                spec: web(name),
                module: module.into(),
                now_ms: 5,
            }),
            network: n.clone(),
        };
        s.apply(20, &cmd).error.map(|e| e.code())
    }

    fn exposed(host: &str) -> Networking {
        Networking {
            egress: EgressSpec::None,
            expose: Some(HttpExpose {
                host: host.into(),
                port: 8080,
            }),
        }
    }

    #[test]
    fn a_host_is_one_workloads_until_it_stops() {
        let (mut s, m) = setup();
        assert_eq!(
            deploy(&mut s, T, "web", &m, &exposed("app.example.com")),
            None
        );
        let (w, port) = s.exposed_as("app.example.com").unwrap();
        assert_eq!((w.id.as_str(), port), ("acme/web", 8080));
        assert_eq!(s.network_of("acme/web").egress, EgressSpec::None);
        // Another workload may not take the host, nor another tenant's.
        assert_eq!(
            deploy(&mut s, T, "web2", &m, &exposed("app.example.com")),
            Some(ErrorCode::Conflict)
        );
        assert!(
            s.workloads.get("acme/web2").is_none(),
            "a refused deploy deploys nothing"
        );
        // Redeploying its holder is fine.
        assert_eq!(
            deploy(&mut s, T, "web", &m, &exposed("app.example.com")),
            None
        );
        s.apply(
            21,
            &Command::StopWorkload {
                id: "acme/web".into(),
                now_ms: 6,
            },
        );
        assert!(s.exposed_as("app.example.com").is_none());
        assert_eq!(
            deploy(&mut s, T, "web2", &m, &exposed("app.example.com")),
            None
        );
        // The network is checked here too, not only by the API.
        let bad = exposed("Not A Host");
        assert_eq!(
            deploy(&mut s, T, "web3", &m, &bad),
            Some(ErrorCode::BadRequest)
        );
        let not_a_deploy = Command::DeployNetworked {
            deploy: Box::new(Command::StopWorkload {
                id: "acme/web2".into(),
                now_ms: 7,
            }),
            network: Networking::default(),
        };
        assert!(s.apply(22, &not_a_deploy).error.is_some());
        assert!(!s.workloads["acme/web2"].stopped);
    }

    #[test]
    fn a_changed_network_is_a_new_generation_and_the_default_is_no_row() {
        let (mut s, m) = setup();
        let gen = |s: &State| s.workloads["acme/web"].generation;
        assert_eq!(deploy(&mut s, T, "web", &m, &Networking::default()), None);
        assert!(s.networks.get("acme/web").is_none());
        assert_eq!(gen(&s), 1);
        assert_eq!(deploy(&mut s, T, "web", &m, &exposed("a.example")), None);
        assert_eq!(gen(&s), 2, "the network changed");
        assert_eq!(deploy(&mut s, T, "web", &m, &exposed("a.example")), None);
        assert_eq!(gen(&s), 2, "nothing changed");
        assert_eq!(deploy(&mut s, T, "web", &m, &Networking::default()), None);
        assert_eq!(gen(&s), 3);
        assert!(s.networks.get("acme/web").is_none());
        assert!(s.exposed_as("a.example").is_none());
    }

    fn deploy_extended(s: &mut State, module: &str, e: &Extensions) -> Option<ErrorCode> {
        let cmd = Command::DeployExtended {
            deploy: Box::new(Command::DeployNetworked {
                deploy: Box::new(Command::DeployWorkload {
                    tenant: T.into(),
                    spec: web("web"),
                    module: module.into(),
                    now_ms: 5,
                }),
                network: exposed("b.example"),
            }),
            extensions: SelfDescribing(e.clone()),
        };
        s.apply(20, &cmd).error.map(|e| e.code())
    }

    /// Extensions are kept like a network: a change alone is a new
    /// generation, the default is no row, and what the spec cannot have
    /// (an HTTP component's ports on a container) is refused here too.
    #[test]
    fn changed_extensions_are_a_new_generation_and_are_checked() {
        let (mut s, m) = setup();
        let gen = |s: &State| s.workloads["acme/web"].generation;
        let udp = Extensions {
            udp_ports: vec![stratus_spec::PortSpec {
                container: 53,
                host: 0,
            }],
            ..Extensions::default()
        };
        assert_eq!(deploy_extended(&mut s, &m, &Extensions::default()), None);
        assert_eq!(gen(&s), 1);
        assert!(s.extensions.get("acme/web").is_none());
        assert_eq!(s.network_of("acme/web"), exposed("b.example"));
        assert_eq!(deploy_extended(&mut s, &m, &udp), None);
        assert_eq!(gen(&s), 2, "the extensions changed");
        assert_eq!(s.extensions_of("acme/web"), udp);
        assert_eq!(deploy_extended(&mut s, &m, &udp), None);
        assert_eq!(gen(&s), 2, "nothing changed");
        let http = Extensions {
            http_ports: vec![8080],
            ..Extensions::default()
        };
        assert_eq!(
            deploy_extended(&mut s, &m, &http),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(
            s.extensions_of("acme/web"),
            udp,
            "a refusal changes nothing"
        );
        assert_eq!(deploy_extended(&mut s, &m, &Extensions::default()), None);
        assert_eq!(gen(&s), 3);
        assert!(s.extensions.get("acme/web").is_none());
    }
}
