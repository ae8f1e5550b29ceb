//! `recon endpoints check` and `recon endpoints create stripe`: the real
//! binary against the simulator's Stripe (`/v1/webhook_endpoints`) on
//! 127.0.0.1 and a temporary SQLite database: findings, exit codes, drift
//! rows, the alert, the secret printed once.

#![cfg(feature = "recon-stripe")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use recon_sim::{Sim, SimConfig, SimHandle};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const PUBLIC: &str = "https://app.example.com";
const OURS: &str = "https://app.example.com/webhooks/stripe";

/// A temporary SQLite database, removed at the end.
struct Lite(PathBuf);

impl Lite {
    fn new() -> Lite {
        Lite(recon_store_sqlite::testing::temp_db_path("recon-endpoints"))
    }

    /// The binary with a clean environment: this database, the simulator's
    /// Stripe, and `RECON_PUBLIC_URL` when given.
    fn recon(&self, sim: &SimHandle, public: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recon"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", format!("sqlite://{}", self.0.display()))
            .env("RUST_LOG", "debug")
            .env("STRIPE_API_BASE", sim.stripe_base())
            .env("STRIPE_SECRET_KEY", sim.stripe_key())
            .stdin(Stdio::null());
        if let Some(p) = public {
            c.env("RECON_PUBLIC_URL", p);
        }
        c
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        for ext in ["db-wal", "db-shm"] {
            let _ = std::fs::remove_file(self.0.with_extension(ext));
        }
    }
}

