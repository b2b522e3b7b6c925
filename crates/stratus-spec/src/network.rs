//! The `network:` and `expose:` blocks of a spec file (issue 17): where a
//! container may connect to, and the host name its HTTP service answers
//! to through the ingress.
//!
//! ```yaml
//! network: { egress: none }            # or `internet` (the default), or
//!                                      # [203.0.113.0/24, 198.51.100.7]
//! expose: { http: { host: app.example.com, port: 8080 } }
//! ```
//!
//! `egress` narrows what the lender's policy allows, never widens it: a
//! connection is made only when both allow it. Read beside the workload
//! spec, not into it (the deployed spec is a stored row whose layout does
//! not change); kept as its own row, [`Networking`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FieldError, WorkloadKind, WorkloadSpec};

/// Most CIDR ranges a tenant's egress list may name.
pub const MAX_EGRESS_RANGES: usize = 64;
/// Longest host name a workload may be exposed as.
pub const MAX_HOST_LEN: usize = 253;

/// Where a workload's containers may connect to, within the lender's
/// policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EgressSpec {
    /// Whatever the lender's policy allows.
    #[default]
    Internet,
    /// Nothing but the tenant's own services.
    None,
    /// Only these ranges (CIDR, normalized), and only where the lender's
    /// policy allows them too.
    Only(Vec<String>),
}

/// An HTTP service reachable through the ingress by its host name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpExpose {
    /// The host name requests carry (`Host` header), lowercase.
    pub host: String,
    /// The port the service listens on inside its container.
    #[serde(default = "default_http_port")]
    pub port: u16,
}

fn default_http_port() -> u16 {
    80
}

/// A workload's network: its egress and what it exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Networking {
    /// Where its containers may connect to.
    pub egress: EgressSpec,
    /// Its HTTP service, reachable through the ingress.
    pub expose: Option<HttpExpose>,
}

/// The `network:` block as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NetworkBlock {
    egress: Option<EgressWritten>,
}

/// `egress:` as written: a word or a list of ranges.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EgressWritten {
    Word(String),
    Ranges(Vec<String>),
}

/// The `expose:` block as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ExposeBlock {
    http: Option<HttpExpose>,
}

fn field(path: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        path: path.into(),
        message: message.into(),
    }
}

/// Checks a host name: 1-253 characters, dot-separated labels of 1-63
/// characters of a-z, 0-9 and '-', not starting or ending with '-'.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Reads a CIDR range or a bare address (a host route), truncated to its
/// network: what tenants' and lenders' egress lists hold.
pub fn parse_range(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .ok()
        .map(|n| n.trunc())
}

/// A range as stored: [`parse_range`]'s, written out.
fn range(s: &str) -> Option<String> {
    parse_range(s).map(|n| n.to_string())
}

