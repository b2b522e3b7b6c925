//! Paid apps and datasets (issue 15, item 5): what tenants publish for
//! others to use at a price per task, and which workloads use them.
//!
//! **Apps.** A tenant publishes a WASM module it stores, or a pinned
//! version of one of its container images, as `OWNER/NAME` with a price
//! per task. Another tenant runs it by naming it in its order
//! (`market: { app: OWNER/NAME }`): the workload's module is the app's,
//! though the requester never held its bytes, and its agent fetches them
//! from the owner's store ([`State::payload_holder`]). The requester gets
//! no way to read them: modules and images are served only to the nodes
//! assigned to run them, and never to a requester's own node (below).
//!
//! **Datasets.** A tenant publishes a prefix of one of its buckets as
//! `OWNER/NAME` with a price per task, optionally only for some apps
//! (without that, any module can copy the data to its output, so the
//! requester would read it after all). A WASM task names it in its order
//! (`market: { dataset: OWNER/NAME }`) and gets the objects as `/input`;
//! the node reads them through its control replica only while it runs a
//! live instance of that workload under an open deal
//! ([`State::dataset_input`]).
//!
//! **Always a deal, never on the requester's nodes.** A workload that uses
//! an app or a dataset is a deal on every node (the app and dataset owners
//! are paid even where the lender lends for nothing), and it is never
//! placed on a node the requester owns: that node's owner could read the
//! module or the data off its disk. The lender that runs it does receive
//! them; the owners accept that when publishing, as with iExec without
//! enclaves (see ARCHITECTURE.md, threat model).

use serde::{Deserialize, Serialize};
use stratus_market::Amount;
use stratus_spec::ObjectFolder;
use stratus_types::{Payload, TenantName};
use utoipa::ToSchema;

use crate::{ApplyError, State, Workload};

/// Most apps and datasets one tenant may publish (each kind).
pub const MAX_LISTINGS_PER_TENANT: usize = 1_000;
/// Most apps a dataset may be restricted to.
pub const MAX_DATASET_APPS: usize = 64;

/// A published app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct App {
    /// Who publishes it and is paid.
    pub owner: TenantName,
    /// Its name within the owner.
    pub name: String,
    /// What runs: a module (`blake3:...`) or a pinned image.
    #[schema(value_type = String)]
    pub payload: Payload,
    /// Price per task, in the pool's smallest unit.
    #[schema(value_type = u64)]
    pub price: Amount,
    /// When it was (last) published, leader clock.
    pub published_ms: u64,
}

/// A published dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dataset {
    /// Who publishes it and is paid.
    pub owner: TenantName,
    /// Its name within the owner.
    pub name: String,
    /// The owner's bucket.
    pub bucket: String,
    /// The key prefix (the objects under it are the task's `/input`).
    pub prefix: String,
    /// Price per task, in the pool's smallest unit.
    #[schema(value_type = u64)]
    pub price: Amount,
    /// The apps (`OWNER/NAME`) it may be used with; empty: any module.
    pub apps: Vec<String>,
    /// When it was (last) published, leader clock.
    pub published_ms: u64,
}

/// The app and dataset a workload uses (`OWNER/NAME` each).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Uses {
    /// The app it runs.
    pub app: Option<String>,
    /// The dataset it reads as `/input`.
    pub dataset: Option<String>,
}

impl Uses {
    /// Whether it uses nothing.
    pub fn is_empty(&self) -> bool {
        self.app.is_none() && self.dataset.is_none()
    }

    /// What a requester names as the module in its signed order
    /// ([`stratus_market::OrderSignature::module`]) when it deploys
    /// `module` using these: `app:OWNER/NAME` for an app (whatever it runs
    /// now), the module itself otherwise, and `;dataset:OWNER/NAME` after it
    /// for a dataset — so the signature names what is paid for.
    pub fn signed_module(&self, module: &str) -> String {
        let mut named = match &self.app {
            Some(app) => format!("app:{app}"),
            None => module.to_string(),
        };
        if let Some(ds) = &self.dataset {
            named.push_str(&format!(";dataset:{ds}"));
        }
        named
    }
}

/// What a workload uses, as resolved when it was deployed: the owners and
/// prices its deals pay, and the dataset's folder. Fixed at deploy, so
/// withdrawing or re-pricing a listing changes nothing for workloads
/// already deployed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// As the order named them.
    pub uses: Uses,
    /// The app's owner and price per task.
    pub app: Option<(TenantName, Amount)>,
    /// The dataset's owner, price per task and folder.
    pub dataset: Option<(TenantName, Amount, ObjectFolder)>,
}

/// Which kind of listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListingKind {
    /// An app.
    App,
    /// A dataset.
    Dataset,
}

/// An owner paid per task, and its price.
pub type Payee = (TenantName, Amount);

