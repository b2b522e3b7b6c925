//! S3 access control lists: the model (an owner and grants), the canned
//! ACLs, the `x-amz-grant-*` headers and the `AccessControlPolicy` body, and
//! what a grant allows.
//!
//! **Identities.** In Stratus a tenant's name is its canonical user ID and
//! its display name (what ListBuckets answers as `Owner`). Grantees are a
//! tenant (`CanonicalUser`, which must exist: `InvalidArgument` otherwise),
//! AWS's groups `AllUsers` (everyone, anonymous included) and
//! `AuthenticatedUsers` (any tenant with valid keys). Tenants have no email
//! addresses, so an email grantee is refused as AWS refuses one it cannot
//! resolve (`UnresolvableGrantByEmailAddress`). An anonymous writer is
//! recorded as AWS's anonymous canonical ID [`ANONYMOUS_ID`] (never a valid
//! tenant name: it starts with a digit).
//!
//! **Permissions** (AWS's): on a bucket `READ` lists it, `WRITE` writes and
//! deletes its objects, `READ_ACP`/`WRITE_ACP` read/replace its ACL; on an
//! object `READ` reads it and `READ_ACP`/`WRITE_ACP` its ACL (`WRITE` on an
//! object grants nothing); `FULL_CONTROL` is all of them.
//!
//! **Bounds**: at most [`MAX_GRANTS`] grants per ACL (AWS's limit, else
//! `MalformedACLError`), grant headers up to [`MAX_ACL_BODY_BYTES`]; an
//! `AccessControlPolicy` body is bounded by s3s's XML body limit before it
//! is parsed. A grant that does not parse is `MalformedACLError` (body) or
//! `InvalidArgument` (header).
//!
//! Stored as JSON ([`Acl::to_doc`]): a bucket's in its
//! [`crate::public::AclDoc`], an object version's in its attributes.

use serde::{Deserialize, Serialize};

use s3s::dto;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

/// AWS's group of everyone, anonymous requests included.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// AWS's group of every signed requester.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
/// AWS's canonical ID of anonymous requesters (the owner of what they write).
pub const ANONYMOUS_ID: &str = "65a011a29cdf8ec533ec3d1ccaae921c";
/// Most grants of one ACL (AWS's limit).
pub const MAX_GRANTS: usize = 100;
/// Longest `x-amz-grant-*` header value accepted.
pub const MAX_ACL_BODY_BYTES: usize = 64 * 1024;

/// A permission of a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// `READ`.
    Read,
    /// `WRITE`.
    Write,
    /// `READ_ACP`.
    ReadAcp,
    /// `WRITE_ACP`.
    WriteAcp,
    /// `FULL_CONTROL`.
    FullControl,
}

impl Permission {
    /// AWS's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
            Permission::FullControl => "FULL_CONTROL",
        }
    }

    /// Parses AWS's name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            "FULL_CONTROL" => Permission::FullControl,
            _ => return None,
        })
    }

    /// Whether holding `self` gives `wanted`.
    pub fn covers(self, wanted: Permission) -> bool {
        self == Permission::FullControl || self == wanted
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    /// A tenant (canonical user ID).
    User(String),
    /// Everyone, anonymous included.
    AllUsers,
    /// Every signed requester.
    AuthenticatedUsers,
}

impl Grantee {
    /// Whether the grantee is a group beyond one tenant (a *public* grant
    /// for Block Public Access).
    pub fn is_public(&self) -> bool {
        !matches!(self, Grantee::User(_))
    }
}

/// One grant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Who.
    pub grantee: Grantee,
    /// What.
    pub permission: Permission,
}

/// An ACL: its owner and its grants, in the order they were given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    /// The owner (a tenant, or [`ANONYMOUS_ID`]).
    pub owner: String,
    /// The grants (at most [`MAX_GRANTS`]).
    pub grants: Vec<Grant>,
}

