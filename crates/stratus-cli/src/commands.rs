//! Client commands: talk to the API, print tables or JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use stratus_api::marks::{NodeMarkView, StatusView};
use stratus_api::{
    AddReplica, CreateTenant, CreateToken, IssuedToken, PutVar, TokenView, VarView, WhoAmI,
    WriteResult,
};
use stratus_types::{ClusterStatus, Tenant};

use crate::client::Client;
use crate::Global;

/// `stratus nodes ...`
#[derive(Subcommand, Debug)]
pub enum NodesCmd {
    /// List lending nodes
    Ls,
    /// Show one node (full id, unique id prefix, or name)
    Show {
        /// Node id, prefix or name
        id: String,
    },
    /// Clear a storage node's mark (set when it failed storage challenges), so it gets pieces again (admin)
    Unmark {
        /// Full node id
        id: String,
    },
    /// Join credentials: create, rotate, list, revoke (admin)
    #[command(subcommand, name = "join-token")]
    JoinToken(crate::join::JoinTokenCmd),
    /// Remove a node for good: lost, its work and pieces move elsewhere, its
    /// key never registers again (admin)
    Ban {
        /// Node id, prefix or name
        id: String,
    },
    /// Set (or withdraw) a node's whole offer: its prices (those not given are 0) and when it takes work (the node's owner)
    Offer(crate::market::OfferArgs),
}

/// `stratus replicas ...`
#[derive(Subcommand, Debug)]
pub enum ReplicasCmd {
    /// List control-plane replicas
    Ls,
    /// Add a replica (started with `stratus server --no-bootstrap`): it catches up as a learner, then votes
    Add {
        /// Its node id (printed by `stratus server` at start)
        id: String,
        /// HOST:PORT of its QUIC endpoint
        addr: String,
    },
    /// Remove a replica from the control plane
    Remove {
        /// Its node id
        id: String,
    },
}

/// `stratus tenants ...`
#[derive(Subcommand, Debug)]
pub enum TenantsCmd {
    /// List tenants
    Ls,
    /// Create a tenant and print its first token
    Create {
        /// Name (a-z, 0-9, '-')
        name: String,
    },
    /// Issue another token for a tenant, with no more rights than yours
    ///
    /// Scopes: admin (the operator's, admin tenant only), full (everything of
    /// the tenant), read-only (GET/HEAD only), storage (buckets, objects, S3
    /// keys), workloads (modules, images, run/deploy/ps/logs/exec).
    Token {
        /// Tenant name
        name: String,
        /// What the token may do [default: your own scope; full when the
        /// admin issues one for another tenant]
        #[arg(long, value_parser = ["admin", "full", "read-only", "storage", "workloads"])]
        scope: Option<String>,
        /// Lifetime, e.g. 15m, 24h, 30d [default: your token's own expiry, or never]
        #[arg(long, value_name = "LIFETIME")]
        expires: Option<String>,
    },
    /// List a tenant's tokens (ids, scopes, expiry; never secrets)
    Tokens {
        /// Tenant name
        name: String,
    },
    /// Revoke a token
    Revoke {
        /// Tenant name
        name: String,
        /// Token id (the part after `stt_`, before the second `_`)
        token_id: String,
    },
    /// Show a tenant's quotas and use, or set some (admin)
    ///
    /// Each flag takes a number (sizes: 10GiB, 500MB, ...), `unlimited`, or
    /// `default`. Quotas not named keep their limits.
    Quota(Box<crate::quotas::QuotaArgs>),
}

/// `stratus vars ...`
#[derive(Subcommand, Debug)]
pub enum VarsCmd {
    /// List variables
    Ls,
    /// Print a variable's value
    Get {
        /// Key
        key: String,
    },
    /// Set a variable (returns once committed by a quorum)
    Put {
        /// Key
        key: String,
        /// Value
        value: String,
    },
    /// Delete a variable
    Rm {
        /// Key
        key: String,
    },
}

