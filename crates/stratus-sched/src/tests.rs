use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{
    any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig,
};
use proptest::strategy::Strategy as _;
use stratus_types::{EnergySource, Runtime};

use super::*;

const GIB: u64 = 1024 * MIB;

fn id(i: usize) -> NodeId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    NodeId(b)
}

/// An eligible, empty node with `cores` cores and `gib` GiB of memory and disk.
fn node(i: usize, cores: u32, gib: u64) -> NodeView {
    NodeView {
        id: id(i),
        eligible: true,
        capacity: Capacity {
            cpu_cores: cores,
            memory_bytes: gib * GIB,
            disk_bytes: gib * GIB,
        },
        attributes: Attributes {
            arch: "x86_64".into(),
            os: "linux".into(),
            ..Attributes::default()
        },
        runtimes: vec![Runtime::Wasm],
        used: Usage::default(),
        ports: PortRange::DEFAULT,
    }
}

fn at_site(mut n: NodeView, region: &str, site: &str) -> NodeView {
    n.attributes.region = region.into();
    n.attributes.site = site.into();
    n
}

fn demand(cpu_millis: u64, mem_mib: u64) -> Demand {
    Demand {
        cpu_millis,
        memory_bytes: mem_mib * MIB,
        disk_bytes: 0,
        runtime: Runtime::Wasm,
        host_ports: None,
    }
}

fn position(c: &Cluster, n: &NodeId) -> usize {
    c.nodes()
        .iter()
        .position(|v| v.id == *n)
        .unwrap_or(usize::MAX)
}

fn positions(c: &Cluster, plan: &Plan) -> Vec<usize> {
    plan.placements.iter().map(|n| position(c, n)).collect()
}

// ---------------------------------------------------------------- basics

#[test]
fn haversine_known_distances() {
    let paris_london = haversine_km(48.8566, 2.3522, 51.5074, -0.1278);
    assert!((paris_london - 343.5).abs() < 1.0, "{paris_london}");
    assert_eq!(haversine_km(10.0, 20.0, 10.0, 20.0), 0.0);
    let antipodes = haversine_km(0.0, 0.0, 0.0, 180.0);
    assert!((antipodes - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
}

#[test]
fn demand_from_resources() {
    let r = stratus_spec::Resources {
        cpu_millis: 250,
        memory_mb: 64,
        disk_mb: 2,
        wall_time_secs: None,
        cpu_secs: None,
    };
    assert_eq!(
        Demand::from(&r),
        Demand {
            cpu_millis: 250,
            memory_bytes: 64 * MIB,
            disk_bytes: 2 * MIB,
            runtime: Runtime::Wasm,
            host_ports: None,
        }
    );
}

#[test]
fn feasibility_reasons_in_order() {
    let mut n = node(0, 2, 1);
    n.attributes.labels.insert("gpu".into(), "none".into());
    n.attributes.region = "eu".into();
    n.attributes.latitude = Some(48.85);
    n.attributes.longitude = Some(2.35);
    n.attributes.energy = EnergySource::Solar;
    let d = demand(1000, 512);
    let mut c = Constraints::default();
    assert_eq!(feasible(&n, &d, &c), Ok(()));

    c.labels.insert("gpu".into(), "nvidia".into());
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Label("gpu".into())));
    assert_eq!(
        Reason::Label("gpu".into()).to_string(),
        "constraint: label gpu"
    );
    c.labels.clear();
    c.arch = Some("aarch64".into());
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Arch));
    c.arch = Some("x86_64".into());
    c.os = Some("windows".into());
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Os));
    c.os = None;
    c.region = Some("us".into());
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Region));
    c.region = Some("eu".into());
    c.site = Some("x".into());
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Site));
    c.site = None;
    c.near = Some(Near {
        latitude: 51.5,
        longitude: -0.13,
        within_km: 300.0,
    });
    assert_eq!(
        feasible(&n, &d, &c).map_err(|r| r.to_string()),
        Err("constraint: near".into())
    );
    c.near = Some(Near {
        latitude: 51.5,
        longitude: -0.13,
        within_km: 400.0,
    });
    assert_eq!(feasible(&n, &d, &c), Ok(()));
    c.energy = vec![EnergySource::Wind];
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Energy));
    c.energy = vec![EnergySource::Wind, EnergySource::Solar];
    assert_eq!(feasible(&n, &d, &c), Ok(()));

    assert_eq!(feasible(&n, &demand(2001, 1), &c), Err(Reason::Cpu));
    assert_eq!(feasible(&n, &demand(2000, 1025), &c), Err(Reason::Memory));
    let disk = Demand {
        disk_bytes: GIB + 1,
        ..d
    };
    assert_eq!(feasible(&n, &disk, &c), Err(Reason::Disk));
    n.used.cpu_millis = 1500;
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Cpu));
    let image = Demand {
        runtime: Runtime::Oci,
        ..d
    };
    assert_eq!(feasible(&n, &image, &c), Err(Reason::Runtime));
    n.eligible = false;
    assert_eq!(feasible(&n, &d, &c), Err(Reason::Ineligible));
}

