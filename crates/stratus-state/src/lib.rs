//! The replicated state of the control plane.
//!
//! **Owns** what the cluster agrees on and the rules for changing it: every
//! [`Command`] and [`State::apply`] (pure, deterministic, no IO, no clock),
//! over nodes with their owners and bans, tenants, tokens, variables,
//! per-tenant [`quotas`] (checked before every command), [`retention`],
//! workloads and instances (their records and event history), the object
//! store's metadata ([`objects`]: buckets, versions, chunks, packs, uploads,
//! access keys, and the versions' attributes — stored headers, tags, part
//! sizes — in a table of their own, [`objects::VersionAttrs`], so the
//! bincode layouts of versions and old commands never change), storage
//! [`marks`], sealed secrets, and the [`kv::Kv`] trait it applies through.
//!
//! **Does not own** the disk (`stratus-raft`'s `RedbKv` implements
//! [`kv::Kv`]); deciding what to propose (the leader's reconciler and
//! failure detector in `stratus-control`; repair and garbage collection in
//! `stratus-store`); placement (`stratus-sched`); the time (each command
//! carries the proposer's clock).
//!
//! [`State`] holds everything the control plane agrees on: nodes, tenants,
//! API tokens and tenant variables (later: workloads, objects, the market).
//! It changes only through [`Command`]s applied in log order by
//! [`State::apply`], which is pure and deterministic: every time value is
//! stamped into the command by the leader that proposed it, never read from a
//! clock here. This keeps replicas identical and lets the logic be
//! property-tested without a cluster.
//!
//! Every command is first checked against the tenant's [`quotas`] (so all
//! replicas refuse the same writes); [`retention`] forgets finished
//! workloads and expired multipart uploads when the leader proposes
//! [`Command::Prune`] with its time; [`lifecycle`] decides, as a pure
//! function of versions and time, what buckets' lifecycle rules expire.
//!
//! [`TypeConfig`] binds these types to openraft.

pub mod accounts;
pub mod audit;
mod audit_derive;
pub mod audit_verify;
pub mod bucket_configs;
pub mod catalog;
pub mod deals;
pub mod kv;
pub mod legacy;
pub mod lifecycle;
pub mod lifecycle_filters;
pub mod marks;
pub mod modules;
pub mod networks;
pub mod nodes;
pub mod object_lock;
pub mod objects;
pub mod quotas;
pub mod reputation;
mod result;
pub mod retention;
pub mod rows;
pub mod sealing;
mod seqlog;
mod storage;
pub mod storage_billing;
#[cfg(any(test, feature = "testing", feature = "bench"))]
pub mod synth;
mod tables;
mod tokens;
pub mod trusted;
pub mod workloads;
mod workloads_apply;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stratus_types::{
    validate_tenant_name, NodeId, NodeInfo, NodeRecord, NodeStatus, Tenant, TenantName,
    TokenRecord, TokenRecordV1, ADMIN_TENANT,
};
use utoipa::ToSchema;

pub use kv::{Kv, KvError, MemKv, Table};
pub use result::{ApplyError, CommandResult};
use rows::{Cell, Tracked};
use workloads::{module_hash, MAX_MODULE_BYTES};
pub use workloads::{Desired, Event, Instance, InstanceState, Workload};

