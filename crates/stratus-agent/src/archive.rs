//! Volume archives: packing a folder a container can write, and unpacking an
//! archive a tenant can write, without either reaching the host.
//!
//! Both sides are hostile:
//!
//! * **Packing** reads a folder while (with `sync_secs`) its container runs
//!   and can rename, swap and relink entries at any moment. The walk never
//!   resolves a path: each entry is opened relative to its parent's file
//!   descriptor with `O_PATH | O_NOFOLLOW`, its type and metadata come from
//!   that descriptor (`fstat`), folders are descended through
//!   `O_DIRECTORY | O_NOFOLLOW` descriptors checked to be the same inode, and
//!   a regular file's bytes are read by re-opening the very inode the
//!   `O_PATH` descriptor holds (`/proc/self/fd/N`). A symlink swapped in
//!   after the check is archived as a symlink, never followed; a device node
//!   or socket swapped in is never opened (opening some devices has effects,
//!   and reading a host disk would put it in the tenant's bucket).
//! * **Unpacking** takes an archive from the tenant's bucket into a fresh
//!   folder beside the volume, which no container sees until it is swapped
//!   in whole. Entries outside the folder (`..`, absolute paths, parents that
//!   are symlinks leading out), device files and sockets are skipped;
//!   setuid and setgid bits are dropped (a volume is mounted `nosuid` too,
//!   but the bits would survive into the next archive and any other mount).
//!
//! Archives keep modes (but setuid/setgid), owners, times, symlinks and FIFOs,
//! in sorted order so the same tree gives the same bytes.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use stratus_container::IdMap;

/// Mode bits never restored from an archive.
const DROPPED_MODE_BITS: u32 = 0o6000;
/// `nobody`: the owner of what a user namespace does not map.
const NOBODY: u32 = 65_534;

/// Removes a file or a folder, if there is one.
pub(crate) fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes and hashes.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Archives the folder `dir` (its own mode and owner as `.`, then its tree
/// in sorted order) into `out`; returns the archive's BLAKE3. No path under
/// `dir` is ever resolved (see the module docs). With `ids`, owners are
/// written as the container sees them (host ids outside the range as
/// `nobody`), so an archive means the same on every node.
pub fn pack(dir: &Path, out: &Path, ids: Option<IdMap>) -> std::io::Result<String> {
    let root: File = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?
    .into();
    let file = std::io::BufWriter::new(File::create(out)?);
    let mut b = tar::Builder::new(Hashing {
        inner: file,
        hasher: blake3::Hasher::new(),
    });
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&root.metadata()?, tar::HeaderMode::Complete);
    to_container(&mut h, ids)?;
    h.set_size(0);
    b.append_data(&mut h, ".", std::io::empty())?;
    walk(&mut b, root.as_fd(), Path::new(""), ids)?;
    let mut w = b.into_inner()?;
    w.flush()?;
    let hash = w.hasher.finalize().to_hex().to_string();
    w.inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(hash)
}

/// Whether an error means the entry vanished (or was swapped for something
/// else) while the folder was read: such entries are left out.
fn gone(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    // ELOOP: a folder became a symlink between the check and the open.
    matches!(e.kind(), K::NotFound | K::NotADirectory)
        || e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32)
}

/// The names in the folder `dir`, sorted.
fn names(dir: impl AsFd) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Owner ids of the container's namespace in `h` (unchanged without one).
fn to_container(h: &mut tar::Header, ids: Option<IdMap>) -> std::io::Result<()> {
    if let Some(ids) = ids {
        let map = |id: u64| {
            u32::try_from(id)
                .ok()
                .and_then(|id| ids.to_container(id))
                .unwrap_or(NOBODY)
        };
        h.set_uid(map(h.uid()?).into());
        h.set_gid(map(h.gid()?).into());
    }
    Ok(())
}

