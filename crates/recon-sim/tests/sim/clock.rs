//! The clock-skew knob: every timestamp the simulator gives out (events,
//! objects, webhook signatures, the `Date` of its answers) is off the wall
//! clock by the skew.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use recon_sim::{DeliveryFaults, Sim, SimConfig};

use crate::common::*;

fn wall_s() -> i64 {
    chrono::Utc::now().timestamp()
}

fn date_s(h: &reqwest::header::HeaderMap) -> i64 {
    let d = h["date"].to_str().unwrap();
    chrono::DateTime::parse_from_rfc2822(d)
        .unwrap_or_else(|e| panic!("{d:?}: {e}"))
        .timestamp()
}

/// Collects the signature timestamps of every webhook it receives.
async fn stamp_receiver() -> (Arc<Mutex<Vec<i64>>>, String) {
    async fn hook(State(got): State<Arc<Mutex<Vec<i64>>>>, h: HeaderMap) -> StatusCode {
        let t = if let Some(sig) = h.get("stripe-signature") {
            let sig = sig.to_str().unwrap();
            sig.split(',')
                .find_map(|p| p.strip_prefix("t="))
                .unwrap()
                .parse()
                .unwrap()
        } else {
            h["svix-timestamp"].to_str().unwrap().parse().unwrap()
        };
        got.lock().unwrap().push(t);
        StatusCode::OK
    }
    let got: Arc<Mutex<Vec<i64>>> = Arc::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(got.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (got, format!("http://{addr}/hook"))
}

#[tokio::test]
async fn a_skewed_clock_moves_every_timestamp() {
    let http = client();
    for skew_s in [-5i64, 5] {
        let s = Sim::start(SimConfig {
            clock_skew_ms: skew_s * 1000,
            ..SimConfig::with_seed(3)
        })
        .await
        .unwrap();
        s.seed_initial(5, 5);
        s.mutate(30);
        let near = |t: i64, what: &str| {
            let want = wall_s() + skew_s;
            assert!(
                (want - 2..=want + 1).contains(&t),
                "skew {skew_s}: {what} at {t}, want about {want}"
            );
        };
        near(s.now_ms() / 1000, "the simulated now");

        let (st, h, body) = get_raw(
            &http,
            &format!("{}/v1/events?limit=100", s.stripe_base()),
            Some(s.stripe_key()),
        )
        .await;
        assert_eq!(st, 200);
        near(date_s(&h), "the Stripe Date header");
        let events: serde_json::Value = serde_json::from_str(&body).unwrap();
        let created: Vec<i64> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["created"].as_i64().unwrap())
            .collect();
        assert!(!created.is_empty());
        near(*created.iter().max().unwrap(), "the newest event");
        near(*created.iter().min().unwrap(), "the oldest event");

        let (st, h, body) = get_raw(
            &http,
            &format!("{}/v1/users?limit=100&order_by=-updated_at", s.clerk_base()),
            Some(s.clerk_key()),
        )
        .await;
        assert_eq!(st, 200);
        near(date_s(&h), "the Clerk Date header");
        let users: serde_json::Value = serde_json::from_str(&body).unwrap();
        near(
            users[0]["updated_at"].as_i64().unwrap() / 1000,
            "the last updated user",
        );

        let (got, url) = stamp_receiver().await;
        let r = s
            .deliver(
                &s.webhook_targets(Some(url.clone()), Some(url)),
                &DeliveryFaults::default(),
            )
            .await;
        assert!(r.delivered > 0 && r.failed.is_empty(), "{r:?}");
        for t in got.lock().unwrap().iter() {
            near(*t, "a webhook signature");
        }
        s.shutdown().await;
    }
}

#[tokio::test]
async fn the_skew_can_change_while_running() {
    let s = Sim::start(SimConfig::with_seed(4)).await.unwrap();
    assert!((s.now_ms() / 1000 - wall_s()).abs() <= 1);
    s.set_clock_skew(7_000);
    let d = s.now_ms() / 1000 - wall_s();
    assert!((6..=7).contains(&d), "{d}");
    s.shutdown().await;
}
