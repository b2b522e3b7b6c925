//! A whole spec file: the workload spec and the blocks read beside it
//! (`market:`, `network:`, `expose:`), each kept as its own row once
//! deployed because the spec's stored layout does not change.

use serde::de::DeserializeOwned;

use crate::market::MarketSpec;
use crate::network::{ExposeBlock, NetworkBlock, Networking};
use crate::{parse, FieldError, Format, SpecError, WorkloadSpec};

/// What a spec file declares.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecFile {
    /// The workload.
    pub spec: WorkloadSpec,
    /// Its market order, if it has one.
    pub market: Option<MarketSpec>,
    /// Its network (the default when the file names none).
    pub network: Networking,
}

fn parse_error(path: &str, message: impl Into<String>) -> SpecError {
    SpecError::Parse(FieldError {
        path: path.into(),
        message: message.into(),
    })
}

/// The top-level blocks read beside the spec.
const BESIDE: [&str; 3] = ["market", "network", "expose"];

/// A block taken out of the file, still to be decoded.
enum Block {
    Yaml(serde_norway::Value),
    Toml(toml::Value),
}

impl Block {
    fn decode<T: DeserializeOwned>(self, path: &str) -> Result<T, SpecError> {
        match self {
            Block::Yaml(v) => {
                serde_norway::from_value(v).map_err(|e| parse_error(path, e.to_string()))
            }
            Block::Toml(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| parse_error(path, e.message())),
        }
    }
}

/// Takes the [`BESIDE`] blocks out of `text`: the rest, and each block.
fn split(text: &str, format: Format) -> Result<(String, [Option<Block>; 3]), SpecError> {
    match format {
        Format::Yaml => {
            let mut doc: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| parse_error("(file)", e.to_string()))?;
            let blocks = BESIDE.map(|name| {
                doc.as_mapping_mut()
                    .and_then(|m| m.remove(name))
                    .map(Block::Yaml)
            });
            if blocks.iter().all(Option::is_none) {
                return Ok((text.to_string(), blocks));
            }
            let rest =
                serde_norway::to_string(&doc).map_err(|e| parse_error("(file)", e.to_string()))?;
            Ok((rest, blocks))
        }
        Format::Toml => {
            let mut doc: toml::Table =
                toml::from_str(text).map_err(|e| parse_error("(file)", e.message()))?;
            let blocks = BESIDE.map(|name| doc.remove(name).map(Block::Toml));
            if blocks.iter().all(Option::is_none) {
                return Ok((text.to_string(), blocks));
            }
            let rest = toml::to_string(&doc).map_err(|e| parse_error("(file)", e.to_string()))?;
            Ok((rest, blocks))
        }
    }
}

/// Parses and validates a spec file with whatever blocks it has beside the
/// spec.
pub fn parse_file(text: &str, format: Format) -> Result<SpecFile, SpecError> {
    let (rest, [market, network, expose]) = split(text, format)?;
    let spec = parse(&rest, format)?;
    let market: Option<MarketSpec> = market.map(|b| b.decode("market")).transpose()?;
    if let Some(m) = &market {
        m.validate(&spec).map_err(SpecError::Invalid)?;
    }
    let network: Option<NetworkBlock> = network.map(|b| b.decode("network")).transpose()?;
    let expose: Option<ExposeBlock> = expose.map(|b| b.decode("expose")).transpose()?;
    let network = Networking::from_blocks(network, expose).map_err(SpecError::Parse)?;
    network.validate(&spec).map_err(SpecError::Invalid)?;
    Ok(SpecFile {
        spec,
        market,
        network,
    })
}
