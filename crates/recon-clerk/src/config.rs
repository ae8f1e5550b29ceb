//! Configuration from the environment or a builder. Secrets have no
//! defaults and never appear in `Debug`.

use std::time::Duration;

use recon_core::{Error, Rate, Result, RetryPolicy};
use secrecy::SecretString;

/// The Clerk Backend API version recon speaks.
pub const CLERK_API_VERSION: &str = "2025-11-10";
/// Default base URL (paths are `/v1/...`).
pub const DEFAULT_API_BASE: &str = "https://api.clerk.com";

/// Clerk settings.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClerkConfig {
    pub(crate) secret_key: SecretString,
    pub(crate) webhook_secret: Option<SecretString>,
    /// Base URL, without `/v1`.
    pub api_base: String,
    /// Request budget; `None` follows the key.
    pub rate: Option<Rate>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ClerkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkConfig")
            .field("secret_key", &"[redacted]")
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("api_base", &self.api_base)
            .field("rate", &self.effective_rate())
            .finish()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ClerkConfig {
    /// A config with a secret key and defaults for the rest.
    pub fn new(secret_key: impl Into<String>) -> Self {
        ClerkConfig {
            secret_key: SecretString::from(secret_key.into()),
            webhook_secret: None,
            api_base: DEFAULT_API_BASE.to_string(),
            rate: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// From `CLERK_SECRET_KEY` (required), `CLERK_WEBHOOK_SECRET`,
    /// `CLERK_API_BASE`.
    pub fn from_env() -> Result<Self> {
        let key = var("CLERK_SECRET_KEY").ok_or_else(|| {
            Error::config("CLERK_SECRET_KEY is not set: Clerk needs a secret key")
                .with_component("clerk")
        })?;
        let mut c = ClerkConfig::new(key);
        if let Some(w) = var("CLERK_WEBHOOK_SECRET") {
            c = c.with_webhook_secret(w);
        }
        if let Some(b) = var("CLERK_API_BASE") {
            c = c.with_api_base(b);
        }
        Ok(c)
    }

    /// Set the webhook signing secret (`whsec_…`).
    pub fn with_webhook_secret(mut self, s: impl Into<String>) -> Self {
        self.webhook_secret = Some(SecretString::from(s.into()));
        self
    }

    /// Set the base URL.
    pub fn with_api_base(mut self, b: impl Into<String>) -> Self {
        self.api_base = b
            .into()
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        self
    }

    /// Set the request budget.
    pub fn with_rate(mut self, rate: Rate) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Set the retry policy.
    pub fn with_retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Development instances (`sk_test_`) get 100 requests / 10 s, production 1000 / 10 s.
    pub fn effective_rate(&self) -> Rate {
        use secrecy::ExposeSecret;
        self.rate.unwrap_or_else(|| {
            let dev = self.secret_key.expose_secret().starts_with("sk_test_");
            Rate {
                requests: if dev { 100 } else { 1000 },
                per: Duration::from_secs(10),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets_and_budget_follows_key() {
        let c = ClerkConfig::new("sk_test_supersecret").with_webhook_secret("whsec_abc");
        let d = format!("{c:?}");
        assert!(
            !d.contains("supersecret") && !d.contains("whsec_abc"),
            "{d}"
        );
        assert_eq!(c.effective_rate().requests, 100);
        assert_eq!(
            ClerkConfig::new("sk_live_x").effective_rate().requests,
            1000
        );
        assert_eq!(
            ClerkConfig::new("k").with_api_base("http://h/v1/").api_base,
            "http://h"
        );
    }
}
