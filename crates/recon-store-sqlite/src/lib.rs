#![doc = include_str!("../README.md")]

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Column, ConnectOptions, QueryBuilder, Row, Sqlite, Transaction};

/// Where the mirror lives when `DATABASE_URL` is unset: `recon.db` in the
/// working directory.
pub const DEFAULT_URL: &str = "sqlite://recon.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `0002_views` (the typed views of Stripe and Clerk) was removed when views
/// moved into the provider crates. Its record is dropped before migrating,
/// so a database that applied it migrates on, while any other applied
/// migration this build lacks (a newer release's) still stops `migrate`.
const RETIRED_MIGRATION: i64 = 2;

const C: &str = "sqlite";

/// Rows per multi-row statement: 500 rows of at most 12 columns is 6,000
/// bound parameters, far below SQLite's limit (32,766).
const CHUNK: usize = 500;

/// How long a connection waits for another process's write lock before the
/// statement fails with `SQLITE_BUSY` (reported as `Conflict`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for the single writer connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Reader connections (WAL lets them read while the writer writes).
const READERS: u32 = 4;

/// Transactions take the write lock up front: a deferred transaction that
/// reads first and writes later can fail with `SQLITE_BUSY_SNAPSHOT` when
/// another process wrote in between, whatever the busy timeout.
const BEGIN: &str = "BEGIN IMMEDIATE";

fn db_err(op: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| classify(op, e)
}

/// SQLite's primary result code (the low byte of an extended code).
fn primary_code(d: &dyn sqlx::error::DatabaseError) -> Option<i32> {
    d.code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff)
}

/// Map a sqlx error to recon's kinds: a busy or locked database is
/// `Conflict` (the engine retries), I/O failures, a full disk or a file that
/// cannot be opened `Unavailable`, data refused every time (a value too big,
/// a datatype mismatch, a bind out of range) `InvalidInput`, which is not
/// temporary; the rest `Store`.
fn classify(op: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Database(d) => match primary_code(d.as_ref()) {
            // SQLITE_BUSY, SQLITE_LOCKED
            Some(5) | Some(6) => ErrorKind::Conflict,
            // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
            Some(10) | Some(13) | Some(14) => ErrorKind::Unavailable,
            // SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_RANGE
            Some(18) | Some(20) | Some(25) => ErrorKind::InvalidInput,
            _ => ErrorKind::Store,
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Store,
    };
    Error::new(kind, e.to_string())
        .with_component(C)
        .with_operation(op.to_string())
        .with_source(e)
}

/// Parse a `sqlite://path` or `sqlite:path` URL (`sqlite::memory:` for an
/// in-memory database) into connection options. The error never echoes the
/// URL.
fn parse_url(url: &str) -> Result<SqliteConnectOptions> {
    let bad =
        || Error::config("DATABASE_URL is not a valid sqlite:// URL (e.g. sqlite://recon.db)");
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(bad)?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() && !rest.contains("mode=memory") {
        return Err(bad());
    }
    SqliteConnectOptions::from_str(url).map_err(|_| bad())
}

/// A recon store in one SQLite file.
///
/// Two pools: a writer of exactly one connection, through which every
/// transaction and write goes (SQLite has one writer at a time; queuing here
/// rather than on the file lock is what serialises two deliveries of the same
/// event), and a few readers.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    app_sync: Option<Arc<AppSync>>,
    views: Arc<Vec<View>>,
    /// One connection serves reads and writes (`sqlite::memory:`).
    in_memory: bool,
}

/// The drift log's `WHERE` for `q`, only the filters it sets: SQLite plans
/// `(? IS NULL OR run_id = ?)` as a scan of the whole log, and a scan reads
/// every record's documents.
fn drift_filter(qb: &mut QueryBuilder<Sqlite>, q: &DriftQuery) {
    qb.push(" WHERE 1 = 1");
    if let Some(p) = &q.provider {
        qb.push(" AND provider = ").push_bind(p.clone());
    }
    if let Some(run) = &q.run_id {
        qb.push(" AND run_id = ").push_bind(run.clone());
    }
    if let Some(since) = q.since {
        qb.push(" AND detected_at >= ").push_bind(since);
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open the database named by `url` (`sqlite://path` or `sqlite:path`),
    /// creating the file if it is missing. The URL is never echoed in errors.
    ///
    /// `sqlite::memory:` opens a private in-memory database that lives as
    /// long as the store (one connection serves reads and writes).
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = parse_url(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            // Statements carry customers' data: keep them out of the logs.
            .disable_statement_logging();
        let in_memory = opts.get_filename().to_string_lossy().contains("in-memory")
            || url.contains(":memory:")
            || url.contains("mode=memory");
        let unavailable = |e: sqlx::Error| {
            let msg = match &e {
                sqlx::Error::Database(d) => {
                    format!("cannot open the SQLite database: {}", d.message())
                }
                sqlx::Error::Io(io) => format!("cannot open the SQLite database: {io}"),
                other => format!("cannot open the SQLite database: {other}"),
            };
            Error::new(ErrorKind::Unavailable, msg)
                .with_component(C)
                .with_operation("connect")
        };
        let mut writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if in_memory {
            // The database disappears with its last connection: keep it.
            writer = writer
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let writer = writer
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(opts)
                .await
                .map_err(unavailable)?
        };
        Ok(SqliteStore {
            writer,
            reader,
            app_sync: None,
            views: Arc::new(Vec::new()),
            in_memory,
        })
    }

    /// Keep these app tables right (projections, checks) and write the
    /// change feed if `sync.feed`; see [`recon_core::project`]. The app's
    /// tables live in the same file.
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

    /// Create or replace `views`, in one write transaction (`migrate` does
    /// it for those given to [`SqliteStore::with_views`]); a view whose
    /// definition is unchanged is left alone.
    pub async fn install_views(&self, views: &[View]) -> Result<()> {
        let mut tx = self
            .writer
            .begin_with(BEGIN)
            .await
            .map_err(db_err("create views"))?;
        for v in views {
            v.check_name().map_err(|e| e.with_component(C))?;
            let create = format!("CREATE VIEW {} AS\n{}", v.name, v.sqlite);
            let current: Option<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?",
            )
            .bind(v.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err("create views"))?;
            if current.as_deref() == Some(create.as_str()) {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP VIEW IF EXISTS {}",
                v.name
            )))
            .execute(&mut *tx)
            .await
            .map_err(db_err("create views"))?;
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut *tx)
                .await
                .map_err(db_err("create views"))?;
        }
        tx.commit().await.map_err(db_err("create views"))?;
        Ok(())
    }

    /// The reader pool, for apps that want to query the views through it.
    pub fn pool(&self) -> &SqlitePool {
        &self.reader
    }

    /// The highest migration version this build embeds.
    pub fn expected_migration() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }
}

