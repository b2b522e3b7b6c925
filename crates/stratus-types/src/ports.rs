//! The host ports a lender allows published container ports on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An inclusive range of host TCP ports (`first..=last`), e.g.
/// `20000-29999`. A node publishes container ports only inside its range;
/// ports below 1024 only when the lender's range names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct PortRange {
    /// Lowest allowed port.
    pub first: u16,
    /// Highest allowed port.
    pub last: u16,
}

impl PortRange {
    /// The default range of a node: `20000-29999`.
    pub const DEFAULT: PortRange = PortRange {
        first: 20000,
        last: 29999,
    };

    /// Whether `port` is inside the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last.saturating_sub(self.first)) + u32::from(self.first <= self.last)
    }

    /// Whether the range holds no port (`first > last`).
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::DEFAULT
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a port range does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("port range {0:?} is not FIRST-LAST with 1 <= FIRST <= LAST <= 65535 (e.g. 20000-29999)")]
pub struct PortRangeError(pub String);

impl FromStr for PortRange {
    type Err = PortRangeError;

    /// `FIRST-LAST` or a single `PORT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PortRangeError(s.chars().take(64).collect());
        let (a, b) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let r: PortRange = "20000-29999".parse().expect("parse");
        assert_eq!(r, PortRange::DEFAULT);
        assert!(r.contains(20000) && r.contains(29999));
        assert!(!r.contains(19999) && !r.contains(80) && !r.contains(30000));
        assert_eq!(r.len(), 10000);
        assert_eq!(
            "8080".parse::<PortRange>(),
            Ok(PortRange {
                first: 8080,
                last: 8080
            })
        );
        for bad in ["", "0-10", "10-5", "1-70000", "a-b", "-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
        assert_eq!(r.to_string(), "20000-29999");
    }
}
