//! The `market:` block of a spec file: the requester's order for the
//! workload's placements (issue 15).
//!
//! ```yaml
//! market: { max_price: 500000, prefer: greenest }
//! ```
//!
//! It may also name a paid app to run (`app: OWNER/NAME`, instead of the
//! spec's own module or image) and a paid dataset to use as the task's
//! `/input` (`dataset: OWNER/NAME`); both are published by other tenants
//! and paid per task inside the deal.
//!
//! It is read beside the workload spec, not into it: a deployed spec is
//! part of the replicated state's stored rows, whose layout does not
//! change, so the order travels and is kept on its own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{FieldError, WorkloadSpec};

/// Which fitting node the requester prefers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarketPrefer {
    /// The lowest worst-case cost.
    Cheapest,
    /// The shortest distance to `constraints.near`.
    Nearest,
    /// The cleanest declared energy source.
    Greenest,
}

/// A market order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MarketSpec {
    /// The most one instance may cost, in the pool's smallest unit (none:
    /// whatever the requester's balance covers).
    pub max_price: Option<u64>,
    /// Which fitting node to choose first.
    pub prefer: Option<MarketPrefer>,
    /// How many independent lenders must agree on the result (1: one).
    pub trust: Option<u32>,
    /// A published app to run, `OWNER/NAME` (its module or image is run
    /// instead of the spec's own, which is then only informational).
    pub app: Option<String>,
    /// A published dataset to use as the task's `/input`, `OWNER/NAME`.
    pub dataset: Option<String>,
}

/// Longest `OWNER/NAME` of an app or dataset.
pub const MAX_LISTING_ID_LEN: usize = 128;

/// Checks an `OWNER/NAME` listing reference (both parts named like
/// tenants: 1-63 characters of a-z, 0-9 and '-', starting with a letter).
pub fn valid_listing_id(id: &str) -> bool {
    id.len() <= MAX_LISTING_ID_LEN
        && id.split_once('/').is_some_and(|(owner, name)| {
            stratus_types::validate_tenant_name(owner).is_ok()
                && stratus_types::validate_tenant_name(name).is_ok()
        })
}

impl MarketSpec {
    /// Checks the order against its spec.
    pub fn validate(&self, spec: &WorkloadSpec) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if self.trust == Some(0) {
            errs.push(FieldError {
                path: "market.trust".into(),
                message: "must be at least 1".into(),
            });
        }
        for (path, id) in [("market.app", &self.app), ("market.dataset", &self.dataset)] {
            if id.as_deref().is_some_and(|id| !valid_listing_id(id)) {
                errs.push(FieldError {
                    path: path.into(),
                    message: "must be OWNER/NAME (each 1-63 characters of a-z, 0-9 and -, starting with a letter)".into(),
                });
            }
        }
        if self.dataset.is_some() {
            if spec.wasm.is_none() || spec.kind != crate::WorkloadKind::Task {
                errs.push(FieldError {
                    path: "market.dataset".into(),
                    message: "a dataset is the /input of a WASM task".into(),
                });
            }
            if spec.input.is_some() {
                errs.push(FieldError {
                    path: "input".into(),
                    message: "a task with market.dataset gets the dataset as /input; drop `input`"
                        .into(),
                });
            }
        }
        if self.prefer == Some(MarketPrefer::Nearest) && spec.constraints.near.is_none() {
            errs.push(FieldError {
                path: "market.prefer".into(),
                message: "nearest needs constraints.near (the point to be near)".into(),
            });
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_file, Format, SpecError};

    /// The spec and order of a file.
    fn parse_with_market(
        text: &str,
        format: Format,
    ) -> Result<(WorkloadSpec, Option<MarketSpec>), SpecError> {
        parse_file(text, format).map(|f| (f.spec, f.market))
    }

    const BASE: &str = "version: 1\nname: job\nkind: task\nwasm: { module: m.wat }\n";

    #[test]
    fn a_market_block_is_read_beside_the_spec() {
        let text = format!("{BASE}market: {{ max_price: 500, prefer: greenest }}\n");
        let (spec, order) = parse_with_market(&text, Format::Yaml).expect("parses");
        assert_eq!(spec.name, "job");
        assert_eq!(
            order,
            Some(MarketSpec {
                max_price: Some(500),
                prefer: Some(MarketPrefer::Greenest),
                trust: None,
                app: None,
                dataset: None,
            })
        );
        let (_, none) = parse_with_market(BASE, Format::Yaml).expect("parses");
        assert_eq!(none, None);
        let toml = "version = 1\nname = \"job\"\nkind = \"task\"\n[wasm]\nmodule = \"m.wat\"\n[market]\nmax_price = 7\n";
        let (_, order) = parse_with_market(toml, Format::Toml).expect("parses");
        assert_eq!(order.and_then(|o| o.max_price), Some(7));
    }

    #[test]
    fn bad_market_blocks_name_the_field() {
        let bad = |m: &str| {
            parse_with_market(&format!("{BASE}market: {m}\n"), Format::Yaml)
                .expect_err("refused")
                .to_string()
        };
        assert!(bad("{ max_price: -1 }").contains("market"));
        assert!(bad("{ prefer: fastest }").contains("market"));
        assert!(bad("{ budget: 3 }").contains("market"));
        assert!(bad("{ trust: 0 }").contains("market.trust"));
        assert!(bad("{ prefer: nearest }").contains("constraints.near"));
        assert!(bad("{ app: alice }").contains("market.app"));
        assert!(bad("{ dataset: ../etc }").contains("market.dataset"));
        let (_, o) = parse_with_market(
            &format!("{BASE}market: {{ app: alice/render, dataset: carol/weather-1 }}\n"),
            Format::Yaml,
        )
        .expect("parses");
        assert_eq!(
            o.and_then(|o| o.dataset).as_deref(),
            Some("carol/weather-1")
        );
        let e = parse_with_market(
            &format!("{BASE}input: {{ bucket: b }}\nmarket: {{ dataset: carol/w }}\n"),
            Format::Yaml,
        )
        .expect_err("two inputs");
        assert!(e.to_string().contains("input"), "{e}");
        // The rest of the spec is still checked as strictly.
        let e = parse_with_market(&format!("{BASE}colour: red\nmarket: {{}}\n"), Format::Yaml)
            .expect_err("unknown field");
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
