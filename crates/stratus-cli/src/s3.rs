//! `stratus s3 ...`: access keys for the S3 gateway.

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use stratus_api::s3keys::{CreateS3Key, IssuedS3Key, S3KeyView};

use crate::commands::{ago, client, print_json, table};
use crate::Global;

/// `stratus s3 ...`
#[derive(Subcommand, Debug)]
pub enum S3Cmd {
    /// S3 access keys (for aws, rclone, s3cmd, boto3, ...)
    #[command(subcommand)]
    Keys(KeysCmd),
}

/// `stratus s3 keys ...`
#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create an access key and print it with ready-to-paste client settings
    Create {
        /// Tenant the key acts for [default: the token's tenant; another one needs the admin token]
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List access keys (ids only)
    Ls,
    /// Delete an access key
    Rm {
        /// Access key id
        id: String,
    },
}

/// The S3 endpoint to suggest: `STRATUS_S3_ENDPOINT`, the dev cloud's
/// `s3.url`, or the API host on the default S3 port.
fn endpoint(g: &Global, api: &str) -> String {
    if let Ok(e) = std::env::var("STRATUS_S3_ENDPOINT") {
        return e;
    }
    if g.api.is_none() {
        if let Ok(s) = std::fs::read_to_string(crate::run::dev_dir(g).join("s3.url")) {
            return s.trim().to_string();
        }
    }
    let host = api
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|hp| hp.rsplit_once(':').map(|(h, _)| h.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    format!("http://{host}:7480")
}

/// `stratus s3`.
pub async fn s3(g: &Global, cmd: S3Cmd) -> Result<()> {
    let c = client(g)?;
    let S3Cmd::Keys(cmd) = cmd;
    match cmd {
        KeysCmd::Create { tenant } => {
            let k: IssuedS3Key = c.post("/v1/s3/keys", &CreateS3Key { tenant }).await?;
            if g.json {
                return print_json(&k);
            }
            let ep = endpoint(g, c.base());
            println!(
                "S3 access key for tenant {} (the secret is shown only now):",
                k.tenant
            );
            println!("  access key: {}", k.access_key);
            println!("  secret:     {}", k.secret);
            println!("  endpoint:   {ep}   (region us-east-1, path-style)");
            println!();
            println!("Environment (aws cli, boto3, rclone with env_auth):");
            println!("  export AWS_ACCESS_KEY_ID={}", k.access_key);
            println!("  export AWS_SECRET_ACCESS_KEY={}", k.secret);
            println!("  export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL={ep}");
            println!("Or a named aws profile:");
            println!(
                "  aws configure set aws_access_key_id {} --profile stratus",
                k.access_key
            );
            println!(
                "  aws configure set aws_secret_access_key {} --profile stratus",
                k.secret
            );
            println!("  aws configure set region us-east-1 --profile stratus");
            println!("  aws --profile stratus --endpoint-url {ep} s3 ls");
        }
        KeysCmd::Ls => {
            let ks: Vec<S3KeyView> = c.get("/v1/s3/keys").await?;
            if g.json {
                return print_json(&ks);
            }
            table(
                &["ACCESS KEY", "TENANT", "AGE"],
                ks.iter()
                    .map(|k| vec![k.access_key.clone(), k.tenant.clone(), ago(k.created_ms)])
                    .collect(),
            );
        }
        KeysCmd::Rm { id } => {
            let resp = c
                .execute(c.streaming(Method::DELETE, &format!("/v1/s3/keys/{id}")))
                .await?;
            drop(resp);
            println!("deleted access key {id}");
        }
    }
    Ok(())
}
