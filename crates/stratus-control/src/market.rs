//! The market in the reconciler: pricing a workload's placement on every
//! node (the scheduler's [`Market`]), and the deals the leader must end or
//! whose instances it must stop.

use std::collections::BTreeMap;

use stratus_sched::{Market, Quote};
use stratus_state::accounts::MarketCommand;
use stratus_state::deals::NoFit;
use stratus_state::{Command, Desired, State, Workload};

/// Reason key of a node whose worst case is over the order's maximum.
pub const OVER_MAX_PRICE: &str = "price over max_price";
/// Reason key of a node whose offer is not available now.
pub const UNAVAILABLE: &str = "offer not available now";
/// Reason key of the requester's own node for a paid app or dataset.
pub const OWN_NODE: &str = "requester's own node (paid app or dataset)";

/// The market side of placing `w` at `now_ms`, or `None` when every node
/// runs it free. `spent`: what the tenant's placements earlier in this
/// pass already hold (their escrow is not yet in the state).
pub fn market_for(
    state: &State,
    w: &Workload,
    now_ms: u64,
    spent: &BTreeMap<String, u64>,
) -> Option<Market> {
    // Without offers everything runs free, unless a paid app or dataset
    // makes every placement a deal.
    if state.offers.is_empty() && state.uses_of(w.id.as_str()).is_none() {
        return None;
    }
    let mut quotes = std::collections::HashMap::new();
    for id in state.nodes.keys() {
        let quote = match state.placement_terms(w, id, now_ms) {
            Ok(None) => continue,
            Ok(Some(t)) => Quote::Cost(t.held.0),
            Err(NoFit::Price { .. }) => Quote::NoFit(OVER_MAX_PRICE.into()),
            Err(NoFit::Unavailable) => Quote::NoFit(UNAVAILABLE.into()),
            Err(NoFit::Overflow(_)) => Quote::NoFit("prices overflow".into()),
            Err(NoFit::OwnNode) => Quote::NoFit(OWN_NODE.into()),
        };
        quotes.insert(*id, quote);
    }
    if quotes.is_empty() {
        return None;
    }
    let order = state.order(w.id.as_str());
    let balance = state.account(&w.tenant).balance.0;
    Some(Market {
        quotes,
        budget: balance.saturating_sub(spent.get(&w.tenant).copied().unwrap_or(0)),
        prefer: order.prefer,
        point: w
            .spec
            .constraints
            .near
            .as_ref()
            .map(|n| (n.latitude, n.longitude)),
    })
}

/// The storage billing due at `now_ms` with billings `every` apart
/// (`None`: an hour), if one is ([`stratus_state::storage_billing`]).
pub fn storage_billing(
    state: &State,
    now_ms: u64,
    every: Option<std::time::Duration>,
) -> Option<Command> {
    let every_ms = every.map_or(
        stratus_state::storage_billing::DEFAULT_BILLING_EVERY_MS,
        |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    );
    stratus_state::storage_billing::bill_storage_command(state, now_ms, every_ms)
}

/// Commands for open deals at `now_ms`: refunds of deals whose instance
/// ended without a last report (or was lost, or is gone), and stops of
/// instances whose deal ran out of money.
pub fn deal_commands(state: &State, now_ms: u64) -> Vec<Command> {
    let (refund, stop) = state.stale_deals(now_ms);
    let mut out: Vec<Command> = refund
        .into_iter()
        .map(|instance| Command::Market(MarketCommand::CloseDeal { instance, now_ms }))
        .collect();
    for id in stop {
        if state
            .instances
            .get(&id)
            .is_some_and(|i| i.desired == Desired::Run)
        {
            out.push(Command::SetDesired {
                id,
                desired: Desired::Stop,
                kind: "out-of-funds".into(),
                message: "the requester cannot pay for the next period; stopping".into(),
                now_ms,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn storage_billing_is_proposed_once_per_period() {
        let mut s = State::default();
        let every = Some(Duration::from_secs(10));
        // Never billed: due at once (it starts the clock).
        let Some(first) = storage_billing(&s, 1_000, every) else {
            panic!("the first billing is due at once");
        };
        assert!(s.apply(1, &first).error.is_none());
        assert!(storage_billing(&s, 10_999, every).is_none());
        assert_eq!(
            storage_billing(&s, 11_000, every),
            Some(Command::Market(MarketCommand::BillStorage {
                now_ms: 11_000
            }))
        );
        // The default period is an hour.
        assert!(storage_billing(&s, 1_000 + 3_599_999, None).is_none());
        assert!(storage_billing(&s, 1_000 + 3_600_000, None).is_some());
    }
}
