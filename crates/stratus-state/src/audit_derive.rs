//! Which commands the audit log records, and what a record says
//! ([`crate::audit`]).
//!
//! Recorded: the lifecycle of workloads and instances (deploy, stop,
//! schedule, desired-state changes such as reschedules and drains' stops,
//! start, exit, loss, `exec` — never its arguments), modules uploaded (by
//! hash), the administrative acts (tenants, API tokens and S3 access keys —
//! ids and scopes, never secrets or their hashes —, quotas, join
//! credentials, the cluster key being set, node joins, registrations,
//! status changes, drains, bans, removals, storage marks, buckets created
//! and deleted, the storage secret being set), the market (offers; every
//! ledger entry is recorded where it is posted) and retention runs that
//! removed something.
//!
//! Not recorded: the object data path (object puts and deletes, parts,
//! packs, pieces, scrubs, garbage collection, tags, ACLs, lifecycle
//! expiries) — high volume, and each object's own versions are its history
//! —, variables (configuration data), exec progress reports, the
//! first-layout module store. The match is exhaustive over [`Command`]: a
//! new command must be placed on a side.

use stratus_types::TenantName;

use crate::audit::Pending;
use crate::objects::StoreCommand;
use crate::{accounts::MarketCommand, Command, CommandResult, InstanceState, State};

fn p(kind: &'static str, tenants: Vec<TenantName>, subject: impl Into<String>) -> Pending {
    Pending {
        kind: kind.to_string(),
        tenants,
        subject: subject.into(),
        ..Pending::default()
    }
}

impl Pending {
    pub(crate) fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }
    fn at(mut self, ms: u64) -> Self {
        self.at_ms = Some(ms);
        self
    }
}

impl State {
    fn owner_of(&self, node: &stratus_types::NodeId) -> Vec<TenantName> {
        self.nodes
            .get(node)
            .map(|n| vec![n.owner.clone()])
            .unwrap_or_default()
    }

    fn instance_tenant(&self, id: &str) -> Vec<TenantName> {
        self.instances
            .get(id)
            .map(|i| vec![i.workload.tenant().to_string()])
            .unwrap_or_default()
    }

