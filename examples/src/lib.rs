//! Example programs that embed recon's library crates instead of running
//! the `recon` binary. The programs are in `examples/`:
//!
//! - `stripe_sqlite`: recon-core + recon-stripe + recon-store-sqlite, one
//!   sweep of Stripe customers into an SQLite file.
//! - `clerk_postgres`: recon-core + recon-clerk + recon-store-postgres, one
//!   sweep of Clerk users into Postgres.
//! - `webhook_axum`: an axum route that hands Stripe webhooks to
//!   `Engine::ingest_webhook`.
//!
//! Run one with `cargo run -p recon-examples --example NAME`.
