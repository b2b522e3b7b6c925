use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{prop, prop_assert, prop_assert_eq, proptest, ProptestConfig};

use super::*;

fn id(i: usize) -> NodeId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    NodeId(b)
}

fn sn(i: usize, site: &str, free_bytes: u64) -> StorageNode {
    StorageNode {
        id: id(i),
        site: site.into(),
        free_bytes,
        owner: String::new(),
        credibility_ppm: 1_000_000,
    }
}

/// Site name for the proptests: 0 is unknown (`""`), 1..6 are named.
fn site_name(s: usize) -> String {
    if s == 0 {
        String::new()
    } else {
        format!("s{s}")
    }
}

/// The failure domain of a node, as the module defines it.
fn domain(site: &str, n: NodeId) -> String {
    if site.is_empty() {
        format!("unknown:{n}")
    } else {
        format!("site:{site}")
    }
}

#[test]
fn zero_pieces_is_empty() {
    assert_eq!(place_pieces(&[], &[], 0, 10, 1), Ok(vec![]));
    assert_eq!(place_pieces(&[sn(0, "a", 0)], &[], 0, 10, 1), Ok(vec![]));
}

#[test]
fn not_enough_nodes() {
    let nodes = [sn(0, "a", 100), sn(1, "b", 5), sn(2, "c", 100)];
    let holding = [(id(2), "c".to_string())];
    assert_eq!(
        place_pieces(&nodes, &holding, 2, 10, 7),
        Err(PiecePlacementError::NotEnoughNodes {
            needed: 2,
            eligible: 1
        })
    );
    assert_eq!(place_pieces(&nodes, &holding, 1, 10, 7), Ok(vec![id(0)]));
}

#[test]
fn duplicates_use_the_first_entry() {
    // The first entry for id 0 is too small; the second would fit.
    let nodes = [sn(0, "a", 1), sn(0, "a", 100), sn(1, "a", 100)];
    assert_eq!(
        place_pieces(&nodes, &[], 2, 10, 3),
        Err(PiecePlacementError::NotEnoughNodes {
            needed: 2,
            eligible: 1
        })
    );
    let nodes = [sn(0, "a", 100), sn(0, "a", 100), sn(1, "a", 100)];
    let mut got = place_pieces(&nodes, &[], 2, 10, 3).unwrap_or_default();
    got.sort();
    assert_eq!(got, vec![id(0), id(1)]);
}

#[test]
fn three_sites_two_nodes_each_four_plus_two() {
    let nodes: Vec<StorageNode> = (0..6)
        .map(|i| sn(i, ["a", "b", "c"][i / 2], 1000 + i as u64))
        .collect();
    for seed in 0..50 {
        let got = place_pieces(&nodes, &[], 6, 100, seed).unwrap_or_default();
        assert_eq!(got.len(), 6);
        let mut per_site: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &got {
            let site = nodes.iter().find(|v| v.id == *n).map_or("?", |v| &v.site);
            *per_site.entry(site).or_default() += 1;
        }
        assert_eq!(
            per_site,
            BTreeMap::from([("a", 2), ("b", 2), ("c", 2)]),
            "seed {seed}"
        );
        let sites: Vec<&str> = got
            .iter()
            .filter_map(|n| nodes.iter().find(|v| v.id == *n))
            .map(|v| v.site.as_str())
            .collect();
        assert_eq!(fault_tolerance(&sites, 4), (2, 1));
    }
}

#[test]
fn repair_fills_the_emptiest_sites() {
    // Sites a, b, c with 3 nodes each; the stripe holds 2 pieces in a and 1
    // in b. Three new pieces must give a:2, b:2, c:2.
    let nodes: Vec<StorageNode> = (0..9).map(|i| sn(i, ["a", "b", "c"][i / 3], 500)).collect();
    let holding = vec![
        (id(0), "a".to_string()),
        (id(1), "a".to_string()),
        (id(3), "b".to_string()),
    ];
    for seed in 0..20 {
        let got = place_pieces(&nodes, &holding, 3, 100, seed).unwrap_or_default();
        let mut in_site = [0usize; 3];
        for n in &got {
            let i = nodes.iter().position(|v| v.id == *n).unwrap_or(99);
            assert!(i != 0 && i != 1 && i != 3);
            in_site[i / 3] += 1;
        }
        assert_eq!(in_site, [0, 1, 2], "seed {seed}");
    }
}

