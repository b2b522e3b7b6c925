//! The executor boundary and the sandboxed WASM backend.
//!
//! **Owns** the [`Executor`] boundary and the WASM sandbox with its limits
//! (memory, CPU by epochs, wall clock, preopens). **Does not own** the
//! container backend (`stratus-container`), fetching modules or restart
//! policy (`stratus-agent`).
//!
//! An agent hands a [`TaskSpec`] to an [`Executor`] and gets back an [`Exit`];
//! the guest's stdout and stderr arrive on an mpsc channel *while it runs*
//! ([`Output`]), and a [`CancellationToken`] stops it at any time.
//! [`WasmExecutor`] is the backend that runs untrusted WebAssembly on a
//! lender's machine with [wasmtime](https://wasmtime.dev).
//!
//! ```no_run
//! use std::sync::Arc;
//! use stratus_runtime::{Executor, Output, TaskSpec, WasmExecutor};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), stratus_runtime::RuntimeError> {
//! let executor = WasmExecutor::new()?;
//! let wasm = std::fs::read("examples/wasm/hello.wat").expect("read module");
//! let mut spec = TaskSpec::new("hello", Arc::new(wasm));
//! spec.args = vec!["Stratus".into()];
//! let (tx, mut rx) = tokio::sync::mpsc::channel(64);
//! let printer = tokio::spawn(async move {
//!     while let Some(Output::Stdout(chunk) | Output::Stderr(chunk)) = rx.recv().await {
//!         print!("{}", String::from_utf8_lossy(&chunk));
//!     }
//! });
//! let exit = executor.run(spec, tx, CancellationToken::new()).await?;
//! printer.await.expect("printer");
//! assert_eq!(exit.code, 0);
//! # Ok(()) }
//! ```
//!
//! # The sandbox
//!
//! A guest is a WASI **preview 1** core module (`wasm32-wasip1`, entry point
//! `_start`) or a WASI **preview 2** component (`wasm32-wasip2`, the
//! `wasi:cli/command` world); which one is detected from the bytes. `.wat` text
//! is accepted too and compiled first. A component of the `wasi:http/proxy`
//! world, given a [`TaskSpec::http`] door, serves HTTP instead, a fresh
//! instance per request ([`http`]).
//!
//! What a guest **can** do:
//!
//! * read its arguments (`argv[0]` is the workload name, then
//!   [`TaskSpec::args`]) and the environment variables in [`TaskSpec::env`];
//! * read [`TaskSpec::stdin`] (empty when none);
//! * write stdout and stderr, which are forwarded chunk by chunk to the
//!   executor's output channel (one chunk per guest write, at most 64 KiB);
//! * read files under `/input` (the host folder [`TaskSpec::input_dir`],
//!   read-only: no file can be created, written, renamed or deleted there) and
//!   read, create, write and delete files under `/output`
//!   ([`TaskSpec::output_dir`], read-write). Both are folders the agent
//!   makes per instance under its data directory (it fills `/input` from the
//!   tenant's objects and limits `/output`); a workload spec never names them;
//! * read the wall and monotonic clocks, sleep, and get random bytes.
//!
//! What a guest **cannot** do:
//!
//! * see any other host file: only the two preopens exist, paths are resolved
//!   beneath them with `cap-std` (no `..` escape, absolute paths fail, symlinks
//!   pointing outside are refused);
//! * open any socket or resolve names (TCP, UDP and name lookup are disabled;
//!   preview 1 has no socket creation at all);
//! * see the host's environment, arguments, working directory or stdio;
//! * call any host function outside WASI (a module importing anything else
//!   fails to link: [`RuntimeError::Link`]);
//! * run native code: everything is compiled by Cranelift from validated wasm,
//!   and a wasm fault (out-of-bounds access, `unreachable`, stack overflow)
//!   only stops that guest ([`ExitReason::Trap`]).
//!
//! # Limits and how they are enforced
//!
//! * **Memory** ([`Limits::memory_bytes`]): a [`wasmtime::ResourceLimiter`]
//!   counts the linear memories of the instance (and of all core instances of
//!   a component) together. A `memory.grow` (or an initial memory) that would
//!   go past the limit is **fatal**, not `-1`: the guest stops with
//!   [`ExitReason::MemoryLimit`]. Table elements count against the same
//!   limit (8 bytes each, a host pointer), and a table is capped at 1 Mi
//!   elements.
//! * **CPU** ([`Limits::cpu_time`]): epoch based. A ticker thread advances the
//!   engine's epoch every 10 ms and every store yields to the tokio scheduler
//!   at each tick, so a guest never holds a worker thread for longer than a
//!   tick. The CPU time charged to a guest is the time spent *inside* polls of
//!   its execution future (wasm code and the host calls it makes
//!   synchronously); time it spends waiting (sleeping, blocked on a full
//!   output channel, waiting for blocking filesystem calls) is not charged. If
//!   the OS preempts the worker thread mid-poll, that time is charged too, so
//!   on a loaded machine the budget is slightly conservative. The check runs
//!   at each yield: a guest overshoots its budget by at most one tick.
//! * **Wall clock** ([`Limits::wall_time`]): counted from the moment the
//!   module is compiled (compilation is the host's work, not the guest's) and
//!   enforced at the same 10 ms granularity → [`ExitReason::WallTimeout`].
//! * **Cancellation**: the token is watched during compilation and execution;
//!   a cancelled guest stops within a tick, even in an infinite loop or a long
//!   sleep → [`ExitReason::Cancelled`].
//!
//! Exit codes: the guest's own code for `proc_exit`/`exit` (0 for a normal
//! return from `_start`, 1 for a component whose `run` returns `err`);
//! [`EXIT_CODE_TRAP`] (134, like a native `SIGABRT`) for a trap;
//! [`EXIT_CODE_KILLED`] (137, like `SIGKILL`) when the executor stopped the
//! guest (limits, cancellation).
//!
//! Output backpressure: the channel is bounded; when it is full the guest
//! blocks in its write (charged to wall time, not CPU time). If the receiver
//! is dropped the guest keeps running and its output is discarded.
//!
//! # Deterministic runs
//!
//! A [`TaskSpec`] with [`TaskSpec::determinism`] runs so that the same
//! module and inputs give bit-identical output, exit code and fuel on any
//! node: fixed clocks and seeded randomness, canonical NaNs, fuel as the CPU
//! budget ([`Determinism`]; issue 16's results verified by several lenders).
//!
//! # Executor trait and async
//!
//! [`Executor::run`] is an `async fn` in a trait (return-position
//! `impl Future + Send`), which is not object safe; use [`DynExecutor`]
//! (blanket-implemented for every executor, boxes the future) where a
//! `dyn` executor is needed.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
pub use tokio_util::sync::CancellationToken;

