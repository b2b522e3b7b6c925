//! Issue 13, item 9: the secrets of the replicated state are not stored in
//! plaintext on the replicas' disks. The test plays someone who has copied
//! a replica's Raft store (a backup, a stolen volume): it scans every byte of
//! the files under `replica-N/control/raft` for the cluster storage secret,
//! an S3 secret key and a private-scope seed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use stratus_state::objects::{DedupeScope, KeyScope};
use stratus_state::sealing::{CLUSTER_KEY, PRIVATE_SEED, STORAGE_SECRET};
use stratus_store::PutMeta;
use stratus_testkit::{
    create_bucket, files_holding, wait_storage_secret, wait_until, Cluster, Options, WAIT,
};
use stratus_types::NodeStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_of_a_replicas_raft_store_reveals_no_secret() -> Result<()> {
    let mut opts = Options::new(3, 3);
    opts.snapshot_every = 1_000_000;
    let cluster = Cluster::start(opts).await?;
    cluster.wait_nodes(0, NodeStatus::Ready, 3).await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;

    // An S3 key, made through the API.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/s3/keys", cluster.api_url(0)?))
        .bearer_auth(&cluster.admin_token)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("POST /v1/s3/keys: {} {}", resp.status(), resp.text().await?);
    }
    let v: serde_json::Value = resp.json().await?;
    let access_key = v["access_key"].as_str().context("access_key")?.to_owned();
    let s3_secret = v["secret"].as_str().context("secret")?.to_owned();

    // A private-scope object (its seed is a random key of its own).
    create_bucket(&c, "admin", "private-bkt", DedupeScope::Private).await?;
    let store = cluster.store(0)?;
    wait_until("a private object stored", WAIT, || async {
        let body = futures::stream::iter([Ok(Bytes::from(vec![7u8; 100_000]))]);
        store
            .put("admin", "private-bkt", "obj", PutMeta::default(), body)
            .await
            .ok()
    })
    .await?;

    // Every replica receives the key-encryption key (from the replica that
    // minted it) and can open the secrets: the S3 key works on a follower.
    for i in 0..3 {
        let ci = cluster.control(i)?;
        wait_until("the key-encryption key on every replica", WAIT, || async {
            ci.kek().map(|_| ())
        })
        .await?;
        let si = cluster.store(i)?;
        wait_until("the S3 key on every replica", WAIT, || async {
            si.s3_secret(&access_key)
        })
        .await
        .map(|(secret, _)| assert_eq!(secret, s3_secret))?;
        let kek_file = cluster.cfg.data_dir.join(format!(
            "replica-{i}/control/{}",
            stratus_control::kek::KEK_FILE
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek_file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", kek_file.display());
    }

    // The plaintexts, opened here with the KEK.
    let kek = c.kek().context("kek")?;
    let (master, seed, cluster_seed) = c.state().read(|s| {
        let master = kek
            .open_key(STORAGE_SECRET, s.store.secret.as_ref().unwrap())
            .unwrap();
        let v = &s.store.versions("private-bkt", "obj")[0];
        let KeyScope::Private(sealed) = &v.data.as_ref().unwrap().scope else {
            panic!("a private bucket's object has a private scope");
        };
        let cluster_seed = kek
            .open_key(CLUSTER_KEY, s.joining.cluster_seed.as_ref().unwrap())
            .unwrap();
        (
            master,
            kek.open_key(PRIVATE_SEED, sealed).unwrap(),
            cluster_seed,
        )
    });

    // Log entries and snapshots both: take a snapshot on every replica.
    for i in 0..3 {
        let ci = cluster.control(i)?;
        ci.raft().trigger().snapshot().await?;
        wait_until("a snapshot", Duration::from_secs(30), || async {
            ci.raft().metrics().borrow().snapshot.map(|_| ())
        })
        .await?;
    }

    for i in 0..3 {
        let raft_dir = cluster
            .cfg
            .data_dir
            .join(format!("replica-{i}/control/raft"));
        // The scan does see the store's plaintext metadata...
        assert!(
            !files_holding(&raft_dir, b"private-bkt").is_empty(),
            "the scan reads {}",
            raft_dir.display()
        );
        // ...but none of the secrets.
        for (what, needle) in [
            ("the storage secret", master.to_vec()),
            ("an S3 secret key", s3_secret.as_bytes().to_vec()),
            ("a private-scope seed", seed.to_vec()),
            ("the cluster key's seed", cluster_seed.to_vec()),
        ] {
            let found = files_holding(&raft_dir, &needle);
            assert!(found.is_empty(), "{what} in plaintext in {found:?}");
        }
    }
    cluster.shutdown().await;
    Ok(())
}
