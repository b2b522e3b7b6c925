//! Prices, metered usage, and the entries a deal makes: the hold when it is
//! placed, the settlement or refund when it ends.
//!
//! **One rounding, down, at the end.** A usage's cost adds its terms over a
//! common denominator in 128-bit integers and divides once: the requester is
//! never charged for a fraction of a unit, and splitting a task's usage
//! into reports never costs more than reporting it whole.
//!
//! **Who gets what** when a deal settles, out of the escrow `held`:
//! 1. the app owner and the dataset owner their fixed per-task prices (the
//!    deal could not have been placed with less held than those);
//! 2. the lender its usage cost, capped at what is left: a requester never
//!    pays more than it held (its `max_price`);
//! 3. the pool operator its fee, `fee_bps` basis points of the lender's
//!    amount, taken from it (the workerpool's share, as in iExec);
//! 4. the requester what remains.
//!
//! A deal that ends through the lender's fault (node lost, agent error)
//! pays nobody: the whole escrow returns to the requester.

use serde::{Deserialize, Serialize};
use stratus_types::TenantName;

use crate::deal::{Deal, UsageError};
use crate::ledger::{transfer, Account, Entry, Reason, Refs};
use crate::money::{floor_div, Amount, MoneyError};

/// Bytes in a GiB.
const GIB: u128 = 1 << 30;
/// Milliseconds in an hour.
const HOUR_MS: u128 = 3_600_000;
/// Milliseconds in a billing month (30 days).
pub const MONTH_MS: u64 = 30 * 24 * 3_600_000;
/// Basis points in a whole.
pub const BPS: u32 = 10_000;

/// A lender's prices, in the smallest unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prices {
    /// Per CPU-second used.
    pub cpu_second: Amount,
    /// Per GiB-hour of memory (peak memory × wall time).
    pub memory_gib_hour: Amount,
    /// Per GiB-month stored.
    pub storage_gib_month: Amount,
    /// Per GiB served.
    pub egress_gib: Amount,
}

/// What an instance used, as the agent metered it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// CPU time, milliseconds.
    pub cpu_ms: u64,
    /// Memory high-water mark, bytes.
    pub memory_peak_bytes: u64,
    /// Wall time, milliseconds.
    pub wall_ms: u64,
    /// Bytes served to clients.
    pub bytes_served: u64,
}

/// What `usage` costs at `prices` (storage is billed separately, see
/// [`storage_bill`]).
pub fn usage_cost(prices: &Prices, usage: &Usage) -> Result<Amount, MoneyError> {
    const WHAT: &str = "a usage's cost";
    let over = || MoneyError::Overflow { what: WHAT };
    // Common denominator: GiB × hour in ms (a multiple of 1000 ms).
    let denominator = GIB * HOUR_MS;
    let cpu = u128::from(usage.cpu_ms)
        .checked_mul(u128::from(prices.cpu_second.0))
        .and_then(|v| v.checked_mul(denominator / 1000))
        .ok_or_else(over)?;
    let memory = u128::from(usage.memory_peak_bytes)
        .checked_mul(u128::from(usage.wall_ms))
        .and_then(|v| v.checked_mul(u128::from(prices.memory_gib_hour.0)))
        .ok_or_else(over)?;
    let egress = u128::from(usage.bytes_served)
        .checked_mul(u128::from(prices.egress_gib.0))
        .and_then(|v| v.checked_mul(HOUR_MS))
        .ok_or_else(over)?;
    let total = cpu
        .checked_add(memory)
        .and_then(|v| v.checked_add(egress))
        .ok_or_else(over)?;
    floor_div(total, denominator, WHAT)
}

/// The money terms of a deal, fixed when it is placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The deal's id (in every entry's refs).
    pub deal: String,
    /// Who pays.
    pub requester: TenantName,
    /// The owner of the node that runs it.
    pub lender: TenantName,
    /// The lender's prices.
    pub prices: Prices,
    /// The lender's price per task (what starting one costs it: fetching
    /// and compiling the module), part of the lender's amount.
    #[serde(default)]
    pub task: Amount,
    /// The app owner and its per-task price, if the module is a paid app.
    pub app: Option<(TenantName, Amount)>,
    /// The dataset owner and its per-task price, if a paid dataset is used.
    pub dataset: Option<(TenantName, Amount)>,
    /// The pool operator's fee, basis points of the lender's amount.
    pub fee_bps: u32,
    /// What the requester holds in escrow (its `max_price`).
    pub held: Amount,
}

