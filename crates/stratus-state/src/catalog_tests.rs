//! Paid apps and datasets: who may publish what, who may use it, where it
//! may run, and that its owners are paid exactly.

#![allow(clippy::unwrap_used)]

use stratus_market::Amount;
use stratus_types::{ErrorCode, NodeId};

use super::{CatalogCommand, ListingKind, Uses};
use crate::deals::tests::{
    balance, code, conserved, deposit, key, lost, market, node_of, ok, place_for, report, BOB,
    LENA, WORST,
};
use crate::deals::NoFit;
use crate::objects::{Bucket, DedupeScope, StoreCommand, Versioning};
use crate::{Command, CommandResult, State};

/// The requester.
const RITA: &str = "rita";
/// The dataset owner.
const DORA: &str = "dora";
const APP_PRICE: u64 = 700;
const DATA_PRICE: u64 = 300;

fn tenant(s: &mut State, name: &str) {
    ok(s.apply(
        1,
        &Command::CreateTenant {
            name: name.into(),
            now_ms: 0,
        },
    ));
}

/// The deals tests' market, with Bob (`acme`) publishing its module as
/// `acme/render`, Dora publishing `dora/weather` (only for that app), and
/// Rita holding 1,000,000.
fn catalog() -> (State, String) {
    let (mut s, m) = market();
    tenant(&mut s, RITA);
    tenant(&mut s, DORA);
    deposit(&mut s, RITA, 1_000_000);
    ok(s.apply(2, &publish_app("render", &m)));
    ok(s.apply(
        2,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "weather".into(),
                tenant: DORA.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Unversioned,
                created_ms: 0,
            },
        }),
    ));
    ok(s.apply(2, &publish_dataset("weather", "weather", &["acme/render"])));
    (s, m)
}

fn publish_app(name: &str, module: &str) -> Command {
    Command::Catalog(CatalogCommand::PublishApp {
        tenant: BOB.into(),
        name: name.into(),
        module: module.into(),
        price: Amount(APP_PRICE),
        now_ms: 1,
    })
}

fn publish_dataset(name: &str, bucket: &str, apps: &[&str]) -> Command {
    Command::Catalog(CatalogCommand::PublishDataset {
        tenant: DORA.into(),
        name: name.into(),
        bucket: bucket.into(),
        prefix: "2026/".into(),
        price: Amount(DATA_PRICE),
        apps: apps.iter().map(|a| a.to_string()).collect(),
        now_ms: 1,
    })
}

fn uses(app: Option<&str>, dataset: Option<&str>) -> Uses {
    Uses {
        app: app.map(Into::into),
        dataset: dataset.map(Into::into),
    }
}

/// Rita deploys task `job` running `module`, using `uses` (a plain deploy
/// when it is empty).
fn deploy(s: &mut State, module: &str, uses: Uses) -> CommandResult {
    let spec = stratus_spec::parse(
        "version: 1\nname: job\nkind: task\nwasm: { module: m.wat }\nresources: { memory_mb: 64, wall_time_secs: 10 }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let deploy = Command::DeployWorkload {
        tenant: RITA.into(),
        spec: Box::new(spec),
        module: module.into(),
        now_ms: 1,
    };
    if uses.is_empty() {
        return s.apply(3, &deploy);
    }
    s.apply(
        3,
        &Command::DeployUsing {
            deploy: Box::new(deploy),
            uses,
        },
    )
}

fn place(s: &mut State, node: NodeId) -> CommandResult {
    place_for(s, RITA, "job", node)
}

/// Registers node `k` owned by `owner`, with no offer.
fn node(s: &mut State, k: u8, owner: &str) -> NodeId {
    let mut info = crate::tests::info(k);
    info.id = node_of(&key(k));
    let id = info.id;
    ok(s.apply(1, &Command::RegisterNode { info, now_ms: 0 }));
    s.nodes.get_mut(&id).unwrap().owner = owner.into();
    id
}

