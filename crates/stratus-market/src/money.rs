//! Amounts of money: integers of the smallest unit, checked arithmetic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an amount could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// A sum or product that does not fit in 64 bits.
    #[error("amount overflows: {what} is more than {max}", max = u64::MAX)]
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
    /// A subtraction below zero.
    #[error("{what}: {have} is less than {need}")]
    Insufficient {
        /// What was being computed.
        what: &'static str,
        /// What there is.
        have: Amount,
        /// What was asked.
        need: Amount,
    },
    /// Text that is not a whole non-negative number of units.
    #[error("{0:?} is not an amount: give a whole number of the smallest unit (e.g. 1000000)")]
    Parse(String),
}

/// An amount of money in the pool's smallest unit. Never negative, never a
/// fraction: there is no floating point anywhere in the market.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u64);

impl Amount {
    /// Nothing.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Amount, what: &'static str) -> Result<Amount, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Amount)
            .ok_or(MoneyError::Overflow { what })
    }

    /// `self - other`, or [`MoneyError::Insufficient`].
    pub fn checked_sub(self, other: Amount, what: &'static str) -> Result<Amount, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Amount)
            .ok_or(MoneyError::Insufficient {
                what,
                have: self,
                need: other,
            })
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The sum of `amounts`, or [`MoneyError::Overflow`].
    pub fn sum(
        amounts: impl IntoIterator<Item = Amount>,
        what: &'static str,
    ) -> Result<Amount, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a, what))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Amount {
    type Err = MoneyError;

    /// Only ASCII digits (no sign, no point, no exponent), at most
    /// `u64::MAX`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::Parse(s.chars().take(64).collect()));
        }
        s.parse::<u64>()
            .map(Amount)
            .map_err(|_| MoneyError::Parse(s.chars().take(64).collect()))
    }
}

/// `floor(numerator / denominator)` of a `u128` computation, as an
/// [`Amount`].
pub(crate) fn floor_div(
    numerator: u128,
    denominator: u128,
    what: &'static str,
) -> Result<Amount, MoneyError> {
    let q = numerator
        .checked_div(denominator)
        .ok_or(MoneyError::Overflow { what })?;
    u64::try_from(q)
        .map(Amount)
        .map_err(|_| MoneyError::Overflow { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_whole_units() {
        assert_eq!("1000000".parse::<Amount>(), Ok(Amount(1_000_000)));
        assert_eq!("0".parse::<Amount>(), Ok(Amount::ZERO));
        for bad in ["", "-1", "1.5", "1e6", " 1", "+1", "18446744073709551616"] {
            assert!(
                matches!(bad.parse::<Amount>(), Err(MoneyError::Parse(_))),
                "{bad:?}"
            );
        }
        assert_eq!(u64::MAX.to_string().parse::<Amount>(), Ok(Amount(u64::MAX)));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(
            Amount(u64::MAX).checked_add(Amount(1), "t"),
            Err(MoneyError::Overflow { what: "t" })
        );
        assert!(matches!(
            Amount(1).checked_sub(Amount(2), "t"),
            Err(MoneyError::Insufficient { .. })
        ));
        assert_eq!(Amount::sum([Amount(1), Amount(2)], "t"), Ok(Amount(3)));
        assert!(floor_div(u128::MAX, 1, "t").is_err());
        assert!(floor_div(1, 0, "t").is_err());
        assert_eq!(floor_div(7, 2, "t"), Ok(Amount(3)));
    }
}
