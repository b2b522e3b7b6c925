//! Join credentials and bans (operator only):
//! `GET/POST /v1/join-tokens`, `DELETE /v1/join-tokens/{id}`,
//! `POST /v1/nodes/{id}/ban`.
//!
//! A join credential (`stj_<id>_<secret>_<pin>`) joins nodes owned by its
//! tenant and pins the cluster (see `stratus_net::cluster`); its secret is
//! shown once, at creation, and the replicas keep only its SHA-256.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::joining::JoinCredentialSpec;
use stratus_control::now_ms;
use stratus_state::nodes::JoinCredentialRecord;
use stratus_state::Command;
use stratus_types::{NodeId, NodeRecord};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::{ApiResult, AppState, JsonBody, WriteResult};

/// Longest lifetime a join credential may be given (one year).
pub const MAX_JOIN_TOKEN_TTL_S: u64 = 365 * 24 * 3600;

/// Request to create a join credential.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateJoinToken {
    /// Tenant owning the nodes it joins (default: the admin tenant).
    #[serde(default)]
    pub owner: Option<String>,
    /// Seconds until it stops joining new nodes (default: never).
    #[serde(default)]
    pub expires_in_s: Option<u64>,
    /// Consumed by the first node that joins with it.
    #[serde(default)]
    pub once: bool,
    /// Make it the default credential, replacing the current one (rotation).
    #[serde(default)]
    pub default: bool,
}

/// A new join credential (its secret is shown only this once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedJoinToken {
    /// `stj_<id>_<secret>_<pin>`: give it to `stratus node --join-token`.
    pub credential: String,
    /// What the replicas keep.
    pub record: JoinCredentialRecord,
}

/// Creates a join credential. Admin only.
#[utoipa::path(post, path = "/v1/join-tokens", tag = "nodes", security(("bearer" = [])),
    request_body = CreateJoinToken,
    responses((status = 201, body = IssuedJoinToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    c: Caller,
    JsonBody(req): JsonBody<CreateJoinToken>,
) -> Result<(StatusCode, Json<IssuedJoinToken>), ApiError> {
    c.require_admin()?;
    let expires_ms = match req.expires_in_s {
        Some(s) if s == 0 || s > MAX_JOIN_TOKEN_TTL_S => {
            return Err(ApiError::bad_request(format!(
                "expires_in_s is {s}; give 1 to {MAX_JOIN_TOKEN_TTL_S} seconds"
            )))
        }
        Some(s) => Some(now_ms().saturating_add(s.saturating_mul(1000))),
        None => None,
    };
    let new = st
        .control
        .create_join_credential(JoinCredentialSpec {
            owner: req.owner,
            expires_ms,
            once: req.once,
            default: req.default,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedJoinToken {
            credential: new.credential,
            record: new.record,
        }),
    ))
}

/// Lists the join credentials (never their secrets). Admin only.
#[utoipa::path(get, path = "/v1/join-tokens", tag = "nodes", security(("bearer" = [])),
    responses((status = 200, body = [JoinCredentialRecord]), (status = 403, body = ErrorBody)))]
pub async fn list(State(st): State<AppState>, c: Caller) -> ApiResult<Vec<JoinCredentialRecord>> {
    c.require_admin()?;
    Ok(Json(st.control.state().read(|s| {
        s.joining.credentials.values().cloned().collect()
    })))
}

/// Revokes a join credential: it joins no new node (nodes it joined stay).
/// Admin only.
#[utoipa::path(delete, path = "/v1/join-tokens/{id}", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "credential id")),
    responses((status = 200, body = WriteResult), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<WriteResult> {
    c.require_admin()?;
    let applied = st
        .control
        .write(Command::RevokeJoinCredential { id })
        .await?;
    Ok(Json(WriteResult {
        index: applied.index,
    }))
}

/// A node just banned.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Banned {
    /// The node's record now (lost, banned).
    pub node: NodeRecord,
    /// Pieces it held, now repaired elsewhere.
    pub pieces: u64,
    /// Instances it ran, now placed elsewhere.
    pub instances: u64,
}

/// Bans a node for good: it is lost, its instances and pieces move
/// elsewhere, and its key can never register again. Admin only.
#[utoipa::path(post, path = "/v1/nodes/{id}/ban", tag = "nodes", security(("bearer" = [])),
    params(("id" = String, Path, description = "full node id")),
    responses((status = 200, body = Banned), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn ban(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Banned> {
    c.require_admin()?;
    let node: NodeId = id.parse()?;
    if !st.control.state().read(|s| s.nodes.contains_key(&node)) {
        return Err(ApiError::not_found(format!(
            "node {node} is not registered; see `stratus nodes ls`"
        )));
    }
    st.control.ban_node(node).await?;
    let banned = st.control.state().read(|s| {
        let pieces = s.store.slots_on(&node).len() as u64;
        let instances = s
            .instances
            .values()
            .filter(|i| i.node == node && !i.state.is_terminal())
            .count() as u64;
        s.nodes.get(&node).cloned().map(|n| Banned {
            node: n,
            pieces,
            instances,
        })
    });
    banned
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("node {node} is not registered")))
}
