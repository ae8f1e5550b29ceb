//! The contract a store (`recon-store-postgres`, `recon-store-sqlite`) implements.
//!
//! A store is deliberately dumb: it offers a transaction with a handful of
//! batched primitives ([`StoreTx`]) and read-only queries. The rules that
//! make the mirror correct (ledger first, monotonic guard, ties, drift
//! logging) live once in [`crate::commit`], so both stores behave the same.
//!
//! # Guarantees a store must give
//! - Everything done through one [`StoreTx`] commits together or not at all.
//! - [`StoreTx::ledger_insert`] on an event id that another open transaction
//!   has inserted waits for that transaction, then reports it as a duplicate
//!   if it committed. (Postgres does this with a unique index; SQLite by
//!   serialising writers.)
//! - [`StoreTx::upsert`] never lowers a stored version, whatever the caller
//!   decided: the guard is repeated in SQL so concurrent writers stay safe.
//! - Every write is batched: one statement per call, never one per object.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{AppSync, AppTable, ChangeRow};
use crate::types::{
    DriftRecord, ObjectKey, ProviderEvent, RunRecord, Snapshot, Source, StoredObject,
};

/// An object the engine owes a direct fetch: a version tie to settle, an
/// event the provider says it could not deliver, a state observed by a sweep
/// that a concurrent webhook overwrote. Written in the same transaction as
/// whatever created the obligation, so the obligation survives a failed
/// fetch, a hung-up sender and a restart; removed in the same transaction
/// as the fetched state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingFetch {
    /// The object.
    pub key: ObjectKey,
    /// Why (`tie`, `listed_newer`, `undelivered`, `sweep_outdated`).
    pub reason: String,
    /// Generation: raised each time the obligation is queued again, so a
    /// fetch that started before a newer tie does not discharge it.
    pub queued_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before (unix ms).
    pub next_at: i64,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// What a sweep saw of one object when it listed it: the listing's version
/// and the content hash.
#[derive(Debug, Clone, Copy)]
pub struct SeenRow<'a> {
    /// Object id.
    pub id: &'a str,
    /// The version the listing carried.
    pub version: i64,
    /// The listed state's content hash.
    pub hash: &'a str,
}

/// Which keys of an app table or a projection's desired set to read.
#[derive(Debug, Clone, Copy)]
pub enum KeySel<'a> {
    /// Exactly these keys.
    Keys(&'a [&'a str]),
    /// The next page in key order (keys compared as text): keys after
    /// `after` (all from the start if `None`), at most `limit`. Each page
    /// evaluates the whole query and sorts it: for checking a query's
    /// shape (`limit` 0) and small sets, not for walking a large table
    /// (see [`Store::app_scan`]).
    Page {
        /// Last key of the previous page.
        after: Option<&'a str>,
        /// Page size.
        limit: u32,
    },
}

/// How [`StoreTx::app_write`] changes an app table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppWrite {
    /// Set the owned columns of existing rows.
    Update,
    /// Insert rows with the key and the owned columns.
    Insert,
    /// Delete the rows.
    Delete,
}

/// A row for the event ledger.
#[derive(Debug, Clone)]
pub struct LedgerRow<'a> {
    /// The verified event.
    pub event: &'a ProviderEvent,
    /// Which path brought it.
    pub source: Source,
    /// The run that replayed it, if any.
    pub run_id: Option<&'a str>,
}

/// How [`StoreTx::upsert`] guards a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guard {
    /// Write only if the stored version is strictly lower.
    Newer,
    /// Write if the stored version is lower or equal: for states fetched
    /// directly from the provider, which settle ties.
    NewerOrEqual,
}

/// A position kept between runs (an event-log cursor, a sweep floor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Name, e.g. `events` or `sweep:customers`.
    pub name: String,
    /// Value in the provider's version unit.
    pub value: i64,
    /// When it was written (unix ms).
    pub updated_at: i64,
}

/// Filter for [`Store::drift`].
#[derive(Debug, Clone, Default)]
pub struct DriftQuery {
    /// Only this provider.
    pub provider: Option<String>,
    /// Only this run.
    pub run_id: Option<String>,
    /// Only detected at or after (unix ms).
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// How many drift records one provider, kind and cause have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCount {
    /// Provider.
    pub provider: String,
    /// Kind.
    pub kind: String,
    /// What kind of difference.
    pub cause: crate::types::DriftCause,
    /// How many records.
    pub count: u64,
}

