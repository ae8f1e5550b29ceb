//! `recon serve`: webhooks, health, metrics, the admin API and the scheduler.
//!
//! # Guarantees
//! - A webhook is answered 2xx only after its ledger row and snapshot
//!   committed; a duplicate is answered 2xx and applied nothing.
//! - A forged or malformed webhook is answered 400 and writes nothing; no
//!   response carries database or secret detail.
//! - The admin API is mounted only when `RECON_ADMIN_TOKEN` is set; a token
//!   shorter than 32 characters or with surrounding whitespace stops the
//!   start (exit 2), and bearer tokens are compared as SHA-256 digests in
//!   constant time.
//! - An event-triggered sweep of one kind (missed webhooks, a replay gap) is
//!   requested at most once per `server.triggered_sweep_cooldown`.
//! - On SIGTERM or ctrl-c the server stops accepting, finishes in-flight
//!   requests, and cancels sweeps (which then delete nothing and are
//!   recorded as cancelled).

pub mod admin;
pub mod metrics;
pub mod scheduler;
pub mod status;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use recon_core::{ErrorKind, RunKind, RunRecord};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;
use admin::AdminToken;
use metrics::Metrics;

/// Shared state of the server.
pub struct ServerState {
    /// Store, providers, config.
    pub app: App,
    /// Metrics.
    pub metrics: Metrics,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Sweep requests from event-triggered runs: (provider, kind).
    pub sweep_requests: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    /// When each (provider, kind) last had an event-triggered sweep requested.
    pub cooldown: Cooldown,
}

/// Shared state handle.
pub type Shared = Arc<ServerState>;

/// At most one event-triggered sweep request per (provider, kind) and period.
pub struct Cooldown {
    period: Duration,
    last: Mutex<HashMap<(String, String), Instant>>,
}