/// The host id an archived owner id gets (unchanged without a namespace;
/// ids the namespace does not map become its `nobody`).
fn to_host(id: u64, ids: Option<IdMap>) -> u32 {
    match ids {
        None => u32::try_from(id).unwrap_or(NOBODY),
        Some(ids) => u32::try_from(id)
            .ok()
            .and_then(|id| ids.to_host(id))
            .or_else(|| ids.to_host(NOBODY))
            .unwrap_or(ids.first),
    }
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &Path,
    ids: Option<IdMap>,
) -> std::io::Result<()> {
    for name in names(dir)? {
        let name = OsStr::from_bytes(&name);
        let path = rel.join(name);
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        // A handle on the entry itself, whatever it is; never followed.
        let handle: OwnedFd = match rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) if gone(&e.into()) => continue,
            Err(e) => return Err(named(e.into())),
        };
        let handle = File::from(handle);
        let meta = handle.metadata().map_err(named)?;
        let t = meta.file_type();
        if t.is_socket() || t.is_block_device() || t.is_char_device() {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        to_container(&mut h, ids)?;
        if t.is_dir() {
            let sub = match rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => File::from(fd),
                Err(e) if gone(&e.into()) => continue,
                Err(e) => return Err(named(e.into())),
            };
            if !same_inode(&sub.metadata().map_err(named)?, &meta) {
                continue; // swapped meanwhile
            }
            h.set_size(0);
            b.append_data(&mut h, &path, std::io::empty())
                .map_err(named)?;
            walk(b, sub.as_fd(), &path, ids)?;
        } else if t.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            b.append_data(&mut h, &path, std::io::empty())
                .map_err(named)?;
        } else if t.is_symlink() {
            // The link of the O_PATH handle itself (empty path, AT_EMPTY_PATH
            // semantics of readlinkat), not whatever the name holds now.
            let target = match rustix::fs::readlinkat(handle.as_fd(), "", Vec::new()) {
                Ok(t) => PathBuf::from(OsStr::from_bytes(t.as_bytes())),
                Err(e) if gone(&e.into()) => continue,
                Err(e) => return Err(named(e.into())),
            };
            h.set_size(0);
            b.append_link(&mut h, &path, &target).map_err(named)?;
        } else {
            // The very inode checked above, opened for reading through the
            // handle: never a path lookup that a swap could redirect.
            let file = match File::open(format!("/proc/self/fd/{}", handle.as_raw_fd())) {
                Ok(f) => f,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(named(e)),
            };
            // Exactly the size in the header, even if the file changes
            // meanwhile (zeros if it shrank), so the archive stays valid.
            let len = meta.len();
            let data = file.take(len).chain(std::io::repeat(0)).take(len);
            b.append_data(&mut h, &path, data).map_err(named)?;
        }
    }
    Ok(())
}

fn same_inode(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Unpacks the archive `tar` into the (empty) folder `dst`: modes (without
/// setuid/setgid), owners and times are kept; entries outside `dst`, device
/// files and sockets are skipped. With `ids`, archived owners are the
/// container's and are given their host ids in that namespace.
pub fn unpack(tar: &Path, dst: &Path, ids: Option<IdMap>) -> std::io::Result<()> {
    let mut a = tar::Archive::new(std::io::BufReader::new(File::open(tar)?));
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(true);
    a.set_preserve_mtime(true);
    a.set_overwrite(true);
    a.set_mask(DROPPED_MODE_BITS);
    let mut root: Option<(u32, u32, u32, u64)> = None;
    // Folders get their times back once everything inside them is written.
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in a.entries()? {
        let mut e = entry?;
        let t = e.header().entry_type();
        if matches!(t, tar::EntryType::Block | tar::EntryType::Char) {
            continue;
        }
        let path = e.path()?.into_owned();
        let h = e.header();
        if path.components().all(|c| matches!(c, Component::CurDir)) {
            root = Some((
                h.mode()?,
                to_host(h.uid()?, ids),
                to_host(h.gid()?, ids),
                h.mtime()?,
            ));
            continue;
        }
        if t == tar::EntryType::Fifo {
            // The tar crate does not create FIFOs.
            let (mode, uid, gid) = (h.mode()?, to_host(h.uid()?, ids), to_host(h.gid()?, ids));
            if let Some(p) = inside(dst, &path)? {
                remove_any(&p)?;
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(std::io::Error::from)?;
                std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
                std::fs::set_permissions(&p, kept_mode(mode))?;
                set_mtime(&p, h.mtime()?)?;
            }
            continue;
        }
        let clean: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if t.is_dir() {
            dir_times.push((dst.join(&clean), h.mtime()?));
        }
        let owner = (to_host(h.uid()?, ids), to_host(h.gid()?, ids));
        // `unpack_in` writes the archived owners; in a namespace they are
        // shifted after it, on the entry it just wrote (false: skipped).
        if e.unpack_in(dst)? && ids.is_some() {
            std::os::unix::fs::lchown(dst.join(&clean), Some(owner.0), Some(owner.1))?;
        }
    }
    for (d, mtime) in dir_times.iter().rev() {
        set_mtime(d, *mtime)?;
    }
    if let Some((mode, uid, gid, mtime)) = root {
        std::os::unix::fs::chown(dst, Some(uid), Some(gid))?;
        std::fs::set_permissions(dst, kept_mode(mode))?;
        set_mtime(dst, mtime)?;
    }
    Ok(())
}

/// The permissions restored for an archived `mode`.
fn kept_mode(mode: u32) -> std::fs::Permissions {
    std::fs::Permissions::from_mode(mode & 0o7777 & !DROPPED_MODE_BITS)
}

/// Where the archive path `rel` goes in `dst`, when that is inside it
/// (`None` for `..` or a parent that leads out through a symlink).
fn inside(dst: &Path, rel: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => return Ok(None),
        }
    }
    let target = dst.join(&clean);
    let Some(parent) = target.parent().filter(|_| !clean.as_os_str().is_empty()) else {
        return Ok(None);
    };
    std::fs::create_dir_all(parent)?;
    if !std::fs::canonicalize(parent)?.starts_with(std::fs::canonicalize(dst)?) {
        return Ok(None);
    }
    Ok(Some(target))
}

/// Sets the modification time of a folder or FIFO (never through a
/// symlink; opening a FIFO would block, hence the path-based call).
pub(crate) fn set_mtime(path: &Path, secs: u64) -> std::io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() || m.file_type().is_fifo() => {
            utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
                .map_err(std::io::Error::from)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
