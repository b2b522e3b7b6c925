//! `stratus run --trust N`: waits for the verdict of a verified run, then
//! prints the agreed output once — read from a winning replica and checked
//! against the agreed hash, so a winner that serves other bytes than it
//! voted for is caught here — and exits with the agreed exit code.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use stratus_api::trusted::TrustView;
use stratus_api::workloads::WorkloadView;

use crate::client::Client;

/// How long a verified run may wait to be placed.
const PLACE_WAIT: Duration = Duration::from_secs(60);

/// Waits for workload `id`'s verdict and prints the agreed output; the
/// exit code to exit with.
pub async fn run(c: &Client, id: &str, started: Instant, timeout_secs: u64) -> Result<i32> {
    // The replicas run at most `timeout`; commit, reveal and any added
    // replicas take a few more rounds of it.
    let deadline = started + PLACE_WAIT + Duration::from_secs(timeout_secs.saturating_mul(3));
    let view = loop {
        let v: WorkloadView = c.get(&format!("/v1/workloads/{id}")).await?;
        let t = v.trust.clone();
        match t {
            Some(t) if t.outcome != "pending" => break (v, t),
            Some(t) if t.votes.is_empty() && started.elapsed() > PLACE_WAIT => bail!(
                "the verified run was not placed within {} s: {}",
                PLACE_WAIT.as_secs(),
                v.blocked.unwrap_or_else(|| "no eligible node".into())
            ),
            _ if Instant::now() > deadline => {
                bail!("no verdict on {id} yet; see `stratus inspect {id}`")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (_, t) = view;
    if t.outcome == "failed" {
        eprintln!(
            "stratus: verified run {id} failed: {}",
            t.reason.unwrap_or_default()
        );
        return Ok(1);
    }
    let want = t.output.clone().unwrap_or_default();
    for v in t
        .votes
        .iter()
        .filter(|v| v.verdict.as_deref() == Some("won"))
    {
        let out = read_all(c, &v.instance).await?;
        if hex::encode(blake3::hash(&out).as_bytes()) == want {
            let mut stdout = std::io::stdout();
            stdout.write_all(&out)?;
            stdout.flush()?;
            return Ok(t.exit_code.unwrap_or(0));
        }
        eprintln!(
            "stratus: replica {} serves output that is not the agreed result; trying another",
            v.instance
        );
    }
    bail!("no winning replica serves the agreed output (it may have been pruned: output is kept a minute after a replica ends)")
}

/// Everything instance `id` printed that its replica still holds.
async fn read_all(c: &Client, id: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (h, data) = c
            .get_raw(&format!("/v1/instances/{id}/logs?offset={}", out.len()))
            .await?;
        if data.is_empty() {
            return Ok(out);
        }
        let first: usize = h
            .get("x-stratus-offset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(out.len());
        if first != out.len() {
            bail!("the start of {id}'s output is no longer kept");
        }
        out.extend_from_slice(&data);
    }
}

/// `stratus inspect`: the votes of a verified run.
pub fn print_votes(t: &TrustView) {
    println!("trust:      {} ({})", t.trust, t.outcome);
    if let Some(r) = &t.reason {
        println!("reason:     {r}");
    }
    if let (Some(r), Some(code)) = (&t.result, t.exit_code) {
        println!("result:     {} (exit code {code})", &r[..16.min(r.len())]);
    }
    println!(
        "  {:<14} {:<10} {:<16} {:>11} {:<18} VERDICT",
        "REPLICA", "NODE", "OWNER", "CREDIBILITY", "VOTE"
    );
    for v in &t.votes {
        let vote = match (&v.result, v.committed) {
            (Some(r), _) => r[..16.min(r.len())].to_string(),
            (None, true) => "committed".into(),
            (None, false) => "-".into(),
        };
        println!(
            "  {:<14} {:<10} {:<16} {:>10.1}% {:<18} {}",
            v.instance,
            &v.node[..8.min(v.node.len())],
            v.owner,
            f64::from(v.credibility_ppm) / 10_000.0,
            vote,
            v.verdict.as_deref().unwrap_or("-")
        );
    }
}
