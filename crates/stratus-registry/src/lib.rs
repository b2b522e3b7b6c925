//! Pulling container images from OCI registries into an OCI image layout.
//!
//! **Owns** talking to OCI registries and leaving a verified image layout.
//! **Does not own** unpacking or importing layers (`stratus-flist`).
//!
//! `stratus image pull REF` calls [`pull`]: it resolves the reference on the
//! registry, picks the manifest for the wanted platform from an image index
//! (manifest list), downloads the config and layer blobs, and leaves a
//! verified [OCI image layout] (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`) for the importer. This crate's job ends there: it
//! neither decompresses nor unpacks layers.
//!
//! # Design
//!
//! - The distribution protocol (the `/v2/` API, bearer-token and basic auth,
//!   `Docker-Content-Digest`) is `oci-client`'s, built on rustls with the
//!   *ring* provider (no OpenSSL, no aws-lc), like the rest of the workspace.
//!   [`pull`] installs ring as the process's default rustls provider if no
//!   provider is installed yet.
//! - Manifests are fetched raw and written byte for byte with the media type
//!   the registry gave them: OCI manifests and Docker v2 schema 2 manifests are
//!   both accepted and stored as they are (the importer handles gzip, zstd and
//!   plain layers, Docker media types included). Docker schema 1 and non-image
//!   artifacts (other config or layer media types) are refused with
//!   [`RegistryError::UnsupportedMediaType`].
//! - An index is resolved to one platform ([`Platform`], default linux on the
//!   host architecture); if none matches, the error lists what is on offer.
//!   The layout's `index.json` points at the platform manifest (not the
//!   index), annotated with `org.opencontainers.image.ref.name` = the tag, and
//!   other entries of an existing `index.json` are kept, so several images can
//!   share one layout (and its blobs).
//! - Blobs are streamed to a temporary file beside their final place, hashed
//!   on the way, and renamed to `blobs/sha256/<hex>` only once size and
//!   SHA-256 match. A blob already present is re-hashed and, if it verifies,
//!   not downloaded again (resume and dedupe across pulls into one directory);
//!   if it does not verify it is deleted and downloaded again. Up to three
//!   blobs download at once.
//!
//! # Trust
//!
//! The registry and the network are not trusted for integrity: every byte
//! written to the layout is checked against a digest that chains back to the
//! reference. A manifest named by digest (in the reference or in the index)
//! must hash to that digest; a manifest fetched by tag is trusted to be what
//! the tag names (that is what a tag means) and its own digest is reported in
//! [`Pulled::manifest_digest`] so callers can pin it. Config and layers must
//! hash to the manifest's descriptors. A mismatch is
//! [`RegistryError::DigestMismatch`] and leaves no blob file; a body longer
//! than its descriptor's size is cut off at that size
//! ([`RegistryError::SizeMismatch`]), so a hostile registry cannot fill the
//! disk through a blob. Digests are only accepted as `sha256:<64 lowercase
//! hex>`, because they become file names (no path tricks).
//!
//! Credentials come from the caller ([`RegistryAuth`], optionally from
//! [`docker_config_auth`]); they go to the reference's registry and to the
//! token realm it names, never to the external `urls` of a layer descriptor.
//! Registries listed in [`PullOptions::insecure`] are spoken to over plain
//! HTTP (for loopback test registries); everything else over HTTPS with the
//! platform's root certificates.
//!
//! # Limits
//!
//! - Only sha256 digests. Manifests are read whole into memory (they are
//!   small; a registry sending a huge one costs memory, not disk).
//! - No resume inside a blob: an interrupted blob is downloaded again from
//!   the start (finished blobs are kept).
//! - Credential helpers (`credsStore`, `credHelpers`) are not run.
//! - Two processes pulling into one layout at once are safe for blobs (unique
//!   temporary names, atomic renames) but the last `index.json` write wins.
//! - Nested indexes (an index whose platform entry is another index) are refused.
//! - A Docker schema 2 manifest keeps its Docker media type in `index.json`
//!   (converting it would change its digest). Some tools reading OCI layouts
//!   skip such entries (containers/image, hence `skopeo inspect oci:`, says
//!   "no descriptor found"); Stratus's importer reads them.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

mod auth;
mod error;
mod layout;
mod platform;
mod reference;

