//! The bucket policy subset: who other than the owner may read or write a
//! bucket.
//!
//! A bucket policy is AWS's JSON document (`Version`, `Statement[]`). The
//! gateway implements the part that publishes build artifacts and nothing
//! else, and refuses everything outside it when the policy is written
//! (`MalformedPolicy` for what AWS would refuse too, `NotImplemented` for
//! valid AWS policy the gateway does not implement) — a policy is never
//! stored with parts silently ignored:
//!
//! - `Effect`: `Allow` or `Deny`; `Sid` is kept as written.
//! - `Principal`: `"*"` or `{"AWS": "*"}` (everyone, anonymous included),
//!   or tenants: `{"AWS": "arn:aws:iam::TENANT:root"}`, `{"AWS": "TENANT"}`,
//!   `{"CanonicalUser": "TENANT"}` (a tenant is an account here). IAM users,
//!   roles, service principals, `NotPrincipal`, `NotAction`, `NotResource`
//!   are `NotImplemented`.
//! - `Action`: on `arn:aws:s3:::bucket/<key pattern>` `s3:GetObject`,
//!   `s3:GetObjectVersion`, `s3:PutObject`, `s3:DeleteObject`,
//!   `s3:GetObjectAcl`, `s3:PutObjectAcl`, `s3:Get/Put/DeleteObjectTagging`
//!   (of current versions); on `arn:aws:s3:::bucket`
//!   `s3:ListBucket`, `s3:ListBucketVersions`, `s3:GetBucketAcl`,
//!   `s3:PutBucketAcl` (the actions an ACL can grant too, [`Action`]). A
//!   `Deny` may also say `s3:*` (it then denies all of them: denying more is
//!   always safe); an `Allow` may not.
//! - `Resource`: this bucket only (another bucket is `MalformedPolicy`); key
//!   patterns use `*` and `?` as AWS does.
//! - `Condition`: `StringEquals`/`StringLike` on `s3:prefix` (ListBucket's
//!   `prefix` parameter); a request without that key does not match.
//!
//! Evaluation ([`BucketPolicy::evaluate`]) is AWS's for these pieces: an
//! explicit `Deny` that matches wins, then an `Allow` that matches, else
//! nothing is granted. The policy binds everyone but the owner tenant: the
//! owner's signed requests keep full control (it cannot lock itself out).
//! A policy with an `Allow` naming everyone is *public*
//! ([`BucketPolicy::is_public`]) for Block Public Access.

use serde_json::{Map, Value};

/// The largest policy accepted: 20 KiB, AWS's limit.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;
/// The most statements a policy may hold.
pub const MAX_STATEMENTS: usize = 100;
/// The most actions, resources or condition values of one statement.
pub const MAX_LIST: usize = 100;

/// Why a policy document is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Over [`MAX_POLICY_BYTES`].
    #[error("the policy is {0} bytes; at most {MAX_POLICY_BYTES} are allowed")]
    TooLarge(usize),
    /// Not a valid policy (AWS refuses it too).
    #[error("{0}")]
    Malformed(String),
    /// Valid AWS policy that the gateway does not implement.
    #[error("{0} is not supported (the bucket policy subset: Principal \"*\" or tenants, the object and ACL actions, Resource of this bucket, Condition StringEquals/StringLike on s3:prefix)")]
    Unsupported(String),
}

impl PolicyError {
    /// The S3 error answered for it.
    pub fn to_s3(&self) -> s3s::S3Error {
        let code = match self {
            PolicyError::Unsupported(_) => s3s::S3ErrorCode::NotImplemented,
            PolicyError::TooLarge(_) | PolicyError::Malformed(_) => {
                s3s::S3ErrorCode::MalformedPolicy
            }
        };
        s3s::S3Error::with_message(code, self.to_string())
    }
}

fn malformed(m: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(m.into())
}

