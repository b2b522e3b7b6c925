//! Access to a bucket by anyone but its owner: its ACL, its Block Public
//! Access settings, and the one decision that combines them with the
//! policy ([`AccessView::allows`]).
//!
//! A bucket's ACL ([`crate::acl`]) is stored as an [`AclDoc`] (JSON): the
//! first documents held only a canned ACL (`private` or `public-read`);
//! newer ones hold the grants themselves. A missing document is `private`.
//!
//! Block Public Access, AWS's four switches, per bucket (no account-level
//! settings):
//! - `BlockPublicAcls`: setting an ACL with a group grant (`AllUsers`,
//!   `AuthenticatedUsers`) on the bucket or its objects is `AccessDenied`;
//! - `IgnorePublicAcls`: group grants grant nothing;
//! - `BlockPublicPolicy`: setting a public policy is `AccessDenied`;
//! - `RestrictPublicBuckets`: a public policy grants nothing to anyone but
//!   the owner.
//!
//! [`AccessView::allows`] is AWS's decision for a request from anyone but
//! the owner (anonymous, or another tenant): an explicit `Deny` in the
//! policy wins; then an `Allow` of the policy (unless restricted); then the
//! ACL (the bucket's for listing, writing and the bucket ACL; the object
//! version's for reading it and its ACL); else no. The bucket's owner is
//! never asked about: its own requests are always allowed (it pays for
//! everything in the bucket and cannot lock itself out). A stored document
//! the gateway cannot read any more grants nothing (fail closed).

use serde::{Deserialize, Serialize};

use crate::acl::{Acl, Canned, Grant, Permission, Requester};
use crate::backend::BucketAccessDocs;
use crate::policy::{Action, BucketPolicy, Decision, Request};

/// The canned ACL of the first bucket ACL documents.
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

/// The stored bucket ACL document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDoc {
    /// The canned ACL (documents written before grants; ignored when
    /// `grants` is present).
    #[serde(default)]
    pub canned: CannedAcl,
    /// The grants (the owner is always the bucket's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<Grant>>,
}

impl AclDoc {
    /// The ACL this document gives a bucket of `owner`.
    pub fn acl(&self, owner: &str) -> Acl {
        match (&self.grants, self.canned) {
            (Some(grants), _) => Acl {
                owner: owner.to_owned(),
                grants: grants.clone(),
            },
            (None, CannedAcl::Private) => Acl::private(owner),
            (None, CannedAcl::PublicRead) => Canned::PublicRead.acl(owner, owner),
        }
    }

    /// The document to store for `acl` (`None` for the default, `private`).
    pub fn of(acl: &Acl) -> Option<String> {
        if *acl == Acl::private(&acl.owner) {
            return None;
        }
        serde_json::to_string(&AclDoc {
            canned: CannedAcl::Private,
            grants: Some(acl.grants.clone()),
        })
        .ok()
    }

    /// Reads a stored document (`None`: it does not parse).
    pub fn parse(doc: &str) -> Option<Self> {
        serde_json::from_str(doc).ok()
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

/// What an action needs from an ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Bucket(Permission),
    Object(Permission),
}

fn needs(action: Action) -> Option<Needs> {
    Some(match action {
        Action::GetObject | Action::GetObjectVersion => Needs::Object(Permission::Read),
        Action::GetObjectAcl => Needs::Object(Permission::ReadAcp),
        Action::PutObjectAcl => Needs::Object(Permission::WriteAcp),
        Action::ListBucket | Action::ListBucketVersions => Needs::Bucket(Permission::Read),
        Action::PutObject | Action::DeleteObject => Needs::Bucket(Permission::Write),
        Action::GetBucketAcl => Needs::Bucket(Permission::ReadAcp),
        Action::PutBucketAcl => Needs::Bucket(Permission::WriteAcp),
        // Only a policy grants these.
        Action::GetObjectTagging | Action::PutObjectTagging | Action::DeleteObjectTagging => {
            return None
        }
    })
}

/// What decides who other than the owner may do what in a bucket.
#[derive(Clone, Debug)]
pub struct AccessView {
    /// The owning tenant.
    pub owner: String,
    policy: Option<BucketPolicy>,
    acl: Acl,
    /// The Block Public Access settings.
    pub block: PublicAccessBlock,
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
        let acl = match docs.acl.as_deref().map(AclDoc::parse) {
            None => Acl::private(&docs.owner),
            Some(Some(doc)) => doc.acl(&docs.owner),
            Some(None) => {
                unreadable = true;
                Acl::private(&docs.owner)
            }
        };
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

    /// The bucket's ACL.
    pub fn acl(&self) -> &Acl {
        &self.acl
    }

    /// The ACL of an object version from its stored document (`None`: the
    /// default, the bucket owner's). A document that does not parse gives
    /// nobody else anything.
    pub fn object_acl(&self, doc: Option<&str>) -> Acl {
        doc.and_then(Acl::from_doc)
            .unwrap_or_else(|| Acl::private(&self.owner))
    }

    /// Whether `req`, from `who` (anyone but the bucket's owner), is
    /// granted. `object` is the ACL of the version an object action is
    /// about (`None`: the default).
    pub fn allows(&self, who: Requester<'_>, req: &Request<'_>, object: Option<&Acl>) -> bool {
        if self.unreadable {
            return false;
        }
        let tenant = match who {
            Requester::Tenant(t) => Some(t),
            Requester::Anonymous => None,
        };
        let policy = self
            .policy
            .as_ref()
            .map_or(Decision::None, |p| p.evaluate_as(tenant, req));
        // RestrictPublicBuckets: a public policy grants no one anything.
        let restricted = self.block.restrict_public_buckets
            && self.policy.as_ref().is_some_and(BucketPolicy::is_public);
        match policy {
            Decision::Deny => false,
            Decision::Allow if !restricted => true,
            _ => {
                let ignore = self.block.ignore_public_acls;
                match needs(req.action) {
                    None => false,
                    Some(Needs::Bucket(p)) => self.acl.allows(who, p, ignore),
                    Some(Needs::Object(p)) => match object {
                        Some(acl) => acl.allows(who, p, ignore),
                        None => Acl::private(&self.owner).allows(who, p, ignore),
                    },
                }
            }
        }
    }

    /// Whether the bucket is public (GetBucketPolicyStatus): its policy
    /// grants everyone something and is not restricted, or its ACL has a
    /// group grant that is not ignored.
    pub fn is_public(&self) -> bool {
        let policy = self.policy.as_ref().is_some_and(BucketPolicy::is_public)
            && !self.block.restrict_public_buckets;
        let acl = self.acl.is_public() && !self.block.ignore_public_acls;
        !self.unreadable && (policy || acl)
    }
}

#[cfg(test)]
#[path = "public_tests.rs"]
mod tests;
