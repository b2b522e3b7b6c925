//! Public access to a bucket: its canned ACL, its Block Public Access
//! settings, and the one decision that combines them with the policy.
//!
//! A bucket's canned ACL is `private` (the default) or `public-read`; the
//! latter stands for the policy statement [`BucketPolicy::public_read`]
//! (everyone may GetObject and ListBucket), evaluated beside the bucket
//! policy. Other canned ACLs and grants are `NotImplemented`.
//!
//! Block Public Access, AWS's four switches, per bucket (no account-level
//! settings):
//! - `BlockPublicAcls`: setting a `public-read` ACL is `AccessDenied`;
//! - `IgnorePublicAcls`: a `public-read` ACL grants nothing;
//! - `BlockPublicPolicy`: setting a public policy is `AccessDenied`;
//! - `RestrictPublicBuckets`: a public policy grants nothing to anyone but
//!   the owner.
//!
//! [`AccessView::allows`] is the decision for a request from anyone but the
//! owner (anonymous, or another tenant): an explicit `Deny` in the policy
//! wins; then an `Allow` of the policy or the ACL, unless blocked; else no.
//! A stored document the gateway cannot read any more grants nothing (fail
//! closed).

use serde::{Deserialize, Serialize};

use crate::backend::BucketAccessDocs;
use crate::policy::{BucketPolicy, Decision, Request};

/// A bucket's canned ACL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CannedAcl {
    /// Only the owner.
    #[default]
    #[serde(rename = "private")]
    Private,
    /// Everyone may read objects and list the bucket.
    #[serde(rename = "public-read")]
    PublicRead,
}

/// The stored ACL document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDoc {
    /// The canned ACL.
    pub canned: CannedAcl,
}

impl CannedAcl {
    /// Parses an `x-amz-acl` value for a bucket: `private` and `public-read`;
    /// every other canned ACL is `NotImplemented`.
    pub fn parse(s: &str) -> s3s::S3Result<Self> {
        match s {
            "private" => Ok(CannedAcl::Private),
            "public-read" => Ok(CannedAcl::PublicRead),
            other => Err(s3s::s3_error!(
                NotImplemented,
                "the canned ACL {} is not supported on buckets: only private and public-read",
                other
            )),
        }
    }

    /// Whether `s` names a canned ACL that grants anyone beyond the owner
    /// (implemented or not).
    pub fn is_public_name(s: &str) -> bool {
        matches!(
            s,
            "public-read" | "public-read-write" | "authenticated-read"
        )
    }

    /// The stored document (`None` for the default, `private`).
    pub fn to_doc(self) -> Option<String> {
        match self {
            CannedAcl::Private => None,
            CannedAcl::PublicRead => serde_json::to_string(&AclDoc { canned: self }).ok(),
        }
    }
}

/// Block Public Access settings, as stored (AWS's element names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PublicAccessBlock {
    /// Refuse setting public ACLs.
    pub block_public_acls: bool,
    /// Public ACLs grant nothing.
    pub ignore_public_acls: bool,
    /// Refuse setting public policies.
    pub block_public_policy: bool,
    /// Public policies grant nothing to non-owners.
    pub restrict_public_buckets: bool,
}

/// What decides who other than the owner may read a bucket.
#[derive(Clone, Debug)]
pub struct AccessView {
    /// The owning tenant.
    pub owner: String,
    policy: Option<BucketPolicy>,
    acl: CannedAcl,
    block: PublicAccessBlock,
    /// A stored document did not parse: grant nothing.
    unreadable: bool,
}

impl AccessView {
    /// Reads the documents of `bucket`.
    pub fn new(bucket: &str, docs: &BucketAccessDocs) -> Self {
        let mut unreadable = false;
        let policy = docs.policy.as_deref().and_then(|d| {
            BucketPolicy::parse(bucket, d)
                .map_err(|_| unreadable = true)
                .ok()
        });
        let acl = docs
            .acl
            .as_deref()
            .map(|d| {
                serde_json::from_str::<AclDoc>(d)
                    .map(|a| a.canned)
                    .unwrap_or_else(|_| {
                        unreadable = true;
                        CannedAcl::Private
                    })
            })
            .unwrap_or_default();
        let block = docs
            .public_access_block
            .as_deref()
            .map(|d| {
                serde_json::from_str(d).unwrap_or_else(|_| {
                    unreadable = true;
                    PublicAccessBlock::default()
                })
            })
            .unwrap_or_default();
        if unreadable {
            tracing::warn!(
                bucket,
                "a bucket access document does not parse; the bucket stays private"
            );
        }
        Self {
            owner: docs.owner.clone(),
            policy,
            acl,
            block,
            unreadable,
        }
    }

