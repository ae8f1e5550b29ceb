//! `recon serve` as a subprocess: webhooks, admin routes, metrics, body
//! limits, and two replicas sharing one scheduled job.

mod common;

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use recon_core::Store;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers};

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
    start_with(db, stripe, admin, config, &[]).await
}

async fn start_with(
    db: &Db,
    stripe: &str,
    admin: Option<&str>,
    config: Option<&std::path::Path>,
    env: &[(&str, String)],
) -> Server {
    let port = free_port();
    let mut c = recon(db, Some(stripe));
    for (k, v) in env {
        c.env(k, v);
    }
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
    let token = "4f2a9c0e7b1d3a5f6e8c0b2d4a6f8e1c3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a";
    let srv = start(&db, &stripe.uri(), Some(token), None).await;
    let http = http();
    let r = http
        .get(format!("{}/admin/runs", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Wrong tokens, of another length and of the same length.
    let same_length = format!("{}0", &token[..token.len() - 1]);
    for wrong in ["wrong", same_length.as_str(), &format!("{token}0")] {
        let r = http
            .get(format!("{}/admin/runs", srv.base))
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{} characters", wrong.len());
    }
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

/// `recon serve` with `RECON_ADMIN_TOKEN` set to `token`: its exit status and
/// stderr, or a panic if it came up (and served) within 20 s.
fn serve_exit_with_token(db: &Db, token: &str) -> (i32, String) {
    let port = free_port();
    let mut c = recon(db, Some("http://127.0.0.1:9"));
    c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
        .env("RECON_ADMIN_TOKEN", token)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn recon serve");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if std::time::Instant::now() > deadline
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("recon serve started with a weak RECON_ADMIN_TOKEN");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_admin_tokens_stop_the_start() {
    let db = migrated().await;
    let short = "shortButSecret-1234";
    let (code, err) = serve_exit_with_token(&db, short);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("RECON_ADMIN_TOKEN")
            && err.contains("at least 32")
            && err.contains("openssl rand -hex 32"),
        "{err}"
    );
    assert!(!err.contains(short), "the token reached the output: {err}");

    let good = "9e107d9d372bb6826bd81d3542a419d6e4c5f8a0b1c2d3e4f5a6b7c8d9e0f1a2";
    for padded in [format!("{good}\n"), format!(" {good}"), format!("{good}\t")] {
        let (code, err) = serve_exit_with_token(&db, &padded);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("RECON_ADMIN_TOKEN")
                && err.contains("whitespace")
                && err.contains("openssl rand -hex 32"),
            "{err}"
        );
        assert!(
            !err.contains(&good[..16]),
            "the token reached the output: {err}"
        );
    }
}

fn replay_only_config(name: &str, extra: &str) -> std::path::PathBuf {
    let cfg = std::env::temp_dir().join(format!("recon-{name}-{}.toml", free_port()));
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
startup_replay = "1m"
{extra}
[stripe]
replay_window = "1m"
[stripe.schedule]
customers = ""
subscriptions = ""
invoices = ""
prices = ""
products = ""
"#
        ),
    )
    .unwrap();
    cfg
}

