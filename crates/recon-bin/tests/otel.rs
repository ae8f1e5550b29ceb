//! Traces over OTLP: the real `recon` binary, with OTEL_EXPORTER_OTLP_ENDPOINT
//! pointing at a local OTLP/HTTP receiver, exports its spans (protobuf by
//! default, JSON on request), flushes them on exit (SIGTERM and failures
//! included), keeps secrets and payloads out of them, and exports nothing
//! without the variable. The batch processor's timer is set to a minute, so
//! whatever arrives was sent by the flush at exit.

#![cfg(feature = "recon-stripe")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{STRIPE_WHSEC, free_port, http};
use prost::Message;
use recon_sim::{Sim, SimConfig, SimHandle};
use serde_json::{Value, json};

/// The Stripe key the simulator accepts: it must never be exported.
const SIM_KEY: &str = "sk_test_otelSimulatorKeyThatMustNotLeak_31415926";
/// A header for the collector (OTEL_EXPORTER_OTLP_HEADERS): sent as a
/// header, never as an attribute.
const COLLECTOR_TOKEN: &str = "collector-token-otel-27182818";

/// One OTLP/HTTP request the receiver got.
#[derive(Clone, Debug)]
struct Export {
    content_type: String,
    content_encoding: Option<String>,
    token: Option<String>,
    body: Vec<u8>,
}

/// One exported span, whatever the encoding.
#[derive(Clone, Debug, Default)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// 2: server (OTLP's SpanKind).
    kind: i64,
    attrs: HashMap<String, String>,
    /// Attribute values of the span's events (the logs inside it).
    event_values: Vec<String>,
    /// 2: error (OTLP's StatusCode).
    status: i64,
    resource: HashMap<String, String>,
}

impl Span {
    fn attr(&self, k: &str) -> &str {
        self.attrs.get(k).map(String::as_str).unwrap_or("")
    }
}

type Received = Arc<Mutex<Vec<Export>>>;

/// An OTLP/HTTP receiver on `addr` accepting POST /v1/traces.
async fn receiver_on(addr: &str) -> std::io::Result<(String, Received)> {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |State(got): State<Received>, headers: HeaderMap, body: Bytes| async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    got.lock().unwrap().push(Export {
                        content_type: h("content-type").unwrap_or_default(),
                        content_encoding: h("content-encoding"),
                        token: h("x-collector-token"),
                        body: body.to_vec(),
                    });
                    StatusCode::OK
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), got))
}

async fn receiver() -> (String, Received) {
    receiver_on("127.0.0.1:0").await.unwrap()
}

fn exports(got: &Received) -> Vec<Export> {
    got.lock().unwrap().clone()
}

/// Every span of every request, decoded by its content type.
fn spans(exports: &[Export]) -> Vec<Span> {
    let mut out = Vec::new();
    for e in exports {
        assert_eq!(e.content_encoding, None, "no compression was asked for");
        if e.content_type.starts_with("application/json") {
            out.extend(json_spans(&serde_json::from_slice(&e.body).unwrap()));
        } else {
            assert!(
                e.content_type.starts_with("application/x-protobuf"),
                "{}",
                e.content_type
            );
            out.extend(proto_spans(&e.body));
        }
    }
    out
}

