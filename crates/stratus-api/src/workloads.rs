//! Workload routes: modules, deploy, list, inspect, stop, instances, logs, drain.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_spec::WorkloadSpec;
use stratus_state::{Command, Instance, Workload};
use stratus_types::{NodeId, Payload, WorkloadId};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{AppState, JsonBody, WriteResult};

/// A stored module.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleRef {
    /// Content address (`blake3:<hex>`).
    pub hash: String,
    /// Size in bytes.
    pub size: usize,
}

/// Request to deploy a workload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Deploy {
    /// The spec (its `wasm.module` is informational; `module` is what runs).
    pub spec: WorkloadSpec,
    /// Content address of an uploaded module (WASM workloads). For a
    /// container image it is left empty: the deploy pins the image version
    /// that `image.name` names now.
    #[serde(default)]
    pub module: String,
    /// A market order for its placements (see `crate::deals`): without
    /// one, the default order (the tenant's balance is the limit, no
    /// preference).
    #[serde(default)]
    pub market: Option<stratus_spec::MarketSpec>,
    /// The requester's signature over the order (required from a tenant
    /// that registered an order key).
    #[serde(default)]
    pub signed_by: Option<crate::deals::SignedBy>,
    /// Its network: where its containers may connect to, and the host name
    /// its HTTP service answers to through the ingress (none: any egress
    /// the lender allows, nothing exposed).
    #[serde(default)]
    pub network: Option<stratus_spec::Networking>,
    /// What its spec says beyond the spec's layout: published UDP ports of
    /// a container, published ports of a WASM HTTP component (none:
    /// nothing of it).
    #[serde(default)]
    pub extensions: Option<stratus_spec::Extensions>,
}

/// A workload with its instances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkloadView {
    /// The workload.
    pub workload: Workload,
    /// Its instances, newest last.
    pub instances: Vec<Instance>,
    /// Why it is not fully placed, if it is not.
    pub blocked: Option<String>,
    /// A verified run (`market.trust` above 1): the replicas' votes and
    /// the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<crate::trusted::TrustView>,
    /// Its network, when it is not the default: egress and the host it is
    /// exposed as through the ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<stratus_spec::Networking>,
    /// Its extensions, when it has any: published UDP ports, published
    /// ports of an HTTP component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<stratus_spec::Extensions>,
}

/// Query of instance lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct InstanceQuery {
    /// Only instances of this workload (`tenant/name` or `name`).
    pub workload: Option<String>,
    /// Include instances that have ended.
    #[serde(default)]
    pub all: bool,
}

/// Query of a log read.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// First byte wanted (default 0).
    #[serde(default)]
    pub offset: u64,
    /// Wait up to this long for new output (long poll; at most 30000).
    #[serde(default)]
    pub wait_ms: u64,
    /// Output of this exec of the instance instead of the instance's own
    /// (`x-stratus-state` is then the exec's state).
    pub exec: Option<u32>,
}

/// A command to run inside a running container instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecRequest {
    /// Command and arguments.
    pub args: Vec<String>,
}

/// An exec that was asked for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecStarted {
    /// Its number within the instance: follow its output with
    /// `GET /v1/instances/{id}/logs?exec=N`.
    pub n: u32,
}

/// Drain request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Drain {
    /// `true` to drain, `false` to make the node eligible again.
    pub drain: bool,
}

/// The workload `name` names: `tenant/name`, or a name of the caller's
/// tenant; `None` when it is no valid id (it then names no workload).
fn workload_id(caller: &Caller, name: &str) -> Option<WorkloadId> {
    if name.contains('/') {
        name.parse().ok()
    } else {
        WorkloadId::new(&caller.tenant, name).ok()
    }
}

/// The answer to a workload that does not exist.
fn no_such_workload(tenant: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("workload {tenant}/{name} does not exist (a finished or stopped workload is forgotten once its retention period has passed); see `stratus ps`"),
    )
}

