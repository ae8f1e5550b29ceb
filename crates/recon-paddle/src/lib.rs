#![doc = include_str!("../README.md")]

mod client;
mod config;
mod events;
mod factory;
mod objects;
mod provider;
pub mod views;
pub mod webhook;

pub use config::{
    DEFAULT_API_BASE, DEFAULT_RATE, MAX_PAGE_SIZE, PaddleConfig, SANDBOX_API_BASE,
    WEBHOOK_TOLERANCE_S, config, env, from_env, from_vars,
};
pub use factory::PROVIDER;
pub use objects::{KINDS, kind_of};
pub use provider::PaddleProvider;
pub use recon_core::http_client::ApiSettings;
pub use webhook::{SIGNATURE, parse_event};

/// The provider name: the first part of every mirrored key.
pub const NAME: &str = "paddle";

/// The account every object is mirrored under (one key, one account).
pub const ACCOUNT: &str = "default";
