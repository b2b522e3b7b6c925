//! The `stratus` binary.
//!
//! Long-running commands (`dev`, `server`, `node`) start node roles through
//! `stratus-node` and stop them in order on SIGINT/SIGTERM. Every other
//! command is a client of the HTTP API (`--api`, `--token`, or the local dev
//! cloud's files by default), printing tables for people and JSON with
//! `--json`. Settings come from flags, then `STRATUS_*` environment
//! variables, then the TOML config file (`--config`), then defaults.
//! `stratus bench ...` is parsed and run by `stratus-bench`; this crate only
//! dispatches to it.

mod account;
mod audit;
mod catalog;
mod client;
mod commands;
mod images;
mod join;
mod market;
mod objects;
mod order_key;
mod quotas;
mod run;
mod s3;
mod tokens;
mod verified;
mod workloads;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Stratus — a decentralized edge cloud in one binary.
///
/// Start a whole local cloud with `stratus dev`, then in another terminal
/// `stratus status` and `stratus nodes ls`.
#[derive(Parser, Debug)]
#[command(
    name = "stratus",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options shared by every command.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// URL of the Stratus API [default: the local dev cloud's, else http://127.0.0.1:7420]
    #[arg(long, global = true, env = "STRATUS_API")]
    api: Option<String>,
    /// API token [default: the local dev cloud's admin token]
    #[arg(long, global = true, env = "STRATUS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    json: bool,
    /// Folder of the local dev cloud (used by `dev` and to find its API and token)
    #[arg(long, global = true, env = "STRATUS_DEV_DIR")]
    dev_dir: Option<PathBuf>,
    /// Log filter (e.g. `info`, `debug`, `stratus_control=debug`)
    #[arg(
        long,
        global = true,
        env = "STRATUS_LOG",
        default_value = "info,openraft=error"
    )]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a whole local cloud on this machine: control replicas and agents, data in one folder
    Dev(run::DevArgs),
    /// Run a control-plane replica (with its HTTP API)
    Server(run::ServerArgs),
    /// Run an agent that lends this machine to the cloud
    Node(Box<run::NodeArgs>),
    /// Health of the control plane: leader, replicas, replication lag
    Status,
    /// Run a WASM module or a container image once on the cloud: streams its output, exits with its code
    Run(workloads::RunArgs),
    /// Container images: import, list, remove
    #[command(subcommand)]
    Image(images::ImageCmd),
    /// Deploy a workload spec (YAML or TOML): task, service or daemon
    Deploy {
        /// The spec file
        spec: PathBuf,
    },
    /// List instances of your workloads
    Ps {
        /// Include instances that have ended
        #[arg(long, short)]
        all: bool,
    },
    /// Output of an instance (or of a workload's newest instance)
    Logs {
        /// Keep printing new output until the instance ends
        #[arg(long, short)]
        follow: bool,
        /// Instance id or workload name
        id: String,
    },
    /// Run a command inside a running container instance (like `docker exec`): stratus exec ID -- CMD
    Exec {
        /// Instance id or workload name (its newest running instance)
        id: String,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        args: Vec<String>,
    },
    /// Stop a workload
    Stop {
        /// Workload name
        name: String,
    },
    /// Events of a workload's instances, or of one instance
    Inspect {
        /// Workload name or instance id
        id: String,
    },
    /// Store a file as a new version of an object: stratus put FILE BUCKET/KEY
    Put(objects::PutArgs),
    /// Read an object: stratus get BUCKET/KEY [FILE]
    Get(objects::GetArgs),
    /// List buckets, or the objects of BUCKET[/PREFIX]
    Ls {
        /// BUCKET or BUCKET/PREFIX
        target: Option<String>,
    },
    /// Delete an object (adds a delete marker; --version removes one version for good)
    Rm {
        /// BUCKET/KEY
        target: String,
        /// Remove this version permanently
        #[arg(long)]
        version_id: Option<String>,
    },
    /// Every version and delete marker of BUCKET[/PREFIX]
    Versions {
        /// BUCKET or BUCKET/PREFIX
        target: String,
    },
    /// Buckets: create, ls, rm
    #[command(subcommand)]
    Bucket(objects::BucketCmd),
    /// The object store: capacity per node, redundancy, repair, scrub
    #[command(subcommand)]
    Storage(objects::StorageCmd),
    /// The S3 gateway: access keys
    #[command(subcommand)]
    S3(s3::S3Cmd),
    /// Lending machines
    #[command(subcommand)]
    Nodes(commands::NodesCmd),
    /// Control-plane replicas (membership)
    #[command(subcommand)]
    Replicas(commands::ReplicasCmd),
    /// Tenants and their tokens (admin)
    #[command(subcommand)]
    Tenants(commands::TenantsCmd),
    /// Replicated key/value variables of your tenant
    #[command(subcommand)]
    Vars(commands::VarsCmd),
    /// Your market account: balance, escrow, history, statements; deposits and withdrawals (operator)
    Account(account::AccountArgs),
    /// The market: lenders' offers
    #[command(subcommand)]
    Market(market::MarketCmd),
    /// Paid apps: publish a module or image others run at a price per task
    #[command(subcommand)]
    App(catalog::AppCmd),
    /// Paid datasets: publish a bucket prefix others' tasks read as /input at a price per task
    #[command(subcommand)]
    Dataset(catalog::DatasetCmd),
    /// The audit log: every lifecycle event, ledger entry and administrative act, hash-chained and signed by replicas
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Print the OpenAPI document of the API
    Openapi,
    /// Measure this build: control-plane commit throughput/latency, agent memory
    #[command(subcommand)]
    Bench(stratus_bench::BenchCmd),
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: not in node.log files, not
    // through pipes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// `stratus ps | head`: when the reader of our output goes away, end quietly
