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
//! # Owners
//!
//! Every storage node has an **owner** (the tenant that lends it). One
//! owner may run many nodes (a Sybil lender), so [`place_stripe`] never
//! gives the nodes of one owner more than `max_per_owner` pieces of a
//! stripe — the stores pass `m`, so losing *every* node of one owner still
//! leaves `k` pieces. Owner `""` means the operator's own (trusted) nodes:
//! each is an owner of its own, like an unknown site.
//! [`default_profile_owned`] picks `k` and `m` so that the stripe fits under
//! that cap.
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
    /// Owner (lending tenant); `""` for the operator's own nodes, each an
    /// owner of its own (see the [module docs](self)).
    pub owner: String,
    /// How credible the node is, parts per million (its reputation: nodes
    /// that lost or corrupted pieces rank lower; 1,000,000 for full trust).
    pub credibility_ppm: u32,
}

/// A node that already holds a healthy piece of the stripe (for repair).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Identity.
    pub id: NodeId,
    /// Its site (`""`: unknown).
    pub site: String,
    /// Its owner (`""`: the operator's).
    pub owner: String,
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
    /// Enough nodes, but too few owners: no owner's nodes may take more
    /// than `max_per_owner` pieces of one stripe.
    #[error("{needed} pieces need nodes of more owners: at most {max_per_owner} pieces of a stripe may go to the nodes of one owner, and the eligible nodes can take only {usable} (add storage nodes of other owners, or use a profile with a larger m)")]
    TooFewOwners {
        /// Pieces to place.
        needed: usize,
        /// Pieces the eligible nodes can take under the cap.
        usable: usize,
        /// The cap.
        max_per_owner: usize,
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

/// An owner: a named tenant, or an operator's node on its own.
type OwnerKey<'a> = SiteKey<'a>;

/// The eligible nodes of one site still available, sorted by id, with their
/// owners, and the stripe's piece count at that site.
struct Site<'a> {
    nodes: Vec<(NodeId, u64, OwnerKey<'a>)>,
    pieces: usize,
}

impl Site<'_> {
    /// Free bytes of the nodes whose owner still has room.
    fn free(&self, room: &BTreeMap<OwnerKey<'_>, usize>) -> u128 {
        self.nodes
            .iter()
            .filter(|(_, _, o)| room.get(o).copied().unwrap_or(0) > 0)
            .map(|&(_, f, _)| u128::from(f))
            .sum()
    }

    /// Whether a node of an owner with room is left.
    fn open(&self, room: &BTreeMap<OwnerKey<'_>, usize>) -> bool {
        self.nodes
            .iter()
            .any(|(_, _, o)| room.get(o).copied().unwrap_or(0) > 0)
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

/// A node's weight in rule 4 of [`place_stripe`]: its free bytes scaled by
/// its credibility.
fn placement_weight(n: &StorageNode) -> u64 {
    let w = u128::from(n.free_bytes) * u128::from(n.credibility_ppm.min(1_000_000)) / 1_000_000;
    u64::try_from(w).unwrap_or(u64::MAX)
}

/// Chooses `count` distinct nodes for new pieces of one stripe, each needing
/// `piece_bytes` free, with no owner limit: [`place_stripe`] with every
/// holder an operator's node and `max_per_owner` unbounded.
pub fn place_pieces(
    nodes: &[StorageNode],
    holding: &[(NodeId, String)],
    count: usize,
    piece_bytes: u64,
    seed: u64,
) -> Result<Vec<NodeId>, PiecePlacementError> {
    let held: Vec<Held> = holding
        .iter()
        .map(|(id, site)| Held {
            id: *id,
            site: site.clone(),
            owner: String::new(),
        })
        .collect();
    place_stripe(nodes, &held, count, piece_bytes, usize::MAX, seed)
}

/// Chooses `count` distinct nodes for new pieces of one stripe, each needing
/// `piece_bytes` free.
///
/// `holding` lists the nodes that already hold healthy pieces of this stripe
/// (for repair), one entry per piece, with the site and owner of each: they
/// are never chosen again, and their pieces count toward their sites and
/// owners.
///
/// Rules, in order:
/// 1. distinct nodes, never a node in `holding`, never a node with
///    `free_bytes < piece_bytes` (when an id appears more than once in
///    `nodes`, its first entry is used and the others are ignored);
/// 2. the nodes of one owner never hold more than `max_per_owner` pieces of
///    the stripe (holding plus new; owner `""` is each node on its own);
/// 3. spread over sites ("water-filling"): each new piece goes to a site with
///    the fewest pieces of the stripe so far (holding plus new) among the
///    sites that still have an eligible node (of an owner with room) left,
///    so the pieces go to as many distinct sites as possible and per-site
///    counts differ by at most one whenever capacity allows (and `holding`
///    was balanced). Ties between equally filled sites are broken at random
///    with probability proportional to their remaining free bytes;
/// 4. within the chosen site, a node (of an owner with room) is picked at
///    random with probability proportional to its `free_bytes` times its
///    `credibility_ppm` (uniformly if all are zero), so data spreads by free
///    capacity over many stripes and less to nodes with a poor record.
///
/// The result is in placement order and depends only on the inputs (not on
/// the order of `nodes`) and `seed`. With `count == 0` it is empty.
///
/// # Errors
///
/// [`PiecePlacementError::NotEnoughNodes`] exactly when fewer than `count`
/// nodes are eligible under rule 1; else
/// [`PiecePlacementError::TooFewOwners`] exactly when rule 2 leaves room
/// for fewer than `count` (the sum over owners of the smaller of their
/// eligible nodes and their room). Nothing is placed then. Otherwise the
/// greedy choice always succeeds: each pick uses one node and one unit of
/// room of the same owner, so that sum falls by exactly one.
pub fn place_stripe(
    nodes: &[StorageNode],
    holding: &[Held],
    count: usize,
    piece_bytes: u64,
    max_per_owner: usize,
    seed: u64,
) -> Result<Vec<NodeId>, PiecePlacementError> {
    let held: BTreeSet<NodeId> = holding.iter().map(|h| h.id).collect();
    let mut seen = BTreeSet::new();
    let mut sites: BTreeMap<SiteKey<'_>, Site<'_>> = BTreeMap::new();
    let mut per_owner: BTreeMap<OwnerKey<'_>, usize> = BTreeMap::new();
    let mut eligible = 0usize;
    for n in nodes {
        if !seen.insert(n.id) || held.contains(&n.id) || n.free_bytes < piece_bytes {
            continue;
        }
        eligible += 1;
        let owner = SiteKey::of(&n.owner, n.id);
        *per_owner.entry(owner).or_default() += 1;
        sites
            .entry(SiteKey::of(&n.site, n.id))
            .or_insert_with(|| Site {
                nodes: Vec::new(),
                pieces: 0,
            })
            .nodes
            .push((n.id, placement_weight(n), owner));
    }
    if eligible < count {
        return Err(PiecePlacementError::NotEnoughNodes {
            needed: count,
            eligible,
        });
    }
    // Room left per owner: the cap less the pieces its nodes already hold.
    let mut room: BTreeMap<OwnerKey<'_>, usize> = per_owner
        .keys()
        .map(|o| {
            let holds = holding
                .iter()
                .filter(|h| SiteKey::of(&h.owner, h.id) == *o)
                .count();
            (*o, max_per_owner.saturating_sub(holds))
        })
        .collect();
    let usable: usize = per_owner
        .iter()
        .map(|(o, n)| (*n).min(room.get(o).copied().unwrap_or(0)))
        .sum();
    if usable < count {
        return Err(PiecePlacementError::TooFewOwners {
            needed: count,
            usable,
            max_per_owner,
        });
    }
    for site in sites.values_mut() {
        site.nodes.sort_unstable_by_key(|&(id, _, _)| id);
    }
    // Pieces already held count at their sites (sites without an eligible
    // node cannot receive new pieces, so they need no entry).
    for h in holding {
        if let Some(s) = sites.get_mut(&SiteKey::of(&h.site, h.id)) {
            s.pieces += 1;
        }
    }

    let mut rng = SplitMix64::new(seed);
    let mut chosen = Vec::with_capacity(count);
    let mut keys: Vec<SiteKey<'_>> = Vec::new();
    let mut weights: Vec<u128> = Vec::new();
    let mut candidates: Vec<usize> = Vec::new();
    while chosen.len() < count {
        // The least filled sites with a usable node left (there is one: the
        // usable sum is at least `count - chosen.len()`).
        let Some(least) = sites
            .values()
            .filter(|s| s.open(&room))
            .map(|s| s.pieces)
            .min()
        else {
            break;
        };
        keys.clear();
        weights.clear();
        for (k, s) in &sites {
            if s.pieces == least && s.open(&room) {
                keys.push(*k);
                weights.push(s.free(&room));
            }
        }
        let key = keys[weighted(&mut rng, &weights)];
        let Some(site) = sites.get_mut(&key) else {
            break;
        };
        candidates.clear();
        weights.clear();
        for (i, (_, f, o)) in site.nodes.iter().enumerate() {
            if room.get(o).copied().unwrap_or(0) > 0 {
                candidates.push(i);
                weights.push(u128::from(*f));
            }
        }
        let (id, _, owner) = site.nodes.remove(candidates[weighted(&mut rng, &weights)]);
        if let Some(r) = room.get_mut(&owner) {
            *r -= 1;
        }
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

/// The default erasure profile `(k, m)` for storage nodes of several
/// owners: `nodes_per_owner` holds each owner's number of storage nodes
/// (an operator's node counts as an owner of its own).
///
/// With at most `m` pieces of a stripe per owner ([`place_stripe`]), losing
/// all nodes of any one owner loses at most `m` pieces, so the stripe
/// survives it. The stripe must fit under that cap: with `m = 2`, the
/// owners' nodes can take `slots = Σ min(nodes, 2)` pieces, and the profile
/// is [`default_profile`] of `slots` (so it also keeps 2 slots spare for
/// repair). With fewer than 3 slots but 2 or more owners, `1+1` (one copy
/// on each of two owners). With a single owner nothing survives losing it:
/// [`default_profile`] of the node count, which placement refuses with
/// [`PiecePlacementError::TooFewOwners`] when it needs redundancy.
pub fn default_profile_owned(nodes_per_owner: &[usize]) -> (u8, u8) {
    let slots: usize = nodes_per_owner.iter().map(|&n| n.min(2)).sum();
    let owners = nodes_per_owner.iter().filter(|&&n| n > 0).count();
    if slots >= 3 {
        default_profile(slots)
    } else if owners >= 2 {
        (1, 1)
    } else {
        default_profile(nodes_per_owner.iter().sum())
    }
}

#[cfg(test)]
mod tests;