use std::path::{Path, PathBuf};

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;

pub use auth::{docker_config_auth, docker_config_auth_from, RegistryAuth};
pub use error::RegistryError;
pub use layout::{OCI_INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION};
pub use platform::{go_arch, Platform};
pub use reference::{ImageRef, DOCKER_HUB};

/// OCI image manifest media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest v2, schema 2.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_MANIFEST_MEDIA_TYPE,
    DOCKER_MANIFEST_MEDIA_TYPE,
    OCI_INDEX_MEDIA_TYPE,
    DOCKER_MANIFEST_LIST_MEDIA_TYPE,
];

const ACCEPTED_CONFIGS: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

const ACCEPTED_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
];

/// How many blobs download at once.
const PARALLEL_BLOBS: usize = 3;

/// Refuses an image whose declared blob sizes add up to more than
/// [`MAX_PULL_BYTES`], before anything is downloaded.
fn within_pull_limit(
    reference: &str,
    sizes: impl Iterator<Item = u64>,
) -> Result<(), RegistryError> {
    let total = sizes.fold(0u64, u64::saturating_add);
    if total > MAX_PULL_BYTES {
        return Err(RegistryError::TooLarge {
            reference: reference.to_string(),
            total,
            limit: MAX_PULL_BYTES,
        });
    }
    Ok(())
}

/// Most bytes of blobs (config and layers, compressed, as their descriptors
/// declare) one pull downloads: the image archive cap of a replica's import
/// (`stratus_flist::ImportLimits::max_archive_bytes`), so nothing is pulled
/// that could not be imported. Each blob is also cut off at its declared size.
pub const MAX_PULL_BYTES: u64 = 16 << 30;

/// Options of a pull.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Credentials for the reference's registry.
    pub auth: RegistryAuth,
    /// Registries (as `host[:port]`, e.g. `127.0.0.1:5000`) spoken to over
    /// plain HTTP; HTTPS for all others.
    pub insecure: Vec<String>,
    /// The platform to pick from an image index (default: linux on the host
    /// architecture). Ignored when the reference names a single manifest.
    pub platform: Platform,
}

/// What a blob is, for progress reports and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobKind {
    /// The image configuration.
    Config,
    /// A filesystem layer.
    Layer,
}

impl BlobKind {
    fn what(self) -> &'static str {
        match self {
            BlobKind::Config => "config",
            BlobKind::Layer => "layer",
        }
    }
}

/// Where a blob is in its download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobPhase {
    /// Already in the layout and verified: not downloaded.
    Cached,
    /// Bytes are arriving (`done` of `total`); the first report has `done == 0`.
    Downloading,
    /// Downloaded, verified and in place.
    Done,
}

/// A progress report, one blob at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// The blob's digest.
    pub digest: String,
    /// Config or layer.
    pub kind: BlobKind,
    /// Where the blob is.
    pub phase: BlobPhase,
    /// Bytes received (equal to `total` when `Cached` or `Done`).
    pub done: u64,
    /// The blob's size from its descriptor.
    pub total: u64,
}

/// The result of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The layout directory.
    pub dir: PathBuf,
    /// The normalized reference, e.g. `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The tag the image is named by in `index.json` (`None` for a digest-only reference).
    pub tag: Option<String>,
    /// The digest of the image manifest written to the layout (for an index,
    /// the chosen platform's manifest).
    pub manifest_digest: String,
    /// The manifest's media type, as the registry gave it.
    pub manifest_media_type: String,
    /// The digest of the index the manifest was chosen from, if any.
    pub index_digest: Option<String>,
    /// The platform of the chosen manifest as the index states it
    /// (`os/arch[/variant]`), when it came from an index.
    pub platform: Option<String>,
    /// The number of layers.
    pub layers: usize,
    /// The size of the image: config plus layers, compressed, in bytes.
    pub bytes: u64,
    /// Bytes downloaded by this pull (0 when every blob was already present).
    pub downloaded: u64,
}

