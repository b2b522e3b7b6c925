//! Object-store commands: put, get, ls, rm, versions, bucket, storage.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use stratus_api::objects::{
    BucketView, CreateBucket, DeleteResult, PutObjectResult, StorageStatus, VersionView,
};
use stratus_state::objects::{Bucket, DedupeScope};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::commands::{ago, bytes as human, client, print_json, table};
use crate::Global;

/// Bytes read from the file per request body chunk.
const READ_BUF: usize = 1 << 20;

/// `stratus put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// File to store (`-` for standard input)
    pub file: PathBuf,
    /// Where: BUCKET/KEY (KEY defaults to the file name when ending in `/`)
    pub target: String,
    /// Content type stored with the object
    #[arg(long)]
    pub content_type: Option<String>,
    /// User metadata KEY=VALUE (repeatable)
    #[arg(long = "meta", value_parser = parse_kv)]
    pub meta: Vec<(String, String)>,
}

/// `stratus get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// What: BUCKET/KEY
    pub source: String,
    /// File to write (`-` or absent: standard output)
    pub file: Option<PathBuf>,
    /// Version id [default: the latest]
    #[arg(long)]
    pub version_id: Option<String>,
    /// Byte range START-END (inclusive, as HTTP), `START-` or `-SUFFIX`
    #[arg(long, allow_hyphen_values = true)]
    pub range: Option<String>,
}

/// `stratus bucket ...`
#[derive(Subcommand, Debug)]
pub enum BucketCmd {
    /// Create a bucket
    Create {
        /// Name (3-63 characters of a-z, 0-9, '.', '-')
        name: String,
        /// Erasure profile K+M (K data pieces, any M can be lost), or `auto`:
        /// survive 2 lost nodes and keep 2 nodes spare for repair
        #[arg(long, default_value = "auto")]
        profile: String,
        /// Who shares chunks: tenant (dedupe within your tenant), public
        /// (dedupe with everyone: public data only), private (no dedupe)
        #[arg(long, default_value = "tenant")]
        scope: String,
    },
    /// List your buckets
    Ls,
    /// Delete an empty bucket
    Rm {
        /// Name
        name: String,
    },
}

/// `stratus storage ...`
#[derive(Subcommand, Debug)]
pub enum StorageCmd {
    /// Capacity and use per node, redundancy, repair queue, scrub
    Status {
        /// Keep refreshing every second until redundancy is full
        #[arg(long, short)]
        watch: bool,
    },
    /// Run repair, scrub and garbage collection now (admin, on the leader)
    Maintain,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} must read KEY=VALUE"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Splits `BUCKET/KEY`.
fn split_target(s: &str) -> Result<(&str, &str)> {
    match s.split_once('/') {
        Some((b, k)) if !b.is_empty() => Ok((b, k)),
        _ => bail!("{s:?} is not BUCKET/KEY"),
    }
}

/// Percent-encodes a key for a URL path or query value (keeps `/`).
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/v1/buckets/{bucket}/objects/{}", encode_key(key))
}

fn progress(len: Option<u64>, verb: &str) -> ProgressBar {
    let pb = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(&format!(
        "{verb} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn rate(n: u64, secs: f64) -> String {
    format!("{}/s", human((n as f64 / secs.max(1e-6)) as u64))
}

/// A request body streaming `file` (`-`: stdin) with a progress bar.
pub(crate) async fn file_body(file: &Path, label: &str) -> Result<(reqwest::Body, ProgressBar)> {
    let (reader, len): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, Option<u64>) =
        if file == Path::new("-") {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let f = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let len = f.metadata().await.ok().map(|m| m.len());
            (Box::new(f), len)
        };
    let pb = progress(len, label);
    let counter = pb.clone();
    let body = futures::stream::unfold(reader, move |mut r| {
        let pb = counter.clone();
        async move {
            let mut buf = vec![0u8; READ_BUF];
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    pb.inc(n as u64);
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), r))
                }
                Err(e) => Some((Err(e), r)),
            }
        }
    });
    Ok((reqwest::Body::wrap_stream(body), pb))
}

