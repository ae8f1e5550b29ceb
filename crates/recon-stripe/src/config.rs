//! [`StripeConfig`]: the key, the endpoint, the budget. Secrets live in
//! [`SecretString`]s and never reach `Debug` output or error messages.

use recon_core::http_client::{ApiConfig, ApiEnv, ApiSettings, ApiSpec};
use recon_core::{Rate, Result};
use secrecy::ExposeSecret;

/// The Stripe API version every request pins (`Stripe-Version`).
pub const STRIPE_VERSION: &str = "2025-03-31.basil";

/// Where Stripe's API lives unless `STRIPE_API_BASE` says otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// Stripe's documented global limit for sandbox keys (`sk_test_`, `rk_test_`).
pub const SANDBOX_RATE: Rate = Rate::per_second(25);

/// Stripe's documented global limit for live keys.
pub const LIVE_RATE: Rate = Rate::per_second(100);

/// How old a webhook's signed timestamp may be, in seconds (Stripe's SDK default).
pub const WEBHOOK_TOLERANCE_S: i64 = 300;

/// The account name of the platform itself, mirrored without a
/// `Stripe-Account` header.
pub(crate) const DEFAULT_ACCOUNT: &str = "default";

/// Stripe, for the shared configuration, client and errors.
pub(crate) static SPEC: ApiSpec = ApiSpec {
    display: "Stripe",
    component: "stripe",
    env: ApiEnv {
        secret_key: env::SECRET_KEY,
        webhook_secret: env::WEBHOOK_SECRET,
        api_base: env::API_BASE,
        rate: env::RATE,
    },
    key_hint: "a secret (sk_…) or restricted (rk_…) API key of the right account and mode",
    default_base: DEFAULT_API_BASE,
    webhook_tolerance_s: WEBHOOK_TOLERANCE_S,
    secret_prefixes: &["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"],
    user_agent: concat!("recon-stripe/", env!("CARGO_PKG_VERSION")),
    key_bases: &[],
    max_page_size: 100,
    key_refused: &[],
};

/// Environment variable names read by [`StripeConfig::from_env`].
pub mod env {
    /// The secret (`sk_…`) or restricted (`rk_…`) API key. Required.
    pub const SECRET_KEY: &str = "STRIPE_SECRET_KEY";
    /// The webhook endpoint's signing secret (`whsec_…`). Needed to verify webhooks.
    pub const WEBHOOK_SECRET: &str = "STRIPE_WEBHOOK_SECRET";
    /// The API base URL (default `https://api.stripe.com`).
    pub const API_BASE: &str = "STRIPE_API_BASE";
    /// A Connect account (`acct_…`) to act as, sent as `Stripe-Account`.
    pub const ACCOUNT: &str = "STRIPE_ACCOUNT";
    /// A request budget such as `100/s`, overriding the one the key implies.
    pub const RATE: &str = "STRIPE_RATE";
}

/// How to reach Stripe. Build it with [`StripeConfig::new`] or
/// [`StripeConfig::from_env`], then adjust with the `with_*` methods (the
/// shared ones come from [`ApiSettings`]).
///
/// `Debug` never prints the API key or the webhook secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct StripeConfig {
    /// Key, webhook secret, base URL, budget, retries and timeouts.
    pub api: ApiConfig,
    /// Connect account (`acct_…`) sent as `Stripe-Account`; `None` for the
    /// platform account itself (mirrored as account `default`).
    pub account: Option<String>,
    /// Event types an event replay asks for (`types[]`); empty asks for all.
    /// Lists longer than 20 are split across requests.
    pub event_types: Vec<String>,
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("mode", &if self.is_sandbox() { "sandbox" } else { "live" })
            .field("api", &self.api)
            .field("account", &self.account)
            .field("rate", &self.effective_rate())
            .field("event_types", &self.event_types)
            .finish()
    }
}

impl ApiSettings for StripeConfig {
    fn api_config(&mut self) -> &mut ApiConfig {
        &mut self.api
    }
}

impl StripeConfig {
    /// A configuration for `secret_key` with every other setting at its default.
    pub fn new(secret_key: impl Into<String>) -> Self {
        StripeConfig {
            api: ApiConfig::new(&SPEC, secret_key),
            account: None,
            event_types: Vec::new(),
        }
    }