/// A client for the API chosen by the global options.
pub fn client(g: &Global) -> Result<Client> {
    let dev = crate::run::dev_dir(g);
    let read = |name: &str| {
        std::fs::read_to_string(dev.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let api = g
        .api
        .clone()
        .or_else(|| read("api.url"))
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", stratus_node::DEFAULT_API_PORT));
    let token = g.token.clone().or_else(|| read("admin.token"));
    Client::new(api, token)
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

pub(crate) fn ago(ms: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Prints rows as aligned columns.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r);
    }
}

/// `stratus status`.
pub async fn status(g: &Global) -> Result<()> {
    let view: StatusView = client(g)?.get("/v1/status").await?;
    if g.json {
        return print_json(&view);
    }
    let s = &view.cluster;
    println!("health:   {}", s.health);
    println!(
        "leader:   {}",
        s.leader
            .map(|l| l.to_string())
            .unwrap_or_else(|| "none (election in progress?)".into())
    );
    println!("term:     {}", s.term);
    println!(
        "log:      last index {}, applied {}, snapshot {}",
        s.last_log_index,
        s.last_applied,
        s.snapshot_index
            .map(|i| i.to_string())
            .unwrap_or_else(|| "none".into())
    );
    println!("nodes:    {} ready, {} lost", s.nodes_ready, s.nodes_lost);
    let d = &view.disk;
    println!(
        "disk:     {} free of {} on this replica's log disk; writes that add data are refused below {}{}",
        bytes(d.free_bytes),
        bytes(d.total_bytes),
        bytes(d.watermark_bytes),
        if d.low { " — LOW: refusing them now" } else { "" }
    );
    if !view.full_storage_nodes.is_empty() {
        let full: Vec<String> = view
            .full_storage_nodes
            .iter()
            .map(|n| format!("{} ({} free)", n.node.short(), bytes(n.free_bytes)))
            .collect();
        println!("full:     storage nodes {} get no pieces", full.join(", "));
    }
    println!("replicas: {}", s.replicas.len());
    let rows = s
        .replicas
        .iter()
        .map(|r| {
            let role = if Some(r.id) == s.leader {
                "leader"
            } else if r.voter {
                "follower"
            } else {
                "learner"
            };
            vec![
                r.id.short(),
                role.to_string(),
                r.addr.clone(),
                r.matched_index
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.lag.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["  ID", "ROLE", "ADDRESS", "MATCHED", "LAG"], indent(rows));
    Ok(())
}

fn indent(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    for r in &mut rows {
        if let Some(c) = r.first_mut() {
            *c = format!("  {c}");
        }
    }
    rows
}

/// `stratus nodes ...`.
pub async fn nodes(g: &Global, cmd: NodesCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        NodesCmd::JoinToken(cmd) => return crate::join::join_token(g, cmd).await,
        NodesCmd::Ban { id } => return crate::join::ban(g, &id).await,
        NodesCmd::Offer(a) => return crate::market::offer(g, a).await,
        NodesCmd::Ls => {
            let views: Vec<stratus_api::NodeView> = c.get("/v1/nodes").await?;
            let marks: Vec<NodeMarkView> = c.get("/v1/nodes/marks").await?;
            if g.json {
                return print_json(&views);
            }
            if views.is_empty() {
                println!("no nodes registered yet; start one with `stratus node --control HOST:PORT --join-token-file FILE` (a credential from `stratus nodes join-token create`)");
                return Ok(());
            }
            let rows = views
                .iter()
                .map(|v| {
                    let n = &v.record;
                    vec![
                        n.info.id.short(),
                        n.info.name.clone(),
                        if n.banned {
                            "banned".into()
                        } else {
                            n.status.to_string() + mark_note(&marks, &n.info.id)
                        },
                        n.owner.clone(),
                        n.info.capacity.cpu_cores.to_string(),
                        bytes(n.info.capacity.memory_bytes),
                        bytes(n.info.capacity.disk_bytes),
                        n.info.attributes.arch.clone(),
                        format!("{}/{}", n.info.attributes.region, n.info.attributes.site),
                        reputation_cell(&v.reputation),
                        ago(n.status_changed_ms),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "NAME",
                    "STATUS",
                    "OWNER",
                    "CPU",
                    "MEMORY",
                    "DISK",
                    "ARCH",
                    "REGION/SITE",
                    "REPUTATION",
                    "SINCE",
                ],
                rows,
            );
        }
        NodesCmd::Show { id } => {
            let v: stratus_api::NodeView = c.get(&format!("/v1/nodes/{id}")).await?;
            if g.json {
                return print_json(&v);
            }
            let n = v.record;
            let marks: Vec<NodeMarkView> = c.get("/v1/nodes/marks").await?;
            let a = &n.info.attributes;
            println!("id:         {}", n.info.id);
            println!("name:       {}", n.info.name);
            println!(
                "status:     {} (for {})",
                n.status,
                ago(n.status_changed_ms)
            );
            if n.banned {
                println!("banned:     yes (lost for good; its key never registers again)");
            }
            println!("owner:      {}", n.owner);
            println!(
                "reputation: {} (score {}, {} lost); owner's {}",
                reputation_cell(&v.reputation),
                v.reputation.score,
                v.reputation.lost,
                reputation_cell(&v.owner_reputation)
            );
            println!("registered: {} ago", ago(n.registered_ms));
            println!("version:    {}", n.info.version);
            println!(
                "capacity:   {} cores, {} memory, {} disk",
                n.info.capacity.cpu_cores,
                bytes(n.info.capacity.memory_bytes),
                bytes(n.info.capacity.disk_bytes)
            );
            println!("platform:   {}/{}", a.os, a.arch);
            let runtimes: Vec<String> = n.info.runtimes.iter().map(|r| r.to_string()).collect();
            println!(
                "runtimes:   {}",
                if runtimes.is_empty() {
                    "none (runs no workloads)".to_string()
                } else {
                    runtimes.join(", ")
                }
            );
            println!("region:     {}", a.region);
            println!("site:       {}", a.site);
            if let (Some(lat), Some(lon)) = (a.latitude, a.longitude) {
                println!("location:   {lat}, {lon}");
            }
            println!(
                "energy:     {}",
                serde_json::to_value(a.energy)?
                    .as_str()
                    .unwrap_or("unknown")
            );
            for (k, v) in &a.labels {
                println!("label:      {k}={v}");
            }
            print_marks(&marks, &n.info.id);
        }
        NodesCmd::Unmark { id } => {
            let r: WriteResult = c
                .post(&format!("/v1/nodes/{id}/unmark"), &serde_json::json!({}))
                .await?;
            if g.json {
                return print_json(&r);
            }
            println!("node {id} unmarked: it gets new pieces again");
        }
    }
    Ok(())
}

/// `", marked"` when `node` is marked as failing storage challenges.
fn mark_note(marks: &[NodeMarkView], node: &stratus_types::NodeId) -> &'static str {
    if marks
        .iter()
        .any(|m| m.node == *node && m.record.marked.is_some())
    {
        ", marked"
    } else {
        ""
    }
}

/// The storage-challenge record of `node`, if it has one.
fn print_marks(marks: &[NodeMarkView], node: &stratus_types::NodeId) {
    let Some(m) = marks.iter().find(|m| m.node == *node) else {
        return;
    };
    if let Some(mark) = &m.record.marked {
        println!(
            "MARKED:     {} ago: {} (no new pieces; its pieces are rebuilt elsewhere; `stratus nodes unmark ID` clears it)",
            ago(mark.since_ms),
            mark.reason
        );
    }
    for s in &m.record.strikes {
        println!("challenge:  failed {} ago: {}", ago(s.at_ms), s.reason);
    }
}

/// `stratus replicas ...`.
pub async fn replicas(g: &Global, cmd: ReplicasCmd) -> Result<()> {
    let c = client(g)?;
    let s: ClusterStatus = match cmd {
        ReplicasCmd::Ls => c.get("/v1/status").await?,
        ReplicasCmd::Add { id, addr } => {
            let id = id.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            eprintln!("adding replica; it first catches up as a learner, which may take a while on a large log");
            c.post("/v1/replicas", &AddReplica { id, addr }).await?
        }
        ReplicasCmd::Remove { id } => c.delete(&format!("/v1/replicas/{id}")).await?,
    };
    if g.json {
        return print_json(&s.replicas);
    }
    let rows = s
        .replicas
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                if Some(r.id) == s.leader {
                    "leader".into()
                } else if r.voter {
                    "follower".into()
                } else {
                    "learner".into()
                },
                r.addr.clone(),
            ]
        })
        .collect();
    table(&["ID", "ROLE", "ADDRESS"], rows);
    Ok(())
}

