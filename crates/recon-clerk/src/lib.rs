#![doc = include_str!("../README.md")]

mod client;
mod config;
mod factory;
mod listing;
mod memberships;
pub mod objects;
mod provider;
pub mod views;
pub mod webhook;

pub use config::{
    CLERK_API_VERSION, ClerkConfig, DEFAULT_API_BASE, DEVELOPMENT_RATE, MAX_PAGE_SIZE,
    PRODUCTION_RATE, WEBHOOK_TOLERANCE_S, env,
};
pub use factory::PROVIDER;
pub use objects::{KINDS, kind_of};
pub use provider::ClerkProvider;
pub use recon_core::http_client::ApiSettings;
pub use webhook::{Delivery, parse_event, sign, signing_key, verify_signature};

/// The provider name: the first part of every mirrored key.
pub const NAME: &str = "clerk";

/// The account every Clerk object is mirrored under: one secret key is one
/// Clerk instance.
pub const ACCOUNT: &str = "default";
