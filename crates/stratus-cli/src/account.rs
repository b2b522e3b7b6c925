//! `stratus account`: the caller's balance and escrow, its ledger history
//! and statements, and the operator's deposits and withdrawals.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use stratus_api::accounts::{AccountView, EntryView, HistoryView, MoneyMove};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::commands::{ago, client, print_json, table};
use crate::Global;

/// Arguments of `stratus account`.
#[derive(Args, Debug)]
pub struct AccountArgs {
    /// Another tenant's account (the operator only)
    #[arg(long, global = true)]
    tenant: Option<String>,
    #[command(subcommand)]
    cmd: Option<AccountCmd>,
}

/// `stratus account ...`.
#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Ledger entries of the account, newest last
    History {
        /// Most entries to show
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only entries after this number (the `next` of an earlier page)
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Every entry between two dates, as CSV (one row per transfer) or JSON
    Statement {
        /// First day or instant included: 2026-12-01, 2026-12-01T08:00:00Z, or ms since the epoch
        #[arg(long)]
        from: String,
        /// First day or instant excluded (default: now)
        #[arg(long)]
        to: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
    /// Record money that entered the pool for TENANT (operator)
    Deposit {
        /// Tenant credited
        tenant: String,
        /// Amount in the pool's smallest unit (a whole number)
        amount: String,
        /// Your reference of the payment (e.g. a bank transfer id)
        #[arg(long, default_value = "")]
        reference: String,
    },
    /// Your order key: with --create, make one on this machine and register it (from then on your market orders must be signed by it; `stratus run` and `stratus deploy` sign them)
    OrderKey {
        /// Create the key (kept in ~/.stratus/order-key or $STRATUS_ORDER_KEY_DIR) and register it
        #[arg(long, conflicts_with = "remove")]
        create: bool,
        /// Unregister it: orders need no signature again
        #[arg(long)]
        remove: bool,
    },
    /// Pay money out of TENANT's balance (operator)
    Withdraw {
        /// Tenant debited
        tenant: String,
        /// Amount in the pool's smallest unit (a whole number)
        amount: String,
        /// Your reference of the payout
        #[arg(long, default_value = "")]
        reference: String,
    },
}

/// A statement's format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Comma-separated, one row per transfer
    Csv,
    /// A JSON array of entries
    Json,
}

/// Parses a statement bound: a day (UTC midnight), an RFC 3339 instant, or
/// milliseconds since the epoch.
pub(crate) fn parse_instant(s: &str) -> Result<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| anyhow!("{s:?} is too large"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    let t = OffsetDateTime::parse(&full, &Rfc3339).map_err(|e| {
        anyhow!("{s:?} is not a date: give 2026-12-01, 2026-12-01T08:00:00Z or milliseconds ({e})")
    })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| anyhow!("{s:?} is before 1970"))
}

