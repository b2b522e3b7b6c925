//! Per-tenant quotas: how much of the replicated state and of the lenders'
//! disks one tenant may take.
//!
//! Everything a tenant can grow is capped here, because every replica holds
//! the whole state in memory and every byte of an object costs lenders disk:
//! logical stored bytes, object versions (and parts of open multipart
//! uploads), buckets, open multipart uploads, workloads, declared instances,
//! WASM modules (count and bytes), variables, API tokens and S3 access keys.
//!
//! Quotas are checked by [`State::check_quota`] at the start of
//! [`State::apply`], so every replica refuses the same command the same way
//! and two writes racing through two replicas are serialized by the log: the
//! second sees the first's use. A refusal is [`ErrorCode::QuotaExceeded`]
//! (HTTP 403, S3 `QuotaExceeded`) whose message names the quota, its limit and
//! the current use. Commands that only shrink use (deletes, completing an
//! upload) are never refused.
//!
//! Stored bytes and object counts are counters kept with the object store
//! ([`StoreUsage`]) and updated on every path that adds or removes a version
//! or a part: put (replacing the `null` version), delete, versioning,
//! multipart (parts count until the upload completes, aborts or expires) and
//! copy (a new version of its own size). The other uses are counted from the
//! state when a command needs them.
//!
//! Limits the operator did not set take [`Resource::default_limit`]; the
//! operator's own tenant ([`ADMIN_TENANT`]) is unlimited unless set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_types::{TenantName, ADMIN_TENANT};
use utoipa::ToSchema;

use crate::objects::{ObjectStore, ObjectVersion, Part, StoreCommand, Versioning, NULL_VERSION};
use crate::retention::finished;
use crate::workloads::{module_hash, Workload, MAX_MODULE_BYTES};
use crate::{ApplyError, Command, State};

const GIB: u64 = 1 << 30;

/// A quantity a tenant's quota caps.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Logical bytes of every object version and of every part of open
    /// multipart uploads (what clients wrote, before dedupe and coding).
    StoredBytes,
    /// Object versions (delete markers included) and parts of open uploads.
    Objects,
    /// Buckets (the tenant's images bucket, which the system creates for
    /// its images and modules, is not counted).
    Buckets,
    /// Open multipart uploads.
    Uploads,
    /// Workloads kept in the state (finished ones until they are pruned).
    Workloads,
    /// Instances the tenant's running workloads declare (`count` of tasks and
    /// services; one per node for daemons).
    Instances,
    /// WASM modules uploaded and not yet pruned.
    Modules,
    /// Bytes of those modules.
    ModuleBytes,
    /// Variables.
    Vars,
    /// API tokens.
    Tokens,
    /// S3 access keys.
    AccessKeys,
}

impl Resource {
    /// Every resource, in display order.
    pub const ALL: [Resource; 11] = [
        Resource::StoredBytes,
        Resource::Objects,
        Resource::Buckets,
        Resource::Uploads,
        Resource::Workloads,
        Resource::Instances,
        Resource::Modules,
        Resource::ModuleBytes,
        Resource::Vars,
        Resource::Tokens,
        Resource::AccessKeys,
    ];

    /// Name used by the CLI (`--stored-bytes`) and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Resource::StoredBytes => "stored-bytes",
            Resource::Objects => "objects",
            Resource::Buckets => "buckets",
            Resource::Uploads => "uploads",
            Resource::Workloads => "workloads",
            Resource::Instances => "instances",
            Resource::Modules => "modules",
            Resource::ModuleBytes => "module-bytes",
            Resource::Vars => "vars",
            Resource::Tokens => "tokens",
            Resource::AccessKeys => "access-keys",
        }
    }

    /// Whether the quantity is a number of bytes (for display).
    pub fn is_bytes(self) -> bool {
        matches!(self, Resource::StoredBytes | Resource::ModuleBytes)
    }

    /// The limit of a tenant the operator did not give one (see
    /// ARCHITECTURE.md, "Limits"). Counts of things held in every replica's
    /// memory are what the defaults protect; stored bytes protect lenders.
    pub fn default_limit(self) -> u64 {
        match self {
            Resource::StoredBytes => 100 * GIB,
            Resource::Objects => 100_000,
            Resource::Buckets => 100,
            Resource::Uploads => 100,
            Resource::Workloads => 1_000,
            Resource::Instances => 1_000,
            Resource::Modules => 100,
            Resource::ModuleBytes => 4 * GIB,
            Resource::Vars => 1_000,
            Resource::Tokens => 100,
            Resource::AccessKeys => 100,
        }
    }
}

