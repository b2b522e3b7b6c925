//! The key scope of a version sealed under a client's key (S3 SSE-C):
//! [`KeyScope::Customer`] to and from [`stratus_chunk::CustomerSeal`].

use super::KeyScope;

impl KeyScope {
    /// The customer seal of a version sealed under a client's key (SSE-C).
    pub fn customer_seal(&self) -> Option<stratus_chunk::CustomerSeal> {
        match self {
            KeyScope::Customer { salt, check } => Some(stratus_chunk::CustomerSeal {
                salt: *salt,
                check: *check,
            }),
            _ => None,
        }
    }

    /// The key scope of a customer seal.
    pub fn customer(seal: stratus_chunk::CustomerSeal) -> KeyScope {
        KeyScope::Customer {
            salt: seal.salt,
            check: seal.check,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variant is appended: the others keep their bincode form, and
    /// the new one round-trips.
    #[test]
    fn customer_scope_is_appended_and_round_trips() {
        let enc = |k: &KeyScope| bincode::serialize(k).expect("encodes");
        assert_eq!(enc(&KeyScope::Tenant("t".into()))[..4], 0u32.to_le_bytes());
        assert_eq!(enc(&KeyScope::Public)[..4], 1u32.to_le_bytes());
        let seal = stratus_chunk::CustomerKey::new([9; 32]).seal([1; 32]);
        let c = KeyScope::customer(seal);
        assert_eq!(enc(&c)[..4], 3u32.to_le_bytes());
        let back: KeyScope = bincode::deserialize(&enc(&c)).expect("decodes");
        assert_eq!(back.customer_seal(), Some(seal));
        assert_eq!(KeyScope::Public.customer_seal(), None);
    }
}
