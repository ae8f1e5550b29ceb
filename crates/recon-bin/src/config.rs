//! Configuration: an optional TOML file (`--config`, `RECON_CONFIG`) for
//! schedules, budgets, thresholds and which providers are on, then the
//! environment on top (environment wins). Secrets come from the environment
//! only and have no defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use recon_core::project::{
    AppSync, Check, Dependency, Link, OnDelete, OnMissing, Projection, builtin_checks,
};
use serde::Deserialize;

/// Where the mirror lives when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://recon.db";
/// Default listen address of `recon serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The sections of the file that are not providers'.
pub const SECTIONS: &[&str] = &[
    "database",
    "engine",
    "alerts",
    "server",
    "projections",
    "checks",
    "link",
    "changes",
];

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Config {
    /// Database settings.
    pub database: DatabaseConfig,
    /// Engine tuning.
    pub engine: EngineSection,
    /// Drift alerts.
    pub alerts: AlertConfig,
    /// `recon serve`.
    pub server: ServerConfig,
    /// One section per provider, named after it (`[stripe]`, `[clerk]`):
    /// every other top-level table lands here, and one that names no
    /// registered provider is refused by `validate`.
    #[serde(flatten)]
    pub providers: BTreeMap<String, ProviderSection>,
    /// Projections from the mirror into the app's own tables.
    pub projections: Vec<ProjectionSection>,
    /// Declared checks: SQL that must return no rows.
    pub checks: Vec<CheckSection>,
    /// The built-in Stripe ↔ Clerk checks.
    pub link: LinkSection,
    /// The change feed.
    pub changes: ChangesSection,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://path`; `DATABASE_URL` wins.
    pub url: Option<String>,
    /// Postgres schema for recon's tables; `RECON_SCHEMA` wins.
    pub schema: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            schema: "recon".into(),
        }
    }
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Circuit breaker: largest share of the mirror one sweep may change.
    pub breaker_share: f64,
    /// The breaker is armed from this many live objects of a kind.
    pub breaker_min_base: u64,
    /// Concurrent cursors per listing.
    pub partitions: usize,
    /// A run left `running` with no heartbeat for this long (its process was
    /// killed) is closed as failed by the next sweep or replay.
    pub abandon_after: String,
    /// An event younger than this may still be on its way as a webhook: a
    /// replay leaves it for the next one, which then counts it as missed
    /// (or, still undelivered at the provider, refreshes its objects).
    pub missed_grace: String,
    /// How often `recon serve` works through owed fetches (version ties
    /// whose fetch failed, undelivered events' objects).
    pub settle_every: String,
}

impl EngineSection {
    /// `abandon_after` as a duration (checked by `Config::load`).
    pub fn abandon_after(&self) -> Duration {
        humantime::parse_duration(&self.abandon_after).unwrap_or(Duration::from_secs(120))
    }

    /// `missed_grace` as a duration (checked by `Config::load`).
    pub fn missed_grace(&self) -> Duration {
        humantime::parse_duration(&self.missed_grace).unwrap_or(Duration::from_secs(600))
    }

    /// `settle_every` as a duration (checked by `Config::load`).
    pub fn settle_every(&self) -> Duration {
        humantime::parse_duration(&self.settle_every).unwrap_or(Duration::from_secs(5))
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            breaker_share: 0.5,
            breaker_min_base: 20,
            partitions: 8,
            abandon_after: "2m".into(),
            missed_grace: "10m".into(),
            settle_every: "5s".into(),
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// A run whose mismatch ratio is above this alerts (0.05 = 5%).
    pub mismatch_threshold: f64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            mismatch_threshold: 0.05,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address; `RECON_LISTEN` wins.
    pub listen: String,
    /// Largest webhook body accepted, bytes.
    pub body_limit: usize,
    /// Run the scheduler in this process.
    pub scheduler: bool,
    /// How far back to replay at start when no heartbeat is known.
    pub startup_replay: String,
    /// An event-triggered sweep (missed webhooks, a replay gap) of one kind
    /// is requested at most once per this period.
    pub triggered_sweep_cooldown: String,
}

impl ServerConfig {
    /// `triggered_sweep_cooldown` as a duration (checked by `Config::load`).
    pub fn triggered_sweep_cooldown(&self) -> Duration {
        humantime::parse_duration(&self.triggered_sweep_cooldown)
            .unwrap_or(Duration::from_secs(3600))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            body_limit: 1024 * 1024,
            scheduler: true,
            startup_replay: "1h".into(),
            triggered_sweep_cooldown: "1h".into(),
        }
    }
}