#[test]
fn an_app_runs_for_another_tenant_and_pays_its_owner_per_task() {
    let (mut s, m) = catalog();
    // Rita never uploaded the module: without the app it is not hers.
    assert_eq!(
        code(&deploy(&mut s, &m, Uses::default())),
        Some(ErrorCode::NotFound)
    );
    ok(deploy(&mut s, &m, uses(Some("acme/render"), None)));
    let w = s.workloads.get("rita/job").unwrap().clone();
    assert_eq!(s.payload_holder(&w), BOB);
    ok(place(&mut s, node_of(&key(1))));
    assert_eq!(s.account(RITA).held, Amount(WORST + APP_PRICE));
    // The lender's usage as in the deals tests (2,550: Lena 2,295, the
    // pool 255), and the app's owner its price.
    let bob_before = balance(&s, BOB);
    ok(s.apply(5, &report(&key(1), "job-i", 1, 2_500, true)));
    assert_eq!(balance(&s, LENA), 2_295);
    assert_eq!(s.pool_totals().0, Amount(255));
    assert_eq!(balance(&s, BOB) - bob_before, APP_PRICE);
    assert_eq!(balance(&s, RITA), 1_000_000 - 2_550 - APP_PRICE);
    assert_eq!(s.account(RITA).held, Amount::ZERO);
    assert!(conserved(&s));
}

#[test]
fn a_lost_node_pays_the_app_owner_nothing_either() {
    let (mut s, m) = catalog();
    ok(deploy(&mut s, &m, uses(Some("acme/render"), None)));
    let node = node_of(&key(1));
    ok(place(&mut s, node));
    ok(s.apply(5, &lost("job-i", node)));
    assert_eq!(balance(&s, RITA), 1_000_000);
    assert_eq!(balance(&s, BOB), 0);
    assert!(conserved(&s));
}

#[test]
fn a_paid_app_never_runs_on_the_requesters_node_and_is_paid_on_a_free_one() {
    let (mut s, m) = catalog();
    ok(deploy(&mut s, &m, uses(Some("acme/render"), None)));
    let w = s.workloads.get("rita/job").unwrap().clone();
    // Rita's own node would hand her the module: it never fits.
    let own = node(&mut s, 7, RITA);
    assert_eq!(s.placement_terms(&w, &own, 5), Err(NoFit::OwnNode));
    assert_eq!(code(&place(&mut s, own)), Some(ErrorCode::Conflict));
    // A node lent for nothing: the lender gets nothing, the app's owner
    // its price.
    let free = node(&mut s, 8, "nina");
    let terms = s.placement_terms(&w, &free, 5).unwrap().unwrap();
    assert_eq!(terms.held, Amount(APP_PRICE));
    assert_eq!(terms.app, Some((BOB.to_string(), Amount(APP_PRICE))));
    ok(place(&mut s, free));
    ok(s.apply(5, &report(&key(8), "job-i", 1, 2_500, true)));
    assert_eq!(balance(&s, "nina"), 0);
    assert_eq!(balance(&s, BOB), APP_PRICE);
    assert_eq!(balance(&s, RITA), 1_000_000 - APP_PRICE);
    assert!(conserved(&s));
}

#[test]
fn a_dataset_is_paid_per_task_and_only_with_its_apps() {
    let (mut s, m) = catalog();
    // Rita's own module may not read a dataset kept for acme/render.
    let mine = {
        let bytes = b"rita's module".to_vec();
        let hash = crate::workloads::module_hash(&bytes);
        ok(s.apply(
            2,
            &Command::PutTenantModule {
                tenant: RITA.into(),
                bytes,
                now_ms: 0,
            },
        ));
        hash
    };
    let r = deploy(&mut s, &mine, uses(None, Some("dora/weather")));
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    ok(deploy(
        &mut s,
        &m,
        uses(Some("acme/render"), Some("dora/weather")),
    ));
    let (owner, folder) = s.dataset_input("rita/job").unwrap();
    assert_eq!((owner, folder.bucket.as_str()), (DORA, "weather"));
    assert_eq!(folder.prefix, "2026/");
    ok(place(&mut s, node_of(&key(1))));
    assert_eq!(s.account(RITA).held, Amount(WORST + APP_PRICE + DATA_PRICE));
    ok(s.apply(5, &report(&key(1), "job-i", 1, 2_500, true)));
    assert_eq!(balance(&s, DORA), DATA_PRICE);
    assert_eq!(balance(&s, BOB), APP_PRICE);
    assert_eq!(
        balance(&s, RITA),
        1_000_000 - 2_550 - APP_PRICE - DATA_PRICE
    );
    assert!(conserved(&s));
    // A plain deploy afterwards uses nothing any more.
    ok(deploy(&mut s, &mine, Uses::default()));
    assert!(s.uses_of("rita/job").is_none());
    assert!(s.dataset_input("rita/job").is_none());
}

