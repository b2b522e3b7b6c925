//! Files and folders on a lending machine that only the agent may read.
//!
//! The agent's folder holds what tenants and the cloud entrust to the node:
//! assignments (with the workloads' environment, which may carry secrets),
//! image caches, volume copies and task input and output. Other users of the
//! machine must not read them: folders are made `0700` and secret files
//! `0600`, written to a temporary file, fsynced, renamed over the old one,
//! and the folder fsynced, so a crash leaves the old or the new file, never
//! a torn one.
//!
//! With user namespaces, a container's root folder lies below the data and
//! agent folders, and its mapped root (an unprivileged host user) must pass
//! through them to enter it: those two are then `0710` with the mapped group
//! ([`let_through`]), as Docker's `userns-remap` does with its folder. Other
//! users of the machine still cannot enter, and the mapped group can only
//! pass, never list or read.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents with mode `0700`, and makes `dir`
/// itself `0700` if it already existed.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Makes `dir` passable (search only, mode `0710`) by group `gid`, the
/// group of containers' mapped root (see the module docs).
pub fn let_through(dir: &Path, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, None, Some(gid))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
}

/// Replaces `path` with `bytes`, mode `0600`, durably (see the module docs).
/// A missing folder is created `0700`; an existing one keeps its mode.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    stratus_net::write_secret_file(path, bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn folders_are_0700_and_files_0600_even_over_looser_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent/state");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("assignments.json");
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(dir.join("assignments.json.tmp"), b"stale").unwrap();
        std::fs::set_permissions(
            dir.join("assignments.json.tmp"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        create_dir(&dir).unwrap();
        write_file(&file, b"{\"env\":\"secret\"}").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"env\":\"secret\"}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(!dir.join("assignments.json.tmp").exists());
        // A missing folder is made 0700 too.
        let deeper = dir.join("new/assignments.json");
        write_file(&deeper, b"x").unwrap();
        assert_eq!(mode(&dir.join("new")), 0o700);
    }

    #[test]
    fn a_folder_let_through_stays_closed_but_to_passing_and_keeps_that() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("agent");
        create_dir(&dir).unwrap();
        let_through(&dir, 1_000_000_000).unwrap();
        write_file(&dir.join("assignments.json"), b"{}").unwrap();
        let m = std::fs::metadata(&dir).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o710, 1_000_000_000));
    }
}