async fn wait_for<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_replay_covers_an_outage_longer_than_its_window() {
    let db = migrated().await;
    let now = chrono::Utc::now().timestamp();
    // Replays stopped two hours ago (the window is one minute); an event of
    // 90 minutes ago never reached the webhook endpoint.
    set_event_cursor(&db, now - 7200).await;
    let events = Arc::new(Mutex::new(vec![customer_event(
        "evt_outage",
        "cus_outage",
        "outage@example.com",
        now - 5400,
    )]));
    // Stripe has the customer (a sweep triggered by the missed webhook
    // finds it there).
    let customers = Arc::new(Mutex::new(vec![customer(
        "cus_outage",
        "outage@example.com",
        now - 5400,
    )]));
    let stripe = fake_stripe_with_events(customers, events).await;
    let cfg = replay_only_config("resume", "");
    let _srv = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let store = db.store().await;
    wait_for("the replay to apply the event of the outage", || async {
        store
            .ledger_contains("stripe", "default", "evt_outage")
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        1
    );
    let cursor = store
        .cursor("stripe", "default", "events")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.value, now - 5400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_beyond_the_horizon_alerts_and_sweeps_every_kind() {
    let db = migrated().await;
    let now = chrono::Utc::now().timestamp();
    set_event_cursor(&db, now - 40 * 86_400).await;
    let customers = Arc::new(Mutex::new(vec![customer(
        "cus_old",
        "old@example.com",
        now - 50 * 86_400,
    )]));
    let events = Arc::new(Mutex::new(vec![customer_event(
        "evt_recent",
        "cus_recent",
        "recent@example.com",
        now - 86_400,
    )]));
    customers
        .lock()
        .unwrap()
        .push(customer("cus_recent", "recent@example.com", now - 86_400));
    let stripe = fake_stripe_with_events(customers, events).await;
    let sink = alert_sink().await;
    let cfg = replay_only_config("horizon", "");
    let srv = start_with(
        &db,
        &stripe.uri(),
        None,
        Some(&cfg),
        &[("RECON_ALERT_WEBHOOK_URL", sink.uri())],
    )
    .await;
    let store = db.store().await;
    // Full sweeps of every kind, though none is scheduled.
    wait_for("sweeps of every Stripe kind", || async {
        let runs = store.runs(50).await.unwrap();
        [
            "customers",
            "subscriptions",
            "invoices",
            "prices",
            "products",
        ]
        .iter()
        .all(|k| {
            runs.iter().any(|r| {
                r.kind == *k
                    && r.run_kind == recon_core::RunKind::Sweep
                    && r.status == recon_core::RunStatus::Succeeded
            })
        })
    })
    .await;
    // The object only a sweep could bring back.
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        2
    );
    // What the log still holds was replayed.
    assert!(
        store
            .ledger_contains("stripe", "default", "evt_recent")
            .await
            .unwrap()
    );
    let alerts = alerts_received(&sink).await;
    let gap: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["alert"] == "event_cursor_beyond_horizon")
        .collect();
    assert_eq!(gap.len(), 1, "{alerts:?}");
    assert_eq!(gap[0]["provider"], "stripe");
    assert_eq!(gap[0]["gap"]["since"], now - 40 * 86_400);
    let metrics = http()
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"recon_replay_gaps_total{provider="stripe"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"recon_alerts_total{reason="event_cursor_beyond_horizon"} 1"#),
        "{metrics}"
    );
}

// ---------------------------------------------------------------------------
// Version ties (issue 11 item 1): a customer's `created` event applied, the
// `updated` event of the same second delivered while the API answers 500.
// The obligation to fetch the object is queued with the ledger row and
// worked through by `recon serve` (every `engine.settle_every`), by the next
// duplicate delivery, and after a restart, with no redelivery needed.

const TIE_CUSTOMER: &str = "cus_tie";
const STATE_A: &str = "a@example.com";
const STATE_B: &str = "b@example.com";
/// The customer's own `created` (both states and the API agree on it).
const CUSTOMER_SINCE: i64 = 1_700_000_000;

/// A Stripe event of `kind` (`customer.created`, `customer.updated`) carrying
/// the customer's state, created at `created`.
fn customer_kind_event(id: &str, kind: &str, email: &str, created: i64) -> String {
    json!({
        "id": id, "object": "event", "type": kind, "created": created,
        "api_version": "2025-03-31.basil", "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": customer_obj(TIE_CUSTOMER, email, CUSTOMER_SINCE) }
    })
    .to_string()
}

