//! The Postgres store for recon: the production store.
//!
//! Everything lives in one schema (`recon` by default) so the store can sit
//! inside an app's database: the app reads the typed views
//! (`recon.stripe_subscriptions`, `recon.clerk_users`, …). Migrations are
//! embedded; [`PgStore::migrate`] (or `recon migrate`) applies them and
//! creates the views given to [`PgStore::with_views`] (the providers bring
//! them: `recon_stripe::views::VIEWS`, …).
//!
//! Writes are batched: every [`StoreTx`] call is one statement with array
//! parameters (`UNNEST`), whatever the number of rows.
//!
//! Provider data is stored exactly even where `jsonb` and `text` cannot hold
//! it (a string with `\u0000`, `-0.0`): `data` then holds a copy with U+FFFD
//! for NUL (what the views show) and the nullable `exact` column the exact
//! document, which every read returns (drift `before`/`after` likewise). An
//! object whose *key* cannot be stored (a NUL in the id, a key longer than
//! [`MAX_KEY_BYTES`]) is quarantined ([`PgStore::quarantined`]) instead of
//! failing its batch; an event whose id cannot be stored is refused as
//! `InvalidInput`. Data errors Postgres gives every time (SQLSTATE classes 22
//! and 54) are `InvalidInput`, not temporary.
//!
//! ```no_run
//! # async fn f() -> recon_core::Result<()> {
//! use recon_core::Store;
//! let store = recon_store_postgres::PgStore::connect("postgres://localhost/app", "recon").await?;
//! // With the views of the providers the app mirrors, e.g.
//! // `.with_views(recon_stripe::views::VIEWS.to_vec())`.
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod exact;
mod nodelay;

pub use exact::MAX_KEY_BYTES;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use recon_core::commit::sweep_floor_name;
use recon_core::project::{AppSync, AppTable, ChangeRow, quote_ident};
use recon_core::store::{
    AppWrite, Cursor, Dangling, DriftCount, DriftQuery, Guard, KeySel, LastSweep, LedgerRow,
    PendingFetch, Reference, SeenRow, StaleObject, Store, StoreTx, View, drift_counts,
};
use recon_core::types::{
    DriftCause, DriftRecord, ObjectKey, RunKind, RunRecord, RunStatus, Snapshot, Source,
    StoredObject, now_ms,
};
use recon_core::{Error, ErrorKind, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{ConnectOptions, Postgres, Row, Transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `0002_views` (the typed views of Stripe and Clerk) was removed when views
/// moved into the provider crates. Its record is dropped before migrating,
/// so a database that applied it migrates on, while any other applied
/// migration this build lacks (a newer release's) still stops `migrate`.
const RETIRED_MIGRATION: i64 = 2;

const C: &str = "postgres";

fn db_err(op: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| classify(op, e)
}

/// Map a sqlx error to recon's kinds: serialisation failures and deadlocks
/// are `Conflict` (the engine retries the commit), connection problems
/// `Unavailable`, data the database refuses every time (SQLSTATE class 22
/// data exceptions such as 22P05 or 22021, class 54 limits such as an index
/// row too large) `InvalidInput`, which is not temporary; the rest `Store`.
fn classify(op: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Database(d) => match d.code().as_deref() {
            Some("40001") | Some("40P01") => ErrorKind::Conflict,
            Some(c) if c.starts_with("08") || c.starts_with("57P") => ErrorKind::Unavailable,
            Some(c) if c.starts_with("22") || c.starts_with("54") => ErrorKind::InvalidInput,
            _ => ErrorKind::Store,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => ErrorKind::Unavailable,
        _ => ErrorKind::Store,
    };
    Error::new(kind, e.to_string())
        .with_component(C)
        .with_operation(op.to_string())
        .with_source(e)
}

/// A recon store in a Postgres schema.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: String,
    app_sync: Option<Arc<AppSync>>,
    growth: Arc<Growth>,
    views: Arc<Vec<View>>,
    /// Unqualified app tables the catalog showed are not in recon's schema.
    not_recons: Arc<NotRecons>,
}

/// The first [`Growth`] threshold: rows written before the first ANALYZE.
const GROWTH_FIRST: u64 = 1000;

/// Rows this process wrote to `objects` and inserted into each app table,
/// and the count at which it next analyses that table (in the background,
/// doubling each time: a handful of analyses as a mirror grows from
/// webhooks alone).
///
/// Why: statements are prepared, and Postgres caches a generic plan after
/// five runs. Planned while the tables were nearly empty, lookups by id
/// scanned the whole kind, and the app table, once they held thousands of
/// rows (ingest with a projection fell to ~580 webhooks/s at 18,000
/// customers). Autovacuum analyses only past 10% change and up to a
/// minute later; an ANALYZE invalidates the cached plans at once.
#[derive(Debug, Default)]
struct Growth {
    tables: std::sync::Mutex<HashMap<String, GrowthCount>>,
}

#[derive(Debug)]
struct GrowthCount {
    written: u64,
    next: u64,
    running: bool,
}

impl Growth {
    /// A commit wrote `n` rows to `table` (a checked name): start an
    /// ANALYZE of it if a threshold was crossed and none is running. Never
    /// waits: SKIP_LOCKED, and a failure (a table recon does not own) only
    /// logs; autovacuum and the sweeps' refresh remain.
    fn note(self: &Arc<Self>, table: &str, n: u64, pool: &PgPool) {
        if n == 0 {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
            let c = tables.entry(table.to_string()).or_insert(GrowthCount {
                written: 0,
                next: GROWTH_FIRST,
                running: false,
            });
            c.written += n;
            if c.written < c.next || c.running {
                return;
            }
            c.running = true;
            c.next = c.written.saturating_mul(2);
        }
        let (me, pool, table) = (self.clone(), pool.clone(), table.to_string());
        rt.spawn(async move {
            let sql = format!("ANALYZE (SKIP_LOCKED) {}", quote_ident(&table));
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await {
                tracing::debug!(table, error = %e, "analyze after growth");
            }
            let mut tables = me.tables.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = tables.get_mut(&table) {
                c.running = false;
            }
        });
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("app_sync", &self.app_sync.is_some())
            .finish()
    }
}

/// Check a schema name: lower-case letters, digits and `_`, not starting
/// with a digit (it is spliced into `CREATE SCHEMA` and `search_path`).
pub fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit())
}