/// What a request asks of a bucket it does not own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `s3:GetObject` (GetObject and HeadObject of the current version).
    GetObject,
    /// `s3:ListBucket` (ListObjects, ListObjectsV2, HeadBucket).
    ListBucket,
    /// `s3:GetObjectVersion` (reading a version named by id).
    GetObjectVersion,
    /// `s3:ListBucketVersions` (ListObjectVersions).
    ListBucketVersions,
    /// `s3:PutObject` (PutObject, CopyObject's destination).
    PutObject,
    /// `s3:DeleteObject` (DeleteObject, DeleteObjects).
    DeleteObject,
    /// `s3:GetBucketAcl`.
    GetBucketAcl,
    /// `s3:PutBucketAcl`.
    PutBucketAcl,
    /// `s3:GetObjectAcl`.
    GetObjectAcl,
    /// `s3:PutObjectAcl`.
    PutObjectAcl,
    /// `s3:GetObjectTagging` (no ACL grants it).
    GetObjectTagging,
    /// `s3:PutObjectTagging` (no ACL grants it).
    PutObjectTagging,
    /// `s3:DeleteObjectTagging` (no ACL grants it).
    DeleteObjectTagging,
}

impl Action {
    /// Every action (what a `Deny` of `s3:*` denies).
    pub const ALL: [Action; 13] = [
        Action::GetObject,
        Action::ListBucket,
        Action::GetObjectVersion,
        Action::ListBucketVersions,
        Action::PutObject,
        Action::DeleteObject,
        Action::GetBucketAcl,
        Action::PutBucketAcl,
        Action::GetObjectAcl,
        Action::PutObjectAcl,
        Action::GetObjectTagging,
        Action::PutObjectTagging,
        Action::DeleteObjectTagging,
    ];

    /// Whether the action is about an object (its resource is
    /// `arn:aws:s3:::bucket/key`) rather than the bucket.
    pub fn on_object(self) -> bool {
        !matches!(
            self,
            Action::ListBucket
                | Action::ListBucketVersions
                | Action::GetBucketAcl
                | Action::PutBucketAcl
        )
    }
}

/// A request to evaluate: the action and what it names.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The action.
    pub action: Action,
    /// The object key (GetObject).
    pub key: Option<&'a str>,
    /// ListBucket's `prefix` parameter, when the request sent one.
    pub prefix: Option<&'a str>,
}

/// The outcome of evaluating a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A matching `Deny`.
    Deny,
    /// A matching `Allow` and no matching `Deny`.
    Allow,
    /// Nothing matched.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Resource {
    /// `arn:aws:s3:::bucket`.
    Bucket,
    /// `arn:aws:s3:::bucket/<pattern>`.
    Objects(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PrefixCondition {
    /// `StringLike` (patterns) rather than `StringEquals`.
    like: bool,
    values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    /// The tenants it names (`None`: everyone, anonymous included).
    principals: Option<Vec<String>>,
    actions: Vec<Action>,
    resources: Vec<Resource>,
    conditions: Vec<PrefixCondition>,
}

/// A parsed, checked bucket policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketPolicy {
    statements: Vec<Statement>,
}

