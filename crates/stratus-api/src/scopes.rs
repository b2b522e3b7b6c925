//! Which token scope each route needs — decided here and nowhere else.
//!
//! [`ROUTES`] gives every route of [`crate::router`] an [`Area`];
//! [`allows`] says which [`TokenScope`] may do what in an area. The
//! [`authorize`] layer runs before every handler: it authenticates the
//! bearer token (unknown or revoked: 401; expired: 401 saying so), checks
//! the scope against the table (403 naming the scopes that would do) and
//! hands the [`Caller`] to the handler. A route missing from the table is
//! refused, so a new route cannot be served by accident to every token.
//! Handlers still check ownership (which tenant's thing it is).

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stratus_types::TokenScope;

use crate::auth::{authenticate, Caller};
use crate::error::ApiError;
use crate::AppState;

/// What a route touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Needs no token (health, the OpenAPI document).
    Public,
    /// Any valid token, whatever its scope (who am I, cluster status).
    AnyToken,
    /// Cluster administration: the operator only.
    Operator,
    /// The tenant's tokens and variables, and what every tenant may see of
    /// the cluster (nodes).
    Tenant,
    /// Buckets, objects, S3 keys, storage status.
    Storage,
    /// Modules, images, workloads, instances, logs, exec.
    Workloads,
}

/// Every route of the API (as written in the router) and its area.
pub const ROUTES: &[(&str, Area)] = &[
    ("/v1/health", Area::Public),
    ("/v1/openapi.json", Area::Public),
    ("/v1/status", Area::AnyToken),
    ("/v1/whoami", Area::AnyToken),
    ("/v1/nodes", Area::Tenant),
    ("/v1/nodes/{id}", Area::Tenant),
    ("/v1/nodes/{id}/drain", Area::Operator),
    ("/v1/nodes/marks", Area::Tenant),
    ("/v1/nodes/{id}/unmark", Area::Operator),
    ("/v1/nodes/{id}/ban", Area::Operator),
    ("/v1/join-tokens", Area::Operator),
    ("/v1/join-tokens/{id}", Area::Operator),
    ("/v1/replicas", Area::Operator),
    ("/v1/replicas/{id}", Area::Operator),
    ("/v1/tenants", Area::Operator),
    ("/v1/tenants/{tenant}/tokens", Area::Tenant),
    ("/v1/tenants/{tenant}/tokens/{id}", Area::Tenant),
    ("/v1/tenants/{tenant}/vars", Area::Tenant),
    ("/v1/tenants/{tenant}/vars/{*key}", Area::Tenant),
    ("/v1/tenants/{tenant}/quota", Area::Operator),
    ("/v1/quota", Area::AnyToken),
    ("/v1/account", Area::Tenant),
    ("/v1/account/history", Area::Tenant),
    ("/v1/account/order-key", Area::Tenant),
    ("/v1/tenants/{tenant}/deposit", Area::Operator),
    ("/v1/tenants/{tenant}/withdraw", Area::Operator),
    ("/v1/nodes/{id}/offer", Area::Tenant),
    ("/v1/market/offers", Area::Tenant),
    ("/v1/market/fee", Area::Tenant),
    ("/v1/market/deals", Area::Tenant),
    ("/v1/market/apps", Area::Tenant),
    ("/v1/market/apps/{name}", Area::Tenant),
    ("/v1/market/datasets", Area::Tenant),
    ("/v1/market/datasets/{name}", Area::Tenant),
    ("/v1/audit", Area::Tenant),
    ("/v1/audit/checkpoints", Area::Operator),
    ("/v1/audit/checkpoint", Area::Operator),
    ("/v1/modules", Area::Workloads),
    ("/v1/workloads", Area::Workloads),
    ("/v1/workloads/{tenant}/{name}", Area::Workloads),
    ("/v1/instances", Area::Workloads),
    ("/v1/instances/{id}", Area::Workloads),
    ("/v1/instances/{id}/logs", Area::Workloads),
    ("/v1/instances/{id}/exec", Area::Workloads),
    ("/v1/images", Area::Workloads),
    ("/v1/buckets", Area::Storage),
    ("/v1/buckets/{bucket}", Area::Storage),
    ("/v1/buckets/{bucket}/objects", Area::Storage),
    ("/v1/buckets/{bucket}/objects/{*key}", Area::Storage),
    ("/v1/buckets/{bucket}/versions", Area::Storage),
    ("/v1/storage", Area::Storage),
    ("/v1/storage/maintain", Area::Operator),
    ("/v1/s3/keys", Area::Storage),
    ("/v1/s3/keys/{id}", Area::Storage),
];

