//! Replay's reading of `GET /events`: seeking by the time in ULID ids,
//! oldest first across pages, and refusing to seek when ids stop carrying
//! their time.

use std::sync::{Arc, Mutex};

use recon_core::{ErrorKind, Provider};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::conformance::{customer, provider, time};

/// A ULID-bodied event id for unix ms `ms` (the test's own encoder).
fn ulid(ms: i64, n: u32) -> String {
    const A: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let t: String = (0..10)
        .rev()
        .map(|i| A[((ms >> (5 * i)) & 31) as usize] as char)
        .collect();
    format!("evt_{t}{n:016}")
}

fn event(id: &str, occurred_s: i64) -> Value {
    json!({"event_id": id, "event_type": "customer.updated", "occurred_at": time(occurred_s),
           "data": customer(&format!("ctm_{}", id[4..].chars().take(12).collect::<String>()), occurred_s)})
}

/// A fake event log answering `after`, `order_by=id[ASC]`, `per_page`, and
/// recording each `after` it was asked for.
async fn log(events: Vec<Value>) -> (MockServer, Arc<Mutex<Vec<String>>>) {
    let server = MockServer::start().await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    Mock::given(method("GET"))
        .and(path("/events"))
        .respond_with(move |req: &Request| {
            let q: std::collections::HashMap<String, String> =
                req.url.query_pairs().into_owned().collect();
            assert_eq!(q.get("order_by").map(String::as_str), Some("id[ASC]"));
            let after = q.get("after").cloned().unwrap_or_default();
            seen.lock().unwrap().push(after.clone());
            let per: usize = q["per_page"].parse().unwrap();
            let rest: Vec<&Value> = events
                .iter()
                .filter(|e| e["event_id"].as_str().unwrap() > after.as_str())
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({
                "data": rest.iter().take(per).collect::<Vec<_>>(),
                "meta": {"pagination": {"has_more": rest.len() > per, "per_page": per}}
            }))
        })
        .mount(&server)
        .await;
    (server, asked)
}

#[tokio::test]
async fn replay_seeks_to_since_and_reads_oldest_first() {
    let t0 = recon_core::now_ms() / 1000 - 2 * 86_400;
    // One event an hour for a day; replay from hour 20 (in µs).
    let evs: Vec<Value> = (0..24)
        .map(|h| event(&ulid((t0 + h * 3600) * 1000 + 7, h as u32), t0 + h * 3600))
        .collect();
    let (server, asked) = log(evs).await;
    let p = provider(&server.uri(), 2);
    let since = (t0 + 20 * 3600) * 1_000_000;
    let (mut got, mut cursor) = (Vec::new(), None);
    loop {
        let page = p.events_page(since, cursor.as_deref()).await.unwrap();
        got.extend(page.events);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let hours: Vec<i64> = got
        .iter()
        .map(|e| (e.created / 1_000_000 - t0) / 3600)
        .collect();
    assert_eq!(hours, [20, 21, 22, 23]);
    assert!(got.iter().all(|e| e.snapshots.len() == 1));
    // The first request seeks five minutes before `since`, not to the start.
    let first = asked.lock().unwrap()[0].clone();
    assert_eq!(first, ulid((t0 + 20 * 3600 - 300) * 1000, 0));
    assert_eq!(asked.lock().unwrap().len(), 2, "two pages of two");
}

#[tokio::test]
async fn ids_that_do_not_carry_their_time_stop_replay() {
    let t0 = recon_core::now_ms() / 1000 - 86_400;
    // The id says an hour later than the event happened.
    let evs = vec![event(&ulid((t0 + 3600) * 1000, 1), t0)];
    let (server, _) = log(evs).await;
    let p = provider(&server.uri(), 10);
    let e = p
        .events_page((t0 - 60) * 1_000_000, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not carry its time"), "{e}");
    let evs = vec![event("evt_notaulid", t0)];
    let (server, _) = log(evs).await;
    let p = provider(&server.uri(), 10);
    assert!(p.events_page((t0 - 60) * 1_000_000, None).await.is_err());
}

#[tokio::test]
async fn the_event_log_reaches_back_ninety_days() {
    let p = provider("http://127.0.0.1:9", 10);
    let caps = p.capabilities();
    assert!(caps.event_log);
    assert_eq!(caps.event_horizon, Some(90 * 86_400 * 1_000_000));
    assert_eq!(p.version_units_per_second(), 1_000_000);
    let e = p.owned_by("ctm_01a").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn the_seek_stays_inside_the_ninety_days() {
    let (server, asked) = log(Vec::new()).await;
    let p = provider(&server.uri(), 10);
    let day = 86_400 * 1_000_000;
    let edge_ms = (p.version_now() - 90 * day) / 1000;
    let since = (edge_ms + 200_000) * 1000;
    let page = p.events_page(since, None).await.unwrap();
    assert!(page.events.is_empty() && page.next.is_none());
    let first = asked.lock().unwrap()[0].clone();
    // Not five minutes before `since` (beyond what Paddle keeps): a minute
    // inside the horizon.
    let seek_ms = ulid::Ulid::from_string(&first[4..]).unwrap().timestamp_ms() as i64;
    assert!((seek_ms - (edge_ms + 60_000)).abs() < 2_000, "{first}");
}

/// At the engine's own lower bound (its clock, which lags until Paddle has
/// answered), the seek never starts after `since`: events there are read.
#[tokio::test]
async fn the_seek_never_starts_after_since() {
    let (server, asked) = log(Vec::new()).await;
    let p = provider(&server.uri(), 10);
    let since = p.version_now() - 90 * 86_400 * 1_000_000;
    p.events_page(since, None).await.unwrap();
    let first = asked.lock().unwrap()[0].clone();
    let seek_ms = ulid::Ulid::from_string(&first[4..]).unwrap().timestamp_ms() as i64;
    assert!(seek_ms * 1000 <= since, "{first} seeks after {since}");
}