/// A wiremock Stripe whose retrieve of a customer answers 500 with
/// `Stripe-Should-Retry: false` (the adapter gives up at once instead of
/// retrying for minutes) while `down` is set, and the customer otherwise.
/// Lists (events included) are empty.
async fn stripe_with_outage(
    customers: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
) -> MockServer {
    let server = fake_stripe(customers.clone()).await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path_regex(r"^/v1/customers/[^/]+$"))
        .respond_with(move |req: &Request| {
            if down.load(Ordering::SeqCst) {
                return ResponseTemplate::new(500)
                    .insert_header("Stripe-Should-Retry", "false")
                    .set_body_json(json!({ "error": { "type": "api_error", "message": "An unknown error occurred" } }));
            }
            let id = req.url.path().rsplit('/').next().unwrap_or("").to_string();
            match customers.lock().unwrap().iter().find(|o| o["id"] == id.as_str()) {
                Some(o) => ResponseTemplate::new(200).set_body_json(o.clone()),
                None => ResponseTemplate::new(404).set_body_json(json!({ "error": { "type": "invalid_request_error", "code": "resource_missing", "message": "No such customer" } })),
            }
        })
        .with_priority(1)
        .mount(&server)
        .await;
    server
}

/// The scheduler on (it runs the drain) but no scheduled sweep or replay;
/// `engine` is appended as the `[engine]` section.
fn tie_config(name: &str, engine: &str) -> std::path::PathBuf {
    let cfg = std::env::temp_dir().join(format!("recon-{name}-{}.toml", free_port()));
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
startup_replay = "1m"
[stripe]
replay_window = "1m"
[stripe.schedule]
customers = ""
subscriptions = ""
invoices = ""
prices = ""
products = ""
replay = ""
[engine]
{engine}
"#
        ),
    )
    .unwrap();
    cfg
}

async fn post_webhook(base: &str, body: &str) -> (u16, Value) {
    let (sig, body) = signed(body);
    let r = http()
        .post(format!("{base}/webhooks/stripe"))
        .header("Stripe-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The e-mail the mirror holds for the tied customer (None: not mirrored).
async fn mirrored_email(store: &recon_store_postgres::PgStore) -> Option<String> {
    let got = store
        .get_many("stripe", "default", "customers", &[TIE_CUSTOMER])
        .await
        .unwrap();
    got.first()
        .filter(|o| !o.snapshot.deleted)
        .and_then(|o| o.snapshot.data["email"].as_str().map(str::to_string))
}

/// The queued fetch of the tied customer, if any.
async fn queued_tie(
    store: &recon_store_postgres::PgStore,
) -> Option<recon_core::store::PendingFetch> {
    store
        .pending_fetches("stripe", "default")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.key.kind == "customers" && p.key.id == TIE_CUSTOMER)
}

/// Poll `ok` every 100 ms for at most `limit`; the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut ok: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if ok().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait for the startup replay of the server to have finished, so that the
/// scheduler's drain runs from now on.
async fn startup_replays_done(store: &recon_store_postgres::PgStore, n: usize) {
    within(Duration::from_secs(20), "the startup replay", || async {
        store
            .runs(20)
            .await
            .unwrap()
            .iter()
            .filter(|r| {
                r.run_kind == recon_core::RunKind::Replay
                    && r.status == recon_core::RunStatus::Succeeded
            })
            .count()
            >= n
    })
    .await;
}

/// Deliver `customer.created` (state A) and then `customer.updated` of the
/// same second (state B) while the API answers 500: A is applied, the tie
/// is acknowledged and its fetch queued; the mirror still holds A.
async fn deliver_tie_during_outage(
    base: &str,
    store: &recon_store_postgres::PgStore,
) -> (String, String) {
    let second = chrono::Utc::now().timestamp();
    let created = customer_kind_event("evt_tie_created", "customer.created", STATE_A, second);
    let updated = customer_kind_event("evt_tie_updated", "customer.updated", STATE_B, second);
    let (status, v) = post_webhook(base, &created).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("applied")),
        "{v}"
    );
    assert_eq!(mirrored_email(store).await.as_deref(), Some(STATE_A));
    // Acknowledged although the fetch failed: the obligation is durable.
    let (status, v) = post_webhook(base, &updated).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        store
            .ledger_contains("stripe", "default", "evt_tie_updated")
            .await
            .unwrap()
    );
    let queued = queued_tie(store)
        .await
        .expect("the tie's fetch is queued with the acknowledged event");
    assert_eq!(queued.reason, "tie", "{queued:?}");
    assert!(
        queued.attempts >= 1,
        "the failed fetch is recorded: {queued:?}"
    );
    assert_eq!(mirrored_email(store).await.as_deref(), Some(STATE_A));
    (created, updated)
}

