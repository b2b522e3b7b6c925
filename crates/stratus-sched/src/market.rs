//! The market side of a placement (issue 15): which nodes' offers fit a
//! requester's order, what one instance holds on each, and how the
//! requester's preference ranks the fitting ones.
//!
//! The caller (the control plane's reconciler) prices every node with the
//! replicated state's offers ([`Quote`]); this module only filters and
//! ranks. With a preference, every fitting node is scored (not a sample):
//! the cheapest node of a thousand must not be missed because it was not
//! drawn.

use std::collections::HashMap;

pub use stratus_market::Prefer;
use stratus_types::NodeId;

use crate::compile::Hot;

/// One node's price for one instance of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Quote {
    /// It fits; one instance holds this much in escrow (0: runs free).
    Cost(u64),
    /// It does not fit, for this reason (a [`crate::Plan::reasons`] key,
    /// e.g. `price over max_price`).
    NoFit(String),
}

/// The market side of a [`crate::Request`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Market {
    /// Per node; a node not listed runs the request free.
    pub quotes: HashMap<NodeId, Quote>,
    /// What the requester can hold in escrow, for all the instances placed.
    pub budget: u64,
    /// Which fitting node to choose first.
    pub prefer: Option<Prefer>,
    /// The point `nearest` measures from (latitude, longitude).
    pub point: Option<(f64, f64)>,
}

/// Reason key of a node whose cost is over what the requester has left.
pub const NO_FUNDS: &str = "insufficient funds";

/// A request's market state during one placement.
pub(crate) struct Priced {
    /// Per node position: its cost, or why it does not fit.
    pub(crate) quotes: Vec<Quote>,
    pub(crate) budget: u64,
    pub(crate) prefer: Option<Prefer>,
    pub(crate) point: Option<(f64, f64)>,
}

impl Priced {
    pub(crate) fn new(m: &Market, ids: &[NodeId]) -> Priced {
        Priced {
            quotes: ids
                .iter()
                .map(|id| m.quotes.get(id).cloned().unwrap_or(Quote::Cost(0)))
                .collect(),
            budget: m.budget,
            prefer: m.prefer,
            point: m.point,
        }
    }

    /// Why node `i` cannot take an instance now, if it cannot.
    pub(crate) fn refusal(&self, i: u32) -> Option<&str> {
        match &self.quotes[i as usize] {
            Quote::NoFit(why) => Some(why),
            Quote::Cost(c) if *c > self.budget => Some(NO_FUNDS),
            Quote::Cost(_) => None,
        }
    }

    /// Records an instance placed on node `i`.
    pub(crate) fn spend(&mut self, i: u32) {
        if let Quote::Cost(c) = self.quotes[i as usize] {
            self.budget = self.budget.saturating_sub(c);
        }
    }

    /// Rank of node `i` under the preference (higher is better; 0 without
    /// one).
    pub(crate) fn rank(&self, i: u32, h: &Hot) -> u64 {
        match self.prefer {
            None => 0,
            Some(Prefer::Cheapest) => match self.quotes[i as usize] {
                Quote::Cost(c) => u64::MAX - c,
                Quote::NoFit(_) => 0,
            },
            Some(Prefer::Nearest) => match self.point {
                Some((lat, lon)) if h.lat.is_finite() && h.lon.is_finite() => {
                    let m = crate::haversine_km(lat, lon, h.lat, h.lon) * 1000.0;
                    // Metres, at most half the Earth's circumference.
                    u64::MAX - (m.clamp(0.0, 1e9) as u64)
                }
                _ => 0,
            },
            Some(Prefer::Greenest) => green_rank(h.energy),
        }
    }
}

/// Solar, wind and hydro first, then nuclear, then grid and battery, then
/// fossil and undeclared (the [`crate::compile`] energy codes).
fn green_rank(energy: u8) -> u64 {
    match energy {
        2..=4 => 3,
        5 => 2,
        1 | 7 => 1,
        _ => 0,
    }
}
