//! The OCI container executor.
//!
//! **Owns** running one container process tree in a prepared rootfs: the
//! namespaces, cgroup limits (memory, CPU, pids), seccomp, capabilities and
//! published-port proxy. **Does not own** fetching or mounting the image
//! (`stratus-agent`, `stratus-mount`) or restart policy (the agent).
//!
//! A lending node runs container workloads without a Docker daemon: the image
//! is already unpacked into a writable **rootfs directory** (the image crate
//! mounts it), and [`ContainerExecutor::run`] runs one process tree in it with
//! youki's [`libcontainer`] — the same library the `youki` runtime is made of
//! — as a child of the agent. Output and exits are reported exactly as the
//! WASM executor reports them ([`stratus_runtime::Output`],
//! [`stratus_runtime::Exit`], [`stratus_runtime::ExitReason`]), so the agent
//! treats both backends alike.
//!
//! ```no_run
//! use stratus_container::{ContainerExecutor, ContainerSpec};
//! use stratus_runtime::{CancellationToken, Output};
//!
//! # async fn demo() -> Result<(), stratus_container::ContainerError> {
//! let executor = ContainerExecutor::new("/var/lib/stratus/containers".as_ref())?;
//! let spec = ContainerSpec::new("job-1", "/var/lib/stratus/rootfs/job-1", vec!["echo".into(), "hi".into()]);
//! let (tx, mut rx) = tokio::sync::mpsc::channel(64);
//! let printer = tokio::spawn(async move {
//!     while let Some(Output::Stdout(c) | Output::Stderr(c)) = rx.recv().await {
//!         print!("{}", String::from_utf8_lossy(&c));
//!     }
//! });
//! let exit = executor.run(spec, tx, None, CancellationToken::new()).await?;
//! printer.await.ok();
//! println!("exit {} ({})", exit.code, exit.reason);
//! # Ok(()) }
//! ```
//!
//! # Trust and the sandbox
//!
//! The workload (the image and its command) is **untrusted**; the agent runs
//! as root. The container gets what Docker's defaults give, a little tighter:
//!
//! * **Namespaces**: new pid, mount, uts, ipc, cgroup and network namespaces,
//!   and a user namespace when the executor is given an [`IdMap`]
//!   ([`ContainerExecutor::with_user_namespace`]): container ids
//!   `0..65536` are then host ids `first..`, so container root is no user
//!   of the host (the rootfs and volumes must be owned by the mapped ids;
//!   the agent's image mount and volume archives see to it). Without one,
//!   uid 0 in the container is uid 0 on the host, confined by the rest.
//!   Without a [`Network`], the network namespace is empty except `lo`,
//!   which the executor brings up (youki does not), so services can listen
//!   on 127.0.0.1 / 0.0.0.0, and the container has **no route** to the host
//!   or anywhere else. With one ([`ContainerSpec::network`]), it also gets
//!   an `eth0` that leads nowhere, and its TCP connections out and its DNS
//!   queries are answered by the executor, in userspace, under an egress
//!   policy and with its tenant's service names (see [`net`]). Published
//!   ports are reached through a userspace proxy (below).
//! * **Capabilities**: Docker's default set minus `CAP_MKNOD`
//!   ([`spec::CAPABILITIES`]); `no_new_privileges` is set, so setuid binaries
//!   gain nothing.
//! * **Seccomp**: an allow-list in the shape of Docker's default profile,
//!   everything else `EPERM` ([`seccomp`] lists the calls and the argument
//!   filters, and says why an allow-list), applied to the container's process and
//!   to every [`ContainerExecutor::exec`] process (libcontainer 0.7 drops
//!   seccomp for `exec`; we load it ourselves just before `execve`).
//! * **Filesystems**: the rootfs is pivoted into; `/proc` (with Docker's
//!   masked and read-only paths, [`spec::MASKED_PATHS`],
//!   [`spec::READONLY_PATHS`]), `/dev` as a tmpfs holding only `null`,
//!   `zero`, `full`, `random`, `urandom`, `tty`, `console`, `ptmx` with
//!   `/dev/pts`, `/dev/shm`, `/dev/mqueue`; `/sys` read-only; generated
//!   `/etc/hostname` and `/etc/hosts` (read-only binds). No host device, no
//!   other host path except the declared [`Volume`]s.
//! * **Devices cgroup**: deny all, then allow only the nodes above.
//! * **Resources** (cgroups, v1 hybrid or v2): memory limit with swap equal
//!   to it (no swapping around the limit), CFS CPU quota from
//!   [`ContainerSpec::cpu_millis`], `pids.max`, `RLIMIT_NOFILE`
//!   [`spec::NOFILE_LIMIT`].
//! * **The user** is resolved against the rootfs's own `/etc/passwd` and
//!   `/etc/group`, read through `pathrs` (symlinks resolved inside the
//!   rootfs), never the host's.
//! * **Volumes**: host folders bind-mounted (`rbind`, `nosuid`, `nodev`,
//!   `ro` on request). The container path must be absolute and plain (no
//!   `..`); libcontainer resolves it inside the rootfs with `pathrs` and
//!   creates the mount point there, so a symlink in the image cannot point
//!   the mount at a host path.
//!
//! # Running, output, exits
//!
//! `run` creates and starts the container on a blocking thread (through a
//! forked helper, serialised by a process-wide lock, see *Limits*), then supervises it asynchronously: stdout and stderr are pipes
//! read as the container writes, and each read (≤ 64 KiB) is sent as an
//! [`Output`] chunk; stdin is [`ContainerSpec::stdin`] or `/dev/null`.
//! Backpressure as in the WASM executor: a full channel blocks the
//! container's writes; a dropped receiver discards output.
//!
//! The exit is reported as:
//!
//! * the process's own code, or `128 + signal` if a signal killed it
//!   ([`ExitReason::Exited`]);
//! * [`ExitReason::MemoryLimit`] with [`EXIT_CODE_KILLED`] when the kernel's
//!   OOM killer killed any process of the container (read from the cgroup's
//!   `oom_kill` counter, `memory.oom_control` on v1 or `memory.events` on v2,
//!   not guessed from a `SIGKILL`);
//! * [`ExitReason::WallTimeout`] / [`ExitReason::Cancelled`] with
//!   [`EXIT_CODE_KILLED`] when the wall-clock limit passed or the token was
//!   cancelled: the executor sends `SIGTERM`, waits the stop grace
//!   ([`DEFAULT_STOP_GRACE`], see [`ContainerExecutor::with_stop_grace`]) and
//!   then `SIGKILL`s the container's init (which ends the whole pid
//!   namespace). Like `docker stop`: an init without a `SIGTERM` handler
//!   (e.g. `sleep` as pid 1) ignores it and is killed after the grace.
//!
//! After the exit (and after any error once something was created), the
//! proxies are stopped and the container is deleted: its cgroups, the
//! libcontainer state and the bundle folder. Dropping the `run` future also
//! kills and cleans up (on a background thread).
//!
//! # Published ports
//!
//! Each [`PortMap`] binds a host listener before the container starts (a
//! busy port is a setup error) and reports the bound address
//! ([`ContainerEvent::PortPublished`], useful with `host_port: 0`). With
//! [`ContainerExecutor::with_port_range`] (the agent always sets the
//! lender's range), a host port outside the range is
//! [`ContainerError::PortNotAllowed`] and `host_port: 0` takes a free port
//! inside it. Each
//! accepted connection is paired with a socket created inside the
//! container's network namespace by a short-lived thread that `setns`es into
//! it, connected to `127.0.0.1:<container_port>`, and spliced both ways. A
//! service must therefore listen on loopback or the wildcard address. A UDP
//! port ([`Protocol::Udp`]) is relayed the same way, one flow per client
//! address (a socket in the container's namespace connected to the port),
//! forgotten after a minute without traffic, at most
//! [`MAX_UDP_FLOWS`] per port (the least recently used makes way).
//!
//! # Limits and known gaps
//!
//! * Root only; one executor per state root and per cgroup parent. On
//!   [`ContainerExecutor::new`], leftovers of a previous process in the
//!   state root are force-deleted (their output pipes are gone).
//! * Every creation and `exec` runs libcontainer in a **forked,
//!   single-threaded helper process** (libcontainer clones with raw
//!   `clone3`, which from a multi-threaded process can deadlock on a libc
//!   lock copied while held; see the `helper` module). Its process-wide
//!   effects (non-dumpable, `chdir` around the notify socket) stay in the
//!   helper. The executor makes the process a **child subreaper**, so
//!   container inits outlive their helper as our children; any other
//!   orphaned descendant of the process is re-parented to it too.
//! * A helper that does not answer within 120 s is killed and the creation
//!   fails; clones left by a failed creation (our children still named
//!   `youki:[…]`, not supervised) are killed and reaped.
//! * libcontainer's own log records are dropped: the helper and the
//!   container processes it clones run with tracing switched off (their
//!   records would take the agent's writer lock copied at the fork, and land
//!   in the container's output). Why a creation failed comes back in
//!   [`ContainerError::Create`].
//! * `exec` processes get the container's namespaces, cgroup, capabilities,
//!   `no_new_privileges`, seccomp, user and environment, but inherit the
//!   agent's rlimits (libcontainer does not carry them over).
//! * No user namespaces, AppArmor/SELinux, or `/sys/fs/cgroup` inside the
//!   container; no IPv6 in the proxy path beyond what the host listener
//!   accepts (the container side is always 127.0.0.1); UDP ports are not
//!   published.
//! * CPU is a quota (a share of cores), not a budget: there is no
//!   [`ExitReason::CpuLimit`] for containers.
//!
//! [`Output`]: stratus_runtime::Output
//! [`ExitReason::Exited`]: stratus_runtime::ExitReason::Exited
//! [`ExitReason::MemoryLimit`]: stratus_runtime::ExitReason::MemoryLimit
//! [`ExitReason::WallTimeout`]: stratus_runtime::ExitReason::WallTimeout
//! [`ExitReason::Cancelled`]: stratus_runtime::ExitReason::Cancelled
//! [`ExitReason::CpuLimit`]: stratus_runtime::ExitReason::CpuLimit
//! [`EXIT_CODE_KILLED`]: stratus_runtime::EXIT_CODE_KILLED

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

