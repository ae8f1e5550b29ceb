//! Listing every kind, the checks that keep a listing from being short,
//! fetch, errors and configuration.

use std::sync::Arc;

use recon_core::testkit::conformance::FakeApi;
use recon_core::{ErrorKind, Fetched, ListScope, Provider, Snapshot};
use recon_paddle::{ApiSettings, PaddleProvider};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance::{Paddle, customer, error, provider, time};

async fn all(p: &PaddleProvider, kind: &str) -> recon_core::Result<Vec<Snapshot>> {
    let (mut out, mut cursor) = (Vec::new(), None);
    loop {
        let page = p
            .list_page(kind, &ListScope::all(), cursor.as_deref())
            .await?;
        out.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(out),
        }
    }
}

fn entity(prefix: &str, n: usize, status: &str, extra: Value) -> Value {
    let mut v = json!({"id": format!("{prefix}_01x{n:04}"), "status": status,
        "created_at": time(1_700_000_000), "updated_at": time(1_700_000_000 + n as i64)});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

#[tokio::test]
async fn every_kind_lists_every_state() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    fake.with(|h| {
        let mut put = |kind: &str, v: Vec<Value>| drop(h.objects.insert(kind.into(), v));
        put("customers", vec![customer("ctm_01a", 1), entity("ctm", 2, "archived", json!({}))]);
        let custom = json!({"type": "custom"});
        put("products", vec![entity("pro", 1, "archived", json!({})), entity("pro", 2, "active", json!({})),
            entity("pro", 3, "active", custom.clone())]);
        put("prices", vec![entity("pri", 1, "archived", json!({"product_id": "pro_01x0001"})),
            entity("pri", 2, "active", custom)]);
        put("subscriptions", ["active", "canceled", "past_due", "paused", "trialing"].iter().enumerate()
            .map(|(n, s)| entity("sub", n, s, json!({"customer_id": "ctm_01a", "management_urls": {"cancel": format!("https://x/{n}")}})))
            .collect());
        put("transactions", (0..70).map(|n| entity("txn", n, "completed", json!({"customer_id": "ctm_01a"}))).collect());
    });
    let p = provider(&fake.uri(), 200);
    assert_eq!(all(&p, "customers").await.unwrap().len(), 2);
    // Catalog and non-catalog (`type=custom`, left out unless asked for).
    assert_eq!(all(&p, "products").await.unwrap().len(), 3);
    assert_eq!(all(&p, "prices").await.unwrap().len(), 2);
    let subs = all(&p, "subscriptions").await.unwrap();
    assert_eq!(subs.len(), 5, "every status is asked for");
    assert!(subs.iter().all(|s| s.owner.as_deref() == Some("ctm_01a")));
    assert!(
        subs.iter().all(|s| s.data.get("management_urls").is_none()),
        "temporary links are not state"
    );
    let before = fake.requests();
    assert_eq!(all(&p, "transactions").await.unwrap().len(), 70);
    assert_eq!(
        fake.requests() - before,
        3,
        "transactions come 30 per page at most"
    );
    let e = p
        .list_page("invoices", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("customers, products"), "{e}");
}

