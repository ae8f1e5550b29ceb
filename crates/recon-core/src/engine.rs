//! The five paths, written once against [`Provider`] and [`Store`].
//!
//! | path | entry point | ends in |
//! |---|---|---|
//! | webhook ingest | [`Engine::ingest_webhook`] | [`commit`] with the event in the ledger |
//! | full sweep | [`Engine::sweep`] | [`commit`] per chunk, deletions after a complete listing |
//! | on demand | [`Engine::reconcile_one`], [`Engine::reconcile_owner`] | [`commit`] of fetched state |
//! | event replay | [`Engine::replay`] | [`commit`] of events + cursor together |
//! | diagnostics | [`crate::diagnostics`] | read-only queries |
//!
//! # Guarantees
//! - A sweep deletes nothing unless its listing completed: an error, a
//!   timeout or a cancel ends it as `failed`/`cancelled` before the deletion
//!   phase, and every deletion is confirmed by a direct fetch first.
//! - With the circuit breaker armed (a mirror of at least
//!   [`EngineConfig::breaker_min_base`] objects, no `force`), a sweep stages
//!   its planned changes and writes none of them if they exceed
//!   [`EngineConfig::breaker_share`] of the mirror.
//! - A run is recorded `running` first and `succeeded` only at the very end;
//!   a crash leaves it `running`, never `succeeded`. While it runs it writes
//!   a heartbeat every [`EngineConfig::heartbeat`]; the next sweep or replay
//!   closes a `running` run silent for [`EngineConfig::abandon_after`] as
//!   `failed` (its process was killed or lost the database).
//!
//! # Assumptions
//! - The provider's versions on every path share one unit and clock
//!   ([`Provider::version_now`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::commit::{Batch, Change, Decision, DriftMeta, EventEntry, Outcome, sweep_floor_name};
use crate::error::{Error, ErrorKind, Result};
use crate::group::GroupCommit;
use crate::provider::{Fetched, Headers, Provider};
use crate::store::{Cursor, Guard, SeenRow, Store};
use crate::types::{ObjectKey, RunCounts, RunKind, RunRecord, RunStatus, Snapshot, Source, now_ms};

/// Owed fetches a duplicate delivery works through before it is answered.
const DUPLICATE_DRAIN: u32 = 8;

/// Engine tuning. `#[non_exhaustive]`: build it with `Default` and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The circuit breaker trips when a sweep would change more than this
    /// share of the mirror's live objects of the kind (0.0–1.0).
    pub breaker_share: f64,
    /// The breaker is armed only when the mirror holds at least this many
    /// live objects of the kind (a first backfill is all inserts).
    pub breaker_min_base: u64,
    /// Concurrent cursors for a partitioned listing.
    pub partitions: usize,
    /// Objects committed together during a sweep.
    pub commit_chunk: usize,
    /// Concurrent direct fetches when confirming deletions.
    pub fetch_concurrency: usize,
    /// Chunks committed at once during a sweep.
    pub commit_concurrency: usize,
    /// Most webhooks committed in one transaction: deliveries that arrive
    /// while a commit runs share the next one (group commit). 1 commits
    /// each webhook alone.
    pub webhook_group: usize,
    /// How often a running sweep or replay records that it is alive.
    pub heartbeat: Duration,
    /// A `running` run with no heartbeat for this long is closed as failed
    /// by the next sweep or replay. Keep it several heartbeats long.
    pub abandon_after: Duration,
    /// First wait before a queued fetch that failed is tried again; it
    /// doubles per failed attempt up to [`EngineConfig::pending_retry_max`].
    pub pending_retry: Duration,
    /// Longest wait between attempts of a queued fetch.
    pub pending_retry_max: Duration,
    /// An event younger than this may still be on its way as a webhook: a
    /// replay leaves it for a later replay (its cursor stops before it).
    /// Past it, an event the ledger lacks is a missed webhook, and one the
    /// provider still reports undelivered counts as undelivered and its
    /// objects are queued for a refresh.
    pub missed_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            breaker_share: 0.5,
            breaker_min_base: 20,
            partitions: 8,
            commit_chunk: 500,
            fetch_concurrency: 8,
            commit_concurrency: 2,
            webhook_group: 128,
            heartbeat: Duration::from_secs(15),
            abandon_after: Duration::from_secs(120),
            pending_retry: Duration::from_secs(2),
            pending_retry_max: Duration::from_secs(60),
            missed_grace: Duration::from_secs(600),
        }
    }
}

/// A run's heartbeat task; stops when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Live counters of a running sweep or replay, for progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    /// Objects or events read from the provider.
    pub objects: AtomicU64,
    /// Pages read.
    pub pages: AtomicU64,
    /// Differences found.
    pub drift: AtomicU64,
}

/// Options of one sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepOptions {
    /// Compare and report; write nothing.
    pub dry_run: bool,
    /// Ignore the circuit breaker.
    pub force: bool,
    /// Cancel (shutdown): the sweep stops, deletes nothing, ends `cancelled`.
    pub cancel: CancellationToken,
    /// Live counters.
    pub progress: Option<Arc<Progress>>,
    /// Replay: leave events younger than [`EngineConfig::missed_grace`] for
    /// a later replay (whose cursor then starts before them), so that each
    /// event is judged missed or not once it is past the grace period.
    /// Scheduled replays set it; a replay an operator asks for applies
    /// everything at once.
    pub hold_back_in_flight: bool,
}

/// What ingesting one webhook did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// The event id (ledger key).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The ledger already had it: nothing applied.
    pub duplicate: bool,
    /// Snapshots written.
    pub applied: u32,
    /// Snapshots refused as older than the mirror.
    pub stale: u32,
    /// Version ties settled by fetching the object (committed).
    pub ties_fetched: u32,
    /// Version ties whose fetch failed: queued durably with the event and
    /// retried with backoff (by later deliveries, replays, sweeps and the
    /// server's scheduler), so acknowledging the event loses nothing.
    pub ties_pending: u32,
    /// The event carried nothing recon mirrors (recorded and acknowledged).
    pub ignored: bool,
}

/// What settling queued fetches did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleReport {
    /// Objects fetched and committed; their obligations are discharged.
    pub settled: u64,
    /// Of those, how many changed the mirror.
    pub changed: u64,
    /// Fetches that failed: still queued, tried again after a backoff.
    pub pending: u64,
}

impl std::ops::AddAssign for SettleReport {
    fn add_assign(&mut self, o: SettleReport) {
        self.settled += o.settled;
        self.changed += o.changed;
        self.pending += o.pending;
    }
}