impl Cooldown {
    /// A cool-down of `period`.
    pub fn new(period: Duration) -> Cooldown {
        Cooldown {
            period,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a sweep of `kind` may be requested at `now`; if so, the
    /// period starts again.
    pub fn allow(&self, provider: &str, kind: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let key = (provider.to_string(), kind.to_string());
        if let Some(t) = last.get(&key)
            && now.saturating_duration_since(*t) < self.period
        {
            return false;
        }
        last.insert(key, now);
        true
    }
}

impl ServerState {
    /// The state of a server over `app`; event-triggered sweep requests go
    /// to `sweep_requests`.
    pub fn new(
        app: App,
        metrics: Metrics,
        sweep_requests: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    ) -> ServerState {
        let cooldown = Cooldown::new(app.config.server.triggered_sweep_cooldown());
        ServerState {
            app,
            metrics,
            shutdown: CancellationToken::new(),
            sweep_requests,
            cooldown,
        }
    }

    /// Ask the scheduler for a sweep of one kind, unless one was asked for
    /// within `server.triggered_sweep_cooldown`. Whether it was asked.
    pub fn request_sweep(&self, provider: &str, kind: &str, why: &str) -> bool {
        if !self.cooldown.allow(provider, kind, Instant::now()) {
            tracing::info!(
                provider,
                kind,
                why,
                "sweep not requested: one was requested within server.triggered_sweep_cooldown"
            );
            return false;
        }
        tracing::info!(provider, kind, why, "sweep requested");
        self.sweep_requests
            .send((provider.to_string(), kind.to_string()))
            .is_ok()
    }

    /// Record a finished run: metrics, alerts, event-triggered sweeps.
    ///
    /// A replay's `missed` events (new to the ledger, carrying object states,
    /// older than the in-flight grace period) are missed webhooks: counted,
    /// warned about, and the kinds with drift in that run are swept (each at
    /// most once per cool-down). Its `undelivered` events (the provider still
    /// tries to deliver them) are counted and warned about.
    pub async fn after_run(&self, run: &RunRecord) {
        let alert =
            crate::alerts::maybe_alert(run, self.app.config.alerts.mismatch_threshold).await;
        self.metrics.run(run, alert);
        if run.run_kind != RunKind::Replay || run.dry_run {
            return;
        }
        if run.counts.undelivered > 0 {
            tracing::warn!(
                provider = %run.provider,
                undelivered = run.counts.undelivered,
                "the provider still reports events as not delivered to a webhook endpoint long after they happened: check the endpoint (URL, signing secret, answers) in the provider's dashboard; their objects are refreshed"
            );
            self.metrics
                .undelivered(&run.provider, run.counts.undelivered);
        }
        if run.counts.missed > 0 {
            tracing::warn!(
                provider = %run.provider,
                missed = run.counts.missed,
                "replay found events that no webhook had delivered; sweeping the affected kinds"
            );
            self.metrics.missed(&run.provider, run.counts.missed);
            match self
                .app
                .store
                .drift(&recon_core::store::DriftQuery {
                    run_id: Some(run.id.clone()),
                    limit: 10_000,
                    ..Default::default()
                })
                .await
            {
                Ok(drift) => {
                    let mut kinds: Vec<String> = drift.into_iter().map(|d| d.key.kind).collect();
                    kinds.sort();
                    kinds.dedup();
                    for k in kinds {
                        self.request_sweep(&run.provider, &k, "missed_webhooks");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the replay's drift: no sweeps requested")
                }
            }
        }
    }

    /// After a successful sweep of `kind`: reconcile the app rows of every
    /// projection of `provider` that depends on it (source `sweep`; each a
    /// run of kind `app:<projection>`, alerting and counted like a sweep),
    /// then run the checks (violations recorded, counted and alerted).
    pub async fn after_sweep_app(&self, provider: &str, kind: &str) {
        let sync = &self.app.sync;
        if !sync
            .projections
            .iter()
            .any(|p| p.depends_on(provider, kind))
            && sync.checks.is_empty()
        {
            return;
        }
        match crate::apptables::reconcile_provider(
            &self.app,
            provider,
            Some(kind),
            recon_core::Source::Sweep,
            false,
            false,
        )
        .await
        {
            Ok(runs) => {
                for r in &runs {
                    self.after_run(&r.run).await;
                    for c in &r.changes {
                        self.metrics.app_row(&r.projection, c.action);
                    }
                }
            }
            Err(e) => {
                tracing::error!(provider, kind, error = %e, "app tables not reconciled after the sweep")
            }
        }
        match crate::apptables::run_checks(&self.app, true).await {
            Ok(results) => {
                for r in &results {
                    self.metrics.check(r);
                }
            }
            Err(e) => tracing::error!(error = %e, "checks did not run after the sweep"),
        }
    }

    /// Delete change-feed entries older than `[changes] retention`.
    pub async fn prune_changes(&self) {
        if !self.app.sync.feed {
            return;
        }
        let keep = self.app.config.changes.retention();
        let before = recon_core::now_ms() - keep.as_millis() as i64;
        match self.app.store.prune_changes(before).await {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "change feed pruned"),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                tracing::debug!(error = %e, "change feed not pruned")
            }
            Err(e) => tracing::warn!(error = %e, "change feed not pruned"),
        }
    }

    /// The event cursor of `provider` has fallen beyond its event log:
    /// alert (log, metric, `RECON_ALERT_WEBHOOK_URL`) and request full
    /// sweeps of every kind.
    pub async fn replay_gap(&self, provider: &str, kinds: &[&str], gap: &crate::resume::Gap) {
        self.metrics.replay_gap(provider);
        crate::alerts::replay_gap(provider, gap, "full sweeps of every kind are scheduled").await;
        for k in kinds {
            self.request_sweep(provider, k, "replay_gap");
        }
    }
}

/// Build the router (also used by the demo). The admin API is mounted when
/// `admin` is given.
pub fn router(state: Shared, body_limit: usize, admin: Option<AdminToken>) -> Router {
    let mut r = Router::new()
        .route("/webhooks/{provider}", post(webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    if let Some(token) = admin {
        r = r.merge(status::router(status::StatusAuth::new(token.clone())));
        r = r.nest("/admin", admin::router(state.clone(), token));
    }
    r.layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn readyz(State(s): State<Shared>) -> Response {
    match s.app.store.check_ready().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: database unreachable or not migrated\n",
            )
                .into_response()
        }
    }
}

async fn metrics_text(State(s): State<Shared>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn webhook(
    State(s): State<Shared>,
    UrlPath(provider): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // One `recon.webhook` span per delivery: the provider and account that
    // took it, the event's id and type once verified, the outcome. Never the
    // signature, the headers or the body.
    let span = tracing::info_span!(
        "recon.webhook",
        otel.kind = "server",
        provider = tracing::field::Empty,
        account = tracing::field::Empty,
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let recorded = span.clone();
    let handle = async move {
        let span = recorded;
        let Some(entry) = s.app.providers.iter().find(|p| p.name == provider) else {
            span.record("outcome", "no_such_provider");
            return answer(
                StatusCode::NOT_FOUND,
                json!({ "error": "no such provider configured" }),
            );
        };
        span.record("provider", entry.name);
        span.record("account", entry.provider.account());
        match entry.engine.ingest_webhook(&headers, &body).await {
            Ok(r) => {
                let outcome = if r.duplicate {
                    "duplicate"
                } else if r.ignored {
                    "ignored"
                } else if r.applied > 0 {
                    "applied"
                } else {
                    "stale"
                };
                span.record("event_id", r.event_id.as_str());
                span.record("event_type", r.event_type.as_str());
                span.record("outcome", outcome);
                s.metrics.webhook(&provider, outcome);
                answer(
                    StatusCode::OK,
                    json!({ "received": true, "outcome": outcome }),
                )
            }
            Err(e) => {
                let (status, outcome, public) = webhook_error(&e);
                span.record("outcome", outcome);
                s.metrics.webhook(&provider, outcome);
                if status.is_client_error() {
                    tracing::warn!(provider = %provider, error = %e, "webhook refused");
                } else {
                    tracing::error!(provider = %provider, error = %e, "webhook not recorded");
                }
                answer(status, json!({ "error": public }))
            }
        }
    };
    tracing::Instrument::instrument(handle, span).await
}

/// How the webhook route answers an ingest error: status, metric outcome
/// and a public, secret-free message. Only outages and unknown store errors
/// are 503 (the sender retries); what will fail the same way every time is
/// 4xx.
fn webhook_error(e: &recon_core::Error) -> (StatusCode, &'static str, &'static str) {
    match e.kind() {
        ErrorKind::BadSignature => (
            StatusCode::BAD_REQUEST,
            "bad_signature",
            "signature verification failed",
        ),
        // Verified and well-formed, but the store refuses it every
        // time (a NUL in the event id, a data exception): a 503
        // would only bring the same delivery back forever.
        ErrorKind::InvalidInput if is_store(e.component()) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "unstorable",
            "the event holds data the store cannot record (for example a NUL character in an id); redelivering it will not help",
        ),
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid", "malformed webhook body"),
        ErrorKind::Config => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "config",
            "webhook verification is not configured",
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "temporarily unable to record the event; retry",
        ),
    }
}

/// Whether an error was raised by a store (whose `InvalidInput` means "this
/// data is refused every time"), not by the provider's parser.
fn is_store(component: &str) -> bool {
    matches!(component, "postgres" | "sqlite")
}

#[cfg(test)]
mod webhook_error_tests {
    use super::*;
    use recon_core::Error;

