//! Listings, partitions, fetches and owners against the emulator.

use std::collections::BTreeSet;

use recon_core::testkit::provider_suite;
use recon_core::{Fetched, ListScope, Provider};
use serde_json::json;

use crate::fake::{Fake, customers, provider};

const TOP: i64 = 1_760_000_000;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn pagination_reaches_the_end_newest_first() {
    let fake = Fake::new();
    customers(&fake, 250, TOP);
    let server = fake.start().await;
    let p = provider(&server.uri());
    let before = now();
    provider_suite::listing_is_complete(&p, "customers", &fake.ids("customers")).await;
    assert_eq!(fake.requests(), 3, "250 objects are three pages");
    let page = p
        .list_page("customers", &ListScope::all(), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 100);
    assert_eq!(page.next.as_deref(), Some("cus_00000099"));
    let s = &page.items[0];
    assert!(
        s.version >= before && s.version <= now(),
        "version is the request second"
    );
    assert_eq!(s.email.as_deref(), Some("cus_00000000@example.com"));
    assert_eq!(
        (s.key.provider.as_str(), s.key.account.as_str()),
        ("stripe", "default")
    );
}

#[tokio::test]
async fn pagination_reaches_the_end_oldest_first() {
    let fake = Fake::new();
    fake.set_oldest_first(true);
    customers(&fake, 250, TOP);
    let server = fake.start().await;
    let p = provider(&server.uri());
    provider_suite::listing_is_complete(&p, "customers", &fake.ids("customers")).await;
    let page = p
        .list_page("customers", &ListScope::all(), None)
        .await
        .unwrap();
    // The cursor is the last object of the page in the server's order.
    assert_eq!(page.next.as_deref(), Some("cus_00000150"));
}

/// Objects on one second, before 2009, in the future and in a dense band:
/// every boundary case of the cut points.
fn awkward_population(fake: &Fake) {
    customers(fake, 1_500, TOP);
    let mut n = 0;
    let mut add = |created: i64| {
        n += 1;
        fake.add(
            "customers",
            json!({"id": format!("cus_x{n:05}"), "object": "customer", "created": created}),
        );
    };
    for _ in 0..260 {
        add(TOP - 700); // 260 objects in one second, inside the band
    }
    for c in [0, 5, 1_000_000, 1_230_767_999, 1_230_768_000, 1_230_768_001] {
        add(c);
    }
    for d in 0..40 {
        add(now() - 3600 + d - 20); // around the first coarse boundary
        add(now() + 1000 + d); // created "after now"
    }
    for d in 0..300 {
        add(TOP - 40_000_000 + d * 97); // an older, sparser band
    }
}

#[tokio::test]
async fn partitions_equal_a_single_cursor() {
    for oldest_first in [false, true] {
        let fake = Fake::new();
        fake.set_oldest_first(oldest_first);
        awkward_population(&fake);
        let server = fake.start().await;
        let p = provider(&server.uri());
        for n in [2, 8, 40] {
            provider_suite::partitions_equal_single_cursor(&p, "customers", n).await;
            let scopes = p.partitions("customers", n).await.unwrap();
            assert!(
                scopes.len() > 1 && scopes.len() <= n + n / 4,
                "{n}: {}",
                scopes.len()
            );
            assert_eq!(scopes[0].created_gte, None, "first scope open below");
            assert_eq!(
                scopes.last().unwrap().created_lt,
                None,
                "last scope open above"
            );
            for w in scopes.windows(2) {
                assert_eq!(w[0].created_lt, w[1].created_gte, "scopes are contiguous");
            }
        }
        provider_suite::listing_is_complete(&p, "customers", &fake.ids("customers")).await;
    }
}