/// `stratus put FILE BUCKET/KEY`.
pub async fn put(g: &Global, a: PutArgs) -> Result<()> {
    let (bucket, key) = split_target(&a.target)?;
    let key = if key.is_empty() || key.ends_with('/') {
        let name = a
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| a.file != Path::new("-"))
            .ok_or_else(|| anyhow!("give the key: BUCKET/KEY"))?;
        format!("{key}{name}")
    } else {
        key.to_string()
    };
    let (body, pb) = file_body(&a.file, "put").await?;
    let c = client(g)?;
    let mut req = c
        .streaming(Method::PUT, &object_path(bucket, &key))
        .body(body);
    if let Some(ct) = &a.content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in &a.meta {
        req = req.header(format!("x-stratus-meta-{k}"), v);
    }
    let started = Instant::now();
    let resp = c.execute(req).await;
    pb.finish_and_clear();
    let r: PutObjectResult = resp?.json().await.context("reading the API's answer")?;
    let secs = started.elapsed().as_secs_f64();
    if g.json {
        return print_json(&r);
    }
    println!(
        "stored {bucket}/{} version {}: {} in {secs:.1} s ({}), {} chunks ({} new), {} of pieces written",
        r.key,
        r.version_id,
        human(r.size),
        rate(r.size, secs),
        r.chunks,
        r.new_chunks,
        human(r.piece_bytes)
    );
    Ok(())
}

/// `stratus get BUCKET/KEY [FILE]`.
pub async fn get(g: &Global, a: GetArgs) -> Result<()> {
    let (bucket, key) = split_target(&a.source)?;
    let c = client(g)?;
    let mut path = object_path(bucket, key);
    if let Some(v) = &a.version_id {
        path.push_str(&format!("?version={v}"));
    }
    let mut req = c.streaming(Method::GET, &path);
    if let Some(r) = &a.range {
        req = req.header("range", format!("bytes={r}"));
    }
    let started = Instant::now();
    let resp = c.execute(req).await?;
    let len = resp.content_length();
    let to_stdout = a.file.as_deref().is_none_or(|f| f == Path::new("-"));
    let mut out: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        let p = a.file.as_deref().unwrap_or(Path::new("-"));
        Box::new(
            tokio::fs::File::create(p)
                .await
                .with_context(|| format!("creating {}", p.display()))?,
        )
    };
    let pb = if to_stdout {
        ProgressBar::hidden()
    } else {
        progress(len, "get")
    };
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| anyhow!("the download broke off after {n} bytes: {e}"))?;
        out.write_all(&chunk).await.context("writing the output")?;
        n += chunk.len() as u64;
        pb.inc(chunk.len() as u64);
    }
    out.flush().await.context("writing the output")?;
    pb.finish_and_clear();
    if let Some(len) = len {
        if n != len {
            bail!("the download ended after {n} of {len} bytes");
        }
    }
    if !to_stdout {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "fetched {bucket}/{key}: {} in {secs:.1} s ({})",
            human(n),
            rate(n, secs)
        );
    }
    Ok(())
}