impl BucketPolicy {
    /// Parses and checks `doc` as the policy of `bucket`.
    pub fn parse(bucket: &str, doc: &str) -> Result<Self, PolicyError> {
        if doc.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(doc.len()));
        }
        let v: Value = serde_json::from_str(doc)
            .map_err(|e| malformed(format!("the policy is not valid JSON: {e}")))?;
        let Value::Object(top) = v else {
            return Err(malformed("the policy must be a JSON object"));
        };
        let mut statements = None;
        for (k, v) in &top {
            match k.as_str() {
                "Version" => match v.as_str() {
                    Some("2012-10-17" | "2008-10-17") => {}
                    _ => return Err(malformed(format!("unknown policy Version {v}"))),
                },
                "Id" if v.is_string() => {}
                "Statement" => statements = Some(v),
                other => return Err(malformed(format!("unknown policy element {other:?}"))),
            }
        }
        let list = match statements {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(s @ Value::Object(_)) => vec![s],
            _ => return Err(malformed("the policy has no Statement")),
        };
        if list.is_empty() {
            return Err(malformed("the policy has no Statement"));
        }
        if list.len() > MAX_STATEMENTS {
            return Err(malformed(format!(
                "the policy has {} statements; at most {MAX_STATEMENTS} are allowed",
                list.len()
            )));
        }
        let statements = list
            .into_iter()
            .map(|s| match s {
                Value::Object(m) => parse_statement(bucket, m),
                _ => Err(malformed("a Statement must be a JSON object")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    /// The statements a canned `public-read` ACL stands for: everyone may
    /// read every object of the bucket and list it.
    pub fn public_read() -> Self {
        Self {
            statements: vec![Statement {
                effect: Effect::Allow,
                principals: None,
                actions: vec![Action::GetObject, Action::ListBucket],
                resources: vec![Resource::Bucket, Resource::Objects("*".into())],
                conditions: Vec::new(),
            }],
        }
    }

    /// Whether any statement grants something to everyone (an `Allow`
    /// naming tenants is not public).
    pub fn is_public(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.effect == Effect::Allow && s.principals.is_none())
    }

    /// Whether a statement of `effect` grants or denies `req` to `who`.
    fn matches(&self, effect: Effect, who: Option<&str>, req: &Request<'_>) -> bool {
        self.statements
            .iter()
            .filter(|s| s.effect == effect)
            .filter(|s| {
                s.principals
                    .as_ref()
                    .is_none_or(|names| who.is_some_and(|w| names.iter().any(|n| n == w)))
            })
            .any(|s| s.matches(req))
    }

    /// Evaluates `req` from an anonymous requester (only the statements
    /// naming everyone apply).
    pub fn evaluate(&self, req: &Request<'_>) -> Decision {
        self.evaluate_as(None, req)
    }

    /// Evaluates `req` from `who` (a tenant; `None`: anonymous): a matching
    /// `Deny` wins over a matching `Allow`.
    pub fn evaluate_as(&self, who: Option<&str>, req: &Request<'_>) -> Decision {
        if self.matches(Effect::Deny, who, req) {
            Decision::Deny
        } else if self.matches(Effect::Allow, who, req) {
            Decision::Allow
        } else {
            Decision::None
        }
    }
}

impl Statement {
    fn matches(&self, req: &Request<'_>) -> bool {
        if !self.actions.contains(&req.action) {
            return false;
        }
        let resource = self.resources.iter().any(|r| match r {
            Resource::Bucket => !req.action.on_object(),
            Resource::Objects(p) => req.action.on_object() && req.key.is_some_and(|k| glob(p, k)),
        });
        resource
            && self.conditions.iter().all(|c| {
                req.prefix.is_some_and(|prefix| {
                    c.values
                        .iter()
                        .any(|v| if c.like { glob(v, prefix) } else { v == prefix })
                })
            })
    }
}

/// A string or a non-empty array of strings, at most [`MAX_LIST`].
fn strings<'a>(what: &str, v: &'a Value) -> Result<Vec<&'a str>, PolicyError> {
    let list: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .ok_or_else(|| malformed(format!("{what} must hold strings")))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(malformed(format!("{what} must be a string or a list"))),
    };
    if list.is_empty() || list.len() > MAX_LIST {
        return Err(malformed(format!(
            "{what} must hold 1 to {MAX_LIST} entries, not {}",
            list.len()
        )));
    }
    Ok(list)
}

