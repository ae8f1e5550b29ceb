//! The store conformance suite against real SQLite files, one per test,
//! plus what is particular to SQLite: URLs, readiness, the typed views.

use std::sync::Arc;

use recon_core::commit::{Batch, Change, commit};
use recon_core::store::Guard;
use recon_core::types::{ObjectKey, Snapshot};
use recon_core::{ErrorKind, Store};
use recon_store_sqlite::SqliteStore;
use recon_store_sqlite::testing::temp_db_path;
use serde_json::json;
use sqlx::Row;

/// A fresh store with the typed views of the providers this project ships
/// (the suite's projections and checks read them).
async fn fresh_store() -> SqliteStore {
    let views: Vec<recon_core::store::View> = recon_stripe::views::VIEWS
        .iter()
        .chain(recon_clerk::views::VIEWS)
        .copied()
        .collect();
    let s = recon_store_sqlite::testing::fresh_store()
        .await
        .with_views(views.clone());
    s.install_views(&views).await.expect("install the views");
    s
}

async fn make() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

recon_core::store_conformance_tests!(make);

/// The app's tables live in the store's file; the app's SQL runs on the
/// store's reader pool (each statement its own transaction).
async fn make_app() -> recon_core::testkit::store_suite::AppDb {
    let store = fresh_store().await;
    let pool = store.pool().clone();
    let with = store.clone();
    recon_core::testkit::store_suite::AppDb {
        store: Arc::new(store),
        with_sync: Arc::new(move |sync| Arc::new(with.clone().with_app_sync(sync))),
        exec: Arc::new(move |sql| {
            let pool = pool.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        }),
        schema_prefix: "main.",
    }
}

recon_core::store_app_tests!(make_app);

