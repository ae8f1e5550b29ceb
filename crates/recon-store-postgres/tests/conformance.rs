//! The store conformance suite against a real Postgres, one schema per test.

use std::sync::Arc;

use std::time::Duration;

use recon_core::Store;
use recon_core::project::{AppTable, ChangeRow};
use recon_core::store::{AppWrite, KeySel};
use recon_core::testkit::store_suite::AppDb;
use recon_store_postgres::PgStore;
use recon_store_postgres::testing::test_database_url;
use serde_json::json;

/// A fresh store with the typed views of the providers this project ships
/// (the suite's projections and checks read them).
async fn fresh_store() -> PgStore {
    let views: Vec<recon_core::store::View> = recon_stripe::views::VIEWS
        .iter()
        .chain(recon_clerk::views::VIEWS)
        .copied()
        .collect();
    let s = recon_store_postgres::testing::fresh_store()
        .await
        .with_views(views.clone());
    s.install_views(&views).await.expect("install the views");
    s
}

async fn make() -> Arc<dyn Store> {
    Arc::new(fresh_store().await)
}

recon_core::store_conformance_tests!(make);

/// The app's tables go in `public` (the end of the store's search path),
/// where they are found unqualified; the app's SQL runs on the store's pool.
async fn make_app() -> AppDb {
    let store = fresh_store().await;
    let pool = store.pool().clone();
    let with = store.clone();
    AppDb {
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
        schema_prefix: "public.",
    }
}

recon_core::store_app_tests!(make_app);

#[tokio::test]
async fn bad_url_is_one_clear_error() {
    let e = recon_store_postgres::PgStore::connect("postgres://nobody@127.0.0.1:1/none", "recon")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Unavailable);
    assert!(e.to_string().contains("Postgres"), "{e}");
    let e = recon_store_postgres::PgStore::connect("not a url", "recon")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Config);
    assert!(!e.to_string().contains("not a url"));
}

#[tokio::test]
async fn unmigrated_schema_is_not_ready() {
    let url = recon_store_postgres::testing::test_database_url();
    let s = recon_store_postgres::PgStore::connect(&url, "t_never_migrated_x")
        .await
        .unwrap();
    let e = s.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
}

#[test]
fn schema_names_are_checked() {
    assert!(recon_store_postgres::valid_schema("recon"));
    assert!(!recon_store_postgres::valid_schema("recon; drop table x"));
    assert!(!recon_store_postgres::valid_schema("Recon"));
    assert!(!recon_store_postgres::valid_schema("1x"));
}

/// On loopback with the default `sslmode=prefer`, the pool connects without
/// TLS (its handshake cost ~70 ms per connection and protects nothing there).
#[tokio::test]
async fn loopback_prefer_connects_without_tls() {
    let url = recon_store_postgres::testing::test_database_url();
    if url.contains("sslmode") || !(url.contains("127.0.0.1") || url.contains("localhost")) {
        // Not this case: the URL chose its own TLS mode or a remote host.
        return;
    }
    let store = recon_store_postgres::PgStore::connect(&url, "t_tls_probe")
        .await
        .expect("these tests need Postgres: set TEST_DATABASE_URL or run `cargo xtask test`");
    let ssl: Option<bool> =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(store.pool())
            .await
            .unwrap();
    assert_eq!(ssl, Some(false), "a loopback connection negotiated TLS");
}

/// A name for an app table in `public`, unique across tests and runs.
fn app_table_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{t:x}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn exec(store: &PgStore, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap();
}

/// The store's connections search its schema, then `public`; migrations
/// created every recon object in the schema.
#[tokio::test]
async fn search_path_is_schema_then_public() {
    let store = fresh_store().await;
    let path: Vec<String> = sqlx::query_scalar("SELECT unnest(current_schemas(false))")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(path, [store.schema(), "public"]);
    let recon = [
        "objects",
        "event_ledger",
        "drift_log",
        "runs",
        "cursors",
        "pending_fetches",
        "quarantine",
        "changes",
        "changes_at",
        "stripe_customers",
        "clerk_users",
        "_sqlx_migrations",
    ];
    let in_schema: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = ANY($2) ORDER BY 1",
    )
    .bind(store.schema())
    .bind(&recon[..])
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(in_schema.len(), recon.len(), "{in_schema:?}");
    let in_public: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relname = ANY($1)",
    )
    .bind(&recon[..])
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(
        in_public.iter().all(|t| t == "_sqlx_migrations"),
        "recon objects in public: {in_public:?}"
    );
    store.check_ready().await.unwrap();
}

