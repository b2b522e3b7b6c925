//! Per-tenant quotas: `GET/PUT /v1/tenants/{tenant}/quota` (the operator)
//! and `GET /v1/quota` (the caller's own tenant).
//!
//! The limits are enforced by the replicated state machine
//! ([`stratus_state::quotas`]); a write past one is refused with
//! `quota_exceeded` (HTTP 403) naming the quota, its limit and the use.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_state::quotas::{QuotaChanges, QuotaLine};
use stratus_state::Command;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState, JsonBody};

/// A tenant's quotas and what it uses of each.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaView {
    /// Tenant.
    pub tenant: String,
    /// One line per quota; a `limit` of 18446744073709551615 is unlimited.
    pub quotas: Vec<QuotaLine>,
}

fn view(st: &AppState, tenant: &str) -> Result<QuotaView, ApiError> {
    st.control.state().read(|s| {
        if !s.tenants.contains_key(tenant) {
            return Err(ApiError::not_found(format!(
                "tenant {tenant:?} does not exist"
            )));
        }
        Ok(QuotaView {
            tenant: tenant.to_string(),
            quotas: s.quota_report(tenant),
        })
    })
}

/// A tenant's quotas and use. Admin only.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/quota", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    responses((status = 200, body = QuotaView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_quota(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
) -> ApiResult<QuotaView> {
    c.require_admin()?;
    Ok(Json(view(&st, &tenant)?))
}

/// Sets quotas of a tenant: a number sets the limit, `null` returns it to
/// the default; quotas not named keep theirs. Admin only.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/quota", tag = "tenants", security(("bearer" = [])),
    params(("tenant" = String, Path)),
    request_body(content = std::collections::BTreeMap<String, Option<u64>>, description = "quota name (stored_bytes, objects, buckets, uploads, workloads, instances, modules, module_bytes, vars, tokens, access_keys) → limit, or null for the default"),
    responses((status = 200, body = QuotaView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_quota(
    State(st): State<AppState>,
    c: Caller,
    Path(tenant): Path<String>,
    JsonBody(changes): JsonBody<QuotaChanges>,
) -> ApiResult<QuotaView> {
    c.require_admin()?;
    st.control
        .write(Command::SetQuota {
            tenant: tenant.clone(),
            changes,
        })
        .await?;
    Ok(Json(view(&st, &tenant)?))
}

/// The caller's tenant's quotas and use.
#[utoipa::path(get, path = "/v1/quota", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = QuotaView), (status = 401, body = ErrorBody)))]
pub async fn my_quota(State(st): State<AppState>, c: Caller) -> ApiResult<QuotaView> {
    Ok(Json(view(&st, &c.tenant)?))
}
