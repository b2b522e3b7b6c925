//! SSE-C (customer-provided keys) through a real client: boto3
//! (`crates/stratus-s3/tests/clients/sse_c_checks.py`) puts, reads, copies
//! and uploads in parts under a key against an in-process cluster, with the
//! refusals (no key, another key, bad headers, KMS). Then the test plays
//! whoever holds the control plane: the version's key scope holds a salt and
//! a check, not the key, no file of the cluster's data directory (Raft log
//! and snapshot, pieces) holds the key's bytes, and the store itself cannot
//! read the object without it.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use anyhow::{bail, Result};
use stratus_state::objects::KeyScope;
use stratus_store::{CustomerKey, CustomerKeyError, StoreError};
use stratus_testkit::{files_holding, Options};

#[path = "support/s3.rs"]
mod support;
use support::{create_key, start_s3_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sse_c_with_boto3_and_no_key_left_behind() -> Result<()> {
    let mut opts = Options::new(1, 4);
    opts.s3 = true;
    let cluster = start_s3_cluster(opts).await?;
    let (ak, sk) = create_key(&cluster, "tenant-a").await?;
    let endpoint = cluster.s3_url(0)?;
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let key_hex = hex::encode(key);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../stratus-s3/tests/clients/sse_c_checks.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--endpoint", &endpoint])
            .args(["--access-key", &ak, "--secret", &sk])
            .args(["--key-hex", &key_hex, "--keep-bucket", "sse-keep"])
            .output()
    })
    .await??;
    println!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the SSE-C client checks failed");
    }

    // What the control plane holds of the object: a salt and a check.
    let c = cluster.control(0)?;
    let scope = c.state().read(|s| {
        let v = s.store.versions("sse-keep", "diary.txt");
        v.last()
            .and_then(|v| v.data.as_ref())
            .map(|d| d.scope.clone())
    });
    let Some(KeyScope::Customer { salt, check }) = scope else {
        bail!("the object is not sealed under a customer key: {scope:?}");
    };
    assert_ne!(salt, key);
    assert_ne!(check, key);
    let seal = stratus_store::CustomerSeal { salt, check };
    assert!(seal.opens_with(&CustomerKey::new(key)));

    // The store, which holds every other secret, cannot read it without it.
    let store = cluster.store(0)?;
    let no_key = store
        .get("tenant-a", "sse-keep", "diary.txt", None, None)
        .await
        .err();
    assert!(
        matches!(
            no_key,
            Some(StoreError::CustomerKey(CustomerKeyError::Required))
        ),
        "{no_key:?}"
    );
    let wrong = store
        .get_sealed(
            "tenant-a",
            "sse-keep",
            "diary.txt",
            None,
            None,
            Some(&CustomerKey::new([0; 32])),
        )
        .await
        .err();
    assert!(
        matches!(
            wrong,
            Some(StoreError::CustomerKey(CustomerKeyError::Mismatch))
        ),
        "{wrong:?}"
    );

    // No file of the cluster (Raft log, state, pieces) holds the key.
    c.raft().trigger().snapshot().await?;
    let dir = &cluster.cfg.data_dir;
    assert!(
        !files_holding(dir, b"sse-keep").is_empty(),
        "the scan reads {}",
        dir.display()
    );
    let found = files_holding(dir, &key);
    assert!(
        found.is_empty(),
        "the customer key in plaintext in {found:?}"
    );
    cluster.shutdown().await;
    Ok(())
}
