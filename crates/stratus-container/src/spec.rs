//! Translation of a [`ContainerSpec`] into an OCI runtime `config.json`.
//!
//! Pure: no IO, so every security setting is unit-tested here. The JSON is
//! written with `serde_json::json!` in the shape of the OCI runtime spec and
//! parsed into `oci_spec::runtime::Spec`, which checks every field's type.

use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use crate::user::ResolvedUser;
use crate::{ContainerError, ContainerSpec};

/// Capabilities kept (bounding, effective, permitted): Docker's default set
/// **without `CAP_MKNOD`** (nothing a workload needs; the device cgroup
/// would refuse access to a made node anyway, but no node can be made at all).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths masked inside the container (as Docker): files are hidden behind
/// `/dev/null`, folders behind an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only inside the container (as Docker).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// CFS period used for the CPU quota (100 ms, the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Open-files limit of the container's processes (soft, hard), lowered to
/// the agent's own hard limit when that is smaller (raising it would need
/// `CAP_SYS_RESOURCE`).
pub const NOFILE_LIMIT: (u64, u64) = (1024, 65536);

/// [`NOFILE_LIMIT`] clamped to the limit this process can grant.
pub fn nofile_limit() -> (u64, u64) {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(NOFILE_LIMIT.1);
    clamp_nofile(hard)
}

fn clamp_nofile(agent_hard: u64) -> (u64, u64) {
    let hard = NOFILE_LIMIT.1.min(agent_hard);
    (NOFILE_LIMIT.0.min(hard), hard)
}

/// The cgroup path (relative to each hierarchy's root) of container `id`.
pub fn cgroup_path(parent: &str, id: &str) -> String {
    format!("/{parent}/{id}")
}

/// The host ids a container's user namespace maps its ids onto: container
/// uid and gid `0..size` are host `first..first + size`, and no other id
/// exists inside. Container root is then an unprivileged host user that
/// owns nothing on the host but the container's own files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// Host uid (and gid) of container root.
    pub first: u32,
    /// Ids mapped (65,536 holds every uid an ordinary image uses).
    pub size: u32,
}

impl IdMap {
    /// Container ids `0..65536` onto host `first..first + 65536`.
    pub const fn new(first: u32) -> Self {
        IdMap {
            first,
            size: 65_536,
        }
    }

    /// The host id of container id `id`, `None` if it is not mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < self.size)
            .then(|| self.first.checked_add(id))
            .flatten()
    }

    /// The container id of host id `id`, `None` if it is outside the range.
    pub fn to_container(&self, id: u32) -> Option<u32> {
        id.checked_sub(self.first).filter(|c| *c < self.size)
    }
}

