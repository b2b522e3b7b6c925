//! Quotas and retention on an in-process cluster, playing the tenant who
//! grows without bound: past each quota it is refused (HTTP API: 403
//! `quota_exceeded`; S3 with boto3: `QuotaExceeded`) while another tenant
//! is not; finished tasks are pruned after a (tiny) retention period and
//! answer 404; an abandoned multipart upload expires and its pieces are
//! collected.

#![allow(clippy::unwrap_used)]

#[path = "support/http.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};
use stratus_s3::backend::{Backend, PutMeta};
use stratus_s3::StoreBackend;
use stratus_testkit::{wait_storage_secret, wait_until, Cluster, Options, WAIT};
use stratus_types::NodeStatus;

const AGENTS: usize = 4;
const HELLO: &str = include_str!("../../../examples/wasm/hello.wat");
const SERVICE: &str = include_str!("../../../examples/wasm/service.wat");

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<reqwest::Body>,
        json: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        support::call(
            &self.http,
            method,
            &format!("{}{path}", self.url),
            token,
            body,
            json,
        )
        .await
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<(StatusCode, Value)> {
        self.call(method, path, token, None, Some(body)).await
    }

    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Value)> {
        self.call(method, path, token, Some(body.into()), None)
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Result<(StatusCode, Value)> {
        self.call(reqwest::Method::GET, path, token, None, None)
            .await
    }
}

/// Asserts a refusal for quota `name`, naming its limit and use.
fn assert_quota(r: (StatusCode, Value), name: &str, limit: &str, used: &str) {
    let (status, body) = r;
    assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{name}: {body}");
    let msg = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(name) && msg.contains(limit) && msg.contains(used),
        "{name}: the message should name the quota, limit {limit} and use {used}: {msg}"
    );
}

async fn start(opts: Options) -> Result<(Cluster, Api)> {
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, AGENTS).await?;
    wait_storage_secret(&cluster.control(0)?).await?;
    let api = Api {
        url: cluster.api_url(0)?,
        http: reqwest::Client::new(),
    };
    Ok((cluster, api))
}

