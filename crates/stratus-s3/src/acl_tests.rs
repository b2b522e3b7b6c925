//! Parsing and mapping of ACLs.

#![allow(clippy::unwrap_used)]

use super::*;

fn policy(grants: Vec<dto::Grant>, owner: Option<&str>) -> dto::AccessControlPolicy {
    dto::AccessControlPolicy {
        grants: Some(grants),
        owner: owner.map(|o| dto::Owner {
            display_name: None,
            id: Some(o.to_owned()),
        }),
    }
}

fn grant(type_: &str, id: Option<&str>, uri: Option<&str>, perm: &str) -> dto::Grant {
    dto::Grant {
        grantee: Some(dto::Grantee {
            display_name: None,
            email_address: None,
            id: id.map(str::to_owned),
            type_: dto::Type::from(type_.to_owned()),
            uri: uri.map(str::to_owned),
        }),
        permission: Some(dto::Permission::from(perm.to_owned())),
    }
}

#[test]
fn canned_acls_map_as_aws_documents() {
    let g = |c: Canned, owner: &str| c.acl(owner, "acme").grants;
    assert_eq!(
        g(Canned::Private, "acme"),
        vec![user_grant("acme", Permission::FullControl)]
    );
    assert_eq!(
        g(Canned::PublicReadWrite, "acme"),
        vec![
            group_grant(Grantee::AllUsers, Permission::Read),
            group_grant(Grantee::AllUsers, Permission::Write),
            user_grant("acme", Permission::FullControl),
        ]
    );
    assert_eq!(
        g(Canned::AuthenticatedRead, "acme")[0],
        group_grant(Grantee::AuthenticatedUsers, Permission::Read)
    );
    // bucket-owner-* add the bucket's owner only when it is someone else.
    assert_eq!(g(Canned::BucketOwnerRead, "acme").len(), 1);
    assert_eq!(
        g(Canned::BucketOwnerRead, "alt"),
        vec![
            user_grant("alt", Permission::FullControl),
            user_grant("acme", Permission::Read),
        ]
    );
    assert_eq!(
        g(Canned::BucketOwnerFullControl, "alt")[1],
        user_grant("acme", Permission::FullControl)
    );
    assert_eq!(
        Canned::parse("log-delivery-write").unwrap_err().code(),
        &S3ErrorCode::NotImplemented
    );
    assert_eq!(
        Canned::parse("bogus").unwrap_err().code(),
        &S3ErrorCode::InvalidArgument
    );
}

#[test]
fn grants_allow_exactly_what_they_name() {
    let acl = Acl {
        owner: "acme".into(),
        grants: vec![
            user_grant("alt", Permission::Read),
            group_grant(Grantee::AuthenticatedUsers, Permission::ReadAcp),
            group_grant(Grantee::AllUsers, Permission::Write),
            user_grant("bob", Permission::FullControl),
        ],
    };
    let alt = Requester::Tenant("alt");
    assert!(acl.allows(alt, Permission::Read, false));
    assert!(acl.allows(alt, Permission::ReadAcp, false));
    assert!(!acl.allows(alt, Permission::WriteAcp, false));
    assert!(!acl.allows(Requester::Anonymous, Permission::ReadAcp, false));
    assert!(acl.allows(Requester::Anonymous, Permission::Write, false));
    assert!(!acl.allows(Requester::Anonymous, Permission::Write, true));
    assert!(!acl.allows(alt, Permission::ReadAcp, true));
    assert!(acl.allows(Requester::Tenant("bob"), Permission::WriteAcp, true));
    // The owner keeps its ACL rights even without a grant.
    let bare = Acl {
        owner: "acme".into(),
        grants: Vec::new(),
    };
    assert!(bare.allows(Requester::Tenant("acme"), Permission::WriteAcp, false));
    assert!(!bare.allows(Requester::Tenant("acme"), Permission::Read, false));
    assert!(acl.is_public() && !bare.is_public());
}