/// The last successful, non-dry-run sweep of one kind
/// ([`Store::last_successful_sweeps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastSweep {
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Kind.
    pub kind: String,
    /// When it finished (unix ms).
    pub finished_at: i64,
}

impl From<(String, String, String, i64)> for LastSweep {
    /// A row `(provider, account, kind, finished_at)`.
    fn from((provider, account, kind, finished_at): (String, String, String, i64)) -> Self {
        LastSweep {
            provider,
            account,
            kind,
            finished_at,
        }
    }
}

/// Rows of `(provider, kind, cause, count)` as [`DriftCount`]s (a cause no
/// longer known reads as `changed`).
pub fn drift_counts(rows: Vec<(String, String, String, i64)>) -> Vec<DriftCount> {
    let count = |(provider, kind, cause, n): (String, String, String, i64)| DriftCount {
        provider,
        kind,
        cause: crate::types::DriftCause::parse(&cause).unwrap_or(crate::types::DriftCause::Changed),
        count: n.max(0) as u64,
    };
    rows.into_iter().map(count).collect()
}

/// An object the provider has not confirmed for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleObject {
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Kind.
    pub kind: String,
    /// Id.
    pub id: String,
    /// Last confirmed (unix ms): the later of its own write and the last
    /// complete sweep of its kind.
    pub confirmed_at: i64,
}

/// A typed view a provider brings for apps and projections to query
/// (`stripe_customers`, `clerk_users`): its name and its `SELECT` over
/// recon's `objects` table in each store's dialect. The stores create the
/// views of the registered providers at migration (replacing older
/// definitions); no provider-specific migration lives in a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The view's name: `<provider>_<kind>`.
    pub name: &'static str,
    /// The `SELECT` for Postgres (unqualified names: the store's schema).
    pub postgres: &'static str,
    /// The `SELECT` for SQLite.
    pub sqlite: &'static str,
}

impl View {
    /// The name is spliced into SQL: a plain name
    /// ([`crate::project::valid_ident`]), else a configuration error.
    pub fn check_name(&self) -> Result<()> {
        if crate::project::valid_ident(self.name) {
            Ok(())
        } else {
            Err(Error::config(format!(
                "view name {:?} is not a plain name",
                self.name
            )))
        }
    }
}

/// A [`View`] in the common shape, for both stores: `<provider>_<kind>`,
/// the live objects of one provider's kind with `account, id, status`,
/// then the given columns (SQL
/// both stores read alike, such as `data->>'name' AS name` or
/// `data->'a'->>'b' AS b`), then the given RFC 3339 fields as times
/// (Postgres `timestamptz`; SQLite keeps the text), then `data, version,
/// confirmed_at`.
///
/// ```
/// use recon_core::store::View;
/// const WIDGETS: View =
///     recon_core::object_view!("acme", "widgets", "data->>'name' AS name", ["created_at"]);
/// assert_eq!(WIDGETS.name, "acme_widgets");
/// assert!(WIDGETS.postgres.contains("(data->>'created_at')::timestamptz AS created_at"));
/// assert!(WIDGETS.sqlite.ends_with("kind = 'widgets' AND deleted = 0"));
/// ```
#[macro_export]
macro_rules! object_view {
    ($provider:literal, $kind:literal, $cols:literal, [$($t:literal),* $(,)?]) => {
        $crate::store::View {
            name: concat!($provider, "_", $kind),
            postgres: concat!(
                "SELECT account, id, status, ", $cols, ", ",
                $("(data->>'", $t, "')::timestamptz AS ", $t, ", ",)*
                "data, version, confirmed_at FROM objects WHERE provider = '", $provider,
                "' AND kind = '", $kind, "' AND NOT deleted"
            ),
            sqlite: concat!(
                "SELECT account, id, status, ", $cols, ", ",
                $("data->>'", $t, "' AS ", $t, ", ",)*
                "data, version, confirmed_at FROM objects WHERE provider = '", $provider,
                "' AND kind = '", $kind, "' AND deleted = 0"
            ),
        }
    };
}

/// A reference rule for diagnostics: live objects of `kind` whose `owner`
/// should exist in `owner_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// Referring kind (e.g. `subscriptions`).
    pub kind: &'static str,
    /// Owner kind (e.g. `customers`).
    pub owner_kind: &'static str,
    /// Only objects in these statuses count; empty means all.
    pub statuses: &'static [&'static str],
}

