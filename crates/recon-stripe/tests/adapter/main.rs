//! The Stripe adapter against a local emulator (wiremock): no network
//! beyond 127.0.0.1.

mod clock;
mod conformance;
mod errors;
mod events;
mod fake;
mod listing;
mod webhooks;
