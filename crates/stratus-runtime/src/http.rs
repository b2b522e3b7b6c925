//! WASI HTTP components as services (issue 17, item 5).
//!
//! A component that exports `wasi:http/incoming-handler` (the
//! `wasi:http/proxy` world, e.g. built with `cargo build --target
//! wasm32-wasip2` and the `wasi` crate's `http::proxy::export!`) is not run
//! once: given an [`HttpDoor`], the executor serves HTTP/1.1 on the door's
//! listeners and runs each request in a fresh instance of the component
//! (pre-instantiated once), with the task's memory limit, its CPU metered,
//! at most [`MAX_CONCURRENT_REQUESTS`] at a time and at most
//! [`REQUEST_TIMEOUT`] each; a request that traps is answered 500. The
//! guest's stdout and stderr go to the instance's output as for any task.
//!
//! Outbound HTTP (`wasi:http/outgoing-handler`) goes only where the door's
//! egress check allows every address the host name resolves to, and to the
//! address checked ([`crate::outbound`]).
//! Sockets stay closed as for every guest.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::outbound::Outbound;

use crate::limits::{CpuMetered, GuestLimiter};
use crate::{Exit, ExitReason, Output, RuntimeError, TaskSpec};

/// Requests one instance serves at a time (more wait for a slot).
pub const MAX_CONCURRENT_REQUESTS: usize = 64;
/// Longest a request may take to be answered (its head).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where an HTTP component's requests come from, and where its outbound
/// requests may go.
#[derive(Clone)]
pub struct HttpDoor {
    /// Accepts the connections to serve (the agent's, on loopback).
    pub listener: Arc<tokio::net::TcpListener>,
    /// Also accepts on these: the node's ports published for the
    /// component (`wasm.ports`).
    pub published: Vec<Arc<tokio::net::TcpListener>>,
    /// Whether an outbound request may reach an address.
    pub egress: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

impl std::fmt::Debug for HttpDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDoor")
            .field("listener", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// The interface a component serves HTTP with.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// Whether `bytes` (WASM or WAT) is a component that serves HTTP (exports
/// `wasi:http/incoming-handler`).
pub fn serves_http(bytes: &[u8]) -> bool {
    let binary = match wat::parse_bytes(bytes) {
        Ok(b) => b,
        Err(_) => return false,
    };
    if !wasmparser::Parser::is_component(&binary) {
        return false;
    }
    // Exports of the outer component only (nested ones open and end).
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(&binary) {
        match payload {
            Ok(wasmparser::Payload::ModuleSection { .. })
            | Ok(wasmparser::Payload::ComponentSection { .. }) => depth += 1,
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(exports)) if depth == 0 => {
                for e in exports.into_iter().flatten() {
                    if e.name.name.starts_with(INCOMING_HANDLER) {
                        return true;
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A request's store.
struct HttpState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Outbound,
    limiter: GuestLimiter,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// What serving needs, shared by every request.
struct Server {
    pre: ProxyPre<HttpState>,
    spec: TaskSpec,
    egress: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
    output: mpsc::Sender<Output>,
    slots: Semaphore,
}

/// Serves `component` on `door` until `cancel` (or the task's wall time):
/// the instance's run.
pub(crate) async fn serve(
    engine: &wasmtime::Engine,
    component: Component,
    spec: TaskSpec,
    door: HttpDoor,
    output: mpsc::Sender<Output>,
    cancel: CancellationToken,
) -> Result<Exit, RuntimeError> {
    let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component).map_err(link)?).map_err(link)?;
    let wall = spec.limits.wall_time;
    let server = Arc::new(Server {
        pre,
        egress: door.egress.clone(),
        spec,
        output,
        slots: Semaphore::new(MAX_CONCURRENT_REQUESTS),
    });
    // One acceptor per listener, all feeding the one server; they end
    // with this run (dropped).
    let (conns_tx, mut conns) = mpsc::channel::<tokio::net::TcpStream>(64);
    let mut acceptors = tokio::task::JoinSet::new();
    for listener in std::iter::once(&door.listener).chain(&door.published) {
        let (listener, conns) = (listener.clone(), conns_tx.clone());
        acceptors.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        if conns.send(stream).await.is_err() {
                            return;
                        }
                    }
                    // Transient (e.g. EMFILE): back off a little.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    drop(conns_tx);
    let accept = async {
        while let Some(stream) = conns.recv().await {
            let server = server.clone();
            let stop = cancel.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    _ = conn => {}
                    () = stop.cancelled() => {}
                }
            });
        }
    };
    let wall = async {
        match wall {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let exit = tokio::select! {
        () = cancel.cancelled() => Exit::killed(ExitReason::Cancelled),
        () = wall => Exit::killed(ExitReason::WallTimeout),
        () = accept => Exit::killed(ExitReason::Cancelled),
    };
    // Open connections end with `cancel` (the instance's token).
    Ok(exit)
}

/// A plain-text answer of the host (the guest did not answer).
fn said(status: http::StatusCode, message: String) -> http::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(message + "\n"))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    r
}

impl Server {
    /// Runs one request in a fresh instance.
    async fn handle(
        self: Arc<Self>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> http::Response<HyperOutgoingBody> {
        let Ok(_slot) = self.slots.acquire().await else {
            return said(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "shutting down".into(),
            );
        };
        let spec = &self.spec;
        let wasi = match crate::wasm::wasi_builder(spec, &self.output) {
            Ok(mut w) => w.build(),
            Err(e) => return said(http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let state = HttpState {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: Outbound {
                egress: self.egress.clone(),
            },
            limiter: GuestLimiter::new(spec.limits.memory_bytes, spec.meter.clone()),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store.limiter(|s| &mut s.limiter);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|r| Ok((r, store.data_mut().http().new_response_outparam(sender)?)));
        let (incoming, out) = match prepared {
            Ok(p) => p,
            Err(e) => return said(http::StatusCode::BAD_REQUEST, format!("{e:#}")),
        };
        let pre = self.pre.clone();
        let meter = spec.meter.clone();
        let task = tokio::spawn(CpuMetered::new(
            async move {
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, out)
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("{e:#}")))?;
                Ok(Exit::exited(0))
            },
            None,
            meter,
        ));
        let abort = task.abort_handle();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, receiver).await;
        match answer {
            Ok(Ok(Ok(resp))) => resp,
            Ok(Ok(Err(code))) => said(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("the component failed the request: {code:?}"),
            ),
            Ok(Err(_)) => {
                let why = match task.await {
                    Ok(Ok(_)) => "it returned without answering".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                let line = format!("request failed: {why}\n");
                let _ = self.output.try_send(Output::Stderr(line.into_bytes()));
                said(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the component did not answer: {why}"),
                )
            }
            Err(_) => {
                abort.abort();
                said(
                    http::StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the component did not answer within {}s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                )
            }
        }
    }
}
