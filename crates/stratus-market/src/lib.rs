//! The market's pure core: money, the double-entry ledger, prices, metered
//! usage and settlement.
//!
//! **Owns** what money is and how it moves: [`Amount`] (integers of the
//! pool's smallest unit; no floating point anywhere), the [`ledger`]
//! (accounts, balanced entries, the one [`post`] that applies an entry
//! whole or not at all, never leaving a balance below zero), and
//! [`settle`] (what a usage costs at a lender's prices, the hold, settlement
//! and refund entries of a deal, pro-rata storage bills) lenders'
//! [`offer`]s (prices and weekly availability), requesters' [`order`]s and
//! the worst case a placement holds, deals in progress ([`deal`]: usage
//! paid as it is reported, cumulatively) and signed usage reports
//! ([`metering`]). **Does not own**
//! where balances are stored (the replicated state implements [`Balances`]
//! over its tables), who may move money (the control plane), nor metering
//! (the agent).
//!
//! No IO, no clocks, no randomness: times and amounts come in as
//! arguments, so the replicated state machine can call it from its
//! deterministic `apply`, and property tests can drive it through random
//! histories. The invariant those tests check after every step is
//! **conservation**: the balances of all accounts but
//! [`Account::External`] add up to the amount in circulation (what
//! entered through deposits minus what left through withdrawals).

pub mod deal;
pub mod ledger;
pub mod metering;
pub mod money;
pub mod offer;
pub mod order;
pub mod price_list;
pub mod settle;

pub use deal::{Deal, UsageError};
pub use ledger::{post, Account, Balances, Entry, LedgerError, Reason, Refs, Transfer};
pub use metering::{ReportError, UsageReport};
pub use money::{Amount, MoneyError};
pub use offer::{Availability, AvailabilityError, Offer};
pub use order::{worst_case, Order, OrderError, OrderSignature, Prefer, Reserved};
pub use price_list::{parse_price_list, PriceListError};
pub use settle::{storage_bill, usage_cost, Holding, Prices, Terms, TermsError, Usage};
