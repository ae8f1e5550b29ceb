//! Paddle's settings: core's [`ApiConfig`], read from `PADDLE_*` variables.

use recon_core::http_client::{ApiConfig, ApiEnv, ApiSpec};
use recon_core::{Rate, Result};

/// The live API.
pub const DEFAULT_API_BASE: &str = "https://api.paddle.com";
/// The sandbox API: the default for a sandbox key (`pdl_sdbx_apikey_…`).
pub const SANDBOX_API_BASE: &str = "https://sandbox-api.paddle.com";
/// Paddle's documented limit, 240 requests a minute per IP address, paced.
pub const DEFAULT_RATE: Rate = Rate::per_second(4);
/// How old a `Paddle-Signature` may be, in seconds (see the crate docs).
pub const WEBHOOK_TOLERANCE_S: i64 = 300;
/// The largest `per_page` (transactions: 30).
pub const MAX_PAGE_SIZE: u32 = 200;

pub(crate) static SPEC: ApiSpec = ApiSpec {
    display: "Paddle",
    component: "paddle",
    env: ApiEnv {
        secret_key: env::API_KEY,
        webhook_secret: env::WEBHOOK_SECRET,
        api_base: env::API_BASE,
        rate: env::RATE,
    },
    key_hint: "an API key (pdl_live_apikey_… or pdl_sdbx_apikey_…)",
    default_base: DEFAULT_API_BASE,
    webhook_tolerance_s: WEBHOOK_TOLERANCE_S,
    secret_prefixes: &["pdl_live_apikey_", "pdl_sdbx_apikey_", "pdl_ntf"],
    user_agent: concat!("recon-paddle/", env!("CARGO_PKG_VERSION")),
    key_bases: &[("pdl_sdbx_", SANDBOX_API_BASE)],
    max_page_size: MAX_PAGE_SIZE,
    key_refused: &[
        "invalid_token",
        "authentication_missing",
        "authentication_malformed",
    ],
};

/// The variables [`from_env`] reads.
pub mod env {
    /// The API key (required).
    pub const API_KEY: &str = "PADDLE_API_KEY";
    /// The notification destination's secret key (`pdl_ntfset_…`).
    pub const WEBHOOK_SECRET: &str = "PADDLE_WEBHOOK_SECRET";
    /// The API base URL.
    pub const API_BASE: &str = "PADDLE_API_BASE";
    /// A request budget such as `240/60s`.
    pub const RATE: &str = "PADDLE_RATE";
}

/// Paddle has no settings beyond the shared ones.
pub type PaddleConfig = ApiConfig;

/// A configuration for `api_key`, every other setting at its default (a
/// sandbox key gets the sandbox host).
pub fn config(api_key: impl Into<String>) -> PaddleConfig {
    ApiConfig::new(&SPEC, api_key)
}

/// Read the [`env`] variables from the process environment, and check them.
pub fn from_env() -> Result<PaddleConfig> {
    from_vars(|name| std::env::var(name).ok())
}

/// [`from_env`] with another source of variables.
pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<PaddleConfig> {
    let cfg = ApiConfig::from_vars(&SPEC, get)?;
    cfg.validate().map(|()| cfg)
}