/// Run the binary off the runtime's threads (the simulator keeps serving).
async fn run(mut c: Command) -> (i32, String, String) {
    let out = tokio::task::spawn_blocking(move || c.output().expect("run recon"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn setup() -> (SimHandle, Lite) {
    let sim = Sim::start(SimConfig::with_seed(7)).await.unwrap();
    let db = Lite::new();
    let mut c = db.recon(&sim, None);
    c.arg("migrate");
    let (code, _, err) = run(c).await;
    assert_eq!(code, 0, "{err}");
    (sim, db)
}

/// `POST /v1/webhook_endpoints[/{id}]` at the simulator, as a Stripe
/// client would; the answer's JSON.
async fn stripe_post(sim: &SimHandle, path: &str, form: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", sim.stripe_base()))
        .bearer_auth(sim.stripe_key())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    serde_json::from_str(&r.text().await.unwrap()).unwrap()
}

fn lines_starting<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

async fn endpoint_drift(sim: &SimHandle, db: &Lite) -> Vec<Value> {
    let mut c = db.recon(sim, None);
    c.args(["drift", "--json"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    doc["recent_drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["cause"] == "endpoint")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_wrong_url_missing_types_and_disabled_and_records_drift() {
    let (sim, db) = setup().await;
    let alerts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&alerts)
        .await;

    // Only an endpoint at an old address.
    let old = stripe_post(
        &sim,
        "/v1/webhook_endpoints",
        "url=https://old.example.com/webhooks/stripe&enabled_events[]=*",
    )
    .await;
    let old_id = old["id"].as_str().unwrap().to_string();
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "check"])
        .env("RECON_ALERT_WEBHOOK_URL", alerts.uri());
    let (code, out, err) = run(c).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let no = lines_starting(&out, "stripe: no_endpoint: ");
    assert_eq!(no.len(), 1, "{out}");
    assert!(no[0].contains(OURS), "{out}");
    let wrong = lines_starting(&out, "stripe: wrong_url: ");
    assert_eq!(wrong.len(), 1, "{out}");
    assert!(
        wrong[0].contains(&old_id) && wrong[0].contains("https://old.example.com/…"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "one line per finding: {out}");
    // The alert went through the check alert path.
    let sent = alerts.received_requests().await.unwrap();
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["alert"], "check_violation");
    assert_eq!(body["check"], "endpoints:stripe");
    assert_eq!(body["violations"], 2);

    // Ours, but without invoice.paid and customer.deleted.
    let mut form = format!("url={OURS}");
    for t in recon_stripe::endpoints::needed_event_types() {
        if t != "invoice.paid" && t != "customer.deleted" {
            form.push_str(&format!("&enabled_events[]={t}"));
        }
    }
    let ours = stripe_post(&sim, "/v1/webhook_endpoints", &form).await;
    let ours_id = ours["id"].as_str().unwrap().to_string();
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "check", "stripe"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let missing = lines_starting(&out, "stripe: missing_types: ");
    assert_eq!(missing.len(), 1, "{out}");
    assert!(
        missing[0].contains(&ours_id)
            && missing[0].contains("invoice.paid")
            && missing[0].contains("customer.deleted"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1, "{out}");

    // Every type now, but disabled (as Stripe does to a failing endpoint).
    stripe_post(
        &sim,
        &format!("/v1/webhook_endpoints/{ours_id}"),
        "enabled_events[]=*&disabled=true",
    )
    .await;
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "check"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 1, "{out}\n{err}");
    let disabled = lines_starting(&out, "stripe: disabled: ");
    assert_eq!(disabled.len(), 1, "{out}");
    assert!(disabled[0].contains(&ours_id), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // Every finding is in the drift log.
    let drift = endpoint_drift(&sim, &db).await;
    assert_eq!(drift.len(), 4, "{drift:#?}");
    for d in &drift {
        assert_eq!(d["key"]["provider"], "stripe");
        assert_eq!(d["key"]["kind"], "endpoint");
        assert_eq!(d["source"], "on_demand");
    }
    let mut seen: Vec<(String, String)> = drift
        .iter()
        .map(|d| {
            (
                d["key"]["id"].as_str().unwrap().to_string(),
                d["after"]["finding"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let mut want = vec![
        (OURS.to_string(), "no_endpoint".to_string()),
        (old_id.clone(), "wrong_url".to_string()),
        (ours_id.clone(), "missing_types".to_string()),
        (ours_id.clone(), "disabled".to_string()),
    ];
    want.sort();
    assert_eq!(seen, want);

    // Enabled again: all is well, nothing more recorded.
    assert!(sim.set_stripe_webhook_endpoint_disabled(&ours_id, false));
    let mut c = db.recon(&sim, Some(&format!("{PUBLIC}/")));
    c.args(["endpoints", "check"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out.trim(),
        format!(
            "stripe: ok: webhook endpoint {ours_id} delivers to {OURS}, enabled, with every event type recon needs"
        )
    );
    assert_eq!(endpoint_drift(&sim, &db).await.len(), 4);
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "check", "--json"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["providers"][0]["ok_endpoint"], ours_id.as_str());
    assert_eq!(doc["providers"][0]["findings"], serde_json::json!([]));
    assert_eq!(
        doc["providers"][0]["endpoints"].as_array().unwrap().len(),
        2
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_needs_the_public_url() {
    let (sim, db) = setup().await;
    let mut c = db.recon(&sim, None);
    c.args(["endpoints", "check"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("RECON_PUBLIC_URL is not set"), "{err}");
    let mut c = db.recon(&sim, Some("app.example.com"));
    c.args(["endpoints", "check", "--json"]);
    let (code, out, _) = run(c).await;
    assert_eq!(code, 2, "{out}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"]["kind"], "config");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RECON_PUBLIC_URL"),
        "{doc}"
    );
    // A user name or password in it would be shown and sent on: refused,
    // without echoing the password.
    let mut c = db.recon(&sim, Some("https://ops:SECRETPW@app.example.com"));
    c.args(["endpoints", "check"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("user name or password"), "{err}");
    assert!(
        !err.contains("SECRETPW") && !out.contains("SECRETPW"),
        "{err}"
    );
    // Nothing was asked of Stripe.
    assert_eq!(sim.stats().total_requests(), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_the_secret_once_and_refuses_a_second() {
    let (sim, db) = setup().await;
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "create", "stripe"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let created = sim.stripe_webhook_endpoints();
    assert_eq!(created.len(), 1);
    let e = &created[0];
    assert_eq!(e["url"], OURS);
    assert_eq!(e["status"], "enabled");
    let events: Vec<&str> = e["enabled_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(events, recon_stripe::endpoints::needed_event_types());
    let id = e["id"].as_str().unwrap().to_string();
    assert!(out.contains(&id), "{out}");
    let line = lines_starting(&out, "STRIPE_WEBHOOK_SECRET=whsec_");
    assert_eq!(line.len(), 1, "{out}");
    let secret = line[0].trim_start_matches("STRIPE_WEBHOOK_SECRET=");
    assert!(secret.len() > "whsec_".len() + 8, "{secret}");
    assert_eq!(out.matches(secret).count(), 1, "printed once: {out}");
    assert!(!err.contains(secret), "the secret reached the logs: {err}");

    // It is right.
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "check", "stripe"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.starts_with(&format!("stripe: ok: webhook endpoint {id} ")),
        "{out}"
    );

    // A second create is refused, naming the first.
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "create", "stripe"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains(&id) && err.contains("--force"), "{err}");
    assert!(!out.contains("whsec_"), "{out}");
    assert_eq!(sim.stripe_webhook_endpoints().len(), 1);

    // Unless forced.
    let mut c = db.recon(&sim, Some(PUBLIC));
    c.args(["endpoints", "create", "stripe", "--force", "--json"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(doc["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(doc["secret"].as_str().unwrap(), secret);
    assert_eq!(sim.stripe_webhook_endpoints().len(), 2);
    sim.shutdown().await;
}

#[cfg(feature = "recon-clerk")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clerk_says_what_it_cannot_check_and_where_to_look() {
    let (sim, db) = setup().await;
    stripe_post(
        &sim,
        "/v1/webhook_endpoints",
        &format!("url={OURS}&enabled_events[]=*"),
    )
    .await;
    let clerk = |c: &mut Command| {
        c.env("CLERK_SECRET_KEY", sim.clerk_key())
            .env("CLERK_API_BASE", sim.clerk_base());
    };
    let mut c = db.recon(&sim, Some(PUBLIC));
    clerk(&mut c);
    c.args(["endpoints", "check"]);
    let (code, out, err) = run(c).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(lines_starting(&out, "stripe: ok: ").len(), 1, "{out}");
    let note = lines_starting(&out, "clerk: not checked: ");
    assert_eq!(note.len(), 1, "{out}");
    assert!(
        note[0].contains("cannot list webhook endpoints")
            && note[0].contains("Clerk Dashboard")
            && note[0].contains("https://app.example.com/webhooks/clerk"),
        "{out}"
    );
    // Clerk's endpoints cannot be created either.
    let mut c = db.recon(&sim, Some(PUBLIC));
    clerk(&mut c);
    c.args(["endpoints", "create", "clerk"]);
    let (code, _, err) = run(c).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Clerk Dashboard"), "{err}");
    // No Clerk request was needed.
    assert!(
        sim.stats()
            .requests
            .keys()
            .all(|k| !k.starts_with("clerk ")),
        "{:?}",
        sim.stats()
    );
    sim.shutdown().await;
}

/// `recon serve` with `RECON_PUBLIC_URL`: the endpoints are checked at
/// start (drift recorded); a Stripe that refuses the key is a warning and
/// the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_the_endpoints_at_start_and_survives_a_failure() {
    let (sim, db) = setup().await;
    stripe_post(
        &sim,
        "/v1/webhook_endpoints",
        &format!("url={OURS}&enabled_events[]=*"),
    )
    .await;
    let id = sim.stripe_webhook_endpoints()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sim.set_stripe_webhook_endpoint_disabled(&id, true));

    // A second start in the same hour (a rolling deploy, another replica)
    // leaves the check to the first; a refused key, on a fresh database,
    // is a warning.
    let fresh = Lite::new();
    let mut c = fresh.recon(&sim, None);
    c.arg("migrate");
    assert_eq!(run(c).await.0, 0);
    for (key_ok, again) in [(true, false), (true, true), (false, false)] {
        let db = if key_ok { &db } else { &fresh };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = db.0.with_extension(format!("serve-{key_ok}-{again}.log"));
        let mut c = db.recon(&sim, Some(PUBLIC));
        if !key_ok {
            c.env("STRIPE_SECRET_KEY", "sk_test_not_the_simulators_key");
        }
        c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().expect("spawn recon serve");
        let http = reqwest::Client::new();
        let drift_rows = || async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.0.display()))
                .await
                .unwrap();
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT object_id, kind FROM drift_log WHERE cause = 'endpoint'")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            rows
        };
        let mut seen = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            seen = if again {
                text.contains("ran on another replica this hour")
            } else if key_ok {
                !drift_rows().await.is_empty()
            } else {
                text.contains("webhook endpoints could not be checked")
            };
            if seen {
                break;
            }
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let health = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&log);
        assert!(seen, "key_ok={key_ok}: {text}");
        assert!(
            health.is_ok_and(|r| r.status().is_success()),
            "recon serve is not up: {text}"
        );
        if key_ok {
            assert_eq!(
                drift_rows().await,
                vec![(id.clone(), "endpoint".to_string())]
            );
            assert!(again || text.contains("disabled"), "{text}");
        } else {
            assert!(text.contains("STRIPE_SECRET_KEY"), "{text}");
        }
    }
    sim.shutdown().await;
}