#[test]
fn images_go_only_to_nodes_that_run_containers() {
    let mut nodes: Vec<NodeView> = (0..6).map(|i| node(i, 4, 4)).collect();
    nodes[4].runtimes.push(Runtime::Oci);
    let c = Constraints::default();
    let image = Demand {
        runtime: Runtime::Oci,
        ..demand(100, 64)
    };
    let mut cluster = Cluster::new(nodes.clone());
    let plan = cluster.place(&Request::new(3, image, &c));
    assert_eq!(plan.placements, vec![id(4); 3]);
    let mut req = Request::new(2, image, &c);
    req.avoid = vec![id(4)];
    let plan = cluster.place(&req);
    assert_eq!(plan.unplaced, 2);
    assert_eq!(
        plan.reasons.get(&Reason::Runtime.to_string()),
        Some(&5),
        "{:?}",
        plan.reasons
    );
    assert_eq!(daemon_targets(&cluster, &image, &c), vec![id(4)]);
    // WASM still goes anywhere.
    let plan = Cluster::new(nodes).place(&Request::new(6, demand(100, 64), &c));
    assert!(plan.is_complete());
}

/// The attacker asks for host port 80 (and 22) on lenders that allow only
/// 20000-29999: no node of theirs takes it, and the reason says why; the
/// one lender who allows 1-1024 gets it.
#[test]
fn host_ports_outside_the_lenders_range_are_not_placed() {
    let mut nodes: Vec<NodeView> = (0..4).map(|i| node(i, 4, 4)).collect();
    for n in &mut nodes {
        n.runtimes.push(Runtime::Oci);
    }
    let c = Constraints::default();
    let spec = web_spec();
    let web = Demand::from(&spec);
    assert_eq!(web.host_ports, Some((22, 80)));
    // Ports published beside the spec (UDP, an HTTP component's) widen it.
    assert_eq!(
        web.with_host_ports([0, 53, 9000]).host_ports,
        Some((22, 9000))
    );
    assert_eq!(
        Demand::from(&Resources::default())
            .with_host_ports([0])
            .host_ports,
        None
    );
    assert_eq!(feasible(&nodes[0], &web, &c), Err(Reason::Ports));
    let plan = Cluster::new(nodes.clone()).place(&Request::new(1, web, &c));
    assert_eq!(plan.unplaced, 1);
    assert_eq!(
        plan.reasons
            .get("host port outside the node's allowed ports"),
        Some(&4),
        "{:?}",
        plan.reasons
    );
    assert!(daemon_targets(&Cluster::new(nodes.clone()), &web, &c).is_empty());
    nodes[2].ports = PortRange {
        first: 1,
        last: 1024,
    };
    let plan = Cluster::new(nodes.clone()).place(&Request::new(1, web, &c));
    assert_eq!(plan.placements, vec![id(2)]);
    // Inside the default range, or `host: 0` (the node picks), goes anywhere.
    for span in [Some((20000, 29999)), None] {
        let d = Demand {
            host_ports: span,
            ..web
        };
        assert!(Cluster::new(nodes.clone())
            .place(&Request::new(4, d, &c))
            .is_complete());
    }
}

/// A workload publishing host ports 80 and 22 (and one any-port mapping).
fn web_spec() -> WorkloadSpec {
    stratus_spec::parse(
        "version: 1\nname: web\nkind: service\nimage:\n  name: nginx\n  ports:\n\
         \x20   - { container: 80, host: 80 }\n    - { container: 22, host: 22 }\n\
         \x20   - { container: 9000 }\n",
        stratus_spec::Format::Yaml,
    )
    .expect("web spec parses")
}

