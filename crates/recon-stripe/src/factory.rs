//! Stripe in the provider registry.

use std::sync::Arc;

use recon_core::Result;
use recon_core::registry::{BuiltProvider, EnvVar, ProviderFactory, ProviderSettings};

use crate::config::env;
use crate::{NAME, StripeConfig, StripeProvider};

/// Registers Stripe: `registry.register(recon_stripe::StripeFactory)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StripeFactory;

const ENV: &[EnvVar] = &[
    EnvVar {
        name: env::SECRET_KEY,
        meaning: "secret (sk_…) or restricted (rk_…) API key; turns Stripe on",
        secret: true,
    },
    EnvVar {
        name: env::WEBHOOK_SECRET,
        meaning: "the webhook endpoint's signing secret (whsec_…)",
        secret: true,
    },
    EnvVar {
        name: env::API_BASE,
        meaning: "API base URL (default https://api.stripe.com)",
        secret: false,
    },
    EnvVar {
        name: env::ACCOUNT,
        meaning: "a Connect account (acct_…) to act as",
        secret: false,
    },
    EnvVar {
        name: env::RATE,
        meaning: "request budget such as 100/s (default follows the key)",
        secret: false,
    },
];

impl ProviderFactory for StripeFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn key_var(&self) -> &'static str {
        env::SECRET_KEY
    }

    fn env_vars(&self) -> &'static [EnvVar] {
        ENV
    }

    fn kinds(&self) -> &'static [&'static str] {
        crate::objects::KINDS
    }

    fn default_schedule(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("subscriptions", "0 5 * * * *"),
            ("invoices", "0 15 * * * *"),
            ("customers", "0 25 * * * *"),
            ("prices", "0 35 3 * * *"),
            ("products", "0 40 3 * * *"),
            ("replay", "0 */5 * * * *"),
        ]
    }

    fn build(&self, settings: &ProviderSettings) -> Result<BuiltProvider> {
        let mut cfg = StripeConfig::from_env()?;
        if let Some(r) = settings.rate {
            cfg = cfg.with_rate(r);
        }
        let p = StripeProvider::new(cfg)?;
        let stats = p.budget().stats().clone();
        Ok(BuiltProvider {
            provider: Arc::new(p),
            references: StripeProvider::references(),
            stats,
        })
    }
}