/// Pulls `reference` from its registry into the OCI image layout at `dest`
/// (created if missing; an existing layout is added to).
///
/// `progress` is called for every blob: once `Cached`, or `Downloading`
/// (repeatedly, from 0) then `Done`.
///
/// # Errors
/// See [`RegistryError`]: an invalid reference, an unknown image, missing or
/// refused credentials, network failures, digest or size mismatches (no
/// partial blob is left), unsupported media types, no manifest for the
/// platform, or local I/O errors.
pub async fn pull(
    reference: &str,
    dest: &Path,
    opts: &PullOptions,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Pulled, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let ctx = Ctx {
        registry: image.registry().to_string(),
        repository: image.repository().to_string(),
        reference: image.to_string(),
        anonymous: opts.auth == RegistryAuth::Anonymous,
    };
    let client = client(opts, &ctx.registry)?;
    let auth = opts.auth.to_oci();
    client
        .auth(image.oci(), &auth, oci_client::RegistryOperation::Pull)
        .await
        .map_err(|e| ctx.map(e, "manifest"))?;

    // The reference's manifest: an image manifest or an index.
    let (body, _) = client
        .pull_manifest_raw(image.oci(), &auth, ACCEPTED_MANIFESTS)
        .await
        .map_err(|e| ctx.map(e, "manifest"))?;
    let body = body.to_vec();
    let digest = layout::sha256_digest(&body);
    if let Some(pinned) = image.digest() {
        check_digest("manifest", pinned, &digest)?;
    }
    let (manifest_body, manifest_digest, media_type, index_digest, chosen) = match kind_of(&body)? {
        Kind::Manifest(media_type) => (body, digest, media_type, None, None),
        Kind::Index => {
            let index: platform::Index =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidManifest {
                    reason: format!("image index: {e}"),
                })?;
            let entry = platform::select(&index, &opts.platform).map_err(|available| {
                RegistryError::NoMatchingPlatform {
                    reference: ctx.reference.clone(),
                    wanted: opts.platform.to_string(),
                    available,
                }
            })?;
            layout::sha256_hex(&entry.digest)?;
            let by_digest = image.with_digest(&entry.digest);
            let (child, _) = client
                .pull_manifest_raw(&by_digest, &auth, ACCEPTED_MANIFESTS)
                .await
                .map_err(|e| ctx.map(e, "manifest"))?;
            let child = child.to_vec();
            let child_digest = layout::sha256_digest(&child);
            check_digest("manifest", &entry.digest, &child_digest)?;
            if child.len() as u64 != entry.size {
                return Err(RegistryError::SizeMismatch {
                    digest: entry.digest.clone(),
                    expected: entry.size,
                    actual: child.len() as u64,
                });
            }
            match kind_of(&child)? {
                Kind::Manifest(media_type) => (
                    child,
                    child_digest,
                    media_type,
                    Some(digest),
                    entry.platform.clone(),
                ),
                Kind::Index => {
                    return Err(RegistryError::UnsupportedMediaType {
                        media_type: format!(
                            "{} (an index inside an index)",
                            entry.media_type.as_deref().unwrap_or(OCI_INDEX_MEDIA_TYPE)
                        ),
                    })
                }
            }
        }
    };

    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_body).map_err(|e| RegistryError::InvalidManifest {
            reason: format!("image manifest: {e}"),
        })?;
    manifest.check()?;

    let layout = layout::Layout::open_or_create(dest).await?;
    let blobs: Vec<(BlobKind, &Descriptor)> = std::iter::once((BlobKind::Config, &manifest.config))
        .chain(manifest.layers.iter().map(|l| (BlobKind::Layer, l)))
        .collect();
    within_pull_limit(reference, blobs.iter().map(|(_, d)| d.size))?;
    // Collected first so that no closure is part of the future's type (which
    // would keep `pull`'s future from being `Send`).
    let fetches: Vec<_> = blobs
        .iter()
        .map(|(kind, desc)| fetch_blob(&client, &image, &layout, desc, *kind, progress, &ctx))
        .collect();
    let downloaded: Vec<u64> = futures::stream::iter(fetches)
        .buffered(PARALLEL_BLOBS)
        .try_collect()
        .await?;

    // The manifest last: a layout never names a manifest whose blobs are missing.
    layout
        .put_blob_bytes("manifest", &manifest_digest, &manifest_body)
        .await?;
    let mut descriptor = serde_json::Map::new();
    descriptor.insert("mediaType".into(), media_type.clone().into());
    descriptor.insert("digest".into(), manifest_digest.clone().into());
    descriptor.insert("size".into(), (manifest_body.len() as u64).into());
    if index_digest.is_some() {
        let mut p = serde_json::Map::new();
        p.insert("os".into(), opts.platform.os.clone().into());
        p.insert(
            "architecture".into(),
            opts.platform.architecture.clone().into(),
        );
        if let Some(v) = &opts.platform.variant {
            p.insert("variant".into(), v.clone().into());
        }
        descriptor.insert("platform".into(), p.into());
    }
    layout.set_index_entry(descriptor, image.tag()).await?;

    Ok(Pulled {
        dir: layout.dir().to_path_buf(),
        reference: ctx.reference,
        tag: image.tag().map(str::to_string),
        manifest_digest,
        manifest_media_type: media_type,
        index_digest,
        platform: chosen.map(|p| p.to_string()),
        layers: manifest.layers.len(),
        bytes: blobs.iter().map(|(_, d)| d.size).sum(),
        downloaded: downloaded.iter().sum(),
    })
}

