//! The double-entry ledger: accounts, transfers, entries, and the one
//! function that posts an entry.
//!
//! **Balanced by construction.** An [`Entry`] is a list of [`Transfer`]s,
//! each moving one amount from one account (debited) to another (credited),
//! as TigerBeetle models money: debits equal credits in every entry because
//! each transfer is both. An entry posts whole or not at all.
//!
//! **Where money comes from.** [`Account::External`] is the world outside the
//! pool, on the other side of the settlement adapter. A deposit moves money
//! from it to a tenant, a withdrawal back. Its balance is the only one that
//! is negative in the double-entry sense; [`Balances`] stores it negated, as
//! the amount *in circulation*, so every stored figure is an [`Amount`] and
//! **conservation** reads: the sum of all other balances equals the amount
//! in circulation, after any sequence of entries (property-tested below and
//! in `settle`).
//!
//! **No balance goes negative.** [`post`] computes every balance an entry
//! touches before it writes any, and refuses the entry if one would go
//! below zero or overflow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stratus_types::TenantName;

use crate::money::{Amount, MoneyError};

/// Most transfers in one entry (a settlement has at most six).
pub const MAX_TRANSFERS: usize = 64;

/// An account of the pool's ledger.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// A tenant's spendable balance (requesters, lenders, app and dataset
    /// owners are all tenants).
    Tenant(TenantName),
    /// What a tenant has in escrow for its open deals.
    Held(TenantName),
    /// The pool operator's fees.
    Operator,
    /// The world outside the pool (the settlement adapter's side): its
    /// stored balance is the amount in circulation.
    External,
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Tenant(t) => write!(f, "tenant:{t}"),
            Account::Held(t) => write!(f, "held:{t}"),
            Account::Operator => f.write_str("operator"),
            Account::External => f.write_str("external"),
        }
    }
}

/// One movement of money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The account the money leaves.
    pub from: Account,
    /// The account the money reaches.
    pub to: Account,
    /// How much (never zero).
    pub amount: Amount,
}

/// Why an entry was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Money entered through the settlement adapter.
    Deposit,
    /// Money left through the settlement adapter.
    Withdrawal,
    /// A requester's money put in escrow for a deal.
    Hold,
    /// A deal settled: lender, operator, app and dataset owners paid, the
    /// rest of the escrow returned.
    Settlement,
    /// A deal ended without payment (the lender's fault, or cancelled
    /// before it ran): the escrow returned.
    Refund,
    /// Stored bytes billed to a bucket owner for the lenders holding them.
    StorageBill,
    /// A lender's stake held for a replica of a verified run.
    Stake,
    /// A verified run's verdict: stakes returned, and a losing replica's
    /// forfeited part paid to the winners.
    StakeSettled,
}

/// What an entry refers to (all optional, for statements and audits).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Refs {
    /// The deal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deal: Option<String>,
    /// The instance that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The bucket billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The node (hex id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The operator's reference of a deposit or withdrawal (e.g. a bank
    /// transfer id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// The tenant billed (a storage bill covers all of its buckets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What the entry could not take for lack of funds (a storage bill
    /// larger than the payer's balance is scaled down to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<Amount>,
}

/// One balanced ledger entry: its transfers post together or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Why.
    pub reason: Reason,
    /// What it refers to.
    pub refs: Refs,
    /// The movements.
    pub transfers: Vec<Transfer>,
}

/// Why an entry was refused (nothing was posted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// An entry without transfers.
    #[error("a ledger entry needs at least one transfer")]
    Empty,
    /// Too many transfers.
    #[error("a ledger entry has {found} transfers; at most {max}", max = MAX_TRANSFERS)]
    TooManyTransfers {
        /// How many it had.
        found: usize,
    },
    /// A transfer of nothing.
    #[error("a transfer from {from} to {to} moves nothing")]
    ZeroTransfer {
        /// From.
        from: Account,
        /// To.
        to: Account,
    },
    /// A transfer from an account to itself.
    #[error("a transfer from {0} to itself")]
    SelfTransfer(Account),
    /// An account would go below zero.
    #[error("insufficient funds in {account}: it holds {balance}, the entry takes {needed}; short by {shortfall}")]
    InsufficientFunds {
        /// The account.
        account: Account,
        /// Its balance before the entry.
        balance: Amount,
        /// What the entry takes from it (net).
        needed: Amount,
        /// `needed - balance`.
        shortfall: Amount,
    },
    /// A balance would not fit in 64 bits.
    #[error("{0} would overflow")]
    Overflow(Account),
}

