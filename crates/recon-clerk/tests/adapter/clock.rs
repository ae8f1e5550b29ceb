//! Versions recon gives (tombstones, objects without timestamps) come from
//! Clerk's clock, the `Date` of its answers, in Clerk's unit (ms).

use recon_core::{Fetched, Provider, now_ms};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fake::provider;

#[tokio::test]
async fn versions_recon_assigns_follow_clerks_clock() {
    for skew_s in [-5i64, 5] {
        let d = std::time::Duration::from_secs(skew_s.unsigned_abs());
        let t = if skew_s > 0 {
            std::time::SystemTime::now() + d
        } else {
            std::time::SystemTime::now() - d
        };
        let date = httpdate::fmt_http_date(t);
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/users/user_bare"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("date", date.as_str())
                    .set_body_json(json!({"id": "user_bare", "object": "user"})),
            )
            .mount(&server)
            .await;
        let p = provider(&server.uri(), 10);
        let Fetched::Found(s) = p.fetch("users", "user_bare").await.unwrap() else {
            panic!("not found")
        };
        let clerk_now = now_ms() + skew_s * 1000;
        // The Date has whole seconds: Clerk's time, at most a second (and a
        // round trip) behind it, never ahead.
        assert!(
            s.version <= clerk_now && s.version >= clerk_now - 1_500,
            "skew {skew_s}: {} vs {clerk_now}",
            s.version
        );
        let v = p.version_now();
        assert!(v <= now_ms() + skew_s * 1000 && v >= now_ms() + skew_s * 1000 - 1_500);
    }
}