/// Stored bytes and object versions of one tenant (kept exact by the store
/// commands).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreUsage {
    /// Logical bytes of versions and open upload parts.
    pub bytes: u64,
    /// Versions (markers included) and open upload parts.
    pub objects: u64,
}

/// Whether bucket `name` is the system's (a tenant's images bucket, which
/// holds its images and modules): one per tenant at most, so it does not
/// count against the buckets quota (its contents count as stored bytes).
fn is_reserved(name: &str) -> bool {
    name.starts_with(crate::objects::IMAGES_BUCKET_PREFIX)
}

/// Quota state, part of [`State`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quotas {
    /// Limits the operator set, per tenant (absent: the default).
    pub limits: BTreeMap<TenantName, BTreeMap<Resource, u64>>,
    /// Modules each tenant uploaded (content address → when), so they count
    /// against its quota and can be pruned once unused.
    pub modules: BTreeMap<TenantName, BTreeMap<String, u64>>,
}

/// One line of a tenant's quota report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaLine {
    /// What is capped.
    pub resource: Resource,
    /// The limit (`u64::MAX`: unlimited).
    pub limit: u64,
    /// Current use.
    pub used: u64,
    /// Whether the limit is the default (the operator set none).
    pub default: bool,
}

/// Outside input of a command `SetQuota`: a limit per resource; `None`
/// returns the resource to its default.
pub type QuotaChanges = BTreeMap<Resource, Option<u64>>;

/// Bytes a version counts for (none for a delete marker).
fn version_bytes(v: &ObjectVersion) -> u64 {
    if v.is_delete_marker() {
        0
    } else {
        v.size
    }
}

/// Instances `w` asks for: its `count`, one per node for a daemon, none
/// once stopped or finished.
fn declared(w: &Workload, nodes: usize, finished: bool) -> u64 {
    if w.stopped || finished {
        return 0;
    }
    match w.spec.kind {
        stratus_spec::WorkloadKind::Daemon => nodes as u64,
        _ => u64::from(w.spec.count),
    }
}

fn exceeded(tenant: &str, r: Resource, limit: u64, used: u64, more: u64) -> ApplyError {
    let show = |n: u64| {
        if r.is_bytes() {
            format!("{n} bytes")
        } else {
            n.to_string()
        }
    };
    ApplyError::quota_exceeded(format!(
            "quota exceeded: tenant {tenant:?} may have at most {} of {}; it has {} and this needs {} more (delete some, or ask the operator: stratus tenants quota {tenant} --{} N)",
            show(limit),
            r.name(),
            show(used),
            show(more),
            r.name(),
        ),
    )
}

impl State {
    /// The limit of `r` for `tenant`.
    pub fn quota_limit(&self, tenant: &str, r: Resource) -> u64 {
        match self.quotas.limits.get(tenant).and_then(|l| l.get(&r)) {
            Some(n) => *n,
            None if tenant == ADMIN_TENANT => u64::MAX,
            None => r.default_limit(),
        }
    }

    /// What `tenant` uses of `r` now.
    pub fn quota_used(&self, tenant: &str, r: Resource) -> u64 {
        let count = |n: usize| n as u64;
        match r {
            Resource::StoredBytes => self.store.usage_of(tenant).bytes,
            Resource::Objects => self.store.usage_of(tenant).objects,
            Resource::Buckets => count(
                self.store
                    .buckets
                    .values()
                    .filter(|b| b.tenant == tenant && !is_reserved(&b.name))
                    .count(),
            ),
            Resource::Uploads => count(
                self.store
                    .uploads
                    .values()
                    .filter(|u| u.tenant == tenant)
                    .count(),
            ),
            Resource::Workloads => count(self.tenant_workloads(tenant).count()),
            Resource::Instances => {
                let by = self.instances_by_workload();
                self.tenant_workloads(tenant)
                    .map(|w| {
                        let (live, any) = by
                            .get(w.id.as_str())
                            .map_or((false, false), |s| (s.live, s.instances > 0));
                        declared(w, self.nodes.len(), finished(w, live, any))
                    })
                    .sum()
            }
            Resource::Modules => count(self.quotas.modules.get(tenant).map_or(0, |m| m.len())),
            Resource::ModuleBytes => self.quotas.modules.get(tenant).map_or(0, |m| {
                m.keys().filter_map(|h| self.module_size(tenant, h)).sum()
            }),
            Resource::Vars => count(self.vars.get(tenant).map_or(0, |v| v.len())),
            Resource::Tokens => count(self.tokens.values().filter(|t| t.tenant == tenant).count()),
            Resource::AccessKeys => count(
                self.store
                    .access_keys
                    .values()
                    .filter(|k| k.tenant == tenant)
                    .count(),
            ),
        }
    }