#[test]
fn node_without_location_never_matches_near() {
    let n = node(0, 1, 1);
    let c = Constraints {
        near: Some(Near {
            latitude: 0.0,
            longitude: 0.0,
            within_km: 20_000.0,
        }),
        ..Constraints::default()
    };
    assert_eq!(feasible(&n, &Demand::default(), &c), Err(Reason::Near));
}

// ---------------------------------------------------------------- placement

#[test]
fn bin_pack_fills_the_fullest_node_and_spread_the_emptiest() {
    let mut nodes = vec![node(0, 4, 4), node(1, 4, 4), node(2, 4, 4)];
    nodes[1].used.cpu_millis = 2000;
    nodes[1].used.memory_bytes = 2 * GIB;
    let none = Constraints::default();

    let mut c = Cluster::new(nodes.clone());
    let plan = c.place(&Request::new(2, demand(1000, 1024), &none));
    assert_eq!(positions(&c, &plan), vec![1, 1]);
    // Node 1 is now full: the next one goes to an empty node and stays there.
    let plan = c.place(&Request::new(3, demand(1000, 1024), &none));
    let p = positions(&c, &plan);
    assert!(p.iter().all(|&i| i == p[0] && i != 1), "{p:?}");

    let mut c = Cluster::new(nodes);
    let mut req = Request::new(3, demand(1000, 1024), &none);
    req.strategy = Strategy::Spread;
    let plan = c.place(&req);
    let p: BTreeSet<usize> = positions(&c, &plan).into_iter().collect();
    assert_eq!(
        p,
        BTreeSet::from([0, 2]),
        "spread avoids the loaded node while others are emptier"
    );
}

#[test]
fn placement_reserves_and_release_frees() {
    let none = Constraints::default();
    let mut c = Cluster::new(vec![node(0, 2, 2)]);
    let d = demand(1000, 1024);
    let plan = c.place(&Request::new(3, d, &none));
    assert_eq!(plan.placements.len(), 2);
    assert_eq!(plan.unplaced, 1);
    assert_eq!(plan.reasons, BTreeMap::from([("cpu".to_string(), 1)]));
    assert_eq!(c.nodes()[0].used.cpu_millis, 2000);
    assert!(c.release(&id(0), &d));
    assert!(!c.release(&id(9), &d));
    assert_eq!(c.nodes()[0].used.cpu_millis, 1000);
    assert_eq!(c.place(&Request::new(1, d, &none)).placements, vec![id(0)]);
}

#[test]
fn ineligible_and_avoided_nodes_are_skipped() {
    let none = Constraints::default();
    let mut c = Cluster::new(vec![node(0, 4, 4), node(1, 4, 4), node(2, 4, 4)]);
    assert!(c.set_eligible(&id(0), false));
    let mut req = Request::new(5, demand(1000, 100), &none);
    req.avoid = vec![id(1)];
    let plan = c.place(&req);
    assert_eq!(positions(&c, &plan), vec![2, 2, 2, 2]);
    assert_eq!(plan.unplaced, 1);
    assert_eq!(
        plan.reasons,
        BTreeMap::from([
            ("ineligible".to_string(), 1),
            ("avoided".to_string(), 1),
            ("cpu".to_string(), 1)
        ])
    );
}

#[test]
fn distinct_nodes_double_up_only_when_needed() {
    let none = Constraints::default();
    let nodes: Vec<_> = (0..3).map(|i| node(i, 8, 8)).collect();
    let mut c = Cluster::new(nodes.clone());
    let mut req = Request::new(3, demand(100, 10), &none);
    req.distinct_nodes = true;
    let plan = c.place(&req);
    let set: BTreeSet<_> = plan.placements.iter().collect();
    assert_eq!(set.len(), 3);

    // Two already run on node 0: the next two go to 1 and 2, the fifth doubles up.
    let mut c = Cluster::new(nodes);
    req.existing = vec![id(0), id(0)];
    req.count = 3;
    let plan = c.place(&req);
    let p = positions(&c, &plan);
    assert_eq!(
        p[..2].iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&1, &2])
    );
    assert_eq!(p.len(), 3);
}

