//! A minimal OCI image builder for tests: one gzip tar layer, a config with
//! `rootfs.diff_ids`, an OCI manifest, and a layout `index.json` (optionally
//! over an image index of several platforms). To be replaced by the shared
//! image builder.

use std::path::Path;

use super::sha256;

/// A built single-platform image.
pub struct Image {
    pub arch: String,
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl Image {
    /// An image for linux/`arch` whose one layer holds `files`.
    pub fn new(arch: &str, files: &[(&str, &[u8])]) -> Image {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, name, *data).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let diff_id = sha256(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let layer = gz.finish().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(&layer),
                "size": layer.len(),
            }],
        }))
        .unwrap();
        Image {
            arch: arch.to_string(),
            layer,
            config,
            manifest,
        }
    }

    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest)
    }

    pub fn layer_digest(&self) -> String {
        sha256(&self.layer)
    }

    fn write_blobs(&self, dir: &Path) {
        for b in [&self.layer, &self.config, &self.manifest] {
            write_blob(dir, b);
        }
    }
}

fn write_blob(dir: &Path, bytes: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let digest = sha256(bytes);
    std::fs::write(blobs.join(digest.strip_prefix("sha256:").unwrap()), bytes).unwrap();
}

fn write_index(dir: &Path, media_type: &str, bytes: &[u8], tag: &str) {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": media_type,
            "digest": sha256(bytes),
            "size": bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Writes a layout at `dir` whose `tag` is `image`.
pub fn write_single(dir: &Path, tag: &str, image: &Image) {
    image.write_blobs(dir);
    write_index(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &image.manifest,
        tag,
    );
}

/// Writes a layout at `dir` whose `tag` is an image index over `images`;
/// returns the index bytes.
pub fn write_multi(dir: &Path, tag: &str, images: &[&Image]) -> Vec<u8> {
    let manifests: Vec<_> = images
        .iter()
        .map(|i| {
            i.write_blobs(dir);
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": i.manifest_digest(),
                "size": i.manifest.len(),
                "platform": { "os": "linux", "architecture": i.arch },
            })
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    write_blob(dir, &index);
    write_index(dir, "application/vnd.oci.image.index.v1+json", &index, tag);
    index
}