fn proto_spans(body: &[u8]) -> Vec<Span> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    fn text(v: &Option<AnyValue>) -> String {
        match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::BoolValue(b)) => b.to_string(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            Some(any_value::Value::DoubleValue(d)) => d.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }
    fn map(kvs: &[KeyValue]) -> HashMap<String, String> {
        kvs.iter()
            .map(|kv| (kv.key.clone(), text(&kv.value)))
            .collect()
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| map(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push(Span {
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    kind: s.kind as i64,
                    attrs: map(&s.attributes),
                    event_values: s
                        .events
                        .iter()
                        .flat_map(|e| map(&e.attributes).into_values())
                        .collect(),
                    status: s.status.as_ref().map(|st| st.code as i64).unwrap_or(0),
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn json_spans(doc: &Value) -> Vec<Span> {
    fn text(v: &Value) -> String {
        // {"stringValue": "…"} / {"intValue": …} / …: the one field's value.
        match v.as_object().and_then(|o| o.values().next()) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }
    fn map(kvs: &Value) -> HashMap<String, String> {
        kvs.as_array()
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap_or("").to_string(),
                    text(&kv["value"]),
                )
            })
            .collect()
    }
    fn code(v: &Value, error: i64) -> i64 {
        match v {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) if s.contains("ERROR") => error,
            Value::String(s) if s.contains("SERVER") => 2,
            _ => 0,
        }
    }
    let s = |v: &Value| v.as_str().unwrap_or("").to_ascii_lowercase();
    let mut out = Vec::new();
    for rs in doc["resourceSpans"].as_array().expect("resourceSpans") {
        let resource = map(&rs["resource"]["attributes"]);
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for sp in ss["spans"].as_array().into_iter().flatten() {
                out.push(Span {
                    name: s(&sp["name"]),
                    trace_id: s(&sp["traceId"]),
                    span_id: s(&sp["spanId"]),
                    parent_span_id: s(&sp["parentSpanId"]),
                    kind: code(&sp["kind"], 0),
                    attrs: map(&sp["attributes"]),
                    event_values: sp["events"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|e| map(&e["attributes"]).into_values())
                        .collect(),
                    status: code(&sp["status"]["code"], 2),
                    resource: resource.clone(),
                });
            }
        }
    }
    out
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// (c): none of `secrets` is anywhere in what was exported: not in the raw
/// requests (uncompressed, so a string recorded anywhere shows up as is; the
/// control string proves the search sees recorded strings), not in any
/// attribute of any span, span event or resource.
fn assert_no_secrets(exports: &[Export], spans: &[Span], control: &str, secrets: &[&str]) {
    let contains =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        exports.iter().any(|e| contains(&e.body, control)),
        "the control string {control:?} is not in the raw requests: the search proves nothing"
    );
    for secret in secrets {
        for e in exports {
            assert!(!contains(&e.body, secret), "{secret:?} was exported");
        }
        for s in spans {
            for v in s
                .attrs
                .values()
                .chain(&s.event_values)
                .chain(s.resource.values())
            {
                assert!(!v.contains(secret), "{secret:?} in span {}: {v}", s.name);
            }
        }
    }
}

async fn sim() -> SimHandle {
    let sim = Sim::start(SimConfig {
        stripe_key: SIM_KEY.to_string(),
        ..SimConfig::with_seed(11)
    })
    .await
    .expect("start the simulator");
    sim.seed_initial(250, 0);
    sim
}

/// `recon` on a SQLite file against the simulator's Stripe, no OTEL_*
/// variable unless the test adds it; the batch timer at a minute.
fn recon(db: &Path, sim: &SimHandle, key: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recon"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("RUST_LOG", "info")
        .env("STRIPE_API_BASE", sim.stripe_base())
        .env("STRIPE_SECRET_KEY", key)
        .env("STRIPE_WEBHOOK_SECRET", STRIPE_WHSEC)
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .stdin(Stdio::null());
    c
}

