//! Integration tests of the simulator over HTTP.

mod common;

mod clerk;
mod clock;
mod faults;
mod perf;
mod stripe;
mod truth;
mod webhooks;
