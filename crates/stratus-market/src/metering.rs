//! Usage reports: what an agent metered for one instance, signed with its
//! node key so that the pool (and, later, anyone auditing it) can check
//! who said it.
//!
//! A report is **cumulative** (the instance's whole use so far) and
//! numbered: a replica takes only a report whose `seq` is above the last
//! one taken for the deal, so a replayed report changes nothing, and one
//! signed by another key than the node's is refused. The signed bytes are a
//! fixed, versioned encoding ([`UsageReport::signed_bytes`]), not a
//! serializer's output, so they cannot change under us.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::settle::Usage;

/// Longest instance id a report may name, in bytes.
pub const MAX_INSTANCE_ID: usize = 256;
const DOMAIN: &[u8] = b"stratus usage report v1\0";

/// One signed usage report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The instance.
    pub instance: String,
    /// The reporting node (its ed25519 public key).
    pub node: [u8; 32],
    /// Report number for this instance (1, 2, ...).
    pub seq: u64,
    /// Use so far.
    pub usage: Usage,
    /// The instance has ended: this is its last report.
    pub last: bool,
    /// When it was metered (agent clock, ms since the Unix epoch).
    pub time_ms: u64,
    /// Ed25519 signature of [`UsageReport::signed_bytes`] by `node`.
    #[serde(with = "sig_bytes")]
    pub signature: [u8; 64],
}

/// Why a report is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// Not signed by the key it names.
    #[error("the usage report for {0} is not signed by its node")]
    BadSignature(String),
    /// Too long an instance id.
    #[error("the instance id is {0} bytes; at most {MAX_INSTANCE_ID}")]
    TooLong(usize),
}

impl UsageReport {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(DOMAIN.len() + 8 + self.instance.len() + 32 + 8 * 7 + 1);
        b.extend_from_slice(DOMAIN);
        b.extend_from_slice(&(self.instance.len() as u64).to_be_bytes());
        b.extend_from_slice(self.instance.as_bytes());
        b.extend_from_slice(&self.node);
        for v in [
            self.seq,
            self.usage.cpu_ms,
            self.usage.memory_peak_bytes,
            self.usage.wall_ms,
            self.usage.bytes_served,
            self.time_ms,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.push(u8::from(self.last));
        b
    }

    /// Checks the size bounds and that `node` signed it.
    pub fn verify(&self) -> Result<(), ReportError> {
        if self.instance.len() > MAX_INSTANCE_ID {
            return Err(ReportError::TooLong(self.instance.len()));
        }
        let bad = || ReportError::BadSignature(self.instance.clone());
        let key = VerifyingKey::from_bytes(&self.node).map_err(|_| bad())?;
        key.verify(
            &self.signed_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| bad())
    }
}

/// Serde for `[u8; 64]` (serde derives arrays only up to 32).
pub(crate) mod sig_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Deserialize::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn signed(key: &SigningKey, seq: u64) -> UsageReport {
        let mut r = UsageReport {
            instance: "bob/job-1-0".into(),
            node: key.verifying_key().to_bytes(),
            seq,
            usage: Usage {
                cpu_ms: 42,
                ..Usage::default()
            },
            last: true,
            time_ms: 1_000,
            signature: [0; 64],
        };
        r.signature = key.sign(&r.signed_bytes()).to_bytes();
        r
    }

    #[test]
    fn a_report_signed_by_its_node_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let r = signed(&key, 1);
        assert_eq!(r.verify(), Ok(()));
        let mut more = r.clone();
        more.usage.cpu_ms += 1;
        assert!(matches!(more.verify(), Err(ReportError::BadSignature(_))));
        // Signed by another key but naming this node: forged.
        let mut forged = signed(&SigningKey::from_bytes(&[8; 32]), 1);
        forged.node = r.node;
        assert!(matches!(forged.verify(), Err(ReportError::BadSignature(_))));
        let mut long = r;
        long.instance = "x".repeat(MAX_INSTANCE_ID + 1);
        assert!(matches!(long.verify(), Err(ReportError::TooLong(_))));
    }
}
