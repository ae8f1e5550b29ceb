//! The status page of `recon serve` (`/status`), over a server whose data
//! comes from the simulator: sweeps that found drift, webhooks applied,
//! duplicated and forged. Its login, sessions, CSRF and escaping over HTTP,
//! and the page itself in headless Chromium (through chromedriver) when
//! Chromium is installed; CI installs it and there the browser test fails
//! rather than skip.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::Locator;
use recon_core::Store;
use recon_sim::{DeliveryFaults, Sim, SimConfig, SimHandle};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

const TOKEN: &str = "status-page-test-token-0123456789abcdef";

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

/// A mirror in its own schema, a seeded simulator, and the binary pointed
/// at both.
struct World {
    db: Db,
    sim: SimHandle,
}

impl World {
    fn recon(&self) -> Command {
        let mut c = recon(&self.db, None);
        c.env("STRIPE_API_BASE", self.sim.stripe_base())
            .env("STRIPE_SECRET_KEY", self.sim.stripe_key())
            .env(
                "STRIPE_WEBHOOK_SECRET",
                self.sim.webhook_targets(None, None).stripe_secret,
            )
            .env("STRIPE_RATE", "2000/s")
            .env("RUST_LOG", "warn");
        c
    }

    async fn serve(&self, admin: Option<&str>) -> Server {
        self.serve_with(admin, &[]).await
    }