#[tokio::test]
async fn bad_url_is_a_config_error_without_the_url() {
    for url in [
        "postgres://user:hunter2@db/app",
        "not a url hunter2",
        "sqlite://",
        "sqlite://recon.db?hunter2=1",
    ] {
        let e = SqliteStore::connect(url).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[tokio::test]
async fn unopenable_file_is_one_clear_error() {
    let e = SqliteStore::connect("sqlite:///nonexistent-dir-for-recon/x/recon.db")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let msg = e.to_string();
    assert!(msg.contains("SQLite"), "{msg}");
    assert!(!msg.contains("nonexistent-dir-for-recon"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[tokio::test]
async fn unmigrated_file_is_not_ready() {
    let path = temp_db_path("recon-unmigrated");
    let s = SqliteStore::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists(), "the file is created when missing");
    let e = s.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
    s.migrate().await.unwrap();
    s.check_ready().await.unwrap();
    assert!(SqliteStore::expected_migration() >= 2);
}

#[test]
fn default_url_is_a_local_file() {
    assert_eq!(recon_store_sqlite::DEFAULT_URL, "sqlite://recon.db");
}

#[tokio::test]
async fn reopening_keeps_the_data() {
    let path = temp_db_path("recon-reopen");
    let url = format!("sqlite://{}", path.display());
    let s = SqliteStore::connect(&url).await.unwrap();
    s.migrate().await.unwrap();
    let b = Batch {
        changes: vec![Change {
            snapshot: Snapshot::live(
                ObjectKey::new("test", "default", "things", "a"),
                1,
                json!({"n": 1}),
            ),
            guard: Guard::Newer,
            drift: None,
        }],
        ..Batch::default()
    };
    commit(&s, &b, false).await.unwrap();
    drop(s);
    let s = SqliteStore::connect(&url).await.unwrap();
    s.check_ready().await.unwrap();
    assert_eq!(s.count_live("test", "default", "things").await.unwrap(), 1);
}

#[tokio::test]
async fn in_memory_database_works() {
    let s = SqliteStore::connect("sqlite::memory:").await.unwrap();
    s.migrate().await.unwrap();
    s.check_ready().await.unwrap();
    let b = Batch {
        changes: vec![Change {
            snapshot: Snapshot::live(
                ObjectKey::new("test", "default", "things", "m"),
                1,
                json!({}),
            ),
            guard: Guard::Newer,
            drift: None,
        }],
        ..Batch::default()
    };
    commit(&s, &b, false).await.unwrap();
    assert_eq!(s.count_live("test", "default", "things").await.unwrap(), 1);
}

/// The views carry the Postgres store's names and columns, and extract
/// fields from the JSON.
#[tokio::test]
async fn typed_views() {
    let expected: &[(&str, &[&str])] = &[
        (
            "stripe_customers",
            &[
                "account",
                "id",
                "email",
                "name",
                "phone",
                "delinquent",
                "created",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "stripe_subscriptions",
            &[
                "account",
                "id",
                "customer_id",
                "status",
                "cancel_at_period_end",
                "current_period_end",
                "price_id",
                "created",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "stripe_invoices",
            &[
                "account",
                "id",
                "customer_id",
                "status",
                "subscription_id",
                "total",
                "amount_due",
                "amount_paid",
                "currency",
                "created",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "stripe_prices",
            &[
                "account",
                "id",
                "product_id",
                "active",
                "currency",
                "unit_amount",
                "type",
                "recurring_interval",
                "lookup_key",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "stripe_products",
            &[
                "account",
                "id",
                "name",
                "active",
                "default_price",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "clerk_users",
            &[
                "account",
                "id",
                "email",
                "first_name",
                "last_name",
                "username",
                "external_id",
                "banned",
                "created_at",
                "updated_at",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "clerk_organizations",
            &[
                "account",
                "id",
                "name",
                "slug",
                "members_count",
                "created_at",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
        (
            "clerk_organization_memberships",
            &[
                "account",
                "id",
                "user_id",
                "organization_id",
                "role",
                "created_at",
                "data",
                "version",
                "confirmed_at",
            ],
        ),
    ];
    let s = fresh_store().await;
    for (view, cols) in expected {
        let got: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(view)
            .fetch_all(s.pool())
            .await
            .unwrap();
        assert_eq!(got, *cols, "{view}");
    }

    let mut sub = Snapshot::live(
        ObjectKey::new("stripe", "default", "subscriptions", "sub_1"),
        10,
        json!({
            "id": "sub_1",
            "status": "active",
            "cancel_at_period_end": false,
            "created": 1700000000,
            "items": {"data": [{"current_period_end": 1800000000, "price": {"id": "price_1"}}]}
        }),
    );
    sub.owner = Some("cus_1".into());
    sub.status = Some("active".into());
    let gone = Snapshot::tombstone(
        ObjectKey::new("stripe", "default", "subscriptions", "sub_2"),
        10,
    );
    let b = Batch {
        changes: vec![
            Change {
                snapshot: sub,
                guard: Guard::Newer,
                drift: None,
            },
            Change {
                snapshot: gone,
                guard: Guard::Newer,
                drift: None,
            },
        ],
        ..Batch::default()
    };
    commit(&s, &b, false).await.unwrap();
    let rows = sqlx::query("SELECT * FROM stripe_subscriptions")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "tombstones stay out of the views");
    let r = &rows[0];
    assert_eq!(r.get::<String, _>("id"), "sub_1");
    assert_eq!(r.get::<String, _>("customer_id"), "cus_1");
    assert_eq!(r.get::<String, _>("status"), "active");
    assert!(!r.get::<bool, _>("cancel_at_period_end"));
    assert_eq!(r.get::<i64, _>("current_period_end"), 1_800_000_000);
    assert_eq!(r.get::<String, _>("price_id"), "price_1");
    assert_eq!(r.get::<i64, _>("created"), 1_700_000_000);
}

/// Two stores on one file (two processes, in effect) commit the same event
/// at once: the file's write lock serialises them and exactly one applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_apply_an_event_once() {
    use recon_core::commit::EventEntry;
    use recon_core::types::{ProviderEvent, Source};

    let path = temp_db_path("recon-two");
    let url = format!("sqlite://{}", path.display());
    let a = SqliteStore::connect(&url).await.unwrap();
    a.migrate().await.unwrap();
    let b = SqliteStore::connect(&url).await.unwrap();
    let stores: [Arc<dyn Store>; 2] = [Arc::new(a), Arc::new(b)];
    for round in 0..20 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for (w, store) in stores.iter().enumerate() {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let batch = Batch {
                    events: vec![EventEntry {
                        event: ProviderEvent {
                            provider: "test".into(),
                            account: "default".into(),
                            event_id: format!("evt_{round}"),
                            event_type: "thing.updated".into(),
                            created: 10,
                            pending_webhooks: None,
                            snapshots: vec![Snapshot::live(
                                ObjectKey::new("test", "default", "things", format!("t{round}")),
                                10 + w as i64,
                                json!({ "w": w }),
                            )],
                        },
                        source: Source::Webhook,
                        drift: None,
                    }],
                    ..Batch::default()
                };
                barrier.wait().await;
                let mut tries = 0;
                loop {
                    match commit(store.as_ref(), &batch, false).await {
                        Ok(o) => return o.events[0].new,
                        Err(e) if e.is_temporary() && tries < 20 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("commit: {e}"),
                    }
                }
            }));
        }
        let mut news = 0;
        for t in tasks {
            news += t.await.unwrap() as u32;
        }
        assert_eq!(
            news, 1,
            "round {round}: {news} writers applied the same event"
        );
    }
}

/// Every key a scan returns is found again by key (pass two of the app
/// pass recomputes planned keys by key): a real with no affinity included.
/// Without that, a planned row was seen as having no provider object and
/// got the absent values.
#[tokio::test]
async fn every_listed_key_is_found_by_key() {
    use recon_core::project::AppTable;
    use recon_core::store::KeySel;
    let s = fresh_store().await;
    sqlx::raw_sql("CREATE TABLE app_reals (k TEXT UNIQUE, status TEXT)")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::raw_sql("INSERT INTO app_reals (k, status) VALUES ('1.5', 'x'), ('5.0', 'x')")
        .execute(s.pool())
        .await
        .unwrap();
    let columns = vec!["status".to_string()];
    let table = AppTable {
        table: "app_reals",
        key_column: "k",
        columns: &columns,
    };
    let query =
        "SELECT 1.5 AS key, 'x' AS status UNION ALL SELECT 5.0, 'x' UNION ALL SELECT 'cus_1', 'y'";
    use futures::TryStreamExt;
    for source in [Some(query), None] {
        let scanned: Vec<(String, serde_json::Value)> =
            s.app_scan(table, source).try_collect().await.unwrap();
        let keys: Vec<String> = scanned.into_iter().map(|(k, _)| k).collect();
        assert!(keys.len() >= 2, "{keys:?}");
        let mut tx = s.begin().await.unwrap();
        for k in &keys {
            let found = tx
                .app_desired(&table, query, KeySel::Keys(&[k.as_str()]))
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "{source:?}: key {k:?} not found by key");
            let found = tx
                .app_current(&table, KeySel::Keys(&[k.as_str()]))
                .await
                .unwrap();
            assert_eq!(
                found.len(),
                usize::from(k != "cus_1"),
                "{source:?}: row {k:?}"
            );
        }
    }
}

/// Integer keys: in a computed key with no affinity and in an INTEGER key
/// column, the key "5" matches 5 (and "05" matches nothing); writes by key
/// reach the row.
#[tokio::test]
async fn integer_app_keys_match_as_text() {
    use recon_core::project::AppTable;
    use recon_core::store::{AppWrite, KeySel};
    let s = fresh_store().await;
    sqlx::raw_sql("CREATE TABLE app_ints (id INTEGER UNIQUE, status TEXT, note TEXT DEFAULT 'n')")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::raw_sql("INSERT INTO app_ints (id, status) VALUES (5, 'old'), (12, 'old')")
        .execute(s.pool())
        .await
        .unwrap();
    let columns = vec!["status".to_string()];
    let table = AppTable {
        table: "app_ints",
        key_column: "id",
        columns: &columns,
    };
    let query = "SELECT 5 AS key, 'new' AS status UNION ALL SELECT 7, 'new'";
    let mut tx = s.begin().await.unwrap();
    let desired = tx
        .app_desired(&table, query, KeySel::Keys(&["5", "05", "7"]))
        .await
        .unwrap();
    assert_eq!(
        desired,
        vec![
            ("5".to_string(), json!({"status": "new"})),
            ("7".to_string(), json!({"status": "new"}))
        ]
    );
    let current = tx
        .app_current(&table, KeySel::Keys(&["5", "05", "7"]))
        .await
        .unwrap();
    assert_eq!(current, vec![("5".to_string(), json!({"status": "old"}))]);
    // Byte order of the text: "12" before "5".
    let page = tx
        .app_current(
            &table,
            KeySel::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = page.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["12", "5"]);
    // Integer keys come back as their text, in byte order, from the query
    // and the table.
    use futures::TryStreamExt;
    let keys = |rows: Vec<(String, serde_json::Value)>| -> Vec<String> {
        rows.into_iter().map(|(k, _)| k).collect()
    };
    let want = keys(s.app_scan(table, Some(query)).try_collect().await.unwrap());
    assert_eq!(want, ["5", "7"]);
    let have = keys(s.app_scan(table, None).try_collect().await.unwrap());
    assert_eq!(have, ["12", "5"]);
    let n = tx
        .app_write(&table, AppWrite::Update, &desired[..1])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = tx
        .app_write(&table, AppWrite::Insert, &desired[1..])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = tx
        .app_write(&table, AppWrite::Delete, &[("12".to_string(), json!(null))])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let rows = tx
        .check_rows(
            "SELECT id, typeof(id) AS t, status, note FROM app_ints ORDER BY id",
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": 5, "t": "integer", "status": "new", "note": "n"}),
            json!({"id": 7, "t": "integer", "status": "new", "note": "n"}),
        ]
    );
}

/// An in-memory store has one connection for everything: the app pass's
/// two scans and its heartbeat must not wait for each other (they did, for
/// the 30 s acquire timeout, and the pass failed).
#[tokio::test]
async fn app_pass_on_an_in_memory_store() {
    use recon_core::project::{
        AppSweepOptions, AppSync, Dependency, OnDelete, OnMissing, Projection, reconcile_app,
    };
    use recon_core::store::Guard;
    use recon_core::{ObjectKey, RunStatus, Snapshot};
    let views: Vec<recon_core::store::View> = recon_stripe::views::VIEWS.to_vec();
    let store = recon_store_sqlite::SqliteStore::connect("sqlite::memory:")
        .await
        .unwrap()
        .with_views(views);
    store.migrate().await.unwrap();
    sqlx::raw_sql("CREATE TABLE app_users (customer_id TEXT UNIQUE, email TEXT)")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO app_users VALUES ('cus_1', 'old'), ('cus_2', 'old'), ('cus_3', 'old')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let p = Projection {
        name: "users".into(),
        provider: "stripe".into(),
        table: "app_users".into(),
        key: "customer_id".into(),
        columns: vec!["email".into()],
        query: "SELECT id AS key, data->>'email' AS email FROM stripe_customers".into(),
        depends: vec![Dependency {
            provider: None,
            kind: "customers".into(),
            key: "id".into(),
        }],
        on_missing: OnMissing::Report,
        on_delete: OnDelete::Absent,
        absent: Default::default(),
    };
    let store = store.with_app_sync(Arc::new(AppSync {
        projections: vec![p.clone()],
        checks: Vec::new(),
        feed: false,
    }));
    let snaps: Vec<Snapshot> = ["cus_1", "cus_2", "cus_3"]
        .iter()
        .map(|id| {
            Snapshot::live(
                ObjectKey::new("stripe", "default", "customers", *id),
                1,
                json!({ "id": id, "email": format!("{id}@example.com") }),
            )
        })
        .collect();
    let refs: Vec<&Snapshot> = snaps.iter().collect();
    let mut tx = store.begin().await.unwrap();
    tx.upsert(&refs, Guard::Newer).await.unwrap();
    tx.commit().await.unwrap();
    let opts = AppSweepOptions {
        page: 1,
        force: true,
        ..AppSweepOptions::default()
    };
    let (run, fixed) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reconcile_app(&store, &p, &opts),
    )
    .await
    .expect("the app pass waited for a connection")
    .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(fixed.len(), 3);
    let emails: Vec<String> =
        sqlx::query_scalar("SELECT email FROM app_users ORDER BY customer_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        emails,
        [
            "cus_1@example.com",
            "cus_2@example.com",
            "cus_3@example.com"
        ]
    );
}

/// A database migrated before the views moved into the provider crates has
/// `0002_views` on record, which this build no longer ships: migrating
/// again still works, and the providers' views replace the old ones.
#[tokio::test]
async fn a_database_with_the_retired_views_migration_still_migrates() {
    let store = fresh_store().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (2, 'views', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("DROP VIEW stripe_customers")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("CREATE VIEW stripe_customers AS SELECT 1 AS old")
        .execute(store.pool())
        .await
        .unwrap();
    store.migrate().await.expect("migrate with 0002 on record");
    let cols: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('stripe_customers')")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        cols.contains(&"email".to_string()),
        "the provider's definition replaced the old one: {cols:?}"
    );
}

/// A newer release's migration on record (a downgrade): `migrate` refuses.
#[tokio::test]
async fn a_migration_this_build_lacks_stops_migrate() {
    let store = fresh_store().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert!(store.migrate().await.is_err());
}

/// Views are not numbered migrations: a store told about views the
/// database lacks is not ready, and says to migrate.
#[tokio::test]
async fn missing_views_are_not_ready() {
    let bare = recon_store_sqlite::testing::fresh_store().await;
    bare.check_ready().await.unwrap();
    let told = bare.with_views(recon_stripe::views::VIEWS.to_vec());
    let e = told.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
    told.migrate().await.unwrap();
    told.check_ready().await.unwrap();
}