pub use recon_core::keys::{MAX_KEY_BYTES, Quarantined};
use recon_core::keys::{QuarantinedRow, escaped_key, key_problem};

/// Refuse an event the ledger will not key: invalid input, not an outage.
fn check_event(e: &recon_core::ProviderEvent) -> Result<()> {
    match recon_core::keys::event_problem(e) {
        Some(p) => Err(Error::invalid(format!("the event cannot be recorded: {p}"))
            .with_component(C)
            .with_operation("ledger insert")),
        None => Ok(()),
    }
}

impl SqliteStore {
    /// Objects quarantined because their key cannot be stored, newest first.
    pub async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>> {
        let rows: Vec<QuarantinedRow> = sqlx::query_as(
            "SELECT provider, account, kind, object_id, reason, raw, detected_at
             FROM quarantine ORDER BY seq DESC LIMIT ?",
        )
        .bind(limit.max(1) as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("quarantined"))?;
        Ok(rows.into_iter().map(Quarantined::from).collect())
    }
}

fn decode_json(s: &str) -> std::result::Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn stored_from_row(r: &SqliteRow) -> std::result::Result<StoredObject, sqlx::Error> {
    let data: String = r.try_get("data")?;
    Ok(StoredObject {
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
            data: decode_json(&data)?,
            hash: r.try_get("hash")?,
        },
        confirmed_at: r.try_get("confirmed_at")?,
    })
}

const OBJECT_COLS: &str = "provider, account, kind, id, version, deleted, status, owner_id, email, data, hash, confirmed_at";
// The same without the document (`data` comes back as JSON null).
const OBJECT_HEAD_COLS: &str = "provider, account, kind, id, version, deleted, status, owner_id, email, 'null' AS data, hash, confirmed_at";

fn pending_from_row(r: &SqliteRow) -> std::result::Result<PendingFetch, sqlx::Error> {
    let attempts: i64 = r.try_get("attempts")?;
    Ok(PendingFetch {
        key: ObjectKey {
            provider: r.try_get("provider")?,
            account: r.try_get("account")?,
            kind: r.try_get("kind")?,
            id: r.try_get("id")?,
        },
        reason: r.try_get("reason")?,
        queued_at: r.try_get("queued_at")?,
        attempts: attempts.clamp(0, u32::MAX as i64) as u32,
        next_at: r.try_get("next_at")?,
        last_error: r.try_get("last_error")?,
    })
}

fn run_from_row(r: &SqliteRow) -> std::result::Result<RunRecord, sqlx::Error> {
    let counts: String = r.try_get("counts")?;
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
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        mismatch_ratio: r.try_get("mismatch_ratio")?,
        error: r.try_get("error")?,
    })
}

/// Stored objects of one `(provider, account, kind)` by id: one
/// `id IN (…)` statement per chunk of ids, each a primary-key probe.
async fn load_objects(
    conn: &mut SqliteConnection,
    provider: &str,
    account: &str,
    kind: &str,
    ids: &[&str],
    op: &str,
) -> Result<Vec<StoredObject>> {
    load_rows(conn, OBJECT_COLS, provider, account, kind, ids, op).await
}

async fn load_rows(
    conn: &mut SqliteConnection,
    cols: &str,
    provider: &str,
    account: &str,
    kind: &str,
    ids: &[&str],
    op: &str,
) -> Result<Vec<StoredObject>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut qb =
            QueryBuilder::<Sqlite>::new(format!("SELECT {cols} FROM objects WHERE provider = "));
        qb.push_bind(provider)
            .push(" AND account = ")
            .push_bind(account)
            .push(" AND kind = ")
            .push_bind(kind)
            .push(" AND id IN (");
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        qb.push(")");
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err(op))?;
        for r in &rows {
            out.push(stored_from_row(r).map_err(db_err(op))?);
        }
    }
    Ok(out)
}

async fn read_cursor(
    conn: &mut SqliteConnection,
    provider: &str,
    account: &str,
    name: &str,
) -> Result<Option<Cursor>> {
    let r: Option<(i64, i64)> = sqlx::query_as(
        "SELECT value, updated_at FROM cursors WHERE provider = ? AND account = ? AND name = ?",
    )
    .bind(provider)
    .bind(account)
    .bind(name)
    .fetch_optional(conn)
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

/// A name spliced into SQL (an app table, its key and owned columns):
/// lower-case letters, digits and `_`, not starting with a digit, the table
/// optionally `schema.table`. [`recon_core::project::Projection::validate`]
/// checks the same; the store checks again because it splices them.
fn valid_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// recon's own tables and views (a test keeps the list in step with the
/// migrations), and SQLite's. The app's tables share the file, so an app
/// table of one of these names would be recon's.
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
    "sqlite_sequence",
    "sweep_seen",
    "sweep_staged",
];

