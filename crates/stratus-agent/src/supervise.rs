//! Supervising one instance: prepare what it runs (module or image root,
//! `/input`, its local log file), start it (a WASM task or a container with
//! its volumes), forward its output, and decide after each exit: report,
//! store `/output`, stop, or restart with backoff (restarts are the agent's:
//! the control plane only replaces instances that are lost).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stratus_container::{ContainerEvent, Protocol};
use stratus_proto::{rpc, Assignment};
use stratus_runtime::{Exit, ExitReason, Limits, Output, TaskSpec};
use stratus_spec::WorkloadKind;
use stratus_state::InstanceState;
use stratus_types::{ImageRef, Payload};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Loaded, Net, Runner, DEFAULT_TASK_WALL};
use crate::containers::{ContainerHost, Rootfs};
use crate::taskio;

/// An instance ready to start: what it runs, its folders and its log file.
struct Prepared {
    payload: Loaded,
    folders: taskio::Folders,
    /// What was fetched into `/input`, for the start event.
    fetched: String,
    log_file: Option<File>,
    /// Bytes of output so far (the log file's length).
    offset: u64,
    /// A replica of a verified run: its deterministic environment.
    determinism: Option<stratus_runtime::Determinism>,
    /// A replica of a verified run: BLAKE3 of its last run's output.
    output_hash: Option<[u8; 32]>,
}

/// One start of an instance.
struct Attempt<'a> {
    a: &'a Assignment,
    restarts: u32,
    wall: Option<Duration>,
    /// The start event: `started` or `restarted`, and its message.
    kind: &'static str,
    msg: String,
}

/// What to do after an exit.
enum Next {
    /// Start it again after the delay.
    Restart,
    /// It ended (reported).
    Done,
}

impl Runner {
    /// Runs one instance according to its kind until it ends or is cancelled.
    pub(super) async fn supervise(&self, a: Assignment, cancel: CancellationToken) {
        let id = a.instance.id.clone();
        let spec = &a.spec;
        let inst_dir = self.inner.dir.join("instances").join(&id);
        if self.committed_before(&a) {
            return;
        }
        let Some(mut p) = self.prepare(&a, &inst_dir, &cancel).await else {
            return;
        };
        let mut restarts = a.instance.restarts;
        let mut delay = Duration::from_millis(spec.restart.delay_ms);
        let wall = spec
            .resources
            .wall_time_secs
            .map(Duration::from_secs)
            .or((spec.kind == WorkloadKind::Task).then_some(DEFAULT_TASK_WALL));
        loop {
            let (kind, msg) = if restarts == a.instance.restarts {
                ("started", "started")
            } else {
                ("restarted", "restarted after exiting")
            };
            let attempt = Attempt {
                a: &a,
                restarts,
                wall,
                kind,
                msg: format!("{msg} (restarts: {restarts}{})", p.fetched),
            };
            self.run_started(&id);
            let exit = self.run_once(&attempt, &mut p, &inst_dir, &cancel).await;
            self.run_ended(&id);
            let Some(exit) = exit else {
                return;
            };
            match self.after_exit(&attempt, &p, exit, delay, &cancel).await {
                Next::Done => return,
                Next::Restart => {
                    restarts += 1;
                    delay = (delay * 2).min(Duration::from_millis(spec.restart.max_delay_ms));
                }
            }
        }
    }

    /// Fails the instance with `why` (exit code -1).
    fn fail(&self, id: &str, restarts: u32, why: String) {
        let state = InstanceState::Failed {
            code: -1,
            reason: why.clone(),
        };
        self.report(id, state, restarts, None, "failed", why);
    }

    /// Reports that `id` was stopped before it started.
    fn stopped_before_start(&self, id: &str) {
        let why = "stopped before it started";
        self.report(id, InstanceState::Stopped, 0, None, "stopped", why.into());
    }