openraft::declare_raft_types!(
    /// openraft type configuration of the Stratus control plane.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Longest variable key accepted.
pub const MAX_VAR_KEY: usize = 256;
/// Largest variable value accepted, in bytes.
pub const MAX_VAR_VALUE: usize = 64 * 1024;

/// A change to the replicated state. Versioned through the log entry format
/// ([`stratus_types::FORMAT_VERSION`]); new variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// A node joins or re-registers (its description may have changed). It becomes ready.
    RegisterNode {
        /// What the node reports.
        info: NodeInfo,
        /// Leader time.
        now_ms: u64,
    },
    /// The leader's failure detector changed a node's status.
    SetNodeStatus {
        /// Node.
        id: NodeId,
        /// New status.
        status: NodeStatus,
        /// Leader time.
        now_ms: u64,
    },
    /// Forget a node entirely (decommissioned).
    RemoveNode {
        /// Node.
        id: NodeId,
    },
    /// Create a tenant.
    CreateTenant {
        /// Name.
        name: TenantName,
        /// Leader time.
        now_ms: u64,
    },
    /// Store an API token of the first record layout (only its hash): a
    /// full, non-expiring token (the operator's for the admin tenant). Kept
    /// to replay old logs; new tokens are stored with [`Command::IssueToken`].
    CreateToken {
        /// The record.
        record: TokenRecordV1,
    },
    /// Revoke an API token.
    RevokeToken {
        /// Token id.
        id: String,
    },
    /// Set a tenant variable (small replicated key/value configuration).
    PutVar {
        /// Tenant owning the variable.
        tenant: TenantName,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Leader time.
        now_ms: u64,
    },
    /// Run a command inside a running container instance (`stratus exec`);
    /// the result's version is the exec's number.
    Exec {
        /// Instance id.
        instance: String,
        /// Command and arguments.
        args: Vec<String>,
        /// Leader time.
        now_ms: u64,
    },
    /// The agent of an instance reports an exec's progress.
    ReportExec {
        /// Instance id.
        instance: String,
        /// Reporting node (must hold the instance).
        node: NodeId,
        /// Exec number.
        n: u32,
        /// New state.
        state: workloads::ExecState,
    },
    /// Set the SHA-256 (hex) of the single join secret of the first
    /// layout. Kept to replay old logs; joining now uses join credentials
    /// ([`Command::CreateJoinCredential`], [`nodes`]).
    SetJoinToken {
        /// Hex SHA-256 of the join secret.
        sha256: String,
    },
    /// Store a WASM module, addressed by the BLAKE3 hash of its bytes.
    PutModule {
        /// The module.
        bytes: Vec<u8>,
    },
    /// Deploy (create or update) a workload of a tenant.
    DeployWorkload {
        /// Owner.
        tenant: TenantName,
        /// The validated spec.
        spec: Box<stratus_spec::WorkloadSpec>,
        /// What it runs, in its string form (a [`stratus_types::Payload`]).
        /// Kept a string in the log: older entries may hold what the API
        /// passed through unparsed, which apply refuses (404) but must still
        /// decode.
        module: String,
        /// Leader time.
        now_ms: u64,
    },
    /// Stop a workload: every instance is asked to stop.
    StopWorkload {
        /// Workload id (`tenant/name`), as asked: a string in the log for
        /// the same reason as `DeployWorkload`'s `module`.
        id: String,
        /// Leader time.
        now_ms: u64,
    },
    /// The reconciler placed new instances.
    PlaceInstances {
        /// The instances (state `pending`, with a `scheduled` event).
        instances: Vec<Instance>,
    },
    /// Change what the control plane wants of an instance (stop for a drain,
    /// a replacement, an update).
    SetDesired {
        /// Instance id.
        id: String,
        /// What is wanted now.
        desired: Desired,
        /// Event kind recorded.
        kind: String,
        /// Event message.
        message: String,
        /// Leader time.
        now_ms: u64,
    },
    /// What happened to an instance, reported by its node's agent (or by the
    /// leader when the node is lost).
    ReportInstance {
        /// Instance id.
        id: String,
        /// The node reporting; must be the instance's node.
        node: NodeId,
        /// New state.
        state: InstanceState,
        /// Restarts so far.
        restarts: u32,
        /// Last exit code.
        exit_code: Option<i32>,
        /// Event kind recorded.
        kind: String,
        /// Event message.
        message: String,
        /// Time of the event.
        now_ms: u64,
    },
    /// Start or end draining a node: nothing new is placed there and its
    /// instances are moved elsewhere.
    SetDrain {
        /// Node.
        node: NodeId,
        /// Drain or not.
        drain: bool,
    },
    /// Several commands proposed together (group commit): applied in order
    /// at the same log index, each with its own result. Never nested.
    Batch(Vec<Command>),
    /// Delete a tenant variable.
    DeleteVar {
        /// Tenant owning the variable.
        tenant: TenantName,
        /// Key.
        key: String,
    },
    /// An object-store change.
    Store(objects::StoreCommand),
    /// Store an API token with its scope and expiry (only its hash).
    IssueToken {
        /// The record.
        record: TokenRecord,
    },
    /// Set (or, with `None`, return to the default) quotas of a tenant.
    SetQuota {
        /// Tenant.
        tenant: TenantName,
        /// New limits.
        changes: quotas::QuotaChanges,
    },
    /// Store a WASM module uploaded by a tenant (counted in its quota).
    PutTenantModule {
        /// Uploader.
        tenant: TenantName,
        /// The module.
        bytes: Vec<u8>,
        /// Leader time.
        now_ms: u64,
    },
    /// Forget finished workloads and unused modules and abort expired
    /// multipart uploads (see [`retention`]); the result's version is how
    /// many things went.
    Prune {
        /// Leader time.
        now_ms: u64,
        /// Retention of finished workloads and unused modules.
        tasks_ms: u64,
        /// Longest a multipart upload may stay open.
        uploads_ms: u64,
    },
    /// Storage challenges failed, or an operator clears a mark (`marks`).
    Marks(marks::MarkCommand),
    /// Set the seed of the cluster key (once, at bootstrap; see [`nodes`]).
    SetClusterKey {
        /// The seed.
        seed: sealing::Sealed,
    },
    /// Store a join credential (only its secret's hash); a default one
    /// replaces the previous default (rotation).
    CreateJoinCredential {
        /// The record.
        record: nodes::JoinCredentialRecord,
    },
    /// Revoke a join credential: it joins no new node.
    RevokeJoinCredential {
        /// Credential id.
        id: String,
    },
    /// A node joins with a join credential (checked here, in log order, so a
    /// one-time credential is used once), or re-registers by its key.
    JoinNode {
        /// What the node reports; its id is the connection's key.
        info: NodeInfo,
        /// Credential id.
        credential: String,
        /// Hex SHA-256 of the presented secret.
        secret_sha256: String,
        /// Leader time.
        now_ms: u64,
    },
    /// Ban a node for good: lost, its work and pieces move elsewhere, and
    /// its key never registers again.
    BanNode {
        /// Node.
        id: NodeId,
        /// Leader time.
        now_ms: u64,
    },
    /// Store a WASM module uploaded by a tenant as an object of its images
    /// bucket and reference it (see [`modules`]); a module the tenant
    /// already stores only has its claim renewed.
    PutModuleObject {
        /// Uploader.
        tenant: TenantName,
        /// Content address, `blake3:<hex>` of the bytes.
        hash: String,
        /// The object version (its chunks were written by the replica that
        /// streamed the upload; `version_id` is assigned).
        version: objects::ObjectVersion,
        /// Leader time.
        now_ms: u64,
    },
    /// A change to the market's money ([`accounts`]).
    Market(accounts::MarketCommand),
    /// Deploy a workload with a market order ([`deals`]): `deploy` is a
    /// [`Command::DeployWorkload`], applied as such, and the order is kept
    /// for its placements. (A plain `DeployWorkload` drops any order.)
    DeployOrdered {
        /// The deploy.
        deploy: Box<Command>,
        /// The requester's order.
        order: stratus_market::Order,
    },
    /// A usage report signed by the node of the instance it meters
    /// ([`deals`]): pays the deal what the usage adds, or closes it.
    ReportUsage(stratus_market::UsageReport),
    /// A replica signs the audit log's head ([`audit`]).
    AuditCheckpoint(audit::CheckpointCommand),
    /// A change to the published apps and datasets ([`catalog`]).
    Catalog(catalog::CatalogCommand),
    /// Deploy a workload that uses a published app or dataset
    /// ([`catalog`]): `deploy` is a [`Command::DeployWorkload`] or a
    /// [`Command::DeployOrdered`], applied as such with the app's module
    /// allowed to the tenant, and what it uses is kept for its deals.
    DeployUsing {
        /// The deploy.
        deploy: Box<Command>,
        /// The app and dataset it names.
        uses: catalog::Uses,
    },
    /// Deploy a WASM task whose result is verified by replicas on nodes of
    /// distinct owners ([`trusted`]): `deploy` is a
    /// [`Command::DeployOrdered`] (or a [`Command::DeployUsing`] of one),
    /// applied as such, and a run at `trust` is opened for its generation.
    DeployTrusted {
        /// The deploy.
        deploy: Box<Command>,
        /// The trust level (2 or more).
        trust: u32,
    },
    /// A step of a trusted run ([`trusted`]).
    Trust(trusted::TrustCommand),
    /// Deploy a workload with its network ([`networks`]): `deploy` is any
    /// of the deploys above, applied as such, and the network is kept (or
    /// dropped, when it is the default).
    DeployNetworked {
        /// The deploy.
        deploy: Box<Command>,
        /// Its network.
        network: stratus_spec::Networking,
    },
    /// Deploy a workload with what its spec says beyond the stored layouts
    /// ([`networks`]: published UDP ports, ports of an HTTP component):
    /// `deploy` is any of the deploys above, applied as such.
    DeployExtended {
        /// The deploy.
        deploy: Box<Command>,
        /// Its extensions, self-describing.
        extensions: stratus_spec::SelfDescribing<stratus_spec::Extensions>,
    },
}