/// Check an app table's names (they are spliced into SQL) and that it is
/// not one of recon's own ([`RECON_RELATIONS`], unqualified or in `main`).
fn check_app_table(t: &AppTable<'_>, views: &[View]) -> Result<()> {
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
        [name] | ["main", name] => {
            RECON_RELATIONS.contains(&name) || views.iter().any(|v| v.name == name)
        }
        _ => false,
    };
    if recons {
        return Err(Error::config(format!(
            "app table {:?} is one of recon's own tables or views",
            t.table
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

/// `json_object('c1', a."c1", …)` over `cols`; past 50 columns the rest are
/// added with `json_set` (a function takes at most 100 arguments here too).
fn sqlite_json_of(alias: &str, cols: &[String]) -> String {
    let mut chunks = cols.chunks(50);
    let first: Vec<String> = chunks
        .next()
        .unwrap_or_default()
        .iter()
        .map(|c| format!("'{c}', {alias}.{}", quote_ident(c)))
        .collect();
    let mut out = format!("json_object({})", first.join(", "));
    for chunk in chunks {
        let args: Vec<String> = chunk
            .iter()
            .map(|c| format!("'$.\"{c}\"', {alias}.{}", quote_ident(c)))
            .collect();
        out = format!("json_set({out}, {})", args.join(", "));
    }
    out
}

/// Keys as a JSON array for `x IN (SELECT value FROM json_each(?))`. A key
/// that is a canonical integer, or the text SQLite gives a real, is listed
/// as that number too: the comparison then uses the column's affinity (an
/// index on the key column still serves) and also matches a number that
/// has none (a computed key), so every key `app_scan` returns is found
/// again by key. The caller keeps only rows whose key, as text, was asked
/// for. (A blob key is not found: keys are provider ids, text.)
fn key_list(keys: &[&str]) -> String {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(serde_json::Value::String((*k).to_string()));
        if let Ok(n) = k.parse::<i64>()
            && n.to_string() == *k
        {
            out.push(serde_json::Value::from(n));
        } else if k.contains(['.', 'e', 'E'])
            && let Ok(x) = k.parse::<f64>()
            && x.is_finite()
            && let Some(n) = serde_json::Number::from_f64(x)
        {
            out.push(serde_json::Value::Number(n));
        }
    }
    serde_json::Value::Array(out).to_string()
}

/// The key filter of `keys` on `key_expr` (bound as `?1`, the page size as
/// `?2`) and the statement's tail. Keys compare as text in byte order
/// (`COLLATE BINARY`, whatever the column's collation), like Postgres'
/// `COLLATE "C"` and Rust.
fn key_filter(keys: Option<KeySel<'_>>, key_expr: &str) -> (String, &'static str) {
    match keys {
        Some(KeySel::Keys(_)) => (
            format!("{key_expr} IN (SELECT value FROM json_each(?1))"),
            "",
        ),
        Some(KeySel::Page { .. }) => (
            format!("(?1 IS NULL OR CAST({key_expr} AS TEXT) COLLATE BINARY > ?1)"),
            "LIMIT ?2",
        ),
        None => ("TRUE".to_string(), ""),
    }
}

/// The statement behind `app_desired` (`keys` given) and `app_scan` of a
/// query (`None`): its rows with a key, in key order.
fn desired_sql(table: &AppTable<'_>, query: &str, keys: Option<KeySel<'_>>) -> String {
    let (filter, limit) = key_filter(keys, "q.\"key\"");
    format!(
        "SELECT CAST(q.\"key\" AS TEXT) AS key, {v} AS v
         FROM (\n{query}\n) AS q
         WHERE q.\"key\" IS NOT NULL AND {filter}
         ORDER BY CAST(q.\"key\" AS TEXT) COLLATE BINARY {limit}",
        v = sqlite_json_of("q", table.columns),
        query = user_sql(query),
    )
}

/// The statement behind `app_current` (`keys` given) and `app_scan` of the
/// app table (`None`): the owned columns' values in key order.
fn current_sql(table: &AppTable<'_>, keys: Option<KeySel<'_>>) -> String {
    let key = format!("t.{}", quote_ident(table.key_column));
    let (filter, limit) = key_filter(keys, &key);
    format!(
        "SELECT CAST({key} AS TEXT) AS key, {v} AS v FROM {t} AS t
         WHERE {key} IS NOT NULL AND {filter}
         ORDER BY CAST({key} AS TEXT) COLLATE BINARY {limit}",
        v = sqlite_json_of("t", table.columns),
        t = quote_ident(table.table),
    )
}

/// Run an app statement returning `(key, json text)` rows, built with
/// [`key_filter`] for `keys`.
async fn app_rows(
    conn: &mut SqliteConnection,
    sql: String,
    keys: KeySel<'_>,
    op: &'static str,
) -> Result<Vec<(String, serde_json::Value)>> {
    let q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
    let rows = match keys {
        KeySel::Keys(keys) => {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let rows = q
                .bind(key_list(keys))
                .fetch_all(&mut *conn)
                .await
                .map_err(db_err(op))?;
            let wanted: HashSet<&str> = keys.iter().copied().collect();
            rows.into_iter()
                .filter(|(k, _)| wanted.contains(k.as_str()))
                .collect()
        }
        KeySel::Page { after, limit } => q
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err(op))?,
    };
    rows.into_iter()
        .map(|(k, v)| Ok((k, decode_json(&v).map_err(db_err(op))?)))
        .collect()
}

/// One column of a row of arbitrary SQL as JSON, by the value's storage
/// class: integer, real, text, blob (as lossy UTF-8), null.
fn dynamic_value(r: &SqliteRow, i: usize) -> std::result::Result<serde_json::Value, sqlx::Error> {
    use sqlx::ValueRef;
    if r.try_get_raw(i)?.is_null() {
        return Ok(serde_json::Value::Null);
    }
    if let Ok(n) = r.try_get::<i64, _>(i) {
        return Ok(n.into());
    }
    if let Ok(f) = r.try_get::<f64, _>(i) {
        return Ok(serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into));
    }
    if let Ok(s) = r.try_get::<String, _>(i) {
        return Ok(s.into());
    }
    let b: Vec<u8> = r.try_get(i)?;
    Ok(String::from_utf8_lossy(&b).into_owned().into())
}

fn change_from_row(r: &SqliteRow) -> std::result::Result<ChangeRow, sqlx::Error> {
    let doc = |c: &str| -> std::result::Result<Option<serde_json::Value>, sqlx::Error> {
        r.try_get::<Option<String>, _>(c)?
            .map(|s| decode_json(&s))
            .transpose()
    };
    Ok(ChangeRow {
        seq: r.try_get("seq")?,
        provider: r.try_get("provider")?,
        account: r.try_get("account")?,
        kind: r.try_get("kind")?,
        object_id: r.try_get("object_id")?,
        app_table: r.try_get("app_table")?,
        app_key: r.try_get("app_key")?,
        cause: r.try_get("cause")?,
        before: doc("before")?,
        after: doc("after")?,
        at: r.try_get("at")?,
    })
}

/// An open SQLite transaction on the writer connection (`BEGIN IMMEDIATE`:
/// it holds the write lock until it commits or is dropped).
pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// The providers' views (app tables are never one of them).
    views: Arc<Vec<View>>,
}

impl SqliteTx {
    /// Keep objects whose key cannot be stored, instead of failing the batch.
    async fn quarantine(&mut self, rows: &[&Snapshot]) -> Result<()> {
        let now = now_ms();
        for s in rows {
            let reason = key_problem(&[&s.key.provider, &s.key.account, &s.key.kind, &s.key.id])
                .unwrap_or("its key cannot be stored");
            let (provider, account, kind, id) = (
                escaped_key(&s.key.provider),
                escaped_key(&s.key.account),
                escaped_key(&s.key.kind),
                escaped_key(&s.key.id),
            );
            tracing::warn!(
                provider = %provider, account = %account, kind = %kind, id = %id,
                reason, "object quarantined: the store cannot key it"
            );
            sqlx::query(
                "INSERT INTO quarantine (provider, account, kind, object_id, reason, raw, detected_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(provider)
            .bind(account)
            .bind(kind)
            .bind(id)
            .bind(reason)
            .bind(serde_json::to_vec(s).map_err(Error::from)?)
            .bind(now)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err("quarantine"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn ledger_insert(&mut self, rows: &[LedgerRow<'_>]) -> Result<Vec<bool>> {
        for r in rows {
            check_event(r.event)?;
        }
        let now = now_ms();
        let mut inserted: HashSet<(String, String, String)> = HashSet::new();
        for chunk in rows.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_ledger (provider, account, event_id, event_type, created, source, run_id, received_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.event.provider.as_str())
                    .push_bind(r.event.account.as_str())
                    .push_bind(r.event.event_id.as_str())
                    .push_bind(r.event.event_type.as_str())
                    .push_bind(r.event.created)
                    .push_bind(r.source.as_str())
                    .push_bind(r.run_id)
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT DO NOTHING RETURNING provider, account, event_id");
            let got: Vec<(String, String, String)> = qb
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(db_err("ledger insert"))?;
            inserted.extend(got);
        }
        Ok(rows
            .iter()
            .map(|r| {
                inserted.contains(&(
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
        load_objects(&mut self.tx, provider, account, kind, ids, "load").await
    }

    async fn load_heads(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        load_rows(
            &mut self.tx,
            OBJECT_HEAD_COLS,
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
        let cmp = match guard {
            Guard::Newer => "<",
            Guard::NewerOrEqual => "<=",
        };
        let mut written: HashSet<(String, String, String, String)> = HashSet::new();
        // Objects whose key the store will not keep: quarantined, not written.
        let (bad, rows_ok): (Vec<&Snapshot>, Vec<&Snapshot>) =
            rows.iter().copied().partition(|s| {
                key_problem(&[&s.key.provider, &s.key.account, &s.key.kind, &s.key.id]).is_some()
            });
        if !bad.is_empty() {
            self.quarantine(&bad).await?;
        }
        for chunk in rows_ok.chunks(CHUNK) {
            let json = chunk
                .iter()
                .map(|s| serde_json::to_string(&s.data))
                .collect::<std::result::Result<Vec<String>, _>>()
                .map_err(Error::from)?;
            let mut qb =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO objects ({OBJECT_COLS}) "));
            qb.push_values(chunk.iter().zip(&json), |mut b, (s, j)| {
                b.push_bind(s.key.provider.as_str())
                    .push_bind(s.key.account.as_str())
                    .push_bind(s.key.kind.as_str())
                    .push_bind(s.key.id.as_str())
                    .push_bind(s.version)
                    .push_bind(s.deleted)
                    .push_bind(s.status.as_deref())
                    .push_bind(s.owner.as_deref())
                    .push_bind(s.email.as_deref())
                    .push_bind(j.as_str())
                    .push_bind(s.hash.as_str())
                    .push_bind(now);
            });
            qb.push(format!(
                " ON CONFLICT (provider, account, kind, id) DO UPDATE SET
                    version = excluded.version, deleted = excluded.deleted, status = excluded.status,
                    owner_id = excluded.owner_id, email = excluded.email, data = excluded.data,
                    hash = excluded.hash, confirmed_at = excluded.confirmed_at
                 WHERE objects.version {cmp} excluded.version
                   AND NOT (objects.deleted AND NOT excluded.deleted AND excluded.version <= objects.version)
                 RETURNING provider, account, kind, id"
            ));
            let got: Vec<(String, String, String, String)> = qb
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *self.tx)
                .await
                .map_err(db_err("upsert"))?;
            written.extend(got);
        }
        Ok(rows
            .iter()
            .map(|s| {
                written.contains(&(
                    s.key.provider.clone(),
                    s.key.account.clone(),
                    s.key.kind.clone(),
                    s.key.id.clone(),
                ))
            })
            .collect())
    }

    async fn insert_drift(&mut self, records: &[DriftRecord]) -> Result<()> {
        for chunk in records.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO drift_log (provider, account, kind, object_id, run_id, source, cause, before, after, detected_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.key.provider.as_str())
                    .push_bind(r.key.account.as_str())
                    .push_bind(r.key.kind.as_str())
                    .push_bind(r.key.id.as_str())
                    .push_bind(r.run_id.as_deref())
                    .push_bind(r.source.as_str())
                    .push_bind(r.cause.as_str())
                    .push_bind(r.before.as_ref().map(|v| v.to_string()))
                    .push_bind(r.after.as_ref().map(|v| v.to_string()))
                    .push_bind(r.detected_at);
            });
            qb.build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(db_err("insert drift"))?;
        }
        Ok(())
    }

    async fn set_cursor(&mut self, c: &Cursor) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (provider, account, name) DO UPDATE
                SET value = max(cursors.value, excluded.value), updated_at = excluded.updated_at",
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

    // lock_kind: the default (nothing) holds, since write transactions are
    // serialised by BEGIN IMMEDIATE.

    async fn seen_versions(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, i64)>> {
        let runs: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'running' AND run_kind = 'sweep' AND NOT dry_run
               AND provider = ?1 AND account = ?2 AND kind = ?3",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err("seen versions"))?;
        let mut out: std::collections::HashMap<String, i64> = Default::default();
        for run in &runs {
            for chunk in ids.chunks(CHUNK) {
                let mut qb = QueryBuilder::<Sqlite>::new(
                    "SELECT id, version FROM sweep_seen WHERE run_id = ",
                );
                qb.push_bind(run.as_str()).push(" AND id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                let got: Vec<(String, i64)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err(db_err("seen versions"))?;
                for (id, v) in got {
                    let e = out.entry(id).or_insert(v);
                    *e = (*e).max(v);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn enqueue_fetches(&mut self, keys: &[&ObjectKey], reason: &str, now: i64) -> Result<()> {
        let mut keys: Vec<&ObjectKey> = keys.to_vec();
        keys.sort();
        keys.dedup();
        for chunk in keys.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO pending_fetches (provider, account, kind, id, reason, queued_at, attempts, next_at) ",
            );
            qb.push_values(chunk, |mut b, k| {
                b.push_bind(k.provider.as_str())
                    .push_bind(k.account.as_str())
                    .push_bind(k.kind.as_str())
                    .push_bind(k.id.as_str())
                    .push_bind(reason)
                    .push_bind(now)
                    .push_bind(0i64)
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (provider, account, kind, id) DO UPDATE SET
                    reason = excluded.reason,
                    queued_at = max(pending_fetches.queued_at + 1, excluded.queued_at),
                    next_at = excluded.next_at",
            );
            qb.build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(db_err("queue fetches"))?;
        }
        Ok(())
    }

    async fn resolve_fetches(&mut self, done: &[(&ObjectKey, i64)]) -> Result<()> {
        for (k, q) in done {
            sqlx::query(
                "DELETE FROM pending_fetches
                 WHERE provider = ?1 AND account = ?2 AND kind = ?3 AND id = ?4 AND queued_at <= ?5",
            )
            .bind(&k.provider)
            .bind(&k.account)
            .bind(&k.kind)
            .bind(&k.id)
            .bind(*q)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err("resolve fetches"))?;
        }
        Ok(())
    }

    async fn cursor(
        &mut self,
        provider: &str,
        account: &str,
        name: &str,
    ) -> Result<Option<Cursor>> {
        read_cursor(&mut self.tx, provider, account, name).await
    }

    // lock_app_keys: the default (nothing) holds, since write transactions
    // are serialised by BEGIN IMMEDIATE.

    async fn app_desired(
        &mut self,
        table: &AppTable<'_>,
        query: &str,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        check_app_table(table, &self.views)?;
        let sql = desired_sql(table, query, Some(keys));
        app_rows(&mut self.tx, sql, keys, "app desired").await
    }

    async fn app_current(
        &mut self,
        table: &AppTable<'_>,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        check_app_table(table, &self.views)?;
        let sql = current_sql(table, Some(keys));
        app_rows(&mut self.tx, sql, keys, "app current").await
    }

    async fn app_write(
        &mut self,
        table: &AppTable<'_>,
        op: AppWrite,
        rows: &[(String, serde_json::Value)],
    ) -> Result<u64> {
        check_app_table(table, &self.views)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let t = quote_ident(table.table);
        let key = quote_ident(table.key_column);
        let cols: Vec<String> = table.columns.iter().map(|c| quote_ident(c)).collect();
        let value = |c: &str| format!("json_extract(j.value, '$.v.\"{c}\"')");
        let (sql, arg) = match op {
            AppWrite::Delete => {
                let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
                (
                    format!("DELETE FROM {t} WHERE {key} IN (SELECT value FROM json_each(?1))"),
                    key_list(&keys),
                )
            }
            AppWrite::Update | AppWrite::Insert => {
                // One JSON array of {k: key, n: key as an integer (see
                // key_list), v: {column: value}}; json_extract gives each
                // value as SQL (true as 1, an object as JSON text).
                let records: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(k, values)| {
                        let n = k.parse::<i64>().ok().filter(|n| n.to_string() == *k);
                        let mut v = serde_json::Map::new();
                        for c in table.columns {
                            v.insert(
                                c.clone(),
                                values.get(c).cloned().unwrap_or(serde_json::Value::Null),
                            );
                        }
                        serde_json::json!({ "k": k, "n": n, "v": v })
                    })
                    .collect();
                let sql = if op == AppWrite::Update {
                    format!(
                        "UPDATE {t} AS t SET {set} FROM json_each(?1) AS j
                         WHERE t.{key} IN (json_extract(j.value, '$.k'), json_extract(j.value, '$.n'))",
                        set = table
                            .columns
                            .iter()
                            .zip(&cols)
                            .map(|(c, q)| format!("{q} = {}", value(c)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                } else {
                    format!(
                        "INSERT INTO {t} ({key}, {names})
                         SELECT json_extract(j.value, '$.k'), {values} FROM json_each(?1) AS j",
                        names = cols.join(", "),
                        values = table
                            .columns
                            .iter()
                            .map(|c| value(c))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                };
                (sql, serde_json::Value::Array(records).to_string())
            }
        };
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(arg)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err("app write"))?;
        Ok(done.rows_affected())
    }

    async fn append_changes(&mut self, rows: &[ChangeRow]) -> Result<()> {
        // Writers are serialised, so `seq` order is commit order.
        for chunk in rows.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO changes (provider, account, kind, object_id, app_table, app_key, cause, before, after, at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.provider.as_str())
                    .push_bind(r.account.as_str())
                    .push_bind(r.kind.as_str())
                    .push_bind(r.object_id.as_str())
                    .push_bind(r.app_table.as_deref())
                    .push_bind(r.app_key.as_deref())
                    .push_bind(r.cause.as_str())
                    .push_bind(r.before.as_ref().map(|v| v.to_string()))
                    .push_bind(r.after.as_ref().map(|v| v.to_string()))
                    .push_bind(r.at);
            });
            qb.build()
                .persistent(false)
                .execute(&mut *self.tx)
                .await
                .map_err(db_err("append changes"))?;
        }
        Ok(())
    }

    async fn check_rows(&mut self, sql: &str, limit: u32) -> Result<Vec<serde_json::Value>> {
        // A subquery: only a query runs here, never a statement that writes.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM (\n{}\n) LIMIT ?1",
            user_sql(sql)
        )))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(db_err("check"))?;
        rows.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                for (i, c) in r.columns().iter().enumerate() {
                    m.insert(c.name().to_string(), dynamic_value(r, i)?);
                }
                Ok(serde_json::Value::Object(m))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_err("check"))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await.map_err(db_err("commit"))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err("migrate"))?;
        if recorded.is_some() {
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
                .bind(RETIRED_MIGRATION)
                .execute(&self.writer)
                .await
                .map_err(db_err("migrate"))?;
        }
        MIGRATOR.run(&self.writer).await.map_err(|e| {
            Error::new(ErrorKind::Store, format!("migration failed: {e}")).with_component(C)
        })?;
        // The providers' views, after the tables they read.
        self.install_views(&self.views).await?;
        Ok(())
    }

    async fn check_ready(&self) -> Result<()> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.reader)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(d) if primary_code(d.as_ref()) == Some(1) => Error::new(
                        ErrorKind::Store,
                        "the recon tables are not migrated; run `recon migrate`",
                    )
                    .with_component(C),
                    other => classify("ready", other),
                })?;
        let want = Self::expected_migration();
        if applied.unwrap_or(0) < want {
            return Err(Error::new(
                ErrorKind::Store,
                format!(
                    "database at migration {} but this build needs {want}; run `recon migrate`",
                    applied.unwrap_or(0)
                ),
            )
            .with_component(C));
        }
        // The providers' views are not numbered migrations: a provider
        // added since the last `recon migrate` has none yet.
        for v in self.views.iter() {
            let there: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'view' AND name = ?",
            )
            .bind(v.name)
            .fetch_optional(&self.reader)
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
        let tx = self
            .writer
            .begin_with(BEGIN)
            .await
            .map_err(db_err("begin"))?;
        Ok(Box::new(SqliteTx {
            tx,
            views: self.views.clone(),
        }))
    }

    fn app_sync(&self) -> Option<&AppSync> {
        self.app_sync.as_deref()
    }

    async fn changes(&self, since: i64, limit: u32) -> Result<Vec<ChangeRow>> {
        let rows = sqlx::query(
            "SELECT seq, provider, account, kind, object_id, app_table, app_key, cause, before, after, at
             FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("changes"))?;
        rows.iter()
            .map(change_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("changes"))
    }

    async fn prune_changes(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM changes WHERE at < ?1")
            .bind(before)
            .execute(&self.writer)
            .await
            .map_err(db_err("prune changes"))?;
        Ok(done.rows_affected())
    }

    fn app_scan<'a>(
        &'a self,
        table: AppTable<'a>,
        query: Option<&'a str>,
    ) -> futures::stream::BoxStream<'a, Result<(String, serde_json::Value)>> {
        use futures::{StreamExt, TryStreamExt};
        if let Err(e) = check_app_table(&table, &self.views) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let sql = match query {
            Some(query) => desired_sql(&table, query, None),
            None => current_sql(&table, None),
        };
        let q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
        let rows = if self.in_memory {
            // One connection for everything: read it all and give the
            // connection back, or the other scan and the heartbeat would
            // wait for it. (An in-memory database is small.)
            futures::stream::once(q.fetch_all(&self.reader))
                .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok)))
                .try_flatten()
                .boxed()
        } else {
            // From a reader: WAL readers never wait for the writer, nor it
            // for them.
            q.fetch(&self.reader)
        };
        rows.map(|r| {
            let (k, v) = r.map_err(db_err("app scan"))?;
            Ok((k, decode_json(&v).map_err(db_err("app scan"))?))
        })
        .boxed()
    }

    async fn refresh_statistics(&self) -> Result<()> {
        // SQLite never analyses on its own: without sqlite_stat1 it guesses
        // that any index narrows a lookup to ten rows, and took the primary
        // key's first column (provider) over the (provider, kind, id)
        // index, reading every object per lookup. A sampled ANALYZE
        // (analysis_limit) costs milliseconds whatever the size.
        let mut conn = self.writer.acquire().await.map_err(db_err("analyze"))?;
        sqlx::query("PRAGMA analysis_limit = 1000")
            .execute(&mut *conn)
            .await
            .map_err(db_err("analyze"))?;
        sqlx::query("ANALYZE objects")
            .execute(&mut *conn)
            .await
            .map_err(db_err("analyze objects"))?;
        Ok(())
    }

    async fn get_many(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.reader.acquire().await.map_err(db_err("get"))?;
        load_objects(&mut conn, provider, account, kind, ids, "get").await
    }

    async fn owned_by(
        &self,
        provider: &str,
        account: &str,
        owner: &str,
    ) -> Result<Vec<StoredObject>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OBJECT_COLS} FROM objects WHERE provider = ?1 AND account = ?2 AND (owner_id = ?3 OR id = ?3)"
        )))
        .bind(provider)
        .bind(account)
        .bind(owner)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("owned by"))?;
        rows.iter()
            .map(stored_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("owned by"))
    }

    async fn count_live(&self, provider: &str, account: &str, kind: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM objects WHERE provider = ? AND account = ? AND kind = ? AND NOT deleted",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .fetch_one(&self.reader)
        .await
        .map_err(db_err("count"))?;
        Ok(n.max(0) as u64)
    }

    async fn ledger_contains(&self, provider: &str, account: &str, event_id: &str) -> Result<bool> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM event_ledger WHERE provider = ? AND account = ? AND event_id = ?",
        )
        .bind(provider)
        .bind(account)
        .bind(event_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("ledger lookup"))?;
        Ok(r.is_some())
    }

    async fn cursor(&self, provider: &str, account: &str, name: &str) -> Result<Option<Cursor>> {
        let mut conn = self.reader.acquire().await.map_err(db_err("read cursor"))?;
        read_cursor(&mut conn, provider, account, name).await
    }

    async fn mark_seen(&self, run_id: &str, seen: &[SeenRow<'_>]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        // Several statements for a long listing: one transaction, one fsync.
        let mut tx = self
            .writer
            .begin_with(BEGIN)
            .await
            .map_err(db_err("mark seen"))?;
        for chunk in seen.chunks(CHUNK) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO sweep_seen (run_id, id, version, hash) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(run_id)
                    .push_bind(r.id)
                    .push_bind(r.version)
                    .push_bind(r.hash);
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_err("mark seen"))?;
        }
        tx.commit().await.map_err(db_err("mark seen"))
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
             LEFT JOIN sweep_seen s ON s.run_id = ?4 AND s.id = o.id
             WHERE o.provider = ?1 AND o.account = ?2 AND o.kind = ?3 AND o.confirmed_at >= ?5
               AND ((s.id IS NOT NULL AND o.version < s.version AND o.hash IS NOT s.hash)
                 OR (s.id IS NULL AND NOT o.deleted AND o.version < ?7))
             ORDER BY o.id LIMIT ?6",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(run_id)
        .bind(written_since)
        .bind(limit as i64)
        .bind(floor)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("overwritten since seen"))
    }

    async fn due_fetches(&self, provider: &str, now: i64, limit: u32) -> Result<Vec<PendingFetch>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, id, reason, queued_at, attempts, next_at, last_error
             FROM pending_fetches WHERE provider = ?1 AND next_at <= ?2
             ORDER BY next_at, account, kind, id LIMIT ?3",
        )
        .bind(provider)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.reader)
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
            "UPDATE pending_fetches SET attempts = attempts + 1, next_at = ?6, last_error = ?7
             WHERE provider = ?1 AND account = ?2 AND kind = ?3 AND id = ?4 AND queued_at = ?5",
        )
        .bind(&key.provider)
        .bind(&key.account)
        .bind(&key.kind)
        .bind(&key.id)
        .bind(queued_at)
        .bind(next_at)
        .bind(error)
        .execute(&self.writer)
        .await
        .map_err(db_err("defer fetch"))?;
        Ok(())
    }

    async fn pending_fetches(&self, provider: &str, account: &str) -> Result<Vec<PendingFetch>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, id, reason, queued_at, attempts, next_at, last_error
             FROM pending_fetches WHERE provider = ?1 AND account = ?2 ORDER BY next_at, kind, id",
        )
        .bind(provider)
        .bind(account)
        .fetch_all(&self.reader)
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
             WHERE o.provider = ?1 AND o.account = ?2 AND o.kind = ?3 AND NOT o.deleted
               AND (?5 IS NULL OR o.id > ?5)
               AND NOT EXISTS (SELECT 1 FROM sweep_seen s WHERE s.run_id = ?4 AND s.id = o.id)
             ORDER BY o.id LIMIT ?6",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(run_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("unseen"))
    }

    async fn stage(&self, run_id: &str, seq: i64, payload: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO sweep_staged (run_id, seq, payload) VALUES (?, ?, ?)")
            .bind(run_id)
            .bind(seq)
            .bind(payload)
            .execute(&self.writer)
            .await
            .map_err(db_err("stage"))?;
        Ok(())
    }

    async fn next_staged(&self, run_id: &str, after_seq: i64) -> Result<Option<(i64, Vec<u8>)>> {
        sqlx::query_as(
            "SELECT seq, payload FROM sweep_staged WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT 1",
        )
        .bind(run_id)
        .bind(after_seq)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err("read staged"))
    }

    async fn clear_scratch(&self, run_id: &str) -> Result<()> {
        let mut tx = self
            .writer
            .begin_with(BEGIN)
            .await
            .map_err(db_err("clear scratch"))?;
        sqlx::query("DELETE FROM sweep_seen WHERE run_id = ?")
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err("clear seen"))?;
        sqlx::query("DELETE FROM sweep_staged WHERE run_id = ?")
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err("clear staged"))?;
        tx.commit().await.map_err(db_err("clear scratch"))
    }

    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, provider, account, kind, run_kind, status, dry_run, started_at, finished_at, counts, mismatch_ratio, error)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(serde_json::to_string(&run.counts).map_err(Error::from)?)
        .bind(run.mismatch_ratio)
        .bind(&run.error)
        .execute(&self.writer)
        .await
        .map_err(db_err("insert run"))?;
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = ?2, finished_at = ?3, counts = ?4, mismatch_ratio = ?5, error = ?6 WHERE id = ?1",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(run.finished_at)
        .bind(serde_json::to_string(&run.counts).map_err(Error::from)?)
        .bind(run.mismatch_ratio)
        .bind(&run.error)
        .execute(&self.writer)
        .await
        .map_err(db_err("update run"))?;
        Ok(())
    }

    async fn heartbeat_run(&self, run_id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1 AND status = 'running'")
            .bind(run_id)
            .bind(at)
            .execute(&self.writer)
            .await
            .map_err(db_err("run heartbeat"))?;
        Ok(())
    }

    async fn close_abandoned_runs(&self, before: i64, error: &str) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3
             WHERE status = 'running' AND COALESCE(heartbeat_at, started_at) < ?1
             RETURNING *",
        )
        .bind(before)
        .bind(now_ms())
        .bind(error)
        .fetch_all(&self.writer)
        .await
        .map_err(db_err("close abandoned runs"))?;
        rows.iter()
            .map(run_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("close abandoned runs"))
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("runs"))?;
        rows.iter()
            .map(run_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("runs"))
    }

    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
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
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("last_successful_sweeps"))?;
        Ok(rows.into_iter().map(LastSweep::from).collect())
    }

    async fn drift(&self, q: &DriftQuery) -> Result<Vec<DriftRecord>> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT provider, account, kind, object_id, run_id, source, cause, before, after, detected_at
             FROM drift_log",
        );
        drift_filter(&mut qb, q);
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = qb
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("drift"))?;
        rows.iter()
            .map(|r| -> std::result::Result<DriftRecord, sqlx::Error> {
                let source: String = r.try_get("source")?;
                let cause: String = r.try_get("cause")?;
                let before: Option<String> = r.try_get("before")?;
                let after: Option<String> = r.try_get("after")?;
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
                    before: before.as_deref().map(decode_json).transpose()?,
                    after: after.as_deref().map(decode_json).transpose()?,
                    detected_at: r.try_get("detected_at")?,
                })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("drift"))
    }

    async fn drift_counts(&self, q: &DriftQuery) -> Result<Vec<DriftCount>> {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT provider, kind, cause, count(*) FROM drift_log");
        drift_filter(&mut qb, q);
        qb.push(" GROUP BY provider, kind, cause ORDER BY count(*) DESC, provider, kind, cause");
        let rows: Vec<(String, String, String, i64)> = qb
            .build_query_as()
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("drift counts"))?;
        Ok(drift_counts(rows))
    }

    async fn stale(&self, before: i64, limit: u32) -> Result<Vec<StaleObject>> {
        // Two-argument MAX is SQLite's GREATEST.
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT o.provider, o.account, o.kind, o.id, MAX(o.confirmed_at, COALESCE(c.updated_at, 0)) AS confirmed
             FROM objects o
             LEFT JOIN cursors c ON c.provider = o.provider AND c.account = o.account AND c.name = 'sweep:' || o.kind
             WHERE NOT o.deleted AND MAX(o.confirmed_at, COALESCE(c.updated_at, 0)) < ?1
             ORDER BY confirmed, o.id LIMIT ?2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
        // One statement on the single writer: the compare-and-set is atomic,
        // across processes too (the write lock).
        let won: Option<i64> = sqlx::query_scalar(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES ('recon', 'default', ?1, ?2, ?3)
             ON CONFLICT (provider, account, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
             WHERE cursors.value < excluded.value
             RETURNING 1",
        )
        .bind(format!("schedule:{name}"))
        .bind(tick)
        .bind(now_ms())
        .fetch_optional(&self.writer)
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
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT o.id, o.status, o.owner_id, p.deleted
             FROM objects o
             LEFT JOIN objects p ON p.provider = o.provider AND p.account = o.account AND p.kind = ",
        );
        qb.push_bind(rule.owner_kind)
            .push(" AND p.id = o.owner_id WHERE o.provider = ")
            .push_bind(provider)
            .push(" AND o.account = ")
            .push_bind(account)
            .push(" AND o.kind = ")
            .push_bind(rule.kind)
            .push(" AND NOT o.deleted AND o.owner_id IS NOT NULL");
        // `statuses` empty means every status.
        if !rule.statuses.is_empty() {
            qb.push(" AND o.status IN (");
            let mut list = qb.separated(", ");
            for s in rule.statuses {
                list.push_bind(*s);
            }
            qb.push(")");
        }
        qb.push(" AND (p.id IS NULL OR p.deleted) ORDER BY o.id LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<(String, Option<String>, String, Option<bool>)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.reader)
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

/// Helpers for tests: a fresh, migrated store in a new temporary file.
pub mod testing {
    use super::SqliteStore;
    use recon_core::Store;

    /// A path under the temp directory that no other call (in this or
    /// another process) returns.
    pub fn temp_db_path(prefix: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!(
            "{prefix}-{t:x}-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A migrated store in a new file under the temp directory. The file is
    /// left behind (like the Postgres store's test schemas).
    pub async fn fresh_store() -> SqliteStore {
        let path = temp_db_path("recon-test");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_or_else(|e| panic!("open a test database under the temp directory: {e}"));
        store.migrate().await.expect("migrate test database");
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RECON_RELATIONS names every table and view the migrations create.
    #[tokio::test]
    async fn recon_relations_follow_the_migrations() {
        let store = testing::fresh_store().await;
        let got: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let mut want: Vec<&str> = RECON_RELATIONS.to_vec();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn urls() {
        let o = parse_url(DEFAULT_URL).unwrap();
        assert_eq!(o.get_filename(), std::path::Path::new("recon.db"));
        let o = parse_url("sqlite:data/recon.db").unwrap();
        assert_eq!(o.get_filename(), std::path::Path::new("data/recon.db"));
        let o = parse_url("sqlite:///var/lib/recon.db").unwrap();
        assert_eq!(o.get_filename(), std::path::Path::new("/var/lib/recon.db"));
        parse_url("sqlite::memory:").unwrap();
        for bad in [
            "",
            "recon.db",
            "postgres://u:secret@h/db",
            "sqlite://",
            "sqlite:",
            "sqlite://x.db?secret=1",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
