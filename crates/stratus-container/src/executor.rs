//! [`ContainerExecutor`]: creation with libcontainer, supervision, cleanup.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor as Workload, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSeccomp, Spec};
use stratus_runtime::{CancellationToken, Exit, ExitReason, Output};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::cgroup::{self, Layout};
use crate::helper;
use crate::netns::NetNs;
use crate::proxy::Proxies;
use crate::spec::IdMap;
use crate::user::{resolve_in_rootfs, ResolvedUser};
use crate::{spec, stdio, ContainerError, ContainerEvent, ContainerSpec};

/// Longest wait for libcontainer to create and start a container.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Cgroup parent of all containers (`/sys/fs/cgroup/<controller>/stratus/<id>`).
pub const DEFAULT_CGROUP_PARENT: &str = "stratus";

/// Time between `SIGTERM` and `SIGKILL` when a container is stopped.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(3);

/// Creations touch the shared cgroup parent, and a failed one sweeps our
/// unsupervised `youki:[…]` children (see [`helper`]): one at a time.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

fn create_lock() -> MutexGuard<'static, ()> {
    // A panic while holding it leaves nothing half-done that matters.
    CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the executor knows about a running container.
#[derive(Clone, Debug)]
struct RunningInfo {
    /// Host pid of the init process (`None` while being created).
    pid: Option<i32>,
    uid: u32,
    gid: u32,
}

type Registry = Arc<Mutex<HashMap<String, RunningInfo>>>;

fn lock(registry: &Registry) -> MutexGuard<'_, HashMap<String, RunningInfo>> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs OCI containers on this host. See the crate docs.
pub struct ContainerExecutor {
    /// libcontainer's state root.
    run_root: PathBuf,
    /// Bundles (`config.json`, generated `/etc` files), one folder per id.
    bundles: PathBuf,
    cgroup_parent: String,
    layout: Layout,
    stop_grace: Duration,
    running: Registry,
    /// Host ports published ports may use (`None`: any).
    port_range: Option<std::ops::RangeInclusive<u16>>,
    /// The user namespace's id mapping (`None`: container root is host root).
    ids: Option<IdMap>,
}

