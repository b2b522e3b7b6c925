//! A WASM workload's `/input` and `/output` folders (`input:`, `output:`).
//!
//! Neither names a host path: the spec is a tenant's input and the node is a
//! stranger's machine. `/input` is filled by the agent from objects of the
//! workload's own tenant (`input: { bucket: B, prefix: P }`); `/output` is a
//! folder the agent creates for the instance under its own data directory
//! (`output: true`), optionally uploaded to a bucket of the tenant when a
//! run ends (`output: { bucket: B, prefix: P }`).
//!
//! The old form `input: /some/host/folder` is refused while parsing, with an
//! error that says what to write instead.
//!
//! Human-readable formats (YAML, TOML, JSON) accept the short forms above;
//! binary formats (the Raft log's bincode) use a plain tagged encoding.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// Longest prefix of an `input`/`output` folder, in bytes (object keys are
/// at most 1024 bytes; what follows the prefix needs room).
pub const MAX_FOLDER_PREFIX_LEN: usize = 512;

/// Objects of the workload's tenant: the keys in `bucket` that start with
/// `prefix`. A file `/input/a/b` is the object `<prefix>a/b` (when the
/// prefix does not end with `/`, the `/` after it is dropped, so
/// `prefix: data` and `prefix: data/` name the same files).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ObjectFolder {
    /// A bucket of the workload's tenant.
    pub bucket: String,
    /// Key prefix (empty: the whole bucket); at most
    /// [`MAX_FOLDER_PREFIX_LEN`] bytes, no NUL, not starting with '/'.
    #[serde(default)]
    pub prefix: String,
}

/// The derived shape of [`ObjectFolder`] (the map form, and bincode).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderFields {
    bucket: String,
    #[serde(default)]
    prefix: String,
}

impl From<FolderFields> for ObjectFolder {
    fn from(f: FolderFields) -> Self {
        ObjectFolder {
            bucket: f.bucket,
            prefix: f.prefix,
        }
    }
}

/// What to write instead of a host path in `input:`.
const INPUT_HINT: &str = "`input` no longer names a folder of the node (a workload must not read the lender's files); \
     write `input: { bucket: BUCKET, prefix: PREFIX }` to get the objects of your bucket under PREFIX as /input";

impl<'de> Deserialize<'de> for ObjectFolder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return FolderFields::deserialize(d).map(Into::into);
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObjectFolder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{ bucket: BUCKET, prefix: PREFIX }")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ObjectFolder, E> {
                Err(E::custom(INPUT_HINT))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ObjectFolder, A::Error> {
                FolderFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Into::into)
            }
        }
        d.deserialize_any(V)
    }
}

/// The instance's `/output` folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, ToSchema)]
pub enum OutputSpec {
    /// No `/output` (`output: false`, or absent).
    #[default]
    None,
    /// A per-instance folder kept on the node (`output: true`).
    Keep,
    /// A per-instance folder, and each regular file in it is stored as the
    /// object `<prefix><relative path>` of `bucket` when a run ends
    /// (`output: { bucket: B, prefix: P }`).
    Upload(ObjectFolder),
}

impl OutputSpec {
    /// Whether the instance gets an `/output` folder.
    pub fn enabled(&self) -> bool {
        *self != OutputSpec::None
    }

    /// Where the folder is uploaded, if anywhere.
    pub fn upload(&self) -> Option<&ObjectFolder> {
        match self {
            OutputSpec::Upload(f) => Some(f),
            _ => None,
        }
    }
}

/// The binary encoding of [`OutputSpec`].
#[derive(Serialize, Deserialize)]
enum OutputWire {
    None,
    Keep,
    Upload(ObjectFolder),
}

