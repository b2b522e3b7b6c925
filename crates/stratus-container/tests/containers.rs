//! Real containers, as root: a busybox rootfs built in a temp folder.
//!
//! The tests share the host's cgroups, so they run one at a time (a global
//! lock). They need the static busybox from Debian's `busybox-static` and
//! fail with a clear message if it is missing.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use stratus_container::{ContainerError, ContainerEvent, IdMap, PortMap, Volume};
use stratus_runtime::{CancellationToken, Exit, ExitReason, Output, EXIT_CODE_KILLED};
use tokio::sync::mpsc;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_streams_and_stdin() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let (exit, out) = run(&f, f.spec("basic", "echo hello; echo oops >&2; exit 3")).await;
    assert_eq!(exit, Exit::exited(3));
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.stderr, "oops\n");
    assert_cleaned(&f, "basic");
    // libcontainer clears the dumpable flag while creating; it is restored.
    assert!(nix::sys::prctl::get_dumpable().unwrap());

    // Stdin from the spec.
    let mut spec = f.spec("stdin", "cat");
    spec.stdin = Some(b"piped input".to_vec());
    let (exit, out) = run(&f, spec).await;
    assert_eq!(out.stdout, "piped input");
    assert_eq!(exit, Exit::exited(0));

    // Output arrives while the container runs, not at exit: the first line
    // is received before the container is told (through a volume) to end.
    let ctl = tempfile::tempdir().unwrap();
    let mut spec = f.spec(
        "stream",
        "echo first; while [ ! -e /ctl/go ]; do sleep 0.05; done; echo second",
    );
    spec.volumes = vec![Volume {
        host_path: ctl.path().to_path_buf(),
        container_path: "/ctl".into(),
        read_only: true,
    }];
    let (tx, mut rx) = mpsc::channel(64);
    let ex = &f.executor;
    let runner = ex.run(spec, tx, None, CancellationToken::new());
    let checker = async {
        let first = rx.recv().await.unwrap();
        assert_eq!(first, Output::Stdout(b"first\n".to_vec()));
        std::fs::write(ctl.path().join("go"), "").unwrap();
        let mut rest = Vec::new();
        while let Some(o) = rx.recv().await {
            rest.push(o);
        }
        rest
    };
    let (exit, rest) = tokio::join!(runner, checker);
    assert_eq!(exit.unwrap(), Exit::exited(0));
    assert_eq!(rest, vec![Output::Stdout(b"second\n".to_vec())]);
}

/// Our zombie children named by libcontainer (leaked clones).
fn youki_zombies() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let tail = stat.rsplit_once(')').map(|(_, t)| t).unwrap_or("");
            let f: Vec<&str> = tail.split_whitespace().collect();
            stat.contains("(youki:[") && f.first() == Some(&"Z") && f.get(1) == Some(&me.as_str())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creation_is_an_error_and_leaves_nothing() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let mut spec = f.spec("nocmd", "true");
    spec.args = vec!["no-such-command".into()];
    let (tx, _rx) = mpsc::channel(8);
    let err = f
        .executor
        .run(spec, tx, None, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::Create(_)), "{err}");
    assert_cleaned(&f, "nocmd");
    assert!(youki_zombies().is_empty(), "{:?}", youki_zombies());
    // The id is free again.
    let (exit, _) = run(&f, f.spec("nocmd", "exit 0")).await;
    assert_eq!(exit, Exit::exited(0));
}

