//! The settlement adapter: where money enters and leaves the pool.
//!
//! The ledger ([`stratus_state::accounts`]) moves money only between
//! accounts inside the pool; deposits and withdrawals cross its edge, and
//! what happens on the other side (a bank transfer, a card payment, a
//! chain) is a [`Settlement`]'s business. The API asks the adapter first
//! and records the entry after, in this order:
//!
//! - **deposit**: the adapter confirms the money arrived
//!   ([`Settlement::confirm_deposit`]), then the ledger credits the tenant;
//! - **withdrawal**: the ledger debits the tenant first (so money that is
//!   not there is never paid out; a refusal names the shortfall), then the
//!   adapter pays out ([`Settlement::pay_out`]); an adapter that fails after
//!   the debit must be answered by the operator re-crediting with a
//!   deposit, which the error says.
//!
//! The built-in adapter is [`OperatorRecorded`]: the pool operator (the
//! admin token) states what happened outside, optionally with its own
//! reference (a payment id), and the adapter records it as given. A payment processor or
//! a chain implements the same trait later.

use futures::future::BoxFuture;
use stratus_state::accounts::MAX_REFERENCE;

/// Why the adapter could not confirm or pay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    /// The request is not one the adapter can act on.
    #[error("{0}")]
    Invalid(String),
    /// The other side refused or failed.
    #[error("settlement failed: {0}")]
    Failed(String),
}

/// Where money enters and leaves the pool (see the module docs).
pub trait Settlement: Send + Sync + 'static {
    /// A short name, shown to operators.
    fn name(&self) -> &'static str;

    /// Checks a reference before anything moves (a withdrawal is debited
    /// before [`Settlement::pay_out`], so a reference the adapter would
    /// refuse must be refused first).
    fn check_reference(&self, reference: &str) -> Result<(), SettlementError>;

    /// Confirms that `amount` (smallest units) for `tenant` arrived outside
    /// the pool; returns the reference to record with the deposit.
    fn confirm_deposit<'a>(
        &'a self,
        tenant: &'a str,
        amount: u64,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, SettlementError>>;

    /// Pays `amount` out to `tenant` (already debited in the ledger);
    /// returns the payout's reference.
    fn pay_out<'a>(
        &'a self,
        tenant: &'a str,
        amount: u64,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, SettlementError>>;
}

/// The built-in adapter: the operator records what happened outside.
#[derive(Debug, Default, Clone, Copy)]
pub struct OperatorRecorded;

impl OperatorRecorded {
    fn checked(reference: &str) -> Result<String, SettlementError> {
        if reference.len() > MAX_REFERENCE || reference.chars().any(char::is_control) {
            return Err(SettlementError::Invalid(format!(
                "a reference is at most {MAX_REFERENCE} bytes of printable text"
            )));
        }
        Ok(reference.to_string())
    }
}

impl Settlement for OperatorRecorded {
    fn name(&self) -> &'static str {
        "operator-recorded"
    }

    fn check_reference(&self, reference: &str) -> Result<(), SettlementError> {
        Self::checked(reference).map(drop)
    }

    fn confirm_deposit<'a>(
        &'a self,
        _tenant: &'a str,
        _amount: u64,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, SettlementError>> {
        Box::pin(async move { Self::checked(reference) })
    }

    fn pay_out<'a>(
        &'a self,
        _tenant: &'a str,
        _amount: u64,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<String, SettlementError>> {
        Box::pin(async move { Self::checked(reference) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operator_recorded_takes_a_printable_bounded_reference() {
        let a = OperatorRecorded;
        assert_eq!(
            a.confirm_deposit("bob", 5, "wire 42").await,
            Ok("wire 42".into())
        );
        assert_eq!(a.pay_out("bob", 5, "").await, Ok(String::new()));
        assert!(matches!(
            a.pay_out("bob", 5, "a\nb").await,
            Err(SettlementError::Invalid(_))
        ));
        assert!(a.check_reference("a\u{7}").is_err());
        let long = "x".repeat(MAX_REFERENCE + 1);
        assert!(a.confirm_deposit("bob", 5, &long).await.is_err());
    }
}