mod cgroup;
mod executor;
mod helper;
pub mod net;
mod netns;
mod ports;
mod proxy;
pub mod seccomp;
pub mod spec;
mod stdio;
mod udp;
mod user;

pub use executor::{ContainerExecutor, DEFAULT_CGROUP_PARENT, DEFAULT_STOP_GRACE};
pub use net::{Egress, Network, Services};
pub use ports::bind_tcp;
pub use spec::IdMap;
pub use stratus_runtime::{CancellationToken, Exit, ExitReason, Output, EXIT_CODE_KILLED};
pub use udp::MAX_UDP_FLOWS;

/// One container to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Unique among running containers: `[a-z0-9-]`, 1–64 characters,
    /// starting with a letter or digit. Names the cgroup and state folder.
    pub id: String,
    /// The prepared, writable root filesystem.
    pub rootfs: PathBuf,
    /// The command, already resolved (entrypoint + cmd, or an override).
    /// `args[0]` is looked up in the container's `PATH` when it has no `/`.
    pub args: Vec<String>,
    /// Environment (image env + workload env). `PATH`, `HOME` and
    /// `HOSTNAME` get defaults when absent.
    pub env: Vec<(String, String)>,
    /// Working directory (absolute; `""` means `/`).
    pub cwd: String,
    /// The image's `User`: `""` (root), `name`, `uid`, `uid:gid`,
    /// `name:group`, resolved against the rootfs's `/etc/passwd` and
    /// `/etc/group`; an unknown name is [`ContainerError::UnknownUser`].
    pub user: String,
    /// Host name inside the container (`""` means the id).
    pub hostname: String,
    /// Memory limit in bytes, swap included (0: none).
    pub memory_bytes: u64,
    /// CPU quota in thousandths of a core: 1000 = one core (0: none).
    pub cpu_millis: u32,
    /// Most processes/threads at once (0: none).
    pub pids: u32,
    /// Wall-clock limit from the start of the container.
    pub wall_time: Option<Duration>,
    /// Published TCP ports.
    pub ports: Vec<PortMap>,
    /// Host folders (or files) bind-mounted into the container.
    pub volumes: Vec<Volume>,
    /// The container's network: outbound connections under a policy and
    /// the names of its tenant's services ([`net`]). `None`: only `lo`.
    pub network: Option<Network>,
    /// Standard input (`/dev/null` when `None`).
    pub stdin: Option<Vec<u8>>,
    /// Where the container's CPU time and memory peak (from its cgroup) are
    /// added when it ends.
    pub meter: stratus_runtime::Meter,
}