fn cap_mask(bits: &[u32]) -> u64 {
    bits.iter().fold(0, |m, b| m | (1u64 << b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let marker = f.dir.path().join("host-marker");
    std::fs::write(&marker, "host secret").unwrap();
    let script = format!(
        "echo PROCS $(ls /proc | grep -E '^[0-9]+$' | wc -l); \
         ps; \
         test -e {marker} && echo MARKER_VISIBLE || echo MARKER_HIDDEN; \
         echo HOST $(hostname); \
         grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; \
         mknod /tmp/disk b 8 0 && echo MKNOD_OK || echo MKNOD_FAIL; \
         mount -t tmpfs none /tmp && echo MOUNT_OK || echo MOUNT_FAIL; \
         unshare -U true && echo UNSHARE_OK || echo UNSHARE_FAIL; \
         echo KCORE $(cat /proc/kcore | wc -c); \
         echo > /proc/sys/kernel/hostname && echo SYSCTL_OK || echo SYSCTL_FAIL; \
         echo NETDEVS $(grep : /proc/net/dev | cut -d: -f1); \
         echo DEV $(ls /dev)",
        marker = marker.display()
    );
    let mut spec = f.spec("iso", &script);
    spec.hostname = "sandbox".into();
    spec.args[0] = "sh".into(); // found through PATH
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "stderr: {}", out.stderr);
    let o = &out.stdout;
    let line = |p: &str| {
        o.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} line in {o}"))
            .to_string()
    };
    // Only its own processes: sh (pid 1), the $(...) subshell and the
    // pipeline's ls, grep and wc.
    let procs: usize = line("PROCS ").split(' ').nth(1).unwrap().parse().unwrap();
    assert!(procs <= 5, "{procs} processes visible:\n{o}");
    let ps_pid1 = o
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap();
    assert!(ps_pid1.contains("sh"), "pid 1 is {ps_pid1}");
    assert!(o.contains("MARKER_HIDDEN"));
    assert_eq!(line("HOST "), "HOST sandbox");
    // Docker's capabilities without MKNOD.
    let expected = cap_mask(&[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31]);
    assert_eq!(line("CapEff:"), format!("CapEff:\t{expected:016x}"));
    assert_eq!(line("CapBnd:"), format!("CapBnd:\t{expected:016x}"));
    assert_eq!(line("Seccomp:"), "Seccomp:\t2");
    assert_eq!(line("NoNewPrivs:"), "NoNewPrivs:\t1");
    assert!(o.contains("MKNOD_FAIL") && o.contains("MOUNT_FAIL"));
    assert!(o.contains("UNSHARE_FAIL"), "user namespace allowed:\n{o}");
    assert_eq!(line("KCORE "), "KCORE 0");
    assert!(o.contains("SYSCTL_FAIL"));
    assert_eq!(line("NETDEVS "), "NETDEVS lo");
    let dev_line = line("DEV ");
    let devs: Vec<&str> = dev_line.split(' ').skip(1).collect();
    let allowed = [
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
        "stderr", "stdin", "stdout", "tty", "urandom", "zero",
    ];
    for d in &devs {
        assert!(allowed.contains(d), "unexpected /dev/{d}");
    }
    assert!(devs.contains(&"null") && devs.contains(&"urandom"));
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_reported() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let mut spec = f.spec("oom", "head -c 300m /dev/zero | tail; echo survived");
    spec.memory_bytes = 64 << 20;
    let (exit, out) = run(&f, spec).await;
    assert_eq!(
        exit,
        Exit::killed(ExitReason::MemoryLimit),
        "{}",
        out.stdout
    );
    assert_eq!(exit.code, EXIT_CODE_KILLED);
    assert_cleaned(&f, "oom");

    // The same work under a large enough limit is not an OOM.
    let mut spec = f.spec("no-oom", "head -c 20m /dev/zero | tail | wc -c");
    spec.memory_bytes = 256 << 20;
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0));
    assert_eq!(out.stdout.trim(), "20971520");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pids_limit_stops_fork_bombs() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let mut spec = f.spec(
        "pids",
        "for i in $(seq 1 60); do sleep 2 & done; echo all-forked",
    );
    spec.pids = 20;
    let (exit, out) = run(&f, spec).await;
    assert!(out.stderr.contains("fork"), "stderr: {}", out.stderr);
    assert!(!out.stdout.contains("all-forked"));
    assert_eq!(exit.reason, ExitReason::Exited);
    assert_ne!(exit.code, 0);
    assert_cleaned(&f, "pids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_wall_time() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let (tx, rx) = mpsc::channel(8);
    let out = collector(rx);
    let (ev_tx, mut ev_rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let spec = f.spec("cancel", "sleep 1000");
    let runner = f.executor.run(spec, tx, Some(ev_tx), cancel.clone());
    let canceller = async {
        match ev_rx.recv().await {
            Some(ContainerEvent::Started { pid }) => assert!(pid > 1),
            other => panic!("unexpected event {other:?}"),
        }
        assert_eq!(f.executor.running(), vec!["cancel".to_string()]);
        assert!(cgroup_dir("memory", "cancel").exists());
        cancel.cancel();
    };
    let (exit, ()) = tokio::join!(runner, canceller);
    assert_eq!(exit.unwrap(), Exit::killed(ExitReason::Cancelled));
    out.await.unwrap();
    assert_cleaned(&f, "cancel");

    // Dropping the run future kills and deletes the container too.
    let (tx, rx) = mpsc::channel(8);
    let out = collector(rx);
    let (ev_tx, mut ev_rx) = mpsc::channel(8);
    let spec = f.spec("dropped", "sleep 1000");
    let pid = tokio::select! {
        r = f.executor.run(spec, tx, Some(ev_tx), CancellationToken::new()) => panic!("ended: {r:?}"),
        Some(ContainerEvent::Started { pid }) = ev_rx.recv() => pid,
    };
    out.await.unwrap();
    // Cleanup runs on a thread: wait for it (bounded), then check all of it.
    for _ in 0..200 {
        if !cgroup_dir("memory", "dropped").exists() && f.executor.running().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_cleaned(&f, "dropped");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} still there"
    );

    let mut spec = f.spec("wall", "echo started; sleep 1000");
    spec.wall_time = Some(Duration::from_millis(500));
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::killed(ExitReason::WallTimeout));
    assert_eq!(out.stdout, "started\n");
    assert_cleaned(&f, "wall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_env_and_cwd() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let mut spec = f.spec("user1", "id -u; id -g; echo $HOME");
    spec.user = "nobody".into();
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(out.stdout, "65534\n65534\n/nonexistent\n");

    let mut spec = f.spec("user2", "id -u; id -g; grep CapEff /proc/self/status");
    spec.user = "1000:1000".into();
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    // A non-root user has no effective capabilities.
    assert_eq!(out.stdout, "1000\n1000\nCapEff:\t0000000000000000\n");

    let mut spec = f.spec("user3", "true");
    spec.user = "ghost".into();
    let (tx, _rx) = mpsc::channel(8);
    let err = f
        .executor
        .run(spec, tx, None, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ContainerError::UnknownUser(ref n) if n == "ghost"),
        "{err}"
    );
    assert_cleaned(&f, "user3");

    let mut spec = f.spec("envcwd", "echo $FOO; pwd; echo $PATH");
    spec.env = vec![("FOO".into(), "bar baz".into())];
    spec.cwd = "/www".into();
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["bar baz", "/www"]);
    assert!(lines[2].contains("/bin"));
}