mod determinism;
pub mod http;
mod limits;
mod outbound;
mod stdio;
mod wasm;

pub use determinism::Determinism;
pub use http::{serves_http, HttpDoor};

pub use wasm::{module_hash, WasmExecutor, DEFAULT_CACHE_CAPACITY, EPOCH_TICK};

/// Exit code reported when the guest trapped (128 + `SIGABRT`).
pub const EXIT_CODE_TRAP: i32 = 134;
/// Exit code reported when the executor stopped the guest: a limit was hit or
/// the task was cancelled (128 + `SIGKILL`).
pub const EXIT_CODE_KILLED: i32 = 137;

/// One task to run.
#[derive(Clone)]
pub struct TaskSpec {
    /// The module: `.wasm` bytes (a core module or a component) or `.wat` text.
    pub module: Arc<Vec<u8>>,
    /// Arguments after `argv[0]`.
    pub args: Vec<String>,
    /// The workload name, passed as `argv[0]`.
    pub name: String,
    /// Environment variables, the only ones the guest sees.
    pub env: Vec<(String, String)>,
    /// Standard input (empty when `None`).
    pub stdin: Option<Vec<u8>>,
    /// Host folder preopened read-only as `/input`.
    pub input_dir: Option<PathBuf>,
    /// Host folder preopened read-write as `/output`.
    pub output_dir: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Where the executor adds what the guest uses, as it runs.
    pub meter: Meter,
    /// Run deterministically, with these fixed inputs (results verified by
    /// several lenders, issue 16; see [`determinism`]); `None`: an ordinary
    /// run, with the host's clocks and randomness.
    pub determinism: Option<Determinism>,
    /// Serve HTTP here when the module is a component that serves HTTP
    /// (`wasi:http/incoming-handler`, see [`http`]); ignored otherwise.
    pub http: Option<HttpDoor>,
}