async fn tie_setup() -> (Db, Arc<AtomicBool>, MockServer) {
    let db = migrated().await;
    let down = Arc::new(AtomicBool::new(true));
    // What the API answers once it recovers: the updated customer.
    let truth = Arc::new(Mutex::new(vec![customer(
        TIE_CUSTOMER,
        STATE_B,
        CUSTOMER_SINCE,
    )]));
    let stripe = stripe_with_outage(truth, down.clone()).await;
    (db, down, stripe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tie_settles_after_the_api_recovers() {
    let (db, down, stripe) = tie_setup().await;
    // The default drain period (engine.settle_every = 5s).
    let cfg = tie_config("tie-recovers", "");
    let srv = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let store = db.store().await;
    startup_replays_done(&store, 1).await;
    deliver_tie_during_outage(&srv.base, &store).await;

    down.store(false, Ordering::SeqCst);
    // No redelivery: the server works through the queue by itself.
    let took = within(
        Duration::from_secs(20),
        "the mirror holds B without a redelivery",
        || async { mirrored_email(&store).await.as_deref() == Some(STATE_B) },
    )
    .await;
    eprintln!("tie settled {took:?} after the API recovered");
    assert!(
        queued_tie(&store).await.is_none(),
        "the obligation is discharged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tie_settles_when_both_events_are_redelivered() {
    let (db, down, stripe) = tie_setup().await;
    // The periodic drain out of the way: only the redelivery can settle it.
    let cfg = tie_config("tie-redelivered", "settle_every = \"1h\"");
    let srv = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let store = db.store().await;
    startup_replays_done(&store, 1).await;
    let (created, updated) = deliver_tie_during_outage(&srv.base, &store).await;

    down.store(false, Ordering::SeqCst);
    // Stripe redelivers minutes later, after the queued fetch's backoff.
    within(
        Duration::from_secs(20),
        "the queued fetch to be due",
        || async {
            queued_tie(&store)
                .await
                .is_some_and(|p| p.next_at <= recon_core::now_ms())
        },
    )
    .await;
    for body in [&created, &updated] {
        let (status, v) = post_webhook(&srv.base, body).await;
        assert_eq!(
            (status, v["outcome"].as_str()),
            (200, Some("duplicate")),
            "{v}"
        );
    }
    // A duplicate is answered after the drain it triggers has committed.
    assert_eq!(mirrored_email(&store).await.as_deref(), Some(STATE_B));
    assert!(
        queued_tie(&store).await.is_none(),
        "the obligation is discharged"
    );
    // Redelivering A again does not take the mirror back.
    let (status, v) = post_webhook(&srv.base, &created).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("duplicate")),
        "{v}"
    );
    assert_eq!(mirrored_email(&store).await.as_deref(), Some(STATE_B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tie_survives_a_restart() {
    let (db, down, stripe) = tie_setup().await;
    let cfg = tie_config("tie-restart", "");
    let srv = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let store = db.store().await;
    startup_replays_done(&store, 1).await;
    deliver_tie_during_outage(&srv.base, &store).await;
    // SIGKILL right after the acknowledged, unsettled tie.
    drop(srv);
    assert_eq!(mirrored_email(&store).await.as_deref(), Some(STATE_A));
    assert!(queued_tie(&store).await.is_some());

    down.store(false, Ordering::SeqCst);
    let _srv = start(&db, &stripe.uri(), None, Some(&cfg)).await;
    let took = within(
        Duration::from_secs(20),
        "the mirror holds B after the restart, without a redelivery",
        || async { mirrored_email(&store).await.as_deref() == Some(STATE_B) },
    )
    .await;
    eprintln!("tie settled {took:?} after the restart");
    assert!(
        queued_tie(&store).await.is_none(),
        "the obligation is discharged"
    );
}
