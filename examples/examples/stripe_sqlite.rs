//! Embed recon with Stripe and SQLite: one sweep of Stripe customers into
//! an SQLite mirror, then print the run record.
//!
//! ```sh
//! STRIPE_SECRET_KEY=sk_test_… cargo run -p recon-examples --example stripe_sqlite
//! ```
//!
//! - `STRIPE_SECRET_KEY` (required): a secret (`sk_…`) or restricted
//!   (`rk_…`, read access is enough) key.
//! - `STRIPE_API_BASE` (optional): another API host, such as a local
//!   emulator (default `https://api.stripe.com`).
//! - `DATABASE_URL` (optional): the SQLite file, default
//!   `sqlite://recon.db`. The typed views (`stripe_customers`, …) are created
//!   in it.
//!
//! Exits 1 with one line on standard error when a variable is missing or
//! the sweep cannot run; a sweep that ran but failed prints its run record
//! (status `failed`, with the error) and exits 1 too.

use std::process::ExitCode;
use std::sync::Arc;

use recon_core::{Engine, Provider, RunStatus, Store, SweepOptions};
use recon_store_sqlite::SqliteStore;
use recon_stripe::{StripeConfig, StripeProvider};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(RunStatus::Succeeded) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("stripe_sqlite: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> recon_core::Result<RunStatus> {
    // STRIPE_SECRET_KEY, and STRIPE_API_BASE when set: a missing key is a
    // configuration error naming the variable (never a panic).
    let config = StripeConfig::from_env()?;
    let stripe: Arc<dyn Provider> = Arc::new(StripeProvider::new(config)?);

    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| recon_store_sqlite::DEFAULT_URL.to_string());
    if !url.starts_with("sqlite:") {
        return Err(recon_core::Error::config(format!(
            "DATABASE_URL must be an SQLite URL (sqlite://path) for this example, not {:?}",
            url.split(':').next().unwrap_or_default()
        )));
    }
    // The provider brings its typed views; migrate creates the tables and them.
    let store = SqliteStore::connect(&url)
        .await?
        .with_views(recon_stripe::PROVIDER.views.to_vec());
    store.migrate().await?;
    let store: Arc<dyn Store> = Arc::new(store);

    let engine = Engine::new(store, stripe);
    let run = engine.sweep("customers", &SweepOptions::default()).await?;
    let json = serde_json::to_string_pretty(&run)
        .map_err(|e| recon_core::Error::invalid(format!("run record: {e}")))?;
    println!("{json}");
    Ok(run.status)
}