/// as other Unix tools do (status 141, as if killed by `SIGPIPE`) instead of
/// panicking in `println!`. (Rust ignores `SIGPIPE`; restoring it would also
/// let a closed pipe to a child process kill a node.)
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.payload_as_str().unwrap_or_default();
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    init_logging(&cli.global.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let g = cli.global;
        match cli.cmd {
            Cmd::Dev(a) => run::dev(&g, a).await,
            Cmd::Server(a) => run::server(&g, a).await,
            Cmd::Node(a) => match a.action {
                Some(run::NodeAction::Drain { id, undo }) => workloads::drain(&g, &id, undo).await,
                None => run::node(&g, *a).await,
            },
            Cmd::Run(a) => {
                let code = workloads::run(&g, a).await?;
                std::process::exit(code);
            }
            Cmd::Deploy { spec } => workloads::deploy(&g, &spec).await,
            Cmd::Ps { all } => workloads::ps(&g, all).await,
            Cmd::Logs { follow, id } => workloads::logs(&g, &id, follow).await,
            Cmd::Exec { id, args } => {
                let code = workloads::exec(&g, &id, args).await?;
                std::process::exit(code);
            }
            Cmd::Stop { name } => workloads::stop(&g, &name).await,
            Cmd::Inspect { id } => workloads::inspect(&g, &id).await,
            Cmd::Status => commands::status(&g).await,
            Cmd::Put(a) => objects::put(&g, a).await,
            Cmd::Get(a) => objects::get(&g, a).await,
            Cmd::Ls { target } => objects::ls(&g, target).await,
            Cmd::Rm { target, version_id } => objects::rm(&g, &target, version_id).await,
            Cmd::Versions { target } => objects::versions(&g, &target).await,
            Cmd::Bucket(c) => objects::bucket(&g, c).await,
            Cmd::Image(c) => images::image(&g, c).await,
            Cmd::Storage(c) => objects::storage(&g, c).await,
            Cmd::S3(c) => s3::s3(&g, c).await,
            Cmd::Nodes(c) => commands::nodes(&g, c).await,
            Cmd::Replicas(c) => commands::replicas(&g, c).await,
            Cmd::Tenants(c) => commands::tenants(&g, c).await,
            Cmd::Vars(c) => commands::vars(&g, c).await,
            Cmd::Account(a) => account::run(&g, a).await,
            Cmd::Market(c) => market::market(&g, c).await,
            Cmd::Audit(c) => audit::audit(&g, c).await,
            Cmd::App(c) => catalog::app(&g, c).await,
            Cmd::Dataset(c) => catalog::dataset(&g, c).await,
            Cmd::Openapi => {
                println!("{}", stratus_api::openapi_json());
                Ok(())
            }
            Cmd::Bench(c) => Ok(stratus_bench::run(c).await?),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
