//! The adapter under recon-core's engine with a real SQLite store: a sweep
//! read back through Paddle's views, webhooks applied once and never
//! backwards, and a missed notification found by replay.

use std::sync::Arc;

use recon_core::testkit::conformance::{FakeApi, Fixture};
use recon_core::{Engine, Provider, RunStatus, Store, SweepOptions, now_ms};
use recon_paddle::{PaddleProvider, SIGNATURE};
use recon_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance::{Paddle, customer, provider, time};

/// A SQLite store in a fresh file, with Paddle's views.
async fn store() -> SqliteStore {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!(
        "recon-paddle-{}-{}-{n}.db",
        std::process::id(),
        now_ms()
    ));
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let views = recon_paddle::views::VIEWS.to_vec();
    let store = SqliteStore::connect(&url).await.unwrap().with_views(views);
    store.migrate().await.unwrap();
    store
}

fn engine(store: &SqliteStore, p: PaddleProvider) -> Engine {
    let store: Arc<dyn Store> = Arc::new(store.clone());
    Engine::new(store, Arc::new(p) as Arc<dyn Provider>)
}

#[tokio::test]
async fn a_sweep_reads_back_through_the_views() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let sub = json!({"id": "sub_01a", "status": "past_due", "customer_id": "ctm_01a",
        "currency_code": "EUR", "items": [{"price": {"id": "pri_01a"}}],
        "started_at": time(1_700_000_000), "updated_at": time(1_700_000_100),
        "management_urls": {"cancel": "https://x"}});
    let mut archived = customer("ctm_01b", 1_700_000_050);
    archived["status"] = json!("archived");
    fake.with(|h| {
        h.objects.insert(
            "customers".into(),
            vec![customer("ctm_01a", 1_700_000_010), archived],
        );
        h.objects.insert("subscriptions".into(), vec![sub]);
    });
    let s = store().await;
    let e = engine(&s, provider(&fake.uri(), 10));
    for run in e.sweep_all(&SweepOptions::default()).await.unwrap() {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
    let row: (String, String, String, String, String) = sqlx::query_as(
        "SELECT id, customer_id, price_id, status, started_at FROM paddle_subscriptions",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(row.0, "sub_01a");
    assert_eq!(
        (row.1.as_str(), row.2.as_str(), row.3.as_str()),
        ("ctm_01a", "pri_01a", "past_due")
    );
    assert_eq!(row.4, time(1_700_000_000));
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM paddle_customers ORDER BY id")
            .fetch_all(s.pool())
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            ("ctm_01a".into(), "active".into()),
            ("ctm_01b".into(), "archived".into())
        ]
    );
}

