//! What a spec says beyond the stored layouts: published UDP ports of a
//! container and published ports of a WASM HTTP component (issue 17).
//!
//! ```yaml
//! image:
//!   name: dns
//!   ports: [{ container: 53, host: 5353, protocol: udp }]
//! ---
//! wasm: { module: hello-http.wasm, ports: [{ host: 8080 }] }
//! ```
//!
//! The deployed spec, its network and the commands that carry them are
//! bincode rows: their layout cannot grow without a migration. What is
//! added to the spec from now on goes into [`Extensions`] instead, which
//! is stored and sent self-describing ([`SelfDescribing`]: JSON inside the
//! row) with every field defaulted, so a later field needs no migration
//! and a reader that does not know it ignores it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::{FieldError, PortSpec, WorkloadKind, WorkloadSpec};

/// Most published ports of each kind one workload may ask for.
pub const MAX_EXTRA_PORTS: usize = 32;

/// What a spec says that its stored layout has no field for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Extensions {
    /// UDP ports of the container published on the node (`ports:` entries
    /// with `protocol: udp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub udp_ports: Vec<PortSpec>,
    /// Ports of the node that reach the workload's WASM HTTP component
    /// (`wasm.ports`; 0: any free port of the lender's range).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http_ports: Vec<u16>,
}

impl Extensions {
    /// Whether this is what a spec without any of it gets.
    pub fn is_default(&self) -> bool {
        *self == Extensions::default()
    }

