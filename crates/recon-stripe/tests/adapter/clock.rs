//! Versions come from Stripe's clock (the `Date` of the answer that carried
//! a state), not from the local one.

use recon_core::{Fetched, ListScope, Provider};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake::provider;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An HTTP date (IMF-fixdate) `skew_s` away from local time.
fn date(skew_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(skew_s))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

async fn server(date: Option<String>) -> MockServer {
    let server = MockServer::start().await;
    let with_date = |r: ResponseTemplate| match &date {
        Some(d) => r.insert_header("date", d.as_str()),
        None => r,
    };
    Mock::given(method("GET"))
        .and(path("/v1/customers"))
        .respond_with(with_date(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "has_more": false,
            "data": [{"id": "cus_1", "object": "customer", "created": 1}]
        }))))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_1"))
        .respond_with(with_date(ResponseTemplate::new(200).set_body_json(
            json!({"id": "cus_1", "object": "customer", "created": 1}),
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_gone"))
        .respond_with(with_date(ResponseTemplate::new(200).set_body_json(
            json!({"id": "cus_gone", "object": "customer", "deleted": true}),
        )))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn versions_follow_stripes_clock_either_way() {
    for skew in [-5, 5, -120, 120] {
        let server = server(Some(date(skew))).await;
        let p = provider(&server.uri());
        let page = p
            .list_page("customers", &ListScope::all(), None)
            .await
            .unwrap();
        let v = page.items[0].version;
        assert!(
            (v - (now() + skew)).abs() <= 1,
            "skew {skew}: listed at {v}"
        );
        // Once an answer showed Stripe's clock, "now" is Stripe's, never ahead.
        let vn = p.version_now();
        assert!(
            vn <= now() + skew && vn >= now() + skew - 2,
            "skew {skew}: {vn}"
        );
        match p.fetch("customers", "cus_1").await.unwrap() {
            Fetched::Found(s) => assert!((s.version - (now() + skew)).abs() <= 1, "{skew}"),
            other => panic!("{other:?}"),
        }
        match p.fetch("customers", "cus_gone").await.unwrap() {
            Fetched::Deleted(s) => assert!((s.version - (now() + skew)).abs() <= 1, "{skew}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn without_a_usable_date_versions_are_local_time() {
    // Hyper adds a real Date when the answer has none; an emulator may send
    // garbage, or a date no clock of this century is at.
    for bad in ["not a date", "Thu, 01 Jan 1970 00:00:00 GMT", ""] {
        let server = server(Some(bad.to_string())).await;
        let p = provider(&server.uri());
        let page = p
            .list_page("customers", &ListScope::all(), None)
            .await
            .unwrap();
        assert!((page.items[0].version - now()).abs() <= 1, "{bad:?}");
        assert!((p.version_now() - now()).abs() <= 1, "{bad:?}");
    }
}

#[tokio::test]
async fn only_stripes_own_answers_set_its_clock() {
    // A gateway's error page in JSON, `Date` two minutes ahead: not Stripe's
    // (its `error` has no `type`), so not Stripe's time either.
    let server = MockServer::start().await;
    let answer = |body: serde_json::Value| {
        ResponseTemplate::new(404)
            .insert_header("date", date(120).as_str())
            .set_body_json(body)
    };
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_proxy"))
        .respond_with(answer(
            json!({"error": {"code": 404, "message": "no route"}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/customers/cus_gone"))
        .respond_with(answer(json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing",
            "message": "No such customer: 'cus_gone'"
        }})))
        .mount(&server)
        .await;
    let p = provider(&server.uri());
    let e = p.fetch("customers", "cus_proxy").await.unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::NotFound, "{e}");
    assert!(
        p.version_now() < now() + 60,
        "a gateway's Date moved Stripe's clock"
    );
    // Stripe's own "no such object" does tell its time.
    assert!(matches!(
        p.fetch("customers", "cus_gone").await.unwrap(),
        Fetched::NotFound
    ));
    let vn = p.version_now();
    assert!(vn >= now() + 118 && vn <= now() + 120, "{vn}");
}
