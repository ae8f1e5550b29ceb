//! `recon serve` as a subprocess: webhooks, admin routes, metrics, body
//! limits, and two replicas sharing one scheduled job.

mod common;

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use recon_core::Store;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(
    db: &Db,
    stripe: &str,
    admin: Option<&str>,
    config: Option<&std::path::Path>,
) -> Server {
    let port = free_port();
    let mut c = recon(db, Some(stripe));
    c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .arg("serve");
    if let Some(t) = admin {
        c.env("RECON_ADMIN_TOKEN", t);
    }
    if let Some(p) = config {
        c.arg("--config").arg(p);
    } else {
        // No scheduled work in these tests unless asked for.
        let f = std::env::temp_dir().join(format!("recon-noschedule-{port}.toml"));
        std::fs::write(&f, "[server]\nscheduler = false\n").unwrap();
        c.arg("--config").arg(f);
    }
    c.stdout(Stdio::null()).stderr(Stdio::inherit());
    // Wrapped at once so that Drop kills and waits for it on every path.
    let server = Server {
        child: c.spawn().expect("spawn recon serve"),
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = http();
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/healthz", server.base)).send().await
            && r.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("recon serve did not come up");
}

fn signed(body: &str) -> (String, String) {
    let t = chrono::Utc::now().timestamp();
    (
        recon_stripe::sign(STRIPE_WHSEC, t, body.as_bytes()),
        body.to_string(),
    )
}

fn event(id: &str, customer: &str, email: &str, created: i64) -> String {
    json!({
        "id": id, "object": "event", "type": "customer.updated", "created": created,
        "api_version": "2025-03-31.basil", "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": customer_obj(customer, email, created) }
    })
    .to_string()
}

fn customer_obj(id: &str, email: &str, created: i64) -> Value {
    customer(id, email, created)
}

async fn migrated() -> Db {
    let db = Db::new();
    let (code, _, err) = run(recon(&db, None).arg("migrate"));
    assert_eq!(code, 0, "{err}");
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_apply_once_and_forgeries_write_nothing() {
    let db = migrated().await;
    let stripe = fake_stripe(Arc::new(Mutex::new(vec![]))).await;
    let srv = start(&db, &stripe.uri(), None, None).await;
    let http = http();
    let now = chrono::Utc::now().timestamp();
    let (sig, body) = signed(&event("evt_1", "cus_a", "a@example.com", now));
    for expect in ["applied", "duplicate"] {
        let r = http
            .post(format!("{}/webhooks/stripe", srv.base))
            .header("Stripe-Signature", &sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["outcome"], expect);
    }
    let store = db.store().await;
    assert!(
        store
            .ledger_contains("stripe", "default", "evt_1")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        1
    );

    // Forged: signed with another secret.
    let body2 = event("evt_2", "cus_b", "b@example.com", now);
    let forged = recon_stripe::sign("whsec_attacker", now, body2.as_bytes());
    let r = http
        .post(format!("{}/webhooks/stripe", srv.base))
        .header("Stripe-Signature", forged)
        .body(body2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(STRIPE_WHSEC) && !text.to_lowercase().contains("postgres"),
        "{text}"
    );
    assert!(
        !store
            .ledger_contains("stripe", "default", "evt_2")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        1
    );

    // Bad JSON under a good signature.
    let (sig, bad) = signed("{not json");
    let r = http
        .post(format!("{}/webhooks/stripe", srv.base))
        .header("Stripe-Signature", sig)
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Oversized.
    let huge = "x".repeat(2 * 1024 * 1024);
    let (sig, huge) = signed(&huge);
    // The server answers 413 and may close before the client has sent it all.
    match http
        .post(format!("{}/webhooks/stripe", srv.base))
        .header("Stripe-Signature", sig)
        .body(huge)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        1
    );

    // Unknown provider, health, readiness, metrics.
    let r = http
        .post(format!("{}/webhooks/nope", srv.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        http.get(format!("{}/readyz", srv.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_prometheus_text(&metrics);
    assert!(
        metrics.contains(r#"recon_webhooks_total{provider="stripe",outcome="applied"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"recon_webhooks_total{provider="stripe",outcome="duplicate"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"recon_webhooks_total{provider="stripe",outcome="bad_signature"} 1"#),
        "{metrics}"
    );

    // Admin routes are not mounted without RECON_ADMIN_TOKEN.
    let r = http
        .get(format!("{}/admin/runs", srv.base))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A line-level check of the Prometheus/OpenMetrics text format.
fn assert_prometheus_text(text: &str) {
    assert!(text.trim_end().ends_with("# EOF"), "no # EOF terminator");
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            assert!(
                line.is_empty()
                    || line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line.starts_with("# UNIT ")
                    || line == "# EOF",
                "bad comment line {line:?}"
            );
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name = name_labels.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = name_labels.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels in {line:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token() {
    let db = migrated().await;
    let data = Arc::new(Mutex::new(vec![customer(
        "cus_1",
        "x@example.com",
        1_700_000_000,
    )]));
    let stripe = fake_stripe(data).await;
    let token = "admin-token-0123456789";
    let srv = start(&db, &stripe.uri(), Some(token), None).await;
    let http = http();
    let r = http
        .get(format!("{}/admin/runs", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/admin/runs", srv.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!(
            "{}/admin/reconcile/stripe?kind=customers",
            srv.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["runs"][0]["status"], "succeeded");
    assert_eq!(v["runs"][0]["counts"]["inserted"], 1);
    let r = http
        .post(format!("{}/admin/reconcile/stripe/objects/cus_1", srv.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["results"][0]["result"], "already_synced");
    let r = http
        .get(format!("{}/admin/runs", srv.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_run_each_tick_once() {
    let db = migrated().await;
    let data = Arc::new(Mutex::new(vec![customer(
        "cus_1",
        "x@example.com",
        1_700_000_000,
    )]));
    let stripe = fake_stripe(data).await;
    let cfg = std::env::temp_dir().join(format!("recon-sched-{}.toml", free_port()));
    std::fs::write(
        &cfg,
        r#"
[server]
startup_replay = "1m"
[stripe.schedule]
customers = "*/2 * * * * *"
subscriptions = ""
invoices = ""
prices = ""
products = ""
replay = ""
"#,
    )
    .unwrap();
    let a = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let b = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    drop(a);
    drop(b);
    let store = db.store().await;
    let runs: Vec<_> = store
        .runs(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "customers" && r.run_kind == recon_core::RunKind::Sweep)
        .collect();
    assert!(
        runs.len() >= 3,
        "scheduled sweeps did not run: {}",
        runs.len()
    );
    // Each tick is 2 s apart; two replicas running the same tick would start
    // two sweeps within a fraction of a second.
    let mut starts: Vec<i64> = runs.iter().map(|r| r.started_at).collect();
    starts.sort();
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] > 1000,
            "two runs {} ms apart: a tick ran twice",
            w[1] - w[0]
        );
    }
}
