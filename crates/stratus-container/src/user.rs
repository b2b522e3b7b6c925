//! Resolving an image's `User` string against the **rootfs's** `/etc/passwd`
//! and `/etc/group` (never the host's), as Docker does.

use std::io::Read;
use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::Root;

use crate::ContainerError;

/// Largest passwd/group file we read (an image could ship a huge one).
const MAX_DB_BYTES: u64 = 4 * 1024 * 1024;

/// The identity the container's processes run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` memberships of a named user).
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd` (`/` when unknown).
    pub home: String,
}

#[derive(Debug)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

#[derive(Debug)]
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `user` (`""`, `name`, `uid`, `uid:gid`, `name:group`, `uid:group`,
/// `name:gid`) with the given passwd and group file contents (either may be
/// empty when the image has no such file).
pub(crate) fn resolve(
    user: &str,
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, ContainerError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let user = user.trim();
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    // The user: a number need not exist in passwd; a name must.
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            users
                .iter()
                .find(|e| e.name == user_part)
                .ok_or_else(|| ContainerError::UnknownUser(user_part.to_string()))?,
        ),
    };
    let uid = match user_part.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry.map(|e| e.uid).unwrap_or_default(),
    };

    let gid = match group_part {
        None | Some("") => entry.map(|e| e.gid).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| ContainerError::UnknownGroup(g.to_string()))?,
        },
    };

    // Supplementary groups only when the group was not forced (as Docker).
    let mut additional_gids = Vec::new();
    if group_part.is_none() {
        if let Some(e) = entry {
            for g in &groups {
                if g.gid != gid && g.members.contains(&e.name) {
                    additional_gids.push(g.gid);
                }
            }
        }
    }
    additional_gids.sort_unstable();
    additional_gids.dedup();

    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/".to_string());
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Reads `path` (absolute, inside the container) from the rootfs, resolving
/// symlinks *within* the rootfs (openat2 `RESOLVE_IN_ROOT` through `pathrs`),
/// so an image cannot make the host read its own files. A missing file reads
/// as empty.
pub(crate) fn read_in_rootfs(rootfs: &Path, path: &str) -> Result<String, ContainerError> {
    let root = Root::open(rootfs).map_err(|e| ContainerError::Rootfs {
        path: rootfs.to_path_buf(),
        reason: e.to_string(),
    })?;
    let handle = match root.resolve(path) {
        Ok(h) => h,
        Err(e) if e.kind() == pathrs::error::ErrorKind::OsError(Some(libc::ENOENT)) => {
            return Ok(String::new())
        }
        Err(e) => {
            return Err(ContainerError::Rootfs {
                path: rootfs.join(path.trim_start_matches('/')),
                reason: e.to_string(),
            })
        }
    };
    let file = handle
        .reopen(OpenFlags::O_RDONLY)
        .map_err(|e| ContainerError::Rootfs {
            path: rootfs.join(path.trim_start_matches('/')),
            reason: e.to_string(),
        })?;
    let mut text = String::new();
    file.take(MAX_DB_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| ContainerError::Rootfs {
            path: rootfs.join(path.trim_start_matches('/')),
            reason: e.to_string(),
        })?;
    Ok(text)
}

/// Resolves `user` against the rootfs's `/etc/passwd` and `/etc/group`.
pub(crate) fn resolve_in_rootfs(rootfs: &Path, user: &str) -> Result<ResolvedUser, ContainerError> {
    let passwd = read_in_rootfs(rootfs, "/etc/passwd")?;
    let group = read_in_rootfs(rootfs, "/etc/group")?;
    resolve(user, &passwd, &group)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        app:x:1000:1001:app:/home/app:/bin/sh\n\
        broken line\n";
    const GROUP: &str =
        "root:x:0:\nnogroup:x:65534:\napp:x:1001:\nwheel:x:10:app,root\nvideo:x:44:app\n";

    #[test]
    fn empty_is_root() {
        let u = resolve("", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![10]);
    }

    #[test]
    fn name_takes_primary_group_and_memberships() {
        let u = resolve("app", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        assert_eq!(u.additional_gids, vec![10, 44]);
        assert_eq!(u.home, "/home/app");
        let n = resolve("nobody", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (65534, 65534));
        assert_eq!(n.home, "/nonexistent");
    }

    #[test]
    fn numbers_need_no_entry() {
        let u = resolve("1234:5678", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 5678, "/"));
        assert!(u.additional_gids.is_empty());
        let u = resolve("4321", "", "").unwrap();
        assert_eq!((u.uid, u.gid), (4321, 0));
        // A known uid takes its passwd group.
        let u = resolve("1000", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
    }

    #[test]
    fn named_group() {
        let u = resolve("app:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        assert!(u.additional_gids.is_empty());
        let u = resolve("7:video", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid), (7, 44));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(
            resolve("ghost", PASSWD, GROUP),
            Err(ContainerError::UnknownUser(n)) if n == "ghost"
        ));
        assert!(matches!(
            resolve("app:ghosts", PASSWD, GROUP),
            Err(ContainerError::UnknownGroup(n)) if n == "ghosts"
        ));
        // No passwd file at all: names cannot resolve.
        assert!(matches!(
            resolve("nobody", "", ""),
            Err(ContainerError::UnknownUser(_))
        ));
    }

    #[test]
    fn rootfs_files_are_read_inside_the_root() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "ghost:x:4242:4242::/:/bin/sh\n").unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("etc")).unwrap();
        // An absolute symlink is resolved inside the rootfs, not on the host.
        std::os::unix::fs::symlink(host.path().join("secret"), rootfs.path().join("etc/passwd"))
            .unwrap();
        assert!(matches!(
            resolve_in_rootfs(rootfs.path(), "ghost"),
            Err(ContainerError::UnknownUser(_))
        ));
        std::fs::remove_file(rootfs.path().join("etc/passwd")).unwrap();
        std::fs::write(rootfs.path().join("etc/passwd"), PASSWD).unwrap();
        let u = resolve_in_rootfs(rootfs.path(), "app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
    }
}
