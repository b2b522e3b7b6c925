//! API token records in the replicated state: who may hold which scope.
//!
//! Records come in two layouts: [`TokenRecord`] (with scope and expiry,
//! stored by `Command::IssueToken`) and the first one,
//! [`stratus_types::TokenRecordV1`], still found in old logs as
//! `Command::CreateToken` and read as a full, non-expiring token.

use stratus_types::{TokenRecord, TokenScope, ADMIN_TENANT};

use crate::{ApplyError, State};

impl State {
    /// Stores a token record: its tenant exists, only the admin tenant
    /// has the admin scope, ids are unique.
    pub(crate) fn insert_token(&mut self, record: TokenRecord) -> Result<Option<u64>, ApplyError> {
        if !self.tenants.contains_key(&record.tenant) {
            return Err(ApplyError::not_found(format!(
                "tenant {:?} does not exist; create it first",
                record.tenant
            )));
        }
        if record.scope == TokenScope::Admin && record.tenant != ADMIN_TENANT {
            return Err(ApplyError::forbidden(format!(
                    "only tokens of the {ADMIN_TENANT:?} tenant may have the admin scope, not one of {:?}",
                    record.tenant
                ),
            ));
        }
        if self.tokens.contains_key(&record.id) {
            return Err(ApplyError::conflict(format!(
                "token id {:?} already exists",
                record.id
            )));
        }
        self.tokens.insert(record.id.clone(), record);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Command, State};
    use stratus_types::{ErrorCode, TokenRecord, TokenScope};

    /// A `CreateToken` log entry written before tokens had scopes and expiry,
    /// as the bytes that version wrote (bincode: variant index as a u32,
    /// strings as a u64 length and UTF-8, the time as a u64; all little
    /// endian), still decodes and gives a full, non-expiring token — the
    /// operator's for the admin tenant.
    #[test]
    fn old_token_records_decode_as_full_and_non_expiring() {
        fn old_create_token(id: &str, tenant: &str, sha: &str, created_ms: u64) -> Vec<u8> {
            let mut b = 4u32.to_le_bytes().to_vec(); // Command::CreateToken
            for s in [id, tenant, sha] {
                b.extend_from_slice(&(s.len() as u64).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
            b.extend_from_slice(&created_ms.to_le_bytes());
            b
        }
        let sha = "ab".repeat(32);
        let mut s = State::default();
        for name in ["admin", "acme"] {
            s.apply(
                1,
                &Command::CreateTenant {
                    name: name.into(),
                    now_ms: 1,
                },
            );
        }
        for (id, tenant) in [("000000000001", "admin"), ("000000000002", "acme")] {
            let bytes = old_create_token(id, tenant, &sha, 7);
            let cmd: Command = bincode::deserialize(&bytes).expect("old entry decodes");
            assert!(s.apply(2, &cmd).error.is_none());
        }
        let admin = s.token("000000000001").expect("admin token");
        assert_eq!(
            (admin.scope, admin.expires_ms, admin.created_ms),
            (TokenScope::Admin, None, 7)
        );
        let acme = s.token("000000000002").expect("acme token");
        assert_eq!((acme.scope, acme.expires_ms), (TokenScope::Full, None));
        assert_eq!(acme.secret_sha256, sha);
        assert!(!acme.expired(u64::MAX));
    }

    /// Only the admin tenant's tokens carry the admin scope, whoever proposes.
    #[test]
    fn admin_scope_only_for_the_admin_tenant() {
        let mut s = State::default();
        s.apply(
            1,
            &Command::CreateTenant {
                name: "acme".into(),
                now_ms: 1,
            },
        );
        let r = s.apply(
            2,
            &Command::IssueToken {
                record: TokenRecord {
                    id: "000000000003".into(),
                    tenant: "acme".into(),
                    secret_sha256: "00".repeat(32),
                    created_ms: 1,
                    scope: TokenScope::Admin,
                    expires_ms: None,
                },
            },
        );
        assert_eq!(r.error.map(|e| e.code()), Some(ErrorCode::Forbidden));
        assert!(s.tokens.is_empty());
    }
}