#[test]
fn spread_by_site_balances_including_existing() {
    let none = Constraints::default();
    let mut nodes = vec![at_site(node(0, 8, 8), "eu", "a")];
    nodes.extend((1..3).map(|i| at_site(node(i, 8, 8), "eu", "b")));
    nodes.extend((3..8).map(|i| at_site(node(i, 8, 8), "us", "c")));
    let site_of = |c: &Cluster, n: &NodeId| {
        c.node(n)
            .map(|v| v.attributes.site.clone())
            .unwrap_or_default()
    };
    let mut c = Cluster::new(nodes.clone());
    let mut req = Request::new(6, demand(100, 10), &none);
    req.spread = Some(SpreadBy::Site);
    let plan = c.place(&req);
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for n in &plan.placements {
        *per.entry(site_of(&c, n)).or_default() += 1;
    }
    assert_eq!(
        per,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );

    // Existing: 3 in c. Four more go 2 to a, 2 to b.
    let mut c = Cluster::new(nodes.clone());
    req.existing = vec![id(3), id(4), id(5)];
    req.count = 4;
    let plan = c.place(&req);
    let sites: BTreeSet<String> = plan.placements.iter().map(|n| site_of(&c, n)).collect();
    assert_eq!(sites, BTreeSet::from(["a".into(), "b".into()]));

    // By region, restricted to region eu by a constraint.
    let eu = Constraints {
        region: Some("eu".into()),
        ..Constraints::default()
    };
    let mut c = Cluster::new(nodes);
    let mut req = Request::new(4, demand(100, 10), &eu);
    req.spread = Some(SpreadBy::Site);
    let plan = c.place(&req);
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for n in &plan.placements {
        *per.entry(site_of(&c, n)).or_default() += 1;
    }
    assert_eq!(per, BTreeMap::from([("a".into(), 2), ("b".into(), 2)]));
}

#[test]
fn spread_fills_other_domains_when_one_is_full() {
    let none = Constraints::default();
    let nodes = vec![
        at_site(node(0, 1, 8), "r", "small"),
        at_site(node(1, 8, 8), "r", "big"),
    ];
    let mut c = Cluster::new(nodes);
    let mut req = Request::new(5, demand(1000, 10), &none);
    req.spread = Some(SpreadBy::Site);
    let plan = c.place(&req);
    assert_eq!(plan.unplaced, 0);
    assert_eq!(positions(&c, &plan).iter().filter(|&&i| i == 0).count(), 1);
}

#[test]
fn constraints_and_near_select_nodes() {
    let mut nodes = vec![node(0, 4, 4), node(1, 4, 4), node(2, 4, 4), node(3, 4, 4)];
    let places = [(48.86, 2.35), (51.51, -0.13), (35.68, 139.69)];
    for (n, (lat, lon)) in nodes.iter_mut().zip(places) {
        n.attributes.latitude = Some(lat);
        n.attributes.longitude = Some(lon);
    }
    nodes[1].attributes.arch = "aarch64".into();
    let near_paris = Constraints {
        near: Some(Near {
            latitude: 48.85,
            longitude: 2.35,
            within_km: 500.0,
        }),
        ..Constraints::default()
    };
    let c = Cluster::new(nodes.clone());
    assert_eq!(
        daemon_targets(&c, &Demand::default(), &near_paris),
        vec![id(0), id(1)]
    );
    let arm_near_paris = Constraints {
        arch: Some("aarch64".into()),
        ..near_paris.clone()
    };
    assert_eq!(
        daemon_targets(&c, &Demand::default(), &arm_near_paris),
        vec![id(1)]
    );

    let mut c = Cluster::new(nodes);
    let too_big = demand(1000, 5 * 1024);
    let plan = c.place(&Request::new(2, too_big, &near_paris));
    assert_eq!(plan.unplaced, 2);
    assert_eq!(
        plan.reasons,
        BTreeMap::from([
            ("constraint: near".to_string(), 2),
            ("memory".to_string(), 2)
        ])
    );
    let unknown = Constraints {
        labels: BTreeMap::from([("gpu".to_string(), "h100".to_string())]),
        ..Constraints::default()
    };
    let plan = c.place(&Request::new(1, Demand::default(), &unknown));
    assert_eq!(
        plan.reasons,
        BTreeMap::from([("constraint: label gpu".to_string(), 4)])
    );
}