/// An app that keeps its own sqlx migrations in `public` does not make an
/// unmigrated recon schema look migrated.
#[tokio::test]
async fn readiness_reads_the_schemas_own_migrations() {
    let url = test_database_url();
    let store = PgStore::connect(&url, "t_never_migrated_y").await.unwrap();
    let existed: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    if !existed {
        // Unqualified `_sqlx_migrations` of other tests' stores resolve to
        // their own schema first, so this does not disturb them.
        exec(
            &store,
            "CREATE TABLE IF NOT EXISTS public._sqlx_migrations (version bigint, success boolean);
             INSERT INTO public._sqlx_migrations VALUES (999999, true);"
                .into(),
        )
        .await;
    }
    let e = store.check_ready().await.unwrap_err();
    if !existed {
        exec(&store, "DROP TABLE public._sqlx_migrations".into()).await;
    }
    assert!(e.to_string().contains("recon migrate"), "{e}");
}

fn feed_row(id: &str) -> ChangeRow {
    ChangeRow {
        seq: 0,
        provider: "test".into(),
        account: "default".into(),
        kind: "things".into(),
        object_id: id.into(),
        app_table: None,
        app_key: None,
        cause: "webhook".into(),
        before: None,
        after: Some(json!({ "id": id })),
        at: 1,
    }
}

/// The backend pid of a transaction's connection.
async fn backend_pid(tx: &mut Box<dyn recon_core::StoreTx>) -> u32 {
    let rows = tx
        .check_rows("SELECT pg_backend_pid() AS pid", 1)
        .await
        .unwrap();
    rows[0]["pid"].as_u64().unwrap() as u32
}

/// Each appended change is announced on `recon_changes` with its seq, once
/// the transaction commits; a rolled-back append announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_notified_at_commit() {
    let store = fresh_store().await;
    let mut listener = sqlx::postgres::PgListener::connect(&test_database_url())
        .await
        .unwrap();
    listener.listen("recon_changes").await.unwrap();
    // Other tests append in their own schemas on the same channel: keep
    // only what this test's transactions sent (by backend pid).
    let (sent, mut got) = tokio::sync::mpsc::unbounded_channel();
    let forward = tokio::spawn(async move {
        while let Ok(n) = listener.recv().await {
            if sent
                .send((n.process_id(), n.payload().to_string()))
                .is_err()
            {
                break;
            }
        }
    });
    let mut from = async |pid: u32, wait: Duration| {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some((p, payload))) = tokio::time::timeout_at(deadline, got.recv()).await {
            if p == pid {
                out.push(payload);
            }
        }
        out
    };

    let mut tx = store.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    tx.append_changes(&[feed_row("a"), feed_row("b"), feed_row("c")])
        .await
        .unwrap();
    assert!(
        from(pid, Duration::from_millis(300)).await.is_empty(),
        "notified before commit"
    );
    tx.commit().await.unwrap();
    let seqs: Vec<String> = store
        .changes(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq.to_string())
        .collect();
    assert_eq!(seqs.len(), 3);
    let mut heard = from(pid, Duration::from_secs(2)).await;
    heard.sort_by_key(|s| s.parse::<i64>().unwrap());
    assert_eq!(heard, seqs, "one notification per appended row");

    let mut tx = store.begin().await.unwrap();
    let pid = backend_pid(&mut tx).await;
    tx.append_changes(&[feed_row("d"), feed_row("e")])
        .await
        .unwrap();
    drop(tx);
    assert!(
        from(pid, Duration::from_millis(700)).await.is_empty(),
        "a rolled-back append was announced"
    );
    assert_eq!(store.changes(0, 10).await.unwrap().len(), 3);
    forward.abort();
}

