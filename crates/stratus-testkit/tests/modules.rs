//! Modules are objects (issue 14, item 4): an upload streams into the object
//! store and the replicated state keeps only a reference; the node that runs
//! the module fetches its chunks and nobody else can; the upload limit is
//! refused up front with a message naming it.

use std::time::Duration;

use anyhow::{bail, Result};
use stratus_net::Identity;
use stratus_proto::{Request, Response};
use stratus_state::InstanceState;
use stratus_testkit::{
    code_of, dial_as, instances, wait_storage_secret, wait_until, Cluster, Options, WAIT,
};
use stratus_types::{ErrorCode, NodeStatus, ADMIN_TENANT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HELLO: &[u8] = include_bytes!("../../../examples/wasm/hello.wasm");
const T: Duration = Duration::from_secs(30);

/// Waits for the task `id` to complete; returns its instance and output.
async fn completed_output(
    c: &stratus_control::Control,
    id: &str,
) -> Result<(stratus_state::Instance, Vec<u8>)> {
    let inst = wait_until("the task to complete", WAIT, || async {
        instances(c, id)
            .into_iter()
            .find(|i| i.state == InstanceState::Completed)
    })
    .await?;
    let out = wait_until("its output", WAIT, || async {
        let (_, out) = c.read_logs(&inst.id, 0).await.ok()?;
        (!out.is_empty()).then_some(out)
    })
    .await?;
    Ok((inst, out))
}

/// A 3 MiB module uploaded through the API runs; the state holds a
/// reference, not the bytes; its chunks go only to the node running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_is_an_object_read_only_by_the_node_running_it() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 2)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 2).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    let module = stratus_testkit::wasm_padding::padded_module(HELLO, 3 << 20);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/modules", cluster.api_url(0)?))
        .bearer_auth(&cluster.admin_token)
        .header("content-type", "application/wasm")
        .body(module.clone())
        .send()
        .await?;
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let v: serde_json::Value = resp.json().await?;
    let hash = v["hash"].as_str().unwrap_or_default().to_string();
    assert_eq!(hash, stratus_state::workloads::module_hash(&module));
    assert_eq!(v["size"], module.len());

    // The state references the module; its bytes are not in it.
    let (inline, object, state_bytes) = c.state().read(|s| {
        (
            s.modules.contains_key(&hash),
            s.module_object(ADMIN_TENANT, &hash).cloned(),
            // The small state, held in every replica's memory.
            stratus_state::kv::dump(s.kv())
                .iter()
                .filter(|(t, _, _)| *t == stratus_state::Table::Rows)
                .map(|(_, k, v)| k.len() + v.len())
                .sum::<usize>(),
        )
    });
    assert!(!inline, "the bytes are not in the replicated state");
    assert_eq!(object.map(|o| o.size), Some(module.len() as u64));
    assert!(
        state_bytes < module.len() / 4,
        "the state is {state_bytes} bytes for a {} byte module",
        module.len()
    );

    let id = stratus_testkit::deploy(
        &c,
        "version: 1\nname: big\nkind: task\nwasm: { module: big.wasm }\nargs: [\"object\"]\n",
        hash.clone(),
    )
    .await?;
    let (inst, out) = completed_output(&c, &id).await?;
    assert_eq!(String::from_utf8_lossy(&out), "Hello, object!\n");
    let runner = (0..2)
        .find(|j| cluster.agent_id(*j).is_ok_and(|a| a == inst.node))
        .ok_or_else(|| anyhow::anyhow!("the task ran on no agent"))?;
    let cached = cluster
        .agent_dir(runner)
        .join("agent/modules")
        .join(hash.replace(':', "-"));
    let on_disk = std::fs::read(&cached).unwrap_or_default();
    assert!(
        on_disk == module,
        "the verified module is cached on the node"
    );

    // The attackers: another node, a stranger, and the runner asking for
    // the same hash under another tenant.
    let addr = &cluster.cfg.control_addrs()?[0];
    let as_agent = |j: usize| {
        let dir = cluster.agent_dir(j);
        async move { dial_as(&Identity::load_or_create(&dir)?, addr).await }
    };
    let list = |tenant: &str| Request::GetModuleChunks {
        tenant: tenant.into(),
        hash: hash.clone(),
    };
    let r = as_agent(runner).await?;
    let chunks = match r.call(&list(ADMIN_TENANT), T).await? {
        Response::ModuleChunks { size, chunks } => {
            assert_eq!(size, module.len() as u64);
            chunks
        }
        other => bail!("the runner's chunk list: {other:?}"),
    };
    assert!(chunks.len() > 1, "a 3 MiB module is several chunks");
    let get = |tenant: &str| Request::GetChunk {
        tenant: tenant.into(),
        id: chunks[0].id,
    };
    match r.call(&get(ADMIN_TENANT), T).await? {
        Response::Blob(b) => assert_eq!(b.len(), chunks[0].len as usize),
        other => bail!("the runner's chunk: {other:?}"),
    }
    let forbidden = Some(ErrorCode::Forbidden);
    assert_eq!(code_of(&r.call(&list("other"), T).await?), forbidden);
    let o = as_agent(1 - runner).await?;
    assert_eq!(code_of(&o.call(&list(ADMIN_TENANT), T).await?), forbidden);
    assert_eq!(code_of(&o.call(&get(ADMIN_TENANT), T).await?), forbidden);
    let s = dial_as(&Identity::generate(), addr).await?;
    assert_ne!(
        code_of(&s.call(&list(ADMIN_TENANT), T).await?),
        None,
        "a stranger gets no chunk list"
    );
    assert_ne!(code_of(&s.call(&get(ADMIN_TENANT), T).await?), None);
    cluster.shutdown().await;
    Ok(())
}

