//! API tokens played by an attacker: out of scope, past expiry, minting
//! more rights than its own, revoked but used on a follower.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stratus_testkit::{wait_until, Cluster, Options, WAIT};

/// One API call: status and body (JSON, or `null`).
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Mints a token for `tenant` with `by`; returns (status, body).
async fn mint(
    http: &reqwest::Client,
    api: &str,
    by: &str,
    tenant: &str,
    req: Value,
) -> Result<(StatusCode, Value)> {
    call(
        http,
        Method::POST,
        &format!("{api}/v1/tenants/{tenant}/tokens"),
        by,
        Some(req),
    )
    .await
}

fn token(body: &Value) -> Result<String> {
    body["token"]
        .as_str()
        .map(str::to_string)
        .context("no token in the answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_expiry_and_minting() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 0)).await?;
    let api = cluster.api_url(0)?;
    let http = reqwest::Client::new();
    let admin = cluster.admin_token.clone();

    let (s, body) = call(
        &http,
        Method::POST,
        &format!("{api}/v1/tenants"),
        &admin,
        Some(json!({"name": "acme"})),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["scope"].as_str(), &body["expires_ms"]),
        (Some("full"), &Value::Null)
    );
    let full = token(&body)?;

    // Each narrow scope, minted by the tenant's full token.
    let mut scoped = std::collections::BTreeMap::new();
    for scope in ["read-only", "storage", "workloads"] {
        let (s, body) = mint(&http, &api, &full, "acme", json!({"scope": scope})).await?;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        assert_eq!(body["scope"].as_str(), Some(scope));
        scoped.insert(scope, token(&body)?);
    }
    // (token scope, method, path, allowed?)
    let cases: &[(&str, Method, &str, Option<Value>, bool)] = &[
        ("read-only", Method::GET, "/v1/buckets", None, true),
        ("read-only", Method::GET, "/v1/workloads", None, true),
        (
            "read-only",
            Method::GET,
            "/v1/tenants/acme/tokens",
            None,
            true,
        ),
        (
            "read-only",
            Method::POST,
            "/v1/buckets",
            Some(json!({"name": "made-by-ro"})),
            false,
        ),
        (
            "read-only",
            Method::PUT,
            "/v1/tenants/acme/vars/k",
            Some(json!({"value": "v"})),
            false,
        ),
        (
            "storage",
            Method::POST,
            "/v1/buckets",
            Some(json!({"name": "made-by-storage"})),
            true,
        ),
        ("storage", Method::GET, "/v1/s3/keys", None, true),
        ("storage", Method::GET, "/v1/workloads", None, false),
        ("storage", Method::GET, "/v1/tenants/acme/vars", None, false),
        ("workloads", Method::GET, "/v1/workloads", None, true),
        ("workloads", Method::GET, "/v1/instances", None, true),
        ("workloads", Method::GET, "/v1/buckets", None, false),
        (
            "workloads",
            Method::POST,
            "/v1/s3/keys",
            Some(json!({})),
            false,
        ),
    ];
    for (scope, method, path, body, allowed) in cases {
        let (s, answer) = call(
            &http,
            method.clone(),
            &format!("{api}{path}"),
            &scoped[scope],
            body.clone(),
        )
        .await?;
        if *allowed {
            assert!(s.is_success(), "{scope} {method} {path}: {s} {answer}");
        } else {
            assert_eq!(
                s,
                StatusCode::FORBIDDEN,
                "{scope} {method} {path}: {answer}"
            );
            let m = message(&answer);
            assert!(
                m.contains("needs a token with scope") && m.contains(scope),
                "{m}"
            );
        }
    }
    // Every scope may ask who it is.
    for (scope, t) in &scoped {
        let (s, me) = call(&http, Method::GET, &format!("{api}/v1/whoami"), t, None).await?;
        assert_eq!((s, me["scope"].as_str()), (StatusCode::OK, Some(*scope)));
    }
    // A full token is no operator.
    let (s, body) = call(
        &http,
        Method::GET,
        &format!("{api}/v1/tenants"),
        &full,
        None,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("admin"), "{body}");

    // Minting never widens rights: a narrow token cannot mint at all, a full
    // one cannot mint admin.
    for (scope, t) in &scoped {
        let (s, body) = mint(&http, &api, t, "acme", json!({"scope": *scope})).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope} minted: {body}");
        let (s, _) = mint(&http, &api, t, "acme", json!({"scope": "full"})).await?;
        assert_eq!(s, StatusCode::FORBIDDEN, "{scope} minted full");
    }
    let (s, body) = mint(&http, &api, &full, "acme", json!({"scope": "admin"})).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    // Nor does the admin hand the admin scope to a tenant.
    let (s, body) = mint(&http, &api, &admin, "acme", json!({"scope": "admin"})).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    // An expiring token mints only tokens that die no later than itself.
    let (s, body) = mint(&http, &api, &full, "acme", json!({"expires_in_secs": 3600})).await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let hour = token(&body)?;
    let hour_expires = body["expires_ms"].as_u64().context("expires_ms")?;
    let (s, body) = mint(&http, &api, &hour, "acme", json!({})).await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["expires_ms"].as_u64(),
        Some(hour_expires),
        "inherits the expiry"
    );
    let (s, body) = mint(&http, &api, &hour, "acme", json!({"expires_in_secs": 7200})).await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("outlive"), "{body}");
    let (s, body) = mint(&http, &api, &hour, "acme", json!({"expires_in_secs": 60})).await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    // S3 keys never expire, so an expiring token cannot make one.
    let (s, body) = call(
        &http,
        Method::POST,
        &format!("{api}/v1/s3/keys"),
        &hour,
        None,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, body) = mint(&http, &api, &full, "acme", json!({"expires_in_secs": 0})).await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");

    // A token past its expiry: 401 saying so.
    let (s, body) = mint(&http, &api, &full, "acme", json!({"expires_in_secs": 1})).await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let short = token(&body)?;
    let (s, body) = wait_until("the 1 s token to expire", WAIT, || async {
        let r = call(
            &http,
            Method::GET,
            &format!("{api}/v1/buckets"),
            &short,
            None,
        )
        .await
        .ok()?;
        (r.0 != StatusCode::OK).then_some(r)
    })
    .await?;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(message(&body).contains("expired"), "{body}");

    // The list shows scopes and expiry.
    let (_, list) = call(
        &http,
        Method::GET,
        &format!("{api}/v1/tenants/acme/tokens"),
        &full,
        None,
    )
    .await?;
    let scopes: Vec<&str> = list
        .as_array()
        .context("list")?
        .iter()
        .filter_map(|t| t["scope"].as_str())
        .collect();
    assert!(
        scopes.contains(&"read-only") && scopes.contains(&"full"),
        "{list}"
    );
    Ok(())
}