/// The same sweep into Postgres: the views' typed columns (`timestamptz`).
#[tokio::test]
async fn postgres_views_type_their_times() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let sub = json!({"id": "sub_01a", "status": "active", "customer_id": "ctm_01a",
        "items": [{"price": {"id": "pri_01a"}}], "started_at": "2024-04-12T10:49:38.76Z",
        "next_billed_at": "2024-05-12T10:49:38.100000001Z", "updated_at": time(1_700_000_100)});
    fake.with(|h| drop(h.objects.insert("subscriptions".into(), vec![sub])));
    let views = recon_paddle::views::VIEWS.to_vec();
    let pg = recon_store_postgres::testing::fresh_store()
        .await
        .with_views(views);
    pg.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let e = Engine::new(
        store,
        Arc::new(provider(&fake.uri(), 10)) as Arc<dyn Provider>,
    );
    let run = e
        .sweep("subscriptions", &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let (price, started, next): (String, f64, f64) = sqlx::query_as(
        "SELECT price_id, extract(epoch FROM started_at)::float8, extract(epoch FROM next_billed_at)::float8 \
         FROM paddle_subscriptions",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(price, "pri_01a");
    assert_eq!(started, 1_712_918_978.76);
    assert!((next - 1_715_510_978.1).abs() < 1e-6, "{next}");
}

fn delivery(obj: &Value, event_id: &str) -> (recon_core::Headers, Vec<u8>) {
    let now = now_ms() / 1000;
    let body =
        json!({"event_id": event_id, "event_type": "customer.updated", "occurred_at": time(now),
        "notification_id": "ntf_01x", "data": obj})
        .to_string()
        .into_bytes();
    let mut h = recon_core::Headers::new();
    h.insert(
        "paddle-signature",
        SIGNATURE
            .sign(&Paddle.secret(0), now, &body)
            .parse()
            .unwrap(),
    );
    (h, body)
}

#[tokio::test]
async fn webhooks_apply_once_and_never_backwards() {
    let fake = FakeApi::start(Arc::new(Paddle), 0).await;
    let s = store().await;
    let e = engine(&s, provider(&fake.uri(), 10));
    let mut newer = customer("ctm_01a", 1_700_000_200);
    newer["email"] = json!("new@example.com");
    let (h, b) = delivery(&newer, "evt_01new");
    assert_eq!(e.ingest_webhook(&h, &b).await.unwrap().applied, 1);
    assert!(
        e.ingest_webhook(&h, &b).await.unwrap().duplicate,
        "a redelivery is a duplicate"
    );
    // Another destination's notification of the same event: its own
    // notification_id, signed at another time, same event_id: a duplicate.
    let mut other: Value = serde_json::from_slice(&b).unwrap();
    other["notification_id"] = json!("ntf_01otherdestination");
    let other = other.to_string().into_bytes();
    let ts = now_ms() / 1000 - 2;
    let mut h2 = recon_core::Headers::new();
    h2.insert(
        "paddle-signature",
        SIGNATURE
            .sign(&Paddle.secret(0), ts, &other)
            .parse()
            .unwrap(),
    );
    assert!(e.ingest_webhook(&h2, &other).await.unwrap().duplicate);
    // An older state arriving late is refused, whatever its event id.
    let (h, b) = delivery(&customer("ctm_01a", 1_700_000_100), "evt_01old");
    let r = e.ingest_webhook(&h, &b).await.unwrap();
    assert_eq!((r.applied, r.stale), (0, 1));
    let email: (String,) =
        sqlx::query_as("SELECT email FROM paddle_customers WHERE id = 'ctm_01a'")
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(email.0, "new@example.com");
}

/// A ULID-bodied event id for unix ms `ms`.
fn event_id(ms: i64) -> String {
    format!("evt_{}", ulid::Ulid::from_parts(ms as u64, 7)).to_lowercase()
}

#[tokio::test]
async fn replay_applies_the_notification_that_never_came() {
    let server = MockServer::start().await;
    let hour_ago = now_ms() / 1000 - 3600;
    let mut missed = customer("ctm_01a", hour_ago);
    missed["name"] = json!("Missed");
    let events = json!({"data": [
        {"event_id": event_id(hour_ago * 1000), "event_type": "customer.updated",
         "occurred_at": time(hour_ago), "data": missed},
        {"event_id": event_id(hour_ago * 1000 + 5), "event_type": "address.created",
         "occurred_at": time(hour_ago), "data": {"id": "add_01a"}}
    ], "meta": {"pagination": {"has_more": false, "per_page": 10}}});
    Mock::given(method("GET"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(events))
        .mount(&server)
        .await;
    let s = store().await;
    let e = engine(&s, provider(&server.uri(), 10));
    let since = (hour_ago - 600) * 1_000_000;
    let run = e.replay(since, &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.events_applied, 2);
    assert_eq!(
        run.counts.missed, 1,
        "the customer update was missed; the address is not mirrored"
    );
    let name: (String,) = sqlx::query_as("SELECT name FROM paddle_customers WHERE id = 'ctm_01a'")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(name.0, "Missed");
    // The replay cursor is in µs, like every Paddle version.
    let cursor = e.event_cursor().await.unwrap().unwrap();
    assert_eq!(cursor, hour_ago * 1_000_000 + 123_456);
}
