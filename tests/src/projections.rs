//! The app's own tables (issue 12): projections written in the commit's
//! transaction, app-table reconciliation, declared checks and the change
//! feed. `projection_tests!` runs each case against a store.
//!
//! The fake provider's kinds: `parents` (the app key) and `children`
//! (a child's `owner` is a parent id; its `status` is projected).

use std::collections::BTreeMap;
use std::sync::Arc;

use recon_core::commit::{Batch, Change, commit};
use recon_core::project::{
    AppSweepOptions, AppSync, Check, Dependency, Link, OnDelete, OnMissing, Projection,
    builtin_checks, reconcile_app, run_checks,
};
use recon_core::store::{DriftQuery, Guard};
use recon_core::testkit::fake::TestProvider;
use recon_core::types::{DriftCause, RunStatus, Snapshot, Source};
use recon_core::{Engine, ObjectKey, Provider, Store};
use serde_json::json;

/// A raw connection to the store's database, for the app's side: DDL, hand
/// edits and reads that do not go through recon.
pub enum Db {
    /// Postgres, with `search_path` set to the store's schema.
    Pg(sqlx::PgPool),
    /// The SQLite file.
    Lite(sqlx::SqlitePool),
}

impl Db {
    /// Run statements (`;`-separated, no `;` inside them).
    pub async fn exec(&self, sql: &str) {
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match self {
                Db::Pg(p) => sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
                    .execute(p)
                    .await
                    .map(|_| ()),
                Db::Lite(p) => sqlx::query(sqlx::AssertSqlSafe(stmt.to_string()))
                    .execute(p)
                    .await
                    .map(|_| ()),
            }
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    }

