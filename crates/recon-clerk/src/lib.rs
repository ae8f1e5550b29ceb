#![doc = include_str!("../README.md")]

mod client;
mod config;
mod objects;
mod provider;
mod webhook;

pub use config::{CLERK_API_VERSION, ClerkConfig, DEFAULT_API_BASE};
pub use provider::ClerkProvider;
pub use webhook::{sign, verify};