#[test]
fn unknown_sites_are_sites_of_their_own() {
    // Two unknown-site nodes and a named site with two nodes: 3 pieces go to
    // three different domains (each unknown node, and the named site).
    let nodes = [sn(0, "", 10), sn(1, "", 10), sn(2, "a", 10), sn(3, "a", 10)];
    for seed in 0..20 {
        let got = place_pieces(&nodes, &[], 3, 1, seed).unwrap_or_default();
        assert!(got.contains(&id(0)) && got.contains(&id(1)), "seed {seed}");
        assert_eq!(
            got.iter().filter(|n| **n == id(2) || **n == id(3)).count(),
            1
        );
    }
    assert_eq!(fault_tolerance(&["", "", "", ""], 2), (2, 2));
    assert_eq!(fault_tolerance(&["a", "", "a", ""], 2), (2, 1));
}

#[test]
fn big_node_gets_its_share() {
    // Free bytes 1:1:1:3 in one site: the big node should get half the pieces.
    let nodes = [
        sn(0, "a", 1 << 40),
        sn(1, "a", 1 << 40),
        sn(2, "a", 1 << 40),
        sn(3, "a", 3 << 40),
    ];
    let draws = 10_000u64;
    let mut big = 0u64;
    for seed in 0..draws {
        let got = place_pieces(&nodes, &[], 1, 1 << 20, seed).unwrap_or_default();
        assert_eq!(got.len(), 1);
        if got[0] == id(3) {
            big += 1;
        }
    }
    // Expected 5,000 with a standard deviation of 50.
    assert!(
        (4_000..=6_000).contains(&big),
        "big node got {big} of {draws}"
    );
}

#[test]
fn equally_filled_sites_are_chosen_by_free_space() {
    // One piece, two empty sites with free space 1:3.
    let nodes = [sn(0, "a", 1_000), sn(1, "b", 3_000)];
    let b = (0..4_000u64)
        .filter(|&s| place_pieces(&nodes, &[], 1, 1, s) == Ok(vec![id(1)]))
        .count();
    assert!((2_700..=3_300).contains(&b), "site b got {b} of 4000");
}

#[test]
fn zero_free_bytes_are_chosen_uniformly() {
    let nodes = [sn(0, "a", 0), sn(1, "a", 0)];
    let first = (0..2_000u64)
        .filter(|&s| place_pieces(&nodes, &[], 1, 0, s) == Ok(vec![id(0)]))
        .count();
    assert!((800..=1_200).contains(&first), "{first}");
}

#[test]
fn huge_free_bytes_do_not_overflow() {
    let nodes: Vec<StorageNode> = (0..10).map(|i| sn(i, "a", u64::MAX)).collect();
    let got = place_pieces(&nodes, &[], 10, u64::MAX, 5).unwrap_or_default();
    assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 10);
}

#[test]
fn fault_tolerance_cases() {
    assert_eq!(fault_tolerance(&[], 0), (0, 0));
    assert_eq!(fault_tolerance(&[], 1), (0, 0));
    assert_eq!(fault_tolerance(&["a", "b"], 3), (0, 0));
    assert_eq!(fault_tolerance(&["a", "a", "a"], 1), (2, 0));
    assert_eq!(fault_tolerance(&["a", "b", "c"], 1), (2, 2));
    // 4+2 over 4 sites as 2,2,1,1: losing a site of 2 leaves 4, another 2.
    assert_eq!(fault_tolerance(&["a", "a", "b", "b", "c", "d"], 4), (2, 1));
    // 4+2 with 3 in one site: that site alone is too many.
    assert_eq!(fault_tolerance(&["a", "a", "a", "b", "c", "d"], 4), (2, 0));
    // k = 0: nothing is needed, every site may go.
    assert_eq!(fault_tolerance(&["a", "b"], 0), (2, 2));
}

