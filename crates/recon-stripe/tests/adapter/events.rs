//! Event replay: oldest first, every event once, `types[]` split by 20.

use recon_core::{ErrorKind, Provider, ProviderEvent};
use serde_json::json;

use crate::fake::{Fake, config, provider};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

const TYPES: [&str; 5] = [
    "customer.updated",
    "customer.subscription.updated",
    "invoice.paid",
    "payment_intent.succeeded",
    "product.deleted",
];

fn event(fake: &Fake, n: usize, created: i64, ty: &str) {
    let obj = match ty.split('.').next().unwrap() {
        "customer" if ty.starts_with("customer.subscription") => {
            json!({"id": format!("sub_{n}"), "object": "subscription", "status": "active", "customer": "cus_1"})
        }
        "customer" => json!({"id": format!("cus_{n}"), "object": "customer"}),
        "invoice" => json!({"id": format!("in_{n}"), "object": "invoice", "status": "paid"}),
        "product" => json!({"id": format!("prod_{n}"), "object": "product"}),
        _ => json!({"id": format!("pi_{n}"), "object": "payment_intent"}),
    };
    fake.add(
        "events",
        json!({"id": format!("evt_{n:06}"), "object": "event", "type": ty, "created": created,
               "data": {"object": obj}}),
    );
}

/// Events over the last ~2 days: a sparse stretch, a dense hour, and one
/// second holding 150 events (more than a page).
fn population(fake: &Fake, types: &[&str]) -> i64 {
    let t0 = now() - 2 * 86_400;
    let mut n = 0;
    let mut add = |created: i64| {
        event(fake, n, created, types[n % types.len()]);
        n += 1;
    };
    for i in 0..40 {
        add(t0 + i * 3_000);
    }
    for i in 0..400 {
        add(t0 + 150_000 + i * 9);
    }
    for _ in 0..150 {
        add(t0 + 160_000);
    }
    for i in 0..30 {
        add(now() - 100 + i);
    }
    t0
}

async fn replay(p: &dyn Provider, since: i64) -> (Vec<ProviderEvent>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = p.events_page(since, cursor.as_deref()).await.unwrap();
        pages += 1;
        assert!(pages < 1_000, "replay does not end");
        out.extend(page.events);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return (out, pages),
        }
    }
}

fn check(events: &[ProviderEvent], want: &std::collections::BTreeSet<String>) {
    for w in events.windows(2) {
        assert!(
            w[0].created <= w[1].created,
            "{} after {}",
            w[1].event_id,
            w[0].event_id
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in events {
        assert!(seen.insert(e.event_id.clone()), "{} twice", e.event_id);
    }
    assert_eq!(&seen, want);
}

fn expected(
    fake: &Fake,
    since: i64,
    types: Option<&[String]>,
) -> std::collections::BTreeSet<String> {
    let st = fake.state.lock().unwrap();
    st.objects["events"]
        .iter()
        .filter(|e| e["created"].as_i64().unwrap() >= since)
        .filter(|e| types.is_none_or(|t| t.iter().any(|t| e["type"] == t.as_str())))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn replay_is_oldest_first_and_complete() {
    for oldest_first in [false, true] {
        let fake = Fake::new();
        fake.set_oldest_first(oldest_first);
        let t0 = population(&fake, &TYPES);
        let server = fake.start().await;
        let p = provider(&server.uri());
        for since in [
            t0,
            t0 + 1,
            t0 + 150_000 + 9 * 200,
            t0 + 160_000,
            now() - 50,
            now() + 10,
        ] {
            let (events, _) = replay(&p, since).await;
            check(&events, &expected(&fake, since, None));
        }
        let (events, pages) = replay(&p, t0).await;
        assert!(pages >= 6, "{pages} pages for {} events", events.len());
        // Mapping applied on the way: versions are the events' seconds.
        for e in &events {
            for s in &e.snapshots {
                assert_eq!(s.version, e.created);
            }
            if e.event_type == "payment_intent.succeeded" {
                assert!(e.snapshots.is_empty());
            }
            if e.event_type == "product.deleted" {
                assert!(e.snapshots[0].deleted);
            }
        }
    }
}

#[tokio::test]
async fn more_than_twenty_types_are_split_and_merged() {
    let fake = Fake::new();
    let types: Vec<String> = (0..27).map(|i| format!("kind{i}.updated")).collect();
    let refs: Vec<&str> = types.iter().map(String::as_str).collect();
    let t0 = population(&fake, &refs);
    // Ask for 23 of the 27 types: two requests per page (20 + 3).
    let wanted: Vec<String> = types[2..25].to_vec();
    let server = fake.start().await;
    let p =
        recon_stripe::StripeProvider::new(config(&server.uri()).with_event_types(wanted.clone()))
            .unwrap();
    let (events, _) = replay(&p, t0).await;
    check(&events, &expected(&fake, t0, Some(&wanted)));
    let log = fake.log.lock().unwrap();
    let event_requests: Vec<&String> = log.iter().filter(|l| l.starts_with("/v1/events")).collect();
    assert!(!event_requests.is_empty());
    for l in event_requests {
        let n = l.matches("types%5B%5D=").count() + l.matches("types[]=").count();
        assert!(n == 20 || n == 3, "{n} types in {l}");
    }
}

#[tokio::test]
async fn an_empty_log_ends_at_once() {
    let fake = Fake::new();
    fake.add("events", json!({"id": "evt_old", "object": "event", "type": "customer.created", "created": now() - 1000,
                              "data": {"object": {"id": "cus_1", "object": "customer"}}}));
    let server = fake.start().await;
    let p = provider(&server.uri());
    let page = p.events_page(now() - 10, None).await.unwrap();
    assert!(page.events.is_empty() && page.next.is_none());
}

#[tokio::test]
async fn replay_beyond_thirty_days_says_so() {
    let p = provider("http://127.0.0.1:9");
    let e = p.events_page(now() - 31 * 86_400, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("30 days"), "{e}");
    let e = p.events_page(now(), Some("nonsense")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