#[tokio::test]
async fn partitions_spread_a_dense_band_evenly() {
    // The benchmark's shape: objects one second apart, long ago.
    let fake = Fake::new();
    customers(&fake, 12_000, 1_700_012_001);
    let server = fake.start().await;
    let p = provider(&server.uri());
    let scopes = p.partitions("customers", 40).await.unwrap();
    let probes = fake.requests();
    assert!(probes <= 60, "{probes} probe requests");
    let mut sizes = Vec::new();
    for s in &scopes {
        sizes.push(provider_suite::list_all(&p, "customers", s).await.len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 12_000);
    let biggest = *sizes.iter().max().unwrap();
    let working = sizes.iter().filter(|s| **s > 0).count();
    eprintln!(
        "{probes} probes, {} scopes, {working} with objects: {sizes:?}",
        scopes.len()
    );
    // 40 cursors share 120 pages; most of them get work, none too much.
    assert!(
        working >= 30 && scopes.len() <= 50,
        "{} scopes: {sizes:?}",
        scopes.len()
    );
    assert!(biggest <= 450, "largest scope {biggest}: {sizes:?}");
}

#[tokio::test]
async fn small_kinds_are_one_scope() {
    let fake = Fake::new();
    customers(&fake, 40, TOP);
    let server = fake.start().await;
    let p = provider(&server.uri());
    assert_eq!(
        p.partitions("customers", 8).await.unwrap(),
        vec![ListScope::all()]
    );
    assert_eq!(
        p.partitions("customers", 1).await.unwrap(),
        vec![ListScope::all()]
    );
}

fn subscriptions(fake: &Fake) {
    for (i, status) in ["active", "canceled", "past_due", "canceled", "trialing"]
        .iter()
        .enumerate()
    {
        fake.add(
            "subscriptions",
            json!({"id": format!("sub_{i}"), "object": "subscription", "created": TOP - i as i64,
                   "customer": if i % 2 == 0 { "cus_a" } else { "cus_b" }, "status": status,
                   "items": {"object": "list", "data": [{"id": format!("si_{i}"), "current_period_end": TOP + 100}]}}),
        );
    }
    for (i, status) in ["open", "paid"].iter().enumerate() {
        fake.add(
            "invoices",
            json!({"id": format!("in_{i}"), "object": "invoice", "created": TOP - i as i64,
                   "customer": "cus_a", "status": status,
                   "parent": {"subscription_details": {"subscription": "sub_0"}}}),
        );
    }
    fake.add(
        "customers",
        json!({"id": "cus_a", "object": "customer", "created": TOP - 10, "email": "a@x.io"}),
    );
    fake.add(
        "customers",
        json!({"id": "cus_b", "object": "customer", "created": TOP - 11}),
    );
}

#[tokio::test]
async fn subscriptions_include_canceled_ones() {
    let fake = Fake::new();
    subscriptions(&fake);
    let server = fake.start().await;
    let p = provider(&server.uri());
    provider_suite::listing_is_complete(&p, "subscriptions", &fake.ids("subscriptions")).await;
    provider_suite::partitions_equal_single_cursor(&p, "subscriptions", 4).await;
    assert!(
        fake.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("/v1/subscriptions"))
            .all(|l| l.contains("status=all"))
    );
    let page = p
        .list_page("subscriptions", &ListScope::all(), None)
        .await
        .unwrap();
    let canceled = page.items.iter().find(|s| s.key.id == "sub_1").unwrap();
    assert_eq!(canceled.status.as_deref(), Some("canceled"));
    assert_eq!(canceled.owner.as_deref(), Some("cus_b"));
}

#[tokio::test]
async fn fetch_answers_found_deleted_and_not_found() {
    let fake = Fake::new();
    customers(&fake, 3, TOP);
    {
        let mut s = fake.state.lock().unwrap();
        s.deleted_200.insert("cus_gone200".into());
        s.deleted_404.insert("cus_gone404".into());
    }
    let server = fake.start().await;
    let p = provider(&server.uri());
    provider_suite::fetch_semantics(
        &p,
        "customers",
        "cus_00000001",
        "cus_gone200",
        "cus_unknown",
    )
    .await;
    provider_suite::fetch_semantics(
        &p,
        "customers",
        "cus_00000001",
        "cus_gone404",
        "cus_unknown",
    )
    .await;
    let before = now();
    match p.fetch("customers", "cus_gone200").await.unwrap() {
        Fetched::Deleted(s) => {
            assert!(s.deleted);
            assert!(s.version >= before);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.fetch("customers", "cus_gone404").await.unwrap(),
        Fetched::NotFound
    ));
    // Ids go into URLs: anything but a plain id is refused before a request.
    let n = fake.requests();
    assert!(p.fetch("customers", "../v1/customers").await.is_err());
    assert!(p.fetch("widgets", "cus_1").await.is_err());
    assert_eq!(fake.requests(), n);
}

#[tokio::test]
async fn kinds_are_consistent_and_capabilities_stated() {
    let p = provider("http://127.0.0.1:9");
    provider_suite::kinds_are_consistent(
        &p,
        &[
            "cus_1", "sub_1", "in_1", "price_1", "prod_1", "pi_1", "evt_1", "si_1",
        ],
    );
    let c = p.capabilities();
    assert!(c.partitioned_listing && c.owner_lookup && c.event_log);
    assert_eq!(c.event_horizon, Some(30 * 24 * 3600));
    assert_eq!(p.name(), "stripe");
    // Before any answer has shown Stripe's clock: the lowest time it may
    // plausibly be at (local time minus the webhook tolerance).
    assert!((p.version_now() - (now() - 300)).abs() <= 1);
    assert_eq!(recon_stripe::StripeProvider::references().len(), 2);
}

#[tokio::test]
async fn owned_by_lists_a_customer_and_what_it_owns() {
    let fake = Fake::new();
    subscriptions(&fake);
    let server = fake.start().await;
    let p = provider(&server.uri());
    let got: BTreeSet<String> = p
        .owned_by("cus_a")
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}/{}", s.key.kind, s.key.id))
        .collect();
    let want: BTreeSet<String> = [
        "customers/cus_a",
        "subscriptions/sub_0",
        "subscriptions/sub_2",
        "subscriptions/sub_4",
        "invoices/in_0",
        "invoices/in_1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert!(p.owned_by("cus_nobody").await.unwrap().is_empty());
    assert!(p.owned_by("sub_0").await.is_err());
}