#[test]
fn empty_cluster_and_zero_count() {
    let none = Constraints::default();
    let mut c = Cluster::new(Vec::new());
    assert!(c.is_empty());
    let plan = c.place(&Request::new(2, Demand::default(), &none));
    assert_eq!((plan.placements.len(), plan.unplaced), (0, 2));
    let mut req = Request::new(0, Demand::default(), &none);
    req.spread = Some(SpreadBy::Region);
    assert!(c.place(&req).is_complete());
    let mut c = Cluster::new(vec![node(0, 1, 1)]);
    assert!(c.place(&req).is_complete());
}

#[test]
fn large_cluster_binpack_uses_few_nodes() {
    // 1000 nodes with 8 cores; 2000 single-core instances one at a time:
    // a perfect packing needs 250 nodes. Sampling must stay close.
    let nodes: Vec<_> = (0..1000).map(|i| node(i, 8, 64)).collect();
    let mut c = Cluster::new(nodes);
    let none = Constraints::default();
    for s in 0..2000 {
        let mut req = Request::new(1, demand(1000, 100), &none);
        req.seed = s;
        assert!(c.place(&req).is_complete());
    }
    let used = c.nodes().iter().filter(|n| n.used.cpu_millis > 0).count();
    assert!(
        used <= 260,
        "{used} nodes used for 250 nodes' worth of work"
    );
}

#[test]
fn large_cluster_spread_stays_even() {
    let nodes: Vec<_> = (0..1000).map(|i| node(i, 8, 64)).collect();
    let mut c = Cluster::new(nodes);
    let none = Constraints::default();
    for s in 0..1000 {
        let mut req = Request::new(1, demand(1000, 100), &none);
        req.strategy = Strategy::Spread;
        req.seed = s;
        assert!(c.place(&req).is_complete());
    }
    let most = c
        .nodes()
        .iter()
        .map(|n| n.used.cpu_millis / 1000)
        .max()
        .unwrap_or(0);
    assert!(
        most <= 2,
        "a node got {most} of 1000 instances over 1000 nodes"
    );
}

#[test]
fn small_simulation_runs() {
    let r = sim::simulate(300, 3000, 7);
    assert_eq!(r.placements + r.unplaced, 3000);
    assert!(r.placements > 2500, "{r:?}");
    assert_eq!(
        r,
        SimReport {
            elapsed: r.elapsed,
            build: r.build,
            ..sim::simulate(300, 3000, 7)
        }
    );
}

use sim::SimReport;

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn bench_10k_nodes_100k_tasks() {
    // 100k tasks use about half the cluster's CPU; 200k saturate it (the
    // last jobs are partly unplaceable, which costs a full scan each).
    for (tasks, seed) in [(100_000, 1), (100_000, 2), (100_000, 3), (200_000, 1)] {
        let r = sim::simulate(10_000, tasks, seed);
        println!(
            "{tasks} tasks, seed {seed}: {} nodes, {} jobs, {} placed, {} unplaced, build {:?}, place {:?}: {:.0} placements/s",
            r.nodes,
            r.jobs,
            r.placements,
            r.unplaced,
            r.build,
            r.elapsed,
            r.placements_per_sec()
        );
    }
}

// ---------------------------------------------------------------- properties

const CITIES: [(f64, f64); 4] = [
    (48.86, 2.35),
    (51.51, -0.13),
    (40.71, -74.0),
    (-33.87, 151.21),
];
const ENERGIES: [EnergySource; 4] = [
    EnergySource::Unknown,
    EnergySource::Solar,
    EnergySource::Wind,
    EnergySource::Grid,
];

fn arb_location() -> impl proptest::strategy::Strategy<Value = Option<(f64, f64)>> {
    prop_oneof![
        2 => Just(None),
        6 => (0..CITIES.len(), -300i32..300, -300i32..300).prop_map(|(c, dl, dn)| {
            let (lat, lon) = CITIES[c];
            Some((lat + f64::from(dl) / 100.0, lon + f64::from(dn) / 100.0))
        }),
        1 => Just(Some((120.0, 10.0))),
    ]
}