/// `stratus ls [BUCKET[/PREFIX]]`.
pub async fn ls(g: &Global, target: Option<String>) -> Result<()> {
    let c = client(g)?;
    let Some(target) = target else {
        return bucket(g, BucketCmd::Ls).await;
    };
    let (bucket, prefix) = target.split_once('/').unwrap_or((&target, ""));
    let mut all: Vec<VersionView> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/buckets/{bucket}/objects?prefix={}", encode_key(prefix));
        if let Some(a) = &after {
            path.push_str(&format!("&after={}", encode_key(a)));
        }
        let page: Vec<VersionView> = c.get(&path).await?;
        let done = page.len() < 1000;
        after = page.last().map(|v| v.key.clone());
        all.extend(page);
        if done {
            break;
        }
    }
    if g.json {
        return print_json(&all);
    }
    table(
        &["KEY", "SIZE", "VERSION", "MODIFIED"],
        all.iter()
            .map(|v| {
                vec![
                    v.key.clone(),
                    human(v.size),
                    v.version_id.clone(),
                    ago(v.created_ms),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// `stratus rm BUCKET/KEY`.
pub async fn rm(g: &Global, target: &str, version: Option<String>) -> Result<()> {
    let (bucket, key) = split_target(target)?;
    let mut path = object_path(bucket, key);
    if let Some(v) = &version {
        path.push_str(&format!("?version={v}"));
    }
    let r: DeleteResult = client(g)?.delete(&path).await?;
    if g.json {
        return print_json(&r);
    }
    if r.delete_marker {
        println!(
            "deleted {bucket}/{key} (delete marker {}; older versions remain: `stratus versions`)",
            r.version_id
        );
    } else {
        println!("removed version {} of {bucket}/{key}", r.version_id);
    }
    Ok(())
}

/// `stratus versions BUCKET[/PREFIX]`.
pub async fn versions(g: &Global, target: &str) -> Result<()> {
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    let v: Vec<VersionView> = client(g)?
        .get(&format!(
            "/v1/buckets/{bucket}/versions?prefix={}",
            encode_key(prefix)
        ))
        .await?;
    if g.json {
        return print_json(&v);
    }
    table(
        &["KEY", "VERSION", "SIZE", "LATEST", "MODIFIED", "ETAG"],
        v.iter()
            .map(|v| {
                vec![
                    v.key.clone(),
                    v.version_id.clone(),
                    if v.delete_marker {
                        "(delete marker)".into()
                    } else {
                        human(v.size)
                    },
                    if v.latest { "*".into() } else { String::new() },
                    ago(v.created_ms),
                    v.etag.clone(),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// `stratus bucket ...`.
pub async fn bucket(g: &Global, cmd: BucketCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        BucketCmd::Create {
            name,
            profile,
            scope,
        } => {
            let scope: DedupeScope =
                serde_json::from_value(serde_json::Value::String(scope.clone()))
                    .map_err(|_| anyhow!("--scope {scope:?}: use tenant, public or private"))?;
            let b: Bucket = c
                .post(
                    "/v1/buckets",
                    &CreateBucket {
                        name,
                        profile: Some(profile),
                        scope,
                    },
                )
                .await?;
            if g.json {
                return print_json(&b);
            }
            println!(
                "created bucket {} (profile {}, dedupe scope {:?})",
                b.name,
                b.profile.map_or("auto".to_string(), |p| p.to_string()),
                b.scope
            );
        }
        BucketCmd::Ls => {
            let list: Vec<BucketView> = c.get("/v1/buckets").await?;
            if g.json {
                return print_json(&list);
            }
            table(
                &["BUCKET", "OBJECTS", "SIZE", "PROFILE", "SCOPE", "CREATED"],
                list.iter()
                    .map(|b| {
                        vec![
                            b.bucket.name.clone(),
                            b.objects.to_string(),
                            human(b.bytes),
                            b.bucket.profile.map_or("auto".into(), |p| p.to_string()),
                            format!("{:?}", b.bucket.scope).to_lowercase(),
                            ago(b.bucket.created_ms),
                        ]
                    })
                    .collect(),
            );
        }
        BucketCmd::Rm { name } => {
            let resp = c
                .execute(c.streaming(Method::DELETE, &format!("/v1/buckets/{name}")))
                .await?;
            drop(resp);
            println!("deleted bucket {name}");
        }
    }
    Ok(())
}

fn print_status(s: &StorageStatus) {
    let r = &s.redundancy;
    println!(
        "redundancy: {} stripes: {} full, {} degraded ({} at risk), {} unreadable; repair queue: {} pieces ({})",
        r.stripes,
        r.full,
        r.degraded,
        r.at_risk,
        r.unreadable,
        r.missing_pieces,
        human(r.missing_bytes)
    );
    println!(
        "data: {} buckets, {} versions, {} logical, {} unique in {} chunks; {} pieces waiting for deletion",
        s.buckets,
        s.versions,
        human(s.logical_bytes),
        human(s.unique_bytes),
        s.chunks,
        r.pending_deletions
    );
    let w = &s.worker;
    println!(
        "worker ({}): repaired {} stripes / {} pieces / {}; scrubbed {} pieces ({} corrupt, last {}); gc freed {} chunks / {} pieces (last {})",
        if w.active { "active on this replica" } else { "this replica is not the leader" },
        w.repaired_stripes,
        w.repaired_pieces,
        human(w.repaired_bytes),
        w.scrubbed_pieces,
        w.scrub_corrupt,
        w.last_scrub_ms.map_or("never".into(), |t| format!("{} ago", ago(t))),
        w.gc_chunks,
        w.gc_pieces,
        w.last_gc_ms.map_or("never".into(), |t| format!("{} ago", ago(t))),
    );
    match &w.lifecycle {
        None => println!("lifecycle: no pass yet"),
        Some(l) => println!(
            "lifecycle (last pass {} ago{}): {} buckets, {} keys looked at; {} versions expired, {} delete markers removed, {} uploads aborted{}",
            ago(l.at_ms),
            if l.complete { "" } else { ", to be resumed" },
            l.buckets,
            l.keys,
            l.versions_expired,
            l.markers_removed,
            l.uploads_aborted,
            if l.failed > 0 { format!(", {} failed", l.failed) } else { String::new() },
        ),
    }
    println!();
    table(
        &[
            "NODE",
            "NAME",
            "SITE",
            "STATUS",
            "USED",
            "CAPACITY",
            "USE%",
            "FREE",
            "SCRUBBED",
            "CHALLENGES",
            "REACHED",
        ],
        s.nodes
            .iter()
            .map(|n| {
                vec![
                    n.id.short(),
                    n.name.clone(),
                    n.site.clone(),
                    if n.banned {
                        "banned".to_string()
                    } else {
                        format!("{:?}", n.status).to_lowercase()
                    } + if n.full { ", full" } else { "" },
                    human(n.used_bytes),
                    human(n.capacity_bytes),
                    format!(
                        "{:.1}",
                        100.0 * n.used_bytes as f64 / n.capacity_bytes.max(1) as f64
                    ),
                    n.free_bytes.map_or("-".into(), human),
                    n.scrub
                        .as_ref()
                        .map_or("never".into(), |r| format!("{} ago", ago(r.at_ms))),
                    match &n.marked {
                        Some(m) => format!("MARKED {} ago: {}", ago(m.since_ms), m.reason),
                        None if n.strikes > 0 => format!("{} failed", n.strikes),
                        None => "ok".into(),
                    },
                    if n.piece_link { "link" } else { "address" }.into(),
                ]
            })
            .collect(),
    );
}

/// `stratus storage ...`.
pub async fn storage(g: &Global, cmd: StorageCmd) -> Result<()> {
    let c = client(g)?;
    match cmd {
        StorageCmd::Status { watch } => loop {
            let s: StorageStatus = c.get("/v1/storage").await?;
            if g.json {
                print_json(&s)?;
            } else {
                print_status(&s);
            }
            if !watch || s.redundancy.missing_pieces == 0 {
                return Ok(());
            }
            println!();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        },
        StorageCmd::Maintain => {
            let s: StorageStatus = c
                .post("/v1/storage/maintain", &serde_json::json!({}))
                .await?;
            if g.json {
                return print_json(&s);
            }
            print_status(&s);
            Ok(())
        }
    }
}