/// Copies the host's `path` and the shared libraries `ldd` lists into the
/// rootfs at the same paths.
fn copy_with_libs(rootfs: &Path, path: &str, to: &str) {
    let ldd = std::process::Command::new("ldd")
        .arg(path)
        .output()
        .unwrap();
    assert!(ldd.status.success(), "ldd {path} failed");
    let text = String::from_utf8(ldd.stdout).unwrap();
    for lib in text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
    {
        let dest = rootfs.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, dest).unwrap();
    }
    std::fs::copy(path, rootfs.join(to.trim_start_matches('/'))).unwrap();
}

/// The attacker ships a setuid-root binary in the image and runs it as an
/// ordinary user: `no_new_privileges` means the exec does not raise the
/// user to root. The binary is coreutils' `id`, which (unlike busybox) never
/// drops what setuid gives it: run setuid without `no_new_privileges` it
/// prints 0. The rootfs sits on a host file system without `nosuid`
/// (checked), so only `no_new_privileges` can be what holds here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setuid_binary_gains_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let _g = SERIAL.lock().await;
    let f = fixture();
    copy_with_libs(&f.rootfs, "/usr/bin/id", "/bin/suid-id");
    let suid = f.rootfs.join("bin/suid-id");
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(
        std::fs::metadata(&suid).unwrap().permissions().mode() & 0o7777,
        0o4755
    );
    let flags = nix::sys::statvfs::statvfs(&f.rootfs).unwrap().flags();
    assert!(
        !flags.contains(nix::sys::statvfs::FsFlags::ST_NOSUID),
        "the test rootfs is on a nosuid file system: it would not test no_new_privileges"
    );
    // Root in the container runs it too, to show the binary works.
    let (exit, out) = run(&f, f.spec("suid-root", "/bin/suid-id -u")).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(out.stdout, "0\n");
    let mut spec = f.spec("suid", "/bin/suid-id -u; /bin/suid-id -ru");
    spec.user = "1000:1000".into();
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(out.stdout, "1000\n1000\n", "setuid raised the user");
}