fn arb_node(i: usize, ample: bool) -> impl proptest::strategy::Strategy<Value = NodeView> {
    (
        (
            0u32..=8,
            0u64..=32,
            0u64..=4,
            0u64..=4,
            prop::bool::weighted(0.85),
        ),
        (
            0..2usize,
            0..2usize,
            0..3usize,
            0..6usize,
            0..3usize,
            any::<bool>(),
        ),
        (arb_location(), 0..ENERGIES.len(), prop::bool::weighted(0.7)),
    )
        .prop_map(
            move |(
                (cores, mem, disk, used_q, eligible),
                (arch, os, region, site, gpu, ssd),
                (loc, energy, oci),
            )| {
                let (cores, mem, disk) = if ample {
                    (1000, 4096, 4096)
                } else {
                    (cores, mem, disk)
                };
                let capacity = Capacity {
                    cpu_cores: cores,
                    memory_bytes: mem * 256 * MIB,
                    disk_bytes: disk * GIB,
                };
                let q = if ample { 0 } else { used_q };
                let used = Usage {
                    cpu_millis: u64::from(cores) * 1000 * q / 4,
                    memory_bytes: capacity.memory_bytes * q / 4,
                    disk_bytes: capacity.disk_bytes * q / 4,
                };
                let mut labels = BTreeMap::new();
                match gpu {
                    0 => {}
                    1 => {
                        labels.insert("gpu".into(), "yes".into());
                    }
                    _ => {
                        labels.insert("gpu".into(), "no".into());
                    }
                }
                if ssd {
                    labels.insert("ssd".into(), "true".into());
                }
                NodeView {
                    id: id(i),
                    eligible: eligible || ample,
                    capacity,
                    attributes: Attributes {
                        arch: ["x86_64", "aarch64"][arch].into(),
                        os: ["linux", "freebsd"][os].into(),
                        labels,
                        region: format!("r{region}"),
                        site: format!("s{site}"),
                        latitude: loc.map(|l| l.0),
                        longitude: loc.map(|l| l.1),
                        energy: ENERGIES[energy],
                    },
                    runtimes: if oci || ample {
                        vec![Runtime::Wasm, Runtime::Oci]
                    } else {
                        vec![Runtime::Wasm]
                    },
                    used,
                    ports: if ample {
                        PortRange {
                            first: 1,
                            last: u16::MAX,
                        }
                    } else {
                        PORT_RANGES[i % PORT_RANGES.len()]
                    },
                }
            },
        )
}

/// Port ranges of generated nodes (by position).
const PORT_RANGES: [PortRange; 3] = [
    PortRange::DEFAULT,
    PortRange {
        first: 8000,
        last: 8100,
    },
    PortRange {
        first: 80,
        last: 30000,
    },
];

/// Fixed host ports of generated demands (mostly none).
const HOST_PORTS: [Option<(u16, u16)>; 6] = [
    None,
    None,
    None,
    Some((8080, 8080)),
    Some((20000, 20010)),
    Some((80, 443)),
];

fn arb_nodes(max: usize, ample: bool) -> impl proptest::strategy::Strategy<Value = Vec<NodeView>> {
    (0..=max).prop_flat_map(move |n| (0..n).map(|i| arb_node(i, ample)).collect::<Vec<_>>())
}

fn arb_constraints() -> impl proptest::strategy::Strategy<Value = Constraints> {
    let opt = |p: f64, vals: &'static [&'static str]| {
        prop::option::weighted(p, prop::sample::select(vals)).prop_map(|o| o.map(str::to_owned))
    };
    (
        prop::option::weighted(
            0.2,
            prop::sample::select(&[("gpu", "yes"), ("gpu", "no"), ("ssd", "true")][..]),
        ),
        opt(0.2, &["x86_64", "aarch64", "riscv64"]),
        opt(0.1, &["linux", "freebsd"]),
        opt(0.15, &["r0", "r1", "r2", "r9"]),
        opt(0.1, &["s0", "s1", "s2", "s3", "s4", "s5"]),
        prop::option::weighted(0.2, (0..CITIES.len(), 50.0f64..3000.0)),
        prop::collection::vec(prop::sample::select(&ENERGIES[..]), 0..=2),
    )
        .prop_map(
            |(label, arch, os, region, site, near, energy)| Constraints {
                labels: label
                    .map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())]))
                    .unwrap_or_default(),
                arch,
                os,
                region,
                site,
                near: near.map(|(c, within_km)| Near {
                    latitude: CITIES[c].0,
                    longitude: CITIES[c].1,
                    within_km,
                }),
                energy,
            },
        )
}