/// The area of a route, by its template; `None` if it is not in [`ROUTES`].
pub fn area(route: &str) -> Option<Area> {
    ROUTES.iter().find(|(r, _)| *r == route).map(|(_, a)| *a)
}

/// Whether a token of `scope` may send `method` to a route of `area`.
pub fn allows(scope: TokenScope, area: Area, method: &Method) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    match (scope, area) {
        (_, Area::Public | Area::AnyToken) | (TokenScope::Admin, _) => true,
        (_, Area::Operator) => false,
        (TokenScope::Full, _) => true,
        (TokenScope::ReadOnly, _) => read,
        (TokenScope::Storage, a) => a == Area::Storage,
        (TokenScope::Workloads, a) => a == Area::Workloads,
    }
}

/// The refusal of `caller` on `method` to a route of `area`, naming the
/// scopes that would do.
fn out_of_scope(caller: &Caller, area: Area, method: &Method) -> ApiError {
    let enough: Vec<&str> = TokenScope::ALL
        .into_iter()
        .filter(|s| allows(*s, area, method))
        .map(TokenScope::as_str)
        .collect();
    ApiError::forbidden(format!(
        "this request needs a token with scope {}; token {} has scope {}",
        enough.join(" or "),
        caller.token_id,
        caller.scope
    ))
}

/// The layer in front of every route: authenticates and checks the scope
/// (see the module docs), then passes the [`Caller`] on.
pub async fn authorize(
    State(st): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.as_ref().map(MatchedPath::as_str).unwrap_or("");
    let Some(area) = area(route) else {
        return ApiError::forbidden(format!(
            "route {route:?} has no scope assigned; no token may use it"
        ))
        .into_response();
    };
    if area == Area::Public {
        return next.run(req).await;
    }
    let caller = match authenticate(&st, req.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !allows(caller.scope, area, req.method()) {
        return out_of_scope(&caller, area, req.method()).into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path and method of the OpenAPI document has an area, so no
    /// route is refused for want of one (or served without thought).
    #[test]
    fn every_documented_route_has_an_area() {
        let doc: serde_json::Value =
            serde_json::from_str(&crate::openapi_json()).expect("openapi json");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() > 20);
        for path in paths.keys() {
            let found = ROUTES.iter().any(|(r, _)| r.replace("{*", "{") == *path);
            assert!(found, "{path} has no area in ROUTES");
        }
    }

    #[test]
    fn scopes_allow_their_areas_only() {
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        use TokenScope::*;
        for s in TokenScope::ALL {
            assert!(allows(s, Area::AnyToken, &get));
            assert_eq!(allows(s, Area::Operator, &get), s == Admin);
        }
        assert!(allows(Full, Area::Tenant, &post));
        assert!(allows(ReadOnly, Area::Storage, &get));
        assert!(allows(ReadOnly, Area::Workloads, &Method::HEAD));
        assert!(!allows(ReadOnly, Area::Storage, &delete));
        assert!(!allows(ReadOnly, Area::Workloads, &post));
        assert!(allows(Storage, Area::Storage, &delete));
        assert!(!allows(Storage, Area::Workloads, &get));
        assert!(!allows(Storage, Area::Tenant, &get));
        assert!(allows(Workloads, Area::Workloads, &post));
        assert!(!allows(Workloads, Area::Storage, &get));
        assert!(!allows(Workloads, Area::Tenant, &post));
    }
}
