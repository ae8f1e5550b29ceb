//! A store decorator whose transactions fail at a chosen step, to prove
//! that the ledger and the snapshot commit together or not at all.

use std::sync::Arc;

use async_trait::async_trait;
use recon_core::project::{AppSync, AppTable, ChangeRow};
use recon_core::store::{
    AppWrite, Cursor, Dangling, DriftQuery, Guard, KeySel, LedgerRow, PendingFetch, Reference,
    SeenRow, StaleObject, Store, StoreTx,
};
use recon_core::types::{DriftRecord, ObjectKey, RunRecord, Snapshot, StoredObject};
use recon_core::{Error, ErrorKind, Result};

/// Where a transaction fails.
#[derive(Debug, Clone, Copy)]
pub enum FailAt {
    /// After the ledger insert, at the snapshot write.
    Upsert,
    /// At commit, after every write.
    Commit,
    /// At the snapshot write, only when it holds the object with this id
    /// (a poison event among good ones).
    UpsertOf(&'static str),
    /// At the first write to an app table (a projection that fails after
    /// the mirror was written in the same transaction).
    AppWrite,
    /// Never: the store only counts transactions.
    Nowhere,
    /// Nothing fails, but each snapshot write first waits at the barrier,
    /// so two transactions that both read before either writes can be
    /// forced (a race made deterministic).
    Rendezvous(&'static tokio::sync::Barrier),
    /// Like `Rendezvous`, but waits at most the first duration (a
    /// transaction that holds a lock the other needs passes alone), then
    /// sleeps the second before writing: which of two racing writers goes
    /// first, made deterministic.
    RendezvousThen(
        &'static tokio::sync::Barrier,
        std::time::Duration,
        std::time::Duration,
    ),
}

/// Wraps a real store; its transactions fail at `at`.
pub struct FailingStore {
    pub inner: Arc<dyn Store>,
    pub at: FailAt,
    /// Transactions begun.
    pub begins: std::sync::atomic::AtomicU64,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn Store>, at: FailAt) -> Self {
        FailingStore {
            inner,
            at,
            begins: Default::default(),
        }
    }
}

struct FailingTx {
    inner: Box<dyn StoreTx>,
    at: FailAt,
}

fn boom() -> Error {
    Error::new(ErrorKind::Store, "injected failure").with_component("failing")
}

#[async_trait]
impl StoreTx for FailingTx {
    async fn ledger_insert(&mut self, rows: &[LedgerRow<'_>]) -> Result<Vec<bool>> {
        self.inner.ledger_insert(rows).await
    }
    async fn load(&mut self, p: &str, a: &str, k: &str, ids: &[&str]) -> Result<Vec<StoredObject>> {
        self.inner.load(p, a, k, ids).await
    }
    async fn upsert(&mut self, rows: &[&Snapshot], guard: Guard) -> Result<Vec<bool>> {
        match self.at {
            FailAt::Upsert => return Err(boom()),
            FailAt::UpsertOf(id) if rows.iter().any(|r| r.key.id == id) => return Err(boom()),
            FailAt::Rendezvous(b) => {
                b.wait().await;
            }
            FailAt::RendezvousThen(b, most, then) => {
                let _ = tokio::time::timeout(most, b.wait()).await;
                tokio::time::sleep(then).await;
            }
            _ => {}
        }
        self.inner.upsert(rows, guard).await
    }
    async fn insert_drift(&mut self, records: &[DriftRecord]) -> Result<()> {
        self.inner.insert_drift(records).await
    }
    async fn set_cursor(&mut self, c: &Cursor) -> Result<()> {
        self.inner.set_cursor(c).await
    }
    async fn cursor(&mut self, p: &str, a: &str, n: &str) -> Result<Option<Cursor>> {
        self.inner.cursor(p, a, n).await
    }
    async fn lock_kind(&mut self, p: &str, a: &str, k: &str, exclusive: bool) -> Result<()> {
        self.inner.lock_kind(p, a, k, exclusive).await
    }
    async fn seen_versions(
        &mut self,
        p: &str,
        a: &str,
        k: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, i64)>> {
        self.inner.seen_versions(p, a, k, ids).await
    }
    async fn enqueue_fetches(&mut self, keys: &[&ObjectKey], reason: &str, now: i64) -> Result<()> {
        self.inner.enqueue_fetches(keys, reason, now).await
    }
    async fn resolve_fetches(&mut self, done: &[(&ObjectKey, i64)]) -> Result<()> {
        self.inner.resolve_fetches(done).await
    }
    async fn lock_objects(
        &mut self,
        provider: &str,
        account: &str,
        kind: &str,
        ids: &[&str],
    ) -> Result<()> {
        self.inner.lock_objects(provider, account, kind, ids).await
    }
    async fn lock_app_keys(&mut self, projection: &str, keys: &[&str]) -> Result<()> {
        self.inner.lock_app_keys(projection, keys).await
    }
    async fn app_desired(
        &mut self,
        table: &AppTable<'_>,
        query: &str,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        self.inner.app_desired(table, query, keys).await
    }
    async fn app_current(
        &mut self,
        table: &AppTable<'_>,
        keys: KeySel<'_>,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        self.inner.app_current(table, keys).await
    }
    async fn app_write(
        &mut self,
        table: &AppTable<'_>,
        op: AppWrite,
        rows: &[(String, serde_json::Value)],
    ) -> Result<u64> {
        if matches!(self.at, FailAt::AppWrite) {
            return Err(boom());
        }
        self.inner.app_write(table, op, rows).await
    }
    async fn append_changes(&mut self, rows: &[ChangeRow]) -> Result<()> {
        self.inner.append_changes(rows).await
    }
    async fn check_rows(&mut self, sql: &str, limit: u32) -> Result<Vec<serde_json::Value>> {
        self.inner.check_rows(sql, limit).await
    }
    async fn commit(self: Box<Self>) -> Result<()> {
        if matches!(self.at, FailAt::Commit) {
            // Dropping the inner transaction rolls it back.
            return Err(boom());
        }
        self.inner.commit().await
    }
}

#[async_trait]
impl Store for FailingStore {
    fn backend(&self) -> &'static str {
        "failing"
    }
    async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }
    async fn check_ready(&self) -> Result<()> {
        self.inner.check_ready().await
    }
    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        self.begins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Box::new(FailingTx {
            inner: self.inner.begin().await?,
            at: self.at,
        }))
    }
    fn app_sync(&self) -> Option<&AppSync> {
        self.inner.app_sync()
    }
    async fn changes(&self, since: i64, limit: u32) -> Result<Vec<ChangeRow>> {
        self.inner.changes(since, limit).await
    }
    async fn prune_changes(&self, before: i64) -> Result<u64> {
        self.inner.prune_changes(before).await
    }
    async fn refresh_statistics(&self) -> Result<()> {
        self.inner.refresh_statistics().await
    }
    fn app_scan<'a>(
        &'a self,
        table: AppTable<'a>,
        query: Option<&'a str>,
    ) -> futures::stream::BoxStream<'a, Result<(String, serde_json::Value)>> {
        self.inner.app_scan(table, query)
    }
    async fn get_many(&self, p: &str, a: &str, k: &str, ids: &[&str]) -> Result<Vec<StoredObject>> {
        self.inner.get_many(p, a, k, ids).await
    }
    async fn owned_by(&self, p: &str, a: &str, o: &str) -> Result<Vec<StoredObject>> {
        self.inner.owned_by(p, a, o).await
    }
    async fn count_live(&self, p: &str, a: &str, k: &str) -> Result<u64> {
        self.inner.count_live(p, a, k).await
    }
    async fn ledger_contains(&self, p: &str, a: &str, e: &str) -> Result<bool> {
        self.inner.ledger_contains(p, a, e).await
    }
    async fn cursor(&self, p: &str, a: &str, n: &str) -> Result<Option<Cursor>> {
        self.inner.cursor(p, a, n).await
    }
    async fn mark_seen(&self, run: &str, seen: &[SeenRow<'_>]) -> Result<()> {
        self.inner.mark_seen(run, seen).await
    }
    async fn outdated_during_sweep(
        &self,
        p: &str,
        a: &str,
        k: &str,
        run: &str,
        since: i64,
        floor: i64,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.inner
            .outdated_during_sweep(p, a, k, run, since, floor, limit)
            .await
    }
    async fn due_fetches(&self, p: &str, now: i64, limit: u32) -> Result<Vec<PendingFetch>> {
        self.inner.due_fetches(p, now, limit).await
    }
    async fn defer_fetch(&self, key: &ObjectKey, q: i64, next: i64, err: &str) -> Result<()> {
        self.inner.defer_fetch(key, q, next, err).await
    }
    async fn pending_fetches(&self, p: &str, a: &str) -> Result<Vec<PendingFetch>> {
        self.inner.pending_fetches(p, a).await
    }
    async fn unseen_live(
        &self,
        p: &str,
        a: &str,
        k: &str,
        run: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        self.inner.unseen_live(p, a, k, run, after, limit).await
    }
    async fn stage(&self, run: &str, seq: i64, payload: &[u8]) -> Result<()> {
        self.inner.stage(run, seq, payload).await
    }
    async fn next_staged(&self, run: &str, after: i64) -> Result<Option<(i64, Vec<u8>)>> {
        self.inner.next_staged(run, after).await
    }
    async fn clear_scratch(&self, run: &str) -> Result<()> {
        self.inner.clear_scratch(run).await
    }
    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        self.inner.insert_run(run).await
    }
    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        self.inner.update_run(run).await
    }
    async fn heartbeat_run(&self, run_id: &str, at: i64) -> Result<()> {
        self.inner.heartbeat_run(run_id, at).await
    }
    async fn close_abandoned_runs(&self, before: i64, error: &str) -> Result<Vec<RunRecord>> {
        self.inner.close_abandoned_runs(before, error).await
    }
    async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        self.inner.runs(limit).await
    }
    async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.inner.run(id).await
    }
    async fn last_successful_sweeps(&self) -> Result<Vec<recon_core::store::LastSweep>> {
        self.inner.last_successful_sweeps().await
    }
    async fn drift(&self, q: &DriftQuery) -> Result<Vec<DriftRecord>> {
        self.inner.drift(q).await
    }
    async fn drift_counts(&self, q: &DriftQuery) -> Result<Vec<recon_core::store::DriftCount>> {
        self.inner.drift_counts(q).await
    }
    async fn stale(&self, before: i64, limit: u32) -> Result<Vec<StaleObject>> {
        self.inner.stale(before, limit).await
    }
    async fn dangling(&self, p: &str, a: &str, r: &Reference, limit: u32) -> Result<Vec<Dangling>> {
        self.inner.dangling(p, a, r, limit).await
    }
}