    #[test]
    fn data_the_store_always_refuses_is_422_outages_stay_503() {
        let code = |e: Error| webhook_error(&e).0;
        for store in ["postgres", "sqlite"] {
            let refused = Error::invalid("the event cannot be recorded").with_component(store);
            assert_eq!(code(refused), StatusCode::UNPROCESSABLE_ENTITY);
            for kind in [
                ErrorKind::Unavailable,
                ErrorKind::Conflict,
                ErrorKind::Timeout,
                ErrorKind::Store,
            ] {
                let outage = Error::new(kind, "down").with_component(store);
                assert_eq!(code(outage), StatusCode::SERVICE_UNAVAILABLE, "{kind}");
            }
        }
        let parse = Error::invalid("bad JSON").with_component("stripe");
        assert_eq!(code(parse), StatusCode::BAD_REQUEST);
        assert_eq!(code(Error::bad_signature("no")), StatusCode::BAD_REQUEST);
        let (_, _, public) =
            webhook_error(&Error::invalid("cus_secret\0").with_component("postgres"));
        assert!(
            !public.contains("cus_secret"),
            "the public message is fixed text"
        );
    }
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
        _ = token.cancelled() => {},
    }
    tracing::info!(
        "shutting down: no new connections, finishing in-flight requests, cancelling sweeps"
    );
    token.cancel();
}

/// Run the server until SIGTERM or ctrl-c.
pub async fn run(config: Option<&Path>) -> Result<u8> {
    // First, before touching the database: a weak token is a usage error.
    let admin = AdminToken::from_env()?;
    let config = Config::load(config)?;
    let listen = config.listen();
    let body_limit = config.server.body_limit;
    let scheduler_on = config.server.scheduler;
    let app = App::open(config).await?;
    app.store.check_ready().await?;
    crate::app::verify_app_sync(app.store.as_ref(), &app.sync).await?;
    for (_, why) in &app.off {
        tracing::info!("{why}");
    }
    let budgets = app
        .providers
        .iter()
        .map(|p| (p.name.to_string(), p.stats.clone()))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let state: Shared = Arc::new(ServerState::new(app, Metrics::new(budgets), tx));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (RECON_LISTEN)"))?;
    tracing::info!(address = %listen, admin = admin.is_some(), "recon serve listening");

    let background = if scheduler_on {
        Some(tokio::spawn(scheduler::run(state.clone(), rx)))
    } else {
        None
    };
    let token = state.shutdown.clone();
    // The client's address: the status page limits login attempts by it.
    let service = router(state.clone(), body_limit, admin)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal(token.clone()))
        .await
        .context("server error")?;
    token.cancel();
    if let Some(b) = background {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), b).await;
    }
    tracing::info!("stopped");
    Ok(crate::output::EXIT_OK)
}

#[cfg(test)]
mod tests;
