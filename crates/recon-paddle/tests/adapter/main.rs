//! The Paddle adapter against local fakes (wiremock, 127.0.0.1 only).

mod api;
mod conformance;
mod engine;
mod events;
mod webhooks;