fn parse_statement(bucket: &str, m: &Map<String, Value>) -> Result<Statement, PolicyError> {
    let mut effect = None;
    let mut principal = None;
    let mut actions = None;
    let mut resources = None;
    let mut conditions = Vec::new();
    for (k, v) in m {
        match k.as_str() {
            "Sid" if v.is_string() => {}
            "Effect" => {
                effect = Some(match v.as_str() {
                    Some("Allow") => Effect::Allow,
                    Some("Deny") => Effect::Deny,
                    _ => return Err(malformed(format!("invalid Effect {v}"))),
                })
            }
            "Principal" => principal = Some(parse_principal(v)?),
            "Action" => actions = Some(strings("Action", v)?),
            "Resource" => resources = Some(strings("Resource", v)?),
            "Condition" => conditions = parse_conditions(v)?,
            // AWS refuses NotPrincipal with Allow.
            "NotPrincipal" if m.get("Effect").and_then(Value::as_str) == Some("Allow") => {
                return Err(malformed("NotPrincipal cannot be used with Effect Allow"))
            }
            "NotPrincipal" | "NotAction" | "NotResource" => {
                return Err(PolicyError::Unsupported(k.clone()))
            }
            other => return Err(malformed(format!("unknown statement element {other:?}"))),
        }
    }
    let effect = effect.ok_or_else(|| malformed("a Statement has no Effect"))?;
    let Some(principals) = principal else {
        return Err(malformed("a Statement has no Principal"));
    };
    let named = actions.ok_or_else(|| malformed("a Statement has no Action"))?;
    let resources = resources
        .ok_or_else(|| malformed("a Statement has no Resource"))?
        .into_iter()
        .map(|r| parse_resource(bucket, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut actions = Vec::new();
    for a in named {
        let (parsed, wildcard) = parse_action(effect, a)?;
        // An action named explicitly must apply to one of the resources
        // (AWS's rule); a `Deny` of `s3:*` applies to whichever do.
        let applies = |a: &Action| {
            resources.iter().any(|r| match r {
                Resource::Bucket => !a.on_object(),
                Resource::Objects(_) => a.on_object(),
            })
        };
        if !wildcard && !parsed.iter().all(applies) {
            return Err(malformed(format!(
                "Action does not apply to any resource(s) in statement ({a})"
            )));
        }
        actions.extend(parsed);
    }
    Ok(Statement {
        effect,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// The tenants a `Principal` names (`None`: everyone). Tenants are named
/// as AWS names accounts (`{"AWS": "arn:aws:iam::TENANT:root"}` or
/// `{"AWS": "TENANT"}`) or canonical users (`{"CanonicalUser": "TENANT"}`);
/// a `*` anywhere is everyone. IAM users, roles and service principals do
/// not exist here (`NotImplemented`); a name that cannot be a tenant is
/// `MalformedPolicy` (AWS's "Invalid principal").
fn parse_principal(v: &Value) -> Result<Option<Vec<String>>, PolicyError> {
    let unsupported = || PolicyError::Unsupported(format!("Principal {v}"));
    let m = match v {
        Value::String(s) if s == "*" => return Ok(None),
        Value::Object(m) if !m.is_empty() => m,
        _ => return Err(malformed(format!("invalid Principal {v}"))),
    };
    let mut names = Vec::new();
    for (kind, list) in m {
        let canonical = match kind.as_str() {
            "AWS" => false,
            "CanonicalUser" => true,
            _ => return Err(unsupported()),
        };
        for p in strings("Principal", list)? {
            if p == "*" {
                return Ok(None);
            }
            let name = match p.strip_prefix("arn:aws:iam::") {
                Some(rest) if !canonical => match rest.split_once(':') {
                    Some((tenant, "root")) => tenant,
                    _ => return Err(unsupported()),
                },
                _ => p,
            };
            stratus_types::validate_tenant_name(name)
                .map_err(|why| malformed(format!("Invalid principal in policy: {why}")))?;
            names.push(name.to_owned());
        }
    }
    Ok(Some(names))
}

/// The actions `a` names, and whether it was a wildcard.
fn parse_action(effect: Effect, a: &str) -> Result<(Vec<Action>, bool), PolicyError> {
    // AWS compares action names without regard to case.
    match a.to_ascii_lowercase().as_str() {
        "s3:getobject" => Ok((vec![Action::GetObject], false)),
        "s3:listbucket" => Ok((vec![Action::ListBucket], false)),
        "s3:getobjectversion" => Ok((vec![Action::GetObjectVersion], false)),
        "s3:listbucketversions" => Ok((vec![Action::ListBucketVersions], false)),
        "s3:putobject" => Ok((vec![Action::PutObject], false)),
        "s3:deleteobject" => Ok((vec![Action::DeleteObject], false)),
        "s3:getbucketacl" => Ok((vec![Action::GetBucketAcl], false)),
        "s3:putbucketacl" => Ok((vec![Action::PutBucketAcl], false)),
        "s3:getobjectacl" => Ok((vec![Action::GetObjectAcl], false)),
        "s3:putobjectacl" => Ok((vec![Action::PutObjectAcl], false)),
        "s3:getobjecttagging" => Ok((vec![Action::GetObjectTagging], false)),
        "s3:putobjecttagging" => Ok((vec![Action::PutObjectTagging], false)),
        "s3:deleteobjecttagging" => Ok((vec![Action::DeleteObjectTagging], false)),
        "s3:*" | "*" if effect == Effect::Deny => Ok((Action::ALL.to_vec(), true)),
        _ if !a.contains(':') && a != "*" => Err(malformed(format!("invalid Action {a:?}"))),
        _ => Err(PolicyError::Unsupported(format!("Action {a:?}"))),
    }
}

fn parse_resource(bucket: &str, r: &str) -> Result<Resource, PolicyError> {
    let rest = r
        .strip_prefix("arn:aws:s3:::")
        .ok_or_else(|| malformed(format!("invalid Resource {r:?}: not an S3 ARN")))?;
    let (name, key) = match rest.split_once('/') {
        Some((name, key)) => (name, Some(key)),
        None => (rest, None),
    };
    if name != bucket {
        return Err(malformed(format!(
            "Policy has invalid resource {r:?}: a bucket's policy may only name that bucket ({bucket:?})"
        )));
    }
    Ok(match key {
        None => Resource::Bucket,
        Some(pattern) => Resource::Objects(pattern.to_owned()),
    })
}

fn parse_conditions(v: &Value) -> Result<Vec<PrefixCondition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(malformed("Condition must be a JSON object"));
    };
    let mut out = Vec::new();
    for (op, keys) in ops {
        let like = match op.as_str() {
            "StringEquals" => false,
            "StringLike" => true,
            other => {
                return Err(PolicyError::Unsupported(format!(
                    "Condition operator {other:?}"
                )))
            }
        };
        let Value::Object(keys) = keys else {
            return Err(malformed(format!("Condition {op} must be a JSON object")));
        };
        for (key, values) in keys {
            if key != "s3:prefix" {
                return Err(PolicyError::Unsupported(format!("Condition key {key:?}")));
            }
            let values = strings("Condition value", values)?;
            out.push(PrefixCondition {
                like,
                values: values.into_iter().map(str::to_owned).collect(),
            });
        }
    }
    Ok(out)
}

/// Whether `s` matches `pattern`, where `*` is any run of characters and `?`
/// any one character (AWS's ARN and `StringLike` wildcards). Linear in
/// practice: one backtrack point (the last `*`), never recursion.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && p[i] == t[j])) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(key: &str) -> Request<'_> {
        Request {
            action: Action::GetObject,
            key: Some(key),
            prefix: None,
        }
    }

    fn list(prefix: Option<&str>) -> Request<'_> {
        Request {
            action: Action::ListBucket,
            key: None,
            prefix,
        }
    }

    fn policy(statements: &str) -> Result<BucketPolicy, PolicyError> {
        BucketPolicy::parse(
            "b",
            &format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#),
        )
    }

    #[test]
    fn globs_match_as_aws_wildcards() {
        assert!(glob("*", ""));
        assert!(glob("*", "a/b/c"));
        assert!(glob("public/*", "public/x/y"));
        assert!(!glob("public/*", "private/x"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*.tar.gz", "build/1.tar.gz"));
        assert!(!glob("*.tar.gz", "build/1.tar.gzip"));
        assert!(glob("a*b*c", "a-b-b-c"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
    }

    #[test]
    fn public_read_of_a_prefix_grants_only_that_prefix() {
        let p = policy(
            r#"[{"Sid":"pub","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/public/*"}]"#,
        )
        .expect("valid");
        assert!(p.is_public());
        assert_eq!(p.evaluate(&get("public/a.txt")), Decision::Allow);
        assert_eq!(p.evaluate(&get("private/a.txt")), Decision::None);
        assert_eq!(p.evaluate(&list(Some("public/"))), Decision::None);
    }

    #[test]
    fn an_explicit_deny_overrides_an_allow() {
        let p = policy(
            r#"[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Principal":{"AWS":["*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"}]"#,
        )
        .expect("valid");
        assert_eq!(p.evaluate(&get("a")), Decision::Allow);
        assert_eq!(p.evaluate(&get("secret/key")), Decision::Deny);
        let deny_all = policy(
            r#"[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"},
                {"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]"#,
        )
        .expect("valid");
        assert_eq!(deny_all.evaluate(&get("a")), Decision::Deny);
        assert_eq!(deny_all.evaluate(&list(None)), Decision::Deny);
    }

    #[test]
    fn list_conditions_on_the_prefix() {
        let p = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:prefix":["public/*","docs"]}}}"#,
        )
        .expect("valid");
        assert_eq!(p.evaluate(&list(Some("public/x"))), Decision::Allow);
        assert_eq!(p.evaluate(&list(Some("docs"))), Decision::Allow);
        assert_eq!(p.evaluate(&list(Some("private/"))), Decision::None);
        assert_eq!(
            p.evaluate(&list(None)),
            Decision::None,
            "no prefix, no match"
        );
        assert_eq!(p.evaluate(&get("public/x")), Decision::None);
        let eq = policy(
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringEquals":{"s3:prefix":"a*"}}}"#,
        )
        .expect("valid");
        assert_eq!(eq.evaluate(&list(Some("a*"))), Decision::Allow);
        assert_eq!(eq.evaluate(&list(Some("ab"))), Decision::None);
    }

    #[test]
    fn another_bucket_is_refused() {
        for r in [
            "arn:aws:s3:::other/*",
            "arn:aws:s3:::b2/*",
            "arn:aws:s3:::*",
            "arn:aws:s3:::*/x",
        ] {
            let doc = format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"{r}"}}"#
            );
            assert!(
                matches!(policy(&doc), Err(PolicyError::Malformed(_))),
                "{r}"
            );
        }
    }

    #[test]
    fn everything_outside_the_subset_is_refused_never_ignored() {
        let unsupported = [
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::acme:user/bob"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":{"Service":"logging.s3.amazonaws.com"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:PutBucketPolicy","Resource":"arn:aws:s3:::b"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"IpAddress":{"aws:SourceIp":"1.2.3.4/32"}}}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"StringLike":{"s3:delimiter":"/"}}}"#,
            r#"{"Effect":"Deny","NotPrincipal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","NotAction":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
        ];
        for doc in unsupported {
            let e = policy(doc).expect_err(doc);
            assert!(matches!(e, PolicyError::Unsupported(_)), "{doc}: {e}");
            assert_eq!(e.to_s3().code(), &s3s::S3ErrorCode::NotImplemented);
        }
        let malformed = [
            "[]",
            r#"{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b/*"}"#,
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Extra":1}"#,
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
        ];
        for doc in malformed {
            let e = policy(doc).expect_err(doc);
            assert!(matches!(e, PolicyError::Malformed(_)), "{doc}: {e}");
            assert_eq!(e.to_s3().code(), &s3s::S3ErrorCode::MalformedPolicy);
        }
        assert!(BucketPolicy::parse("b", "not json").is_err());
        assert!(BucketPolicy::parse("b", r#"{"Version":"2099-01-01","Statement":[]}"#).is_err());
    }

    #[test]
    fn oversized_policies_and_lists_are_refused() {
        let big = format!(r#"{{"Id":"{}"}}"#, "x".repeat(MAX_POLICY_BYTES));
        assert_eq!(
            BucketPolicy::parse("b", &big),
            Err(PolicyError::TooLarge(big.len()))
        );
        let one = r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/x"}"#;
        let many = format!("[{}]", vec![one; MAX_STATEMENTS + 1].join(","));
        assert!(matches!(policy(&many), Err(PolicyError::Malformed(_))));
    }

    #[test]
    fn only_allows_are_public() {
        let deny = policy(
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}"#,
        )
        .expect("valid");
        assert!(!deny.is_public());
        assert!(BucketPolicy::public_read().is_public());
        assert_eq!(
            BucketPolicy::public_read().evaluate(&list(None)),
            Decision::Allow
        );
    }

    #[test]
    fn named_principals_bind_only_the_tenants_they_name() {
        let doc = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::alt:root","bob"]},"Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::b/*"},
            {"Effect":"Deny","Principal":{"CanonicalUser":"bob"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let p = BucketPolicy::parse("b", doc).expect("parses");
        assert!(!p.is_public(), "naming tenants is not public");
        let get = Request {
            action: Action::GetObject,
            key: Some("k"),
            prefix: None,
        };
        let put = Request {
            action: Action::PutObject,
            ..get
        };
        assert_eq!(p.evaluate_as(Some("alt"), &get), Decision::Allow);
        assert_eq!(p.evaluate_as(Some("alt"), &put), Decision::Allow);
        assert_eq!(p.evaluate_as(Some("bob"), &put), Decision::Deny);
        assert_eq!(p.evaluate_as(Some("eve"), &get), Decision::None);
        assert_eq!(p.evaluate_as(None, &get), Decision::None);
        for bad in [
            r#"{"AWS":"arn:aws:iam::Not_A_Tenant:root"}"#,
            r#"{"CanonicalUser":""}"#,
            r#"[]"#,
        ] {
            let doc = format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":{bad},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}}}"#
            );
            assert!(
                matches!(
                    BucketPolicy::parse("b", &doc),
                    Err(PolicyError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let star_in_list = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["alt","*"]},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
        assert!(BucketPolicy::parse("b", star_in_list)
            .expect("parses")
            .is_public());
    }
}
