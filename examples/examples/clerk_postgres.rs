//! Embed recon with Clerk and Postgres: one sweep of Clerk users into a
//! Postgres mirror, then print the run record.
//!
//! ```sh
//! CLERK_SECRET_KEY=sk_test_… DATABASE_URL=postgres://recon@localhost/app \
//!     cargo run -p recon-examples --example clerk_postgres
//! ```
//!
//! - `CLERK_SECRET_KEY` (required): the instance's secret key.
//! - `DATABASE_URL` (required): a `postgres://` URL. recon's tables and the
//!   typed views (`clerk_users`, …) go into the schema `RECON_SCHEMA`
//!   (default `recon`).
//! - `CLERK_API_BASE` (optional): another API host, such as an emulator.
//!
//! Exits 1 with one line on standard error when a variable is missing or
//! the sweep cannot run; a sweep that ran but failed prints its run record
//! (status `failed`, with the error) and exits 1 too.

use std::process::ExitCode;
use std::sync::Arc;

use recon_clerk::{ClerkConfig, ClerkProvider};
use recon_core::{Engine, Provider, RunStatus, Store, SweepOptions};
use recon_store_postgres::PgStore;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(RunStatus::Succeeded) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("clerk_postgres: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> recon_core::Result<RunStatus> {
    // CLERK_SECRET_KEY (and CLERK_API_BASE when set): a missing key is a
    // configuration error naming the variable (never a panic).
    let config = ClerkConfig::from_env()?;
    let clerk: Arc<dyn Provider> = Arc::new(ClerkProvider::new(config)?);

    let url = var("DATABASE_URL").ok_or_else(|| {
        recon_core::Error::config("DATABASE_URL is not set: this example needs a postgres:// URL")
    })?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(recon_core::Error::config(
            "DATABASE_URL must start with postgres:// or postgresql:// for this example",
        ));
    }
    let schema = var("RECON_SCHEMA").unwrap_or_else(|| "recon".to_string());
    // The provider brings its typed views; migrate creates the schema's
    // tables and them.
    let store = PgStore::connect(&url, &schema)
        .await?
        .with_views(recon_clerk::PROVIDER.views.to_vec());
    store.migrate().await?;
    let store: Arc<dyn Store> = Arc::new(store);

    let engine = Engine::new(store, clerk);
    let run = engine.sweep("users", &SweepOptions::default()).await?;
    let json = serde_json::to_string_pretty(&run)
        .map_err(|e| recon_core::Error::invalid(format!("run record: {e}")))?;
    println!("{json}");
    Ok(run.status)
}
