//! The wasmtime backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::limits::{is_limit_error, CpuMetered, GuestLimiter};
use crate::stdio::{ChannelOutput, StreamKind};
use crate::{Executor, Exit, ExitReason, Output, RuntimeError, TaskSpec};

/// How often the engine's epoch advances: the granularity of the CPU limit,
/// the wall-clock limit and cancellation, and the longest a guest runs
/// without yielding to the tokio scheduler.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How many compiled modules [`WasmExecutor::new`] keeps.
pub const DEFAULT_CACHE_CAPACITY: usize = 64;

/// The content address of module bytes: `blake3:<64 hex digits>`, the key of
/// the compiled-module cache (and the form a workload spec names a module by).
pub fn module_hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// A compiled guest.
#[derive(Clone)]
enum Compiled {
    /// A WASI preview 1 core module.
    Module(Module),
    /// A WASI preview 2 component.
    Component(Component),
}

struct CacheEntry {
    compiled: Compiled,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, CacheEntry>,
    clock: u64,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Compiled> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|entry| {
            entry.last_used = clock;
            entry.compiled.clone()
        })
    }

    fn insert(&mut self, key: String, compiled: Compiled, capacity: usize) {
        self.clock += 1;
        while self.entries.len() >= capacity.max(1) && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(oldest) => self.entries.remove(&oldest),
                None => break,
            };
        }
        self.entries.insert(
            key,
            CacheEntry {
                compiled,
                last_used: self.clock,
            },
        );
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<Self, RuntimeError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("stratus-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Store state of a preview 1 guest.
struct P1State {
    wasi: WasiP1Ctx,
    limiter: GuestLimiter,
}

/// Store state of a preview 2 guest.
struct P2State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One wasmtime [`Engine`] (with its epoch ticker thread, stopped on drop)
/// and its WASI linkers.
struct Flavor {
    /// The deterministic flavor ([`crate::determinism`]).
    deterministic: bool,
    /// The pooled flavor (HTTP components).
    pooled: bool,
    engine: Engine,
    p1_linker: Linker<P1State>,
    p2_linker: wasmtime::component::Linker<P2State>,
    _ticker: EpochTicker,
}

/// Instances of HTTP components the pooled engine holds at once (every
/// request is one, for as long as it runs).
const POOLED_COMPONENT_INSTANCES: u32 = 512;
/// Bytes of each pooled memory slot reset in place between instances.
const POOLED_KEEP_RESIDENT: usize = 2 << 20;

impl Flavor {
    /// An engine: `deterministic` ([`crate::determinism`]), or `pooled`
    /// (the pooling instance allocator: instances made in a few µs from
    /// preallocated slots, for HTTP components' one instance per request).
    fn new(deterministic: bool, pooled: bool) -> Result<Flavor, RuntimeError> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        if deterministic {
            crate::determinism::configure_engine(&mut config);
        }
        if pooled {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(POOLED_COMPONENT_INSTANCES)
                .total_core_instances(POOLED_COMPONENT_INSTANCES * 8)
                .total_memories(POOLED_COMPONENT_INSTANCES * 2)
                .total_tables(POOLED_COMPONENT_INSTANCES * 4)
                .total_stacks(POOLED_COMPONENT_INSTANCES)
                // Reset a slot's first pages with memset instead of giving
                // them back to the kernel: madvise flushes the TLB of every
                // core (an IPI each, costly in a VM), once per request.
                .linear_memory_keep_resident(POOLED_KEEP_RESIDENT)
                .table_keep_resident(POOLED_KEEP_RESIDENT / 16)
                .decommit_batch_size(64);
            // Data segments copied in, not mapped copy-on-write: a write
            // to a mapped page faults and flushes the TLB too.
            config
                .memory_init_cow(false)
                .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut p1_linker = Linker::new(&engine);
        p1::add_to_linker_async(&mut p1_linker, |state: &mut P1State| &mut state.wasi)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut p2_linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut p2_linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Flavor {
            deterministic,
            pooled,
            engine,
            p1_linker,
            p2_linker,
            _ticker: ticker,
        })
    }
}

