//! Customer-provided keys (S3 SSE-C): the scope key of an object sealed
//! under a key only its client holds, and the check that tells a wrong key
//! from the right one without opening any chunk.
//!
//! The client's 256-bit key never leaves this derivation: the scope key is
//! BLAKE3 `derive_key` over `key || salt` (a fresh random salt per object or
//! multipart upload), and what is stored beside the object is the salt and a
//! [`CustomerSeal::check`], another `derive_key` (a different context) over
//! `key || salt`. Neither gives the key or the scope key back; without the
//! key nobody (control plane, gateway operator, storage node) can compute
//! the scope key, so nobody can open the object's chunks.

use std::fmt;

use crate::ScopeKey;

/// blake3 `derive_key` context of the scope key of a customer key.
const CTX_SCOPE: &str = "stratus 2026-12 chunk scope key v1: customer key (sse-c)";
/// blake3 `derive_key` context of the check of a customer key.
const CTX_CHECK: &str = "stratus 2026-12 customer key check v1 (sse-c)";

/// A customer-provided 256-bit key (SSE-C), as sent with a request.
///
/// `Debug` is redacted and there is no `Display` or serde: it is never
/// stored, logged or sent anywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey([u8; 32]);

impl CustomerKey {
    /// The key of these 32 bytes.
    pub fn new(bytes: [u8; 32]) -> CustomerKey {
        CustomerKey(bytes)
    }

    /// The scope key of chunks sealed under this key and `salt`.
    pub fn scope(&self, salt: &[u8; 32]) -> ScopeKey {
        let mut h = blake3::Hasher::new_derive_key(CTX_SCOPE);
        h.update(&self.0);
        h.update(salt);
        ScopeKey::from_bytes(*h.finalize().as_bytes())
    }

    /// The seal (salt and check) of this key under `salt`.
    pub fn seal(&self, salt: [u8; 32]) -> CustomerSeal {
        let mut h = blake3::Hasher::new_derive_key(CTX_CHECK);
        h.update(&self.0);
        h.update(&salt);
        CustomerSeal {
            salt,
            check: *h.finalize().as_bytes(),
        }
    }
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerKey(<redacted>)")
    }
}

impl Drop for CustomerKey {
    fn drop(&mut self) {
        // Best effort (no unsafe here): the bytes do not outlive the value
        // in this place.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// What is stored beside an object sealed under a [`CustomerKey`]: the salt
/// of its scope key and a check of the key. Public (it reveals neither the
/// key nor the scope key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerSeal {
    /// The salt of the scope key (random per object or upload).
    pub salt: [u8; 32],
    /// BLAKE3 `derive_key` (its own context) over `key || salt`.
    pub check: [u8; 32],
}

impl CustomerSeal {
    /// Whether `key` is the key this seal was made with (constant time).
    pub fn opens_with(&self, key: &CustomerKey) -> bool {
        let other = key.seal(self.salt);
        other
            .check
            .iter()
            .zip(self.check.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// The scope key of the object, if `key` is its key.
    pub fn scope(&self, key: &CustomerKey) -> Option<ScopeKey> {
        self.opens_with(key).then(|| key.scope(&self.salt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chunk_id, open_chunk, seal_chunk, DEFAULT_ZSTD_LEVEL};

    #[test]
    fn the_seal_opens_with_its_key_only() {
        let (a, b) = (CustomerKey::new([1; 32]), CustomerKey::new([2; 32]));
        let seal = a.seal([9; 32]);
        assert!(seal.opens_with(&a));
        assert!(!seal.opens_with(&b));
        assert_eq!(seal.scope(&a), Some(a.scope(&[9; 32])));
        assert_eq!(seal.scope(&b), None);
        // Another salt: another check and another scope key.
        let other = a.seal([8; 32]);
        assert_ne!(other.check, seal.check);
        assert_ne!(a.scope(&[8; 32]), a.scope(&[9; 32]));
    }

    #[test]
    fn nothing_stored_holds_the_key() {
        let key = [0x5a; 32];
        let k = CustomerKey::new(key);
        let seal = k.seal([3; 32]);
        assert_ne!(seal.check, key);
        assert_ne!(seal.salt, key);
        assert_ne!(*k.scope(&seal.salt).as_bytes(), key);
        assert_ne!(*k.scope(&seal.salt).as_bytes(), seal.check);
        assert_eq!(format!("{k:?}"), "CustomerKey(<redacted>)");
        // The customer scope is none of the others.
        assert_ne!(k.scope(&[0; 32]), ScopeKey::private([0; 32]));
        assert_ne!(k.scope(&[0; 32]), ScopeKey::public());
    }

    #[test]
    fn chunks_sealed_under_a_customer_key_open_with_it_only() {
        let salt = [7; 32];
        let right = CustomerKey::new([1; 32]).scope(&salt);
        let wrong = CustomerKey::new([2; 32]).scope(&salt);
        let plain = b"secret diary ".repeat(100);
        let id = chunk_id(&right, &plain);
        let sealed = seal_chunk(&right, &id, &plain, DEFAULT_ZSTD_LEVEL);
        assert_eq!(open_chunk(&right, &id, &sealed).expect("opens"), plain);
        assert!(open_chunk(&wrong, &id, &sealed).is_err());
    }
}
