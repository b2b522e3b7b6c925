//! Tests of layer application, content sinks, image formats and the image
//! builder.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use crate::build::layer_tar;
use crate::layer::apply_tars;
use crate::{
    busybox_image, import_image, Flist, FlistError, ImageBuilder, ImageConfig, InodeKind,
    LayerEntry, MemorySink, ROOT,
};

/// What a path is, as compared by tests.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Obj {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(Vec<u8>),
    Other(String),
}

/// Every path of the tree (without the root) → what it is, with file
/// contents reassembled from the sink.
fn tree(f: &Flist, sink: &MemorySink) -> BTreeMap<String, Obj> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for (name, ino) in f.entries(dir) {
            let path = format!("{prefix}/{}", String::from_utf8_lossy(name));
            let inode = f.inode(ino).unwrap();
            let obj = match &inode.kind {
                InodeKind::Dir { .. } => {
                    stack.push((ino, path.clone()));
                    Obj::Dir(inode.mode)
                }
                InodeKind::File { chunks, .. } => {
                    Obj::File(inode.mode, sink.read(chunks).expect("chunks in the sink"))
                }
                InodeKind::Symlink { target } => Obj::Symlink(target.to_vec()),
                other => Obj::Other(format!("{other:?}")),
            };
            out.insert(path, obj);
        }
    }
    out
}

fn apply(layers: Vec<Vec<LayerEntry>>) -> Result<(Flist, MemorySink), FlistError> {
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| layer_tar(l).unwrap()).collect();
    let mut sink = MemorySink::new();
    let f = apply_tars(&tars, ImageConfig::default(), &mut sink)?;
    Ok((f, sink))
}

fn file(p: &str, data: &str) -> LayerEntry {
    LayerEntry::file(p, 0o644, data.as_bytes())
}

fn paths(t: &BTreeMap<String, Obj>) -> Vec<&str> {
    t.keys().map(String::as_str).collect()
}

