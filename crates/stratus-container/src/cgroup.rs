//! The few cgroup facts the executor reads itself (libcontainer creates,
//! configures and removes the cgroups).

use std::path::{Path, PathBuf};

/// Root of the cgroup file systems.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup layout the host has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Per-controller v1 hierarchies (alone or with a v2 `unified` mount).
    V1,
    /// Unified v2 only.
    V2,
}

/// Detects the layout, or explains why none is usable.
pub(crate) fn detect() -> Result<Layout, String> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("memory/memory.limit_in_bytes").exists() {
        for c in ["cpu", "pids", "devices"] {
            if !root.join(c).is_dir() {
                return Err(format!(
                    "cgroup v1 controller {c} is not mounted at {CGROUP_ROOT}/{c}"
                ));
            }
        }
        Ok(Layout::V1)
    } else if root.join("cgroup.controllers").exists() {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
            .map_err(|e| format!("read {CGROUP_ROOT}/cgroup.controllers: {e}"))?;
        for c in ["memory", "cpu", "pids"] {
            if !controllers.split_whitespace().any(|x| x == c) {
                return Err(format!("cgroup v2 controller {c} is not available"));
            }
        }
        Ok(Layout::V2)
    } else {
        Err(format!("no cgroup memory controller under {CGROUP_ROOT}"))
    }
}

/// The number of processes the OOM killer killed in the cgroup at
/// `cgroup_path` (e.g. `/stratus/<id>`); 0 when the counter cannot be read.
pub(crate) fn oom_kills(layout: Layout, cgroup_path: &str) -> u64 {
    let rel = cgroup_path.trim_start_matches('/');
    let (file, key) = match layout {
        Layout::V1 => (
            Path::new(CGROUP_ROOT)
                .join("memory")
                .join(rel)
                .join("memory.oom_control"),
            "oom_kill",
        ),
        Layout::V2 => (
            Path::new(CGROUP_ROOT).join(rel).join("memory.events"),
            "oom_kill",
        ),
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => parse_counter(&text, key).unwrap_or(0),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read OOM counter");
            0
        }
    }
}

/// The CPU time and memory peak of the cgroup at `cgroup_path`, read
/// before it is removed; `(ZERO, 0)` for what cannot be read (logged).
pub(crate) fn usage(layout: Layout, cgroup_path: &str) -> (std::time::Duration, u64) {
    let rel = cgroup_path.trim_start_matches('/');
    let root = Path::new(CGROUP_ROOT);
    let read = |file: PathBuf| match std::fs::read_to_string(&file) {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read cgroup usage");
            None
        }
    };
    match layout {
        Layout::V1 => {
            let cpu_ns = read(root.join("cpuacct").join(rel).join("cpuacct.usage"))
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            let peak = read(
                root.join("memory")
                    .join(rel)
                    .join("memory.max_usage_in_bytes"),
            )
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
            (std::time::Duration::from_nanos(cpu_ns), peak)
        }
        Layout::V2 => {
            let dir = root.join(rel);
            let cpu_us = read(dir.join("cpu.stat"))
                .and_then(|t| parse_counter(&t, "usage_usec"))
                .unwrap_or(0);
            // `memory.peak` exists from Linux 5.19.
            let peak = read(dir.join("memory.peak"))
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            (std::time::Duration::from_micros(cpu_us), peak)
        }
    }
}

/// `key N` lines, as in `memory.oom_control` and `memory.events`.
pub(crate) fn parse_counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

/// The folders of the cgroup parent (`/<parent>`) in every hierarchy.
pub(crate) fn parent_dirs(layout: Layout, parent: &str) -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    match layout {
        Layout::V2 => vec![root.join(parent)],
        Layout::V1 => std::fs::read_dir(root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path().join(parent))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(parse_counter(v1, "oom_kill"), Some(3));
        assert_eq!(parse_counter(v1, "under_oom"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_counter(v2, "oom_kill"), Some(1));
        assert_eq!(parse_counter("oom_kill x\n", "oom_kill"), None);
        assert_eq!(parse_counter("", "oom_kill"), None);
    }
}