/// A tenant variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Var {
    /// Value.
    pub value: String,
    /// Log index of the write that produced this value (monotonic per cluster).
    pub version: u64,
    /// When it was written (ms since the Unix epoch, leader clock).
    pub updated_ms: u64,
}

/// The replicated state.
///
/// The small state (fields of [`rows`] types) is held in memory and written
/// through to the storage; the object store's versions, chunks and packs are
/// only in the storage ([`tables`]). A `State` is made from a [`Kv`] with
/// [`State::open`] (`State::default()` is an empty one in memory); after
/// applying, [`State::flush`] writes what changed and
/// [`State::commit`] makes it durable.
pub struct State {
    /// Registered nodes.
    pub nodes: Tracked<NodeId, NodeRecord>,
    /// Tenants by name.
    pub tenants: Tracked<TenantName, Tenant>,
    /// Tokens by id.
    pub tokens: Tracked<String, TokenRecord>,
    /// Variables by tenant, then key.
    pub vars: Tracked<TenantName, BTreeMap<String, Var>>,
    /// Hex SHA-256 of the join secret of the first layout (unused since
    /// join credentials, [`State::joining`]).
    pub join_token_sha256: Cell<Option<String>>,
    /// WASM modules by content address.
    pub modules: Tracked<String, Vec<u8>>,
    /// Workloads by id (`tenant/name`).
    pub workloads: Tracked<String, Workload>,
    /// Instances by id.
    pub instances: Tracked<String, Instance>,
    /// Nodes being drained.
    pub draining: Cell<BTreeSet<NodeId>>,
    /// Object-store metadata (and the state's storage).
    pub store: objects::ObjectStore,
    /// Per-tenant quotas (see [`quotas`]).
    pub quotas: Cell<quotas::Quotas>,
    /// Storage nodes' failed challenges and marks (`marks`).
    pub marks: Cell<BTreeMap<NodeId, marks::NodeMark>>,
    /// Cluster key, join credentials and bans.
    pub joining: Cell<nodes::Joining>,
    /// Modules stored as objects, by tenant then content address
    /// ([`modules`]); `modules` keeps those of the first layouts.
    pub module_objects: Tracked<TenantName, BTreeMap<String, modules::ModuleObject>>,
    /// Balance of every ledger account that holds money ([`accounts`]).
    pub balances: Tracked<stratus_market::Account, stratus_market::Amount>,
    /// The number of the last posted ledger entry.
    pub ledger_seq: Cell<u64>,
    /// Lenders' offers, by node ([`accounts`]).
    pub offers: Tracked<NodeId, stratus_market::Offer>,
    /// Lenders' per-task prices, by node (part of their offers).
    pub task_prices: Tracked<NodeId, stratus_market::Amount>,
    /// The pool operator's fee on lenders' amounts, basis points.
    pub pool_fee_bps: Cell<u32>,
    /// Market orders, by workload id ([`deals`]).
    pub orders: Tracked<String, stratus_market::Order>,
    /// Open deals, by instance id ([`deals`]).
    pub deals: Tracked<String, deals::DealRecord>,
    /// Tenants' order keys (ed25519 public keys): a tenant with one has
    /// its orders signed by it ([`deals`]).
    pub order_keys: Tracked<TenantName, [u8; 32]>,
    /// The head of the audit log ([`audit`]).
    pub audit: Cell<audit::AuditHead>,
    /// Published apps, by `OWNER/NAME` ([`catalog`]).
    pub apps: Tracked<String, catalog::App>,
    /// Published datasets, by `OWNER/NAME` ([`catalog`]).
    pub datasets: Tracked<String, catalog::Dataset>,
    /// What workloads use of them, by workload id ([`catalog`]).
    pub uses: Tracked<String, catalog::Used>,
    /// Nodes' reputations ([`reputation`]): absent is a new node's.
    pub reputations: Tracked<NodeId, stratus_verify::Reputation>,
    /// When stored bytes were last billed (leader clock; `None`: never,
    /// [`storage_billing`]).
    pub storage_billed_ms: Cell<Option<u64>>,
    /// Trusted runs, by workload id ([`trusted`]).
    pub trusted: Tracked<String, trusted::TrustedRun>,
    /// The stake lenders hold per replica of a verified run ([`trusted`]).
    pub trusted_stake: Cell<stratus_market::Amount>,
    /// Image apps their owners declared deterministic, with the publish
    /// time the declaration holds for ([`catalog`]).
    pub deterministic_apps: Tracked<String, u64>,
    /// Workloads' networks, by workload id ([`networks`]): absent is the
    /// default.
    pub networks: Tracked<String, stratus_spec::Networking>,
    /// Workloads' extensions, by workload id ([`networks`]): absent is the
    /// default.
    pub extensions: Tracked<String, stratus_spec::SelfDescribing<stratus_spec::Extensions>>,
    /// The log index of the command being applied (not stored: for the
    /// audit records made deep inside an apply, such as ledger entries).
    applying: u64,
}

