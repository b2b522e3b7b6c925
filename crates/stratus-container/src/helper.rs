//! Container processes are cloned from a forked, single-threaded helper.
//!
//! libcontainer creates the intermediate and init processes with the raw
//! `clone3` system call, which skips libc's fork bookkeeping. From a
//! multi-threaded process (the agent: tokio workers, FUSE threads, QUIC) the
//! clone can copy a libc lock (malloc's, for one) that another thread held
//! at that instant, already taken and never released: the clone deadlocks on
//! its first allocation, and the creating thread waits for it forever. We
//! saw exactly that (`youki:[1:INTER]` blocked on a futex) about once in
//! thirty test runs.
//!
//! So each creation (and each `exec`) runs in a helper made with libc's
//! `fork()`, which *does* make malloc and stdio safe in the child. The
//! helper has one thread; libcontainer's clones from it are the case youki
//! itself runs. The helper reports the new process's pid over a socket and
//! exits. The container's init was cloned as the helper's sibling-child
//! (`CLONE_PARENT`), so it becomes a child of the helper; when the helper
//! exits it is re-parented to the agent, which is a child subreaper
//! ([`become_subreaper`]) and so can wait for it as before.
//!
//! The parent never blocks without a bound: a helper that does not answer
//! within the timeout is killed, and the clones it left are killed and
//! reaped, so a stuck creation fails the one container instead of hanging a
//! thread (and with it the runtime's shutdown).
//!
//! What the helper must not do: take a Rust-level lock another thread of
//! the parent could have held at the fork (stdout/stderr, the tracing
//! subscriber's writer). It runs only the creation closure and writes its
//! report with a raw socket write, and it switches tracing off for its one
//! thread first. That also silences the container processes it clones (they
//! are copies of that thread): libcontainer's records would otherwise be
//! written by the agent's subscriber *into the container's output*, after
//! the init redirected its stdio. A failure's account comes back in the
//! report instead.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{ForkResult, Pid};

use crate::ContainerError;

/// Makes this process the reaper of its orphaned descendants, so a
/// container init survives its helper as our child (see the module docs).
pub(crate) fn become_subreaper() -> Result<(), ContainerError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| ContainerError::Io {
        context: "become a child subreaper".into(),
        source: e.into(),
    })
}

/// Runs `create` in a forked helper and returns the pid it reports (a
/// process that is our child once this returns). `create`'s errors come
/// back as [`ContainerError::Create`] with their message; a helper that does
/// not answer within `timeout` is killed and reported the same way.
///
/// Call with the creation lock held: on failure, the clones of libcontainer
/// that are still ours (`youki:[…]`, not `supervised`) are killed and reaped,
/// which is right only when no other creation is in flight.
pub(crate) fn create_in_helper<F>(
    timeout: Duration,
    supervised: impl Fn(i32) -> bool,
    create: F,
) -> Result<Pid, ContainerError>
where
    F: FnOnce() -> Result<Pid, ContainerError>,
{
    create_in_helper_with_fds(timeout, supervised, || {
        create().map(|pid| (pid, Vec::new()))
    })
    .map(|(pid, _)| pid)
}

/// Most file descriptors a helper hands back with its report.
pub(crate) const MAX_FDS: usize = 4;

/// [`create_in_helper`], where `create` also makes file descriptors (at
/// most [`MAX_FDS`]: sockets inside the new container's namespaces) that
/// the helper passes back with its report (`SCM_RIGHTS`), in order.
pub(crate) fn create_in_helper_with_fds<F>(
    timeout: Duration,
    supervised: impl Fn(i32) -> bool,
    create: F,
) -> Result<(Pid, Vec<OwnedFd>), ContainerError>
where
    F: FnOnce() -> Result<(Pid, Vec<OwnedFd>), ContainerError>,
{
    let (mut ours, theirs) = UnixStream::pair().map_err(|e| ContainerError::Io {
        context: "create the helper's socket".into(),
        source: e,
    })?;
    let helper = match fork()? {
        ForkResult::Child => {
            drop(ours);
            helper_main(theirs, create)
        }
        ForkResult::Parent { child } => child,
    };
    drop(theirs);
    let report = read_report(&mut ours, timeout);
    if report.is_err() {
        let _ = kill(helper, Signal::SIGKILL);
    }
    // Waiting for the helper also completes the re-parenting of its clones.
    while let Err(nix::errno::Errno::EINTR) = waitpid(helper, None) {}
    let result = report.and_then(|(r, fds)| Ok((parse_report(&r)?, fds)));
    if result.is_err() {
        remove_stray_clones(&supervised);
    }
    result
}

