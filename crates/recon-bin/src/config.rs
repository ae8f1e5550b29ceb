//! Configuration: an optional TOML file (`--config`, `RECON_CONFIG`) for
//! schedules, budgets, thresholds and which providers are on, then the
//! environment on top (environment wins). Secrets come from the environment
//! only and have no defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Where the mirror lives when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://recon.db";
/// Default listen address of `recon serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Database settings.
    pub database: DatabaseConfig,
    /// Engine tuning.
    pub engine: EngineSection,
    /// Drift alerts.
    pub alerts: AlertConfig,
    /// `recon serve`.
    pub server: ServerConfig,
    /// Stripe.
    pub stripe: ProviderSection,
    /// Clerk.
    pub clerk: ProviderSection,
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
    /// A replayed event younger than this may still be on its way as a
    /// webhook: applied, but not counted as a missed webhook.
    pub missed_grace: String,
    /// A replayed event still undelivered at the provider this long after
    /// its creation is counted and its objects refreshed.
    pub undelivered_after: String,
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

    /// `undelivered_after` as a duration (checked by `Config::load`).
    pub fn undelivered_after(&self) -> Duration {
        humantime::parse_duration(&self.undelivered_after).unwrap_or(Duration::from_secs(3600))
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
            undelivered_after: "1h".into(),
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

/// `[stripe]` / `[clerk]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
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
}

/// The default schedules (sec min hour day month weekday).
pub fn default_schedule(provider: &str) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match provider {
        "stripe" => &[
            ("subscriptions", "0 5 * * * *"),
            ("invoices", "0 15 * * * *"),
            ("customers", "0 25 * * * *"),
            ("prices", "0 35 3 * * *"),
            ("products", "0 40 3 * * *"),
            ("replay", "0 */5 * * * *"),
        ],
        "clerk" => &[
            ("users", "0 10 2 * * *"),
            ("organizations", "0 20 2 * * *"),
            ("organization_memberships", "0 30 2 * * *"),
        ],
        _ => &[],
    };
    pairs
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
        for (key, value) in [
            ("engine.missed_grace", &self.engine.missed_grace),
            ("engine.undelivered_after", &self.engine.undelivered_after),
        ] {
            if humantime::parse_duration(value).is_err() {
                bail!("{key} must be a duration like \"10m\" (got {value:?})");
            }
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
        for (name, p) in [("stripe", &self.stripe), ("clerk", &self.clerk)] {
            for (job, expr) in &p.schedule {
                if !expr.is_empty() {
                    crate::serve::scheduler::parse_cron(expr).with_context(|| {
                        format!("{name}.schedule.{job}: bad cron expression {expr:?}")
                    })?;
                }
            }
            if let Some(r) = &p.rate {
                recon_core::Rate::parse(r).map_err(|e| anyhow::anyhow!("{name}.rate: {e}"))?;
            }
        }
        Ok(())
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

    /// The section of a provider.
    pub fn provider(&self, name: &str) -> &ProviderSection {
        match name {
            "clerk" => &self.clerk,
            _ => &self.stripe,
        }
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
    }
}
