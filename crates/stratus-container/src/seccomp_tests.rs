#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]
use std::collections::HashSet;

use super::*;

fn unconditional(p: &LinuxSeccomp) -> HashSet<String> {
    p.syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|c| c.action() == LinuxSeccompAction::ScmpActAllow && c.args().is_none())
        .flat_map(|c| c.names().iter().cloned())
        .collect()
}

#[test]
fn profile_is_an_allow_list() {
    let p = default_profile();
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(p.default_errno_ret(), Some(libc::EPERM as u32));
    let allowed = unconditional(&p);
    for name in [
        "read", "write", "execve", "openat", "mmap", "futex", "wait4",
    ] {
        assert!(allowed.contains(name), "{name} not allowed");
    }
    // The attacker's favourites are named nowhere with an allow action.
    let any_allow: HashSet<String> = p
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|c| c.action() == LinuxSeccompAction::ScmpActAllow)
        .flat_map(|c| c.names().iter().cloned())
        .collect();
    for name in [
        "unshare",
        "setns",
        "mount",
        "umount2",
        "pivot_root",
        "fsopen",
        "open_tree",
        "move_mount",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "open_by_handle_at",
        "name_to_handle_at",
        "userfaultfd",
        "perf_event_open",
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kexec_load",
        "init_module",
        "finit_module",
        "reboot",
        "swapon",
        "syslog",
        "mbind",
        "move_pages",
        "set_mempolicy",
        "sethostname",
        "clock_settime",
        "settimeofday",
        "acct",
        "quotactl",
        "kcmp",
        "pidfd_getfd",
        "lookup_dcookie",
        "fanotify_init",
        "iopl",
        "ioperm",
        "vhangup",
        "clone3",
    ] {
        assert!(!any_allow.contains(name), "{name} is allowed");
    }
    // clone: allowed only when no namespace flag is set.
    let clone: Vec<_> = p
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|c| c.names().iter().any(|n| n == "clone"))
        .collect();
    assert_eq!(clone.len(), 1);
    let a = &clone[0].args().as_ref().unwrap()[0];
    assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!((a.value(), a.value_two()), (0, Some(CLONE_NAMESPACE_FLAGS)));
    assert_ne!(CLONE_NAMESPACE_FLAGS & libc::CLONE_NEWUSER as u64, 0);
}

/// A named call: its return value (negative: failed, `errno` set).
type Probe = (&'static str, fn() -> i64);

/// Runs `probe` in a forked child under the real filter (loaded through
/// libcontainer, as the container's init does) and returns the errno of
/// each call (0: it succeeded).
fn under_filter(probes: &[Probe]) -> Vec<i32> {
    let profile = default_profile();
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes system calls, loads the filter (glibc's
    // fork keeps malloc usable) and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            unsafe { libc::close(fds[0]) };
            let code = (|| {
                if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                    return 2;
                }
                if libcontainer::seccomp::initialize_seccomp(&profile).is_err() {
                    return 3;
                }
                for (_, probe) in probes {
                    let r = probe();
                    let errno: i32 = if r < 0 {
                        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
                    } else {
                        0
                    };
                    let b = errno.to_le_bytes();
                    if unsafe { libc::write(fds[1], b.as_ptr().cast(), 4) } != 4 {
                        return 4;
                    }
                }
                0
            })();
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            unsafe { libc::close(fds[1]) };
            let mut buf = Vec::new();
            let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
            std::io::Read::read_to_end(&mut f, &mut buf).unwrap();
            let status = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            buf.chunks(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        }
    }
}

fn sys(n: libc::c_long, a: u64, b: u64, c: u64) -> i64 {
    unsafe { libc::syscall(n, a, b, c, 0u64, 0u64) }
}

/// A socket probe: the errno, and the fd closed when it was made.
fn socket(family: i32, ty: i32, proto: i32) -> i64 {
    let fd = unsafe { libc::socket(family, ty, proto) };
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    i64::from(fd.min(0))
}

/// The attacker: calls outside the list, loaded as a container gets it.
/// Every one of them fails with EPERM; on the deny-list of before,
/// `personality(ADDR_NO_RANDOMIZE)`, `socket(AF_PACKET | AF_ALG | AF_VSOCK)`,
/// `mbind` and an unknown call number went through to the kernel.
#[test]
fn calls_outside_the_list_fail_with_eperm() {
    let refused: Vec<Probe> = vec![
        ("unshare(CLONE_NEWUSER)", || {
            sys(libc::SYS_unshare, libc::CLONE_NEWUSER as u64, 0, 0)
        }),
        ("keyctl", || sys(libc::SYS_keyctl, 0, (-3i64) as u64, 0)),
        ("add_key", || sys(libc::SYS_add_key, 0, 0, 0)),
        ("bpf", || sys(libc::SYS_bpf, 5, 0, 0)),
        ("io_uring_setup", || sys(libc::SYS_io_uring_setup, 1, 0, 0)),
        ("open_by_handle_at", || {
            sys(libc::SYS_open_by_handle_at, (-1i64) as u64, 0, 0)
        }),
        ("personality(ADDR_NO_RANDOMIZE)", || {
            sys(libc::SYS_personality, 0x0040000, 0, 0)
        }),
        ("socket(AF_PACKET)", || {
            socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        }),
        ("socket(AF_ALG)", || {
            socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0)
        }),
        ("socket(AF_VSOCK)", || {
            socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0)
        }),
        ("socket(AF_NETLINK, NETLINK_AUDIT)", || {
            socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT)
        }),
        ("mbind", || sys(libc::SYS_mbind, 0, 0, 0)),
        ("a call number no kernel has yet", || sys(1000, 0, 0, 0)),
        ("clone(CLONE_NEWUSER)", || {
            let r = sys(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                0,
                0,
            );
            if r == 0 {
                // Only reached if the filter let it through: a child.
                unsafe { libc::_exit(0) }
            }
            r
        }),
    ];
    let got = under_filter(&refused);
    assert_eq!(got.len(), refused.len());
    for ((name, _), errno) in refused.iter().zip(&got) {
        assert_eq!(*errno, libc::EPERM, "{name}: errno {errno}, not EPERM");
    }
}

#[test]
fn ordinary_calls_still_work_under_the_filter() {
    let allowed: Vec<Probe> = vec![
        ("getpid", || sys(libc::SYS_getpid, 0, 0, 0)),
        ("personality(query)", || {
            sys(libc::SYS_personality, 0xffff_ffff, 0, 0)
        }),
        ("socket(AF_INET)", || {
            socket(libc::AF_INET, libc::SOCK_STREAM, 0)
        }),
        ("socket(AF_INET6)", || {
            socket(libc::AF_INET6, libc::SOCK_DGRAM, 0)
        }),
        ("socket(AF_UNIX)", || {
            socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)
        }),
        ("socket(AF_NETLINK, NETLINK_ROUTE)", || {
            socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
        }),
        ("fork", || {
            let r = sys(libc::SYS_clone, libc::SIGCHLD as u64, 0, 0);
            if r == 0 {
                unsafe { libc::_exit(0) }
            }
            if r > 0 {
                unsafe { libc::waitpid(r as i32, std::ptr::null_mut(), 0) };
            }
            r
        }),
    ];
    let got = under_filter(&allowed);
    for ((name, _), errno) in allowed.iter().zip(&got) {
        assert_eq!(*errno, 0, "{name} refused with errno {errno}");
    }
    // clone3 says "not implemented", so libc falls back to the checked clone.
    let got = under_filter(&[("clone3", || sys(libc::SYS_clone3, 0, 0, 0))]);
    assert_eq!(got, vec![libc::ENOSYS]);
}
