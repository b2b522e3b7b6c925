//! Key wrapping: secrets sealed under a key-encryption key (KEK).
//!
//! The replicated state must not hold the cluster storage secret, S3 secret
//! keys or private-scope seeds in plaintext: the Raft log and snapshots are
//! files on every replica's disk (and in its backups). Each of them is stored
//! as a [`Sealed`] value instead: AES-256-GCM under the cluster's [`Kek`],
//! with a random 96-bit nonce and an associated-data label that says what the
//! value is (so a sealed S3 secret cannot be replayed as the storage secret).
//! The KEK itself lives outside the replicated state (a 0600 file beside the
//! Raft store, see `stratus-control`'s `kek` module).
//!
//! A [`Sealed`] value names the KEK that sealed it by [`KekId`] (the first 8
//! bytes of a keyed BLAKE3 of the key): a replica holding another KEK gets a
//! clear error, never garbage, and rotation can tell old from new values.
//! Random nonces are safe here: a cluster seals one value per S3 key, per
//! private object and one storage secret, far below the 2^32 messages a
//! 96-bit random nonce allows under one key.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Context of the KEK fingerprint.
const KEK_ID_CONTEXT: &str = "stratus 2026 key-encryption key id";
/// AES-GCM tag length.
const TAG_LEN: usize = 16;

/// The fingerprint of a [`Kek`] (safe to store and show).
pub type KekId = [u8; 8];

/// A 256-bit key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct Kek([u8; 32]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", hex::encode(self.id()))
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// Sealed under another key-encryption key than the one held.
    #[error("the value was sealed with key-encryption key {sealed}, this replica holds {held}")]
    WrongKek {
        /// Hex id of the key that sealed it.
        sealed: String,
        /// Hex id of the key held.
        held: String,
    },
    /// Authentication failed (tampered, truncated, or another label).
    #[error("a sealed {label} failed to open (tampered, truncated or sealed as something else)")]
    Open {
        /// What was being opened.
        label: String,
    },
    /// The random source failed.
    #[error("the system random source failed")]
    Random,
}

/// A secret sealed under a [`Kek`]: what the replicated state holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which KEK sealed it.
    pub kek: KekId,
    /// The random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// Length of the plaintext it opens to.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealed(kek {}, {} bytes)",
            hex::encode(self.kek),
            self.plaintext_len()
        )
    }
}

impl Kek {
    /// A new random key.
    pub fn generate() -> Result<Kek, WrapError> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| WrapError::Random)?;
        Ok(Kek(k))
    }

    /// The key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Kek {
        Kek(bytes)
    }

    /// The key's bytes (to write its file or hand it to another replica).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Its fingerprint.
    pub fn id(&self) -> KekId {
        let h = blake3::derive_key(KEK_ID_CONTEXT, &self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&h[..8]);
        id
    }

    fn key(&self) -> LessSafeKey {
        // 32 bytes is always a valid AES-256 key.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte key"))
    }

    /// Seals `plaintext`; `label` says what it is and must be given to open it.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Sealed, WrapError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| WrapError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut buf,
            )
            .map_err(|_| WrapError::Random)?;
        Ok(Sealed {
            kek: self.id(),
            nonce,
            ciphertext: buf,
        })
    }

    /// Opens a value sealed with [`Kek::seal`] under the same `label`.
    pub fn open(&self, label: &str, sealed: &Sealed) -> Result<Vec<u8>, WrapError> {
        if sealed.kek != self.id() {
            return Err(WrapError::WrongKek {
                sealed: hex::encode(sealed.kek),
                held: hex::encode(self.id()),
            });
        }
        let mut buf = sealed.ciphertext.clone();
        let plain = self
            .key()
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(label.as_bytes()),
                &mut buf,
            )
            .map_err(|_| WrapError::Open {
                label: label.to_string(),
            })?;
        Ok(plain.to_vec())
    }

    /// Opens a sealed 32-byte key.
    pub fn open_key(&self, label: &str, sealed: &Sealed) -> Result<[u8; 32], WrapError> {
        let v = self.open(label, sealed)?;
        v.try_into().map_err(|_| WrapError::Open {
            label: label.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_label() {
        let k = Kek::generate().expect("kek");
        let s = k.seal("s3 secret", b"hunter2hunter2hunter2").expect("seal");
        assert!(!s.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(s.plaintext_len(), 21);
        assert_eq!(
            k.open("s3 secret", &s).expect("open"),
            b"hunter2hunter2hunter2"
        );
        assert!(matches!(
            k.open("storage secret", &s),
            Err(WrapError::Open { .. })
        ));
        let other = Kek::generate().expect("kek");
        assert!(matches!(
            other.open("s3 secret", &s),
            Err(WrapError::WrongKek { .. })
        ));
        let mut bad = s.clone();
        bad.ciphertext[0] ^= 1;
        assert!(k.open("s3 secret", &bad).is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(
            k.seal("x", b"same").expect("seal"),
            k.seal("x", b"same").expect("seal")
        );
        assert!(!format!("{s:?}").contains("hunter"));
    }

    #[test]
    fn keys_round_trip_through_bytes() {
        let k = Kek::generate().expect("kek");
        let s = k.seal("key", &[9; 32]).expect("seal");
        let back = Kek::from_bytes(k.to_bytes());
        assert_eq!(back.id(), k.id());
        assert_eq!(back.open_key("key", &s).expect("open"), [9; 32]);
        assert!(back
            .open_key("key", &k.seal("key", &[1; 3]).expect("seal"))
            .is_err());
    }
}
