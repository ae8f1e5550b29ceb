//! A small Stripe emulator for wiremock: list endpoints with `limit`,
//! `starting_after`, `ending_before`, `created[gt|gte|lt|lte]`,
//! `status`, `customer` and `types[]`; retrieves with both deleted forms.

use recon_stripe::ApiSettings;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recon_core::{Rate, RetryPolicy};
use recon_stripe::{StripeConfig, StripeProvider};
use serde_json::{Value, json};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

pub const KEY: &str = "sk_test_recon_fake";

/// Fast retries for tests.
pub fn fast() -> RetryPolicy {
    recon_core::testkit::fast_retries()
}

pub fn config(uri: &str) -> StripeConfig {
    StripeConfig::new(KEY)
        .with_api_base(uri)
        .with_rate(Rate::per_second(10_000))
        .with_retry_policy(fast())
        .with_request_timeout(Duration::from_secs(10))
}

pub fn provider(uri: &str) -> StripeProvider {
    StripeProvider::new(config(uri)).expect("provider")
}

#[derive(Default)]
pub struct State {
    /// kind → objects (each with `id` and `created`).
    pub objects: BTreeMap<String, Vec<Value>>,
    /// Retrieves answer `200 {deleted: true}`.
    pub deleted_200: HashSet<String>,
    /// Retrieves answer `404 resource_missing`.
    pub deleted_404: HashSet<String>,
    /// List oldest first instead of newest first.
    pub oldest_first: bool,
}

#[derive(Clone, Default)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    pub requests: Arc<AtomicUsize>,
    pub log: Arc<Mutex<Vec<String>>>,
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": "invalid_request_error", "code": code, "message": message}
    }))
}

fn singular(kind: &str) -> &str {
    match kind {
        "customers" => "customer",
        "subscriptions" => "subscription",
        "invoices" => "invoice",
        "prices" => "price",
        "products" => "product",
        "events" => "event",
        _ => "thing",
    }
}

impl Fake {
    pub fn new() -> Self {
        Fake::default()
    }

    pub async fn start(&self) -> MockServer {
        recon_core::testkit::serve(self.clone()).await
    }

    pub fn add(&self, kind: &str, obj: Value) {
        let mut s = self.state.lock().unwrap();
        s.objects.entry(kind.to_string()).or_default().push(obj);
    }

