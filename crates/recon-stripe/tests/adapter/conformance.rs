//! Stripe in the provider conformance suite: how its API answers
//! (newest-first lists with `starting_after` and `has_more`, `{deleted:
//! true}` retrieves, `resource_missing` 404s) and its `Stripe-Signature`.

use std::sync::Arc;

use recon_core::Provider;
use recon_core::testkit::conformance::{Fixture, Held, WebhookTolerance};
use recon_stripe::StripeProvider;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use crate::fake;
use recon_stripe::ApiSettings;

pub struct Stripe;

/// Objects per page the fake serves (Stripe may serve fewer than `limit`).
const PAGE: usize = 5;

fn stripe_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": "invalid_request_error", "code": code, "message": code}
    }))
}

impl Fixture for Stripe {
    fn kind(&self) -> &'static str {
        "customers"
    }

    fn object(&self, n: usize) -> Value {
        json!({
            "id": format!("cus_conf{n:05}"), "object": "customer",
            "email": format!("c{n}@example.test"), "created": 1_700_000_000 + n as i64,
            "livemode": false, "metadata": {}
        })
    }

    fn answer(&self, held: &Held, req: &Request) -> ResponseTemplate {
        let (segs, q) = recon_core::testkit::conformance::route(req);
        match segs.as_slice() {
            ["v1", kind] => {
                // Newest first; ids grow with creation, so a cursor that
                // was deleted meanwhile still has a place.
                let mut items: Vec<&Value> = held.of(kind).iter().collect();
                items.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
                if let Some(after) = q.get("starting_after") {
                    items.retain(|o| o["id"].as_str() < Some(after.as_str()));
                }
                let has_more = items.len() > PAGE;
                items.truncate(PAGE);
                ResponseTemplate::new(200).set_body_json(json!({
                    "object": "list", "url": req.url.path(), "data": items, "has_more": has_more
                }))
            }
            ["v1", _, id] => match held.find(id) {
                Some(o) => ResponseTemplate::new(200).set_body_json(o),
                None if held.deleted.contains(*id) => ResponseTemplate::new(200)
                    .set_body_json(json!({"id": id, "object": "customer", "deleted": true})),
                None => stripe_error(404, "resource_missing"),
            },
            _ => ResponseTemplate::new(404),
        }
    }

    fn error(&self, status: u16) -> ResponseTemplate {
        stripe_error(status, "conformance")
    }

    fn provider(&self, base: &str) -> Arc<dyn Provider> {
        let cfg = fake::config(base).with_webhook_secret(self.secret(0));
        Arc::new(StripeProvider::new(cfg).expect("provider"))
    }

    fn secret(&self, n: usize) -> String {
        format!("whsec_conformance_{n}")
    }

    fn delivery(&self, obj: &Value, t: i64, secrets: &[String]) -> (recon_core::Headers, Vec<u8>) {
        let body = json!({
            "id": format!("evt_conf_{}", obj["id"].as_str().unwrap_or("x")), "object": "event",
            "type": "customer.updated", "created": t, "livemode": false,
            "api_version": recon_stripe::STRIPE_VERSION, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "data": {"object": obj}
        })
        .to_string()
        .into_bytes();
        let secrets = secrets.iter().map(String::as_str);
        let value = recon_stripe::SIGNATURE.sign_each(secrets, t, &body);
        let mut h = recon_core::Headers::new();
        h.insert("stripe-signature", value.parse().unwrap());
        (h, body)
    }

    fn reports_deleted(&self) -> bool {
        true
    }

    fn tolerance(&self) -> WebhookTolerance {
        WebhookTolerance::past(recon_stripe::WEBHOOK_TOLERANCE_S)
    }
}

recon_core::provider_conformance_tests!(crate::conformance::Stripe);