    /// Read `STRIPE_SECRET_KEY` (required), `STRIPE_WEBHOOK_SECRET`,
    /// `STRIPE_API_BASE`, `STRIPE_ACCOUNT` and `STRIPE_RATE` from the
    /// process environment. Empty values count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`StripeConfig::from_env`] with another source of variables (tests,
    /// config files).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let account = get(env::ACCOUNT).filter(|v| !v.trim().is_empty());
        let mut cfg = StripeConfig {
            api: ApiConfig::from_vars(&SPEC, get)?,
            account: None,
            event_types: Vec::new(),
        };
        if let Some(acct) = account {
            cfg = cfg.with_account(acct);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Act as a Connect account (`acct_…`).
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into().trim().to_string());
        self
    }

    /// Ask an event replay for these types only.
    pub fn with_event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// A sandbox key (`sk_test_…`, `rk_test_…`)?
    pub fn is_sandbox(&self) -> bool {
        let k = self.api.secret_key().expose_secret();
        k.starts_with("sk_test_") || k.starts_with("rk_test_")
    }

    /// The budget in force: the override, or the key's documented limit.
    pub fn effective_rate(&self) -> Rate {
        self.api.rate.unwrap_or(if self.is_sandbox() {
            SANDBOX_RATE
        } else {
            LIVE_RATE
        })
    }

    /// The account name recon mirrors under: the Connect id or `default`.
    pub fn account_name(&self) -> &str {
        self.account.as_deref().unwrap_or(DEFAULT_ACCOUNT)
    }

    /// Whether a webhook secret is configured.
    pub fn has_webhook_secret(&self) -> bool {
        self.api.has_webhook_secret()
    }

    /// Check the settings. Messages name variables, never their secret values.
    pub fn validate(&self) -> Result<()> {
        self.api.validate()?;
        if let Some(a) = &self.account
            && (!a.starts_with("acct_") || !crate::objects::is_plain_id(a))
        {
            return Err(SPEC.config_error(format!(
                "{} must be a Connect account id (acct_…), not {a:?}",
                env::ACCOUNT
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_core::ErrorKind;
    use recon_core::testkit::vars;

    #[test]
    fn missing_key_names_the_variable() {
        let e = StripeConfig::from_vars(vars(&[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("STRIPE_SECRET_KEY"), "{e}");
        let e = StripeConfig::from_vars(vars(&[("STRIPE_SECRET_KEY", "  ")])).unwrap_err();
        assert!(e.to_string().contains("STRIPE_SECRET_KEY"), "{e}");
    }

    #[test]
    fn rate_follows_the_key_unless_overridden() {
        let c = StripeConfig::from_vars(vars(&[("STRIPE_SECRET_KEY", "sk_test_abc")])).unwrap();
        assert_eq!(c.effective_rate(), SANDBOX_RATE);
        assert_eq!(c.api.api_base, DEFAULT_API_BASE);
        assert_eq!(c.account_name(), "default");
        let c = StripeConfig::new("rk_test_abc");
        assert_eq!(c.effective_rate(), SANDBOX_RATE);
        let c = StripeConfig::new("sk_live_abc");
        assert_eq!(c.effective_rate(), LIVE_RATE);
        let c = StripeConfig::from_vars(vars(&[
            ("STRIPE_SECRET_KEY", "sk_live_abc"),
            ("STRIPE_RATE", "40/s"),
            ("STRIPE_API_BASE", "http://127.0.0.1:9999/"),
            ("STRIPE_ACCOUNT", "acct_123"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ]))
        .unwrap();
        assert_eq!(c.effective_rate(), Rate::per_second(40));
        assert_eq!(c.api.api_base, "http://127.0.0.1:9999");
        assert_eq!(c.account_name(), "acct_123");
        assert!(c.has_webhook_secret());
    }

    #[test]
    fn bad_settings_are_config_errors_naming_the_variable() {
        for (k, v, name) in [
            ("STRIPE_RATE", "fast", "STRIPE_RATE"),
            ("STRIPE_API_BASE", "ftp://x", "STRIPE_API_BASE"),
            ("STRIPE_ACCOUNT", "cus_1", "STRIPE_ACCOUNT"),
        ] {
            let e = StripeConfig::from_vars(vars(&[("STRIPE_SECRET_KEY", "sk_test_1"), (k, v)]))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(name), "{e}");
        }
        let e = StripeConfig::from_vars(vars(&[("STRIPE_SECRET_KEY", "pk_test_1")])).unwrap_err();
        assert!(e.to_string().contains("publishable"), "{e}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = StripeConfig::new("sk_test_supersecretvalue").with_webhook_secret("whsec_hush");
        let d = format!("{c:?}");
        assert!(!d.contains("supersecret"), "{d}");
        assert!(!d.contains("hush"), "{d}");
        assert!(d.contains("sandbox"), "{d}");
    }
}
