//! Runs the instances assigned to this node and keeps them running.
//!
//! Modules are fetched chunk by chunk and verified against their address
//! (`module_fetch`). Edge autonomy: the assignments are written to
//! `DATA/agent/assignments.json` and modules to `DATA/agent/modules/`, so after a restart, or while no
//! control replica can be reached, the agent keeps (and restarts) what it was
//! told to run. Reports and output queue up while disconnected and are sent
//! when a connection is back; the control plane reconciles from there. Only a
//! fresh answer from the control plane stops an instance. Each instance is
//! run by its supervisor (`supervise`: prepare, start, forward output,
//! restart or end).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use stratus_container::ContainerError;
use stratus_net::{CallError, Connection};
use stratus_proto::{rpc, Assignment, InstanceReport, LogChunk};
use stratus_runtime::{DynExecutor, Output};

use crate::containers::{container_id, Connect, ContainerHost, Rootfs, DEFAULT_CHUNK_CACHE_BYTES};

#[path = "metering.rs"]
mod metering;
pub use metering::{Sign, USAGE_EVERY};
#[path = "module_fetch.rs"]
mod module_fetch;
#[path = "supervise.rs"]
mod supervise;
#[path = "verified.rs"]
mod verified;
use stratus_state::workloads::{exec_log_id, ExecState};
use stratus_state::{Desired, InstanceState};
use stratus_types::Runtime;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

/// Output kept in memory for sending while disconnected (older is dropped;
/// the complete output stays in the instance's log file).
const MAX_QUEUED_LOG_BYTES: usize = 8 * 1024 * 1024;
/// Default wall-clock limit of a task without one (what its deal's
/// escrow is sized for).
const DEFAULT_TASK_WALL: Duration =
    Duration::from_millis(stratus_state::deals::DEFAULT_TASK_WALL_MS);
/// How long an exec waits for its instance's container to be up.
const EXEC_WAIT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Worker {
    cancel: CancellationToken,
}

/// The agent's workload runner. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    executor: Arc<dyn DynExecutor>,
    workers: Mutex<HashMap<String, Worker>>,
    /// Instances that ended here: never started again, even if a list that
    /// predates their report still names them.
    done: Mutex<HashSet<String>>,
    reports: Mutex<Vec<InstanceReport>>,
    /// Exec progress to report: (instance, number, state).
    exec_reports: Mutex<Vec<(String, u32, ExecState)>>,
    /// Execs started here (instance, number).
    execs: Mutex<HashSet<(String, u32)>>,
    logs: Mutex<(VecDeque<LogChunk>, usize)>,
    outbox: Notify,
    conn: Mutex<Option<Connection>>,
    conn_ready: Notify,
    modules: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// Container images, or why this node cannot run them.
    containers: Result<Arc<ContainerHost>, String>,
    /// The service instances running here, and where the others run.
    services: Arc<crate::services::ServiceTable>,
    /// Where the lender lets workloads connect (containers, and WASM HTTP
    /// components' outbound requests).
    egress: crate::services::LenderEgress,
    /// Host ports the lender allows published ports on (containers' and
    /// HTTP components').
    ports: stratus_types::PortRange,
    cancel: CancellationToken,
    /// What each instance used ([`metering`]).
    meters: Mutex<metering::Meters>,
    /// This node, and how to sign with its key (`None`: no usage reports).
    node: stratus_types::NodeId,
    sign: Option<metering::Sign>,
}

/// What an instance runs.
enum Loaded {
    /// A module, and the network of one that serves HTTP (a component
    /// exporting `wasi:http/incoming-handler`, run as a service).
    Wasm(Arc<Vec<u8>>, Option<Net>),
    /// A container's host, root, and network as deployed.
    Image(Arc<ContainerHost>, Rootfs, Net),
}

/// An instance's network as deployed, with what its spec says beyond the
/// spec's layout (published UDP ports, an HTTP component's ports).
pub(crate) struct Net {
    pub network: stratus_spec::Networking,
    pub extensions: stratus_spec::Extensions,
}