/// The attacker makes calls the seccomp allow-list does not name, from a
/// real container: `arping` opens an `AF_PACKET` socket (allowed by the old
/// deny-list, and by the capabilities: root keeps `CAP_NET_RAW`), refused
/// with EPERM; `personality(PER_LINUX32)` (`linux32`), on the list, works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_the_seccomp_list_fail_with_eperm() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let (exit, out) = run(
        &f,
        f.spec(
            "seccomp",
            "arping -c 1 -w 1 -I lo 127.0.0.1; echo ARPING $?; \
             linux32 true && echo LINUX32_OK; \
             unshare -U true; echo UNSHARE $?",
        ),
    )
    .await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    let arping = out
        .stderr
        .lines()
        .find(|l| l.starts_with("arping"))
        .unwrap_or_else(|| panic!("no arping error in {}", out.stderr));
    assert!(
        arping.contains("socket") && arping.contains("Operation not permitted"),
        "{arping}"
    );
    assert!(out.stdout.contains("ARPING 1"), "{}", out.stdout);
    assert!(out.stdout.contains("LINUX32_OK"), "{}", out.stdout);
    assert!(out.stdout.contains("UNSHARE 1"), "{}", out.stdout);
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_port_reaches_the_service() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let mut spec = f.spec("web", "exec httpd -f -p 8080 -h /www");
    spec.args = vec![
        "httpd".into(),
        "-f".into(),
        "-p".into(),
        "8080".into(),
        "-h".into(),
        "/www".into(),
    ];
    spec.ports = vec![PortMap::loopback(8080)];
    let (tx, rx) = mpsc::channel(8);
    let out = collector(rx);
    let (ev_tx, mut ev_rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let runner = f.executor.run(spec, tx, Some(ev_tx), cancel.clone());
    let client = async {
        let mut host = None;
        while let Some(ev) = ev_rx.recv().await {
            if let ContainerEvent::PortPublished {
                container_port,
                host: h,
                ..
            } = ev
            {
                assert_eq!(container_port, 8080);
                host = Some(h);
                break;
            }
        }
        let host = host.unwrap();
        assert!(host.ip().is_loopback() && host.port() != 0);
        // httpd may not listen yet: retry until it answers (bounded).
        let mut last = String::new();
        for _ in 0..100 {
            let got = tokio::task::spawn_blocking(move || http_get(host))
                .await
                .unwrap();
            match got {
                Ok(body) if body.contains("200 OK") => {
                    last = body;
                    break;
                }
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cancel.cancel();
        (host, last)
    };
    let (exit, (host, body)) = tokio::join!(runner, client);
    assert!(
        body.contains("hello from the container"),
        "response: {body}"
    );
    assert_eq!(exit.unwrap(), Exit::killed(ExitReason::Cancelled));
    out.await.unwrap();
    // The proxy is gone with the container.
    assert!(TcpStream::connect(host).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_persist_and_read_only_refuses_writes() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let data = tempfile::tempdir().unwrap();
    let vol = |ro| Volume {
        host_path: data.path().to_path_buf(),
        container_path: "/data/sub".into(),
        read_only: ro,
    };
    let mut spec = f.spec("vol1", "echo persisted > /data/sub/f");
    spec.volumes = vec![vol(false)];
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(data.path().join("f")).unwrap(),
        "persisted\n"
    );

    let mut spec = f.spec(
        "vol2",
        "cat /data/sub/f; echo x > /data/sub/g && echo WROTE || echo DENIED",
    );
    spec.volumes = vec![vol(true)];
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0));
    assert_eq!(out.stdout, "persisted\nDENIED\n");
    assert!(!data.path().join("g").exists());

    // Paths that could escape are refused before anything runs.
    for bad in ["../etc", "/data/../../etc", "data", "/"] {
        let mut spec = f.spec("vol3", "true");
        spec.volumes = vec![Volume {
            host_path: data.path().to_path_buf(),
            container_path: bad.into(),
            read_only: false,
        }];
        let (tx, _rx) = mpsc::channel(8);
        let err = f
            .executor
            .run(spec, tx, None, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ContainerError::Volume { .. }), "{bad}: {err}");
    }
    // A symlink in the image pointing at a host folder is resolved inside
    // the rootfs: dangling there, the mount is refused...
    std::os::unix::fs::symlink(data.path(), f.rootfs.join("escape")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let escape_spec = |id: &str| {
        let mut spec = f.spec(id, "echo inside > /escape/proof");
        spec.volumes = vec![Volume {
            host_path: outside.path().to_path_buf(),
            container_path: "/escape".into(),
            read_only: false,
        }];
        spec
    };
    let (tx, _rx) = mpsc::channel(8);
    let err = f
        .executor
        .run(escape_spec("vol4"), tx, None, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::Create(_)), "{err}");
    assert_cleaned(&f, "vol4");
    // ...and when the target exists in the rootfs, the mount lands there,
    // never on the host's `data` folder.
    let inside = f.rootfs.join(data.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    let (exit, out) = run(&f, escape_spec("vol5")).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert!(!data.path().join("proof").exists());
    assert!(outside.path().join("proof").exists());
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_joins_the_running_container() {
    let _g = SERIAL.lock().await;
    let f = fixture();
    let (tx, rx) = mpsc::channel(8);
    let out = collector(rx);
    let (ev_tx, mut ev_rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let mut spec = f.spec("svc", "sleep 1000");
    spec.hostname = "svc-host".into();
    spec.env = vec![("IN_CONTAINER".into(), "yes".into())];
    let runner = f.executor.run(spec, tx, Some(ev_tx), cancel.clone());
    let f = &f;
    let checks = async move {
        assert!(matches!(
            ev_rx.recv().await,
            Some(ContainerEvent::Started { .. })
        ));
        // The id is taken while it runs.
        let (tx, _rx) = mpsc::channel(8);
        let dup = f
            .executor
            .run(f.spec("svc", "true"), tx, None, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(matches!(dup, ContainerError::AlreadyRunning(_)), "{dup}");

        let exec = move |args: &[&str], env: Vec<(String, String)>| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            async move {
                let (tx, rx) = mpsc::channel(8);
                let out = collector(rx);
                let exit = f
                    .executor
                    .exec("svc", args, env, tx, CancellationToken::new())
                    .await
                    .unwrap();
                (exit, out.await.unwrap())
            }
        };
        let (exit, o) = exec(&["ps"], vec![]).await;
        assert_eq!(exit, Exit::exited(0), "{}", o.stderr);
        let pid1 = o
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some("1"))
            .unwrap_or_else(|| panic!("no pid 1 in {}", o.stdout));
        assert!(pid1.contains("sleep 1000"), "{}", o.stdout);

        let (exit, o) = exec(
            &[
                "sh",
                "-c",
                "hostname; cat /etc/hostname; echo $IN_CONTAINER $EXTRA; \
                 grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; exit 4",
            ],
            vec![("EXTRA".into(), "more".into())],
        )
        .await;
        assert_eq!(exit, Exit::exited(4), "{}", o.stderr);
        let mut lines: Vec<&str> = o.stdout.lines().collect();
        lines[3..].sort_unstable();
        assert_eq!(
            lines,
            [
                "svc-host",
                "svc-host",
                "yes more",
                "NoNewPrivs:\t1",
                "Seccomp:\t2"
            ]
        );
        cancel.cancel();
    };
    let (exit, ()) = tokio::join!(runner, checks);
    assert_eq!(exit.unwrap(), Exit::killed(ExitReason::Cancelled));
    out.await.unwrap();
    assert_cleaned(f, "svc");

    let (tx, _rx) = mpsc::channel(8);
    let err = f
        .executor
        .exec(
            "svc",
            vec!["true".into()],
            vec![],
            tx,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::NotRunning(_)), "{err}");
}

