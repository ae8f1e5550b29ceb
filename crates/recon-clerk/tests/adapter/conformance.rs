//! Clerk in the provider conformance suite, on organizations: offset lists
//! (`{data, total_count}`, `order_by`), retrieves with ClerkErrors 404s, and
//! Svix signatures.

use std::sync::Arc;

use recon_clerk::ClerkProvider;
use recon_core::Provider;
use recon_core::testkit::conformance::{Fixture, Held, WebhookTolerance};
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use crate::fake;
use recon_clerk::ApiSettings;

pub struct Clerk;

fn clerk_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": [{"message": code, "long_message": code, "code": code}],
        "clerk_trace_id": "trace_conformance"
    }))
}

impl Fixture for Clerk {
    fn kind(&self) -> &'static str {
        "organizations"
    }

    fn object(&self, n: usize) -> Value {
        fake::org(
            &format!("org_conf{n:05}"),
            1_700_000_000_000 + n as i64 * 1000,
        )
    }

    fn answer(&self, held: &Held, req: &Request) -> ResponseTemplate {
        let (segs, q) = recon_core::testkit::conformance::route(req);
        match segs.as_slice() {
            ["v1", kind] => {
                let mut items: Vec<&Value> = held.of(kind).iter().collect();
                items.sort_by(|a, b| {
                    (a["created_at"].as_i64(), a["id"].as_str())
                        .cmp(&(b["created_at"].as_i64(), b["id"].as_str()))
                });
                if q.get("order_by").is_none_or(|o| o.starts_with('-')) {
                    items.reverse();
                }
                let total = items.len();
                let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
                let page: Vec<&Value> = items.into_iter().skip(offset).take(limit).collect();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"data": page, "total_count": total}))
            }
            ["v1", _, id] => match held.find(id) {
                Some(o) => ResponseTemplate::new(200).set_body_json(o),
                None => clerk_error(404, "resource_not_found"),
            },
            _ => ResponseTemplate::new(404),
        }
    }

    fn error(&self, status: u16) -> ResponseTemplate {
        clerk_error(status, "conformance")
    }

    fn provider(&self, base: &str) -> Arc<dyn Provider> {
        let cfg = fake::config(base, 15).with_webhook_secret(self.secret(0));
        Arc::new(ClerkProvider::new(cfg).expect("provider"))
    }

    fn secret(&self, n: usize) -> String {
        // Svix secrets: whsec_ and base64 of the key.
        use base64::Engine as _;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(format!("conformance-key-{n}"))
        )
    }

    fn delivery(&self, obj: &Value, t: i64, secrets: &[String]) -> (recon_core::Headers, Vec<u8>) {
        let body = json!({
            "data": obj, "object": "event", "type": "organization.updated",
            "timestamp": t * 1000, "instance_id": "ins_conformance"
        })
        .to_string()
        .into_bytes();
        let id = format!("msg_conf_{}", obj["id"].as_str().unwrap_or("x"));
        let sigs: Vec<String> = secrets
            .iter()
            .map(|s| recon_clerk::sign(s, &id, t, &body))
            .collect();
        let mut h = recon_core::Headers::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", t.to_string().parse().unwrap());
        h.insert("svix-signature", sigs.join(" ").parse().unwrap());
        (h, body)
    }

    fn tolerance(&self) -> WebhookTolerance {
        WebhookTolerance::both_ways(recon_clerk::WEBHOOK_TOLERANCE_S)
    }
}

recon_core::provider_conformance_tests!(crate::conformance::Clerk);