impl std::fmt::Debug for ContainerExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerExecutor")
            .field("run_root", &self.run_root)
            .field("cgroup_parent", &self.cgroup_parent)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl ContainerExecutor {
    /// An executor keeping its state under `state_root` (created if needed).
    ///
    /// Checks that this host can run containers (root, namespaces, cgroup
    /// controllers) and force-deletes containers a previous process left in
    /// `state_root`.
    pub fn new(state_root: &Path) -> Result<Self, ContainerError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(ContainerError::HostUnsupported(
                "the container executor must run as root".into(),
            ));
        }
        for ns in ["pid", "net", "mnt", "uts", "ipc", "cgroup"] {
            if !Path::new("/proc/self/ns").join(ns).exists() {
                return Err(ContainerError::HostUnsupported(format!(
                    "kernel has no {ns} namespace"
                )));
            }
        }
        let layout = cgroup::detect().map_err(ContainerError::HostUnsupported)?;
        helper::become_subreaper()?;
        let run_root = state_root.join("run");
        let bundles = state_root.join("bundles");
        for dir in [&run_root, &bundles] {
            std::fs::create_dir_all(dir).map_err(|e| ContainerError::Io {
                context: format!("create {}", dir.display()),
                source: e,
            })?;
        }
        let executor = ContainerExecutor {
            run_root,
            bundles,
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            layout,
            stop_grace: DEFAULT_STOP_GRACE,
            running: Arc::new(Mutex::new(HashMap::new())),
            port_range: None,
            ids: None,
        };
        executor.remove_leftovers();
        Ok(executor)
    }

    /// Sets the time between `SIGTERM` and `SIGKILL` on cancellation and
    /// wall-clock timeout (default [`DEFAULT_STOP_GRACE`]).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Sets the cgroup parent (default [`DEFAULT_CGROUP_PARENT`]); same rules
    /// as a container id.
    pub fn with_cgroup_parent(mut self, parent: &str) -> Result<Self, ContainerError> {
        validate_id(parent)
            .map_err(|e| ContainerError::InvalidSpec(format!("cgroup parent: {e}")))?;
        self.cgroup_parent = parent.into();
        Ok(self)
    }

    /// Publishes ports only inside `range` (the lender's `--ports`): a fixed
    /// host port outside it is [`ContainerError::PortNotAllowed`], and
    /// `host_port: 0` takes a free port inside it. Without a range (the
    /// default of the library), any host port may be bound.
    pub fn with_port_range(mut self, range: std::ops::RangeInclusive<u16>) -> Self {
        self.port_range = Some(range);
        self
    }

    /// Runs every container in a new user namespace mapping container ids
    /// `0..ids.size` onto host `ids.first..` (see [`IdMap`]). The rootfs and
    /// volumes must then be owned by the mapped ids (the image crate's
    /// mount shifts them), and the folders above them must let the mapped
    /// root through (see the crate docs).
    pub fn with_user_namespace(mut self, ids: IdMap) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The user namespace's id mapping, if containers get one.
    pub fn user_namespace(&self) -> Option<IdMap> {
        self.ids
    }

    /// Ids of the containers running now.
    pub fn running(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.running)
            .iter()
            .filter(|(_, info)| info.pid.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// A connection to `port` on the loopback of running container `id`
    /// (made from inside its network namespace): how a same-tenant
    /// service on this node is reached ([`Services::connect`]).
    ///
    /// [`Services::connect`]: crate::Services::connect
    pub async fn connect(&self, id: &str, port: u16) -> Result<TcpStream, ContainerError> {
        let pid = lock(&self.running)
            .get(id)
            .and_then(|i| i.pid)
            .ok_or_else(|| ContainerError::NotRunning(id.to_string()))?;
        let s = NetNs::of_pid(pid)?.connect_local(port).await?;
        s.set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(s))
            .map_err(|e| io_err("register a connection to a container", e))
    }

    fn remove_leftovers(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.run_root) {
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                tracing::warn!(path = %path.display(), "removing a container left by a previous run");
                match Container::load(path.clone()) {
                    Ok(mut c) => {
                        if let Err(e) = c.delete(true) {
                            tracing::warn!(error = %e, "delete leftover container");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "load leftover container"),
                }
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.bundles) {
            for entry in entries.filter_map(Result::ok) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Runs `spec` to the end: output is sent on `output` while it runs,
    /// `events` (if given) learns the pid and the published ports, and
    /// `cancel` stops it.
    ///
    /// `Err` means the container could not be set up (bad spec, unknown
    /// user, busy port, libcontainer failure); everything the workload does,
    /// including being killed for a limit, is an `Ok(Exit)`.
    pub async fn run(
        &self,
        spec: ContainerSpec,
        output: mpsc::Sender<Output>,
        events: Option<mpsc::Sender<ContainerEvent>>,
        cancel: CancellationToken,
    ) -> Result<Exit, ContainerError> {
        let mut spec = spec;
        validate(&mut spec)?;
        crate::ports::check(&spec.ports, self.port_range.as_ref())?;
        // From here on, `live` cleans up whatever exists, on every path.
        let mut live = Live::reserve(self, &spec.id)?;

        let rootfs = spec.rootfs.clone();
        let user_str = spec.user.clone();
        let user = tokio::task::spawn_blocking(move || resolve_in_rootfs(&rootfs, &user_str))
            .await
            .map_err(|e| ContainerError::Internal(format!("user lookup task: {e}")))??;
        live.set_user(&user);

        let listeners = crate::ports::bind(&spec.ports, self.port_range.as_ref(), &spec.id).await?;

        // The bundle: config.json and the generated /etc files.
        std::fs::create_dir_all(live.bundle.join("etc")).map_err(|e| io_err("create bundle", e))?;
        let hostname = spec.hostname.clone();
        std::fs::write(live.bundle.join("etc/hostname"), format!("{hostname}\n"))
            .map_err(|e| io_err("write hostname", e))?;
        std::fs::write(live.bundle.join("etc/hosts"), spec::hosts_file(&hostname))
            .map_err(|e| io_err("write hosts", e))?;
        if let Some(net) = &spec.network {
            std::fs::write(
                live.bundle.join("etc/resolv.conf"),
                crate::net::resolv_conf(net),
            )
            .map_err(|e| io_err("write resolv.conf", e))?;
        }
        let oci = spec::build(
            &spec,
            &user,
            &live.bundle.join("etc"),
            &self.cgroup_parent,
            spec::nofile_limit(),
            self.ids,
        )?;
        oci.save(live.bundle.join("config.json"))
            .map_err(|e| ContainerError::Internal(format!("write config.json: {e}")))?;

        let (child_io, host_io) = stdio::setup(spec.stdin.take(), output)?;

        let id = spec.id.clone();
        let run_root = self.run_root.clone();
        let bundle = live.bundle.clone();
        let networked = spec.network.is_some();
        // Bounded by CREATE_TIMEOUT inside (the helper is killed after it).
        let (init, sockets) = tokio::task::spawn_blocking(move || {
            create_and_start(&id, &run_root, &bundle, networked, child_io)
        })
        .await
        .map_err(|e| ContainerError::Internal(format!("create task: {e}")))??;
        let pid = init.pid;
        live.set_init(init);
        let network = match spec.network.take() {
            Some(net) => Some(crate::net::Served::start(net, sockets)?),
            None => None,
        };
        let exited = wait_exit(pid)?;

        if let Some(ev) = &events {
            let _ = ev
                .send(ContainerEvent::Started {
                    pid: pid.as_raw().unsigned_abs(),
                })
                .await;
        }
        let mut published = Vec::with_capacity(listeners.len());
        for (l, port) in &listeners {
            let host = l
                .local_addr()
                .map_err(|e| io_err("published port address", e))?;
            published.push(ContainerEvent::PortPublished {
                container_port: *port,
                host,
                protocol: l.protocol(),
            });
        }
        let proxies = if listeners.is_empty() {
            None
        } else {
            Some(Proxies::start(listeners, NetNs::of_pid(pid.as_raw())?))
        };
        if let Some(ev) = &events {
            for p in published {
                let _ = ev.send(p).await;
            }
        }

        let stopped = supervise(pid, exited, spec.wall_time, &cancel, self.stop_grace).await;
        let status = live.reap();
        let cgroup_path = spec::cgroup_path(&self.cgroup_parent, &spec.id);
        let oom = cgroup::oom_kills(self.layout, &cgroup_path);
        let (cpu, memory_peak) = cgroup::usage(self.layout, &cgroup_path);
        spec.meter.add_cpu(cpu);
        spec.meter.see_memory(memory_peak);
        host_io.finish().await;
        if let Some(p) = proxies {
            p.stop().await;
        }
        if let Some(n) = network {
            n.stop().await;
        }
        let layout = self.layout;
        let parent = self.cgroup_parent.clone();
        let registry = self.running.clone();
        tokio::task::spawn_blocking(move || {
            live.teardown();
            Live::remove_idle_parent(&registry, layout, &parent);
        })
        .await
        .map_err(|e| ContainerError::Internal(format!("cleanup task: {e}")))?;

        Ok(match (stopped, status) {
            (Some(reason), _) => Exit::killed(reason),
            (None, _) if oom > 0 => Exit::killed(ExitReason::MemoryLimit),
            (None, Some(code)) => Exit::exited(code),
            (None, None) => {
                return Err(ContainerError::Internal(
                    "lost the container's exit status".into(),
                ))
            }
        })
    }

    /// Runs `args` inside the running container `id`, like `docker exec`:
    /// same namespaces, cgroup, capabilities, seccomp profile and user; the
    /// container's environment with `env` on top. Stdin is `/dev/null`.
    ///
    /// `cancel` stops this process only (`SIGTERM`, grace, `SIGKILL`). When
    /// the container ends, the process ends with it.
    pub async fn exec(
        &self,
        id: &str,
        args: Vec<String>,
        env: Vec<(String, String)>,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> Result<Exit, ContainerError> {
        if args.is_empty() {
            return Err(ContainerError::InvalidSpec("args: empty command".into()));
        }
        check_strings("args", args.iter())?;
        for (k, v) in &env {
            check_env(k, v)?;
        }
        let info = lock(&self.running)
            .get(id)
            .filter(|i| i.pid.is_some())
            .cloned()
            .ok_or_else(|| ContainerError::NotRunning(id.to_string()))?;
        let (child_io, host_io) = stdio::setup(None, output)?;
        let id_owned = id.to_string();
        let run_root = self.run_root.clone();
        let mut proc = tokio::task::spawn_blocking(move || {
            exec_in(&id_owned, &run_root, args, env, &info, child_io)
        })
        .await
        .map_err(|e| ContainerError::Internal(format!("exec task: {e}")))??;
        let pid = proc.pid;
        let exited = wait_exit(pid)?;
        let stopped = supervise(pid, exited, None, &cancel, self.stop_grace).await;
        let status = proc.reap();
        host_io.finish().await;
        Ok(match (stopped, status) {
            (Some(reason), _) => Exit::killed(reason),
            (None, Some(code)) => Exit::exited(code),
            (None, None) => {
                return Err(ContainerError::Internal(
                    "lost the exec process's exit status".into(),
                ))
            }
        })
    }
}

pub(crate) fn io_err(context: &str, source: std::io::Error) -> ContainerError {
    ContainerError::Io {
        context: context.into(),
        source,
    }
}

/// Checks and normalises a spec (hostname default, canonical host paths).
fn validate(spec: &mut ContainerSpec) -> Result<(), ContainerError> {
    validate_id(&spec.id).map_err(|e| ContainerError::InvalidSpec(format!("id: {e}")))?;
    if spec.args.is_empty() {
        return Err(ContainerError::InvalidSpec("args: empty command".into()));
    }
    check_strings("args", spec.args.iter())?;
    for (k, v) in &spec.env {
        check_env(k, v)?;
    }
    if !spec.cwd.is_empty() && !spec.cwd.starts_with('/') {
        return Err(ContainerError::InvalidSpec(format!(
            "cwd: {:?} is not absolute",
            spec.cwd
        )));
    }
    check_strings("cwd", [&spec.cwd])?;
    check_strings("user", [&spec.user])?;
    if spec.hostname.is_empty() {
        spec.hostname = spec.id.clone();
    }
    let h = &spec.hostname;
    if h.len() > 63
        || !h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(ContainerError::InvalidSpec(format!(
            "hostname: {h:?} is not a host name"
        )));
    }
    let rootfs = spec
        .rootfs
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| ContainerError::Rootfs {
            path: spec.rootfs.clone(),
            reason: "not an existing directory".into(),
        })?;
    spec.rootfs = rootfs;
    let mut seen = HashSet::new();
    for v in &mut spec.volumes {
        let host = v
            .host_path
            .canonicalize()
            .map_err(|e| ContainerError::Volume {
                path: v.host_path.clone(),
                reason: format!("host path: {e}"),
            })?;
        let dest = Path::new(&v.container_path);
        let plain = dest.is_absolute()
            && dest
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_)))
            && dest.components().count() > 1;
        if !plain || v.container_path.contains('\0') {
            return Err(ContainerError::Volume {
                path: v.host_path.clone(),
                reason: format!(
                    "container path {:?} must be absolute, not `/`, without `.` or `..`",
                    v.container_path
                ),
            });
        }
        if !seen.insert(dest.to_path_buf()) {
            return Err(ContainerError::Volume {
                path: v.host_path.clone(),
                reason: format!("{} is mounted twice", v.container_path),
            });
        }
        v.host_path = host;
    }
    for p in &spec.ports {
        if p.container_port == 0 {
            return Err(ContainerError::InvalidSpec(
                "ports: container_port must not be 0".into(),
            ));
        }
    }
    Ok(())
}

