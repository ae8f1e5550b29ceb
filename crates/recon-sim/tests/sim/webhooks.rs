//! Webhook delivery to a local receiver that verifies signatures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use recon_sim::{DeliveryFaults, Provider, SimHandle, WebhookTargets, sign};
use serde_json::Value;

use crate::common::*;

#[derive(Clone)]
struct Rx {
    stripe_secret: String,
    clerk_secret: String,
    got: Arc<Mutex<Vec<String>>>,
    rejected: Arc<Mutex<u64>>,
    fail_clerk: Arc<AtomicBool>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Verify like recon: any `v1` matches, timestamp within 300 s.
fn stripe_ok(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let want = sign::stripe_signature(secret, t, body);
    now() - t <= 300 && v1.contains(&want)
}

fn clerk_ok(secret: &str, h: &HeaderMap, body: &[u8]) -> bool {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (id, ts) = (
        get("svix-id"),
        get("svix-timestamp").parse::<i64>().unwrap_or(0),
    );
    let want = sign::svix(secret, id, ts, body).unwrap();
    (now() - ts).abs() <= 300 && get("svix-signature").split(' ').any(|s| s == want)
}

async fn stripe_hook(State(rx): State<Rx>, h: HeaderMap, body: Bytes) -> StatusCode {
    let sig = h
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !stripe_ok(&rx.stripe_secret, sig, &body) {
        *rx.rejected.lock().unwrap() += 1;
        return StatusCode::BAD_REQUEST;
    }
    let v: Value = serde_json::from_slice(&body).unwrap();
    rx.got
        .lock()
        .unwrap()
        .push(v["id"].as_str().unwrap().to_string());
    StatusCode::OK
}

async fn clerk_hook(State(rx): State<Rx>, h: HeaderMap, body: Bytes) -> StatusCode {
    if rx.fail_clerk.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if !clerk_ok(&rx.clerk_secret, &h, &body) {
        *rx.rejected.lock().unwrap() += 1;
        return StatusCode::BAD_REQUEST;
    }
    let id = h["svix-id"].to_str().unwrap().to_string();
    rx.got.lock().unwrap().push(id);
    StatusCode::NO_CONTENT
}

async fn receiver(s: &SimHandle) -> (Rx, WebhookTargets) {
    let targets0 = s.webhook_targets(None, None);
    let rx = Rx {
        stripe_secret: targets0.stripe_secret.clone(),
        clerk_secret: targets0.clerk_secret.clone(),
        got: Default::default(),
        rejected: Default::default(),
        fail_clerk: Default::default(),
    };
    let app = Router::new()
        .route("/stripe", post(stripe_hook))
        .route("/clerk", post(clerk_hook))
        .with_state(rx.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let targets = s.webhook_targets(
        Some(format!("http://{addr}/stripe")),
        Some(format!("http://{addr}/clerk")),
    );
    (rx, targets)
}

fn faults() -> DeliveryFaults {
    DeliveryFaults {
        drop: 0.2,
        duplicate: 0.1,
        reorder_window: 8,
        delayed: 0.05,
        stale_timestamp: 0.05,
        extra_signature: 0.2,
        max_attempts: 2,
        ..DeliveryFaults::default()
    }
}

async fn run(seed: u64) -> (recon_sim::DeliveryReport, Vec<String>, u64, Vec<String>) {
    let s = sim(seed, 50, 50, 500).await;
    let outbox_ids: Vec<String> = {
        // Peek at the planned messages without sending: a twin simulator.
        let twin = sim(seed, 50, 50, 500).await;
        let ids = twin.take_outbox().into_iter().map(|w| w.id).collect();
        twin.shutdown().await;
        ids
    };
    let (rx, targets) = receiver(&s).await;
    let report = s.deliver(&targets, &faults()).await;
    let got = rx.got.lock().unwrap().clone();
    let rejected = *rx.rejected.lock().unwrap();
    s.shutdown().await;
    (report, got, rejected, outbox_ids)
}

#[tokio::test]
async fn delivery_faults_match_shares_and_reproduce() {
    let (r, got, rejected, outbox) = run(31).await;
    let n = r.taken as f64;
    assert_eq!(r.taken as usize, outbox.len());
    assert!(n > 1_500.0, "{n} messages");
    let dropped = r.dropped.len() as f64;
    assert!((dropped / n - 0.2).abs() < 0.04, "dropped {dropped} of {n}");
    let kept = n - dropped;
    assert!(
        (r.duplicated as f64 / kept - 0.1).abs() < 0.03,
        "duplicated {}",
        r.duplicated
    );
    assert!(
        (r.delayed as f64 / kept - 0.05).abs() < 0.03,
        "delayed {}",
        r.delayed
    );
    // Every copy arrived (stale first attempts were refused, then retried).
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(got.len() as u64, kept as u64 + r.duplicated);
    assert_eq!(r.delivered, got.len() as u64);
    assert_eq!(rejected, r.stale);
    assert_eq!(r.statuses.get(&400).copied().unwrap_or(0), r.stale);
    assert_eq!(
        got, r.order,
        "sequential delivery arrives in the planned order"
    );
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len() as f64, kept);
    let dropped_set: HashSet<&String> = r.dropped.iter().collect();
    assert!(
        outbox
            .iter()
            .all(|id| unique.contains(id) != dropped_set.contains(id))
    );
    assert_ne!(
        got.iter()
            .filter(|g| !dropped_set.contains(g))
            .collect::<Vec<_>>(),
        outbox
            .iter()
            .filter(|g| !dropped_set.contains(g))
            .collect::<Vec<_>>(),
        "reordered"
    );
    // The same seed gives the same plan, the same ids, the same order.
    let (r2, got2, _, _) = run(31).await;
    assert_eq!(
        (r2.dropped, r2.order, r2.duplicated),
        (r.dropped, r.order, r.duplicated)
    );
    assert_eq!(got2, got);
}

#[tokio::test]
async fn outbox_as_data_verifies() {
    let s = sim(33, 10, 10, 40).await;
    let targets = s.webhook_targets(None, None);
    let out = s.take_outbox();
    assert!(!out.is_empty());
    assert_eq!(s.outbox_len(), 0);
    let t = now();
    for w in &out {
        match w.provider {
            Provider::Stripe => {
                let h = w.headers(&targets.stripe_secret, t).unwrap();
                let sig = &h.iter().find(|(k, _)| k == "stripe-signature").unwrap().1;
                assert!(stripe_ok(&targets.stripe_secret, sig, w.body.as_bytes()));
                let v: Value = serde_json::from_str(&w.body).unwrap();
                assert_eq!(v["id"].as_str(), Some(w.id.as_str()));
                assert_eq!(v["type"].as_str(), Some(w.event_type.as_str()));
            }
            Provider::Clerk => {
                let h: HeaderMap = w
                    .headers(&targets.clerk_secret, t)
                    .unwrap()
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                    .collect();
                assert!(clerk_ok(&targets.clerk_secret, &h, w.body.as_bytes()));
                assert!(!clerk_ok(
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    &h,
                    w.body.as_bytes()
                ));
            }
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn failures_requeue_and_pending_webhooks_follow_delivery() {
    let s = sim(34, 20, 20, 60).await;
    let http = client();
    let (rx, targets) = receiver(&s).await;
    rx.fail_clerk.store(true, Ordering::SeqCst);
    let out_before = s.outbox_len();
    let r = s
        .deliver(
            &targets,
            &DeliveryFaults {
                drop: 0.3,
                ..DeliveryFaults::default()
            },
        )
        .await;
    let clerk_failed = r
        .failed
        .iter()
        .filter(|f| f.provider == Provider::Clerk)
        .count();
    assert!(clerk_failed > 0);
    assert!(
        r.failed
            .iter()
            .all(|f| f.provider == Provider::Clerk && f.status == Some(503))
    );
    assert_eq!(r.requeued as usize, clerk_failed);
    assert_eq!(s.outbox_len(), clerk_failed);
    assert_eq!(r.taken as usize, out_before);
    // Dropped Stripe events stay pending; delivered ones do not.
    let pending = stripe_all(&s, &http, "/v1/events", "&delivery_success=false", 100).await;
    let dropped: HashSet<String> = r
        .dropped
        .iter()
        .filter(|d| d.starts_with("evt_"))
        .cloned()
        .collect();
    let pending_ids: HashSet<String> = pending
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pending_ids, dropped);
    let done = stripe_all(&s, &http, "/v1/events", "&delivery_success=true", 100).await;
    assert!(done.iter().all(|e| e["pending_webhooks"] == 0));
    // The receiver recovers: the requeued messages go through.
    rx.fail_clerk.store(false, Ordering::SeqCst);
    let r2 = s.deliver(&targets, &DeliveryFaults::default()).await;
    assert_eq!(r2.delivered as usize, clerk_failed);
    assert_eq!(s.outbox_len(), 0);
    // Only-Stripe targets leave Clerk messages waiting.
    s.mutate(20);
    let only_stripe = WebhookTargets {
        clerk_url: None,
        ..targets.clone()
    };
    let r3 = s.deliver(&only_stripe, &DeliveryFaults::default()).await;
    assert!(s.outbox_len() > 0);
    assert!(r3.order.iter().all(|id| id.starts_with("evt_")));
    s.shutdown().await;
}
