//! Image commands: import, ls, rm.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use reqwest::Method;
use stratus_store::{ImageInfo, ImportReport};

use crate::commands::{client, print_json, table};
use crate::objects::{encode_key, file_body};
use crate::Global;

/// `stratus image ...`.
#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// Import an image: a `docker save` tarball, an OCI image layout
    /// directory, or its tar (`skopeo copy ... oci-archive:FILE`)
    Import {
        /// The archive or layout directory
        file: PathBuf,
        /// Store it as NAME[:TAG] [default: the tag recorded in the archive]
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull an image from an OCI registry (Docker Hub by default) and import it
    Pull {
        /// Reference: [REGISTRY/]REPOSITORY[:TAG|@DIGEST], e.g. busybox, ghcr.io/org/app:1.2
        reference: String,
        /// Store it as NAME[:TAG] [default: the repository's last part and the tag]
        #[arg(long)]
        name: Option<String>,
        /// Registry user (with the password read from STRATUS_REGISTRY_PASSWORD); default: ~/.docker/config.json
        #[arg(long)]
        user: Option<String>,
        /// Talk plain HTTP to this registry host[:port] (repeatable; e.g. a local test registry)
        #[arg(long)]
        insecure: Vec<String>,
    },
    /// List your images (every stored version)
    Ls {
        /// Only this NAME[:TAG]
        name: Option<String>,
    },
    /// Remove every version of an image
    Rm {
        /// NAME[:TAG]
        name: String,
    },
}

/// Runs an image command.
pub async fn image(g: &Global, cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Import { file, name } => import(g, &file, name.as_deref()).await,
        ImageCmd::Pull {
            reference,
            name,
            user,
            insecure,
        } => pull(g, &reference, name, user, insecure).await,
        ImageCmd::Ls { name } => ls(g, name.as_deref()).await,
        ImageCmd::Rm { name } => {
            let c = client(g)?;
            let n: usize = c
                .delete(&format!("/v1/images?name={}", encode_key(&name)))
                .await?;
            println!("removed {n} version(s) of {name}");
            Ok(())
        }
    }
}

/// Tars an OCI layout directory into a temporary file.
fn tar_layout(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix("stratus-layout-")
        .suffix(".tar")
        .tempfile()
        .context("creating a temporary file")?;
    let mut b = tar::Builder::new(tmp.reopen().context("opening the temporary file")?);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    b.finish().context("writing the layout's tar")?;
    Ok(tmp)
}

/// `stratus image import FILE`.
pub async fn import(g: &Global, file: &Path, name: Option<&str>) -> Result<()> {
    let report = upload(g, file, name).await?;
    if g.json {
        return print_json(&report);
    }
    print_report(&report);
    Ok(())
}

/// Uploads an image archive (or layout directory) and returns what was
/// stored.
pub async fn upload(g: &Global, file: &Path, name: Option<&str>) -> Result<ImportReport> {
    let started = Instant::now();
    let layout_tar = if file.is_dir() {
        Some(tar_layout(file)?)
    } else {
        None
    };
    let path = layout_tar.as_ref().map(|t| t.path()).unwrap_or(file);
    let (body, pb) = file_body(path, "import").await?;
    let c = client(g)?;
    let query = name
        .map(|n| format!("?name={}", encode_key(n)))
        .unwrap_or_default();
    let req = c
        .streaming(Method::POST, &format!("/v1/images{query}"))
        .header("content-type", "application/x-tar")
        .body(body);
    let resp = c.execute(req).await;
    pb.finish_and_clear();
    let report: ImportReport = resp?.json().await.context("reading the API's answer")?;
    tracing::debug!(secs = started.elapsed().as_secs_f64(), "import done");
    Ok(report)
}

/// `stratus image pull REF`: pulls into a temporary OCI layout on this
/// machine (every blob checked against its digest), then imports it.
async fn pull(
    g: &Global,
    reference: &str,
    name: Option<String>,
    user: Option<String>,
    insecure: Vec<String>,
) -> Result<()> {
    let parsed = stratus_registry::ImageRef::parse(reference)
        .map_err(|e| anyhow::anyhow!("{reference:?}: {e}"))?;
    let auth = match user {
        Some(username) => stratus_registry::RegistryAuth::Basic {
            username,
            password: std::env::var("STRATUS_REGISTRY_PASSWORD").context(
                "--user needs the password in the environment variable STRATUS_REGISTRY_PASSWORD",
            )?,
        },
        None => stratus_registry::docker_config_auth(parsed.registry()).unwrap_or_default(),
    };
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let opts = stratus_registry::PullOptions {
        auth,
        insecure,
        ..Default::default()
    };
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(format!("pulling {reference}"));
    let shown = pb.clone();
    let progress = move |p: stratus_registry::PullProgress| {
        shown.set_message(format!(
            "pulling {} {}/{} bytes",
            p.digest.chars().take(19).collect::<String>(),
            p.done,
            p.total
        ));
        shown.tick();
    };
    let pulled = stratus_registry::pull(reference, dir.path(), &opts, &progress).await;
    pb.finish_and_clear();
    let pulled = pulled.with_context(|| format!("pulling {reference}"))?;
    if !g.json {
        println!(
            "pulled {} ({}, {} layers, {} downloaded)",
            pulled.reference,
            pulled.manifest_digest,
            pulled.layers,
            human(pulled.downloaded)
        );
    }
    let name = name.unwrap_or_else(|| {
        let repo = parsed.repository();
        let last = repo.rsplit('/').next().unwrap_or(repo);
        format!("{last}:{}", parsed.tag().unwrap_or("latest"))
    });
    import(g, dir.path(), Some(&name)).await
}

fn print_report(r: &ImportReport) {
    let i = &r.image;
    println!("imported {} ({})", i.name, i.digest);
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    println!(
        "  {} layer{} ({}), {} file{}, {} in {} chunks, flist {}",
        r.layers,
        plural(r.layers as u64),
        human(r.layer_bytes),
        i.files,
        plural(i.files),
        human(i.bytes),
        i.chunks,
        human(i.flist_bytes)
    );
    println!(
        "  {} new chunks stored (the flist's included; the rest deduped), {} of pieces written",
        r.new_chunks,
        human(r.piece_bytes),
    );
    println!("  run it with `stratus run --image {} -- CMD`", i.name);
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

async fn ls(g: &Global, name: Option<&str>) -> Result<()> {
    let c = client(g)?;
    let query = name
        .map(|n| format!("?name={}", encode_key(n)))
        .unwrap_or_default();
    let list: Vec<ImageInfo> = c.get(&format!("/v1/images{query}")).await?;
    if g.json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no images; import one with `stratus image import FILE`");
        return Ok(());
    }
    let rows = list
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.version_id.clone(),
                i.digest.chars().take(19).collect(),
                i.files.to_string(),
                human(i.bytes),
                i.chunks.to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "VERSION", "DIGEST", "FILES", "SIZE", "CHUNKS"],
        rows,
    );
    Ok(())
}