fn validate_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} must be 1-64 characters of [a-z0-9-], not starting with '-'"
        ))
    }
}

fn check_strings<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a String>,
) -> Result<(), ContainerError> {
    for v in values {
        if v.contains('\0') {
            return Err(ContainerError::InvalidSpec(format!(
                "{field}: {v:?} contains a NUL byte"
            )));
        }
    }
    Ok(())
}

fn check_env(k: &str, v: &str) -> Result<(), ContainerError> {
    if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
        return Err(ContainerError::InvalidSpec(format!(
            "env: {k:?} is not a valid variable name (or its value has a NUL)"
        )));
    }
    Ok(())
}

fn create_err(e: impl std::fmt::Display) -> ContainerError {
    ContainerError::Create(e.to_string())
}

/// Creates the container (its init waits), brings `lo` up in its network
/// namespace (or, `networked`, builds its network and makes the sockets of
/// its proxy and resolver there, returned), then starts it; all in a
/// creation helper (see [`helper`]). On any failure after creation the
/// container is deleted. Blocking.
fn create_and_start(
    id: &str,
    run_root: &Path,
    bundle: &Path,
    networked: bool,
    io: stdio::ChildStdio,
) -> Result<(Reaper, Vec<std::os::fd::OwnedFd>), ContainerError> {
    let _lock = create_lock();
    let (pid, sockets) = helper::create_in_helper_with_fds(CREATE_TIMEOUT, supervised, || {
        let mut container = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(run_root)
            .map_err(create_err)?
            .validate_id()
            .map_err(create_err)?
            .with_stdin(io.stdin)
            .with_stdout(io.stdout)
            .with_stderr(io.stderr)
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(create_err)?;
        let result = (|| {
            let pid = container
                .pid()
                .ok_or_else(|| ContainerError::Create("libcontainer returned no pid".into()))?;
            let netns = NetNs::of_pid(pid.as_raw())?;
            let sockets = if networked {
                netns.run_blocking("network", crate::net::setup::configure)?
            } else {
                netns.loopback_up_blocking()?;
                Vec::new()
            };
            container.start().map_err(create_err)?;
            Ok((pid, sockets))
        })();
        if result.is_err() {
            if let Err(e) = container.delete(true) {
                tracing::warn!(error = %e, id, "delete a container that failed to start");
            }
        }
        result
    })?;
    // Owned before the lock is released (see `helper::create_in_helper`).
    Ok((Reaper::new(pid), sockets))
}