/// A provider's section (`[stripe]`, `[clerk]`, …).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ProviderSection {
    /// Set false to turn the provider off even when its key is set.
    pub enabled: Option<bool>,
    /// Request budget, e.g. `100/s` or `1000/10s`; default follows the key.
    pub rate: Option<String>,
    /// Cron expressions (with seconds) per kind, plus `replay` for the
    /// event-log replay; an empty string turns a job off.
    pub schedule: BTreeMap<String, String>,
    /// Where the scheduled replay starts while no event cursor exists yet
    /// (`now - replay_window`, e.g. `30m`); afterwards replays resume from
    /// the cursor.
    pub replay_window: Option<String>,
    /// Provider-specific keys, for its factory to check and read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

/// The section of a provider the file does not mention.
static NO_SECTION: ProviderSection = ProviderSection {
    enabled: None,
    rate: None,
    schedule: BTreeMap::new(),
    replay_window: None,
    extra: BTreeMap::new(),
};

/// `[[projections]]`: one app table's owned columns and how their values
/// follow from the mirror (see `recon_core::project::Projection`). Every
/// field is optional here so that a missing one is refused by
/// `AppSync::validate` with a message naming the projection.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectionSection {
    /// Name (in errors, drift records and the change feed).
    pub name: String,
    /// `stripe` or `clerk`: whose mirror it reads.
    pub provider: String,
    /// The app table, `table` or `schema.table`.
    pub table: String,
    /// The app table's key column (holds the provider id).
    pub key: String,
    /// The columns recon owns, in the order the query returns them.
    pub columns: Vec<String>,
    /// SQL over recon's views returning `key` and one column per owned column.
    pub query: String,
    /// Mirror kinds it reads and how each maps to the app key.
    pub depends: Vec<DependencySection>,
    /// `report` (default), `insert` or `ignore`.
    pub on_missing: OnMissing,
    /// `absent` (default) or `delete`.
    pub on_delete: OnDelete,
    /// The owned columns' values when the provider object is gone.
    pub absent: BTreeMap<String, serde_json::Value>,
    /// Adds the check `app_stale:<name>`: rows whose provider object was
    /// not confirmed for longer than this (e.g. "24h"), or no app pass
    /// that long. `recon check --stale` sets it for every projection.
    pub stale_after: Option<String>,
}

/// `depends = [{ kind = "subscriptions", key = "owner" }]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DependencySection {
    /// The provider, if not the projection's (`stripe` or `clerk`).
    pub provider: Option<String>,
    /// Mirror kind.
    pub kind: String,
    /// `id`, `owner` or `data.<path>`.
    pub key: String,
}

impl From<&ProjectionSection> for Projection {
    fn from(p: &ProjectionSection) -> Projection {
        Projection {
            name: p.name.clone(),
            provider: p.provider.clone(),
            table: p.table.clone(),
            key: p.key.clone(),
            columns: p.columns.clone(),
            query: p.query.clone(),
            depends: p
                .depends
                .iter()
                .map(|d| Dependency {
                    provider: d.provider.clone(),
                    kind: d.kind.clone(),
                    key: d.key.clone(),
                })
                .collect(),
            on_missing: p.on_missing,
            on_delete: p.on_delete,
            absent: p.absent.clone(),
        }
    }
}

