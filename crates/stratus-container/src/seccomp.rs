//! The default seccomp profile: an **allow-list**; everything else fails
//! with `EPERM`.
//!
//! The shape is Docker's default profile: default action `SCMP_ACT_ERRNO`
//! (`EPERM`), an explicit list of the calls ordinary workloads make (a libc's
//! start-up, threads, files, sockets, polling, signals, timers, System V IPC:
//! what busybox, coreutils, nginx, interpreters and language runtimes use),
//! and argument filters for the calls that are only safe with some
//! arguments. The list is written here from the Linux system-call table
//! ([`ALLOWED_SYSCALLS`]); it is not Docker's JSON. A call the list does not
//! name — a kernel subsystem no ordinary workload needs (`bpf`, `keyctl`,
//! `add_key`, `io_uring_*`, `userfaultfd`, `perf_event_open`, `ptrace`,
//! `open_by_handle_at`, the mount API, `unshare`, `setns`, module and kexec
//! calls, `mbind`, …) **or a call added to the kernel after this list was
//! written** — is refused. That last point is why an allow-list: a deny-list
//! silently lets through every new system call a future kernel brings.
//!
//! Argument filters:
//!
//! * `clone` only without any `CLONE_NEW*` flag (threads and `fork` work;
//!   namespaces, above all a user namespace, do not). `clone3` fails with
//!   `ENOSYS` (its flags live in memory a filter cannot read; libc then
//!   falls back to `clone`, which is checked), as Docker does.
//! * `personality` only with `PER_LINUX`, `PER_LINUX32`, `UNAME26` (and
//!   their combination) or the query value `0xffffffff`: no
//!   `ADDR_NO_RANDOMIZE`, `READ_IMPLIES_EXEC` and friends that weaken ASLR
//!   or W^X for the next program.
//! * `socket` only for `AF_UNIX`, `AF_INET`, `AF_INET6`, and `AF_NETLINK`
//!   with `NETLINK_ROUTE` (what name lookup and `ip` use). No `AF_PACKET`,
//!   `AF_ALG`, `AF_VSOCK`, `AF_KEY`, … (families with a history of kernel
//!   bugs that ordinary services never open). `socketpair` only `AF_UNIX`.
//!
//! Most refused calls would also need a capability the container does not
//! have (see [`crate::spec::CAPABILITIES`]); the filter is the second wall,
//! and the only one for the calls an unprivileged process may make.
//!
//! The filter is built for the native architecture only: libseccomp kills a
//! process that makes a system call through another ABI (x86 `int 0x80`,
//! x32), so a 32-bit entry point cannot bypass the list. Names the native
//! architecture (or libseccomp) does not know are skipped when the filter is
//! loaded (e.g. `open` on aarch64).

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// Calls allowed whatever their arguments.
pub const ALLOWED_SYSCALLS: &[&str] = &[
    // Process life, identity and credentials (changing them still needs
    // CAP_SETUID/CAP_SETGID inside the container).
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "getpgrp",
    "getsid",
    "setpgid",
    "setsid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "capget",
    "capset",
    "prctl",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "set_thread_area",
    "get_thread_area",
    "map_shadow_stack",
    "uname",
    "sysinfo",
    "getrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "times",
    "getpriority",
    "setpriority",
    "umask",
    "chroot",
    "seccomp",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "restart_syscall",
    "uretprobe",
    // Memory.
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "membarrier",
    "memfd_create",
    "mseal",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    // Threads and synchronisation.
    "futex",
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_getattr",
    "sched_setattr",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "getcpu",
    "ioprio_get",
    "ioprio_set",
    // Signals.
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "kill",
    "tkill",
    "tgkill",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    // Time and timers.
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "gettimeofday",
    "time",
    "nanosleep",
    "alarm",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_delete",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    // Files and folders.
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "lseek",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "fcntl",
    "ioctl",
    "flock",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "truncate",
    "ftruncate",
    "fallocate",
    "fadvise64",
    "readahead",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "statfs",
    "fstatfs",
    "access",
    "faccessat",
    "faccessat2",
    "getcwd",
    "chdir",
    "fchdir",
    "getdents",
    "getdents64",
    "mkdir",
    "mkdirat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "utime",
    "utimes",
    "utimensat",
    "futimesat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "getxattrat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "setxattrat",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "listxattrat",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "removexattrat",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    // Polling, events, asynchronous IO (the old AIO interface, not io_uring).
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
    // Sockets (which families may be created is filtered on `socket`).
    "bind",
    "connect",
    "listen",
    "accept",
    "accept4",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    // System V and POSIX IPC (the container has its own IPC namespace).
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
];

