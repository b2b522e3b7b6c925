//! WASM modules stored as objects of the object store.
//!
//! A module's bytes are an object of its uploader's images bucket
//! ([`images_bucket`]) under [`module_key`] (`modules/<hex BLAKE3>`): content
//! addressed, deduplicated in the tenant's scope, encrypted and erasure coded
//! like any object, and fetched by agents chunk by chunk (the same
//! `GetChunk` path as container images). The state keeps only a small
//! [`ModuleObject`] reference per tenant and module, next to the tenant's
//! claim in [`crate::quotas::Quotas::modules`] (which the module count,
//! deploy and retention already use).
//!
//! [`Command::PutModuleObject`](crate::Command::PutModuleObject) commits the
//! object version and the reference in one apply, so a reference never
//! names a missing object and an object committed this way is never left
//! without a reference. A re-upload of a module the tenant holds adds no
//! version: it renews the claim. When retention drops a tenant's claim
//! (no workload of the tenant uses the module for the retention period), the
//! object version is deleted in the same apply, and the store's garbage
//! collection reclaims its chunks.
//!
//! Modules of the first layouts (`Command::PutModule`,
//! `Command::PutTenantModule`) stay inline in [`State::modules`] and replay
//! as before.

use serde::{Deserialize, Serialize};

use crate::objects::{images_bucket, KeyScope, ObjectData, ObjectVersion, StoreCommand};
use crate::quotas::Resource;
use crate::{ApplyError, State};

/// Largest module accepted (bytes): stored as an object, streamed on upload
/// and fetched chunk by chunk, so the limit bounds a node's download and
/// compile, not any replica's memory.
pub const MAX_MODULE_OBJECT_BYTES: u64 = 1 << 30;

/// Key prefix of modules in a tenant's images bucket.
pub const MODULES_PREFIX: &str = "modules/";

/// A module of one tenant, stored as an object version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleObject {
    /// Size in bytes.
    pub size: u64,
    /// Version of [`module_key`] in the tenant's images bucket.
    pub version_id: String,
    /// When it was first stored (leader clock, ms).
    pub created_ms: u64,
}

/// The object key of module `hash` (`blake3:<64 hex>`), `None` if `hash` is
/// not such an address.
pub fn module_key(hash: &str) -> Option<String> {
    let m = hash.parse::<stratus_types::ModuleRef>().ok()?;
    Some(format!("{MODULES_PREFIX}{}", m.hex()))
}

impl State {
    /// The object reference of `tenant`'s module `hash`, if it stores one.
    pub fn module_object(&self, tenant: &str, hash: &str) -> Option<&ModuleObject> {
        self.module_objects.get(tenant)?.get(hash)
    }

    /// The chunks of `tenant`'s module `hash` (what an agent fetches), if
    /// it is stored as an object whose version still exists.
    pub fn module_data(&self, tenant: &str, hash: &str) -> Option<(u64, ObjectData)> {
        let m = self.module_object(tenant, hash)?;
        let v = self
            .store
            .version(
                &images_bucket(tenant),
                &module_key(hash)?,
                Some(&m.version_id),
            )
            .ok()?;
        Some((m.size, v.data?))
    }

    /// Whether `tenant` may run module `hash`: it claimed it (uploaded it)
    /// and its bytes are stored (as an object of its own, or inline from the
    /// first layouts).
    pub fn module_available(&self, tenant: &str, hash: &str) -> bool {
        let claimed = self
            .quotas
            .modules
            .get(tenant)
            .is_some_and(|m| m.contains_key(hash));
        claimed && (self.module_data(tenant, hash).is_some() || self.modules.contains_key(hash))
    }

    /// Size of module `hash` as counted for `tenant`.
    pub fn module_size(&self, tenant: &str, hash: &str) -> Option<u64> {
        self.module_object(tenant, hash)
            .map(|m| m.size)
            .or_else(|| self.modules.get(hash).map(|b| b.len() as u64))
    }

    /// Applies `PutModuleObject`: commits `version` as `tenant`'s module
    /// `hash` and claims it, or renews the claim of one already stored.
    pub(crate) fn put_module_object(
        &mut self,
        tenant: &str,
        hash: &str,
        version: &ObjectVersion,
        now_ms: u64,
    ) -> Result<Option<u64>, ApplyError> {
        self.require_tenant(tenant)?;
        let bad = |m: String| Err(ApplyError::invalid(m));
        let Some(key) = module_key(hash) else {
            return bad(format!("{hash:?} is not a module address (blake3:<hex>)"));
        };
        if version.size > MAX_MODULE_OBJECT_BYTES {
            return Err(ApplyError::too_large(format!(
                "module is {} bytes; the limit is {MAX_MODULE_OBJECT_BYTES}",
                version.size
            )));
        }
        if Some(version.blake3.as_str()) != hash.strip_prefix(stratus_types::ModuleRef::PREFIX) {
            return bad(format!("the object's BLAKE3 is not {hash}"));
        }
        match &version.data {
            Some(d) if d.scope == KeyScope::Tenant(tenant.to_string()) => {}
            _ => return bad("a module is sealed in its tenant's key scope".into()),
        }
        let claims = self.quotas.modules.get(tenant);
        let claimed = claims.is_some_and(|m| m.contains_key(hash));
        if self.module_data(tenant, hash).is_none() {
            if !claimed {
                self.need(tenant, Resource::Modules, 1)?;
                self.need(tenant, Resource::ModuleBytes, version.size)?;
            }
            let put = StoreCommand::PutObject {
                tenant: tenant.to_string(),
                bucket: images_bucket(tenant),
                key,
                version: version.clone(),
            };
            self.check_quota(&crate::Command::Store(put.clone()))?;
            let version_id = match self.apply_store(&put)? {
                crate::objects::StoreResult::Id(id) => id,
                _ => return Err(ApplyError::internal("a put answered no version")),
            };
            self.module_objects
                .entry(tenant.to_string())
                .or_default()
                .insert(
                    hash.to_string(),
                    ModuleObject {
                        size: version.size,
                        version_id,
                        created_ms: now_ms,
                    },
                );
        } else if !claimed {
            self.need(tenant, Resource::Modules, 1)?;
            self.need(tenant, Resource::ModuleBytes, version.size)?;
        }
        self.quotas
            .modules
            .entry(tenant.to_string())
            .or_default()
            .insert(hash.to_string(), now_ms);
        Ok(None)
    }

    /// Forgets `tenant`'s module object `hash` (its claim is gone) and
    /// deletes its object version, so garbage collection reclaims the
    /// chunks no other version uses.
    pub(crate) fn drop_module_object(&mut self, tenant: &str, hash: &str, now_ms: u64) {
        let Some(m) = self
            .module_objects
            .get_mut(tenant)
            .and_then(|m| m.remove(hash))
        else {
            return;
        };
        if self
            .module_objects
            .get(tenant)
            .is_some_and(|m| m.is_empty())
        {
            self.module_objects.remove(tenant);
        }
        let Some(key) = module_key(hash) else {
            return;
        };
        // The version may already be gone (the tenant deleted it through
        // the object API): nothing else to do then.
        let _ = self.apply_store(&StoreCommand::DeleteObject {
            tenant: tenant.to_string(),
            bucket: images_bucket(tenant),
            key,
            version_id: Some(m.version_id),
            now_ms,
        });
    }
}

#[cfg(test)]
#[path = "modules_tests.rs"]
mod tests;
