//! `stratus bench dedupe`: stored bytes of consecutive releases of a crate
//! (registry source archives: unpacked, as `.tar`, as `.crate`), each
//! stored as new versions of the same keys, beside restic on the same
//! files.

mod registry;

use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use crate::error::{bail, Context, Result};
use crate::store::StoreCloud;
use crate::util::MIB;
use registry::{cache_dir, crate_versions, fetch_crate, gunzip, unpack, USER_AGENT};

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Whether the `restic` program runs.
fn restic_available() -> bool {
    Proc::new("restic")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn restic(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = Proc::new("restic")
        .arg("--repo")
        .arg(repo)
        .args(["--no-cache", "--quiet"])
        .args(args)
        .env("RESTIC_PASSWORD", "stratus-bench")
        .stdin(Stdio::null())
        .output()
        .context("running restic")?;
    if !out.status.success() {
        bail!(
            "restic {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One release: objects to store (key, file) and the path restic backs up.
struct Release {
    objects: Vec<(String, std::path::PathBuf)>,
    backup: std::path::PathBuf,
}

/// One series of releases stored one after another.
struct Series {
    logical: u64,
    /// Per release: (logical, Stratus new sealed, Stratus piece bytes, restic repo after).
    rows: Vec<(u64, u64, u64, Option<u64>)>,
    sealed: u64,
    pieces: u64,
    restic: Option<u64>,
    objects: usize,
    stratus_time: Duration,
    restic_time: Duration,
}

/// Percent-encodes a key for a URL path (keeps `/`).
fn url_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn store_series(
    sc: &StoreCloud,
    bucket: &str,
    releases: &[Release],
    restic_repo: Option<&Path>,
) -> Result<Series> {
    sc.create_bucket(bucket).await?;
    if let Some(repo) = restic_repo {
        restic(repo, &["init".as_ref()])?;
    }
    let mut s = Series {
        logical: 0,
        rows: Vec::new(),
        sealed: 0,
        pieces: 0,
        restic: None,
        objects: 0,
        stratus_time: Duration::ZERO,
        restic_time: Duration::ZERO,
    };
    for rel in releases {
        let before = sc.sealed_bytes();
        let t = Instant::now();
        // Up to 16 objects in flight, read from disk as they go.
        let answers = futures::stream::iter(&rel.objects)
            .map(|(key, f)| async move {
                let data = Bytes::from(
                    tokio::fs::read(f)
                        .await
                        .with_context(|| format!("reading {}", f.display()))?,
                );
                sc.put(bucket, &url_key(key), &data).await
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        s.stratus_time += t.elapsed();
        let logical: u64 = answers.iter().map(|a| a.size).sum();
        let pieces: u64 = answers.iter().map(|a| a.piece_bytes).sum();
        let new_sealed = sc.sealed_bytes().saturating_sub(before);
        let restic_after = match restic_repo {
            Some(repo) => {
                let t = Instant::now();
                tokio::task::block_in_place(|| {
                    restic(repo, &["backup".as_ref(), rel.backup.as_os_str()])
                })?;
                s.restic_time += t.elapsed();
                Some(dir_bytes(repo))
            }
            None => None,
        };
        s.objects += answers.len();
        s.logical += logical;
        s.sealed += new_sealed;
        s.pieces += pieces;
        s.restic = restic_after;
        s.rows.push((logical, new_sealed, pieces, restic_after));
    }
    Ok(s)
}

/// Runs the benchmark.
pub(crate) async fn dedupe_bench(krate: &str, versions: usize, nodes: usize) -> Result<()> {
    let http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    let cache = cache_dir()?;
    let vs = crate_versions(&http, krate, versions).await?;
    if vs.is_empty() {
        bail!("the registry lists no releases of {krate}");
    }
    let name = krate.to_ascii_lowercase();
    let (mut crates, mut tars, mut trees) = (Vec::new(), Vec::new(), Vec::new());
    let single = |f: &std::path::PathBuf| Release {
        objects: vec![("src".to_string(), f.clone())],
        backup: f.clone(),
    };
    for v in &vs {
        let c = fetch_crate(&http, &cache, &name, v).await?;
        let t = tokio::task::block_in_place(|| gunzip(&c))?;
        let top = format!("{name}-{v}");
        let files = tokio::task::block_in_place(|| unpack(&t, &cache, &top))?;
        crates.push(single(&c));
        tars.push(single(&t));
        trees.push(Release {
            objects: files,
            backup: cache.join(&top),
        });
    }
    let has_restic = restic_available();
    if !has_restic {
        println!(
            "restic not found: install the Debian package `restic` (apt-get install restic); the restic column is skipped"
        );
    }
    let work = tempfile::tempdir()?;
    println!(
        "starting a local cloud: 1 replica, {nodes} storage nodes; storing {} releases of {name} ({} .. {})",
        vs.len(),
        vs.first().map(String::as_str).unwrap_or(""),
        vs.last().map(String::as_str).unwrap_or("")
    );
    let sc = StoreCloud::start(nodes).await?;
    let repo_tar = work.path().join("restic-tar");
    let repo_crate = work.path().join("restic-crate");
    let repo_tree = work.path().join("restic-tree");
    let tree = store_series(
        &sc,
        "releases-tree",
        &trees,
        has_restic.then_some(repo_tree.as_path()),
    )
    .await?;
    let tar = store_series(
        &sc,
        "releases-tar",
        &tars,
        has_restic.then_some(repo_tar.as_path()),
    )
    .await?;
    let gz = store_series(
        &sc,
        "releases-crate",
        &crates,
        has_restic.then_some(repo_crate.as_path()),
    )
    .await?;
    let profiles = sc.profiles();
    sc.shutdown().await;

    print_report(&name, &vs, &profiles, [&tree, &tar, &gz]);
    println!("  downloads cached in {}", cache.display());
    Ok(())
}

/// Prints the three series' stored bytes, release by release and in total.
fn print_report(name: &str, vs: &[String], profiles: &str, [tree, tar, gz]: [&Series; 3]) {
    let m = |b: u64| b as f64 / MIB;
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    let restic_cell = |r: Option<u64>| match r {
        Some(r) => format!("{:>9.2}", m(r)),
        None => format!("{:>9}", "-"),
    };
    println!(
        "{} consecutive releases of {name} from the registry, each stored as new versions of the same keys (erasure profile {profiles}):",
        vs.len()
    );
    for (what, s) in [("unpacked tree    ", tree), ("decompressed .tar", tar)] {
        println!("  per release ({what})   logical MiB   Stratus new sealed MiB   restic repo MiB");
        for (v, r) in vs.iter().zip(&s.rows) {
            println!(
                "    {:<31} {:>11.2} {:>24.2} {:>17}",
                v,
                m(r.0),
                m(r.1),
                restic_cell(r.3)
            );
        }
    }
    println!(
        "  {:<22} {:>11} {:>20} {:>18} {:>18}",
        "data", "logical MiB", "Stratus sealed MiB", "Stratus piece MiB", "restic repo MiB"
    );
    let tree_label = format!("unpacked ({} files)", tree.objects);
    for (label, s) in [
        (tree_label.as_str(), tree),
        ("releases as .tar", tar),
        ("releases as .crate (gz)", gz),
    ] {
        let r = match s.restic {
            Some(r) => format!("{:>9.2} ({:>4.1}%)", m(r), pct(r, s.logical)),
            None => format!("{:>18}", "-"),
        };
        println!(
            "  {:<22} {:>11.2} {:>10.2} ({:>5.1}%) {:>9.2} ({:>4.0}%) {r:>18}",
            label,
            m(s.logical),
            m(s.sealed),
            pct(s.sealed, s.logical),
            m(s.pieces),
            pct(s.pieces, s.logical),
        );
    }
    println!(
        "  sealed = unique chunks after dedupe and compression (encrypted), before erasure coding; pieces = after erasure coding"
    );
    println!(
        "  time: Stratus PUTs {:.1} s, restic backups {:.1} s (all three series; Stratus: 16 PUTs in flight; restic: one process per backup)",
        (tree.stratus_time + tar.stratus_time + gz.stratus_time).as_secs_f64(),
        (tree.restic_time + tar.restic_time + gz.restic_time).as_secs_f64()
    );
}
