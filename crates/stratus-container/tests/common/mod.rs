//! The fixture of the container tests: a busybox rootfs in a temp folder,
//! an executor under it, and output collection.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use stratus_container::{ContainerExecutor, ContainerSpec, IdMap};
use stratus_runtime::{CancellationToken, Exit, Output};
use tempfile::TempDir;
use tokio::sync::mpsc;

pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const BUSYBOX: &str = "/bin/busybox";
pub const CGROUP_PARENT: &str = "stratus-test";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ps", "ls", "id", "hostname", "sleep", "dd", "head", "tail", "nc",
    "httpd", "wget", "grep", "mknod", "mount", "test", "pwd", "seq", "unshare", "wc", "true",
    "false", "env", "arping", "linux32", "tr", "nslookup", "ip",
];

pub struct Fixture {
    pub dir: TempDir,
    pub rootfs: PathBuf,
    pub executor: ContainerExecutor,
}

pub fn fixture() -> Fixture {
    fixture_with(None)
}

/// A fixture whose containers run in a user namespace mapping `ids` when
/// given; the rootfs is then owned by the mapped ids, as the agent's mount
/// presents an image.
pub fn fixture_with(ids: Option<IdMap>) -> Fixture {
    // With RUST_LOG set, the executor's records (never libcontainer's: its
    // helper runs silent) go to the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    assert!(
        Path::new(BUSYBOX).exists(),
        "{BUSYBOX} is missing: install Debian's busybox-static (scripts/setup-toolchain.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "etc", "www", "tmp", "proc", "dev", "sys"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(rootfs.join("www/index.html"), "hello from the container\n").unwrap();
    let mut executor = ContainerExecutor::new(&dir.path().join("state"))
        .unwrap()
        .with_cgroup_parent(CGROUP_PARENT)
        .unwrap()
        .with_stop_grace(Duration::from_millis(300));
    if let Some(ids) = ids {
        executor = executor.with_user_namespace(ids);
        chown_tree(&rootfs, ids.first);
    }
    Fixture {
        dir,
        rootfs,
        executor,
    }
}

impl Fixture {
    pub fn spec(&self, id: &str, script: &str) -> ContainerSpec {
        let mut s = ContainerSpec::new(
            id,
            &self.rootfs,
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        s.memory_bytes = 128 << 20;
        s.pids = 64;
        s.wall_time = Some(Duration::from_secs(60));
        s
    }
}

/// Gives `path` and everything under it (links themselves, not their
/// targets) to host uid and gid `id`.
pub fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if path.symlink_metadata().unwrap().is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// Output collected while a container runs.
pub struct Collected {
    pub stdout: String,
    pub stderr: String,
    /// Stdout chunks seen before the exit was known (for the streaming test).
    pub chunks: usize,
}

pub fn collector(mut rx: mpsc::Receiver<Output>) -> tokio::task::JoinHandle<Collected> {
    tokio::spawn(async move {
        let mut c = Collected {
            stdout: String::new(),
            stderr: String::new(),
            chunks: 0,
        };
        while let Some(o) = rx.recv().await {
            match o {
                Output::Stdout(b) => {
                    c.chunks += 1;
                    c.stdout.push_str(&String::from_utf8_lossy(&b));
                }
                Output::Stderr(b) => c.stderr.push_str(&String::from_utf8_lossy(&b)),
            }
        }
        c
    })
}

pub async fn run(f: &Fixture, spec: ContainerSpec) -> (Exit, Collected) {
    let (tx, rx) = mpsc::channel(64);
    let out = collector(rx);
    let exit = f
        .executor
        .run(spec, tx, None, CancellationToken::new())
        .await
        .unwrap();
    (exit, out.await.unwrap())
}

pub fn cgroup_dir(controller: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(CGROUP_PARENT)
        .join(id)
}

pub fn assert_cleaned(f: &Fixture, id: &str) {
    assert!(f.executor.running().is_empty());
    for c in ["memory", "pids", "cpu", "devices"] {
        assert!(
            !cgroup_dir(c, id).exists(),
            "{c} cgroup of {id} left behind"
        );
    }
    assert!(!f.dir.path().join("state/run").join(id).exists());
    assert!(!f.dir.path().join("state/bundles").join(id).exists());
}