/// A tar entry written byte by byte (names the `tar` crate refuses).
fn raw_entry(name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn whiteout_deletes_a_lower_file() {
    let (f, sink) = apply(vec![
        vec![file("etc/a", "A"), file("etc/b", "B")],
        vec![LayerEntry::whiteout("etc/a")],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(paths(&t), ["/etc", "/etc/b"]);
}

#[test]
fn whiteout_deletes_a_lower_dir_with_its_subtree() {
    let (f, sink) = apply(vec![
        vec![file("usr/share/doc/x", "X"), file("usr/bin/y", "Y")],
        vec![LayerEntry::whiteout("usr/share")],
    ])
    .unwrap();
    assert_eq!(paths(&tree(&f, &sink)), ["/usr", "/usr/bin", "/usr/bin/y"]);
    // The deleted file's contents were never read.
    assert_eq!(sink.files, 1);
}

#[test]
fn whiteout_applies_to_lower_layers_only_wherever_it_sits_in_the_tar() {
    // The new `a` comes before its whiteout in the tar: it survives.
    let (f, sink) = apply(vec![
        vec![file("a", "old")],
        vec![file("a", "new"), LayerEntry::whiteout("a")],
    ])
    .unwrap();
    assert_eq!(
        tree(&f, &sink).get("/a"),
        Some(&Obj::File(0o644, b"new".to_vec()))
    );
}

#[test]
fn opaque_dir_hides_lower_entries_but_keeps_its_own_layers_entries() {
    let (f, sink) = apply(vec![
        vec![
            file("d/old1", "1"),
            file("d/sub/old2", "2"),
            file("other", "o"),
        ],
        vec![
            LayerEntry::dir("d", 0o750),
            file("d/new", "n"),
            LayerEntry::opaque("d"),
        ],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(paths(&t), ["/d", "/d/new", "/other"]);
    assert_eq!(t["/d"], Obj::Dir(0o750));
}

#[test]
fn hard_link_across_layers_shares_the_inode_and_reads_it_once() {
    let (f, sink) = apply(vec![
        vec![file("bin/tool", "tool bytes")],
        vec![
            LayerEntry::hardlink("usr/bin/tool2", "bin/tool"),
            LayerEntry::hardlink("bin/tool3", "/bin/tool"),
        ],
    ])
    .unwrap();
    let a = f.resolve("/bin/tool").unwrap();
    assert_eq!(f.resolve("/usr/bin/tool2"), Some(a));
    assert_eq!(f.resolve("/bin/tool3"), Some(a));
    assert_eq!(f.link_counts()[a as usize], 3);
    assert_eq!(sink.files, 1);
    assert_eq!(
        tree(&f, &sink)["/usr/bin/tool2"],
        Obj::File(0o644, b"tool bytes".to_vec())
    );
}

#[test]
fn hard_link_within_a_layer_and_replacing_one_name_keeps_the_other() {
    let (f, sink) = apply(vec![
        vec![file("a", "shared"), LayerEntry::hardlink("b", "a")],
        vec![file("a", "replaced")],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(t["/a"], Obj::File(0o644, b"replaced".to_vec()));
    assert_eq!(t["/b"], Obj::File(0o644, b"shared".to_vec()));
    assert_ne!(f.resolve("/a"), f.resolve("/b"));
}

#[test]
fn hard_link_to_missing_file_or_directory_is_refused() {
    let e = apply(vec![vec![LayerEntry::hardlink("a", "nope")]]).unwrap_err();
    assert!(matches!(e, FlistError::Layer { .. }), "{e}");
    let e = apply(vec![vec![
        LayerEntry::dir("d", 0o755),
        LayerEntry::hardlink("a", "d"),
    ]])
    .unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
}

#[test]
fn a_file_replaces_a_dir_and_a_symlink_replaces_a_file() {
    let (f, sink) = apply(vec![
        vec![file("x/inner", "i"), file("y", "y")],
        vec![file("x", "now a file"), LayerEntry::symlink("y", "/x")],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(paths(&t), ["/x", "/y"]);
    assert_eq!(t["/x"], Obj::File(0o644, b"now a file".to_vec()));
    assert_eq!(t["/y"], Obj::Symlink(b"/x".to_vec()));
    // `x/inner` and the old `y` were never read.
    assert_eq!(sink.files, 1);
}

#[test]
fn a_dir_over_a_dir_merges_and_takes_the_new_metadata() {
    let (f, sink) = apply(vec![
        vec![LayerEntry::dir("d", 0o700), file("d/a", "a")],
        vec![LayerEntry::dir("d", 0o755).owner(5, 6), file("d/b", "b")],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(paths(&t), ["/d", "/d/a", "/d/b"]);
    let d = f.inode(f.resolve("/d").unwrap()).unwrap();
    assert_eq!((d.mode, d.uid, d.gid), (0o755, 5, 6));
}

#[test]
fn implicit_parents_are_created_0755() {
    let (f, _) = apply(vec![vec![file("a/b/c", "c")]]).unwrap();
    let b = f.inode(f.resolve("/a/b").unwrap()).unwrap();
    assert!(b.is_dir());
    assert_eq!((b.mode, b.uid), (0o755, 0));
}

#[test]
fn dot_dot_escape_is_refused_and_inner_dot_dot_normalised() {
    for name in [&b"../etc/passwd"[..], b"a/../../x", b"/../x"] {
        let tar = raw_entry(name, tar::EntryType::Regular, b"", b"evil");
        let e = apply_tars(&[tar], ImageConfig::default(), &mut MemorySink::new()).unwrap_err();
        match e {
            FlistError::Layer { reason, .. } => assert!(reason.contains("escapes"), "{reason}"),
            other => panic!("{other}"),
        }
    }
    // A hard link whose target escapes.
    let mut tar = raw_entry(b"a", tar::EntryType::Regular, b"", b"a");
    tar.truncate(tar.len() - 1024);
    tar.extend(raw_entry(b"b", tar::EntryType::Link, b"../a", b""));
    let e = apply_tars(&[tar], ImageConfig::default(), &mut MemorySink::new()).unwrap_err();
    assert!(e.to_string().contains("escapes"), "{e}");
    // `./a/../b` stays inside: it is `b`.
    let tar = raw_entry(b"./a/../b", tar::EntryType::Regular, b"", b"fine");
    let mut sink = MemorySink::new();
    let f = apply_tars(&[tar], ImageConfig::default(), &mut sink).unwrap();
    assert_eq!(paths(&tree(&f, &sink)), ["/b"]);
}

#[test]
fn overlong_names_are_refused() {
    let long = "n".repeat(256);
    let e = apply(vec![vec![file(&format!("d/{long}"), "x")]]).unwrap_err();
    assert!(e.to_string().contains("255"), "{e}");
}

#[test]
fn a_file_as_parent_is_refused_and_symlinked_parents_are_followed_inside_the_root() {
    let e = apply(vec![vec![file("f", "f")], vec![file("f/x", "x")]]).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    // `lib -> /usr/lib`, and `lib/x` lands in `/usr/lib/x`; a `..`-heavy
    // symlink stops at the root.
    let (f, sink) = apply(vec![
        vec![
            LayerEntry::dir("usr/lib", 0o755),
            LayerEntry::symlink("lib", "/usr/lib"),
            LayerEntry::symlink("up", "../../../.."),
        ],
        vec![file("lib/x", "x"), file("up/y", "y")],
    ])
    .unwrap();
    let t = tree(&f, &sink);
    assert_eq!(
        paths(&t),
        ["/lib", "/up", "/usr", "/usr/lib", "/usr/lib/x", "/y"]
    );
}

#[test]
fn modes_owners_times_xattrs_and_special_files_are_kept() {
    let (f, _) = apply(vec![vec![
        LayerEntry::file("bin/su", 0o4755, "su").owner(0, 0),
        LayerEntry::file("bin/wall", 0o2755, "w").owner(0, 5),
        LayerEntry::dir("tmp", 0o1777),
        LayerEntry::file("home/u/f", 0o600, "f")
            .owner(1000, 100)
            .mtime(1_234_567_890)
            .xattr("user.comment", b"hi\0there")
            .xattr("security.capability", &[1, 2, 3]),
        LayerEntry::char_device("dev/null", 0o666, 1, 3),
        LayerEntry::block_device("dev/sda", 0o660, 8, 0),
        LayerEntry::fifo("run/fifo", 0o620),
    ]])
    .unwrap();
    let get = |p: &str| f.inode(f.resolve(p).unwrap()).unwrap().clone();
    assert_eq!(get("/bin/su").mode, 0o4755);
    assert_eq!((get("/bin/wall").mode, get("/bin/wall").gid), (0o2755, 5));
    assert_eq!(get("/tmp").mode, 0o1777);
    let h = get("/home/u/f");
    assert_eq!(
        (h.mode, h.uid, h.gid, h.mtime),
        (0o600, 1000, 100, 1_234_567_890)
    );
    assert_eq!(h.xattrs["user.comment"].as_slice(), b"hi\0there");
    assert_eq!(h.xattrs["security.capability"].as_slice(), &[1, 2, 3]);
    assert_eq!(
        get("/dev/null").kind,
        InodeKind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(get("/dev/null").mode, 0o666);
    assert_eq!(
        get("/dev/sda").kind,
        InodeKind::BlockDevice { major: 8, minor: 0 }
    );
    assert_eq!(get("/run/fifo").kind, InodeKind::Fifo);
    assert_eq!(get("/run/fifo").mode, 0o620);
}

#[test]
fn deleted_and_overwritten_contents_never_reach_the_sink() {
    let big = "x".repeat(100_000);
    let (f, sink) = apply(vec![
        vec![
            file("a", &big),
            file("b", &big),
            file("keep", "k"),
            file("d/c", &big),
        ],
        vec![
            LayerEntry::whiteout("a"),
            file("b", "small"),
            LayerEntry::whiteout("d"),
        ],
    ])
    .unwrap();
    assert_eq!(paths(&tree(&f, &sink)), ["/b", "/keep"]);
    assert_eq!(sink.files, 2);
    assert_eq!(sink.bytes, 6);
}

#[test]
fn identical_files_in_two_layers_chunk_to_the_same_ids() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (f, _) = apply(vec![
        vec![LayerEntry::file("one", 0o644, data.clone())],
        vec![LayerEntry::file("two", 0o755, data)],
    ])
    .unwrap();
    let chunks = |p: &str| match &f.inode(f.resolve(p).unwrap()).unwrap().kind {
        InodeKind::File { chunks, .. } => chunks.clone(),
        _ => panic!(),
    };
    assert!(chunks("/one").len() > 1);
    assert_eq!(chunks("/one"), chunks("/two"));
}

#[test]
fn too_many_layers_is_a_limit_error() {
    let tars = vec![layer_tar(&[]).unwrap(); crate::layer::MAX_LAYERS + 1];
    let e = apply_tars(&tars, ImageConfig::default(), &mut MemorySink::new()).unwrap_err();
    assert!(matches!(e, FlistError::Limit(_)), "{e}");
}

// ------------------------------------------------------------- formats

fn sample_image() -> ImageBuilder {
    let mut labels = BTreeMap::new();
    labels.insert("org.example.k".to_string(), "v".to_string());
    ImageBuilder::new()
        .config(ImageConfig {
            entrypoint: vec!["/bin/app".into()],
            cmd: vec!["--serve".into()],
            env: vec!["PATH=/bin".into(), "A=b".into()],
            working_dir: "/srv".into(),
            user: "65534:65534".into(),
            exposed_ports: vec!["80/tcp".into()],
            labels,
            ..ImageConfig::default()
        })
        .layer(vec![
            LayerEntry::dir("bin", 0o755),
            LayerEntry::file("bin/app", 0o755, vec![7u8; 50_000]),
            file("etc/old", "old"),
            file("srv/data", "data"),
            LayerEntry::hardlink("bin/app2", "bin/app"),
        ])
        .layer(vec![
            LayerEntry::whiteout("etc/old"),
            LayerEntry::symlink("bin/sh", "app"),
            file("srv/data", "new data"),
        ])
}

fn import(path: &Path) -> (crate::ImportedImage, MemorySink) {
    let mut sink = MemorySink::new();
    let img = import_image(path, &mut sink).unwrap();
    (img, sink)
}

#[test]
fn docker_save_oci_layout_and_oci_archive_give_the_same_flist() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_image();
    let layout = dir.path().join("layout");
    let m1 = b.write_oci_layout(&layout, "v1").unwrap();
    let m2 = b
        .write_oci_archive(&dir.path().join("img.oci.tar"), "v1")
        .unwrap();
    b.write_docker_save(&dir.path().join("img.docker.tar"), "example/app:v1")
        .unwrap();
    assert_eq!(m1, m2);

    let (oci, s1) = import(&layout);
    let (arch, _) = import(&dir.path().join("img.oci.tar"));
    let (dock, _) = import(&dir.path().join("img.docker.tar"));
    assert_eq!(oci.flist, arch.flist);
    assert_eq!(oci.flist, dock.flist);
    assert_eq!(oci.digest, m1);
    assert_eq!(arch.digest, m1);
    assert_eq!(oci.tags, ["v1"]);
    assert_eq!(dock.tags, ["example/app:v1"]);
    assert!(dock.digest.starts_with("sha256:") && dock.digest != m1);
    assert_eq!((oci.layers, dock.layers), (2, 2));
    assert!(oci.layer_bytes > 0);

    let t = tree(&oci.flist, &s1);
    assert_eq!(
        paths(&t),
        [
            "/bin",
            "/bin/app",
            "/bin/app2",
            "/bin/sh",
            "/etc",
            "/srv",
            "/srv/data"
        ]
    );
    assert_eq!(t["/srv/data"], Obj::File(0o644, b"new data".to_vec()));
    assert_eq!(
        oci.flist.resolve("/bin/app"),
        oci.flist.resolve("/bin/app2")
    );
    // Config fields come through.
    let c = &oci.flist.config;
    assert_eq!(c, &b.image_config());
    assert_eq!(c.entrypoint, ["/bin/app"]);
    assert_eq!(c.cmd, ["--serve"]);
    assert_eq!(c.exposed_ports, ["80/tcp"]);
    assert_eq!(c.user, "65534:65534");
    assert_eq!(c.working_dir, "/srv");
    assert_eq!(c.labels["org.example.k"], "v");
    assert_eq!(c.os, "linux");
    assert_eq!(c.architecture, crate::oci::host_arch());
    // The flist encodes and decodes.
    assert_eq!(
        Flist::decode(&oci.flist.encode().unwrap()).unwrap(),
        oci.flist
    );
}

/// Flips one byte in the middle of `path`.
fn flip(path: &Path, at: Option<u64>) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = at.map_or(bytes.len() / 2, |a| a as usize);
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_a_layer_blob_is_a_digest_error_and_nothing_reaches_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let b = sample_image();
    let layout = dir.path().join("layout");
    b.write_oci_layout(&layout, "v1").unwrap();
    // The biggest blob is the first layer (gzip).
    let blobs: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let biggest = blobs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    flip(biggest, None);
    let mut sink = MemorySink::new();
    match import_image(&layout, &mut sink).unwrap_err() {
        FlistError::Digest { blob, .. } => {
            assert!(blob.contains(&biggest.file_name().unwrap().to_string_lossy().to_string()))
        }
        other => panic!("{other}"),
    }
    assert_eq!(sink.files, 0);

    // docker-save: the layer tar is uncompressed; a flipped content byte is
    // caught by the diff_id.
    let tarball = dir.path().join("d.tar");
    b.write_docker_save(&tarball, "x:y").unwrap();
    let bytes = std::fs::read(&tarball).unwrap();
    let at = bytes.windows(8).position(|w| w == b"new data").unwrap();
    flip(&tarball, Some(at as u64));
    let mut sink = MemorySink::new();
    match import_image(&tarball, &mut sink).unwrap_err() {
        FlistError::Digest { blob, .. } => assert!(blob.contains("layer.tar"), "{blob}"),
        other => panic!("{other}"),
    }
    assert_eq!(sink.files, 0);
}

#[test]
fn a_tampered_config_or_manifest_is_a_digest_error() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let m = sample_image().write_oci_layout(&layout, "v1").unwrap();
    let mpath = layout.join(format!("blobs/sha256/{}", &m[7..]));
    let text = std::fs::read_to_string(&mpath).unwrap();
    std::fs::write(
        &mpath,
        text.replace("\"schemaVersion\":2", "\"schemaVersion\":3"),
    )
    .unwrap();
    let e = import_image(&layout, &mut MemorySink::new()).unwrap_err();
    assert!(matches!(e, FlistError::Digest { .. }), "{e}");
}

#[test]
fn zstd_and_uncompressed_layers_import_too() {
    // Rewrite a layout's gzip layer as zstd and as plain tar, fixing up the
    // manifest, index and digests by hand.
    let tars = sample_image().layer_tars().unwrap();
    for codec in ["zstd", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |bytes: &[u8]| {
            let d = crate::build::sha256_digest(bytes);
            std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
            (d, bytes.len())
        };
        let mut layers = Vec::new();
        let mut diffs = Vec::new();
        for t in &tars {
            let blob = match codec {
                "zstd" => zstd::bulk::compress(t, 3).unwrap(),
                _ => t.clone(),
            };
            let (d, n) = put(&blob);
            let mt = if codec == "zstd" {
                "application/vnd.oci.image.layer.v1.tar+zstd"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            layers.push(serde_json::json!({"mediaType": mt, "digest": d, "size": n}));
            diffs.push(crate::build::sha256_digest(t));
        }
        let config = serde_json::json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diffs}});
        let (cd, cn) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": crate::oci::MT_MANIFEST,
            "config": {"mediaType": crate::oci::MT_CONFIG, "digest": cd, "size": cn},
            "layers": layers});
        let (md, mn) = put(&serde_json::to_vec(&manifest).unwrap());
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": crate::oci::MT_MANIFEST, "digest": md, "size": mn}]});
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let (img, sink) = import(dir.path());
        assert_eq!(img.digest, md);
        let t = tree(&img.flist, &sink);
        assert_eq!(
            t["/srv/data"],
            Obj::File(0o644, b"new data".to_vec()),
            "{codec}"
        );
        assert_eq!(
            t["/bin/app"],
            Obj::File(0o755, vec![7u8; 50_000]),
            "{codec}"
        );
    }
}

#[test]
fn several_platforms_pick_the_host_or_list_them() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l");
    let host = crate::oci::host_arch();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let mine = ImageBuilder::new().layer(vec![file("which", "host")]);
    let theirs = ImageBuilder::new()
        .config(ImageConfig {
            architecture: other.into(),
            ..ImageConfig::default()
        })
        .layer(vec![file("which", "other")]);
    // Two layouts merged into one index.
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let ma = mine.write_oci_layout(&a, "mine").unwrap();
    let mb = theirs.write_oci_layout(&b, "theirs").unwrap();
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    for src in [&a, &b] {
        for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), layout.join("blobs/sha256").join(e.file_name())).unwrap();
        }
    }
    let ia: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("index.json")).unwrap()).unwrap();
    let ib: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("index.json")).unwrap()).unwrap();
    let merged = serde_json::json!({"schemaVersion": 2, "manifests":
        [ib["manifests"][0].clone(), ia["manifests"][0].clone()]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&merged).unwrap(),
    )
    .unwrap();
    std::fs::copy(a.join("oci-layout"), layout.join("oci-layout")).unwrap();
    let (img, sink) = import(&layout);
    assert_eq!(img.digest, ma);
    assert_eq!(img.tags, ["mine"]);
    assert_eq!(
        tree(&img.flist, &sink)["/which"],
        Obj::File(0o644, b"host".to_vec())
    );
    // Selecting by name works; with no host match, the error lists both.
    let mut sink = MemorySink::new();
    let img = crate::oci::import_image_ref(&layout, Some("theirs"), &mut sink).unwrap();
    assert_eq!(img.digest, mb);
    let mut m = merged.clone();
    m["manifests"][1]["platform"]["architecture"] = "s390x".into();
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let e = import_image(&layout, &mut MemorySink::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("linux/s390x") && e.contains(&format!("linux/{other}")),
        "{e}"
    );
}

