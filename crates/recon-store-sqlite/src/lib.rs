#![doc = include_str!("../README.md")]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use recon_core::store::{
    Cursor, Dangling, DriftQuery, Guard, LedgerRow, Reference, StaleObject, Store, StoreTx,
};
use recon_core::types::{
    DriftCause, DriftRecord, ObjectKey, RunKind, RunRecord, RunStatus, Snapshot, Source,
    StoredObject, now_ms,
};
use recon_core::{Error, ErrorKind, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite, Transaction};

/// Where the mirror lives when `DATABASE_URL` is unset.
pub const DEFAULT_URL: &str = "sqlite://recon.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const C: &str = "sqlite";
/// Rows per multi-row statement (12 columns × 400 stays far below SQLite's
/// bound-parameter limit).
const CHUNK: usize = 400;

fn db_err(op: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| classify(op, e)
}

/// Busy/locked are `Conflict` (the engine retries), I/O is `Unavailable`.
fn classify(op: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            let msg = d.message();
            if code == "5" || code == "6" || msg.contains("locked") || msg.contains("busy") {
                ErrorKind::Conflict
            } else {
                ErrorKind::Store
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => ErrorKind::Unavailable,
        _ => ErrorKind::Store,
    };
    Error::new(kind, e.to_string())
        .with_component(C)
        .with_operation(op.to_string())
        .with_source(e)
}

/// A recon store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating if missing) the file named by `sqlite://path` or
    /// `sqlite:path`. Errors never echo the URL.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::config("DATABASE_URL is not a sqlite: URL"));
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| Error::config("DATABASE_URL is not a valid sqlite:// URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Statements carry customers' data: keep them out of the logs.
            .disable_statement_logging();
        let unavailable = |e: sqlx::Error| {
            Error::new(ErrorKind::Unavailable, format!("cannot open the SQLite database: {e}"))
                .with_component(C)
                .with_operation("connect")
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(unavailable)?;
        Ok(SqliteStore { writer, reader })
    }

    /// The highest migration version this build embeds.
    pub fn expected_migration() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The reader pool, for apps that query the views directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.reader
    }
}

const OBJECT_COLS: &str =
    "provider, account, kind, id, version, deleted, status, owner_id, email, data, hash, confirmed_at";

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
            deleted: r.try_get::<i64, _>("deleted")? != 0,
            status: r.try_get("status")?,
            owner: r.try_get("owner_id")?,
            email: r.try_get("email")?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            hash: r.try_get("hash")?,
        },
        confirmed_at: r.try_get("confirmed_at")?,
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
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        counts: serde_json::from_str(&counts).unwrap_or_default(),
        mismatch_ratio: r.try_get("mismatch_ratio")?,
        error: r.try_get("error")?,
    })
}

async fn load_objects(
    conn: &mut sqlx::SqliteConnection,
    provider: &str,
    account: &str,
    kind: &str,
    ids: &[&str],
) -> Result<Vec<StoredObject>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {OBJECT_COLS} FROM objects WHERE provider = "));
        qb.push_bind(provider)
            .push(" AND account = ")
            .push_bind(account)
            .push(" AND kind = ")
            .push_bind(kind)
            .push(" AND id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&mut *conn).await.map_err(db_err("load"))?;
        for r in &rows {
            out.push(stored_from_row(r).map_err(db_err("load"))?);
        }
    }
    Ok(out)
}