fn client(opts: &PullOptions, registry: &str) -> Result<oci_client::Client, RegistryError> {
    // reqwest is built without a bundled provider: use ring, as the workspace
    // does. Err means a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = oci_client::client::ClientConfig {
        protocol: if opts.insecure.is_empty() {
            oci_client::client::ClientProtocol::Https
        } else {
            oci_client::client::ClientProtocol::HttpsExcept(opts.insecure.clone())
        },
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(120)),
        ..Default::default()
    };
    oci_client::Client::try_from(config).map_err(|e| RegistryError::Network {
        registry: registry.to_string(),
        message: format!("cannot build the HTTP client: {e}"),
    })
}

fn check_digest(what: &'static str, expected: &str, actual: &str) -> Result<(), RegistryError> {
    if expected == actual {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Downloads one blob unless it is already in the layout; returns the bytes downloaded.
async fn fetch_blob(
    client: &oci_client::Client,
    image: &ImageRef,
    layout: &layout::Layout,
    desc: &Descriptor,
    kind: BlobKind,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
    ctx: &Ctx,
) -> Result<u64, RegistryError> {
    let report = |phase, done| {
        progress(PullProgress {
            digest: desc.digest.clone(),
            kind,
            phase,
            done,
            total: desc.size,
        })
    };
    if layout.has_verified_blob(&desc.digest, desc.size).await? {
        report(BlobPhase::Cached, desc.size);
        return Ok(0);
    }
    let oci_desc = oci_client::manifest::OciDescriptor {
        media_type: desc.media_type.clone(),
        digest: desc.digest.clone(),
        size: i64::try_from(desc.size).unwrap_or(i64::MAX),
        urls: desc.urls.clone(),
        ..Default::default()
    };
    let mut writer = layout.blob_writer(kind.what(), &desc.digest, desc.size)?;
    let mut stream = client
        .pull_blob_stream(image.oci(), &oci_desc)
        .await
        .map_err(|e| ctx.map(e, kind.what()))?;
    report(BlobPhase::Downloading, 0);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                writer.write(&bytes).await?;
                report(BlobPhase::Downloading, writer.written());
            }
            Err(e) => {
                // oci-client's own verification ends the stream with a digest
                // error; report it with the digest of what we received.
                let is_digest = e
                    .get_ref()
                    .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>());
                return Err(if is_digest {
                    RegistryError::DigestMismatch {
                        what: kind.what(),
                        expected: desc.digest.clone(),
                        actual: writer.digest_so_far(),
                    }
                } else {
                    RegistryError::Network {
                        registry: ctx.registry.clone(),
                        message: format!("reading blob {}: {e}", desc.digest),
                    }
                });
            }
        }
    }
    writer.finish().await?;
    report(BlobPhase::Done, desc.size);
    Ok(desc.size)
}

/// What a manifest document is.
enum Kind {
    /// An image manifest, with its media type.
    Manifest(String),
    /// An image index or manifest list.
    Index,
}