/// The helper's whole life: create, report, exit without running the
/// parent's exit handlers or destructors.
fn helper_main<F>(report_to: UnixStream, create: F) -> !
where
    F: FnOnce() -> Result<(Pid, Vec<OwnedFd>), ContainerError>,
{
    // Thread-local and lock-free (`Dispatch::none` registers nothing).
    let _silent = tracing::dispatcher::set_default(&tracing::Dispatch::none());
    let mut fds = Vec::new();
    let report = match std::panic::catch_unwind(AssertUnwindSafe(create)) {
        Ok(Ok((pid, made))) if made.len() <= MAX_FDS => {
            fds = made;
            format!("ok {}", pid.as_raw())
        }
        Ok(Ok(_)) => "err the creation helper made too many descriptors".into(),
        Ok(Err(ContainerError::Create(message))) => format!("err {message}"),
        Ok(Err(e)) => format!("err {e}"),
        Err(_) => "err the creation helper panicked".into(),
    };
    let line = format!("{}\n", report.replace('\n', " "));
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    // One message: the report is far shorter than a socket buffer, so it is
    // never split and the descriptors travel with its first byte.
    let sent = sendmsg::<()>(
        report_to.as_raw_fd(),
        &[IoSlice::new(line.as_bytes())],
        cmsgs,
        MsgFlags::empty(),
        None,
    );
    let code = i32::from(sent != Ok(line.len()));
    exit_now(code)
}

/// Reads the helper's report: one line, and the descriptors that came
/// with it. Not "until EOF": the container's init holds a copy of the
/// helper's end until it `execve`s the workload, which may wait on a lazily
/// fetched binary.
fn read_report(
    from: &mut UnixStream,
    timeout: Duration,
) -> Result<(String, Vec<OwnedFd>), ContainerError> {
    let deadline = Instant::now() + timeout;
    let mut report = Vec::new();
    let mut fds = Vec::new();
    let mut buf = [0u8; 4096];
    let timed_out = || {
        ContainerError::Create(format!(
            "no answer from the runtime within {} s",
            timeout.as_secs()
        ))
    };
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        from.set_read_timeout(Some(left))
            .map_err(|e| ContainerError::Io {
                context: "helper socket timeout".into(),
                source: e,
            })?;
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let got = recvmsg::<()>(
            from.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map(|msg| {
            for c in msg.cmsgs().into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these descriptors
                    // in our table for us; nothing else owns them.
                    #[allow(unsafe_code)]
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            msg.bytes
        });
        match got {
            Ok(0) => break,
            Ok(n) => {
                report.extend_from_slice(&buf[..n]);
                if let Some(end) = report.iter().position(|b| *b == b'\n') {
                    report.truncate(end);
                    break;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => return Err(timed_out()),
            Err(e) => {
                return Err(ContainerError::Io {
                    context: "read the helper's report".into(),
                    source: e.into(),
                })
            }
        }
    }
    Ok((String::from_utf8_lossy(&report).into_owned(), fds))
}

fn parse_report(report: &str) -> Result<Pid, ContainerError> {
    if let Some(message) = report.strip_prefix("err ") {
        return Err(ContainerError::Create(message.to_string()));
    }
    report
        .strip_prefix("ok ")
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| {
            ContainerError::Create(if report.is_empty() {
                "the creation helper died without an answer".into()
            } else {
                format!("the creation helper answered {report:?}")
            })
        })
}

/// Kills and reaps our children still named by libcontainer (`youki:[…]`,
/// i.e. not yet running a workload) that no [`crate::executor`] reaper
/// owns: the intermediate and init clones of a failed or abandoned
/// creation, re-parented to us when their helper exited.
fn remove_stray_clones(supervised: &dyn Fn(i32) -> bool) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces; split at the last ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or_default();
        let ppid = tail
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) && comm.starts_with("youki:[") && !supervised(pid) {
            let pid = Pid::from_raw(pid);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
        }
    }
}

/// `fork(2)` through libc, so libc's own locks are consistent in the child.
#[allow(unsafe_code)]
fn fork() -> Result<ForkResult, ContainerError> {
    // SAFETY: the child only runs `helper_main`: the creation closure
    // (libcontainer, which is written to run in a fresh process), a socket
    // write, and `_exit`. It takes no lock that another thread of ours may
    // have held at the fork except libc's, which glibc's `fork` resets
    // (tracing, whose writer has a lock, is switched off first; see the
    // module docs).
    unsafe { nix::unistd::fork() }.map_err(|e| ContainerError::Io {
        context: "fork the creation helper".into(),
        source: e.into(),
    })
}