/// `localhost`, 127.0.0.0/8 or ::1 (a Unix socket path is not TCP at all).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl PgStore {
    /// Connect to `url` and use `schema` (created by [`Store::migrate`]).
    /// The URL is never echoed in errors: it may hold a password.
    pub async fn connect(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(url, schema, 10).await
    }

    /// Like [`PgStore::connect`] with a pool size.
    ///
    /// Connections search the store's schema first, then `public`: recon's
    /// own tables and views resolve to the schema (and migrations create
    /// there, see [`Store::migrate`]), while projection queries and checks
    /// can name the app's tables in `public` without a schema.
    pub async fn connect_with(url: &str, schema: &str, max_connections: u32) -> Result<Self> {
        if max_connections < 3 {
            return Err(Error::config(format!(
                "a Postgres pool of {max_connections} connections is too small: the app pass reads with two while it records its heartbeat with a third (use at least 3)"
            ))
            .with_component(C));
        }
        if !valid_schema(schema) {
            return Err(Error::config(format!(
                "bad schema name {schema:?}: use lower-case letters, digits and _"
            )));
        }
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| Error::config("DATABASE_URL is not a valid postgres:// URL"))?
            .options([("search_path", format!("{schema},public"))])
            // Statements carry customers' data: keep them out of the logs.
            .disable_statement_logging();
        // `prefer` (the default) accepts a plain connection; on loopback TLS
        // protects nothing and its handshake cost about 70 ms per pool
        // connection here, so recon takes the plain one. An explicit
        // `sslmode=require` (or stricter) is kept.
        let opts =
            if matches!(opts.get_ssl_mode(), PgSslMode::Prefer) && is_loopback(opts.get_host()) {
                opts.ssl_mode(PgSslMode::Disable)
            } else {
                opts
            };
        let port = opts.get_port();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |_, _| {
                Box::pin(async move {
                    nodelay::apply(port);
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| {
                let msg = match &e {
                    sqlx::Error::Database(d) => {
                        format!("cannot connect to Postgres: {}", d.message())
                    }
                    sqlx::Error::Io(io) => format!("cannot reach Postgres: {io}"),
                    other => format!("cannot connect to Postgres: {other}"),
                };
                Error::new(ErrorKind::Unavailable, msg)
                    .with_component(C)
                    .with_operation("connect")
            })?;
        Ok(PgStore {
            pool,
            schema: schema.to_string(),
            app_sync: None,
            views: Arc::new(Vec::new()),
            not_recons: Arc::new(NotRecons::default()),
            growth: Arc::default(),
        })
    }

    /// Keep these app tables right (projections, checks) and write the
    /// change feed if `sync.feed`; see [`recon_core::project`].
    pub fn with_app_sync(mut self, sync: Arc<AppSync>) -> Self {
        self.app_sync = Some(sync);
        self
    }

    /// The typed views `migrate` creates (or replaces): those of the
    /// registered providers.
    pub fn with_views(mut self, views: Vec<View>) -> Self {
        self.views = Arc::new(views);
        self
    }

    /// Create or replace `views` in the store's schema (`migrate` does it
    /// for those given to [`PgStore::with_views`]): in one transaction, one
    /// installer per schema at a time, and only the views whose definition
    /// changed (each carries its source in a comment), so an up-to-date
    /// database takes no lock on them.
    pub async fn install_views(&self, views: &[View]) -> Result<()> {
        let err = |what: &str, name: &str, e: sqlx::Error| {
            Error::new(
                ErrorKind::Store,
                format!(
                    "{what} view {name}: {e} (a view whose columns changed must be dropped first, with what depends on it)"
                ),
            )
            .with_component(C)
        };
        let mut tx = self.pool.begin().await.map_err(db_err("create views"))?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('recon/views/' || $1, 0))")
            .bind(&self.schema)
            .execute(&mut *tx)
            .await
            .map_err(db_err("create views"))?;
        // Behind a long reader of a view, give up rather than stall every
        // query queued behind this lock.
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await
            .map_err(db_err("create views"))?;
        for v in views {
            v.check_name().map_err(|e| e.with_component(C))?;
            let qualified = format!("{}.{}", self.schema, v.name);
            let tag = format!("recon view: {}", v.postgres);
            let current: Option<String> =
                sqlx::query_scalar("SELECT obj_description(to_regclass($1), 'pg_class')")
                    .bind(&qualified)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| err("reading", v.name, e))?;
            if current.as_deref() == Some(tag.as_str()) {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE OR REPLACE VIEW {qualified} AS\n{}",
                v.postgres
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| err("creating", v.name, e))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "COMMENT ON VIEW {qualified} IS '{}'",
                tag.replace('\'', "''")
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| err("tagging", v.name, e))?;
        }
        tx.commit().await.map_err(db_err("create views"))?;
        self.not_recons.clear();
        Ok(())
    }

    /// The pool, for apps that want to query the views through it.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The highest migration version this build embeds.
    pub fn expected_migration() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

/// The `exact` column of a row, if the query selected it and it is set.
fn exact_of(r: &PgRow, col: &str) -> std::result::Result<Option<serde_json::Value>, sqlx::Error> {
    match r.try_get(col) {
        Err(sqlx::Error::ColumnNotFound(_)) => Ok(None),
        other => other,
    }
}

fn stored_from_row(r: &PgRow) -> std::result::Result<StoredObject, sqlx::Error> {
    let data: serde_json::Value = r.try_get("data")?;
    let mut out = StoredObject {
        snapshot: Snapshot {
            key: ObjectKey {
                provider: r.try_get("provider")?,
                account: r.try_get("account")?,
                kind: r.try_get("kind")?,
                id: r.try_get("id")?,
            },
            version: r.try_get("version")?,
            deleted: r.try_get("deleted")?,
            status: r.try_get("status")?,
            owner: r.try_get("owner_id")?,
            email: r.try_get("email")?,
            data,
            hash: r.try_get("hash")?,
        },
        confirmed_at: r.try_get("confirmed_at")?,
    };
    // What jsonb and text could not hold as it is (see `exact`).
    if let Some(serde_json::Value::Object(mut x)) = exact_of(r, "exact")? {
        let s = &mut out.snapshot;
        let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_string));
        if let Some(d) = x.remove("data") {
            s.data = d;
        }
        s.status = text(x.remove("status"));
        s.owner = text(x.remove("owner"));
        s.email = text(x.remove("email"));
    }
    Ok(out)
}

const OBJECT_COLS: &str = "provider, account, kind, id, version, deleted, status, owner_id, email, data, hash, confirmed_at";
// The same columns qualified, for joins. Lookups by id probe the primary key
// once per id through a LATERAL subquery, whatever the statistics say: on a
// table filled since its last ANALYZE, `id = ANY($4)` and a plain join both
// became a scan of the whole kind per batch.
const OBJECT_COLS_O: &str = "o.provider, o.account, o.kind, o.id, o.version, o.deleted, o.status, o.owner_id, o.email, o.data, o.hash, o.confirmed_at, o.exact";
// The same without the document (`data` comes back as JSON null).
// (`exact` is left out too: status, owner and email may hold U+FFFD for NUL.)
const OBJECT_HEAD_COLS_O: &str = "o.provider, o.account, o.kind, o.id, o.version, o.deleted, o.status, o.owner_id, o.email, 'null'::jsonb AS data, o.hash, o.confirmed_at";

/// Stored objects of one `(provider, account, kind)` by id, in a
/// transaction or from the pool; `cols` is `OBJECT_COLS_O` or, without the
/// documents, `OBJECT_HEAD_COLS_O`.
async fn load_objects<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    cols: &str,
    provider: &str,
    account: &str,
    kind: &str,
    ids: &[&str],
    op: &'static str,
) -> Result<Vec<StoredObject>> {
    // A key that cannot be stored is in no row (and cannot be bound).
    let ids: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| exact::key_problem(&[provider, account, kind, id]).is_none())
        .collect();
    if exact::key_problem(&[provider, account, kind]).is_some() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {cols} FROM UNNEST($4::text[]) AS t(id)
         CROSS JOIN LATERAL (SELECT * FROM objects x
             WHERE x.provider = $1 AND x.account = $2 AND x.kind = $3 AND x.id = t.id LIMIT 1) o"
    )))
    .bind(provider)
    .bind(account)
    .bind(kind)
    .bind(&ids)
    .fetch_all(executor)
    .await
    .map_err(db_err(op))?;
    rows.iter()
        .map(stored_from_row)
        .collect::<std::result::Result<_, _>>()
        .map_err(db_err(op))
}

fn pending_from_row(r: &PgRow) -> std::result::Result<PendingFetch, sqlx::Error> {
    let attempts: i32 = r.try_get("attempts")?;
    Ok(PendingFetch {
        key: ObjectKey {
            provider: r.try_get("provider")?,
            account: r.try_get("account")?,
            kind: r.try_get("kind")?,
            id: r.try_get("id")?,
        },
        reason: r.try_get("reason")?,
        queued_at: r.try_get("queued_at")?,
        attempts: attempts.max(0) as u32,
        next_at: r.try_get("next_at")?,
        last_error: r.try_get("last_error")?,
    })
}

/// The key columns of `keys`, as arrays for `UNNEST`.
fn key_columns<'k>(keys: &[&'k ObjectKey]) -> [Vec<&'k str>; 4] {
    let mut out: [Vec<&str>; 4] = Default::default();
    for k in keys {
        out[0].push(k.provider.as_str());
        out[1].push(k.account.as_str());
        out[2].push(k.kind.as_str());
        out[3].push(k.id.as_str());
    }
    out
}

fn run_from_row(r: &PgRow) -> std::result::Result<RunRecord, sqlx::Error> {
    let counts: serde_json::Value = r.try_get("counts")?;
    let run_kind: String = r.try_get("run_kind")?;
    let status: String = r.try_get("status")?;
    Ok(RunRecord {
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        account: r.try_get("account")?,
        kind: r.try_get("kind")?,
        run_kind: RunKind::parse(&run_kind).unwrap_or(RunKind::Sweep),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        dry_run: r.try_get("dry_run")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        counts: serde_json::from_value(counts).unwrap_or_default(),
        mismatch_ratio: r.try_get("mismatch_ratio")?,
        error: r.try_get("error")?,
    })
}

