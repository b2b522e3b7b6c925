//! HTTP API: authentication, tenant isolation, errors.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stratus_testkit::{Cluster, Options};

async fn error_code(resp: reqwest::Response) -> Result<(StatusCode, String, String)> {
    let status = resp.status();
    let body: Value = resp.json().await?;
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((status, code, message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_isolation_and_errors() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 1)).await?;
    let api = cluster.api_url(0)?;
    let http = reqwest::Client::new();
    let admin = cluster.admin_token.clone();

    // Health needs no token.
    assert_eq!(
        http.get(format!("{api}/v1/health")).send().await?.status(),
        StatusCode::OK
    );

    // No token -> 401 with a stable code and a hint.
    let (s, code, msg) = error_code(http.get(format!("{api}/v1/nodes")).send().await?).await?;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    assert!(msg.contains("Authorization"), "{msg}");
    // Garbage and forged tokens -> 401.
    for bad in [
        "nonsense",
        "stt_000000000000_0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let (s, code, _) = error_code(
            http.get(format!("{api}/v1/nodes"))
                .bearer_auth(bad)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(
            (s, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{bad}"
        );
    }
    // A real admin token with a wrong secret -> 401.
    let forged = format!(
        "{}{}",
        &admin[..admin.len() - 1],
        if admin.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        http.get(format!("{api}/v1/nodes"))
            .bearer_auth(&forged)
            .send()
            .await?
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Two tenants.
    let mut tokens = Vec::new();
    for name in ["acme", "beta"] {
        let r = http
            .post(format!("{api}/v1/tenants"))
            .bearer_auth(&admin)
            .json(&json!({"name": name}))
            .send()
            .await?;
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await?;
        tokens.push(body["token"].as_str().unwrap_or_default().to_string());
    }
    let (acme, beta) = (&tokens[0], &tokens[1]);

    // A tenant uses its own variables...
    let r = http
        .put(format!("{api}/v1/tenants/acme/vars/build/last"))
        .bearer_auth(acme)
        .json(&json!({"value": "42"}))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = http
        .get(format!("{api}/v1/tenants/acme/vars/build/last"))
        .bearer_auth(acme)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(r["value"], "42");
    // ...but not another tenant's: 403.
    let (s, code, _) = error_code(
        http.get(format!("{api}/v1/tenants/acme/vars/build/last"))
            .bearer_auth(beta)
            .send()
            .await?,
    )
    .await?;
    assert_eq!((s, code.as_str()), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, _, _) = error_code(
        http.put(format!("{api}/v1/tenants/acme/vars/x"))
            .bearer_auth(beta)
            .json(&json!({"value": "1"}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Admin-only routes: 403 for tenants.
    let (s, _, _) = error_code(
        http.get(format!("{api}/v1/tenants"))
            .bearer_auth(acme)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The admin may read any tenant.
    assert_eq!(
        http.get(format!("{api}/v1/tenants/acme/vars"))
            .bearer_auth(&admin)
            .send()
            .await?
            .status(),
        StatusCode::OK
    );

    // Malformed JSON -> 400 with a message that says what is wrong.
    let (s, code, msg) = error_code(
        http.put(format!("{api}/v1/tenants/acme/vars/k"))
            .bearer_auth(acme)
            .header("content-type", "application/json")
            .body("{\"value\": ")
            .send()
            .await?,
    )
    .await?;
    assert_eq!((s, code.as_str()), (StatusCode::BAD_REQUEST, "bad_request"));
    assert!(msg.contains("malformed request body"), "{msg}");
    // Well-formed JSON of the wrong shape -> 400 naming the field.
    let (s, _, msg) = error_code(
        http.put(format!("{api}/v1/tenants/acme/vars/k"))
            .bearer_auth(acme)
            .json(&json!({"valu": 1}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(msg.contains("value"), "{msg}");
    // Invalid key -> 400 from the state machine.
    let (s, _, msg) = error_code(
        http.put(format!("{api}/v1/tenants/acme/vars/bad%20key"))
            .bearer_auth(acme)
            .json(&json!({"value": "v"}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}");
    // Unknown routes and nodes -> 404 JSON.
    let (s, code, _) = error_code(
        http.get(format!("{api}/v1/nope"))
            .bearer_auth(acme)
            .send()
            .await?,
    )
    .await?;
    assert_eq!((s, code.as_str()), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _, _) = error_code(
        http.get(format!("{api}/v1/nodes/ffffffff"))
            .bearer_auth(acme)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Tenants may list nodes; the agent registered.
    let nodes: Value = http
        .get(format!("{api}/v1/nodes"))
        .bearer_auth(acme)
        .send()
        .await?
        .json()
        .await?;
    assert!(nodes.as_array().is_some_and(|a| a.len() <= 1));

    // Tokens: list (no secrets), revoke, and the revoked one stops working.
    let second: Value = http
        .post(format!("{api}/v1/tenants/acme/tokens"))
        .bearer_auth(acme)
        .send()
        .await?
        .json()
        .await?;
    let second = second["token"].as_str().unwrap_or_default().to_string();
    let listed: Value = http
        .get(format!("{api}/v1/tenants/acme/tokens"))
        .bearer_auth(&second)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(listed.as_array().map(|a| a.len()), Some(2));
    assert!(
        !listed.to_string().contains(&acme[16..]),
        "secrets are never listed"
    );
    let acme_id = &acme[4..16];
    let r = http
        .delete(format!("{api}/v1/tenants/acme/tokens/{acme_id}"))
        .bearer_auth(&second)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    let (s, code, _) = error_code(
        http.get(format!("{api}/v1/whoami"))
            .bearer_auth(acme)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated"),
        "revoked token refused"
    );
    assert_eq!(
        http.get(format!("{api}/v1/whoami"))
            .bearer_auth(&second)
            .send()
            .await?
            .status(),
        StatusCode::OK
    );
    // Another tenant cannot revoke acme's token; the last admin token is kept.
    let (s, _, _) = error_code(
        http.delete(format!("{api}/v1/tenants/acme/tokens/{}", &second[4..16]))
            .bearer_auth(beta)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, code, _) = error_code(
        http.delete(format!("{api}/v1/tenants/admin/tokens/{}", &admin[4..16]))
            .bearer_auth(&admin)
            .send()
            .await?,
    )
    .await?;
    assert_eq!((s, code.as_str()), (StatusCode::CONFLICT, "conflict"));

    cluster.shutdown().await;
    Ok(())
}
