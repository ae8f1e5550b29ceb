//! [`ClerkConfig`]: the key, the endpoint, the budget, the webhook secret.
//! Secrets live in `SecretString`s and never reach `Debug` output or error
//! messages; errors name the variable, never its value.

use std::time::Duration;

use recon_core::http_client::{ApiConfig, ApiEnv, ApiSettings, ApiSpec};
use recon_core::{Rate, Result};
use secrecy::ExposeSecret;

/// The Backend API version every request pins (`Clerk-API-Version`): the
/// newest in docs/PROVIDERS.md §2.1, the spec its facts were taken from.
pub const CLERK_API_VERSION: &str = "2026-05-12";

/// Where Clerk's Backend API lives unless `CLERK_API_BASE` says otherwise.
/// Request paths are `/v1/…` below it.
pub const DEFAULT_API_BASE: &str = "https://api.clerk.com";

/// Clerk's documented Backend API limit for development instances
/// (`sk_test_…` keys): 100 requests per 10 seconds.
pub const DEVELOPMENT_RATE: Rate = Rate {
    requests: 100,
    per: Duration::from_secs(10),
};

/// Clerk's documented Backend API limit for production instances: 1000
/// requests per 10 seconds.
pub const PRODUCTION_RATE: Rate = Rate {
    requests: 1000,
    per: Duration::from_secs(10),
};

/// How far a webhook's `svix-timestamp` may be from now, in either
/// direction, in seconds (Svix's libraries use 5 minutes).
pub const WEBHOOK_TOLERANCE_S: i64 = 300;

/// The largest page Clerk serves (`limit` 1–500).
pub const MAX_PAGE_SIZE: u32 = 500;

/// Clerk, for the shared configuration, client and errors.
pub(crate) static SPEC: ApiSpec = ApiSpec {
    display: "Clerk",
    component: "clerk",
    env: ApiEnv {
        secret_key: env::SECRET_KEY,
        webhook_secret: env::WEBHOOK_SECRET,
        api_base: env::API_BASE,
        rate: env::RATE,
    },
    key_hint: "the instance's Backend API secret key (sk_test_… or sk_live_…)",
    default_base: DEFAULT_API_BASE,
    webhook_tolerance_s: WEBHOOK_TOLERANCE_S,
    secret_prefixes: &["sk_live_", "sk_test_", "whsec_"],
    user_agent: concat!("recon-clerk/", env!("CARGO_PKG_VERSION")),
    key_bases: &[],
    max_page_size: MAX_PAGE_SIZE,
    key_refused: &[],
};

/// Environment variable names read by [`ClerkConfig::from_env`].
pub mod env {
    /// The Backend API secret key (`sk_test_…`, `sk_live_…`). Required.
    pub const SECRET_KEY: &str = "CLERK_SECRET_KEY";
    /// The webhook endpoint's Svix signing secret (`whsec_…`). Needed to verify webhooks.
    pub const WEBHOOK_SECRET: &str = "CLERK_WEBHOOK_SECRET";
    /// The API base URL (default `https://api.clerk.com`).
    pub const API_BASE: &str = "CLERK_API_BASE";
    /// A request budget such as `1000/10s`, overriding the one the key implies.
    pub const RATE: &str = "CLERK_RATE";
}

/// How to reach Clerk. Build it with [`ClerkConfig::new`] or
/// [`ClerkConfig::from_env`], then adjust it with the `with_*` methods (the
/// shared ones come from [`ApiSettings`]).
///
/// `Debug` never prints the secret key or the webhook secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClerkConfig {
    /// Key, webhook secret, base URL (without a trailing slash or `/v1`),
    /// budget (`None` picks it from the key: [`DEVELOPMENT_RATE`] for
    /// `sk_test_…`, otherwise [`PRODUCTION_RATE`]), retries, timeouts and
    /// page size (1–500; 500 unless set).
    pub api: ApiConfig,
    /// How many more users `GET /v1/users/count` may report than a
    /// completed user listing returned before the listing counts as
    /// incomplete (see the crate documentation). Default 0.
    pub user_count_tolerance: u64,
}

impl std::fmt::Debug for ClerkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkConfig")
            .field(
                "instance",
                &if self.is_development() {
                    "development"
                } else {
                    "production"
                },
            )
            .field("api", &self.api)
            .field("rate", &self.effective_rate())
            .field("user_count_tolerance", &self.user_count_tolerance)
            .finish()
    }
}

impl ApiSettings for ClerkConfig {
    fn api_config(&mut self) -> &mut ApiConfig {
        &mut self.api
    }

    /// A trailing `/` or `/v1` is dropped: request paths carry `/v1`
    /// themselves.
    fn normalize_base(base: &str) -> String {
        let mut base = base.trim().trim_end_matches('/');
        if let Some(stripped) = base.strip_suffix("/v1") {
            base = stripped.trim_end_matches('/');
        }
        base.to_string()
    }
}