async fn tenant(api: &Api, admin: &str, name: &str) -> Result<String> {
    let (s, v) = api
        .json(
            reqwest::Method::POST,
            "/v1/tenants",
            admin,
            json!({ "name": name }),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    Ok(v["token"].as_str().unwrap_or_default().to_owned())
}

/// Puts an object, retrying while the storage nodes' piece services do not
/// know this replica yet.
async fn put(
    api: &Api,
    token: &str,
    bucket: &str,
    key: &str,
    len: usize,
) -> Result<(StatusCode, Value)> {
    let path = format!("/v1/buckets/{bucket}/objects/{key}");
    let mut last = None;
    for _ in 0..100 {
        let r = api
            .raw(reqwest::Method::PUT, &path, token, vec![b'x'; len])
            .await?;
        if r.0 != StatusCode::SERVICE_UNAVAILABLE {
            return Ok(r);
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("PUT {path} kept failing: {last:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_quotas_is_refused_and_another_is_not() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.s3 = true;
    let (cluster, api) = start(opts).await?;
    let admin = cluster.admin_token.clone();
    let acme = tenant(&api, &admin, "acme").await?;
    let beta = tenant(&api, &admin, "beta").await?;
    use reqwest::Method as M;

    // Only the operator sees and sets other tenants' quotas.
    let (s, _) = api.get("/v1/tenants/acme/quota", &acme).await?;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .json(
            M::PUT,
            "/v1/tenants/acme/quota",
            &acme,
            json!({ "stored_bytes": u64::MAX }),
        )
        .await?;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a tenant cannot raise its own quota"
    );
    let (s, v) = api
        .json(
            M::PUT,
            "/v1/tenants/acme/quota",
            &admin,
            json!({ "stored_bytes": 100000, "workloads": 1, "modules": 1, "vars": 1,
                    "buckets": 1, "uploads": 1, "instances": 2 }),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, mine) = api.get("/v1/quota", &acme).await?;
    assert_eq!(s, StatusCode::OK);
    let line = |v: &Value, r: &str| {
        v["quotas"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["resource"] == r).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(line(&mine, "stored_bytes")["limit"], 100000);
    assert_eq!(line(&mine, "objects")["default"], true);

    // Stored bytes.
    for (t, b) in [(&acme, "acme-data"), (&beta, "beta-data")] {
        let (s, v) = api
            .json(M::POST, "/v1/buckets", t, json!({ "name": b }))
            .await?;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = put(&api, &acme, "acme-data", "one", 60000).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_quota(
        put(&api, &acme, "acme-data", "two", 60000).await?,
        "stored-bytes",
        "100000",
        "60000",
    );
    let (s, v) = put(&api, &beta, "beta-data", "two", 60000).await?;
    assert_eq!(s, StatusCode::OK, "another tenant is not affected: {v}");
    // What still fits is accepted.
    let (s, v) = put(&api, &acme, "acme-data", "three", 30000).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Buckets.
    let r = api
        .json(
            M::POST,
            "/v1/buckets",
            &acme,
            json!({ "name": "acme-more" }),
        )
        .await?;
    assert_quota(r, "buckets", "1", "1");
    // Variables.
    let (s, _) = api
        .json(
            M::PUT,
            "/v1/tenants/acme/vars/a",
            &acme,
            json!({ "value": "1" }),
        )
        .await?;
    assert_eq!(s, StatusCode::OK);
    let r = api
        .json(
            M::PUT,
            "/v1/tenants/acme/vars/b",
            &acme,
            json!({ "value": "2" }),
        )
        .await?;
    assert_quota(r, "vars", "1", "1");
    let (s, _) = api
        .json(
            M::PUT,
            "/v1/tenants/beta/vars/b",
            &beta,
            json!({ "value": "2" }),
        )
        .await?;
    assert_eq!(s, StatusCode::OK);
    // Modules, workloads and instances.
    let (s, m) = api
        .raw(M::POST, "/v1/modules", &acme, HELLO.as_bytes().to_vec())
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let module = m["hash"].as_str().unwrap_or_default().to_owned();
    let r = api
        .raw(M::POST, "/v1/modules", &acme, SERVICE.as_bytes().to_vec())
        .await?;
    assert_quota(r, "modules", "1", "1");
    let (s, _) = api
        .raw(M::POST, "/v1/modules", &beta, SERVICE.as_bytes().to_vec())
        .await?;
    assert_eq!(s, StatusCode::CREATED);
    let spec = |name: &str, count: u32| {
        json!({ "spec": { "version": 1, "name": name, "kind": "task", "count": count,
                          "wasm": { "module": "hello.wat" } }, "module": module })
    };
    let r = api
        .json(M::POST, "/v1/workloads", &acme, spec("many", 3))
        .await?;
    assert_quota(r, "instances", "2", "0");
    let (s, v) = api
        .json(M::POST, "/v1/workloads", &acme, spec("one", 1))
        .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = api
        .json(M::POST, "/v1/workloads", &acme, spec("two", 1))
        .await?;
    assert_quota(r, "workloads", "1", "1");

    // S3 with a real client: the same quotas, as S3 `QuotaExceeded` (403).
    let key = |t: &str| {
        let (api, admin) = (&api, &admin);
        let t = t.to_owned();
        async move {
            let (s, v) = api
                .json(M::POST, "/v1/s3/keys", admin, json!({ "tenant": t }))
                .await?;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            anyhow::Ok((
                v["access_key"].as_str().unwrap_or_default().to_owned(),
                v["secret"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    };
    let (ak_a, sk_a) = key("acme").await?;
    let (ak_b, sk_b) = key("beta").await?;
    let endpoint = cluster.s3_url(0)?;
    // 90,000 bytes of objects and its module (an object of its images bucket).
    let used = cluster
        .control(0)?
        .state()
        .read(|s| s.store.usage_of("acme").bytes);
    assert_eq!(used, 90_000 + HELLO.len() as u64);
    let used = used.to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/quotas_s3.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .args([&endpoint, &ak_a, &sk_a, &ak_b, &sk_b, &used])
            .output()
    })
    .await??;
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the boto3 quota checks failed");
    }
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_tasks_are_pruned_and_abandoned_uploads_expire() -> Result<()> {
    let mut opts = Options::new(1, AGENTS);
    opts.store.task_retention = Duration::from_secs(2);
    opts.store.upload_expiry = Duration::from_secs(2);
    opts.store.prune_interval = Duration::from_millis(200);
    let (cluster, api) = start(opts).await?;
    let admin = cluster.admin_token.clone();
    let acme = tenant(&api, &admin, "acme").await?;
    let c = cluster.control(0)?;
    use reqwest::Method as M;

    // An abandoned multipart upload with one part of data.
    let b = StoreBackend::new(cluster.store(0)?);
    b.create_bucket("acme", "acme-mp").await?;
    let upload = b
        .create_multipart("acme", "acme-mp", "big", PutMeta::default())
        .await?;
    let data = vec![7u8; 300 << 10];
    wait_until("a part stored", WAIT, || async {
        let body = stratus_s3::testing::chunked(&data, 64 << 10);
        b.upload_part(
            "acme",
            "acme-mp",
            "big",
            &upload,
            1,
            body,
            Some(data.len() as u64),
        )
        .await
        .is_ok()
        .then_some(())
    })
    .await?;
    let stored = c.state().read(|s| s.store.usage_of("acme").bytes);
    assert_eq!(
        stored,
        data.len() as u64,
        "the part counts in the tenant's use"
    );

    // A task that completes.
    let (s, m) = api
        .raw(M::POST, "/v1/modules", &acme, HELLO.as_bytes().to_vec())
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let (s, v) = api
        .json(M::POST, "/v1/workloads", &acme, json!({
            "spec": { "version": 1, "name": "job", "kind": "task", "wasm": { "module": "hello.wat" }, "args": ["x"] },
            "module": m["hash"],
        }))
        .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let instance = wait_until("the task completed", WAIT, || async {
        c.state().read(|s| {
            s.instances
                .values()
                .find(|i| {
                    i.workload == "acme/job" && i.state == stratus_state::InstanceState::Completed
                })
                .map(|i| i.id.clone())
        })
    })
    .await?;
    let (s, _) = api.get("/v1/workloads/acme/job", &acme).await?;
    assert_eq!(s, StatusCode::OK, "still there right after it ended");

    // After the retention period the leader prunes it: 404 with a reason.
    wait_until("the task pruned", WAIT, || async {
        c.state()
            .read(|s| (!s.workloads.contains_key("acme/job")).then_some(()))
    })
    .await?;
    let (s, v) = api.get("/v1/workloads/acme/job", &acme).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("retention"),
        "{v}"
    );
    let (s, _) = api.get(&format!("/v1/instances/{instance}"), &acme).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The upload expired too; its data is garbage the collector deletes.
    wait_until("the upload expired", WAIT, || async {
        c.state().read(|s| s.store.uploads.is_empty().then_some(()))
    })
    .await?;
    // So did the module no workload uses any more: its object version is
    // deleted with the claim (the tenant's stored bytes drop to 0), and its
    // chunks are among what the collector reclaims below.
    wait_until("the unused module pruned", WAIT, || async {
        c.state()
            .read(|s| s.module_objects.is_empty().then_some(()))
    })
    .await?;
    assert_eq!(c.state().read(|s| s.store.usage_of("acme").bytes), 0);
    let before = c.state().read(|s| s.store.pack_count() as usize);
    assert!(before > 0);
    let report = cluster.store(0)?.gc_once().await?;
    assert!(report.chunks > 0 && report.pieces > 0, "{report:?}");
    assert_eq!(
        c.state().read(|s| s.store.pack_count() as usize),
        0,
        "every pack of the part is gone"
    );
    cluster.shutdown().await;
    Ok(())
}
