//! Listings walked to the end, the checks that make an incomplete walk an
//! error, fetches, and the owner lookup.

use std::sync::Arc;

use recon_clerk::CLERK_API_VERSION;
use recon_core::testkit::provider_suite::{
    fetch_semantics, kinds_are_consistent, list_all, listing_is_complete,
};
use recon_core::{ErrorKind, Fetched, ListScope, Provider};

use crate::fake::{Fake, membership, org, provider, user};

/// List `kind` to the end; the first error ends it.
async fn walk(p: &dyn Provider, kind: &str) -> recon_core::Result<()> {
    let mut cursor = None;
    loop {
        let page = p
            .list_page(kind, &ListScope::all(), cursor.as_deref())
            .await?;
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(()),
        }
    }
}

#[tokio::test]
async fn users_are_walked_with_the_cursor_over_several_pages() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = fake.add_users(7);
    let p = provider(&server.uri(), 3);
    listing_is_complete(&p, "users", &ids).await;

    let log = fake.log();
    let lists: Vec<&String> = log.iter().filter(|l| l.starts_with("/v1/users?")).collect();
    assert_eq!(lists.len(), 3, "{log:?}");
    assert!(
        lists
            .iter()
            .all(|l| l.contains("order_by=%2Bcreated_at") && l.contains("limit=3"))
    );
    assert!(!lists[0].contains("starting_after"));
    assert!(lists[1].contains("starting_after=user_002"), "{}", lists[1]);
    assert!(lists[2].contains("starting_after=user_005"), "{}", lists[2]);
    // The completed walk is cross-checked against the count, up to the newest listed.
    let counts: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("/v1/users/count"))
        .collect();
    assert_eq!(counts.len(), 1, "{log:?}");
    assert!(
        counts[0].contains(&format!("created_at_before={}", 1_700_000_006_001i64)),
        "{}",
        counts[0]
    );
    assert_eq!(
        fake.versions().into_iter().collect::<Vec<_>>(),
        vec![CLERK_API_VERSION]
    );
}

#[tokio::test]
async fn a_listing_of_an_exact_multiple_ends_on_an_empty_page() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = fake.add_users(6);
    let p = provider(&server.uri(), 3);
    listing_is_complete(&p, "users", &ids).await;
    assert_eq!(fake.count("/v1/users"), 3);
    // And an empty instance lists nothing, checked against an unfiltered count.
    let empty = Fake::new();
    let server = empty.start().await;
    listing_is_complete(&provider(&server.uri(), 3), "users", &Default::default()).await;
    assert!(
        empty.log().contains(&"/v1/users/count".to_string()),
        "{:?}",
        empty.log()
    );
}

#[tokio::test]
async fn users_signing_up_during_the_listing_do_not_fail_it() {
    let fake = Fake::new();
    let server = fake.start().await;
    let mut ids = fake.add_users(5);
    // One signs up while the walk is under way (it is appended and listed),
    // one after the walk's last page (newer than anything listed: not counted).
    fake.hook(|d, path, n| {
        if path == "/v1/users" && n == 1 {
            d.users.push(user("user_late1", 1_800_000_000_000));
        }
        if path == "/v1/users/count" {
            d.users.push(user("user_late2", 1_800_000_000_001));
        }
    });
    ids.insert("user_late1".into());
    listing_is_complete(&provider(&server.uri(), 2), "users", &ids).await;
}

#[tokio::test]
async fn a_count_beyond_the_tolerance_makes_the_listing_incomplete() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = fake.add_users(5);
    fake.with(|d| d.count_bias = 2);

    // Two users Clerk counts but the walk did not return: with a tolerance of 2, accepted.
    let tolerant = recon_clerk::ClerkProvider::new(
        crate::fake::config(&server.uri(), 2).with_user_count_tolerance(2),
    )
    .unwrap();
    listing_is_complete(&tolerant, "users", &ids).await;

    // Without tolerance (the default), the last page is an error: not temporary.
    let strict = provider(&server.uri(), 2);
    let mut cursor = None;
    let err = loop {
        match strict
            .list_page("users", &ListScope::all(), cursor.as_deref())
            .await
        {
            Ok(page) => cursor = Some(page.next.expect("the listing must not end successfully")),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!err.is_temporary());
    assert!(
        err.message().contains("incomplete") && err.message().contains("nothing will be deleted"),
        "{err}"
    );

    // Beyond a tolerance: 3 missing, 2 allowed.
    fake.with(|d| d.count_bias = 3);
    let err = walk(&tolerant, "users").await.unwrap_err();
    assert!(err.message().contains("counts 8"), "{err}");
}

