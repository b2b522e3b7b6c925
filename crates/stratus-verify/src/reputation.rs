//! A node's reputation: raised by each result that agreed with the
//! verdict, cut by a third by each that lost; its credibility (the
//! probability that its next result is right) and whether it may take
//! trusted work.
//!
//! Credibility follows Sarmenta: a new node is assumed right unless it is
//! one of the saboteurs, a fraction [`SABOTEUR_FRACTION`] of the pool, so
//! `c = 1 − f / (score + 1)`; each lost result counts against it as much as
//! that fraction again: `c = 1 − f (1 + lost) / (score + 1)`, never below 0.

use serde::{Deserialize, Serialize};

use crate::ONE;

/// The fraction of nodes assumed to return wrong results, as a ratio.
pub const SABOTEUR_FRACTION: (u128, u128) = (1, 5);
/// Least credibility a node needs to take trusted work (one half).
pub const MIN_CREDIBILITY: u128 = ONE / 2;

/// A node's (or an owner's) record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reputation {
    /// Agreeing results, less the cuts.
    pub score: u32,
    /// Results that lost.
    pub lost: u32,
}

impl Reputation {
    /// After one more result: `agreed` with the verdict, or lost.
    pub fn after(self, agreed: bool) -> Reputation {
        if agreed {
            Reputation {
                score: self.score.saturating_add(1),
                ..self
            }
        } else {
            Reputation {
                score: self.score - self.score / 3,
                lost: self.lost.saturating_add(1),
            }
        }
    }

    /// The probability that its next result is right, in fixed point,
    /// rounded down (never more credible than the formula says).
    pub fn credibility(self) -> u128 {
        let (f, d) = SABOTEUR_FRACTION;
        let doubt =
            (ONE * f * (1 + u128::from(self.lost))).div_ceil(d * (1 + u128::from(self.score)));
        ONE.saturating_sub(doubt)
    }

    /// Whether it may take trusted work.
    pub fn eligible(self) -> bool {
        self.credibility() >= MIN_CREDIBILITY
    }

    /// Its credibility in parts per million (for display).
    pub fn credibility_ppm(self) -> u32 {
        u32::try_from(self.credibility() * 1_000_000 / ONE).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_raises_a_loss_cuts_by_a_third_and_bad_records_are_barred() {
        let new = Reputation::default();
        assert_eq!(new.credibility_ppm(), 799_999, "0.8, rounded down");
        assert!(new.eligible());
        let good = (0..9).fold(new, |r, _| r.after(true));
        assert_eq!(good.score, 9);
        assert_eq!(good.credibility_ppm(), 979_999);
        let cut = good.after(false);
        assert_eq!((cut.score, cut.lost), (6, 1));
        assert!(cut.credibility() < good.credibility());
        // A new node that loses twice is barred from trusted work.
        let bad = new.after(false).after(false);
        assert!(!bad.eligible(), "{}", bad.credibility_ppm());
        assert_eq!(bad.credibility_ppm(), 399_999);
        // Many losses: credibility bottoms out at zero.
        let worst = (0..20).fold(new, |r, _| r.after(false));
        assert_eq!(worst.credibility(), 0);
    }
}