/// `[[checks]]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CheckSection {
    /// Name.
    pub name: String,
    /// What a violation means.
    pub description: String,
    /// SQL over the views and the app's tables that must return no rows;
    /// its column `subject` (else `id`) names the subject of a violation.
    pub sql: String,
}

/// How `[link]` ties a Stripe customer to a Clerk user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LinkBy {
    /// `customer.metadata.<metadata_key>` holds the Clerk user id.
    #[default]
    Metadata,
    /// The customer's email is the user's email.
    Email,
}

/// `[link]`: the built-in Stripe ↔ Clerk checks. Off unless `enabled`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSection {
    /// Run the built-in checks.
    pub enabled: bool,
    /// `metadata` (default) or `email`.
    pub by: LinkBy,
    /// The customer metadata key holding the Clerk user id.
    pub metadata_key: String,
    /// An app table whose rows must not have an active status without a
    /// subscription id (with the two columns below).
    pub app_table: Option<String>,
    /// Its status column.
    pub app_status_column: Option<String>,
    /// Its subscription-id column.
    pub app_subscription_column: Option<String>,
}

impl Default for LinkSection {
    fn default() -> Self {
        LinkSection {
            enabled: false,
            by: LinkBy::Metadata,
            metadata_key: "clerk_user_id".into(),
            app_table: None,
            app_status_column: None,
            app_subscription_column: None,
        }
    }
}

/// `[changes]`: the change feed (`recon changes`, `NOTIFY recon_changes`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangesSection {
    /// Append every change recon makes to the feed. Off by default: on
    /// Postgres, transactions that append hold the feed's lock until they
    /// commit (so sequence order is commit order and a reader following
    /// `--since` misses nothing), which caps webhook ingest at about one
    /// commit per disk flush.
    pub enabled: bool,
    /// How long entries are kept (`recon serve` prunes older ones).
    pub retention: String,
}

impl ChangesSection {
    /// `retention` as a duration (checked by `Config::load`).
    pub fn retention(&self) -> Duration {
        humantime::parse_duration(&self.retention).unwrap_or(Duration::from_secs(7 * 86_400))
    }
}

impl Default for ChangesSection {
    fn default() -> Self {
        ChangesSection {
            enabled: false,
            retention: "7d".into(),
        }
    }
}

