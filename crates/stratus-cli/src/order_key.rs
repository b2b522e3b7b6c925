//! The tenant's order key: an ed25519 key kept on the requester's machine
//! (`~/.stratus/order-key/node.key`, mode 0600, or `$STRATUS_ORDER_KEY_DIR`)
//! whose public half is registered with the pool. Once registered, every
//! market order the tenant deploys must be signed by it: `stratus run` and
//! `stratus deploy` sign their orders with it when the file is there.

use std::path::PathBuf;

use anyhow::{Context, Result};
use stratus_api::deals::{OrderKey, SignedBy};
use stratus_spec::{MarketSpec, WorkloadSpec};

use crate::commands::{client, print_json};
use crate::Global;

/// How long a signed order stays valid.
const ORDER_TTL_MS: u64 = 10 * 60 * 1000;

/// The folder of the order key.
fn key_dir() -> PathBuf {
    std::env::var_os("STRATUS_ORDER_KEY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".stratus")
                .join("order-key")
        })
}

/// Whether this machine has an order key.
pub fn exists() -> bool {
    key_dir().join("node.key").exists()
}

/// The order key, if this machine has one.
fn load() -> Result<Option<stratus_net::Identity>> {
    let dir = key_dir();
    if !exists() {
        return Ok(None);
    }
    stratus_net::Identity::load_or_create(&dir)
        .map(Some)
        .with_context(|| format!("reading the order key in {}", dir.display()))
}

/// `stratus account order-key`: shows, creates or removes it.
pub async fn order_key(
    g: &Global,
    tenant: &Option<String>,
    create: bool,
    remove: bool,
) -> Result<()> {
    let c = client(g)?;
    let q = tenant
        .as_deref()
        .map(|t| format!("?tenant={t}"))
        .unwrap_or_default();
    let path = format!("/v1/account/order-key{q}");
    let shown: OrderKey = if create || remove {
        let public_key = if create {
            let dir = key_dir();
            let id = stratus_net::Identity::load_or_create(&dir)
                .with_context(|| format!("creating the order key in {}", dir.display()))?;
            Some(hex::encode(id.node_id().0))
        } else {
            None
        };
        c.put(
            &path,
            &OrderKey {
                tenant: String::new(),
                public_key,
            },
        )
        .await?
    } else {
        c.get(&path).await?
    };
    if g.json {
        return print_json(&shown);
    }
    match &shown.public_key {
        Some(k) => println!(
            "tenant {} signs its orders with key {k} (kept in {})",
            shown.tenant,
            key_dir().display()
        ),
        None => println!(
            "tenant {} has no order key: its orders are not signed",
            shown.tenant
        ),
    }
    Ok(())
}

/// The signature of `market` for `spec` running `module`, when this
/// machine has an order key.
pub fn sign(
    tenant: &str,
    spec: &WorkloadSpec,
    module: &str,
    market: &MarketSpec,
) -> Result<Option<SignedBy>> {
    let Some(id) = load()? else {
        return Ok(None);
    };
    let order = stratus_api::deals::unsigned_order(market);
    let key = id.node_id().0;
    let expires_ms = stratus_control::now_ms() + ORDER_TTL_MS;
    let bytes = order.signed_bytes(
        tenant,
        &stratus_state::deals::spec_hash(spec),
        module,
        &key,
        expires_ms,
    );
    Ok(Some(SignedBy {
        key: hex::encode(key),
        expires_ms,
        module: module.to_string(),
        signature: hex::encode(id.sign(&bytes)),
    }))
}
