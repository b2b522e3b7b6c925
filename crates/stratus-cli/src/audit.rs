//! `stratus audit`: list the audit log's records (`ls`) and verify the
//! whole log (`verify`). Verification runs here, in the client: it fetches
//! every record and checkpoint and recomputes the chain and the signatures
//! with `stratus_state::audit_verify`, never trusting a verdict of the
//! server.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use stratus_api::audit::{AuditPageView, CheckpointsView, Signed};
use stratus_state::audit::{AuditRecord, Checkpoint};
use stratus_state::audit_verify::verify;

use crate::account::{parse_instant, rfc3339};
use crate::commands::{client, print_json, table};
use crate::Global;

/// `stratus audit ...`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// List audit records, oldest first: your tenant's (the operator: every record)
    #[command(
        after_help = "Each record: its number, time, kind (workload.deploy, instance.start, \
instance.exit, ledger.deposit, token.issue, node.ban, ...), the tenants it concerns, its subject \
and a short detail. Examples:\n  stratus audit ls --since 24h\n  stratus audit ls --tenant bob --json"
    )]
    Ls {
        /// Only records naming this tenant (yours, or any for the operator)
        #[arg(long)]
        tenant: Option<String>,
        /// Only records since: a duration back from now (30m, 24h, 7d), a day
        /// (2026-12-01), an RFC 3339 instant or ms since the epoch
        #[arg(long)]
        since: Option<String>,
        /// Most records to show (the newest of the window are not cut: the
        /// first LIMIT records are shown, with how to get the next page)
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only records after this number (the `next` of an earlier page)
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Verify the whole log (operator): recompute every hash link and check
    /// every checkpoint's signatures; exits non-zero naming the first broken record
    #[command(
        after_help = "First asks the leader to sign the current head, then fetches every \
record and checkpoint and checks them here. A record is broken when its hash does not match its \
contents, when it does not link to the record before, when it is missing, or when its \
checkpoint's signature is not the named replica's or that replica is not vouched for by the \
cluster key. Pass the cluster key printed by an earlier verification with --cluster-key to \
refuse a log re-signed under another key."
    )]
    Verify {
        /// The cluster's public key (64 hex) every checkpoint must be vouched by
        #[arg(long)]
        cluster_key: Option<String>,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `--since`: a duration back from now, or an instant.
fn parse_since(s: &str) -> Result<u64> {
    let t = s.trim();
    let duration = t.len() > 1
        && t[..t.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && t.ends_with(['s', 'm', 'h', 'd']);
    if duration {
        let secs = crate::tokens::parse_lifetime(t)?;
        return Ok(now_ms().saturating_sub(secs.saturating_mul(1000)));
    }
    parse_instant(t).map_err(|e| anyhow!("--since: {e:#}; or give a duration such as 24h"))
}

/// `stratus audit`.
pub async fn audit(g: &Global, cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Ls {
            tenant,
            since,
            limit,
            after,
        } => ls(g, tenant, since, limit, after).await,
        AuditCmd::Verify { cluster_key } => verify_log(g, cluster_key).await,
    }
}

async fn ls(
    g: &Global,
    tenant: Option<String>,
    since: Option<String>,
    limit: usize,
    after: u64,
) -> Result<()> {
    let c = client(g)?;
    let since_ms = since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
    let t = tenant.map(|t| format!("tenant={t}&")).unwrap_or_default();
    let limit = limit.clamp(1, stratus_state::audit::MAX_PAGE);
    let page: AuditPageView = c
        .get(&format!(
            "/v1/audit?{t}since_ms={since_ms}&after={after}&limit={limit}"
        ))
        .await?;
    if g.json {
        return print_json(&page);
    }
    let rows = page
        .records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                rfc3339(r.at_ms),
                r.kind.clone(),
                r.tenants.join(","),
                r.subject.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    table(&["SEQ", "AT", "KIND", "TENANTS", "SUBJECT", "DETAIL"], rows);
    if let Some(n) = page.next {
        println!("more: stratus audit ls --after {n}");
    }
    Ok(())
}

async fn verify_log(g: &Global, cluster_key: Option<String>) -> Result<()> {
    let pinned = cluster_key
        .map(|k| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(k.trim(), &mut out)
                .map(|_| out)
                .map_err(|_| anyhow!("--cluster-key is 64 hex characters"))
        })
        .transpose()?;
    let c = client(g)?;
    let _: Signed = c
        .post("/v1/audit/checkpoint", &serde_json::json!({}))
        .await
        .context(
            "asking for the head to be signed (stratus audit verify needs the operator's token)",
        )?;
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut after = 0;
    loop {
        let page: AuditPageView = c
            .get(&format!("/v1/audit?after={after}&limit=1000"))
            .await?;
        records.extend(page.records);
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let mut after = 0;
    loop {
        let page: CheckpointsView = c
            .get(&format!("/v1/audit/checkpoints?after={after}&limit=1000"))
            .await?;
        checkpoints.extend(page.checkpoints);
        match page.next {
            Some(n) => after = n,
            None => break,
        }
    }
    let v = verify(records, &checkpoints, pinned)
        .map_err(|e| anyhow!("the audit log does not verify: {e}"))?;
    if g.json {
        return print_json(&v);
    }
    let replicas: Vec<String> = v.replicas.iter().map(|r| r.short()).collect();
    println!(
        "audit log verified: {} records, signed through record {} by replica(s) {} ({} checkpoints)",
        v.records,
        v.signed_through,
        if replicas.is_empty() { "-".to_string() } else { replicas.join(", ") },
        v.checkpoints
    );
    if v.unsigned() > 0 {
        println!(
            "{} record(s) after the last checkpoint are linked but not signed yet",
            v.unsigned()
        );
    }
    match v.cluster_key {
        Some(k) => println!("cluster key: {k} (pin it with --cluster-key next time)"),
        None if v.records > 0 => bail!("no checkpoint signs the log yet; retry in a few seconds"),
        None => {}
    }
    Ok(())
}
