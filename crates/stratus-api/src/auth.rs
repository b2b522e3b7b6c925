//! Bearer-token authentication and tenant authorization.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use stratus_control::secrets;
use stratus_types::{ErrorCode, ADMIN_TENANT};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Tenant the token acts for.
    pub tenant: String,
    /// Id of the token used.
    pub token_id: String,
}

impl Caller {
    /// Whether the caller is the cluster administrator.
    pub fn is_admin(&self) -> bool {
        self.tenant == ADMIN_TENANT
    }

    /// Refuses callers other than the administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "tenant {:?} may not do this: it needs the admin token",
                    self.tenant
                ),
            ))
        }
    }

    /// Refuses callers that are neither `tenant` nor the administrator.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.is_admin() || self.tenant == tenant {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("tenant {:?} may not access tenant {tenant:?}", self.tenant),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "missing credentials: send `Authorization: Bearer <token>` (the admin token is in the bootstrap replica's data directory, file admin.token)",
                )
            })?;
        let value = header.to_str().unwrap_or_default();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "the Authorization header must read `Bearer <token>`",
                )
            })?;
        let invalid = || ApiError::new(ErrorCode::Unauthenticated, "invalid or revoked token");
        let (id, secret) = secrets::parse_token(token).ok_or_else(invalid)?;
        let record = state
            .control
            .state()
            .read(|s| s.token(id).cloned())
            .ok_or_else(invalid)?;
        if !secrets::token_matches(&record, secret) {
            return Err(invalid());
        }
        Ok(Caller {
            tenant: record.tenant,
            token_id: record.id,
        })
    }
}
