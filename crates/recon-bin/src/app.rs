//! Wiring: the store from `DATABASE_URL`, the providers whose keys are set,
//! one engine per provider.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use recon_core::project::{AppSweepOptions, AppSync};
use recon_core::store::Reference;
use recon_core::{BudgetStats, Engine, EngineConfig, Error, ErrorKind, Provider, Store};

use crate::config::{Config, env};

/// One configured provider.
pub struct ProviderEntry {
    /// Its registered name (`stripe`, `clerk`, …).
    pub name: &'static str,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
    /// Its engine (shares the store).
    pub engine: Engine,
    /// Diagnostics reference rules.
    pub references: &'static [Reference],
    /// The adapter's request counters.
    pub stats: Arc<BudgetStats>,
}

/// Everything a command needs.
pub struct App {
    /// The loaded configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Providers whose keys are set (and not disabled).
    pub providers: Vec<ProviderEntry>,
    /// Providers that are off, with why (for clear errors).
    pub off: Vec<(&'static str, String)>,
    /// The projections, checks and change feed of the configuration (also
    /// attached to the store).
    pub sync: Arc<AppSync>,
}

/// Open the store named by the configuration, with the configuration's
/// projections, checks and change feed attached. One clear line on failure.
pub async fn open_store(config: &Config) -> recon_core::Result<Arc<dyn Store>> {
    let url = config.database_url();
    let sync = Arc::new(config.app_sync()?);
    // The typed views of the providers this binary was built with.
    let views = crate::registry::registry().views();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = recon_store_postgres::PgStore::connect(&url, &config.schema()).await?;
        Ok(Arc::new(s.with_app_sync(sync).with_views(views)))
    } else if url.starts_with("sqlite:") {
        let s = recon_store_sqlite::SqliteStore::connect(&url).await?;
        Ok(Arc::new(s.with_app_sync(sync).with_views(views)))
    } else {
        Err(Error::config(
            "DATABASE_URL must start with postgres:// or sqlite:// (default sqlite://recon.db)",
        ))
    }
}

/// Check the projections and checks against the database (tables,
/// columns, queries) before anything is written: a configuration error
/// (exit 2) naming the projection or check. Nothing to do without any.
pub async fn verify_app_sync(store: &dyn Store, sync: &AppSync) -> recon_core::Result<()> {
    if sync.projections.is_empty() && sync.checks.is_empty() {
        return Ok(());
    }
    recon_core::project::verify(store, sync).await
}

/// How app-table reconciliation runs, from `[engine]`'s breaker settings.
pub fn app_sweep_options(
    config: &Config,
    account: &str,
    source: recon_core::Source,
    dry_run: bool,
    force: bool,
) -> AppSweepOptions {
    AppSweepOptions {
        dry_run,
        force,
        breaker_share: config.engine.breaker_share,
        breaker_min_base: config.engine.breaker_min_base,
        account: account.to_string(),
        source,
        ..AppSweepOptions::default()
    }
}

fn engine_config(config: &Config) -> EngineConfig {
    let mut e = EngineConfig::default();
    e.breaker_share = config.engine.breaker_share;
    e.breaker_min_base = config.engine.breaker_min_base;
    e.partitions = config.engine.partitions.max(1);
    // Several heartbeats fit in the abandonment window.
    e.abandon_after = config.engine.abandon_after();
    e.heartbeat = (e.abandon_after / 8).clamp(Duration::from_millis(100), Duration::from_secs(15));
    e.missed_grace = config.engine.missed_grace();
    e
}

/// Providers turned on (built) and off (with the reason).
type Providers = (
    Vec<(&'static str, recon_core::BuiltProvider)>,
    Vec<(&'static str, String)>,
);

fn build_providers(config: &Config) -> recon_core::Result<Providers> {
    let mut built = Vec::new();
    let mut off = Vec::new();
    for f in crate::registry::registry().iter() {
        let (name, var) = (f.name(), f.key_var());
        if config.provider(name).enabled == Some(false) {
            off.push((name, format!("{name} is disabled in the config file")));
            continue;
        }
        if env(var).is_none() {
            off.push((name, format!("{name} is off: set {var} to turn it on")));
            continue;
        }
        built.push((name, f.build(&config.provider_settings(name)?)?));
    }
    Ok((built, off))
}

impl App {
    /// Load everything. Providers without keys are off, not errors.
    pub async fn open(config: Config) -> Result<App> {
        // The HTTP clients load the system's CA certificates (tens of ms):
        // build the providers while the store connects.
        let cfg = config.clone();
        let building = tokio::task::spawn_blocking(move || build_providers(&cfg));
        let store = open_store(&config).await?;
        let sync = Arc::new(config.app_sync()?);
        let (built, off) = building
            .await
            .map_err(|e| Error::new(ErrorKind::Unexpected, format!("building providers: {e}")))??;
        let providers = built
            .into_iter()
            .map(|(name, b)| ProviderEntry {
                name,
                engine: Engine::new(store.clone(), b.provider.clone())
                    .with_config(engine_config(&config)),
                provider: b.provider,
                references: b.references,
                stats: b.stats,
            })
            .collect();
        Ok(App {
            config,
            store,
            providers,
            off,
            sync,
        })
    }

    /// The entry of a provider, or a usage error that says how to turn it on.
    pub fn provider(&self, name: &str) -> recon_core::Result<&ProviderEntry> {
        if let Some(p) = self.providers.iter().find(|p| p.name == name) {
            return Ok(p);
        }
        if let Some((_, why)) = self.off.iter().find(|(n, _)| *n == name) {
            return Err(Error::config(why.clone()));
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            crate::registry::registry().unknown(name).message(),
        ))
    }
}
