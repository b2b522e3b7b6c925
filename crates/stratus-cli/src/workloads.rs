//! Workload commands: run, deploy, ps, logs, stop, inspect, drain.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use stratus_api::workloads::{Deploy, Drain, ExecRequest, ExecStarted, ModuleRef, WorkloadView};
use stratus_api::WriteResult;
use stratus_spec::{
    Extensions, FetchMode, Format, ImageSource, MarketPrefer, MarketSpec, Networking, PortSpec,
    WasmSource, WorkloadKind, WorkloadSpec,
};
use stratus_state::workloads::ExecState;
use stratus_state::{Instance, InstanceState, Workload};

use crate::client::Client;
use crate::commands::{client, print_json, table};
use crate::Global;

/// Arguments of `stratus run`.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  stratus run hello.wasm -- Stratus\n  stratus image import busybox.tar --name busybox\n  stratus run --image busybox -- sh -c 'echo hi from $(hostname)'"
)]
pub struct RunArgs {
    /// The WASM module (.wasm, or .wat text)
    #[arg(required_unless_present_any = ["image", "app"], conflicts_with_all = ["image", "app"])]
    pub module: Option<PathBuf>,
    /// Run a published app (OWNER/NAME, see `stratus app ls`) instead of a
    /// module of your own; its owner is paid its price per task
    #[arg(long, conflicts_with = "image")]
    pub app: Option<String>,
    /// Use a published dataset (OWNER/NAME, see `stratus dataset ls`) as the
    /// task's /input; its owner is paid its price per task
    #[arg(long)]
    pub dataset: Option<String>,
    /// Run this container image (NAME[:TAG], imported with `stratus image import`) instead of a module
    #[arg(long)]
    pub image: Option<String>,
    /// Arguments passed to the program (for an image: the command, replacing the image's CMD)
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Publish a container port on the node: [HOST:]CONTAINER[/udp]
    /// (repeatable; HOST 0 or omitted: any free port; TCP unless `/udp`)
    #[arg(long = "publish", short = 'p', value_parser = parse_port, requires = "image")]
    pub publish: Vec<(PortSpec, bool)>,
    /// When the node fetches the image: `lazy` (on first read, fastest start)
    /// or `full` (all of it before the container starts)
    #[arg(long, value_parser = ["lazy", "full"], default_value = "lazy", requires = "image")]
    pub fetch: String,
    /// Workload name [default: run-<random>]
    #[arg(long)]
    pub name: Option<String>,
    /// Memory limit in MiB
    #[arg(long, default_value_t = 64)]
    pub memory_mb: u64,
    /// Wall-clock limit in seconds
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// CPU-time budget in seconds
    #[arg(long)]
    pub cpu_secs: Option<u64>,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(long = "env", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// The most the task may cost, in the pool's smallest unit (held in
    /// escrow until it ends; default: whatever your balance covers)
    #[arg(long)]
    pub max_price: Option<u64>,
    /// Which lender's node to prefer among those whose offer fits
    #[arg(long, value_enum)]
    pub prefer: Option<Prefer>,
    /// Verify the result: run replicas on nodes of distinct owners, in a
    /// deterministic environment, and accept the result their
    /// reputation-weighted votes agree on with probability above 1 − 1/N
    /// (WASM tasks, and image apps declared deterministic; costs about as
    /// many times the task as replicas run, at least 2; the output is
    /// printed once the verdict is in)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub trust: Option<u32>,
}

/// `--prefer` values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Prefer {
    /// The lowest worst-case cost
    Cheapest,
    /// The cleanest declared energy source (solar, wind, hydro first)
    Greenest,
}

/// `[HOST:]CONTAINER[/udp|/tcp]`: the port, and whether it is UDP.
fn parse_port(s: &str) -> Result<(PortSpec, bool), String> {
    let bad = || format!("{s:?} must read [HOST:]CONTAINER[/udp] with ports 1-65535");
    let (ports, udp) = match s.rsplit_once('/') {
        Some((p, "udp")) => (p, true),
        Some((p, "tcp")) => (p, false),
        Some(_) => return Err(bad()),
        None => (s, false),
    };
    let (host, container) = match ports.split_once(':') {
        Some((h, c)) => (h.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?),
        None => (0, ports.parse().map_err(|_| bad())?),
    };
    if container == 0 {
        return Err(bad());
    }
    Ok((PortSpec { container, host }, udp))
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} must read KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Streams the module at `path` to the API (never whole in memory).
pub async fn upload(c: &Client, path: &Path) -> Result<ModuleRef> {
    let len = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("reading module {}", path.display()))?
        .len();
    let limit = stratus_api::modules::MAX_MODULE_BYTES;
    if len > limit {
        anyhow::bail!(
            "module {} is {len} bytes; the limit is {limit} bytes (1 GiB)",
            path.display()
        );
    }
    let (body, pb) = crate::objects::file_body(path, "upload").await?;
    let req = c
        .streaming(reqwest::Method::POST, "/v1/modules")
        .header("content-type", "application/wasm")
        .header("content-length", len)
        .body(body);
    let resp = c.execute(req).await;
    pb.finish_and_clear();
    resp.context("uploading the module")?
        .json()
        .await
        .context("reading the API's answer")
}

