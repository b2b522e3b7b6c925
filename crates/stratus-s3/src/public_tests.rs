//! The access decision: policy, ACLs and Block Public Access together.

use proptest::prelude::*;

use super::*;
use crate::acl::{Grantee, ANONYMOUS_ID};

const GET: Request<'static> = Request {
    action: Action::GetObject,
    key: Some("k"),
    prefix: None,
};
const LIST: Request<'static> = Request {
    action: Action::ListBucket,
    key: None,
    prefix: None,
};
const PUT: Request<'static> = Request {
    action: Action::PutObject,
    key: Some("k"),
    prefix: None,
};
const ALT: Requester<'static> = Requester::Tenant("alt");
const ANON: Requester<'static> = Requester::Anonymous;

fn docs(policy: Option<&str>, acl: Option<Acl>, block: PublicAccessBlock) -> BucketAccessDocs {
    BucketAccessDocs {
        owner: "acme".into(),
        policy: policy.map(str::to_owned),
        acl: acl.as_ref().and_then(AclDoc::of),
        public_access_block: serde_json::to_string(&block).ok(),
        cors: None,
    }
}

fn canned(c: Canned) -> Option<Acl> {
    Some(c.acl("acme", "acme"))
}

const ALLOW: &str = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
const DENY: &str = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k"}}"#;
const DENY_ALL: &str = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}}"#;

#[test]
fn private_by_default() {
    let v = AccessView::new("b", &docs(None, None, Default::default()));
    for who in [ALT, ANON] {
        assert!(!v.allows(who, &GET, None));
        assert!(!v.allows(who, &LIST, None));
        assert!(!v.allows(who, &PUT, None));
    }
    assert!(!v.is_public());
}

#[test]
fn bucket_acls_grant_listing_and_writing_objects_acls_reading() {
    let open = PublicAccessBlock::default();
    // public-read on the bucket lists, but reads no object (AWS).
    let v = AccessView::new("b", &docs(None, canned(Canned::PublicRead), open));
    assert!(v.allows(ANON, &LIST, None));
    assert!(!v.allows(ANON, &GET, None));
    assert!(!v.allows(ANON, &PUT, None));
    assert!(v.is_public());
    let rw = AccessView::new("b", &docs(None, canned(Canned::PublicReadWrite), open));
    assert!(rw.allows(ANON, &PUT, None));
    let auth = AccessView::new("b", &docs(None, canned(Canned::AuthenticatedRead), open));
    assert!(auth.allows(ALT, &LIST, None));
    assert!(!auth.allows(ANON, &LIST, None));
    // The object's own ACL decides reads.
    let obj = Canned::PublicRead.acl("acme", "acme");
    let v = AccessView::new("b", &docs(None, None, open));
    assert!(v.allows(ANON, &GET, Some(&obj)));
    assert!(!v.allows(ANON, &LIST, Some(&obj)));
}