impl ContainerSpec {
    /// A spec with no environment, cwd `/`, user root, hostname = id,
    /// 256 MiB of memory, one core, 1024 pids, no wall-clock limit, ports,
    /// volumes, network or stdin.
    pub fn new(id: impl Into<String>, rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerSpec {
            id: id.into(),
            rootfs: rootfs.into(),
            args,
            env: Vec::new(),
            cwd: String::new(),
            user: String::new(),
            hostname: String::new(),
            memory_bytes: 256 * 1024 * 1024,
            cpu_millis: 1000,
            pids: 1024,
            wall_time: None,
            ports: Vec::new(),
            volumes: Vec::new(),
            network: None,
            stdin: None,
            meter: stratus_runtime::Meter::default(),
        }
    }
}

/// A published port: host `host_ip:host_port` → container
/// `127.0.0.1:container_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMap {
    /// The port the service listens on inside the container.
    pub container_port: u16,
    /// The host port (0: any free port; the bound one is reported).
    pub host_port: u16,
    /// The host address to listen on.
    pub host_ip: IpAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// The protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Connections, spliced.
    #[default]
    Tcp,
    /// Datagrams, relayed per client address.
    Udp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl PortMap {
    /// `container_port` published on `127.0.0.1`, any free host port (TCP).
    pub fn loopback(container_port: u16) -> Self {
        PortMap {
            container_port,
            host_port: 0,
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            protocol: Protocol::Tcp,
        }
    }
}