/// Runs WASI guests with wasmtime; see the crate docs for the sandbox.
///
/// Holds two flavors of wasmtime engine — the ordinary one and, made at
/// the first deterministic run, the deterministic one
/// ([`crate::determinism`]: NaN canonicalization, fuel) — with their WASI
/// linkers, and an in-memory LRU cache of compiled modules keyed by
/// [`module_hash`] (and flavor). Share it (`Arc`) between tasks: every run
/// gets its own store.
pub struct WasmExecutor {
    plain: Flavor,
    deterministic: std::sync::OnceLock<Flavor>,
    /// The pooled engine of HTTP components, made at the first one.
    pooled: std::sync::OnceLock<Flavor>,
    cache: Mutex<Cache>,
    cache_capacity: usize,
}

impl WasmExecutor {
    /// An executor with a cache of [`DEFAULT_CACHE_CAPACITY`] modules.
    pub fn new() -> Result<Self, RuntimeError> {
        Self::with_cache_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// An executor keeping at most `capacity` compiled modules (least recently
    /// used are evicted first; at least one is kept).
    pub fn with_cache_capacity(capacity: usize) -> Result<Self, RuntimeError> {
        Ok(WasmExecutor {
            plain: Flavor::new(false, false)?,
            deterministic: std::sync::OnceLock::new(),
            pooled: std::sync::OnceLock::new(),
            cache: Mutex::new(Cache::default()),
            cache_capacity: capacity.max(1),
        })
    }

    /// How many compiled modules are cached.
    pub fn cache_len(&self) -> usize {
        self.lock_cache().entries.len()
    }

    /// Whether the module with this [`module_hash`] is compiled and cached.
    pub fn is_cached(&self, hash: &str) -> bool {
        self.lock_cache().entries.contains_key(hash)
    }

    /// Validates and compiles `module` (WASM or WAT) into the cache without
    /// running it; returns its [`module_hash`].
    pub async fn prepare(&self, module: &Arc<Vec<u8>>) -> Result<String, RuntimeError> {
        let hash = module_hash(module);
        self.compiled(&self.plain, &hash, module).await?;
        Ok(hash)
    }

    fn flavor(&self, deterministic: bool) -> Result<&Flavor, RuntimeError> {
        if !deterministic {
            return Ok(&self.plain);
        }
        made(&self.deterministic, || Flavor::new(true, false))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The compiled form of `module`, from the cache or compiled on a blocking
    /// thread (compiling is CPU-heavy and must not stall a tokio worker).
    async fn compiled(
        &self,
        flavor: &Flavor,
        hash: &str,
        module: &Arc<Vec<u8>>,
    ) -> Result<Compiled, RuntimeError> {
        // A module compiled by one engine runs only in that engine.
        let key = match (flavor.deterministic, flavor.pooled) {
            (true, _) => format!("deterministic:{hash}"),
            (false, true) => format!("pooled:{hash}"),
            (false, false) => hash.to_string(),
        };
        if let Some(compiled) = self.lock_cache().get(&key) {
            tracing::debug!(%hash, "compiled module cache hit");
            return Ok(compiled);
        }
        let engine = flavor.engine.clone();
        let bytes = module.clone();
        let compiled = tokio::task::spawn_blocking(move || compile(&engine, &bytes))
            .await
            .map_err(|e| RuntimeError::Internal(format!("compile thread failed: {e}")))??;
        tracing::debug!(%hash, "compiled module");
        self.lock_cache()
            .insert(key, compiled.clone(), self.cache_capacity);
        Ok(compiled)
    }

    async fn run_task(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> Result<Exit, RuntimeError> {
        let hash = module_hash(&spec.module);
        // A component serving HTTP, given a door, is served from the pooled
        // engine.
        let serve_http = spec.http.is_some() && crate::http::serves_http(&spec.module);
        let flavor = if serve_http {
            made(&self.pooled, || Flavor::new(false, true))?
        } else {
            self.flavor(spec.determinism.is_some())?
        };
        let compiled = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ok(Exit::killed(ExitReason::Cancelled)),
            compiled = self.compiled(flavor, &hash, &spec.module) => compiled?,
        };

        if let (true, Compiled::Component(c), Some(door)) = (serve_http, &compiled, &spec.http) {
            let (c, door) = (c.clone(), door.clone());
            return crate::http::serve(&flavor.engine, c, spec, door, output, cancel).await;
        }
        let mut wasi = wasi_builder(&spec, &output)?;
        if let Some(d) = &spec.determinism {
            crate::determinism::configure_wasi(&mut wasi, d);
        }
        let run = Run {
            flavor,
            wasi,
            limiter: GuestLimiter::new(spec.limits.memory_bytes, spec.meter.clone()),
            fuel: spec.determinism.as_ref().map(|d| d.fuel),
            meter: spec.meter.clone(),
        };
        let execution = async {
            match compiled {
                Compiled::Module(module) => run.module(module).await,
                Compiled::Component(component) => run.component(component).await,
            }
        };
        // A deterministic run's CPU budget is its fuel: time differs from
        // node to node, the instruction where fuel runs out does not.
        let cpu_limit = match spec.determinism {
            Some(_) => None,
            None => spec.limits.cpu_time,
        };
        let execution = CpuMetered::new(execution, cpu_limit, spec.meter.clone());
        let wall = async {
            match spec.limits.wall_time {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let exit = tokio::select! {
            biased;
            () = cancel.cancelled() => Exit::killed(ExitReason::Cancelled),
            () = wall => Exit::killed(ExitReason::WallTimeout),
            exit = execution => exit?,
        };
        tracing::debug!(name = %spec.name, %hash, code = exit.code, reason = %exit.reason, "task ended");
        Ok(exit)
    }
}

/// The engine in `cell`, made by `make` the first time (two first runs at
/// once may both make one; the loser is dropped).
fn made(
    cell: &std::sync::OnceLock<Flavor>,
    make: impl FnOnce() -> Result<Flavor, RuntimeError>,
) -> Result<&Flavor, RuntimeError> {
    if let Some(f) = cell.get() {
        return Ok(f);
    }
    let _ = cell.set(make()?);
    cell.get()
        .ok_or_else(|| RuntimeError::Internal("an engine vanished".into()))
}

/// One run's store inputs.
struct Run<'a> {
    flavor: &'a Flavor,
    wasi: WasiCtxBuilder,
    limiter: GuestLimiter,
    /// Fuel of a deterministic run (`None`: the engine counts none).
    fuel: Option<u64>,
    meter: crate::Meter,
}

/// The engine side of a run: where its store lives and what fuel it gets.
struct Budget<'a> {
    flavor: &'a Flavor,
    fuel: Option<u64>,
    meter: crate::Meter,
}

impl<'a> Run<'a> {
    fn parts(self) -> (Budget<'a>, WasiCtxBuilder, GuestLimiter) {
        let budget = Budget {
            flavor: self.flavor,
            fuel: self.fuel,
            meter: self.meter,
        };
        (budget, self.wasi, self.limiter)
    }

    async fn module(self, module: Module) -> Result<Exit, RuntimeError> {
        let (b, mut wasi, limiter) = self.parts();
        let state = P1State {
            wasi: wasi.build_p1(),
            limiter,
        };
        let mut store = b.store(state)?;
        store.limiter(|state| &mut state.limiter);
        let instance = match b
            .flavor
            .p1_linker
            .instantiate_async(&mut store, &module)
            .await
        {
            Ok(instance) => instance,
            Err(error) => {
                b.meter_fuel(&store);
                return instantiate_failure(error, store.data().limiter.exceeded);
            }
        };
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| RuntimeError::NoEntryPoint(format!("no `_start` function: {e:#}")))?;
        let result = start.call_async(&mut store, ()).await;
        b.meter_fuel(&store);
        Ok(guest_outcome(
            result.map(|()| 0),
            store.data().limiter.exceeded,
        ))
    }

    async fn component(self, component: Component) -> Result<Exit, RuntimeError> {
        let (b, mut wasi, limiter) = self.parts();
        let state = P2State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter,
        };
        let mut store = b.store(state)?;
        store.limiter(|state| &mut state.limiter);
        let command =
            match Command::instantiate_async(&mut store, &component, &b.flavor.p2_linker).await {
                Ok(command) => command,
                Err(error) => {
                    b.meter_fuel(&store);
                    return instantiate_failure(error, store.data().limiter.exceeded);
                }
            };
        let result = command.wasi_cli_run().call_run(&mut store).await;
        b.meter_fuel(&store);
        Ok(guest_outcome(
            result.map(|ran| if ran.is_ok() { 0 } else { 1 }),
            store.data().limiter.exceeded,
        ))
    }
}

