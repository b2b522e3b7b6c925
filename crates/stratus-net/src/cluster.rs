//! The cluster's identity, and join credentials that pin it.
//!
//! A cluster has one ed25519 **cluster key** (its seed lives in the
//! replicated state, sealed under the cluster KEK, so only control replicas
//! can use it). A replica proves it belongs to the cluster by signing its
//! own node id with the cluster key ([`ClusterKey::vouch`]): replicas added
//! later prove themselves the same way, with no list to keep in step.
//!
//! A **join credential** is the one string an operator hands out:
//!
//! ```text
//! stj_<id: 12 hex>_<secret: 64 hex>_<pin: 64 hex>
//! ```
//!
//! `pin` is the SHA-256 of the cluster's public key (like kubeadm's
//! `--discovery-token-ca-cert-hash`). An agent dials a replica over QUIC
//! (mutual TLS: the replica's node key is known once the handshake ends),
//! asks for its proof and checks it with [`verify_vouch`] *before* it sends
//! the secret: a man in the middle at the control address, with any other
//! key, learns nothing. Replicas store only the SHA-256 of the secret.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use stratus_types::NodeId;

/// Prefix of every join credential.
pub const CREDENTIAL_PREFIX: &str = "stj_";

/// What a replica signs to vouch for itself (followed by its node id).
const VOUCH_DOMAIN: &[u8] = b"stratus cluster vouches for replica v1\0";

/// The cluster key (replicas only).
pub struct ClusterKey(SigningKey);

impl ClusterKey {
    /// The key of `seed` (from the replicated state).
    pub fn from_seed(seed: &[u8; 32]) -> ClusterKey {
        ClusterKey(SigningKey::from_bytes(seed))
    }

    /// The public half, as sent to agents.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The pin of this cluster: what join credentials carry.
    pub fn pin(&self) -> [u8; 32] {
        pin_of(&self.public())
    }

    /// The signature by which the cluster vouches for `replica`.
    pub fn vouch(&self, replica: NodeId) -> Vec<u8> {
        self.0.sign(&vouch_message(replica)).to_bytes().to_vec()
    }
}

/// SHA-256 of a cluster public key.
pub fn pin_of(public: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(public).into()
}

fn vouch_message(replica: NodeId) -> Vec<u8> {
    let mut m = VOUCH_DOMAIN.to_vec();
    m.extend_from_slice(&replica.0);
    m
}

/// Why a replica's proof was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VouchError {
    /// The replica's cluster key is not the one the credential pins.
    #[error("replica {replica} belongs to another cluster: its cluster key does not match the pin in the join credential (a man in the middle, or a credential of another cluster)")]
    OtherCluster {
        /// The replica's node id.
        replica: NodeId,
    },
    /// The signature does not tie the replica's key to the cluster key.
    #[error("replica {replica} is not vouched for by the cluster key the join credential pins: refusing it (a man in the middle?)")]
    BadSignature {
        /// The replica's node id.
        replica: NodeId,
    },
}

/// Checks that `replica` (the key the QUIC handshake authenticated) is
/// vouched for by `cluster_key` with `signature`, and that `cluster_key` is
/// the one `pin` names.
pub fn verify_vouch(
    pin: &[u8; 32],
    cluster_key: &[u8; 32],
    replica: NodeId,
    signature: &[u8],
) -> Result<(), VouchError> {
    if pin_of(cluster_key) != *pin {
        return Err(VouchError::OtherCluster { replica });
    }
    let bad = || VouchError::BadSignature { replica };
    let key = VerifyingKey::from_bytes(cluster_key).map_err(|_| bad())?;
    let sig = Signature::from_slice(signature).map_err(|_| bad())?;
    key.verify(&vouch_message(replica), &sig).map_err(|_| bad())
}

/// A parsed join credential.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCredential {
    /// Public id (12 hex characters): names the record on the replicas.
    pub id: String,
    /// The secret (64 hex characters).
    pub secret: String,
    /// SHA-256 of the cluster public key.
    pub pin: [u8; 32],
}

impl std::fmt::Debug for JoinCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinCredential")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a join credential string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the join token is not a join credential: expected stj_<12 hex>_<64 hex>_<64 hex> (print one with `stratus nodes join-token create`, or read the join.token file of the bootstrap replica)")]
pub struct BadCredential;

impl JoinCredential {
    /// Parses `stj_<id>_<secret>_<pin>` (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<JoinCredential, BadCredential> {
        let rest = s
            .trim()
            .strip_prefix(CREDENTIAL_PREFIX)
            .ok_or(BadCredential)?;
        let mut parts = rest.split('_');
        let (Some(id), Some(secret), Some(pin), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadCredential);
        };
        let hexish = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
        if !(hexish(id, 12) && hexish(secret, 64) && hexish(pin, 64)) {
            return Err(BadCredential);
        }
        let mut p = [0u8; 32];
        hex::decode_to_slice(pin, &mut p).map_err(|_| BadCredential)?;
        Ok(JoinCredential {
            id: id.to_ascii_lowercase(),
            secret: secret.to_ascii_lowercase(),
            pin: p,
        })
    }

    /// The string to hand out.
    pub fn encode(&self) -> String {
        format!(
            "{CREDENTIAL_PREFIX}{}_{}_{}",
            self.id,
            self.secret,
            hex::encode(self.pin)
        )
    }

    /// Hex SHA-256 of the secret: all the replicas keep of it.
    pub fn secret_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    #[test]
    fn a_vouch_ties_the_replica_to_the_pinned_key() {
        let k = ClusterKey::from_seed(&[7; 32]);
        let sig = k.vouch(node(1));
        assert_eq!(verify_vouch(&k.pin(), &k.public(), node(1), &sig), Ok(()));
        // Relayed to the agent by another key: refused.
        assert_eq!(
            verify_vouch(&k.pin(), &k.public(), node(2), &sig),
            Err(VouchError::BadSignature { replica: node(2) })
        );
        // Another cluster's key, even with a valid signature of its own.
        let other = ClusterKey::from_seed(&[8; 32]);
        assert_eq!(
            verify_vouch(&k.pin(), &other.public(), node(1), &other.vouch(node(1))),
            Err(VouchError::OtherCluster { replica: node(1) })
        );
        assert!(verify_vouch(&k.pin(), &k.public(), node(1), &[0; 3]).is_err());
    }

    #[test]
    fn credentials_round_trip_and_malformed_ones_are_refused() {
        let c = JoinCredential {
            id: "a".repeat(12),
            secret: "b".repeat(64),
            pin: [3; 32],
        };
        assert_eq!(
            JoinCredential::parse(&format!(" {}\n", c.encode())),
            Ok(c.clone())
        );
        assert!(
            !format!("{c:?}").contains("bbbb"),
            "the secret is not logged"
        );
        for bad in [
            String::new(),
            "stj_".into(),
            format!("stj_{}", "a".repeat(64)),
            format!("stj_{}_{}", "a".repeat(12), "b".repeat(64)),
            format!(
                "stj_{}_{}_{}_x",
                "a".repeat(12),
                "b".repeat(64),
                "c".repeat(64)
            ),
            format!(
                "stj_{}_{}_{}",
                "g".repeat(12),
                "b".repeat(64),
                "c".repeat(64)
            ),
        ] {
            assert_eq!(JoinCredential::parse(&bad), Err(BadCredential), "{bad}");
        }
    }
}