impl ClerkConfig {
    /// A configuration for `secret_key` with every other setting at its default.
    pub fn new(secret_key: impl Into<String>) -> Self {
        ClerkConfig {
            api: ApiConfig::new(&SPEC, secret_key),
            user_count_tolerance: 0,
        }
    }

    /// Read `CLERK_SECRET_KEY` (required), `CLERK_WEBHOOK_SECRET`,
    /// `CLERK_API_BASE` and `CLERK_RATE` from the process environment.
    /// Empty values count as unset.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`ClerkConfig::from_env`] with another source of variables (tests,
    /// config files).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut cfg = ClerkConfig {
            api: ApiConfig::from_vars(&SPEC, get)?,
            user_count_tolerance: 0,
        };
        cfg.api.api_base = Self::normalize_base(&cfg.api.api_base);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Allow a completed user listing to miss this many users against
    /// `GET /v1/users/count` before it counts as incomplete.
    pub fn with_user_count_tolerance(mut self, tolerance: u64) -> Self {
        self.user_count_tolerance = tolerance;
        self
    }

    /// A development instance's key (`sk_test_…`)?
    pub fn is_development(&self) -> bool {
        self.api
            .secret_key()
            .expose_secret()
            .starts_with("sk_test_")
    }

    /// The budget in force: the override, or the instance's documented limit.
    pub fn effective_rate(&self) -> Rate {
        self.api.rate.unwrap_or(if self.is_development() {
            DEVELOPMENT_RATE
        } else {
            PRODUCTION_RATE
        })
    }

    /// Whether a webhook secret is configured.
    pub fn has_webhook_secret(&self) -> bool {
        self.api.has_webhook_secret()
    }

    /// Check the settings. Messages name variables, never their secret values.
    pub fn validate(&self) -> Result<()> {
        self.api.validate()?;
        if let Some(s) = self.api.webhook_secret()
            && crate::webhook::signing_key(s.expose_secret()).is_none()
        {
            return Err(SPEC.config_error(format!(
                "{} is not a Svix signing secret: expected whsec_ followed by base64, as the Clerk dashboard shows it",
                env::WEBHOOK_SECRET
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
        let e = ClerkConfig::from_vars(vars(&[])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("CLERK_SECRET_KEY"), "{e}");
        let e = ClerkConfig::from_vars(vars(&[("CLERK_SECRET_KEY", "  ")])).unwrap_err();
        assert!(e.to_string().contains("CLERK_SECRET_KEY"), "{e}");
    }

    #[test]
    fn rate_follows_the_key_unless_overridden() {
        let c = ClerkConfig::from_vars(vars(&[("CLERK_SECRET_KEY", "sk_test_abc")])).unwrap();
        assert_eq!(c.effective_rate(), DEVELOPMENT_RATE);
        assert_eq!(c.api.api_base, DEFAULT_API_BASE);
        assert!(!c.has_webhook_secret());
        assert_eq!(
            ClerkConfig::new("sk_live_abc").effective_rate(),
            PRODUCTION_RATE
        );
        let c = ClerkConfig::from_vars(vars(&[
            ("CLERK_SECRET_KEY", "sk_live_abc"),
            ("CLERK_RATE", "50/s"),
            ("CLERK_API_BASE", "http://127.0.0.1:9999/v1/"),
            (
                "CLERK_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ]))
        .unwrap();
        assert_eq!(c.effective_rate(), Rate::per_second(50));
        assert_eq!(c.api.api_base, "http://127.0.0.1:9999");
        assert!(c.has_webhook_secret());
    }

    #[test]
    fn bad_settings_are_config_errors_naming_the_variable() {
        for (k, v, name) in [
            ("CLERK_RATE", "fast", "CLERK_RATE"),
            ("CLERK_API_BASE", "ftp://x", "CLERK_API_BASE"),
            (
                "CLERK_WEBHOOK_SECRET",
                "whsec_!!not base64!!",
                "CLERK_WEBHOOK_SECRET",
            ),
        ] {
            let e = ClerkConfig::from_vars(vars(&[("CLERK_SECRET_KEY", "sk_test_1"), (k, v)]))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(name), "{e}");
            assert!(!e.to_string().contains("sk_test_1"), "{e}");
        }
        let e = ClerkConfig::from_vars(vars(&[("CLERK_SECRET_KEY", "pk_test_1")])).unwrap_err();
        assert!(e.to_string().contains("publishable"), "{e}");
        assert!(
            ClerkConfig::new("sk_test_1")
                .with_page_size(501)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = ClerkConfig::new("sk_test_supersecretvalue")
            .with_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let d = format!("{c:?}");
        assert!(!d.contains("supersecret"), "{d}");
        assert!(!d.contains("MfKQ9r8"), "{d}");
        assert!(d.contains("development"), "{d}");
    }
}