impl Budget<'_> {
    /// A store of `state`, yielding at every epoch tick, with the run's fuel.
    fn store<T>(&self, state: T) -> Result<Store<T>, RuntimeError> {
        let mut store = Store::new(&self.flavor.engine, state);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        }
        Ok(store)
    }

    /// Adds the fuel `store` burnt to the meter.
    fn meter_fuel<T>(&self, store: &Store<T>) {
        if let (Some(fuel), Ok(left)) = (self.fuel, store.get_fuel()) {
            self.meter.add_fuel(fuel.saturating_sub(left));
        }
    }
}

impl Executor for WasmExecutor {
    fn run(
        &self,
        spec: TaskSpec,
        output: mpsc::Sender<Output>,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = Result<Exit, RuntimeError>> + Send {
        self.run_task(spec, output, cancel)
    }
}

/// Compiles WASM or WAT bytes, detecting a component from a core module.
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Compiled, RuntimeError> {
    let binary = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        let text = std::str::from_utf8(bytes).map_err(|_| {
            RuntimeError::InvalidModule(
                "neither a WebAssembly binary (no `\\0asm` magic number) nor WAT text (not UTF-8)"
                    .into(),
            )
        })?;
        let binary = wat::parse_str(text)
            .map_err(|e| RuntimeError::InvalidModule(format!("invalid WAT text: {e}")))?;
        std::borrow::Cow::Owned(binary)
    };
    if wasmparser::Parser::is_component(&binary) {
        Component::from_binary(engine, &binary)
            .map(Compiled::Component)
            .map_err(|e| RuntimeError::InvalidModule(format!("invalid component: {e:#}")))
    } else {
        Module::from_binary(engine, &binary)
            .map(Compiled::Module)
            .map_err(|e| RuntimeError::InvalidModule(format!("invalid module: {e:#}")))
    }
}