#[test]
fn only_what_a_tenant_holds_can_be_published_and_withdrawn_listings_stop_new_deploys() {
    let (mut s, m) = catalog();
    // A module Bob does not store, a bucket Dora does not own, a bad name.
    let other = crate::workloads::module_hash(b"nobody's");
    assert_eq!(
        code(&s.apply(5, &publish_app("other", &other))),
        Some(ErrorCode::NotFound)
    );
    ok(s.apply(
        5,
        &Command::Store(StoreCommand::CreateBucket {
            bucket: Bucket {
                name: "ritas".into(),
                tenant: RITA.into(),
                profile: None,
                scope: DedupeScope::Tenant,
                versioning: Versioning::Unversioned,
                created_ms: 0,
            },
        }),
    ));
    assert_eq!(
        code(&s.apply(5, &publish_dataset("stolen", "ritas", &[]))),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        code(&s.apply(5, &publish_app("Bad Name", &m))),
        Some(ErrorCode::BadRequest)
    );
    assert_eq!(
        code(&s.apply(5, &publish_dataset("w2", "weather", &["not an app"]))),
        Some(ErrorCode::BadRequest)
    );
    // A deploy must run what the app runs now.
    let r = deploy(&mut s, &other, uses(Some("acme/render"), None));
    assert_eq!(code(&r), Some(ErrorCode::Conflict));
    // Withdrawn: new deploys naming it are refused; a second withdrawal
    // finds nothing.
    let withdraw = Command::Catalog(CatalogCommand::Unpublish {
        tenant: BOB.into(),
        kind: ListingKind::App,
        name: "render".into(),
    });
    ok(s.apply(6, &withdraw));
    assert_eq!(code(&s.apply(6, &withdraw)), Some(ErrorCode::NotFound));
    let r = deploy(&mut s, &m, uses(Some("acme/render"), None));
    assert_eq!(code(&r), Some(ErrorCode::NotFound));
}

#[test]
fn a_published_apps_module_outlives_its_owners_workloads() {
    let (mut s, m) = catalog();
    let later = 10 * 24 * 3_600_000;
    let p = s.prunable(later, 1_000, 1_000);
    assert!(
        !p.modules.contains(&(BOB.to_string(), m.clone())),
        "{:?}",
        p.modules
    );
    ok(s.apply(
        6,
        &Command::Catalog(CatalogCommand::Unpublish {
            tenant: BOB.into(),
            kind: ListingKind::App,
            name: "render".into(),
        }),
    ));
    let p = s.prunable(later, 1_000, 1_000);
    assert!(p.modules.contains(&(BOB.to_string(), m)));
}

#[test]
fn a_published_app_takes_no_exec_and_an_image_app_no_command_of_the_requesters() {
    let (mut s, m) = catalog();
    ok(deploy(&mut s, &m, uses(Some("acme/render"), None)));
    ok(place(&mut s, node_of(&key(1))));
    let r = s.apply(
        6,
        &Command::Exec {
            instance: "job-i".into(),
            args: vec!["cat".into(), "/app/secret".into()],
            now_ms: 7,
        },
    );
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    // A container spec that picks its own command, environment or volumes
    // for a published app is refused, naming them.
    let spec = stratus_spec::parse(
        "version: 1\nname: peek\nkind: task\nimage: { name: app, entrypoint: [cat], volumes: [{ name: v, path: /v }] }\nargs: [/etc/passwd]\nenv: { A: b }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let r = s.apply(
        8,
        &Command::DeployUsing {
            deploy: Box::new(Command::DeployWorkload {
                tenant: RITA.into(),
                spec: Box::new(spec),
                module: m.clone(),
                now_ms: 8,
            }),
            uses: uses(Some("acme/render"), None),
        },
    );
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    let msg = r.error.unwrap().message().to_string();
    for field in ["args", "env", "image.entrypoint", "image.volumes"] {
        assert!(msg.contains(field), "{field}: {msg}");
    }
}