/// Why a deal could not be made or settled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// The fixed prices alone exceed what the requester would hold.
    #[error("the app and dataset prices ({fixed}) exceed the maximum price {held}")]
    FixedOverHeld {
        /// App + dataset prices.
        fixed: Amount,
        /// The requester's maximum.
        held: Amount,
    },
    /// A fee over 100%.
    #[error("a pool fee of {0} basis points is over 100% ({BPS})")]
    Fee(u32),
    /// Arithmetic that does not fit.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl Terms {
    pub(crate) fn fixed(&self) -> Result<Amount, TermsError> {
        let app = self.app.as_ref().map_or(Amount::ZERO, |(_, p)| *p);
        let dataset = self.dataset.as_ref().map_or(Amount::ZERO, |(_, p)| *p);
        Ok(app.checked_add(dataset, "the app and dataset prices")?)
    }

    /// Checks that the terms can settle: a fee of at most 100%, and fixed
    /// prices that fit in the escrow.
    pub fn validate(&self) -> Result<(), TermsError> {
        if self.fee_bps > BPS {
            return Err(TermsError::Fee(self.fee_bps));
        }
        let fixed = self.fixed()?;
        if fixed > self.held {
            return Err(TermsError::FixedOverHeld {
                fixed,
                held: self.held,
            });
        }
        Ok(())
    }

    pub(crate) fn refs(&self) -> Refs {
        Refs {
            deal: Some(self.deal.clone()),
            ..Refs::default()
        }
    }

    pub(crate) fn escrow(&self) -> Account {
        Account::Held(self.requester.clone())
    }

    /// The entry that puts the requester's money in escrow.
    pub fn hold(&self) -> Result<Entry, TermsError> {
        self.validate()?;
        Ok(Entry {
            reason: Reason::Hold,
            refs: self.refs(),
            transfers: transfer(
                &Account::Tenant(self.requester.clone()),
                &self.escrow(),
                self.held,
            )
            .into_iter()
            .collect(),
        })
    }

    /// The entry that settles the deal after `usage`, all reported at the
    /// end (see the module docs for who gets what; [`Deal`] settles usage
    /// reported in steps).
    pub fn settle(&self, usage: &Usage) -> Result<Entry, UsageError> {
        self.validate()?;
        Deal::new(self.clone()).close(usage)
    }

    /// What the app and dataset owners get, in the order they are paid.
    pub(crate) fn fixed_payees(&self) -> impl Iterator<Item = &(TenantName, Amount)> {
        [&self.app, &self.dataset].into_iter().flatten()
    }

    /// The lender's gross amount for `usage` (per-task price plus usage
    /// cost), before the cap at the escrow.
    pub(crate) fn lender_gross(&self, usage: &Usage) -> Result<Amount, TermsError> {
        Ok(usage_cost(&self.prices, usage)?.checked_add(self.task, "the lender's amount")?)
    }

    /// The entry that returns the whole escrow (the lender's fault, or a
    /// deal cancelled before it ran): [`Deal::refund`] of a deal nothing was
    /// paid from (no transfer when nothing was held).
    pub fn refund(&self) -> Entry {
        Deal::new(self.clone()).refund().unwrap_or_else(|| Entry {
            reason: Reason::Refund,
            refs: self.refs(),
            transfers: Vec::new(),
        })
    }
}

/// One lender's share of a bucket's stored bytes over a billing period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// The owner of the nodes holding the pieces.
    pub lender: TenantName,
    /// Bytes of pieces they hold for the bucket.
    pub bytes: u64,
    /// Their price per GiB-month.
    pub price: Amount,
}

/// The entry billing `payer` for `period_ms` of storage held by
/// `holdings`, pro rata (each lender at its own price, rounded down);
/// `None` when it comes to nothing.
pub fn storage_bill(
    payer: &TenantName,
    bucket: &str,
    holdings: &[Holding],
    period_ms: u64,
) -> Result<Option<Entry>, MoneyError> {
    let from = Account::Tenant(payer.clone());
    let mut transfers = Vec::new();
    for h in holdings {
        let due = u128::from(h.bytes)
            .checked_mul(u128::from(h.price.0))
            .and_then(|v| v.checked_mul(u128::from(period_ms)))
            .ok_or(MoneyError::Overflow {
                what: "a storage bill",
            })?;
        let due = floor_div(due, GIB * u128::from(MONTH_MS), "a storage bill")?;
        if h.lender != *payer {
            transfers.extend(transfer(&from, &Account::Tenant(h.lender.clone()), due));
        }
    }
    Ok((!transfers.is_empty()).then(|| Entry {
        reason: Reason::StorageBill,
        refs: Refs {
            bucket: Some(bucket.to_string()),
            ..Refs::default()
        },
        transfers,
    }))
}

#[cfg(test)]
mod tests;