/// Builds the OCI spec for `spec`, run as `user`, with `etc_dir` the host
/// folder holding the generated `hostname` and `hosts` files, `nofile`
/// the open-files limit (see [`nofile_limit`]) and `ids` the user
/// namespace's mapping (`None`: no user namespace, container root is host
/// root).
pub(crate) fn build(
    spec: &ContainerSpec,
    user: &ResolvedUser,
    etc_dir: &Path,
    cgroup_parent: &str,
    nofile: (u64, u64),
    ids: Option<IdMap>,
) -> Result<Spec, ContainerError> {
    let mut env: Vec<String> = Vec::new();
    let has = |k: &str| spec.env.iter().any(|(key, _)| key == k);
    if !has("PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !has("HOSTNAME") {
        env.push(format!("HOSTNAME={}", spec.hostname));
    }
    if !has("HOME") {
        env.push(format!("HOME={}", user.home));
    }
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));

    let cwd = if spec.cwd.is_empty() {
        "/".to_string()
    } else {
        spec.cwd.clone()
    };

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/etc/hostname", "type": "bind",
               "source": etc_dir.join("hostname"),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
        json!({"destination": "/etc/hosts", "type": "bind",
               "source": etc_dir.join("hosts"),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
    ];
    if spec.network.is_some() {
        mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind",
               "source": etc_dir.join("resolv.conf"),
               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}));
    }
    for v in &spec.volumes {
        mounts.push(json!({
            "destination": v.container_path,
            "type": "bind",
            "source": v.host_path,
            "options": ["rbind", if v.read_only { "ro" } else { "rw" }, "nosuid", "nodev", "rprivate"],
        }));
    }

    let mut resources = json!({
        // No host devices: deny everything; libcontainer then allows the
        // default nodes it creates (null, zero, full, random, urandom, tty,
        // console, ptmx/pts).
        "devices": [{"allow": false, "access": "rwm"}],
    });
    if spec.memory_bytes > 0 {
        let limit = i64::try_from(spec.memory_bytes).map_err(|_| {
            ContainerError::InvalidSpec(format!("memory_bytes: {} is too large", spec.memory_bytes))
        })?;
        // swap = memory + swap: equal to the limit means no swap at all.
        resources["memory"] = json!({"limit": limit, "swap": limit});
    }
    if spec.cpu_millis > 0 {
        let quota = u64::from(spec.cpu_millis) * CPU_PERIOD_US / 1000;
        resources["cpu"] = json!({"quota": quota.max(1000), "period": CPU_PERIOD_US});
    }
    if spec.pids > 0 {
        resources["pids"] = json!({"limit": spec.pids});
    }

    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let seccomp = serde_json::to_value(crate::seccomp::default_profile())
        .map_err(|e| ContainerError::Internal(format!("seccomp profile: {e}")))?;

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "network"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    if ids.is_some() {
        namespaces.push(json!({"type": "user"}));
    }
    let mut value: Value = json!({
        "ociVersion": "1.0.2",
        "root": {"path": spec.rootfs, "readonly": false},
        "hostname": spec.hostname,
        "process": {
            "terminal": false,
            "user": {
                "uid": user.uid,
                "gid": user.gid,
                "additionalGids": user.additional_gids,
            },
            "args": spec.args,
            "env": env,
            "cwd": cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": nofile.0, "hard": nofile.1}],
            "noNewPrivileges": true,
            "oomScoreAdj": 0,
        },
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroup_path(cgroup_parent, &spec.id),
            "resources": resources,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "rootfsPropagation": "private",
            "seccomp": seccomp,
        },
    });
    if let Some(ids) = ids {
        let map = json!([{"containerID": 0, "hostID": ids.first, "size": ids.size}]);
        value["linux"]["uidMappings"] = map.clone();
        value["linux"]["gidMappings"] = map;
    }
    serde_json::from_value(value).map_err(|e| ContainerError::Internal(format!("OCI spec: {e}")))
}

