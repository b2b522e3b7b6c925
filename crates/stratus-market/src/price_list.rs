//! A node's prices written on one line, as a lender gives them when it
//! starts a node (`stratus node --price cpu-second=1000,per-task=100`):
//! comma-separated `KEY=AMOUNT` pairs, keys `cpu-second`,
//! `memory-gib-hour`, `storage-gib-month`, `egress-gib` and `per-task`,
//! amounts whole numbers of the pool's smallest unit. A key left out costs
//! nothing.

use crate::money::Amount;
use crate::settle::Prices;

/// The keys, in the order they are documented.
pub const PRICE_KEYS: [&str; 5] = [
    "cpu-second",
    "memory-gib-hour",
    "storage-gib-month",
    "egress-gib",
    "per-task",
];

/// Longest price list accepted, in bytes.
pub const MAX_PRICE_LIST_LEN: usize = 512;

/// Why a price list is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriceListError {
    /// Nothing given.
    #[error("no price given (write KEY=AMOUNT pairs such as cpu-second=1000,per-task=100)")]
    Empty,
    /// Longer than [`MAX_PRICE_LIST_LEN`].
    #[error("the price list is {0} bytes; at most {MAX_PRICE_LIST_LEN}")]
    TooLong(usize),
    /// Not `KEY=AMOUNT`.
    #[error("{0:?} must read KEY=AMOUNT")]
    Pair(String),
    /// A key that is not a price.
    #[error("{0:?} is not a price; the prices are {keys}", keys = PRICE_KEYS.join(", "))]
    Key(String),
    /// An amount that is not a whole number of the smallest unit.
    #[error("{key}={value:?}: the amount must be a whole number of the pool's smallest unit")]
    Amount {
        /// The key.
        key: String,
        /// What was given.
        value: String,
    },
    /// A key given twice.
    #[error("{0} is given twice")]
    Twice(String),
}

/// Parses a price list: the prices and the price per task.
pub fn parse_price_list(s: &str) -> Result<(Prices, Amount), PriceListError> {
    if s.len() > MAX_PRICE_LIST_LEN {
        return Err(PriceListError::TooLong(s.len()));
    }
    let mut prices = Prices::default();
    let mut task = Amount::ZERO;
    let mut seen = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| PriceListError::Pair(pair.to_string()))?;
        let amount = value
            .parse::<u64>()
            .map(Amount)
            .map_err(|_| PriceListError::Amount {
                key: key.to_string(),
                value: value.to_string(),
            })?;
        let slot = match key {
            "cpu-second" => &mut prices.cpu_second,
            "memory-gib-hour" => &mut prices.memory_gib_hour,
            "storage-gib-month" => &mut prices.storage_gib_month,
            "egress-gib" => &mut prices.egress_gib,
            "per-task" => &mut task,
            other => return Err(PriceListError::Key(other.to_string())),
        };
        if seen.contains(&key) {
            return Err(PriceListError::Twice(key.to_string()));
        }
        seen.push(key);
        *slot = amount;
    }
    if seen.is_empty() {
        return Err(PriceListError::Empty);
    }
    Ok((prices, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_list_reads_every_key_and_leaves_the_rest_free() {
        let (p, task) = parse_price_list(
            "cpu-second=1000, memory-gib-hour=20,storage-gib-month=3,egress-gib=4,per-task=100",
        )
        .expect("parses");
        assert_eq!(p.cpu_second, Amount(1000));
        assert_eq!(p.memory_gib_hour, Amount(20));
        assert_eq!(p.storage_gib_month, Amount(3));
        assert_eq!(p.egress_gib, Amount(4));
        assert_eq!(task, Amount(100));
        let (p, task) = parse_price_list("per-task=7").expect("parses");
        assert_eq!((p, task), (Prices::default(), Amount(7)));
    }

    #[test]
    fn bad_price_lists_say_what_is_wrong() {
        let err = |s: &str| parse_price_list(s).expect_err(s).to_string();
        assert!(err("").contains("no price"));
        assert!(err("cpu-second").contains("KEY=AMOUNT"));
        assert!(err("gpu-second=3").contains("not a price"));
        assert!(err("cpu-second=1.5").contains("whole number"));
        assert!(err("cpu-second=-1").contains("whole number"));
        assert!(err("cpu-second=99999999999999999999").contains("whole number"));
        assert!(err("per-task=1,per-task=2").contains("twice"));
        assert!(err(&"per-task=1,".repeat(100)).contains("at most"));
    }
}
