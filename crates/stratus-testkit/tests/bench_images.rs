//! Benchmark of container images (issue 6), on an in-process cluster with
//! the store's real chunking parameters:
//!
//! 1. Cold start of a Python application image (Debian's python3, its
//!    standard library and `dist-packages` with boto3/botocore/awscli, and
//!    the shared libraries they link): time from deploy to the container's
//!    first output and to its application being ready, and bytes the node
//!    fetched, with `fetch: lazy` (FUSE, on first read) beside
//!    `fetch: full` (every chunk fetched before the container starts, as
//!    a pull-then-extract runtime does), alternating, each on a node with a
//!    cold cache.
//! 2. Stored bytes for ten versions of that image, each changing its small
//!    application layer and one 4 MiB data file.
//!
//! Long and machine-dependent: ignored by default. Run it with
//! `cargo test --release -p stratus-testkit --test bench_images -- --ignored --nocapture`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rand::{RngCore, SeedableRng};
use stratus_control::Control;
use stratus_flist::build::{ImageBuilder, LayerEntry};
use stratus_state::{Command, InstanceState};
use stratus_store::ImportReport;
use stratus_testkit::{
    deploy, dir_bytes, instances, wait_storage_secret, wait_until, Cluster, Options,
};
use stratus_types::{NodeStatus, ADMIN_TENANT};

/// Cold starts of each mode.
const ROUNDS: usize = 3;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Entries for the host tree under `host` (files, directories, symlinks),
/// at the same paths in the image, with their modification times (Python
/// checks its `.pyc` files against their sources' mtimes).
fn host_tree(host: &Path, out: &mut Vec<LayerEntry>) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = host.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    let meta = std::fs::symlink_metadata(host)?;
    let mode = meta.permissions().mode() & 0o7777;
    let mtime = u64::try_from(meta.mtime()).unwrap_or_default();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host)?;
        out.push(LayerEntry::symlink(
            path,
            target.to_str().ok_or_else(|| anyhow!("non-UTF-8 link"))?,
        ));
    } else if meta.is_dir() {
        out.push(LayerEntry::dir(path, mode));
        let mut names: Vec<PathBuf> = std::fs::read_dir(host)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for p in names {
            host_tree(&p, out)?;
        }
    } else if meta.is_file() {
        out.push(LayerEntry::host_file(path, mode, host).mtime(mtime));
    }
    Ok(())
}

/// Shared libraries that `ldd` lists for `files`, resolved.
fn libraries(files: &[PathBuf]) -> Result<Vec<LayerEntry>> {
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let out = std::process::Command::new("ldd").arg(f).output()?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(p) = path.filter(|p| p.starts_with('/')) {
                seen.insert(p.to_string());
            }
        }
    }
    let mut entries = Vec::new();
    for p in seen {
        let real = std::fs::canonicalize(&p).with_context(|| format!("resolving {p}"))?;
        entries.push(LayerEntry::host_file(&p, 0o755, real));
    }
    Ok(entries)
}

fn shared_objects(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                shared_objects(&p, out);
            } else if p.extension().is_some_and(|x| x == "so") {
                out.push(p);
            }
        }
    }
}