/// Refuse an event the ledger cannot key (a NUL in its id, type or
/// account, an id longer than [`MAX_KEY_BYTES`]): it would be refused by
/// Postgres on every delivery, so it is invalid input, not a store outage.
fn check_event(e: &recon_core::ProviderEvent) -> Result<()> {
    match recon_core::keys::event_problem(e) {
        Some(p) => Err(Error::invalid(format!("the event cannot be recorded: {p}"))
            .with_component(C)
            .with_operation("ledger insert")),
        None => Ok(()),
    }
}

/// Text bound into a column: NUL replaced by U+FFFD (run errors, drift keys).
fn text_col(s: &str) -> std::borrow::Cow<'_, str> {
    exact::no_nul(s)
}

/// A quarantine row: an object whose key cannot be stored.
struct QuarantineRow {
    provider: String,
    account: String,
    kind: String,
    id: String,
    reason: &'static str,
    raw: Vec<u8>,
}

pub use recon_core::keys::Quarantined;
use recon_core::keys::{QuarantinedRow, escaped_key};

impl PgStore {
    /// Objects quarantined because their key cannot be stored, newest first.
    pub async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>> {
        let rows: Vec<QuarantinedRow> = sqlx::query_as(
            "SELECT provider, account, kind, object_id, reason, raw, detected_at
             FROM quarantine ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit.max(1) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("quarantined"))?;
        Ok(rows.into_iter().map(Quarantined::from).collect())
    }
}

/// A name spliced into SQL (an app table, its key and owned columns):
/// lower-case letters, digits and `_`, not starting with a digit, the table
/// optionally `schema.table`. [`recon_core::project::Projection::validate`]
/// checks the same; the store checks again because it splices them.
fn valid_ident(s: &str) -> bool {
    valid_schema(s)
}

/// recon's own tables and views in its schema (a test keeps the list in
/// step with the migrations). With `public` after the schema on the search
/// path, an unqualified app table of one of these names would resolve to
/// recon's.
const RECON_RELATIONS: &[&str] = &[
    "_sqlx_migrations",
    "changes",
    "cursors",
    "drift_log",
    "event_ledger",
    "objects",
    "pending_fetches",
    "quarantine",
    "recon_clock",
    "runs",
    "sweep_seen",
    "sweep_staged",
];

/// Unqualified app table names the catalog showed are not a view in
/// recon's schema. A name that resolves to one (a provider's view, created
/// by any recon release, whatever this store was told) is recon's, and app
/// writes through it would reach the mirror (such views are updatable):
/// refused. recon's own tables are refused by name (`RECON_RELATIONS`).
/// Checked once per name; emptied when views are installed.
#[derive(Default)]
struct NotRecons(std::sync::Mutex<std::collections::HashSet<String>>);

impl NotRecons {
    async fn check<'e, E: sqlx::PgExecutor<'e>>(
        &self,
        ex: E,
        table: &str,
        schema: &str,
    ) -> Result<()> {
        if table.contains('.') || self.0.lock().expect("not_recons").contains(table) {
            return Ok(());
        }
        let in_recon: Option<bool> = sqlx::query_scalar(
            "SELECT n.nspname = $2 AND c.relkind = 'v' FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
        )
        .bind(table)
        .bind(schema)
        .fetch_optional(ex)
        .await
        .map_err(db_err("check app table"))?;
        match in_recon {
            Some(true) => Err(Error::config(format!(
                "app table {table:?} is recon's own (schema {schema:?}); name the app's table with its schema, e.g. public.{table}"
            ))
            .with_component(C)),
            Some(false) => {
                self.0.lock().expect("not_recons").insert(table.to_string());
                Ok(())
            }
            // Not there (yet): the statement that uses it will say so.
            None => Ok(()),
        }
    }

    fn clear(&self) {
        self.0.lock().expect("not_recons").clear();
    }
}

/// Check an app table's names (they are spliced into SQL) and that it is
/// not one of recon's own: unqualified with a name of
/// [`RECON_RELATIONS`] or a provider's view, or in the store's schema.
fn check_app_table(t: &AppTable<'_>, schema: &str, views: &[View]) -> Result<()> {
    let parts: Vec<&str> = t.table.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| valid_ident(p))
        && valid_ident(t.key_column)
        && !t.columns.is_empty()
        && t.columns
            .iter()
            .all(|c| valid_ident(c) && c != t.key_column);
    if !ok {
        return Err(Error::config(format!(
            "app table {:?} (key {:?}, columns {:?}): names must be lower-case letters, digits and _",
            t.table, t.key_column, t.columns
        ))
        .with_component(C));
    }
    let recons = match parts[..] {
        [name] => RECON_RELATIONS.contains(&name) || views.iter().any(|v| v.name == name),
        [ns, _] => ns == schema,
        _ => false,
    };
    if recons {
        return Err(Error::config(format!(
            "app table {:?} is recon's own (schema {schema:?}); name the app's table with its schema, e.g. public.{}",
            t.table,
            parts[parts.len() - 1]
        ))
        .with_component(C));
    }
    Ok(())
}

/// A query or check as written by the user, ready to be wrapped as a
/// subquery: without trailing `;` (a trailing `--` comment is harmless, the
/// wrapper puts the closing parenthesis on its own line).
fn user_sql(sql: &str) -> &str {
    sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// `jsonb_build_object('c1', a."c1", …)` over `cols` (chunks of 50 pairs
/// joined with `||`: a function takes at most 100 arguments).
fn pg_json_of(alias: &str, cols: &[String]) -> String {
    let parts: Vec<String> = cols
        .chunks(50)
        .map(|chunk| {
            let args: Vec<String> = chunk
                .iter()
                .map(|c| format!("'{c}', {alias}.{}", quote_ident(c)))
                .collect();
            format!("jsonb_build_object({})", args.join(", "))
        })
        .collect();
    if parts.is_empty() {
        "'{}'::jsonb".to_string()
    } else {
        parts.join(" || ")
    }
}

/// Keys compare as text in byte order (`COLLATE "C"`), whatever the
/// database's collation: the same order in both stores and in Rust.
const KEY_ORDER: &str = "COLLATE \"C\"";

/// The key filter of `keys` on `key_expr` (bound as `$1`, the page size
/// as `$2`) and the statement's tail; `None`: every row with a key.
///
/// Only a page or a scan says `key IS NOT NULL` (`= ANY` never matches a
/// null): on a table without planner statistics, Postgres took that
/// condition for the index probe and filtered `= ANY` over every row of the
/// kind.
fn key_filter(keys: Option<KeySel<'_>>, key_col: &str, key_expr: &str) -> (String, &'static str) {
    match keys {
        Some(KeySel::Keys(_)) => (format!("{key_expr} = ANY($1::text[])"), ""),
        Some(KeySel::Page { .. }) => (
            format!("{key_col} IS NOT NULL AND ($1::text IS NULL OR {key_expr} {KEY_ORDER} > $1)"),
            "LIMIT $2",
        ),
        None => (format!("{key_col} IS NOT NULL"), ""),
    }
}

/// The statement behind `app_desired` (`keys` given) and `app_scan` of a
/// query (`None`): its rows in key order, each value through the app
/// table's row type, so it comes back as the app column would hold it (an
/// integer column turns "5" into 5) and compares equal to the app's.
fn desired_sql(table: &AppTable<'_>, query: &str, keys: Option<KeySel<'_>>) -> String {
    let k = "q.\"key\"::text";
    let (filter, limit) = key_filter(keys, "q.\"key\"", k);
    format!(
        "SELECT {k} AS key, {r} AS v
         FROM (\n{query}\n) q
         CROSS JOIN LATERAL jsonb_populate_record(NULL::{t}, {q}) r
         WHERE {filter}
         ORDER BY {k} {KEY_ORDER} {limit}",
        r = pg_json_of("r", table.columns),
        q = pg_json_of("q", table.columns),
        t = quote_ident(table.table),
        query = user_sql(query),
    )
}

/// The statement behind `app_current` (`keys` given) and `app_scan` of the
/// app table (`None`): the owned columns' values in key order.
fn current_sql(table: &AppTable<'_>, keys: Option<KeySel<'_>>) -> String {
    let col = format!("t.{}", quote_ident(table.key_column));
    let k = format!("{col}::text");
    let (filter, limit) = key_filter(keys, &col, &k);
    format!(
        "SELECT {k} AS key, {v} AS v FROM {t} t
         WHERE {filter}
         ORDER BY {k} {KEY_ORDER} {limit}",
        v = pg_json_of("t", table.columns),
        t = quote_ident(table.table),
    )
}

/// Run an app statement returning `(key, json)` rows, built with
/// [`key_filter`] for `keys`.
async fn app_rows(
    tx: &mut Transaction<'static, Postgres>,
    sql: String,
    keys: KeySel<'_>,
    op: &'static str,
) -> Result<Vec<(String, serde_json::Value)>> {
    let q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    let q = match keys {
        KeySel::Keys(keys) => {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            q.bind(keys.iter().map(|k| text_col(k)).collect::<Vec<_>>())
        }
        KeySel::Page { after, limit } => q.bind(after.map(text_col)).bind(i64::from(limit)),
    };
    q.fetch_all(&mut **tx).await.map_err(db_err(op))
}

fn change_from_row(r: &PgRow) -> std::result::Result<ChangeRow, sqlx::Error> {
    Ok(ChangeRow {
        seq: r.try_get("seq")?,
        provider: r.try_get("provider")?,
        account: r.try_get("account")?,
        kind: r.try_get("kind")?,
        object_id: r.try_get("object_id")?,
        app_table: r.try_get("app_table")?,
        app_key: r.try_get("app_key")?,
        cause: r.try_get("cause")?,
        before: r.try_get("before")?,
        after: r.try_get("after")?,
        at: r.try_get("at")?,
    })
}

/// An open Postgres transaction.
pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    /// The store's schema (app tables are never in it).
    schema: String,
    /// Rows written per table, noted in the store's [`Growth`] at commit.
    written: HashMap<String, u64>,
    growth: Arc<Growth>,
    pool: PgPool,
    /// The providers' views (app tables are never one of them).
    views: Arc<Vec<View>>,
    not_recons: Arc<NotRecons>,
}