/// Pids of the processes a [`Reaper`] owns (never reaped by the sweep).
static SUPERVISED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn supervised(pid: i32) -> bool {
    SUPERVISED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&pid)
}

/// A workload runner for `exec` processes that loads the container's seccomp
/// profile right before `execve` (libcontainer 0.7 does not apply the
/// container's seccomp to a tenant process). `no_new_privileges` is already
/// set at that point, so no privilege is needed to load it.
#[derive(Clone)]
struct SeccompWorkload(LinuxSeccomp);

impl Workload for SeccompWorkload {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        libcontainer::seccomp::initialize_seccomp(&self.0)
            .map_err(|e| ExecutorError::Other(format!("load seccomp profile: {e}")))?;
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// Starts `args` in the namespaces of container `id`, from a creation
/// helper (see [`helper`]). Blocking.
fn exec_in(
    id: &str,
    run_root: &Path,
    args: Vec<String>,
    env: Vec<(String, String)>,
    info: &RunningInfo,
    io: stdio::ChildStdio,
) -> Result<Reaper, ContainerError> {
    let _lock = create_lock();
    let pid = helper::create_in_helper(CREATE_TIMEOUT, supervised, || {
        ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(run_root)
            .map_err(create_err)?
            .with_stdin(io.stdin)
            .with_stdout(io.stdout)
            .with_stderr(io.stderr)
            .with_executor(SeccompWorkload(crate::seccomp::default_profile()))
            .as_tenant()
            .with_container_args(args)
            .with_env(env.into_iter().collect())
            .with_user(Some(info.uid))
            .with_group(Some(info.gid))
            .with_detach(true)
            .build()
            .map_err(create_err)
    })?;
    Ok(Reaper::new(pid))
}

/// Starts a thread that waits (without reaping) until `pid` exits.
fn wait_exit(pid: Pid) -> Result<oneshot::Receiver<()>, ContainerError> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("wait-{pid}"))
        .spawn(move || {
            while let Err(nix::errno::Errno::EINTR) =
                waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT)
            {}
            let _ = tx.send(());
        })
        .map_err(|e| io_err("spawn a wait thread", e))?;
    Ok(rx)
}

