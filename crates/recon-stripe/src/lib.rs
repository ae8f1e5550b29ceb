#![doc = include_str!("../README.md")]

mod client;
mod config;
pub mod endpoints;
pub mod events;
mod factory;
pub mod objects;
mod partition;
mod provider;
pub mod views;
mod webhook;

pub use config::{
    DEFAULT_API_BASE, LIVE_RATE, SANDBOX_RATE, STRIPE_VERSION, StripeConfig, WEBHOOK_TOLERANCE_S,
    env,
};
pub use factory::PROVIDER;
pub use provider::StripeProvider;
pub use recon_core::http_client::ApiSettings;
pub use webhook::{SIGNATURE, sign, signature, verify_signature};

/// The provider name: the first part of every mirrored key.
pub const NAME: &str = "stripe";

/// How far back Stripe's event log reaches: 30 days, in seconds.
pub const EVENT_HORIZON_S: i64 = 30 * 24 * 3600;
