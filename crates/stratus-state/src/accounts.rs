//! The market's money in the replicated state: every tenant's account, the
//! double-entry ledger, and the commands that move money (issue 15).
//!
//! What money is and how an entry posts is [`stratus_market`]'s (pure,
//! property-tested); this module stores it. Balances are small (two rows
//! per tenant that ever had money: spendable and held, plus the operator's
//! and the amount in circulation) and live in memory as [`Tracked`] rows,
//! like tenants. Entries grow without bound, so they live only in the
//! storage: [`Table::Ledger`] (`seq` big-endian → JSON [`LedgerRecord`]) and
//! [`Table::LedgerIndex`] (`tenant \0 seq` → nothing), the index a tenant's
//! history and statement are range scans of.
//!
//! Every entry posts through [`stratus_market::post`] inside `apply`, so all
//! replicas accept or refuse it the same way: whole or not at all, never a
//! balance below zero (a refusal is [`ApplyError::InsufficientFunds`] naming
//! the shortfall). Deposits and withdrawals are the operator's, recorded
//! through the built-in settlement adapter (the control plane's
//! `settlement` module) with the operator's reference.
//!
//! Lenders' offers (a node's prices and availability, [`Offer`]) are rows
//! too, one per node that has one ([`State::offers`]).

use serde::{Deserialize, Serialize};
use stratus_market::{post, Account, Amount, Entry, LedgerError, Offer, Reason, Refs, Transfer};
use stratus_types::{NodeId, TenantName, ADMIN_TENANT};

use crate::kv::Table;
use crate::rows::Tracked;
use crate::seqlog::{index_key, seq_key, seqs_after};
use crate::{ApplyError, State};

/// Longest operator reference on a deposit or withdrawal, in bytes.
pub const MAX_REFERENCE: usize = 256;
/// Most records one history or statement page returns.
pub const MAX_PAGE: usize = 1_000;

/// A change to the market's money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketCommand {
    /// Money enters the pool for `tenant` (the operator records it).
    Deposit {
        /// Who receives it.
        tenant: TenantName,
        /// How much.
        amount: Amount,
        /// The operator's reference (a payment id).
        reference: String,
        /// Leader time.
        now_ms: u64,
    },
    /// Money leaves the pool from `tenant`'s spendable balance.
    Withdraw {
        /// Whose.
        tenant: TenantName,
        /// How much.
        amount: Amount,
        /// The operator's reference (a payout id).
        reference: String,
        /// Leader time.
        now_ms: u64,
    },
    /// A node's owner sets (or, with `None`, withdraws) the node's offer.
    /// Who may is checked by the API (the node's owner or the operator).
    SetOffer {
        /// The node.
        node: NodeId,
        /// Its prices and availability.
        offer: Option<Offer>,
    },
    /// Like `SetOffer`, with the node's per-task price (what `SetOffer`
    /// leaves at zero).
    SetOfferWithTask {
        /// The node.
        node: NodeId,
        /// Its prices and availability (`None`: withdrawn).
        offer: Option<Offer>,
        /// Its price per task.
        task: Amount,
    },
    /// The operator sets the pool's fee (basis points of lenders' amounts,
    /// at most [`crate::deals::MAX_POOL_FEE_BPS`]); deals already placed
    /// keep theirs.
    SetPoolFee {
        /// Basis points.
        bps: u32,
    },
    /// The leader ends a deal whose instance was lost, vanished or ended
    /// without a last usage report: the rest of the escrow is refunded.
    CloseDeal {
        /// The instance.
        instance: String,
        /// Leader time.
        now_ms: u64,
    },
    /// A tenant registers (or, with `None`, removes) its order key: from
    /// then on its market orders must be signed by it.
    SetOrderKey {
        /// The tenant.
        tenant: TenantName,
        /// The ed25519 public key.
        key: Option<[u8; 32]>,
    },
    /// The leader bills stored bytes for the time since the last billing
    /// ([`crate::storage_billing`]); the first one only records the time.
    BillStorage {
        /// Leader time.
        now_ms: u64,
    },
    /// The stake a lender holds for each replica of a verified run its
    /// nodes take ([`crate::trusted`]; zero: none).
    SetTrustedStake {
        /// The stake.
        amount: Amount,
    },
}

/// One posted entry, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Position in the ledger (1, 2, ...).
    pub seq: u64,
    /// When it was posted (leader clock, ms).
    pub at_ms: u64,
    /// The entry.
    pub entry: Entry,
}

/// A tenant's account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    /// The tenant.
    pub tenant: TenantName,
    /// What it may spend, in the pool's smallest unit.
    #[schema(value_type = u64)]
    pub balance: Amount,
    /// What it has in escrow for open deals.
    #[schema(value_type = u64)]
    pub held: Amount,
}

impl stratus_market::Balances for Tracked<Account, Amount> {
    fn balance(&self, account: &Account) -> Amount {
        self.get(account).copied().unwrap_or_default()
    }

