//! A deal in progress: its escrow, what has been paid out of it, and the
//! entries that pay usage as it is reported, top the escrow up, close it or
//! refund it.
//!
//! **Usage is reported cumulatively** (each report holds the instance's
//! whole use so far) and every payment is the difference between what the
//! whole use costs and what was already paid. So the cost is rounded once,
//! on the total: reporting in many steps never costs the requester more
//! than reporting once (property-tested), and a lost or repeated report
//! loses or duplicates nothing.
//!
//! **The lender is paid only what the escrow holds**: its gross amount
//! (per-task price plus usage cost) is capped at the escrow less the app
//! and dataset prices. The pool's fee is taken from the lender's gross, on
//! the total too. When a deal closes, the app and dataset owners get their
//! prices and the requester what is left; when it ends through the lender's
//! fault, the requester gets back what is left and nobody else anything
//! more.

use serde::{Deserialize, Serialize};

use crate::ledger::{transfer, Account, Entry, Reason};
use crate::money::{floor_div, Amount};
use crate::settle::{Terms, TermsError, Usage, BPS};

/// A deal's terms and how far it has been paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The money terms (`held`: everything put in escrow so far).
    pub terms: Terms,
    /// The instance's use as last reported (cumulative).
    pub usage: Usage,
    /// The lender's gross amount paid so far (its share and the fee).
    pub paid: Amount,
    /// The part of `paid` that went to the pool's fee.
    pub fee_paid: Amount,
}

/// Why a usage report cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A cumulative figure went down.
    #[error("usage went down ({what}: {before} then {after}); reports are cumulative")]
    Decreased {
        /// Which figure.
        what: &'static str,
        /// Last reported.
        before: u64,
        /// Now reported.
        after: u64,
    },
    /// The terms cannot settle.
    #[error(transparent)]
    Terms(#[from] TermsError),
}

impl From<crate::money::MoneyError> for UsageError {
    fn from(e: crate::money::MoneyError) -> Self {
        UsageError::Terms(TermsError::Money(e))
    }
}

impl Deal {
    /// A deal nothing has been paid from yet.
    pub fn new(terms: Terms) -> Deal {
        Deal {
            terms,
            usage: Usage::default(),
            paid: Amount::ZERO,
            fee_paid: Amount::ZERO,
        }
    }

    /// What is still in escrow.
    pub fn left(&self) -> Amount {
        Amount(self.terms.held.0.saturating_sub(self.paid.0))
    }

    /// The entry that adds `amount` to the escrow (a service's next
    /// period). The caller posts it, then records it with
    /// [`Deal::held_more`].
    pub fn top_up(&self, amount: Amount) -> Entry {
        Entry {
            reason: Reason::Hold,
            refs: self.terms.refs(),
            transfers: transfer(
                &Account::Tenant(self.terms.requester.clone()),
                &self.terms.escrow(),
                amount,
            )
            .into_iter()
            .collect(),
        }
    }

    /// Records a posted [`Deal::top_up`].
    pub fn held_more(&mut self, amount: Amount) -> Result<(), TermsError> {
        self.terms.held = self.terms.held.checked_add(amount, "the escrow")?;
        Ok(())
    }

    /// Takes the cumulative `usage` and returns the entry paying the lender
    /// and the pool what it adds (`None` when it adds nothing). The deal is
    /// updated as if the entry posted: post it, or drop the deal's copy.
    pub fn charge(&mut self, usage: &Usage) -> Result<Option<Entry>, UsageError> {
        check_monotone(&self.usage, usage)?;
        let t = &self.terms;
        t.validate()?;
        let cap = t.held.checked_sub(t.fixed()?, "the escrow")?;
        let gross = t.lender_gross(usage)?.min(cap).max(self.paid);
        let fee = floor_div(
            u128::from(gross.0) * u128::from(t.fee_bps),
            u128::from(BPS),
            "the pool fee",
        )?
        .max(self.fee_paid);
        let fee_due = fee.checked_sub(self.fee_paid, "the pool fee")?;
        let due = gross.checked_sub(self.paid, "the lender's amount")?;
        let lender_due = due.checked_sub(fee_due, "the lender's amount")?;
        let escrow = t.escrow();
        let transfers: Vec<_> = transfer(&escrow, &Account::Tenant(t.lender.clone()), lender_due)
            .into_iter()
            .chain(transfer(&escrow, &Account::Operator, fee_due))
            .collect();
        let entry = (!transfers.is_empty()).then(|| Entry {
            reason: Reason::Settlement,
            refs: t.refs(),
            transfers,
        });
        self.usage = *usage;
        self.paid = gross;
        self.fee_paid = fee;
        Ok(entry)
    }

    /// Takes the final cumulative `usage` and returns the entry that ends
    /// the deal: the lender and the pool paid what is still due, the app
    /// and dataset owners their prices, the requester the rest. The escrow
    /// is empty after it posts.
    pub fn close(&mut self, usage: &Usage) -> Result<Entry, UsageError> {
        let mut entry = self.charge(usage)?.unwrap_or_else(|| Entry {
            reason: Reason::Settlement,
            refs: self.terms.refs(),
            transfers: Vec::new(),
        });
        let t = &self.terms;
        let escrow = t.escrow();
        let mut left = self.left();
        for (owner, price) in t.fixed_payees() {
            left = left
                .checked_sub(*price, "the escrow")
                .map_err(TermsError::from)?;
            entry
                .transfers
                .extend(transfer(&escrow, &Account::Tenant(owner.clone()), *price));
        }
        entry.transfers.extend(transfer(
            &escrow,
            &Account::Tenant(t.requester.clone()),
            left,
        ));
        self.paid = t.held;
        Ok(entry)
    }

    /// The entry that ends the deal through the lender's fault (node lost,
    /// agent error, no final report): what is left in escrow returns to the
    /// requester; `None` when nothing is left.
    pub fn refund(&mut self) -> Option<Entry> {
        let left = self.left();
        self.paid = self.terms.held;
        let t = &self.terms;
        let transfers: Vec<_> = transfer(&t.escrow(), &Account::Tenant(t.requester.clone()), left)
            .into_iter()
            .collect();
        (!transfers.is_empty()).then(|| Entry {
            reason: Reason::Refund,
            refs: t.refs(),
            transfers,
        })
    }
}

fn check_monotone(before: &Usage, after: &Usage) -> Result<(), UsageError> {
    for (what, b, a) in [
        ("cpu_ms", before.cpu_ms, after.cpu_ms),
        (
            "memory_peak_bytes",
            before.memory_peak_bytes,
            after.memory_peak_bytes,
        ),
        ("wall_ms", before.wall_ms, after.wall_ms),
        ("bytes_served", before.bytes_served, after.bytes_served),
    ] {
        if a < b {
            return Err(UsageError::Decreased {
                what,
                before: b,
                after: a,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "deal_tests.rs"]
mod tests;