/// A token revoked through the leader stops working on every follower's
/// API: they check tokens against their own applied state, with no cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_fails_on_followers() -> Result<()> {
    let cluster = Cluster::start(Options::new(3, 0)).await?;
    let leader = cluster.leader().await?;
    let lapi = cluster.api_url(leader)?;
    let http = reqwest::Client::new();
    let (s, body) = call(
        &http,
        Method::POST,
        &format!("{lapi}/v1/tenants"),
        &cluster.admin_token,
        Some(json!({"name": "acme"})),
    )
    .await?;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let stolen = token(&body)?;
    let id = body["token_id"].as_str().context("token_id")?.to_string();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for &f in &followers {
        let url = format!("{}/v1/whoami", cluster.api_url(f)?);
        wait_until("the follower to know the token", WAIT, || async {
            let (s, _) = call(&http, Method::GET, &url, &stolen, None).await.ok()?;
            (s == StatusCode::OK).then_some(())
        })
        .await?;
    }

    let (s, body) = call(
        &http,
        Method::DELETE,
        &format!("{lapi}/v1/tenants/acme/tokens/{id}"),
        &cluster.admin_token,
        None,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{body}");
    for &f in &followers {
        let url = format!("{}/v1/buckets", cluster.api_url(f)?);
        let (s, body) = wait_until(
            "the follower to refuse the revoked token",
            Duration::from_secs(10),
            || async {
                let r = call(&http, Method::GET, &url, &stolen, None).await.ok()?;
                (r.0 != StatusCode::OK).then_some(r)
            },
        )
        .await?;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "follower {f}: {body}");
    }
    Ok(())
}