    /// The records `cmd` will make if it applies (read before it applies:
    /// a revoked token or a removed node is gone after).
    pub(crate) fn audit_prepare(&self, cmd: &Command) -> Vec<Pending> {
        let one = |x: Pending| vec![x];
        match cmd {
            Command::RegisterNode { info, now_ms } => one(p(
                "node.register",
                self.owner_of(&info.id),
                info.id.to_string(),
            )
            .detail(format!("name {}, version {}", info.name, info.version))
            .at(*now_ms)),
            Command::SetNodeStatus { id, status, now_ms } => {
                one(p("node.status", self.owner_of(id), id.to_string())
                    .detail(format!("{status:?}").to_lowercase())
                    .at(*now_ms))
            }
            Command::RemoveNode { id } => one(p("node.remove", self.owner_of(id), id.to_string())),
            Command::CreateTenant { name, now_ms } => {
                one(p("tenant.create", vec![name.clone()], name.clone()).at(*now_ms))
            }
            Command::CreateToken { record } => one(p(
                "token.issue",
                vec![record.tenant.clone()],
                record.id.clone(),
            )
            .detail("full scope, no expiry")
            .at(record.created_ms)),
            Command::IssueToken { record } => one(p(
                "token.issue",
                vec![record.tenant.clone()],
                record.id.clone(),
            )
            .detail(match record.expires_ms {
                Some(e) => format!("scope {}, expires at {e} ms", record.scope),
                None => format!("scope {}, no expiry", record.scope),
            })
            .at(record.created_ms)),
            Command::RevokeToken { id } => {
                let tenants = self
                    .tokens
                    .get(id)
                    .map(|t| vec![t.tenant.clone()])
                    .unwrap_or_default();
                one(p("token.revoke", tenants, id.clone()))
            }
            Command::PutVar { .. } | Command::DeleteVar { .. } => Vec::new(),
            Command::Exec {
                instance,
                args,
                now_ms,
            } => one(p(
                "instance.exec",
                self.instance_tenant(instance),
                instance.clone(),
            )
            .detail(format!("{} argument(s)", args.len()))
            .at(*now_ms)),
            Command::ReportExec { .. } => Vec::new(),
            Command::SetJoinToken { .. } => one(p("join.set-legacy", Vec::new(), "join token")),
            Command::PutModule { .. } => Vec::new(),
            Command::DeployWorkload {
                tenant,
                spec,
                module,
                now_ms,
            } => one(p(
                "workload.deploy",
                vec![tenant.clone()],
                format!("{tenant}/{}", spec.name),
            )
            .detail(format!("runs {module}"))
            .at(*now_ms)),
            Command::StopWorkload { id, now_ms } => {
                let tenant = id.split_once('/').map(|(t, _)| t.to_string());
                one(p("workload.stop", tenant.into_iter().collect(), id.clone()).at(*now_ms))
            }
            Command::PlaceInstances { instances } => instances
                .iter()
                .map(|i| {
                    let mut tenants = vec![i.workload.tenant().to_string()];
                    tenants.extend(self.owner_of(&i.node));
                    let how = match &i.replaces {
                        Some(r) => format!("on node {}, replacing {r}", i.node),
                        None => format!("on node {}", i.node),
                    };
                    p("instance.schedule", tenants, i.id.clone())
                        .detail(format!("{} {how}", i.workload))
                        .at(i.created_ms)
                })
                .collect(),
            Command::SetDesired {
                id,
                desired,
                kind,
                message,
                now_ms,
            } => one(p("instance.desired", self.instance_tenant(id), id.clone())
                .detail(format!("{desired:?} ({kind}): {message}").to_string())
                .at(*now_ms)),
            Command::ReportInstance {
                id,
                node,
                state,
                exit_code,
                message,
                now_ms,
                ..
            } => {
                let mut tenants = self.instance_tenant(id);
                tenants.extend(self.owner_of(node));
                let (kind, what) = match state {
                    InstanceState::Pending => ("instance.pending", String::new()),
                    InstanceState::Running => ("instance.start", String::new()),
                    InstanceState::Completed => (
                        "instance.exit",
                        format!("completed, exit code {}", exit_code.unwrap_or(0)),
                    ),
                    InstanceState::Failed { code, reason } => {
                        ("instance.exit", format!("failed, code {code}: {reason}"))
                    }
                    InstanceState::Lost => ("instance.lost", String::new()),
                    InstanceState::Stopped => ("instance.stopped", String::new()),
                };
                let detail = match (what.is_empty(), message.is_empty()) {
                    (true, _) => message.clone(),
                    (false, true) => what,
                    (false, false) => format!("{what}; {message}"),
                };
                one(p(kind, tenants, id.clone()).detail(detail).at(*now_ms))
            }
            Command::SetDrain { node, drain } => one(p(
                "node.drain",
                self.owner_of(node),
                node.to_string(),
            )
            .detail(if *drain { "drain" } else { "undrain" })),
            Command::Batch(_) => Vec::new(),
            Command::Store(c) => self.audit_store(c),
            Command::SetQuota { tenant, changes } => {
                one(p("quota.set", vec![tenant.clone()], tenant.clone())
                    .detail(format!("{changes:?}")))
            }
            Command::PutTenantModule {
                tenant,
                bytes,
                now_ms,
            } => one(p(
                "module.put",
                vec![tenant.clone()],
                crate::workloads::module_hash(bytes),
            )
            .detail(format!("{} bytes", bytes.len()))
            .at(*now_ms)),
            Command::Prune { now_ms, .. } => one(p("retention.prune", Vec::new(), "").at(*now_ms)),
            Command::Marks(crate::marks::MarkCommand::Strikes {
                node,
                failures,
                now_ms,
            }) => one(p("node.strikes", self.owner_of(node), node.to_string())
                .detail(format!("{} failed storage challenge(s)", failures.len()))
                .at(*now_ms)),
            Command::Marks(crate::marks::MarkCommand::Clear { node }) => {
                one(p("node.mark-clear", self.owner_of(node), node.to_string()))
            }
            Command::SetClusterKey { .. } => one(p("cluster.key", Vec::new(), "cluster key")),
            Command::CreateJoinCredential { record } => {
                one(
                    p("join.create", vec![record.owner.clone()], record.id.clone())
                        .detail(format!(
                            "default {}, one-time {}, expires {}",
                            record.default,
                            record.once,
                            record
                                .expires_ms
                                .map_or_else(|| "never".to_string(), |e| format!("at {e} ms"))
                        ))
                        .at(record.created_ms),
                )
            }
            Command::RevokeJoinCredential { id } => {
                let tenants = self
                    .joining
                    .credentials
                    .get(id)
                    .map(|c| vec![c.owner.clone()])
                    .unwrap_or_default();
                one(p("join.revoke", tenants, id.clone()))
            }
            Command::JoinNode {
                info,
                credential,
                now_ms,
                ..
            } => {
                let mut tenants = self.owner_of(&info.id);
                if tenants.is_empty() {
                    tenants.extend(
                        self.joining
                            .credentials
                            .get(credential)
                            .map(|c| c.owner.clone()),
                    );
                }
                one(p("node.join", tenants, info.id.to_string())
                    .detail(format!("name {}, credential {credential}", info.name))
                    .at(*now_ms))
            }
            Command::BanNode { id, now_ms } => {
                one(p("node.ban", self.owner_of(id), id.to_string()).at(*now_ms))
            }
            Command::PutModuleObject {
                tenant,
                hash,
                version,
                now_ms,
            } => one(p("module.put", vec![tenant.clone()], hash.clone())
                .detail(format!("{} bytes", version.size))
                .at(*now_ms)),
            // Ledger entries are recorded where they are posted.
            Command::Market(MarketCommand::SetOffer { node, offer }) => {
                one(
                    p("market.offer", self.owner_of(node), node.to_string()).detail(match offer {
                        Some(o) => format!("{o:?}"),
                        None => "withdrawn".to_string(),
                    }),
                )
            }
            Command::Market(MarketCommand::SetOfferWithTask { node, offer, task }) => {
                one(
                    p("market.offer", self.owner_of(node), node.to_string()).detail(match offer {
                        Some(o) => format!("{o:?}, per task {task}"),
                        None => "withdrawn".to_string(),
                    }),
                )
            }
            Command::Market(MarketCommand::SetPoolFee { bps }) => {
                one(p("market.fee", Vec::new(), "pool fee").detail(format!("{bps} basis points")))
            }
            Command::Market(MarketCommand::SetOrderKey { tenant, key }) => {
                one(
                    p("market.order-key", vec![tenant.clone()], tenant.clone()).detail(match key {
                        Some(k) => format!("set {}", hex::encode(k)),
                        None => "removed".to_string(),
                    }),
                )
            }
            // Each bill is a ledger entry, recorded where it is posted (an
            // unpaid one as `market.storage-unpaid`).
            Command::Market(MarketCommand::BillStorage { .. }) => Vec::new(),
            Command::Market(MarketCommand::SetTrustedStake { amount }) => {
                one(p("market.stake", Vec::new(), "trusted stake")
                    .detail(format!("{amount} per replica")))
            }
            Command::Market(_) => Vec::new(),
            Command::DeployOrdered { deploy, order } => {
                let mut v = self.audit_prepare(deploy);
                for r in &mut v {
                    r.detail = format!("{}; market order {order:?}", r.detail);
                }
                v
            }
            // Paid through ledger entries, recorded where they are posted.
            Command::ReportUsage(_) => Vec::new(),
            Command::AuditCheckpoint(_) => Vec::new(),
            Command::Catalog(c) => one(self.audit_catalog(c)),
            Command::DeployUsing { deploy, uses } => {
                let mut v = self.audit_prepare(deploy);
                for r in &mut v {
                    r.detail = format!("{}; uses {uses:?}", r.detail);
                }
                v
            }
            Command::DeployTrusted { deploy, trust } => {
                let mut v = self.audit_prepare(deploy);
                for r in &mut v {
                    r.detail = format!("{}; verified at trust {trust}", r.detail);
                }
                v
            }
            Command::Trust(c) => one(self.audit_trust(c)),
            Command::DeployNetworked { deploy, network } => {
                let mut v = self.audit_prepare(deploy);
                if !network.is_default() {
                    for r in &mut v {
                        r.detail = format!("{}; network {network:?}", r.detail);
                    }
                }
                v
            }
            Command::DeployExtended { deploy, extensions } => {
                let mut v = self.audit_prepare(deploy);
                if !extensions.0.is_default() {
                    for r in &mut v {
                        r.detail = format!("{}; extensions {:?}", r.detail, extensions.0);
                    }
                }
                v
            }
        }
    }

