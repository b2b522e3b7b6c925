//! The audit log (issue 15, item 6; `stratus_state::audit`):
//! `GET /v1/audit` (records, paged, in a time window: a tenant sees the
//! records that name it, the operator every record or one tenant's),
//! `GET /v1/audit/checkpoints` (the replicas' signed checkpoints, operator)
//! and `POST /v1/audit/checkpoint` (the operator asks for the head to be
//! signed now). The server only serves: `stratus audit verify` recomputes
//! the chain and checks the signatures itself
//! (`stratus_state::audit_verify`).

use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_state::audit::{AuditRecord, Checkpoint, MAX_PAGE};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState};

/// A page of audit records.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Tenant whose records (default: the caller's; the operator's default
    /// is every record).
    pub tenant: Option<String>,
    /// Only records after this seq (the previous page's `next`).
    #[serde(default)]
    pub after: u64,
    /// Only records at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub since_ms: u64,
    /// Only records before this time (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    /// Most records (default and at most 1000).
    pub limit: Option<usize>,
}

/// A page of records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPageView {
    /// The records, oldest first.
    pub records: Vec<AuditRecord>,
    /// The `after` of the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
    /// Seq of the last record of the whole log.
    pub head: u64,
    /// Seq of the last record signed by a checkpoint.
    pub signed_through: u64,
}

/// A page of checkpoints.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CheckpointQuery {
    /// Only checkpoints of records after this seq.
    #[serde(default)]
    pub after: u64,
    /// Most checkpoints (default and at most 1000).
    pub limit: Option<usize>,
}

/// Checkpoints, oldest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointsView {
    /// The checkpoints.
    pub checkpoints: Vec<Checkpoint>,
    /// The `after` of the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// What a forced checkpoint signed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Signed {
    /// Seq of the last record signed.
    pub signed_through: u64,
}

/// Audit records naming the caller's tenant (the operator: every record,
/// or one tenant's with `tenant=`), oldest first, paged.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditPageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AuditPageView> {
    let tenant = match q.tenant {
        Some(t) => {
            c.require_tenant(&t)?;
            Some(t)
        }
        None if c.is_admin() => None,
        None => Some(c.tenant.clone()),
    };
    let until = q.until_ms.unwrap_or(u64::MAX);
    if q.since_ms > until {
        return Err(ApiError::bad_request(format!(
            "since_ms {} is after until_ms {until}",
            q.since_ms
        )));
    }
    let view = st.control.state().read(|s| {
        let page = s.audit_page(
            tenant.as_deref(),
            q.after,
            q.since_ms..until,
            q.limit.unwrap_or(MAX_PAGE),
        );
        let (head, _, signed) = s.audit_head();
        AuditPageView {
            records: page.records,
            next: page.next,
            head,
            signed_through: signed,
        }
    });
    Ok(Json(view))
}

/// The replicas' signed checkpoints of the audit log (operator).
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = "audit", security(("bearer" = [])),
    params(CheckpointQuery),
    responses((status = 200, body = CheckpointsView), (status = 403, body = ErrorBody)))]
pub async fn checkpoints(
    State(st): State<AppState>,
    c: Caller,
    Query(q): Query<CheckpointQuery>,
) -> ApiResult<CheckpointsView> {
    c.require_admin()?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let checkpoints = st
        .control
        .state()
        .read(|s| s.audit_checkpoints(q.after, limit));
    let next = (checkpoints.len() == limit)
        .then(|| checkpoints.last().map(|c| c.seq))
        .flatten();
    Ok(Json(CheckpointsView { checkpoints, next }))
}

/// Signs the audit log's head now (operator): what `stratus audit verify`
/// asks first, so that it checks a fully signed log.
#[utoipa::path(post, path = "/v1/audit/checkpoint", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = Signed), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn checkpoint(State(st): State<AppState>, c: Caller) -> ApiResult<Signed> {
    c.require_admin()?;
    let signed_through = st.control.checkpoint_audit().await?;
    Ok(Json(Signed { signed_through }))
}
