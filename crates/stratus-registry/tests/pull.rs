//! Pulls from a real registry (`docker-registry` on loopback), images pushed
//! with skopeo, layouts checked with skopeo.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::Path;

use common::image::{write_multi, write_single, Image};
use common::{blob_files, push, raw_manifest, sha256, skopeo, Progress, Registry};
use stratus_registry::{
    pull, BlobKind, BlobPhase, Platform, PullOptions, RegistryAuth, RegistryError,
};

fn opts(reg: &Registry) -> PullOptions {
    PullOptions {
        insecure: vec![reg.addr.clone()],
        ..Default::default()
    }
}

fn amd64_image() -> Image {
    Image::new(
        "amd64",
        &[
            ("etc/hello", b"hello from amd64\n"),
            ("bin/tool", b"#!/bin/sh\necho hi\n"),
        ],
    )
}

/// Pushes `image` as `registry:TAG` and returns its layout dir (kept alive by the TempDir).
fn push_single(reg: &Registry, image: &Image, tag: &str, creds: Option<&str>) -> tempfile::TempDir {
    let src = tempfile::tempdir().unwrap();
    write_single(src.path(), tag, image);
    push(
        src.path(),
        tag,
        &reg.docker_ref("registry", tag),
        creds,
        &[],
    );
    src
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

fn index_json(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn pulls_an_image_into_a_valid_layout() {
    let reg = Registry::start(None);
    let image = amd64_image();
    let _src = push_single(&reg, &image, "v1", None);

    let dest = tempfile::tempdir().unwrap();
    let progress = Progress::default();
    let pulled = pull(
        &format!("{}/registry:v1", reg.addr),
        dest.path(),
        &opts(&reg),
        &progress.callback(),
    )
    .await
    .unwrap();

    // The manifest digest is what the registry serves for the tag.
    let served = raw_manifest(&reg.docker_ref("registry", "v1"), None);
    assert_eq!(pulled.manifest_digest, sha256(&served));
    assert_eq!(pulled.reference, format!("{}/registry:v1", reg.addr));
    assert_eq!(pulled.tag.as_deref(), Some("v1"));
    assert_eq!(pulled.layers, 1);
    assert_eq!(pulled.index_digest, None);
    assert_eq!(pulled.platform, None);
    assert_eq!(
        pulled.bytes,
        (image.layer.len() + image.config.len()) as u64
    );
    assert_eq!(pulled.downloaded, pulled.bytes);

    // Blobs are byte-equal to what was pushed.
    assert_eq!(blob(dest.path(), &image.layer_digest()), image.layer);
    assert_eq!(blob(dest.path(), &sha256(&image.config)), image.config);
    assert_eq!(blob(dest.path(), &pulled.manifest_digest), served);
    assert_eq!(
        blob_files(dest.path()).len(),
        3,
        "manifest, config, layer and nothing else: {:?}",
        blob_files(dest.path())
    );

    // index.json names the manifest by the tag.
    let index = index_json(dest.path());
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], pulled.manifest_digest);
    assert_eq!(entries[0]["size"], served.len());
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );

    // skopeo reads the layout: it is a real OCI layout.
    let inspect: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        &format!("oci:{}:v1", dest.path().display()),
    ]))
    .unwrap();
    assert_eq!(inspect["Digest"], pulled.manifest_digest);
    assert_eq!(inspect["Layers"][0], image.layer_digest());

    // Progress: both blobs downloaded from 0 to done.
    let events = progress.take();
    for (kind, digest, size) in [
        (
            BlobKind::Layer,
            image.layer_digest(),
            image.layer.len() as u64,
        ),
        (
            BlobKind::Config,
            sha256(&image.config),
            image.config.len() as u64,
        ),
    ] {
        let mine: Vec<_> = events.iter().filter(|e| e.digest == digest).collect();
        assert_eq!(mine.first().unwrap().phase, BlobPhase::Downloading);
        assert_eq!(mine.first().unwrap().done, 0);
        let last = mine.last().unwrap();
        assert_eq!(
            (last.phase, last.done, last.total, last.kind),
            (BlobPhase::Done, size, size, kind)
        );
    }
}