    /// Every quota of `tenant` with its use.
    pub fn quota_report(&self, tenant: &str) -> Vec<QuotaLine> {
        Resource::ALL
            .iter()
            .map(|&r| QuotaLine {
                resource: r,
                limit: self.quota_limit(tenant, r),
                used: self.quota_used(tenant, r),
                default: !self
                    .quotas
                    .limits
                    .get(tenant)
                    .is_some_and(|l| l.contains_key(&r)),
            })
            .collect()
    }

    fn tenant_workloads<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Workload> {
        self.workloads.values().filter(move |w| w.tenant == tenant)
    }

    /// Instances a workload asks for now: none once stopped or finished.
    fn declared_instances(&self, w: &Workload) -> u64 {
        declared(w, self.nodes.len(), self.workload_finished(w))
    }

    /// Whether `tenant` has no stored bytes left for a new version of
    /// `bucket/key` (one that replaces nothing): lets a gateway refuse before
    /// it writes pieces that the commit would refuse. The commit decides.
    pub fn stored_bytes_full(&self, tenant: &str, bucket: &str, key: &str) -> Option<ApplyError> {
        let replaces = self
            .store
            .buckets
            .get(bucket)
            .is_some_and(|b| b.versioning != Versioning::Enabled)
            && self
                .store
                .versions(bucket, key)
                .iter()
                .any(|v| v.version_id == NULL_VERSION);
        if replaces {
            return None;
        }
        self.need(tenant, Resource::StoredBytes, 1).err()
    }

    /// Refuses `more` of `r` for `tenant` if that passes its limit.
    pub(crate) fn need(&self, tenant: &str, r: Resource, more: u64) -> Result<(), ApplyError> {
        if more == 0 {
            return Ok(());
        }
        let limit = self.quota_limit(tenant, r);
        let used = self.quota_used(tenant, r);
        if used.saturating_add(more) > limit {
            return Err(exceeded(tenant, r, limit, used, more));
        }
        Ok(())
    }

    /// Refuses `cmd` if applying it would take a tenant past a quota.
    /// Commands that would be refused for another reason pass here and are
    /// refused by their own apply.
    pub(crate) fn check_quota(&self, cmd: &Command) -> Result<(), ApplyError> {
        match cmd {
            Command::PutVar { tenant, key, .. } => {
                let new = !self.vars.get(tenant).is_some_and(|v| v.contains_key(key));
                self.need(tenant, Resource::Vars, u64::from(new))
            }
            Command::IssueToken { record } if !self.tokens.contains_key(&record.id) => {
                self.need(&record.tenant, Resource::Tokens, 1)
            }
            Command::CreateToken { record } if !self.tokens.contains_key(&record.id) => {
                self.need(&record.tenant, Resource::Tokens, 1)
            }
            Command::PutTenantModule { tenant, bytes, .. } => {
                let hash = module_hash(bytes);
                if self
                    .quotas
                    .modules
                    .get(tenant)
                    .is_some_and(|m| m.contains_key(&hash))
                {
                    return Ok(());
                }
                self.need(tenant, Resource::Modules, 1)?;
                self.need(tenant, Resource::ModuleBytes, bytes.len() as u64)
            }
            Command::DeployWorkload { tenant, spec, .. } => {
                // An invalid name is refused by apply; no workload has it.
                let id = stratus_types::WorkloadId::new(tenant, &spec.name).ok();
                let current = id.and_then(|id| self.workloads.get(id.as_str()));
                if current.is_none() {
                    self.need(tenant, Resource::Workloads, 1)?;
                }
                let wanted = match spec.kind {
                    stratus_spec::WorkloadKind::Daemon => self.nodes.len() as u64,
                    _ => u64::from(spec.count),
                };
                let now = current.map_or(0, |w| self.declared_instances(w));
                self.need(tenant, Resource::Instances, wanted.saturating_sub(now))
            }
            Command::Store(c) => self.check_store_quota(c),
            // Every wrapper of a deploy counts as the deploy it carries.
            Command::DeployOrdered { deploy, .. }
            | Command::DeployUsing { deploy, .. }
            | Command::DeployTrusted { deploy, .. }
            | Command::DeployNetworked { deploy, .. }
            | Command::DeployExtended { deploy, .. } => self.check_quota(deploy),
            _ => Ok(()),
        }
    }