    /// Checks the extensions against their spec.
    pub fn validate(&self, spec: &WorkloadSpec) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut err = |path: &str, message: String| {
            errs.push(FieldError {
                path: path.into(),
                message,
            })
        };
        if self.udp_ports.len() > MAX_EXTRA_PORTS || self.http_ports.len() > MAX_EXTRA_PORTS {
            err(
                "ports",
                format!("at most {MAX_EXTRA_PORTS} published ports of each kind"),
            );
        }
        if !self.udp_ports.is_empty() && spec.image.is_none() {
            err(
                "ports",
                "UDP ports are published from a container; a WASM component has no sockets".into(),
            );
        }
        crate::validate::check_ports(&self.udp_ports, "udp ", &mut err);
        if !self.http_ports.is_empty() {
            if spec.image.is_some() {
                err(
                    "wasm.ports",
                    "a container publishes its ports in `image.ports`".into(),
                );
            }
            if spec.kind == WorkloadKind::Task {
                err(
                    "wasm.ports",
                    "a task ends; publish the ports of a service or a daemon (an HTTP component)"
                        .into(),
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in self.http_ports.iter().filter(|p| **p != 0) {
                if !seen.insert(*p) {
                    err("wasm.ports", format!("port {p} is published twice"));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// A `ports:` entry as a spec file writes it: a [`PortSpec`] with its
/// protocol.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortWritten {
    #[serde(default)]
    pub container: u16,
    #[serde(default)]
    pub host: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

/// A published port's protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl PortWritten {
    pub(crate) fn spec(&self) -> PortSpec {
        PortSpec {
            container: self.container,
            host: self.host,
        }
    }
}

/// `T` kept as JSON inside a binary row: fields can be added to `T` (with
/// defaults) without changing the row's layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfDescribing<T>(pub T);

impl<T: Serialize> Serialize for SelfDescribing<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(&self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&json)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for SelfDescribing<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes<T>(PhantomData<T>);
        impl<T: DeserializeOwned> serde::de::Visitor<'_> for Bytes<T> {
            type Value = SelfDescribing<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                serde_json::from_slice(v)
                    .map(SelfDescribing)
                    .map_err(E::custom)
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                self.visit_bytes(&v)
            }
        }
        d.deserialize_byte_buf(Bytes(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A row written by a later version, with a field this one does not
    /// know, still reads; what this one writes reads back the same.
    #[test]
    fn rows_read_across_versions() {
        let ext = Extensions {
            udp_ports: vec![PortSpec {
                container: 53,
                host: 5353,
            }],
            http_ports: vec![8080],
        };
        let row = bincode::serialize(&SelfDescribing(ext.clone())).unwrap();
        let back: SelfDescribing<Extensions> = bincode::deserialize(&row).unwrap();
        assert_eq!(back.0, ext);

        let later = br#"{"udp_ports":[{"container":7,"host":0}],"quic_ports":[443]}"#;
        let row = bincode::serialize(&serde_bytes_of(later)).unwrap();
        let read: SelfDescribing<Extensions> = bincode::deserialize(&row).unwrap();
        assert_eq!(read.0.udp_ports.len(), 1);
        assert!(read.0.http_ports.is_empty());

        // Garbage is an error, not a default.
        let row = bincode::serialize(&serde_bytes_of(b"\x00not json")).unwrap();
        assert!(bincode::deserialize::<SelfDescribing<Extensions>>(&row).is_err());
    }

    fn file(text: &str, format: crate::Format) -> Result<crate::SpecFile, String> {
        crate::parse_file(text, format).map_err(|e| e.to_string())
    }

    /// `ports:` entries are split by protocol: TCP stays in the spec's
    /// stored layout, UDP goes into the extensions; in YAML and TOML alike.
    #[test]
    fn ports_are_split_by_protocol() {
        let yaml = "version: 1\nname: dns\nkind: service\nimage:\n  name: dns\n  ports:\n    - { container: 53, host: 5353, protocol: udp }\n    - { container: 80, protocol: tcp }\n    - { container: 81 }\n";
        let toml = "version = 1\nname = \"dns\"\nkind = \"service\"\n[image]\nname = \"dns\"\nports = [{ container = 53, host = 5353, protocol = \"udp\" }, { container = 80, protocol = \"tcp\" }, { container = 81 }]\n";
        for (text, format) in [(yaml, crate::Format::Yaml), (toml, crate::Format::Toml)] {
            let f = file(text, format).unwrap();
            let image = f.spec.image.unwrap();
            let tcp: Vec<u16> = image.ports.iter().map(|p| p.container).collect();
            assert_eq!(tcp, [80, 81], "{format:?}");
            assert_eq!(
                f.extensions.udp_ports,
                [PortSpec {
                    container: 53,
                    host: 5353
                }],
                "{format:?}"
            );
        }
        // A file without UDP ports has no extensions.
        let plain = file(
            "version: 1\nname: w\nkind: service\nimage: { name: a, ports: [{ container: 80 }] }\n",
            crate::Format::Yaml,
        )
        .unwrap();
        assert!(plain.extensions.is_default());
    }

    /// What a spec file may not say: an unknown protocol or key, UDP from
    /// WASM, a component port with a container side, ports of a task's
    /// component, the same UDP host port twice, too many ports.
    #[test]
    fn bad_ports_are_refused_with_their_field() {
        let svc = "version: 1\nname: w\nkind: service\n";
        let cases = [
            ("image: { name: a, ports: [{ container: 53, protocol: sctp }] }", "image.ports"),
            ("image: { name: a, ports: [{ container: 53, hots: 1 }] }", "image.ports"),
            ("image: { name: a, ports: [{ protocol: udp }] }", "image.ports[udp 0].container"),
            (
                "image: { name: a, ports: [{ container: 1, host: 9, protocol: udp }, { container: 2, host: 9, protocol: udp }] }",
                "image.ports[udp 1].host",
            ),
            ("wasm: { module: a.wasm, ports: [{ container: 80, host: 8080 }] }", "wasm.ports"),
            ("wasm: { module: a.wasm, ports: [{ host: 53, protocol: udp }] }", "wasm.ports"),
            ("wasm: { module: a.wasm, ports: [{ host: 8, }, { host: 8 }] }", "wasm.ports"),
        ];
        for (body, field) in cases {
            let err = file(&format!("{svc}{body}\n"), crate::Format::Yaml).unwrap_err();
            assert!(err.contains(field), "{body}: {err}");
        }
        let task =
            "version: 1\nname: w\nkind: task\nwasm: { module: a.wasm, ports: [{ host: 8080 }] }\n";
        assert!(file(task, crate::Format::Yaml)
            .unwrap_err()
            .contains("a task ends"));
        let many: Vec<String> = (1..=33)
            .map(|p| format!("{{ container: {p}, protocol: udp }}"))
            .collect();
        let err = file(
            &format!("{svc}image: {{ name: a, ports: [{}] }}\n", many.join(", ")),
            crate::Format::Yaml,
        )
        .unwrap_err();
        assert!(err.contains("at most 32"), "{err}");
    }

    /// Bytes serialized as serde bytes (what `SelfDescribing` writes).
    fn serde_bytes_of(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }
}