#[test]
fn a_signed_order_names_the_app_and_dataset_it_pays_for() {
    use ed25519_dalek::Signer;
    let (mut s, m) = catalog();
    let k = key(9);
    ok(s.apply(
        1,
        &Command::Market(crate::accounts::MarketCommand::SetOrderKey {
            tenant: RITA.into(),
            key: Some(k.verifying_key().to_bytes()),
        }),
    ));
    let spec = stratus_spec::parse(
        "version: 1\nname: job\nkind: task\nwasm: { module: m.wat }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let uses = uses(Some("acme/render"), Some("dora/weather"));
    let signed_for = |named: &str| {
        let mut o = stratus_market::Order {
            max_price: Some(Amount(100_000)),
            prefer: None,
            signature: None,
        };
        let key = k.verifying_key().to_bytes();
        let bytes = o.signed_bytes(RITA, &crate::deals::spec_hash(&spec), named, &key, 1_000);
        o.signature = Some(stratus_market::OrderSignature {
            key,
            expires_ms: 1_000,
            module: named.into(),
            signature: k.sign(&bytes).to_bytes(),
        });
        Command::DeployUsing {
            deploy: Box::new(Command::DeployOrdered {
                deploy: Box::new(Command::DeployWorkload {
                    tenant: RITA.into(),
                    spec: Box::new(spec.clone()),
                    module: m.clone(),
                    now_ms: 10,
                }),
                order: o,
            }),
            uses: uses.clone(),
        }
    };
    // Signed for the module alone, or for another dataset: refused.
    for named in ["", "app:acme/render", "app:acme/render;dataset:dora/other"] {
        let r = s.apply(3, &signed_for(named));
        assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{named}: {r:?}");
    }
    assert_eq!(
        uses.signed_module(""),
        "app:acme/render;dataset:dora/weather"
    );
    ok(s.apply(3, &signed_for(&uses.signed_module(""))));
    assert!(s.uses_of("rita/job").is_some());
}

/// A tenant cannot grow the replicated state without bound by publishing:
/// at most `MAX_LISTINGS_PER_TENANT` apps; re-pricing one still works, and
/// another tenant's datasets are not held back by it.
#[test]
fn listings_per_tenant_are_bounded() {
    let (mut s, m) = catalog();
    // `catalog` published acme/render already.
    for i in 1..super::MAX_LISTINGS_PER_TENANT {
        ok(s.apply(2, &publish_app(&format!("app-{i}"), &m)));
    }
    let r = s.apply(2, &publish_app("one-too-many", &m));
    assert_eq!(code(&r), Some(ErrorCode::Conflict), "{r:?}");
    ok(s.apply(2, &publish_app("render", &m)));
    // Dora's listings are counted apart.
    ok(s.apply(2, &publish_dataset("weather-2", "weather", &[])));
}

/// Only an image app's owner declares it deterministic; a WASM app needs
/// no declaration; publishing it again withdraws the declaration; and a
/// container runs verified only as a declared app.
#[test]
fn an_image_app_is_declared_deterministic_by_its_owner_for_what_it_publishes() {
    use crate::catalog::App;
    let (mut s, m) = catalog();
    let declare = |tenant: &str, name: &str| {
        Command::Catalog(CatalogCommand::DeclareDeterministic {
            tenant: tenant.into(),
            name: name.into(),
        })
    };
    // A WASM app runs deterministically already.
    let r = s.apply(4, &declare(BOB, "render"));
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    // An image app (as if published from Bob's images bucket).
    let image = stratus_types::ImageRef::pinned("forecast:latest", "v1").unwrap();
    s.apps.insert(
        "acme/forecast".into(),
        App {
            owner: BOB.into(),
            name: "forecast".into(),
            payload: stratus_types::Payload::Image(image),
            price: Amount(APP_PRICE),
            published_ms: 1,
        },
    );
    // Another tenant cannot declare it: its id is the declarer's own.
    let r = s.apply(4, &declare(RITA, "forecast"));
    assert_eq!(code(&r), Some(ErrorCode::NotFound), "{r:?}");
    assert!(!s.is_deterministic_app("acme/forecast"));
    // A container not declared deterministic is refused at trust 3.
    let spec = stratus_spec::parse(
        "version: 1\nname: ask\nkind: task\nimage: { name: app }\n",
        stratus_spec::Format::Yaml,
    )
    .unwrap();
    let trusted = |spec: &stratus_spec::WorkloadSpec| Command::DeployTrusted {
        deploy: Box::new(Command::DeployUsing {
            deploy: Box::new(Command::DeployOrdered {
                deploy: Box::new(Command::DeployWorkload {
                    tenant: RITA.into(),
                    spec: Box::new(spec.clone()),
                    module: m.clone(),
                    now_ms: 5,
                }),
                order: stratus_market::Order::default(),
            }),
            uses: uses(Some("acme/forecast"), None),
        }),
        trust: 3,
    };
    let r = s.apply(5, &trusted(&spec));
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    assert!(r.error.unwrap().message().contains("not deterministic"));
    ok(s.apply(4, &declare(BOB, "forecast")));
    assert!(s.is_deterministic_app("acme/forecast"));
    // Published again (another image, perhaps): the declaration is gone.
    s.apps.get_mut("acme/forecast").unwrap().published_ms = 2;
    assert!(!s.is_deterministic_app("acme/forecast"));
}