#[test]
fn default_profiles() {
    let want = [
        (0, (1, 0)),
        (1, (1, 0)),
        (2, (1, 1)),
        (3, (1, 2)),
        (4, (1, 2)),
        (5, (1, 2)),
        (6, (2, 2)),
        (7, (3, 2)),
        (8, (4, 2)),
        (1000, (4, 2)),
        (usize::MAX, (4, 2)),
    ];
    for (n, p) in want {
        assert_eq!(default_profile(n), p, "{n} nodes");
    }
    // With 3 or more nodes, a stripe fits on distinct nodes and survives 2
    // losses; from 5 nodes on, 2 nodes stay spare so repair can restore it.
    for n in 3..50 {
        let (k, m) = default_profile(n);
        assert!(usize::from(k) + usize::from(m) <= n && m == 2);
        if n >= 5 {
            assert!(usize::from(k) + usize::from(m) + 2 <= n, "{n} nodes");
        }
    }
}

/// Random nodes: ids from a small range (so duplicates happen), sites
/// among 0..6 (0 = unknown), free bytes 0..200.
fn arb_nodes() -> impl proptest::strategy::Strategy<Value = Vec<StorageNode>> {
    prop::collection::vec((0usize..50, 0usize..6, 0u64..200), 0..40).prop_map(|v| {
        v.into_iter()
            .map(|(i, s, f)| sn(i, &site_name(s), f))
            .collect()
    })
}

fn arb_holding() -> impl proptest::strategy::Strategy<Value = Vec<(NodeId, String)>> {
    prop::collection::vec((0usize..50, 0usize..6), 0..6)
        .prop_map(|v| v.into_iter().map(|(i, s)| (id(i), site_name(s))).collect())
}

