//! Placement of erasure-coded pieces.
//!
//! An object is stored as stripes of `k + m` pieces; any `k` of them rebuild
//! the stripe. [`place_pieces`] chooses the storage nodes for new pieces of
//! one stripe (all of them when writing, the missing ones when repairing),
//! [`fault_tolerance`] says how many node and site losses a stripe survives,
//! and [`default_profile`] picks `k` and `m` for a cluster size.
//!
//! # Unknown sites
//!
//! A node whose site is `""` (not declared) is treated as **a site of its
//! own**: nothing is known to be shared with any other node, so the node is
//! its own failure domain. The same rule applies to `holding` entries and to
//! [`fault_tolerance`] (each piece with site `""` is a site of its own; the
//! pieces of one stripe are on distinct nodes). This keeps clusters that
//! declare no sites at all spreading over nodes, but it is an optimistic
//! assumption: nodes that really share a failure domain must declare the same
//! site for site spreading (and the site-loss count) to mean anything.
//!
//! Everything here is pure and deterministic: the same inputs and seed give
//! the same result, independently of the order of `nodes`.

use std::collections::{BTreeMap, BTreeSet};

use stratus_types::NodeId;

use crate::rng::SplitMix64;

/// A storage node as placement sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageNode {
    /// Identity.
    pub id: NodeId,
    /// Failure domain (site name). `""` means unknown: the node is treated as
    /// a site of its own (see the [module docs](self)).
    pub site: String,
    /// Free storage in bytes.
    pub free_bytes: u64,
}

/// Why pieces could not be placed.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiecePlacementError {
    /// Fewer eligible nodes (distinct, not already holding a piece of the
    /// stripe, with at least `piece_bytes` free) than pieces to place.
    #[error("{needed} pieces need {needed} distinct nodes with enough free space, only {eligible} eligible")]
    NotEnoughNodes {
        /// Pieces to place.
        needed: usize,
        /// Eligible nodes.
        eligible: usize,
    },
}

/// A failure domain: a declared site, or a node of unknown site on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SiteKey<'a> {
    Named(&'a str),
    Unknown(NodeId),
}

impl<'a> SiteKey<'a> {
    fn of(site: &'a str, id: NodeId) -> Self {
        if site.is_empty() {
            SiteKey::Unknown(id)
        } else {
            SiteKey::Named(site)
        }
    }
}

/// The eligible nodes of one site still available, sorted by id, and the
/// stripe's piece count at that site.
struct Site {
    nodes: Vec<(NodeId, u64)>,
    pieces: usize,
}

impl Site {
    fn free(&self) -> u128 {
        self.nodes.iter().map(|&(_, f)| u128::from(f)).sum()
    }
}

