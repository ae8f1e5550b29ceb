//! Stripe's webhook endpoints (`recon_stripe::endpoints`) against wiremock
//! on 127.0.0.1: the paginated listing, what `check` finds, the create and
//! its secret, and a refused key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use recon_core::{ErrorKind, Rate};
use recon_stripe::ApiSettings;
use recon_stripe::StripeConfig;
use recon_stripe::endpoints::{
    Endpoints, Finding, WebhookEndpoint, check, expected_url, needed_event_types,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk_test_recon_endpoints_0123456789";
const PUBLIC: &str = "https://app.example.com";
const OURS: &str = "https://app.example.com/webhooks/stripe";

fn config(uri: &str) -> StripeConfig {
    StripeConfig::new(KEY)
        .with_api_base(uri)
        .with_rate(Rate::per_second(10_000))
        .with_retry_policy(recon_core::testkit::fast_retries())
        .with_request_timeout(Duration::from_secs(10))
}

fn endpoint(id: &str, url: &str, status: &str, events: &[&str]) -> Value {
    json!({
        "id": id, "object": "webhook_endpoint", "api_version": null, "application": null,
        "created": 1_700_000_000, "description": null, "enabled_events": events,
        "livemode": false, "metadata": {}, "status": status, "url": url,
    })
}

fn parsed(v: &Value) -> WebhookEndpoint {
    WebhookEndpoint::from_json(v).expect("an endpoint")
}

/// One request's query pairs.
type Pairs = Vec<(String, String)>;

/// `GET /v1/webhook_endpoints` over a list, honouring `limit` and
/// `starting_after`, recording each request's query.
#[derive(Clone)]
struct Listing {
    items: Arc<Vec<Value>>,
    queries: Arc<Mutex<Vec<Pairs>>>,
}

impl Respond for Listing {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: Pairs = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        self.queries.lock().unwrap().push(q.clone());
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let limit: usize = get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
        let start = match get("starting_after") {
            Some(id) => {
                self.items
                    .iter()
                    .position(|o| o["id"] == id.as_str())
                    .unwrap()
                    + 1
            }
            None => 0,
        };
        let page: Vec<Value> = self.items.iter().skip(start).take(limit).cloned().collect();
        let has_more = start + page.len() < self.items.len();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "url": "/v1/webhook_endpoints", "has_more": has_more, "data": page
        }))
    }
}

/// `application/x-www-form-urlencoded` → pairs (`+` is a space).
fn form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