/// A live object whose owner is deleted or absent from the mirror.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dangling {
    /// Provider.
    pub provider: String,
    /// Account.
    pub account: String,
    /// Kind of the referring object.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its status.
    pub status: Option<String>,
    /// The owner id it points to.
    pub owner: String,
    /// `deleted` or `absent`.
    pub problem: String,
}

/// One open store transaction. Dropping it without [`StoreTx::commit`] rolls
/// it back.
#[async_trait]
pub trait StoreTx: Send {
    /// Insert ledger rows; returns, per row, whether it was new (`false`: a
    /// duplicate event id for that provider and account).
    async fn ledger_insert(&mut self, rows: &[LedgerRow<'_>]) -> Result<Vec<bool>>;

    /// Load stored objects of one `(provider, account, kind)` by id.
    async fn load(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>>;

    /// Like [`StoreTx::load`], but the `data` of each row may be left
    /// `null`: what the monotonic guard needs (version, deleted, hash)
    /// without reading and parsing every stored document. The commit path
    /// loads the full rows only of what it is about to change with a drift
    /// record. Default: [`StoreTx::load`].
    async fn load_heads(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>> {
        self.load(provider, account, kind, ids).await
    }

    /// Upsert snapshots under `guard`; returns, per row, whether it was
    /// written. Rows are unique by key within one call.
    async fn upsert(&mut self, rows: &[&Snapshot], guard: Guard) -> Result<Vec<bool>>;

    /// Append drift records.
    async fn insert_drift(&mut self, records: &[DriftRecord]) -> Result<()>;

    /// Set a cursor.
    async fn set_cursor(&mut self, cursor: &Cursor) -> Result<()>;

    /// Read a cursor inside the transaction.
    async fn cursor(&mut self, provider: &str, account: &str, name: &str)
    -> Result<Option<Cursor>>;

    /// Serialise against the floor of `(provider, account, kind)`: shared by
    /// every transaction that reads the floor and writes objects of the
    /// kind, exclusive by the one that raises the floor, held until the
    /// transaction ends. A store whose write transactions are already
    /// serialised (SQLite) needs nothing here.
    async fn lock_kind(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        exclusive: bool,
    ) -> Result<()> {
        let _ = (provider, account, kind, exclusive);
        Ok(())
    }

    /// For each of `ids`, the highest version at which a sweep of the kind
    /// that is still `running` listed it (see [`Store::mark_seen`]). Ids no
    /// running sweep listed are left out.
    async fn seen_versions(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, i64)>>;

    /// Queue direct fetches of these objects (see [`PendingFetch`]), due at
    /// once. An object already queued gets a newer generation and is due at
    /// once; its attempts are kept.
    async fn enqueue_fetches(&mut self, keys: &[&ObjectKey], reason: &str, now: i64) -> Result<()>;

    /// Discharge queued fetches: each `(key, generation)` is removed only if
    /// its stored generation is not newer.
    async fn resolve_fetches(&mut self, done: &[(&ObjectKey, i64)]) -> Result<()>;

    /// Lock the stored rows of these objects until the transaction ends, so
    /// what [`StoreTx::load_heads`] reads next is what the upsert will
    /// replace (Postgres: `SELECT … FOR UPDATE` in id order; SQLite:
    /// nothing, writers are serialised). The commit path calls it when
    /// projections or the change feed need the replaced state exactly.
    async fn lock_objects(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<()> {
        let _ = (provider, account, kind, ids);
        Ok(())
    }

    /// Serialise against every other transaction that projects the same
    /// app keys of `projection` (Postgres: advisory transaction locks, taken
    /// in key order; SQLite: nothing, writers are serialised). Held until the
    /// transaction ends, so a projection computed after the lock sees every
    /// committed change that an earlier holder made.
    async fn lock_app_keys(&mut self, projection: &str, keys: &[&str]) -> Result<()> {
        let _ = (projection, keys);
        Ok(())
    }

    /// A projection's desired values: the rows of `query` (which returns a
    /// column `key` and one column per name of `table.columns`) selected by
    /// `keys`, each as `(key as text, {column: value})`, in key order. The
    /// values are converted to the app column's type where the database can
    /// (Postgres: through the table's row type), so they compare with
    /// [`StoreTx::app_current`].
    async fn app_desired(
        &mut self,
        table: &AppTable<'_>,
        query: &str,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>>;

    /// The app table's current values of the owned columns, for the rows
    /// selected by `keys` (matched on the key column as text), in key order.
    async fn app_current(
        &mut self,
        table: &AppTable<'_>,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>>;

    /// Write app rows `(key, {column: value})`: update the owned columns,
    /// insert the key and the owned columns, or delete by key. Only the
    /// key column and `table.columns` are ever named. Returns rows affected.
    async fn app_write(
        &mut self,
        table: &AppTable<'_>,
        op: AppWrite,
        rows: &[(String, serde_json::Value)],
    ) -> Result<u64>;

    /// Append to the change feed (the store assigns `seq`) and announce
    /// each new sequence number (Postgres: `NOTIFY recon_changes`, sent at
    /// commit).
    async fn append_changes(&mut self, rows: &[ChangeRow]) -> Result<()>;

    /// Run a check's SQL and return at most `limit` of its rows, each as a
    /// JSON object of its columns.
    async fn check_rows(&mut self, sql: &str, limit: u32) -> Result<Vec<serde_json::Value>>;

    /// Commit.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// A store: the mirror, the ledger, the drift log, runs and cursors.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `postgres` or `sqlite`.
    fn backend(&self) -> &'static str;

    /// Create or upgrade the schema. Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// Reachable and migrated to the version this build expects.
    async fn check_ready(&self) -> Result<()>;

    /// Open a write transaction.
    async fn begin(&self) -> Result<Box<dyn StoreTx>>;

    /// The app tables this store keeps right, and whether it writes the
    /// change feed (see [`crate::project`]). Set by the store's
    /// `with_app_sync`; `None` by default.
    fn app_sync(&self) -> Option<&AppSync> {
        None
    }

    /// The change feed after `since` (its sequence number), oldest first,
    /// at most `limit`.
    async fn changes(&self, since: i64, limit: u32) -> Result<Vec<ChangeRow>>;

    /// Delete change-feed rows recorded before `before` (unix ms); returns
    /// how many.
    async fn prune_changes(&self, before: i64) -> Result<u64>;

    /// Every row with a key that is not null, as `(key as text, {column:
    /// value})`, in byte order of the key: of `query` (the desired values,
    /// converted as [`StoreTx::app_desired`] converts them) when it is
    /// given, else of the app table (the current values of the owned
    /// columns). One statement, streamed outside any transaction (it holds
    /// a connection until the stream ends): the app pass merges the two
    /// streams, one row of each in hand, instead of looking keys up.
    fn app_scan<'a>(
        &'a self,
        table: AppTable<'a>,
        query: Option<&'a str>,
    ) -> futures::stream::BoxStream<'a, Result<(String, serde_json::Value)>>;

    /// Bring the query planner's statistics on the mirror up to date
    /// (Postgres and SQLite: `ANALYZE`), after a sweep has loaded many
    /// objects. Without them a freshly filled mirror is planned as if it
    /// were empty: projection queries over the views then read every
    /// object of a kind per lookup. Cheap when nothing changed much.
    async fn refresh_statistics(&self) -> Result<()> {
        Ok(())
    }

    /// Read stored objects of one kind by id, outside a transaction.
    async fn get_many(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<Vec<StoredObject>>;

    /// Stored objects (any kind) whose owner is `owner`, plus the owner itself.
    async fn owned_by(
        &self,
        provider: &str,
        account: &str,
        owner: &str,
    ) -> Result<Vec<StoredObject>>;

    /// Live (not deleted) objects of a kind.
    async fn count_live(&self, provider: &str, account: &str, kind: &str) -> Result<u64>;

    /// Whether the ledger holds this event id.
    async fn ledger_contains(&self, provider: &str, account: &str, event_id: &str) -> Result<bool>;

    /// Read a cursor.
    async fn cursor(&self, provider: &str, account: &str, name: &str) -> Result<Option<Cursor>>;

    /// Remember that a sweep run listed these objects, with the listing's
    /// version and hash (scratch bookkeeping for deletion detection and for
    /// the guard, which refuses an event older than a running sweep's
    /// listing of the object; not part of the mirror).
    async fn mark_seen(&self, run_id: &str, seen: &[SeenRow<'_>]) -> Result<()>;

    /// Ids of a kind written at or after `written_since` (unix ms) whose
    /// stored state is older than what the sweep `run_id` knows: listed
    /// objects stored older than their listing and different from it, and
    /// live objects the listing did not contain stored at a version below
    /// `floor` (the sweep's start). Both are delayed webhooks that slipped in
    /// while the sweep ran. In id order, at most `limit`.
    #[allow(clippy::too_many_arguments)]
    async fn outdated_during_sweep(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        run_id: &str,
        written_since: i64,
        floor: i64,
        limit: u32,
    ) -> Result<Vec<String>>;

    /// Queued fetches of a provider due at `now` (unix ms), in every account
    /// (a platform's engine fetches its Connect accounts' objects too),
    /// oldest first, at most `limit`.
    async fn due_fetches(&self, provider: &str, now: i64, limit: u32) -> Result<Vec<PendingFetch>>;

    /// Record a failed attempt of a queued fetch of generation
    /// `queued_at`: attempts + 1, not before `next_at`, with the error.
    async fn defer_fetch(
        &self,
        key: &ObjectKey,
        queued_at: i64,
        next_at: i64,
        error: &str,
    ) -> Result<()>;

    /// Every queued fetch of a provider account (for status and tests).
    async fn pending_fetches(&self, provider: &str, account: &str) -> Result<Vec<PendingFetch>>;

    /// Live ids of a kind that the run did not list, in id order after
    /// `after`, at most `limit`.
    async fn unseen_live(
        &self,
        provider: &str,
        account: &str,
        kind: &str,
        run_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;

    /// Stage a page of planned changes (circuit-breaker mode).
    async fn stage(&self, run_id: &str, seq: i64, payload: &[u8]) -> Result<()>;

    /// The next staged page after `after_seq`.
    async fn next_staged(&self, run_id: &str, after_seq: i64) -> Result<Option<(i64, Vec<u8>)>>;

    /// Drop a run's scratch data (seen ids, staged pages).
    async fn clear_scratch(&self, run_id: &str) -> Result<()>;

    /// Record a run as started.
    async fn insert_run(&self, run: &RunRecord) -> Result<()>;

    /// Record a run's end state and counts.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;

    /// Record that a running run is alive at `at` (unix ms). The engine
    /// calls this on a timer while a sweep or replay runs.
    async fn heartbeat_run(&self, run_id: &str, at: i64) -> Result<()>;

    /// Close runs still `running` whose last sign of life (heartbeat, else
    /// start) is older than `before` (unix ms): their process was killed or
    /// lost the database. Each becomes `failed` with `error`, finished now,
    /// and is returned.
    async fn close_abandoned_runs(&self, before: i64, error: &str) -> Result<Vec<RunRecord>>;

    /// Recent runs, newest first.
    async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>>;

    /// One run by id.
    async fn run(&self, id: &str) -> Result<Option<RunRecord>>;

    /// When each (provider, account, kind) last finished a successful sweep
    /// that was not a dry run (unix ms), whatever the number of runs since.
    async fn last_successful_sweeps(&self) -> Result<Vec<LastSweep>>;

    /// Drift records, newest first.
    async fn drift(&self, query: &DriftQuery) -> Result<Vec<DriftRecord>>;

    /// How many drift records match `query` (its `limit` aside), by
    /// provider, kind and cause, the most first.
    async fn drift_counts(&self, query: &DriftQuery) -> Result<Vec<DriftCount>>;

    /// Live objects not confirmed since `before` (unix ms), oldest first.
    async fn stale(&self, before: i64, limit: u32) -> Result<Vec<StaleObject>>;

    /// Claim `tick` of the scheduled job `name` for this process: true for
    /// exactly one caller per (name, tick) across every replica sharing the
    /// store (an atomic compare-and-set on the cursor `schedule:<name>`).
    async fn claim(&self, name: &str, tick: i64) -> Result<bool> {
        let _ = (name, tick);
        Err(crate::Error::unsupported(format!(
            "the {} store cannot coordinate scheduled jobs",
            self.backend()
        )))
    }

    /// Live objects whose owner is deleted or absent, for one rule.
    async fn dangling(
        &self,
        provider: &str,
        account: &str,
        rule: &Reference,
        limit: u32,
    ) -> Result<Vec<Dangling>>;
}