pub(crate) fn rfc3339(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn amount(s: &str) -> Result<u64> {
    let a: stratus_market::Amount = s.parse()?;
    Ok(a.0)
}

fn query(tenant: &Option<String>) -> String {
    tenant
        .as_deref()
        .map(|t| format!("tenant={t}&"))
        .unwrap_or_default()
}

/// `stratus account`.
pub async fn run(g: &Global, a: AccountArgs) -> Result<()> {
    let c = client(g)?;
    let q = query(&a.tenant);
    match a.cmd {
        None => {
            let v: AccountView = c.get(&format!("/v1/account?{q}")).await?;
            if g.json {
                return print_json(&v);
            }
            table(
                &["TENANT", "BALANCE", "HELD"],
                vec![vec![v.tenant, v.balance.to_string(), v.held.to_string()]],
            );
            Ok(())
        }
        Some(AccountCmd::History { limit, after }) => {
            let h: HistoryView = c
                .get(&format!(
                    "/v1/account/history?{q}after={after}&limit={limit}"
                ))
                .await?;
            if g.json {
                return print_json(&h);
            }
            let rows = h
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        ago(e.at_ms),
                        e.reason.clone(),
                        e.transfers
                            .iter()
                            .map(|t| format!("{} -> {}: {}", t.from, t.to, t.amount))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            table(&["SEQ", "AGE", "REASON", "TRANSFERS"], rows);
            if let Some(n) = h.next {
                println!("more: stratus account history --after {n}");
            }
            Ok(())
        }
        Some(AccountCmd::Statement { from, to, format }) => {
            let from_ms = parse_instant(&from)?;
            let to_ms = match to {
                Some(t) => parse_instant(&t)?,
                None => stratus_control::now_ms(),
            };
            if from_ms > to_ms {
                bail!("--from is after --to");
            }
            let mut entries = Vec::new();
            let mut after = 0;
            loop {
                let h: HistoryView = c
                    .get(&format!(
                        "/v1/account/history?{q}after={after}&from_ms={from_ms}&to_ms={to_ms}"
                    ))
                    .await?;
                entries.extend(h.entries);
                match h.next {
                    Some(n) => after = n,
                    None => break,
                }
            }
            match format {
                Format::Json => print_json(&entries),
                Format::Csv => {
                    print!("{}", csv(&entries));
                    Ok(())
                }
            }
        }
        Some(AccountCmd::Deposit {
            tenant,
            amount: a,
            reference,
        }) => {
            let body = MoneyMove {
                amount: amount(&a)?,
                reference,
            };
            let v: AccountView = c
                .post(&format!("/v1/tenants/{tenant}/deposit"), &body)
                .await
                .with_context(|| format!("depositing {a} for {tenant}"))?;
            show_after(g, &v, "deposited", body.amount)
        }
        Some(AccountCmd::OrderKey { create, remove }) => {
            crate::order_key::order_key(g, &a.tenant, create, remove).await
        }
        Some(AccountCmd::Withdraw {
            tenant,
            amount: a,
            reference,
        }) => {
            let body = MoneyMove {
                amount: amount(&a)?,
                reference,
            };
            let v: AccountView = c
                .post(&format!("/v1/tenants/{tenant}/withdraw"), &body)
                .await
                .with_context(|| format!("withdrawing {a} from {tenant}"))?;
            show_after(g, &v, "withdrew", body.amount)
        }
    }
}

fn show_after(g: &Global, v: &AccountView, verb: &str, amount: u64) -> Result<()> {
    if g.json {
        return print_json(v);
    }
    println!(
        "{verb} {amount}: {} now has {} (held {})",
        v.tenant, v.balance, v.held
    );
    Ok(())
}

/// One row per transfer: `seq,at,reason,from,to,amount,refs`.
fn csv(entries: &[EntryView]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("seq,at,reason,from,to,amount,refs\n");
    for e in entries {
        for t in &e.transfers {
            out.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                e.seq,
                rfc3339(e.at_ms),
                field(&e.reason),
                field(&t.from),
                field(&t.to),
                t.amount,
                field(&e.refs.to_string())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_days_rfc3339_and_ms() {
        assert_eq!(parse_instant("1970-01-02").ok(), Some(86_400_000));
        assert_eq!(parse_instant("1970-01-01T00:00:01Z").ok(), Some(1_000));
        assert_eq!(parse_instant("42").ok(), Some(42));
        for bad in ["", "yesterday", "2026-13-01", "-5"] {
            assert!(parse_instant(bad).is_err(), "{bad:?}");
        }
        assert_eq!(rfc3339(1_000), "1970-01-01T00:00:01Z");
    }

    #[test]
    fn csv_quotes_fields_that_need_it() {
        let e = EntryView {
            seq: 3,
            at_ms: 0,
            reason: "deposit".into(),
            refs: serde_json::json!({"external": "wire, 7"}),
            transfers: vec![stratus_api::accounts::TransferView {
                from: "external".into(),
                to: "tenant:bob".into(),
                amount: 5,
            }],
        };
        let out = csv(&[e]);
        assert_eq!(
            out,
            "seq,at,reason,from,to,amount,refs\n3,1970-01-01T00:00:00Z,deposit,external,tenant:bob,5,\"{\"\"external\"\":\"\"wire, 7\"\"}\"\n"
        );
    }

    #[test]
    fn amounts_are_whole_units() {
        assert_eq!(amount("1000000").ok(), Some(1_000_000));
        assert!(amount("1.5").is_err());
        assert!(amount("-3").is_err());
    }
}