use proptest::strategy::Strategy as _;

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Rule 1, the error condition, water-filling and determinism.
    #[test]
    fn placement_is_valid(
        nodes in arb_nodes(),
        holding in arb_holding(),
        count in 0usize..14,
        piece_bytes in 0u64..150,
        seed in proptest::prelude::any::<u64>(),
    ) {
        // Oracle for rule 1: first entry per id, not held, big enough.
        let held: BTreeSet<NodeId> = holding.iter().map(|(n, _)| *n).collect();
        let mut first: BTreeMap<NodeId, &StorageNode> = BTreeMap::new();
        for n in &nodes {
            first.entry(n.id).or_insert(n);
        }
        let eligible: BTreeMap<NodeId, &StorageNode> = first
            .iter()
            .filter(|(i, n)| !held.contains(i) && n.free_bytes >= piece_bytes)
            .map(|(i, n)| (*i, *n))
            .collect();

        let got = place_pieces(&nodes, &holding, count, piece_bytes, seed);
        // Determinism, also under a permutation of the input that keeps the
        // first entry of every id first.
        prop_assert_eq!(&got, &place_pieces(&nodes, &holding, count, piece_bytes, seed));
        let mut reordered: Vec<StorageNode> = first.values().map(|n| (*n).clone()).collect();
        reordered.reverse();
        prop_assert_eq!(&got, &place_pieces(&reordered, &holding, count, piece_bytes, seed));

        let got = match got {
            Err(e) => {
                prop_assert!(eligible.len() < count);
                prop_assert_eq!(e, PiecePlacementError::NotEnoughNodes { needed: count, eligible: eligible.len() });
                return Ok(());
            }
            Ok(g) => g,
        };
        prop_assert!(eligible.len() >= count);
        prop_assert_eq!(got.len(), count);
        prop_assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), count);
        for n in &got {
            prop_assert!(eligible.contains_key(n), "{:?} not eligible", n);
        }

        // Water-filling. Final per-domain counts of the whole stripe:
        let mut pieces: BTreeMap<String, usize> = BTreeMap::new();
        for (n, s) in &holding {
            *pieces.entry(domain(s, *n)).or_default() += 1;
        }
        let mut new: BTreeMap<String, usize> = BTreeMap::new();
        for n in &got {
            let d = domain(&eligible[n].site, *n);
            *pieces.entry(d.clone()).or_default() += 1;
            *new.entry(d).or_default() += 1;
        }
        // Domains with an eligible node still unused at the end.
        let chosen: BTreeSet<&NodeId> = got.iter().collect();
        let open: BTreeSet<String> = eligible
            .iter()
            .filter(|(n, _)| !chosen.contains(n))
            .map(|(n, v)| domain(&v.site, *n))
            .collect();
        // A domain that received a new piece had, just before its last one,
        // no more pieces than any domain still open (which was open then
        // too): its final count exceeds an open domain's by at most one.
        for d in new.keys() {
            for o in &open {
                let (cd, co) = (pieces[d], pieces.get(o).copied().unwrap_or(0));
                prop_assert!(cd <= co + 1, "{} has {}, open {} has {}", d, cd, o, co);
            }
        }
        // Corollary: with nothing held and every domain able to take its fair
        // share, the domains with eligible nodes differ by at most one.
        let mut cap: BTreeMap<String, usize> = BTreeMap::new();
        for (n, v) in &eligible {
            *cap.entry(domain(&v.site, *n)).or_default() += 1;
        }
        if holding.is_empty() && !cap.is_empty() {
            let fair = count.div_ceil(cap.len());
            if cap.values().all(|&c| c >= fair) {
                let counts: Vec<usize> = cap.keys().map(|d| pieces.get(d).copied().unwrap_or(0)).collect();
                let (lo, hi) = (counts.iter().min().copied().unwrap_or(0), counts.iter().max().copied().unwrap_or(0));
                prop_assert!(hi - lo <= 1, "counts {:?}", counts);
            }
        }
    }

    /// `fault_tolerance` against a brute force over sets of lost sites.
    #[test]
    fn fault_tolerance_matches_brute_force(
        sites in prop::collection::vec(0usize..5, 0..10),
        k in 0usize..8,
    ) {
        let names: Vec<String> = sites.iter().map(|&s| site_name(s)).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (nodes_lost, sites_lost) = fault_tolerance(&refs, k);
        let n = refs.len();
        if n < k {
            prop_assert_eq!((nodes_lost, sites_lost), (0, 0));
            return Ok(());
        }
        prop_assert_eq!(nodes_lost, n - k);
        // Domains (each unknown piece its own), and the largest number of
        // them whose loss *any* choice survives: every set of that size
        // leaves at least k pieces, i.e. the worst set (largest first) does.
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for (i, s) in refs.iter().enumerate() {
            let key = if s.is_empty() { format!("u{i}") } else { (*s).to_string() };
            *per.entry(key).or_default() += 1;
        }
        let counts: Vec<usize> = per.into_values().collect();
        let d = counts.len();
        let mut best = 0;
        for lose in 0..=d {
            // Every subset of size `lose` leaves at least k pieces.
            let ok = (0u32..(1 << d))
                .filter(|m| m.count_ones() as usize == lose)
                .all(|m| {
                    let gone: usize = (0..d).filter(|i| m & (1 << i) != 0).map(|i| counts[i]).sum();
                    n - gone >= k
                });
            if ok {
                best = lose;
            } else {
                break;
            }
        }
        prop_assert_eq!(sites_lost, best);
    }
}

fn owned(i: usize, site: &str, owner: &str) -> StorageNode {
    StorageNode {
        owner: owner.into(),
        ..sn(i, site, 1000)
    }
}

/// Owner name for the proptests: 0 is the operator's (`""`), 1..4 named.
fn owner_name(o: usize) -> String {
    if o == 0 {
        String::new()
    } else {
        format!("t{o}")
    }
}