/// The default schedules (sec min hour day month weekday) of a registered
/// provider; none for a name the registry does not hold.
pub fn default_schedule(provider: &str) -> BTreeMap<String, String> {
    crate::registry::registry()
        .lookup(provider)
        .map(|f| f.default_schedule())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Config {
    /// Load the file (if any) named by `--config` or `RECON_CONFIG`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let from_env = std::env::var("RECON_CONFIG").ok().filter(|s| !s.is_empty());
        let path = path.map(Path::to_path_buf).or(from_env.map(Into::into));
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.engine.breaker_share) {
            bail!("engine.breaker_share must be between 0 and 1");
        }
        match humantime::parse_duration(&self.engine.abandon_after) {
            Ok(d) if d >= Duration::from_secs(1) => {}
            _ => bail!(
                "engine.abandon_after must be a duration of at least 1s, like \"2m\" (got {:?})",
                self.engine.abandon_after
            ),
        }
        if humantime::parse_duration(&self.engine.missed_grace).is_err() {
            bail!(
                "engine.missed_grace must be a duration like \"10m\" (got {:?})",
                self.engine.missed_grace
            );
        }
        match humantime::parse_duration(&self.engine.settle_every) {
            Ok(d) if d >= Duration::from_millis(100) => {}
            _ => bail!(
                "engine.settle_every must be a duration of at least 100ms, like \"5s\" (got {:?})",
                self.engine.settle_every
            ),
        }
        if humantime::parse_duration(&self.server.triggered_sweep_cooldown).is_err() {
            bail!(
                "server.triggered_sweep_cooldown must be a duration like \"1h\" or \"0s\" (got {:?})",
                self.server.triggered_sweep_cooldown
            );
        }
        if !(0.0..=1.0).contains(&self.alerts.mismatch_threshold) {
            bail!("alerts.mismatch_threshold must be between 0 and 1");
        }
        let registry = crate::registry::registry();
        for (name, p) in &self.providers {
            if crate::registry::built_without().contains(&name.as_str()) {
                tracing::warn!(
                    "[{name}] is ignored: this binary was built without the {name} feature"
                );
                continue;
            }
            let Some(factory) = registry.lookup(name) else {
                bail!(
                    "[{name}] is neither a section of recon ({}) nor a provider this binary knows ({})",
                    SECTIONS.join(", "),
                    crate::registry::known()
                );
            };
            factory.check_settings(&self.provider_settings(name)?)?;
            for (job, expr) in &p.schedule {
                let replay = factory
                    .default_schedule()
                    .iter()
                    .any(|(j, _)| *j == "replay");
                if !(factory.kinds().contains(&job.as_str()) || (replay && job == "replay")) {
                    let mut jobs: Vec<&str> = factory.kinds().to_vec();
                    if replay {
                        jobs.push("replay");
                    }
                    bail!(
                        "{name}.schedule.{job}: no such job; {name}'s jobs are {}",
                        jobs.join(", ")
                    );
                }
                if !expr.is_empty() {
                    crate::serve::scheduler::parse_cron(expr).with_context(|| {
                        format!("{name}.schedule.{job}: bad cron expression {expr:?}")
                    })?;
                }
            }
            if let Some(w) = &p.replay_window
                && humantime::parse_duration(w).is_err()
            {
                bail!("{name}.replay_window must be a duration like \"30m\" (got {w:?})");
            }
        }
        if at_least_a_minute(&self.changes.retention).is_none() {
            bail!(
                "changes.retention must be a duration of at least 1m, like \"7d\" (got {:?})",
                self.changes.retention
            );
        }
        self.app_sync()?;
        Ok(())
    }

    /// What the store keeps right beyond the mirror: the declared
    /// projections, the declared and built-in checks, and the change feed.
    /// Checked: an error names the projection or check at fault.
    pub fn app_sync(&self) -> recon_core::Result<AppSync> {
        let projections: Vec<Projection> = self.projections.iter().map(Projection::from).collect();
        for p in &projections {
            if p.name.trim().is_empty() || p.provider.is_empty() {
                continue; // refused by AppSync::validate, naming what is missing
            }
            // The projection's provider, and each dependency's, with its kind.
            let deps = p.depends.iter().map(|d| {
                (
                    d.provider.as_deref().unwrap_or(&p.provider),
                    Some(d.kind.as_str()),
                )
            });
            for (provider, kind) in std::iter::once((p.provider.as_str(), None)).chain(deps) {
                let Some(f) = crate::registry::registry().lookup(provider) else {
                    let why = if crate::registry::built_without().contains(&provider) {
                        format!("this binary was built without the {provider} feature")
                    } else {
                        format!("unknown provider {provider:?}")
                    };
                    return Err(recon_core::Error::config(format!(
                        "projection {:?}: {why}; known: {}",
                        p.name,
                        crate::registry::known()
                    )));
                };
                if let Some(k) = kind
                    && !f.kinds().contains(&k)
                {
                    return Err(recon_core::Error::config(format!(
                        "projection {:?}: {provider} has no kind {k:?}; its kinds are {}",
                        p.name,
                        f.kinds().join(", ")
                    )));
                }
            }
        }
        let mut checks: Vec<Check> = self
            .checks
            .iter()
            .map(|c| Check {
                name: c.name.clone(),
                description: c.description.clone(),
                sql: c.sql.clone(),
            })
            .collect();
        for (section, p) in self.projections.iter().zip(&projections) {
            if let Some(d) = &section.stale_after {
                let stale = at_least_a_minute(d).ok_or_else(|| {
                        recon_core::Error::config(format!(
                            "projection {:?}: stale_after must be a duration of at least 1m, like \"24h\" (got {d:?})",
                            p.name
                        ))
                    })?;
                checks.push(recon_core::project::stale_check(p, stale));
            }
        }
        let l = &self.link;
        let app_status = match (
            l.app_table.as_deref(),
            l.app_status_column.as_deref(),
            l.app_subscription_column.as_deref(),
        ) {
            (Some(t), Some(s), Some(c)) => Some((t, s, c)),
            (None, None, None) => None,
            _ => {
                return Err(recon_core::Error::config(
                    "link: app_table, app_status_column and app_subscription_column go together: set all three or none",
                ));
            }
        };
        if l.enabled {
            let r = crate::registry::registry();
            if r.lookup("stripe").is_none() || r.lookup("clerk").is_none() {
                return Err(recon_core::Error::config(format!(
                    "link: the Stripe ↔ Clerk checks need both providers; this binary knows: {}",
                    crate::registry::known()
                )));
            }
            let link = match l.by {
                LinkBy::Metadata => Link::Metadata(l.metadata_key.clone()),
                LinkBy::Email => Link::Email,
            };
            let builtin = builtin_checks(&link, app_status)
                .map_err(|e| recon_core::Error::config(format!("link: {e}")))?;
            checks.extend(builtin);
        }
        let sync = AppSync {
            projections,
            checks,
            feed: self.changes.enabled,
        };
        sync.validate()?;
        Ok(sync)
    }

    /// `DATABASE_URL`, else the file, else the embedded default.
    pub fn database_url(&self) -> String {
        env("DATABASE_URL")
            .or_else(|| self.database.url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
    }

    /// `RECON_SCHEMA`, else the file.
    pub fn schema(&self) -> String {
        env("RECON_SCHEMA").unwrap_or_else(|| self.database.schema.clone())
    }

    /// `RECON_LISTEN`, else the file.
    pub fn listen(&self) -> String {
        env("RECON_LISTEN").unwrap_or_else(|| self.server.listen.clone())
    }

    /// The section of a provider (empty when the file has none).
    pub fn provider(&self, name: &str) -> &ProviderSection {
        self.providers.get(name).unwrap_or(&NO_SECTION)
    }

    /// A provider's section as its factory reads it: the rate parsed, the
    /// provider-specific keys as JSON.
    pub fn provider_settings(
        &self,
        name: &str,
    ) -> recon_core::Result<recon_core::ProviderSettings> {
        let p = self.provider(name);
        let rate = p
            .rate
            .as_deref()
            .map(|r| {
                recon_core::Rate::parse(r)
                    .map_err(|e| recon_core::Error::config(format!("{name}.rate: {}", e.message())))
            })
            .transpose()?;
        let mut extra = serde_json::Map::new();
        for (k, v) in &p.extra {
            let v = serde_json::to_value(v)
                .map_err(|e| recon_core::Error::config(format!("{name}.{k}: {e}")))?;
            extra.insert(k.clone(), v);
        }
        Ok(recon_core::ProviderSettings { rate, extra })
    }

    /// The effective schedule of a provider: defaults, then the file.
    pub fn schedule(&self, provider: &str) -> BTreeMap<String, String> {
        let mut s = default_schedule(provider);
        for (k, v) in &self.provider(provider).schedule {
            s.insert(k.clone(), v.clone());
        }
        s.retain(|_, v| !v.is_empty());
        s
    }
}

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// Parse `24h`, `30m`, `7d` or an RFC 3339 instant into unix seconds (a
/// duration means "that long ago").
/// A duration of at least a minute (`changes.retention`, `stale_after`,
/// `--stale`), or `None`.
pub fn at_least_a_minute(s: &str) -> Option<Duration> {
    humantime::parse_duration(s)
        .ok()
        .filter(|d| *d >= Duration::from_secs(60))
}

