//! Storage billing (issue 15, item 4): stored bytes are billed per
//! GiB-month from the tenant that stores them to the owners of the nodes
//! that hold their pieces, pro rata.
//!
//! The leader proposes [`MarketCommand::BillStorage`] with its clock once
//! per billing period (`stratus-control`); the first one only records the
//! time, each later one bills the time since the one before.
//!
//! **Pro rata, from counters.** Which node holds which tenant's bytes is not
//! known without walking every pack (a pack mixes chunks, chunks are shared
//! by dedupe), and `apply` must not walk millions of packs. Two exact
//! counters the object store already keeps on every commit, piece move and
//! pack drop are used instead: the bytes of pieces each node holds
//! ([`crate::objects::ObjectStore::node_usage`]) and each tenant's logical
//! stored bytes ([`crate::quotas::Resource::StoredBytes`]). A tenant's
//! share of a node's pieces is its stored bytes over the stored bytes of
//! all tenants (the operator's included): the shares of all tenants add up
//! to at most the pieces held, so lenders are never paid for more than they
//! hold and no tenant is billed for more than every node holds, whatever
//! dedupe and coding do to the ratio of logical to stored bytes (parity,
//! padding and data awaiting garbage collection are shared pro rata).
//! The cost of one billing is O(tenants × lenders' prices), never O(objects).
//!
//! **Who pays what.** Each node's owner is paid at the node's own
//! `storage_gib_month` price (nodes without an offer, banned or lost nodes
//! earn nothing); a tenant's pieces on its own nodes are free, and so is
//! everything the operator's tenant stores. Amounts are rounded down
//! ([`storage_bill`]). A tenant whose spendable balance (not its escrow)
//! cannot cover its bill pays what it has: every transfer is scaled down
//! (rounded down) so the entry stays balanced and no balance goes negative;
//! the entry's refs name the tenant and the `shortfall`, and a bill that
//! could take nothing at all is recorded in the audit log
//! (`market.storage-unpaid`).

use std::collections::BTreeMap;

use stratus_market::ledger::MAX_TRANSFERS;
use stratus_market::{storage_bill, Account, Amount, Entry, Holding, Reason, Refs, Transfer};
use stratus_types::{NodeStatus, TenantName, ADMIN_TENANT};

use crate::accounts::MarketCommand;
use crate::audit::Pending;
use crate::{ApplyError, State};

/// Default time between two storage billings (the control plane's, unless
/// configured).
pub const DEFAULT_BILLING_EVERY_MS: u64 = 3_600_000;

impl State {
    /// Whether a [`MarketCommand::BillStorage`] is due at `now_ms` with
    /// billings `every_ms` apart (the first one is due at once: it starts
    /// the clock).
    pub fn storage_billing_due(&self, now_ms: u64, every_ms: u64) -> bool {
        match *self.storage_billed_ms {
            None => true,
            Some(last) => now_ms.saturating_sub(last) >= every_ms,
        }
    }

    /// Bytes of pieces on nodes that earn for storage, per (owner, price per
    /// GiB-month): nodes with an offer and a storage price, not banned and
    /// not lost.
    fn priced_piece_bytes(&self) -> BTreeMap<(TenantName, Amount), u64> {
        let mut out: BTreeMap<(TenantName, Amount), u64> = BTreeMap::new();
        for (node, offer) in self.offers.iter() {
            let price = offer.prices.storage_gib_month;
            let bytes = self.store.node_usage(node);
            if price.is_zero() || bytes == 0 {
                continue;
            }
            let Some(rec) = self.nodes.get(node) else {
                continue;
            };
            if rec.banned || rec.status == NodeStatus::Lost {
                continue;
            }
            let b = out.entry((rec.owner.clone(), price)).or_default();
            *b = b.saturating_add(bytes);
        }
        out
    }

    /// What `tenant` holds on other owners' priced nodes, pro rata (see the
    /// module docs): one holding per (owner, price). Empty for the
    /// operator's tenant.
    pub fn storage_holdings(&self, tenant: &str) -> Vec<Holding> {
        let total = self.total_stored_bytes();
        self.holdings_of(tenant, total, &self.priced_piece_bytes())
    }

    fn total_stored_bytes(&self) -> u128 {
        self.store.usage.values().map(|u| u128::from(u.bytes)).sum()
    }

    fn holdings_of(
        &self,
        tenant: &str,
        total: u128,
        priced: &BTreeMap<(TenantName, Amount), u64>,
    ) -> Vec<Holding> {
        let mine = u128::from(self.store.usage_of(tenant).bytes);
        if tenant == ADMIN_TENANT || mine == 0 || total == 0 {
            return Vec::new();
        }
        priced
            .iter()
            .filter(|((lender, _), _)| lender != tenant)
            .filter_map(|((lender, price), bytes)| {
                // mine <= total, so the share fits in u64.
                let share = u64::try_from(mine * u128::from(*bytes) / total).unwrap_or(u64::MAX);
                (share > 0).then(|| Holding {
                    lender: lender.clone(),
                    bytes: share,
                    price: *price,
                })
            })
            .collect()
    }