/// Waits for the exit, the wall-clock limit or cancellation; on the latter
/// two stops the process (`SIGTERM`, `grace`, `SIGKILL`) and returns why.
/// The process is still unreaped when this returns, so `pid` cannot have
/// been reused by the time we signal it.
async fn supervise(
    pid: Pid,
    mut exited: oneshot::Receiver<()>,
    wall_time: Option<Duration>,
    cancel: &CancellationToken,
    grace: Duration,
) -> Option<ExitReason> {
    let wall = async {
        match wall_time {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        _ = &mut exited => return None,
        _ = cancel.cancelled() => ExitReason::Cancelled,
        _ = wall => ExitReason::WallTimeout,
    };
    let _ = kill(pid, Signal::SIGTERM);
    if tokio::time::timeout(grace, &mut exited).await.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = exited.await;
    }
    Some(reason)
}

/// Reaps a child process once.
struct Reaper {
    pid: Pid,
    reaped: bool,
}

impl Reaper {
    fn new(pid: Pid) -> Self {
        SUPERVISED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid.as_raw());
        Reaper { pid, reaped: false }
    }

    fn forget(&self) {
        SUPERVISED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| *p != self.pid.as_raw());
    }

    /// Reaps the (exited) process; its exit code, or 128 + signal.
    fn reap(&mut self) -> Option<i32> {
        if self.reaped {
            return None;
        }
        let status = self.wait();
        self.forget();
        status
    }

    fn wait(&mut self) -> Option<i32> {
        loop {
            match waitpid(self.pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                Ok(WaitStatus::Exited(_, code)) => {
                    self.reaped = true;
                    return Some(code);
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.reaped = true;
                    return Some(128 + sig as i32);
                }
                Ok(_) => continue,
                Err(e) => {
                    self.reaped = true;
                    tracing::warn!(pid = %self.pid, error = %e, "waitpid");
                    return None;
                }
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.reaped {
            let pid = self.pid;
            let _ = kill(pid, Signal::SIGKILL);
            let _ = std::thread::Builder::new()
                .name(format!("reap-{pid}"))
                .spawn(move || {
                    let _ = waitpid(pid, None);
                    SUPERVISED
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .retain(|p| *p != pid.as_raw());
                });
        }
    }
}

/// Everything that exists of one container.
struct Parts {
    id: String,
    run_root: PathBuf,
    bundle: PathBuf,
    registry: Registry,
    init: Option<Reaper>,
}

impl Parts {
    /// Kills and reaps the init if still there, deletes the container
    /// (cgroups, libcontainer state), the bundle, and the registry entry.
    /// Blocking.
    fn teardown(mut self) {
        if let Some(mut init) = self.init.take() {
            if !init.reaped {
                let _ = kill(init.pid, Signal::SIGKILL);
                init.reap();
            }
        }
        let state = self.run_root.join(&self.id);
        if state.exists() {
            match Container::load(state.clone()) {
                Ok(mut c) => {
                    if let Err(e) = c.delete(true) {
                        tracing::warn!(id = %self.id, error = %e, "delete container");
                    }
                }
                Err(e) => tracing::warn!(id = %self.id, error = %e, "load container state"),
            }
            let _ = std::fs::remove_dir_all(&state);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.bundle) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(bundle = %self.bundle.display(), error = %e, "remove bundle");
            }
        }
        lock(&self.registry).remove(&self.id);
    }
}

