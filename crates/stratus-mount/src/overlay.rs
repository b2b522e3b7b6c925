//! The writable layer of a container: overlayfs with the read-only flist
//! mount as its lower layer.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::MountError;

/// An overlayfs mount: `lower` (the flist mount, read-only) under `upper`
/// (the container's changes, on the node's disk). Unmounted by
/// [`Overlay::unmount`] or on drop.
///
/// It is mounted `nodev` (device nodes of an image never open host
/// devices; a container gets its `/dev` from its runtime) and `nosuid`: a
/// set-uid program of the image or one the container writes never raises
/// privileges (containers also run with `no_new_privileges`, so nothing
/// that worked before stops working). Each container needs its own `upper`
/// and `work` directories, on one file system, and must not share them with
/// another overlay; any number of overlays may share one lower.
#[derive(Debug)]
pub struct Overlay {
    target: PathBuf,
    mounted: bool,
}

fn check_dir(what: &str, path: &Path) -> Result<String, MountError> {
    let bad = |reason: String| MountError::Overlay {
        target: path.to_path_buf(),
        reason,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad(format!("the {what} directory is not a directory"))),
        Err(e) => return Err(bad(format!("the {what} directory: {e}"))),
    }
    let text = path
        .to_str()
        .ok_or_else(|| bad(format!("the {what} path is not UTF-8")))?;
    // The option string separates with `,` and lower layers with `:`.
    if text.contains([',', ':', '\\']) {
        return Err(bad(format!(
            "the {what} path contains one of `,` `:` `\\`, which overlayfs options cannot carry"
        )));
    }
    Ok(text.to_owned())
}

impl Overlay {
    /// Mounts overlayfs at `target` with `lower` read-only under `upper`,
    /// using `work` (empty, same file system as `upper`) as overlayfs'
    /// scratch space. All four must be existing directories.
    pub fn mount(
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Overlay, MountError> {
        let l = check_dir("lower", lower)?;
        let u = check_dir("upper", upper)?;
        let w = check_dir("work", work)?;
        check_dir("target", target)?;
        let data = format!("lowerdir={l},upperdir={u},workdir={w}");
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            // A container's root: setuid bits and device nodes in an image
            // or written by the container are never honoured by the kernel.
            MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
            Some(data.as_str()),
        )
        .map_err(|e| MountError::Overlay {
            target: target.to_path_buf(),
            reason: format!("mount(2) failed: {e}"),
        })?;
        Ok(Overlay {
            target: target.to_path_buf(),
            mounted: true,
        })
    }

    /// Where the overlay is mounted.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts. When the overlay is busy (a process still uses it) it is
    /// detached lazily: gone from the namespace now, released by the kernel
    /// when its last user goes.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        if !std::mem::replace(&mut self.mounted, false) {
            return Ok(());
        }
        crate::unmount_path(&self.target)
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!("{e}");
        }
    }
}
