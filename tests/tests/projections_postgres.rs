//! The app's own tables against the Postgres store (one fresh schema per
//! test), and the change feed's `NOTIFY`.

use std::sync::Arc;
use std::time::Duration;

use recon_core::project::{AppSync, ChangeRow};
use recon_core::testkit::fake::TestProvider;
use recon_core::{Engine, Provider, Source, Store};
use serde_json::json;

recon_tests::projection_tests!(recon_tests::projections::pg);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touched_race_still_projects() {
    recon_tests::projections::touched_race_still_projects(recon_tests::projections::pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_to_one_app_row() {
    recon_tests::projections::concurrent_changes_to_one_app_row(recon_tests::projections::pg).await;
}

/// Each change recon makes is announced on `recon_changes` with its
/// sequence number, after commit; a duplicate delivery announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_once_per_change() {
    let sync = AppSync {
        feed: true,
        ..AppSync::default()
    };
    // A database of its own: notifications are per database, and other
    // tests' stores write changes at the same time.
    let admin_url = recon_store_postgres::testing::test_database_url();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("these tests need Postgres (TEST_DATABASE_URL)");
    let name = format!(
        "recon_notify_{}_{}",
        std::process::id(),
        recon_core::now_ms()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    let url = format!("{base}/{name}");
    let store = recon_store_postgres::PgStore::connect_with(&url, "recon", 4)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store.with_app_sync(Arc::new(sync)));
    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    listener.listen("recon_changes").await.unwrap();
    let p = Arc::new(TestProvider::new(10));
    let provider: Arc<dyn Provider> = p.clone();
    let e = Engine::new(store.clone(), provider);
    let a = p.put("parents", "p_1", json!({"name": "a"}));
    let b = p.put("parents", "p_1", json!({"name": "b"}));
    e.ingest_event(a.clone(), Source::Webhook).await.unwrap();
    e.ingest_event(b.clone(), Source::Webhook).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification per change")
            .unwrap();
        got.push(
            n.payload()
                .parse::<i64>()
                .expect("payload is the sequence number"),
        );
    }
    let feed: Vec<ChangeRow> = store.changes(0, 100).await.unwrap();
    let seqs: Vec<i64> = feed.iter().map(|c| c.seq).collect();
    assert_eq!(got, seqs, "{feed:?}");
    assert_eq!(feed[1].before, Some(json!({"name": "a"})));
    assert_eq!(feed[1].after, Some(json!({"name": "b"})));
    assert_eq!(feed[1].cause, "webhook");
    // Duplicates: nothing appended, nothing announced.
    e.ingest_event(a, Source::Webhook).await.unwrap();
    e.ingest_event(b, Source::Webhook).await.unwrap();
    assert_eq!(store.changes(0, 100).await.unwrap().len(), 2);
    let extra = tokio::time::timeout(Duration::from_millis(1500), listener.recv()).await;
    assert!(extra.is_err(), "a duplicate was announced: {extra:?}");
    // A change after them is announced with the next number.
    e.ingest_event(
        p.put("parents", "p_1", json!({"name": "c"})),
        Source::Webhook,
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("the next change is announced")
        .unwrap();
    assert_eq!(n.payload().parse::<i64>().unwrap(), seqs[1] + 1);
    // The database is this test's own: leave nothing behind.
    drop((listener, e, store));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
