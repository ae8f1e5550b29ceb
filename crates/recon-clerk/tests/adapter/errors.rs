//! How Clerk's failures are classified, and that core retries the temporary
//! ones (through the budget, never a loop of the adapter's own).

use recon_clerk::ApiSettings;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use recon_clerk::{ClerkConfig, ClerkProvider};
use recon_core::{ErrorKind, Fetched, ListScope, Provider};
use wiremock::ResponseTemplate;

use crate::fake::{Fake, KEY, config, provider};

fn clerk_body(code: &str) -> serde_json::Value {
    serde_json::json!({"errors": [{"message": "m", "long_message": "lm", "code": code}],
                       "clerk_trace_id": "t"})
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() {
    let fake = Fake::new();
    let server = fake.start().await;
    let ids = fake.add_users(2);
    fake.fault(
        "/v1/users",
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(clerk_body("too_many_requests")),
    );
    let p = provider(&server.uri(), 10);
    let start = Instant::now();
    let page = p.list_page("users", &ListScope::all(), None).await.unwrap();
    let waited = start.elapsed();
    assert_eq!(page.items.len(), ids.len());
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert_eq!(p.budget().stats().retries.load(Ordering::SeqCst), 1);
    assert_eq!(fake.count("/v1/users"), 2);
}

#[tokio::test]
async fn a_401_names_the_variable_and_is_not_retried() {
    let fake = Fake::new();
    let server = fake.start().await;
    let p = ClerkProvider::new(
        ClerkConfig::new("sk_test_wrong_key_value_123")
            .with_api_base(server.uri())
            .with_retry_policy(crate::fake::fast()),
    )
    .unwrap();
    let e = p
        .list_page("users", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert_eq!(e.status(), Some(401));
    let text = format!("{e} {e:?}");
    assert!(text.contains("CLERK_SECRET_KEY"), "{text}");
    assert!(!text.contains("wrong_key_value"), "{text}");
    assert_eq!(fake.log().len(), 1, "not retried");
    let e = p.fetch("users", "user_1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
}

#[tokio::test]
async fn a_404_on_a_deleted_user_means_not_found_but_a_missing_route_is_an_error() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(2);
    let p = provider(&server.uri(), 10);
    assert!(matches!(
        p.fetch("users", "user_001").await.unwrap(),
        Fetched::Found(_)
    ));
    fake.with(|d| d.remove("user_001"));
    assert!(matches!(
        p.fetch("users", "user_001").await.unwrap(),
        Fetched::NotFound
    ));

    // CLERK_API_BASE pointing somewhere that is not Clerk: every path 404s
    // without a ClerkErrors body. That must never read as "deleted".
    let wrong = provider(&format!("{}/not-clerk", server.uri()), 10);
    let e = wrong.fetch("users", "user_000").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_listing_cut_short_by_errors_is_an_error_after_retries() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(7);
    fake.break_after("/v1/users", 1);
    let p = provider(&server.uri(), 3);
    let first = p.list_page("users", &ListScope::all(), None).await.unwrap();
    assert!(first.next.is_some());
    let e = p
        .list_page("users", &ListScope::all(), first.next.as_deref())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.status(), Some(500));
    // 1 good + 1 attempt + 3 retries.
    assert_eq!(fake.count("/v1/users"), 5);
    assert_eq!(
        fake.count("/v1/users/count"),
        0,
        "an unfinished walk is never cross-checked"
    );
}

#[tokio::test]
async fn temporary_failures_are_retried_to_success() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(1);
    fake.fault("/v1/users/user_000", ResponseTemplate::new(502));
    fake.fault(
        "/v1/users/user_000",
        ResponseTemplate::new(503).set_body_json(clerk_body("x")),
    );
    let p = provider(&server.uri(), 10);
    assert!(matches!(
        p.fetch("users", "user_000").await.unwrap(),
        Fetched::Found(_)
    ));
    assert_eq!(p.budget().stats().retries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn malformed_answers_and_refusals_are_invalid_input() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(1);
    let p = provider(&server.uri(), 10);

    fake.fault(
        "/v1/users",
        ResponseTemplate::new(200).set_body_string("{not json"),
    );
    let e = p
        .list_page("users", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("malformed JSON"), "{e}");

    fake.fault(
        "/v1/users",
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"data": []})),
    );
    let e = p
        .list_page("users", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert!(e.message().contains("JSON array"), "{e}");

    fake.fault(
        "/v1/organizations",
        ResponseTemplate::new(200).set_body_json(serde_json::json!([])),
    );
    let e = p
        .list_page("organizations", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    fake.fault(
        "/v1/users",
        ResponseTemplate::new(422).set_body_json(clerk_body("form_param_value_invalid")),
    );
    let e = p
        .list_page("users", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("form_param_value_invalid"), "{e}");

    fake.fault(
        "/v1/users",
        ResponseTemplate::new(403).set_body_json(clerk_body("authorization_invalid")),
    );
    let e = p
        .list_page("users", &ListScope::all(), None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    // None of these were retried.
    assert_eq!(p.budget().stats().retries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn slow_answers_time_out_and_unreachable_servers_are_unavailable() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(1);
    for _ in 0..4 {
        fake.fault(
            "/v1/users/user_000",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
        );
    }
    let p = ClerkProvider::new(
        config(&server.uri(), 10).with_request_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let e = p.fetch("users", "user_000").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);

    let p = ClerkProvider::new(
        ClerkConfig::new(KEY)
            .with_api_base("http://127.0.0.1:9")
            .with_retry_policy(crate::fake::fast()),
    )
    .unwrap();
    let e = p.fetch("users", "user_000").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("cannot reach Clerk"), "{e}");
}

#[tokio::test]
async fn there_is_no_event_log() {
    let fake = Fake::new();
    let server = fake.start().await;
    let p = provider(&server.uri(), 10);
    assert!(!p.capabilities().event_log);
    let e = p.events_page(0, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(fake.log().is_empty());
}