#[tokio::test]
async fn both_walks_go_page_by_page() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let custom = json!({"type": "custom"});
    fake.with(|h| {
        let prices = vec![
            entity("pri", 1, "active", json!({})),
            entity("pri", 2, "archived", json!({})),
            entity("pri", 3, "active", custom.clone()),
            entity("pri", 4, "archived", custom.clone()),
            entity("pri", 5, "active", custom.clone()),
        ];
        h.objects.insert("prices".into(), prices);
    });
    let p = provider(&fake.uri(), 1);
    let (mut cursors, mut ids, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let all = ListScope::all();
        let page = p
            .list_page("prices", &all, cursor.as_deref())
            .await
            .unwrap();
        ids.extend(page.items.iter().map(|s| s.key.id.clone()));
        cursors.extend(page.next.clone());
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let want: Vec<String> = (1..=5).map(|n| format!("pri_01x{n:04}")).collect();
    assert_eq!(ids, want, "every price once, catalog then custom");
    // A walk's last page says no more: the next walk starts ("1:").
    let want = ["pri_01x0001", "1:", "1:pri_01x0003", "1:pri_01x0004"];
    assert_eq!(cursors, want);
    for bad in ["", "2:pri_01x0001", "1:ctm_01a", "custom:pri_01x0001"] {
        let e = p
            .list_page("prices", &ListScope::all(), Some(bad))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn a_state_hashes_the_same_by_list_and_by_webhook() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let sub = entity(
        "sub",
        1,
        "active",
        json!({"customer_id": "ctm_01a", "management_urls": {"cancel": "https://x"}}),
    );
    fake.with(|h| drop(h.objects.insert("subscriptions".into(), vec![sub.clone()])));
    let p = provider(&fake.uri(), 10);
    let listed = all(&p, "subscriptions").await.unwrap().remove(0);
    let mut hooked = sub.clone();
    let m = hooked.as_object_mut().unwrap();
    m.remove("management_urls");
    m.insert("transaction_id".into(), json!("txn_01x0001"));
    let ev = recon_paddle::parse_event(
        json!({"event_id": "evt_1", "event_type": "subscription.created",
        "occurred_at": time(1_700_000_005), "data": hooked}),
    )
    .unwrap();
    assert_eq!(ev.snapshots[0].hash, listed.hash);
    assert_eq!(ev.snapshots[0].version, listed.version);
}

#[tokio::test]
async fn versions_are_instants_whatever_the_digits() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let mk = |id: &str, t: &str| json!({"id": id, "status": "active", "updated_at": t});
    fake.with(|h| {
        drop(h.objects.insert(
            "customers".into(),
            vec![
                mk("ctm_01a", "2024-04-12T10:49:38.76Z"),
                mk("ctm_01b", "2024-04-12T10:49:38.100000001Z"),
                mk("ctm_01c", "2024-04-12T10:49:38Z"),
            ],
        ))
    });
    let p = provider(&fake.uri(), 10);
    let v: Vec<i64> = all(&p, "customers")
        .await
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    let base = 1_712_918_978_000_000;
    assert_eq!(v, [base + 760_000, base + 100_000, base]);
}

async fn serving(body: Value) -> (MockServer, PaddleProvider) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let p = provider(&server.uri(), 10);
    (server, p)
}