/// The `CLONE_NEW*` flags a `clone` must not carry (a namespace could only
/// be made with `CAP_SYS_ADMIN`, except a user namespace, which is the door
/// to the rest).
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u64;

/// `personality` values allowed: `PER_LINUX`, `PER_LINUX32`, `UNAME26`,
/// `UNAME26 | PER_LINUX32`, and the query `0xffffffff`.
pub const PERSONALITY_VALUES: &[u64] = &[0x0, 0x0008, 0x0002_0000, 0x0002_0008, 0xffff_ffff];

/// Socket families that may be created (`AF_NETLINK` only with
/// `NETLINK_ROUTE`).
pub const SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
];

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Option<Vec<LinuxSeccompArg>>,
) -> Option<LinuxSyscall> {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(action);
    if let Some(errno) = errno {
        b = b.errno_ret(errno);
    }
    if let Some(args) = args {
        b = b.args(args);
    }
    b.build().ok()
}

/// One argument comparison. The builder has a default for every field and
/// cannot fail; were it to, the rule using it is left out, which only
/// refuses more (every conditional rule here allows).
fn arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    mask: Option<u64>,
) -> Option<LinuxSeccompArg> {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    if let Some(m) = mask {
        b = b.value_two(m);
    }
    b.build().ok()
}

/// An allow rule; with `args`, only when they all hold.
fn allow(names: &[&str], args: Option<Vec<Option<LinuxSeccompArg>>>) -> Option<LinuxSyscall> {
    let args = match args {
        Some(a) => Some(a.into_iter().collect::<Option<Vec<_>>>()?),
        None => None,
    };
    rule(names, LinuxSeccompAction::ScmpActAllow, None, args)
}

/// The profile (see the module docs).
pub fn default_profile() -> LinuxSeccomp {
    use LinuxSeccompOperator::{ScmpCmpEq, ScmpCmpMaskedEq};
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    syscalls.extend(allow(ALLOWED_SYSCALLS, None));
    // clone: (flags & CLONE_NEW*) == 0.
    syscalls.extend(allow(
        &["clone"],
        Some(vec![arg(
            0,
            ScmpCmpMaskedEq,
            0,
            Some(CLONE_NAMESPACE_FLAGS),
        )]),
    ));
    syscalls.extend(rule(
        &["clone3"],
        LinuxSeccompAction::ScmpActErrno,
        Some(libc::ENOSYS as u32),
        None,
    ));
    // One rule per allowed value (rules are OR-ed).
    for &v in PERSONALITY_VALUES {
        syscalls.extend(allow(
            &["personality"],
            Some(vec![arg(0, ScmpCmpEq, v, None)]),
        ));
    }
    for &family in SOCKET_FAMILIES {
        syscalls.extend(allow(
            &["socket"],
            Some(vec![arg(0, ScmpCmpEq, family, None)]),
        ));
    }
    // Two comparisons on different arguments in one rule are AND-ed.
    syscalls.extend(allow(
        &["socket"],
        Some(vec![
            arg(0, ScmpCmpEq, libc::AF_NETLINK as u64, None),
            arg(2, ScmpCmpEq, libc::NETLINK_ROUTE as u64, None),
        ]),
    ));
    syscalls.extend(allow(
        &["socketpair"],
        Some(vec![arg(0, ScmpCmpEq, libc::AF_UNIX as u64, None)]),
    ));
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .syscalls(syscalls.clone())
        .build()
        .unwrap_or_else(|_| {
            let mut s = LinuxSeccomp::default();
            s.set_default_action(LinuxSeccompAction::ScmpActErrno);
            s.set_default_errno_ret(Some(libc::EPERM as u32));
            s.set_syscalls(Some(syscalls));
            s
        })
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
