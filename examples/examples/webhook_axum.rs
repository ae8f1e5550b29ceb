//! Embed recon's webhook path in your own axum server: `POST
//! /webhooks/stripe` hands the raw body and headers to
//! `Engine::ingest_webhook`, which verifies `Stripe-Signature`, records the
//! event in the ledger and applies it in one transaction, and answers 2xx
//! only after that commit.
//!
//! ```sh
//! STRIPE_SECRET_KEY=sk_test_… STRIPE_WEBHOOK_SECRET=whsec_… \
//!     cargo run -p recon-examples --example webhook_axum
//! stripe listen --forward-to 127.0.0.1:3000/webhooks/stripe   # in another shell
//! ```
//!
//! - `STRIPE_SECRET_KEY` (required): the engine fetches objects to settle
//!   ties between two states of one version.
//! - `STRIPE_WEBHOOK_SECRET` (required): the endpoint's signing secret
//!   (`whsec_…`).
//! - `STRIPE_API_BASE` (optional): another API host.
//! - `DATABASE_URL` (optional): the SQLite file, default `sqlite://recon.db`.
//! - `LISTEN` (optional): the address to serve on, default `127.0.0.1:3000`.
//!
//! Exits 1 with one line on standard error when a variable is missing or
//! the store or the address cannot be opened.
//!
//! The `recon` binary's `recon serve` does the same with metrics, a
//! scheduler for sweeps and replays, and the admin API; this is the bare
//! minimum for an app that wants webhooks in its own process.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use recon_core::{Engine, ErrorKind, Provider, Store};
use recon_store_sqlite::SqliteStore;
use recon_stripe::{StripeConfig, StripeProvider};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook_axum: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> Result<(), String> {
    let config = StripeConfig::from_env().map_err(|e| e.to_string())?;
    if !config.has_webhook_secret() {
        return Err(
            "STRIPE_WEBHOOK_SECRET is not set: webhooks cannot be verified without the endpoint's whsec_… secret"
                .to_string(),
        );
    }
    let stripe: Arc<dyn Provider> =
        Arc::new(StripeProvider::new(config).map_err(|e| e.to_string())?);

    let url = var("DATABASE_URL").unwrap_or_else(|| recon_store_sqlite::DEFAULT_URL.to_string());
    if !url.starts_with("sqlite:") {
        return Err("DATABASE_URL must be an SQLite URL (sqlite://path) for this example".into());
    }
    let store = SqliteStore::connect(&url)
        .await
        .map_err(|e| e.to_string())?
        .with_views(recon_stripe::PROVIDER.views.to_vec());
    store.migrate().await.map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(store);
    let engine = Engine::new(store, stripe);

    let app = Router::new()
        .route("/webhooks/stripe", post(stripe_webhook))
        .with_state(engine);
    let addr = var("LISTEN").unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("listening on http://{addr}/webhooks/stripe");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("server: {e}"))
}

/// The raw body, not a parsed `Json`: the signature covers the exact bytes.
async fn stripe_webhook(State(engine): State<Engine>, headers: HeaderMap, body: Bytes) -> Response {
    match engine.ingest_webhook(&headers, &body).await {
        // Committed (or a duplicate the ledger already had): acknowledge.
        Ok(report) => (StatusCode::OK, axum::Json(report)).into_response(),
        Err(e) => {
            let status = match e.kind() {
                // Forged, stale or signed with another secret; or a body
                // that is not an event. Redelivering will not help.
                ErrorKind::BadSignature | ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                ErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
                // Nothing was committed: a non-2xx makes Stripe redeliver.
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            eprintln!("webhook not recorded: {e}");
            (status, e.kind().to_string()).into_response()
        }
    }
}