#[tokio::test]
async fn a_listing_that_could_skip_entities_is_an_error() {
    let page = |ids: &[&str], more: bool| {
        json!({"data": ids.iter().map(|i| customer(i, 1)).collect::<Vec<_>>(),
        "meta": {"pagination": {"has_more": more, "per_page": 10}}})
    };
    for (body, why) in [
        (page(&["ctm_01b", "ctm_01a"], false), "not in id order"),
        (page(&[], true), "more follow"),
        (json!({"data": []}), "whether more follow"),
        (
            json!({"data": {}, "meta": {"pagination": {"has_more": false}}}),
            "a list of items",
        ),
    ] {
        let (_server, p) = serving(body).await;
        let e = p
            .list_page("customers", &ListScope::all(), None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{why}: {e}");
    }
    // A cursor that is not an id of the kind is refused before any request.
    let (_server, p) = serving(page(&[], false)).await;
    let e = p
        .list_page("customers", &ListScope::all(), Some("ctm_01&x=1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn fetch_checks_what_it_asks_and_gets() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    fake.with(|h| {
        drop(
            h.objects
                .insert("customers".into(), vec![customer("ctm_01a", 5)]),
        )
    });
    let p = provider(&fake.uri(), 10);
    assert!(matches!(
        p.fetch("customers", "ctm_01a").await.unwrap(),
        Fetched::Found(_)
    ));
    assert!(matches!(
        p.fetch("customers", "ctm_01zz").await.unwrap(),
        Fetched::NotFound
    ));
    for (kind, id) in [
        ("customers", "sub_01a"),
        ("customers", "ctm_01a/../x"),
        ("customers", ""),
    ] {
        let e = p.fetch(kind, id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{id}");
    }
    // Another entity in the answer (a proxy's cache, a rewrite) is an error.
    let (_server, p) = serving(json!({"data": customer("ctm_01b", 1)})).await;
    assert!(p.fetch("customers", "ctm_01a").await.is_err());
}

#[tokio::test]
async fn paddle_errors_are_classified_without_leaking_the_key() {
    for (status, code, kind) in [
        (403, "invalid_token", ErrorKind::Unauthenticated),
        (403, "authentication_malformed", ErrorKind::Unauthenticated),
        (403, "forbidden", ErrorKind::PermissionDenied),
        (400, "bad_request", ErrorKind::InvalidInput),
        (404, "not_found", ErrorKind::NotFound),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(error(status, code))
            .mount(&server)
            .await;
        let p = provider(&server.uri(), 10);
        let e = p
            .list_page("customers", &ListScope::all(), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{code}: {e}");
        if status != 404 {
            assert!(e.to_string().contains(code), "{e}");
            assert!(e.to_string().contains("req-conformance"), "{e}");
        }
        assert!(!e.to_string().contains("secretpart"), "{e}");
        if kind == ErrorKind::Unauthenticated {
            assert!(e.to_string().contains("PADDLE_API_KEY"), "{e}");
        }
    }
}

#[test]
fn configuration_names_variables_and_picks_the_host() {
    let vars = |pairs: &'static [(&str, &str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let e = recon_paddle::from_vars(vars(&[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("PADDLE_API_KEY"), "{e}");
    let c =
        recon_paddle::from_vars(vars(&[("PADDLE_API_KEY", "pdl_sdbx_apikey_01x_secret")])).unwrap();
    assert_eq!(c.api_base, recon_paddle::SANDBOX_API_BASE);
    assert_eq!(c.rate, None, "the default budget, DEFAULT_RATE, applies");
    let c =
        recon_paddle::from_vars(vars(&[("PADDLE_API_KEY", "pdl_live_apikey_01x_secret")])).unwrap();
    assert_eq!(c.api_base, recon_paddle::DEFAULT_API_BASE);
    let c = recon_paddle::from_vars(vars(&[
        ("PADDLE_API_KEY", "pdl_sdbx_apikey_01x_secret"),
        ("PADDLE_API_BASE", "http://127.0.0.1:1234/"),
        ("PADDLE_RATE", "10/s"),
    ]))
    .unwrap();
    assert_eq!(c.api_base, "http://127.0.0.1:1234");
    assert!(!format!("{c:?}").contains("01x_secret"), "{c:?}");
    for (k, v) in [("PADDLE_RATE", "fast"), ("PADDLE_API_BASE", "ftp://x")] {
        let pairs: &'static [(&str, &str)] = Box::leak(
            vec![("PADDLE_API_KEY", "pdl_live_apikey_01x_secret"), (k, v)].into_boxed_slice(),
        );
        let e = recon_paddle::from_vars(vars(pairs)).unwrap_err();
        assert!(
            e.to_string().contains(k) && !e.to_string().contains("01x_secret"),
            "{e}"
        );
    }
    // Page sizes are checked against what Paddle serves.
    let cfg = recon_paddle::config("pdl_live_apikey_x");
    assert_eq!(cfg.page_size, recon_paddle::MAX_PAGE_SIZE);
    let e = PaddleProvider::new(cfg.with_page_size(201)).unwrap_err();
    assert!(e.to_string().contains("between 1 and 200"), "{e}");
}

#[tokio::test]
async fn bodies_that_are_not_pages_are_errors_not_panics() {
    for body in [json!([]), json!("ok"), json!(7), json!({"meta": {}})] {
        let (_server, p) = serving(body.clone()).await;
        let e = p.list_page("customers", &ListScope::all(), None).await;
        assert!(e.is_err(), "{body}: {e:?}");
        let e = p.fetch("customers", "ctm_01a").await;
        assert!(e.is_err(), "{body}: {e:?}");
    }
}

#[tokio::test]
async fn a_not_found_about_something_else_is_not_a_missing_entity() {
    // A gateway's not_found for a route (a wrong PADDLE_API_BASE) must not
    // read as "this customer does not exist": that would become a tombstone.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(error(404, "not_found"))
        .mount(&server)
        .await;
    let p = provider(&server.uri(), 10);
    let e = p.fetch("customers", "ctm_01a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(crate::conformance::not_found("ctm_01a"))
        .mount(&server)
        .await;
    let p = provider(&server.uri(), 10);
    assert!(matches!(
        p.fetch("customers", "ctm_01a").await.unwrap(),
        Fetched::NotFound
    ));
}

#[tokio::test]
async fn versions_follow_what_the_entity_embeds() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let sub = |product_at: i64| {
        entity(
            "sub",
            1,
            "active",
            json!({"customer_id": "ctm_01a", "items": [{
            "updated_at": time(1_700_000_001),
            "price": {"id": "pri_01a", "updated_at": time(1_700_000_002)},
            "product": {"id": "pro_01a", "name": "Renamed", "updated_at": time(product_at)}}]}),
        )
    };
    // The product was renamed after the subscription's own updated_at.
    fake.with(|h| {
        drop(
            h.objects
                .insert("subscriptions".into(), vec![sub(1_700_000_500)]),
        )
    });
    let p = provider(&fake.uri(), 10);
    let s = all(&p, "subscriptions").await.unwrap().remove(0);
    assert_eq!(s.version, 1_700_000_500_123_456);
    // A time that does not parse is refused, not replaced by another.
    let mut bad = sub(1);
    bad["updated_at"] = json!("yesterday");
    fake.with(|h| drop(h.objects.insert("subscriptions".into(), vec![bad])));
    let e = all(&p, "subscriptions").await.unwrap_err();
    assert!(e.to_string().contains("not an RFC 3339 time"), "{e}");
}