/// A bind mount of a host path into the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Existing host folder or file.
    pub host_path: PathBuf,
    /// Absolute path inside the container, without `..` (created if missing).
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// What happens to a running container, besides its output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerEvent {
    /// The container's process started (its pid on the host).
    Started {
        /// Host pid of the container's init process.
        pid: u32,
    },
    /// A port is published at `host`.
    PortPublished {
        /// The port inside the container.
        container_port: u16,
        /// The bound host address.
        host: SocketAddr,
        /// TCP or UDP.
        protocol: Protocol,
    },
}

/// Why a container could not be run (as opposed to an [`Exit`], which is the
/// workload's outcome, including hitting a limit).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// This host cannot run containers (not root, no cgroups, …).
    #[error("host cannot run containers: {0}")]
    HostUnsupported(String),
    /// A field of the spec is invalid (the message names it).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// The user name is not in the rootfs's `/etc/passwd`.
    #[error("unknown user {0:?} in the image's /etc/passwd")]
    UnknownUser(String),
    /// The group name is not in the rootfs's `/etc/group`.
    #[error("unknown group {0:?} in the image's /etc/group")]
    UnknownGroup(String),
    /// The rootfs (or a file in it) could not be used.
    #[error("rootfs {}: {reason}", path.display())]
    Rootfs {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A volume cannot be mounted.
    #[error("volume {}: {reason}", path.display())]
    Volume {
        /// The host path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A container with this id is already running here.
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// No running container has this id.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// A published port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Port {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// A published host port is outside the range the lender allows
    /// ([`ContainerExecutor::with_port_range`]).
    #[error("host port {port} is outside the ports this node allows ({first}-{last})")]
    PortNotAllowed {
        /// The port asked for.
        port: u16,
        /// Lowest allowed port.
        first: u16,
        /// Highest allowed port.
        last: u16,
    },
    /// The container's network could not be set up.
    #[error("container network: {0}")]
    Network(String),
    /// libcontainer failed to create or start the container (the message
    /// carries its error chain).
    #[error("cannot create container: {0}")]
    Create(String),
    /// A host IO operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A bug or an unexpected host failure.
    #[error("internal container error: {0}")]
    Internal(String),
}

impl From<ContainerError> for stratus_runtime::RuntimeError {
    /// For callers that hold both backends behind `RuntimeError`: setup
    /// failures of a container have no closer variant than `Internal`; the
    /// message keeps the detail.
    fn from(e: ContainerError) -> Self {
        stratus_runtime::RuntimeError::Internal(e.to_string())
    }
}
