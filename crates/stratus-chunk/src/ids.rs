//! 32-byte keys and identifiers: scope keys, chunk ids and piece ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ChunkError;

/// blake3 `derive_key` context for tenant scope keys.
const CTX_TENANT: &str = "stratus 2025-01 chunk scope key v1: tenant";
/// blake3 `derive_key` context for the public scope key.
const CTX_PUBLIC: &str = "stratus 2025-01 chunk scope key v1: public";
/// blake3 `derive_key` context for private scope keys.
const CTX_PRIVATE: &str = "stratus 2025-01 chunk scope key v1: private";

macro_rules! hex32 {
    ($name:ident) => {
        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The 32 raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 64];
                // Cannot fail: the buffer is exactly twice the input length.
                let _ = hex::encode_to_slice(self.0, &mut buf);
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl FromStr for $name {
            type Err = ChunkError;

            fn from_str(s: &str) -> Result<Self, ChunkError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|e| ChunkError::InvalidHex(format!("{e} (in {:?})", truncate(s))))?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The secret that scopes deduplication and encryption.
///
/// Chunk ids are keyed by it and chunk encryption keys are derived from it,
/// so equal content deduplicates exactly within one scope. Three kinds:
/// [`ScopeKey::tenant`] (per tenant, derived from a cluster master secret),
/// [`ScopeKey::public`] (a fixed, published key: cross-tenant dedupe) and
/// [`ScopeKey::private`] (caller-supplied randomness: no dedupe at all).
///
/// `Debug` is redacted; `Display` and serde give the lowercase hex (it is a
/// secret: only the control plane and gateways should ever hold it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeKey([u8; 32]);

impl ScopeKey {
    /// The scope key of tenant `tenant`: BLAKE3 `derive_key` (context
    /// `"stratus 2025-01 chunk scope key v1: tenant"`) over `master || tenant`.
    pub fn tenant(master: &[u8; 32], tenant: &str) -> ScopeKey {
        let mut h = blake3::Hasher::new_derive_key(CTX_TENANT);
        h.update(master);
        h.update(tenant.as_bytes());
        ScopeKey(*h.finalize().as_bytes())
    }

    /// The fixed public scope: ids depend on content only, so equal chunks
    /// deduplicate across every tenant that uses this scope.
    pub fn public() -> ScopeKey {
        ScopeKey(blake3::derive_key(CTX_PUBLIC, b""))
    }

    /// A private scope from caller-supplied randomness (use a fresh random
    /// value per object for no deduplication at all).
    pub fn private(random: [u8; 32]) -> ScopeKey {
        ScopeKey(blake3::derive_key(CTX_PRIVATE, &random))
    }
}

impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScopeKey(<redacted>)")
    }
}

hex32!(ScopeKey);

/// The id of a chunk: BLAKE3 keyed hash of its plaintext under a [`ScopeKey`]
/// (see [`crate::chunk_id`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(pub [u8; 32]);

hex32!(ChunkId);

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// The id of an erasure-coded piece: plain BLAKE3 of the piece bytes (see
/// [`crate::piece_id`]); storage nodes can check it without any key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PieceId(pub [u8; 32]);

hex32!(PieceId);

impl fmt::Debug for PieceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PieceId({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hex_round_trip_and_serde() {
        let id = ChunkId([0xab; 32]);
        let s = id.to_string();
        assert_eq!(s, "ab".repeat(32));
        assert_eq!(s.parse::<ChunkId>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<ChunkId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        assert!("abc".parse::<PieceId>().is_err());
        assert!("zz".repeat(32).parse::<PieceId>().is_err());
        assert!(serde_json::from_str::<ChunkId>("\"00\"").is_err());
    }

    #[test]
    fn scope_keys_are_distinct_and_deterministic() {
        let m = [7u8; 32];
        assert_eq!(ScopeKey::tenant(&m, "a"), ScopeKey::tenant(&m, "a"));
        assert_ne!(ScopeKey::tenant(&m, "a"), ScopeKey::tenant(&m, "b"));
        assert_ne!(ScopeKey::tenant(&m, "a"), ScopeKey::tenant(&[8u8; 32], "a"));
        assert_eq!(ScopeKey::public(), ScopeKey::public());
        assert_ne!(ScopeKey::private([1; 32]), ScopeKey::private([2; 32]));
        assert_ne!(ScopeKey::private([0; 32]), ScopeKey::public());
        assert_eq!(format!("{:?}", ScopeKey::public()), "ScopeKey(<redacted>)");
        let k = ScopeKey::public();
        assert_eq!(ScopeKey::from_bytes(*k.as_bytes()), k);
        assert_eq!(k.to_string().parse::<ScopeKey>().unwrap(), k);
    }
}