impl Default for State {
    fn default() -> Self {
        Self::open(Box::new(MemKv::default()))
            .unwrap_or_else(|_| unreachable!("an empty MemKv has no row to misread"))
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("nodes", &self.nodes.len())
            .field("tenants", &self.tenants.len())
            .field("workloads", &self.workloads.len())
            .field("instances", &self.instances.len())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Applies `cmd`, written at log index `index`. Pure and deterministic.
    /// A command that applies is recorded in the audit log ([`audit`]).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> CommandResult {
        if matches!(cmd, Command::Batch(_)) {
            return self.apply_unaudited(index, cmd);
        }
        let pending = self.audit_prepare(cmd);
        self.applying = index;
        let mut result = self.apply_unaudited(index, cmd);
        if result.error.is_none() {
            for p in Self::audit_finish(cmd, &result, pending) {
                if let Err(e) = self.audit_append(index, p) {
                    result.error = Some(e);
                    break;
                }
            }
        }
        result
    }

    fn apply_unaudited(&mut self, index: u64, cmd: &Command) -> CommandResult {
        if let Command::Batch(cmds) = cmd {
            let batch = cmds
                .iter()
                .map(|c| match c {
                    Command::Batch(_) => CommandResult {
                        error: Some(ApplyError::invalid("batches do not nest")),
                        ..CommandResult::default()
                    },
                    c => self.apply(index, c),
                })
                .collect();
            return CommandResult {
                batch,
                ..CommandResult::default()
            };
        }
        if let Err(e) = self.check_quota(cmd) {
            return CommandResult {
                error: Some(e),
                ..CommandResult::default()
            };
        }
        if let Command::Store(c) = cmd {
            return match self.apply_store(c) {
                Ok(objects::StoreResult::None) => CommandResult::default(),
                Ok(objects::StoreResult::Id(id)) => CommandResult {
                    id: Some(id),
                    ..CommandResult::default()
                },
                Ok(objects::StoreResult::Number(n)) => CommandResult {
                    version: Some(n),
                    ..CommandResult::default()
                },
                Err(e) => CommandResult {
                    error: Some(e),
                    ..CommandResult::default()
                },
            };
        }
        match self.apply_inner(index, cmd) {
            Ok(version) => CommandResult {
                version,
                ..CommandResult::default()
            },
            Err(e) => CommandResult {
                error: Some(e),
                ..CommandResult::default()
            },
        }
    }