/// Ends the helper at once: no atexit handlers, no destructors of state
/// copied from the parent (whose owners live on in the parent).
#[allow(unsafe_code)]
fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and takes no lock.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn never_supervised(_: i32) -> bool {
        false
    }

    #[test]
    fn the_helper_reports_a_pid_or_the_error() {
        let pid = create_in_helper(Duration::from_secs(30), never_supervised, || {
            Ok(Pid::from_raw(4242))
        })
        .unwrap();
        assert_eq!(pid.as_raw(), 4242);

        let err = create_in_helper(Duration::from_secs(30), never_supervised, || {
            Err(ContainerError::Create("the bundle is broken".into()))
        })
        .unwrap_err();
        assert!(
            matches!(&err, ContainerError::Create(m) if m == "the bundle is broken"),
            "{err}"
        );

        let err = create_in_helper(Duration::from_secs(30), never_supervised, || {
            Err(ContainerError::Network("set lo up: EPERM".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("set lo up: EPERM"), "{err}");
    }

    #[test]
    fn the_helper_hands_back_the_descriptors_it_made() {
        let (pid, fds) =
            create_in_helper_with_fds(Duration::from_secs(30), never_supervised, || {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let (r, mut w) = UnixStream::pair().unwrap();
                std::io::Write::write_all(&mut w, b"made in the helper").unwrap();
                Ok((Pid::from_raw(4242), vec![l.into(), r.into()]))
            })
            .unwrap();
        assert_eq!(pid.as_raw(), 4242);
        let [l, r]: [OwnedFd; 2] = fds.try_into().unwrap();
        // Still open here after the helper exited: the listener accepts,
        // the pipe holds what the helper wrote.
        let l = std::net::TcpListener::from(l);
        let addr = l.local_addr().unwrap();
        let _c = std::net::TcpStream::connect(addr).unwrap();
        l.accept().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut UnixStream::from(r), &mut text).unwrap();
        assert_eq!(text, "made in the helper");

        let err = create_in_helper_with_fds(Duration::from_secs(30), never_supervised, || {
            let fds = (0..=MAX_FDS)
                .map(|_| std::fs::File::open("/dev/null").unwrap().into())
                .collect();
            Ok((Pid::from_raw(4242), fds))
        })
        .unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
    }

    #[test]
    fn the_helper_logs_nothing() {
        // A subscriber of the calling thread, writing to a file: a forked
        // helper is a copy of that thread and would write through it (in a
        // container's init, into the container's output).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = std::fs::File::create(&path).unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("from the caller");
            let pid = create_in_helper(Duration::from_secs(30), never_supervised, || {
                tracing::error!("from the helper");
                Ok(Pid::from_raw(4242))
            })
            .unwrap();
            assert_eq!(pid.as_raw(), 4242);
        });
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(log.contains("from the caller"), "{log}");
        assert!(!log.contains("from the helper"), "{log}");
    }

    #[test]
    fn a_helper_that_panics_or_dies_is_an_error() {
        let err = create_in_helper(Duration::from_secs(30), never_supervised, || panic!("boom"))
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");

        let err = create_in_helper(Duration::from_secs(30), never_supervised, || exit_now(7))
            .unwrap_err();
        assert!(err.to_string().contains("died without an answer"), "{err}");
    }

    #[test]
    fn a_stuck_helper_is_killed_after_the_timeout() {
        // The helper never ends on its own: returning at all means it was
        // killed and reaped.
        let err = create_in_helper(Duration::from_millis(300), never_supervised, || loop {
            std::thread::sleep(Duration::from_secs(60));
        })
        .unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
    }

    #[test]
    fn the_report_is_read_without_waiting_for_every_copy_of_the_socket_to_close() {
        // As a container init does until it execs: a process that holds the
        // helper's end of the socket (inherited) long after the report.
        // The holder outlives the 5 s deadline but not by much (it also
        // holds the test's output pipes if the test fails before killing it).
        let pid = create_in_helper(Duration::from_secs(5), never_supervised, || match fork()? {
            ForkResult::Child => {
                std::thread::sleep(Duration::from_secs(15));
                exit_now(0)
            }
            ForkResult::Parent { child } => Ok(child),
        })
        .unwrap();
        // The sleeper was the helper's child; now it is init's (or a
        // subreaper's).
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }

    #[test]
    fn reports_parse_strictly() {
        assert_eq!(parse_report("ok 17").unwrap().as_raw(), 17);
        for bad in ["", "ok", "ok -3", "ok 0", "ok x", "hello"] {
            assert!(parse_report(bad).is_err(), "{bad:?}");
        }
    }
}
