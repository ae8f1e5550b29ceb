//! Stripe in the provider registry: `registry.register(recon_stripe::PROVIDER)`.

use recon_core::Result;
use recon_core::registry::{BuiltProvider, EnvVar, ProviderSettings, ProviderSpec};

use crate::config::env;
use crate::{NAME, StripeConfig, StripeProvider};

/// Stripe, for the registry.
pub const PROVIDER: ProviderSpec = ProviderSpec {
    name: NAME,
    key_var: env::SECRET_KEY,
    env_vars: &[
        EnvVar::secret(
            env::SECRET_KEY,
            "secret (sk_…) or restricted (rk_…) API key; turns Stripe on",
        ),
        EnvVar::secret(
            env::WEBHOOK_SECRET,
            "the webhook endpoint's signing secret (whsec_…)",
        ),
        EnvVar::setting(
            env::API_BASE,
            "API base URL (default https://api.stripe.com)",
        ),
        EnvVar::setting(env::ACCOUNT, "a Connect account (acct_…) to act as"),
        EnvVar::setting(
            env::RATE,
            "request budget such as 100/s (default follows the key)",
        ),
    ],
    kinds: crate::objects::KINDS,
    default_schedule: &[
        ("subscriptions", "0 5 * * * *"),
        ("invoices", "0 15 * * * *"),
        ("customers", "0 25 * * * *"),
        ("prices", "0 35 3 * * *"),
        ("products", "0 40 3 * * *"),
        ("replay", "0 */5 * * * *"),
    ],
    views: crate::views::VIEWS,
    build,
};

fn build(settings: &ProviderSettings) -> Result<BuiltProvider> {
    let mut cfg = StripeConfig::from_env()?;
    cfg.api.apply_file(settings);
    let p = StripeProvider::new(cfg)?;
    Ok(BuiltProvider::new(
        p.budget().stats().clone(),
        StripeProvider::references(),
        p,
    ))
}
