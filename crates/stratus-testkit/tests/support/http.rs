//! One call to a cluster's HTTP API, shared by the tests that drive it as
//! a client would.

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::Value;

/// Sends `method url` with `token`, a raw `body` or a `json` body; returns
/// the status and the answer as JSON (`Null` when it is not JSON).
pub async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<reqwest::Body>,
    json: Option<Value>,
) -> Result<(StatusCode, Value)> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.body(b);
    }
    if let Some(j) = json {
        req = req.json(&j);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
