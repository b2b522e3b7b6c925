//! `stratus bench meta`: the object-metadata path of the replicated state
//! at 100 k to 10 M object versions.
//!
//! Each backend runs in its own child process (so resident memory is its
//! own): `disk` is the product's state machine store (`state.redb`, the
//! real `apply`, snapshot build and install through openraft's storage
//! traits); `mem` is the same `State` on `MemKv`, the whole state in memory
//! as every replica held it before format 4, measured up to `--mem-up-to`.
//! Piece IO is skipped: commands are what a gateway commits for 1 KiB
//! objects (one `CommitPack` of 1000 one-chunk objects, then one
//! `PutObject` each), applied in batches of 1001 entries as a busy leader's
//! group commit does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{bail, Context, Result};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use stratus_state::synth::{self, ChunkIds};
use stratus_state::{Command, State, TypeConfig};
use stratus_types::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TENANT: &str = "bench";
const BUCKET: &str = "bench-meta";
/// Objects per pack (and per applied batch).
const PER_PACK: u64 = 1000;
/// Puts timed at each size for its rate.
const RATE_WINDOW: u64 = 20_000;
/// Pages listed at each size.
const PAGES: usize = 20;

/// One size's figures, as a child prints them (one JSON object per line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Backend.
    pub backend: String,
    /// Object versions stored.
    pub objects: u64,
    /// Resident memory of the process (bytes).
    pub rss: u64,
    /// Bytes on disk (`state.redb`; 0 in memory).
    pub disk: u64,
    /// Puts per second over the `RATE_WINDOW` puts that reached this size.
    pub put_rate: f64,
    /// Puts per second over every put since the previous size (work that
    /// comes in bursts, such as merging the chunk index's runs, averaged).
    #[serde(default)]
    pub put_rate_avg: f64,
    /// Median time to list a 1000-key page under a prefix (ms).
    pub page_ms: f64,
    /// Fewest keys a listed page held (1000 once the prefix is large enough).
    pub page_keys: usize,
    /// Time to build a snapshot (s) and its size (bytes).
    pub snap_build_s: f64,
    /// Snapshot bytes.
    pub snap_bytes: u64,
    /// Time to install it on a fresh replica (s); 0 when not measured.
    pub snap_install_s: f64,
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn setup() -> Vec<Command> {
    synth::setup(TENANT, BUCKET)
}

/// The commands storing objects `from..from + PER_PACK`.
fn batch(from: u64, ids: ChunkIds) -> Vec<Command> {
    synth::small_objects_with(TENANT, BUCKET, from, PER_PACK, ids)
}

/// Median time of a page listing, and the fewest keys a page held.
fn page_time(read: &dyn Fn(&str, Option<&str>) -> usize, objects: u64) -> (f64, usize) {
    let mut fewest = usize::MAX;
    let mut times: Vec<f64> = (0..PAGES)
        .map(|p| {
            // A prefix holds a tenth of the keys: a full page from the middle.
            let prefix = format!("p{}/", p % 10);
            let start = format!("{prefix}obj{:010}", objects / 2 + p as u64 * 13);
            let t = Instant::now();
            let n = read(&prefix, Some(&start));
            let el = t.elapsed().as_secs_f64() * 1000.0;
            fewest = fewest.min(n);
            el
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], fewest)
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, NodeId([9; 32])), index)
}

fn entries(cmds: Vec<Command>, next: &mut u64) -> Vec<Entry<TypeConfig>> {
    cmds.into_iter()
        .map(|c| {
            *next += 1;
            Entry {
                log_id: log_id(*next),
                payload: EntryPayload::Normal(c),
            }
        })
        .collect()
}

fn dir_size(p: &Path) -> u64 {
    std::fs::metadata(p.join("state.redb")).map_or(0, |m| m.len())
}