#[test]
fn a_legacy_public_read_document_still_lists() {
    let d = BucketAccessDocs {
        owner: "acme".into(),
        acl: Some(r#"{"canned":"public-read"}"#.into()),
        ..Default::default()
    };
    let v = AccessView::new("b", &d);
    assert!(v.allows(ANON, &LIST, None));
    assert_eq!(v.acl().grants.len(), 2);
}

#[test]
fn a_public_policy_or_acl_grants_unless_blocked() {
    let open = PublicAccessBlock::default();
    let obj = Canned::PublicRead.acl("acme", "acme");
    assert!(AccessView::new("b", &docs(Some(ALLOW), None, open)).allows(ANON, &GET, None));
    let restrict = PublicAccessBlock {
        restrict_public_buckets: true,
        ..open
    };
    let v = AccessView::new("b", &docs(Some(ALLOW), None, restrict));
    assert!(!v.allows(ANON, &GET, None));
    assert!(!v.is_public());
    let ignore = PublicAccessBlock {
        ignore_public_acls: true,
        ..open
    };
    let v = AccessView::new("b", &docs(None, canned(Canned::PublicReadWrite), ignore));
    assert!(!v.allows(ANON, &LIST, None));
    assert!(!v.allows(ALT, &PUT, None));
    assert!(!v.allows(ANON, &GET, Some(&obj)));
    assert!(!v.is_public());
}

#[test]
fn a_deny_in_the_policy_overrides_an_acl() {
    let obj = Canned::PublicRead.acl("acme", "acme");
    let v = AccessView::new("b", &docs(Some(DENY), None, Default::default()));
    assert!(!v.allows(ANON, &GET, Some(&obj)));
    let other = Request {
        key: Some("other"),
        ..GET
    };
    assert!(v.allows(ANON, &other, Some(&obj)));
    let v = AccessView::new(
        "b",
        &docs(
            Some(DENY_ALL),
            canned(Canned::PublicReadWrite),
            Default::default(),
        ),
    );
    assert!(!v.allows(ANON, &PUT, None));
    assert!(!v.allows(ANON, &LIST, None));
}

#[test]
fn unreadable_documents_grant_nothing() {
    let mut d = docs(Some(ALLOW), canned(Canned::PublicRead), Default::default());
    d.public_access_block = Some("{\"Bogus\":true}".into());
    assert!(!AccessView::new("b", &d).allows(ANON, &GET, None));
    let mut d = docs(None, canned(Canned::PublicRead), Default::default());
    d.policy = Some("{not json".into());
    assert!(!AccessView::new("b", &d).allows(ANON, &LIST, None));
    let mut d = docs(None, None, Default::default());
    d.acl = Some("[1".into());
    assert!(!AccessView::new("b", &d).allows(ANON, &LIST, None));
    let v = AccessView::new("b", &docs(None, None, Default::default()));
    assert_eq!(v.object_acl(Some("nope")), Acl::private("acme"));
}

fn grantee() -> impl Strategy<Value = Grantee> {
    prop_oneof![
        Just(Grantee::AllUsers),
        Just(Grantee::AuthenticatedUsers),
        Just(Grantee::User("alt".into())),
        Just(Grantee::User("acme".into())),
        Just(Grantee::User("eve".into())),
    ]
}

fn permission() -> impl Strategy<Value = Permission> {
    prop_oneof![
        Just(Permission::Read),
        Just(Permission::Write),
        Just(Permission::ReadAcp),
        Just(Permission::WriteAcp),
        Just(Permission::FullControl),
    ]
}

fn acl() -> impl Strategy<Value = Acl> {
    prop::collection::vec((grantee(), permission()), 0..6).prop_map(|g| Acl {
        owner: "acme".into(),
        grants: g
            .into_iter()
            .map(|(grantee, permission)| Grant {
                grantee,
                permission,
            })
            .collect(),
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::GetObject),
        Just(Action::GetObjectVersion),
        Just(Action::ListBucket),
        Just(Action::ListBucketVersions),
        Just(Action::PutObject),
        Just(Action::DeleteObject),
        Just(Action::GetBucketAcl),
        Just(Action::PutBucketAcl),
        Just(Action::GetObjectAcl),
        Just(Action::PutObjectAcl),
        Just(Action::GetObjectTagging),
    ]
}

fn requester() -> impl Strategy<Value = Requester<'static>> {
    prop_oneof![
        Just(Requester::Anonymous),
        Just(Requester::Tenant("alt")),
        Just(Requester::Tenant("eve")),
    ]
}

proptest! {
    /// Whatever the ACLs say: a policy denying everything wins;
    /// IgnorePublicAcls leaves only what names the requester itself (so
    /// an anonymous requester gets nothing); a grant that does not name the
    /// requester or a group it belongs to gives nothing.
    #[test]
    fn evaluation_invariants(
        bucket in acl(),
        object in acl(),
        action in action(),
        who in requester(),
        ignore in any::<bool>(),
    ) {
        let req = Request { action, key: Some("k"), prefix: Some("") };
        let block = PublicAccessBlock { ignore_public_acls: ignore, ..Default::default() };
        let deny = AccessView::new("b", &docs(Some(DENY_ALL), Some(bucket.clone()), block));
        prop_assert!(!deny.allows(who, &req, Some(&object)));
        let v = AccessView::new("b", &docs(None, Some(bucket.clone()), block));
        let allowed = v.allows(who, &req, Some(&object));
        if ignore && who == Requester::Anonymous {
            prop_assert!(!allowed);
        }
        let relevant = |a: &Acl| a.grants.iter().any(|g| match (&g.grantee, who) {
            (Grantee::User(u), Requester::Tenant(t)) => u == t,
            (Grantee::AllUsers, _) => !ignore,
            (Grantee::AuthenticatedUsers, Requester::Tenant(_)) => !ignore,
            _ => false,
        });
        if allowed {
            prop_assert!(relevant(&bucket) || relevant(&object));
        }
        // The owner's ACL rights on its own ACL never depend on grants.
        prop_assert!(bucket.allows(Requester::Tenant("acme"), Permission::WriteAcp, ignore));
        prop_assert!(!bucket.allows(Requester::Tenant(ANONYMOUS_ID), Permission::Read, ignore)
            || relevant_for_anon_id(&bucket, ignore));
    }
}

fn relevant_for_anon_id(a: &Acl, ignore: bool) -> bool {
    a.grants.iter().any(|g| match &g.grantee {
        Grantee::User(u) => u == ANONYMOUS_ID,
        _ => !ignore,
    })
}