/// App-key locks are taken in key order, whatever order the caller gives:
/// a transaction locking {b, a} while b is held holds a and waits for b.
/// Other keys and other projections do not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_key_locks_are_taken_in_key_order() {
    let store = Arc::new(fresh_store().await);
    let prefix = app_table_name("k"); // keys unique to this test (locks are per database)
    let key = |k: &str| format!("{prefix}_{k}");
    let (a, b, c) = (key("a"), key("b"), key("c"));

    let mut first = store.begin().await.unwrap();
    first.lock_app_keys("billing", &[&b]).await.unwrap();

    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let s = store.clone();
    let (a2, b2) = (a.clone(), b.clone());
    let second = tokio::spawn(async move {
        let mut tx = s.begin().await.unwrap();
        pid_tx.send(backend_pid(&mut tx).await).unwrap();
        tx.lock_app_keys("billing", &[&b2, &a2]).await.unwrap();
        done_tx.send(()).unwrap();
        tx.commit().await.unwrap();
    });
    let pid = pid_rx.await.unwrap() as i32;
    // Wait until the second transaction waits on a lock; then it must
    // already hold exactly one (a's).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (granted, waiting) = loop {
        let (granted, waiting): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted)
             FROM pg_locks WHERE locktype = 'advisory' AND pid = $1",
        )
        .bind(pid)
        .fetch_one(store.pool())
        .await
        .unwrap();
        if waiting > 0 || tokio::time::Instant::now() > deadline {
            break (granted, waiting);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((granted, waiting), (1, 1), "locks not taken in key order");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut done_rx)
            .await
            .is_err()
    );

    // Unrelated keys and projections go through at once.
    let mut other = store.begin().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        other.lock_app_keys("billing", &[&c]).await.unwrap();
        other.lock_app_keys("seats", &[&b, &a]).await.unwrap();
    })
    .await
    .expect("unrelated app keys waited");
    other.commit().await.unwrap();

    first.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), done_rx)
        .await
        .expect("the second transaction got its keys once the first committed")
        .unwrap();
    second.await.unwrap();
}

/// Values go through the app table's row type both ways: what a query
/// returns as text or numbers comes back as the column's type, an insert of
/// desired values reads back equal, and keys page in byte order even when
/// the key column has a linguistic collation.
#[tokio::test]
async fn app_values_follow_the_column_types() {
    let store = fresh_store().await;
    let t = app_table_name("app_types");
    exec(
        &store,
        format!(
            "CREATE TABLE public.{t} (k text COLLATE \"und-x-icu\" UNIQUE, active boolean,
                 since timestamptz, meta jsonb, amount numeric(10, 2), tags text[], n bigint)"
        ),
    )
    .await;
    let columns: Vec<String> = ["active", "since", "meta", "amount", "tags", "n"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    let table = AppTable {
        table: &t,
        key_column: "k",
        columns: &columns,
    };
    let query = "SELECT k COLLATE \"und-x-icu\" AS key, 'true' AS active,
                        '2024-05-01 12:00:00+00' AS since, '{\"a\": [1, 2]}'::jsonb AS meta,
                        12.5 AS amount, ARRAY['x', 'y'] AS tags, '9007199254740993' AS n
                 FROM (VALUES ('cus_a'), ('cus_B'), ('cus_1')) v(k)";
    let mut tx = store.begin().await.unwrap();
    let desired = tx
        .app_desired(
            &table,
            query,
            KeySel::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = desired.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["cus_1", "cus_B", "cus_a"], "keys in byte order");
    let mut first = desired[0].1.clone();
    // Shown in the session's time zone.
    let since = first["since"].take();
    assert!(since.as_str().unwrap().starts_with("2024-05-01"), "{since}");
    assert_eq!(
        first,
        json!({"active": true, "since": null, "meta": {"a": [1, 2]},
               "amount": 12.50, "tags": ["x", "y"], "n": 9007199254740993_i64})
    );
    assert_eq!(
        tx.app_write(&table, AppWrite::Insert, &desired)
            .await
            .unwrap(),
        3
    );
    let current = tx
        .app_current(
            &table,
            KeySel::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(current, desired, "desired and current compare equal");
    let page = tx
        .app_current(
            &table,
            KeySel::Page {
                after: Some("cus_B"),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, "cus_a");
    // A scan of a query in another collation: keys as text, in byte order.
    use futures::TryStreamExt;
    let scanned: Vec<(String, serde_json::Value)> = store
        .app_scan(table, Some(query))
        .try_collect()
        .await
        .unwrap();
    let keys: Vec<&str> = scanned.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["cus_1", "cus_B", "cus_a"]);
    let one = tx
        .app_desired(&table, query, KeySel::Keys(&["cus_B"]))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, "cus_B");
    // A value the column's type refuses is an error naming it.
    let e = tx
        .app_desired(
            &table,
            "SELECT 'cus_1' AS key, 'maybe' AS active, NULL AS since, NULL AS meta,
                    NULL AS amount, NULL AS tags, NULL AS n",
            KeySel::Keys(&["cus_1"]),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("maybe"), "{e}");
    drop(tx);
    exec(&store, format!("DROP TABLE public.{t}")).await;
}

