//! What this machine can lend: cores, memory, disk, architecture, OS, name.

use std::path::Path;

use stratus_types::Capacity;

/// Logical cores available to this process.
pub fn cpu_cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Total memory in bytes, from `/proc/meminfo` (0 if unknown).
pub fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_meminfo_total(&s))
        .unwrap_or(0)
}

/// Parses the `MemTotal:` line of `/proc/meminfo` into bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
// The statvfs field types differ between platforms (u32 on some 32-bit ones).
#[allow(clippy::unnecessary_cast)]
pub fn disk_bytes(path: &Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
        .unwrap_or(0)
}

/// The machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Measures the capacity of this machine, with `data_dir` for the disk figure.
pub fn capacity(data_dir: &Path) -> Capacity {
    Capacity {
        cpu_cores: cpu_cores(),
        memory_bytes: memory_bytes(),
        disk_bytes: disk_bytes(data_dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parses() {
        let s = "MemTotal:       24576000 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_meminfo_total(s), Some(24576000 * 1024));
        assert_eq!(parse_meminfo_total("garbage"), None);
        assert_eq!(parse_meminfo_total("MemTotal: lots kB"), None);
    }

    #[test]
    fn this_machine_has_something_to_lend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = capacity(dir.path());
        assert!(c.cpu_cores >= 1);
        assert!(c.memory_bytes > 0);
        assert!(c.disk_bytes > 0);
    }
}
