//! The provider registry: everything a binary needs to know about a
//! provider, behind one trait, so that adding a provider is one crate and
//! one `register` line.
//!
//! A provider crate implements [`ProviderFactory`] (its name, the variables
//! that configure it, its kinds and default schedules, its settings and how
//! to build the adapter). A binary collects the factories it was built with
//! in a [`Registry`]; everything else (configuration sections, which
//! providers are on, schedules, `--help`, routes) is read from there. A name
//! the registry does not hold is an error that lists the names it does: no
//! code path falls back to some other provider.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::provider::Provider;
use crate::retry::{BudgetStats, Rate};
use crate::store::{Reference, View};

/// One environment variable a provider reads, for `--help` and errors.
#[derive(Debug, Clone, Copy)]
pub struct EnvVar {
    /// The variable, e.g. `STRIPE_SECRET_KEY`.
    pub name: &'static str,
    /// What it holds, one line.
    pub meaning: &'static str,
    /// A secret: never printed.
    pub secret: bool,
}

impl EnvVar {
    /// A variable holding a secret (a key, a signing secret).
    pub const fn secret(name: &'static str, meaning: &'static str) -> Self {
        EnvVar {
            name,
            meaning,
            secret: true,
        }
    }

    /// A variable holding a setting.
    pub const fn setting(name: &'static str, meaning: &'static str) -> Self {
        EnvVar {
            name,
            meaning,
            secret: false,
        }
    }
}

/// A provider's section of the configuration file, in the terms every
/// provider shares, plus whatever provider-specific keys it carried.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// Request budget from the file (`rate = "100/s"`), if set.
    pub rate: Option<Rate>,
    /// Keys of the section the shared ones do not cover, for the provider
    /// to read ([`ProviderFactory::check_settings`] refuses the ones it does
    /// not know).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A built adapter and what the binary keeps beside it.
pub struct BuiltProvider {
    /// The adapter.
    pub provider: Arc<dyn Provider>,
    /// Its diagnostics reference rules.
    pub references: &'static [Reference],
    /// Its request counters (for metrics).
    pub stats: Arc<BudgetStats>,
}

impl BuiltProvider {
    /// The adapter with its request counters and reference rules.
    pub fn new(
        stats: Arc<BudgetStats>,
        references: &'static [Reference],
        provider: impl Provider + 'static,
    ) -> Self {
        BuiltProvider {
            provider: Arc::new(provider),
            references,
            stats,
        }
    }
}

/// Everything a binary needs to know about one provider.
pub trait ProviderFactory: Send + Sync + 'static {
    /// The provider's name: the first part of its mirrored keys, its
    /// configuration section (`[name]`), its webhook route
    /// (`/webhooks/name`) and its argument on the command line.
    fn name(&self) -> &'static str;

    /// The variable whose presence turns the provider on (its API key).
    fn key_var(&self) -> &'static str;

    /// Every variable the provider reads, the key first.
    fn env_vars(&self) -> &'static [EnvVar];

    /// The kinds it mirrors.
    fn kinds(&self) -> &'static [&'static str];

    /// Default schedules: cron expressions with seconds, per kind, plus
    /// `replay` when the provider has an event log.
    fn default_schedule(&self) -> &'static [(&'static str, &'static str)];

    /// The typed views it brings, created by the stores at migration.
    fn views(&self) -> &'static [View] {
        &[]
    }

    /// Refuse provider-specific keys of its section it does not know, or
    /// values it cannot use. By default a provider has none.
    fn check_settings(&self, settings: &ProviderSettings) -> Result<()> {
        match settings.extra.keys().next() {
            None => Ok(()),
            Some(k) => Err(Error::config(format!(
                "[{}] has no setting {k:?}; its settings are: {}",
                self.name(),
                SHARED_SETTINGS.join(", ")
            ))),
        }
    }

    /// Build the adapter from the process environment and the settings.
    fn build(&self, settings: &ProviderSettings) -> Result<BuiltProvider>;
}

/// A provider described by data and one `build` function: what most
/// provider crates need. Its [`ProviderFactory`] methods return the fields;
/// `check_settings` refuses any provider-specific key.
///
/// ```ignore
/// pub const PROVIDER: ProviderSpec = ProviderSpec {
///     name: "acme",
///     key_var: "ACME_API_KEY",
///     env_vars: &[/* … */],
///     kinds: &["widgets"],
///     default_schedule: &[("widgets", "0 0 * * * *")],
///     views: &[/* View { name: "acme_widgets", postgres: "SELECT …", sqlite: "SELECT …" } */],
///     build,
/// };
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpec {
    /// See [`ProviderFactory::name`].
    pub name: &'static str,
    /// See [`ProviderFactory::key_var`].
    pub key_var: &'static str,
    /// See [`ProviderFactory::env_vars`].
    pub env_vars: &'static [EnvVar],
    /// See [`ProviderFactory::kinds`].
    pub kinds: &'static [&'static str],
    /// See [`ProviderFactory::default_schedule`].
    pub default_schedule: &'static [(&'static str, &'static str)],
    /// See [`ProviderFactory::views`].
    pub views: &'static [View],
    /// See [`ProviderFactory::build`].
    pub build: fn(&ProviderSettings) -> Result<BuiltProvider>,
}