impl PgTx {
    /// Keep objects whose key cannot be stored, instead of failing the batch.
    async fn quarantine(&mut self, rows: &[QuarantineRow]) -> Result<()> {
        for r in rows {
            tracing::warn!(
                provider = %r.provider, account = %r.account, kind = %r.kind, id = %r.id,
                reason = r.reason, "object quarantined: the store cannot key it"
            );
        }
        let col = |f: fn(&QuarantineRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let raw: Vec<&[u8]> = rows.iter().map(|r| r.raw.as_slice()).collect();
        sqlx::query(
            "INSERT INTO quarantine (provider, account, kind, object_id, reason, raw, detected_at)
             SELECT t.*, $7 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS t",
        )
        .bind(col(|r| &r.provider))
        .bind(col(|r| &r.account))
        .bind(col(|r| &r.kind))
        .bind(col(|r| &r.id))
        .bind(col(|r| r.reason))
        .bind(&raw)
        .bind(now_ms())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("quarantine"))?;
        Ok(())
    }
}

#[async_trait]
impl StoreTx for PgTx {
    async fn ledger_insert(&mut self, rows: &[LedgerRow<'_>]) -> Result<Vec<bool>> {
        for r in rows {
            check_event(r.event)?;
        }
        let now = now_ms();
        let mut p = Vec::with_capacity(rows.len());
        let mut a = Vec::with_capacity(rows.len());
        let mut id = Vec::with_capacity(rows.len());
        let mut ty = Vec::with_capacity(rows.len());
        let mut cr = Vec::with_capacity(rows.len());
        let mut src = Vec::with_capacity(rows.len());
        let mut run = Vec::with_capacity(rows.len());
        for r in rows {
            p.push(r.event.provider.as_str());
            a.push(r.event.account.as_str());
            id.push(r.event.event_id.as_str());
            ty.push(r.event.event_type.as_str());
            cr.push(r.event.created);
            src.push(r.source.as_str());
            run.push(r.run_id);
        }
        let inserted: Vec<(String, String, String)> = sqlx::query_as(
            "INSERT INTO event_ledger (provider, account, event_id, event_type, created, source, run_id, received_at)
             SELECT t.*, $8 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[]) AS t
             ON CONFLICT DO NOTHING
             RETURNING provider, account, event_id",
        )
        .bind(&p)
        .bind(&a)
        .bind(&id)
        .bind(&ty)
        .bind(&cr)
        .bind(&src)
        .bind(&run)
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err("ledger insert"))?;
        let set: std::collections::HashSet<(String, String, String)> =
            inserted.into_iter().collect();
        Ok(rows
            .iter()
            .map(|r| {
                set.contains(&(
                    r.event.provider.clone(),
                    r.event.account.clone(),
                    r.event.event_id.clone(),
                ))
            })
            .collect())
    }

    async fn load(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        load_objects(
            &mut *self.tx,
            OBJECT_COLS_O,
            provider,
            account,
            kind,
            ids,
            "load",
        )
        .await
    }

    async fn load_heads(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        load_objects(
            &mut *self.tx,
            OBJECT_HEAD_COLS_O,
            provider,
            account,
            kind,
            ids,
            "load",
        )
        .await
    }

    async fn upsert(&mut self, rows: &[&Snapshot], guard: Guard) -> Result<Vec<bool>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let n = rows.len();
        let (mut p, mut a, mut k, mut id) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut v, mut d, mut st, mut ow, mut em) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut js, mut h) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut xs: Vec<Option<String>> = Vec::with_capacity(n);
        let mut quarantine = Vec::new();
        for s in rows {
            let key = [
                s.key.provider.as_str(),
                s.key.account.as_str(),
                s.key.kind.as_str(),
                s.key.id.as_str(),
            ];
            if let Some(reason) = exact::key_problem(&key) {
                quarantine.push(QuarantineRow {
                    provider: escaped_key(&s.key.provider),
                    account: escaped_key(&s.key.account),
                    kind: escaped_key(&s.key.kind),
                    id: escaped_key(&s.key.id),
                    reason,
                    raw: serde_json::to_vec(s).map_err(Error::from)?,
                });
                continue;
            }
            p.push(s.key.provider.as_str());
            a.push(s.key.account.as_str());
            k.push(s.key.kind.as_str());
            id.push(s.key.id.as_str());
            v.push(s.version);
            d.push(s.deleted);
            // What text and jsonb cannot hold as it is goes to `exact` too.
            let owner = s
                .owner
                .as_deref()
                .filter(|o| o.len() <= exact::MAX_INDEXED_BYTES);
            let (status, owner, email) = (
                s.status.as_deref().map(exact::no_nul),
                owner.map(exact::no_nul),
                s.email.as_deref().map(exact::no_nul),
            );
            let (doc, doc_exact) = exact::encode_doc(&s.data).map_err(Error::from)?;
            let altered = |c: &Option<std::borrow::Cow<'_, str>>| {
                matches!(c, Some(std::borrow::Cow::Owned(_)))
            };
            let fields_altered = altered(&status)
                || altered(&owner)
                || altered(&email)
                || owner.is_none() != s.owner.is_none();
            xs.push(if doc_exact.is_some() || fields_altered {
                Some(
                    serde_json::to_string(&serde_json::json!({
                        "data": s.data, "status": s.status, "owner": s.owner, "email": s.email,
                    }))
                    .map_err(Error::from)?,
                )
            } else {
                None
            });
            st.push(status.map(|c| c.into_owned()));
            ow.push(owner.map(|c| c.into_owned()));
            em.push(email.map(|c| c.into_owned()));
            js.push(doc);
            h.push(s.hash.as_str());
        }
        if !quarantine.is_empty() {
            self.quarantine(&quarantine).await?;
        }
        if p.is_empty() {
            return Ok(vec![false; rows.len()]);
        }
        let cmp = match guard {
            Guard::Newer => "<",
            Guard::NewerOrEqual => "<=",
        };
        let sql = format!(
            "INSERT INTO objects ({OBJECT_COLS}, exact)
             SELECT t.p, t.a, t.k, t.i, t.v, t.d, t.s, t.o, t.e, t.j::jsonb, t.h, $12, t.x::json
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::bool[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $13::text[])
                  AS t(p, a, k, i, v, d, s, o, e, j, h, x)
             ON CONFLICT (provider, account, kind, id) DO UPDATE SET
                version = EXCLUDED.version, deleted = EXCLUDED.deleted, status = EXCLUDED.status,
                owner_id = EXCLUDED.owner_id, email = EXCLUDED.email, data = EXCLUDED.data, exact = EXCLUDED.exact,
                hash = EXCLUDED.hash, confirmed_at = EXCLUDED.confirmed_at
             WHERE objects.version {cmp} EXCLUDED.version
               AND NOT (objects.deleted AND NOT EXCLUDED.deleted AND EXCLUDED.version <= objects.version)
             RETURNING provider, account, kind, id"
        );
        let written: Vec<(String, String, String, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(&p)
                .bind(&a)
                .bind(&k)
                .bind(&id)
                .bind(&v)
                .bind(&d)
                .bind(&st)
                .bind(&ow)
                .bind(&em)
                .bind(&js)
                .bind(&h)
                .bind(now)
                .bind(&xs)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(db_err("upsert"))?;
        *self.written.entry("objects".into()).or_default() += written.len() as u64;
        let set: std::collections::HashSet<(String, String, String, String)> =
            written.into_iter().collect();
        Ok(rows
            .iter()
            .map(|s| {
                set.contains(&(
                    s.key.provider.clone(),
                    s.key.account.clone(),
                    s.key.kind.clone(),
                    s.key.id.clone(),
                ))
            })
            .collect())
    }

    async fn insert_drift(&mut self, records: &[DriftRecord]) -> Result<()> {
        let n = records.len();
        let (mut p, mut a, mut k, mut id) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut bx, mut ax) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut run, mut src, mut cause, mut before, mut after, mut at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let doc = |v: &Option<serde_json::Value>| match v {
            Some(v) => exact::encode_doc(v)
                .map(|(j, x)| (Some(j), x))
                .map_err(Error::from),
            None => Ok((None, None)),
        };
        for r in records {
            p.push(text_col(&r.key.provider));
            a.push(text_col(&r.key.account));
            k.push(text_col(&r.key.kind));
            id.push(text_col(&r.key.id));
            run.push(r.run_id.as_deref());
            src.push(r.source.as_str());
            cause.push(r.cause.as_str());
            let ((b, b_exact), (af, af_exact)) = (doc(&r.before)?, doc(&r.after)?);
            before.push(b);
            after.push(af);
            bx.push(b_exact);
            ax.push(af_exact);
            at.push(r.detected_at);
        }
        sqlx::query(
            "INSERT INTO drift_log (provider, account, kind, object_id, run_id, source, cause, before, after, detected_at, before_exact, after_exact)
             SELECT t.p, t.a, t.k, t.i, t.r, t.s, t.c, t.b::jsonb, t.af::jsonb, t.at, t.bx::json, t.ax::json
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[])
                  AS t(p, a, k, i, r, s, c, b, af, at, bx, ax)",
        )
        .bind(&p)
        .bind(&a)
        .bind(&k)
        .bind(&id)
        .bind(&run)
        .bind(&src)
        .bind(&cause)
        .bind(&before)
        .bind(&after)
        .bind(&at)
        .bind(&bx)
        .bind(&ax)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("insert drift"))?;
        Ok(())
    }

    async fn set_cursor(&mut self, c: &Cursor) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (provider, account, name) DO UPDATE
                SET value = GREATEST(cursors.value, EXCLUDED.value), updated_at = EXCLUDED.updated_at",
        )
        .bind(&c.provider)
        .bind(&c.account)
        .bind(&c.name)
        .bind(c.value)
        .bind(c.updated_at)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("set cursor"))?;
        Ok(())
    }

    async fn lock_kind(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        exclusive: bool,
    ) -> Result<()> {
        // Advisory locks are per database: the schema is part of the key so
        // two recon schemas in one database never wait on each other.
        let sql = if exclusive {
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '/' || $1, 0))"
        } else {
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(current_schema() || '/' || $1, 0))"
        };
        sqlx::query(sql)
            .bind(format!("floor/{provider}/{account}/{kind}"))
            .execute(&mut *self.tx)
            .await
            .map_err(db_err("lock kind"))?;
        Ok(())
    }

    async fn seen_versions(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, i64)>> {
        // An id that cannot be stored was never marked seen (nor bound).
        let ids: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| exact::key_problem(&[id]).is_none())
            .collect();
        sqlx::query_as(
            "SELECT s.id, max(s.version) FROM runs r
             JOIN sweep_seen s ON s.run_id = r.id AND s.id = ANY($4)
             WHERE r.status = 'running' AND r.run_kind = 'sweep' AND NOT r.dry_run
               AND r.provider = $1 AND r.account = $2 AND r.kind = $3
             GROUP BY s.id",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(&ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err("seen versions"))
    }

    async fn enqueue_fetches(&mut self, keys: &[&ObjectKey], reason: &str, now: i64) -> Result<()> {
        // An object whose key cannot be stored is quarantined: nothing to fetch.
        let mut keys: Vec<&ObjectKey> = keys
            .iter()
            .copied()
            .filter(|k| exact::key_problem(&[&k.provider, &k.account, &k.kind, &k.id]).is_none())
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        let [p, a, k, i] = key_columns(&keys);
        sqlx::query(
            "INSERT INTO pending_fetches (provider, account, kind, id, reason, queued_at, attempts, next_at)
             SELECT t.p, t.a, t.k, t.i, $5, $6, 0, $6
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS t(p, a, k, i)
             ON CONFLICT (provider, account, kind, id) DO UPDATE SET
                reason = EXCLUDED.reason,
                queued_at = GREATEST(pending_fetches.queued_at + 1, EXCLUDED.queued_at),
                next_at = EXCLUDED.next_at",
        )
        .bind(&p)
        .bind(&a)
        .bind(&k)
        .bind(&i)
        .bind(reason)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("queue fetches"))?;
        Ok(())
    }

    async fn resolve_fetches(&mut self, done: &[(&ObjectKey, i64)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        // Key order, as enqueue_fetches locks rows: no deadlock between the two.
        let mut done: Vec<(&ObjectKey, i64)> = done
            .iter()
            .filter(|(k, _)| {
                exact::key_problem(&[&k.provider, &k.account, &k.kind, &k.id]).is_none()
            })
            .copied()
            .collect();
        done.sort();
        let keys: Vec<&ObjectKey> = done.iter().map(|(k, _)| *k).collect();
        let [p, a, k, i] = key_columns(&keys);
        let q: Vec<i64> = done.iter().map(|(_, q)| *q).collect();
        sqlx::query(
            "DELETE FROM pending_fetches f
             USING UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) AS t(p, a, k, i, q)
             WHERE f.provider = t.p AND f.account = t.a AND f.kind = t.k AND f.id = t.i AND f.queued_at <= t.q",
        )
        .bind(&p)
        .bind(&a)
        .bind(&k)
        .bind(&i)
        .bind(&q)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("resolve fetches"))?;
        Ok(())
    }

    async fn cursor(
        &mut self,
        provider: &str,
        account: &str,
        name: &str,
    ) -> Result<Option<Cursor>> {
        let r: Option<(i64, i64)> =
            sqlx::query_as("SELECT value, updated_at FROM cursors WHERE provider = $1 AND account = $2 AND name = $3")
                .bind(provider)
                .bind(account)
                .bind(name)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err(db_err("read cursor"))?;
        Ok(r.map(|(value, updated_at)| Cursor {
            provider: provider.into(),
            account: account.into(),
            name: name.into(),
            value,
            updated_at,
        }))
    }

    async fn lock_objects(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        // In id order (the order every commit writes in), so two commits
        // locking overlapping objects cannot deadlock.
        sqlx::query(
            "SELECT 1 FROM objects WHERE provider = $1 AND account = $2 AND kind = $3
             AND id = ANY($4::text[]) ORDER BY id COLLATE \"C\" FOR UPDATE",
        )
        .bind(text_col(provider))
        .bind(text_col(account))
        .bind(text_col(kind))
        .bind(ids.iter().map(|i| text_col(i)).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("lock objects"))?;
        Ok(())
    }

    async fn lock_app_keys(&mut self, projection: &str, keys: &[&str]) -> Result<()> {
        let mut keys: Vec<&str> = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        // One statement; the subquery's ORDER BY keeps it from being
        // flattened, so the locks are taken row by row in key order and two
        // transactions locking overlapping keys cannot deadlock. Not keyed
        // by schema (unlike lock_kind): the app rows are shared by every
        // recon schema in the database.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('recon/app/' || $1 || '/' || s.k, 0))
             FROM (SELECT u.k FROM unnest($2::text[]) WITH ORDINALITY AS u(k, n) ORDER BY u.n) s",
        )
        .bind(text_col(projection))
        .bind(keys.iter().map(|k| text_col(k)).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("lock app keys"))?;
        Ok(())
    }

    async fn app_desired(
        &mut self,
        table: &AppTable<'_>,
        query: &str,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        check_app_table(table, &self.schema, &self.views)?;
        self.not_recons
            .check(&mut *self.tx, table.table, &self.schema)
            .await?;
        let sql = desired_sql(table, query, Some(keys));
        app_rows(&mut self.tx, sql, keys, "app desired").await
    }

    async fn app_current(
        &mut self,
        table: &AppTable<'_>,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        check_app_table(table, &self.schema, &self.views)?;
        self.not_recons
            .check(&mut *self.tx, table.table, &self.schema)
            .await?;
        let sql = current_sql(table, Some(keys));
        app_rows(&mut self.tx, sql, keys, "app current").await
    }

    async fn app_write(
        &mut self,
        table: &AppTable<'_>,
        op: AppWrite,
        rows: &[(String, serde_json::Value)],
    ) -> Result<u64> {
        check_app_table(table, &self.schema, &self.views)?;
        self.not_recons
            .check(&mut *self.tx, table.table, &self.schema)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        // One JSON array of rows holding the key column and the owned
        // columns, read through the table's row type (values converted to
        // the columns' types, the key matched in its own type).
        let records: Vec<serde_json::Value> = rows
            .iter()
            .map(|(key, values)| {
                let mut m = serde_json::Map::new();
                m.insert(
                    table.key_column.to_string(),
                    serde_json::Value::String(key.clone()),
                );
                if op != AppWrite::Delete {
                    for c in table.columns {
                        let v = values.get(c).cloned().unwrap_or(serde_json::Value::Null);
                        m.insert(c.clone(), v);
                    }
                }
                serde_json::Value::Object(m)
            })
            .collect();
        let t = quote_ident(table.table);
        let key = quote_ident(table.key_column);
        let src = format!("jsonb_populate_recordset(NULL::{t}, $1::jsonb) r");
        let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
        let sql = match op {
            AppWrite::Update => format!(
                "UPDATE {t} AS t SET {set} FROM {src} WHERE t.{key} = r.{key}",
                set = cols
                    .iter()
                    .map(|c| format!("{c} = r.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            AppWrite::Insert => format!(
                "INSERT INTO {t} ({key}, {names}) SELECT r.{key}, {values} FROM {src}",
                names = cols.join(", "),
                values = cols
                    .iter()
                    .map(|c| format!("r.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            AppWrite::Delete => format!("DELETE FROM {t} AS t USING {src} WHERE t.{key} = r.{key}"),
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::Value::Array(records))
            .execute(&mut *self.tx)
            .await
            .map_err(db_err("app write"))?;
        if op != AppWrite::Update {
            *self.written.entry(table.table.to_string()).or_default() += done.rows_affected();
        }
        Ok(done.rows_affected())
    }

    async fn append_changes(&mut self, rows: &[ChangeRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len();
        let (mut p, mut a, mut k, mut id) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut tb, mut ak, mut cause, mut before, mut after, mut at) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        // jsonb cannot hold NUL: the feed keeps the copy with U+FFFD.
        let doc = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .map(|v| serde_json::to_string(&exact::for_jsonb(v)))
                .transpose()
                .map_err(Error::from)
        };
        for r in rows {
            p.push(text_col(&r.provider));
            a.push(text_col(&r.account));
            k.push(text_col(&r.kind));
            id.push(text_col(&r.object_id));
            tb.push(r.app_table.as_deref().map(text_col));
            ak.push(r.app_key.as_deref().map(text_col));
            cause.push(text_col(&r.cause));
            before.push(doc(&r.before)?);
            after.push(doc(&r.after)?);
            at.push(r.at);
        }
        // The lock (held to commit) makes sequence order commit order: a
        // reader that has seen `seq` N never later finds a smaller one
        // committed, so `changes(since)` with the last seq seen loses
        // nothing. It serialises only transactions that append to the feed,
        // from here to their commit. Taken before the first nextval (the
        // insert's rows join the lock's row). Each new seq is announced;
        // NOTIFY is delivered at commit, and not at all on rollback.
        sqlx::query(
            "WITH l AS (
                 SELECT pg_advisory_xact_lock(hashtextextended('recon/changes/' || current_schema(), 0))
             ), ins AS (
                 INSERT INTO changes (provider, account, kind, object_id, app_table, app_key, cause, before, after, at)
                 SELECT t.p, t.a, t.k, t.i, t.tb, t.ak, t.c, t.b::jsonb, t.af::jsonb, t.at
                 FROM l, UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[])
                      WITH ORDINALITY AS t(p, a, k, i, tb, ak, c, b, af, at, ord)
                 ORDER BY t.ord
                 RETURNING seq
             )
             SELECT pg_notify('recon_changes', seq::text) FROM ins",
        )
        .bind(&p)
        .bind(&a)
        .bind(&k)
        .bind(&id)
        .bind(&tb)
        .bind(&ak)
        .bind(&cause)
        .bind(&before)
        .bind(&after)
        .bind(&at)
        .execute(&mut *self.tx)
        .await
        .map_err(db_err("append changes"))?;
        Ok(())
    }

    async fn check_rows(&mut self, sql: &str, limit: u32) -> Result<Vec<serde_json::Value>> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(q) FROM (\n{}\n) q LIMIT $1",
            user_sql(sql)
        )))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err("check"))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let (written, growth, pool) = (self.written, self.growth, self.pool);
        self.tx.commit().await.map_err(db_err("commit"))?;
        for (table, n) in written {
            growth.note(&table, n, &pool);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        // The schema name was validated in connect().
        // The schema name was checked by valid_schema() in connect().
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            self.schema
        )))
        .execute(&self.pool)
        .await
        .map_err(db_err("create schema"))?;
        // Migrations create unqualified: they must land in the store's
        // schema, the first entry of the search path (`<schema>,public`).
        // Were it missing, Postgres would create in `public`, among the
        // app's tables; refuse instead. (Every connection has the same
        // search path, and the schema exists for all once created.)
        let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err("migrate"))?;
        if current.as_deref() != Some(self.schema.as_str()) {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "migrations would run in schema {current:?}, not {:?}; refusing",
                    self.schema
                ),
            )
            .with_component(C));
        }
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("migrate"))?;
        if recorded.is_some() {
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
                .bind(RETIRED_MIGRATION)
                .execute(&self.pool)
                .await
                .map_err(db_err("migrate"))?;
        }
        MIGRATOR.run(&self.pool).await.map_err(|e| {
            Error::new(ErrorKind::Store, format!("migration failed: {e}")).with_component(C)
        })?;
        // The providers' views, after the tables they read.
        self.install_views(&self.views).await?;
        Ok(())
    }

    async fn check_ready(&self) -> Result<()> {
        // Qualified: with `public` on the search path, an unmigrated schema
        // would otherwise read the app's own `_sqlx_migrations`.
        let applied: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT max(version) FROM {}._sqlx_migrations WHERE success",
            self.schema
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(_) => Error::new(
                ErrorKind::Store,
                "the recon schema is not migrated; run `recon migrate`",
            )
            .with_component(C),
            other => classify("ready", other),
        })?;
        let want = Self::expected_migration();
        if applied.unwrap_or(0) < want {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "schema at migration {} but this build needs {want}; run `recon migrate`",
                    applied.unwrap_or(0)
                ),
            )
            .with_component(C));
        }
        // The providers' views are not numbered migrations: a provider
        // added since the last `recon migrate` has none yet.
        for v in self.views.iter() {
            let there: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(format!("{}.{}", self.schema, v.name))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| classify("ready", e))?;
            if there.is_none() {
                return Err(Error::new(
                    ErrorKind::Store,
                    format!("the view {} is missing; run `recon migrate`", v.name),
                )
                .with_component(C));
            }
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        let tx = self.pool.begin().await.map_err(db_err("begin"))?;
        Ok(Box::new(PgTx {
            tx,
            schema: self.schema.clone(),
            written: HashMap::new(),
            growth: self.growth.clone(),
            pool: self.pool.clone(),
            views: self.views.clone(),
            not_recons: self.not_recons.clone(),
        }))
    }

    fn app_sync(&self) -> Option<&AppSync> {
        self.app_sync.as_deref()
    }

    async fn changes(&self, since: i64, limit: u32) -> Result<Vec<ChangeRow>> {
        let rows = sqlx::query(
            "SELECT seq, provider, account, kind, object_id, app_table, app_key, cause, before, after, at
             FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("changes"))?;
        rows.iter()
            .map(change_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("changes"))
    }

    async fn prune_changes(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err("prune changes"))?;
        Ok(done.rows_affected())
    }

    fn app_scan<'a>(
        &'a self,
        table: AppTable<'a>,
        query: Option<&'a str>,
    ) -> futures::stream::BoxStream<'a, Result<(String, serde_json::Value)>> {
        use futures::StreamExt;
        if let Err(e) = check_app_table(&table, &self.schema, &self.views) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let checked = {
            let (not_recons, pool, schema) = (
                self.not_recons.clone(),
                self.pool.clone(),
                self.schema.clone(),
            );
            let name = table.table.to_string();
            async move { not_recons.check(&pool, &name, &schema).await }
        };
        let sql = match query {
            Some(query) => desired_sql(&table, query, None),
            None => current_sql(&table, None),
        };
        let rows = sqlx::query_as::<_, (String, serde_json::Value)>(sqlx::AssertSqlSafe(sql))
            .fetch(&self.pool)
            .map(|r| r.map_err(db_err("app scan")));
        futures::stream::once(checked)
            .filter_map(|r| async move { r.err().map(Err) })
            .chain(rows)
            .boxed()
    }

    async fn refresh_statistics(&self) -> Result<()> {
        // Autovacuum analyses too, but up to a minute later and only past
        // 10% of the table changed: a mirror just filled by a backfill is
        // planned as empty meanwhile. Here: never analysed, or more than a
        // tenth of the rows changed since.
        let stale: Option<bool> = sqlx::query_scalar(
            "SELECT (last_analyze IS NULL AND last_autoanalyze IS NULL AND n_live_tup + n_mod_since_analyze > 0)
                    OR n_mod_since_analyze > 50 + n_live_tup / 10
             FROM pg_stat_user_tables WHERE relid = 'objects'::regclass",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("read table statistics"))?;
        if stale == Some(true) {
            // SKIP_LOCKED: behind a VACUUM or another ANALYZE, skip instead
            // of waiting (the next sweep tries again).
            sqlx::query("ANALYZE (SKIP_LOCKED) objects")
                .execute(&self.pool)
                .await
                .map_err(db_err("analyze objects"))?;
        }
        Ok(())
    }

    async fn get_many(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        load_objects(
            &self.pool,
            OBJECT_COLS_O,
            provider,
            account,
            kind,
            ids,
            "get",
        )
        .await
    }

    async fn owned_by(
        &self,
        provider: &str,
        account: &str,
        owner: &str,
    ) -> Result<Vec<StoredObject>> {
        if exact::key_problem(&[provider, account, owner]).is_some() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OBJECT_COLS}, exact FROM objects WHERE provider = $1 AND account = $2 AND (owner_id = $3 OR id = $3)"
        )))
        .bind(provider)
        .bind(account)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("owned by"))?;
        rows.iter()
            .map(stored_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("owned by"))
    }

    async fn count_live(&self, provider: &str, account: &str, kind: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM objects WHERE provider = $1 AND account = $2 AND kind = $3 AND NOT deleted",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("count"))?;
        Ok(n as u64)
    }

    async fn ledger_contains(&self, provider: &str, account: &str, event_id: &str) -> Result<bool> {
        if exact::key_problem(&[provider, account, event_id]).is_some() {
            return Ok(false); // the ledger refuses such an event
        }
        let r: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM event_ledger WHERE provider = $1 AND account = $2 AND event_id = $3",
        )
        .bind(provider)
        .bind(account)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("ledger lookup"))?;
        Ok(r.is_some())
    }

    async fn cursor(&self, provider: &str, account: &str, name: &str) -> Result<Option<Cursor>> {
        let r: Option<(i64, i64)> =
            sqlx::query_as("SELECT value, updated_at FROM cursors WHERE provider = $1 AND account = $2 AND name = $3")
                .bind(provider)
                .bind(account)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("read cursor"))?;
        Ok(r.map(|(value, updated_at)| Cursor {
            provider: provider.into(),
            account: account.into(),
            name: name.into(),
            value,
            updated_at,
        }))
    }

    async fn mark_seen(&self, run_id: &str, seen: &[SeenRow<'_>]) -> Result<()> {
        // An id that cannot be stored was quarantined, not mirrored.
        let seen: Vec<&SeenRow<'_>> = seen
            .iter()
            .filter(|r| exact::key_problem(&[r.id]).is_none())
            .collect();
        let ids: Vec<&str> = seen.iter().map(|r| r.id).collect();
        let versions: Vec<i64> = seen.iter().map(|r| r.version).collect();
        let hashes: Vec<&str> = seen.iter().map(|r| r.hash).collect();
        sqlx::query(
            "INSERT INTO sweep_seen (run_id, id, version, hash)
             SELECT $1, t.i, t.v, t.h FROM UNNEST($2::text[], $3::int8[], $4::text[]) AS t(i, v, h)
             ON CONFLICT DO NOTHING",
        )
        .bind(run_id)
        .bind(&ids)
        .bind(&versions)
        .bind(&hashes)
        .execute(&self.pool)
        .await
        .map_err(db_err("mark seen"))?;
        Ok(())
    }

    async fn outdated_during_sweep(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        run_id: &str,
        written_since: i64,
        floor: i64,
        limit: u32,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT o.id FROM objects o
             LEFT JOIN sweep_seen s ON s.run_id = $4 AND s.id = o.id
             WHERE o.provider = $1 AND o.account = $2 AND o.kind = $3 AND o.confirmed_at >= $5
               AND ((s.id IS NOT NULL AND o.version < s.version AND o.hash IS DISTINCT FROM s.hash)
                 OR (s.id IS NULL AND NOT o.deleted AND o.version < $7))
             ORDER BY o.id LIMIT $6",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(run_id)
        .bind(written_since)
        .bind(limit as i64)
        .bind(floor)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("overwritten since seen"))
    }

    async fn due_fetches(&self, provider: &str, now: i64, limit: u32) -> Result<Vec<PendingFetch>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, id, reason, queued_at, attempts, next_at, last_error
             FROM pending_fetches WHERE provider = $1 AND next_at <= $2
             ORDER BY next_at, account, kind, id LIMIT $3",
        )
        .bind(provider)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("due fetches"))?;
        rows.iter()
            .map(pending_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("due fetches"))
    }

    async fn defer_fetch(
        &self,
        key: &ObjectKey,
        queued_at: i64,
        next_at: i64,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE pending_fetches SET attempts = attempts + 1, next_at = $6, last_error = $7
             WHERE provider = $1 AND account = $2 AND kind = $3 AND id = $4 AND queued_at = $5",
        )
        .bind(&key.provider)
        .bind(&key.account)
        .bind(&key.kind)
        .bind(&key.id)
        .bind(queued_at)
        .bind(next_at)
        .bind(text_col(error))
        .execute(&self.pool)
        .await
        .map_err(db_err("defer fetch"))?;
        Ok(())
    }

    async fn pending_fetches(&self, provider: &str, account: &str) -> Result<Vec<PendingFetch>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, id, reason, queued_at, attempts, next_at, last_error
             FROM pending_fetches WHERE provider = $1 AND account = $2 ORDER BY next_at, kind, id",
        )
        .bind(provider)
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("pending fetches"))?;
        rows.iter()
            .map(pending_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("pending fetches"))
    }

    async fn unseen_live(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        run_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT o.id FROM objects o
             WHERE o.provider = $1 AND o.account = $2 AND o.kind = $3 AND NOT o.deleted
               AND ($5::text IS NULL OR o.id > $5)
               AND NOT EXISTS (SELECT 1 FROM sweep_seen s WHERE s.run_id = $4 AND s.id = o.id)
             ORDER BY o.id LIMIT $6",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(run_id)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("unseen"))
    }

    async fn stage(&self, run_id: &str, seq: i64, payload: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO sweep_staged (run_id, seq, payload) VALUES ($1, $2, $3)")
            .bind(run_id)
            .bind(seq)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(db_err("stage"))?;
        Ok(())
    }

    async fn next_staged(&self, run_id: &str, after_seq: i64) -> Result<Option<(i64, Vec<u8>)>> {
        sqlx::query_as("SELECT seq, payload FROM sweep_staged WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT 1")
            .bind(run_id)
            .bind(after_seq)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("read staged"))
    }

    async fn clear_scratch(&self, run_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM sweep_seen WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(db_err("clear seen"))?;
        sqlx::query("DELETE FROM sweep_staged WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(db_err("clear staged"))?;
        Ok(())
    }

    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, provider, account, kind, run_kind, status, dry_run, started_at, finished_at, counts, mismatch_ratio, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&run.id)
        .bind(&run.provider)
        .bind(&run.account)
        .bind(&run.kind)
        .bind(run.run_kind.as_str())
        .bind(run.status.as_str())
        .bind(run.dry_run)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(serde_json::to_value(&run.counts).map_err(Error::from)?)
        .bind(run.mismatch_ratio)
        .bind(run.error.as_deref().map(text_col))
        .execute(&self.pool)
        .await
        .map_err(db_err("insert run"))?;
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = $2, finished_at = $3, counts = $4, mismatch_ratio = $5, error = $6 WHERE id = $1",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(run.finished_at)
        .bind(serde_json::to_value(&run.counts).map_err(Error::from)?)
        .bind(run.mismatch_ratio)
        .bind(run.error.as_deref().map(text_col))
        .execute(&self.pool)
        .await
        .map_err(db_err("update run"))?;
        Ok(())
    }

    async fn heartbeat_run(&self, run_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE runs SET heartbeat_at = $2 WHERE id = $1 AND status = 'running'")
            .bind(run_id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db_err("run heartbeat"))?;
        Ok(())
    }

    async fn close_abandoned_runs(&self, before: i64, error: &str) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = $2, error = $3
             WHERE status = 'running' AND COALESCE(heartbeat_at, started_at) < $1
             RETURNING *",
        )
        .bind(before)
        .bind(now_ms())
        .bind(text_col(error))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("close abandoned runs"))?;
        rows.iter()
            .map(run_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("close abandoned runs"))
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err("runs"))?;
        rows.iter()
            .map(run_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("runs"))
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err("run"))?;
        row.as_ref()
            .map(run_from_row)
            .transpose()
            .map_err(db_err("run"))
    }

    async fn last_successful_sweeps(&self) -> Result<Vec<LastSweep>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT provider, account, kind, max(finished_at) FROM runs
             WHERE status = 'succeeded' AND run_kind = 'sweep' AND NOT dry_run
               AND finished_at IS NOT NULL
             GROUP BY provider, account, kind ORDER BY provider, account, kind",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("last_successful_sweeps"))?;
        Ok(rows.into_iter().map(LastSweep::from).collect())
    }

    async fn drift(&self, q: &DriftQuery) -> Result<Vec<DriftRecord>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, object_id, run_id, source, cause, before, after, detected_at,
                    before_exact, after_exact
             FROM drift_log
             WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR run_id = $2)
               AND ($3::int8 IS NULL OR detected_at >= $3)
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(q.provider.as_deref())
        .bind(q.run_id.as_deref())
        .bind(q.since)
        .bind(q.limit.max(1) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("drift"))?;
        rows.iter()
            .map(|r| -> std::result::Result<DriftRecord, sqlx::Error> {
                let source: String = r.try_get("source")?;
                let cause: String = r.try_get("cause")?;
                Ok(DriftRecord {
                    key: ObjectKey {
                        provider: r.try_get("provider")?,
                        account: r.try_get("account")?,
                        kind: r.try_get("kind")?,
                        id: r.try_get("object_id")?,
                    },
                    run_id: r.try_get("run_id")?,
                    source: Source::parse(&source).unwrap_or(Source::Sweep),
                    cause: DriftCause::parse(&cause).unwrap_or(DriftCause::Changed),
                    before: exact_of(r, "before_exact")?
                        .map_or_else(|| r.try_get("before"), |x| Ok(Some(x)))?,
                    after: exact_of(r, "after_exact")?
                        .map_or_else(|| r.try_get("after"), |x| Ok(Some(x)))?,
                    detected_at: r.try_get("detected_at")?,
                })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("drift"))
    }

    async fn drift_counts(&self, q: &DriftQuery) -> Result<Vec<DriftCount>> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT provider, kind, cause, count(*)
             FROM drift_log
             WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR run_id = $2)
               AND ($3::int8 IS NULL OR detected_at >= $3)
             GROUP BY provider, kind, cause
             ORDER BY count(*) DESC, provider, kind, cause",
        )
        .bind(q.provider.as_deref())
        .bind(q.run_id.as_deref())
        .bind(q.since)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("drift counts"))?;
        Ok(drift_counts(rows))
    }

    async fn stale(&self, before: i64, limit: u32) -> Result<Vec<StaleObject>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT o.provider, o.account, o.kind, o.id, GREATEST(o.confirmed_at, COALESCE(c.updated_at, 0)) AS confirmed
             FROM objects o
             LEFT JOIN cursors c ON c.provider = o.provider AND c.account = o.account AND c.name = 'sweep:' || o.kind
             WHERE NOT o.deleted AND GREATEST(o.confirmed_at, COALESCE(c.updated_at, 0)) < $1
             ORDER BY confirmed, o.id LIMIT $2",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("stale"))?;
        debug_assert_eq!(sweep_floor_name("x"), "sweep:x");
        Ok(rows
            .into_iter()
            .map(|(provider, account, kind, id, confirmed_at)| StaleObject {
                provider,
                account,
                kind,
                id,
                confirmed_at,
            })
            .collect())
    }

    async fn claim(&self, name: &str, tick: i64) -> Result<bool> {
        let won: Option<i32> = sqlx::query_scalar(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES ('recon', 'default', $1, $2, $3)
             ON CONFLICT (provider, account, name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
             WHERE cursors.value < EXCLUDED.value
             RETURNING 1",
        )
        .bind(format!("schedule:{name}"))
        .bind(tick)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("claim"))?;
        Ok(won.is_some())
    }

    async fn dangling(
        &self,
        provider: &str,
        account: &str,
        rule: &Reference,
        limit: u32,
    ) -> Result<Vec<Dangling>> {
        let statuses: Vec<&str> = rule.statuses.to_vec();
        let rows: Vec<(String, Option<String>, String, Option<bool>)> = sqlx::query_as(
            "SELECT o.id, o.status, o.owner_id, p.deleted
             FROM objects o
             LEFT JOIN objects p ON p.provider = o.provider AND p.account = o.account AND p.kind = $4 AND p.id = o.owner_id
             WHERE o.provider = $1 AND o.account = $2 AND o.kind = $3 AND NOT o.deleted AND o.owner_id IS NOT NULL
               AND (cardinality($5::text[]) = 0 OR o.status = ANY($5))
               AND (p.id IS NULL OR p.deleted)
             ORDER BY o.id LIMIT $6",
        )
        .bind(provider)
        .bind(account)
        .bind(rule.kind)
        .bind(rule.owner_kind)
        .bind(&statuses)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("dangling"))?;
        Ok(rows
            .into_iter()
            .map(|(id, status, owner, deleted)| Dangling {
                provider: provider.into(),
                account: account.into(),
                kind: rule.kind.into(),
                id,
                status,
                owner,
                problem: if deleted == Some(true) {
                    "deleted"
                } else {
                    "absent"
                }
                .into(),
            })
            .collect())
    }
}