/// Index into `weights` drawn with probability proportional to the weight
/// (uniformly when all weights are zero). `weights` must not be empty.
fn weighted(rng: &mut SplitMix64, weights: &[u128]) -> usize {
    let total: u128 = weights.iter().sum();
    if total == 0 {
        return rng.below(weights.len() as u64) as usize;
    }
    // 128 random bits reduced modulo the total: bias below 2^-50 for any
    // realistic total (at most a few thousand times 2^64).
    let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
    let mut x = r % total;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Chooses `count` distinct nodes for new pieces of one stripe, each needing
/// `piece_bytes` free.
///
/// `holding` lists the nodes that already hold healthy pieces of this stripe
/// (for repair), one entry per piece, with the site of each: they are never
/// chosen again, and their pieces count toward their sites.
///
/// Rules, in order:
/// 1. distinct nodes, never a node in `holding`, never a node with
///    `free_bytes < piece_bytes` (when an id appears more than once in
///    `nodes`, its first entry is used and the others are ignored);
/// 2. spread over sites ("water-filling"): each new piece goes to a site with
///    the fewest pieces of the stripe so far (holding plus new) among the
///    sites that still have an eligible node left, so the pieces go to as
///    many distinct sites as possible and per-site counts differ by at most
///    one whenever capacity allows (and `holding` was balanced). Ties
///    between equally filled sites are broken at random with probability
///    proportional to their remaining free bytes;
/// 3. within the chosen site, a node is picked at random with probability
///    proportional to its `free_bytes` (uniformly if all are zero), so data
///    spreads by free capacity over many stripes.
///
/// The result is in placement order and depends only on the inputs (not on
/// the order of `nodes`) and `seed`. With `count == 0` it is empty.
///
/// # Errors
///
/// [`PiecePlacementError::NotEnoughNodes`] exactly when fewer than `count`
/// nodes are eligible under rule 1; nothing is placed then.
pub fn place_pieces(
    nodes: &[StorageNode],
    holding: &[(NodeId, String)],
    count: usize,
    piece_bytes: u64,
    seed: u64,
) -> Result<Vec<NodeId>, PiecePlacementError> {
    let held: BTreeSet<NodeId> = holding.iter().map(|(id, _)| *id).collect();
    let mut seen = BTreeSet::new();
    let mut sites: BTreeMap<SiteKey<'_>, Site> = BTreeMap::new();
    let mut eligible = 0usize;
    for n in nodes {
        if !seen.insert(n.id) || held.contains(&n.id) || n.free_bytes < piece_bytes {
            continue;
        }
        eligible += 1;
        sites
            .entry(SiteKey::of(&n.site, n.id))
            .or_insert_with(|| Site {
                nodes: Vec::new(),
                pieces: 0,
            })
            .nodes
            .push((n.id, n.free_bytes));
    }
    if eligible < count {
        return Err(PiecePlacementError::NotEnoughNodes {
            needed: count,
            eligible,
        });
    }
    for site in sites.values_mut() {
        site.nodes.sort_unstable_by_key(|&(id, _)| id);
    }
    // Pieces already held count at their sites (sites without an eligible
    // node cannot receive new pieces, so they need no entry).
    for (id, site) in holding {
        if let Some(s) = sites.get_mut(&SiteKey::of(site, *id)) {
            s.pieces += 1;
        }
    }

    let mut rng = SplitMix64::new(seed);
    let mut chosen = Vec::with_capacity(count);
    let mut keys: Vec<SiteKey<'_>> = Vec::new();
    let mut weights: Vec<u128> = Vec::new();
    while chosen.len() < count {
        // The least filled sites with a node left (there is one: at least
        // `count - chosen.len()` eligible nodes remain).
        let Some(least) = sites
            .values()
            .filter(|s| !s.nodes.is_empty())
            .map(|s| s.pieces)
            .min()
        else {
            break;
        };
        keys.clear();
        weights.clear();
        for (k, s) in &sites {
            if !s.nodes.is_empty() && s.pieces == least {
                keys.push(*k);
                weights.push(s.free());
            }
        }
        let key = keys[weighted(&mut rng, &weights)];
        let Some(site) = sites.get_mut(&key) else {
            break;
        };
        weights.clear();
        weights.extend(site.nodes.iter().map(|&(_, f)| u128::from(f)));
        let (id, _) = site.nodes.remove(weighted(&mut rng, &weights));
        site.pieces += 1;
        chosen.push(id);
    }
    Ok(chosen)
}

/// How many losses a stripe survives, per failure domain.
///
/// `piece_sites` holds the site of each piece of the stripe (one entry per
/// piece; `""` is an unknown site, and each such piece counts as a site of its
/// own); `k` pieces rebuild the stripe. Returns
/// `(tolerated_node_losses, tolerated_site_losses)`: `pieces - k`, and the
/// number of whole sites that can be lost, largest first, while at least `k`
/// pieces remain. Both are 0 when there are fewer than `k` pieces.
pub fn fault_tolerance(piece_sites: &[&str], k: usize) -> (usize, usize) {
    let pieces = piece_sites.len();
    if pieces < k {
        return (0, 0);
    }
    let mut per_site: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unknown = 0usize;
    for &s in piece_sites {
        if s.is_empty() {
            unknown += 1;
        } else {
            *per_site.entry(s).or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = per_site.into_values().collect();
    counts.extend(std::iter::repeat_n(1, unknown));
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let mut left = pieces;
    let mut lost = 0;
    for c in counts {
        if left - c < k {
            break;
        }
        left -= c;
        lost += 1;
    }
    (pieces - k, lost)
}

/// The default erasure profile `(k, m)` for a cluster with `storage_nodes`
/// storage nodes: survive the loss of any 2 nodes **and** still have room to
/// rebuild full redundancy after they are gone.
///
/// `m = 2`, and the stripe leaves 2 nodes spare for repair:
/// `k = clamp(n - 4, 1, 4)`. So 3–5 nodes give 1+2 (three copies), 6 nodes
/// 2+2, 7 nodes 3+2 and 8 or more 4+2 (1.5x overhead). With fewer than 3
/// nodes, 2 losses cannot be survived: `k = 1` and `m = n - 1` (saturating),
/// i.e. one copy per node.
pub fn default_profile(storage_nodes: usize) -> (u8, u8) {
    if storage_nodes < 3 {
        // storage_nodes - 1 is 0 or 1 here.
        (1, u8::from(storage_nodes == 2))
    } else {
        let k = storage_nodes.saturating_sub(4).clamp(1, 4);
        // k is in 1..=4, so the conversion cannot fail.
        (u8::try_from(k).unwrap_or(4), 2)
    }
}

#[cfg(test)]
mod tests;
