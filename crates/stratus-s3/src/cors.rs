//! CORS: a bucket's rules (Put/Get/DeleteBucketCors) and the HTTP layer that
//! applies them, so browsers and web consoles can read and upload.
//!
//! A rule names allowed origins (each with at most one `*`), methods (`GET`,
//! `PUT`, `HEAD`, `POST`, `DELETE`), request headers (at most one `*` each,
//! case-insensitive), headers exposed to scripts, and how long a browser may
//! cache a preflight. A configuration holds 1 to [`MAX_CORS_RULES`] rules;
//! the first rule matching a request's origin, method and headers applies.
//!
//! [`Cors`] sits in front of s3s (which neither routes `OPTIONS` nor adds
//! CORS headers): a preflight `OPTIONS /bucket/...` is answered without
//! authentication — 200 with the `Access-Control-*` headers when a rule
//! matches, 403 otherwise (400 without `Origin` or
//! `Access-Control-Request-Method`) — and any other response to a request
//! whose `Origin` and method match a rule gets `Access-Control-Allow-Origin`,
//! `-Allow-Methods`, `-Expose-Headers` and `Vary: Origin`. CORS grants
//! nothing by itself: the request behind it is still authenticated and
//! authorized as any other. The layer reads path-style addresses only (the
//! bucket is the first path segment), which is what [`crate::serve`] serves.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use stratus_http::TimedBody;

use crate::backend::Backend;

/// The most rules a CORS configuration may hold (AWS's limit).
pub const MAX_CORS_RULES: usize = 100;
/// The most origins, methods or headers of one rule.
pub const MAX_CORS_LIST: usize = 100;

/// The methods a rule may allow.
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One CORS rule, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// The rule's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Allowed origins (at most one `*` each).
    pub allowed_origins: Vec<String>,
    /// Allowed methods.
    pub allowed_methods: Vec<String>,
    /// Allowed request headers (at most one `*` each).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a preflight may be cached, in seconds.
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

/// A bucket's CORS configuration, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfig {
    /// The rules, first match wins.
    pub rules: Vec<CorsRule>,
}

/// Why a CORS configuration is refused (`InvalidRequest`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// No rules, or too many.
    #[error("a CORS configuration holds 1 to {MAX_CORS_RULES} rules, not {0}")]
    RuleCount(usize),
    /// A list of a rule is empty where it may not be, or too long.
    #[error("a CORS rule's {0} must hold 1 to {MAX_CORS_LIST} entries")]
    ListSize(&'static str),
    /// An origin or header with more than one `*`.
    #[error("{0:?} has more than one wildcard \"*\"")]
    Wildcards(String),
    /// A method CORS rules cannot allow.
    #[error("Found unsupported HTTP method in CORS config. Unsupported method is {0}")]
    Method(String),
    /// A negative `MaxAgeSeconds`.
    #[error("MaxAgeSeconds must not be negative")]
    MaxAge,
}

impl CorsConfig {
    /// Checks the limits of the module doc.
    pub fn validate(&self) -> Result<(), CorsError> {
        if self.rules.is_empty() || self.rules.len() > MAX_CORS_RULES {
            return Err(CorsError::RuleCount(self.rules.len()));
        }
        for r in &self.rules {
            let lists = [
                ("AllowedOrigin", &r.allowed_origins, true),
                ("AllowedMethod", &r.allowed_methods, true),
                ("AllowedHeader", &r.allowed_headers, false),
                ("ExposeHeader", &r.expose_headers, false),
            ];
            for (name, list, required) in lists {
                if (required && list.is_empty()) || list.len() > MAX_CORS_LIST {
                    return Err(CorsError::ListSize(name));
                }
            }
            for w in r.allowed_origins.iter().chain(&r.allowed_headers) {
                if w.matches('*').count() > 1 {
                    return Err(CorsError::Wildcards(w.clone()));
                }
            }
            if let Some(m) = r
                .allowed_methods
                .iter()
                .find(|m| !CORS_METHODS.contains(&m.as_str()))
            {
                return Err(CorsError::Method(m.clone()));
            }
            if r.max_age_seconds.is_some_and(|a| a < 0) {
                return Err(CorsError::MaxAge);
            }
        }
        Ok(())
    }

    /// The first rule allowing `origin` to send `method` with `headers`.
    pub fn find(&self, origin: &str, method: &str, headers: &[&str]) -> Option<&CorsRule> {
        self.rules.iter().find(|r| {
            r.allowed_origins.iter().any(|o| one_star(o, origin, false))
                && r.allowed_methods.iter().any(|m| m == method)
                && headers.iter().all(|h| {
                    r.allowed_headers
                        .iter()
                        .any(|a| one_star(a, h.trim(), true))
                })
        })
    }
}

/// Whether `s` matches `pattern` with at most one `*` (any run).
fn one_star(pattern: &str, s: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, s),
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len()
                && s.get(..pre.len()).is_some_and(|p| eq(p, pre))
                && s.get(s.len() - post.len()..).is_some_and(|p| eq(p, post))
        }
    }
}