/// Deploys (creates or updates) a workload of the caller's tenant.
#[utoipa::path(post, path = "/v1/workloads", tag = "workloads", security(("bearer" = [])),
    request_body = Deploy,
    responses((status = 200, body = Workload), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deploy(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<Deploy>,
) -> Result<Json<Workload>, ApiError> {
    let valid = req
        .spec
        .validate()
        .and_then(|()| match &req.network {
            Some(n) => n.validate(&req.spec),
            None => Ok(()),
        })
        .and_then(|()| match &req.extensions {
            Some(e) => e.validate(&req.spec),
            None => Ok(()),
        });
    if let Err(errs) = valid {
        return Err(ApiError::bad_request(
            stratus_spec::SpecError::Invalid(errs).to_string(),
        ));
    }
    let id = WorkloadId::new(&c.tenant, &req.spec.name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let uses = crate::catalog::uses_of(req.market.as_ref());
    let module = match (&uses.app, &req.spec.image) {
        // A published app runs what it runs now.
        (Some(app), _) => crate::catalog::app_module(&st, app)?,
        (None, Some(image)) => {
            Payload::Image(st.store.resolve_image(&c.tenant, &image.name)?.pinned()).to_string()
        }
        (None, None) => req.module,
    };
    let order = req
        .market
        .as_ref()
        .map(|m| crate::deals::order_of(m, &req.spec, req.signed_by.as_ref()))
        .transpose()?;
    let trust = req.market.as_ref().and_then(|m| m.trust).filter(|t| *t > 1);
    crate::deals::check_order(&st, &c.tenant, &req.spec, &module, order.as_ref(), &uses)?;
    let deploy = Command::DeployWorkload {
        tenant: c.tenant.clone(),
        spec: Box::new(req.spec),
        module,
        now_ms: now_ms(),
    };
    let deploy = match order {
        Some(order) => Command::DeployOrdered {
            deploy: Box::new(deploy),
            order,
        },
        None => deploy,
    };
    let deploy = crate::catalog::deploy_command(deploy, uses);
    let deploy = match trust {
        Some(trust) => Command::DeployTrusted {
            deploy: Box::new(deploy),
            trust,
        },
        None => deploy,
    };
    // Always said, so that a deploy without a network drops the last one.
    let deploy = Command::DeployNetworked {
        deploy: Box::new(deploy),
        network: req.network.unwrap_or_default(),
    };
    let deploy = Command::DeployExtended {
        deploy: Box::new(deploy),
        extensions: stratus_spec::SelfDescribing(req.extensions.unwrap_or_default()),
    };
    st.control.write(deploy).await?;
    st.control
        .state()
        .read(|s| s.workloads.get(id.as_str()).cloned())
        .map(Json)
        .ok_or_else(|| ApiError::internal("workload vanished after deploy"))
}

/// Workloads of the caller's tenant (all of them for the admin).
#[utoipa::path(get, path = "/v1/workloads", tag = "workloads", security(("bearer" = [])),
    responses((status = 200, body = [Workload])))]
pub async fn list(State(st): State<AppState>, c: Caller) -> Json<Vec<Workload>> {
    Json(st.control.state().read(|s| {
        s.workloads
            .values()
            .filter(|w| c.is_admin() || w.tenant == c.tenant)
            .cloned()
            .collect()
    }))
}

/// One workload with its instances and events.
#[utoipa::path(get, path = "/v1/workloads/{tenant}/{name}", tag = "workloads", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = WorkloadView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<WorkloadView>, ApiError> {
    c.require_tenant(&tenant)?;
    let id = WorkloadId::new(&tenant, &name).map_err(|_| no_such_workload(&tenant, &name))?;
    let blocked = st.control.blocked().get(id.as_str()).cloned();
    st.control
        .state()
        .read(|s| {
            s.workloads.get(id.as_str()).cloned().map(|workload| {
                let mut instances: Vec<Instance> = s
                    .instances
                    .values()
                    .filter(|i| i.workload == id)
                    .cloned()
                    .collect();
                instances.sort_by_key(|i| (i.created_ms, i.id.clone()));
                WorkloadView {
                    trust: crate::trusted::TrustView::of_workload(s, id.as_str()),
                    network: s.networks.get(id.as_str()).cloned(),
                    extensions: s.extensions.get(id.as_str()).map(|e| e.0.clone()),
                    workload,
                    instances,
                    blocked,
                }
            })
        })
        .map(Json)
        .ok_or_else(|| no_such_workload(&tenant, &name))
}

/// Stops a workload: all its instances are stopped.
#[utoipa::path(delete, path = "/v1/workloads/{tenant}/{name}", tag = "workloads", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stop(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<WriteResult>, ApiError> {
    c.require_tenant(&tenant)?;
    // What the state machine answers for an id no workload can have.
    let id = WorkloadId::new(&tenant, &name)
        .map_err(|_| ApiError::not_found(format!("workload {tenant}/{name} does not exist")))?;
    let applied = st
        .control
        .write(Command::StopWorkload {
            id: id.to_string(),
            now_ms: now_ms(),
        })
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}

/// Instances of the caller's workloads (live ones unless `all`).
#[utoipa::path(get, path = "/v1/instances", tag = "workloads", security(("bearer" = [])),
    params(InstanceQuery),
    responses((status = 200, body = [Instance])))]
