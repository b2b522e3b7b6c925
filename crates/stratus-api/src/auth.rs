//! Bearer-token authentication and tenant authorization.
//!
//! [`authenticate`] checks a token; [`crate::scopes`] decides what its scope
//! allows; handlers check ownership with [`Caller::require_tenant`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use stratus_control::{now_ms, secrets};
use stratus_types::{TokenScope, ADMIN_TENANT};

use crate::error::ApiError;
use crate::AppState;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Tenant the token acts for.
    pub tenant: String,
    /// Id of the token used.
    pub token_id: String,
    /// What the token may do.
    pub scope: TokenScope,
    /// When the token expires (ms since the Unix epoch), if ever.
    pub expires_ms: Option<u64>,
}

impl Caller {
    /// Whether the caller is the cluster administrator (an admin-scoped
    /// token, which only the admin tenant has).
    pub fn is_admin(&self) -> bool {
        self.tenant == ADMIN_TENANT && self.scope == TokenScope::Admin
    }

    /// Refuses callers other than the administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "tenant {:?} may not do this: it needs a token of scope admin",
                self.tenant
            )))
        }
    }

    /// Refuses callers that are neither `tenant` nor the administrator.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.is_admin() || self.tenant == tenant {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "tenant {:?} may not access tenant {tenant:?}",
                self.tenant
            )))
        }
    }
}

/// Who presents the bearer token in `headers`: the token must exist (not
/// revoked) in this replica's applied state, match its secret and not have
/// expired by this replica's clock.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthenticated("missing credentials: send `Authorization: Bearer <token>` (the admin token is in the bootstrap replica's data directory, file admin.token)",
            )
        })?;
    let value = header.to_str().unwrap_or_default();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthenticated("the Authorization header must read `Bearer <token>`")
        })?;
    let invalid = || ApiError::unauthenticated("invalid or revoked token");
    let (id, secret) = secrets::parse_token(token).ok_or_else(invalid)?;
    let record = state
        .control
        .state()
        .read(|s| s.token(id).cloned())
        .ok_or_else(invalid)?;
    if !secrets::token_matches(&record, secret) {
        return Err(invalid());
    }
    let now = now_ms();
    if let Some(expires_ms) = record.expires_ms.filter(|_| record.expired(now)) {
        return Err(ApiError::unauthenticated(format!(
                "token {} expired {} s ago (at {expires_ms} ms since the Unix epoch); ask for a new one",
                record.id,
                now.saturating_sub(expires_ms) / 1000
            ),
        ));
    }
    Ok(Caller {
        tenant: record.tenant,
        token_id: record.id,
        scope: record.scope,
        expires_ms: record.expires_ms,
    })
}

/// The caller authenticated by [`crate::scopes::authorize`], which runs
/// before every handler.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("this route is not behind the authorization layer"))
    }
}
