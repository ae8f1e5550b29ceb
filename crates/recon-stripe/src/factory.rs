//! Stripe in the provider registry: `registry.register(recon_stripe::PROVIDER)`.

use recon_core::Result;
use recon_core::registry::{BuiltProvider, EnvVar, ProviderSettings, ProviderSpec};

use crate::config::{SPEC, env};
use crate::{NAME, StripeConfig, StripeProvider};

/// The shared four, and `STRIPE_ACCOUNT` before the rate.
const ENV_VARS: [EnvVar; 5] = {
    let [key, webhook, base, rate] = SPEC.env.vars([
        "secret (sk_…) or restricted (rk_…) API key; turns Stripe on",
        "the webhook endpoint's signing secret (whsec_…)",
        "API base URL (default https://api.stripe.com)",
        "request budget such as 100/s (default follows the key)",
    ]);
    let account = EnvVar::setting(env::ACCOUNT, "a Connect account (acct_…) to act as");
    [key, webhook, base, account, rate]
};

/// Stripe, for the registry.
pub const PROVIDER: ProviderSpec = ProviderSpec {
    name: NAME,
    key_var: env::SECRET_KEY,
    env_vars: &ENV_VARS,
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
    let stats = p.budget().stats().clone();
    Ok(BuiltProvider::new(stats, StripeProvider::references(), p))
}
