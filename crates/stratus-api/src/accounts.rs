//! The market's accounts (issue 15): `GET /v1/account` (a tenant's balance
//! and escrow), `GET /v1/account/history` (its ledger entries, paged, in a
//! time window: history and statements), and the operator's
//! `POST /v1/tenants/{tenant}/deposit` and `/withdraw`, through the
//! settlement adapter ([`stratus_control::settlement`]).

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::now_ms;
use stratus_control::settlement::{Settlement, SettlementError};
use stratus_market::{Account, Amount};
pub use stratus_state::accounts::AccountView;
use stratus_state::accounts::{LedgerRecord, MarketCommand, MAX_PAGE};
use stratus_state::Command;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState, JsonBody};

/// Which tenant's account (the operator may name any; others only their
/// own).
#[derive(Debug, Deserialize, IntoParams)]
pub struct TenantQuery {
    /// Tenant (default: the caller's).
    pub tenant: Option<String>,
}

/// A page of ledger entries.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Tenant (default: the caller's). The operator may pass `*` for the
    /// whole ledger.
    pub tenant: Option<String>,
    /// Only entries after this seq (the previous page's `next`).
    #[serde(default)]
    pub after: u64,
    /// Only entries at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub from_ms: u64,
    /// Only entries before this time (ms since the Unix epoch).
    pub to_ms: Option<u64>,
    /// Most entries (default and at most 1000).
    pub limit: Option<usize>,
}

/// One movement of an entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// The account debited (`tenant:NAME`, `held:NAME`, `operator`,
    /// `external`).
    pub from: String,
    /// The account credited.
    pub to: String,
    /// How much.
    pub amount: u64,
}

/// One ledger entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    /// Position in the ledger.
    pub seq: u64,
    /// When it was posted (ms since the Unix epoch, leader clock).
    pub at_ms: u64,
    /// Why: deposit, withdrawal, hold, settlement, refund, storage_bill.
    pub reason: String,
    /// What it refers to (deal, instance, bucket, node, external).
    #[schema(value_type = Object)]
    pub refs: serde_json::Value,
    /// The movements.
    pub transfers: Vec<TransferView>,
}

/// A page of entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    /// The entries, oldest first.
    pub entries: Vec<EntryView>,
    /// The `after` of the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// A deposit or withdrawal the operator records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MoneyMove {
    /// How much, in the pool's smallest unit (> 0).
    pub amount: u64,
    /// The operator's reference of the payment outside the pool.
    pub reference: String,
}

fn view(st: &AppState, tenant: &str) -> Result<AccountView, ApiError> {
    st.control.state().read(|s| {
        if !s.tenants.contains_key(tenant) {
            return Err(ApiError::not_found(format!(
                "tenant {tenant:?} does not exist"
            )));
        }
        Ok(s.account(tenant))
    })
}

fn entry_view(r: LedgerRecord) -> EntryView {
    let name = |a: &Account| a.to_string();
    EntryView {
        seq: r.seq,
        at_ms: r.at_ms,
        reason: serde_json::to_value(r.entry.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        refs: serde_json::to_value(&r.entry.refs).unwrap_or_default(),
        transfers: r
            .entry
            .transfers
            .iter()
            .map(|t| TransferView {
                from: name(&t.from),
                to: name(&t.to),
                amount: t.amount.0,
            })
            .collect(),
    }
}

/// The caller's account (or, for the operator, any tenant's).
#[utoipa::path(get, path = "/v1/account", tag = "market", security(("bearer" = [])),
    params(TenantQuery),
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn account(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<TenantQuery>,
) -> ApiResult<AccountView> {
    let tenant = q.tenant.unwrap_or_else(|| c.tenant.clone());
    c.require_tenant(&tenant)?;
    Ok(Json(view(&st, &tenant)?))
}

/// Ledger entries concerning the caller's tenant (or, for the operator, any
/// tenant's, or all with `tenant=*`), oldest first, paged.
#[utoipa::path(get, path = "/v1/account/history", tag = "market", security(("bearer" = [])),
    params(HistoryQuery),
    responses((status = 200, body = HistoryView), (status = 403, body = ErrorBody)))]
pub async fn history(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<HistoryView> {
    let tenant = q.tenant.unwrap_or_else(|| c.tenant.clone());
    let all = tenant == "*";
    if all {
        c.require_admin()?;
    } else {
        c.require_tenant(&tenant)?;
    }
    let to_ms = q.to_ms.unwrap_or(u64::MAX);
    if q.from_ms > to_ms {
        return Err(ApiError::bad_request(format!(
            "from_ms {} is after to_ms {to_ms}",
            q.from_ms
        )));
    }
    let page = st.control.state().read(|s| {
        s.ledger_page(
            (!all).then_some(tenant.as_str()),
            q.after,
            q.from_ms..to_ms,
            q.limit.unwrap_or(MAX_PAGE),
        )
    });
    Ok(Json(HistoryView {
        entries: page.records.into_iter().map(entry_view).collect(),
        next: page.next,
    }))
}

fn settlement_error(e: SettlementError) -> ApiError {
    match e {
        SettlementError::Invalid(m) => ApiError::bad_request(m),
        SettlementError::Failed(m) => ApiError::conflict(m),
    }
}

fn check_amount(amount: u64) -> Result<Amount, ApiError> {
    if amount == 0 {
        return Err(ApiError::bad_request("amount must be more than 0"));
    }
    Ok(Amount(amount))
}

/// Records money that entered the pool for a tenant (the operator, through
/// the settlement adapter).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/deposit", tag = "market", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = MoneyMove,
    responses((status = 200, body = AccountView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deposit(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
    JsonBody(m): JsonBody<MoneyMove>,
) -> ApiResult<AccountView> {
    c.require_admin()?;
    let amount = check_amount(m.amount)?;
    view(&st, &tenant)?;
    let reference = st
        .settlement
        .confirm_deposit(&tenant, amount.0, &m.reference)
        .await
        .map_err(settlement_error)?;
    st.control
        .write(Command::Market(MarketCommand::Deposit {
            tenant: tenant.clone(),
            amount,
            reference,
            now_ms: now_ms(),
        }))
        .await?;
    Ok(Json(view(&st, &tenant)?))
}

/// Pays money out of a tenant's spendable balance (the operator, through
/// the settlement adapter): debited first, then paid out.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/withdraw", tag = "market", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = MoneyMove,
    responses((status = 200, body = AccountView), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn withdraw(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
    JsonBody(m): JsonBody<MoneyMove>,
) -> ApiResult<AccountView> {
    c.require_admin()?;
    let amount = check_amount(m.amount)?;
    view(&st, &tenant)?;
    st.settlement
        .check_reference(&m.reference)
        .map_err(settlement_error)?;
    st.control
        .write(Command::Market(MarketCommand::Withdraw {
            tenant: tenant.clone(),
            amount,
            reference: m.reference.clone(),
            now_ms: now_ms(),
        }))
        .await?;
    st.settlement
        .pay_out(&tenant, amount.0, &m.reference)
        .await
        .map_err(|e| {
            ApiError::conflict(format!(
                "{amount} was debited from {tenant} but the {} adapter did not pay it out ({e}); re-credit it with a deposit",
                st.settlement.name()
            ))
        })?;
    Ok(Json(view(&st, &tenant)?))
}

/// The adapter the API uses (the built-in one until the composition root
/// chooses another).
pub(crate) fn default_settlement() -> std::sync::Arc<dyn Settlement> {
    std::sync::Arc::new(stratus_control::settlement::OperatorRecorded)
}
