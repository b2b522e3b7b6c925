//! `stratus tenants quota TENANT [--stored-bytes 10GiB --workloads 100 ...]`.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use clap::Args;
use stratus_api::quotas::QuotaView;
use stratus_state::quotas::Resource;

use crate::client::Client;
use crate::commands::{bytes, print_json, table};
use crate::Global;

/// Arguments of `stratus tenants quota`.
#[derive(Args, Debug)]
pub struct QuotaArgs {
    /// Tenant name
    pub name: String,
    /// Logical bytes of objects and open multipart parts
    #[arg(long, value_name = "SIZE")]
    pub stored_bytes: Option<String>,
    /// Object versions (delete markers included) and open multipart parts
    #[arg(long, value_name = "N")]
    pub objects: Option<String>,
    /// Buckets
    #[arg(long, value_name = "N")]
    pub buckets: Option<String>,
    /// Open multipart uploads
    #[arg(long, value_name = "N")]
    pub uploads: Option<String>,
    /// Workloads kept (finished ones until pruned)
    #[arg(long, value_name = "N")]
    pub workloads: Option<String>,
    /// Instances the running workloads declare
    #[arg(long, value_name = "N")]
    pub instances: Option<String>,
    /// WASM modules uploaded
    #[arg(long, value_name = "N")]
    pub modules: Option<String>,
    /// Bytes of those modules
    #[arg(long, value_name = "SIZE")]
    pub module_bytes: Option<String>,
    /// Variables
    #[arg(long, value_name = "N")]
    pub vars: Option<String>,
    /// API tokens
    #[arg(long, value_name = "N")]
    pub tokens: Option<String>,
    /// S3 access keys
    #[arg(long, value_name = "N")]
    pub access_keys: Option<String>,
}

/// Parses a limit: a count or size (`10GiB`, `500MB`, `1000`), `unlimited`,
/// or `default` (`None`).
fn parse_limit(r: Resource, s: &str) -> Result<Option<u64>> {
    match s.trim() {
        "default" => Ok(None),
        "unlimited" => Ok(Some(u64::MAX)),
        v if r.is_bytes() => byte_unit::Byte::parse_str(v, true)
            .map(|b| Some(b.as_u64()))
            .map_err(|e| {
                anyhow!(
                    "--{} {v:?}: {e} (e.g. 10GiB, 500MB, unlimited, default)",
                    r.name()
                )
            }),
        v => v.parse().map(Some).map_err(|_| {
            anyhow!(
                "--{} {v:?} is not a whole number, `unlimited` or `default`",
                r.name()
            )
        }),
    }
}

impl QuotaArgs {
    fn changes(&self) -> Result<BTreeMap<Resource, Option<u64>>> {
        let given = [
            (Resource::StoredBytes, &self.stored_bytes),
            (Resource::Objects, &self.objects),
            (Resource::Buckets, &self.buckets),
            (Resource::Uploads, &self.uploads),
            (Resource::Workloads, &self.workloads),
            (Resource::Instances, &self.instances),
            (Resource::Modules, &self.modules),
            (Resource::ModuleBytes, &self.module_bytes),
            (Resource::Vars, &self.vars),
            (Resource::Tokens, &self.tokens),
            (Resource::AccessKeys, &self.access_keys),
        ];
        given
            .into_iter()
            .filter_map(|(r, v)| v.as_deref().map(|v| Ok((r, parse_limit(r, v)?))))
            .collect()
    }
}

/// Shows, or sets then shows, a tenant's quotas.
pub async fn run(g: &Global, c: &Client, args: QuotaArgs) -> Result<()> {
    let changes = args.changes()?;
    let path = format!("/v1/tenants/{}/quota", args.name);
    let v: QuotaView = if changes.is_empty() {
        c.get(&path).await?
    } else {
        c.put(&path, &changes).await?
    };
    if g.json {
        return print_json(&v);
    }
    let show = |r: Resource, n: u64| match n {
        u64::MAX => "unlimited".to_string(),
        n if r.is_bytes() => bytes(n),
        n => n.to_string(),
    };
    let rows = v
        .quotas
        .iter()
        .map(|l| {
            vec![
                l.resource.name().to_string(),
                show(l.resource, l.used),
                show(l.resource, l.limit),
                if l.default { "default" } else { "set" }.to_string(),
            ]
        })
        .collect();
    table(&["QUOTA", "USED", "LIMIT", ""], rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_sizes_counts_and_keywords() {
        let b = Resource::StoredBytes;
        assert_eq!(parse_limit(b, "10GiB").ok(), Some(Some(10 << 30)));
        assert_eq!(parse_limit(b, "500MB").ok(), Some(Some(500_000_000)));
        assert_eq!(parse_limit(b, "default").ok(), Some(None));
        assert_eq!(
            parse_limit(Resource::Workloads, "unlimited").ok(),
            Some(Some(u64::MAX))
        );
        assert_eq!(
            parse_limit(Resource::Workloads, "100").ok(),
            Some(Some(100))
        );
        assert!(parse_limit(Resource::Workloads, "10GiB").is_err());
        assert!(parse_limit(b, "lots").is_err());
    }
}
