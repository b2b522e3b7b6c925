//! `stratus bench run`: `stratus run` of hello-world on a local cloud
//! against the same module run directly by the WASM executor
//! (`stratus bench wasm-direct`), each a fresh process of this binary; and
//! a tenant's paid run (a market order on a priced node) against the
//! operator's free run on the same cloud, for what an order adds.

use std::io::Write;
use std::path::Path;
use std::process::Command as Proc;
use std::time::{Duration, Instant};

use crate::error::{bail, Context, Result};
use crate::util::{dev_config, make_payer, time_process};

/// Runs a module in this process with the WASM executor, output to stdout.
pub(crate) async fn wasm_direct(module: &Path, args: Vec<String>) -> Result<()> {
    use stratus_runtime::{DynExecutor, Output, TaskSpec, WasmExecutor};
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let exec = WasmExecutor::new()?;
    let mut spec = TaskSpec::new("direct", std::sync::Arc::new(bytes));
    spec.args = args;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(async move { exec.run_dyn(spec, tx, Default::default()).await });
    let mut out = std::io::stdout();
    while let Some(o) = rx.recv().await {
        let (Output::Stdout(d) | Output::Stderr(d)) = o;
        out.write_all(&d)?;
        out.flush()?;
    }
    let exit = run.await??;
    std::process::exit(exit.code);
}

/// Runs the benchmark.
pub(crate) async fn run_bench(runs: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("hello.wat");
    std::fs::write(&module, HELLO_WAT)?;
    let cloud = stratus_node::dev::start(dev_config(dir.path(), 1, 1)?).await?;
    let (api, token) = (cloud.api_url.clone(), cloud.admin_token.clone());
    let control = cloud.replicas[0].control.clone().context("no control")?;
    wait_for_agent(&control).await?;
    // The node is lent by `lender-0` at the dev prices: a tenant's runs are
    // deals (escrow, usage report, settlement), the operator's run free.
    stratus_node::dev::price_dev_nodes(&control, 1, Duration::from_secs(30)).await?;
    let payer = tokio::task::block_in_place(|| make_payer(&exe, &api, &token, "bench-payer"))?;
    let mut stratus = Vec::new();
    let mut paid = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..runs {
        let mut cmd = Proc::new(&exe);
        cmd.args(["run", "--log", "error"])
            .arg(&module)
            .args(["--", "world"])
            .env("STRATUS_API", &api)
            .env("STRATUS_TOKEN", &token);
        stratus.push(tokio::task::block_in_place(|| time_process(cmd))?);
        let mut cmd = Proc::new(&exe);
        cmd.args([
            "run",
            "--log",
            "error",
            "--max-price",
            "1000000",
            "--prefer",
            "cheapest",
        ])
        .arg(&module)
        .args(["--", "world"])
        .env("STRATUS_API", &api)
        .env("STRATUS_TOKEN", &payer)
        .env("STRATUS_ORDER_KEY_DIR", dir.path().join("no-order-key"));
        paid.push(tokio::task::block_in_place(|| time_process(cmd))?);
        let mut cmd = Proc::new(&exe);
        cmd.args(["bench", "wasm-direct", "--log", "error"])
            .arg(&module)
            .args(["--", "world"]);
        direct.push(tokio::task::block_in_place(|| time_process(cmd))?);
    }
    drop(control);
    cloud.shutdown().await;
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut sf, mut se): (Vec<_>, Vec<_>) = stratus.into_iter().unzip();
    let (mut pf, mut pe): (Vec<_>, Vec<_>) = paid.into_iter().unzip();
    let (pf, pe) = (med(&mut pf), med(&mut pe));
    let (mut df, mut de): (Vec<_>, Vec<_>) = direct.into_iter().unzip();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (sf, se, df, de) = (med(&mut sf), med(&mut se), med(&mut df), med(&mut de));
    println!(
        "hello world, {runs} runs each, medians (each run is a fresh process of this binary):"
    );
    println!("                          first output      exit");
    println!(
        "  stratus run (cloud)     {:>9.1} ms  {:>9.1} ms",
        ms(sf),
        ms(se)
    );
    println!(
        "  wasmtime direct         {:>9.1} ms  {:>9.1} ms",
        ms(df),
        ms(de)
    );
    println!(
        "  overhead                {:>9.1} ms  {:>9.1} ms   (goal < 20 ms)",
        ms(sf) - ms(df),
        ms(se) - ms(de)
    );
    println!(
        "  stratus run, market order {:>7.1} ms  {:>9.1} ms   (a tenant's paid run: escrow held at placement)",
        ms(pf),
        ms(pe)
    );
    println!(
        "  order overhead          {:>9.1} ms  {:>9.1} ms   (goal < 2 ms over the operator's free run)",
        ms(pf) - ms(sf),
        ms(pe) - ms(se)
    );
    Ok(())
}

/// Waits until the local cloud's single agent is registered.
async fn wait_for_agent(control: &stratus_control::Control) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while control.state().read(|s| s.nodes.is_empty()) {
        if Instant::now() > deadline {
            bail!("the agent did not register within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The hello-world guest (WAT), so the benchmark needs no files.
const HELLO_WAT: &str = include_str!("../../../examples/wasm/hello.wat");