/// Child: the disk backend up to each of `sizes`, with chunk ids spread as
/// `ids` says.
pub async fn run_disk(
    sizes: &[u64],
    dir: &Path,
    install_up_to: u64,
    state_cache_mib: u64,
    ids: ChunkIds,
) -> Result<()> {
    let cache = usize::try_from(state_cache_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let (_log, mut sm) = stratus_raft::store::open_with_cache(&dir.join("a"), cache)
        .await
        .context("open the state machine store")?;
    let reader = sm.reader();
    let mut next = 0u64;
    sm.apply(entries(setup(), &mut next)).await?;
    let mut stored = 0u64;
    for &size in sizes {
        let (mut window, mut span) = ((0.0, 0u64), (0.0, 0u64));
        while stored < size {
            let timed = stored + RATE_WINDOW >= size;
            let t = Instant::now();
            let results = sm.apply(entries(batch(stored, ids), &mut next)).await?;
            if let Some(e) = results.iter().find_map(|r| r.error.as_ref()) {
                bail!("a put was refused: {e}");
            }
            let secs = t.elapsed().as_secs_f64();
            if timed {
                window.0 += secs;
                window.1 += PER_PACK;
            }
            span.0 += secs;
            span.1 += PER_PACK;
            stored += PER_PACK;
        }
        let (page_ms, page_keys) = page_time(
            &|prefix, after| {
                reader.read(|s| s.store.list_latest(BUCKET, prefix, after, 1000).0.len())
            },
            stored,
        );
        let t = Instant::now();
        let mut snap = sm.get_snapshot_builder().await.build_snapshot().await?;
        let snap_build_s = t.elapsed().as_secs_f64();
        let mut snap_bytes = 0;
        let mut snap_install_s = 0.0;
        if size <= install_up_to {
            let target = dir.join(format!("install-{size}"));
            let (_l, mut other) = stratus_raft::store::open_with_cache(&target, cache).await?;
            let t = Instant::now();
            let mut into = other.begin_receiving_snapshot().await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = snap.snapshot.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                snap_bytes += n as u64;
                into.write_all(&buf[..n]).await?;
            }
            into.flush().await?;
            other.install_snapshot(&snap.meta, into).await?;
            snap_install_s = t.elapsed().as_secs_f64();
            let got = other.reader().read(|s| s.store.counts.versions);
            if got != stored {
                bail!("the installed replica holds {got} versions, not {stored}");
            }
            drop(other);
            let _ = std::fs::remove_dir_all(&target);
        } else {
            snap_bytes = snap.snapshot.metadata().await?.len();
        }
        print_point(&Point {
            backend: match ids {
                ChunkIds::Hashed => "disk",
                ChunkIds::Ordered => "disk-ordered",
            }
            .into(),
            objects: stored,
            rss: rss(),
            disk: dir_size(&dir.join("a")),
            put_rate: window.1 as f64 / window.0.max(1e-9),
            put_rate_avg: span.1 as f64 / span.0.max(1e-9),
            page_ms,
            page_keys,
            snap_build_s,
            snap_bytes,
            snap_install_s,
        })?;
    }
    Ok(())
}

/// Child: the in-memory backend up to each of `sizes`.
pub fn run_mem(sizes: &[u64]) -> Result<()> {
    let mut state = State::default();
    let mut next = 0u64;
    for c in setup() {
        next += 1;
        state.apply(next, &c);
    }
    let mut stored = 0u64;
    for &size in sizes {
        let (mut window, mut span) = ((0.0, 0u64), (0.0, 0u64));
        while stored < size {
            let timed = stored + RATE_WINDOW >= size;
            let t = Instant::now();
            for c in batch(stored, ChunkIds::Hashed) {
                next += 1;
                if let Some(e) = state.apply(next, &c).error {
                    bail!("a put was refused: {e}");
                }
            }
            state.flush();
            let secs = t.elapsed().as_secs_f64();
            if timed {
                window.0 += secs;
                window.1 += PER_PACK;
            }
            span.0 += secs;
            span.1 += PER_PACK;
            stored += PER_PACK;
        }
        let (page_ms, page_keys) = page_time(
            &|prefix, after| state.store.list_latest(BUCKET, prefix, after, 1000).0.len(),
            stored,
        );
        // An in-memory state's snapshot is a copy of every row.
        let t = Instant::now();
        let rows = stratus_state::kv::dump(state.kv());
        let snap_build_s = t.elapsed().as_secs_f64();
        let snap_bytes = rows
            .iter()
            .map(|(_, k, v)| (k.len() + v.len()) as u64)
            .sum();
        drop(rows);
        print_point(&Point {
            backend: "mem".into(),
            objects: stored,
            rss: rss(),
            disk: 0,
            put_rate: window.1 as f64 / window.0.max(1e-9),
            put_rate_avg: span.1 as f64 / span.0.max(1e-9),
            page_ms,
            page_keys,
            snap_build_s,
            snap_bytes,
            snap_install_s: 0.0,
        })?;
    }
    Ok(())
}