/// The headers answering a request from `origin` that `rule` allows.
fn allow_headers(rule: &CorsRule, origin: &str, out: &mut http::HeaderMap) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    put(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        if any { "*" } else { origin },
    );
    if !any {
        put(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    put(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        put(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    put(header::VARY, "Origin");
}

/// The bucket of a path-style request path, if any.
fn bucket_of(path: &str) -> Option<String> {
    let first = path.trim_start_matches('/').split('/').next()?;
    if first.is_empty() {
        return None;
    }
    let decoded = percent_decode(first)?;
    Some(decoded)
}

fn percent_decode(s: &str) -> Option<String> {
    // `form_urlencoded` would also turn `+` into a space; bucket names
    // hold neither, so a `+` simply never names a bucket.
    let bytes: Vec<u8> = form_urlencoded::parse(format!("b={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())?;
    String::from_utf8(bytes).ok()
}

async fn rules_of<B: Backend>(backend: &B, bucket: &str) -> Option<CorsConfig> {
    let docs = backend.bucket_access(bucket).await.ok()??;
    serde_json::from_str(docs.cors.as_deref()?).ok()
}

fn plain(status: StatusCode, code: &str, message: &str) -> s3s::HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut r = Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

/// Answers a preflight request (see the module doc).
async fn preflight<B: Backend>(backend: &B, head: &http::request::Parts) -> s3s::HttpResponse {
    let h = &head.headers;
    let text = |n: HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(origin), Some(method)) = (
        text(header::ORIGIN),
        text(header::ACCESS_CONTROL_REQUEST_METHOD),
    ) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin and Access-Control-Request-Method request headers needed.",
        );
    };
    let requested = text(header::ACCESS_CONTROL_REQUEST_HEADERS).unwrap_or_default();
    let headers: Vec<&str> = requested
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let config = match bucket_of(head.uri.path()) {
        Some(bucket) => rules_of(backend, &bucket).await,
        None => None,
    };
    let Some(rule) = config
        .as_ref()
        .and_then(|c| c.find(&origin, &method, &headers))
    else {
        return plain(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut r = Response::new(s3s::Body::empty());
    allow_headers(rule, &origin, r.headers_mut());
    let out = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&headers.join(", ")) {
        if !headers.is_empty() {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    if let Some(age) = rule.max_age_seconds {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    out.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    r
}

/// The CORS layer in front of the S3 service (see the module doc).
pub(crate) struct Cors<S, B> {
    pub(crate) inner: S,
    pub(crate) backend: Arc<B>,
}

impl<S: Clone, B> Clone for Cors<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            backend: Arc::clone(&self.backend),
        }
    }
}

impl<S, B> hyper::service::Service<Request<TimedBody>> for Cors<S, B>
where
    S: hyper::service::Service<
            Request<TimedBody>,
            Response = s3s::HttpResponse,
            Error = s3s::HttpError,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Backend,
{
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: Request<TimedBody>) -> Self::Future {
        let backend = Arc::clone(&self.backend);
        if req.method() == Method::OPTIONS {
            let close = crate::keepalive::sends_a_body(&req);
            let (head, _body) = req.into_parts();
            return Box::pin(async move {
                let mut r = preflight(&*backend, &head).await;
                if close {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(r)
            });
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bucket = origin.as_ref().and_then(|_| bucket_of(req.uri().path()));
        // As Ceph RGW does, an actual request may name the method it stands
        // for (a browser's follow-up to its preflight).
        let method = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(req.method().as_str())
            .to_owned();
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut response = inner.call(req).await?;
            if let (Some(origin), Some(bucket)) = (origin, bucket) {
                if let Some(config) = rules_of(&*backend, &bucket).await {
                    if let Some(rule) = config.find(&origin, &method, &[]) {
                        allow_headers(rule, &origin, response.headers_mut());
                    }
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: vec!["x-amz-*".into(), "content-type".into()],
            ..CorsRule::default()
        }
    }

    #[test]
    fn origins_methods_and_headers_must_all_match() {
        let c = CorsConfig {
            rules: vec![
                rule(&["https://*.example.com"], &["GET", "PUT"]),
                rule(&["*"], &["HEAD"]),
            ],
        };
        assert!(c.find("https://ci.example.com", "GET", &[]).is_some());
        assert!(c
            .find(
                "https://ci.example.com",
                "PUT",
                &["X-Amz-Date", "Content-Type"]
            )
            .is_some());
        assert!(c
            .find("https://ci.example.com", "PUT", &["authorization"])
            .is_none());
        assert!(c.find("https://evil.com", "GET", &[]).is_none());
        assert!(c.find("https://example.com.evil.com", "GET", &[]).is_none());
        assert!(c.find("http://ci.example.com", "GET", &[]).is_none());
        assert!(c.find("https://ci.example.com", "DELETE", &[]).is_none());
        assert!(c.find("https://anything", "HEAD", &[]).is_some());
    }

    #[test]
    fn configurations_outside_the_limits_are_refused() {
        let ok = CorsConfig {
            rules: vec![rule(&["*"], &["GET"])],
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            CorsConfig { rules: vec![] },
            CorsConfig {
                rules: vec![rule(&["*"], &["GET"]); MAX_CORS_RULES + 1],
            },
            CorsConfig {
                rules: vec![rule(&["https://*.*.com"], &["GET"])],
            },
            CorsConfig {
                rules: vec![rule(&["*"], &["PATCH"])],
            },
            CorsConfig {
                rules: vec![rule(&[], &["GET"])],
            },
            CorsConfig {
                rules: vec![CorsRule {
                    max_age_seconds: Some(-1),
                    ..rule(&["*"], &["GET"])
                }],
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn the_bucket_is_the_first_path_segment() {
        assert_eq!(bucket_of("/b/k/x"), Some("b".into()));
        assert_eq!(bucket_of("/b"), Some("b".into()));
        assert_eq!(bucket_of("/"), None);
        assert_eq!(bucket_of("/my%2Dbucket/k"), Some("my-bucket".into()));
    }
}