#[tokio::test]
async fn a_server_that_ignores_the_cursor_is_caught() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(5);
    fake.with(|d| d.ignore_cursor = true);
    let p = provider(&server.uri(), 2);
    let first = p.list_page("users", &ListScope::all(), None).await.unwrap();
    let e = p
        .list_page("users", &ListScope::all(), first.next.as_deref())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("out of created_at order"), "{e}");
}

#[tokio::test]
async fn cursors_and_scopes_are_checked() {
    let fake = Fake::new();
    let server = fake.start().await;
    let p = provider(&server.uri(), 2);
    let e = p
        .list_page("users", &ListScope::all(), Some("../../admin"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let scope = ListScope {
        created_gte: Some(1),
        created_lt: None,
    };
    assert_eq!(
        p.list_page("users", &scope, None).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        p.list_page("sessions", &ListScope::all(), None)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert!(fake.log().is_empty());
}

fn add_orgs(fake: &Fake, n: usize) -> std::collections::BTreeSet<String> {
    fake.with(|d| {
        (0..n)
            .map(|i| {
                let id = format!("org_{i:03}");
                d.organizations.push(org(&id, 1_700_000_000_000 + i as i64));
                id
            })
            .collect()
    })
}

#[tokio::test]
async fn organizations_are_walked_with_offsets_and_checked_against_total_count() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = add_orgs(&fake, 8);
    let p = provider(&server.uri(), 3);
    listing_is_complete(&p, "organizations", &ids).await;
    let log = fake.log();
    // Pages after the first start early (overlap 2 with pages of 3).
    assert!(log[0].contains("offset=0"), "{log:?}");
    assert!(log[1].contains("offset=1"), "{log:?}");
    assert!(log.iter().all(|l| l.contains("order_by=%2Bcreated_at")));

    // A total_count the walk did not reach: incomplete.
    fake.with(|d| d.total_bias = 1);
    let e = walk(&p, "organizations").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("reports 9"), "{e}");
}

#[tokio::test]
async fn a_removal_during_an_offset_walk_does_not_skip_anything() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = add_orgs(&fake, 9);
    // After the first page (org_000..002), org_000 is deleted: every offset
    // shifts by one. A plain offset walk would skip org_003.
    fake.hook(|d, path, n| {
        if path == "/v1/organizations" && n == 1 {
            d.remove("org_000");
        }
    });
    let p = provider(&server.uri(), 3);
    let got: std::collections::BTreeSet<String> = list_all(&p, "organizations", &ListScope::all())
        .await
        .into_keys()
        .collect();
    assert_eq!(
        got, ids,
        "every organization once, the removed one included"
    );
}

#[tokio::test]
async fn removals_beyond_the_overlap_make_the_walk_incomplete() {
    let fake = Fake::new();
    let server = fake.start().await;
    add_orgs(&fake, 9);
    fake.hook(|d, path, n| {
        if path == "/v1/organizations" && n == 1 {
            for id in ["org_000", "org_001", "org_002"] {
                d.remove(id);
            }
        }
    });
    let p = provider(&server.uri(), 3);
    let first = p
        .list_page("organizations", &ListScope::all(), None)
        .await
        .unwrap();
    let e = p
        .list_page("organizations", &ListScope::all(), first.next.as_deref())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(!e.is_temporary());
    assert!(e.message().contains("changed during the listing"), "{e}");
}

fn add_memberships(fake: &Fake) -> std::collections::BTreeSet<String> {
    fake.add_users(3);
    add_orgs(fake, 2);
    fake.with(|d| {
        let mut ids = std::collections::BTreeSet::new();
        for (i, (o, u)) in [
            ("org_000", "user_000"),
            ("org_000", "user_001"),
            ("org_001", "user_001"),
            ("org_001", "user_002"),
            ("org_000", "user_002"),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("orgmem_{i:03}");
            d.memberships
                .push(membership(&id, o, u, 1_700_000_100_000 + i as i64));
            ids.insert(id);
        }
        ids
    })
}

#[tokio::test]
async fn memberships_are_listed_instance_wide_with_role_and_owner() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = add_memberships(&fake);
    let p = provider(&server.uri(), 2);
    listing_is_complete(&p, "organization_memberships", &ids).await;
    let page = p
        .list_page("organization_memberships", &ListScope::all(), None)
        .await
        .unwrap();
    let s = &page.items[0];
    assert_eq!(s.key.id, "orgmem_000");
    assert_eq!(s.owner.as_deref(), Some("user_000"));
    assert_eq!(s.status.as_deref(), Some("org:member"));
    kinds_are_consistent(&p, &["user_1", "org_1", "orgmem_1", "sess_1", "idn_1"]);
}

