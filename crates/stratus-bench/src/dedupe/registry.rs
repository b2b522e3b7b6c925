//! Release archives of a crate from the crates.io registry, downloaded once
//! into a cache and unpacked there (`bench dedupe`'s input).

use std::path::Path;
use std::process::Command as Proc;

use crate::error::{bail, Context, Result};

/// Where downloaded release archives are kept between runs.
pub(crate) fn cache_dir() -> Result<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => std::path::PathBuf::from(d),
        _ => std::path::PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?)
            .join(".cache"),
    };
    let dir = base.join("stratus-bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The User-Agent of the registry requests, as crates.io asks.
pub(crate) const USER_AGENT: &str = concat!(
    "stratus-bench/",
    env!("CARGO_PKG_VERSION"),
    " (benchmark of the Stratus object store)"
);

/// Path of a crate in the registry's sparse index.
fn index_path(name: &str) -> String {
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// `a.b.c` without pre-release or build suffix.
fn release_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    let c = it.next()?.parse().ok()?;
    it.next().is_none().then_some((a, b, c))
}

/// The newest `n` releases (not yanked, no pre-releases), oldest first.
pub(crate) async fn crate_versions(
    http: &reqwest::Client,
    name: &str,
    n: usize,
) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        vers: String,
        #[serde(default)]
        yanked: bool,
    }
    let name = name.to_ascii_lowercase();
    if name.is_empty() || !name.is_ascii() || name.contains('/') {
        bail!("not a crate name: {name:?}");
    }
    let url = format!("https://index.crates.io/{}", index_path(&name));
    let r = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    let text = r.text().await?;
    let mut vs: Vec<((u64, u64, u64), String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| !e.yanked)
        .filter_map(|e| release_version(&e.vers).map(|k| (k, e.vers)))
        .collect();
    vs.sort();
    vs.dedup_by(|a, b| a.0 == b.0);
    let skip = vs.len().saturating_sub(n);
    Ok(vs.into_iter().skip(skip).map(|(_, v)| v).collect())
}

/// Downloads a release's `.crate` into the cache (once) and returns its path.
pub(crate) async fn fetch_crate(
    http: &reqwest::Client,
    dir: &Path,
    name: &str,
    version: &str,
) -> Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}-{version}.crate"));
    if path.exists() {
        return Ok(path);
    }
    let url = format!("https://static.crates.io/crates/{name}/{name}-{version}.crate");
    let r = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !r.status().is_success() {
        bail!("GET {url}: {}", r.status());
    }
    let body = r.bytes().await?;
    let tmp = dir.join(format!(".{name}-{version}.crate.part"));
    std::fs::write(&tmp, &body)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Decompresses a `.crate` (tar.gz) to a plain `.tar` beside it (once).
pub(crate) fn gunzip(path: &Path) -> Result<std::path::PathBuf> {
    let tar = path.with_extension("tar");
    if tar.exists() {
        return Ok(tar);
    }
    let tmp = path.with_extension("tar.part");
    let mut input = flate2::read::GzDecoder::new(std::fs::File::open(path)?);
    let mut out = std::fs::File::create(&tmp)?;
    std::io::copy(&mut input, &mut out).with_context(|| format!("gunzip {}", path.display()))?;
    std::fs::rename(&tmp, &tar)?;
    Ok(tar)
}

/// Unpacks a release's `.tar` into the cache (once) with the system `tar`;
/// returns its files as (path inside the release, file), sorted.
pub(crate) fn unpack(
    tar: &Path,
    dir: &Path,
    top: &str,
) -> Result<Vec<(String, std::path::PathBuf)>> {
    let root = dir.join(top);
    if !root.exists() {
        let tmp = dir.join(format!(".{top}.part"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let st = Proc::new("tar")
            .arg("-xf")
            .arg(tar)
            .arg("-C")
            .arg(&tmp)
            .status()
            .context("running tar (to unpack a release)")?;
        if !st.success() {
            bail!("tar -xf {} failed: {st}", tar.display());
        }
        std::fs::rename(tmp.join(top), &root)
            .with_context(|| format!("{} has no top folder {top}", tar.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p
                    .strip_prefix(&root)
                    .context("a file outside the release")?
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}
