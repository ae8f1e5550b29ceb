//! Paddle in the provider registry.

use recon_core::Result;
use recon_core::registry::{BuiltProvider, ProviderSettings, ProviderSpec};

use crate::config::{SPEC, env};
use crate::provider::REFERENCES;
use crate::{NAME, PaddleProvider};

/// Paddle Billing, for the registry.
pub const PROVIDER: ProviderSpec = ProviderSpec {
    name: NAME,
    key_var: env::API_KEY,
    env_vars: &SPEC.env.vars([
        "API key (pdl_live_apikey_…, pdl_sdbx_apikey_…); turns Paddle on",
        "the notification destination's secret key (pdl_ntfset_…)",
        "API base URL (default: the live or sandbox host, by key)",
        "request budget such as 240/60s (the default)",
    ]),
    kinds: crate::objects::KINDS,
    // No "changed since" filter in Paddle's lists: every sweep lists all,
    // at 240 requests a minute (transactions 30 a page).
    default_schedule: &[
        ("subscriptions", "0 10 * * * *"),
        ("customers", "0 20 * * * *"),
        ("products", "0 40 2 * * *"),
        ("prices", "0 45 2 * * *"),
        ("transactions", "0 50 2 * * *"),
        ("replay", "0 */10 * * * *"),
    ],
    views: crate::views::VIEWS,
    build,
};

fn build(settings: &ProviderSettings) -> Result<BuiltProvider> {
    let mut cfg = crate::from_env()?;
    cfg.apply_file(settings);
    let p = PaddleProvider::new(cfg)?;
    let stats = p.budget().stats().clone();
    Ok(BuiltProvider::new(stats, REFERENCES, p))
}