    fn apply_inner(&mut self, index: u64, cmd: &Command) -> Result<Option<u64>, ApplyError> {
        match cmd {
            Command::CreateTenant { name, now_ms } => {
                validate_tenant_name(name).map_err(ApplyError::invalid)?;
                if self.tenants.contains_key(name) {
                    return Err(ApplyError::conflict(format!(
                        "tenant {name:?} already exists"
                    )));
                }
                self.tenants.insert(
                    name.clone(),
                    Tenant {
                        name: name.clone(),
                        created_ms: *now_ms,
                    },
                );
                Ok(None)
            }
            Command::CreateToken { record } => self.insert_token(record.clone().into()),
            Command::IssueToken { record } => self.insert_token(record.clone()),
            Command::RevokeToken { id } => {
                self.tokens
                    .remove(id)
                    .ok_or_else(|| ApplyError::not_found(format!("token {id:?} does not exist")))?;
                Ok(None)
            }
            Command::PutVar {
                tenant,
                key,
                value,
                now_ms,
            } => {
                validate_var_key(key)?;
                if value.len() > MAX_VAR_VALUE {
                    return Err(ApplyError::invalid(format!(
                        "variable value is {} bytes; the limit is {MAX_VAR_VALUE}",
                        value.len()
                    )));
                }
                self.require_tenant(tenant)?;
                self.vars.entry(tenant.clone()).or_default().insert(
                    key.clone(),
                    Var {
                        value: value.clone(),
                        version: index,
                        updated_ms: *now_ms,
                    },
                );
                Ok(Some(index))
            }
            Command::Batch(_) => Err(ApplyError::internal("batch applied as a single command")),
            Command::PutModule { bytes } => {
                if bytes.len() > MAX_MODULE_BYTES {
                    return Err(ApplyError::invalid(format!(
                        "module is {} bytes; the limit is {MAX_MODULE_BYTES}",
                        bytes.len()
                    )));
                }
                self.modules
                    .entry(module_hash(bytes))
                    .or_insert_with(|| bytes.clone());
                Ok(None)
            }
            Command::DeployWorkload { .. }
            | Command::StopWorkload { .. }
            | Command::PlaceInstances { .. } => self.apply_workloads(index, cmd),
            Command::SetDesired { .. }
            | Command::ReportInstance { .. }
            | Command::Exec { .. }
            | Command::ReportExec { .. } => self.apply_instances(cmd),
            Command::SetJoinToken { sha256 } => {
                *self.join_token_sha256 = Some(sha256.clone());
                Ok(None)
            }
            Command::DeleteVar { tenant, key } => {
                let removed = self
                    .vars
                    .get_mut(tenant)
                    .and_then(|m| m.remove(key))
                    .is_some();
                if !removed {
                    return Err(ApplyError::not_found(format!(
                        "variable {key:?} does not exist"
                    )));
                }
                Ok(None)
            }
            Command::Store(_) => Err(ApplyError::internal(
                "store command applied as a plain command",
            )),
            Command::SetQuota { tenant, changes } => self.set_quota(tenant, changes),
            Command::PutTenantModule {
                tenant,
                bytes,
                now_ms,
            } => {
                self.put_tenant_module(tenant, bytes, *now_ms)?;
                Ok(None)
            }
            Command::Prune {
                now_ms,
                tasks_ms,
                uploads_ms,
            } => Ok(Some(self.prune(*now_ms, *tasks_ms, *uploads_ms))),
            Command::Marks(c) => self.apply_marks(c),
            Command::SetClusterKey { .. }
            | Command::CreateJoinCredential { .. }
            | Command::RevokeJoinCredential { .. }
            | Command::JoinNode { .. }
            | Command::BanNode { .. }
            | Command::RegisterNode { .. }
            | Command::SetNodeStatus { .. }
            | Command::RemoveNode { .. }
            | Command::SetDrain { .. } => self.apply_nodes(cmd),
            Command::PutModuleObject {
                tenant,
                hash,
                version,
                now_ms,
            } => self.put_module_object(tenant, hash, version, *now_ms),
            Command::Market(c) => self.apply_market(c),
            Command::DeployOrdered { deploy, order } => {
                self.deploy_ordered(index, deploy, order, None)
            }
            Command::ReportUsage(r) => self.take_usage(r),
            Command::AuditCheckpoint(c) => self.apply_checkpoint(c).map(|()| None),
            Command::Catalog(c) => self.apply_catalog(c),
            Command::DeployUsing { deploy, uses } => self.deploy_using(index, deploy, uses),
            Command::DeployTrusted { deploy, trust } => self.deploy_trusted(index, deploy, *trust),
            Command::Trust(c) => self.apply_trust(c),
            Command::DeployNetworked { deploy, network } => {
                self.deploy_networked(index, deploy, network)
            }
            Command::DeployExtended { deploy, extensions } => {
                self.deploy_extended(index, deploy, &extensions.0)
            }
        }
    }

    /// Finds the token record matching a presented `id` and secret hash.
    pub fn token(&self, id: &str) -> Option<&TokenRecord> {
        self.tokens.get(id)
    }

    /// Refuses a command naming a tenant that does not exist.
    pub(crate) fn require_tenant(&self, tenant: &str) -> Result<(), ApplyError> {
        if self.tenants.contains_key(tenant) {
            Ok(())
        } else {
            Err(ApplyError::not_found(format!(
                "tenant {tenant:?} does not exist"
            )))
        }
    }

    /// Whether the admin tenant exists (the cluster has been bootstrapped).
    pub fn is_bootstrapped(&self) -> bool {
        self.tenants.contains_key(ADMIN_TENANT)
    }
}

/// Checks a variable key: 1–256 characters of `[A-Za-z0-9._/-]`.
pub fn validate_var_key(key: &str) -> Result<(), ApplyError> {
    let ok = (1..=MAX_VAR_KEY).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApplyError::invalid(format!(
            "invalid variable key {key:?}: use 1-{MAX_VAR_KEY} characters of A-Z a-z 0-9 . _ / -"
        )))
    }
}

#[cfg(test)]
mod tests;