    fn audit_trust(&self, c: &crate::trusted::TrustCommand) -> Pending {
        use crate::trusted::TrustCommand;
        let tenants_of = |w: &str| vec![w.split('/').next().unwrap_or_default().to_string()];
        let of_instance = |i: &str| {
            self.instances
                .get(i)
                .map(|i| i.workload.to_string())
                .unwrap_or_default()
        };
        match c {
            TrustCommand::Commit {
                instance,
                node,
                now_ms,
                ..
            } => p(
                "trust.commit",
                tenants_of(&of_instance(instance)),
                instance.clone(),
            )
            .detail(format!("node {node}"))
            .at(*now_ms),
            TrustCommand::Reveal {
                instance,
                node,
                parts,
                ..
            } => p(
                "trust.reveal",
                tenants_of(&of_instance(instance)),
                instance.clone(),
            )
            .detail(format!(
                "node {node}: result {}",
                hex::encode(parts.digest())
            )),
            TrustCommand::Decide { workload, now_ms } => {
                let votes = self
                    .trusted
                    .get(workload)
                    .map(|r| {
                        r.replicas
                            .iter()
                            .map(|(i, x)| {
                                format!(
                                    "{i}@{}={}",
                                    x.node.short(),
                                    x.revealed
                                        .map(|p| hex::encode(&p.digest()[..8]))
                                        .unwrap_or_else(|| "none".into())
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                p("trust.verdict", tenants_of(workload), workload.clone())
                    .detail(format!("votes: {votes}"))
                    .at(*now_ms)
            }
            TrustCommand::Fail {
                workload,
                reason,
                now_ms,
            } => p("trust.failed", tenants_of(workload), workload.clone())
                .detail(reason.clone())
                .at(*now_ms),
        }
    }

    fn audit_catalog(&self, c: &crate::catalog::CatalogCommand) -> Pending {
        use crate::catalog::CatalogCommand;
        match c {
            CatalogCommand::PublishApp {
                tenant,
                name,
                module,
                price,
                now_ms,
            } => p(
                "app.publish",
                vec![tenant.clone()],
                format!("{tenant}/{name}"),
            )
            .detail(format!("{module} at {price} per task"))
            .at(*now_ms),
            CatalogCommand::PublishDataset {
                tenant,
                name,
                bucket,
                prefix,
                price,
                apps,
                now_ms,
            } => p(
                "dataset.publish",
                vec![tenant.clone()],
                format!("{tenant}/{name}"),
            )
            .detail(format!(
                "{bucket}/{prefix} at {price} per task, apps {apps:?}"
            ))
            .at(*now_ms),
            CatalogCommand::Unpublish { tenant, kind, name } => p(
                "listing.unpublish",
                vec![tenant.clone()],
                format!("{tenant}/{name}"),
            )
            .detail(format!("{kind:?}")),
            CatalogCommand::DeclareDeterministic { tenant, name } => p(
                "app.deterministic",
                vec![tenant.clone()],
                format!("{tenant}/{name}"),
            ),
        }
    }

    fn audit_store(&self, c: &StoreCommand) -> Vec<Pending> {
        let x = match c {
            StoreCommand::SetSecret { .. } => p("storage.secret", Vec::new(), "storage secret"),
            StoreCommand::CreateBucket { bucket }
            | StoreCommand::CreateBucketWithConfigs { bucket, .. } => p(
                "bucket.create",
                vec![bucket.tenant.clone()],
                bucket.name.clone(),
            )
            .at(bucket.created_ms),
            StoreCommand::DeleteBucket { tenant, name }
            | StoreCommand::DeleteBucketAbortingUploads { tenant, name } => {
                p("bucket.delete", vec![tenant.clone()], name.clone())
            }
            StoreCommand::CreateAccessKey {
                access_key,
                tenant,
                created_ms,
                ..
            } => p("accesskey.create", vec![tenant.clone()], access_key.clone()).at(*created_ms),
            StoreCommand::DeleteAccessKey { access_key, tenant } => {
                let owner = tenant.clone().or_else(|| {
                    self.store
                        .access_keys
                        .get(access_key)
                        .map(|k| k.tenant.clone())
                });
                p(
                    "accesskey.delete",
                    owner.into_iter().collect(),
                    access_key.clone(),
                )
            }
            // The object data path is not recorded (see the module doc).
            _ => return Vec::new(),
        };
        vec![x]
    }

    /// Completes the records of a command that applied with `result` (a
    /// retention run that removed nothing is not worth a record).
    pub(crate) fn audit_finish(
        cmd: &Command,
        result: &CommandResult,
        mut pending: Vec<Pending>,
    ) -> Vec<Pending> {
        if let Command::Prune { .. } = cmd {
            match result.version {
                Some(n) if n > 0 => {
                    for x in &mut pending {
                        x.detail = format!("{n} thing(s) removed");
                    }
                }
                _ => pending.clear(),
            }
        }
        pending
    }
}