impl Used {
    /// The app and dataset owners with their prices (what each deal pays
    /// them per task).
    pub fn prices(&self) -> (Option<Payee>, Option<Payee>) {
        let ds = self.dataset.as_ref().map(|(o, p, _)| (o.clone(), *p));
        (self.app.clone(), ds)
    }
}

/// A change to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogCommand {
    /// Publish (or re-price) an app of `tenant`.
    PublishApp {
        /// Owner.
        tenant: TenantName,
        /// Name.
        name: String,
        /// What it runs, in its string form (a module the tenant stores,
        /// or a pinned image of its store).
        module: String,
        /// Price per task.
        price: Amount,
        /// Leader time.
        now_ms: u64,
    },
    /// Publish (or change) a dataset of `tenant`.
    PublishDataset {
        /// Owner.
        tenant: TenantName,
        /// Name.
        name: String,
        /// The tenant's bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
        /// Price per task.
        price: Amount,
        /// Apps it may be used with (empty: any).
        apps: Vec<String>,
        /// Leader time.
        now_ms: u64,
    },
    /// Withdraw a listing (workloads already deployed keep running; new
    /// deploys naming it are refused).
    Unpublish {
        /// Owner.
        tenant: TenantName,
        /// App or dataset.
        kind: ListingKind,
        /// Name.
        name: String,
    },
    /// The owner of an image app declares it deterministic: the same
    /// input gives the same output on every node, so it may run verified
    /// (`market.trust` above 1, [`crate::trusted`]). Holds for the app as
    /// published now; publishing it again withdraws the declaration.
    DeclareDeterministic {
        /// Owner.
        tenant: TenantName,
        /// The app's name.
        name: String,
    },
}

fn listing_id(tenant: &str, name: &str) -> Result<String, ApplyError> {
    let id = format!("{tenant}/{name}");
    if stratus_spec::valid_listing_id(&id) {
        Ok(id)
    } else {
        Err(ApplyError::invalid(format!(
            "invalid name {name:?}: use 1-63 characters of a-z, 0-9 and '-', starting with a letter"
        )))
    }
}

impl State {
    /// Whether app `id`'s owner declared it deterministic, as published
    /// now.
    pub fn is_deterministic_app(&self, id: &str) -> bool {
        match (self.apps.get(id), self.deterministic_apps.get(id)) {
            (Some(app), Some(at)) => app.published_ms == *at,
            _ => false,
        }
    }

    /// Applies a catalog command.
    pub(crate) fn apply_catalog(
        &mut self,
        cmd: &CatalogCommand,
    ) -> Result<Option<u64>, ApplyError> {
        match cmd {
            CatalogCommand::PublishApp {
                tenant,
                name,
                module,
                price,
                now_ms,
            } => {
                self.require_tenant(tenant)?;
                let id = listing_id(tenant, name)?;
                let payload = self.owned_payload(tenant, module)?;
                self.check_listing_count(tenant, &id, ListingKind::App)?;
                self.apps.insert(
                    id,
                    App {
                        owner: tenant.clone(),
                        name: name.clone(),
                        payload,
                        price: *price,
                        published_ms: *now_ms,
                    },
                );
            }
            CatalogCommand::PublishDataset {
                tenant,
                name,
                bucket,
                prefix,
                price,
                apps,
                now_ms,
            } => {
                self.require_tenant(tenant)?;
                let id = listing_id(tenant, name)?;
                match self.store.buckets.get(bucket) {
                    Some(b) if b.tenant == *tenant => {}
                    _ => {
                        return Err(ApplyError::not_found(format!(
                            "tenant {tenant} has no bucket {bucket:?}"
                        )))
                    }
                }
                if prefix.len() > stratus_spec::MAX_FOLDER_PREFIX_LEN {
                    return Err(ApplyError::invalid(format!(
                        "the prefix is {} bytes; at most {}",
                        prefix.len(),
                        stratus_spec::MAX_FOLDER_PREFIX_LEN
                    )));
                }
                if apps.len() > MAX_DATASET_APPS {
                    return Err(ApplyError::invalid(format!(
                        "a dataset may name at most {MAX_DATASET_APPS} apps"
                    )));
                }
                if let Some(bad) = apps.iter().find(|a| !stratus_spec::valid_listing_id(a)) {
                    return Err(ApplyError::invalid(format!(
                        "app {bad:?} is not OWNER/NAME"
                    )));
                }
                self.check_listing_count(tenant, &id, ListingKind::Dataset)?;
                self.datasets.insert(
                    id,
                    Dataset {
                        owner: tenant.clone(),
                        name: name.clone(),
                        bucket: bucket.clone(),
                        prefix: prefix.clone(),
                        price: *price,
                        apps: apps.clone(),
                        published_ms: *now_ms,
                    },
                );
            }
            CatalogCommand::DeclareDeterministic { tenant, name } => {
                let id = format!("{tenant}/{name}");
                let app = self.apps.get(&id).ok_or_else(|| {
                    ApplyError::not_found(format!("{tenant} publishes no app named {name:?}"))
                })?;
                if app.payload.image().is_none() {
                    return Err(ApplyError::invalid(
                        "a WASM app runs deterministically already; only an image is declared deterministic",
                    ));
                }
                let published = app.published_ms;
                self.deterministic_apps.insert(id, published);
            }
            CatalogCommand::Unpublish { tenant, kind, name } => {
                let id = format!("{tenant}/{name}");
                if *kind == ListingKind::App {
                    self.deterministic_apps.remove(&id);
                }
                let gone = match kind {
                    ListingKind::App => self.apps.remove(&id).is_some(),
                    ListingKind::Dataset => self.datasets.remove(&id).is_some(),
                };
                if !gone {
                    return Err(ApplyError::not_found(format!(
                        "{tenant} publishes no {} named {name:?}",
                        match kind {
                            ListingKind::App => "app",
                            ListingKind::Dataset => "dataset",
                        }
                    )));
                }
            }
        }
        Ok(None)
    }