    fn set_balance(&mut self, account: &Account, amount: Amount) {
        if amount.is_zero() {
            self.remove(account);
        } else {
            self.insert(account.clone(), amount);
        }
    }
}

/// The tenants an entry concerns (each one's history lists it).
/// (The operator's tenant sees the entries of the pool's fees.)
pub(crate) fn tenants_of(entry: &Entry) -> Vec<&str> {
    let mut ts: Vec<&str> = entry
        .transfers
        .iter()
        .flat_map(|t| [&t.from, &t.to])
        .filter_map(|a| match a {
            Account::Tenant(t) | Account::Held(t) => Some(t.as_str()),
            Account::Operator => Some(ADMIN_TENANT),
            Account::External => None,
        })
        .collect();
    ts.sort();
    ts.dedup();
    ts
}

impl From<LedgerError> for ApplyError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::InsufficientFunds { .. } => ApplyError::InsufficientFunds(e.to_string()),
            LedgerError::Overflow(_) => ApplyError::Conflict(e.to_string()),
            LedgerError::Empty
            | LedgerError::TooManyTransfers { .. }
            | LedgerError::ZeroTransfer { .. }
            | LedgerError::SelfTransfer(_) => ApplyError::Invalid(e.to_string()),
        }
    }
}

impl State {
    /// Applies a market command; the result is the posted entry's `seq`.
    pub(crate) fn apply_market(&mut self, cmd: &MarketCommand) -> Result<Option<u64>, ApplyError> {
        match cmd {
            MarketCommand::Deposit {
                tenant,
                amount,
                reference,
                now_ms,
            } => self.cross_edge(Reason::Deposit, tenant, *amount, reference, *now_ms),
            MarketCommand::Withdraw {
                tenant,
                amount,
                reference,
                now_ms,
            } => self.cross_edge(Reason::Withdrawal, tenant, *amount, reference, *now_ms),
            MarketCommand::SetOffer { node, offer } => self.set_offer(node, offer, Amount::ZERO),
            MarketCommand::SetOfferWithTask { node, offer, task } => {
                self.set_offer(node, offer, *task)
            }
            MarketCommand::SetPoolFee { bps } => {
                if *bps > crate::deals::MAX_POOL_FEE_BPS {
                    return Err(ApplyError::invalid(format!(
                        "a pool fee of {bps} basis points is over the most, {}",
                        crate::deals::MAX_POOL_FEE_BPS
                    )));
                }
                *self.pool_fee_bps = *bps;
                Ok(None)
            }
            MarketCommand::CloseDeal { instance, now_ms } => {
                self.refund_deal(instance, *now_ms)?;
                Ok(None)
            }
            MarketCommand::SetOrderKey { tenant, key } => {
                self.require_tenant(tenant)?;
                match key {
                    Some(k) => {
                        // A small-order key would let anyone forge
                        // signatures that verify under it.
                        let usable =
                            ed25519_dalek::VerifyingKey::from_bytes(k).is_ok_and(|v| !v.is_weak());
                        if !usable {
                            return Err(ApplyError::invalid(
                                "the order key is not a usable ed25519 public key",
                            ));
                        }
                        self.order_keys.insert(tenant.clone(), *k);
                    }
                    None => {
                        self.order_keys.remove(tenant);
                    }
                }
                Ok(None)
            }
            MarketCommand::BillStorage { now_ms } => self.bill_storage(*now_ms),
            MarketCommand::SetTrustedStake { amount } => {
                *self.trusted_stake = *amount;
                Ok(None)
            }
        }
    }

    fn set_offer(
        &mut self,
        node: &NodeId,
        offer: &Option<Offer>,
        task: Amount,
    ) -> Result<Option<u64>, ApplyError> {
        {
            {
                if !self.nodes.contains_key(node) {
                    return Err(ApplyError::not_found(format!(
                        "node {node} is not registered"
                    )));
                }
                match offer {
                    Some(o) => {
                        o.availability
                            .validate()
                            .map_err(|e| ApplyError::invalid(e.to_string()))?;
                        self.offers.insert(*node, o.clone());
                        if task.is_zero() {
                            self.task_prices.remove(node);
                        } else {
                            self.task_prices.insert(*node, task);
                        }
                    }
                    None => {
                        self.offers.remove(node);
                        self.task_prices.remove(node);
                    }
                }
                Ok(None)
            }
        }
    }

