//! API tokens and the cluster join secret.
//!
//! A token reads `stt_<id>_<secret>`: `id` (12 hex) names the record in the
//! replicated state, `secret` (64 hex, 256 random bits) is shown once and
//! only its SHA-256 is stored. Files holding secrets are written with mode
//! 0600, atomically (write to a temporary file, fsync, rename).

use std::path::Path;

use rand::RngCore;
use sha2::{Digest, Sha256};
use stratus_types::{TokenRecord, TokenScope, ADMIN_TENANT};

/// Prefix of every Stratus API token.
pub const TOKEN_PREFIX: &str = "stt_";

/// A freshly minted token: the string to hand out and the record to store.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// The full token string (secret included). Show once.
    pub token: String,
    /// What goes into the replicated state.
    pub record: TokenRecord,
}

/// Hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `bytes` random bytes from the OS generator, hex encoded.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Mints a token for `tenant` with `scope`, working until `expires_ms`
/// (ms since the Unix epoch; `None`: forever).
pub fn mint_token(
    tenant: &str,
    now_ms: u64,
    scope: TokenScope,
    expires_ms: Option<u64>,
) -> NewToken {
    let id = random_hex(6);
    let secret = random_hex(32);
    NewToken {
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        record: TokenRecord {
            id,
            tenant: tenant.to_string(),
            secret_sha256: sha256_hex(&secret),
            created_ms: now_ms,
            scope,
            expires_ms,
        },
    }
}

/// Mints the operator's token: admin tenant, admin scope, no expiry.
pub fn mint_admin_token(now_ms: u64) -> NewToken {
    mint_token(ADMIN_TENANT, now_ms, TokenScope::Admin, None)
}

/// The record of the operator's token `token` (read back from the admin
/// token file); `None` if it is malformed.
pub fn admin_record(token: &str, now_ms: u64) -> Option<TokenRecord> {
    let (id, secret) = parse_token(token)?;
    Some(TokenRecord {
        id: id.to_string(),
        tenant: ADMIN_TENANT.to_string(),
        secret_sha256: sha256_hex(secret),
        created_ms: now_ms,
        scope: TokenScope::Admin,
        expires_ms: None,
    })
}

/// Splits a presented token into `(id, secret)`; `None` if malformed.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.trim().strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    (id.len() == 12 && secret.len() == 64 && hexish(id) && hexish(secret)).then_some((id, secret))
}

/// Whether `secret` matches `record`, compared in constant time.
pub fn token_matches(record: &TokenRecord, secret: &str) -> bool {
    constant_time_eq(
        sha256_hex(secret).as_bytes(),
        record.secret_sha256.as_bytes(),
    )
}

/// Constant-time equality of two byte strings of equal length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes `contents` to `path` with mode 0600, atomically.
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    stratus_net::write_secret_file(path, format!("{contents}\n").as_bytes())
}

/// Reads a secret file written by [`write_secret_file`], trimmed; `None` if absent.
pub fn read_secret_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_match() {
        let t = mint_token("acme", 1, TokenScope::Full, None);
        let (id, secret) = parse_token(&t.token).expect("parses");
        assert_eq!(id, t.record.id);
        assert!(token_matches(&t.record, secret));
        assert!(!token_matches(&t.record, &"0".repeat(64)));
    }

    #[test]
    fn the_admin_token_reads_back_as_the_operator() {
        let t = mint_admin_token(5);
        let r = admin_record(&t.token, 5).expect("parses");
        assert_eq!(r, t.record);
        assert_eq!((r.scope, r.expires_ms), (TokenScope::Admin, None));
        assert!(admin_record("stt_nonsense", 5).is_none());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "stt_",
            "stt_abc_def",
            "Bearer x",
            "stt_zzzzzzzzzzzz_00",
            &format!("stt_{}_{}", "a".repeat(12), "g".repeat(64)),
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn secret_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("admin.token");
        write_secret_file(&p, "s3cret").expect("write");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            read_secret_file(&p).expect("read").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            read_secret_file(&dir.path().join("nope")).expect("read"),
            None
        );
    }
}