    /// A module `tenant` stores, or a pinned image version of its store.
    fn owned_payload(&self, tenant: &str, module: &str) -> Result<Payload, ApplyError> {
        match module.parse::<Payload>() {
            Ok(Payload::Wasm(m)) if self.module_available(tenant, m.as_str()) => {
                Ok(Payload::Wasm(m))
            }
            Ok(Payload::Image(i)) if self.image_stored(tenant, &i) => Ok(Payload::Image(i)),
            _ => Err(ApplyError::not_found(format!(
                "{module} is not a module or image version {tenant} stores"
            ))),
        }
    }

    fn check_listing_count(
        &self,
        tenant: &str,
        id: &str,
        kind: ListingKind,
    ) -> Result<(), ApplyError> {
        // Ids are `OWNER/NAME`: the tenant's listings are one key range.
        fn owned<V>(
            map: &std::collections::BTreeMap<String, V>,
            id: &str,
            prefix: &str,
        ) -> (bool, usize) {
            let count = map
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .count();
            (map.contains_key(id), count)
        }
        let prefix = format!("{tenant}/");
        let (exists, count) = match kind {
            ListingKind::App => owned(&self.apps, id, &prefix),
            ListingKind::Dataset => owned(&self.datasets, id, &prefix),
        };
        if !exists && count >= MAX_LISTINGS_PER_TENANT {
            return Err(ApplyError::conflict(format!(
                "tenant {tenant} already publishes {MAX_LISTINGS_PER_TENANT} of these; unpublish one first"
            )));
        }
        Ok(())
    }

    /// Resolves what a deploy running `module` uses: the app it names
    /// must exist and be what `module` names, the dataset must exist and
    /// allow that app.
    pub fn resolve_uses(&self, uses: &Uses, module: &str) -> Result<Used, ApplyError> {
        let app = match &uses.app {
            None => None,
            Some(id) => {
                let app = self
                    .apps
                    .get(id)
                    .ok_or_else(|| ApplyError::not_found(format!("no app {id} is published")))?;
                if app.payload.to_string() != module {
                    return Err(ApplyError::conflict(format!(
                        "app {id} runs {} now, not {module}; deploy again",
                        app.payload
                    )));
                }
                Some((app.owner.clone(), app.price))
            }
        };
        let dataset = match &uses.dataset {
            None => None,
            Some(id) => {
                let ds = self.datasets.get(id).ok_or_else(|| {
                    ApplyError::not_found(format!("no dataset {id} is published"))
                })?;
                if !ds.apps.is_empty() && !uses.app.as_ref().is_some_and(|a| ds.apps.contains(a)) {
                    return Err(ApplyError::forbidden(format!(
                        "dataset {id} may only be used with the apps {}",
                        ds.apps.join(", ")
                    )));
                }
                let folder = ObjectFolder {
                    bucket: ds.bucket.clone(),
                    prefix: ds.prefix.clone(),
                };
                Some((ds.owner.clone(), ds.price, folder))
            }
        };
        Ok(Used {
            uses: uses.clone(),
            app,
            dataset,
        })
    }

    /// What workload `id` uses, if anything.
    pub fn uses_of(&self, id: &str) -> Option<&Used> {
        self.uses.get(id)
    }

    /// The tenant whose store holds what `w` runs: the app's owner for a
    /// workload running an app, else its own tenant.
    pub fn payload_holder<'a>(&'a self, w: &'a Workload) -> &'a str {
        self.uses
            .get(w.id.as_str())
            .and_then(|u| u.app.as_ref())
            .map_or(w.tenant.as_str(), |(owner, _)| owner.as_str())
    }

    /// The dataset workload `id` reads as `/input`: its owner and folder.
    pub fn dataset_input(&self, id: &str) -> Option<(&str, &ObjectFolder)> {
        let (owner, _, folder) = self.uses.get(id)?.dataset.as_ref()?;
        Some((owner.as_str(), folder))
    }
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