/// Feed appends are serialised until commit, so sequence order is commit
/// order: a reader that has seen seq N never later finds a smaller one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_sequence_follows_commit_order() {
    let store = Arc::new(fresh_store().await);
    let mut first = store.begin().await.unwrap();
    first.append_changes(&[feed_row("first")]).await.unwrap();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let s = store.clone();
    let second = tokio::spawn(async move {
        let mut tx = s.begin().await.unwrap();
        tx.append_changes(&[feed_row("second")]).await.unwrap();
        done_tx.send(()).unwrap();
        tx.commit().await.unwrap();
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut done_rx)
            .await
            .is_err(),
        "a second append went ahead of an uncommitted one"
    );
    assert!(store.changes(0, 10).await.unwrap().is_empty());
    first.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), done_rx)
        .await
        .unwrap()
        .unwrap();
    second.await.unwrap();
    let ids: Vec<String> = store
        .changes(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.object_id)
        .collect();
    assert_eq!(ids, ["first", "second"]);
}

/// An app table is never one of recon's: not an unqualified name of
/// recon's tables or views (the search path would find recon's first), nor
/// anything in recon's schema.
#[tokio::test]
async fn app_tables_are_never_recons_own() {
    let store = fresh_store().await;
    let columns = vec!["status".to_string()];
    let mut tx = store.begin().await.unwrap();
    for t in [
        "runs".to_string(),
        "stripe_subscriptions".to_string(),
        format!("{}.objects", store.schema()),
        format!("{}.anything", store.schema()),
    ] {
        let table = AppTable {
            table: &t,
            key_column: "id",
            columns: &columns,
        };
        let e = tx
            .app_write(&table, AppWrite::Delete, &[("x".into(), json!(null))])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), recon_core::ErrorKind::Config, "{t}: {e}");
    }
}

/// A mirror grown by commits alone gets planner statistics: past 1,000
/// object rows written the store analyses `objects` in the background, so
/// prepared statements planned while it was empty are planned again.
#[tokio::test]
async fn growth_analyses_the_mirror() {
    use recon_core::store::Guard;
    use recon_core::{ObjectKey, Snapshot};
    let store = fresh_store().await;
    let last_analyze = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relid = 'objects'::regclass",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    for chunk in 0..11 {
        let snaps: Vec<Snapshot> = (0..100)
            .map(|i| {
                let id = format!("cus_{chunk:02}{i:03}");
                Snapshot::live(
                    ObjectKey::new("stripe", "default", "customers", &id),
                    1,
                    json!({ "id": id }),
                )
            })
            .collect();
        let refs: Vec<&Snapshot> = snaps.iter().collect();
        let mut tx = store.begin().await.unwrap();
        tx.upsert(&refs, Guard::Newer).await.unwrap();
        tx.commit().await.unwrap();
        if chunk == 8 {
            // 900 rows: below the threshold.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!last_analyze().await, "analysed before 1,000 rows");
        }
    }
    for _ in 0..100 {
        if last_analyze().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("objects was not analysed after 1,100 rows written");
}

