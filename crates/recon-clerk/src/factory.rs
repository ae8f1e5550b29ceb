//! Clerk in the provider registry.

use std::sync::Arc;

use recon_core::Result;
use recon_core::registry::{BuiltProvider, EnvVar, ProviderFactory, ProviderSettings};

use crate::config::env;
use crate::{ClerkConfig, ClerkProvider, NAME};

/// Registers Clerk: `registry.register(recon_clerk::ClerkFactory)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClerkFactory;

const ENV: &[EnvVar] = &[
    EnvVar {
        name: env::SECRET_KEY,
        meaning: "Backend API secret key (sk_test_…, sk_live_…); turns Clerk on",
        secret: true,
    },
    EnvVar {
        name: env::WEBHOOK_SECRET,
        meaning: "the webhook endpoint's Svix signing secret (whsec_…)",
        secret: true,
    },
    EnvVar {
        name: env::API_BASE,
        meaning: "API base URL (default https://api.clerk.com)",
        secret: false,
    },
    EnvVar {
        name: env::RATE,
        meaning: "request budget such as 1000/10s (default follows the key)",
        secret: false,
    },
];

impl ProviderFactory for ClerkFactory {
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
        // Clerk has no event log to replay.
        &[
            ("users", "0 10 2 * * *"),
            ("organizations", "0 20 2 * * *"),
            ("organization_memberships", "0 30 2 * * *"),
        ]
    }

    fn build(&self, settings: &ProviderSettings) -> Result<BuiltProvider> {
        let mut cfg = ClerkConfig::from_env()?;
        if let Some(r) = settings.rate {
            cfg = cfg.with_rate(r);
        }
        let p = ClerkProvider::new(cfg)?;
        let stats = p.budget().stats().clone();
        Ok(BuiltProvider {
            provider: Arc::new(p),
            references: ClerkProvider::references(),
            stats,
        })
    }
}