#[tokio::test]
async fn connect_account_is_sent_and_keys_use_it() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::header("stripe-account", "acct_123"))
        .and(wiremock::matchers::header(
            "stripe-version",
            recon_stripe::STRIPE_VERSION,
        ))
        .and(wiremock::matchers::header(
            "authorization",
            "Bearer sk_test_recon_fake",
        ))
        .and(wiremock::matchers::query_param("limit", "100"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "has_more": false,
            "data": [{"id": "cus_1", "object": "customer", "created": 1}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let p = recon_stripe::StripeProvider::new(
        crate::fake::config(&server.uri()).with_account("acct_123"),
    )
    .unwrap();
    assert_eq!(p.account(), "acct_123");
    let page = p
        .list_page("customers", &ListScope::all(), None)
        .await
        .unwrap();
    assert_eq!(page.items[0].key.account, "acct_123");
    assert!(page.next.is_none());
}

/// A server whose answer depends on `Stripe-Account`: `with` for requests
/// carrying `acct_x`, `without` for requests carrying none.
async fn per_account(
    with: wiremock::ResponseTemplate,
    without: wiremock::ResponseTemplate,
) -> wiremock::MockServer {
    use wiremock::matchers::{header, method, path};
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("GET"))
        .and(path("/v1/customers/cus_1"))
        .and(header("stripe-account", "acct_x"))
        .respond_with(with)
        .with_priority(1)
        .mount(&server)
        .await;
    wiremock::Mock::given(method("GET"))
        .and(path("/v1/customers/cus_1"))
        .and(NoStripeAccount)
        .respond_with(without)
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

/// Matches requests without a `Stripe-Account` header.
struct NoStripeAccount;

impl wiremock::Match for NoStripeAccount {
    fn matches(&self, req: &wiremock::Request) -> bool {
        !req.headers.contains_key("stripe-account")
    }
}

fn customer_1() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200)
        .set_body_json(json!({"id": "cus_1", "object": "customer", "created": 1, "email": "x@y"}))
}

fn missing() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(404).set_body_json(json!({"error": {
        "type": "invalid_request_error", "code": "resource_missing",
        "message": "No such customer: 'cus_1'"}}))
}

async fn account_headers(server: &wiremock::MockServer) -> Vec<Option<String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("stripe-account")
                .map(|v| v.to_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn fetch_in_a_connect_account_sends_its_header() {
    // The platform has no cus_1; the connected account acct_x has it.
    let server = per_account(customer_1(), missing()).await;
    let p = provider(&server.uri());
    match p.fetch_in("acct_x", "customers", "cus_1").await.unwrap() {
        Fetched::Found(s) => {
            assert_eq!(s.key.account, "acct_x");
            assert_eq!(s.email.as_deref(), Some("x@y"));
        }
        other => panic!("a Connect object fetched as the platform: {other:?}"),
    }
    assert_eq!(account_headers(&server).await, vec![Some("acct_x".into())]);
}

#[tokio::test]
async fn a_platform_404_never_decides_about_a_connect_object() {
    // Under acct_x the customer is gone; the platform has one of the same id.
    // Only the answer made under acct_x counts.
    let server = per_account(missing(), customer_1()).await;
    let p = provider(&server.uri());
    assert!(matches!(
        p.fetch_in("acct_x", "customers", "cus_1").await.unwrap(),
        Fetched::NotFound
    ));
    // And the other way round: the platform's own object is fetched
    // without the header, by a platform instance and by one acting as a
    // Connect account alike.
    let server = per_account(missing(), customer_1()).await;
    let platform = provider(&server.uri());
    let connect = recon_stripe::StripeProvider::new(
        crate::fake::config(&server.uri()).with_account("acct_x"),
    )
    .unwrap();
    for p in [&platform, &connect] {
        match p.fetch_in("default", "customers", "cus_1").await.unwrap() {
            Fetched::Found(s) => assert_eq!(s.key.account, "default"),
            other => panic!("{other:?}"),
        }
    }
    // The instance's own account goes through `fetch` unchanged.
    assert!(matches!(
        connect
            .fetch_in("acct_x", "customers", "cus_1")
            .await
            .unwrap(),
        Fetched::NotFound
    ));
    assert!(matches!(
        platform.fetch("customers", "cus_1").await.unwrap(),
        Fetched::Found(_)
    ));
    assert_eq!(
        account_headers(&server).await,
        vec![None, None, Some("acct_x".into()), None]
    );
}

#[tokio::test]
async fn fetch_in_refuses_what_is_not_an_account() {
    let server = per_account(customer_1(), customer_1()).await;
    let p = provider(&server.uri());
    for bad in ["", "acct_", "acct_x/../y", "cus_1", "platform"] {
        let e = p.fetch_in(bad, "customers", "cus_1").await.unwrap_err();
        assert_eq!(e.kind(), recon_core::ErrorKind::InvalidInput, "{bad:?}");
    }
    assert!(account_headers(&server).await.is_empty());
}