/// One container's resources, torn down exactly once: explicitly at the end
/// of `run`, or on drop (error paths, dropped future).
struct Live {
    parts: Option<Parts>,
    bundle: PathBuf,
}

impl Live {
    /// Claims `id` in the registry.
    fn reserve(executor: &ContainerExecutor, id: &str) -> Result<Self, ContainerError> {
        {
            let mut running = lock(&executor.running);
            if running.contains_key(id) || executor.run_root.join(id).exists() {
                return Err(ContainerError::AlreadyRunning(id.to_string()));
            }
            running.insert(
                id.to_string(),
                RunningInfo {
                    pid: None,
                    uid: 0,
                    gid: 0,
                },
            );
        }
        let bundle = executor.bundles.join(id);
        Ok(Live {
            parts: Some(Parts {
                id: id.to_string(),
                run_root: executor.run_root.clone(),
                bundle: bundle.clone(),
                registry: executor.running.clone(),
                init: None,
            }),
            bundle,
        })
    }

    fn with_entry(&self, f: impl FnOnce(&mut RunningInfo)) {
        if let Some(p) = &self.parts {
            if let Some(info) = lock(&p.registry).get_mut(&p.id) {
                f(info);
            }
        }
    }

    fn set_user(&self, user: &ResolvedUser) {
        self.with_entry(|info| {
            info.uid = user.uid;
            info.gid = user.gid;
        });
    }