/// The answer of an on-demand reconcile for one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum OneOutcome {
    /// The mirror differed and was fixed.
    Fixed {
        /// The object.
        key: ObjectKey,
        /// What the mirror had (None: nothing).
        was: Option<serde_json::Value>,
        /// What it has now.
        now: serde_json::Value,
    },
    /// The mirror already matched.
    AlreadySynced {
        /// The object.
        key: ObjectKey,
    },
    /// The provider deleted it; the mirror now says so.
    Deleted {
        /// The object.
        key: ObjectKey,
        /// Whether the mirror still had it live before.
        was_live: bool,
    },
    /// Neither the provider nor the mirror knows it.
    NotFound {
        /// The object.
        key: ObjectKey,
    },
}

/// The engine for one provider account and one store.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    provider: Arc<dyn Provider>,
    config: EngineConfig,
    group: Arc<GroupCommit>,
    /// One drain of the fetch queue at a time per engine.
    draining: Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    /// An engine with default tuning.
    pub fn new(store: Arc<dyn Store>, provider: Arc<dyn Provider>) -> Self {
        let config = EngineConfig::default();
        Engine {
            store,
            provider,
            group: GroupCommit::new(config.webhook_group),
            config,
            draining: Arc::default(),
        }
    }

    /// Replace the tuning.
    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.group = GroupCommit::new(config.webhook_group);
        self.config = config;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// The tuning.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn key(&self, kind: &str, id: &str) -> ObjectKey {
        ObjectKey::new(self.provider.name(), self.provider.account(), kind, id)
    }

    async fn commit_retrying(&self, batch: &Batch, dry_run: bool) -> Result<Outcome> {
        crate::group::commit_retrying(self.store.as_ref(), batch, dry_run).await
    }

    /// The provider's answer for `key`, fetched under the key's account
    /// (Connect objects under their connected account). "Not found" there
    /// is a tombstone.
    async fn fetch_state(&self, key: &ObjectKey) -> Result<Snapshot> {
        let span = self.fetch_span(&key.account, &key.kind, &key.id);
        let fetched = self
            .provider
            .fetch_in(&key.account, &key.kind, &key.id)
            .instrument(span.clone())
            .await;
        Ok(match traced_fetch(&span, fetched)? {
            Fetched::Found(s) | Fetched::Deleted(s) => s,
            Fetched::NotFound => Snapshot::tombstone(key.clone(), self.provider.version_now()),
        })
    }

    /// The span of one direct fetch (`recon.fetch`): provider, account, kind
    /// and object id; its outcome is recorded by [`traced_fetch`].
    fn fetch_span(&self, account: &str, kind: &str, id: &str) -> tracing::Span {
        tracing::info_span!(
            "recon.fetch",
            provider = self.provider.name(),
            account,
            kind,
            id,
            outcome = Empty,
            error = Empty,
            otel.status_code = Empty,
        )
    }

    /// When a queued fetch that failed `attempts` times is tried next.
    fn retry_at(&self, attempts: u32) -> i64 {
        let base = self.config.pending_retry.as_millis() as i64;
        let max = self.config.pending_retry_max.as_millis() as i64;
        let wait = base.saturating_mul(1i64 << attempts.min(30)).min(max);
        now_ms() + wait
    }

    /// Fetch queued objects and commit what the provider says now, together
    /// with the discharge of each one's obligation `(key, generation,
    /// attempts so far)`. A fetch that fails stays queued with a backoff.
    /// Returns what was actually committed.
    async fn settle(
        &self,
        due: Vec<(ObjectKey, i64, u32)>,
        drift: Option<DriftMeta>,
        dry_run: bool,
    ) -> Result<SettleReport> {
        let mut report = SettleReport::default();
        if due.is_empty() {
            return Ok(report);
        }
        let fetched: Vec<((ObjectKey, i64, u32), Result<Snapshot>)> =
            futures::stream::iter(due.into_iter().map(|d| async move {
                let r = self.fetch_state(&d.0).await;
                (d, r)
            }))
            .buffered(self.config.fetch_concurrency.max(1))
            .collect()
            .await;
        let mut changes = Vec::new();
        let mut owed: Vec<(ObjectKey, i64, u32)> = Vec::new();
        for (due, r) in fetched {
            match r {
                Ok(snapshot) => {
                    changes.push(Change {
                        snapshot,
                        guard: Guard::NewerOrEqual,
                        drift: drift.clone(),
                    });
                    owed.push(due);
                }
                Err(e) => {
                    report.pending += 1;
                    self.defer(&due, "queued fetch failed", &e, dry_run).await?;
                }
            }
        }
        if changes.is_empty() {
            return Ok(report);
        }
        let batch = Batch {
            changes,
            resolves: owed.iter().map(|(k, g, _)| (k.clone(), *g)).collect(),
            ..Batch::default()
        };
        match self.commit_retrying(&batch, dry_run).await {
            Ok(out) => {
                report.settled += batch.changes.len() as u64;
                report.changed += out.changes.iter().filter(|d| d.writes()).count() as u64;
                return Ok(report);
            }
            // The store is unreachable: everything stays queued as it was.
            Err(e) if e.is_temporary() => return Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "committing fetched states together failed; one by one");
            }
        }
        // One state the store refuses must not hold back the others: commit
        // them one by one and defer the ones that fail.
        for (change, due) in batch.changes.into_iter().zip(owed) {
            let one = Batch {
                changes: vec![change],
                resolves: vec![(due.0.clone(), due.1)],
                ..Batch::default()
            };
            match self.commit_retrying(&one, dry_run).await {
                Ok(out) => {
                    report.settled += 1;
                    report.changed += out.changes.iter().filter(|d| d.writes()).count() as u64;
                }
                Err(e) if e.is_temporary() => return Err(e),
                Err(e) => {
                    report.pending += 1;
                    self.defer(&due, "the store refused a fetched state", &e, dry_run)
                        .await?;
                }
            }
        }
        Ok(report)
    }

    /// A queued fetch `(key, generation, attempts)` failed: it stays
    /// queued, due again after the backoff, with the error on record.
    async fn defer(
        &self,
        (key, generation, attempts): &(ObjectKey, i64, u32),
        what: &str,
        e: &Error,
        dry_run: bool,
    ) -> Result<()> {
        tracing::warn!(object = %key, attempts = attempts + 1, error = %e, "{what}; it stays queued and is retried");
        if dry_run {
            return Ok(());
        }
        self.store
            .defer_fetch(key, *generation, self.retry_at(*attempts), &e.to_string())
            .await
    }

    /// Drain the fetch queue of this provider (every account it serves,
    /// Connect accounts included): every queued fetch that is due (version ties, undelivered events, states a sweep saw
    /// overwritten) is fetched and committed; failures stay queued with a
    /// backoff. One drain runs at a time per engine; a call while one runs
    /// returns at once. `recon serve` calls this every few seconds.
    pub async fn settle_pending(&self) -> Result<SettleReport> {
        self.settle_due(200, 8).await
    }

    /// [`Engine::settle_pending`] bounded to `rounds` rounds of at most
    /// `limit` fetches.
    async fn settle_due(&self, limit: u32, rounds: usize) -> Result<SettleReport> {
        let Ok(_one) = self.draining.try_lock() else {
            return Ok(SettleReport::default());
        };
        let mut report = SettleReport::default();
        for _ in 0..rounds {
            let due = self
                .store
                .due_fetches(self.provider.name(), now_ms(), limit)
                .await?;
            if due.is_empty() {
                break;
            }
            let n = due.len();
            let round = self
                .settle(
                    due.into_iter()
                        .map(|p| (p.key, p.queued_at, p.attempts))
                        .collect(),
                    None,
                    false,
                )
                .await?;
            report += round;
            if round.settled == 0 || n < limit as usize {
                break;
            }
        }
        Ok(report)
    }

    // ----------------------------------------------------------------- ingest

    /// Path 1: verify a webhook on its raw body, then ledger + apply in one
    /// transaction. Returns only after the commit, so the caller may answer
    /// 2xx. A bad signature is [`ErrorKind::BadSignature`], a bad body
    /// [`ErrorKind::InvalidInput`]; neither writes anything.
    pub async fn ingest_webhook(&self, headers: &Headers, body: &[u8]) -> Result<IngestReport> {
        let now_s = now_ms() / 1000;
        let event = self.provider.verify_webhook(headers, body, now_s)?;
        self.ingest_event(event, Source::Webhook).await
    }

    /// Ledger + apply an already verified event.
    pub async fn ingest_event(
        &self,
        event: crate::types::ProviderEvent,
        source: Source,
    ) -> Result<IngestReport> {
        let ignored = event.snapshots.is_empty();
        let (event_id, event_type) = (event.event_id.clone(), event.event_type.clone());
        let entry = EventEntry {
            event,
            source,
            drift: None,
        };
        let (ev, ties, generation) = self.group.submit(&self.store, entry).await?;
        let due: Vec<(ObjectKey, i64, u32)> = ties
            .iter()
            .map(|s| (s.key.clone(), generation, 0))
            .collect();
        let n_ties = due.len() as u32;
        // The ties are queued with the event: a failure here loses nothing,
        // so the delivery is acknowledged either way.
        let settled = match self.settle(due, None, false).await {
            Ok(r) => r.settled as u32,
            Err(e) => {
                tracing::warn!(event = %event_id, error = %e, "settling a tie failed; it stays queued");
                0
            }
        };
        if !ev.new {
            // A redelivery: the provider thinks an earlier attempt failed,
            // so work through a little of what is still owed (bounded: the
            // delivery waits for it; the server drains the rest).
            if let Err(e) = self.settle_due(DUPLICATE_DRAIN, 1).await {
                tracing::warn!(error = %e, "draining queued fetches failed; they stay queued");
            }
        }
        Ok(IngestReport {
            event_id,
            event_type,
            duplicate: !ev.new,
            applied: ev.decisions.iter().filter(|d| d.writes()).count() as u32,
            stale: ev
                .decisions
                .iter()
                .filter(|d| **d == Decision::Stale)
                .count() as u32,
            ties_fetched: settled,
            ties_pending: n_ties - settled,
            ignored,
        })
    }

    // ------------------------------------------------------------------ sweep

    fn new_run(&self, kind: &str, run_kind: RunKind, dry_run: bool) -> RunRecord {
        RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            provider: self.provider.name().to_string(),
            account: self.provider.account().to_string(),
            kind: kind.to_string(),
            run_kind,
            status: RunStatus::Running,
            dry_run,
            started_at: now_ms(),
            finished_at: None,
            counts: RunCounts::default(),
            mismatch_ratio: 0.0,
            error: None,
        }
    }

    /// Start a run: close runs abandoned by dead processes, record this one
    /// as `running`, and keep its heartbeat going until the guard drops.
    async fn start_run(&self, run: &RunRecord) -> Result<Heartbeat> {
        self.close_abandoned_runs().await?;
        self.store.insert_run(run).await?;
        let (store, id, every) = (self.store.clone(), run.id.clone(), self.config.heartbeat);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.tick().await; // the first tick is immediate: started_at covers it
            loop {
                tick.tick().await;
                // A missed beat is not an error: the run goes on, and a
                // store that stays down fails the run's own writes.
                if let Err(e) = store.heartbeat_run(&id, now_ms()).await {
                    tracing::warn!(run = %id, error = %e, "run heartbeat not recorded");
                }
            }
        });
        Ok(Heartbeat(task))
    }

    /// Close runs left `running` by a process that died: no heartbeat for
    /// [`EngineConfig::abandon_after`]. Returns them (now `failed`).
    pub async fn close_abandoned_runs(&self) -> Result<Vec<RunRecord>> {
        let before = now_ms() - self.config.abandon_after.as_millis() as i64;
        let closed = self
            .store
            .close_abandoned_runs(
                before,
                "interrupted: the process running it stopped (killed, crashed or cut off from the database); \
                 the batches it committed stand, nothing it had not confirmed was deleted, and the next sweep finishes the work",
            )
            .await?;
        for r in &closed {
            tracing::warn!(run = %r.id, provider = %r.provider, kind = %r.kind, "closed a run abandoned by a process that stopped");
            let _ = self.store.clear_scratch(&r.id).await;
        }
        Ok(closed)
    }

    async fn finish(
        &self,
        mut run: RunRecord,
        status: RunStatus,
        error: Option<String>,
    ) -> Result<RunRecord> {
        run.status = status;
        run.error = error;
        run.finished_at = Some(now_ms());
        run.mismatch_ratio = if run.counts.compared == 0 {
            0.0
        } else {
            run.counts.drift as f64 / run.counts.compared as f64
        };
        self.store.update_run(&run).await?;
        let _ = self.store.clear_scratch(&run.id).await;
        match status {
            RunStatus::Succeeded => {
                tracing::info!(run = %run.id, kind = %run.kind, ?run.counts, "run succeeded")
            }
            _ => {
                tracing::error!(run = %run.id, kind = %run.kind, status = status.as_str(), error = ?run.error, "run did not succeed")
            }
        }
        Ok(run)
    }

    /// Sweep every kind the provider lists, in order. Stops at the first run
    /// that does not succeed.
    pub async fn sweep_all(&self, opts: &SweepOptions) -> Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        for kind in self.provider.kinds() {
            let run = self.sweep(kind, opts).await?;
            let ok = run.status == RunStatus::Succeeded;
            out.push(run);
            if !ok {
                break;
            }
        }
        Ok(out)
    }

    /// Path 2: a full sweep of one kind. Returns the recorded run, whatever
    /// its status; `Err` only when the run could not even be recorded.
    #[tracing::instrument(
        name = "recon.sweep",
        skip_all,
        fields(
            provider = self.provider.name(),
            account = self.provider.account(),
            kind = kind,
            run_id = Empty,
            dry_run = opts.dry_run,
            status = Empty,
            listed = Empty,
            drift = Empty,
        )
    )]
    pub async fn sweep(&self, kind: &str, opts: &SweepOptions) -> Result<RunRecord> {
        if !self.provider.kinds().contains(&kind) {
            return Err(Error::invalid(format!(
                "{} has no kind {kind:?}; kinds: {}",
                self.provider.name(),
                self.provider.kinds().join(", ")
            )));
        }
        let mut run = self.new_run(kind, RunKind::Sweep, opts.dry_run);
        tracing::Span::current().record("run_id", run.id.as_str());
        let heartbeat = self.start_run(&run).await?;
        let mut state = SweepState::default();
        let result = self.sweep_inner(kind, opts, &mut run, &mut state).await;
        drop(heartbeat);
        let (status, error) = match result {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(e) if e.kind() == ErrorKind::CircuitOpen => {
                (RunStatus::CircuitOpen, Some(e.to_string()))
            }
            Err(e) if e.kind() == ErrorKind::Cancelled => {
                (RunStatus::Cancelled, Some(e.to_string()))
            }
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        let record = self.finish(run, status, error).await?;
        record_run(&record);
        // A sweep (above all a first backfill) can change the mirror's size
        // many times over: the planner's statistics follow, or projection
        // queries and lookups by id are planned as if it were empty. After
        // the run is closed (its time and status are the sweep's own), not
        // for a dry or cancelled run; never waits for a lock.
        if !opts.dry_run
            && record.status != RunStatus::Cancelled
            && let Err(e) = self.store.refresh_statistics().await
        {
            tracing::warn!(kind, error = %e, "could not refresh the planner's statistics");
        }
        Ok(record)
    }

    async fn sweep_inner(
        &self,
        kind: &str,
        opts: &SweepOptions,
        run: &mut RunRecord,
        st: &mut SweepState,
    ) -> Result<()> {
        let start_version = self.provider.version_now();
        let base = self
            .store
            .count_live(self.provider.name(), self.provider.account(), kind)
            .await?;
        st.base = base;
        st.staging = !opts.force && !opts.dry_run && base >= self.config.breaker_min_base;
        // A first backfill (nothing of this kind mirrored yet) is not drift:
        // its counts are recorded, but not one drift record per object.
        st.backfill = base == 0;
        let meta = DriftMeta {
            source: Source::Sweep,
            run_id: Some(run.id.clone()),
        };

        // Listing: one producer task per scope, pages through a bounded channel.
        let scopes =
            if self.provider.capabilities().partitioned_listing && self.config.partitions > 1 {
                self.provider
                    .partitions(kind, self.config.partitions)
                    .await?
            } else {
                vec![crate::provider::ListScope::all()]
            };
        tracing::debug!(kind, ranges = scopes.len(), plan = ?scopes, "listing plan");
        let stop = opts.cancel.child_token();
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<crate::provider::Page>>(scopes.len() * 2 + 2);
        let mut producers = tokio::task::JoinSet::new();
        for scope in scopes {
            let provider = self.provider.clone();
            let tx = tx.clone();
            let stop = stop.clone();
            let kind = kind.to_string();
            let run_id = run.id.clone();
            // In the sweep's span, so that its pages are the run's children.
            producers.spawn(async move {
                let mut cursor: Option<String> = None;
                let (started, mut pages) = (std::time::Instant::now(), 0u64);
                loop {
                    pages += 1;
                    let span = tracing::info_span!(
                        "recon.page",
                        provider = provider.name(),
                        account = provider.account(),
                        kind = kind.as_str(),
                        run_id = run_id.as_str(),
                        page = pages,
                        items = Empty,
                        error = Empty,
                        otel.status_code = Empty,
                    );
                    let page = tokio::select! {
                        _ = stop.cancelled() => return,
                        p = provider.list_page(&kind, &scope, cursor.as_deref()).instrument(span.clone()) => p,
                    };
                    traced_page(&span, page.as_ref().map(|p| p.items.len()));
                    let next = page.as_ref().ok().and_then(|p| p.next.clone());
                    let failed = page.is_err();
                    if tx.send(page).await.is_err() || failed {
                        return;
                    }
                    match next {
                        Some(n) => cursor = Some(n),
                        None => {
                            tracing::debug!(kind, ?scope, pages, elapsed = ?started.elapsed(), "listing range done");
                            return;
                        }
                    }
                }
            }.in_current_span());
        }
        drop(tx);

        // Chunks commit concurrently (disjoint keys within one sweep); their
        // outcomes are then tallied, tie-checked and staged one by one.
        let mut chunk: Vec<Snapshot> = Vec::with_capacity(self.config.commit_chunk);
        let run_id = run.id.clone();
        let mut inflight: futures::stream::FuturesUnordered<
            tokio::task::JoinHandle<Result<(Batch, Outcome)>>,
        > = futures::stream::FuturesUnordered::new();
        let conc = self.config.commit_concurrency.max(1);
        let res: Result<()> = async {
            loop {
                let msg = tokio::select! {
                    _ = opts.cancel.cancelled() => {
                        return Err(Error::new(ErrorKind::Cancelled, "sweep cancelled before the listing completed; nothing deleted"));
                    }
                    Some(done) = inflight.next(), if !inflight.is_empty() => {
                        let (batch, out) = done.map_err(|e| Error::new(ErrorKind::Unexpected, format!("commit task: {e}")))??;
                        self.after_chunk(batch, out, &meta, opts, run, st).await?;
                        continue;
                    }
                    m = rx.recv() => m,
                };
                let Some(page) = msg else { break };
                let page = page.map_err(|e| {
                    Error::new(e.kind(), format!("listing {kind} failed after {} pages: {e}; nothing deleted", run.counts.pages))
                        .with_component(e.component())
                })?;
                run.counts.pages += 1;
                run.counts.listed += page.items.len() as u64;
                if let Some(p) = &opts.progress {
                    p.pages.fetch_add(1, Ordering::Relaxed);
                    p.objects.fetch_add(page.items.len() as u64, Ordering::Relaxed);
                }
                chunk.extend(page.items);
                if chunk.len() >= self.config.commit_chunk {
                    while inflight.len() >= conc {
                        if let Some(done) = inflight.next().await {
                            let (batch, out) = done.map_err(|e| Error::new(ErrorKind::Unexpected, format!("commit task: {e}")))??;
                            self.after_chunk(batch, out, &meta, opts, run, st).await?;
                        }
                    }
                    let items = std::mem::take(&mut chunk);
                    run.counts.compared += items.len() as u64;
                    inflight.push(self.spawn_commit(items, &meta, &run_id, opts.dry_run || st.staging, !st.backfill));
                }
            }
            if !chunk.is_empty() {
                let items = std::mem::take(&mut chunk);
                run.counts.compared += items.len() as u64;
                inflight.push(self.spawn_commit(items, &meta, &run_id, opts.dry_run || st.staging, !st.backfill));
            }
            while let Some(done) = inflight.next().await {
                let (batch, out) = done.map_err(|e| Error::new(ErrorKind::Unexpected, format!("commit task: {e}")))??;
                self.after_chunk(batch, out, &meta, opts, run, st).await?;
            }
            Ok(())
        }
        .await;
        drop(inflight);
        // The channel closed: every producer has ended. One that panicked (or
        // was cancelled) ended its range early: not a complete listing.
        let mut panicked = None;
        if res.is_ok() {
            while let Some(joined) = producers.join_next().await {
                if let Err(e) = joined {
                    panicked = Some(e);
                }
            }
        }
        stop.cancel();
        producers.abort_all();
        res?;
        if let Some(e) = panicked {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("listing {kind} stopped: its task ended early ({e}); nothing deleted"),
            ));
        }
        if opts.cancel.is_cancelled() {
            return Err(Error::new(
                ErrorKind::Cancelled,
                "sweep cancelled; nothing deleted",
            ));
        }

        // The listing completed: confirm local objects it did not contain.
        // A first backfill (nothing mirrored at its start) has none: whatever
        // else is in the mirror now arrived during the sweep, by webhook,
        // with its own version.
        let mut after: Option<String> = None;
        while !st.backfill {
            if opts.cancel.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!(
                        "sweep cancelled during deletion checks; {}",
                        deleted_so_far(run, opts.dry_run || st.staging)
                    ),
                ));
            }
            let ids = self
                .store
                .unseen_live(
                    self.provider.name(),
                    self.provider.account(),
                    kind,
                    &run.id,
                    after.as_deref(),
                    self.config.commit_chunk.clamp(1, 500) as u32,
                )
                .await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            after = Some(last);
            let fetched: Vec<Result<Snapshot>> = futures::stream::iter(ids.into_iter().map(|id| {
                let key = self.key(kind, &id);
                async move { self.fetch_state(&key).await }
            }))
            .buffered(self.config.fetch_concurrency.max(1))
            .collect()
            .await;
            let snaps = fetched
                .into_iter()
                .collect::<Result<Vec<_>>>()
                .map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!(
                            "confirming deletions failed: {e}; {}",
                            deleted_so_far(run, opts.dry_run || st.staging)
                        ),
                    )
                })?;
            run.counts.compared += snaps.len() as u64;
            let (batch, out) = self
                .commit_chunk(
                    snaps,
                    Guard::NewerOrEqual,
                    &meta,
                    &run.id,
                    opts.dry_run || st.staging,
                    false,
                    true,
                )
                .await?;
            self.after_chunk(batch, out, &meta, opts, run, st).await?;
        }

        if st.staging {
            let planned = run.counts.inserted + run.counts.updated + run.counts.deleted;
            self.check_breaker(planned, st.base)?;
            // Apply the staged changes for real.
            let planned_counts = run.counts.clone();
            run.counts.inserted = 0;
            run.counts.updated = 0;
            run.counts.deleted = 0;
            let mut seq = -1;
            while let Some((s, payload)) = self.store.next_staged(&run.id, seq).await? {
                seq = s;
                let changes: Vec<Change> = serde_json::from_slice(&payload)?;
                let batch = Batch {
                    changes,
                    ..Batch::default()
                };
                let out = self.commit_retrying(&batch, false).await?;
                tally(&batch, &out, run);
                run.counts.stale_skipped += out.count(Decision::Stale);
            }
            run.counts.drift = planned_counts.drift;
        }
        if !opts.dry_run {
            let floor = Cursor {
                provider: self.provider.name().to_string(),
                account: self.provider.account().to_string(),
                name: sweep_floor_name(kind),
                value: start_version,
                updated_at: now_ms(),
            };
            let batch = Batch {
                cursors: vec![floor],
                ..Batch::default()
            };
            self.commit_retrying(&batch, false).await?;
            // The floor now refuses events older than the sweep's start, and
            // every write decided under the old floor has committed. An
            // event older than the listing may still have slipped in between
            // the listing and the commit of its chunk: fetch those objects.
            if !st.backfill {
                self.refetch_outdated(kind, start_version, &meta, run)
                    .await?;
            }
        }
        if !opts.dry_run
            && let Err(e) = self.settle_pending().await
        {
            tracing::warn!(error = %e, "draining queued fetches after the sweep failed; they stay queued");
        }
        Ok(())
    }

    /// Objects a delayed webhook made older than what the sweep knows while
    /// it ran (see [`Store::outdated_during_sweep`]): fetch and fix them.
    /// Runs after the floor is raised, so no new ones can appear.
    async fn refetch_outdated(
        &self,
        kind: &str,
        floor: i64,
        meta: &DriftMeta,
        run: &mut RunRecord,
    ) -> Result<()> {
        for _ in 0..3 {
            let ids = self
                .store
                .outdated_during_sweep(
                    self.provider.name(),
                    self.provider.account(),
                    kind,
                    &run.id,
                    run.started_at,
                    floor,
                    5000,
                )
                .await?;
            if ids.is_empty() {
                break;
            }
            tracing::info!(
                kind,
                objects = ids.len(),
                "objects made outdated by older webhooks during the sweep; fetching them"
            );
            // Owed first (durably), then fetched: a fetch that fails stays
            // queued after this sweep's bookkeeping is gone.
            let keys: Vec<ObjectKey> = ids.iter().map(|id| self.key(kind, id)).collect();
            let queue = Batch {
                fetches: keys
                    .iter()
                    .map(|k| (k.clone(), "sweep_outdated".to_string()))
                    .collect(),
                ..Batch::default()
            };
            let generation = self.commit_retrying(&queue, false).await?.generation;
            let report = self
                .settle(
                    keys.into_iter().map(|k| (k, generation, 0)).collect(),
                    Some(meta.clone()),
                    false,
                )
                .await?;
            run.counts.ties_fetched += report.settled;
            run.counts.updated += report.changed;
            if report.pending > 0 {
                tracing::warn!(
                    kind,
                    still_owed = report.pending,
                    "some outdated objects could not be fetched; they stay queued"
                );
            }
            if report.settled == 0 {
                break;
            }
        }
        Ok(())
    }

    fn check_breaker(&self, planned: u64, base: u64) -> Result<()> {
        if base >= self.config.breaker_min_base && base > 0 {
            let share = planned as f64 / base as f64;
            if share > self.config.breaker_share {
                return Err(Error::new(
                    ErrorKind::CircuitOpen,
                    format!(
                        "circuit breaker: the sweep would change {planned} of {base} objects ({:.0}%, limit {:.0}%); nothing written. Check the API key and account, then rerun with --force if this is expected",
                        share * 100.0,
                        self.config.breaker_share * 100.0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`Engine::commit_chunk`] on its own task, so it progresses while the
    /// sweep tallies other chunks (a store with one writer needs that).
    fn spawn_commit(
        &self,
        items: Vec<Snapshot>,
        meta: &DriftMeta,
        run_id: &str,
        plan_only: bool,
        fresh: bool,
    ) -> tokio::task::JoinHandle<Result<(Batch, Outcome)>> {
        let engine = self.clone();
        let meta = meta.clone();
        let run_id = run_id.to_string();
        // In the sweep's span: the commit is the run's child.
        tokio::spawn(
            async move {
                engine
                    .commit_chunk(items, Guard::Newer, &meta, &run_id, plan_only, fresh, fresh)
                    .await
            }
            .in_current_span(),
        )
    }

    /// Mark a chunk seen (for deletion detection) and commit it (or plan it).
    #[allow(clippy::too_many_arguments)]
    async fn commit_chunk(
        &self,
        items: Vec<Snapshot>,
        guard: Guard,
        meta: &DriftMeta,
        run_id: &str,
        plan_only: bool,
        mark_seen: bool,
        log_drift: bool,
    ) -> Result<(Batch, Outcome)> {
        if mark_seen {
            let seen: Vec<SeenRow<'_>> = items
                .iter()
                .map(|s| SeenRow {
                    id: s.key.id.as_str(),
                    version: s.version,
                    hash: s.hash.as_str(),
                })
                .collect();
            self.store.mark_seen(run_id, &seen).await?;
        }
        let changes: Vec<Change> = items
            .into_iter()
            .map(|snapshot| Change {
                snapshot,
                guard,
                drift: log_drift.then(|| meta.clone()),
            })
            .collect();
        let batch = Batch {
            changes,
            source: Some(meta.source),
            ..Batch::default()
        };
        let out = self.commit_retrying(&batch, plan_only).await?;
        Ok((batch, out))
    }

    /// Tally a committed chunk, settle its ties, stage it, check the breaker.
    async fn after_chunk(
        &self,
        batch: Batch,
        out: Outcome,
        meta: &DriftMeta,
        opts: &SweepOptions,
        run: &mut RunRecord,
        st: &mut SweepState,
    ) -> Result<()> {
        let plan_only = opts.dry_run || st.staging;
        tally(&batch, &out, run);
        run.counts.unchanged += out.count(Decision::Unchanged);
        run.counts.stale_skipped += out.count(Decision::Stale);

        // Ties: fetch now, and apply (or stage) the fetched state.
        let ties = out.ties(&batch);
        let mut tie_changes = Vec::new();
        let mut resolves = Vec::new();
        for t in &ties {
            // A failure fails the sweep; the tie stays queued (the chunk's
            // commit queued it) and is settled later.
            let snap = self.fetch_state(&t.key).await?;
            tie_changes.push(Change {
                snapshot: snap,
                guard: Guard::NewerOrEqual,
                drift: Some(meta.clone()),
            });
            resolves.push((t.key.clone(), out.generation));
        }
        run.counts.ties_fetched += ties.len() as u64;
        let tie_batch = Batch {
            changes: tie_changes,
            resolves,
            ..Batch::default()
        };
        if !tie_batch.changes.is_empty() {
            let tie_out = self.commit_retrying(&tie_batch, plan_only).await?;
            tally(&tie_batch, &tie_out, run);
            if st.staging {
                st.stage(self.store.as_ref(), &run.id, &tie_batch, &tie_out)
                    .await?;
            }
        }
        // A first backfill fills an empty mirror: counted, but not drift.
        let drift_now = if st.backfill {
            0
        } else {
            run.counts.inserted + run.counts.updated + run.counts.deleted
        };
        run.counts.drift = drift_now;
        if let Some(p) = &opts.progress {
            p.drift.store(drift_now, Ordering::Relaxed);
        }
        if st.staging {
            st.stage(self.store.as_ref(), &run.id, &batch, &out).await?;
            // Trip early: the planned changes already exceed the share.
            self.check_breaker(drift_now, st.base)?;
        }
        Ok(())
    }

    // -------------------------------------------------------------- on demand

    /// Path 3: reconcile one object by id. `kind` may be omitted when the id
    /// says it (`cus_…`).
    #[tracing::instrument(
        name = "recon.reconcile_one",
        skip_all,
        fields(
            provider = self.provider.name(),
            account = self.provider.account(),
            kind = Empty,
            id = id,
            dry_run = dry_run,
            outcome = Empty,
        )
    )]
    pub async fn reconcile_one(
        &self,
        kind: Option<&str>,
        id: &str,
        dry_run: bool,
    ) -> Result<OneOutcome> {
        let kind = match kind {
            Some(k) => k.to_string(),
            None => self
                .provider
                .kind_of(id)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "cannot tell the kind of {id:?} from its id; pass --kind ({})",
                        self.provider.kinds().join(", ")
                    ))
                })?
                .to_string(),
        };
        let span = tracing::Span::current();
        span.record("kind", kind.as_str());
        let key = self.key(&kind, id);
        let fetch = self.fetch_span(self.provider.account(), &kind, id);
        let fetched = self
            .provider
            .fetch(&kind, id)
            .instrument(fetch.clone())
            .await;
        let out = self
            .apply_fetched(key, traced_fetch(&fetch, fetched)?, dry_run, None)
            .await?;
        span.record("outcome", outcome_name(&out));
        Ok(out)
    }

    async fn apply_fetched(
        &self,
        key: ObjectKey,
        fetched: Fetched,
        dry_run: bool,
        run_id: Option<&str>,
    ) -> Result<OneOutcome> {
        let stored = self
            .store
            .get_many(&key.provider, &key.account, &key.kind, &[key.id.as_str()])
            .await?
            .into_iter()
            .next();
        let was_live = stored.as_ref().is_some_and(|s| !s.snapshot.deleted);
        let snap = match fetched {
            Fetched::Found(s) => s,
            Fetched::Deleted(s) => s,
            Fetched::NotFound if stored.is_some() => {
                Snapshot::tombstone(key.clone(), self.provider.version_now())
            }
            Fetched::NotFound => return Ok(OneOutcome::NotFound { key }),
        };
        let deleted = snap.deleted;
        let now = snap.data.clone();
        let batch = Batch {
            changes: vec![Change {
                snapshot: snap,
                guard: Guard::NewerOrEqual,
                drift: Some(DriftMeta {
                    source: Source::OnDemand,
                    run_id: run_id.map(str::to_string),
                }),
            }],
            ..Batch::default()
        };
        let out = self.commit_retrying(&batch, dry_run).await?;
        let d = out.changes[0];
        Ok(if deleted {
            OneOutcome::Deleted { key, was_live }
        } else if d.writes() {
            OneOutcome::Fixed {
                key,
                was: stored.map(|s| s.snapshot.data),
                now,
            }
        } else {
            OneOutcome::AlreadySynced { key }
        })
    }

    /// Path 3: reconcile everything one customer or user owns, the owner
    /// included. Objects the mirror attributes to the owner but the provider
    /// no longer lists are fetched one by one.
    #[tracing::instrument(
        name = "recon.reconcile_owner",
        skip_all,
        fields(
            provider = self.provider.name(),
            account = self.provider.account(),
            owner = owner,
            dry_run = dry_run,
            objects = Empty,
        )
    )]
    pub async fn reconcile_owner(&self, owner: &str, dry_run: bool) -> Result<Vec<OneOutcome>> {
        let current = self.provider.owned_by(owner).await?;
        let stored = self
            .store
            .owned_by(self.provider.name(), self.provider.account(), owner)
            .await?;
        let listed: HashSet<ObjectKey> = current.iter().map(|s| s.key.clone()).collect();
        let mut out = Vec::new();
        for snap in current {
            let key = snap.key.clone();
            let f = if snap.deleted {
                Fetched::Deleted(snap)
            } else {
                Fetched::Found(snap)
            };
            out.push(self.apply_fetched(key, f, dry_run, None).await?);
        }
        for s in stored {
            if listed.contains(&s.snapshot.key) || s.snapshot.deleted {
                continue;
            }
            let key = s.snapshot.key.clone();
            let span = self.fetch_span(&key.account, &key.kind, &key.id);
            let f = self
                .provider
                .fetch_in(&key.account, &key.kind, &key.id)
                .instrument(span.clone())
                .await;
            let f = traced_fetch(&span, f)?;
            out.push(self.apply_fetched(key, f, dry_run, None).await?);
        }
        tracing::Span::current().record("objects", out.len());
        Ok(out)
    }

    // ----------------------------------------------------------------- replay

    /// The stored event cursor, if a replay ran before.
    pub async fn event_cursor(&self) -> Result<Option<i64>> {
        Ok(self
            .store
            .cursor(self.provider.name(), self.provider.account(), "events")
            .await?
            .map(|c| c.value))
    }

    /// Path 4: replay the provider's event log from `since` (provider units,
    /// `>=`), oldest first, through the ledger; the cursor moves in the same
    /// transaction as each page. Events the ledger did not have are missed
    /// webhooks: what they change is logged as drift.
    #[tracing::instrument(
        name = "recon.replay",
        skip_all,
        fields(
            provider = self.provider.name(),
            account = self.provider.account(),
            kind = "*",
            since = since,
            run_id = Empty,
            dry_run = opts.dry_run,
            status = Empty,
            listed = Empty,
            drift = Empty,
        )
    )]
    pub async fn replay(&self, since: i64, opts: &SweepOptions) -> Result<RunRecord> {
        let caps = self.provider.capabilities();
        if !caps.event_log {
            return Err(Error::unsupported(format!(
                "{} has no event log, so there is nothing to replay; run `recon reconcile {}` to repair the mirror with a full sweep",
                self.provider.name(),
                self.provider.name()
            )));
        }
        // A point in the future would become the event cursor, and later
        // replays would resume beyond events that have not happened yet.
        let per_s = self.provider.version_units_per_second().max(1);
        if since > self.provider.version_now().saturating_add(300 * per_s) {
            return Err(Error::invalid(format!(
                "--since is in the future for {}; replay from a past point",
                self.provider.name()
            )));
        }
        if let Some(h) = caps.event_horizon {
            let oldest = self.provider.version_now() - h;
            if since < oldest {
                return Err(Error::invalid(format!(
                    "{} keeps events for a limited time and --since reaches further back than that; replay from a later point, and run `recon reconcile {}` to repair anything older",
                    self.provider.name(),
                    self.provider.name()
                )));
            }
        }
        let mut run = self.new_run("*", RunKind::Replay, opts.dry_run);
        tracing::Span::current().record("run_id", run.id.as_str());
        let heartbeat = self.start_run(&run).await?;
        let res = self.replay_inner(since, opts, &mut run).await;
        drop(heartbeat);
        let (status, error) = match res {
            Ok(()) => (RunStatus::Succeeded, None),
            Err(e) if e.kind() == ErrorKind::Cancelled => {
                (RunStatus::Cancelled, Some(e.to_string()))
            }
            Err(e) => (RunStatus::Failed, Some(e.to_string())),
        };
        let record = self.finish(run, status, error).await?;
        record_run(&record);
        Ok(record)
    }

    async fn replay_inner(
        &self,
        since: i64,
        opts: &SweepOptions,
        run: &mut RunRecord,
    ) -> Result<()> {
        let meta = DriftMeta {
            source: Source::Replay,
            run_id: Some(run.id.clone()),
        };
        let mut cursor: Option<String> = None;
        // The cursor never moves past what the provider's clock has reached.
        let mut high = since.min(self.provider.version_now());
        // Events from here on may still be on their way as webhooks: not
        // counted as missed; held back for a later replay if asked, which
        // then tells a missed webhook from a late one.
        let per_s = self.provider.version_units_per_second().max(1);
        let in_flight_since =
            self.provider.version_now() - self.config.missed_grace.as_secs() as i64 * per_s;
        let hold_from = if opts.hold_back_in_flight {
            in_flight_since
        } else {
            i64::MAX
        };
        loop {
            if opts.cancel.is_cancelled() {
                return Err(Error::new(ErrorKind::Cancelled, "replay cancelled"));
            }
            let span = tracing::info_span!(
                "recon.page",
                provider = self.provider.name(),
                account = self.provider.account(),
                kind = "events",
                run_id = run.id.as_str(),
                page = run.counts.pages + 1,
                items = Empty,
                error = Empty,
                otel.status_code = Empty,
            );
            let page = self
                .provider
                .events_page(since, cursor.as_deref())
                .instrument(span.clone())
                .await;
            traced_page(&span, page.as_ref().map(|p| p.events.len()));
            let page = page?;
            run.counts.pages += 1;
            run.counts.listed += page.events.len() as u64;
            if let Some(p) = &opts.progress {
                p.pages.fetch_add(1, Ordering::Relaxed);
                p.objects
                    .fetch_add(page.events.len() as u64, Ordering::Relaxed);
            }
            let mut events = page.events;
            let ready = events
                .iter()
                .position(|e| e.created >= hold_from)
                .unwrap_or(events.len());
            let held = events.len() - ready;
            events.truncate(ready);
            run.counts.in_flight += held as u64;
            let mut refresh: Vec<(ObjectKey, String)> = Vec::new();
            for e in &events {
                high = high.max(e.created);
                if e.pending_webhooks.unwrap_or(0) > 0 && e.created < in_flight_since {
                    run.counts.undelivered += 1;
                    refresh.extend(
                        e.snapshots
                            .iter()
                            .map(|s| (s.key.clone(), "undelivered".to_string())),
                    );
                }
            }
            // A new event counts as a missed webhook if it carries states and
            // is past the time its webhook could still be on the way.
            let missable: Vec<bool> = events
                .iter()
                .map(|e| !e.snapshots.is_empty() && e.created < in_flight_since)
                .collect();
            let batch = Batch {
                events: events
                    .into_iter()
                    .map(|event| EventEntry {
                        event,
                        source: Source::Replay,
                        drift: Some(meta.clone()),
                    })
                    .collect(),
                changes: Vec::new(),
                source: Some(Source::Replay),
                cursors: vec![Cursor {
                    provider: self.provider.name().to_string(),
                    account: self.provider.account().to_string(),
                    name: "events".to_string(),
                    value: high,
                    updated_at: now_ms(),
                }],
                fetches: refresh,
                resolves: Vec::new(),
            };
            let out = self.commit_retrying(&batch, opts.dry_run).await?;
            for (ev, missable) in out.events.iter().zip(&missable) {
                run.counts.compared += 1;
                if ev.new {
                    run.counts.events_applied += 1;
                    if *missable {
                        run.counts.missed += 1;
                    }
                } else {
                    run.counts.events_duplicate += 1;
                }
            }
            run.counts.inserted += out.count(Decision::Insert);
            run.counts.updated += out.count(Decision::Update);
            run.counts.stale_skipped += out.count(Decision::Stale);
            run.counts.drift += out.drift.len() as u64;
            if let Some(p) = &opts.progress {
                p.drift.store(run.counts.drift, Ordering::Relaxed);
            }
            let due: Vec<(ObjectKey, i64, u32)> = out
                .ties(&batch)
                .into_iter()
                .map(|s| (s.key.clone(), out.generation, 0))
                .collect();
            let settled = self.settle(due, Some(meta.clone()), opts.dry_run).await?;
            run.counts.ties_fetched += settled.settled;
            match page.next {
                Some(n) if held == 0 => cursor = Some(n),
                _ => break,
            }
        }
        if !opts.dry_run {
            let drained = self.settle_pending().await?;
            run.counts.ties_fetched += drained.settled;
        }
        Ok(())
    }
}