    /// Whether `req`, from anyone but the owner, is granted.
    pub fn allows(&self, req: &Request<'_>) -> bool {
        if self.unreadable {
            return false;
        }
        let policy = self
            .policy
            .as_ref()
            .map_or(Decision::None, |p| p.evaluate(req));
        match policy {
            Decision::Deny => false,
            Decision::Allow if !self.block.restrict_public_buckets => true,
            _ => {
                self.acl == CannedAcl::PublicRead
                    && !self.block.ignore_public_acls
                    && BucketPolicy::public_read().evaluate(req) == Decision::Allow
            }
        }
    }

    /// Whether the bucket is public (GetBucketPolicyStatus): its policy
    /// grants everyone something and is not restricted, or its ACL is
    /// `public-read` and not ignored.
    pub fn is_public(&self) -> bool {
        let policy = self.policy.as_ref().is_some_and(BucketPolicy::is_public)
            && !self.block.restrict_public_buckets;
        let acl = self.acl == CannedAcl::PublicRead && !self.block.ignore_public_acls;
        !self.unreadable && (policy || acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Action;

    const GET: Request<'static> = Request {
        action: Action::GetObject,
        key: Some("k"),
        prefix: None,
    };

    fn docs(policy: Option<&str>, acl: CannedAcl, block: PublicAccessBlock) -> BucketAccessDocs {
        BucketAccessDocs {
            owner: "acme".into(),
            policy: policy.map(str::to_owned),
            acl: acl.to_doc(),
            public_access_block: serde_json::to_string(&block).ok(),
            cors: None,
        }
    }

    const ALLOW: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    const DENY: &str = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k"}}"#;

    #[test]
    fn private_by_default() {
        let v = AccessView::new("b", &docs(None, CannedAcl::Private, Default::default()));
        assert!(!v.allows(&GET));
        assert!(!v.is_public());
    }

    #[test]
    fn a_public_policy_or_acl_grants_unless_blocked() {
        let open = PublicAccessBlock::default();
        assert!(AccessView::new("b", &docs(Some(ALLOW), CannedAcl::Private, open)).allows(&GET));
        assert!(AccessView::new("b", &docs(None, CannedAcl::PublicRead, open)).allows(&GET));
        let restrict = PublicAccessBlock {
            restrict_public_buckets: true,
            ..open
        };
        let v = AccessView::new("b", &docs(Some(ALLOW), CannedAcl::Private, restrict));
        assert!(!v.allows(&GET));
        assert!(!v.is_public());
        let ignore = PublicAccessBlock {
            ignore_public_acls: true,
            ..open
        };
        assert!(!AccessView::new("b", &docs(None, CannedAcl::PublicRead, ignore)).allows(&GET));
    }

    #[test]
    fn a_deny_in_the_policy_overrides_a_public_acl() {
        let v = AccessView::new(
            "b",
            &docs(Some(DENY), CannedAcl::PublicRead, Default::default()),
        );
        assert!(!v.allows(&GET));
        let other = Request {
            key: Some("other"),
            ..GET
        };
        assert!(v.allows(&other));
    }

    #[test]
    fn unreadable_documents_grant_nothing() {
        let mut d = docs(Some(ALLOW), CannedAcl::PublicRead, Default::default());
        d.public_access_block = Some("{\"Bogus\":true}".into());
        assert!(!AccessView::new("b", &d).allows(&GET));
        let mut d = docs(None, CannedAcl::PublicRead, Default::default());
        d.policy = Some("{not json".into());
        assert!(!AccessView::new("b", &d).allows(&GET));
    }

    #[test]
    fn only_private_and_public_read_acls_are_understood() {
        assert_eq!(CannedAcl::parse("private").ok(), Some(CannedAcl::Private));
        assert_eq!(
            CannedAcl::parse("public-read").ok(),
            Some(CannedAcl::PublicRead)
        );
        for other in [
            "public-read-write",
            "authenticated-read",
            "log-delivery-write",
            "",
        ] {
            let e = CannedAcl::parse(other).expect_err(other);
            assert_eq!(e.code(), &s3s::S3ErrorCode::NotImplemented);
        }
    }
}