/// `stratus tenants ...`.
pub async fn tenants(g: &Global, cmd: TenantsCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        TenantsCmd::Ls => {
            let ts: Vec<Tenant> = c.get("/v1/tenants").await?;
            if g.json {
                return print_json(&ts);
            }
            table(
                &["NAME", "AGE"],
                ts.iter()
                    .map(|t| vec![t.name.clone(), ago(t.created_ms)])
                    .collect(),
            );
        }
        TenantsCmd::Create { name } => {
            let t: IssuedToken = c.post("/v1/tenants", &CreateTenant { name }).await?;
            print_token(g, &t)?;
        }
        TenantsCmd::Token {
            name,
            scope,
            expires,
        } => {
            let req = CreateToken {
                scope: scope.map(|s| s.parse()).transpose()?,
                expires_in_secs: expires
                    .as_deref()
                    .map(crate::tokens::parse_lifetime)
                    .transpose()?,
            };
            let t: IssuedToken = c.post(&format!("/v1/tenants/{name}/tokens"), &req).await?;
            print_token(g, &t)?;
        }
        TenantsCmd::Tokens { name } => {
            let ts: Vec<TokenView> = c.get(&format!("/v1/tenants/{name}/tokens")).await?;
            if g.json {
                return print_json(&ts);
            }
            let rows = ts
                .iter()
                .map(|t| {
                    vec![
                        t.token_id.clone(),
                        t.tenant.clone(),
                        t.scope.to_string(),
                        ago(t.created_ms),
                        crate::tokens::expiry(t.expires_ms),
                    ]
                })
                .collect();
            table(&["TOKEN ID", "TENANT", "SCOPE", "AGE", "EXPIRES"], rows);
        }
        TenantsCmd::Quota(args) => crate::quotas::run(g, &c, *args).await?,
        TenantsCmd::Revoke { name, token_id } => {
            let r: WriteResult = c
                .delete(&format!("/v1/tenants/{name}/tokens/{token_id}"))
                .await?;
            if g.json {
                return print_json(&r);
            }
            println!("token {token_id} revoked");
        }
    }
    Ok(())
}