#[test]
fn busybox_image_imports_with_its_bytes_and_config() {
    let host = Path::new("/bin/busybox");
    assert!(
        host.exists(),
        "/bin/busybox is missing: install busybox-static (scripts/setup-toolchain.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("bb");
    busybox_image(host)
        .write_oci_layout(&layout, "latest")
        .unwrap();
    let (img, sink) = import(&layout);
    let f = &img.flist;
    let sh = f.inode(f.resolve("/bin/sh").unwrap()).unwrap();
    assert_eq!(
        sh.kind,
        InodeKind::Symlink {
            target: serde_bytes::ByteBuf::from(b"busybox".to_vec())
        }
    );
    let bb = f.inode(f.resolve("/bin/busybox").unwrap()).unwrap();
    let InodeKind::File { chunks, size } = &bb.kind else {
        panic!("busybox is not a file")
    };
    let host_bytes = std::fs::read(host).unwrap();
    assert_eq!(*size, host_bytes.len() as u64);
    assert_eq!(sink.read(chunks).unwrap(), host_bytes);
    assert_eq!(bb.mode, 0o755);
    assert_eq!(f.inode(f.resolve("/tmp").unwrap()).unwrap().mode, 0o1777);
    let passwd = match &f.inode(f.resolve("/etc/passwd").unwrap()).unwrap().kind {
        InodeKind::File { chunks, .. } => sink.read(chunks).unwrap(),
        _ => panic!(),
    };
    assert!(String::from_utf8(passwd)
        .unwrap()
        .contains("nobody:x:65534:65534"));
    assert_eq!(f.config.cmd, ["sh"]);
    assert_eq!(f.config.os, "linux");
}

/// Runs skopeo (which must be installed) and asserts it succeeds.
fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is missing: install it (scripts/setup-toolchain.sh lists it)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_accepts_the_builders_images_and_its_copies_import() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let b = sample_image();
    let digest = b.write_oci_layout(Path::new(&d("layout")), "v1").unwrap();
    b.write_docker_save(Path::new(&d("save.tar")), "example/app:v1")
        .unwrap();
    let oci: serde_json::Value =
        serde_json::from_str(&skopeo(&["inspect", &format!("oci:{}:v1", d("layout"))])).unwrap();
    assert_eq!(oci["Digest"], digest.as_str());
    assert_eq!(oci["Layers"].as_array().unwrap().len(), 2);
    let dock: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", d("save.tar")),
    ]))
    .unwrap();
    assert_eq!(dock["Os"], "linux");
    assert_eq!(dock["Layers"].as_array().unwrap().len(), 2);

    let (want, _) = import(Path::new(&d("layout")));
    // skopeo's own OCI archive and docker archive of the same image.
    skopeo(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", d("layout")),
        &format!("oci-archive:{}:v1", d("copy.oci.tar")),
    ]);
    skopeo(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", d("layout")),
        &format!("docker-archive:{}:example/copy:v1", d("copy.docker.tar")),
    ]);
    let (a, _) = import(Path::new(&d("copy.oci.tar")));
    assert_eq!(a.flist, want.flist);
    assert_eq!(a.tags, ["v1"]);
    let (c, _) = import(Path::new(&d("copy.docker.tar")));
    assert_eq!(c.flist, want.flist);
    // skopeo writes the normalised name.
    assert_eq!(c.tags, ["docker.io/example/copy:v1"]);
}