    fn check_store_quota(&self, cmd: &StoreCommand) -> Result<(), ApplyError> {
        let st = &self.store;
        match cmd {
            StoreCommand::CreateBucket { bucket }
                if !st.buckets.contains_key(&bucket.name) && !is_reserved(&bucket.name) =>
            {
                self.need(&bucket.tenant, Resource::Buckets, 1)
            }
            StoreCommand::CreateUpload { upload } => {
                self.need(&upload.tenant, Resource::Uploads, 1)
            }
            StoreCommand::CreateAccessKey { tenant, .. } => {
                self.need(tenant, Resource::AccessKeys, 1)
            }
            StoreCommand::PutObject {
                tenant,
                bucket,
                key,
                version,
            } => {
                let Ok(b) = st.bucket_of(tenant, bucket) else {
                    return Ok(());
                };
                let size = if version.is_delete_marker() {
                    0
                } else {
                    version.size
                };
                // A put on a bucket that is not versioning replaces the
                // `null` version: only the difference counts.
                let replaced = (b.versioning != Versioning::Enabled)
                    .then(|| {
                        st.versions(bucket, key)
                            .into_iter()
                            .find(|v| v.version_id == NULL_VERSION)
                    })
                    .flatten();
                let (old_bytes, old_objects) = replaced.map_or((0, 0), |v| (v.size, 1));
                self.need(tenant, Resource::Objects, 1u64.saturating_sub(old_objects))?;
                self.need(
                    tenant,
                    Resource::StoredBytes,
                    size.saturating_sub(old_bytes),
                )
            }
            StoreCommand::DeleteObject {
                tenant,
                bucket,
                version_id: None,
                ..
            } => match st.bucket_of(tenant, bucket) {
                // A delete marker is a version too.
                Ok(b) if b.versioning != Versioning::Unversioned => {
                    self.need(tenant, Resource::Objects, 1)
                }
                _ => Ok(()),
            },
            StoreCommand::PutPart {
                tenant,
                upload,
                number,
                part,
            } => {
                let Some(u) = st.uploads.get(upload).filter(|u| u.tenant == *tenant) else {
                    return Ok(());
                };
                let (old_bytes, old_objects) = u.parts.get(number).map_or((0, 0), |p| (p.size, 1));
                self.need(tenant, Resource::Objects, 1u64.saturating_sub(old_objects))?;
                self.need(
                    tenant,
                    Resource::StoredBytes,
                    part.size.saturating_sub(old_bytes),
                )
            }
            // The commands with attributes count as the ones they extend.
            StoreCommand::PutObjectWith {
                tenant,
                bucket,
                key,
                version,
                ..
            } => self.check_store_quota(&StoreCommand::PutObject {
                tenant: tenant.clone(),
                bucket: bucket.clone(),
                key: key.clone(),
                version: version.clone(),
            }),
            StoreCommand::CreateUploadWith { upload, .. } => {
                self.need(&upload.tenant, Resource::Uploads, 1)
            }
            StoreCommand::PutPartWith {
                tenant,
                upload,
                number,
                part,
                ..
            } => self.check_store_quota(&StoreCommand::PutPart {
                tenant: tenant.clone(),
                upload: upload.clone(),
                number: *number,
                part: part.clone(),
            }),
            StoreCommand::DeleteObjectWith {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
                ..
            } => self.check_store_quota(&StoreCommand::DeleteObject {
                tenant: tenant.clone(),
                bucket: bucket.clone(),
                key: key.clone(),
                version_id: version_id.clone(),
                now_ms: *now_ms,
            }),
            StoreCommand::CreateBucketWithConfigs { bucket, .. } => {
                self.check_store_quota(&StoreCommand::CreateBucket {
                    bucket: bucket.clone(),
                })
            }
            StoreCommand::DeleteObjectBypassing {
                tenant,
                bucket,
                key,
                version_id,
                now_ms,
                ..
            } => self.check_store_quota(&StoreCommand::DeleteObject {
                tenant: tenant.clone(),
                bucket: bucket.clone(),
                key: key.clone(),
                version_id: version_id.clone(),
                now_ms: *now_ms,
            }),
            _ => Ok(()),
        }
    }

