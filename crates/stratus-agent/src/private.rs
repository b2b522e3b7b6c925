//! Files and folders on a lending machine that only the agent may read.
//!
//! The agent's folder holds what tenants and the cloud entrust to the node:
//! assignments (with the workloads' environment, which may carry secrets),
//! image caches, volume copies and task input and output. Other users of the
//! machine must not read them: folders are made `0700` and secret files
//! `0600`, written to a temporary file, fsynced, renamed over the old one,
//! and the folder fsynced, so a crash leaves the old or the new file, never
//! a torn one.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// Replaces `path` with `bytes`, mode `0600`, durably (see the module docs).
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // An older file of that name may have other permissions.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
        std::fs::write(file.with_extension("tmp"), b"stale").unwrap();
        std::fs::set_permissions(
            file.with_extension("tmp"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        write_file(&file, b"{\"env\":\"secret\"}").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"env\":\"secret\"}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(!file.with_extension("tmp").exists());
    }
}