fn arb_demand() -> impl proptest::strategy::Strategy<Value = Demand> {
    (
        0u64..=3000,
        0u64..=12,
        0u64..=2,
        prop::bool::weighted(0.3),
        0usize..HOST_PORTS.len(),
    )
        .prop_map(|(cpu, mem, disk, oci, ports)| Demand {
            cpu_millis: cpu,
            memory_bytes: mem * 256 * MIB,
            disk_bytes: disk * GIB,
            runtime: if oci { Runtime::Oci } else { Runtime::Wasm },
            host_ports: HOST_PORTS[ports],
        })
}

/// A request, with its `existing` and `avoid` as node positions.
#[derive(Clone, Debug)]
struct Req {
    count: usize,
    demand: Demand,
    constraints: Constraints,
    spread: Option<SpreadBy>,
    strategy: Strategy,
    existing: Vec<usize>,
    avoid: Vec<usize>,
    distinct: bool,
    seed: u64,
}

impl Req {
    fn to_request(&self, n: usize) -> Request<'_> {
        let ids = |v: &[usize]| v.iter().filter(|&&i| i < n).map(|&i| id(i)).collect();
        Request {
            count: self.count,
            demand: self.demand,
            constraints: &self.constraints,
            spread: self.spread,
            strategy: self.strategy,
            existing: ids(&self.existing),
            avoid: ids(&self.avoid),
            distinct_nodes: self.distinct,
            seed: self.seed,
            market: None,
        }
    }
}