pub async fn instances(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<InstanceQuery>,
) -> Json<Vec<Instance>> {
    let wanted = q.workload.as_deref().map(|w| workload_id(&c, w));
    let mut list: Vec<Instance> = st.control.state().read(|s| {
        s.instances
            .values()
            .filter(|i| c.is_admin() || i.workload.tenant() == c.tenant)
            .filter(|i| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.as_ref() == Some(&i.workload))
            })
            .filter(|i| q.all || !i.state.is_terminal())
            .cloned()
            .collect()
    });
    list.sort_by_key(|i| (i.workload.clone(), i.created_ms));
    Json(list)
}

fn find_instance(st: &AppState, c: &Caller, id: &str) -> Result<Instance, ApiError> {
    let i = st
        .control
        .state()
        .read(|s| s.instances.get(id).cloned())
        .ok_or_else(|| {
            ApiError::not_found(format!("instance {id} does not exist (instances of finished or stopped workloads are forgotten once their retention period has passed); see `stratus ps --all`"),
            )
        })?;
    c.require_tenant(i.workload.tenant())?;
    Ok(i)
}

/// One instance with its events.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "workloads", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Instance), (status = 404, body = ErrorBody)))]
pub async fn instance(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Instance>, ApiError> {
    Ok(Json(find_instance(&st, &c, &id)?))
}

/// Output of an instance from `offset` on, as raw bytes. Headers
/// `x-stratus-offset` (first byte returned), `x-stratus-next-offset` and
/// `x-stratus-state` (the instance's state) let a client follow it.
#[utoipa::path(get, path = "/v1/instances/{id}/logs", tag = "workloads", security(("bearer" = [])),
    params(("id" = String, Path), LogQuery),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<impl IntoResponse, ApiError> {
    find_instance(&st, &c, &id)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.wait_ms.min(30_000));
    let log_id = match q.exec {
        Some(n) => stratus_state::workloads::exec_log_id(&id, n),
        None => id.clone(),
    };
    let (offset, data, state) = loop {
        let (offset, data) = st.control.read_logs(&log_id, q.offset).await?;
        let inst = find_instance(&st, &c, &id)?;
        let inst_over =
            inst.state.is_terminal() || inst.state == stratus_state::InstanceState::Lost;
        let (state, over) = match q.exec {
            None => (serde_json::to_value(&inst.state), inst_over),
            Some(n) => {
                let e =
                    inst.execs.iter().find(|e| e.n == n).ok_or_else(|| {
                        ApiError::not_found(format!("instance {id} has no exec {n}"))
                    })?;
                (
                    serde_json::to_value(&e.state),
                    e.state.is_over() || inst_over,
                )
            }
        };
        if !data.is_empty() || over || tokio::time::Instant::now() >= deadline {
            break (offset, data, state);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let mut h = HeaderMap::new();
    let state_name = state
        .ok()
        .and_then(|v| {
            v.as_str()
                .map(String::from)
                .or_else(|| v.as_object().and_then(|o| o.keys().next().cloned()))
        })
        .unwrap_or_default();
    let header = |v: String| HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static(""));
    h.insert("x-stratus-offset", header(offset.to_string()));
    h.insert(
        "x-stratus-next-offset",
        header((offset + data.len() as u64).to_string()),
    );
    h.insert("x-stratus-state", header(state_name));
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok((h, data))
}

/// Runs a command inside a running container instance, like `docker
/// exec`: same namespaces, cgroup and root file system.
#[utoipa::path(post, path = "/v1/instances/{id}/exec", tag = "workloads", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body = ExecRequest,
    responses((status = 201, body = ExecStarted), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn exec(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ExecRequest>,
) -> Result<(StatusCode, Json<ExecStarted>), ApiError> {
    find_instance(&st, &c, &id)?;
    let r = st
        .control
        .write(Command::Exec {
            instance: id,
            args: req.args,
            now_ms: now_ms(),
        })
        .await?;
    let n = r.version.unwrap_or_default() as u32;
    Ok((StatusCode::CREATED, Json(ExecStarted { n })))
}

/// Drains a node (its instances move elsewhere; nothing new lands there) or
/// makes it eligible again. Admin only.
#[utoipa::path(post, path = "/v1/nodes/{id}/drain", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "full node id")), request_body = Drain,
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn drain(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<Drain>,
) -> Result<Json<WriteResult>, ApiError> {
    c.require_admin()?;
    let node: NodeId = id.parse()?;
    let applied = st
        .control
        .write(Command::SetDrain {
            node,
            drain: req.drain,
        })
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}