    /// Applies [`MarketCommand::BillStorage`]: bills every tenant for the
    /// time since the last billing. The result is the number of entries
    /// posted. Never fails once the period is known: a tenant whose bill
    /// cannot be made or posted is skipped and recorded in the audit log.
    pub(crate) fn bill_storage(&mut self, now_ms: u64) -> Result<Option<u64>, ApplyError> {
        let period = match *self.storage_billed_ms {
            None => {
                *self.storage_billed_ms = Some(now_ms);
                return Ok(Some(0));
            }
            // A clock behind the last billing (a new leader's): nothing yet.
            Some(last) if now_ms <= last => return Ok(Some(0)),
            Some(last) => now_ms - last,
        };
        *self.storage_billed_ms = Some(now_ms);
        let priced = self.priced_piece_bytes();
        if priced.is_empty() {
            return Ok(Some(0));
        }
        let total = self.total_stored_bytes();
        let payers: Vec<TenantName> = self
            .store
            .usage
            .iter()
            .filter(|(t, u)| u.bytes > 0 && t.as_str() != ADMIN_TENANT)
            .map(|(t, _)| t.clone())
            .collect();
        let mut posted = 0;
        for tenant in payers {
            let holdings = self.holdings_of(&tenant, total, &priced);
            match storage_bill(&tenant, "", &holdings, period) {
                Ok(None) => {}
                Ok(Some(bill)) => posted += self.post_storage_bill(&tenant, &bill, now_ms)?,
                Err(e) => self.audit_storage(&tenant, "storage-unbilled", e.to_string(), now_ms)?,
            }
        }
        Ok(Some(posted))
    }

    /// Posts `bill` (one tenant's), scaled down to its spendable balance,
    /// as one entry per [`MAX_TRANSFERS`] lenders; returns how many posted.
    fn post_storage_bill(
        &mut self,
        tenant: &str,
        bill: &Entry,
        now_ms: u64,
    ) -> Result<u64, ApplyError> {
        // One transfer per lender (a lender's nodes may have several prices).
        let mut due: BTreeMap<Account, u128> = BTreeMap::new();
        for t in &bill.transfers {
            *due.entry(t.to.clone()).or_default() += u128::from(t.amount.0);
        }
        let owed: u128 = due.values().sum();
        let from = Account::Tenant(tenant.to_string());
        let available = u128::from(self.balances.get(&from).copied().unwrap_or_default().0);
        let transfers: Vec<Transfer> = due
            .into_iter()
            .filter_map(|(to, amount)| {
                let paid = if owed > available {
                    amount * available / owed
                } else {
                    amount
                };
                let paid = Amount(u64::try_from(paid).unwrap_or(u64::MAX));
                (!paid.is_zero()).then(|| Transfer {
                    from: from.clone(),
                    to,
                    amount: paid,
                })
            })
            .collect();
        let paid: u128 = transfers.iter().map(|t| u128::from(t.amount.0)).sum();
        let shortfall = Amount(u64::try_from(owed - paid).unwrap_or(u64::MAX));
        if transfers.is_empty() {
            let why = format!("owes {owed}, holds {available}; short by {shortfall}");
            self.audit_storage(tenant, "storage-unpaid", why, now_ms)?;
            return Ok(0);
        }
        let mut posted = 0;
        for (i, part) in transfers.chunks(MAX_TRANSFERS).enumerate() {
            let entry = Entry {
                reason: Reason::StorageBill,
                refs: Refs {
                    tenant: Some(tenant.to_string()),
                    shortfall: (i == 0 && !shortfall.is_zero()).then_some(shortfall),
                    ..Refs::default()
                },
                transfers: part.to_vec(),
            };
            // Cannot overdraw (scaled to the balance above); a lender's
            // balance that would overflow leaves this part unpaid.
            match self.post_entry(entry, now_ms) {
                Ok(_) => posted += 1,
                Err(e) => self.audit_storage(tenant, "storage-unbilled", e.to_string(), now_ms)?,
            }
        }
        Ok(posted)
    }

    fn audit_storage(
        &mut self,
        tenant: &str,
        what: &str,
        detail: String,
        now_ms: u64,
    ) -> Result<(), ApplyError> {
        let p = Pending {
            kind: format!("market.{what}"),
            tenants: vec![tenant.to_string()],
            subject: format!("storage bill of {tenant}"),
            detail,
            at_ms: Some(now_ms),
        };
        self.audit_append(self.applying, p)
    }
}

/// The command that bills storage at `now_ms`, if one is due with billings
/// `every_ms` apart (for the leader's reconciler).
pub fn bill_storage_command(state: &State, now_ms: u64, every_ms: u64) -> Option<crate::Command> {
    state
        .storage_billing_due(now_ms, every_ms)
        .then_some(crate::Command::Market(MarketCommand::BillStorage {
            now_ms,
        }))
}

#[cfg(test)]
#[path = "storage_billing_tests.rs"]
mod tests;
