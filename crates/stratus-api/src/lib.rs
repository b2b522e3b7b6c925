//! The HTTP/JSON API.
//!
//! **Owns** the HTTP/JSON door: routes, authentication of bearer tokens,
//! scopes, the OpenAPI document, and the JSON error body with its stable
//! code. **Does not own** what a request does (the control plane and the
//! object store), or the connection limits (`stratus-http`).
//!
//! Everything lives under `/v1`; the OpenAPI document is served at
//! `/v1/openapi.json` and checked into the repository (`docs/openapi.json`).
//! Every route but `/v1/health` and `/v1/openapi.json` needs
//! `Authorization: Bearer <token>`; a token belongs to one tenant, has a
//! scope (`admin`, `full`, `read-only`, `storage`, `workloads`) and may
//! expire; the `admin` tenant's admin-scoped tokens administer the cluster.
//! [`scopes`] decides, in one table, which scope each route needs. A token
//! mints only tokens with no more rights than its own (a covered scope, an
//! expiry no later than its own). Errors are JSON ([`error::ErrorBody`])
//! with a stable code: 401 for a missing, unknown, revoked or expired token,
//! 403 for a scope or tenant that does not allow the request. Handlers
//! return [`error::ApiError`], whose variant is the kind of failure (the
//! control plane's, the store's and the state's errors kept whole); its
//! `status()` is the one place kinds become HTTP statuses.
//!
//! The API is served by control replicas and reads that replica's applied
//! state; writes go through [`stratus_control::Control::write`], which
//! forwards them to the leader, so any replica's API accepts them. Tokens
//! are checked against that applied state on every request (no cache), so a
//! revocation takes effect on a follower as soon as it applies the entry:
//! within a Raft heartbeat of the commit.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod deals;
pub mod error;
pub mod images;
pub mod joining;
pub mod market;
pub mod marks;
pub mod modules;
pub mod objects;
pub mod quotas;
pub mod s3keys;
pub mod scopes;
pub mod trusted;
pub mod workloads;

use std::future::Future;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stratus_control::{now_ms, secrets, Control};
use stratus_proto::{MembershipChange, Peer};
use stratus_state::{Command, Var};
use stratus_types::{
    ClusterStatus, NodeId, NodeRecord, ReplicaRole, ReplicaStatus, Tenant, TokenScope, ADMIN_TENANT,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The control replica this API fronts.
    pub control: Control,
    /// The object store client of this replica.
    pub store: stratus_store::Store,
    /// Where money enters and leaves the pool.
    pub settlement: std::sync::Arc<dyn stratus_control::settlement::Settlement>,
}

/// A JSON body whose rejection is a clear `bad_request`.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(ApiError::bad_request(format!(
                "malformed request body: {}",
                rej.body_text()
            ))),
        }
    }
}