#[tokio::test]
async fn the_listing_follows_every_page_as_the_platform() {
    let items: Vec<Value> = (0..250)
        .map(|i| {
            endpoint(
                &format!("we_{i:04}"),
                &format!("https://h{i}.example.com/x"),
                "enabled",
                &["*"],
            )
        })
        .collect();
    let listing = Listing {
        items: Arc::new(items),
        queries: Arc::default(),
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(listing.clone())
        .mount(&server)
        .await;
    // A Connect account is configured: endpoints are still the platform's.
    let cfg = config(&server.uri()).with_account("acct_1Connected");
    let got = Endpoints::new(&cfg).unwrap().list().await.unwrap();
    assert_eq!(got.len(), 250);
    assert_eq!(got[0].id, "we_0000");
    assert_eq!(got[249].id, "we_0249");
    assert!(
        got.iter()
            .all(|e| e.is_enabled() && e.enabled_events == ["*"])
    );
    let queries = listing.queries.lock().unwrap().clone();
    assert_eq!(queries.len(), 3, "{queries:?}");
    for q in &queries {
        assert!(q.contains(&("limit".into(), "100".into())), "{q:?}");
    }
    assert!(!queries[0].iter().any(|(k, _)| k == "starting_after"));
    assert!(queries[1].contains(&("starting_after".into(), "we_0099".into())));
    assert!(queries[2].contains(&("starting_after".into(), "we_0199".into())));
    for r in server.received_requests().await.unwrap() {
        assert!(r.headers.get("stripe-account").is_none());
        assert_eq!(
            r.headers.get("stripe-version").unwrap(),
            recon_stripe::STRIPE_VERSION
        );
    }
}

#[tokio::test]
async fn a_disabled_endpoint_is_found_through_the_api() {
    let listing = Listing {
        items: Arc::new(vec![
            endpoint("we_other", "https://ci.example.com/hook", "enabled", &["*"]),
            endpoint("we_ours", OURS, "disabled", &["*"]),
        ]),
        queries: Arc::default(),
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(listing)
        .mount(&server)
        .await;
    let listed = Endpoints::new(&config(&server.uri()))
        .unwrap()
        .list()
        .await
        .unwrap();
    let found = check(&listed, PUBLIC, &needed_event_types());
    assert_eq!(
        found,
        vec![Finding::Disabled {
            endpoint: "we_ours".into(),
            url: OURS.into(),
            status: "disabled".into(),
        }]
    );
    let m = found[0].message();
    assert!(m.contains("we_ours") && m.contains("disabled"), "{m}");
    assert!(m.contains("enable it"), "{m}");
    assert_eq!(found[0].code(), "disabled");
    assert_eq!(found[0].subject(), "we_ours");
}

#[test]
fn no_endpoint_at_our_url_lists_the_others_as_wrong() {
    let listed = [
        parsed(&endpoint(
            "we_old",
            "https://old.example.com/webhooks/stripe",
            "enabled",
            &["*"],
        )),
        parsed(&endpoint(
            "we_path",
            "https://app.example.com/hooks/stripe",
            "disabled",
            &["invoice.paid"],
        )),
    ];
    let found = check(&listed, PUBLIC, &needed_event_types());
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[0],
        Finding::NoEndpoint {
            expected_url: OURS.into()
        }
    );
    assert!(found[0].message().contains("recon endpoints create stripe"));
    assert_eq!(found[0].subject(), OURS);
    let wrong: Vec<(&str, &str)> = found[1..]
        .iter()
        .map(|f| match f {
            Finding::WrongUrl {
                endpoint,
                url,
                expected_url,
                ..
            } => {
                assert_eq!(expected_url, OURS);
                (endpoint.as_str(), url.as_str())
            }
            other => panic!("not a wrong URL: {other:?}"),
        })
        .collect();
    assert_eq!(
        wrong,
        [
            // Scheme and host only: other services' paths may hold secrets.
            ("we_old", "https://old.example.com/…"),
            ("we_path", "https://app.example.com/…"),
        ]
    );
    let m = found[1].message();
    assert!(
        m.contains("we_old") && m.contains("old.example.com") && m.contains(OURS),
        "{m}"
    );
    // Nothing at all: the one finding.
    assert_eq!(check(&[], PUBLIC, &needed_event_types()).len(), 1);
}

#[test]
fn a_trailing_slash_or_case_is_still_our_url() {
    let needed = needed_event_types();
    for url in [
        "https://app.example.com/webhooks/stripe/",
        "HTTPS://APP.example.com/webhooks/stripe",
        "https://app.example.com:443/webhooks/stripe",
        "https://app.example.com/webhooks/stripe?source=stripe",
    ] {
        let listed = [parsed(&endpoint("we_1", url, "enabled", &["*"]))];
        assert_eq!(check(&listed, PUBLIC, &needed), vec![], "{url}");
        assert_eq!(check(&listed, "https://app.example.com/", &needed), vec![]);
    }
    // A path differs in case: another URL.
    let listed = [parsed(&endpoint(
        "we_1",
        "https://app.example.com/Webhooks/Stripe",
        "enabled",
        &["*"],
    ))];
    assert_eq!(check(&listed, PUBLIC, &needed)[0].code(), "no_endpoint");
    assert_eq!(expected_url("https://app.example.com/"), OURS);
    // Another port is another server.
    let listed = [parsed(&endpoint(
        "we_1",
        "https://app.example.com:8443/webhooks/stripe",
        "enabled",
        &["*"],
    ))];
    assert_eq!(check(&listed, PUBLIC, &needed)[0].code(), "no_endpoint");
}

/// Other services' endpoint URLs often hold a secret (a catch hook's
/// token); findings go to the drift log, alerts and logs, so they show the
/// scheme and host only.
#[test]
fn other_endpoints_are_shown_without_their_path_or_query() {
    let needed = needed_event_types();
    let listed = [
        parsed(&endpoint(
            "we_zap",
            "https://hooks.zapier.example/hooks/catch/123/SECRETPATH/?token=SECRETQ",
            "enabled",
            &["*"],
        )),
        parsed(&endpoint(
            "we_bare",
            "https://user:SECRETPW@other.example",
            "enabled",
            &["*"],
        )),
    ];
    let findings = check(&listed, PUBLIC, &needed);
    assert_eq!(findings.len(), 3);
    let all = format!(
        "{findings:?} {}",
        findings
            .iter()
            .map(|f| f.message())
            .collect::<Vec<_>>()
            .join(" ")
    );
    for secret in ["SECRETPATH", "SECRETQ", "SECRETPW", "catch"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert!(all.contains("https://hooks.zapier.example/…"), "{all}");
    assert!(all.contains("we_zap") && all.contains("we_bare"));
}

#[test]
fn missing_types_are_named() {
    let needed = needed_event_types();
    let sent: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|t| !["invoice.paid", "customer.deleted"].contains(t))
        .collect();
    let listed = [parsed(&endpoint("we_1", OURS, "enabled", &sent))];
    let found = check(&listed, PUBLIC, &needed);
    assert_eq!(
        found,
        vec![Finding::MissingTypes {
            endpoint: "we_1".into(),
            url: OURS.into(),
            missing: vec!["customer.deleted".into(), "invoice.paid".into()],
        }]
    );
    let m = found[0].message();
    assert!(
        m.contains("2 event types") && m.contains("invoice.paid") && m.contains("customer.deleted"),
        "{m}"
    );
    // Disabled and lacking types: both said.
    let listed = [parsed(&endpoint("we_1", OURS, "disabled", &sent))];
    let codes: Vec<&str> = check(&listed, PUBLIC, &needed)
        .iter()
        .map(Finding::code)
        .collect();
    assert_eq!(codes, ["disabled", "missing_types"]);
}

#[test]
fn a_star_or_every_type_covers_all() {
    let needed = needed_event_types();
    assert!(needed.len() > 20, "{needed:?}");
    for events in [vec!["*"], needed.clone()] {
        let listed = [parsed(&endpoint("we_1", OURS, "enabled", &events))];
        assert_eq!(check(&listed, PUBLIC, &needed), vec![]);
        assert!(listed[0].missing_types(&needed).is_empty());
    }
    // One right endpoint at our URL is enough; a disabled twin is no finding.
    let listed = [
        parsed(&endpoint("we_old", OURS, "disabled", &["*"])),
        parsed(&endpoint("we_new", OURS, "enabled", &["*"])),
    ];
    assert_eq!(check(&listed, PUBLIC, &needed), vec![]);
    assert_eq!(
        recon_stripe::endpoints::right_endpoint(&listed, PUBLIC, &needed).map(|e| e.id.as_str()),
        Some("we_new")
    );
}

#[tokio::test]
async fn create_sends_the_url_and_every_needed_type_and_returns_the_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(move |req: &Request| {
            let f = form(&req.body);
            let events: Vec<&str> = f
                .iter()
                .filter(|(k, _)| k == "enabled_events[]")
                .map(|(_, v)| v.as_str())
                .collect();
            let url = f.iter().find(|(k, _)| k == "url").unwrap().1.clone();
            let mut v = endpoint("we_created", &url, "enabled", &events);
            v["secret"] = json!("whsec_created_secret_value");
            ResponseTemplate::new(200).set_body_json(v)
        })
        .mount(&server)
        .await;
    let needed = needed_event_types();
    let created = Endpoints::new(&config(&server.uri()))
        .unwrap()
        .create(OURS, &needed)
        .await
        .unwrap();
    assert_eq!(created.endpoint.id, "we_created");
    assert_eq!(created.secret.expose_secret(), "whsec_created_secret_value");
    assert!(!format!("{created:?}").contains("whsec_created"));

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    assert!(r.headers.get("idempotency-key").is_some());
    assert_eq!(
        r.headers.get("authorization").unwrap(),
        &format!("Bearer {KEY}")
    );
    let f = form(&r.body);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("url"), Some(OURS));
    assert_eq!(get("api_version"), Some(recon_stripe::STRIPE_VERSION));
    assert!(get("description").is_some_and(|d| d.contains("recon")));
    assert_eq!(get("connect"), None);
    let sent: Vec<&str> = f
        .iter()
        .filter(|(k, _)| k == "enabled_events[]")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(sent, needed);
}