/// The name of an on-demand outcome, for its span.
fn outcome_name(o: &OneOutcome) -> &'static str {
    match o {
        OneOutcome::Fixed { .. } => "fixed",
        OneOutcome::AlreadySynced { .. } => "already_synced",
        OneOutcome::Deleted { .. } => "deleted",
        OneOutcome::NotFound { .. } => "not_found",
    }
}

/// Record a finished run's status and counts on its span.
fn record_run(run: &RunRecord) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    span.record("status", run.status.as_str());
    span.record("listed", run.counts.listed);
    span.record("drift", run.counts.drift);
}

/// Record a listed page's size, or its failure (the error's kind only: its
/// message may quote the provider's answer), on its span.
fn traced_page(span: &tracing::Span, items: std::result::Result<usize, &Error>) {
    if span.is_disabled() {
        return;
    }
    match items {
        Ok(n) => {
            span.record("items", n);
        }
        Err(e) => {
            span.record("error", e.kind().as_str());
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Record a fetch's outcome (found, deleted, not found) or its failure's
/// kind on its span, and pass the result on.
fn traced_fetch(span: &tracing::Span, fetched: Result<Fetched>) -> Result<Fetched> {
    if !span.is_disabled() {
        match &fetched {
            Ok(Fetched::Found(_)) => span.record("outcome", "found"),
            Ok(Fetched::Deleted(_)) => span.record("outcome", "deleted"),
            Ok(Fetched::NotFound) => span.record("outcome", "not_found"),
            Err(e) => {
                span.record("error", e.kind().as_str());
                span.record("otel.status_code", "ERROR")
            }
        };
    }
    fetched
}

/// What a sweep that stops during its deletion checks has deleted, for its
/// run record.
fn deleted_so_far(run: &RunRecord, planned_only: bool) -> String {
    if planned_only {
        format!(
            "nothing deleted ({} deletions were planned, none applied)",
            run.counts.deleted
        )
    } else {
        format!(
            "{} objects deleted before it stopped, each confirmed by a direct fetch; the next sweep finishes the checks",
            run.counts.deleted
        )
    }
}

/// Count the writes of a committed batch into the run.
fn tally(batch: &Batch, out: &Outcome, run: &mut RunRecord) {
    for (c, d) in batch.changes.iter().zip(&out.changes) {
        match d {
            Decision::Insert if !c.snapshot.deleted => run.counts.inserted += 1,
            Decision::Insert | Decision::Update if c.snapshot.deleted => run.counts.deleted += 1,
            Decision::Update => run.counts.updated += 1,
            _ => {}
        }
    }
}

#[derive(Default)]
struct SweepState {
    base: u64,
    backfill: bool,
    staging: bool,
    seq: i64,
}

impl SweepState {
    async fn stage(
        &mut self,
        store: &dyn Store,
        run_id: &str,
        batch: &Batch,
        out: &Outcome,
    ) -> Result<()> {
        let writes: Vec<&Change> = batch
            .changes
            .iter()
            .zip(&out.changes)
            .filter(|(_, d)| d.writes())
            .map(|(c, _)| c)
            .collect();
        if writes.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_vec(&writes)?;
        self.seq += 1;
        store.stage(run_id, self.seq, &payload).await
    }
}

/// Group on-demand outcomes for a one-line summary.
pub fn summarize(outcomes: &[OneOutcome]) -> HashMap<&'static str, usize> {
    let mut m = HashMap::new();
    for o in outcomes {
        let k = match o {
            OneOutcome::Fixed { .. } => "fixed",
            OneOutcome::AlreadySynced { .. } => "already_synced",
            OneOutcome::Deleted { .. } => "deleted",
            OneOutcome::NotFound { .. } => "not_found",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
