//! Failures: classification and what core's retries make of it.

use recon_stripe::ApiSettings;
use std::time::{Duration, Instant};

use recon_core::{ErrorKind, ListScope, Provider};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake::provider;

fn ok_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "object": "list", "has_more": false,
        "data": [{"id": "cus_1", "object": "customer", "created": 1_700_000_000}]
    }))
}

fn stripe_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"type": "invalid_request_error", "code": code, "message": "boom"}
    }))
}

async fn server_with(first: ResponseTemplate, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(ok_page())
        .with_priority(2)
        .mount(&server)
        .await;
    server
}

async fn list(server: &MockServer) -> recon_core::Result<recon_core::Page> {
    provider(&server.uri())
        .list_page("customers", &ListScope::all(), None)
        .await
}

async fn hits(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn rate_limit_429_then_success() {
    let server = server_with(stripe_error(429, "rate_limit"), 2).await;
    let page = list(&server).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(hits(&server).await, 3);
}

#[tokio::test]
async fn rate_limit_as_400_is_retried() {
    let server = server_with(stripe_error(400, "rate_limit"), 1).await;
    assert!(list(&server).await.is_ok());
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = server_with(
        stripe_error(429, "rate_limit").insert_header("Retry-After", "1"),
        1,
    )
    .await;
    let start = Instant::now();
    assert!(list(&server).await.is_ok());
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn should_retry_false_stops_retries() {
    let server = server_with(
        stripe_error(503, "").insert_header("Stripe-Should-Retry", "false"),
        10,
    )
    .await;
    let e = list(&server).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(hits(&server).await, 1);
}

#[tokio::test]
async fn should_retry_true_retries_what_would_not_be() {
    let server = server_with(
        stripe_error(400, "parameter_invalid").insert_header("Stripe-Should-Retry", "true"),
        1,
    )
    .await;
    assert!(list(&server).await.is_ok());
    assert_eq!(hits(&server).await, 2);
}

#[tokio::test]
async fn conflicts_and_lock_timeouts_are_retried() {
    for (status, code) in [(409, "idempotency_error"), (429, "lock_timeout")] {
        let server = server_with(stripe_error(status, code), 2).await;
        assert!(list(&server).await.is_ok(), "{status} {code}");
        assert_eq!(hits(&server).await, 3);
    }
}

#[tokio::test]
async fn server_errors_exhaust_retries_then_fail() {
    let server = server_with(
        ResponseTemplate::new(502).set_body_string("bad gateway"),
        100,
    )
    .await;
    let e = list(&server).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("502"), "{e}");
    // One attempt and three retries (the test policy).
    assert_eq!(hits(&server).await, 4);
    // A failed listing is an error, not an empty last page: the engine ends
    // the sweep as failed and deletes nothing.
}

#[tokio::test]
async fn bad_key_is_a_clear_error_naming_the_variable() {
    let server = server_with(
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_test_****fake"}})),
        10,
    )
    .await;
    let e = list(&server).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let msg = e.to_string();
    assert!(msg.contains("STRIPE_SECRET_KEY"), "{msg}");
    assert!(
        !msg.contains("sk_test_recon_fake") && !msg.contains("fake"),
        "{msg}"
    );
    assert_eq!(hits(&server).await, 1, "never retried");
}

#[tokio::test]
async fn forbidden_and_bad_requests_are_not_retried() {
    for (status, kind) in [
        (403, ErrorKind::PermissionDenied),
        (400, ErrorKind::InvalidInput),
    ] {
        let server = server_with(stripe_error(status, "x"), 10).await;
        assert_eq!(list(&server).await.unwrap_err().kind(), kind);
        assert_eq!(hits(&server).await, 1);
    }
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let server = server_with(
        ResponseTemplate::new(200)
            .set_body_raw("{\"object\":\"list\",\"data\":[{", "application/json"),
        10,
    )
    .await;
    let e = list(&server).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("malformed JSON"), "{e}");

    let server = server_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({"object": "list", "has_more": true, "data": []})),
        10,
    )
    .await;
    let e = list(&server).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("has_more"), "{e}");
}

#[tokio::test]
async fn unknown_routes_are_errors_not_deletions() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "type": "invalid_request_error", "message": "Unrecognized request URL (GET: /v1/customers/cus_1)"}})))
        .mount(&server)
        .await;
    let e = provider(&server.uri())
        .fetch("customers", "cus_1")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Nothing listens on port 9 (discard) here.
    let e = provider("http://127.0.0.1:9")
        .list_page("customers", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{e:?}"
    );
    assert!(e.is_temporary());
}

#[tokio::test]
async fn slow_answers_time_out() {
    let server = server_with(ok_page().set_delay(Duration::from_secs(5)), 100).await;
    let p = recon_stripe::StripeProvider::new(
        crate::fake::config(&server.uri()).with_request_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    let e = p
        .list_page("customers", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
}

/// A server answering every retrieve with `status` and `body` (as JSON when
/// `json`, else as `content_type`).
async fn retrieve_answers(resp: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_gone"))
        .respond_with(resp)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn emulator_404_with_a_stripe_error_body_is_not_found() {
    // Emulators answer an unknown or deleted id with a Stripe-shaped error
    // whose `code` is missing (or another one), and any message.
    for body in [
        json!({"error": {"type": "invalid_request_error", "message": "Customer cus_gone not found"}}),
        json!({"error": {"type": "invalid_request_error"}}),
        json!({"error": {"type": "api_error", "message": "object does not exist"}}),
        json!({"error": {"type": "invalid_request_error", "code": "not_found", "message": "gone"}}),
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                         "message": "No such customer: 'cus_gone'"}}),
    ] {
        let server = retrieve_answers(ResponseTemplate::new(404).set_body_json(&body)).await;
        let got = provider(&server.uri())
            .fetch("customers", "cus_gone")
            .await
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        assert!(
            matches!(got, recon_core::Fetched::NotFound),
            "{body}: {got:?}"
        );
        assert_eq!(hits(&server).await, 1, "{body}: a 404 is not retried");
    }
}

#[tokio::test]
async fn a_404_without_a_stripe_error_body_stays_an_error() {
    // A proxy's page, an empty or non-JSON body, JSON that is not Stripe's
    // error shape: nothing says the object is gone, so nothing may be
    // tombstoned.
    for resp in [
        ResponseTemplate::new(404).set_body_raw(
            "<html><body><h1>404 Not Found</h1></body></html>",
            "text/html",
        ),
        ResponseTemplate::new(404),
        ResponseTemplate::new(404).set_body_raw("Not Found", "text/plain"),
        ResponseTemplate::new(404).set_body_json(json!({"detail": "Not Found"})),
        ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})),
        ResponseTemplate::new(404).set_body_json(json!({"error": {"type": 404}})),
    ] {
        let server = retrieve_answers(resp).await;
        let e = provider(&server.uri())
            .fetch("customers", "cus_gone")
            .await
            .expect_err("a bare 404 is not a deletion");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }
}
