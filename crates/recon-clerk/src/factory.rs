//! Clerk in the provider registry: `registry.register(recon_clerk::PROVIDER)`.

use recon_core::Result;
use recon_core::registry::{BuiltProvider, EnvVar, ProviderSettings, ProviderSpec};

use crate::config::env;
use crate::{ClerkConfig, ClerkProvider, NAME};

/// Clerk, for the registry. It has no event log, so no `replay` job.
pub const PROVIDER: ProviderSpec = ProviderSpec {
    name: NAME,
    key_var: env::SECRET_KEY,
    env_vars: &[
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
    ],
    kinds: crate::objects::KINDS,
    default_schedule: &[
        ("users", "0 10 2 * * *"),
        ("organizations", "0 20 2 * * *"),
        ("organization_memberships", "0 30 2 * * *"),
    ],
    views: crate::views::VIEWS,
    build,
};

fn build(settings: &ProviderSettings) -> Result<BuiltProvider> {
    let mut cfg = ClerkConfig::from_env()?;
    cfg.api.apply_file(settings);
    let p = ClerkProvider::new(cfg)?;
    Ok(BuiltProvider::new(
        p.budget().stats().clone(),
        ClerkProvider::references(),
        p,
    ))
}
