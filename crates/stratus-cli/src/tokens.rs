//! Token options of `stratus tenants token`: lifetimes like `24h`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};

/// Parses a lifetime: a whole number followed by `s`, `m`, `h` or `d`
/// (`90s`, `15m`, `24h`, `30d`), into seconds.
pub fn parse_lifetime(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid lifetime {s:?}: write a number and a unit s, m, h or d (e.g. 24h)"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid lifetime {s:?}: it must start with a number"))?;
    match n.checked_mul(per) {
        Some(0) | None => bail!("invalid lifetime {s:?}: it must be at least 1s and fit in a u64"),
        Some(secs) => Ok(secs),
    }
}

/// How long until `expires_ms`, for humans: `never`, `expired`, `in 3h`.
pub fn expiry(expires_ms: Option<u64>) -> String {
    let Some(e) = expires_ms else {
        return "never".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let s = e.saturating_sub(now) / 1000;
    match s {
        0 => "expired".into(),
        1..=59 => format!("in {s}s"),
        60..=3599 => format!("in {}m", s / 60),
        3600..=86399 => format!("in {}h", s / 3600),
        _ => format!("in {}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_lifetime("90s").expect("90s"), 90);
        assert_eq!(parse_lifetime("15m").expect("15m"), 900);
        assert_eq!(parse_lifetime("24h").expect("24h"), 86_400);
        assert_eq!(parse_lifetime("30d").expect("30d"), 2_592_000);
        for bad in [
            "",
            "h",
            "24",
            "0h",
            "-1h",
            "1w",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiry_reads_well() {
        assert_eq!(expiry(None), "never");
        assert_eq!(expiry(Some(1)), "expired");
    }
}