    /// A deposit (into `tenant`'s account) or a withdrawal (out of it): one
    /// transfer across the pool's edge, with the operator's reference.
    fn cross_edge(
        &mut self,
        reason: Reason,
        tenant: &TenantName,
        amount: Amount,
        reference: &str,
        now_ms: u64,
    ) -> Result<Option<u64>, ApplyError> {
        self.require_tenant(tenant)?;
        let mut transfers = Vec::new();
        if reason == Reason::Withdrawal {
            // The operator's tenant also spends the pool's fees, first.
            let mut rest = amount;
            if tenant == ADMIN_TENANT {
                let fees = self
                    .balances
                    .get(&Account::Operator)
                    .copied()
                    .unwrap_or_default();
                let from_fees = fees.min(amount);
                if !from_fees.is_zero() {
                    transfers.push(Transfer {
                        from: Account::Operator,
                        to: Account::External,
                        amount: from_fees,
                    });
                }
                rest = Amount(amount.0 - from_fees.0);
            }
            if !rest.is_zero() || transfers.is_empty() {
                transfers.push(Transfer {
                    from: Account::Tenant(tenant.clone()),
                    to: Account::External,
                    amount: rest,
                });
            }
        } else {
            transfers.push(Transfer {
                from: Account::External,
                to: Account::Tenant(tenant.clone()),
                amount,
            });
        }
        if reference.len() > MAX_REFERENCE {
            return Err(ApplyError::invalid(format!(
                "the reference is {} bytes; at most {MAX_REFERENCE}",
                reference.len()
            )));
        }
        let entry = Entry {
            reason,
            refs: Refs {
                external: (!reference.is_empty()).then(|| reference.to_string()),
                ..Refs::default()
            },
            transfers,
        };
        self.post_entry(entry, now_ms).map(Some)
    }

    /// Posts `entry` (all of it or nothing) and records it; returns its seq.
    pub(crate) fn post_entry(&mut self, entry: Entry, now_ms: u64) -> Result<u64, ApplyError> {
        post(&mut self.balances, &entry)?;
        let seq = *self.ledger_seq + 1;
        *self.ledger_seq = seq;
        let kv = self.store.kv.as_mut();
        for t in tenants_of(&entry) {
            kv.put(Table::LedgerIndex, &index_key(t, seq), &[]);
        }
        let record = LedgerRecord {
            seq,
            at_ms: now_ms,
            entry,
        };
        let doc = serde_json::to_vec(&record)
            .map_err(|e| ApplyError::internal(format!("cannot encode ledger entry {seq}: {e}")))?;
        kv.put(Table::Ledger, &seq_key(seq), &doc);
        self.audit_ledger(&record)?;
        Ok(seq)
    }

    /// `tenant`'s account (zero if it never had money). The operator's
    /// tenant ([`ADMIN_TENANT`]) also holds the pool's fees: its balance
    /// counts them, and its withdrawals take them first.
    pub fn account(&self, tenant: &str) -> AccountView {
        let b = |a: Account| self.balances.get(&a).copied().unwrap_or_default();
        let mut balance = b(Account::Tenant(tenant.to_string()));
        if tenant == ADMIN_TENANT {
            balance = Amount(balance.0.saturating_add(b(Account::Operator).0));
        }
        AccountView {
            tenant: tenant.to_string(),
            balance,
            held: b(Account::Held(tenant.to_string())),
        }
    }

    /// The pool operator's fees and the amount in circulation.
    pub fn pool_totals(&self) -> (Amount, Amount) {
        let b = |a: Account| self.balances.get(&a).copied().unwrap_or_default();
        (b(Account::Operator), b(Account::External))
    }

    /// Entry `seq`, if posted.
    pub fn ledger_record(&self, seq: u64) -> Option<LedgerRecord> {
        let doc = self.store.kv.get(Table::Ledger, &seq_key(seq))?;
        serde_json::from_slice(&doc).ok()
    }

    /// A page of the entries concerning `tenant` (every entry when `None`:
    /// the operator's view): those with `seq > after` and
    /// `from_ms <= at_ms < to_ms`, oldest first, at most `limit` (capped at
    /// [`MAX_PAGE`]). The page's `next` is the `after` of the next page, or
    /// `None` at the end.
    pub fn ledger_page(
        &self,
        tenant: Option<&str>,
        after: u64,
        window: std::ops::Range<u64>,
        limit: usize,
    ) -> LedgerPage {
        let limit = limit.clamp(1, MAX_PAGE);
        // Walk the seqs in order (the whole ledger, or the tenant's index),
        // examining at most `MAX_PAGE * 10` per page so a narrow time window
        // costs bounded work per request.
        let (seqs, mut more) = seqs_after(
            self.store.kv.as_ref(),
            Table::Ledger,
            Table::LedgerIndex,
            tenant,
            after,
            MAX_PAGE * 10,
        );
        let mut page = LedgerPage::default();
        for seq in &seqs {
            if page.records.len() == limit {
                more = true;
                break;
            }
            page.next = Some(*seq);
            if let Some(r) = self.ledger_record(*seq) {
                if window.contains(&r.at_ms) {
                    page.records.push(r);
                }
            }
        }
        if !more {
            page.next = None;
        }
        page
    }
}

/// A page of ledger records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerPage {
    /// The records, oldest first.
    pub records: Vec<LedgerRecord>,
    /// Where the next page starts (its `after`), or `None` at the end.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests;