impl Networking {
    /// What the two blocks as written ask for.
    pub(crate) fn from_blocks(
        network: Option<NetworkBlock>,
        expose: Option<ExposeBlock>,
    ) -> Result<Networking, FieldError> {
        let egress = match network.and_then(|n| n.egress) {
            None => EgressSpec::Internet,
            Some(EgressWritten::Word(w)) => match w.as_str() {
                "internet" => EgressSpec::Internet,
                "none" => EgressSpec::None,
                other => {
                    return Err(field(
                        "network.egress",
                        format!("{other:?}: expected `internet`, `none` or a list of CIDR ranges"),
                    ))
                }
            },
            Some(EgressWritten::Ranges(list)) => {
                if list.len() > MAX_EGRESS_RANGES {
                    return Err(field(
                        "network.egress",
                        format!("at most {MAX_EGRESS_RANGES} ranges"),
                    ));
                }
                let ranges = list
                    .iter()
                    .map(|s| {
                        range(s).ok_or_else(|| {
                            field(
                                "network.egress",
                                format!("{s:?} is not an address or CIDR range"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                EgressSpec::Only(ranges)
            }
        };
        Ok(Networking {
            egress,
            expose: expose.and_then(|e| e.http),
        })
    }

    /// Checks the network against its spec.
    pub fn validate(&self, spec: &WorkloadSpec) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.egress != EgressSpec::Internet
            && spec.image.is_none()
            && spec.kind == WorkloadKind::Task
        {
            errs.push(field(
                "network.egress",
                "a WASM task has no sockets; egress applies to containers and to WASM HTTP services",
            ));
        }
        if let EgressSpec::Only(list) = &self.egress {
            if list.len() > MAX_EGRESS_RANGES || list.iter().any(|r| range(r).as_ref() != Some(r)) {
                errs.push(field(
                    "network.egress",
                    format!("at most {MAX_EGRESS_RANGES} normalized CIDR ranges"),
                ));
            }
        }
        if let Some(http) = &self.expose {
            if !valid_host(&http.host) {
                errs.push(field(
                    "expose.http.host",
                    "must be a lowercase DNS name (labels of a-z, 0-9 and -, at most 253 characters)",
                ));
            }
            if http.port == 0 {
                errs.push(field("expose.http.port", "must be 1-65535"));
            }
            if spec.kind == WorkloadKind::Task {
                errs.push(field("expose", "a task ends; expose a service or a daemon"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// Whether this is what a spec without the blocks gets.
    pub fn is_default(&self) -> bool {
        *self == Networking::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{parse_file, Format};

    const SVC: &str = "version: 1\nname: web\nkind: service\nimage: { name: app }\n";

    fn net(extra: &str) -> Result<Networking, String> {
        parse_file(&format!("{SVC}{extra}"), Format::Yaml)
            .map(|f| f.network)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_blocks_are_read_beside_the_spec() {
        assert_eq!(net("").unwrap(), Networking::default());
        assert_eq!(
            net("network: { egress: none }\n").unwrap().egress,
            EgressSpec::None
        );
        assert_eq!(
            net("network: { egress: [10.1.2.3/8, 192.0.2.7] }\n")
                .unwrap()
                .egress,
            EgressSpec::Only(vec!["10.0.0.0/8".into(), "192.0.2.7/32".into()])
        );
        let n = net("expose: { http: { host: app.example.com, port: 8080 } }\n").unwrap();
        assert_eq!(
            n.expose,
            Some(HttpExpose {
                host: "app.example.com".into(),
                port: 8080
            })
        );
        assert_eq!(
            net("expose: { http: { host: a.b } }\n")
                .unwrap()
                .expose
                .unwrap()
                .port,
            80
        );
        let toml = "version = 1\nname = \"web\"\nkind = \"service\"\nimage = { name = \"app\" }\n\
                    [network]\negress = \"none\"\n[expose.http]\nhost = \"x.example\"\n";
        let f = parse_file(toml, Format::Toml).unwrap();
        assert_eq!(f.network.egress, EgressSpec::None);
        assert_eq!(f.network.expose.unwrap().host, "x.example");
    }

    #[test]
    fn bad_networks_are_refused_naming_the_field() {
        for (extra, path) in [
            ("network: { egress: everything }\n", "network.egress"),
            ("network: { egress: [10.0.0.0/33] }\n", "network.egress"),
            ("network: { egress: none, ingress: all }\n", "network"),
            (
                "expose: { http: { host: App.Example.com } }\n",
                "expose.http.host",
            ),
            (
                "expose: { http: { host: -a.example } }\n",
                "expose.http.host",
            ),
            (
                "expose: { http: { host: a.example, port: 0 } }\n",
                "expose.http.port",
            ),
            ("expose: { tcp: 22 }\n", "expose"),
        ] {
            let e = net(extra).unwrap_err();
            assert!(e.contains(path), "{extra}: {e}");
        }
        let long: Vec<String> = (0..=MAX_EGRESS_RANGES)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        let e = net(&format!("network: {{ egress: [{}] }}\n", long.join(", "))).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let task = "version: 1\nname: t\nkind: task\nimage: { name: app }\n\
                    expose: { http: { host: a.example } }\n";
        assert!(parse_file(task, Format::Yaml).is_err());
        let wasm = "version: 1\nname: t\nkind: task\nwasm: { module: m.wat }\n\
                    network: { egress: none }\n";
        let e = parse_file(wasm, Format::Yaml).unwrap_err().to_string();
        assert!(e.contains("sockets"), "{e}");
    }

    #[test]
    fn a_network_survives_the_stored_row_and_the_api() {
        let n = Networking {
            egress: EgressSpec::Only(vec!["10.0.0.0/8".into()]),
            expose: Some(HttpExpose {
                host: "a.example".into(),
                port: 81,
            }),
        };
        let row = bincode::serialize(&n).unwrap();
        assert_eq!(bincode::deserialize::<Networking>(&row).unwrap(), n);
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Networking>(&json).unwrap(), n);
    }
}