#[test]
fn one_owner_never_gets_more_than_the_cap() {
    // A lender with 6 nodes on 3 sites, 3 other owners with one node each.
    let mut nodes: Vec<StorageNode> = (0..6)
        .map(|i| owned(i, ["a", "b", "c"][i % 3], "sybil"))
        .collect();
    nodes.extend((6..9).map(|i| owned(i, "d", &format!("o{i}"))));
    for seed in 0..200 {
        let got = place_stripe(&nodes, &[], 5, 10, 2, seed).unwrap_or_default();
        assert_eq!(got.len(), 5);
        let sybil = got
            .iter()
            .filter(|n| nodes[..6].iter().any(|s| s.id == **n))
            .count();
        assert!(sybil <= 2, "seed {seed}: {sybil} pieces on one owner");
    }
    // 6 pieces cannot fit: 2 + 3 slots.
    assert_eq!(
        place_stripe(&nodes, &[], 6, 10, 2, 1),
        Err(PiecePlacementError::TooFewOwners {
            needed: 6,
            usable: 5,
            max_per_owner: 2
        })
    );
    // Repair counts what the owner already holds.
    let holding = [Held {
        id: id(0),
        site: "a".into(),
        owner: "sybil".into(),
    }];
    for seed in 0..50 {
        let got = place_stripe(&nodes, &holding, 4, 10, 2, seed).unwrap_or_default();
        let sybil = got
            .iter()
            .filter(|n| nodes[..6].iter().any(|s| s.id == **n))
            .count();
        assert!(sybil <= 1, "seed {seed}");
    }
}

#[test]
fn operator_nodes_are_owners_of_their_own() {
    let nodes: Vec<StorageNode> = (0..6).map(|i| owned(i, "a", "")).collect();
    assert_eq!(
        place_stripe(&nodes, &[], 6, 10, 1, 3).map(|v| v.len()),
        Ok(6)
    );
}

#[test]
fn owned_default_profiles() {
    let want: [(&[usize], (u8, u8)); 9] = [
        (&[1, 1, 1, 1, 1, 1], (2, 2)),
        (&[6, 1, 1, 1], (1, 2)),
        (&[6, 6], (1, 2)),
        (&[3, 3, 3], (2, 2)),
        (&[2, 2, 2, 2], (4, 2)),
        (&[6, 1], (1, 2)),
        (&[2], (1, 1)),
        (&[1], (1, 0)),
        (&[6], (2, 2)),
    ];
    for (owners, p) in want {
        assert_eq!(default_profile_owned(owners), p, "{owners:?}");
    }
}

/// Random owned nodes: ids 0..30, sites 0..4, owners 0..4 (0 = operator's).
fn arb_owned_nodes() -> impl proptest::strategy::Strategy<Value = Vec<StorageNode>> {
    prop::collection::vec((0usize..30, 0usize..4, 0usize..4, 0u64..200), 0..30).prop_map(|v| {
        v.into_iter()
            .map(|(i, s, o, f)| StorageNode {
                owner: owner_name(o),
                ..sn(i, &site_name(s), f)
            })
            .collect()
    })
}

