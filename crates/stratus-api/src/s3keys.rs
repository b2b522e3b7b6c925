//! S3 access keys: `POST/GET /v1/s3/keys`, `DELETE /v1/s3/keys/{id}`.
//!
//! An access key signs S3 requests (SigV4) to the S3 gateway of any control
//! replica and acts for one tenant. Its secret is shown once, at creation;
//! the control replicas keep it (SigV4 verification needs the secret itself).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use stratus_control::{now_ms, secrets};
use stratus_state::objects::StoreCommand;
use stratus_state::Command;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::OptionalJsonBody;
use crate::{ApiResult, AppState};

/// Request to create an S3 access key.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateS3Key {
    /// Tenant the key acts for (default: the caller's; another tenant's
    /// only for the administrator).
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A new S3 access key, with its secret (shown only this once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedS3Key {
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key: String,
    /// Secret key (`AWS_SECRET_ACCESS_KEY`).
    pub secret: String,
    /// Tenant it acts for.
    pub tenant: String,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
}

/// An S3 access key as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct S3KeyView {
    /// Access key id.
    pub access_key: String,
    /// Tenant it acts for.
    pub tenant: String,
    /// Creation time (ms since the Unix epoch).
    pub created_ms: u64,
}

/// Creates an S3 access key for the caller's tenant (or, for the admin, any
/// tenant's). The secret is in the answer only. S3 keys do not expire, so
/// a token that expires may not create one (403).
#[utoipa::path(post, path = "/v1/s3/keys", tag = "s3", security(("bearer" = [])),
    request_body = CreateS3Key,
    responses((status = 201, body = IssuedS3Key), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_key(
    State(st): State<AppState>,
    c: Caller,
    // The body is optional: none means "a key for my tenant".
    OptionalJsonBody(req): OptionalJsonBody<CreateS3Key>,
) -> Result<(StatusCode, Json<IssuedS3Key>), ApiError> {
    // S3 keys do not expire: a key made by an expiring token would outlive it.
    if c.expires_ms.is_some() {
        return Err(ApiError::forbidden(format!(
                "S3 keys do not expire, so token {} (which does) may not create one; use a token without expiry",
                c.token_id
            ),
        ));
    }
    let tenant = match req.tenant {
        Some(t) if t != c.tenant => {
            c.require_admin()?;
            t
        }
        _ => c.tenant.clone(),
    };
    let access_key = format!("STRX{}", secrets::random_hex(8).to_ascii_uppercase());
    let secret = secrets::random_hex(20);
    let created_ms = now_ms();
    st.control
        .write(Command::Store(StoreCommand::CreateAccessKey {
            access_key: access_key.clone(),
            secret: st.control.seal(
                &stratus_state::sealing::s3_secret_label(&access_key),
                secret.as_bytes(),
            )?,
            tenant: tenant.clone(),
            created_ms,
        }))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedS3Key {
            access_key,
            secret,
            tenant,
            created_ms,
        }),
    ))
}

/// S3 access keys of the caller's tenant (every tenant's for the admin).
#[utoipa::path(get, path = "/v1/s3/keys", tag = "s3", security(("bearer" = [])),
    responses((status = 200, body = [S3KeyView])))]
pub async fn list_keys(State(st): State<AppState>, c: Caller) -> ApiResult<Vec<S3KeyView>> {
    Ok(Json(st.control.state().read(|s| {
        s.store
            .access_keys
            .iter()
            .filter(|(_, k)| c.is_admin() || k.tenant == c.tenant)
            .map(|(id, k)| S3KeyView {
                access_key: id.clone(),
                tenant: k.tenant.clone(),
                created_ms: k.created_ms,
            })
            .collect()
    })))
}

/// Deletes an S3 access key of the caller's tenant (any key for the admin).
#[utoipa::path(delete, path = "/v1/s3/keys/{id}", tag = "s3", security(("bearer" = [])),
    params(("id" = String, Path, description = "access key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_key(
    State(st): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_request("empty access key id"));
    }
    st.control
        .write(Command::Store(StoreCommand::DeleteAccessKey {
            access_key: id,
            tenant: (!c.is_admin()).then(|| c.tenant.clone()),
        }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