fn print_token(g: &Global, t: &IssuedToken) -> Result<()> {
    if g.json {
        return print_json(t);
    }
    println!(
        "tenant {} token, scope {}, expires {} (shown only now; keep it safe):",
        t.tenant,
        t.scope,
        crate::tokens::expiry(t.expires_ms)
    );
    println!("{}", t.token);
    Ok(())
}

/// `stratus vars ...` (for the caller's tenant).
pub async fn vars(g: &Global, cmd: VarsCmd) -> Result<()> {
    let c = client(g)?;
    let me: WhoAmI = c.get("/v1/whoami").await?;
    let base = format!("/v1/tenants/{}/vars", me.tenant);
    match cmd {
        VarsCmd::Ls => {
            let vs: Vec<VarView> = c.get(&base).await?;
            if g.json {
                return print_json(&vs);
            }
            table(
                &["KEY", "VERSION", "VALUE"],
                vs.iter()
                    .map(|v| {
                        vec![
                            v.key.clone(),
                            v.var.version.to_string(),
                            v.var.value.clone(),
                        ]
                    })
                    .collect(),
            );
        }
        VarsCmd::Get { key } => {
            let v: VarView = c.get(&format!("{base}/{key}")).await?;
            if g.json {
                return print_json(&v);
            }
            println!("{}", v.var.value);
        }
        VarsCmd::Put { key, value } => {
            let r: WriteResult = c.put(&format!("{base}/{key}"), &PutVar { value }).await?;
            if g.json {
                return print_json(&r);
            }
            println!("committed at index {}", r.index);
        }
        VarsCmd::Rm { key } => {
            let r: WriteResult = c.delete(&format!("{base}/{key}")).await?;
            if g.json {
                return print_json(&r);
            }
            println!("deleted (index {})", r.index);
        }
    }
    Ok(())
}

/// A reputation in a table cell: its credibility, and `barred` when it may
/// take no trusted work.
fn reputation_cell(r: &stratus_api::ReputationView) -> String {
    let pct = format!(
        "{}.{}%",
        r.credibility_ppm / 10_000,
        r.credibility_ppm / 1_000 % 10
    );
    if r.eligible {
        pct
    } else {
        format!("{pct} barred")
    }
}
