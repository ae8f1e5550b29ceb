//! Helpers for running the real `recon` binary against Postgres and a
//! wiremock Stripe.

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

pub const STRIPE_KEY: &str = "sk_test_51Hq8ZLkReallyLooksRealXyZ0123456789abcdef";
pub const STRIPE_WHSEC: &str = "whsec_live_looking_webhook_secret_0123456789";
pub const CLERK_KEY: &str = "sk_test_clerkSecretThatMustNeverBeLogged987654321";

/// A unique Postgres schema for one test, on the test database.
pub struct Db {
    pub url: String,
    pub schema: String,
}

impl Db {
    pub fn new() -> Db {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Db {
            url: recon_store_postgres::testing::test_database_url(),
            schema: format!(
                "t_bin_{:x}_{}_{}",
                t,
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    pub async fn store(&self) -> recon_store_postgres::PgStore {
        recon_store_postgres::PgStore::connect(&self.url, &self.schema)
            .await
            .expect("these tests need Postgres: set TEST_DATABASE_URL or run `cargo xtask test`")
    }
}

/// The binary with a clean environment pointing at `db` and `stripe`.
pub fn recon(db: &Db, stripe: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recon"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("RECON_SCHEMA", &db.schema)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null());
    if let Some(base) = stripe {
        c.env("STRIPE_API_BASE", base)
            .env("STRIPE_SECRET_KEY", STRIPE_KEY)
            .env("STRIPE_WEBHOOK_SECRET", STRIPE_WHSEC);
    }
    c
}

pub fn run(mut c: impl std::borrow::BorrowMut<Command>) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.borrow_mut().output().expect("run recon");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

pub fn customer(id: &str, email: &str, created: i64) -> Value {
    json!({ "id": id, "object": "customer", "email": email, "name": "N", "created": created, "livemode": false, "metadata": {} })
}

/// A Stripe list endpoint over a mutable vector, newest first, honouring
/// `limit` and `starting_after`.
#[derive(Clone)]
pub struct ListOf(pub Arc<Mutex<Vec<Value>>>, pub &'static str);

impl Respond for ListOf {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut items = self.0.lock().unwrap().clone();
        items.sort_by(|a, b| {
            b["created"]
                .as_i64()
                .cmp(&a["created"].as_i64())
                .then(b["id"].as_str().cmp(&a["id"].as_str()))
        });
        let q: Vec<(String, String)> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let limit: usize = get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
        let gte: Option<i64> = get("created[gte]").and_then(|v| v.parse().ok());
        let lt: Option<i64> = get("created[lt]").and_then(|v| v.parse().ok());
        items.retain(|o| {
            let c = o["created"].as_i64().unwrap_or(0);
            gte.is_none_or(|g| c >= g) && lt.is_none_or(|l| c < l)
        });
        let start = match get("starting_after") {
            Some(id) => items
                .iter()
                .position(|o| o["id"] == id.as_str())
                .map(|i| i + 1)
                .unwrap_or(items.len()),
            None => 0,
        };
        let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
        let has_more = start + page.len() < items.len();
        ResponseTemplate::new(200).set_body_json(
            json!({ "object": "list", "url": self.1, "has_more": has_more, "data": page }),
        )
    }
}

/// A wiremock Stripe serving `customers` (mutable) and empty other lists.
pub async fn fake_stripe(customers: Arc<Mutex<Vec<Value>>>) -> MockServer {
    fake_stripe_with_events(customers, Arc::new(Mutex::new(Vec::new()))).await
}

/// A wiremock Stripe serving `customers` and `events` (both mutable, the
/// listings honouring `created[gte]`) and empty other lists.
pub async fn fake_stripe_with_events(
    customers: Arc<Mutex<Vec<Value>>>,
    events: Arc<Mutex<Vec<Value>>>,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/customers"))
        .respond_with(ListOf(customers.clone(), "/v1/customers"))
        .mount(&server)
        .await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/v1/events"))
        .respond_with(ListOf(events, "/v1/events"))
        .mount(&server)
        .await;
    for kind in ["subscriptions", "invoices", "prices", "products"] {
        Mock::given(matchers::method("GET"))
            .and(matchers::path(format!("/v1/{kind}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "object": "list", "url": format!("/v1/{kind}"), "has_more": false, "data": [] })))
            .mount(&server)
            .await;
    }
    // Retrieve: answer from the vector, else 404 resource_missing.
    let c2 = customers.clone();
    Mock::given(matchers::method("GET"))
        .and(matchers::path_regex(r"^/v1/customers/[^/]+$"))
        .respond_with(move |req: &Request| {
            let id = req.url.path().rsplit('/').next().unwrap_or("").to_string();
            match c2.lock().unwrap().iter().find(|o| o["id"] == id.as_str()) {
                Some(o) => ResponseTemplate::new(200).set_body_json(o.clone()),
                None => ResponseTemplate::new(404).set_body_json(json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "message": "No such customer" } })),
            }
        })
        .mount(&server)
        .await;
    server
}

/// An HTTP client for tests (reqwest is built without a default TLS provider).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `customer.updated` event carrying the customer's state.
pub fn customer_event(id: &str, customer_id: &str, email: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "event", "type": "customer.updated", "created": created,
        "api_version": "2025-03-31.basil", "livemode": false, "pending_webhooks": 0,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": customer(customer_id, email, created) }
    })
}

/// Store Stripe's event cursor as a replay that stopped at `value` would.
pub async fn set_event_cursor(db: &Db, value: i64) {
    let store = db.store().await;
    let batch = recon_core::commit::Batch {
        cursors: vec![recon_core::store::Cursor {
            provider: "stripe".into(),
            account: "default".into(),
            name: "events".into(),
            value,
            updated_at: recon_core::now_ms(),
        }],
        ..Default::default()
    };
    recon_core::commit::commit(&store, &batch, false)
        .await
        .unwrap();
}

/// A wiremock alert endpoint answering 200 to every POST.
pub async fn alert_sink() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// The JSON bodies an alert sink received.
pub async fn alerts_received(sink: &MockServer) -> Vec<Value> {
    sink.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}