    /// `(key, value)` rows of a query whose two columns are text.
    pub async fn pairs(&self, sql: &str) -> BTreeMap<String, Option<String>> {
        match self {
            Db::Pg(p) => {
                sqlx::query_as::<_, (String, Option<String>)>(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
                    .map(|v| v.into_iter().collect())
            }
            Db::Lite(p) => {
                sqlx::query_as::<_, (String, Option<String>)>(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(p)
                    .await
                    .map(|v| v.into_iter().collect())
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// How a test gets a fresh store with `sync` attached, and the raw
/// connection to its database.
pub type Make = fn(AppSync) -> futures_like::BoxFut<(Arc<dyn Store>, Db)>;

/// A boxed future, without a dependency for it.
pub mod futures_like {
    /// A boxed, sendable future.
    pub type BoxFut<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

/// A Postgres store in a fresh schema, and a pool whose `search_path` is
/// that schema (the app table is created there, where the store finds it).
pub fn pg(sync: AppSync) -> futures_like::BoxFut<(Arc<dyn Store>, Db)> {
    Box::pin(async move {
        let store = recon_store_postgres::testing::fresh_store()
            .await
            .with_views(crate::views());
        store
            .install_views(&crate::views())
            .await
            .expect("install the views");
        let url = recon_store_postgres::testing::test_database_url();
        let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("TEST_DATABASE_URL");
        let opts = opts.options([("search_path", store.schema())]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .expect("connect to the test database");
        let store = store.with_app_sync(Arc::new(sync));
        (Arc::new(store) as Arc<dyn Store>, Db::Pg(pool))
    })
}

/// A SQLite store in a fresh file, and a second pool on the same file.
pub fn sqlite(sync: AppSync) -> futures_like::BoxFut<(Arc<dyn Store>, Db)> {
    Box::pin(async move {
        let path = recon_store_sqlite::testing::temp_db_path("recon-proj");
        let url = format!("sqlite://{}", path.display());
        let store = recon_store_sqlite::SqliteStore::connect(&url)
            .await
            .expect("open a test database")
            .with_views(crate::views());
        store.migrate().await.expect("migrate");
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("sqlite url");
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.busy_timeout(std::time::Duration::from_secs(10)))
            .await
            .expect("open the test database");
        let store = store.with_app_sync(Arc::new(sync));
        (Arc::new(store) as Arc<dyn Store>, Db::Lite(pool))
    })
}

/// The app table: one row per parent, `status` and `children` owned by
/// recon, `note` the app's own. `status` may not be `poison` (a constraint
/// a projection can violate).
const APP_DDL: &str = "CREATE TABLE app_users (
    id integer PRIMARY KEY,
    parent_id text UNIQUE,
    status text CHECK (status IS NULL OR status <> 'poison'),
    children integer,
    note text
)";

/// `status`: the status of the parent's child with the highest id, else
/// `none`; `children`: how many live children.
fn projection() -> Projection {
    Projection {
        name: "users_status".into(),
        provider: "test".into(),
        table: "app_users".into(),
        key: "parent_id".into(),
        columns: vec!["status".into(), "children".into()],
        query: "SELECT p.id AS key, \
            COALESCE((SELECT c.status FROM objects c WHERE c.provider = 'test' AND c.kind = 'children' \
                AND c.owner_id = p.id AND c.deleted = false ORDER BY c.id DESC LIMIT 1), 'none') AS status, \
            (SELECT COUNT(*) FROM objects c WHERE c.provider = 'test' AND c.kind = 'children' \
                AND c.owner_id = p.id AND c.deleted = false) AS children \
            FROM objects p WHERE p.provider = 'test' AND p.kind = 'parents' AND p.deleted = false"
            .into(),
        depends: vec![
            Dependency {
                provider: None,
                kind: "parents".into(),
                key: "id".into(),
            },
            Dependency {
                provider: None,
                kind: "children".into(),
                key: "owner".into(),
            },
        ],
        on_missing: OnMissing::Report,
        on_delete: OnDelete::Absent,
        absent: [("status".to_string(), json!("gone"))].into(),
    }
}

fn sync_with(p: Projection) -> AppSync {
    AppSync {
        projections: vec![p],
        checks: Vec::new(),
        feed: true,
    }
}

fn engine(store: &Arc<dyn Store>, p: &Arc<TestProvider>) -> Engine {
    let provider: Arc<dyn Provider> = p.clone();
    let mut cfg = recon_core::EngineConfig::default();
    cfg.partitions = 1;
    Engine::new(store.clone(), provider).with_config(cfg)
}

async fn app_status(db: &Db) -> BTreeMap<String, Option<String>> {
    db.pairs("SELECT parent_id, status FROM app_users WHERE parent_id IS NOT NULL")
        .await
}

async fn app_note(db: &Db) -> BTreeMap<String, Option<String>> {
    db.pairs("SELECT parent_id, note FROM app_users WHERE parent_id IS NOT NULL")
        .await
}

/// What the projection implies from the provider's truth.
fn expected(p: &TestProvider) -> BTreeMap<String, Option<String>> {
    let parents = p.truth("parents");
    let children = p.truth("children");
    parents
        .keys()
        .map(|id| {
            let status = children
                .iter()
                .filter(|(_, c)| c["owner"] == json!(id))
                .map(|(cid, c)| (cid.clone(), c["status"].as_str().unwrap_or("").to_string()))
                .max()
                .map(|(_, s)| s)
                .unwrap_or_else(|| "none".into());
            (id.clone(), Some(status))
        })
        .collect()
}

async fn seed_rows(db: &Db, ids: &[&str]) {
    for (i, id) in ids.iter().enumerate() {
        db.exec(&format!(
            "INSERT INTO app_users (id, parent_id, status, note) VALUES ({i}, '{id}', NULL, 'app note {i}')"
        ))
        .await;
    }
}

/// A webhook changes the app row in the transaction that writes the
/// snapshot and the ledger row; only the owned columns are written.
pub async fn webhook_projects_in_the_same_transaction(make: Make) {
    let (store, db) = make(sync_with(projection())).await;
    db.exec(APP_DDL).await;
    seed_rows(&db, &["p_1", "p_2"]).await;
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    e.ingest_event(
        p.put("parents", "p_1", json!({"name": "a"})),
        Source::Webhook,
    )
    .await
    .unwrap();
    e.ingest_event(
        p.put(
            "children",
            "c_1",
            json!({"owner": "p_1", "status": "active"}),
        ),
        Source::Webhook,
    )
    .await
    .unwrap();
    let st = app_status(&db).await;
    assert_eq!(st["p_1"].as_deref(), Some("active"));
    // p_2 has no provider object: untouched by the commit path.
    assert_eq!(st["p_2"], None);
    let counts = db
        .pairs("SELECT parent_id, CAST(children AS TEXT) FROM app_users WHERE parent_id = 'p_1'")
        .await;
    assert_eq!(counts["p_1"].as_deref(), Some("1"));
    // The app's own column is never written.
    assert_eq!(app_note(&db).await["p_1"].as_deref(), Some("app note 0"));
    // A duplicate delivery changes nothing and appends nothing.
    let feed_before = store.changes(0, 1000).await.unwrap().len();
    let dup = p.put(
        "children",
        "c_1",
        json!({"owner": "p_1", "status": "past_due"}),
    );
    e.ingest_event(dup.clone(), Source::Webhook).await.unwrap();
    let feed_mid = store.changes(0, 1000).await.unwrap();
    assert_eq!(app_status(&db).await["p_1"].as_deref(), Some("past_due"));
    // The mirror row and the app row, two entries.
    assert_eq!(feed_mid.len(), feed_before + 2, "{feed_mid:?}");
    let app_row = feed_mid.last().unwrap();
    assert_eq!(app_row.app_table.as_deref(), Some("app_users"));
    assert_eq!(app_row.app_key.as_deref(), Some("p_1"));
    assert_eq!(app_row.before, Some(json!({"status": "active"})));
    assert_eq!(app_row.after, Some(json!({"status": "past_due"})));
    assert_eq!(app_row.cause, "webhook");
    let r = e.ingest_event(dup, Source::Webhook).await.unwrap();
    assert!(r.duplicate);
    assert_eq!(store.changes(0, 1000).await.unwrap().len(), feed_mid.len());
    // A deleted child: the parent's status falls back.
    e.ingest_event(p.delete("children", "c_1"), Source::Webhook)
        .await
        .unwrap();
    assert_eq!(app_status(&db).await["p_1"].as_deref(), Some("none"));
    // A deleted parent: the row keeps its key and gets the absent values.
    e.ingest_event(p.delete("parents", "p_1"), Source::Webhook)
        .await
        .unwrap();
    assert_eq!(app_status(&db).await["p_1"].as_deref(), Some("gone"));
    assert_eq!(app_note(&db).await["p_1"].as_deref(), Some("app note 0"));
}

/// A projection that fails (a constraint of the app table) fails the
/// whole commit: no ledger row, no snapshot; a redelivery after the app is
/// fixed applies both.
pub async fn failing_projection_rolls_back_the_event(make: Make) {
    let (store, db) = make(sync_with(projection())).await;
    db.exec(APP_DDL).await;
    seed_rows(&db, &["p_1"]).await;
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    e.ingest_event(
        p.put("parents", "p_1", json!({"name": "a"})),
        Source::Webhook,
    )
    .await
    .unwrap();
    let ev = p.put(
        "children",
        "c_1",
        json!({"owner": "p_1", "status": "poison"}),
    );
    let err = e
        .ingest_event(ev.clone(), Source::Webhook)
        .await
        .expect_err("the app table refuses the value: the event must fail");
    assert!(
        err.to_string().contains("users_status"),
        "the error names the projection: {err}"
    );
    assert!(
        !store
            .ledger_contains("test", "default", &ev.event_id)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_many("test", "default", "children", &["c_1"])
            .await
            .unwrap()
            .is_empty(),
        "the snapshot must not be written without its projection"
    );
    assert_eq!(app_status(&db).await["p_1"].as_deref(), Some("none"));
    // The app relaxes its rule; the provider redelivers.
    match &db {
        Db::Pg(_) => {
            db.exec("ALTER TABLE app_users DROP CONSTRAINT app_users_status_check")
                .await
        }
        Db::Lite(_) => {
            db.exec(
                "CREATE TABLE app_users2 (id integer PRIMARY KEY, parent_id text UNIQUE, status text, children integer, note text);
                 INSERT INTO app_users2 SELECT * FROM app_users;
                 DROP TABLE app_users;
                 ALTER TABLE app_users2 RENAME TO app_users",
            )
            .await
        }
    }
    let r = e.ingest_event(ev.clone(), Source::Webhook).await.unwrap();
    assert!(!r.duplicate);
    assert_eq!(app_status(&db).await["p_1"].as_deref(), Some("poison"));
    assert!(
        store
            .ledger_contains("test", "default", &ev.event_id)
            .await
            .unwrap()
    );
}

async fn swept_world(make: Make, p: Projection) -> (Arc<dyn Store>, Db, Arc<TestProvider>) {
    let (store, db) = make(sync_with(p)).await;
    db.exec(APP_DDL).await;
    let prov = crate::seeded(50, 40, 60);
    let ids: Vec<String> = (0..40).map(|i| format!("p_{i:04}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    seed_rows(&db, &refs).await;
    let e = engine(&store, &prov);
    e.sweep_all(&Default::default()).await.unwrap();
    (store, db, prov)
}

fn opts() -> AppSweepOptions {
    AppSweepOptions {
        page: 7,
        ..AppSweepOptions::default()
    }
}

/// Sweeps bring app rows to the mirror's truth: rows the initial sweep
/// projected, then rows edited by hand behind recon's back, are repaired
/// with before/after in the drift log; a dry run writes nothing.
pub async fn app_reconcile_repairs_hand_edits(make: Make) {
    let (store, db, prov) = swept_world(make, projection()).await;
    // The initial sweep inserted every object, and projected as it went.
    assert_eq!(app_status(&db).await, expected(&prov));
    // Its feed entries say it was a sweep, mirror rows and app rows alike.
    let feed = store.changes(0, 10_000).await.unwrap();
    assert!(feed.len() > 100, "{}", feed.len());
    assert!(
        feed.iter().all(|c| c.cause == "sweep_repair"),
        "{:?}",
        feed.iter().find(|c| c.cause != "sweep_repair")
    );
    db.exec(
        "UPDATE app_users SET status = 'hacked' WHERE parent_id IN ('p_0001', 'p_0002', 'p_0003')",
    )
    .await;
    let edited = app_status(&db).await;
    // Dry run: reports, writes nothing, logs nothing.
    let dry = AppSweepOptions {
        dry_run: true,
        ..opts()
    };
    let (run, plan) = reconcile_app(store.as_ref(), &projection(), &dry)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let keys: Vec<&str> = plan.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, vec!["p_0001", "p_0002", "p_0003"]);
    assert_eq!(app_status(&db).await, edited);
    assert!(
        store
            .drift(&DriftQuery {
                run_id: Some(run.id.clone()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    // For real.
    let (run, fixed) = reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counts.updated, 3);
    assert_eq!(fixed.len(), 3);
    assert_eq!(app_status(&db).await, expected(&prov));
    let drift = store
        .drift(&DriftQuery {
            run_id: Some(run.id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(drift.len(), 3);
    for d in &drift {
        assert_eq!(d.cause, DriftCause::AppDrift);
        assert_eq!(d.key.kind, "app:users_status");
        assert_eq!(d.before.as_ref().unwrap()["status"], json!("hacked"));
        assert_ne!(d.after.as_ref().unwrap()["status"], json!("hacked"));
    }
    // Only owned columns: the app's notes are intact.
    assert_eq!(app_note(&db).await["p_0002"].as_deref(), Some("app note 2"));
    // A second pass finds nothing.
    let (run, again) = reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(run.counts.updated, 0);
}

/// The breaker stops a pass that would rewrite most of the app table;
/// `force` lets it through.
pub async fn breaker_stops_a_mass_rewrite(make: Make) {
    let (store, db, prov) = swept_world(make, projection()).await;
    db.exec("UPDATE app_users SET status = 'x'").await;
    let (run, _) = reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::CircuitOpen, "{run:?}");
    assert!(
        app_status(&db)
            .await
            .values()
            .all(|v| v.as_deref() == Some("x")),
        "the breaker must write nothing"
    );
    let forced = AppSweepOptions {
        force: true,
        ..opts()
    };
    let (run, _) = reconcile_app(store.as_ref(), &projection(), &forced)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(app_status(&db).await, expected(&prov));
}

/// A provider object the app has no row for: reported (a drift record, no
/// row) or inserted, as declared.
pub async fn missing_rows_reported_or_inserted(make: Make) {
    let (store, db, _prov) = swept_world(make, projection()).await;
    db.exec("DELETE FROM app_users WHERE parent_id IN ('p_0005', 'p_0006')")
        .await;
    let (run, changes) = reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    let missing: Vec<&str> = changes
        .iter()
        .filter(|c| c.action == "missing")
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(missing, vec!["p_0005", "p_0006"]);
    assert!(!app_status(&db).await.contains_key("p_0005"));
    let drift = store
        .drift(&DriftQuery {
            run_id: Some(run.id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(drift.len(), 2);
    assert!(drift.iter().all(|d| d.before.is_none()));

    let mut inserting = projection();
    inserting.on_missing = OnMissing::Insert;
    // The app table needs a default for its own primary key to accept
    // inserts recon makes; this one generates it.
    let (store, db) = (store, db);
    match &db {
        Db::Pg(_) => {
            db.exec("CREATE SEQUENCE app_users_ids START 1000; ALTER TABLE app_users ALTER COLUMN id SET DEFAULT nextval('app_users_ids')")
                .await
        }
        // SQLite: an INTEGER PRIMARY KEY is the rowid, filled in.
        Db::Lite(_) => {}
    }
    let (run, changes) = reconcile_app(store.as_ref(), &inserting, &opts())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(
        changes.iter().filter(|c| c.action == "insert").count(),
        2,
        "{changes:?}"
    );
    let st = app_status(&db).await;
    assert!(st.contains_key("p_0005") && st.contains_key("p_0006"));
    // Inserted rows carry only the key and the owned columns.
    assert_eq!(app_note(&db).await["p_0005"], None);
}

/// App rows whose provider object is gone get the absent values, or are
/// deleted where declared; rows with no key are never touched.
pub async fn rows_of_gone_objects(make: Make) {
    let (store, db, _prov) = swept_world(make, projection()).await;
    db.exec("INSERT INTO app_users (id, parent_id, status, note) VALUES (900, 'p_gone', 'active', 'x'); INSERT INTO app_users (id, parent_id, status, note) VALUES (901, NULL, 'active', 'no key')")
        .await;
    reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    assert_eq!(app_status(&db).await["p_gone"].as_deref(), Some("gone"));
    let keyless = db
        .pairs("SELECT CAST(id AS TEXT), status FROM app_users WHERE id = 901")
        .await;
    assert_eq!(keyless["901"].as_deref(), Some("active"));
    let mut deleting = projection();
    deleting.on_delete = OnDelete::Delete;
    let (_, changes) = reconcile_app(store.as_ref(), &deleting, &opts())
        .await
        .unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!app_status(&db).await.contains_key("p_gone"));
}

/// Commit one webhook event straight through the commit path (no engine,
/// so no grouping of concurrent deliveries into one transaction).
async fn commit_webhook(
    store: Arc<dyn Store>,
    event: recon_core::ProviderEvent,
) -> recon_core::Result<recon_core::commit::Outcome> {
    let batch = Batch {
        events: vec![recon_core::commit::EventEntry {
            event,
            source: Source::Webhook,
            drift: None,
        }],
        ..Batch::default()
    };
    commit(store.as_ref(), &batch, false).await
}

/// Two transactions that change different objects mapping to the same app
/// key: whichever projects last sees both, so the row is right. The two
/// are made to write their snapshots at the same moment (a barrier before
/// each snapshot write), so each computes the row before the other
/// commits; without the key lock, a read-committed store keeps the value
/// of whichever committed last, computed without the other's change.
/// Postgres only: SQLite has one writer, so the two cannot overlap (and
/// the barrier would wait forever).
pub async fn concurrent_changes_to_one_app_row(make: Make) {
    let (store, db) = make(sync_with(projection())).await;
    db.exec(APP_DDL).await;
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let rounds = 5;
    let ids: Vec<String> = (0..rounds).map(|i| format!("p_{i:04}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    seed_rows(&db, &refs).await;
    for id in &ids {
        e.ingest_event(p.put("parents", id, json!({})), Source::Webhook)
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let barrier: &'static tokio::sync::Barrier =
            Box::leak(Box::new(tokio::sync::Barrier::new(2)));
        let racing: Arc<dyn Store> = Arc::new(crate::failing::FailingStore::new(
            store.clone(),
            crate::failing::FailAt::Rendezvous(barrier),
        ));
        let mut tasks = Vec::new();
        for side in ["a", "b"] {
            let ev = p.put(
                "children",
                &format!("c_{i}_{side}"),
                json!({"owner": id, "status": side}),
            );
            let racing = racing.clone();
            tasks.push(tokio::spawn(commit_webhook(racing, ev)));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    let counts = db
        .pairs("SELECT parent_id, CAST(children AS TEXT) FROM app_users")
        .await;
    let wrong: Vec<_> = counts
        .iter()
        .filter(|(_, v)| v.as_deref() != Some("2"))
        .collect();
    assert!(
        wrong.is_empty(),
        "rows that lost a concurrent change: {wrong:?}"
    );
}

/// A state that returns to the stored content (decided `Touched` from the
/// read) races a real change of the same object: the change commits first,
/// then the return overwrites it. The app row and the change feed must
/// follow the final state. Without the row lock before the read, the
/// second writer decided from the stale state: the mirror said `a`, the
/// app row `b`, and the feed had no entry for the change back. Postgres
/// only (SQLite has one writer).
pub async fn touched_race_still_projects(make: Make) {
    let (store, db) = make(sync_with(projection())).await;
    db.exec(APP_DDL).await;
    seed_rows(&db, &["p_1"]).await;
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    e.ingest_event(p.put("parents", "p_1", json!({})), Source::Webhook)
        .await
        .unwrap();
    e.ingest_event(
        p.put("children", "c_1", json!({"owner": "p_1", "status": "a"})),
        Source::Webhook,
    )
    .await
    .unwrap();
    let ev2 = p.put("children", "c_1", json!({"owner": "p_1", "status": "b"}));
    let ev3 = p.put("children", "c_1", json!({"owner": "p_1", "status": "a"}));
    let barrier: &'static tokio::sync::Barrier = Box::leak(Box::new(tokio::sync::Barrier::new(2)));
    let mut tasks = Vec::new();
    for (ev, then_ms) in [(ev2, 0u64), (ev3, 300)] {
        let racing: Arc<dyn Store> = Arc::new(crate::failing::FailingStore::new(
            store.clone(),
            crate::failing::FailAt::RendezvousThen(
                barrier,
                std::time::Duration::from_millis(1500),
                std::time::Duration::from_millis(then_ms),
            ),
        ));
        tasks.push(tokio::spawn(commit_webhook(racing, ev)));
        // The change to `b` takes its locks first.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mirror = store
        .get_many("test", "default", "children", &["c_1"])
        .await
        .unwrap();
    assert_eq!(mirror[0].snapshot.data["status"], json!("a"));
    assert_eq!(
        app_status(&db).await["p_1"].as_deref(),
        Some("a"),
        "the app row follows the mirror"
    );
    let feed = store.changes(0, 100).await.unwrap();
    let last_mirror = feed
        .iter()
        .rev()
        .find(|c| c.object_id == "c_1" && c.app_table.is_none())
        .unwrap();
    assert_eq!(
        last_mirror.after.as_ref().unwrap()["status"],
        json!("a"),
        "the feed records the change back: {feed:?}"
    );
}

/// A query that returns two rows for one key is refused with a clear
/// error, whichever path meets it.
pub async fn duplicate_keys_are_refused(make: Make) {
    let mut p = projection();
    // One row per child, not per parent.
    p.query = "SELECT c.owner_id AS key, c.status AS status, 1 AS children FROM objects c \
               WHERE c.provider = 'test' AND c.kind = 'children' AND c.deleted = false"
        .into();
    let (store, db) = make(sync_with(p.clone())).await;
    db.exec(APP_DDL).await;
    seed_rows(&db, &["p_1"]).await;
    let prov = Arc::new(TestProvider::new(10));
    let e = engine(&store, &prov);
    e.ingest_event(
        prov.put("children", "c_1", json!({"owner": "p_1", "status": "a"})),
        Source::Webhook,
    )
    .await
    .unwrap();
    let err = e
        .ingest_event(
            prov.put("children", "c_2", json!({"owner": "p_1", "status": "b"})),
            Source::Webhook,
        )
        .await
        .expect_err("two rows for p_1");
    assert!(err.to_string().contains("more than one row"), "{err}");
    let (run, _) = reconcile_app(store.as_ref(), &p, &opts()).await.unwrap();
    // The mirror has one child (the second event was refused), so the
    // pass itself is fine; a sweep-like write of another child is not.
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    put(
        store.as_ref(),
        vec![
            Snapshot::live(
                ObjectKey::new("test", "default", "children", "c_3"),
                9,
                json!({"owner": "p_1", "status": "c"}),
            )
            .with_owner(Some("p_1"))
            .with_status(Some("c")),
        ],
    )
    .await
    .expect_err("the commit path refuses the duplicate too");
}

fn snap(provider: &str, kind: &str, id: &str, v: i64, data: serde_json::Value) -> Snapshot {
    let owner = data
        .get("customer")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let status = data
        .get("status")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let email = data
        .get("email")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    Snapshot::live(ObjectKey::new(provider, "default", kind, id), v, data)
        .with_owner(owner)
        .with_status(status)
        .with_email(email)
}

async fn put(store: &dyn Store, snaps: Vec<Snapshot>) -> recon_core::Result<()> {
    let batch = Batch {
        changes: snaps
            .into_iter()
            .map(|s| Change {
                snapshot: s,
                guard: Guard::NewerOrEqual,
                drift: None,
            })
            .collect(),
        ..Batch::default()
    };
    commit(store, &batch, false).await.map(|_| ())
}

/// The built-in Stripe ↔ Clerk checks find each cross-provider case, and a
/// declared check finds app rows; violations are drift records.
pub async fn checks_find_cross_provider_cases(make: Make) {
    let (store, db) = make(AppSync::default()).await;
    db.exec("CREATE TABLE app_accounts (id integer PRIMARY KEY, sub_status text, sub_id text)")
        .await;
    db.exec("INSERT INTO app_accounts VALUES (1, 'active', NULL); INSERT INTO app_accounts VALUES (2, 'active', 'sub_9'); INSERT INTO app_accounts VALUES (3, 'canceled', NULL)")
        .await;
    let md = |u: &str| json!({"metadata": {"clerk_user_id": u}});
    put(
        store.as_ref(),
        vec![
            snap("clerk", "users", "user_ok", 1, json!({"email": "ok@x"})),
            snap("clerk", "users", "user_gone", 1, json!({"email": "gone@x"})),
            snap("clerk", "users", "user_two", 1, json!({"email": "two@x"})),
            snap("stripe", "customers", "cus_ok", 1, md("user_ok")),
            snap("stripe", "customers", "cus_gone", 1, md("user_gone")),
            snap("stripe", "customers", "cus_two_a", 1, md("user_two")),
            snap("stripe", "customers", "cus_two_b", 1, md("user_two")),
            snap("stripe", "customers", "cus_ghost", 1, md("user_never")),
            snap(
                "stripe",
                "subscriptions",
                "sub_gone",
                1,
                json!({"customer": "cus_gone", "status": "active"}),
            ),
            snap(
                "stripe",
                "subscriptions",
                "sub_ok",
                1,
                json!({"customer": "cus_ok", "status": "active"}),
            ),
        ],
    )
    .await
    .unwrap();
    put(
        store.as_ref(),
        vec![Snapshot::tombstone(
            ObjectKey::new("clerk", "default", "users", "user_gone"),
            2,
        )],
    )
    .await
    .unwrap();
    let mut checks = builtin_checks(
        &Link::Metadata("clerk_user_id".into()),
        Some(("app_accounts", "sub_status", "sub_id")),
    )
    .unwrap();
    checks.push(Check {
        name: "no_canceled_accounts".into(),
        description: String::new(),
        sql: "SELECT id FROM app_accounts WHERE sub_status = 'canceled'".into(),
    });
    checks.push(Check {
        name: "broken".into(),
        description: String::new(),
        sql: "SELECT nope FROM no_such_table".into(),
    });
    let results = run_checks(store.as_ref(), &checks, 100, true, Some("run_c"))
        .await
        .unwrap();
    let by: BTreeMap<&str, &recon_core::project::CheckResult> =
        results.iter().map(|r| (r.name.as_str(), r)).collect();
    let first = |name: &str| -> Vec<String> {
        by[name]
            .violations
            .iter()
            .map(recon_core::project::check_subject)
            .collect()
    };
    assert_eq!(
        first("clerk_user_deleted_with_active_subscription"),
        vec!["sub_gone"]
    );
    assert_eq!(first("clerk_user_with_many_customers"), vec!["user_two"]);
    assert_eq!(
        first("customer_names_missing_clerk_user"),
        vec!["cus_ghost"]
    );
    assert_eq!(first("app_active_without_subscription"), vec!["1"]);
    assert_eq!(first("no_canceled_accounts"), vec!["3"]);
    assert!(by["broken"].error.is_some(), "a failing check says so");
    let drift = store
        .drift(&DriftQuery {
            run_id: Some("run_c".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(drift.len(), 5);
    assert!(drift.iter().all(|d| d.cause == DriftCause::Check));

    // With email as the link, the same world: user_two has two customers
    // only if their emails match.
    let by_email = builtin_checks(&Link::Email, None).unwrap();
    let results = run_checks(store.as_ref(), &by_email, 100, false, None)
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
}

/// Bad configuration is refused before anything runs, naming the
/// projection.
pub async fn bad_configuration_is_refused(make: Make) {
    let (store, db) = make(AppSync::default()).await;
    db.exec(APP_DDL).await;
    let cases: Vec<(Projection, &str)> = vec![
        (
            Projection {
                table: "no_such_table".into(),
                ..projection()
            },
            "no_such_table",
        ),
        (
            Projection {
                columns: vec!["status".into(), "no_such_column".into()],
                ..projection()
            },
            "no_such_column",
        ),
        (
            Projection {
                query: "SELEC nonsense".into(),
                ..projection()
            },
            "query",
        ),
        (
            Projection {
                key: String::new(),
                ..projection()
            },
            "key",
        ),
    ];
    for (p, what) in cases {
        let sync = sync_with(p);
        let e = recon_core::project::verify(store.as_ref(), &sync)
            .await
            .expect_err(what);
        let msg = e.to_string();
        assert!(
            msg.contains("users_status") && msg.contains(what),
            "{what}: {msg}"
        );
    }
    recon_core::project::verify(store.as_ref(), &sync_with(projection()))
        .await
        .unwrap();
}

/// The built-in stale check: app rows whose provider object was not
/// confirmed (by its own state or a completed sweep of its kind) within
/// the limit are reported, and so is a projection with no app pass that
/// recent; the same SQL runs on both stores.
pub async fn stale_rows_are_found(make: Make) {
    let (store, db, _prov) = swept_world(make, projection()).await;
    let check =
        recon_core::project::stale_check(&projection(), std::time::Duration::from_secs(3600));
    assert_eq!(check.name, "app_stale:users_status");
    let subjects = |results: Vec<recon_core::project::CheckResult>| -> Vec<String> {
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].error, None, "{:?}", results[0]);
        results[0]
            .violations
            .iter()
            .map(|v| v["subject"].as_str().unwrap().to_string())
            .collect()
    };
    let run = |store: Arc<dyn Store>, check: Check| async move {
        run_checks(store.as_ref(), &[check], 100, false, None)
            .await
            .unwrap()
    };
    // Just swept, but no app pass yet: the projection is reported.
    assert_eq!(
        subjects(run(store.clone(), check.clone()).await),
        ["app:users_status"]
    );
    let (r, _) = reconcile_app(store.as_ref(), &projection(), &opts())
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(subjects(run(store.clone(), check.clone()).await).is_empty());
    // An object not confirmed for a day is still verified by the recent
    // sweep of its kind...
    let day_ago = "(SELECT now_ms FROM recon_clock) - 86400000";
    db.exec(&format!(
        "UPDATE objects SET confirmed_at = {day_ago} WHERE kind = 'parents' AND id = 'p_0003'"
    ))
    .await;
    assert!(subjects(run(store.clone(), check.clone()).await).is_empty());
    // ...until that sweep is a day old too.
    db.exec(&format!(
        "UPDATE cursors SET updated_at = {day_ago} WHERE name = 'sweep:parents'"
    ))
    .await;
    let stale = subjects(run(store.clone(), check.clone()).await);
    assert!(stale.contains(&"p_0003".to_string()), "{stale:?}");
    // Every other parent was confirmed by the sweep's own writes.
    assert_eq!(stale, ["p_0003"]);
    // An app pass older than the limit reports the projection again.
    db.exec(&format!(
        "UPDATE runs SET started_at = {day_ago} WHERE kind = 'app:users_status'"
    ))
    .await;
    let mut stale = subjects(run(store.clone(), check.clone()).await);
    stale.sort();
    assert_eq!(stale, ["app:users_status", "p_0003"]);
    // Cut at the limit, the projection's own row is the one kept.
    let one = run_checks(store.as_ref(), &[check], 1, false, None)
        .await
        .unwrap();
    assert_eq!(subjects(one), ["app:users_status"]);
}

/// App passes that run at once (after sweeps of several kinds) all
/// finish: each reads with two connections, and together they used to
/// take every reader (SQLite: 4; Postgres: the pool) and wait for each
/// other until the acquire timeout.
pub async fn concurrent_app_passes_all_finish(make: Make) {
    let (store, db, _prov) = swept_world(make, projection()).await;
    db.exec("UPDATE app_users SET status = 'hacked'").await;
    let opts = AppSweepOptions {
        page: 1,
        force: true,
        ..opts()
    };
    let passes: Vec<_> = (0..6)
        .map(|_| {
            let (store, opts) = (store.clone(), opts.clone());
            tokio::spawn(async move {
                tokio::time::timeout(
                    std::time::Duration::from_secs(20),
                    reconcile_app(store.as_ref(), &projection(), &opts),
                )
                .await
            })
        })
        .collect();
    for pass in passes {
        let (run, _) = pass
            .await
            .unwrap()
            .expect("an app pass waited for a connection")
            .unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
    assert!(
        !app_status(&db)
            .await
            .values()
            .any(|s| s.as_deref() == Some("hacked"))
    );
}

/// Runs each case against a store: `projection_tests!(pg)` where `pg` is
/// a [`Make`].
#[macro_export]
macro_rules! projection_tests {
    ($make:path) => {
        $crate::projection_tests!(@each $make;
            webhook_projects_in_the_same_transaction,
            failing_projection_rolls_back_the_event,
            app_reconcile_repairs_hand_edits,
            breaker_stops_a_mass_rewrite,
            missing_rows_reported_or_inserted,
            rows_of_gone_objects,
            duplicate_keys_are_refused,
            checks_find_cross_provider_cases,
            stale_rows_are_found,
            concurrent_app_passes_all_finish,
            bad_configuration_is_refused);
    };
    (@each $make:path; $($name:ident),*) => {
        mod projections {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::projections::$name($make).await;
                }
            )*
        }
    };
}