#[test]
fn a_compressed_outer_archive_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.tar.gz");
    std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
    let e = import_image(&p, &mut MemorySink::new()).unwrap_err();
    assert!(e.to_string().contains("decompress"), "{e}");
}

// ------------------------------------------------------------ proptest

/// One op of a random layer over a small path alphabet.
#[derive(Clone, Debug)]
enum ROp {
    File(String, u8),
    Dir(String, u32),
    Whiteout(String),
    Opaque(String),
}

fn rpath() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
        .prop_map(|v| v.join("/"))
}

fn rop() -> impl Strategy<Value = ROp> {
    prop_oneof![
        3 => (rpath(), any::<u8>()).prop_map(|(p, b)| ROp::File(p, b)),
        2 => (rpath(), prop::sample::select(vec![0o755u32, 0o700])).prop_map(|(p, m)| ROp::Dir(p, m)),
        1 => rpath().prop_map(ROp::Whiteout),
        1 => rpath().prop_map(ROp::Opaque),
    ]
}

/// The obvious per-path semantics on a map: path → object.
fn model(layers: &[Vec<ROp>]) -> Option<BTreeMap<String, Obj>> {
    let mut m: BTreeMap<String, Obj> = BTreeMap::new();
    fn remove_tree(m: &mut BTreeMap<String, Obj>, p: &str) {
        m.retain(|k, _| k != p && !k.starts_with(&format!("{p}/")));
    }
    // Creates missing parents; `None` if a parent is not a directory.
    fn parents(m: &mut BTreeMap<String, Obj>, p: &str) -> Option<()> {
        let parts: Vec<&str> = p.split('/').collect();
        for i in 1..parts.len() {
            let q = parts[..i].join("/");
            match m.get(&q) {
                None => {
                    m.insert(q, Obj::Dir(0o755));
                }
                Some(Obj::Dir(_)) => {}
                Some(_) => return None,
            }
        }
        Some(())
    }
    for layer in layers {
        for op in layer {
            match op {
                ROp::Whiteout(p) => {
                    parents(&mut m, p)?;
                    remove_tree(&mut m, p);
                }
                ROp::Opaque(p) => {
                    parents(&mut m, &format!("{p}/x"))?;
                    m.retain(|k, _| !k.starts_with(&format!("{p}/")));
                }
                _ => {}
            }
        }
        for op in layer {
            match op {
                ROp::File(p, b) => {
                    parents(&mut m, p)?;
                    remove_tree(&mut m, p);
                    m.insert(p.clone(), Obj::File(0o644, vec![*b; 3]));
                }
                ROp::Dir(p, mode) => {
                    parents(&mut m, p)?;
                    if !matches!(m.get(p), Some(Obj::Dir(_))) {
                        remove_tree(&mut m, p);
                    }
                    m.insert(p.clone(), Obj::Dir(*mode));
                }
                _ => {}
            }
        }
    }
    Some(m.into_iter().map(|(k, v)| (format!("/{k}"), v)).collect())
}

fn entries(layer: &[ROp]) -> Vec<LayerEntry> {
    layer
        .iter()
        .map(|op| match op {
            ROp::File(p, b) => LayerEntry::file(p, 0o644, vec![*b; 3]),
            ROp::Dir(p, m) => LayerEntry::dir(p, *m),
            ROp::Whiteout(p) => LayerEntry::whiteout(p),
            ROp::Opaque(p) => LayerEntry::opaque(p),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_layers_match_the_model(layers in prop::collection::vec(prop::collection::vec(rop(), 0..6), 1..5)) {
        let got = apply(layers.iter().map(|l| entries(l)).collect());
        match (model(&layers), got) {
            (Some(want), Ok((f, sink))) => {
                f.validate().unwrap();
                prop_assert_eq!(tree(&f, &sink), want);
                // Only surviving files were read.
                let files = tree(&f, &sink).values().filter(|o| matches!(o, Obj::File(..))).count();
                prop_assert_eq!(sink.files, files as u64);
            }
            (None, Err(FlistError::Layer { reason, .. })) => {
                prop_assert!(reason.contains("not a directory"), "{}", reason);
            }
            (want, got) => prop_assert!(false, "model {:?} vs importer {:?}", want, got.map(|x| x.0)),
        }
    }
}