fn state_name(s: &InstanceState) -> String {
    match s {
        InstanceState::Failed { code, .. } => format!("failed({code})"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    }
}

/// `stratus run`: one-shot task; streams its output and exits with its code.
pub async fn run(g: &Global, a: RunArgs) -> Result<i32> {
    let c = client(g)?;
    let started = Instant::now();
    let name = a.name.clone().unwrap_or_else(|| {
        use std::hash::BuildHasher;
        let r = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        format!("run-{:08x}", r as u32)
    });
    let spec_text = format!("version: 1\nname: {name}\nkind: task\nwasm: {{ module: \"-\" }}\n");
    let (udp, tcp): (Vec<(PortSpec, bool)>, Vec<_>) =
        a.publish.iter().copied().partition(|(_, udp)| *udp);
    let tcp: Vec<PortSpec> = tcp.into_iter().map(|(p, _)| p).collect();
    let extensions = Extensions {
        udp_ports: udp.into_iter().map(|(p, _)| p).collect(),
        ..Extensions::default()
    };
    let mut spec = stratus_spec::parse(&spec_text, Format::Yaml).map_err(|e| anyhow!("{e}"))?;
    let module = match (&a.module, &a.image) {
        // A published app: the pool runs what it runs now.
        (None, None) if a.app.is_some() => {
            let app = a.app.as_deref().unwrap_or_default();
            if crate::catalog::app_is_image(&c, app).await? {
                spec.wasm = None;
                spec.image = Some(ImageSource {
                    name: format!("app:{app}"),
                    ports: tcp.clone(),
                    ..Default::default()
                });
            } else {
                spec.wasm = Some(WasmSource {
                    module: format!("app:{app}"),
                });
            }
            String::new()
        }
        (Some(path), _) => {
            spec.wasm = Some(WasmSource {
                module: path.display().to_string(),
            });
            upload(&c, path).await?.hash
        }
        (None, Some(image)) => {
            spec.wasm = None;
            spec.image = Some(ImageSource {
                name: image.clone(),
                ports: tcp.clone(),
                fetch: if a.fetch == "full" {
                    FetchMode::Full
                } else {
                    FetchMode::Lazy
                },
                ..Default::default()
            });
            String::new()
        }
        (None, None) => bail!("give a WASM module or --image NAME"),
    };
    spec.args = a.args.clone();
    spec.env = a.env.iter().cloned().collect();
    spec.resources.memory_mb = a.memory_mb;
    spec.resources.wall_time_secs = Some(a.timeout);
    spec.resources.cpu_secs = a.cpu_secs;
    spec.restart.attempts = 0;
    let ordered = a.max_price.is_some() || a.prefer.is_some() || a.trust.is_some();
    let market = (ordered || a.app.is_some() || a.dataset.is_some()).then(|| MarketSpec {
        max_price: a.max_price,
        prefer: a.prefer.map(|p| match p {
            Prefer::Cheapest => MarketPrefer::Cheapest,
            Prefer::Greenest => MarketPrefer::Greenest,
        }),
        trust: a.trust,
        app: a.app.clone(),
        dataset: a.dataset.clone(),
    });
    let w = post_deploy(&c, spec, module, market, Networking::default(), extensions).await?;
    if a.trust.is_some_and(|t| t > 1) {
        return crate::verified::run(&c, w.id.as_str(), started, a.timeout).await;
    }
    // Wait for the instance.
    let inst: Instance = loop {
        let list: Vec<Instance> = c
            .get(&format!("/v1/instances?all=true&workload={}", w.id))
            .await?;
        if let Some(i) = list.into_iter().next() {
            break i;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let v: WorkloadView = c.get(&format!("/v1/workloads/{}", w.id)).await?;
            bail!(
                "the task was not scheduled within 60 s: {}",
                v.blocked.unwrap_or_else(|| "no eligible node".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let state = follow(&c, &inst.id).await?;
    let done: Instance = c.get(&format!("/v1/instances/{}", inst.id)).await?;
    match state {
        InstanceState::Completed => Ok(0),
        InstanceState::Failed { code, reason } => {
            if reason != "exited" {
                eprintln!("stratus: task {}: {reason}", inst.id);
            }
            Ok(done.exit_code.unwrap_or(code))
        }
        other => {
            eprintln!("stratus: task {} ended as {}", inst.id, state_name(&other));
            Ok(1)
        }
    }
}

/// Streams an instance's output from the start; with `until_end`, returns
/// once the instance has ended and all output is printed.
async fn follow(c: &Client, id: &str) -> Result<InstanceState> {
    stream_log(c, id, None).await?;
    let i: Instance = c.get(&format!("/v1/instances/{id}")).await?;
    Ok(i.state)
}

/// Prints an instance's output (or an exec's) as it comes, until it is
/// over.
async fn stream_log(c: &Client, id: &str, exec: Option<u32>) -> Result<()> {
    let mut offset = 0u64;
    let mut out = std::io::stdout();
    let exec = exec.map(|n| format!("&exec={n}")).unwrap_or_default();
    loop {
        let (h, data) = c
            .get_raw(&format!(
                "/v1/instances/{id}/logs?offset={offset}&wait_ms=10000{exec}"
            ))
            .await?;
        let header = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if !data.is_empty() {
            out.write_all(&data)?;
            out.flush()?;
        }
        offset = header("x-stratus-next-offset")
            .parse()
            .unwrap_or(offset + data.len() as u64);
        let state = header("x-stratus-state");
        let over = matches!(
            state.as_str(),
            "completed" | "failed" | "stopped" | "lost" | "exited"
        );
        if over && data.is_empty() {
            return Ok(());
        }
    }
}

/// `stratus exec ID -- CMD...`: runs a command inside a running container
/// instance, streams its output and returns its exit code.
pub async fn exec(g: &Global, id: &str, args: Vec<String>) -> Result<i32> {
    if args.is_empty() {
        bail!("give the command after `--`: stratus exec ID -- CMD [ARGS...]");
    }
    let c = client(g)?;
    let list = resolve_instances(&c, id).await?;
    let pick = list
        .iter()
        .rev()
        .find(|i| i.state == InstanceState::Running)
        .ok_or_else(|| anyhow!("{id} has no running instance; see `stratus ps`"))?;
    let started: ExecStarted = c
        .post(
            &format!("/v1/instances/{}/exec", pick.id),
            &ExecRequest { args },
        )
        .await?;
    stream_log(&c, &pick.id, Some(started.n)).await?;
    let i: Instance = c.get(&format!("/v1/instances/{}", pick.id)).await?;
    match i.execs.iter().find(|e| e.n == started.n).map(|e| &e.state) {
        Some(ExecState::Exited { code }) => Ok(*code),
        Some(ExecState::Failed { reason }) => {
            eprintln!("stratus: exec in {}: {reason}", pick.id);
            Ok(126)
        }
        _ => {
            eprintln!("stratus: instance {} ended before the exec did", pick.id);
            Ok(1)
        }
    }
}

/// Deploys `spec` running `module` with the order `market`, signed when
/// this machine has an order key.
async fn post_deploy(
    c: &crate::client::Client,
    spec: WorkloadSpec,
    module: String,
    market: Option<MarketSpec>,
    network: Networking,
    extensions: Extensions,
) -> Result<Workload> {
    let signed_by = signature(c, &spec, &module, market.as_ref()).await?;
    c.post(
        "/v1/workloads",
        &Deploy {
            spec,
            module,
            market,
            signed_by,
            network: (!network.is_default()).then_some(network),
            extensions: (!extensions.is_default()).then_some(extensions),
        },
    )
    .await
}

/// The signature of `market` (when there is one and this machine has an
/// order key), for the caller's tenant.
async fn signature(
    c: &crate::client::Client,
    spec: &WorkloadSpec,
    module: &str,
    market: Option<&MarketSpec>,
) -> Result<Option<stratus_api::deals::SignedBy>> {
    let (Some(market), true) = (market, crate::order_key::exists()) else {
        return Ok(None);
    };
    let me: stratus_state::accounts::AccountView = c.get("/v1/account").await?;
    // An order for a paid app or dataset is signed naming them.
    let named = stratus_api::catalog::uses_of(Some(market)).signed_module(module);
    crate::order_key::sign(&me.tenant, spec, &named, market)
}

/// `stratus deploy SPEC`.
pub async fn deploy(g: &Global, path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stratus_spec::SpecFile {
        spec,
        market,
        network,
        extensions,
    } = stratus_spec::parse_file(&text, Format::from_path(&path.to_string_lossy()))
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let c = client(g)?;
    // A container image is pinned by the API, a published app's module
    // resolved by it; a module of one's own is uploaded first.
    let uses_app = market.as_ref().is_some_and(|m| m.app.is_some());
    let module = match spec.wasm.as_ref().map(|w| w.module.as_str()) {
        _ if uses_app => String::new(),
        Some(hash) if hash.starts_with("blake3:") => hash.to_string(),
        Some(file) => {
            let p = Path::new(file);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                path.parent().unwrap_or(Path::new(".")).join(p)
            };
            upload(&c, &p).await?.hash
        }
        None => String::new(),
    };
    let w = post_deploy(&c, spec, module, market, network, extensions).await?;
    if g.json {
        return print_json(&w);
    }
    println!(
        "deployed {} (generation {}, {} x{})",
        w.id,
        w.generation,
        format!("{:?}", w.spec.kind).to_lowercase(),
        w.spec.count
    );
    println!(
        "watch it with `stratus ps` and `stratus inspect {}`",
        w.spec.name
    );
    Ok(())
}

/// `stratus ps`.
pub async fn ps(g: &Global, all: bool) -> Result<()> {
    let c = client(g)?;
    let list: Vec<Instance> = c.get(&format!("/v1/instances?all={all}")).await?;
    if g.json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("nothing running; start something with `stratus run FILE.wasm` or `stratus deploy SPEC`");
        return Ok(());
    }
    let rows = list
        .iter()
        .map(|i| {
            vec![
                i.id.clone(),
                i.workload.to_string(),
                i.node.short(),
                state_name(&i.state),
                i.restarts.to_string(),
                format!("gen {}", i.generation),
                crate::commands::ago(i.created_ms),
            ]
        })
        .collect();
    table(
        &[
            "INSTANCE", "WORKLOAD", "NODE", "STATE", "RESTARTS", "VERSION", "AGE",
        ],
        rows,
    );
    Ok(())
}

/// Resolves an instance id or a workload name to instance ids.
async fn resolve_instances(c: &Client, id: &str) -> Result<Vec<Instance>> {
    if let Ok(i) = c.get::<Instance>(&format!("/v1/instances/{id}")).await {
        return Ok(vec![i]);
    }
    let list: Vec<Instance> = c
        .get(&format!("/v1/instances?all=true&workload={id}"))
        .await?;
    if list.is_empty() {
        bail!("no instance or workload named {id:?}; see `stratus ps --all`");
    }
    Ok(list)
}

/// `stratus logs [-f] ID`.
pub async fn logs(g: &Global, id: &str, follow_output: bool) -> Result<()> {
    let c = client(g)?;
    let list = resolve_instances(&c, id).await?;
    let pick = list
        .iter()
        .rev()
        .find(|i| !i.state.is_terminal())
        .or(list.last())
        .cloned()
        .ok_or_else(|| anyhow!("no instance"))?;
    if list.len() > 1 {
        eprintln!(
            "({} instances; showing {}; pass an instance id for another)",
            list.len(),
            pick.id
        );
    }
    if follow_output {
        follow(&c, &pick.id).await?;
    } else {
        let (_, data) = c
            .get_raw(&format!("/v1/instances/{}/logs", pick.id))
            .await?;
        std::io::stdout().write_all(&data)?;
    }
    Ok(())
}

/// `stratus stop NAME`.
pub async fn stop(g: &Global, name: &str) -> Result<()> {
    let c = client(g)?;
    let id = full_workload_id(&c, name).await?;
    let r: WriteResult = c.delete(&format!("/v1/workloads/{id}")).await?;
    if g.json {
        return print_json(&r);
    }
    println!("stopping {id}");
    Ok(())
}

async fn full_workload_id(c: &Client, name: &str) -> Result<String> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let me: stratus_api::WhoAmI = c.get("/v1/whoami").await?;
    Ok(format!("{}/{name}", me.tenant))
}

/// The network lines of `stratus inspect`.
fn print_network(n: &stratus_spec::Networking) {
    match &n.egress {
        stratus_spec::EgressSpec::Internet => {}
        stratus_spec::EgressSpec::None => println!("egress:     none (its own services only)"),
        stratus_spec::EgressSpec::Only(ranges) => {
            println!(
                "egress:     only {} (where the lender allows)",
                ranges.join(", ")
            )
        }
    }
    if let Some(http) = &n.expose {
        println!(
            "exposed:    http://{}/ through the ingress of any replica (to port {})",
            http.host, http.port
        );
    }
}

/// The lines of `stratus inspect` for what a spec says beyond its layout.
fn print_extensions(e: &Extensions) {
    for p in &e.udp_ports {
        match p.host {
            0 => println!(
                "udp:        port {} published on any free port",
                p.container
            ),
            h => println!("udp:        port {} published on {h}", p.container),
        }
    }
    for p in &e.http_ports {
        match p {
            0 => println!("http port:  any free port of the node"),
            p => println!("http port:  {p} of the node"),
        }
    }
}

/// `stratus inspect ID` (workload name or instance id).
pub async fn inspect(g: &Global, id: &str) -> Result<()> {
    let c = client(g)?;
    let wid = full_workload_id(&c, id).await?;
    if let Ok(v) = c.get::<WorkloadView>(&format!("/v1/workloads/{wid}")).await {
        if g.json {
            return print_json(&v);
        }
        let w = &v.workload;
        println!("workload:   {}", w.id);
        println!(
            "kind:       {:?} x{}",
            w.spec.kind,
            if w.spec.kind == WorkloadKind::Daemon {
                0
            } else {
                w.spec.count
            }
        );
        println!(
            "generation: {}{}",
            w.generation,
            if w.stopped { " (stopped)" } else { "" }
        );
        println!("module:     {}", w.module);
        if let Some(n) = &v.network {
            print_network(n);
        }
        if let Some(e) = &v.extensions {
            print_extensions(e);
        }
        if let Some(b) = &v.blocked {
            println!("blocked:    {b}");
        }
        if let Some(t) = &v.trust {
            crate::verified::print_votes(t);
        }
        for i in &v.instances {
            print_instance(i);
        }
        return Ok(());
    }
    let i: Instance = c.get(&format!("/v1/instances/{id}")).await?;
    if g.json {
        return print_json(&i);
    }
    print_instance(&i);
    Ok(())
}

fn print_instance(i: &Instance) {
    println!();
    println!(
        "instance {} on node {} — {} (restarts {}, gen {})",
        i.id,
        i.node.short(),
        state_name(&i.state),
        i.restarts,
        i.generation
    );
    for e in &i.events {
        println!(
            "  {:>6} ago  {:<12} {}",
            crate::commands::ago(e.time_ms),
            e.kind,
            e.message
        );
    }
}

/// `stratus node drain ID`.
pub async fn drain(g: &Global, id: &str, undo: bool) -> Result<()> {
    let c = client(g)?;
    let n: stratus_types::NodeRecord = c.get(&format!("/v1/nodes/{id}")).await?;
    let r: WriteResult = c
        .post(
            &format!("/v1/nodes/{}/drain", n.info.id),
            &Drain { drain: !undo },
        )
        .await?;
    if g.json {
        return print_json(&r);
    }
    if undo {
        println!(
            "node {} ({}) is eligible again",
            n.info.name,
            n.info.id.short()
        );
    } else {
        println!(
            "draining node {} ({}): its instances move elsewhere",
            n.info.name,
            n.info.id.short()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `-p [HOST:]CONTAINER[/udp|/tcp]`: TCP unless `/udp`; anything else
    /// (another protocol, port 0 inside, a word) is refused with the form.
    #[test]
    fn published_ports_read_their_protocol() {
        let port = |container, host| PortSpec { container, host };
        assert_eq!(parse_port("5353:53/udp").unwrap(), (port(53, 5353), true));
        assert_eq!(parse_port("53/udp").unwrap(), (port(53, 0), true));
        assert_eq!(parse_port("8080:80/tcp").unwrap(), (port(80, 8080), false));
        assert_eq!(parse_port("80").unwrap(), (port(80, 0), false));
        for bad in ["53/sctp", "0/udp", "x:53", "53/", "/udp", "70000"] {
            let err = parse_port(bad).unwrap_err();
            assert!(err.contains("[HOST:]CONTAINER[/udp]"), "{bad}: {err}");
        }
    }
}