/// The `/etc/hosts` the container sees.
pub(crate) fn hosts_file(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;
    use std::time::Duration;

    use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccompAction};

    use super::*;
    use crate::Volume;

    fn sample() -> ContainerSpec {
        let mut s = ContainerSpec::new("web-1", "/tmp/rootfs", vec!["/bin/sh".into()]);
        s.env = vec![("A".into(), "1".into())];
        s.hostname = "box".into();
        s.memory_bytes = 64 << 20;
        s.cpu_millis = 500;
        s.pids = 20;
        s.wall_time = Some(Duration::from_secs(1));
        s.volumes = vec![Volume {
            host_path: "/srv/data".into(),
            container_path: "/data".into(),
            read_only: true,
        }];
        s
    }

    fn user() -> ResolvedUser {
        ResolvedUser {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![10],
            home: "/nonexistent".into(),
        }
    }

    #[test]
    fn process_is_confined() {
        let spec = build(
            &sample(),
            &user(),
            Path::new("/state/etc"),
            "stratus",
            NOFILE_LIMIT,
            None,
        )
        .unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.user().uid(), 65534);
        assert_eq!(p.user().additional_gids().as_ref().unwrap(), &vec![10]);
        let caps = p.capabilities().as_ref().unwrap();
        let bounding: Vec<String> = caps
            .bounding()
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(bounding.len(), CAPABILITIES.len());
        for forbidden in [
            "CAP_SYS_ADMIN",
            "CAP_MKNOD",
            "CAP_SYS_PTRACE",
            "CAP_NET_ADMIN",
        ] {
            assert!(
                !bounding.iter().any(|c| c.contains(&forbidden[4..])),
                "{forbidden} kept"
            );
        }
        assert!(caps.inheritable().as_ref().is_none_or(|i| i.is_empty()));
        let env = p.env().as_ref().unwrap();
        assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")));
        assert!(env.contains(&"HOME=/nonexistent".to_string()));
        assert!(env.contains(&"A=1".to_string()));
        assert_eq!(p.cwd(), &PathBuf::from("/"));
    }

    #[test]
    fn namespaces_cgroups_and_paths() {
        let spec = build(
            &sample(),
            &user(),
            Path::new("/state/etc"),
            "stratus",
            NOFILE_LIMIT,
            None,
        )
        .unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<LinuxNamespaceType> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        for t in [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
        ] {
            assert!(ns.contains(&t), "{t:?} missing");
        }
        assert!(!ns.contains(&LinuxNamespaceType::User));
        // Joining a namespace by path would share the host's.
        assert!(linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .all(|n| n.path().is_none()));
        assert_eq!(
            linux.cgroups_path().as_ref().unwrap(),
            &PathBuf::from("/stratus/web-1")
        );
        let r = linux.resources().as_ref().unwrap();
        let mem = r.memory().as_ref().unwrap();
        assert_eq!(mem.limit(), Some(64 << 20));
        assert_eq!(mem.swap(), Some(64 << 20));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 20);
        let dev = &r.devices().as_ref().unwrap()[0];
        assert!(!dev.allow());
        assert!(dev.major().is_none() && dev.minor().is_none());
        let masked = linux.masked_paths().as_ref().unwrap();
        assert!(masked.contains(&"/proc/kcore".to_string()));
        assert!(masked.contains(&"/sys/firmware".to_string()));
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        assert!(linux.devices().is_none(), "no host device is passed in");
        let sc = linux.seccomp().as_ref().unwrap();
        assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(spec.hostname().as_deref(), Some("box"));
    }

    #[test]
    fn a_user_namespace_maps_root_to_the_nodes_range() {
        let ids = IdMap::new(100_000);
        let spec = build(
            &sample(),
            &user(),
            Path::new("/state/etc"),
            "stratus",
            NOFILE_LIMIT,
            Some(ids),
        )
        .unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none()));
        for map in [linux.uid_mappings(), linux.gid_mappings()] {
            let map = map.as_ref().unwrap();
            assert_eq!(map.len(), 1);
            assert_eq!(
                (map[0].container_id(), map[0].host_id(), map[0].size()),
                (0, 100_000, 65_536)
            );
        }
        assert_eq!(ids.to_host(0), Some(100_000));
        assert_eq!(ids.to_host(65_535), Some(165_535));
        assert_eq!(ids.to_host(65_536), None);
        assert_eq!(ids.to_container(99_999), None);
        assert_eq!(ids.to_container(100_001), Some(1));
        assert_eq!(ids.to_container(165_536), None);
        assert_eq!(IdMap::new(u32::MAX).to_host(1), None);
    }

    #[test]
    fn mounts_are_docker_like() {
        let spec = build(
            &sample(),
            &user(),
            Path::new("/state/etc"),
            "stratus",
            NOFILE_LIMIT,
            None,
        )
        .unwrap();
        let mounts = spec.mounts().as_ref().unwrap();
        let find = |d: &str| {
            mounts
                .iter()
                .find(|m| m.destination() == &PathBuf::from(d))
                .unwrap_or_else(|| panic!("no mount at {d}"))
        };
        assert_eq!(find("/proc").typ().as_deref(), Some("proc"));
        assert_eq!(find("/dev").typ().as_deref(), Some("tmpfs"));
        assert!(find("/sys")
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()));
        for d in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
            find(d);
        }
        let data = find("/data");
        assert_eq!(data.source().as_ref().unwrap(), &PathBuf::from("/srv/data"));
        let opts = data.options().as_ref().unwrap();
        assert!(opts.contains(&"rbind".to_string()) && opts.contains(&"ro".to_string()));
        // Nothing else of the host is mounted.
        let binds: Vec<_> = mounts
            .iter()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .map(|m| m.source().clone().unwrap())
            .collect();
        assert_eq!(
            binds,
            vec![
                PathBuf::from("/state/etc/hostname"),
                PathBuf::from("/state/etc/hosts"),
                PathBuf::from("/srv/data")
            ]
        );
    }

    #[test]
    fn nofile_never_exceeds_the_agent() {
        assert_eq!(clamp_nofile(u64::MAX), NOFILE_LIMIT);
        assert_eq!(clamp_nofile(20_000), (1024, 20_000));
        assert_eq!(clamp_nofile(512), (512, 512));
        let spec = build(&sample(), &user(), Path::new("/e"), "stratus", (7, 9), None).unwrap();
        let r = &spec.process().as_ref().unwrap().rlimits().as_ref().unwrap()[0];
        assert_eq!((r.soft(), r.hard()), (7, 9));
    }

    #[test]
    fn zero_means_no_limit() {
        let mut s = sample();
        s.memory_bytes = 0;
        s.cpu_millis = 0;
        s.pids = 0;
        let spec = build(&s, &user(), Path::new("/e"), "stratus", NOFILE_LIMIT, None).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
    }
}
