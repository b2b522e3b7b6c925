//! The default seccomp profile: a **deny-list** with `EPERM`.
//!
//! Docker's default profile is an allow-list of ~350 calls kept in step with
//! each kernel; copying it would mean maintaining that list. We take the
//! other standard approach (the one Docker documents as the calls its profile
//! *blocks*): everything is allowed except the calls that reach kernel
//! attack surface no ordinary workload needs or that would undo the
//! sandbox. Most of them also need a capability the container does not have
//! (see [`crate::spec::CAPABILITIES`]); the filter is the second wall, and
//! the only one for the calls an unprivileged process may make (`bpf`,
//! `userfaultfd`, `perf_event_open`, `keyctl`, `io_uring_*`, user-namespace
//! `unshare`/`clone`).
//!
//! The filter is built for the native architecture only: libseccomp kills a
//! process that makes a system call through another ABI (x86 `int 0x80`,
//! x32), so a 32-bit entry point cannot bypass the list.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Calls refused with `EPERM` whatever their arguments.
pub const DENIED_SYSCALLS: &[&str] = &[
    // Kernel modules, kexec, reboot.
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    // Mounts and the root (the mount API old and new).
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    // Namespaces.
    "unshare",
    "setns",
    // Swap, quotas, accounting, clocks, host logs.
    "swapon",
    "swapoff",
    "quotactl",
    "quotactl_fd",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "stime",
    "syslog",
    // Kernel keyrings.
    "keyctl",
    "add_key",
    "request_key",
    // Tracing and other processes' memory.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "perf_event_open",
    "bpf",
    "lookup_dcookie",
    "fanotify_init",
    // File handles (open_by_handle_at escaped Docker in 2014).
    "open_by_handle_at",
    "name_to_handle_at",
    // Memory tricks used by kernel exploits.
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Legacy and hardware.
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "nfsservctl",
    "vm86",
    "vm86old",
    "iopl",
    "ioperm",
];

/// The `CLONE_NEW*` flags refused in `clone` (a namespace could only be made
/// with `CAP_SYS_ADMIN`, except a user namespace, which is the door to the
/// rest).
const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: u32,
    args: Option<Vec<oci_spec::runtime::LinuxSeccompArg>>,
) -> Option<LinuxSyscall> {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(action)
        .errno_ret(errno);
    if let Some(args) = args {
        b = b.args(args);
    }
    b.build().ok()
}

/// The profile: default allow; [`DENIED_SYSCALLS`] and `clone` with a
/// namespace flag fail with `EPERM`; `clone3` fails with `ENOSYS` (its flags
/// live in memory a filter cannot read; libc then falls back to `clone`,
/// which is checked), as Docker does.
pub fn default_profile() -> LinuxSeccomp {
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    syscalls.extend(rule(
        DENIED_SYSCALLS,
        LinuxSeccompAction::ScmpActErrno,
        libc::EPERM as u32,
        None,
    ));
    for &flag in CLONE_NAMESPACE_FLAGS {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(flag)
            .value_two(flag)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .ok();
        syscalls.extend(rule(
            &["clone"],
            LinuxSeccompAction::ScmpActErrno,
            libc::EPERM as u32,
            arg.map(|a| vec![a]),
        ));
    }
    syscalls.extend(rule(
        &["clone3"],
        LinuxSeccompAction::ScmpActErrno,
        libc::ENOSYS as u32,
        None,
    ));
    // The builder cannot fail with these fields; fall back to the same
    // profile built by hand if it ever does.
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls.clone())
        .build()
        .unwrap_or_else(|_| {
            let mut s = LinuxSeccomp::default();
            s.set_default_action(LinuxSeccompAction::ScmpActAllow);
            s.set_syscalls(Some(syscalls));
            s
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn profile_denies_the_dangerous_calls() {
        let p = default_profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let calls = p.syscalls().as_ref().unwrap();
        let denied: Vec<&String> = calls
            .iter()
            .filter(|c| c.action() == LinuxSeccompAction::ScmpActErrno && c.args().is_none())
            .flat_map(|c| c.names())
            .collect();
        for name in [
            "mount",
            "kexec_load",
            "bpf",
            "unshare",
            "setns",
            "userfaultfd",
            "keyctl",
        ] {
            assert!(denied.iter().any(|d| *d == name), "{name} not denied");
        }
        // clone: one masked rule per namespace flag, each refusing with EPERM.
        let clone_rules: Vec<_> = calls
            .iter()
            .filter(|c| c.names().iter().any(|n| n == "clone"))
            .collect();
        assert_eq!(clone_rules.len(), CLONE_NAMESPACE_FLAGS.len());
        for r in clone_rules {
            let a = &r.args().as_ref().unwrap()[0];
            assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
            assert_eq!(a.value(), a.value_two().unwrap());
            assert_eq!(r.errno_ret(), Some(libc::EPERM as u32));
        }
        let clone3 = calls
            .iter()
            .find(|c| c.names().iter().any(|n| n == "clone3"))
            .unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
    }
}
