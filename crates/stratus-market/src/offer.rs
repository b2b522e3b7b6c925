//! Lenders' offers: a node's prices and the hours it is available.
//!
//! Availability is a list of weekly windows in UTC, written as people say
//! them: `mon-fri 18:00-08:00, sat-sun` (office desktops at night and on
//! weekends). A window whose end is before its start runs past midnight
//! into the next day, so `fri 18:00-08:00` ends Saturday 08:00. No window
//! means always available.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::settle::Prices;

/// Most windows in one availability.
pub const MAX_WINDOWS: usize = 16;
const DAY_MS: u64 = 86_400_000;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A lender's offer for one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its prices.
    pub prices: Prices,
    /// When it takes work.
    pub availability: Availability,
}

/// When a node takes work: weekly UTC windows (none = always).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The windows.
    pub windows: Vec<Window>,
}

/// One weekly window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Days it starts on: bit 0 = Monday ... bit 6 = Sunday.
    pub days: u8,
    /// Start, minutes after midnight UTC (0..1440).
    pub start_min: u16,
    /// End, minutes after midnight UTC (1..=1440); before `start_min` when
    /// the window runs past midnight.
    pub end_min: u16,
}

/// Why an availability could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AvailabilityError {
    /// Not `DAYS [HH:MM-HH:MM]`.
    #[error("{0:?} is not a window: write DAYS [HH:MM-HH:MM], e.g. \"mon-fri 18:00-08:00, sat-sun\" (UTC)")]
    Syntax(String),
    /// Too many windows.
    #[error("at most {MAX_WINDOWS} windows")]
    TooMany,
}

fn day(s: &str) -> Option<u8> {
    DAYS.iter().position(|d| *d == s).map(|i| i as u8)
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl Window {
    fn parse(s: &str) -> Result<Window, AvailabilityError> {
        let bad = || AvailabilityError::Syntax(s.chars().take(64).collect());
        let mut parts = s.split_whitespace();
        let days = parts.next().ok_or_else(bad)?.to_ascii_lowercase();
        let mask = match days.as_str() {
            "daily" | "all" => 0x7f,
            d => match d.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a).ok_or_else(bad)?, day(b).ok_or_else(bad)?);
                    // Wraps around the week: `sat-mon`.
                    (0..7u8)
                        .filter(|i| {
                            if a <= b {
                                (a..=b).contains(i)
                            } else {
                                *i >= a || *i <= b
                            }
                        })
                        .fold(0, |m, i| m | (1 << i))
                }
                None => 1 << day(d).ok_or_else(bad)?,
            },
        };
        let (start_min, end_min) = match parts.next() {
            None => (0, 1440),
            Some(t) => {
                let (a, b) = t.split_once('-').ok_or_else(bad)?;
                let (a, b) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
                if a == b || a == 1440 || b == 0 {
                    return Err(bad());
                }
                (a, b)
            }
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Window {
            days: mask,
            start_min,
            end_min,
        })
    }

    fn contains(&self, weekday: u8, minute: u16) -> bool {
        let on = |d: u8| self.days & (1 << d) != 0;
        let yesterday = (weekday + 6) % 7;
        if self.start_min < self.end_min {
            on(weekday) && (self.start_min..self.end_min).contains(&minute)
        } else {
            (on(weekday) && minute >= self.start_min) || (on(yesterday) && minute < self.end_min)
        }
    }
}

impl Availability {
    /// Parses `WINDOW[, WINDOW...]` (empty or `always` = always).
    pub fn parse(s: &str) -> Result<Availability, AvailabilityError> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("always") {
            return Ok(Availability::default());
        }
        let windows = s
            .split(',')
            .map(|w| Window::parse(w.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let a = Availability { windows };
        a.validate()?;
        Ok(a)
    }

    /// Checks bounds (for values that did not come through [`parse`]).
    ///
    /// [`parse`]: Availability::parse
    pub fn validate(&self) -> Result<(), AvailabilityError> {
        if self.windows.len() > MAX_WINDOWS {
            return Err(AvailabilityError::TooMany);
        }
        for w in &self.windows {
            let ok = w.days & 0x80 == 0
                && w.days != 0
                && w.start_min < 1440
                && (1..=1440).contains(&w.end_min)
                && w.start_min != w.end_min;
            if !ok {
                return Err(AvailabilityError::Syntax(format!("{w:?}")));
            }
        }
        Ok(())
    }

    /// Whether the node takes work at `at_ms` (ms since the Unix epoch).
    pub fn available_at(&self, at_ms: u64) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let days = at_ms / DAY_MS;
        // 1970-01-01 was a Thursday (index 3 from Monday).
        let weekday = ((days + 3) % 7) as u8;
        let minute = ((at_ms % DAY_MS) / 60_000) as u16;
        self.windows.iter().any(|w| w.contains(weekday, minute))
    }
}