fn arb_req() -> impl proptest::strategy::Strategy<Value = Req> {
    (
        (0usize..=12, arb_demand(), arb_constraints()),
        (
            prop_oneof![
                Just(None),
                Just(Some(SpreadBy::Site)),
                Just(Some(SpreadBy::Region))
            ],
            prop_oneof![Just(Strategy::BinPack), Just(Strategy::Spread)],
            prop::collection::vec(0usize..30, 0..4),
            prop::collection::vec(0usize..30, 0..3),
            any::<bool>(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (count, demand, constraints),
                (spread, strategy, existing, avoid, distinct, seed),
            )| Req {
                count,
                demand,
                constraints,
                spread,
                strategy,
                existing,
                avoid,
                distinct,
                seed,
            },
        )
}

fn fits_now(v: &NodeView, d: &Demand, c: &Constraints, avoid: &[NodeId]) -> bool {
    !avoid.contains(&v.id) && feasible(v, d, c).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// (1) no over-commit and exact accounting, (2) every placement satisfies
    /// the constraints and avoids what it must, plus: the plan is complete
    /// unless no node is left, reasons match `feasible`, and distinct nodes
    /// double up only when nothing else is left.
    #[test]
    fn placements_are_valid(nodes in arb_nodes(30, false), reqs in prop::collection::vec(arb_req(), 1..6)) {
        let n = nodes.len();
        let mut c = Cluster::new(nodes.clone());
        let mut used: Vec<Usage> = nodes.iter().map(|v| v.used).collect();
        for r in &reqs {
            let req = r.to_request(n);
            let plan = c.place(&req);
            prop_assert_eq!(plan.placements.len() + plan.unplaced, r.count);
            let mut hosting: BTreeSet<NodeId> = req.existing.iter().copied().collect();
            let mut doubled = false;
            for p in &plan.placements {
                let i = position(&c, p);
                prop_assert!(i < n);
                let v = &nodes[i];
                prop_assert!(v.eligible);
                prop_assert!(!req.avoid.contains(p));
                prop_assert_eq!(constraints_hold(&v.attributes, &r.constraints), Ok(()));
                used[i].cpu_millis += r.demand.cpu_millis;
                used[i].memory_bytes += r.demand.memory_bytes;
                used[i].disk_bytes += r.demand.disk_bytes;
                doubled |= !hosting.insert(*p);
            }
            for (i, v) in c.nodes().iter().enumerate() {
                prop_assert_eq!(v.used, used[i]);
                prop_assert!(v.used.cpu_millis <= u64::from(v.capacity.cpu_cores) * 1000);
                prop_assert!(v.used.memory_bytes <= v.capacity.memory_bytes);
                prop_assert!(v.used.disk_bytes <= v.capacity.disk_bytes);
            }
            let left: Vec<&NodeView> = c.nodes().iter().filter(|v| fits_now(v, &r.demand, &r.constraints, &req.avoid)).collect();
            if plan.unplaced > 0 {
                prop_assert!(left.is_empty(), "gave up with feasible nodes left");
                let mut want: BTreeMap<String, usize> = BTreeMap::new();
                for v in c.nodes() {
                    let why = match feasible(v, &r.demand, &r.constraints) {
                        Err(Reason::Ineligible) => Some(Reason::Ineligible),
                        _ if req.avoid.contains(&v.id) => Some(Reason::Avoided),
                        Err(e) => Some(e),
                        Ok(()) => None,
                    };
                    if let Some(why) = why {
                        *want.entry(why.to_string()).or_default() += 1;
                    }
                }
                prop_assert_eq!(&plan.reasons, &want);
            } else {
                prop_assert!(plan.reasons.is_empty());
            }
            if r.distinct && r.spread.is_none() && doubled {
                prop_assert!(left.iter().all(|v| hosting.contains(&v.id)), "doubled up while a fresh node was feasible");
            }
        }
    }

    /// (3) with ample capacity everywhere, per-domain counts (over the
    /// domains that have a node satisfying the constraints) differ by at
    /// most one, and never get more uneven than the existing instances were.
    #[test]
    fn spread_is_even(
        nodes in arb_nodes(30, true),
        r in arb_req(),
        by in prop_oneof![Just(SpreadBy::Site), Just(SpreadBy::Region)],
        with_existing in any::<bool>(),
        count in 0usize..40,
    ) {
        let n = nodes.len();
        let mut r = r;
        r.spread = Some(by);
        r.count = count;
        r.avoid.clear();
        if !with_existing {
            r.existing.clear();
        }
        let mut c = Cluster::new(nodes.clone());
        let req = r.to_request(n);
        let plan = c.place(&req);
        let dom = |v: &NodeView| match by {
            SpreadBy::Site => v.attributes.site.clone(),
            SpreadBy::Region => v.attributes.region.clone(),
        };
        let mut counts: BTreeMap<String, usize> = nodes
            .iter()
            .filter(|v| constraints_hold(&v.attributes, &r.constraints).is_ok())
            .map(|v| (dom(v), 0))
            .collect();
        let feasible_domains = counts.len();
        if feasible_domains > 0 {
            prop_assert_eq!(plan.unplaced, 0);
        }
        for e in &req.existing {
            if let Some(k) = c.node(e).map(&dom) {
                if let Some(x) = counts.get_mut(&k) {
                    *x += 1;
                }
            }
        }
        let spread_of = |m: &BTreeMap<String, usize>| {
            m.values().max().copied().unwrap_or(0) - m.values().min().copied().unwrap_or(0)
        };
        let before = spread_of(&counts);
        for p in &plan.placements {
            let k = c.node(p).map(&dom).unwrap_or_default();
            prop_assert!(counts.contains_key(&k));
            *counts.entry(k).or_default() += 1;
        }
        prop_assert!(spread_of(&counts) <= before.max(1), "{:?} (before: {})", counts, before);
        if req.existing.is_empty() {
            prop_assert!(spread_of(&counts) <= 1, "{:?}", counts);
        }
    }

    /// (4) the same cluster and the same requests give the same plans.
    #[test]
    fn deterministic(nodes in arb_nodes(30, false), reqs in prop::collection::vec(arb_req(), 1..6)) {
        let n = nodes.len();
        let mut a = Cluster::new(nodes.clone());
        let mut b = Cluster::new(nodes);
        for r in &reqs {
            let req = r.to_request(n);
            prop_assert_eq!(a.place(&req), b.place(&req));
        }
        prop_assert_eq!(a.nodes(), b.nodes());
    }

    /// (5) daemon targets are exactly the feasible nodes, in cluster order.
    #[test]
    fn daemon_targets_are_the_feasible_nodes(nodes in arb_nodes(40, false), d in arb_demand(), cons in arb_constraints()) {
        let c = Cluster::new(nodes.clone());
        let want: Vec<NodeId> = nodes.iter().filter(|v| feasible(v, &d, &cons).is_ok()).map(|v| v.id).collect();
        prop_assert_eq!(daemon_targets(&c, &d, &cons), want);
    }
}

#[path = "market_tests.rs"]
mod market_tests;
