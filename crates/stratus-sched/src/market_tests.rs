//! Placement with market orders.

use super::*;

/// A market request over `nodes` with these per-node quotes.
fn priced(quotes: &[(usize, Quote)], budget: u64, prefer: Option<Prefer>) -> Market {
    Market {
        quotes: quotes.iter().map(|(i, q)| (id(*i), q.clone())).collect(),
        budget,
        prefer,
        point: Some((48.85, 2.35)),
    }
}

#[test]
fn market_orders_place_only_on_fitting_nodes_within_budget_by_preference() {
    let nodes: Vec<NodeView> = (0..6).map(|i| node(i, 8, 16)).collect();
    let c = Constraints::default();
    let quotes = [
        (0, Quote::Cost(500)),
        (1, Quote::Cost(100)),
        (2, Quote::NoFit("price over max_price".into())),
        (3, Quote::Cost(300)),
        (4, Quote::NoFit("offer not available now".into())),
        (5, Quote::Cost(200)),
    ];
    // Cheapest first, then the next cheapest: services want distinct nodes.
    let m = priced(&quotes, 10_000, Some(Prefer::Cheapest));
    let mut cluster = Cluster::new(nodes.clone());
    let mut req = Request::new(3, demand(100, 64), &c);
    req.distinct_nodes = true;
    req.market = Some(&m);
    let plan = cluster.place(&req);
    assert_eq!(positions(&cluster, &plan), [1, 5, 3]);
    // The budget runs out after 100 + 200: the third is not placed, and
    // the reasons say why each other node was not used.
    let m = priced(&quotes, 350, Some(Prefer::Cheapest));
    let mut cluster = Cluster::new(nodes.clone());
    req.market = Some(&m);
    let plan = cluster.place(&req);
    assert_eq!(positions(&cluster, &plan), [1, 5]);
    assert_eq!(plan.unplaced, 1);
    assert_eq!(plan.reasons.get("price over max_price"), Some(&1));
    assert_eq!(plan.reasons.get("offer not available now"), Some(&1));
    // 50 left: no node is cheap enough, not even the two used.
    assert_eq!(plan.reasons.get(market::NO_FUNDS), Some(&4));
}

#[test]
fn greenest_and_nearest_rank_fitting_nodes() {
    let mut nodes: Vec<NodeView> = (0..4).map(|i| node(i, 8, 16)).collect();
    nodes[0].attributes.energy = EnergySource::Fossil;
    nodes[1].attributes.energy = EnergySource::Grid;
    nodes[2].attributes.energy = EnergySource::Solar;
    nodes[3].attributes.energy = EnergySource::Nuclear;
    for (n, (lat, lon)) in
        nodes
            .iter_mut()
            .zip([(40.4, -3.7), (52.5, 13.4), (-33.9, 151.2), (48.9, 2.3)])
    {
        n.attributes.latitude = Some(lat);
        n.attributes.longitude = Some(lon);
    }
    let c = Constraints::default();
    let place = |prefer| {
        let m = priced(&[], u64::MAX, Some(prefer));
        let mut cluster = Cluster::new(nodes.clone());
        let mut req = Request::new(1, demand(100, 64), &c);
        req.market = Some(&m);
        let plan = cluster.place(&req);
        positions(&cluster, &plan)
    };
    assert_eq!(place(Prefer::Greenest), [2]);
    assert_eq!(place(Prefer::Nearest), [3], "Paris is nearest to Paris");
}