    /// Applies `SetQuota`.
    pub(crate) fn set_quota(
        &mut self,
        tenant: &str,
        changes: &QuotaChanges,
    ) -> Result<Option<u64>, ApplyError> {
        self.require_tenant(tenant)?;
        let limits = self.quotas.limits.entry(tenant.to_string()).or_default();
        for (r, v) in changes {
            match v {
                Some(n) => limits.insert(*r, *n),
                None => limits.remove(r),
            };
        }
        if limits.is_empty() {
            self.quotas.limits.remove(tenant);
        }
        Ok(None)
    }

    /// Applies `PutTenantModule` (the quota was checked).
    pub(crate) fn put_tenant_module(
        &mut self,
        tenant: &str,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), ApplyError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(ApplyError::invalid(format!(
                "module is {} bytes; the limit is {MAX_MODULE_BYTES}",
                bytes.len()
            )));
        }
        self.require_tenant(tenant)?;
        let hash = module_hash(bytes);
        self.modules
            .entry(hash.clone())
            .or_insert_with(|| bytes.to_vec());
        self.quotas
            .modules
            .entry(tenant.to_string())
            .or_default()
            .insert(hash, now_ms);
        Ok(())
    }
}

impl ObjectStore {
    /// Stored bytes and versions of `tenant`.
    pub fn usage_of(&self, tenant: &str) -> StoreUsage {
        self.usage.get(tenant).copied().unwrap_or_default()
    }

    /// Counts `bytes` and `objects` more for `tenant`.
    pub(crate) fn charge(&mut self, tenant: &str, bytes: u64, objects: u64) {
        let u = self.usage.entry(tenant.to_string()).or_default();
        u.bytes = u.bytes.saturating_add(bytes);
        u.objects = u.objects.saturating_add(objects);
    }

    /// Counts `bytes` and `objects` less for `tenant`.
    pub(crate) fn credit(&mut self, tenant: &str, bytes: u64, objects: u64) {
        if let Some(u) = self.usage.get_mut(tenant) {
            u.bytes = u.bytes.saturating_sub(bytes);
            u.objects = u.objects.saturating_sub(objects);
            if *u == StoreUsage::default() {
                self.usage.remove(tenant);
            }
        }
    }

    /// Charges the latest version of `bucket/key` (just added) to the
    /// bucket's owner.
    pub(crate) fn account_last(&mut self, bucket: &str, _key: &str, latest: &ObjectVersion) {
        let Some(tenant) = self.buckets.get(bucket).map(|b| b.tenant.clone()) else {
            return;
        };
        self.charge(&tenant, version_bytes(latest), 1);
    }

    /// A version leaves `bucket`: its chunk references and its use end.
    pub(crate) fn drop_version(&mut self, bucket: &str, v: ObjectVersion) {
        if let Some(tenant) = self.buckets.get(bucket).map(|b| b.tenant.clone()) {
            self.credit(&tenant, version_bytes(&v), 1);
        }
        if let Some(data) = v.data {
            self.drop_refs(&data);
        }
    }

    /// A part of `tenant`'s upload goes: its references and its use end.
    pub(crate) fn drop_part(&mut self, tenant: &str, p: Part) {
        self.drop_refs(&p.data);
        self.credit(tenant, p.size, 1);
    }

    /// Removes an upload: its parts' chunk references and their use end.
    pub(crate) fn remove_upload(&mut self, id: &str) -> Option<()> {
        self.upload_attrs.remove(id);
        let u = self.uploads.remove(id)?;
        for p in u.parts.into_values() {
            self.drop_part(&u.tenant, p);
        }
        Some(())
    }
}

#[cfg(test)]
#[path = "quotas_tests.rs"]
mod tests;