pub fn parse_since(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        anyhow::anyhow!("--since {s:?}: expected a duration like 24h or 30m, or an RFC 3339 time like 2026-11-24T10:00:00Z")
    })?;
    Ok(chrono::Utc::now().timestamp() - d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_durations_and_instants() {
        let now = chrono::Utc::now().timestamp();
        let a = parse_since("24h").unwrap();
        assert!((now - 86_400 - a).abs() < 5);
        assert_eq!(parse_since("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600);
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../recon.example.toml");
        let cfg: Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.schedule("stripe").get("subscriptions").unwrap(),
            "0 5 * * * *"
        );
        // The example shows each provider's defaults as they are.
        for f in crate::registry::registry().iter() {
            let file = &cfg.provider(f.name()).schedule;
            for (job, expr) in f.default_schedule() {
                assert_eq!(
                    file.get(*job).map(String::as_str),
                    Some(*expr),
                    "recon.example.toml [{}.schedule] {job}",
                    f.name()
                );
            }
        }
    }

    /// The commented app-table example of recon.example.toml, uncommented.
    #[cfg(all(feature = "recon-stripe", feature = "recon-clerk"))]
    fn example_app_block() -> String {
        let text = include_str!("../../../recon.example.toml");
        let start = text.find("# BEGIN app-table example").unwrap();
        let end = text.find("# END app-table example").unwrap();
        text[start..end]
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[cfg(all(feature = "recon-stripe", feature = "recon-clerk"))]
    #[test]
    fn example_app_tables_parse() {
        let cfg: Config = toml::from_str(&example_app_block()).unwrap();
        cfg.validate().unwrap();
        let sync = cfg.app_sync().unwrap();
        assert_eq!(sync.projections[0].name, "billing");
        assert_eq!(sync.projections[0].table, "public.users");
        assert!(
            sync.projections[0]
                .query
                .contains("AS stripe_subscription_id")
        );
        // One declared check, four built-in ones and the projection's
        // stale check; the example turns the feed on.
        assert_eq!(sync.checks.len(), 6);
        assert!(sync.checks.iter().any(|c| c.name == "app_stale:billing"));
        assert!(sync.feed);
    }

    #[test]
    fn abandon_after_is_checked() {
        let parse = |v: &str| {
            toml::from_str::<Config>(&format!("[engine]\nabandon_after = \"{v}\""))
                .unwrap()
                .validate()
        };
        parse("90s").unwrap();
        for bad in ["soon", "0s", "500ms"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("engine.abandon_after"), "{bad}: {e}");
        }
        let cfg: Config = toml::from_str("[engine]\nabandon_after = \"90s\"").unwrap();
        assert_eq!(cfg.engine.abandon_after(), Duration::from_secs(90));
    }

    #[test]
    fn triggered_sweep_cooldown_is_checked() {
        let parse = |v: &str| {
            toml::from_str::<Config>(&format!("[server]\ntriggered_sweep_cooldown = \"{v}\""))
                .unwrap()
        };
        assert_eq!(
            Config::default().server.triggered_sweep_cooldown(),
            Duration::from_secs(3600)
        );
        let c = parse("15m");
        c.validate().unwrap();
        assert_eq!(
            c.server.triggered_sweep_cooldown(),
            Duration::from_secs(900)
        );
        parse("0s").validate().unwrap();
        let e = parse("often").validate().unwrap_err().to_string();
        assert!(e.contains("server.triggered_sweep_cooldown"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("[engine]\nbreaker = 1").is_err());
        let e = load("[stripe]\nrat = \"10/s\"").unwrap_err().to_string();
        assert!(e.contains("[stripe] has no setting \"rat\""), "{e}");
    }

    #[test]
    fn a_section_of_an_unregistered_provider_names_the_known_ones() {
        for text in ["[acme]\nrate = \"10/s\"", "[engnie]\nbreaker_share = 0.5"] {
            let e = load(text).unwrap_err().to_string();
            let name = &text[1..text.find(']').unwrap()];
            assert!(
                e.contains(&format!("[{name}] is neither"))
                    && e.contains(&crate::registry::known()),
                "{e}"
            );
        }
        // A top-level key that is not a table is refused at parse.
        assert!(load("acme = 1").is_err());
    }

    #[test]
    fn dependencies_name_registered_providers_and_their_kinds() {
        let with =
            |dep: &str| PROJECTION.replace(r#"{ kind = "subscriptions", key = "owner" }"#, dep);
        load(&with(r#"{ kind = "subscriptions", key = "owner" }"#)).unwrap();
        let e = load(&with(
            r#"{ provider = "acme", kind = "customers", key = "id" }"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("projection \"billing\"") && e.contains("\"acme\""),
            "{e}"
        );
        let e = load(&with(r#"{ kind = "subscription", key = "owner" }"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stripe has no kind \"subscription\"") && e.contains("subscriptions"),
            "{e}"
        );
    }

    /// A binary built without Clerk reads the same file: `[clerk]` is
    /// ignored, a projection reading Clerk is refused.
    #[cfg(not(feature = "recon-clerk"))]
    #[test]
    fn a_provider_built_out_is_ignored_in_sections_and_refused_in_projections() {
        load("[clerk]\nrate = \"10/s\"\n[clerk.schedule]\nusers = \"\"").unwrap();
        let text = include_str!("../../../recon.example.toml");
        load(text).unwrap();
        let e = load(&PROJECTION.replace(
            r#"{ kind = "subscriptions", key = "owner" }"#,
            r#"{ provider = "clerk", kind = "users", key = "id" }"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("built without the clerk feature"), "{e}");
    }

    #[cfg(all(feature = "recon-stripe", feature = "recon-clerk"))]
    #[test]
    fn schedules_name_the_providers_jobs() {
        let cfg = load("[stripe.schedule]\ninvoices = \"0 0 * * * *\"\nreplay = \"\"").unwrap();
        assert_eq!(cfg.schedule("stripe")["invoices"], "0 0 * * * *");
        assert!(!cfg.schedule("stripe").contains_key("replay"));
        let e = load("[stripe.schedule]\ninvoice = \"0 0 * * * *\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stripe.schedule.invoice: no such job") && e.contains("invoices"),
            "{e}"
        );
        // Clerk has no event log, so no replay job.
        let e = load("[clerk.schedule]\nreplay = \"0 0 * * * *\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("clerk.schedule.replay: no such job"), "{e}");
        // Defaults come from the registry.
        assert_eq!(Config::default().schedule("clerk")["users"], "0 10 2 * * *");
        assert!(Config::default().schedule("acme").is_empty());
    }

    const PROJECTION: &str = r#"
[[projections]]
name = "billing"
provider = "stripe"
table = "users"
key = "stripe_customer_id"
columns = ["subscription_status", "plan"]
query = "SELECT id AS key, 'none' AS subscription_status, NULL AS plan FROM stripe_customers"
depends = [{ kind = "customers", key = "id" }, { kind = "subscriptions", key = "owner" }]
on_missing = "insert"
on_delete = "absent"
absent = { subscription_status = "none" }
"#;

    fn load(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn a_projection_parses_into_the_core_type() {
        let cfg = load(PROJECTION).unwrap();
        let sync = cfg.app_sync().unwrap();
        let p = &sync.projections[0];
        assert_eq!(p.name, "billing");
        assert_eq!(p.columns, ["subscription_status", "plan"]);
        assert_eq!(p.on_missing, OnMissing::Insert);
        assert_eq!(p.on_delete, OnDelete::Absent);
        assert_eq!(p.depends[1].kind, "subscriptions");
        assert_eq!(p.depends[1].key, "owner");
        assert_eq!(p.absent["subscription_status"], serde_json::json!("none"));
        // Neither the feed nor the built-in checks are on by default.
        assert!(!sync.feed);
        assert!(sync.checks.is_empty());
        assert_eq!(cfg.changes.retention(), Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn a_bad_projection_is_refused_naming_it() {
        for (from, to, what) in [
            ("key = \"stripe_customer_id\"\n", "", "key"),
            (
                "columns = [\"subscription_status\", \"plan\"]",
                "columns = [\"subscription_status\", \"stripe_customer_id\"]",
                "key column",
            ),
            (
                "table = \"users\"",
                "table = \"users; drop table x\"",
                "table",
            ),
            ("key = \"owner\" }", "key = \"customer\" }", "customer"),
            ("provider = \"stripe\"", "provider = \"acme\"", "acme"),
            (
                "absent = { subscription_status",
                "absent = { email",
                "email",
            ),
            ("query = \"SELECT", "query = \"\"\n#", "query"),
            (
                "on_missing",
                "stale_after = \"soon\"\non_missing",
                "stale_after",
            ),
            (
                "on_missing",
                "stale_after = \"10s\"\non_missing",
                "at least 1m",
            ),
        ] {
            assert!(PROJECTION.contains(from), "{from}");
            let text = PROJECTION.replacen(from, to, 1);
            let e = format!("{:#}", load(&text).unwrap_err());
            assert!(e.contains("\"billing\""), "{what}: {e}");
            assert!(e.contains(what), "{what}: {e}");
        }
        let twice = format!("{PROJECTION}{PROJECTION}");
        let e = load(&twice).unwrap_err().to_string();
        assert!(
            e.contains("two projections") && e.contains("billing"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_of_the_new_sections_are_refused() {
        let e = load(&PROJECTION.replace("on_missing", "on_absent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("on_absent"), "{e}");
        assert!(load(&PROJECTION.replace("kind = \"customers\"", "knd = \"customers\"")).is_err());
        assert!(load("[[checks]]\nname = \"x\"\nsql = \"SELECT 1\"\nseverity = 1").is_err());
        assert!(load("[link]\nenabled = true\nby = \"phone\"").is_err());
        assert!(load("[changes]\nkeep = \"7d\"").is_err());
        assert!(load("[changes]\nretention = \"forever\"").is_err());
        assert!(
            load(&PROJECTION.replace("on_missing = \"insert\"", "on_missing = \"upsert\""))
                .is_err()
        );
    }

    #[cfg(all(feature = "recon-stripe", feature = "recon-clerk"))]
    #[test]
    fn checks_and_the_link() {
        let cfg = load(
            "[[checks]]\nname = \"no_orphans\"\nsql = \"SELECT id FROM users WHERE false\"\n\n[link]\nenabled = true\nby = \"email\"\napp_table = \"users\"\napp_status_column = \"subscription_status\"\napp_subscription_column = \"stripe_subscription_id\"",
        )
        .unwrap();
        let sync = cfg.app_sync().unwrap();
        let names: Vec<&str> = sync.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[0], "no_orphans");
        assert!(
            names.contains(&"clerk_user_with_many_customers"),
            "{names:?}"
        );
        assert!(
            names.contains(&"app_active_without_subscription"),
            "{names:?}"
        );
        let active = sync
            .checks
            .iter()
            .find(|c| c.name == "app_active_without_subscription")
            .unwrap();
        assert!(
            active.sql.contains("\"stripe_subscription_id\""),
            "{}",
            active.sql
        );
        assert!(sync.checks[1].sql.contains("lower(c.email)"));
        // Metadata (the default) with another key.
        let cfg = load("[link]\nenabled = true\nmetadata_key = \"user_id\"").unwrap();
        let sync = cfg.app_sync().unwrap();
        assert!(
            sync.checks
                .iter()
                .all(|c| !c.sql.contains("'clerk_user_id'"))
        );
        assert!(sync.checks[0].sql.contains("'user_id'"));
        assert_eq!(sync.checks.len(), 3);
        // Off by default, even with the columns named.
        let cfg = load("[link]\napp_table = \"users\"\napp_status_column = \"s\"\napp_subscription_column = \"t\"").unwrap();
        assert!(cfg.app_sync().unwrap().checks.is_empty());
        // The three app columns go together; bad keys are refused.
        let e = load("[link]\nenabled = true\napp_table = \"users\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("app_status_column"), "{e}");
        assert!(load("[link]\nenabled = true\nmetadata_key = \"a'b\"").is_err());
        let e = load("[[checks]]\nname = \"empty\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty") && e.contains("sql"), "{e}");
    }
}
