//! Paddle in the provider conformance suite, on customers: `{data, meta:
//! {pagination}}` lists by id with the `after` cursor, `{error}` bodies with
//! `not_found`, and `Paddle-Signature`. The fixture's `answer` is also the
//! fake the other tests use.

use std::sync::Arc;

use recon_core::testkit::conformance::{Fixture, Held, WebhookTolerance};
use recon_core::{Provider, Rate};
use recon_paddle::{ApiSettings, PaddleConfig, PaddleProvider};
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

pub struct Paddle;

/// RFC 3339 for unix seconds, with microseconds as Paddle writes some.
pub fn time(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 123_456_000)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub fn customer(id: &str, updated_s: i64) -> Value {
    json!({
        "id": id, "name": "Jo", "email": format!("{id}@example.com"), "status": "active",
        "locale": "en", "custom_data": null, "marketing_consent": false, "import_meta": null,
        "created_at": time(1_700_000_000), "updated_at": time(updated_s)
    })
}

pub fn error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": "request_error", "code": code, "detail": format!("{code} detail"),
                  "documentation_url": "https://developer.paddle.com/errors"},
        "meta": {"request_id": "req-conformance"}
    }))
}

/// Paddle's 404 for an id it does not have.
pub fn not_found(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "error": {"type": "request_error", "code": "not_found",
                  "detail": format!("Entity {id} not found."),
                  "documentation_url": "https://developer.paddle.com/errors/shared/not_found"},
        "meta": {"request_id": "req-conformance"}
    }))
}

/// A configuration against `base`: sandbox key, fast retries.
pub fn config(base: &str) -> PaddleConfig {
    recon_paddle::config("pdl_sdbx_apikey_01conformance_secretpart")
        .with_api_base(base)
        .with_webhook_secret(Paddle.secret(0))
        .with_rate(Rate::per_second(10_000))
        .with_retry_policy(recon_core::testkit::fast_retries())
}

/// Answer like Paddle: lists by ascending id after `after`, honouring
/// `per_page` and the `status` filter; retrieves in `{data}`.
pub fn answer(held: &Held, req: &Request) -> ResponseTemplate {
    let (segs, q) = recon_core::testkit::conformance::route(req);
    if req.headers.get("paddle-version").is_none_or(|v| v != "1") {
        return error(400, "version_missing");
    }
    match segs.as_slice() {
        [kind] => {
            let after = q.get("after").cloned().unwrap_or_default();
            let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(50);
            // Archived catalog entities and customers only when asked for.
            let catalog = ["customers", "products", "prices"].contains(kind);
            let statuses: Option<Vec<&str>> = q
                .get("status")
                .map(|s| s.split(',').collect())
                .or(catalog.then(|| vec!["active"]));
            let mut items: Vec<&Value> = held
                .of(kind)
                .iter()
                .filter(|o| o["id"].as_str().unwrap() > after.as_str())
                .filter(|o| match (&statuses, o["status"].as_str()) {
                    (Some(allowed), Some(s)) => allowed.contains(&s),
                    _ => true,
                })
                // Non-catalog products and prices only with type=custom.
                .filter(|o| {
                    let ty = o["type"].as_str().unwrap_or("standard");
                    ty == q.get("type").map_or("standard", String::as_str)
                })
                .collect();
            items.sort_by_key(|o| o["id"].as_str().unwrap().to_string());
            let has_more = items.len() > per_page;
            items.truncate(per_page);
            ResponseTemplate::new(200).set_body_json(json!({
                "data": items,
                "meta": {"request_id": "r", "pagination": {"per_page": per_page, "has_more": has_more,
                    "next": "https://api.paddle.com/ignored", "estimated_total": 0}}
            }))
        }
        [_, id] => match held.find(id) {
            Some(o) => ResponseTemplate::new(200)
                .set_body_json(json!({"data": o, "meta": {"request_id": "r"}})),
            None => not_found(id),
        },
        _ => ResponseTemplate::new(404),
    }
}

/// The adapter against `base`, `page` objects a page.
pub fn provider(base: &str, page: u32) -> PaddleProvider {
    PaddleProvider::new(config(base).with_page_size(page)).expect("provider")
}

impl Fixture for Paddle {
    fn kind(&self) -> &'static str {
        "customers"
    }

    fn object(&self, n: usize) -> Value {
        customer(&format!("ctm_conf{n:05}"), 1_700_000_000 + n as i64)
    }

    fn answer(&self, held: &Held, req: &Request) -> ResponseTemplate {
        answer(held, req)
    }

    fn error(&self, status: u16) -> ResponseTemplate {
        error(status, "conformance")
    }

    fn provider(&self, base: &str) -> Arc<dyn Provider> {
        Arc::new(provider(base, 10))
    }

    fn secret(&self, n: usize) -> String {
        format!("pdl_ntfset_01conformance{n}_hKkRiCGyyRhbFwIUuqiTBgI7gnWoV0Gr")
    }

    fn delivery(&self, obj: &Value, t: i64, secrets: &[String]) -> (recon_core::Headers, Vec<u8>) {
        let body = json!({
            "event_id": format!("evt_{}", obj["id"].as_str().unwrap().replace('_', "")),
            "event_type": "customer.updated", "occurred_at": time(t),
            "notification_id": "ntf_conformance", "data": obj
        })
        .to_string()
        .into_bytes();
        let secrets = secrets.iter().map(String::as_str);
        let value = recon_paddle::SIGNATURE.sign_each(secrets, t, &body);
        let mut h = recon_core::Headers::new();
        h.insert("paddle-signature", value.parse().unwrap());
        (h, body)
    }

    fn tolerance(&self) -> WebhookTolerance {
        WebhookTolerance::past(recon_paddle::WEBHOOK_TOLERANCE_S)
    }
}

recon_core::provider_conformance_tests!(crate::conformance::Paddle);