/// Container root is not host root: in a user namespace, uid 0 inside is
/// the node's first mapped uid outside. A host file of root's stays closed
/// to it even when mounted in (without the namespace it reads it: root's
/// `CAP_DAC_OVERRIDE`), and what it writes is owned by the mapped uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_root_is_not_host_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _g = SERIAL.lock().await;
    let ids = IdMap::new(231_072);
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = shared.path().join("secret");
    std::fs::write(&secret, "host root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mine = shared.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(ids.first), Some(ids.first)).unwrap();
    let script = "id -u; cat /proc/self/uid_map | tr -s ' '; \
                  cat /shared/secret || echo DENIED; \
                  echo hi > /shared/mine/f && echo WROTE; \
                  echo x > /shared/new 2>/dev/null || echo NOT-IN-ROOTS-FOLDER";
    let volume = Volume {
        host_path: shared.path().to_path_buf(),
        container_path: "/shared".into(),
        read_only: false,
    };

    // Without a user namespace (as before): container root reads the file.
    let f = fixture();
    let mut spec = f.spec("root-host", "cat /shared/secret");
    spec.volumes = vec![volume.clone()];
    let (exit, out) = run(&f, spec).await;
    assert_eq!(
        (exit, out.stdout.as_str()),
        (Exit::exited(0), "host root's secret\n")
    );

    let f = fixture_with(Some(ids));
    let mut spec = f.spec("root-mapped", script);
    spec.volumes = vec![volume];
    let (exit, out) = run(&f, spec).await;
    assert_eq!(exit, Exit::exited(0), "{}", out.stderr);
    assert_eq!(
        out.stdout, "0\n 0 231072 65536\nDENIED\nWROTE\nNOT-IN-ROOTS-FOLDER\n",
        "stderr: {}",
        out.stderr
    );
    let written = std::fs::metadata(mine.join("f")).unwrap();
    assert_eq!((written.uid(), written.gid()), (ids.first, ids.first));
    assert!(!shared.path().join("new").exists());
    assert_cleaned(&f, "root-mapped");
}
