//! Clerk in the provider registry: `registry.register(recon_clerk::PROVIDER)`.

use recon_core::Result;
use recon_core::registry::{BuiltProvider, ProviderSettings, ProviderSpec};

use crate::config::{SPEC, env};
use crate::{ClerkConfig, ClerkProvider, NAME};

/// Clerk, for the registry. It has no event log, so no `replay` job.
pub const PROVIDER: ProviderSpec = ProviderSpec {
    name: NAME,
    key_var: env::SECRET_KEY,
    env_vars: &SPEC.env.vars([
        "Backend API secret key (sk_test_…, sk_live_…); turns Clerk on",
        "the webhook endpoint's Svix signing secret (whsec_…)",
        "API base URL (default https://api.clerk.com)",
        "request budget such as 1000/10s (default follows the key)",
    ]),
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
    let stats = p.budget().stats().clone();
    Ok(BuiltProvider::new(stats, ClerkProvider::references(), p))
}
