//! HTTP client of the Stratus API.

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use stratus_api::error::ErrorBody;

/// A client bound to one API URL and token.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// For transfers of any length: no overall timeout.
    streaming: reqwest::Client,
}

impl Client {
    /// Creates a client.
    pub fn new(base: String, token: Option<String>) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
            streaming,
        })
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = self.execute(req).await?;
        let bytes = resp.bytes().await.context("reading the API's answer")?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "unexpected answer from the API: {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// Sends a request; a non-success answer becomes an error carrying the
    /// API's message and code.
    pub async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "cannot reach the Stratus API at {}: is `stratus dev` or `stratus server` running? (set --api or STRATUS_API)",
                    self.base
                )
            } else {
                anyhow!("request to {} failed: {e}", self.base)
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp.bytes().await.context("reading the API's answer")?;
        if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
            let code = serde_json::to_value(body.error.code)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            return Err(anyhow!(
                "{} ({code}, HTTP {})",
                body.error.message,
                status.as_u16()
            ));
        }
        Err(anyhow!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ))
    }

    /// A request of any length (no overall timeout), authenticated.
    pub fn streaming(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.streaming.request(method, self.url(path));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    /// POST with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    /// GET of raw bytes, with the response headers.
    pub async fn get_raw(&self, path: &str) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("request to {} failed: {e}", self.base))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.context("reading the API's answer")?;
        if !status.is_success() {
            if let Ok(body) = serde_json::from_slice::<ErrorBody>(&bytes) {
                return Err(anyhow!("{} (HTTP {})", body.error.message, status.as_u16()));
            }
            return Err(anyhow!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        Ok((headers, bytes.to_vec()))
    }

    /// DELETE.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.http.delete(self.url(path))).await
    }
}
