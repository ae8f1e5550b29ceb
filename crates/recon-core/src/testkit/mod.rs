//! Test kit (feature `testkit`): the conformance suites every store and
//! provider crate runs, and an in-process test provider.
//!
//! - [`store_suite`]: call [`store_suite::run_all`] with a fresh store.
//! - [`provider_suite`]: checks any [`crate::Provider`] against a server
//!   (wiremock or the simulator) whose content the test knows.
//! - [`conformance`]: the provider conformance suite on a generic fake
//!   API, run with [`crate::provider_conformance_tests!`].
//! - [`fake::TestProvider`]: a controllable in-memory provider for engine tests.

pub mod conformance;
pub mod fake;
pub mod provider_suite;
pub mod store_suite;