/// The WASI context of a task: its arguments, environment, stdio and the two
/// preopens, and nothing else.
pub(crate) fn wasi_builder(
    spec: &TaskSpec,
    output: &mpsc::Sender<Output>,
) -> Result<WasiCtxBuilder, RuntimeError> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(&spec.name)
        .args(&spec.args)
        .envs(&spec.env)
        .stdout(ChannelOutput::new(output.clone(), StreamKind::Stdout))
        .stderr(ChannelOutput::new(output.clone(), StreamKind::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    if let Some(stdin) = &spec.stdin {
        wasi.stdin(MemoryInputPipe::new(stdin.clone()));
    }
    let preopens = [
        (&spec.input_dir, "/input", FsPerms::ReadOnly),
        (&spec.output_dir, "/output", FsPerms::ReadWrite),
    ];
    for (host, guest, perms) in preopens {
        if let Some(host) = host {
            wasi.preopened_dir(host, guest, perms)
                .map_err(|e| RuntimeError::Preopen {
                    host: host.clone(),
                    guest,
                    reason: format!("{e:#}"),
                })?;
        }
    }
    Ok(wasi)
}

/// Classifies an instantiation failure: a start function that trapped or
/// hit the memory limit is the guest's outcome; anything else (an unknown
/// import) means the module cannot run here.
fn instantiate_failure(error: wasmtime::Error, limit_hit: bool) -> Result<Exit, RuntimeError> {
    if limit_hit || is_limit_error(&error) {
        return Ok(Exit::killed(ExitReason::MemoryLimit));
    }
    if error.is::<wasmtime::Trap>() || error.is::<I32Exit>() {
        return Ok(guest_outcome(Err(error), false));
    }
    Err(RuntimeError::Link(format!("{error:#}")))
}

/// Classifies the end of a guest call.
fn guest_outcome(result: wasmtime::Result<i32>, limit_hit: bool) -> Exit {
    match result {
        Ok(code) => Exit::exited(code),
        Err(error) => {
            if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
                Exit::exited(*code)
            } else if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
                // A deterministic run's CPU budget, spent.
                Exit::killed(ExitReason::CpuLimit)
            } else if limit_hit || is_limit_error(&error) {
                Exit::killed(ExitReason::MemoryLimit)
            } else {
                Exit::trapped(trap_message(&error))
            }
        }
    }
}

/// A one-paragraph description of a trap: what happened, then the wasm
/// backtrace when there is one.
fn trap_message(error: &wasmtime::Error) -> String {
    let mut message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
        let backtrace = backtrace.to_string();
        let backtrace = backtrace
            .strip_prefix("error while executing at ")
            .unwrap_or(&backtrace)
            .trim_end();
        if !backtrace.is_empty() {
            message.push('\n');
            message.push_str(backtrace);
        }
    }
    message
}