fn arb_owned_holding() -> impl proptest::strategy::Strategy<Value = Vec<Held>> {
    prop::collection::vec((30usize..40, 0usize..4, 0usize..4), 0..5).prop_map(|v| {
        v.into_iter()
            .map(|(i, s, o)| Held {
                id: id(i),
                site: site_name(s),
                owner: owner_name(o),
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Rule 2: no named owner ends with more than the cap (holding plus
    /// new) unless it already held more; and `TooFewOwners` exactly when
    /// the owners' room cannot take the pieces.
    #[test]
    fn the_owner_cap_holds_and_fails_only_when_it_must(
        nodes in arb_owned_nodes(),
        holding in arb_owned_holding(),
        count in 0usize..10,
        cap in 1usize..4,
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut first: BTreeMap<NodeId, &StorageNode> = BTreeMap::new();
        for n in &nodes {
            first.entry(n.id).or_insert(n);
        }
        let eligible: Vec<&StorageNode> = first.values().copied().filter(|n| n.free_bytes >= 10).collect();
        // Oracle of the usable room.
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        let mut usable = 0usize;
        for n in &eligible {
            if n.owner.is_empty() { usable += 1; } else { *per.entry(n.owner.clone()).or_default() += 1; }
        }
        for (o, c) in &per {
            let holds = holding.iter().filter(|h| &h.owner == o).count();
            usable += (*c).min(cap.saturating_sub(holds));
        }
        let got = place_stripe(&nodes, &holding, count, 10, cap, seed);
        prop_assert_eq!(&got, &place_stripe(&nodes, &holding, count, 10, cap, seed));
        match got {
            Err(PiecePlacementError::NotEnoughNodes { .. }) => prop_assert!(eligible.len() < count),
            Err(PiecePlacementError::TooFewOwners { usable: u, .. }) => {
                prop_assert!(eligible.len() >= count);
                prop_assert_eq!(u, usable);
                prop_assert!(usable < count);
            }
            Ok(got) => {
                prop_assert!(usable >= count);
                prop_assert_eq!(got.len(), count);
                let mut totals: BTreeMap<String, usize> = BTreeMap::new();
                for n in &got {
                    let o = &first[n].owner;
                    if !o.is_empty() {
                        *totals.entry(o.clone()).or_default() += 1;
                    }
                }
                for (o, new) in totals {
                    let holds = holding.iter().filter(|h| h.owner == o).count();
                    prop_assert!(holds + new <= cap, "owner {} has {} + {} > {}", o, holds, new, cap);
                }
            }
        }
    }

    /// One owner with 6 nodes, beside a few others: with the profile the
    /// cluster gets by default, every stripe places, that owner holds at
    /// most `m` of its pieces, and losing all its nodes leaves `k`.
    #[test]
    fn a_sybil_owner_cannot_take_a_stripe_down(
        others in prop::collection::vec((0usize..4, 1usize..4), 1..6),
        sybil_sites in prop::collection::vec(0usize..4, 6),
        seed in proptest::prelude::any::<u64>(),
    ) {
        let mut nodes: Vec<StorageNode> = sybil_sites
            .iter()
            .enumerate()
            .map(|(i, s)| owned(i, &site_name(*s), "sybil"))
            .collect();
        let mut counts = vec![6usize];
        for (o, (s, n)) in others.iter().enumerate() {
            for _ in 0..*n {
                nodes.push(owned(nodes.len(), &site_name(*s), &format!("o{o}")));
            }
            counts.push(*n);
        }
        let (k, m) = default_profile_owned(&counts);
        let (k, m) = (usize::from(k), usize::from(m));
        let got = place_stripe(&nodes, &[], k + m, 10, m.max(1), seed);
        let got = match got { Ok(g) => g, Err(e) => return Err(proptest::test_runner::TestCaseError::fail(format!("{counts:?}: {e}"))) };
        let sybil = got.iter().filter(|n| nodes[..6].iter().any(|s| s.id == **n)).count();
        prop_assert!(sybil <= m, "{} of {}+{} pieces on the sybil owner", sybil, k, m);
        prop_assert!(got.len() - sybil >= k);
    }
}

/// A node with a poor record gets fewer pieces than an equal one with a
/// good record (rule 4 weighs free space by credibility).
#[test]
fn nodes_with_a_poor_record_rank_lower() {
    let good = sn(1, "a", 1 << 30);
    let poor = StorageNode {
        credibility_ppm: 100_000,
        ..sn(2, "a", 1 << 30)
    };
    let picks_good = (0..1_000u64)
        .filter(|seed| {
            place_pieces(&[good.clone(), poor.clone()], &[], 1, 1, *seed).expect("placed")
                == vec![good.id]
        })
        .count();
    assert!(picks_good > 850, "{picks_good} of 1000");
    // Still eligible: with room for only one, the poor node takes the piece.
    assert_eq!(
        place_pieces(std::slice::from_ref(&poor), &[], 1, 1, 7).expect("placed"),
        vec![poor.id]
    );
}