/// Who makes a request, for [`Acl::allows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester<'a> {
    /// An unsigned request.
    Anonymous,
    /// A tenant's signed request.
    Tenant(&'a str),
}

impl Requester<'_> {
    /// The canonical ID that owns what this requester writes.
    pub fn id(&self) -> &str {
        match self {
            Requester::Anonymous => ANONYMOUS_ID,
            Requester::Tenant(t) => t,
        }
    }
}

impl Acl {
    /// The default ACL: the owner has `FULL_CONTROL`.
    pub fn private(owner: &str) -> Self {
        Self {
            owner: owner.to_owned(),
            grants: vec![user_grant(owner, Permission::FullControl)],
        }
    }

    /// Whether a grant gives `who` the permission `wanted`; with
    /// `ignore_public` (Block Public Access's `IgnorePublicAcls`) the group
    /// grants give nothing. The owner always may read and write the ACL
    /// itself (`READ_ACP`, `WRITE_ACP`), as in AWS.
    pub fn allows(&self, who: Requester<'_>, wanted: Permission, ignore_public: bool) -> bool {
        if let Requester::Tenant(t) = who {
            if t == self.owner && matches!(wanted, Permission::ReadAcp | Permission::WriteAcp) {
                return true;
            }
        }
        self.grants.iter().any(|g| {
            g.permission.covers(wanted)
                && match (&g.grantee, who) {
                    (Grantee::User(u), Requester::Tenant(t)) => u == t,
                    (Grantee::User(_), Requester::Anonymous) => false,
                    (Grantee::AllUsers, _) => !ignore_public,
                    (Grantee::AuthenticatedUsers, Requester::Tenant(_)) => !ignore_public,
                    (Grantee::AuthenticatedUsers, Requester::Anonymous) => false,
                }
        })
    }

    /// Whether a grant is for a group (`AllUsers`, `AuthenticatedUsers`).
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|g| g.grantee.is_public())
    }

    /// The JSON document stored.
    pub fn to_doc(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored document (`None`: it does not parse).
    pub fn from_doc(doc: &str) -> Option<Self> {
        serde_json::from_str(doc).ok()
    }

    /// The grants as s3s answers them (GetBucketAcl, GetObjectAcl): group
    /// grants first, then the users', each in their stored order (as Ceph
    /// RGW answers, and as clients that sort users by display name need).
    pub fn dto_grants(&self) -> Vec<dto::Grant> {
        let groups = self.grants.iter().filter(|g| g.grantee.is_public());
        let users = self.grants.iter().filter(|g| !g.grantee.is_public());
        groups
            .chain(users)
            .map(|g| dto::Grant {
                grantee: Some(match &g.grantee {
                    Grantee::User(id) => dto::Grantee {
                        display_name: Some(id.clone()),
                        email_address: None,
                        id: Some(id.clone()),
                        type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                        uri: None,
                    },
                    group => dto::Grantee {
                        display_name: None,
                        email_address: None,
                        id: None,
                        type_: dto::Type::from_static(dto::Type::GROUP),
                        uri: Some(
                            if *group == Grantee::AllUsers {
                                ALL_USERS
                            } else {
                                AUTHENTICATED_USERS
                            }
                            .to_owned(),
                        ),
                    },
                }),
                permission: Some(dto::Permission::from(g.permission.as_str().to_owned())),
            })
            .collect()
    }

    /// The owner as s3s answers it.
    pub fn dto_owner(&self) -> dto::Owner {
        dto::Owner {
            display_name: Some(self.owner.clone()),
            id: Some(self.owner.clone()),
        }
    }
}

fn user_grant(id: &str, permission: Permission) -> Grant {
    Grant {
        grantee: Grantee::User(id.to_owned()),
        permission,
    }
}

fn group_grant(grantee: Grantee, permission: Permission) -> Grant {
    Grant {
        grantee,
        permission,
    }
}