fn migrated(sim: &SimHandle) -> PathBuf {
    let db = recon_store_sqlite::testing::temp_db_path("otel");
    let out = recon(&db, sim, SIM_KEY).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

fn reconcile(db: &Path, sim: &SimHandle, key: &str, env: &[(&str, &str)]) -> (i32, Value, String) {
    let mut c = recon(db, sim, key);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .args(["reconcile", "stripe", "--kind", "customers", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// The names of the process's threads (Linux).
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The SDK's export thread ("OpenTelemetry.Traces.BatchProcessor", cut to 15).
fn has_exporter_thread(pid: u32) -> bool {
    threads(pid).iter().any(|n| n.starts_with("OpenTelemetry"))
}

struct Server {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(db: &Path, sim: &SimHandle, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let config = std::env::temp_dir().join(format!("recon-otel-{port}.toml"));
    std::fs::write(&config, "[server]\nscheduler = false\n").unwrap();
    let stderr = std::env::temp_dir().join(format!("recon-otel-{port}.log"));
    let mut c = recon(db, sim, SIM_KEY);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let server = Server {
        child: c.spawn().expect("spawn recon serve"),
        base: format!("http://127.0.0.1:{port}"),
        stderr,
    };
    let client = http();
    for _ in 0..150 {
        if let Ok(r) = client.get(format!("{}/healthz", server.base)).send().await
            && r.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("recon serve did not come up");
}

/// SIGTERM, then wait for the exit status.
async fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    for _ in 0..300 {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("recon serve did not stop on SIGTERM");
}

const EMAIL: &str = "payload-only@otel.example.com";

fn webhook_body(event_id: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    json!({
        "id": event_id, "object": "event", "type": "customer.updated", "created": now,
        "api_version": "2025-03-31.basil", "livemode": false, "pending_webhooks": 0,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": common::customer("cus_otel_1", EMAIL, now) }
    })
    .to_string()
}

/// (a) and (c): `recon serve` exports the webhook's span and its commit's,
/// sent by the flush when SIGTERM stops it; no secret, signature or payload
/// in them; the log lines carry no span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_the_webhook_and_its_commit_when_stopped_by_sigterm() {
    let sim = sim().await;
    let db = migrated(&sim);
    let (endpoint, got) = receiver().await;
    let mut srv = serve(
        &db,
        &sim,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                &format!("x-collector-token={COLLECTOR_TOKEN}"),
            ),
        ],
    )
    .await;
    if cfg!(target_os = "linux") {
        assert!(
            has_exporter_thread(srv.child.id()),
            "no export thread: {:?}",
            threads(srv.child.id())
        );
    }

    let body = webhook_body("evt_otel_1");
    let t = chrono::Utc::now().timestamp();
    let signature = recon_stripe::sign(STRIPE_WHSEC, t, body.as_bytes());
    let r = http()
        .post(format!("{}/webhooks/stripe", srv.base))
        .header("Stripe-Signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["outcome"], "applied");
    // A forgery: a span too, with no event id and no signature in it.
    let r = http()
        .post(format!("{}/webhooks/stripe", srv.base))
        .header("Stripe-Signature", format!("t={t},v1={}", "ab".repeat(32)))
        .body(webhook_body("evt_otel_forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        exports(&got).is_empty(),
        "exported before the flush: the batch timer is a minute"
    );

    let status = terminate(&mut srv).await;
    assert!(status.success(), "{status:?}");
    let exports = exports(&got);
    assert!(!exports.is_empty(), "nothing was flushed at SIGTERM");
    for e in &exports {
        assert!(
            e.content_type.starts_with("application/x-protobuf"),
            "{e:?}"
        );
        assert_eq!(
            e.token.as_deref(),
            Some(COLLECTOR_TOKEN),
            "OTEL_EXPORTER_OTLP_HEADERS"
        );
    }
    let spans = spans(&exports);

    let hooks = named(&spans, "recon.webhook");
    let hook = hooks
        .iter()
        .find(|s| s.attr("event_id") == "evt_otel_1")
        .unwrap_or_else(|| panic!("no webhook span of evt_otel_1: {spans:#?}"));
    assert_eq!(hook.attr("provider"), "stripe");
    assert_eq!(hook.attr("account"), "default");
    assert_eq!(hook.attr("event_type"), "customer.updated");
    assert_eq!(hook.attr("outcome"), "applied");
    assert_eq!(hook.kind, 2, "a server span");
    assert_eq!(
        hook.resource.get("service.name").map(String::as_str),
        Some("recon")
    );
    let forged = hooks
        .iter()
        .find(|s| s.attr("outcome") == "bad_signature")
        .expect("the forgery's span");
    assert_eq!(forged.attr("provider"), "stripe");
    assert_eq!(forged.attr("event_id"), "", "a forgery's id is not trusted");

    let commits = named(&spans, "recon.commit");
    assert!(
        commits.iter().any(|c| c.attr("provider") == "stripe"
            && c.attr("kind") == "customers"
            && c.attr("events") == "1"),
        "no commit span of the webhook: {commits:#?}"
    );

    let sig_hex = signature.rsplit("v1=").next().unwrap();
    assert_no_secrets(
        &exports,
        &spans,
        "evt_otel_1",
        &[
            SIM_KEY,
            STRIPE_WHSEC,
            sig_hex,
            &"ab".repeat(32),
            EMAIL,
            COLLECTOR_TOKEN,
        ],
    );

    // The logs are as they were: no span context in their lines.
    let log = std::fs::read_to_string(&srv.stderr).unwrap();
    assert!(log.contains("webhook refused"), "{log}");
    assert!(
        !log.contains("recon.webhook") && !log.contains("recon.commit"),
        "{log}"
    );
}

/// (b) and (c): `recon reconcile stripe --kind customers` exports its run
/// with its pages and commits as children, in protobuf (the default) and in
/// JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json, with the service named by
/// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_exports_its_run_pages_and_commits() {
    let sim = sim().await;
    for json in [false, true] {
        let db = migrated(&sim);
        let (endpoint, got) = receiver().await;
        let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
        if json {
            env.extend([
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_SERVICE_NAME", "recon-billing"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ]);
        }
        let (code, doc, stderr) = reconcile(&db, &sim, SIM_KEY, &env);
        assert_eq!(code, 0, "{stderr}");
        let run_id = doc["runs"][0]["id"]
            .as_str()
            .expect("the run's id")
            .to_string();

        let exports = exports(&got);
        let wanted = if json {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        assert!(!exports.is_empty(), "nothing exported; {stderr}");
        assert!(
            exports.iter().all(|e| e.content_type.starts_with(wanted)),
            "{exports:?}"
        );
        let spans = spans(&exports);

        let runs = named(&spans, "recon.sweep");
        assert_eq!(runs.len(), 1, "{spans:#?}");
        let run = runs[0];
        assert_eq!(run.attr("provider"), "stripe");
        assert_eq!(run.attr("account"), "default");
        assert_eq!(run.attr("kind"), "customers");
        assert_eq!(run.attr("run_id"), run_id);
        assert_eq!(run.attr("status"), "succeeded");
        assert_eq!(run.attr("listed"), "250");
        assert_ne!(run.status, 2);

        let pages = named(&spans, "recon.page");
        assert!(
            pages.len() >= 3,
            "250 customers are at least 3 pages: {pages:#?}"
        );
        let mut items = 0;
        for p in &pages {
            assert_eq!(p.attr("provider"), "stripe");
            assert_eq!(p.attr("account"), "default");
            assert_eq!(p.attr("kind"), "customers");
            assert_eq!(p.attr("run_id"), run_id);
            assert_eq!(p.trace_id, run.trace_id, "a page in the run's trace");
            assert_eq!(p.parent_span_id, run.span_id, "a page is the run's child");
            items += p.attr("items").parse::<u64>().unwrap();
        }
        assert_eq!(items, 250);

        let commits = named(&spans, "recon.commit");
        assert!(
            commits.iter().any(|c| c.attr("kind") == "customers"
                && c.attr("provider") == "stripe"
                && c.attr("changes") != "0"
                && c.trace_id == run.trace_id),
            "no commit of the listed customers in the run's trace: {commits:#?}"
        );

        let service = run.resource.get("service.name").map(String::as_str);
        if json {
            assert_eq!(service, Some("recon-billing"));
            assert_eq!(
                run.resource
                    .get("deployment.environment")
                    .map(String::as_str),
                Some("test")
            );
        } else {
            assert_eq!(service, Some("recon"));
        }
        assert_no_secrets(&exports, &spans, &run_id, &[SIM_KEY, STRIPE_WHSEC]);
    }
}

/// A run that fails (the provider refuses the key) is exported too, at an
/// exit status of 1, marked as an error, without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_flushed_and_marked_as_an_error() {
    let sim = sim().await;
    let db = migrated(&sim);
    let (endpoint, got) = receiver().await;
    let wrong = "sk_test_otelWrongKeyStillASecret_16180339";
    let (code, doc, stderr) = reconcile(
        &db,
        &sim,
        wrong,
        &[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            &format!("{endpoint}/v1/traces"),
        )],
    );
    assert_eq!(code, 1, "{doc} {stderr}");
    let exports = exports(&got);
    let spans = spans(&exports);
    let runs = named(&spans, "recon.sweep");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    assert_eq!(runs[0].attr("status"), "failed");
    assert_eq!(runs[0].status, 2, "an error");
    assert_no_secrets(
        &exports,
        &spans,
        "recon.sweep",
        &[wrong, SIM_KEY, STRIPE_WHSEC],
    );
}

/// (d): without the variable (or with OTEL_SDK_DISABLED=true) nothing is
/// exported and no exporter runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_the_variable() {
    let sim = sim().await;
    let db = migrated(&sim);

    // An exporter started without an endpoint would send to the default one,
    // 127.0.0.1:4318: listen there when it is free.
    match receiver_on("127.0.0.1:4318").await {
        Ok((_, got)) => {
            let (code, _, stderr) = reconcile(&db, &sim, SIM_KEY, &[]);
            assert_eq!(code, 0, "{stderr}");
            assert!(exports(&got).is_empty(), "exported without the variable");
        }
        Err(e) => eprintln!("127.0.0.1:4318 is taken ({e}); checking the other ways only"),
    }

    let (endpoint, got) = receiver().await;
    let (code, _, stderr) = reconcile(
        &db,
        &sim,
        SIM_KEY,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        exports(&got).is_empty(),
        "exported with OTEL_SDK_DISABLED=true"
    );

    // The same run with the variable does export: the receiver works.
    let (code, _, stderr) = reconcile(
        &db,
        &sim,
        SIM_KEY,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(!exports(&got).is_empty());

    // No export thread in a server without it.
    if cfg!(target_os = "linux") {
        let mut srv = serve(&db, &sim, &[]).await;
        let names = threads(srv.child.id());
        assert!(!names.is_empty());
        assert!(!has_exporter_thread(srv.child.id()), "{names:?}");
        assert!(terminate(&mut srv).await.success());
    }
}
