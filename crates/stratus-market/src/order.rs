//! Requesters' orders and what a placement could cost at most.
//!
//! An [`Order`] says the most a requester pays for one instance and which
//! of the fitting nodes it prefers. A node's offer **fits** an order when
//! the worst case of one instance there ([`worst_case`]: the per-task price
//! plus the instance's reserved CPU and memory for its whole wall-clock
//! limit, or one billing period for a service) is within the order's
//! `max_price` after the app and dataset prices. That worst case is what
//! the deal holds in escrow, so a lender is always paid in full for what it
//! reserved, and a requester never pays more than it said.

use serde::{Deserialize, Serialize};

use crate::money::{Amount, MoneyError};
use crate::settle::{usage_cost, Prices, Usage};

/// Which of the fitting nodes a requester prefers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    /// The lowest worst-case cost.
    Cheapest,
    /// The shortest distance to the spec's `constraints.near` point.
    Nearest,
    /// The cleanest declared energy source (solar, wind, hydro first).
    Greenest,
}

impl std::str::FromStr for Prefer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cheapest" => Ok(Prefer::Cheapest),
            "nearest" => Ok(Prefer::Nearest),
            "greenest" => Ok(Prefer::Greenest),
            _ => Err(format!(
                "{s:?} is no preference: use cheapest, nearest or greenest"
            )),
        }
    }
}

/// A requester's order for a workload's instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The most one instance may cost (`None`: whatever the requester's
    /// balance covers).
    pub max_price: Option<Amount>,
    /// Which fitting node to choose.
    pub prefer: Option<Prefer>,
}

/// What one instance reserves on a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    /// CPU it may use, thousandths of a core.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// How long it may run (a task's wall-clock limit, a service's billing
    /// period), milliseconds.
    pub wall_ms: u64,
}

/// The most one instance reserving `r` can cost at `prices` plus the
/// per-task price `task`: every reserved resource used for the whole time.
pub fn worst_case(prices: &Prices, task: Amount, r: &Reserved) -> Result<Amount, MoneyError> {
    let cpu_ms = u128::from(r.cpu_millis) * u128::from(r.wall_ms) / 1000;
    let usage = Usage {
        cpu_ms: u64::try_from(cpu_ms).map_err(|_| MoneyError::Overflow {
            what: "a worst-case cost",
        })?,
        memory_peak_bytes: r.memory_bytes,
        wall_ms: r.wall_ms,
        bytes_served: 0,
    };
    usage_cost(prices, &usage)?.checked_add(task, "a worst-case cost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_is_every_reserved_resource_for_the_whole_time() {
        let p = Prices {
            cpu_second: Amount(10),
            memory_gib_hour: Amount(3_600),
            ..Prices::default()
        };
        // Half a core for 100 s = 50 CPU-s = 500; 1 GiB for 100 s = 100.
        let r = Reserved {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
            wall_ms: 100_000,
        };
        assert_eq!(worst_case(&p, Amount(7), &r), Ok(Amount(607)));
        let huge = Reserved {
            cpu_millis: u64::MAX,
            memory_bytes: u64::MAX,
            wall_ms: u64::MAX,
        };
        assert!(worst_case(&p, Amount(0), &huge).is_err());
    }

    #[test]
    fn preferences_parse_and_unknown_ones_are_named() {
        assert_eq!("greenest".parse(), Ok(Prefer::Greenest));
        let e = "fastest".parse::<Prefer>().expect_err("unknown");
        assert!(e.contains("cheapest, nearest or greenest"), "{e}");
    }
}