/// AWS's canned ACLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canned {
    /// Owner `FULL_CONTROL`.
    Private,
    /// And `AllUsers` `READ`.
    PublicRead,
    /// And `AllUsers` `READ` and `WRITE`.
    PublicReadWrite,
    /// And `AuthenticatedUsers` `READ`.
    AuthenticatedRead,
    /// Objects: and the bucket owner `READ` (buckets: as private).
    BucketOwnerRead,
    /// Objects: and the bucket owner `FULL_CONTROL` (buckets: as private).
    BucketOwnerFullControl,
}

impl Canned {
    /// Parses an `x-amz-acl` value. `log-delivery-write` and
    /// `aws-exec-read` (AWS services that do not exist here) are
    /// `NotImplemented`; anything else `InvalidArgument`.
    pub fn parse(s: &str) -> S3Result<Self> {
        Ok(match s {
            "private" => Canned::Private,
            "public-read" => Canned::PublicRead,
            "public-read-write" => Canned::PublicReadWrite,
            "authenticated-read" => Canned::AuthenticatedRead,
            "bucket-owner-read" => Canned::BucketOwnerRead,
            "bucket-owner-full-control" => Canned::BucketOwnerFullControl,
            "log-delivery-write" | "aws-exec-read" => {
                return Err(s3_error!(
                    NotImplemented,
                    "the canned ACL {} names an AWS service group that does not exist here",
                    s
                ))
            }
            _ => return Err(s3_error!(InvalidArgument, "unknown canned ACL {:?}", s)),
        })
    }

    /// The ACL it stands for, owned by `owner` in a bucket of
    /// `bucket_owner` (group grants first, then the owner's, as Ceph RGW
    /// answers and ceph/s3-tests reads).
    pub fn acl(self, owner: &str, bucket_owner: &str) -> Acl {
        let mut grants = match self {
            Canned::PublicRead => vec![group_grant(Grantee::AllUsers, Permission::Read)],
            Canned::PublicReadWrite => vec![
                group_grant(Grantee::AllUsers, Permission::Read),
                group_grant(Grantee::AllUsers, Permission::Write),
            ],
            Canned::AuthenticatedRead => {
                vec![group_grant(Grantee::AuthenticatedUsers, Permission::Read)]
            }
            _ => Vec::new(),
        };
        grants.push(user_grant(owner, Permission::FullControl));
        if owner != bucket_owner {
            match self {
                Canned::BucketOwnerRead => grants.push(user_grant(bucket_owner, Permission::Read)),
                Canned::BucketOwnerFullControl => {
                    grants.push(user_grant(bucket_owner, Permission::FullControl))
                }
                _ => {}
            }
        }
        Acl {
            owner: owner.to_owned(),
            grants,
        }
    }
}

/// The `x-amz-grant-*` headers of a request, as sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrantHeaders<'a> {
    /// `x-amz-grant-read`.
    pub read: Option<&'a str>,
    /// `x-amz-grant-write`.
    pub write: Option<&'a str>,
    /// `x-amz-grant-read-acp`.
    pub read_acp: Option<&'a str>,
    /// `x-amz-grant-write-acp`.
    pub write_acp: Option<&'a str>,
    /// `x-amz-grant-full-control`.
    pub full_control: Option<&'a str>,
}

/// The [`GrantHeaders`] of an s3s input `$i` (the bucket and object inputs
/// share these field names; objects have no `grant_write`).
macro_rules! grant_headers_of {
    ($i:expr, $write:expr) => {
        $crate::acl::GrantHeaders {
            read: $i.grant_read.as_deref(),
            write: $write,
            read_acp: $i.grant_read_acp.as_deref(),
            write_acp: $i.grant_write_acp.as_deref(),
            full_control: $i.grant_full_control.as_deref(),
        }
    };
}
pub(crate) use grant_headers_of;

/// The `x-amz-grant-write` header of an object write, which s3s's
/// object inputs do not carry (a `WRITE` grant on an object is kept and
/// answered, and allows nothing, as in AWS).
pub fn object_grant_write(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-grant-write")
        .and_then(|v| v.to_str().ok())
}