    /// Fetches what `a` runs, its `/input`, and opens its log file; `None`
    /// when it was stopped or failed first (reported).
    async fn prepare(
        &self,
        a: &Assignment,
        inst_dir: &Path,
        cancel: &CancellationToken,
    ) -> Option<Prepared> {
        let id = &a.instance.id;
        let tenant = a.instance.workload.tenant();
        let payload = match &a.module {
            Payload::Image(image) => self.image_root(a, image, inst_dir, cancel).await,
            Payload::Wasm(module) => match self.module(tenant, module.as_str(), cancel).await {
                Some(m) if a.spec.kind != WorkloadKind::Task => {
                    match self.network(id, cancel).await {
                        Ok(Some(n)) if stratus_runtime::serves_http(&m) => {
                            Ok(Some(Loaded::Wasm(m, Some(n))))
                        }
                        Ok(Some(n)) if !n.extensions.http_ports.is_empty() => Err(
                            "wasm.ports: the module is not an HTTP component (it exports no \
                         wasi:http/incoming-handler), so it has nothing to publish"
                                .to_string(),
                        ),
                        Ok(Some(_)) => Ok(Some(Loaded::Wasm(m, None))),
                        other => other.map(|_| None),
                    }
                }
                m => Ok(m.map(|m| Loaded::Wasm(m, None))),
            },
        };
        let payload = match payload {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.stopped_before_start(id);
                return None;
            }
            Err(why) => {
                self.fail(id, 0, why);
                return None;
            }
        };
        // `/input` and `/output` (WASM): the agent's folders, never the spec's.
        let rpc = crate::volumes::Connected(self.connector());
        let folders = match &payload {
            Loaded::Wasm(..) => taskio::prepare(&rpc, tenant, &a.spec, inst_dir).await,
            Loaded::Image(..) => Ok(taskio::Folders::default()),
        };
        let folders = match folders {
            Ok(f) => f,
            Err(e) => {
                self.fail(id, 0, e.to_string());
                return None;
            }
        };
        let determinism = if super::verified::may_be_verified(a) {
            match self.trust_terms(id, cancel).await {
                Ok(d) => d,
                Err(Some(why)) => {
                    self.fail(id, 0, why);
                    return None;
                }
                Err(None) => {
                    self.stopped_before_start(id);
                    return None;
                }
            }
        } else {
            None
        };
        let fetched = folders.fetched.as_ref().map_or(String::new(), |f| {
            format!("; /input: {} objects, {} bytes", f.objects, f.bytes)
        });
        let log_file = match std::fs::OpenOptions::new().create(true).append(true).open({
            let _ = std::fs::create_dir_all(inst_dir);
            inst_dir.join("output.log")
        }) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "cannot open the local log file");
                None
            }
        };
        let offset = log_file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        Some(Prepared {
            payload,
            folders,
            fetched,
            log_file,
            offset,
            determinism,
            output_hash: None,
        })
    }

    /// The network `instance` was deployed with, and its extensions
    /// (`Ok(None)`: cancelled first). Waits for a control replica to
    /// answer: a container or an HTTP component never starts with more
    /// egress than its tenant asked for.
    async fn network(
        &self,
        instance: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Net>, String> {
        let replica = crate::volumes::Connected(self.connector());
        let req = || rpc::InstanceNetwork {
            instance: instance.to_string(),
        };
        let Some(network) = taskio::call_until_answered(&replica, "network", req, cancel)
            .await
            .map_err(|e| format!("cannot learn the instance's network: {e}"))?
        else {
            return Ok(None);
        };
        let req = || rpc::InstanceExtensions {
            instance: instance.to_string(),
        };
        let extensions = taskio::call_until_answered(&replica, "extensions", req, cancel)
            .await
            .map_err(|e| format!("cannot learn the instance's published ports: {e}"))?;
        Ok(extensions.map(|extensions| Net {
            network,
            extensions,
        }))
    }

    /// Mounts the image of `a` and prepares the instance's root (`None`:
    /// cancelled first). Waits for a connection when the image is not on
    /// this node yet.
    async fn image_root(
        &self,
        a: &Assignment,
        image: &ImageRef,
        inst_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Option<Loaded>, String> {
        let host = self
            .inner
            .containers
            .clone()
            .map_err(|e| format!("this node cannot run container images: {e}"))?;
        let tenant = a.instance.workload.tenant();
        let fetch = a.spec.image.as_ref().map(|i| i.fetch).unwrap_or_default();
        let connect = self.connector();
        loop {
            match host
                .prepare(tenant, image, inst_dir, connect.clone(), fetch)
                .await
            {
                Ok(root) => {
                    let Some(network) = self.network(&a.instance.id, cancel).await? else {
                        return Ok(None);
                    };
                    return Ok(Some(Loaded::Image(host.clone(), root, network)));
                }
                Err(e) if self.connection().is_some() => return Err(e),
                Err(e) => {
                    tracing::debug!(instance = %a.instance.id, error = %e, "image not available while disconnected; waiting")
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Ok(None),
                _ = self.inner.conn_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Starts the instance once and waits for it to exit, forwarding its
    /// output; `None` when it failed (reported).
    async fn run_once(
        &self,
        t: &Attempt<'_>,
        p: &mut Prepared,
        inst_dir: &Path,
        cancel: &CancellationToken,
    ) -> Option<Exit> {
        let (id, spec) = (&t.a.instance.id, &t.a.spec);
        let (tx, mut rx) = mpsc::channel::<Output>(256);
        if let Loaded::Wasm(..) = &p.payload {
            // Running from here; a container is once it exists (below).
            self.report(
                id,
                InstanceState::Running,
                t.restarts,
                None,
                t.kind,
                t.msg.clone(),
            );
        }
        let run_cancel = cancel.child_token();
        let mut watch =
            p.folders.output.clone().map(|d| {
                taskio::OutputWatch::start(d, taskio::disk_limit(spec), run_cancel.clone())
            });
        let run = match &p.payload {
            Loaded::Wasm(module, http) => {
                let http = http.as_ref();
                let determinism = p.determinism.clone();
                self.start_wasm(t, (module, http), &p.folders, determinism, tx, run_cancel)
            }
            Loaded::Image(host, root, network) => {
                let started =
                    self.start_container(t, host, (root, network), inst_dir, tx, run_cancel);
                let (run, container_watch) = started?;
                watch = Some(container_watch);
                run
            }
        };
        let mut hash = p.determinism.as_ref().map(|_| blake3::Hasher::new());
        p.offset = self
            .forward_output(&mut rx, id, p.offset, p.log_file.as_mut(), hash.as_mut())
            .await;
        p.output_hash = hash.map(|h| *h.finalize().as_bytes());
        let exit = match run.await {
            Ok(Ok(exit)) => exit,
            failed => {
                let why = match failed {
                    Ok(Err(e)) => format!("cannot run: {e}"),
                    Err(e) => format!("executor crashed: {e}"),
                    Ok(Ok(_)) => String::new(),
                };
                self.fail(id, t.restarts, why);
                return None;
            }
        };
        if let Some(Err(e)) = match watch {
            Some(w) => Some(w.finish().await),
            None => None,
        } {
            let state = InstanceState::Failed {
                code: exit.code,
                reason: e.to_string(),
            };
            self.report(
                id,
                state,
                t.restarts,
                Some(exit.code),
                "failed",
                e.to_string(),
            );
            return None;
        }
        Some(exit)
    }

    /// Starts the WASM module of a task or service.
    fn start_wasm(
        &self,
        t: &Attempt<'_>,
        (module, http): (&Arc<Vec<u8>>, Option<&Net>),
        folders: &taskio::Folders,
        determinism: Option<stratus_runtime::Determinism>,
        tx: mpsc::Sender<Output>,
        run_cancel: CancellationToken,
    ) -> JoinHandle<Result<Exit, String>> {
        let spec = &t.a.spec;
        let mut task = TaskSpec {
            module: module.clone(),
            args: spec.args.clone(),
            name: spec.name.clone(),
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            stdin: None,
            input_dir: folders.input.clone(),
            output_dir: folders.output.clone(),
            limits: Limits {
                memory_bytes: spec.resources.memory_mb.saturating_mul(1024 * 1024),
                wall_time: t.wall,
                cpu_time: spec.resources.cpu_secs.map(Duration::from_secs),
            },
            meter: self.meter(&t.a.instance.id),
            // A replica of a verified run: the run's environment.
            determinism,
            http: None,
        };
        // A component that serves HTTP: on loopback, listed as an instance
        // of its service while it runs.
        let mut listed = None;
        let mut published = Vec::new();
        if let Some(Net {
            network,
            extensions,
        }) = http
        {
            published = self.port_maps(&extensions.http_ports);
            match std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(listener) => {
                    let listener = Arc::new(listener);
                    let egress = self.inner.egress.narrowed(&network.egress);
                    task.http = Some(stratus_runtime::HttpDoor {
                        listener: listener.clone(),
                        published: Vec::new(),
                        egress: Arc::new(move |ip| egress.allows(ip)),
                    });
                    listed = listener.local_addr().ok().map(|addr| {
                        let w = &t.a.instance.workload;
                        let dial: crate::services::Dial = Arc::new(move |_port| {
                            Box::pin(async move {
                                let s = tokio::net::TcpStream::connect(addr).await?;
                                Ok(Box::new(s) as stratus_container::net::Conn)
                            })
                        });
                        let id = crate::containers::container_id(&t.a.instance.id);
                        self.services().list(w.tenant(), w.name(), &id, dial)
                    });
                }
                Err(e) => {
                    let why = format!("no loopback port for the HTTP component: {e}");
                    return tokio::spawn(async move { Err(why) });
                }
            }
        }
        let exec = self.inner.executor.clone();
        let (me, id, range) = (self.clone(), t.a.instance.id.clone(), self.inner.ports);
        let restarts = t.restarts;
        tokio::spawn(async move {
            let _listed = listed;
            // The node's ports published for the component: bound before it
            // serves, reported once bound.
            if let Some(door) = task.http.as_mut() {
                let ls =
                    stratus_container::bind_tcp(&published, Some(&(range.first..=range.last)), &id)
                        .await
                        .map_err(|e| format!("cannot publish the component's ports: {e}"))?;
                for l in ls {
                    if let Ok(addr) = l.local_addr() {
                        let msg = format!("HTTP component published on {addr}");
                        let running = InstanceState::Running;
                        me.report(&id, running, restarts, None, "published", msg);
                    }
                    door.published.push(Arc::new(l));
                }
            }
            exec.run_dyn(task, tx, run_cancel)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// Published ports on every address of the node (TCP; the lender's
    /// range applies).
    fn port_maps(&self, host_ports: &[u16]) -> Vec<stratus_container::PortMap> {
        host_ports
            .iter()
            .map(|&host_port| stratus_container::PortMap {
                host_port,
                host_ip: std::net::IpAddr::from([0, 0, 0, 0]),
                ..stratus_container::PortMap::loopback(0)
            })
            .collect()
    }

    /// Starts the container of an image with its volumes (restored before,
    /// saved after), and the watch over what it writes on this node; `None`
    /// when its spec cannot run here (reported).
    fn start_container(
        &self,
        t: &Attempt<'_>,
        host: &Arc<ContainerHost>,
        (root, net): (&Rootfs, &Net),
        inst_dir: &Path,
        tx: mpsc::Sender<Output>,
        run_cancel: CancellationToken,
    ) -> Option<(JoinHandle<Result<Exit, String>>, taskio::OutputWatch)> {
        let (id, spec, workload) = (&t.a.instance.id, &t.a.spec, &t.a.instance.workload);
        let udp = &net.extensions.udp_ports;
        let mut cs = match host.container_spec(id, workload.as_str(), spec, udp, root) {
            Ok(cs) => cs,
            Err(why) => {
                self.fail(id, t.restarts, why);
                return None;
            }
        };
        cs.wall_time = t.wall;
        cs.meter = self.meter(id);
        cs.network = Some(crate::services::network(
            host,
            workload.tenant(),
            &net.network.egress,
        ));
        // What the container writes on this node: its writable layer and its
        // volumes, within `resources.disk_mb`.
        let mut dirs: Vec<PathBuf> = vec![inst_dir.join("upper")];
        dirs.extend(cs.volumes.iter().map(|v| v.host_path.clone()));
        let watch =
            taskio::OutputWatch::container(dirs, taskio::disk_limit(spec), run_cancel.clone());
        let (ev_tx, mut ev_rx) = mpsc::channel::<ContainerEvent>(16);
        let me = self.clone();
        let inst = id.clone();
        let (kind, msg, restarts) = (t.kind, t.msg.clone(), t.restarts);
        // Reported running once the container exists (restoring volumes and
        // creating it come first), so `exec` and `ps` see what is there.
        let events = tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                let (kind, msg) = match ev {
                    ContainerEvent::Started { pid } => (kind, format!("{msg}, host pid {pid}")),
                    ContainerEvent::PortPublished {
                        container_port,
                        host,
                        protocol,
                    } => {
                        let port = match protocol {
                            Protocol::Tcp => container_port.to_string(),
                            Protocol::Udp => format!("{container_port}/udp"),
                        };
                        ("published", format!("port {port} published on {host}"))
                    }
                };
                me.report(&inst, InstanceState::Running, restarts, None, kind, msg);
            }
        });
        let host = host.clone();
        let (kind_of, tenant, name) = (
            spec.kind,
            workload.tenant().to_string(),
            workload.name().to_string(),
        );
        let vols = crate::volumes::InstanceVolumes::new(
            &host,
            workload.tenant(),
            workload.as_str(),
            spec,
            self.connector(),
        );
        let run = tokio::spawn(async move {
            // Volumes kept in the object store: restored before, saved after.
            let vols = vols?;
            vols.restore(&tx).await?;
            // Reachable by its name while it runs (tasks have no name to
            // be reached by).
            let _listed = (kind_of != WorkloadKind::Task).then(|| {
                let (h, id) = (host.clone(), cs.id.clone());
                let dial: crate::services::Dial = Arc::new(move |port| {
                    let (h, id) = (h.clone(), id.clone());
                    Box::pin(async move {
                        let s = h.executor().connect(&id, port).await;
                        s.map(|s| Box::new(s) as stratus_container::net::Conn)
                            .map_err(std::io::Error::other)
                    })
                });
                host.services().list(&tenant, &name, &cs.id, dial)
            });
            let run = host.executor().run(cs, tx.clone(), Some(ev_tx), run_cancel);
            let r = vols.around(run, &tx).await.map_err(|e| e.to_string());
            vols.save(&tx).await;
            // Every event is reported before the exit is.
            let _ = events.await;
            r
        });
        Some((run, watch))
    }

    /// After an exit: stores `/output`, reports, and says whether to restart
    /// (after waiting `delay`, unless stopped meanwhile).
    async fn after_exit(
        &self,
        t: &Attempt<'_>,
        p: &Prepared,
        exit: Exit,
        delay: Duration,
        cancel: &CancellationToken,
    ) -> Next {
        let (id, spec, restarts) = (&t.a.instance.id, &t.a.spec, t.restarts);
        let stopped = exit.reason == ExitReason::Cancelled || cancel.is_cancelled();
        if let (Some(f), Some(dir), false) = (spec.output.upload(), &p.folders.output, stopped) {
            let rpc = crate::volumes::Connected(self.connector());
            let tenant = t.a.instance.workload.tenant();
            let (state, kind, msg) = match taskio::upload_output(&rpc, tenant, f, dir).await {
                Ok(u) => {
                    self.served(id, u.bytes);
                    (
                        InstanceState::Running,
                        "output",
                        format!(
                            "stored {} files ({} bytes) in {}/{}",
                            u.files, u.bytes, f.bucket, f.prefix
                        ),
                    )
                }
                Err(e) => {
                    let reason = e.to_string();
                    (
                        InstanceState::Failed {
                            code: -1,
                            reason: reason.clone(),
                        },
                        "failed",
                        reason,
                    )
                }
            };
            let failed = matches!(state, InstanceState::Failed { .. });
            self.report(id, state, restarts, Some(exit.code), kind, msg);
            if failed {
                return Next::Done;
            }
        }
        if stopped {
            self.report(
                id,
                InstanceState::Stopped,
                restarts,
                Some(exit.code),
                "stopped",
                "stopped on request".into(),
            );
            return Next::Done;
        }
        let what = format!("exited with code {} ({})", exit.code, exit.reason);
        match spec.kind {
            WorkloadKind::Task => {
                if let Some(output) = p.output_hash {
                    // A verified run's replica commits before it reports
                    // the end: the control plane opens reveals only then.
                    let dir = p.folders.output.clone();
                    if let Err(why) = self.commit(id, exit.code, output, dir).await {
                        self.fail(id, restarts, why);
                        return Next::Done;
                    }
                }
                let state = if exit.success() {
                    InstanceState::Completed
                } else {
                    InstanceState::Failed {
                        code: exit.code,
                        reason: exit.reason.to_string(),
                    }
                };
                self.report(id, state, restarts, Some(exit.code), "exited", what);
                Next::Done
            }
            WorkloadKind::Service | WorkloadKind::Daemon => {
                if spec.restart.attempts > 0 && restarts >= spec.restart.attempts {
                    self.report(
                        id,
                        InstanceState::Failed {
                            code: exit.code,
                            reason: exit.reason.to_string(),
                        },
                        restarts,
                        Some(exit.code),
                        "exited",
                        format!("{what}; no restarts left"),
                    );
                    return Next::Done;
                }
                self.report(
                    id,
                    InstanceState::Running,
                    restarts,
                    Some(exit.code),
                    "exited",
                    format!("{what}; restarting in {} ms", delay.as_millis()),
                );
                tokio::select! {
                    _ = cancel.cancelled() => {
                        self.report(id, InstanceState::Stopped, restarts, Some(exit.code), "stopped", "stopped on request".into());
                        Next::Done
                    }
                    _ = tokio::time::sleep(delay) => Next::Restart,
                }
            }
        }
    }
}