    async fn serve_with(&self, admin: Option<&str>, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let config = std::env::temp_dir().join(format!("recon-status-{port}.toml"));
        std::fs::write(&config, "[server]\nscheduler = false\n").unwrap();
        let mut c = self.recon();
        c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(t) = admin {
            c.env("RECON_ADMIN_TOKEN", t);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let server = Server {
            child: c.spawn().expect("spawn recon serve"),
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(r) = http().get(format!("{}/readyz", server.base)).send().await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("recon serve did not become ready");
    }
}

/// Sweeps that find missing and changed objects, a server, and webhooks:
/// applied, duplicated and one forged.
async fn world() -> (World, Server) {
    let sim = Sim::start(SimConfig::with_seed(11))
        .await
        .expect("start simulator");
    sim.seed_initial(40, 0);
    let w = World { db: Db::new(), sim };
    let (code, _, err) = run(w.recon().arg("migrate"));
    assert_eq!(code, 0, "{err}");
    for kind in ["customers", "subscriptions"] {
        let (code, _, err) = run(w.recon().args(["reconcile", "stripe", "--kind", kind]));
        assert_eq!(code, 0, "{err}");
    }
    // Changes the mirror has not heard of: the next sweep finds them as
    // field-level drift (the webhooks come later).
    w.sim.mutate(40);
    let (code, _, err) = run(w
        .recon()
        .args(["reconcile", "stripe", "--kind", "customers"]));
    assert!(code == 0 || code == 3, "{err}");

    let server = w.serve(Some(TOKEN)).await;
    let targets = w
        .sim
        .webhook_targets(Some(format!("{}/webhooks/stripe", server.base)), None);
    let report = w
        .sim
        .deliver(
            &targets,
            &DeliveryFaults {
                duplicate: 0.5,
                ..DeliveryFaults::default()
            },
        )
        .await;
    assert!(report.posts > 0, "the mutations queued webhooks");
    // A forged one.
    let r = http()
        .post(format!("{}/webhooks/stripe", server.base))
        .header("stripe-signature", "t=1,v1=00")
        .body(r#"{"id":"evt_forged"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    (w, server)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Log in; the session cookie's `name=value`.
async fn login(base: &str) -> String {
    let r = no_redirects()
        .post(format!("{base}/status/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

async fn get(
    base: &str,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let mut req = no_redirects().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, r.text().await.unwrap(), headers)
}

/// The `data-total` of a chart's series, from the page's HTML.
fn total(html: &str, chart: &str, series: &str) -> f64 {
    let at = html
        .find(&format!(r#"data-chart="{chart}""#))
        .unwrap_or_else(|| panic!("no chart {chart}"));
    let rest = &html[at..];
    let rest = &rest[..rest.find("</svg>").unwrap()];
    let key = format!(r#"data-series="{series}" data-total=""#);
    let i = rest
        .find(&key)
        .unwrap_or_else(|| panic!("no series {series} in chart {chart}"));
    let v = &rest[i + key.len()..];
    v[..v.find('"').unwrap()].parse().unwrap()
}

fn csrf(html: &str) -> String {
    let key = r#"name="csrf" value=""#;
    let i = html.find(key).expect("a CSRF field");
    let v = &html[i + key.len()..];
    v[..v.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_runs_webhooks_drift_and_freshness() {
    let (w, server) = world().await;
    let base = &server.base;

    // No session: to the login page.
    let (status, _, headers) = get(base, "/status", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/status/login");

    let cookie = login(base).await;
    let (status, html, headers) = get(base, "/status", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );

    let store = w.db.store().await;
    let runs = store.runs(100).await.unwrap();
    let drift: u64 = runs.iter().map(|r| r.counts.drift).sum();
    assert!(drift > 0, "the sweeps found drift");
    assert_eq!(
        total(&html, "runs", "succeeded"),
        runs.iter()
            .filter(|r| r.status == recon_core::RunStatus::Succeeded)
            .count() as f64
    );
    assert_eq!(total(&html, "objects", "drift"), drift as f64);
    assert!(total(&html, "objects", "compared") >= 40.0);
    assert!(total(&html, "webhooks", "applied") > 0.0);
    assert!(
        total(&html, "webhooks", "duplicate") > 0.0,
        "half were sent twice"
    );
    assert_eq!(total(&html, "webhooks", "rejected"), 1.0, "the forged one");
    assert!(total(&html, "drift_causes", "changed") >= 1.0);
    // Freshness: customers and subscriptions were swept, invoices never.
    let row = |kind: &str| {
        let i = html
            .find(&format!("<td>{kind}</td>"))
            .unwrap_or_else(|| panic!("no row {kind}"));
        let start = html[..i].rfind("<tr").unwrap();
        html[start..i].to_string()
    };
    assert!(
        row("customers").contains(r#"data-state="ok""#),
        "{}",
        row("customers")
    );
    assert!(
        row("invoices").contains(r#"data-state="never""#),
        "{}",
        row("invoices")
    );

    // A run's page: the changed customers' fields, before → after.
    let changed = runs
        .iter()
        .find(|r| r.kind == "customers" && r.counts.updated > 0)
        .expect("the second customers sweep fixed changed customers");
    let (status, page, _) = get(base, &format!("/status/runs/{}", changed.id), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<td>changed</td>"), "{page}");
    // A deletion is one line, not every field of the tombstone.
    if page.contains("<td>deleted</td>") {
        assert!(page.contains("deleted by the provider"), "{page}");
        assert!(!page.contains("(absent)\n"), "{page}");
    }
    assert!(page.contains(" → "), "field-level lines: {page}");
    let (status, _, _) = get(base, "/status/runs/no-such-run", Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A run page without a session: to the login too.
    let (status, _, _) = get(base, &format!("/status/runs/{}", changed.id), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_a_strict_httponly_session_and_wrong_tokens_are_slowed() {
    let sim = Sim::start(SimConfig::with_seed(3)).await.unwrap();
    let w = World { db: Db::new(), sim };
    assert_eq!(run(w.recon().arg("migrate")).0, 0);
    let server = w.serve(Some(TOKEN)).await;
    let base = &server.base;

    let r = no_redirects()
        .post(format!("{base}/status/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/status"), "{set}");
    assert!(!set.contains(TOKEN), "the token is never the cookie");
    assert!(
        !set.contains("Secure"),
        "plain HTTP without a proxy saying HTTPS"
    );
    let behind_https = no_redirects()
        .post(format!("{base}/status/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert!(
        behind_https.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // A made-up session is no session.
    let (status, _, _) = get(base, "/status", Some("recon_session=00ff")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Logout needs the CSRF token, then ends the session.
    let cookie = set.split(';').next().unwrap().to_string();
    let (_, html, _) = get(base, "/status", Some(&cookie)).await;
    let token = csrf(&html);
    let r = no_redirects()
        .post(format!("{base}/status/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = no_redirects()
        .post(format!("{base}/status/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(base, "/status", Some(&cookie)).await.0,
        StatusCode::SEE_OTHER
    );

    // Two good logins used 2 of 5 attempts: 3 wrong ones are 401, the next
    // is 429 with Retry-After, and so is the right token then: it is not
    // even checked.
    for _ in 0..3 {
        let r = no_redirects()
            .post(format!("{base}/status/login"))
            .form(&[("token", "wrong-wrong-wrong-wrong-wrong-wrong")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.text().await.unwrap().contains("Wrong token."));
    }
    for token in ["wrong", TOKEN] {
        let r = no_redirects()
            .post(format!("{base}/status/login"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let after: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&after), "{after}");
    }
    // One more attempt is allowed two seconds later.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let r = no_redirects()
        .post(format!("{base}/status/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Sessions are signed with a key derived from the token, so a replica
/// behind a load balancer without sticky sessions accepts them; behind a
/// proxy that rewrites `Host`, the origin of `RECON_PUBLIC_URL` is this
/// server's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_on_every_replica_and_behind_a_proxy() {
    let sim = Sim::start(SimConfig::with_seed(8)).await.unwrap();
    let w = World { db: Db::new(), sim };
    assert_eq!(run(w.recon().arg("migrate")).0, 0);
    let public = "https://status.example.com";
    let a = w
        .serve_with(Some(TOKEN), &[("RECON_PUBLIC_URL", public)])
        .await;
    let b = w.serve(Some(TOKEN)).await;
    let cookie = login(&a.base).await;
    let (status, page_b, _) = get(&b.base, "/status", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "a session of A on B");
    let (_, page_a, _) = get(&a.base, "/status", Some(&cookie)).await;
    assert_eq!(csrf(&page_a), csrf(&page_b), "one CSRF token on both");

    // A proxy sends Host: the upstream's address; the browser's Origin is
    // the public one. A knows it (RECON_PUBLIC_URL); B does not.
    let proxied = |base: &str| {
        no_redirects()
            .post(format!("{base}/status/login"))
            .header("host", "recon-upstream:8080")
            .header("origin", public)
            .form(&[("token", TOKEN)])
    };
    assert_eq!(
        proxied(&a.base).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        proxied(&b.base).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Logging out on B ends the session there.
    let r = no_redirects()
        .post(format!("{}/status/logout", b.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf(&page_a).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        get(&b.base, "/status", Some(&cookie)).await.0,
        StatusCode::SEE_OTHER
    );

    // Another token: every session ends.
    let c = w
        .serve(Some("another-status-page-token-0123456789ab"))
        .await;
    assert_eq!(
        get(&c.base, "/status", Some(&cookie)).await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_off_without_a_token() {
    let sim = Sim::start(SimConfig::with_seed(4)).await.unwrap();
    let w = World { db: Db::new(), sim };
    assert_eq!(run(w.recon().arg("migrate")).0, 0);
    let server = w.serve(None).await;
    assert_eq!(
        get(&server.base, "/status", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&server.base, "/status/login", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_from_the_page_needs_the_csrf_token_and_same_origin() {
    let sim = Sim::start(SimConfig::with_seed(5)).await.unwrap();
    sim.seed_initial(5, 0);
    let w = World { db: Db::new(), sim };
    assert_eq!(run(w.recon().arg("migrate")).0, 0);
    // A first backfill is not drift; changes found after it are.
    for mutate in [0, 20] {
        w.sim.mutate(mutate);
        let (code, _, err) = run(w
            .recon()
            .args(["reconcile", "stripe", "--kind", "customers"]));
        assert!(code == 0 || code == 3, "{err}");
    }
    let store = w.db.store().await;
    let run_id = store.runs(1).await.unwrap()[0].id.clone();
    let id = store
        .drift(&recon_core::store::DriftQuery {
            run_id: Some(run_id.clone()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .key
        .id
        .clone();
    let server = w.serve(Some(TOKEN)).await;
    let base = &server.base;
    let cookie = login(base).await;
    let (_, page, _) = get(base, &format!("/status/runs/{run_id}"), Some(&cookie)).await;
    assert!(page.contains(r#"action="/status/reconcile""#), "{page}");
    let token = csrf(&page);
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("provider", "stripe".to_string()),
            ("kind", "customers".to_string()),
            ("id", id.clone()),
        ]
    };
    let post = |csrf: String, origin: Option<&'static str>, cookie: Option<String>| {
        let base = base.clone();
        let f = form(&csrf);
        async move {
            let mut req = no_redirects()
                .post(format!("{base}/status/reconcile"))
                .form(&f);
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(
        post(token.clone(), None, None).await.0,
        StatusCode::FORBIDDEN,
        "no session"
    );
    assert_eq!(
        post("x".into(), None, Some(cookie.clone())).await.0,
        StatusCode::FORBIDDEN,
        "wrong CSRF"
    );
    assert_eq!(
        post(
            token.clone(),
            Some("https://evil.example"),
            Some(cookie.clone())
        )
        .await
        .0,
        StatusCode::FORBIDDEN,
        "cross-site"
    );
    let asked = |sim: &SimHandle| {
        sim.stats()
            .requests
            .iter()
            .filter(|(route, _)| route.starts_with("stripe GET /v1/customers/"))
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    let before = asked(&w.sim);
    let (status, body) = post(token, None, Some(cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The outcome, as the engine tells it (escaped inside the page).
    assert!(body.contains("&quot;result&quot;: &quot;"), "{body}");
    assert!(
        body.contains(&format!("&quot;id&quot;: &quot;{id}&quot;")),
        "{body}"
    );
    // It asked the provider for the object, once; the refused ones did not.
    assert_eq!(asked(&w.sim), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_provider_data_is_escaped() {
    let sim = Sim::start(SimConfig::with_seed(6)).await.unwrap();
    let w = World { db: Db::new(), sim };
    assert_eq!(run(w.recon().arg("migrate")).0, 0);
    let store = w.db.store().await;
    let mut run = recon_core::testkit::store_suite::running_sweep(
        "customers",
        "run-xss",
        recon_core::now_ms(),
    );
    run.provider = "stripe".into();
    run.status = recon_core::RunStatus::Failed;
    run.finished_at = Some(run.started_at + 1);
    run.error = Some("<img src=x onerror=alert(1)>".into());
    store.insert_run(&run).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_drift(&[recon_core::DriftRecord {
        key: recon_core::ObjectKey::new(
            "stripe",
            "default",
            "customers",
            "cus_<script>alert(1)</script>",
        ),
        run_id: Some("run-xss".into()),
        source: recon_core::Source::Sweep,
        cause: recon_core::DriftCause::Changed,
        before: Some(serde_json::json!({"name": "a"})),
        after: Some(serde_json::json!({"name": "</pre><script>alert(2)</script>"})),
        detected_at: recon_core::now_ms(),
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let server = w.serve(Some(TOKEN)).await;
    let cookie = login(&server.base).await;
    for path in ["/status", "/status/runs/run-xss"] {
        let (status, page, _) = get(&server.base, path, Some(&cookie)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!page.contains("<script>"), "{path}: {page}");
        assert!(!page.contains("<img"), "{path}");
    }
    let (_, page, _) = get(&server.base, "/status/runs/run-xss", Some(&cookie)).await;
    assert!(
        page.contains("&lt;/pre&gt;&lt;script&gt;alert(2)"),
        "{page}"
    );
    let (_, page, _) = get(&server.base, "/status", Some(&cookie)).await;
    assert!(
        page.contains("run_failed: &lt;img"),
        "the failed run is an open alert: {page}"
    );
}

// ---------------------------------------------------------------- browser

/// Chromium and chromedriver (`CHROME_BIN` and `CHROMEDRIVER` override the
/// search of `PATH`), or why not. Under CI their absence fails.
fn browser() -> Option<(String, String)> {
    let find = |var: &str, names: &[&str]| {
        std::env::var(var)
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| {
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::split_paths(&path)
                    .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                    .find(|p| p.is_file())
                    .map(|p| p.display().to_string())
            })
    };
    let chromium = find(
        "CHROME_BIN",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "the status page's browser test needs Chromium and chromedriver \
             (Debian: apt-get install chromium chromium-driver; or set CHROME_BIN and CHROMEDRIVER); \
             .ci/run installs them"
        ),
        _ => {
            eprintln!(
                "SKIPPED: Chromium or chromedriver not found (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

/// Type `token` into the login form and submit it.
async fn log_in(c: &fantoccini::Client, token: &str) {
    let field = c.find(Locator::Css("#token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    let submit = c.find(Locator::Css("button[type=submit]")).await.unwrap();
    submit.click().await.unwrap();
}

/// The text of the element `at`, once the page has it.
async fn wait_text(c: &fantoccini::Client, at: Locator<'_>) -> String {
    let element = c.wait().for_element(at).await.unwrap();
    element.text().await.unwrap()
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_headless_chromium() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let (_w, server) = world().await;
    let port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2200"],
        }),
    );
    let mut client = None;
    for _ in 0..100 {
        match fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps.clone())
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let c = client.expect("chromedriver answered");
    let base = &server.base;

    // Without a session the page sends the browser to the login.
    c.goto(&format!("{base}/status")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/status/login");
    // A wrong token stays there with a message.
    log_in(&c, "wrong-token").await;
    assert_eq!(
        wait_text(&c, Locator::Css("[role=alert]")).await,
        "Wrong token."
    );
    log_in(&c, TOKEN).await;
    wait_text(&c, Locator::Css("svg[data-chart]")).await;
    assert_eq!(c.current_url().await.unwrap().path(), "/status");

    // The charts, as the browser laid them out: every chart is drawn with
    // a size, and the series the data implies have bars or points.
    let layout = c
        .execute(
            r#"
            const out = {};
            for (const svg of document.querySelectorAll('svg[data-chart]')) {
                const box = svg.getBoundingClientRect();
                const series = {};
                for (const g of svg.querySelectorAll('g[data-series]')) {
                    series[g.dataset.series] = {
                        total: Number(g.dataset.total),
                        marks: g.querySelectorAll('rect, circle').length,
                        height: Array.from(g.querySelectorAll('rect')).reduce((h, r) => h + r.getBBox().height, 0),
                    };
                }
                out[svg.dataset.chart] = { width: box.width, height: box.height, series };
            }
            out.cookieVisibleToScripts = document.cookie.includes('recon_session');
            return out;
            "#,
            vec![],
        )
        .await
        .unwrap();
    for chart in [
        "runs",
        "objects",
        "duration",
        "drift_ratio",
        "webhooks",
        "drift_causes",
    ] {
        let ch = &layout[chart];
        assert!(ch["width"].as_f64().unwrap() > 200.0, "{chart}: {ch}");
        assert!(ch["height"].as_f64().unwrap() > 40.0, "{chart}: {ch}");
    }
    let series = |chart: &str, s: &str| layout[chart]["series"][s].clone();
    assert!(series("runs", "succeeded")["marks"].as_u64().unwrap() >= 1);
    assert!(series("runs", "succeeded")["height"].as_f64().unwrap() > 1.0);
    assert!(series("webhooks", "applied")["total"].as_f64().unwrap() > 0.0);
    assert!(series("webhooks", "applied")["height"].as_f64().unwrap() > 0.0);
    assert_eq!(
        series("webhooks", "rejected")["total"].as_f64().unwrap(),
        1.0
    );
    assert!(series("objects", "compared")["marks"].as_u64().unwrap() >= 1);
    assert!(series("drift_causes", "changed")["marks"].as_u64().unwrap() == 1);
    assert_eq!(
        layout["cookieVisibleToScripts"], false,
        "the session cookie is HttpOnly"
    );

    // The screenshot CI keeps.
    let png = c.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status-page.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));

    // Drill down: the newest customers run with updates shows its fields.
    c.find(Locator::XPath(
        "//table[@id='runs']//tr[td[3]='customers' and td[9]!='0']//a",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let fields = wait_text(&c, Locator::Css("pre.fields")).await;
    assert!(fields.contains(" → "), "{fields}");
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/status/runs/")
    );
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join("status-run.png"), &png).unwrap();
    c.close().await.unwrap();
}