    fn set_init(&mut self, init: Reaper) {
        self.with_entry(|info| info.pid = Some(init.pid.as_raw()));
        if let Some(p) = &mut self.parts {
            p.init = Some(init);
        }
    }

    /// Reaps the exited init process (see [`Reaper::reap`]).
    fn reap(&mut self) -> Option<i32> {
        self.with_entry(|info| info.pid = None);
        self.parts
            .as_mut()
            .and_then(|p| p.init.as_mut())
            .and_then(Reaper::reap)
    }

    /// Tears everything down (blocking).
    fn teardown(&mut self) {
        if let Some(p) = self.parts.take() {
            p.teardown();
        }
    }

    /// Removes the shared cgroup parent folders when no container of this
    /// executor uses them (a non-empty cgroup cannot be removed, so one used
    /// by another executor stays).
    fn remove_idle_parent(registry: &Registry, layout: Layout, parent: &str) {
        let _lock = create_lock();
        if !lock(registry).is_empty() {
            return;
        }
        for dir in cgroup::parent_dirs(layout, parent) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let Some(parts) = self.parts.take() else {
            return;
        };
        if parts.init.is_none() {
            // Nothing runs: only files and the registry entry, done now so
            // the id is free when the error is returned.
            parts.teardown();
            return;
        }
        // The run future was dropped or failed while the container exists:
        // kill and delete it on a thread (deleting may block briefly).
        let spawned = std::thread::Builder::new()
            .name("container-cleanup".into())
            .spawn(move || parts.teardown());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn a cleanup thread");
        }
    }
}