#[test]
fn grant_headers_parse_ids_and_groups_and_refuse_emails() {
    let h = GrantHeaders {
        read: Some(&format!("id=\"alt\", uri=\"{ALL_USERS}\"")),
        full_control: Some("id=acme"),
        ..GrantHeaders::default()
    }
    .grants()
    .unwrap()
    .unwrap();
    assert_eq!(
        h,
        vec![
            user_grant("alt", Permission::Read),
            group_grant(Grantee::AllUsers, Permission::Read),
            user_grant("acme", Permission::FullControl),
        ]
    );
    assert!(GrantHeaders::default().grants().unwrap().is_none());
    let email = GrantHeaders {
        read: Some("emailAddress=\"a@b.c\""),
        ..GrantHeaders::default()
    };
    assert_eq!(
        email.grants().unwrap_err().code(),
        &S3ErrorCode::UnresolvableGrantByEmailAddress
    );
    for bad in ["nonsense", "foo=bar", "uri=\"http://example.com/x\""] {
        let h = GrantHeaders {
            write: Some(bad),
            ..GrantHeaders::default()
        };
        assert_eq!(
            h.grants().unwrap_err().code(),
            &S3ErrorCode::InvalidArgument,
            "{bad}"
        );
    }
    let many = vec!["id=a"; MAX_GRANTS + 1].join(",");
    let h = GrantHeaders {
        read: Some(&many),
        ..GrantHeaders::default()
    };
    assert_eq!(
        h.grants().unwrap_err().code(),
        &S3ErrorCode::MalformedACLError
    );
}

#[test]
fn access_control_policies_parse_and_are_bounded() {
    let p = policy(
        vec![
            grant("CanonicalUser", Some("alt"), None, "WRITE_ACP"),
            grant("Group", None, Some(AUTHENTICATED_USERS), "READ"),
        ],
        Some("acme"),
    );
    let (owner, grants) = from_policy(&p).unwrap();
    assert_eq!(owner.as_deref(), Some("acme"));
    assert_eq!(grants[0], user_grant("alt", Permission::WriteAcp));
    assert_eq!(grants[1].grantee, Grantee::AuthenticatedUsers);
    for bad in [
        grant("CanonicalUser", None, None, "READ"),
        grant("Group", None, None, "READ"),
        grant("CanonicalUser", Some("alt"), None, "EVERYTHING"),
        grant("Robot", Some("alt"), None, "READ"),
    ] {
        let e = from_policy(&policy(vec![bad], None)).unwrap_err();
        assert_eq!(e.code(), &S3ErrorCode::MalformedACLError);
    }
    let e = from_policy(&policy(
        vec![grant("AmazonCustomerByEmail", None, None, "READ")],
        None,
    ))
    .unwrap_err();
    assert_eq!(e.code(), &S3ErrorCode::UnresolvableGrantByEmailAddress);
    let many = vec![grant("CanonicalUser", Some("alt"), None, "READ"); MAX_GRANTS + 1];
    assert_eq!(
        from_policy(&policy(many, None)).unwrap_err().code(),
        &S3ErrorCode::MalformedACLError
    );
}

#[test]
fn documents_round_trip_and_answer_aws_shapes() {
    let acl = Canned::PublicRead.acl("acme", "acme");
    assert_eq!(Acl::from_doc(&acl.to_doc()), Some(acl.clone()));
    assert_eq!(Acl::from_doc("{"), None);
    let out = acl.dto_grants();
    let g0 = out[0].grantee.as_ref().unwrap();
    assert_eq!(g0.type_.as_str(), dto::Type::GROUP);
    assert_eq!(g0.uri.as_deref(), Some(ALL_USERS));
    let g1 = out[1].grantee.as_ref().unwrap();
    assert_eq!(g1.id.as_deref(), Some("acme"));
    assert_eq!(g1.display_name.as_deref(), Some("acme"));
    assert_eq!(out[1].permission.as_ref().unwrap().as_str(), "FULL_CONTROL");
    let mixed = Acl {
        owner: "acme".into(),
        grants: vec![
            user_grant("acme", Permission::FullControl),
            group_grant(Grantee::AllUsers, Permission::Read),
        ],
    };
    let out = mixed.dto_grants();
    assert_eq!(
        out[0].grantee.as_ref().unwrap().uri.as_deref(),
        Some(ALL_USERS),
        "groups are answered first"
    );
    assert_eq!(Requester::Anonymous.id(), ANONYMOUS_ID);
    assert!(stratus_types::validate_tenant_name(ANONYMOUS_ID).is_err());
}