impl ProviderFactory for ProviderSpec {
    fn name(&self) -> &'static str {
        self.name
    }
    fn key_var(&self) -> &'static str {
        self.key_var
    }
    fn env_vars(&self) -> &'static [EnvVar] {
        self.env_vars
    }
    fn kinds(&self) -> &'static [&'static str] {
        self.kinds
    }
    fn default_schedule(&self) -> &'static [(&'static str, &'static str)] {
        self.default_schedule
    }
    fn views(&self) -> &'static [View] {
        self.views
    }
    fn build(&self, settings: &ProviderSettings) -> Result<BuiltProvider> {
        (self.build)(settings)
    }
}

/// The settings every provider section has.
pub const SHARED_SETTINGS: &[&str] = &["enabled", "rate", "schedule", "replay_window"];

/// The providers a binary was built with, in registration order.
#[derive(Clone, Default)]
pub struct Registry {
    factories: Vec<Arc<dyn ProviderFactory>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a provider. Panics when the name is already taken or is not a
    /// plain lowercase name: both are programming errors in the binary,
    /// found by its first test.
    pub fn register(&mut self, factory: impl ProviderFactory) -> &mut Self {
        let name = factory.name();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "provider name {name:?} must be lowercase letters, digits and _"
        );
        assert!(
            self.lookup(name).is_none(),
            "provider {name:?} is registered twice"
        );
        self.factories.push(Arc::new(factory));
        self
    }

    /// The registered names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.name()).collect()
    }

    /// The views of every registered provider, for the stores.
    pub fn views(&self) -> Vec<View> {
        self.factories
            .iter()
            .flat_map(|f| f.views().iter().copied())
            .collect()
    }

    /// Every factory, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn ProviderFactory>> {
        self.factories.iter()
    }

    /// The factory of `name`, if registered.
    pub fn lookup(&self, name: &str) -> Option<&Arc<dyn ProviderFactory>> {
        self.factories.iter().find(|f| f.name() == name)
    }

    /// The factory of `name`, or an error that lists the known names.
    pub fn get(&self, name: &str) -> Result<&Arc<dyn ProviderFactory>> {
        self.lookup(name).ok_or_else(|| self.unknown(name))
    }

    /// The registered names for messages: `a, b`, or why there are none.
    pub fn known(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none (it was built without provider features)".to_string()
        } else {
            names.join(", ")
        }
    }

    /// The error for a name that is not registered: it lists the known ones.
    pub fn unknown(&self, name: &str) -> Error {
        Error::config(format!(
            "unknown provider {name:?}; this binary knows: {}",
            self.known()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str);

    impl ProviderFactory for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn key_var(&self) -> &'static str {
            "FAKE_KEY"
        }
        fn env_vars(&self) -> &'static [EnvVar] {
            &[]
        }
        fn kinds(&self) -> &'static [&'static str] {
            &["things"]
        }
        fn default_schedule(&self) -> &'static [(&'static str, &'static str)] {
            &[]
        }
        fn build(&self, _: &ProviderSettings) -> Result<BuiltProvider> {
            Err(Error::config("not built in this test"))
        }
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let mut r = Registry::new();
        r.register(Fake("alpha")).register(Fake("beta"));
        assert_eq!(r.get("beta").unwrap().name(), "beta");
        let e = r.get("gamma").err().unwrap().to_string();
        assert!(e.contains("\"gamma\"") && e.contains("alpha, beta"), "{e}");
        let none = Registry::new().get("alpha").err().unwrap().to_string();
        assert!(none.contains("built without provider features"), "{none}");
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registers_once() {
        Registry::new()
            .register(Fake("alpha"))
            .register(Fake("alpha"));
    }

    #[test]
    fn unknown_settings_are_refused_by_default() {
        let mut s = ProviderSettings::default();
        assert!(Fake("alpha").check_settings(&s).is_ok());
        s.extra.insert("rat".into(), serde_json::json!("10/s"));
        let e = Fake("alpha").check_settings(&s).unwrap_err().to_string();
        assert!(
            e.contains("[alpha] has no setting \"rat\"") && e.contains("rate"),
            "{e}"
        );
    }
}
