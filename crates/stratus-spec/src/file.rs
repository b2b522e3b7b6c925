//! A whole spec file: the workload spec and the blocks read beside it
//! (`market:`, `network:`, `expose:`, and the [`Extensions`] taken out of
//! `image.ports` and `wasm.ports`), each kept as its own row once deployed
//! because the spec's stored layout does not change.

use serde::de::DeserializeOwned;

use crate::ext::{Extensions, PortWritten, Protocol};
use crate::market::MarketSpec;
use crate::network::{ExposeBlock, NetworkBlock, Networking};
use crate::{decode, FieldError, Format, SpecError, WorkloadSpec};

/// What a spec file declares.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecFile {
    /// The workload.
    pub spec: WorkloadSpec,
    /// Its market order, if it has one.
    pub market: Option<MarketSpec>,
    /// Its network (the default when the file names none).
    pub network: Networking,
    /// What it says beyond the spec's stored layout.
    pub extensions: Extensions,
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

/// The blocks taken out of a file: [`BESIDE`]'s, then `image.ports` and
/// `wasm.ports`.
type Taken = ([Option<Block>; 3], [Option<Block>; 2]);

/// Takes the [`BESIDE`] blocks and the port lists out of `text`: the rest,
/// and each block.
fn split(text: &str, format: Format) -> Result<(String, Taken), SpecError> {
    match format {
        Format::Yaml => {
            let mut doc: serde_norway::Value =
                serde_norway::from_str(text).map_err(|e| parse_error("(file)", e.to_string()))?;
            let blocks = BESIDE.map(|name| {
                doc.as_mapping_mut()
                    .and_then(|m| m.remove(name))
                    .map(Block::Yaml)
            });
            let ports = ["image", "wasm"].map(|name| {
                doc.get_mut(name)
                    .and_then(|b| b.as_mapping_mut())
                    .and_then(|m| m.remove("ports"))
                    .map(Block::Yaml)
            });
            if blocks.iter().chain(&ports).all(Option::is_none) {
                return Ok((text.to_string(), (blocks, ports)));
            }
            let rest =
                serde_norway::to_string(&doc).map_err(|e| parse_error("(file)", e.to_string()))?;
            Ok((rest, (blocks, ports)))
        }
        Format::Toml => {
            let mut doc: toml::Table =
                toml::from_str(text).map_err(|e| parse_error("(file)", e.message()))?;
            let blocks = BESIDE.map(|name| doc.remove(name).map(Block::Toml));
            let ports = ["image", "wasm"].map(|name| {
                doc.get_mut(name)
                    .and_then(|b| b.as_table_mut())
                    .and_then(|t| t.remove("ports"))
                    .map(Block::Toml)
            });
            if blocks.iter().chain(&ports).all(Option::is_none) {
                return Ok((text.to_string(), (blocks, ports)));
            }
            let rest = toml::to_string(&doc).map_err(|e| parse_error("(file)", e.to_string()))?;
            Ok((rest, (blocks, ports)))
        }
    }
}

/// Reads the port lists taken out of the file: `image.ports` split by
/// protocol (TCP into the spec, UDP into the extensions), `wasm.ports`
/// (host ports only) into the extensions.
fn read_ports(
    spec: &mut WorkloadSpec,
    [image, wasm]: [Option<Block>; 2],
) -> Result<Extensions, SpecError> {
    let mut ext = Extensions::default();
    if let Some(block) = image {
        let written: Vec<PortWritten> = block.decode("image.ports")?;
        let Some(image) = spec.image.as_mut() else {
            return Err(parse_error("image.ports", "ports of an image without one"));
        };
        for p in &written {
            match p.protocol {
                Protocol::Tcp => image.ports.push(p.spec()),
                Protocol::Udp => ext.udp_ports.push(p.spec()),
            }
        }
    }
    if let Some(block) = wasm {
        let written: Vec<PortWritten> = block.decode("wasm.ports")?;
        for p in &written {
            if p.container != 0 || p.protocol != Protocol::Tcp {
                return Err(parse_error(
                    "wasm.ports",
                    "an HTTP component has one door: give each port as `{ host: N }` (TCP)",
                ));
            }
            ext.http_ports.push(p.host);
        }
    }
    Ok(ext)
}

/// Parses and validates a spec file with whatever blocks it has beside the
/// spec.
pub fn parse_file(text: &str, format: Format) -> Result<SpecFile, SpecError> {
    let (rest, ([market, network, expose], ports)) = split(text, format)?;
    let mut spec = decode(&rest, format)?;
    let extensions = read_ports(&mut spec, ports)?;
    spec.validate().map_err(SpecError::Invalid)?;
    extensions.validate(&spec).map_err(SpecError::Invalid)?;
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
        extensions,
    })
}