impl Serialize for OutputSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            match self {
                OutputSpec::None => s.serialize_bool(false),
                OutputSpec::Keep => s.serialize_bool(true),
                OutputSpec::Upload(f) => f.serialize(s),
            }
        } else {
            match self {
                OutputSpec::None => OutputWire::None,
                OutputSpec::Keep => OutputWire::Keep,
                OutputSpec::Upload(f) => OutputWire::Upload(f.clone()),
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for OutputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Ok(match OutputWire::deserialize(d)? {
                OutputWire::None => OutputSpec::None,
                OutputWire::Keep => OutputSpec::Keep,
                OutputWire::Upload(f) => OutputSpec::Upload(f),
            });
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OutputSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or { bucket: BUCKET, prefix: PREFIX }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OutputSpec, E> {
                Ok(if v {
                    OutputSpec::Keep
                } else {
                    OutputSpec::None
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<OutputSpec, E> {
                Ok(OutputSpec::None)
            }
            fn visit_none<E: de::Error>(self) -> Result<OutputSpec, E> {
                Ok(OutputSpec::None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<OutputSpec, E> {
                Err(E::custom(
                    "`output` does not name a folder of the node; write `output: true` for a folder kept on the node, \
                     or `output: { bucket: BUCKET, prefix: PREFIX }` to also store its files in your bucket",
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OutputSpec, A::Error> {
                FolderFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|f| OutputSpec::Upload(f.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks a folder's prefix; `Err` says what is wrong.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.len() > MAX_FOLDER_PREFIX_LEN || prefix.starts_with('/') || prefix.contains('\0') {
        return Err(format!(
            "must be at most {MAX_FOLDER_PREFIX_LEN} bytes without NUL and not start with '/', got {} bytes",
            prefix.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Format, SpecError, WorkloadSpec};

    const BASE: &str = "version: 1\nname: job\nkind: task\nwasm: { module: job.wasm }\n";

    /// The paths of the fields a spec is refused for, and the messages.
    fn refused(extra: &str) -> Vec<(String, String)> {
        match parse(&format!("{BASE}{extra}"), Format::Yaml) {
            Err(SpecError::Parse(e)) => vec![(e.path, e.message)],
            Err(SpecError::Invalid(errs)) => {
                errs.into_iter().map(|e| (e.path, e.message)).collect()
            }
            Ok(s) => panic!("{extra:?} was accepted: {s:?}"),
        }
    }

    #[test]
    fn folders_parse_in_their_short_forms_and_round_trip() {
        let s = parse(
            &format!("{BASE}input: {{ bucket: in-data, prefix: jobs/1/ }}\noutput: {{ bucket: results, prefix: out/ }}\n"),
            Format::Yaml,
        )
        .expect("parses");
        assert_eq!(
            s.input,
            Some(ObjectFolder {
                bucket: "in-data".into(),
                prefix: "jobs/1/".into()
            })
        );
        assert_eq!(
            s.output.upload().map(|f| f.bucket.as_str()),
            Some("results")
        );
        // Specs travel bincode-encoded in the Raft log and as JSON in the
        // API and the agent's saved assignments.
        let back: WorkloadSpec =
            bincode::deserialize(&bincode::serialize(&s).expect("bincode")).expect("bincode back");
        assert_eq!(back, s);
        let back: WorkloadSpec =
            serde_json::from_value(serde_json::to_value(&s).expect("json")).expect("json back");
        assert_eq!(back, s);

        for (text, want) in [
            ("output: true\n", OutputSpec::Keep),
            ("output: false\n", OutputSpec::None),
            ("", OutputSpec::None),
        ] {
            let s = parse(&format!("{BASE}{text}"), Format::Yaml).expect("parses");
            assert_eq!(s.output, want, "{text}");
            let back: WorkloadSpec =
                bincode::deserialize(&bincode::serialize(&s).expect("bincode")).expect("back");
            assert_eq!(back.output, want);
            let json = serde_json::to_value(&s).expect("json");
            assert_eq!(json["output"], serde_json::json!(want == OutputSpec::Keep));
        }
        let t = "version = 1\nname = \"job\"\nkind = \"task\"\nwasm = { module = \"a.wasm\" }\ninput = { bucket = \"in-data\" }\noutput = true\n";
        let s = parse(t, Format::Toml).expect("toml");
        assert_eq!(s.input.map(|f| f.prefix), Some(String::new()));
        assert_eq!(s.output, OutputSpec::Keep);
    }

    /// The attack of issue 13: `input: /` preopened the node's root folder.
    /// Every field is tried with host paths; each is refused and the error
    /// names the field.
    #[test]
    fn no_field_takes_a_host_path() {
        for (extra, field) in [
            ("input: /\n", "input"),
            ("input: /etc\n", "input"),
            ("input: ../../etc\n", "input"),
            ("input: { path: / }\n", "input.path"),
            ("input: { bucket: b1b, path: /etc }\n", "input.path"),
            ("input: { bucket: /etc }\n", "input.bucket"),
            ("input: { bucket: ../x }\n", "input.bucket"),
            ("input: { bucket: data, prefix: /etc/ }\n", "input.prefix"),
            (
                "input: { bucket: data, prefix: \"a\\0b\" }\n",
                "input.prefix",
            ),
            ("output: /tmp\n", "output"),
            ("output: { bucket: /var }\n", "output.bucket"),
            (
                "output: { bucket: data, prefix: /root/ }\n",
                "output.prefix",
            ),
            ("args: [\"a\\0b\"]\n", "args[0]"),
            ("env: { X: \"a\\0b\" }\n", "env.X"),
        ] {
            let errs = refused(extra);
            assert!(
                errs.iter().any(|(p, _)| p == field),
                "{extra:?}: expected an error on {field}, got {errs:?}"
            );
        }
        // The old form says what to write instead.
        let errs = refused("input: /\n");
        assert!(
            errs[0]
                .1
                .contains("input: { bucket: BUCKET, prefix: PREFIX }"),
            "{errs:?}"
        );
        let errs = refused("output: /tmp\n");
        assert!(errs[0].1.contains("output: true"), "{errs:?}");
        let long = "p".repeat(MAX_FOLDER_PREFIX_LEN + 1);
        let errs = refused(&format!("input: {{ bucket: data, prefix: {long} }}\n"));
        assert_eq!(errs[0].0, "input.prefix");
        assert_eq!(
            refused("resources: { disk_mb: 2000000 }\n")[0].0,
            "resources.disk_mb"
        );

        // Containers: input/output are WASM folders; volume names, paths,
        // the working directory and the user stay inside the container.
        let image = "version: 1\nname: web\nkind: service\n";
        for (extra, field) in [
            ("image: { name: a }\ninput: { bucket: data }\n", "input"),
            ("image: { name: a }\noutput: true\n", "output"),
            ("image: { name: a, volumes: [{ name: ../../etc, path: /x }] }\n", "image.volumes[0].name"),
            ("image: { name: a, volumes: [{ name: etc, path: /x/../../etc }] }\n", "image.volumes[0].path"),
            ("image: { name: a, volumes: [{ name: etc, path: etc }] }\n", "image.volumes[0].path"),
            ("image: { name: a, volumes: [{ name: etc, path: / }] }\n", "image.volumes[0].path"),
            ("image: { name: a, workdir: ../../etc }\n", "image.workdir"),
            ("image: { name: a, user: ../../etc/passwd }\n", "image.user"),
            ("image: { name: a, user: \"\" }\n", "image.user"),
            ("image: { name: a, volumes: [{ name: d, path: /d, bucket: bkt, key: /etc/shadow }] }\n", "image.volumes[0].key"),
        ] {
            let errs = match parse(&format!("{image}{extra}"), Format::Yaml) {
                Err(SpecError::Parse(e)) => vec![e.path],
                Err(SpecError::Invalid(errs)) => errs.into_iter().map(|e| e.path).collect(),
                Ok(s) => panic!("{extra:?} was accepted: {s:?}"),
            };
            assert!(errs.iter().any(|p| p == field), "{extra:?}: {errs:?}");
        }
        parse(
            &format!("{image}image: {{ name: a, workdir: /srv/app, user: \"1000:1000\" }}\n"),
            Format::Yaml,
        )
        .expect("a workdir and a uid:gid are fine");
    }
}