/// `daily`, `mon`, `mon-fri`, `sat-mon` (one circular run of days, which
/// is what [`Availability::parse`] makes), else the days one by one.
fn days_text(mask: u8) -> String {
    let on = |d: usize| mask & (1 << (d % 7)) != 0;
    if mask & 0x7f == 0x7f {
        return "daily".into();
    }
    let starts: Vec<usize> = (0..7).filter(|&d| on(d) && !on(d + 6)).collect();
    if let [start] = starts[..] {
        let len = (0..7).take_while(|i| on(start + i)).count();
        let end = (start + len - 1) % 7;
        return if len == 1 {
            DAYS[start].to_string()
        } else {
            format!("{}-{}", DAYS[start], DAYS[end])
        };
    }
    (0..7)
        .filter(|&d| on(d))
        .map(|d| DAYS[d])
        .collect::<Vec<_>>()
        .join("+")
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.windows.is_empty() {
            return f.write_str("always");
        }
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&days_text(w.days))?;
            if (w.start_min, w.end_min) != (0, 1440) {
                write!(f, " {}-{}", hm(w.start_min), hm(w.end_min))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// ms of `weekday` (0 = Monday) `hh:mm` in the week of 1970-01-05.
    fn at(weekday: u64, hh: u64, mm: u64) -> u64 {
        // 1970-01-05 was a Monday.
        (4 + weekday) * DAY_MS + (hh * 60 + mm) * 60_000
    }

    #[test]
    fn nights_and_weekends() {
        let a = Availability::parse("mon-fri 18:00-08:00, sat-sun").expect("parse");
        assert!(a.available_at(at(0, 19, 0)));
        assert!(
            a.available_at(at(1, 7, 59)),
            "Tuesday morning is Monday night"
        );
        assert!(!a.available_at(at(1, 8, 0)));
        assert!(!a.available_at(at(2, 12, 0)));
        assert!(a.available_at(at(5, 12, 0)), "Saturday");
        assert!(
            a.available_at(at(5, 7, 0)),
            "Friday night runs into Saturday"
        );
        assert!(
            !a.available_at(at(0, 7, 0)),
            "Sunday's window ends at midnight"
        );
        assert_eq!(a.to_string(), "mon-fri 18:00-08:00, sat-sun");
        assert_eq!(Availability::parse(&a.to_string()).ok(), Some(a));
        for s in ["daily 09:00-17:00", "sat-mon", "wed 00:00-24:00"] {
            let a = Availability::parse(s).expect("parse");
            assert_eq!(Availability::parse(&a.to_string()).ok(), Some(a), "{s}");
        }
    }

    #[test]
    fn always_and_bad_input() {
        assert!(Availability::parse("").expect("empty").available_at(0));
        assert!(Availability::parse("always")
            .expect("always")
            .windows
            .is_empty());
        for bad in [
            "someday",
            "mon 9-17",
            "mon 09:00-09:00",
            "mon 25:00-26:00",
            "mon 09:00-17:00 extra",
            "mon-xyz",
        ] {
            assert!(Availability::parse(bad).is_err(), "{bad}");
        }
        let many = vec!["mon"; MAX_WINDOWS + 1].join(",");
        assert_eq!(Availability::parse(&many), Err(AvailabilityError::TooMany));
        assert!(Availability::parse("sat-mon")
            .expect("wrap")
            .available_at(at(0, 12, 0)));
    }

    proptest! {
        /// A window covering every day answers the same as always, and the
        /// complement of a daytime window is the night window.
        #[test]
        fn windows_partition_the_day(t in 0u64..(4_000 * DAY_MS), start in 1u16..1439, len in 1u16..1438) {
            let end = (start + len) % 1440;
            prop_assume!(end != start && end != 0);
            let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
            let day = Availability::parse(&format!("daily {}-{}", hm(start), hm(end))).expect("day");
            let night = Availability::parse(&format!("daily {}-{}", hm(end), hm(start))).expect("night");
            prop_assert_ne!(day.available_at(t), night.available_at(t));
        }
    }
}