/// A JSON body that may be left out: an empty (or blank) body is
/// `T::default()`, anything else must parse, with the same `bad_request` as
/// [`JsonBody`].
pub struct OptionalJsonBody<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJsonBody<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    /// A body that cannot be read keeps axum's own answer (e.g. 413).
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        serde_json::from_slice(&body)
            .map(OptionalJsonBody)
            .map_err(|e| ApiError::MalformedBody(e).into_response())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Answer of `/v1/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// Replica that answered.
    pub node_id: NodeId,
    /// Its Raft role.
    pub role: ReplicaRole,
    /// Current leader, if known.
    pub leader: Option<NodeId>,
    /// Stratus version.
    pub version: String,
}

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Tenant of the token.
    pub tenant: String,
    /// Token id.
    pub token_id: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// When the token expires (ms since the Unix epoch); absent: never.
    pub expires_ms: Option<u64>,
}

/// Request to add a control replica.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AddReplica {
    /// Its node id (printed by `stratus server` at start).
    pub id: NodeId,
    /// `host:port` of its QUIC endpoint.
    pub addr: String,
}

/// Request to create a tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateTenant {
    /// Name: 1–63 characters of a-z, 0-9 and '-', starting with a letter.
    pub name: String,
}

/// Longest lifetime a token may be given: ten years.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// Request to issue a token. Both fields may be left out; an empty body
/// is the same as `{}`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CreateToken {
    /// What the new token may do; default: the caller's own scope (`full`
    /// when the admin issues a token for another tenant). It must be covered
    /// by the caller's scope: `admin` covers all, `full` all but `admin`,
    /// the others only themselves.
    pub scope: Option<TokenScope>,
    /// Lifetime in seconds (1 to ten years); default: the caller's own
    /// expiry, or none. It may not end after the caller's token does.
    pub expires_in_secs: Option<u64>,
}

/// A newly issued token. The secret is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    /// Tenant it acts for.
    pub tenant: String,
    /// Token id.
    pub token_id: String,
    /// The token to pass as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do.
    pub scope: TokenScope,
    /// When it expires (ms since the Unix epoch); absent: never.
    pub expires_ms: Option<u64>,
}

/// Body of a variable write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PutVar {
    /// Value (at most 64 KiB).
    pub value: String,
}

/// A variable as returned.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VarView {
    /// Key.
    pub key: String,
    /// Value and version.
    #[serde(flatten)]
    pub var: Var,
}

/// Result of a write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WriteResult {
    /// Log index at which the write was committed.
    pub index: u64,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Stratus API", description = "Control plane of the Stratus edge cloud."),
    paths(health, status, whoami, list_nodes, get_node, add_replica, remove_replica,
          list_tenants, create_tenant, create_token, list_tokens, revoke_token, list_vars,
          modules::put_module, workloads::deploy, workloads::list, workloads::get, workloads::stop,
          workloads::instances, workloads::instance, workloads::logs, workloads::exec, workloads::drain, get_var, put_var, delete_var,
          objects::create_bucket, objects::list_buckets, objects::delete_bucket, objects::put_object,
          objects::get_object, objects::head_object, objects::delete_object, objects::list_objects,
          objects::list_versions, objects::storage_status, objects::maintain_now,
          s3keys::create_key, s3keys::list_keys, s3keys::delete_key,
          images::import, images::list, images::delete,
          quotas::get_quota, quotas::set_quota, quotas::my_quota, marks::list_marks, marks::unmark,
          accounts::account, accounts::history, accounts::deposit, accounts::withdraw,
          audit::list, audit::checkpoints, audit::checkpoint,
          market::put_offer, market::delete_offer, market::list_offers,
          deals::get_fee, deals::put_fee, deals::list_deals, deals::get_order_key, deals::put_order_key,
          catalog::publish_app, catalog::list_apps, catalog::delete_app,
          catalog::publish_dataset, catalog::list_datasets, catalog::delete_dataset,

          joining::create, joining::list, joining::revoke, joining::ban),
    components(schemas(ErrorBody, Health, WhoAmI, AddReplica, CreateTenant, IssuedToken, PutVar,
                       VarView, WriteResult, TokenView, CreateToken, TokenScope, ClusterStatus,
                       workloads::ModuleRef, workloads::Deploy, workloads::ExecRequest, workloads::ExecStarted,
                       stratus_state::workloads::ExecRecord, stratus_state::workloads::ExecState, workloads::WorkloadView, workloads::Drain,
                       stratus_state::Workload, stratus_state::Instance, stratus_state::Event,
                       stratus_state::InstanceState, stratus_state::Desired, ReplicaStatus, NodeRecord, NodeView, ReputationView, Tenant,
                       objects::CreateBucket, objects::BucketView, objects::VersionView, objects::PutObjectResult,
                       objects::DeleteResult, objects::NodeStorageView, objects::WorkerView, objects::StorageStatus, objects::LifecycleView,
                       stratus_state::objects::Bucket, stratus_state::objects::ErasureProfile,
                       stratus_state::objects::DedupeScope, stratus_state::objects::Versioning,
                       stratus_state::objects::RedundancyHealth, stratus_state::objects::ScrubRecord,
                       s3keys::CreateS3Key, s3keys::IssuedS3Key, s3keys::S3KeyView,
                       stratus_store::ImageInfo, stratus_store::ImportReport,
                       stratus_spec::ImageSource, stratus_spec::PortSpec, stratus_spec::VolumeSpec,
                       quotas::QuotaView, stratus_state::quotas::QuotaLine, stratus_state::quotas::Resource,
                       accounts::AccountView, accounts::HistoryView, accounts::EntryView, accounts::TransferView, accounts::MoneyMove,
                       market::OfferSpec, market::OfferView,
                       catalog::PublishApp, catalog::PublishDataset, stratus_state::catalog::App, stratus_state::catalog::Dataset,
                       stratus_spec::MarketSpec, stratus_spec::MarketPrefer, deals::PoolFee, deals::DealView, deals::SignedBy, deals::OrderKey,
                       audit::AuditPageView, audit::CheckpointsView, audit::Signed,
                       stratus_state::audit::AuditRecord, stratus_state::audit::Checkpoint,
                       marks::NodeMarkView, marks::StatusView, stratus_control::disk::DiskStatus, stratus_store::NodeSpace,
                       stratus_state::marks::NodeMark, stratus_state::marks::Strike, stratus_state::marks::Mark, stratus_state::marks::Failure,
                       joining::CreateJoinToken, joining::IssuedJoinToken, joining::Banned,
                       stratus_state::nodes::JoinCredentialRecord)),
    modifiers(&BearerAuth),
    tags((name = "cluster"), (name = "nodes"), (name = "tenants"), (name = "vars"), (name = "workloads"), (name = "objects"), (name = "s3"), (name = "images"), (name = "market"), (name = "audit"))
)]
struct ApiDoc;

struct BearerAuth;
impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, pretty-printed.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.to_pretty_json().unwrap_or_default()
}

/// The API's routes.
pub fn router(control: Control, store: stratus_store::Store) -> Router {
    let state = AppState {
        control,
        store,
        settlement: accounts::default_settlement(),
    };
    Router::new()
        .route("/v1/health", get(health))
        .route(
            "/v1/openapi.json",
            get(|| async { ([("content-type", "application/json")], openapi_json()) }),
        )
        .route("/v1/status", get(status))
        .route("/v1/whoami", get(whoami))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{id}", get(get_node))
        .route("/v1/replicas", post(add_replica))
        .route("/v1/replicas/{id}", axum::routing::delete(remove_replica))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/v1/tenants/{tenant}/tokens",
            post(create_token).get(list_tokens),
        )
        .route(
            "/v1/tenants/{tenant}/tokens/{id}",
            axum::routing::delete(revoke_token),
        )
        .route("/v1/tenants/{tenant}/vars", get(list_vars))
        .route(
            "/v1/tenants/{tenant}/quota",
            get(quotas::get_quota).put(quotas::set_quota),
        )
        .route("/v1/quota", get(quotas::my_quota))
        .route("/v1/account", get(accounts::account))
        .route("/v1/account/history", get(accounts::history))
        .route("/v1/tenants/{tenant}/deposit", post(accounts::deposit))
        .route("/v1/tenants/{tenant}/withdraw", post(accounts::withdraw))
        .route(
            "/v1/nodes/{id}/offer",
            put(market::put_offer).delete(market::delete_offer),
        )
        .route("/v1/market/offers", get(market::list_offers))
        .route("/v1/market/fee", get(deals::get_fee).put(deals::put_fee))
        .route("/v1/market/deals", get(deals::list_deals))
        .route(
            "/v1/market/apps",
            get(catalog::list_apps).post(catalog::publish_app),
        )
        .route("/v1/market/apps/{name}", delete(catalog::delete_app))
        .route(
            "/v1/market/datasets",
            get(catalog::list_datasets).post(catalog::publish_dataset),
        )
        .route(
            "/v1/market/datasets/{name}",
            delete(catalog::delete_dataset),
        )
        .route(
            "/v1/account/order-key",
            get(deals::get_order_key).put(deals::put_order_key),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/checkpoints", get(audit::checkpoints))
        .route("/v1/audit/checkpoint", post(audit::checkpoint))
        .route(
            "/v1/tenants/{tenant}/vars/{*key}",
            put(put_var).get(get_var).delete(delete_var),
        )
        .route(
            "/v1/modules",
            // Streamed and bounded by the handler (`modules::MAX_MODULE_BYTES`).
            post(modules::put_module).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/workloads",
            post(workloads::deploy).get(workloads::list),
        )
        .route(
            "/v1/workloads/{tenant}/{name}",
            get(workloads::get).delete(workloads::stop),
        )
        .route("/v1/instances", get(workloads::instances))
        .route("/v1/instances/{id}", get(workloads::instance))
        .route("/v1/instances/{id}/logs", get(workloads::logs))
        .route("/v1/instances/{id}/exec", post(workloads::exec))
        .route("/v1/nodes/{id}/drain", post(workloads::drain))
        .route("/v1/nodes/marks", get(marks::list_marks))
        .route("/v1/nodes/{id}/unmark", post(marks::unmark))
        .route("/v1/nodes/{id}/ban", post(joining::ban))
        .route("/v1/join-tokens", get(joining::list).post(joining::create))
        .route(
            "/v1/join-tokens/{id}",
            axum::routing::delete(joining::revoke),
        )
        .route(
            "/v1/buckets",
            post(objects::create_bucket).get(objects::list_buckets),
        )
        .route(
            "/v1/buckets/{bucket}",
            axum::routing::delete(objects::delete_bucket),
        )
        .route("/v1/buckets/{bucket}/objects", get(objects::list_objects))
        .route(
            "/v1/buckets/{bucket}/objects/{*key}",
            put(objects::put_object)
                .get(objects::get_object)
                .head(objects::head_object)
                .delete(objects::delete_object)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/buckets/{bucket}/versions", get(objects::list_versions))
        .route(
            "/v1/images",
            post(images::import)
                .get(images::list)
                .delete(images::delete)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/storage", get(objects::storage_status))
        .route("/v1/storage/maintain", post(objects::maintain_now))
        .route(
            "/v1/s3/keys",
            post(s3keys::create_key).get(s3keys::list_keys),
        )
        .route(
            "/v1/s3/keys/{id}",
            axum::routing::delete(s3keys::delete_key),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            scopes::authorize,
        ))
        .fallback(|| async { ApiError::not_found("no such API route; see /v1/openapi.json") })
        .with_state(state)
}

/// Serves the API on `listener` within the default
/// [`stratus_http::Limits`] until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    control: Control,
    store: stratus_store::Store,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        control,
        store,
        stratus_http::Limits::default(),
        shutdown,
    )
    .await
}

/// [`serve`] within `limits` (connections, request heads; each route
/// bounds its own body).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    control: Control,
    store: stratus_store::Store,
    limits: stratus_http::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = hyper_util::service::TowerToHyperService::new(router(control, store));
    stratus_http::serve(listener, service, limits, shutdown)
        .await
        .map_err(|stratus_http::ServeError::Accept(e)| e)
}

/// Liveness and role of this replica.
#[utoipa::path(get, path = "/v1/health", tag = "cluster",
    responses((status = 200, body = Health)))]
async fn health(State(st): State<AppState>) -> Json<Health> {
    let s = st.control.local_status();
    Json(Health {
        status: "ok".into(),
        node_id: st.control.id(),
        role: s.role,
        leader: s.leader,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Health of the control plane: leader, replicas, replication lag, nodes.
#[utoipa::path(get, path = "/v1/status", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = marks::StatusView), (status = 401, body = ErrorBody)))]
async fn status(State(st): State<AppState>, _c: Caller) -> Json<marks::StatusView> {
    Json(marks::status_view(&st).await)
}

/// The tenant and token of the caller.
#[utoipa::path(get, path = "/v1/whoami", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(c: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: c.tenant,
        token_id: c.token_id,
        scope: c.scope,
        expires_ms: c.expires_ms,
    })
}

/// A reputation as shown (issue 16): agreeing results less the cuts, lost
/// results, the credibility they give and whether it may take trusted work.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct ReputationView {
    /// Agreeing results, less the cuts (a lost result cuts a third).
    pub score: u32,
    /// Lost results (failed storage challenges count as such).
    pub lost: u32,
    /// The probability that its next result is right, parts per million.
    pub credibility_ppm: u32,
    /// Whether it may take trusted work.
    pub eligible: bool,
}

impl From<stratus_verify::Reputation> for ReputationView {
    fn from(r: stratus_verify::Reputation) -> Self {
        ReputationView {
            score: r.score,
            lost: r.lost,
            credibility_ppm: r.credibility_ppm(),
            eligible: r.eligible(),
        }
    }
}

/// A node as shown: its record, its reputation and its owner's.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// The record.
    #[serde(flatten)]
    pub record: NodeRecord,
    /// The node's reputation.
    pub reputation: ReputationView,
    /// Its owner's (all its nodes' records added up).
    pub owner_reputation: ReputationView,
}

fn node_view(
    s: &stratus_state::State,
    record: NodeRecord,
    owner: stratus_verify::Reputation,
) -> NodeView {
    NodeView {
        reputation: s.reputation(&record.info.id).into(),
        owner_reputation: owner.into(),
        record,
    }
}

/// Registered nodes.
#[utoipa::path(get, path = "/v1/nodes", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, body = [NodeView]), (status = 401, body = ErrorBody)))]
async fn list_nodes(State(st): State<AppState>, _c: Caller) -> Json<Vec<NodeView>> {
    Json(st.control.state().read(|s| {
        // Owners' records once, not once per node.
        let owners = s.owner_reputations();
        s.nodes
            .values()
            .map(|n| {
                let owner = owners.get(&n.owner).copied().unwrap_or_default();
                node_view(s, n.clone(), owner)
            })
            .collect()
    }))
}

/// One node, by full id, unique id prefix (4+ characters) or unique name.
#[utoipa::path(get, path = "/v1/nodes/{id}", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "node id, unique prefix, or name")),
    responses((status = 200, body = NodeView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn get_node(
    State(st): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> ApiResult<NodeView> {
    let record = find_node(&st, &id)?;
    Ok(Json(st.control.state().read(|s| {
        let owner = s.owner_reputation(&record.owner);
        node_view(s, record, owner)
    })))
}

/// The node `id` names: its full id, its name, or 4+ leading characters of
/// its id.
pub(crate) fn find_node(st: &AppState, id: &str) -> Result<NodeRecord, ApiError> {
    let mut matches: Vec<NodeRecord> = st.control.state().read(|s| {
        s.nodes
            .values()
            .filter(|n| {
                let full = n.info.id.to_string();
                full == id || n.info.name == id || (id.len() >= 4 && full.starts_with(id))
            })
            .cloned()
            .collect()
    });
    match matches.len() {
        1 => matches
            .pop()
            .ok_or_else(|| ApiError::internal("lost match")),
        0 => Err(ApiError::not_found(format!(
            "no node matches {id:?}; see `stratus nodes ls`"
        ))),
        n => Err(ApiError::conflict(format!(
            "{n} nodes match {id:?}; give more of the id"
        ))),
    }
}

/// Adds a control replica (learner first, then voter). Admin only.
#[utoipa::path(post, path = "/v1/replicas", tag = "cluster", security(("bearer" = [])),
    request_body = AddReplica,
    responses((status = 200, body = ClusterStatus), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn add_replica(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<AddReplica>,
) -> ApiResult<ClusterStatus> {
    c.require_admin()?;
    st.control
        .change_membership(MembershipChange::Add(Peer {
            id: req.id,
            addr: req.addr,
        }))
        .await?;
    Ok(Json(st.control.cluster_status().await))
}

/// Removes a control replica. Admin only.
#[utoipa::path(delete, path = "/v1/replicas/{id}", tag = "cluster", security(("bearer" = [])),
    params(("id" = String, Path, description = "replica node id")),
    responses((status = 200, body = ClusterStatus), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn remove_replica(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ClusterStatus> {
    c.require_admin()?;
    let id: NodeId = id.parse()?;
    st.control
        .change_membership(MembershipChange::Remove(id))
        .await?;
    Ok(Json(st.control.cluster_status().await))
}

/// Tenants. Admin only.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = [Tenant]), (status = 403, body = ErrorBody)))]
async fn list_tenants(State(st): State<AppState>, c: Caller) -> ApiResult<Vec<Tenant>> {
    c.require_admin()?;
    Ok(Json(
        st.control
            .state()
            .read(|s| s.tenants.values().cloned().collect()),
    ))
}

async fn issue_token(
    st: &AppState,
    tenant: &str,
    scope: TokenScope,
    expires_ms: Option<u64>,
) -> Result<IssuedToken, ApiError> {
    let t = secrets::mint_token(tenant, now_ms(), scope, expires_ms);
    let token_id = t.record.id.clone();
    st.control
        .write(Command::IssueToken { record: t.record })
        .await?;
    Ok(IssuedToken {
        tenant: tenant.to_string(),
        token_id,
        token: t.token,
        scope,
        expires_ms,
    })
}

/// The scope and expiry of a token `caller` asks to mint for `tenant`:
/// never more rights than the caller's own token.
fn grant(
    caller: &Caller,
    tenant: &str,
    req: &CreateToken,
    now_ms: u64,
) -> Result<(TokenScope, Option<u64>), ApiError> {
    let forbidden = |m: String| ApiError::forbidden(m);
    let scope = req.scope.unwrap_or(match caller.scope {
        TokenScope::Admin if tenant != ADMIN_TENANT => TokenScope::Full,
        own => own,
    });
    if !caller.scope.covers(scope) {
        return Err(forbidden(format!(
            "a token of scope {} cannot mint a token of scope {scope}",
            caller.scope
        )));
    }
    if scope == TokenScope::Admin && tenant != ADMIN_TENANT {
        return Err(forbidden(format!(
            "only the {ADMIN_TENANT:?} tenant has tokens of scope admin, not {tenant:?}"
        )));
    }
    let expires_ms = match req.expires_in_secs {
        None => caller.expires_ms,
        Some(secs) if (1..=MAX_TOKEN_LIFETIME_SECS).contains(&secs) => {
            Some(now_ms.saturating_add(secs * 1000))
        }
        Some(secs) => {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs must be 1 to {MAX_TOKEN_LIFETIME_SECS} (ten years), got {secs}"
            )))
        }
    };
    if let Some(own) = caller.expires_ms {
        if expires_ms.is_none_or(|e| e > own) {
            return Err(forbidden(format!(
                "a token cannot outlive the token that mints it: yours expires in {} s",
                own.saturating_sub(now_ms) / 1000
            )));
        }
    }
    Ok((scope, expires_ms))
}

/// Creates a tenant and its first token. Admin only.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenant,
    responses((status = 201, body = IssuedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_tenant(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    c.require_admin()?;
    st.control
        .write(Command::CreateTenant {
            name: req.name.clone(),
            now_ms: now_ms(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(issue_token(&st, &req.name, TokenScope::Full, None).await?),
    ))
}

/// Issues another token for a tenant (the tenant itself or the admin),
/// with no more rights than the caller's token: a scope it covers and an
/// expiry no later than its own.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = CreateToken,
    responses((status = 201, body = IssuedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_token(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<CreateToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    c.require_tenant(&tenant)?;
    let (scope, expires_ms) = grant(&c, &tenant, &req, now_ms())?;
    Ok((
        StatusCode::CREATED,
        Json(issue_token(&st, &tenant, scope, expires_ms).await?),
    ))
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Token id.
    pub token_id: String,
    /// Tenant it acts for.
    pub tenant: String,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
    /// What it may do.
    pub scope: TokenScope,
    /// When it expires (ms since the Unix epoch); absent: never.
    pub expires_ms: Option<u64>,
}

/// Tokens of a tenant (ids only; secrets are never stored).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tokens", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [TokenView]), (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Vec<TokenView>> {
    c.require_tenant(&tenant)?;
    Ok(Json(st.control.state().read(|s| {
        s.tokens
            .values()
            .filter(|t| t.tenant == tenant)
            .map(|t| TokenView {
                token_id: t.id.clone(),
                tenant: t.tenant.clone(),
                created_ms: t.created_ms,
                scope: t.scope,
                expires_ms: t.expires_ms,
            })
            .collect()
    })))
}

/// Revokes a token of a tenant (the tenant itself or the admin). Revoking the
/// token in use is allowed; the admin's last token is not revocable.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{id}", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_token(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<WriteResult> {
    c.require_tenant(&tenant)?;
    // The admin keeps at least one working admin-scoped token.
    let now = now_ms();
    let operator = |t: &stratus_types::TokenRecord| t.scope == TokenScope::Admin && !t.expired(now);
    let (owner, last_operator) = st.control.state().read(|s| {
        let target = s.tokens.get(&id);
        (
            target.map(|t| t.tenant.clone()),
            target.is_some_and(operator) && s.tokens.values().filter(|t| operator(t)).count() <= 1,
        )
    });
    if owner.as_deref() != Some(tenant.as_str()) {
        return Err(ApiError::not_found(format!(
            "tenant {tenant:?} has no token {id:?}"
        )));
    }
    if last_operator {
        return Err(ApiError::conflict("refusing to revoke the last admin token: issue another one first (`stratus tenants token admin`)",
        ));
    }
    let applied = st.control.write(Command::RevokeToken { id }).await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}

/// Variables of a tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/vars", tag = "vars", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = [VarView]), (status = 403, body = ErrorBody)))]
async fn list_vars(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Vec<VarView>> {
    c.require_tenant(&tenant)?;
    Ok(Json(st.control.state().read(|s| {
        s.vars
            .get(&tenant)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| VarView {
                        key: k.clone(),
                        var: v.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    })))
}

/// One variable.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/vars/{key}", tag = "vars", security(("bearer" = [])),
    params(("tenant" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = VarView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_var(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<VarView> {
    c.require_tenant(&tenant)?;
    st.control
        .state()
        .read(|s| s.vars.get(&tenant).and_then(|m| m.get(&key)).cloned())
        .map(|var| {
            Json(VarView {
                key: key.clone(),
                var,
            })
        })
        .ok_or_else(|| ApiError::not_found(format!("variable {key:?} does not exist")))
}

/// Sets a variable; answers once it is committed by a quorum.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/vars/{key}", tag = "vars", security(("bearer" = [])),
    params(("tenant" = String, Path), ("key" = String, Path)), request_body = PutVar,
    responses((status = 200, body = WriteResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_var(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, key)): Path<(String, String)>,
    JsonBody(req): JsonBody<PutVar>,
) -> ApiResult<WriteResult> {
    c.require_tenant(&tenant)?;
    let applied = st
        .control
        .write(Command::PutVar {
            tenant,
            key,
            value: req.value,
            now_ms: now_ms(),
        })
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}

/// Deletes a variable.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/vars/{key}", tag = "vars", security(("bearer" = [])),
    params(("tenant" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_var(
    State(st): State<AppState>,
    c: Caller,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<WriteResult> {
    c.require_tenant(&tenant)?;
    let applied = st.control.write(Command::DeleteVar { tenant, key }).await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}