impl Runner {
    /// Creates the runner and resumes the assignments saved on disk.
    /// `containers: false` turns container images off on this node.
    /// Published container ports stay inside `ports`; containers run in
    /// user namespaces whose root is host uid `userns` (`None`: none) and
    /// connect out only where `egress` lets them.
    pub fn start(
        data_dir: &Path,
        executor: Arc<dyn DynExecutor>,
        containers: bool,
        ports: stratus_types::PortRange,
        userns: Option<u32>,
        egress: crate::services::LenderEgress,
        signer: Option<(stratus_types::NodeId, metering::Sign)>,
    ) -> Runner {
        let dir = data_dir.join("agent");
        // What tenants entrust to the node lives here: no other user reads it.
        if let Err(e) = crate::private::create_dir(&dir) {
            tracing::warn!(error = %e, "cannot make the agent's folder private");
        }
        let services = Arc::new(crate::services::ServiceTable::default());
        let lender_egress = egress.clone();
        let containers = if containers {
            ContainerHost::new(
                &dir.join("oci"),
                DEFAULT_CHUNK_CACHE_BYTES,
                ports,
                userns,
                egress,
                services.clone(),
            )
            .map(Arc::new)
            .inspect_err(|e| tracing::warn!("this node cannot run container images: {e}"))
            .and_then(|host| {
                // Containers' mapped root passes through to their roots.
                if let Some(ids) = host.ids() {
                    for d in [data_dir, dir.as_path()] {
                        crate::private::let_through(d, ids.first).map_err(|e| {
                            format!("letting containers through {}: {e}", d.display())
                        })?;
                    }
                }
                Ok(host)
            })
        } else {
            Err("container images are turned off on this node (--no-containers)".into())
        };
        let r = Runner {
            inner: Arc::new(Inner {
                dir,
                executor,
                workers: Mutex::new(HashMap::new()),
                done: Mutex::new(HashSet::new()),
                reports: Mutex::new(Vec::new()),
                exec_reports: Mutex::new(Vec::new()),
                execs: Mutex::new(HashSet::new()),
                logs: Mutex::new((VecDeque::new(), 0)),
                outbox: Notify::new(),
                conn: Mutex::new(None),
                conn_ready: Notify::new(),
                modules: Mutex::new(HashMap::new()),
                containers,
                services,
                egress: lender_egress,
                ports,
                cancel: CancellationToken::new(),
                meters: Mutex::new(metering::Meters::default()),
                node: signer
                    .as_ref()
                    .map_or(stratus_types::NodeId([0; 32]), |s| s.0),
                sign: signer.map(|s| s.1),
            }),
        };
        let saved = r.load_saved();
        if !saved.is_empty() {
            tracing::info!(count = saved.len(), "resuming saved assignments");
            r.apply(saved, false);
        }
        r.resume_reveals();
        r
    }

    fn saved_path(&self) -> PathBuf {
        self.inner.dir.join("assignments.json")
    }

    fn load_saved(&self) -> Vec<Assignment> {
        std::fs::read(self.saved_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, list: &[Assignment]) {
        // Assignments carry the workloads' environment: 0600, durable.
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec(list).map_err(std::io::Error::other)?;
            crate::private::write_file(&self.saved_path(), &bytes)
        };
        if let Err(e) = write() {
            tracing::warn!(error = %e, "cannot save assignments (edge autonomy after a restart is lost)");
        }
    }

    /// The service instances running here, and where the others run.
    pub fn services(&self) -> &Arc<crate::services::ServiceTable> {
        &self.inner.services
    }

    /// The container host, when this node runs container images.
    pub fn container_host(&self) -> Option<Arc<ContainerHost>> {
        self.inner.containers.as_ref().ok().cloned()
    }

    /// The payloads this node can run.
    pub fn runtimes(&self) -> Vec<Runtime> {
        let mut r = vec![Runtime::Wasm];
        if self.inner.containers.is_ok() {
            r.push(Runtime::Oci);
        }
        r
    }

