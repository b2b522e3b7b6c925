//! `stratus nodes offer` (a lender prices its node), `stratus market
//! offers` (what the market offers, filtered), `stratus market deals` (open
//! deals) and `stratus market fee` (the pool's fee).

use anyhow::Result;
use clap::{Args, Subcommand};
use stratus_api::deals::{DealView, PoolFee};
use stratus_api::market::{OfferSpec, OfferView};
use stratus_api::WriteResult;

use crate::commands::{client, print_json, table};
use crate::Global;

/// Arguments of `stratus nodes offer`.
#[derive(Args, Debug)]
pub struct OfferArgs {
    /// Node id, prefix or name
    id: String,
    /// Price per CPU-second used (smallest unit)
    #[arg(long, default_value_t = 0)]
    cpu_second: u64,
    /// Price per GiB-hour of memory (peak × wall time)
    #[arg(long, default_value_t = 0)]
    memory_gib_hour: u64,
    /// Price per GiB-month stored
    #[arg(long, default_value_t = 0)]
    storage_gib_month: u64,
    /// Price per GiB served
    #[arg(long, default_value_t = 0)]
    egress_gib: u64,
    /// Price per task started (covers fetching and compiling what it runs)
    #[arg(long, default_value_t = 0)]
    per_task: u64,
    /// When the node takes work, weekly UTC windows, e.g. "mon-fri 18:00-08:00, sat-sun"
    #[arg(long, default_value = "always")]
    available: String,
    /// Withdraw the node's offer instead
    #[arg(long, conflicts_with_all = ["cpu_second", "memory_gib_hour", "storage_gib_month", "egress_gib", "per_task", "available"])]
    withdraw: bool,
}

/// `stratus market ...`.
#[derive(Subcommand, Debug)]
pub enum MarketCmd {
    /// Lenders' offers, cheapest CPU first
    Offers {
        /// Only nodes of this region
        #[arg(long)]
        region: Option<String>,
        /// Only nodes of this site
        #[arg(long)]
        site: Option<String>,
        /// Only nodes on this energy source (solar, wind, hydro, grid, ...)
        #[arg(long)]
        energy: Option<String>,
        /// Only offers at most this price per CPU-second
        #[arg(long)]
        max_cpu_second: Option<u64>,
        /// Only offers available now
        #[arg(long)]
        available_now: bool,
    },
    /// Open deals: what you pay for, what your nodes are paid for (all, for the operator)
    Deals,
    /// The pool operator's fee on lenders' amounts and the stake lenders
    /// hold per replica of a verified run; the operator sets them
    Fee {
        /// New fee in basis points (100 = 1%, at most 5000)
        #[arg(long)]
        set: Option<u32>,
        /// New stake per replica of a verified run (`--trust`): held from
        /// the lender while it runs, a third of it lost to the winners when
        /// its result loses; 0 for none
        #[arg(long)]
        stake: Option<u64>,
    },
}

/// `stratus nodes offer`.
pub async fn offer(g: &Global, a: OfferArgs) -> Result<()> {
    let c = client(g)?;
    let path = format!("/v1/nodes/{}/offer", a.id);
    if a.withdraw {
        let _: WriteResult = c.delete(&path).await?;
        println!("withdrew the offer of {}", a.id);
        return Ok(());
    }
    let spec = OfferSpec {
        cpu_second: a.cpu_second,
        memory_gib_hour: a.memory_gib_hour,
        storage_gib_month: a.storage_gib_month,
        egress_gib: a.egress_gib,
        per_task: a.per_task,
        available: a.available,
    };
    let shown: OfferSpec = c.put(&path, &spec).await?;
    if g.json {
        return print_json(&shown);
    }
    println!(
        "{}: {}/CPU-s, {}/GiB-h memory, {}/GiB-month stored, {}/GiB served, {}/task; available {}",
        a.id,
        shown.cpu_second,
        shown.memory_gib_hour,
        shown.storage_gib_month,
        shown.egress_gib,
        shown.per_task,
        shown.available
    );
    Ok(())
}

/// `stratus market`.
pub async fn market(g: &Global, cmd: MarketCmd) -> Result<()> {
    let c = client(g)?;
    let (region, site, energy, max_cpu_second, available_now) = match cmd {
        MarketCmd::Offers {
            region,
            site,
            energy,
            max_cpu_second,
            available_now,
        } => (region, site, energy, max_cpu_second, available_now),
        MarketCmd::Deals => return deals(g, &c).await,
        MarketCmd::Fee { set, stake } => {
            let mut fee: PoolFee = c.get("/v1/market/fee").await?;
            if set.is_some() || stake.is_some() {
                fee.fee_bps = set.unwrap_or(fee.fee_bps);
                fee.trusted_stake = stake.or(fee.trusted_stake);
                fee = c.put("/v1/market/fee", &fee).await?;
            }
            if g.json {
                return print_json(&fee);
            }
            println!(
                "pool fee: {} basis points ({}.{:02}%) of lenders' amounts",
                fee.fee_bps,
                fee.fee_bps / 100,
                fee.fee_bps % 100
            );
            println!(
                "stake per replica of a verified run: {}",
                fee.trusted_stake.unwrap_or(0)
            );
            return Ok(());
        }
    };
    // The query string, encoded by the URL library.
    let mut url = reqwest::Url::parse("http://query/")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("available_now", &available_now.to_string());
        for (k, v) in [("region", region), ("site", site), ("energy", energy)] {
            if let Some(v) = v {
                q.append_pair(k, &v);
            }
        }
        if let Some(m) = max_cpu_second {
            q.append_pair("max_cpu_second", &m.to_string());
        }
    }
    let query = url.query().unwrap_or_default();
    let list: Vec<OfferView> = c.get(&format!("/v1/market/offers?{query}")).await?;
    if g.json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                o.owner.clone(),
                format!("{}/{}", o.region, o.site),
                format!("{:?}", o.energy).to_lowercase(),
                o.offer.cpu_second.to_string(),
                o.offer.memory_gib_hour.to_string(),
                o.offer.storage_gib_month.to_string(),
                o.offer.egress_gib.to_string(),
                o.offer.per_task.to_string(),
                o.offer.available.clone(),
                if o.available_now { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "OWNER",
            "REGION/SITE",
            "ENERGY",
            "CPU-S",
            "MEM-GIB-H",
            "GIB-MONTH",
            "EGRESS-GIB",
            "TASK",
            "AVAILABLE",
            "NOW",
        ],
        rows,
    );
    Ok(())
}

/// `stratus market deals`.
async fn deals(g: &Global, c: &crate::client::Client) -> Result<()> {
    let list: Vec<DealView> = c.get("/v1/market/deals").await?;
    if g.json {
        return print_json(&list);
    }
    let rows = list
        .iter()
        .map(|d| {
            vec![
                d.instance.clone(),
                d.workload.clone(),
                d.requester.clone(),
                d.lender.clone(),
                d.held.to_string(),
                d.paid.to_string(),
                d.left.to_string(),
                format!("{:.1}", d.cpu_ms as f64 / 1000.0),
                if d.unfunded { "unfunded" } else { "open" }.into(),
            ]
        })
        .collect();
    table(
        &[
            "INSTANCE",
            "WORKLOAD",
            "REQUESTER",
            "LENDER",
            "HELD",
            "PAID",
            "LEFT",
            "CPU-S",
            "STATE",
        ],
        rows,
    );
    Ok(())
}
