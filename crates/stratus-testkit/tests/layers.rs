//! The layer rule, checked: every crate's normal and build dependencies on
//! other workspace crates go to a strictly lower layer.
//!
//! The layers are read from ARCHITECTURE.md's crate table (the one place
//! they are written down) and the dependency edges from `cargo metadata`, so
//! adding an upward or sideways dependency, or a crate with no row in the
//! table, fails `./scripts/test`. Dev-dependencies are exempt (tests may use
//! anything); the `dev` layer (the testkit) may be used only by them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// A crate's place: a layer number, or the `dev` layer above everything
/// that only dev-dependencies may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    L(u32),
    Dev,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::L(n) => write!(f, "L{n}"),
            Layer::Dev => f.write_str("dev"),
        }
    }
}

/// Reads `| L3 | \`stratus-proto\` | ... |` rows, in order.
fn table(architecture: &str) -> Vec<(String, Layer)> {
    let mut rows = Vec::new();
    for line in architecture.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(layer), Some(name)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        let layer = match layer.strip_prefix('L').map(str::parse) {
            Some(Ok(n)) => Layer::L(n),
            _ if *layer == "dev" => Layer::Dev,
            _ => continue,
        };
        rows.push((name.to_string(), layer));
    }
    rows
}

/// Every edge `from → to` between workspace crates that is not a
/// dev-dependency.
fn edges(metadata: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let from = package["name"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let to = dep["name"].as_str().unwrap_or_default();
            let dev = dep["kind"].as_str() == Some("dev");
            if !dev && dep["path"].is_string() {
                out.push((from.to_string(), to.to_string()));
            }
        }
    }
    out
}

/// Every way `edges` break the layer rule, one sentence each.
fn violations(
    layers: &[(String, Layer)],
    crates: &[String],
    edges: &[(String, String)],
) -> Vec<String> {
    let of: BTreeMap<&str, Layer> = layers.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    let mut out = Vec::new();
    for c in crates {
        if !of.contains_key(c.as_str()) {
            out.push(format!("{c} has no row in ARCHITECTURE.md's crate table"));
        }
    }
    for (from, to) in edges {
        let (Some(&lf), Some(&lt)) = (of.get(from.as_str()), of.get(to.as_str())) else {
            continue;
        };
        if lt == Layer::Dev || lt >= lf {
            out.push(format!(
                "{from} ({lf}) depends on {to} ({lt}): a crate may depend only on lower layers"
            ));
        }
    }
    if !layers.windows(2).all(|w| w[0].1 <= w[1].1) {
        out.push("ARCHITECTURE.md's crate table is not sorted by layer".into());
    }
    out
}

#[test]
fn every_workspace_dependency_goes_down_a_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let architecture =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let layers = table(&architecture);
    assert!(
        layers.len() >= 20,
        "the crate table was not found: {layers:?}"
    );
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let crates: Vec<String> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let edges = edges(&metadata);
    assert!(
        edges
            .iter()
            .any(|(f, t)| f == "stratus-cli" && t == "stratus-node"),
        "the dependency edges were not read: {edges:?}"
    );
    let broken = violations(&layers, &crates, &edges);
    assert!(
        broken.is_empty(),
        "the layer rule is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn an_upward_sideways_or_testkit_edge_and_a_missing_row_are_each_caught() {
    let layers = table(
        "| layer | crate | owns |\n|---|---|---|\n\
         | L0 | `a` | x |\n| L0 | `b` | x |\n| L1 | `c` | x |\n| dev | `kit` | x |\n",
    );
    let crates: Vec<String> = ["a", "b", "c", "kit"].map(String::from).to_vec();
    let edge = |f: &str, t: &str| vec![(f.to_string(), t.to_string())];
    assert!(violations(&layers, &crates, &edge("c", "a")).is_empty());
    assert!(violations(&layers, &crates, &edge("kit", "c")).is_empty());
    for bad in [edge("a", "c"), edge("a", "b"), edge("c", "kit")] {
        assert_eq!(violations(&layers, &crates, &bad).len(), 1, "{bad:?}");
    }
    let more: Vec<String> = ["a", "b", "c", "kit", "new"].map(String::from).to_vec();
    assert_eq!(violations(&layers, &more, &[]).len(), 1);
    let unsorted = table("| L1 | `c` | x |\n| L0 | `a` | x |\n");
    assert_eq!(violations(&unsorted, &[], &[]).len(), 1);
}
