//! Paid apps and datasets through the real binary (issue 15, item 5): an
//! app owner publishes a module, a dataset owner a bucket prefix kept for
//! that app; a requester runs the app on the dataset and each owner is
//! paid exactly its price, while the requester can neither read the
//! dataset nor use it with a module of its own.

mod common;

use std::time::Duration;

use common::{tenant_token, wait_priced, wait_until, Dev};
use serde_json::Value;

const FORECAST: &str = "sunny, 21 degrees\n";

/// Rita's run of alice's app on dora's dataset.
const RUN_APP: &[&str] = &[
    "run",
    "--app",
    "alice/cat",
    "--dataset",
    "dora/weather",
    "--",
    "today.txt",
];

#[test]
fn a_paid_app_runs_on_a_paid_dataset_and_each_owner_is_paid_its_price() {
    let root = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start("cloud", root.path(), 2, 10);
    let alice = tenant_token(&dev, "alice");
    let dora = tenant_token(&dev, "dora");
    let rita = tenant_token(&dev, "rita");
    let as_ = |token: &str, args: &[&str]| dev.cli_env(args, &[("STRATUS_TOKEN", token)]);
    let balance = |tenant: &str| -> u64 {
        let out = dev.cli(&["account", "--tenant", tenant, "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        v["balance"].as_u64().expect("balance")
    };
    wait_priced(&dev);
    dev.cli(&["account", "deposit", "rita", "10000000"])
        .success("deposit");

    // Alice publishes her module; Dora a prefix of her bucket, for
    // alice/cat only.
    let cat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/wasm/cat.wat");
    let out = as_(
        &alice,
        &[
            "app",
            "publish",
            &cat.to_string_lossy(),
            "--name",
            "cat",
            "--price",
            "700",
        ],
    );
    assert!(
        out.stdout.contains("alice/cat"),
        "{}",
        out.success("publish")
    );
    as_(&dora, &["bucket", "create", "weather"]).success("bucket");
    let file = root.path().join("today.txt");
    std::fs::write(&file, FORECAST).expect("write");
    as_(
        &dora,
        &["put", &file.to_string_lossy(), "weather/2026/today.txt"],
    )
    .success("put");
    as_(
        &dora,
        &[
            "dataset",
            "publish",
            "weather/2026/",
            "--name",
            "weather",
            "--price",
            "300",
            "--app",
            "alice/cat",
        ],
    )
    .success("dataset publish");
    let out = as_(&rita, &["dataset", "ls"]);
    assert!(out.stdout.contains("dora/weather"), "{}", out.stdout);

    // Rita cannot read the data directly, nor with a module of her own.
    let out = as_(&rita, &["get", "weather/2026/today.txt"]);
    assert!(!out.status.success());
    assert!(!out.stdout.contains("sunny"));
    let out = as_(
        &rita,
        &[
            "run",
            &cat.to_string_lossy(),
            "--dataset",
            "dora/weather",
            "--",
            "today.txt",
        ],
    );
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("may only be used with the apps alice/cat"),
        "{}",
        out.stderr
    );

    // Inside a paid deal, the app reads the dataset.
    let total = |names: &[&str]| names.iter().map(|n| balance(n)).sum::<u64>();
    let everyone = ["rita", "alice", "dora", "lender-0", "lender-1", "admin"];
    let before = total(&everyone);
    let out = as_(&rita, RUN_APP);
    assert_eq!(out.stdout, FORECAST, "stderr: {}", out.stderr);
    // The deal closes with the last usage report.
    wait_until("the deal to close", Duration::from_secs(30), || {
        let out = dev.cli(&["account", "--tenant", "rita", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).map_err(|e| e.to_string())?;
        if v["held"] == 0 {
            Ok(())
        } else {
            Err(out.stdout)
        }
    });
    assert_eq!(balance("alice"), 700);
    assert_eq!(balance("dora"), 300);
    let lenders = balance("lender-0") + balance("lender-1") + balance("admin");
    assert_eq!(balance("rita"), 10_000_000 - 700 - 300 - lenders);
    assert_eq!(total(&everyone), before, "money is conserved");

    // With an order key, the order is signed naming the app and the
    // dataset, and the pool takes it; a spec file does the same.
    let keys = root.path().join("rita-key");
    let keys = keys.to_string_lossy();
    let signed = |args: &[&str]| {
        dev.cli_env(
            args,
            &[
                ("STRATUS_TOKEN", rita.as_str()),
                ("STRATUS_ORDER_KEY_DIR", &keys),
            ],
        )
    };
    signed(&["account", "order-key", "--create"]).success("order key");
    let out = signed(RUN_APP);
    assert_eq!(out.stdout, FORECAST, "stderr: {}", out.stderr);
    let spec = root.path().join("forecast.yaml");
    std::fs::write(
        &spec,
        "version: 1\nname: forecast\nkind: task\nwasm: { module: app:alice/cat }\n\
         args: [today.txt]\nrestart: { attempts: 0 }\n\
         market: { app: alice/cat, dataset: dora/weather }\n",
    )
    .expect("write");
    signed(&["deploy", &spec.to_string_lossy()]).success("deploy of a paid app");
}