/// Helpers for tests that need a real Postgres: a fresh schema per call.
pub mod testing {
    use super::PgStore;
    use recon_core::Store;

    /// The database tests use: `TEST_DATABASE_URL`, else the local server.
    pub fn test_database_url() -> String {
        std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
    }

    /// A migrated store in a new, uniquely named schema. Panics with a
    /// message saying how to provide Postgres when none answers: a test that
    /// needs Postgres never skips silently.
    pub async fn fresh_store() -> PgStore {
        let url = test_database_url();
        let schema = format!("t_{}", uuid_like());
        let store = PgStore::connect_with(&url, &schema, 8).await.unwrap_or_else(|e| {
            panic!(
                "these tests need Postgres: {e}. Set TEST_DATABASE_URL=postgres://user@host:port/db \
                 or start a server on 127.0.0.1:5432 (`cargo xtask test` does this for you)"
            )
        });
        store.migrate().await.expect("migrate test schema");
        store
    }

    fn uuid_like() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{:x}_{}_{}",
            t,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    /// RECON_RELATIONS names every table and view the migrations create.
    #[tokio::test]
    async fn recon_relations_follow_the_migrations() {
        let store = super::testing::fresh_store().await;
        let got: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY 1",
        )
        .bind(store.schema())
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut want: Vec<&str> = super::RECON_RELATIONS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["db.internal", "10.0.0.5", "/var/run/postgresql", "", "::2"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