/// A pool too small for an app pass (two scans and a heartbeat) is refused
/// at connect, with the reason, instead of failing every pass later.
#[tokio::test]
async fn a_pool_under_three_connections_is_refused() {
    let e = PgStore::connect_with(&test_database_url(), "recon", 2)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Config);
    assert!(e.to_string().contains("at least 3"), "{e}");
}

/// A database migrated before the views moved into the provider crates has
/// `0002_views` on record, which this build no longer ships: migrating
/// again still works, and the providers' views replace the old ones.
#[tokio::test]
async fn a_database_with_the_retired_views_migration_still_migrates() {
    let store = fresh_store().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (2, 'views', true, '\\x00'::bytea, 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query("CREATE OR REPLACE VIEW stripe_customers AS SELECT account, id, email, data->>'name' AS name, data->>'phone' AS phone, (data->>'delinquent')::boolean AS delinquent, (data->>'created')::bigint AS created, data, version, confirmed_at FROM objects WHERE false")
        .execute(store.pool())
        .await
        .unwrap();
    // As the retired migration left it: no tag.
    sqlx::query("COMMENT ON VIEW stripe_customers IS NULL")
        .execute(store.pool())
        .await
        .unwrap();
    store.migrate().await.expect("migrate with 0002 on record");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_customers")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
    let def: String = sqlx::query_scalar("SELECT pg_get_viewdef('stripe_customers'::regclass)")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(
        def.contains("customers"),
        "the provider's definition replaced the old one: {def}"
    );
}

/// A newer release's migration on record (a downgrade): `migrate` refuses
/// instead of running an older build's views over a newer schema.
#[tokio::test]
async fn a_migration_this_build_lacks_stops_migrate() {
    let store = fresh_store().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99, 'from the future', true, '\\x00'::bytea, 0)",
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
    let bare = recon_store_postgres::testing::fresh_store().await;
    bare.check_ready().await.unwrap();
    let told = bare.with_views(recon_stripe::views::VIEWS.to_vec());
    let e = told.check_ready().await.unwrap_err();
    assert!(e.to_string().contains("recon migrate"), "{e}");
    told.migrate().await.unwrap();
    told.check_ready().await.unwrap();
}

/// An unqualified app table that resolves to a view in recon's schema is
/// recon's, even for a store that was not told about views (an embedder,
/// a binary without that provider): app writes through it would reach the
/// mirror.
#[tokio::test]
async fn an_app_table_resolving_to_recons_view_is_refused_from_the_catalog() {
    use recon_core::project::AppTable;
    use recon_core::store::KeySel;
    let store = recon_store_postgres::testing::fresh_store().await;
    store
        .install_views(recon_stripe::views::VIEWS)
        .await
        .unwrap();
    let cols = vec!["email".to_string()];
    let t = AppTable {
        table: "stripe_customers",
        key_column: "id",
        columns: &cols,
    };
    let mut tx = store.begin().await.unwrap();
    let e = tx
        .app_current(
            &t,
            KeySel::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), recon_core::ErrorKind::Config, "{e}");
}

/// Two replicas migrating a database without the views at once both
/// succeed; and an up-to-date migrate does not wait for a reader of a view.
#[tokio::test]
async fn views_install_concurrently_and_an_up_to_date_migrate_takes_no_view_lock() {
    let a = recon_store_postgres::testing::fresh_store().await;
    let b = PgStore::connect(&test_database_url(), a.schema())
        .await
        .unwrap();
    let views = recon_stripe::views::VIEWS;
    let (x, y) = tokio::join!(a.install_views(views), b.install_views(views));
    x.unwrap();
    y.unwrap();
    let a = a.with_views(views.to_vec());
    let mut reader = a.pool().begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM stripe_customers")
        .execute(&mut *reader)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), a.migrate())
        .await
        .expect("migrate waited for the reader")
        .unwrap();
    reader.rollback().await.unwrap();
}