fn kind_of(body: &[u8]) -> Result<Kind, RegistryError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<i64>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let head: Head = serde_json::from_slice(body).map_err(|e| RegistryError::InvalidManifest {
        reason: e.to_string(),
    })?;
    if head.schema_version != Some(2) {
        return Err(RegistryError::UnsupportedMediaType {
            media_type: match head.schema_version {
                Some(1) => "Docker image manifest schema 1".to_string(),
                v => format!("manifest schemaVersion {v:?}"),
            },
        });
    }
    match head.media_type.as_deref() {
        Some(OCI_INDEX_MEDIA_TYPE | DOCKER_MANIFEST_LIST_MEDIA_TYPE) => Ok(Kind::Index),
        Some(t @ (OCI_MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE)) => {
            Ok(Kind::Manifest(t.to_string()))
        }
        Some(other) => Err(RegistryError::UnsupportedMediaType {
            media_type: other.to_string(),
        }),
        // mediaType is optional in OCI documents: tell them apart by shape.
        None if head.manifests.is_some() => Ok(Kind::Index),
        None if head.layers.is_some() => Ok(Kind::Manifest(OCI_MANIFEST_MEDIA_TYPE.to_string())),
        None => Err(RegistryError::InvalidManifest {
            reason: "neither an image manifest nor an index".to_string(),
        }),
    }
}

/// A content descriptor (the fields a pull needs).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

/// An image manifest (OCI or Docker schema 2; same shape).
#[derive(Debug, Clone, Deserialize)]
struct ImageManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// Refuses digests that are not sha256 and media types that are not images.
    fn check(&self) -> Result<(), RegistryError> {
        layout::sha256_hex(&self.config.digest)?;
        if !ACCEPTED_CONFIGS.contains(&self.config.media_type.as_str()) {
            return Err(RegistryError::UnsupportedMediaType {
                media_type: format!("{} (config; not a container image)", self.config.media_type),
            });
        }
        for layer in &self.layers {
            layout::sha256_hex(&layer.digest)?;
            if !ACCEPTED_LAYERS.contains(&layer.media_type.as_str()) {
                return Err(RegistryError::UnsupportedMediaType {
                    media_type: format!("{} (layer)", layer.media_type),
                });
            }
        }
        Ok(())
    }
}

/// What error mapping needs to know about the pull.
struct Ctx {
    registry: String,
    repository: String,
    reference: String,
    anonymous: bool,
}

impl Ctx {
    fn auth_error(&self) -> RegistryError {
        if self.anonymous {
            RegistryError::AuthRequired {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
            }
        } else {
            RegistryError::AuthRefused {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
            }
        }
    }

    fn map(
        &self,
        e: oci_client::errors::OciDistributionError,
        what: &'static str,
    ) -> RegistryError {
        use oci_client::errors::{DigestError, OciDistributionError as E, OciErrorCode as C};
        match e {
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => self.auth_error(),
            E::ImageManifestNotFoundError(_) => RegistryError::NotFound {
                reference: self.reference.clone(),
            },
            E::RegistryError { envelope, .. } => {
                let codes: Vec<&C> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes
                    .iter()
                    .any(|c| matches!(c, C::Unauthorized | C::Denied))
                {
                    self.auth_error()
                } else if codes.iter().any(|c| {
                    matches!(
                        c,
                        C::ManifestUnknown | C::NameUnknown | C::BlobUnknown | C::NotFound
                    )
                }) {
                    RegistryError::NotFound {
                        reference: self.reference.clone(),
                    }
                } else {
                    RegistryError::Registry {
                        registry: self.registry.clone(),
                        message: envelope.to_string(),
                    }
                }
            }
            E::ServerError {
                code: 401 | 403, ..
            } => self.auth_error(),
            E::ServerError { code: 404, .. } => RegistryError::NotFound {
                reference: self.reference.clone(),
            },
            E::DigestError(DigestError::VerificationError { expected, actual }) => {
                RegistryError::DigestMismatch {
                    what,
                    expected,
                    actual,
                }
            }
            E::UnsupportedMediaTypeError(media_type) => {
                RegistryError::UnsupportedMediaType { media_type }
            }
            E::RequestError(e) => RegistryError::Network {
                registry: self.registry.clone(),
                message: error_chain(&e),
            },
            E::IoError(e) => RegistryError::Network {
                registry: self.registry.clone(),
                message: e.to_string(),
            },
            other => RegistryError::Registry {
                registry: self.registry.clone(),
                message: other.to_string(),
            },
        }
    }
}