    pub fn ids(&self, kind: &str) -> std::collections::BTreeSet<String> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(kind)
            .map(|v| {
                v.iter()
                    .map(|o| o["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_oldest_first(&self, on: bool) {
        self.state.lock().unwrap().oldest_first = on;
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn list(&self, kind: &str, req: &Request) -> ResponseTemplate {
        let q: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
        let one = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let num = |k: &str| one(k).map(|v| v.parse::<i64>().unwrap());
        let limit = num("limit").unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return error(
                400,
                "parameter_invalid_integer",
                "limit must be between 1 and 100",
            );
        }
        let types: Vec<String> = q
            .iter()
            .filter(|(n, _)| n == "types[]")
            .map(|(_, v)| v.clone())
            .collect();
        if types.len() > 20 {
            return error(400, "parameter_invalid", "types[] takes at most 20 values");
        }
        let (gt, gte, lt, lte) = (
            num("created[gt]"),
            num("created[gte]"),
            num("created[lt]"),
            num("created[lte]"),
        );
        let status = one("status");
        let customer = one("customer");
        let keep = |o: &Value| {
            let c = o["created"].as_i64().unwrap();
            gt.is_none_or(|b| c > b)
                && gte.is_none_or(|b| c >= b)
                && lt.is_none_or(|b| c < b)
                && lte.is_none_or(|b| c <= b)
                && (kind != "subscriptions"
                    || match status.as_deref() {
                        Some("all") => true,
                        Some(s) => o["status"] == s,
                        None => o["status"] != "canceled",
                    })
                && customer
                    .as_ref()
                    .is_none_or(|cu| o["customer"] == cu.as_str())
                && (types.is_empty() || types.iter().any(|t| o["type"] == t.as_str()))
        };
        let st = self.state.lock().unwrap();
        let mut all: Vec<&Value> = st
            .objects
            .get(kind)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        // Newest first; ties by id, descending.
        all.sort_by(|a, b| {
            (b["created"].as_i64(), b["id"].as_str())
                .cmp(&(a["created"].as_i64(), a["id"].as_str()))
        });
        if st.oldest_first {
            all.reverse();
        }
        let pos = |id: &str| all.iter().position(|o| o["id"] == id);
        let (sa, eb) = (one("starting_after"), one("ending_before"));
        if sa.is_some() && eb.is_some() {
            return error(
                400,
                "parameter_invalid",
                "starting_after and ending_before cannot be combined",
            );
        }
        let limit = limit as usize;
        let (data, more): (Vec<&Value>, bool) = if let Some(eb) = eb {
            let Some(p) = pos(&eb) else {
                return error(404, "resource_missing", &format!("No such object: '{eb}'"));
            };
            let mut before: Vec<&Value> =
                all[..p].iter().rev().filter(|o| keep(o)).copied().collect();
            let more = before.len() > limit;
            before.truncate(limit);
            before.reverse();
            (before, more)
        } else {
            let start = match sa {
                Some(sa) => match pos(&sa) {
                    Some(p) => p + 1,
                    None => {
                        return error(404, "resource_missing", &format!("No such object: '{sa}'"));
                    }
                },
                None => 0,
            };
            let mut after: Vec<&Value> = all[start..]
                .iter()
                .filter(|o| keep(o))
                .take(limit + 1)
                .copied()
                .collect();
            let more = after.len() > limit;
            after.truncate(limit);
            (after, more)
        };
        ResponseTemplate::new(200)
            .insert_header("request-id", "req_fake")
            .set_body_json(json!({
                "object": "list",
                "url": format!("/v1/{kind}"),
                "has_more": more,
                "data": data,
            }))
    }

    fn retrieve(&self, kind: &str, id: &str) -> ResponseTemplate {
        let st = self.state.lock().unwrap();
        if st.deleted_200.contains(id) {
            return ResponseTemplate::new(200)
                .set_body_json(json!({"id": id, "object": singular(kind), "deleted": true}));
        }
        if st.deleted_404.contains(id) {
            return error(
                404,
                "resource_missing",
                &format!("No such {}: '{id}'", singular(kind)),
            );
        }
        match st
            .objects
            .get(kind)
            .and_then(|v| v.iter().find(|o| o["id"] == id))
        {
            Some(o) => ResponseTemplate::new(200).set_body_json(o),
            None => error(
                404,
                "resource_missing",
                &format!("No such {}: '{id}'", singular(kind)),
            ),
        }
    }
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(format!(
            "{}?{}",
            req.url.path(),
            req.url.query().unwrap_or("")
        ));
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {KEY}")) {
            return error(401, "", "Invalid API Key provided: sk_test_****fake");
        }
        if req
            .headers
            .get("stripe-version")
            .and_then(|v| v.to_str().ok())
            != Some(recon_stripe::STRIPE_VERSION)
        {
            return error(400, "bad_version", "Stripe-Version missing");
        }
        let parts: Vec<&str> = req.url.path().trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["v1", kind] => self.list(kind, req),
            ["v1", kind, id] => self.retrieve(kind, id),
            _ => error(404, "", "Unrecognized request URL"),
        }
    }
}

/// `n` customers, one second apart, the newest at `top - 1`.
pub fn customers(fake: &Fake, n: i64, top: i64) {
    for i in 0..n {
        let id = format!("cus_{:08}", i);
        fake.add(
            "customers",
            json!({"id": id, "object": "customer", "created": top - 1 - i,
                   "email": format!("{id}@example.com"), "metadata": {}}),
        );
    }
}
