//! Paid apps and datasets (issue 15, item 5): `POST /v1/market/apps` and
//! `POST /v1/market/datasets` publish one of the caller's (a module it
//! stores or one of its images; a prefix of one of its buckets),
//! `GET` lists them (any tenant: it is a market), `DELETE
//! /v1/market/{apps|datasets}/{name}` withdraws one. A deploy uses them
//! through its `market` block ([`deploy_command`]); who may read what is
//! [`stratus_state::catalog`]'s.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_market::Amount;
use stratus_spec::MarketSpec;
use stratus_state::catalog::{App, CatalogCommand, Dataset, ListingKind, Uses};
use stratus_state::Command;
use stratus_types::Payload;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState, JsonBody, WriteResult};

/// An app to publish: exactly one of `module` (a module the caller
/// uploaded, `blake3:<hex>`) and `image` (one of its images, `NAME[:TAG]`,
/// pinned to the version stored now).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishApp {
    /// Its name (the app is `TENANT/NAME`).
    pub name: String,
    /// A module the caller stores.
    #[serde(default)]
    pub module: Option<String>,
    /// One of the caller's images.
    #[serde(default)]
    pub image: Option<String>,
    /// Price per task, in the pool's smallest unit.
    pub price: u64,
    /// The owner declares the image deterministic (the same input gives
    /// the same output on every node), so that it may run verified
    /// (`market.trust` above 1). Only for an image.
    #[serde(default)]
    pub deterministic: bool,
}

/// A published app, as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppView {
    /// The app.
    #[serde(flatten)]
    pub app: App,
    /// Its owner declared it deterministic: it may run verified.
    pub deterministic: bool,
}

impl AppView {
    fn of(s: &stratus_state::State, app: &App) -> AppView {
        AppView {
            deterministic: s.is_deterministic_app(&format!("{}/{}", app.owner, app.name)),
            app: app.clone(),
        }
    }
}

/// A dataset to publish: a prefix of one of the caller's buckets.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishDataset {
    /// Its name (the dataset is `TENANT/NAME`).
    pub name: String,
    /// The caller's bucket.
    pub bucket: String,
    /// Key prefix (empty: the whole bucket).
    #[serde(default)]
    pub prefix: String,
    /// Price per task, in the pool's smallest unit.
    pub price: u64,
    /// The apps (`OWNER/NAME`) it may be used with; empty: any module
    /// (which can copy the data to its output).
    #[serde(default)]
    pub apps: Vec<String>,
}

/// Publishes (or re-prices) an app of the caller.
#[utoipa::path(post, path = "/v1/market/apps", tag = "market", security(("bearer" = [])),
    request_body = PublishApp,
    responses((status = 200, body = AppView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn publish_app(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<PublishApp>,
) -> ApiResult<AppView> {
    let module = match (&req.module, &req.image) {
        (Some(m), None) => m.clone(),
        (None, Some(image)) => {
            Payload::Image(st.store.resolve_image(&c.tenant, image)?.pinned()).to_string()
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `module` and `image`",
            ))
        }
    };
    st.control
        .write(Command::Catalog(CatalogCommand::PublishApp {
            tenant: c.tenant.clone(),
            name: req.name.clone(),
            module,
            price: Amount(req.price),
            now_ms: now_ms(),
        }))
        .await?;
    if req.deterministic {
        st.control
            .write(Command::Catalog(CatalogCommand::DeclareDeterministic {
                tenant: c.tenant.clone(),
                name: req.name.clone(),
            }))
            .await?;
    }
    let id = format!("{}/{}", c.tenant, req.name);
    st.control
        .state()
        .read(|s| s.apps.get(&id).map(|a| AppView::of(s, a)))
        .map(Json)
        .ok_or_else(|| ApiError::internal("the app vanished after it was published"))
}

/// Publishes (or changes) a dataset of the caller.
#[utoipa::path(post, path = "/v1/market/datasets", tag = "market", security(("bearer" = [])),
    request_body = PublishDataset,
    responses((status = 200, body = Dataset), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn publish_dataset(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<PublishDataset>,
) -> ApiResult<Dataset> {
    st.control
        .write(Command::Catalog(CatalogCommand::PublishDataset {
            tenant: c.tenant.clone(),
            name: req.name.clone(),
            bucket: req.bucket,
            prefix: req.prefix,
            price: Amount(req.price),
            apps: req.apps,
            now_ms: now_ms(),
        }))
        .await?;
    let id = format!("{}/{}", c.tenant, req.name);
    st.control
        .state()
        .read(|s| s.datasets.get(&id).cloned())
        .map(Json)
        .ok_or_else(|| ApiError::internal("the dataset vanished after it was published"))
}

/// Published apps.
#[utoipa::path(get, path = "/v1/market/apps", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = [AppView])))]
pub async fn list_apps(State(st): State<AppState>, _c: Caller) -> Json<Vec<AppView>> {
    Json(
        st.control
            .state()
            .read(|s| s.apps.values().map(|a| AppView::of(s, a)).collect()),
    )
}

/// Published datasets.
#[utoipa::path(get, path = "/v1/market/datasets", tag = "market", security(("bearer" = [])),
    responses((status = 200, body = [Dataset])))]
pub async fn list_datasets(State(st): State<AppState>, _c: Caller) -> Json<Vec<Dataset>> {
    Json(
        st.control
            .state()
            .read(|s| s.datasets.values().cloned().collect()),
    )
}

async fn unpublish(
    st: &AppState,
    c: &Caller,
    kind: ListingKind,
    name: String,
) -> ApiResult<WriteResult> {
    let applied = st
        .control
        .write(Command::Catalog(CatalogCommand::Unpublish {
            tenant: c.tenant.clone(),
            kind,
            name,
        }))
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}

/// Withdraws one of the caller's apps (workloads deployed with it keep
/// running; new deploys naming it are refused).
#[utoipa::path(delete, path = "/v1/market/apps/{name}", tag = "market", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 404, body = ErrorBody)))]
pub async fn delete_app(
    State(st): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
) -> ApiResult<WriteResult> {
    unpublish(&st, &c, ListingKind::App, name).await
}

/// Withdraws one of the caller's datasets.
#[utoipa::path(delete, path = "/v1/market/datasets/{name}", tag = "market", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 404, body = ErrorBody)))]
pub async fn delete_dataset(
    State(st): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
) -> ApiResult<WriteResult> {
    unpublish(&st, &c, ListingKind::Dataset, name).await
}

/// What a deploy's `market` block uses (nothing without one).
pub fn uses_of(market: Option<&MarketSpec>) -> Uses {
    Uses {
        app: market.and_then(|m| m.app.clone()),
        dataset: market.and_then(|m| m.dataset.clone()),
    }
}

/// The module string of a deploy that runs app `id` (what it runs now),
/// or 404.
pub fn app_module(st: &AppState, id: &str) -> Result<String, ApiError> {
    st.control
        .state()
        .read(|s| s.apps.get(id).map(|a| a.payload.to_string()))
        .ok_or_else(|| ApiError::not_found(format!("no app {id} is published")))
}

/// `deploy` wrapped to use what `uses` names (unchanged when nothing).
pub fn deploy_command(deploy: Command, uses: Uses) -> Command {
    if uses.is_empty() {
        deploy
    } else {
        Command::DeployUsing {
            deploy: Box::new(deploy),
            uses,
        }
    }
}