/// Where balances live: a map in tests, redb rows in the replicated state.
pub trait Balances {
    /// The stored balance of `account` (zero if it has none). For
    /// [`Account::External`], the amount in circulation.
    fn balance(&self, account: &Account) -> Amount;
    /// Stores a new balance.
    fn set_balance(&mut self, account: &Account, amount: Amount);
}

impl Balances for BTreeMap<Account, Amount> {
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

/// Checks `entry` and posts it to `balances`: all of it, or nothing.
pub fn post(balances: &mut impl Balances, entry: &Entry) -> Result<(), LedgerError> {
    let next = preview(balances, entry)?;
    for (account, amount) in &next {
        balances.set_balance(account, *amount);
    }
    Ok(())
}

/// The balances `entry` would leave in the accounts it touches, without
/// posting it.
pub fn preview(
    balances: &impl Balances,
    entry: &Entry,
) -> Result<BTreeMap<Account, Amount>, LedgerError> {
    if entry.transfers.is_empty() {
        return Err(LedgerError::Empty);
    }
    if entry.transfers.len() > MAX_TRANSFERS {
        return Err(LedgerError::TooManyTransfers {
            found: entry.transfers.len(),
        });
    }
    // Net movement per account, as (in, out), so the check is on the net
    // result: an entry may pass money through an account.
    let mut flows: BTreeMap<&Account, (u128, u128)> = BTreeMap::new();
    for t in &entry.transfers {
        if t.amount.is_zero() {
            return Err(LedgerError::ZeroTransfer {
                from: t.from.clone(),
                to: t.to.clone(),
            });
        }
        if t.from == t.to {
            return Err(LedgerError::SelfTransfer(t.from.clone()));
        }
        flows.entry(&t.from).or_default().1 += u128::from(t.amount.0);
        flows.entry(&t.to).or_default().0 += u128::from(t.amount.0);
    }
    let mut next = BTreeMap::new();
    for (account, (inflow, outflow)) in flows {
        // The external account's stored figure is negated: money leaving it
        // enters circulation.
        let (plus, minus) = if *account == Account::External {
            (outflow, inflow)
        } else {
            (inflow, outflow)
        };
        let balance = balances.balance(account);
        let after = u128::from(balance.0) + plus;
        let Some(after) = after.checked_sub(minus) else {
            let needed = clamp(minus - plus);
            return Err(LedgerError::InsufficientFunds {
                account: account.clone(),
                balance,
                needed,
                shortfall: Amount(needed.0.saturating_sub(balance.0)),
            });
        };
        let after = u64::try_from(after).map_err(|_| LedgerError::Overflow(account.clone()))?;
        next.insert(account.clone(), Amount(after));
    }
    Ok(next)
}

fn clamp(v: u128) -> Amount {
    Amount(u64::try_from(v).unwrap_or(u64::MAX))
}

/// A transfer, or nothing when `amount` is zero (settlements skip the
/// parties that get nothing).
pub(crate) fn transfer(from: &Account, to: &Account, amount: Amount) -> Option<Transfer> {
    (!amount.is_zero()).then(|| Transfer {
        from: from.clone(),
        to: to.clone(),
        amount,
    })
}

/// The amount in circulation and the sum of every other balance: equal in
/// a ledger where money is conserved. For tests and audits of a whole
/// ledger held as a map.
pub fn totals(balances: &BTreeMap<Account, Amount>) -> Result<(Amount, Amount), MoneyError> {
    let circulation = balances.balance(&Account::External);
    let rest = Amount::sum(
        balances
            .iter()
            .filter(|(a, _)| **a != Account::External)
            .map(|(_, v)| *v),
        "the sum of balances",
    )?;
    Ok((circulation, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Account {
        Account::Tenant(name.into())
    }

    fn entry(reason: Reason, transfers: Vec<Transfer>) -> Entry {
        Entry {
            reason,
            refs: Refs::default(),
            transfers,
        }
    }

    fn tr(from: Account, to: Account, amount: u64) -> Transfer {
        Transfer {
            from,
            to,
            amount: Amount(amount),
        }
    }

    #[test]
    fn deposits_enter_circulation_and_withdrawals_leave_it() {
        let mut b = BTreeMap::new();
        post(
            &mut b,
            &entry(Reason::Deposit, vec![tr(Account::External, t("bob"), 100)]),
        )
        .expect("deposit");
        assert_eq!(b.balance(&t("bob")), Amount(100));
        assert_eq!(b.balance(&Account::External), Amount(100));
        post(
            &mut b,
            &entry(
                Reason::Withdrawal,
                vec![tr(t("bob"), Account::External, 40)],
            ),
        )
        .expect("withdraw");
        assert_eq!(totals(&b), Ok((Amount(60), Amount(60))));
    }

    #[test]
    fn an_entry_that_would_overdraw_posts_nothing_and_names_the_shortfall() {
        let mut b = BTreeMap::new();
        b.set_balance(&t("bob"), Amount(10));
        b.set_balance(&Account::External, Amount(10));
        let before = b.clone();
        let err = post(
            &mut b,
            &entry(
                Reason::Hold,
                vec![
                    tr(t("bob"), Account::Held("bob".into()), 5),
                    tr(t("bob"), Account::Operator, 8),
                ],
            ),
        )
        .expect_err("overdraw");
        assert_eq!(
            err,
            LedgerError::InsufficientFunds {
                account: t("bob"),
                balance: Amount(10),
                needed: Amount(13),
                shortfall: Amount(3),
            }
        );
        assert_eq!(b, before);
    }

    #[test]
    fn money_may_pass_through_an_account_within_one_entry() {
        let mut b = BTreeMap::new();
        post(
            &mut b,
            &entry(
                Reason::Deposit,
                vec![tr(Account::External, t("a"), 5), tr(t("a"), t("b"), 5)],
            ),
        )
        .expect("pass-through");
        assert_eq!(b.balance(&t("a")), Amount::ZERO);
        assert_eq!(b.balance(&t("b")), Amount(5));
    }

    #[test]
    fn malformed_entries_are_refused() {
        let mut b = BTreeMap::new();
        assert_eq!(
            post(&mut b, &entry(Reason::Deposit, vec![])),
            Err(LedgerError::Empty)
        );
        assert!(matches!(
            post(
                &mut b,
                &entry(Reason::Deposit, vec![tr(Account::External, t("a"), 0)])
            ),
            Err(LedgerError::ZeroTransfer { .. })
        ));
        assert!(matches!(
            post(&mut b, &entry(Reason::Deposit, vec![tr(t("a"), t("a"), 1)])),
            Err(LedgerError::SelfTransfer(_))
        ));
        let many = vec![tr(Account::External, t("a"), 1); MAX_TRANSFERS + 1];
        assert!(matches!(
            post(&mut b, &entry(Reason::Deposit, many)),
            Err(LedgerError::TooManyTransfers { .. })
        ));
        assert_eq!(
            post(
                &mut b,
                &entry(Reason::Deposit, vec![tr(Account::Operator, t("a"), 1)])
            ),
            Err(LedgerError::InsufficientFunds {
                account: Account::Operator,
                balance: Amount::ZERO,
                needed: Amount(1),
                shortfall: Amount(1),
            })
        );
        assert!(b.is_empty());
    }

    #[test]
    fn circulation_cannot_overflow() {
        let mut b = BTreeMap::new();
        b.set_balance(&Account::External, Amount(u64::MAX));
        b.set_balance(&t("a"), Amount(u64::MAX));
        assert_eq!(
            post(
                &mut b,
                &entry(Reason::Deposit, vec![tr(Account::External, t("b"), 1)])
            ),
            Err(LedgerError::Overflow(Account::External))
        );
        b.set_balance(&Account::Operator, Amount(1));
        assert_eq!(
            post(
                &mut b,
                &entry(Reason::Deposit, vec![tr(Account::Operator, t("a"), 1)])
            ),
            Err(LedgerError::Overflow(t("a")))
        );
        assert_eq!(b.balance(&Account::Operator), Amount(1));
    }
}
