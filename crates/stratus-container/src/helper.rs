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

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
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
    let result = report.and_then(|r| parse_report(&r));
    if result.is_err() {
        remove_stray_clones(&supervised);
    }
    result
}

/// The helper's whole life: create, report, exit without running the
/// parent's exit handlers or destructors.
fn helper_main<F>(mut report_to: UnixStream, create: F) -> !
where
    F: FnOnce() -> Result<Pid, ContainerError>,
{
    // Thread-local and lock-free (`Dispatch::none` registers nothing).
    let _silent = tracing::dispatcher::set_default(&tracing::Dispatch::none());
    let report = match std::panic::catch_unwind(AssertUnwindSafe(create)) {
        Ok(Ok(pid)) => format!("ok {}", pid.as_raw()),
        Ok(Err(ContainerError::Create(message))) => format!("err {message}"),
        Ok(Err(e)) => format!("err {e}"),
        Err(_) => "err the creation helper panicked".into(),
    };
    let line = format!("{}\n", report.replace('\n', " "));
    let code = i32::from(report_to.write_all(line.as_bytes()).is_err());
    exit_now(code)
}

/// Reads the helper's report: one line. Not "until EOF": the container's
/// init holds a copy of the helper's end until it `execve`s the workload,
/// which may wait on a lazily fetched binary.
fn read_report(from: &mut UnixStream, timeout: Duration) -> Result<String, ContainerError> {
    let deadline = Instant::now() + timeout;
    let mut report = Vec::new();
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
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                report.extend_from_slice(&buf[..n]);
                if let Some(end) = report.iter().position(|b| *b == b'\n') {
                    report.truncate(end);
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) => {
                return Err(ContainerError::Io {
                    context: "read the helper's report".into(),
                    source: e,
                })
            }
        }
    }
    Ok(String::from_utf8_lossy(&report).into_owned())
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
