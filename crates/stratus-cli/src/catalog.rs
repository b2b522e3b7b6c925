//! `stratus app ...` and `stratus dataset ...`: publishing what other
//! tenants run or read at a price per task, and browsing what is
//! published. Using one: `stratus run --app OWNER/NAME [--dataset
//! OWNER/NAME]`, or `market: { app: ..., dataset: ... }` in a spec.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use stratus_api::catalog::{AppView, PublishApp, PublishDataset};
use stratus_api::WriteResult;
use stratus_state::catalog::{App, Dataset};

use crate::client::Client;
use crate::commands::{client, print_json, table};
use crate::Global;

/// `stratus app ...`.
#[derive(Subcommand, Debug)]
pub enum AppCmd {
    /// Publish a module (a .wasm/.wat file, uploaded first) or one of your
    /// images as OWNER/NAME: other tenants run it at PRICE per task without
    /// receiving its bytes (the node that runs it does)
    Publish {
        /// A WASM module file, or the name of one of your images (NAME[:TAG])
        what: String,
        /// Its name (published as YOUR-TENANT/NAME)
        #[arg(long)]
        name: String,
        /// Price per task, in the pool's smallest unit
        #[arg(long)]
        price: u64,
        /// Declare the image deterministic (the same input gives the same
        /// output on every node), so that requesters may run it verified
        /// (`--trust`); WASM modules run deterministically already
        #[arg(long)]
        deterministic: bool,
    },
    /// Published apps
    Ls,
    /// Withdraw one of your apps (what already runs keeps running)
    Remove {
        /// Its name
        name: String,
    },
}

/// `stratus dataset ...`.
#[derive(Subcommand, Debug)]
pub enum DatasetCmd {
    /// Publish BUCKET/PREFIX of one of your buckets as OWNER/NAME: other
    /// tenants' tasks get it as /input inside a paid deal, at PRICE per task
    Publish {
        /// BUCKET or BUCKET/PREFIX
        source: String,
        /// Its name (published as YOUR-TENANT/NAME)
        #[arg(long)]
        name: String,
        /// Price per task, in the pool's smallest unit
        #[arg(long)]
        price: u64,
        /// Only with this app (OWNER/NAME; repeatable). Without any, any
        /// module may read it, and so copy it to its output
        #[arg(long = "app")]
        apps: Vec<String>,
    },
    /// Published datasets
    Ls,
    /// Withdraw one of your datasets
    Remove {
        /// Its name
        name: String,
    },
}

/// Whether published app `id` runs a container image (else a module).
pub async fn app_is_image(c: &Client, id: &str) -> Result<bool> {
    let apps: Vec<App> = c.get("/v1/market/apps").await?;
    match apps
        .iter()
        .find(|a| format!("{}/{}", a.owner, a.name) == id)
    {
        Some(a) => Ok(a.payload.image().is_some()),
        None => bail!("no app {id} is published; see `stratus app ls`"),
    }
}

/// `stratus app`.
pub async fn app(g: &Global, cmd: AppCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        AppCmd::Publish {
            what,
            name,
            price,
            deterministic,
        } => {
            let path = PathBuf::from(&what);
            let (module, image) = if path.is_file() {
                (Some(crate::workloads::upload(&c, &path).await?.hash), None)
            } else {
                (None, Some(what))
            };
            let req = PublishApp {
                name,
                module,
                image,
                price,
                deterministic,
            };
            let v: AppView = c.post("/v1/market/apps", &req).await?;
            if g.json {
                return print_json(&v);
            }
            let a = &v.app;
            println!(
                "published app {}/{} ({}) at {} per task{}",
                a.owner,
                a.name,
                a.payload,
                a.price,
                if v.deterministic {
                    ", declared deterministic"
                } else {
                    ""
                }
            );
        }
        AppCmd::Ls => {
            let list: Vec<AppView> = c.get("/v1/market/apps").await?;
            if g.json {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|v| {
                    vec![
                        format!("{}/{}", v.app.owner, v.app.name),
                        v.app.price.to_string(),
                        v.app.payload.to_string(),
                        if v.deterministic { "yes" } else { "-" }.to_string(),
                    ]
                })
                .collect();
            table(&["APP", "PRICE", "RUNS", "DETERMINISTIC"], rows);
        }
        AppCmd::Remove { name } => {
            let _: WriteResult = c.delete(&format!("/v1/market/apps/{name}")).await?;
            println!("withdrew app {name}");
        }
    }
    Ok(())
}

/// `stratus dataset`.
pub async fn dataset(g: &Global, cmd: DatasetCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        DatasetCmd::Publish {
            source,
            name,
            price,
            apps,
        } => {
            let (bucket, prefix) = source.split_once('/').unwrap_or((&source, ""));
            if apps.is_empty() {
                eprintln!(
                    "stratus: note: any module may read this dataset and copy it to its output; \
                     restrict it with --app OWNER/NAME to keep it unreadable to requesters"
                );
            }
            let req = PublishDataset {
                name,
                bucket: bucket.into(),
                prefix: prefix.into(),
                price,
                apps,
            };
            let d: Dataset = c.post("/v1/market/datasets", &req).await?;
            if g.json {
                return print_json(&d);
            }
            println!(
                "published dataset {}/{} ({}/{}) at {} per task",
                d.owner, d.name, d.bucket, d.prefix, d.price
            );
        }
        DatasetCmd::Ls => {
            let list: Vec<Dataset> = c.get("/v1/market/datasets").await?;
            if g.json {
                return print_json(&list);
            }
            let rows = list
                .iter()
                .map(|d| {
                    vec![
                        format!("{}/{}", d.owner, d.name),
                        d.price.to_string(),
                        if d.apps.is_empty() {
                            "any".into()
                        } else {
                            d.apps.join(",")
                        },
                    ]
                })
                .collect();
            table(&["DATASET", "PRICE", "APPS"], rows);
        }
        DatasetCmd::Remove { name } => {
            let _: WriteResult = c.delete(&format!("/v1/market/datasets/{name}")).await?;
            println!("withdrew dataset {name}");
        }
    }
    Ok(())
}
