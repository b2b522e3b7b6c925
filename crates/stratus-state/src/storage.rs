//! How [`State`] sits on its storage: opening it from a [`Kv`], writing
//! what changed (`flush`, `commit`), reloading it after the storage was
//! replaced, and the copies and dumps tests and tools compare.

use crate::kv::{self, Kv, KvError, MemKv, Table};
use crate::objects;
use crate::rows::{Cell, Tracked};
use crate::State;

impl State {
    /// The state held in `kv` (empty if `kv` is).
    pub fn open(kv: Box<dyn Kv>) -> Result<Self, KvError> {
        let k = kv.as_ref();
        Ok(Self {
            nodes: Tracked::load(k, "nodes")?,
            tenants: Tracked::load(k, "tenants")?,
            tokens: Tracked::load(k, "tokens")?,
            vars: Tracked::load(k, "vars")?,
            join_token_sha256: Cell::load(k, "join_token_sha256")?,
            modules: Tracked::load(k, "modules")?,
            workloads: Tracked::load(k, "workloads")?,
            instances: Tracked::load(k, "instances")?,
            draining: Cell::load(k, "draining")?,
            quotas: Cell::load(k, "quotas")?,
            marks: Cell::load(k, "marks")?,
            joining: Cell::load(k, "joining")?,
            module_objects: Tracked::load(k, "module_objects")?,
            balances: Tracked::load(k, "balances")?,
            ledger_seq: Cell::load(k, "ledger_seq")?,
            offers: Tracked::load(k, "offers")?,
            task_prices: Tracked::load(k, "task_prices")?,
            pool_fee_bps: Cell::load(k, "pool_fee_bps")?,
            orders: Tracked::load(k, "orders")?,
            deals: Tracked::load(k, "deals")?,
            order_keys: Tracked::load(k, "order_keys")?,
            audit: Cell::load(k, "audit")?,
            apps: Tracked::load(k, "apps")?,
            datasets: Tracked::load(k, "datasets")?,
            uses: Tracked::load(k, "uses")?,
            storage_billed_ms: Cell::load(k, "storage_billed_ms")?,
            reputations: Tracked::load(k, "reputations")?,
            trusted: Tracked::load(k, "trusted")?,
            trusted_stake: Cell::load(k, "trusted_stake")?,
            deterministic_apps: Tracked::load(k, "deterministic_apps")?,
            networks: Tracked::load(k, "networks")?,
            extensions: Tracked::load(k, "extensions")?,
            applying: 0,
            store: objects::ObjectStore::load(kv)?,
        })
    }

    /// Writes every change since the last flush to the storage.
    pub fn flush(&mut self) {
        let kv = self.store.kv.as_mut();
        self.nodes.flush(kv, "nodes");
        self.tenants.flush(kv, "tenants");
        self.tokens.flush(kv, "tokens");
        self.vars.flush(kv, "vars");
        self.join_token_sha256.flush(kv, "join_token_sha256");
        self.modules.flush(kv, "modules");
        self.workloads.flush(kv, "workloads");
        self.instances.flush(kv, "instances");
        self.draining.flush(kv, "draining");
        self.quotas.flush(kv, "quotas");
        self.marks.flush(kv, "marks");
        self.joining.flush(kv, "joining");
        self.module_objects.flush(kv, "module_objects");
        self.balances.flush(kv, "balances");
        self.ledger_seq.flush(kv, "ledger_seq");
        self.offers.flush(kv, "offers");
        self.task_prices.flush(kv, "task_prices");
        self.pool_fee_bps.flush(kv, "pool_fee_bps");
        self.orders.flush(kv, "orders");
        self.deals.flush(kv, "deals");
        self.order_keys.flush(kv, "order_keys");
        self.audit.flush(kv, "audit");
        self.apps.flush(kv, "apps");
        self.datasets.flush(kv, "datasets");
        self.uses.flush(kv, "uses");
        self.storage_billed_ms.flush(kv, "storage_billed_ms");
        self.reputations.flush(kv, "reputations");
        self.trusted.flush(kv, "trusted");
        self.trusted_stake.flush(kv, "trusted_stake");
        self.deterministic_apps.flush(kv, "deterministic_apps");
        self.networks.flush(kv, "networks");
        self.extensions.flush(kv, "extensions");
        self.store.flush();
    }

    /// Flushes, then makes everything written durable ([`Kv::commit`]).
    pub fn commit(&mut self) -> Result<(), KvError> {
        self.flush();
        self.store.kv.commit()
    }

