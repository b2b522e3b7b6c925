//! A local cloud with storage nodes, driven over its HTTP API: the object
//! store as a client sees it (used by `bench store` and `bench dedupe`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use stratus_node::dev::DevConfig;

use crate::error::{bail, BenchError, Context, Result};
use crate::util::dev_config;

/// A local cloud with `nodes` storage nodes, ready to store objects.
pub(crate) struct StoreCloud {
    cloud: stratus_node::dev::DevCloud,
    control: stratus_control::Control,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The JSON answer of `PUT /v1/buckets/{bucket}/objects/{key}`.
#[derive(serde::Deserialize, Debug)]
pub(crate) struct PutAnswer {
    pub(crate) size: u64,
    pub(crate) blake3: String,
    pub(crate) chunks: u64,
    pub(crate) new_chunks: u64,
    pub(crate) piece_bytes: u64,
}

impl StoreCloud {
    pub(crate) async fn start(nodes: usize) -> Result<StoreCloud> {
        let dir = tempfile::tempdir()?;
        let cloud = stratus_node::dev::start(DevConfig {
            storage_capacity: 1 << 40,
            ..dev_config(dir.path(), 1, nodes)?
        })
        .await?;
        let control = cloud.replicas[0].control.clone().context("no control")?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        let sc = StoreCloud {
            cloud,
            control,
            http,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ready, secret) = sc.control.state().read(|s| {
                let ready = s
                    .nodes
                    .values()
                    .filter(|n| {
                        n.status == stratus_types::NodeStatus::Ready && n.info.storage.is_some()
                    })
                    .count();
                (ready, s.store.secret.is_some())
            });
            if ready >= nodes && secret {
                break;
            }
            if Instant::now() > deadline {
                bail!("{ready} of {nodes} storage nodes ready after 60 s (storage secret set: {secret})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(sc)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cloud.api_url)
    }

    /// Creates `bucket` over the API and waits until a PUT into it works.
    pub(crate) async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let r = self
            .http
            .post(self.url("/v1/buckets"))
            .bearer_auth(&self.cloud.admin_token)
            .json(&serde_json::json!({"name": bucket, "scope": "tenant"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "creating bucket {bucket}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        // Piece services accept the replica once their agents have learned it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = Bytes::from_static(b"probe");
            match self.put(bucket, "probe", &probe).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(BenchError::Context {
                        context: "the storage nodes did not accept pieces within 60 s".into(),
                        source: Box::new(e),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// PUTs `data` streamed in 1 MiB slices.
    pub(crate) async fn put(&self, bucket: &str, key: &str, data: &Bytes) -> Result<PutAnswer> {
        let r = self
            .http
            .put(self.url(&format!("/v1/buckets/{bucket}/objects/{key}")))
            .bearer_auth(&self.cloud.admin_token)
            .body(body_1mib(data))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "PUT {bucket}/{key}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let a: PutAnswer = r.json().await.context("the PUT answer")?;
        if a.size != data.len() as u64 {
            bail!(
                "PUT {bucket}/{key}: stored {} of {} bytes",
                a.size,
                data.len()
            );
        }
        Ok(a)
    }

    /// GETs an object streamed; returns (bytes, BLAKE3).
    pub(crate) async fn get(&self, bucket: &str, key: &str) -> Result<(u64, blake3::Hash)> {
        let r = self
            .http
            .get(self.url(&format!("/v1/buckets/{bucket}/objects/{key}")))
            .bearer_auth(&self.cloud.admin_token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "GET {bucket}/{key}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        hash_stream(r.bytes_stream()).await
    }

    /// Sum of sealed lengths in the chunk index.
    pub(crate) fn sealed_bytes(&self) -> u64 {
        self.control.state().read(|s| {
            let mut sum = 0;
            s.store.scan_chunks(&mut |_, c| {
                sum += u64::from(c.sealed_len);
                true
            });
            sum
        })
    }

    /// The erasure profiles of the packs, as `K+M`.
    pub(crate) fn profiles(&self) -> String {
        let set: std::collections::BTreeSet<String> = self.control.state().read(|s| {
            s.store
                .packs()
                .iter()
                .map(|p| format!("{}+{}", p.profile.k, p.profile.m))
                .collect()
        });
        set.into_iter().collect::<Vec<_>>().join(",")
    }

    pub(crate) async fn shutdown(self) {
        drop(self.control);
        self.cloud.shutdown().await;
    }
}

/// A request body streaming `data` in 1 MiB slices (no copies).
pub(crate) fn body_1mib(data: &Bytes) -> reqwest::Body {
    let slices: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(1 << 20)
        .map(|a| Ok(data.slice(a..(a + (1 << 20)).min(data.len()))))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(slices))
}

/// Length and BLAKE3 of a byte stream.
pub(crate) async fn hash_stream<S, E>(mut s: S) -> Result<(u64, blake3::Hash)>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut h = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(b) = s.next().await {
        let b = b.map_err(|e| BenchError::Foreign(Box::new(e)))?;
        n += b.len() as u64;
        h.update(&b);
    }
    Ok((n, h.finalize()))
}
