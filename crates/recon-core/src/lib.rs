//! recon-core: the contracts, the reconciliation engine, and the rate
//! limiting and retries that every recon provider shares.
//!
//! - [`Provider`] is what an adapter (`recon-stripe`, `recon-clerk`) implements.
//! - [`Store`] is what a store (`recon-store-postgres`, `recon-store-sqlite`) implements.
//! - [`Engine`] runs the five paths (webhook ingest, sweep, on-demand,
//!   replay, diagnostics) against any pair of them; every path ends in
//!   [`commit::commit`], so an object's state never depends on the path.
//! - [`retry::Budget`] is the per-account rate limiter and retry loop.

pub mod clock;
pub mod commit;
pub mod diagnostics;
pub mod diff;
pub mod engine;
pub mod error;
mod group;
#[cfg(feature = "http-client")]
pub mod http_client;
pub mod http_util;
pub mod keys;
pub mod kinds;
pub mod project;
pub mod provider;
pub mod registry;
pub mod retry;
pub mod signing;
pub mod store;
pub mod types;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{Engine, EngineConfig, IngestReport, OneOutcome, Progress, SweepOptions};
pub use error::{Error, ErrorKind, Result};
pub use provider::{Capabilities, EventPage, Fetched, Headers, ListScope, Page, Provider};
pub use registry::{
    BuiltProvider, EnvVar, ProviderFactory, ProviderSettings, ProviderSpec, Registry,
};
pub use retry::{Budget, BudgetStats, Rate, RetryPolicy};
pub use store::{Store, StoreTx};
pub use tokio_util::sync::CancellationToken;
pub use types::{
    DriftCause, DriftRecord, ObjectKey, ProviderEvent, RunCounts, RunKind, RunRecord, RunStatus,
    Snapshot, Source, StoredObject, content_hash, now_ms,
};
