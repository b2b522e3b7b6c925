//! Lenders' offers (issue 15, item 2): `PUT/DELETE /v1/nodes/{id}/offer`
//! (the node's owner, or the operator) and `GET /v1/market/offers`
//! (anyone with a token), filterable by region, site, energy source,
//! price and availability now.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_market::{Amount, Availability, Offer, Prices};
use stratus_state::accounts::MarketCommand;
use stratus_state::Command;
use stratus_types::{EnergySource, NodeStatus};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{find_node, ApiResult, AppState, JsonBody, WriteResult};

/// A node's offer as set and shown: prices in the pool's smallest unit.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct OfferSpec {
    /// Per CPU-second used.
    pub cpu_second: u64,
    /// Per GiB-hour of memory (peak × wall time).
    pub memory_gib_hour: u64,
    /// Per GiB-month stored.
    pub storage_gib_month: u64,
    /// Per GiB served.
    pub egress_gib: u64,
    /// Per task started (what fetching and compiling the module costs the
    /// lender; paid even by a task that uses almost nothing).
    pub per_task: u64,
    /// When it takes work, weekly UTC windows: `mon-fri 18:00-08:00, sat-sun`
    /// (empty or `always`: always).
    pub available: String,
}

/// An offer in the market.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfferView {
    /// Node id.
    pub node: String,
    /// Node name.
    pub name: String,
    /// The lender (the node's owner).
    pub owner: String,
    /// Region.
    pub region: String,
    /// Site.
    pub site: String,
    /// Energy source.
    pub energy: EnergySource,
    /// Ready or lost.
    pub status: NodeStatus,
    /// The offer.
    pub offer: OfferSpec,
    /// Whether its availability includes now.
    pub available_now: bool,
}

/// Filters of the offer list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default)]
pub struct OfferQuery {
    /// Only nodes of this region.
    pub region: Option<String>,
    /// Only nodes of this site.
    pub site: Option<String>,
    /// Only nodes on this energy source (solar, wind, hydro, grid, ...).
    pub energy: Option<String>,
    /// Only offers at most this price per CPU-second.
    pub max_cpu_second: Option<u64>,
    /// Only offers available now.
    pub available_now: bool,
}

fn spec_of(o: &Offer, task: Amount) -> OfferSpec {
    OfferSpec {
        cpu_second: o.prices.cpu_second.0,
        memory_gib_hour: o.prices.memory_gib_hour.0,
        storage_gib_month: o.prices.storage_gib_month.0,
        egress_gib: o.prices.egress_gib.0,
        per_task: task.0,
        available: o.availability.to_string(),
    }
}

fn offer_of(s: &OfferSpec) -> Result<Offer, ApiError> {
    Ok(Offer {
        prices: Prices {
            cpu_second: Amount(s.cpu_second),
            memory_gib_hour: Amount(s.memory_gib_hour),
            storage_gib_month: Amount(s.storage_gib_month),
            egress_gib: Amount(s.egress_gib),
        },
        availability: Availability::parse(&s.available)
            .map_err(|e| ApiError::bad_request(format!("available: {e}")))?,
    })
}

async fn set(
    st: &AppState,
    c: &Caller,
    id: &str,
    offer: Option<Offer>,
    task: Amount,
) -> Result<u64, ApiError> {
    let node = find_node(st, id)?;
    if !(c.is_admin() || node.owner == c.tenant) {
        return Err(ApiError::forbidden(format!(
            "node {} is lent by {:?}; only its owner or the operator sets its offer",
            node.info.name, node.owner
        )));
    }
    let applied = st
        .control
        .write(Command::Market(MarketCommand::SetOfferWithTask {
            node: node.info.id,
            offer,
            task,
        }))
        .await?;
    Ok(applied.index)
}

/// Sets a node's offer (its owner, or the operator).
#[utoipa::path(put, path = "/v1/nodes/{id}/offer", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = OfferSpec,
    responses((status = 200, body = OfferSpec), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_offer(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(spec): JsonBody<OfferSpec>,
) -> ApiResult<OfferSpec> {
    let offer = offer_of(&spec)?;
    let task = Amount(spec.per_task);
    let shown = spec_of(&offer, task);
    set(&st, &c, &id, Some(offer), task).await?;
    Ok(Json(shown))
}

/// Withdraws a node's offer (its owner, or the operator).
#[utoipa::path(delete, path = "/v1/nodes/{id}/offer", tag = "market", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_offer(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<WriteResult> {
    let index = set(&st, &c, &id, None, Amount::ZERO).await?;
    Ok(Json(WriteResult { index }))
}

/// Offers of the market, cheapest CPU first.
#[utoipa::path(get, path = "/v1/market/offers", tag = "market", security(("bearer" = [])),
    params(OfferQuery),
    responses((status = 200, body = [OfferView]), (status = 400, body = ErrorBody)))]
pub async fn list_offers(
    State(st): State<AppState>,
    _c: Caller,
    Query(q): Query<OfferQuery>,
) -> ApiResult<Vec<OfferView>> {
    let energy = q
        .energy
        .as_deref()
        .map(str::parse::<EnergySource>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("energy: {e}")))?;
    let now = now_ms();
    let mut list: Vec<OfferView> = st.control.state().read(|s| {
        s.offers
            .iter()
            .filter_map(|(id, o)| {
                let n = s.nodes.get(id)?;
                let a = &n.info.attributes;
                let keep = q.region.as_ref().is_none_or(|r| *r == a.region)
                    && q.site.as_ref().is_none_or(|x| *x == a.site)
                    && energy.is_none_or(|e| e == a.energy)
                    && q.max_cpu_second.is_none_or(|m| o.prices.cpu_second.0 <= m)
                    && (!q.available_now || o.availability.available_at(now))
                    && !n.banned;
                keep.then(|| OfferView {
                    node: id.to_string(),
                    name: n.info.name.clone(),
                    owner: n.owner.clone(),
                    region: a.region.clone(),
                    site: a.site.clone(),
                    energy: a.energy,
                    status: n.status,
                    offer: spec_of(o, s.task_prices.get(id).copied().unwrap_or_default()),
                    available_now: o.availability.available_at(now),
                })
            })
            .collect()
    });
    list.sort_by(|a, b| (a.offer.cpu_second, &a.name).cmp(&(b.offer.cpu_second, &b.name)));
    Ok(Json(list))
}