/// An open SQLite transaction (on the single writer connection).
pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn ledger_insert(&mut self, rows: &[LedgerRow<'_>]) -> Result<Vec<bool>> {
        let now = now_ms();
        let mut new = std::collections::HashSet::new();
        for chunk in rows.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_ledger (provider, account, event_id, event_type, created, source, run_id, received_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.event.provider)
                    .push_bind(&r.event.account)
                    .push_bind(&r.event.event_id)
                    .push_bind(&r.event.event_type)
                    .push_bind(r.event.created)
                    .push_bind(r.source.as_str())
                    .push_bind(r.run_id)
                    .push_bind(now);
            });
            qb.push(" ON CONFLICT DO NOTHING RETURNING provider, account, event_id");
            let got: Vec<(String, String, String)> =
                qb.build_query_as().fetch_all(&mut *self.tx).await.map_err(db_err("ledger insert"))?;
            new.extend(got);
        }
        Ok(rows
            .iter()
            .map(|r| new.contains(&(r.event.provider.clone(), r.event.account.clone(), r.event.event_id.clone())))
            .collect())
    }

    async fn load(&mut self, provider: &str, account: &str, kind: &str, ids: &[&str]) -> Result<Vec<StoredObject>> {
        load_objects(&mut self.tx, provider, account, kind, ids).await
    }

    async fn upsert(&mut self, rows: &[&Snapshot], guard: Guard) -> Result<Vec<bool>> {
        let now = now_ms();
        let cmp = match guard {
            Guard::Newer => "<",
            Guard::NewerOrEqual => "<=",
        };
        let mut written = std::collections::HashSet::new();
        for chunk in rows.chunks(CHUNK) {
            let mut json = Vec::with_capacity(chunk.len());
            for s in chunk {
                json.push(serde_json::to_string(&s.data).map_err(Error::from)?);
            }
            let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT INTO objects ({OBJECT_COLS}) "));
            qb.push_values(chunk.iter().zip(&json), |mut b, (s, j)| {
                b.push_bind(&s.key.provider)
                    .push_bind(&s.key.account)
                    .push_bind(&s.key.kind)
                    .push_bind(&s.key.id)
                    .push_bind(s.version)
                    .push_bind(s.deleted as i64)
                    .push_bind(s.status.as_deref())
                    .push_bind(s.owner.as_deref())
                    .push_bind(s.email.as_deref())
                    .push_bind(j.as_str())
                    .push_bind(&s.hash)
                    .push_bind(now);
            });
            qb.push(format!(
                " ON CONFLICT (provider, account, kind, id) DO UPDATE SET
                    version = excluded.version, deleted = excluded.deleted, status = excluded.status,
                    owner_id = excluded.owner_id, email = excluded.email, data = excluded.data,
                    hash = excluded.hash, confirmed_at = excluded.confirmed_at
                 WHERE objects.version {cmp} excluded.version
                 RETURNING provider, account, kind, id"
            ));
            let got: Vec<(String, String, String, String)> =
                qb.build_query_as().fetch_all(&mut *self.tx).await.map_err(db_err("upsert"))?;
            written.extend(got);
        }
        Ok(rows
            .iter()
            .map(|s| written.contains(&(s.key.provider.clone(), s.key.account.clone(), s.key.kind.clone(), s.key.id.clone())))
            .collect())
    }

    async fn insert_drift(&mut self, records: &[DriftRecord]) -> Result<()> {
        for chunk in records.chunks(CHUNK) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO drift_log (provider, account, kind, object_id, run_id, source, cause, before, after, detected_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.key.provider)
                    .push_bind(&r.key.account)
                    .push_bind(&r.key.kind)
                    .push_bind(&r.key.id)
                    .push_bind(r.run_id.as_deref())
                    .push_bind(r.source.as_str())
                    .push_bind(r.cause.as_str())
                    .push_bind(r.before.as_ref().map(|v| v.to_string()))
                    .push_bind(r.after.as_ref().map(|v| v.to_string()))
                    .push_bind(r.detected_at);
            });
            qb.build().execute(&mut *self.tx).await.map_err(db_err("insert drift"))?;
        }
        Ok(())
    }

    async fn set_cursor(&mut self, c: &Cursor) -> Result<()> {
        sqlx::query(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (provider, account, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
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

    async fn cursor(&mut self, provider: &str, account: &str, name: &str) -> Result<Option<Cursor>> {
        let r: Option<(i64, i64)> =
            sqlx::query_as("SELECT value, updated_at FROM cursors WHERE provider = ? AND account = ? AND name = ?")
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
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| Error::new(ErrorKind::Store, format!("migration failed: {e}")).with_component(C))
    }

    async fn check_ready(&self) -> Result<()> {
        let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.reader)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(_) => {
                    Error::new(ErrorKind::Store, "the recon tables are not migrated; run `recon migrate`").with_component(C)
                }
                other => classify("ready", other),
            })?;
        let want = Self::expected_migration();
        if applied.unwrap_or(0) < want {
            return Err(Error::new(
                ErrorKind::Store,
                format!("database at migration {} but this build needs {want}; run `recon migrate`", applied.unwrap_or(0)),
            )
            .with_component(C));
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        let tx = self.writer.begin().await.map_err(db_err("begin"))?;
        Ok(Box::new(SqliteTx { tx }))
    }

    async fn get_many(&self, provider: &str, account: &str, kind: &str, ids: &[&str]) -> Result<Vec<StoredObject>> {
        let mut conn = self.reader.acquire().await.map_err(db_err("get"))?;
        load_objects(&mut conn, provider, account, kind, ids).await
    }

    async fn owned_by(&self, provider: &str, account: &str, owner: &str) -> Result<Vec<StoredObject>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OBJECT_COLS} FROM objects WHERE provider = ? AND account = ? AND (owner_id = ? OR id = ?)"
        )))
        .bind(provider)
        .bind(account)
        .bind(owner)
        .bind(owner)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("owned by"))?;
        rows.iter().map(stored_from_row).collect::<std::result::Result<_, _>>().map_err(db_err("owned by"))
    }

    async fn count_live(&self, provider: &str, account: &str, kind: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM objects WHERE provider = ? AND account = ? AND kind = ? AND deleted = 0")
            .bind(provider)
            .bind(account)
            .bind(kind)
            .fetch_one(&self.reader)
            .await
            .map_err(db_err("count"))?;
        Ok(n as u64)
    }

    async fn ledger_contains(&self, provider: &str, account: &str, event_id: &str) -> Result<bool> {
        let r: Option<i64> = sqlx::query_scalar("SELECT 1 FROM event_ledger WHERE provider = ? AND account = ? AND event_id = ?")
            .bind(provider)
            .bind(account)
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("ledger lookup"))?;
        Ok(r.is_some())
    }

    async fn cursor(&self, provider: &str, account: &str, name: &str) -> Result<Option<Cursor>> {
        let r: Option<(i64, i64)> =
            sqlx::query_as("SELECT value, updated_at FROM cursors WHERE provider = ? AND account = ? AND name = ?")
                .bind(provider)
                .bind(account)
                .bind(name)
                .fetch_optional(&self.reader)
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

    async fn mark_seen(&self, run_id: &str, ids: &[&str]) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err("mark seen"))?;
        for chunk in ids.chunks(CHUNK * 4) {
            let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO sweep_seen (run_id, id) ");
            qb.push_values(chunk, |mut b, id| {
                b.push_bind(run_id).push_bind(*id);
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().execute(&mut *tx).await.map_err(db_err("mark seen"))?;
        }
        tx.commit().await.map_err(db_err("mark seen"))
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
             WHERE o.provider = ? AND o.account = ? AND o.kind = ? AND o.deleted = 0
               AND (? IS NULL OR o.id > ?)
               AND NOT EXISTS (SELECT 1 FROM sweep_seen s WHERE s.run_id = ? AND s.id = o.id)
             ORDER BY o.id LIMIT ?",
        )
        .bind(provider)
        .bind(account)
        .bind(kind)
        .bind(after)
        .bind(after)
        .bind(run_id)
        .bind(limit as i64)
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
        sqlx::query_as("SELECT seq, payload FROM sweep_staged WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT 1")
            .bind(run_id)
            .bind(after_seq)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err("read staged"))
    }

    async fn clear_scratch(&self, run_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await.map_err(db_err("clear scratch"))?;
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
        .bind(run.dry_run as i64)
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
        sqlx::query("UPDATE runs SET status = ?, finished_at = ?, counts = ?, mismatch_ratio = ?, error = ? WHERE id = ?")
            .bind(run.status.as_str())
            .bind(run.finished_at)
            .bind(serde_json::to_string(&run.counts).map_err(Error::from)?)
            .bind(run.mismatch_ratio)
            .bind(&run.error)
            .bind(&run.id)
            .execute(&self.writer)
            .await
            .map_err(db_err("update run"))?;
        Ok(())
    }

    async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query("SELECT * FROM runs ORDER BY started_at DESC, id DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err("runs"))?;
        rows.iter().map(run_from_row).collect::<std::result::Result<_, _>>().map_err(db_err("runs"))
    }

    async fn drift(&self, q: &DriftQuery) -> Result<Vec<DriftRecord>> {
        let rows = sqlx::query(
            "SELECT provider, account, kind, object_id, run_id, source, cause, before, after, detected_at
             FROM drift_log
             WHERE (? IS NULL OR provider = ?) AND (? IS NULL OR run_id = ?) AND (? IS NULL OR detected_at >= ?)
             ORDER BY seq DESC LIMIT ?",
        )
        .bind(q.provider.as_deref())
        .bind(q.provider.as_deref())
        .bind(q.run_id.as_deref())
        .bind(q.run_id.as_deref())
        .bind(q.since)
        .bind(q.since)
        .bind(q.limit.max(1) as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("drift"))?;
        let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
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
                    before: json(r.try_get("before")?),
                    after: json(r.try_get("after")?),
                    detected_at: r.try_get("detected_at")?,
                })
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(db_err("drift"))
    }

    async fn stale(&self, before: i64, limit: u32) -> Result<Vec<StaleObject>> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT o.provider, o.account, o.kind, o.id, MAX(o.confirmed_at, COALESCE(c.updated_at, 0)) AS confirmed
             FROM objects o
             LEFT JOIN cursors c ON c.provider = o.provider AND c.account = o.account AND c.name = 'sweep:' || o.kind
             WHERE o.deleted = 0 AND MAX(o.confirmed_at, COALESCE(c.updated_at, 0)) < ?
             ORDER BY confirmed, o.id LIMIT ?",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(db_err("stale"))?;
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
        let won: Option<i64> = sqlx::query_scalar(
            "INSERT INTO cursors (provider, account, name, value, updated_at) VALUES ('recon', 'default', ?, ?, ?)
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

    async fn dangling(&self, provider: &str, account: &str, rule: &Reference, limit: u32) -> Result<Vec<Dangling>> {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT o.id, o.status, o.owner_id, p.deleted FROM objects o
             LEFT JOIN objects p ON p.provider = o.provider AND p.account = o.account AND p.kind = ",
        );
        qb.push_bind(rule.owner_kind)
            .push(" AND p.id = o.owner_id WHERE o.provider = ")
            .push_bind(provider)
            .push(" AND o.account = ")
            .push_bind(account)
            .push(" AND o.kind = ")
            .push_bind(rule.kind)
            .push(" AND o.deleted = 0 AND o.owner_id IS NOT NULL AND (p.id IS NULL OR p.deleted = 1)");
        if !rule.statuses.is_empty() {
            qb.push(" AND o.status IN (");
            let mut sep = qb.separated(", ");
            for s in rule.statuses {
                sep.push_bind(*s);
            }
            qb.push(")");
        }
        qb.push(" ORDER BY o.id LIMIT ").push_bind(limit as i64);
        let rows: Vec<(String, Option<String>, String, Option<i64>)> =
            qb.build_query_as().fetch_all(&self.reader).await.map_err(db_err("dangling"))?;
        Ok(rows
            .into_iter()
            .map(|(id, status, owner, deleted)| Dangling {
                provider: provider.into(),
                account: account.into(),
                kind: rule.kind.into(),
                id,
                status,
                owner,
                problem: if deleted == Some(1) { "deleted" } else { "absent" }.into(),
            })
            .collect())
    }
}

/// Helpers for tests: a fresh store in a new temporary file.
pub mod testing {
    use super::SqliteStore;
    use recon_core::Store;

    /// A migrated store in a new file under the temp directory.
    pub async fn fresh_store() -> SqliteStore {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "recon-test-{t:x}-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("open test database");
        store.migrate().await.expect("migrate test database");
        store
    }
}