fn print_point(p: &Point) -> Result<()> {
    println!("{}", serde_json::to_string(p)?);
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
}

/// Parent: runs both backends as children and prints the table.
pub fn run(
    sizes: &[u64],
    mem_up_to: u64,
    ordered_up_to: u64,
    install_up_to: u64,
    state_cache_mib: u64,
    dir: Option<PathBuf>,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the stratus binary")?;
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let list = |max: u64| -> String {
        sizes
            .iter()
            .filter(|s| **s <= max)
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut points: Vec<Point> = Vec::new();
    for (backend, sizes) in [
        ("mem", list(mem_up_to)),
        ("disk", list(u64::MAX)),
        ("disk-ordered", list(ordered_up_to)),
    ] {
        if sizes.is_empty() {
            continue;
        }
        eprintln!("running the {backend} backend up to {sizes} objects ...");
        let out = std::process::Command::new(&exe)
            .args([
                "bench",
                "meta-child",
                "--backend",
                backend,
                "--sizes",
                &sizes,
            ])
            // The control run measures puts; its snapshots say nothing new.
            .args([
                "--install-up-to",
                &if backend == "disk-ordered" {
                    0
                } else {
                    install_up_to
                }
                .to_string(),
            ])
            .args(["--state-cache-mib", &state_cache_mib.to_string()])
            .env("STRATUS_LOG", "warn")
            .arg("--dir")
            .arg(dir.join(backend))
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run the {backend} child"))?;
        if !out.status.success() {
            bail!("the {backend} child failed ({})", out.status);
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            points.push(serde_json::from_str(line)?);
        }
    }
    println!(
        "{:>12} {:>10} {:>9} {:>9} {:>10} {:>10} {:>9} {:>6} {:>9} {:>10} {:>9}",
        "",
        "objects",
        "RSS",
        "disk",
        "puts/s",
        "avg put/s",
        "page ms",
        "keys",
        "snap s",
        "snap size",
        "install s"
    );
    for p in &points {
        println!(
            "{:>12} {:>10} {:>9} {:>9} {:>10.0} {:>10.0} {:>9.2} {:>6} {:>9.2} {:>10} {:>9.2}",
            p.backend,
            p.objects,
            mib(p.rss),
            mib(p.disk),
            p.put_rate,
            p.put_rate_avg,
            p.page_ms,
            p.page_keys,
            p.snap_build_s,
            mib(p.snap_bytes),
            p.snap_install_s
        );
    }
    let of =
        |backend: &str| -> Vec<&Point> { points.iter().filter(|p| p.backend == backend).collect() };
    let disk = of("disk");
    for (backend, run) in [("disk", &disk), ("disk-ordered", &of("disk-ordered"))] {
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            println!(
                "{backend}: put rate at {} = {:.2}x the rate at {} (averaged since the size before: {:.2}x); page time {:.2}x; RSS {}",
                last.objects,
                last.put_rate / first.put_rate,
                first.objects,
                last.put_rate_avg / first.put_rate_avg.max(1e-9),
                last.page_ms / first.page_ms.max(1e-9),
                mib(last.rss)
            );
        }
    }
    for o in of("disk-ordered") {
        if let Some(d) = disk.iter().find(|d| d.objects == o.objects) {
            println!(
                "at {}: hashed/ordered chunk ids put rate {:.2}x (what the chunk index's random inserts cost)",
                o.objects,
                d.put_rate / o.put_rate
            );
        }
    }
    for m in points.iter().filter(|p| p.backend == "mem") {
        if let Some(d) = disk.iter().find(|d| d.objects == m.objects) {
            println!(
                "at {}: disk/mem put rate {:.2}x, RSS {:.2}x",
                m.objects,
                d.put_rate / m.put_rate,
                d.rss as f64 / m.rss.max(1) as f64
            );
        }
    }
    Ok(())
}