/// An error and its sources on one line (reqwest hides the cause in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_image_declaring_more_than_the_pull_limit_is_refused() {
        assert!(super::within_pull_limit("r", [1u64, 2].into_iter()).is_ok());
        let err = super::within_pull_limit("r", [super::MAX_PULL_BYTES, 1].into_iter())
            .expect_err("over the limit");
        assert!(
            err.to_string()
                .contains("the pull limit is 17179869184 bytes"),
            "{err}"
        );
        // Sizes that overflow do not wrap around.
        assert!(super::within_pull_limit("r", [u64::MAX, 2].into_iter()).is_err());
    }

    #[test]
    fn pull_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let opts = PullOptions::default();
        let fut = pull("busybox", Path::new("/nonexistent"), &opts, &|_| {});
        assert_send(&fut);
    }

    #[test]
    fn kinds_of_manifests() {
        assert!(matches!(
            kind_of(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#).unwrap(),
            Kind::Index
        ));
        assert!(matches!(
            kind_of(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            Kind::Index
        ));
        match kind_of(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap() {
            Kind::Manifest(t) => assert_eq!(t, OCI_MANIFEST_MEDIA_TYPE),
            Kind::Index => panic!("not an index"),
        }
        match kind_of(
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_MEDIA_TYPE}"}}"#)
                .as_bytes(),
        )
        .unwrap()
        {
            Kind::Manifest(t) => assert_eq!(t, DOCKER_MANIFEST_MEDIA_TYPE),
            Kind::Index => panic!("not an index"),
        }
        let err = kind_of(br#"{"schemaVersion":1,"fsLayers":[]}"#)
            .err()
            .unwrap();
        assert!(
            matches!(err, RegistryError::UnsupportedMediaType { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("schema 1"), "{err}");
        let err = kind_of(br#"{"schemaVersion":2,"mediaType":"application/vnd.cncf.helm.chart"}"#)
            .err()
            .unwrap();
        assert!(
            matches!(err, RegistryError::UnsupportedMediaType { .. }),
            "{err}"
        );
        assert!(matches!(
            kind_of(b"[1,2]").err().unwrap(),
            RegistryError::InvalidManifest { .. }
        ));
    }

    #[test]
    fn manifest_check_refuses_artifacts_and_bad_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let m = |cfg: &str, layer: &str, digest: &str| ImageManifest {
            config: Descriptor {
                media_type: cfg.into(),
                digest: d.clone(),
                size: 1,
                urls: None,
            },
            layers: vec![Descriptor {
                media_type: layer.into(),
                digest: digest.into(),
                size: 1,
                urls: None,
            }],
        };
        let cfg = ACCEPTED_CONFIGS[0];
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        m(cfg, gz, &d).check().unwrap();
        m(
            ACCEPTED_CONFIGS[1],
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            &d,
        )
        .check()
        .unwrap();
        assert!(matches!(
            m("application/vnd.wasm.config.v1+json", gz, &d).check(),
            Err(RegistryError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            m(cfg, "application/vnd.wasm.content.layer.v1+wasm", &d).check(),
            Err(RegistryError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            m(cfg, gz, "sha256:../../etc/passwd").check(),
            Err(RegistryError::UnsupportedDigest { .. })
        ));
    }

    #[test]
    fn auth_errors_depend_on_whether_credentials_were_given() {
        let mut ctx = Ctx {
            registry: "r".into(),
            repository: "p".into(),
            reference: "r/p:t".into(),
            anonymous: true,
        };
        let unauth =
            || oci_client::errors::OciDistributionError::UnauthorizedError { url: "u".into() };
        let e = ctx.map(unauth(), "manifest");
        assert!(matches!(e, RegistryError::AuthRequired { .. }), "{e}");
        assert!(e.to_string().contains("needs credentials"), "{e}");
        ctx.anonymous = false;
        let e = ctx.map(unauth(), "manifest");
        assert!(matches!(e, RegistryError::AuthRefused { .. }), "{e}");
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        let e = ctx.map(
            oci_client::errors::OciDistributionError::ServerError {
                code: 404,
                url: "u".into(),
                message: String::new(),
            },
            "manifest",
        );
        assert!(matches!(e, RegistryError::NotFound { .. }), "{e}");
    }
}