impl GrantHeaders<'_> {
    /// Whether any header is present.
    pub fn any(&self) -> bool {
        self.read.is_some()
            || self.write.is_some()
            || self.read_acp.is_some()
            || self.write_acp.is_some()
            || self.full_control.is_some()
    }

    /// The grants the headers give, in header order (`None` without any).
    pub fn grants(&self) -> S3Result<Option<Vec<Grant>>> {
        if !self.any() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for (value, permission) in [
            (self.read, Permission::Read),
            (self.write, Permission::Write),
            (self.read_acp, Permission::ReadAcp),
            (self.write_acp, Permission::WriteAcp),
            (self.full_control, Permission::FullControl),
        ] {
            let Some(value) = value else { continue };
            if value.len() > MAX_ACL_BODY_BYTES {
                return Err(s3_error!(InvalidArgument, "a grant header is too long"));
            }
            for item in value.split(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let (kind, v) = item.split_once('=').ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "malformed grant {:?}: use id=\"...\" or uri=\"...\"",
                        item
                    )
                })?;
                let v = v.trim().trim_matches('"');
                let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                    "id" => Grantee::User(v.to_owned()),
                    "uri" => group(v)?,
                    "emailaddress" => return Err(unresolvable_email(v)),
                    other => {
                        return Err(s3_error!(
                            InvalidArgument,
                            "unknown grantee type {:?} in a grant header",
                            other
                        ))
                    }
                };
                out.push(Grant {
                    grantee,
                    permission,
                });
                if out.len() > MAX_GRANTS {
                    return Err(too_many());
                }
            }
        }
        Ok(Some(out))
    }
}

fn too_many() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MalformedACLError,
        format!("an ACL holds at most {MAX_GRANTS} grants"),
    )
}

fn unresolvable_email(v: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::UnresolvableGrantByEmailAddress,
        format!("the email address {v:?} does not match any account (tenants have no email addresses: grant to id=\"<tenant>\")"),
    )
}

fn group(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        u if u.starts_with("http://acs.amazonaws.com/groups/") => Err(s3_error!(
            NotImplemented,
            "the group {} does not exist here (only AllUsers and AuthenticatedUsers)",
            u
        )),
        u => Err(s3_error!(InvalidArgument, "unknown group {:?}", u)),
    }
}

/// The grants of an `AccessControlPolicy` body, and the owner it names.
pub fn from_policy(p: &dto::AccessControlPolicy) -> S3Result<(Option<String>, Vec<Grant>)> {
    let malformed = |m: &str| S3Error::with_message(S3ErrorCode::MalformedACLError, m.to_owned());
    let list = p.grants.as_deref().unwrap_or_default();
    if list.len() > MAX_GRANTS {
        return Err(too_many());
    }
    let mut grants = Vec::with_capacity(list.len());
    for g in list {
        let permission = g
            .permission
            .as_ref()
            .and_then(|p| Permission::parse(p.as_str()))
            .ok_or_else(|| malformed("a grant has no valid Permission"))?;
        let who = g
            .grantee
            .as_ref()
            .ok_or_else(|| malformed("a grant has no Grantee"))?;
        let grantee = match who.type_.as_str() {
            dto::Type::CANONICAL_USER => Grantee::User(
                who.id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| malformed("a CanonicalUser grantee has no ID"))?,
            ),
            dto::Type::GROUP => group(
                who.uri
                    .as_deref()
                    .ok_or_else(|| malformed("a Group grantee has no URI"))?,
            )?,
            dto::Type::AMAZON_CUSTOMER_BY_EMAIL => {
                return Err(unresolvable_email(
                    who.email_address.as_deref().unwrap_or(""),
                ))
            }
            other => return Err(malformed(&format!("unknown grantee type {other:?}"))),
        };
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    let owner = p.owner.as_ref().and_then(|o| o.id.clone());
    Ok((owner, grants))
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
