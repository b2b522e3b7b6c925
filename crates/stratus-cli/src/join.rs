//! `stratus nodes join-token ...` and `stratus nodes ban`: who may join as
//! a node, whose node it is, and removing a node for good.

use anyhow::Result;
use clap::Subcommand;
use stratus_api::joining::{Banned, CreateJoinToken, IssuedJoinToken};
use stratus_state::nodes::JoinCredentialRecord;
use stratus_types::NodeRecord;

use crate::commands::{ago, client, print_json, table};
use crate::Global;

/// `stratus nodes join-token ...`
#[derive(Subcommand, Debug)]
pub enum JoinTokenCmd {
    /// Print a new join credential (give it to `stratus node --join-token`)
    Create {
        /// Tenant that will own the nodes joined with it [default: admin]
        #[arg(long)]
        owner: Option<String>,
        /// Stop joining new nodes after this long, e.g. 15m, 24h, 30d [default: never]
        #[arg(long, value_name = "LIFETIME")]
        expires: Option<String>,
        /// Consumed by the first node that joins with it
        #[arg(long)]
        once: bool,
    },
    /// Replace the default credential: the old one joins no new node (nodes
    /// already joined keep working)
    Rotate,
    /// List join credentials (never their secrets)
    Ls,
    /// Revoke a join credential (nodes it joined stay)
    Revoke {
        /// Credential id (the 12 hex characters after `stj_`)
        id: String,
    },
}

fn print_new(g: &Global, t: &IssuedJoinToken, what: &str) -> Result<()> {
    if g.json {
        return print_json(t);
    }
    let r = &t.record;
    eprintln!(
        "{what} {} for nodes owned by {}, {}{} (shown only now; keep it safe):",
        r.id,
        r.owner,
        match r.expires_ms {
            Some(_) => format!("expires {}", crate::tokens::expiry(r.expires_ms)),
            None => "no expiry".into(),
        },
        if r.once { ", one use" } else { "" }
    );
    println!("{}", t.credential);
    eprintln!("join a node with: stratus node --control HOST:PORT --join-token-file FILE (the file holding this line)");
    Ok(())
}

/// `stratus nodes join-token ...`.
pub async fn join_token(g: &Global, cmd: JoinTokenCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        JoinTokenCmd::Create {
            owner,
            expires,
            once,
        } => {
            let req = CreateJoinToken {
                owner,
                expires_in_s: expires
                    .as_deref()
                    .map(crate::tokens::parse_lifetime)
                    .transpose()?,
                once,
                default: false,
            };
            let t: IssuedJoinToken = c.post("/v1/join-tokens", &req).await?;
            print_new(g, &t, "join credential")?;
        }
        JoinTokenCmd::Rotate => {
            let req = CreateJoinToken {
                default: true,
                ..Default::default()
            };
            let t: IssuedJoinToken = c.post("/v1/join-tokens", &req).await?;
            print_new(g, &t, "new default join credential")?;
            if !g.json {
                eprintln!("the previous default credential joins no new node; nodes already joined keep working");
            }
        }
        JoinTokenCmd::Ls => {
            let ts: Vec<JoinCredentialRecord> = c.get("/v1/join-tokens").await?;
            if g.json {
                return print_json(&ts);
            }
            let rows = ts
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.owner.clone(),
                        crate::tokens::expiry(t.expires_ms),
                        match (t.once, t.used_by) {
                            (false, _) => "many".into(),
                            (true, None) => "once (unused)".into(),
                            (true, Some(n)) => format!("once (used by {})", n.short()),
                        },
                        if t.default { "yes" } else { "" }.into(),
                        ago(t.created_ms),
                    ]
                })
                .collect();
            table(
                &["ID", "OWNER", "EXPIRES", "USES", "DEFAULT", "CREATED"],
                rows,
            );
        }
        JoinTokenCmd::Revoke { id } => {
            let _: serde_json::Value = c.delete(&format!("/v1/join-tokens/{id}")).await?;
            if !g.json {
                println!("join credential {id} revoked: it joins no new node");
            }
        }
    }
    Ok(())
}

/// `stratus nodes ban ID`.
pub async fn ban(g: &Global, id: &str) -> Result<()> {
    let c = client(g)?;
    let n: NodeRecord = c.get(&format!("/v1/nodes/{id}")).await?;
    let b: Banned = c
        .post(
            &format!("/v1/nodes/{}/ban", n.info.id),
            &serde_json::json!({}),
        )
        .await?;
    if g.json {
        return print_json(&b);
    }
    println!(
        "banned node {} ({}, owner {}): it is lost for good and its key can never register again",
        b.node.info.name,
        b.node.info.id.short(),
        b.node.owner
    );
    println!(
        "  {} instance(s) move to other nodes; {} piece(s) it held are repaired elsewhere (watch `stratus storage status`)",
        b.instances, b.pieces
    );
    Ok(())
}