    /// Ids of instances running now.
    pub fn running(&self) -> Vec<String> {
        self.inner
            .workers
            .lock()
            .map(|w| w.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Sets the connection used to fetch modules and send reports (`None`
    /// while disconnected).
    pub fn set_connection(&self, conn: Option<Connection>) {
        if let Ok(mut c) = self.inner.conn.lock() {
            *c = conn;
        }
        self.inner.conn_ready.notify_waiters();
        self.inner.outbox.notify_one();
    }

    fn connection(&self) -> Option<Connection> {
        self.inner
            .conn
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .filter(|c| !c.is_closed())
    }

    /// Applies a fresh list from the control plane (`authoritative`) or the
    /// saved one: starts what is new, stops what is no longer wanted.
    pub fn apply(&self, list: Vec<Assignment>, authoritative: bool) {
        let wanted: BTreeMap<String, Assignment> = list
            .iter()
            .filter(|a| a.instance.desired == Desired::Run)
            .map(|a| (a.instance.id.clone(), a.clone()))
            .collect();
        if authoritative {
            self.save(&wanted.values().cloned().collect::<Vec<_>>());
        }
        let done: HashSet<String> = match self.inner.done.lock() {
            Ok(mut d) => {
                if authoritative {
                    d.retain(|id| list.iter().any(|a| a.instance.id == *id));
                }
                d.clone()
            }
            Err(_) => HashSet::new(),
        };
        if authoritative {
            self.start_execs(&list);
        }
        let Ok(mut workers) = self.inner.workers.lock() else {
            return;
        };
        if authoritative {
            workers.retain(|id, w| {
                let keep = wanted.contains_key(id);
                if !keep {
                    w.cancel.cancel();
                }
                keep
            });
        }
        for (id, a) in wanted {
            if workers.contains_key(&id) || done.contains(&id) || self.inner.cancel.is_cancelled() {
                continue;
            }
            // Pending, or running per the control plane but not here (we restarted).
            let cancel = self.inner.cancel.child_token();
            workers.insert(
                id.clone(),
                Worker {
                    cancel: cancel.clone(),
                },
            );
            let me = self.clone();
            tokio::spawn(async move {
                me.supervise(a, cancel).await;
                if let Ok(mut d) = me.inner.done.lock() {
                    d.insert(id.clone());
                }
                if let Ok(mut w) = me.inner.workers.lock() {
                    w.remove(&id);
                }
            });
        }
    }

    /// Starts the execs the control plane asked for in running container
    /// instances of this node.
    fn start_execs(&self, list: &[Assignment]) {
        let Ok(host) = &self.inner.containers else {
            return;
        };
        for a in list {
            for e in &a.instance.execs {
                if e.state != ExecState::Pending {
                    continue;
                }
                let fresh = self
                    .inner
                    .execs
                    .lock()
                    .map(|mut s| s.insert((a.instance.id.clone(), e.n)))
                    .unwrap_or(false);
                if !fresh {
                    continue;
                }
                let me = self.clone();
                let host = host.clone();
                let (id, n, args) = (a.instance.id.clone(), e.n, e.args.clone());
                let env: Vec<(String, String)> = a
                    .spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let cancel = self.inner.cancel.child_token();
                tokio::spawn(async move {
                    me.report_exec(&id, n, ExecState::Running);
                    let (tx, mut rx) = mpsc::channel::<Output>(256);
                    let cid = container_id(&id);
                    // The instance is reported running before its container
                    // exists: an exec that comes early waits for it.
                    let run = tokio::spawn(async move {
                        let deadline = tokio::time::Instant::now() + EXEC_WAIT;
                        loop {
                            let r = host
                                .executor()
                                .exec(&cid, args.clone(), env.clone(), tx.clone(), cancel.clone())
                                .await;
                            match r {
                                Err(ContainerError::NotRunning(_))
                                    if tokio::time::Instant::now() < deadline
                                        && !cancel.is_cancelled() =>
                                {
                                    tokio::time::sleep(Duration::from_millis(100)).await
                                }
                                r => return r,
                            }
                        }
                    });
                    me.forward_output(&mut rx, &exec_log_id(&id, n), 0, None, None)
                        .await;
                    let state = match run.await {
                        Ok(Ok(exit)) => ExecState::Exited { code: exit.code },
                        Ok(Err(e)) => ExecState::Failed {
                            reason: e.to_string(),
                        },
                        Err(e) => ExecState::Failed {
                            reason: format!("exec crashed: {e}"),
                        },
                    };
                    me.report_exec(&id, n, state);
                });
            }
        }
    }

    /// Sends what a run writes to the log stream `log_id` (and to the
    /// local log file, if any) until the run ends; returns the next offset.
    async fn forward_output(
        &self,
        rx: &mut mpsc::Receiver<Output>,
        log_id: &str,
        mut offset: u64,
        mut log_file: Option<&mut std::fs::File>,
        mut hash: Option<&mut blake3::Hasher>,
    ) -> u64 {
        while let Some(out) = rx.recv().await {
            let (stderr, data) = match out {
                Output::Stdout(d) => (false, d),
                Output::Stderr(d) => (true, d),
            };
            if let Some(h) = hash.as_mut() {
                h.update(&data);
            }
            if let Some(f) = log_file.as_mut() {
                use std::io::Write;
                let _ = f.write_all(&data);
            }
            let len = data.len() as u64;
            if let Some(l) = stratus_types::LogStream::parse(log_id) {
                self.served(l.instance, len);
            }
            self.push_log(LogChunk {
                instance: log_id.to_string(),
                offset,
                stderr,
                data,
            });
            offset += len;
        }
        offset
    }

    fn report_exec(&self, id: &str, n: u32, state: ExecState) {
        if let Ok(mut r) = self.inner.exec_reports.lock() {
            r.push((id.to_string(), n, state));
        }
        self.inner.outbox.notify_one();
    }

    /// Stops every instance (agent shutdown; they are resumed at next
    /// start) and waits, at most `wait`, until they have stopped: a
    /// container left running when the agent's process exits would run on
    /// the lender's machine with nobody supervising it.
    pub async fn stop_all(&self, wait: std::time::Duration) {
        self.inner.cancel.cancel();
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            let running = self.inner.workers.lock().map(|w| w.len()).unwrap_or(0);
            if running == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::warn!("instances still stopping at shutdown");
    }

    fn report(
        &self,
        id: &str,
        state: InstanceState,
        restarts: u32,
        exit_code: Option<i32>,
        kind: &str,
        message: String,
    ) {
        tracing::info!(instance = %id, %kind, "{message}");
        if state.is_terminal() {
            self.usage_ended(id);
        }
        if let Ok(mut r) = self.inner.reports.lock() {
            r.push(InstanceReport {
                id: id.into(),
                state,
                restarts,
                exit_code,
                kind: kind.into(),
                message,
                time_ms: now_ms(),
            });
        }
        self.inner.outbox.notify_one();
    }

    fn push_log(&self, chunk: LogChunk) {
        if let Ok(mut q) = self.inner.logs.lock() {
            q.1 += chunk.data.len();
            q.0.push_back(chunk);
            while q.1 > MAX_QUEUED_LOG_BYTES {
                match q.0.pop_front() {
                    Some(c) => q.1 -= c.data.len(),
                    None => break,
                }
            }
        }
        self.inner.outbox.notify_one();
    }

    /// Sends queued reports and output whenever there is something and a
    /// connection; runs until the runner stops.
    pub async fn flush_loop(self) {
        loop {
            tokio::select! {
                _ = self.inner.cancel.cancelled() => return,
                _ = self.inner.outbox.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            // Coalesce bursts of output.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let Some(conn) = self.connection() else {
                continue;
            };
            // Exec ends are taken before output, so an exec's output
            // always reaches the replica before its end does.
            let execs: Vec<(String, u32, ExecState)> = self
                .inner
                .exec_reports
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            let reports: Vec<InstanceReport> = self
                .inner
                .reports
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            let logs: Vec<LogChunk> = self
                .inner
                .logs
                .lock()
                .map(|mut q| {
                    q.1 = 0;
                    q.0.drain(..).collect()
                })
                .unwrap_or_default();
            if !logs.is_empty() {
                if let Err(CallError::Net(e)) =
                    conn.rpc(rpc::PushLogs(logs), Duration::from_secs(10)).await
                {
                    tracing::debug!(error = %e, "sending output failed; it stays in the local log file");
                }
            }
            for (i, (instance, n, state)) in execs.iter().enumerate() {
                let req = rpc::ReportExec {
                    instance: instance.clone(),
                    n: *n,
                    state: state.clone(),
                };
                match conn.rpc(req, Duration::from_secs(10)).await {
                    // Delivered (a refusal or another answer is final too).
                    Ok(()) | Err(CallError::Rpc(_)) => {}
                    Err(CallError::Net(e)) => {
                        tracing::debug!(error = %e, "exec reports not delivered; keeping them");
                        if let Ok(mut r) = self.inner.exec_reports.lock() {
                            let newer = std::mem::take(&mut *r);
                            *r = execs[i..].to_vec();
                            r.extend(newer);
                        }
                        break;
                    }
                }
            }
            let usage = self.due_usage();
            if !reports.is_empty() {
                match conn
                    .rpc(rpc::Report(reports.clone()), Duration::from_secs(10))
                    .await
                {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "reports not delivered; keeping them");
                        if let Ok(mut r) = self.inner.reports.lock() {
                            let newer = std::mem::take(&mut *r);
                            *r = reports;
                            r.extend(newer);
                        }
                    }
                }
            }
            if !usage.is_empty() {
                match conn
                    .rpc(rpc::ReportUsage(usage.clone()), Duration::from_secs(10))
                    .await
                {
                    // Taken, or refused for good (the answer is final).
                    Ok(()) | Err(CallError::Rpc(_)) => self.usage_sent(&usage),
                    Err(CallError::Net(e)) => {
                        tracing::debug!(error = %e, "usage reports not delivered; sent again later");
                    }
                }
            }
        }
    }

    /// The current connection, for code that outlives this call.
    fn connector(&self) -> Connect {
        let weak = Arc::downgrade(&self.inner);
        Arc::new(move || {
            weak.upgrade()
                .and_then(|inner| Runner { inner }.connection())
        })
    }
}