#[tokio::test]
async fn a_retried_create_repeats_its_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error": {"type": "api_error", "message": "try again"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let mut v = endpoint("we_1", OURS, "enabled", &["*"]);
    v["secret"] = json!("whsec_x");
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(200).set_body_json(v))
        .with_priority(2)
        .mount(&server)
        .await;
    let client = Endpoints::new(&config(&server.uri())).unwrap();
    client.create(OURS, &["*"]).await.unwrap();
    client.create(OURS, &["*"]).await.unwrap();
    let keys: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys.len(), 3, "one retry, then a second create");
    assert_eq!(keys[0], keys[1], "the retry repeats the key");
    assert_ne!(keys[1], keys[2], "a new create has its own key");
}

#[tokio::test]
async fn a_refused_key_is_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"type": "invalid_request_error",
                      "message": format!("Invalid API Key provided: {KEY}")}
        })))
        .mount(&server)
        .await;
    let e = Endpoints::new(&config(&server.uri()))
        .unwrap()
        .list()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let m = e.to_string();
    assert!(m.contains("STRIPE_SECRET_KEY") && m.contains("401"), "{m}");
    assert!(!m.contains("0123456789"), "the key leaked: {m}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );

    // A restricted key without the permission: 403 says which one.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "error": {"type": "invalid_request_error", "message": "no access"}
        })))
        .mount(&server)
        .await;
    let e = Endpoints::new(&config(&server.uri()))
        .unwrap()
        .create(OURS, &["*"])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(
        e.to_string()
            .contains("Webhook Endpoints permission (write)"),
        "{e}"
    );
}