/// What an instance has used so far, updated live by the executor that
/// runs it (the agent reads it for usage reports while it runs). Cheap to
/// clone: clones share the figures, so one meter can follow an instance
/// through its restarts.
#[derive(Clone, Debug, Default)]
pub struct Meter(Arc<MeterFigures>);

#[derive(Debug, Default)]
struct MeterFigures {
    cpu_ns: std::sync::atomic::AtomicU64,
    memory_peak: std::sync::atomic::AtomicU64,
    fuel: std::sync::atomic::AtomicU64,
}

/// Two meters are equal when they are the same meter (clones of one).
impl PartialEq for Meter {
    fn eq(&self, other: &Meter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Meter {}

impl Meter {
    /// CPU time used.
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.0.cpu_ns.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Highest memory in use at once, bytes.
    pub fn memory_peak(&self) -> u64 {
        self.0
            .memory_peak
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds CPU time.
    pub fn add_cpu(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0
            .cpu_ns
            .fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records memory in use now (the peak keeps the highest).
    pub fn see_memory(&self, bytes: u64) {
        self.0
            .memory_peak
            .fetch_max(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Fuel burnt by deterministic runs (the same on every node for the
    /// same module and inputs).
    pub fn fuel(&self) -> u64 {
        self.0.fuel.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds fuel burnt.
    pub fn add_fuel(&self, fuel: u64) {
        self.0
            .fuel
            .fetch_add(fuel, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TaskSpec {
    /// A task with no arguments, environment, stdin or folders and default
    /// [`Limits`].
    pub fn new(name: impl Into<String>, module: Arc<Vec<u8>>) -> Self {
        TaskSpec {
            module,
            args: Vec::new(),
            name: name.into(),
            env: Vec::new(),
            stdin: None,
            input_dir: None,
            output_dir: None,
            limits: Limits::default(),
            meter: Meter::default(),
            determinism: None,
            http: None,
        }
    }
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec")
            .field("module", &format_args!("<{} bytes>", self.module.len()))
            .field("args", &self.args)
            .field("name", &self.name)
            .field("env", &self.env)
            .field(
                "stdin",
                &self.stdin.as_ref().map(|s| format!("<{} bytes>", s.len())),
            )
            .field("input_dir", &self.input_dir)
            .field("output_dir", &self.output_dir)
            .field("limits", &self.limits)
            .field("determinism", &self.determinism)
            .finish()
    }
}

/// Resource limits of one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Greatest total size of the guest's linear memories, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock limit, counted from the end of compilation (`None`: none).
    pub wall_time: Option<Duration>,
    /// CPU budget: time spent executing the guest (`None`: none). Epoch
    /// based, 10 ms granularity; see the crate docs.
    pub cpu_time: Option<Duration>,
}

impl Default for Limits {
    /// 64 MiB of memory, no time limits.
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            wall_time: None,
            cpu_time: None,
        }
    }
}

/// A chunk of the guest's output, sent as it is produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes the guest wrote to stdout.
    Stdout(Vec<u8>),
    /// Bytes the guest wrote to stderr.
    Stderr(Vec<u8>),
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code: the guest's own when it exited, [`EXIT_CODE_TRAP`] for a
    /// trap, [`EXIT_CODE_KILLED`] when the executor stopped it.
    pub code: i32,
    /// Why it ended.
    pub reason: ExitReason,
}

impl Exit {
    /// The guest exited by itself with `code`.
    pub fn exited(code: i32) -> Self {
        Exit {
            code,
            reason: ExitReason::Exited,
        }
    }

    /// The executor stopped the guest for `reason`.
    pub fn killed(reason: ExitReason) -> Self {
        Exit {
            code: EXIT_CODE_KILLED,
            reason,
        }
    }

    /// The guest trapped.
    pub fn trapped(message: impl Into<String>) -> Self {
        Exit {
            code: EXIT_CODE_TRAP,
            reason: ExitReason::Trap(message.into()),
        }
    }

    /// Whether the guest exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.reason == ExitReason::Exited && self.code == 0
    }
}

/// Why a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest returned or called exit.
    Exited,
    /// [`Limits::wall_time`] elapsed.
    WallTimeout,
    /// [`Limits::cpu_time`] was used up.
    CpuLimit,
    /// The guest tried to use more than [`Limits::memory_bytes`].
    MemoryLimit,
    /// The guest trapped (the message names the trap and, when known, where).
    Trap(String),
    /// The cancellation token was cancelled.
    Cancelled,
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Exited => f.write_str("exited"),
            ExitReason::WallTimeout => f.write_str("wall-clock limit reached"),
            ExitReason::CpuLimit => f.write_str("CPU limit reached"),
            ExitReason::MemoryLimit => f.write_str("memory limit reached"),
            ExitReason::Trap(message) => write!(f, "trapped: {message}"),
            ExitReason::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Why a task could not be run at all (as opposed to an [`Exit`] with a
/// failure reason, which is the guest's outcome).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bytes are not a valid WebAssembly module, component or WAT text.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The module imports something the sandbox does not provide.
    #[error("cannot link module: {0}")]
    Link(String),
    /// The module has no entry point (`_start`, or `wasi:cli/run` for a
    /// component).
    #[error("module has no entry point: {0}")]
    NoEntryPoint(String),
    /// A folder to preopen could not be opened.
    #[error("cannot preopen {} as {guest}: {reason}", host.display())]
    Preopen {
        /// The host folder.
        host: PathBuf,
        /// The guest path (`/input` or `/output`).
        guest: &'static str,
        /// Why.
        reason: String,
    },
    /// The wasm engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// A bug or a host resource failure (e.g. a compile thread panicked).
    #[error("internal runtime error: {0}")]
    Internal(String),
}

/// Something that runs tasks.
///
/// `run` returns a `Send` future (return-position `impl Trait` in trait);
/// see [`DynExecutor`] for a `dyn`-compatible form.
pub trait Executor: Send + Sync + 'static {
    /// Runs `spec` to the end, sending its output on `output` as it is
    /// produced, and stops it when `cancel` is cancelled.
    ///
    /// `Err` means the task could not be started (bad module, missing folder);
    /// everything the guest does, including trapping or hitting a limit, is
    /// an `Ok(Exit)`.
    fn run(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Exit, RuntimeError>> + Send;
}

/// The boxed future returned by [`DynExecutor::run_dyn`].
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Exit, RuntimeError>> + Send + 'a>>;

/// The object-safe form of [`Executor`], implemented for every executor:
/// `Arc<dyn DynExecutor>` lets a caller choose a backend at run time.
pub trait DynExecutor: Send + Sync + 'static {
    /// [`Executor::run`], boxed.
    fn run_dyn(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> RunFuture<'_>;
}

impl<E: Executor> DynExecutor for E {
    fn run_dyn(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> RunFuture<'_> {
        Box::pin(self.run(spec, output, cancel))
    }
}
