//! The truth equals what the APIs list, and is reproducible from the seed.

use std::collections::BTreeMap;

use recon_sim::{Provider, Sim, TruthObject};
use serde_json::Value;

use crate::common::*;

fn by_id(list: Vec<Value>) -> BTreeMap<String, Value> {
    list.into_iter()
        .map(|o| (o["id"].as_str().unwrap().to_string(), o))
        .collect()
}

fn live(t: &recon_sim::Truth, p: Provider, kind: &str) -> BTreeMap<String, Value> {
    t.kind(p, kind)
        .iter()
        .filter_map(|(id, o)| o.live().map(|v| (id.clone(), v.clone())))
        .collect()
}

#[tokio::test]
async fn truth_matches_the_api() {
    let s = sim(51, 150, 200, 800).await;
    let http = client();
    let truth = s.truth();
    for (kind, extra) in [
        ("customers", ""),
        ("subscriptions", "&status=all"),
        ("invoices", ""),
        ("prices", ""),
        ("products", ""),
    ] {
        let listed = by_id(stripe_all(&s, &http, &format!("/v1/{kind}"), extra, 100).await);
        let want: BTreeMap<String, Value> = live(&truth, Provider::Stripe, kind)
            .into_iter()
            .filter(|(_, v)| v.get("deleted").is_none())
            .collect();
        assert_eq!(listed, want, "{kind}");
    }
    let mut users = Vec::new();
    loop {
        let (_, v) = clerk(
            &s,
            &http,
            &format!("/v1/users?limit=100&offset={}", users.len()),
        )
        .await;
        let page = v.as_array().unwrap().clone();
        let n = page.len();
        users.extend(page);
        if n < 100 {
            break;
        }
    }
    assert_eq!(by_id(users), live(&truth, Provider::Clerk, "users"));
    for (kind, path) in [
        ("organizations", "/v1/organizations"),
        ("organization_memberships", "/v1/organization_memberships"),
    ] {
        let (list, _) = clerk_all(&s, &http, path, 100).await;
        assert_eq!(by_id(list), live(&truth, Provider::Clerk, kind), "{kind}");
    }
    // Deleted objects: Stripe stubs, Clerk 404s.
    for (id, o) in truth.kind(Provider::Clerk, "users") {
        if *o == TruthObject::Deleted {
            assert_eq!(clerk(&s, &http, &format!("/v1/users/{id}")).await.0, 404);
        }
    }
    assert!(truth.total_live() > 500);
    s.shutdown().await;
}

#[tokio::test]
async fn reproducible_from_the_seed() {
    let a = sim(52, 80, 80, 400).await;
    let b = sim(52, 80, 80, 400).await;
    assert_eq!(a.truth(), b.truth());
    assert_eq!(a.take_outbox(), b.take_outbox());
    let c = sim(53, 80, 80, 400).await;
    assert_ne!(a.truth(), c.truth());
    // The mutation mix is the same whether or not the clock is pinned.
    let wall = Sim::start(recon_sim::SimConfig::with_seed(52))
        .await
        .unwrap();
    wall.seed_initial(80, 80);
    let r1 = wall.mutate(400);
    let pinned = sim(52, 80, 80, 0).await;
    let r2 = pinned.mutate(400);
    assert_eq!(r1, r2);
    for s in [a, b, c, wall, pinned] {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn wall_clock_versions_are_near_now() {
    let s = Sim::start(recon_sim::SimConfig::with_seed(54))
        .await
        .unwrap();
    s.seed_initial(20, 20);
    s.mutate(1_000);
    let now = chrono::Utc::now().timestamp();
    for w in s.take_outbox() {
        let v: Value = serde_json::from_str(&w.body).unwrap();
        let t = match w.provider {
            Provider::Stripe => v["created"].as_i64().unwrap(),
            Provider::Clerk => v["timestamp"].as_i64().unwrap() / 1000,
        };
        assert!((t - now).abs() < 60, "{} at {t}, now {now}", w.event_type);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn background_mutator_runs_and_stops() {
    let s = sim(55, 30, 30, 0).await;
    let http = client();
    s.start_mutator(2_000.0);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The API keeps answering while mutations run.
    let (st, _) = stripe(&s, &http, "/v1/customers?limit=100").await;
    assert_eq!(st, 200);
    s.stop_mutator();
    let n = s.stripe_event_count();
    assert!(n > 50, "{n} events");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(s.stripe_event_count(), n, "stopped");
    s.shutdown().await;
}