/// The application image, version `v`: a runtime layer (python3, its
/// standard library, the libraries they link), a packages layer
/// (`dist-packages`), and an application layer that changes with `v`.
fn python_image(v: u64) -> Result<ImageBuilder> {
    let python = Path::new("/usr/bin/python3.11");
    if !python.exists() {
        bail!("Debian's python3.11 is not installed (apt install python3-boto3 awscli)");
    }
    let stdlib = Path::new("/usr/lib/python3.11");
    let packages = Path::new("/usr/lib/python3/dist-packages");
    let mut so = vec![python.to_path_buf()];
    shared_objects(stdlib, &mut so);
    shared_objects(packages, &mut so);
    let mut runtime = vec![
        LayerEntry::host_file("/usr/bin/python3.11", 0o755, python),
        LayerEntry::symlink("/usr/bin/python3", "python3.11"),
        LayerEntry::dir("/tmp", 0o1777),
        LayerEntry::file("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
    ];
    runtime.extend(libraries(&so)?);
    host_tree(stdlib, &mut runtime)?;
    // OpenSSL's configuration, CA certificates and the providers it
    // dlopens (the AWS CRT that botocore loads initialises TLS at import).
    for d in [
        "/etc/ssl",
        "/usr/lib/ssl",
        "/usr/lib/x86_64-linux-gnu/ossl-modules",
        "/usr/lib/x86_64-linux-gnu/engines-3",
    ] {
        if Path::new(d).exists() {
            host_tree(Path::new(d), &mut runtime)?;
        }
    }
    let mut pkgs = Vec::new();
    host_tree(packages, &mut pkgs)?;
    let mut data = vec![0u8; 4 << 20];
    rand::rngs::StdRng::seed_from_u64(v).fill_bytes(&mut data);
    let app = vec![
        LayerEntry::file(
            "/app/main.py",
            0o644,
            format!(
                "import time\nprint('first', time.time(), flush=True)\nimport boto3\n\
                 boto3.session.Session().client('s3', region_name='us-east-1')\n\
                 print('ready', time.time(), 'version {v}', flush=True)\n"
            ),
        ),
        LayerEntry::file("/app/model.bin", 0o644, data),
    ];
    let config = stratus_flist::ImageConfig {
        entrypoint: vec!["/usr/bin/python3".into(), "/app/main.py".into()],
        env: vec!["HOME=/tmp".into(), "AWS_EC2_METADATA_DISABLED=true".into()],
        ..Default::default()
    };
    Ok(ImageBuilder::new()
        .config(config)
        .layer(runtime)
        .layer(pkgs)
        .layer(app))
}

/// One cold start on agent `j` (every other agent drained).
struct Start {
    first_s: f64,
    ready_s: f64,
    fetched: u64,
}

async fn cold_start(
    cluster: &Cluster,
    c: &Control,
    image: &ImportReport,
    j: usize,
    name: &str,
    fetch: &str,
) -> Result<Start> {
    for k in 0..cluster.agents.len() {
        c.write(Command::SetDrain {
            node: cluster.agent_id(k)?,
            drain: k != j,
        })
        .await?;
    }
    let yaml = format!(
        "version: 1\nname: {name}\nkind: task\nimage: {{ name: app, fetch: {fetch} }}\n\
         resources: {{ memory_mb: 512, cpu_millis: 2000 }}\nrestart: {{ attempts: 0 }}\n"
    );
    let t0 = now_secs();
    let id = deploy(c, &yaml, image.image.pinned().to_string()).await?;
    let i = wait_until("the task to end", Duration::from_secs(300), || async {
        instances(c, &id).into_iter().find(|i| {
            matches!(
                i.state,
                InstanceState::Completed | InstanceState::Failed { .. }
            )
        })
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, out) = c.read_logs(&i.id, 0).await?;
    let out = String::from_utf8_lossy(&out).into_owned();
    if i.state != InstanceState::Completed {
        bail!("{name} failed: {:?}\n{out}", i.state);
    }
    let stamp = |tag: &str| -> Result<f64> {
        out.lines()
            .find_map(|l| l.strip_prefix(tag)?.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| anyhow!("no {tag:?} line in {out:?}"))
    };
    Ok(Start {
        first_s: stamp("first ")? - t0,
        ready_s: stamp("ready ")? - t0,
        fetched: dir_bytes(&cluster.agent_dir(j).join("agent/oci/chunks")),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture (see the file's doc)"]
async fn bench_image_cold_start_and_versions() -> Result<()> {
    let mut opts = Options::new(1, 2 * ROUNDS + 1);
    // The store's real chunking and packing, not the tests' small ones.
    opts.store.chunker = stratus_chunk::ChunkerParams::default();
    opts.store.pack_bytes = stratus_store::StoreConfig::default().pack_bytes;
    opts.store.repair_interval = Duration::from_secs(3600);
    opts.node_lost_after = Duration::from_secs(30);
    let cluster = Cluster::start(opts).await?;
    cluster
        .wait_nodes(0, NodeStatus::Ready, 2 * ROUNDS + 1)
        .await?;
    let c = cluster.control(0)?;
    wait_storage_secret(&c).await?;
    let store = cluster.store(0)?;
    let dir = tempfile::tempdir()?;

    // Ten versions of one image.
    let mut reports = Vec::new();
    let mut tar_bytes = 0;
    for v in 0..10 {
        let tar = dir.path().join(format!("app-{v}.tar"));
        python_image(v)?.write_docker_save(&tar, "app:latest")?;
        tar_bytes += std::fs::metadata(&tar)?.len();
        let r = store
            .import_image(ADMIN_TENANT, tar.clone(), Some("app"))
            .await?;
        std::fs::remove_file(&tar)?;
        println!(
            "version {v}: {} files, {:.1} MiB, {} new chunks, {:.1} MiB of pieces written",
            r.image.files,
            r.image.bytes as f64 / (1 << 20) as f64,
            r.new_chunks,
            r.piece_bytes as f64 / (1 << 20) as f64
        );
        reports.push(r);
    }
    let (k, m) = c
        .state()
        .read(|s| {
            s.store
                .packs()
                .into_iter()
                .next()
                .map(|p| (p.profile.k, p.profile.m))
        })
        .ok_or_else(|| anyhow!("nothing stored"))?;
    let logical: u64 = reports.iter().map(|r| r.image.bytes).sum();
    let pieces: u64 = reports.iter().map(|r| r.piece_bytes).sum();
    let first = reports[0].piece_bytes;
    println!(
        "\nten versions: {:.1} MiB of files ({:.1} MiB as docker-save tarballs); \
         {:.1} MiB of pieces stored with RS({k},{m}) ({:.1} MiB for the first, {:.2} MiB per later version); \
         stored/logical = {:.3}",
        logical as f64 / (1 << 20) as f64,
        tar_bytes as f64 / (1 << 20) as f64,
        pieces as f64 / (1 << 20) as f64,
        first as f64 / (1 << 20) as f64,
        (pieces - first) as f64 / 9.0 / (1 << 20) as f64,
        pieces as f64 / logical as f64
    );

    // Cold starts of the latest version, alternating the order of the modes.
    let image = reports.last().ok_or_else(|| anyhow!("no image"))?.clone();
    let (mut lazy, mut full) = (Vec::new(), Vec::new());
    let mut agent = 0;
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            ["lazy", "full"]
        } else {
            ["full", "lazy"]
        };
        for mode in order {
            let s = cold_start(
                &cluster,
                &c,
                &image,
                agent,
                &format!("{mode}-{round}"),
                mode,
            )
            .await?;
            println!(
                "round {round} {mode:>4}: first output {:.2} s, ready {:.2} s, fetched {:.1} MiB",
                s.first_s,
                s.ready_s,
                s.fetched as f64 / (1 << 20) as f64
            );
            agent += 1;
            if mode == "lazy" { &mut lazy } else { &mut full }.push(s);
        }
    }
    let size = image.image.bytes as f64;
    let med = |v: &[Start], f: fn(&Start) -> f64| median(v.iter().map(f).collect());
    let (lf, ff) = (med(&lazy, |s| s.first_s), med(&full, |s| s.first_s));
    let (lr, fr) = (med(&lazy, |s| s.ready_s), med(&full, |s| s.ready_s));
    let (lb, fb) = (
        med(&lazy, |s| s.fetched as f64),
        med(&full, |s| s.fetched as f64),
    );
    println!(
        "\nimage: {:.1} MiB in {} files\n\
         lazy: first output {lf:.2} s, ready {lr:.2} s, fetched {:.1} MiB ({:.1}% of the image)\n\
         full: first output {ff:.2} s, ready {fr:.2} s, fetched {:.1} MiB ({:.1}% of the image)\n\
         lazy vs full: first output {:.1}x sooner, ready {:.1}x sooner, {:.1}x fewer bytes",
        size / (1 << 20) as f64,
        image.image.files,
        lb / (1 << 20) as f64,
        100.0 * lb / size,
        fb / (1 << 20) as f64,
        100.0 * fb / size,
        ff / lf,
        fr / lr,
        fb / lb
    );
    assert!(lb < fb, "lazy fetched {lb} bytes, full {fb}");
    cluster.shutdown().await;
    Ok(())
}