#[tokio::test]
async fn fetch_semantics_hold_for_every_kind() {
    let fake = Fake::new();
    let server = fake.start().await;
    add_memberships(&fake);
    let p = provider(&server.uri(), 2);
    // Seen by a listing first, as in a sweep.
    list_all(&p, "organization_memberships", &ListScope::all()).await;
    fake.with(|d| {
        d.remove("user_000");
        d.remove("org_001");
        d.remove("orgmem_001");
    });
    fetch_semantics(&p, "users", "user_001", "user_000", "user_zzz").await;
    fetch_semantics(&p, "organizations", "org_000", "org_001", "org_zzz").await;
    fetch_semantics(
        &p,
        "organization_memberships",
        "orgmem_002",
        "orgmem_001",
        "orgmem_zzz",
    )
    .await;

    match p.fetch("users", "user_001").await.unwrap() {
        Fetched::Found(s) => {
            assert_eq!(s.email.as_deref(), Some("user_001@example.test"));
            assert_eq!(s.version, 1_700_000_001_001, "the object's updated_at");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.fetch("users", "../x").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn an_unseen_membership_is_located_by_one_shared_walk() {
    let fake = Fake::new();
    let server = fake.start().await;
    add_memberships(&fake);
    // How many requests one walk of the instance-wide listing takes.
    list_all(
        &provider(&server.uri(), 2),
        "organization_memberships",
        &ListScope::all(),
    )
    .await;
    let walk = fake.count("/v1/organization_memberships");
    fake.clear_log();
    let p = Arc::new(provider(&server.uri(), 2));
    // A fresh adapter (a CLI run) has seen no membership: concurrent fetches
    // share one walk of the instance-wide listing.
    let mut tasks = Vec::new();
    for id in [
        "orgmem_000",
        "orgmem_003",
        "orgmem_gone",
        "orgmem_004",
        "orgmem_nope",
    ] {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            (id, p.fetch("organization_memberships", id).await.unwrap())
        }));
    }
    for t in tasks {
        let (id, got) = t.await.unwrap();
        match (id, got) {
            ("orgmem_gone" | "orgmem_nope", Fetched::NotFound) => {}
            (_, Fetched::Found(s)) => assert_eq!(s.key.id, id),
            (id, other) => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(
        fake.count("/v1/organization_memberships"),
        walk,
        "one walk: {:?}",
        fake.log()
    );
    // Later fetches of known memberships go straight to their user.
    fake.clear_log();
    assert!(matches!(
        p.fetch("organization_memberships", "orgmem_001")
            .await
            .unwrap(),
        Fetched::Found(_)
    ));
    assert_eq!(
        fake.log(),
        vec!["/v1/users/user_001/organization_memberships?limit=500&offset=0"]
    );
    // A membership removed since is not found, and a fetch that started
    // after the walk walks again before saying so.
    fake.with(|d| d.remove("orgmem_001"));
    assert!(matches!(
        p.fetch("organization_memberships", "orgmem_001")
            .await
            .unwrap(),
        Fetched::NotFound
    ));
    fake.clear_log();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(matches!(
        p.fetch("organization_memberships", "orgmem_001")
            .await
            .unwrap(),
        Fetched::NotFound
    ));
    assert!(
        fake.count("/v1/organization_memberships") > 0,
        "{:?}",
        fake.log()
    );
}

#[tokio::test]
async fn owned_by_returns_the_user_and_their_memberships() {
    let fake = Fake::new();
    let server = fake.start().await;
    add_memberships(&fake);
    let p = provider(&server.uri(), 2);
    let got = p.owned_by("user_001").await.unwrap();
    assert_eq!(got[0].key.id, "user_001");
    let ids: std::collections::BTreeSet<&str> =
        got[1..].iter().map(|s| s.key.id.as_str()).collect();
    assert_eq!(ids, ["orgmem_001", "orgmem_002"].into());
    assert!(
        got[1..]
            .iter()
            .all(|s| s.owner.as_deref() == Some("user_001"))
    );
    assert!(p.owned_by("user_zzz").await.unwrap().is_empty());
    assert_eq!(
        p.owned_by("org_000").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(p.capabilities().owner_lookup);
    // A membership of a deleted user is gone with it.
    fake.with(|d| d.users.retain(|u| u["id"] != "user_002"));
    assert!(matches!(
        p.fetch("organization_memberships", "orgmem_003")
            .await
            .unwrap(),
        Fetched::NotFound
    ));
}
