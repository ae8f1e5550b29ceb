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

/// Retries for adapter tests: three, 5–20 ms apart, `Retry-After` honoured
/// up to 5 s.
pub fn fast_retries() -> crate::RetryPolicy {
    use std::time::Duration;
    crate::RetryPolicy {
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 3,
        total_timeout: Duration::from_secs(30),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A source of variables for a provider's `from_vars`: these pairs, and
/// nothing from the process environment.
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

/// A wiremock server that answers every GET with `responder` (a fake API).
pub async fn serve(responder: impl wiremock::Respond + 'static) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    let every_get = wiremock::Mock::given(wiremock::matchers::method("GET"));
    every_get.respond_with(responder).mount(&server).await;
    server
}