/// A declared body over the limit is refused before it is read, with a
/// 413 naming the limit; a stream passing a (smaller) limit is cut off and
/// commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_over_the_limit_is_refused() -> Result<()> {
    let cluster = Cluster::start(Options::new(1, 1)).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    let url = cluster.api_url(0)?;
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut tcp = tokio::net::TcpStream::connect(host).await?;
    let limit = stratus_api::modules::MAX_MODULE_BYTES;
    let req = format!(
        "POST /v1/modules HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {}\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n\0asm",
        cluster.admin_token,
        limit + 1
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(&limit.to_string()), "{answer}");

    let store = cluster.store(0)?;
    let body = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; 1 << 20]))),
    );
    let e = match store.ingest_module(ADMIN_TENANT, body, 3 << 20).await {
        Ok(_) => bail!("a 4 MiB module passed a 3 MiB limit"),
        Err(e) => e,
    };
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert!(e.to_string().contains(&(3u64 << 20).to_string()), "{e}");
    assert!(
        matches!(e, stratus_store::StoreError::ModuleTooLarge { limit } if limit == 3 << 20),
        "{e:?}"
    );
    assert!(c.state().read(|s| s.module_objects.is_empty()));
    cluster.shutdown().await;
    Ok(())
}

/// A cluster whose nodes lend compute but no disk still runs modules: up to
/// 16 MiB they are kept in the replicated state (as before they were
/// objects); a larger one is refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_without_storage_keeps_small_modules_in_the_state() -> Result<()> {
    let mut opts = Options::new(1, 1);
    opts.storage_capacity = 0;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 1).await?;
    let c = cluster.control(0)?;
    let upload = |body: Vec<u8>| {
        let url = format!("{}/v1/modules", cluster.api_url(0).unwrap_or_default());
        let token = cluster.admin_token.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/wasm")
                .body(body)
                .send()
                .await
        }
    };
    let resp = upload(HELLO.to_vec()).await?;
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let v: serde_json::Value = resp.json().await?;
    let hash = v["hash"].as_str().unwrap_or_default().to_string();
    assert!(
        c.state().read(|s| s.modules.contains_key(&hash)),
        "kept inline"
    );
    let id = stratus_testkit::deploy(
        &c,
        "version: 1\nname: small\nkind: task\nwasm: { module: hello.wasm }\nargs: [\"compute-only\"]\n",
        hash,
    )
    .await?;
    let (_, out) = completed_output(&c, &id).await?;
    assert_eq!(String::from_utf8_lossy(&out), "Hello, compute-only!\n");

    let big = stratus_testkit::wasm_padding::padded_module(HELLO, 17 << 20);
    let resp = upload(big).await?;
    assert_eq!(resp.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    let text = resp.text().await?;
    assert!(text.contains("no storage node"), "{text}");
    cluster.shutdown().await;
    Ok(())
}