#[tokio::test]
async fn a_second_pull_downloads_no_blob_again() {
    let reg = Registry::start(None);
    let image = amd64_image();
    let _src = push_single(&reg, &image, "v1", None);
    let _src2 = push_single(&reg, &image, "v2", None);
    let dest = tempfile::tempdir().unwrap();
    let progress = Progress::default();
    let first = pull(
        &format!("{}/registry:v1", reg.addr),
        dest.path(),
        &opts(&reg),
        &progress.callback(),
    )
    .await
    .unwrap();
    assert!(progress
        .take()
        .iter()
        .any(|e| e.phase == BlobPhase::Downloading));

    // Same tag again, and another tag of the same image: nothing downloaded.
    for tag in ["v1", "v2"] {
        let again = pull(
            &format!("{}/registry:{tag}", reg.addr),
            dest.path(),
            &opts(&reg),
            &progress.callback(),
        )
        .await
        .unwrap();
        assert_eq!(again.manifest_digest, first.manifest_digest);
        assert_eq!(again.downloaded, 0);
        let events = progress.take();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(
            events.iter().all(|e| e.phase == BlobPhase::Cached),
            "{events:?}"
        );
    }
    // Both tags are in index.json, the blobs are stored once.
    let names: Vec<String> = index_json(dest.path())["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    assert_eq!(blob_files(dest.path()).len(), 3);

    // A damaged local blob is detected and fetched again.
    let layer_path = dest
        .path()
        .join("blobs/sha256")
        .join(image.layer_digest().strip_prefix("sha256:").unwrap());
    std::fs::write(&layer_path, vec![0u8; image.layer.len()]).unwrap();
    let repaired = pull(
        &format!("{}/registry:v1", reg.addr),
        dest.path(),
        &opts(&reg),
        &progress.callback(),
    )
    .await
    .unwrap();
    assert_eq!(repaired.downloaded, image.layer.len() as u64);
    assert_eq!(std::fs::read(&layer_path).unwrap(), image.layer);
}

#[tokio::test]
async fn picks_the_platform_from_an_index() {
    let reg = Registry::start(None);
    let amd = amd64_image();
    let arm = Image::new("arm64", &[("etc/hello", b"hello from arm64\n")]);
    let src = tempfile::tempdir().unwrap();
    let index = write_multi(src.path(), "multi", &[&amd, &arm]);
    push(
        src.path(),
        "multi",
        &reg.docker_ref("registry", "multi"),
        None,
        &["--all"],
    );
    let served_index = raw_manifest(&reg.docker_ref("registry", "multi"), None);
    assert_eq!(served_index, index, "skopeo pushed the index as built");

    for (arch, image) in [("arm64", &arm), ("amd64", &amd)] {
        let dest = tempfile::tempdir().unwrap();
        let o = PullOptions {
            platform: Platform::new("linux", arch),
            ..opts(&reg)
        };
        let pulled = pull(
            &format!("{}/registry:multi", reg.addr),
            dest.path(),
            &o,
            &|_| {},
        )
        .await
        .unwrap();
        assert_eq!(pulled.index_digest, Some(sha256(&served_index)));
        assert_eq!(pulled.platform, Some(format!("linux/{arch}")));
        assert_eq!(pulled.manifest_digest, image.manifest_digest(), "{arch}");
        assert_eq!(blob(dest.path(), &image.layer_digest()), image.layer);
        let entry = &index_json(dest.path())["manifests"][0];
        assert_eq!(entry["digest"], image.manifest_digest());
        assert_eq!(entry["platform"]["architecture"], arch);
        skopeo(&["inspect", &format!("oci:{}:multi", dest.path().display())]);
    }

    let dest = tempfile::tempdir().unwrap();
    let o = PullOptions {
        platform: Platform::new("linux", "s390x"),
        ..opts(&reg)
    };
    let err = pull(
        &format!("{}/registry:multi", reg.addr),
        dest.path(),
        &o,
        &|_| {},
    )
    .await
    .unwrap_err();
    match &err {
        RegistryError::NoMatchingPlatform {
            wanted, available, ..
        } => {
            assert_eq!(wanted, "linux/s390x");
            assert_eq!(available, &["linux/amd64", "linux/arm64"]);
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[tokio::test]
async fn pulls_by_digest_and_reports_unknown_images() {
    let reg = Registry::start(None);
    let image = amd64_image();
    let _src = push_single(&reg, &image, "v1", None);
    let dest = tempfile::tempdir().unwrap();

    let by_digest = format!("{}/registry@{}", reg.addr, image.manifest_digest());
    let pulled = pull(&by_digest, dest.path(), &opts(&reg), &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert_eq!(pulled.tag, None);
    let entry = &index_json(dest.path())["manifests"][0];
    assert_eq!(entry["digest"], image.manifest_digest());
    assert!(entry.get("annotations").is_none(), "{entry}");

    for missing in [
        format!("{}/registry:nope", reg.addr),
        format!("{}/no-such-repo:v1", reg.addr),
        format!("{}/registry@sha256:{}", reg.addr, "0".repeat(64)),
    ] {
        let err = pull(&missing, dest.path(), &opts(&reg), &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::NotFound { .. }),
            "{missing}: {err:?}"
        );
    }

    let err = pull("Not A Ref", dest.path(), &opts(&reg), &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidReference { .. }),
        "{err:?}"
    );

    // Nothing listens there: a network error (the port was free a moment ago).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("127.0.0.1:{port}");
    let o = PullOptions {
        insecure: vec![closed.clone()],
        ..Default::default()
    };
    let err = pull(&format!("{closed}/registry:v1"), dest.path(), &o, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Network { .. }), "{err:?}");
}

#[tokio::test]
async fn htpasswd_registry_checks_credentials() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let image = amd64_image();
    let _src = push_single(&reg, &image, "v1", Some("alice:s3cret"));
    let reference = format!("{}/registry:v1", reg.addr);

    let dest = tempfile::tempdir().unwrap();
    let err = pull(&reference, dest.path(), &opts(&reg), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::AuthRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("needs credentials"), "{err}");

    let wrong = PullOptions {
        auth: RegistryAuth::Basic {
            username: "alice".into(),
            password: "wrong".into(),
        },
        ..opts(&reg)
    };
    let err = pull(&reference, dest.path(), &wrong, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::AuthRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    assert!(blob_files(dest.path()).is_empty());

    let right = PullOptions {
        auth: RegistryAuth::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
        ..opts(&reg)
    };
    let pulled = pull(&reference, dest.path(), &right, &|_| {})
        .await
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest());
    assert_eq!(blob(dest.path(), &image.layer_digest()), image.layer);
}

#[tokio::test]
async fn a_tampered_blob_is_refused_and_not_kept() {
    let reg = Registry::start(None);
    let image = amd64_image();
    let _src = push_single(&reg, &image, "v1", None);

    // Flip one byte of the layer in the registry's storage (same length).
    let data = reg.blob_data(&image.layer_digest());
    let mut bytes = std::fs::read(&data).unwrap();
    assert_eq!(bytes, image.layer);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let dest = tempfile::tempdir().unwrap();
    let err = pull(
        &format!("{}/registry:v1", reg.addr),
        dest.path(),
        &opts(&reg),
        &|_| {},
    )
    .await
    .unwrap_err();
    match &err {
        RegistryError::DigestMismatch {
            what,
            expected,
            actual,
        } => {
            assert_eq!(*what, "layer");
            assert_eq!(expected, &image.layer_digest());
            assert_eq!(actual, &sha256(&bytes));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let files = blob_files(dest.path());
    let layer_hex = image
        .layer_digest()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    assert!(!files.contains(&layer_hex), "{files:?}");
    assert!(
        files.iter().all(|f| !f.starts_with('.')),
        "temporary file left: {files:?}"
    );
    assert!(
        !files.contains(&image.manifest_digest()[7..].to_string()),
        "manifest written: {files:?}"
    );
    assert!(!dest.path().join("index.json").exists());
}

#[tokio::test]
async fn docker_schema2_manifests_are_kept_as_they_are() {
    let reg = Registry::start(None);
    let image = amd64_image();
    let src = tempfile::tempdir().unwrap();
    write_single(src.path(), "d", &image);
    // skopeo converts to Docker v2 schema 2 on the way
    push(
        src.path(),
        "d",
        &reg.docker_ref("registry", "d"),
        None,
        &["--format", "v2s2"],
    );
    let served = raw_manifest(&reg.docker_ref("registry", "d"), None);
    let v: serde_json::Value = serde_json::from_slice(&served).unwrap();
    assert_eq!(v["mediaType"], stratus_registry::DOCKER_MANIFEST_MEDIA_TYPE);

    let dest = tempfile::tempdir().unwrap();
    let pulled = pull(
        &format!("{}/registry:d", reg.addr),
        dest.path(),
        &opts(&reg),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        pulled.manifest_media_type,
        stratus_registry::DOCKER_MANIFEST_MEDIA_TYPE
    );
    assert_eq!(pulled.manifest_digest, sha256(&served));
    assert_eq!(blob(dest.path(), &pulled.manifest_digest), served);
    let entry = &index_json(dest.path())["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        stratus_registry::DOCKER_MANIFEST_MEDIA_TYPE
    );
    // the layer bytes are unchanged (gzip kept, only the media type differs)
    assert_eq!(blob(dest.path(), &image.layer_digest()), image.layer);
    // Not checked with `skopeo inspect oci:`: containers/image (skopeo 1.9)
    // skips index.json entries whose media type is not an OCI one, so it
    // reports "no descriptor found" for a Docker manifest kept as it is.
}

#[tokio::test]
async fn a_tampered_manifest_is_refused() {
    let reg = Registry::start(None);
    let amd = amd64_image();
    let arm = Image::new("arm64", &[("etc/hello", b"hello from arm64\n")]);
    let src = tempfile::tempdir().unwrap();
    write_multi(src.path(), "multi", &[&amd, &arm]);
    push(
        src.path(),
        "multi",
        &reg.docker_ref("registry", "multi"),
        None,
        &["--all"],
    );

    // Change one hex digit of the config digest inside the stored arm64
    // manifest: still valid JSON, but no longer the bytes the index names.
    let data = reg.blob_data(&arm.manifest_digest());
    let text = String::from_utf8(std::fs::read(&data).unwrap()).unwrap();
    let config_hex = &sha256(&arm.config)[7..];
    let flipped = if config_hex.starts_with('0') {
        "1"
    } else {
        "0"
    };
    let tampered = text.replacen(config_hex, &format!("{flipped}{}", &config_hex[1..]), 1);
    assert_ne!(tampered, text);
    std::fs::write(&data, tampered).unwrap();

    let dest = tempfile::tempdir().unwrap();
    let o = PullOptions {
        platform: Platform::new("linux", "arm64"),
        ..opts(&reg)
    };
    for reference in [
        format!("{}/registry:multi", reg.addr),
        format!("{}/registry@{}", reg.addr, arm.manifest_digest()),
    ] {
        let err = pull(&reference, dest.path(), &o, &|_| {})
            .await
            .unwrap_err();
        match &err {
            RegistryError::DigestMismatch { what, expected, .. } => {
                assert_eq!(*what, "manifest");
                assert_eq!(expected, &arm.manifest_digest());
            }
            other => panic!("{reference}: expected DigestMismatch, got {other:?}"),
        }
        assert!(
            blob_files(dest.path()).is_empty(),
            "{:?}",
            blob_files(dest.path())
        );
    }
}