    /// About how many rows the state holds (what a snapshot writes).
    pub fn size_rows(&self) -> u64 {
        let c = *self.store.counts;
        let small = self.nodes.len()
            + self.tenants.len()
            + self.tokens.len()
            + self.workloads.len()
            + self.instances.len()
            + self.store.buckets.len()
            + self.store.uploads.len();
        c.versions + c.chunks * 2 + c.packs + small as u64
    }

    /// The storage, for what the state machine store keeps beside the state
    /// (applied log id, membership) in the same transaction.
    pub fn kv(&self) -> &dyn Kv {
        self.store.kv.as_ref()
    }

    /// The storage, to write beside the state.
    pub fn kv_mut(&mut self) -> &mut dyn Kv {
        self.store.kv.as_mut()
    }

    /// Reads the small state again from the storage (after the storage was
    /// replaced underneath, e.g. by installing a snapshot). Changes not
    /// flushed are lost.
    pub fn reload(&mut self) -> Result<(), KvError> {
        let kv = std::mem::replace(&mut self.store.kv, Box::new(MemKv::default()));
        *self = State::open(kv)?;
        Ok(())
    }

    /// A copy in memory of every row stored (what was flushed).
    #[cfg(any(test, feature = "testing"))]
    pub fn fork_kv(&self) -> MemKv {
        let mut mem = MemKv::default();
        for t in Table::ALL {
            self.kv().scan(t, std::ops::Bound::Unbounded, &mut |k, v| {
                mem.put(t, k, v);
                true
            });
        }
        mem
    }

    /// An independent copy in memory (for tests: a replica's double).
    #[cfg(any(test, feature = "testing"))]
    pub fn fork(&self) -> State {
        let mem = self.fork_kv();
        State {
            nodes: self.nodes.clone(),
            tenants: self.tenants.clone(),
            tokens: self.tokens.clone(),
            vars: self.vars.clone(),
            join_token_sha256: self.join_token_sha256.clone(),
            modules: self.modules.clone(),
            workloads: self.workloads.clone(),
            instances: self.instances.clone(),
            draining: self.draining.clone(),
            quotas: self.quotas.clone(),
            marks: self.marks.clone(),
            joining: self.joining.clone(),
            module_objects: self.module_objects.clone(),
            balances: self.balances.clone(),
            ledger_seq: self.ledger_seq.clone(),
            offers: self.offers.clone(),
            task_prices: self.task_prices.clone(),
            pool_fee_bps: self.pool_fee_bps.clone(),
            orders: self.orders.clone(),
            deals: self.deals.clone(),
            order_keys: self.order_keys.clone(),
            audit: self.audit.clone(),
            apps: self.apps.clone(),
            datasets: self.datasets.clone(),
            uses: self.uses.clone(),
            storage_billed_ms: self.storage_billed_ms.clone(),
            reputations: self.reputations.clone(),
            trusted: self.trusted.clone(),
            trusted_stake: self.trusted_stake.clone(),
            deterministic_apps: self.deterministic_apps.clone(),
            networks: self.networks.clone(),
            extensions: self.extensions.clone(),
            applying: self.applying,
            store: self.store.fork(Box::new(mem)),
        }
    }

    /// Every row of the state (flushed first): what replicas that applied
    /// the same log agree on, byte for byte.
    pub fn dump(&mut self) -> Vec<(Table, Vec<u8>, Vec<u8>)> {
        self.flush();
        kv::dump(self.kv())
    }
}

impl objects::ObjectStore {
    /// A copy of the small fields over `kv` (see [`State::fork`]).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn fork(&self, kv: Box<dyn Kv>) -> Self {
        Self {
            kv,
            secret: self.secret.clone(),
            buckets: self.buckets.clone(),
            node_used: self.node_used.clone(),
            deletions: self.deletions.clone(),
            uploads: self.uploads.clone(),
            scrubs: self.scrubs.clone(),
            next_pack: self.next_pack.clone(),
            next_version: self.next_version.clone(),
            next_seq: self.next_seq.clone(),
            counts: self.counts.clone(),
            bucket_stats: self.bucket_stats.clone(),
            access_keys: self.access_keys.clone(),
            usage: self.usage.clone(),
            bucket_configs: self.bucket_configs.clone(),
            upload_attrs: self.upload_attrs.clone(),
        }
    }
}
