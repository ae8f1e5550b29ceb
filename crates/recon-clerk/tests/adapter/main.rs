//! The Clerk adapter against a local emulator (wiremock): no network
//! beyond 127.0.0.1.

mod clock;
mod conformance;
mod engine;
mod errors;
mod fake;
mod listing;
mod webhooks;
