//! The guarantees at their edges (issue 11): one function per scenario that
//! broke an invariant; `guarantee_tests!` runs each against a store.
//!
//! Each was run against the engine without its fix and failed; the module
//! README of `tests/` (and the issue note) says what each showed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use recon_core::commit::{Batch, Change, EventEntry, commit};
use recon_core::engine::{EngineConfig, SweepOptions};
use recon_core::store::Guard;
use recon_core::testkit::fake::TestProvider;
use recon_core::types::{ProviderEvent, RunStatus, Snapshot, Source};
use recon_core::{Engine, ObjectKey, Provider, Store};
use serde_json::json;

use crate::assert_mirror_matches;
use crate::failing::{FailAt, FailingStore};

fn config() -> EngineConfig {
    let mut cfg = EngineConfig::default();
    cfg.commit_chunk = 40;
    cfg.partitions = 1;
    // Queued fetches that failed are due again at once, so a test need
    // not wait out a backoff.
    cfg.pending_retry = Duration::ZERO;
    cfg
}

fn engine_with(store: &Arc<dyn Store>, p: &Arc<TestProvider>, cfg: EngineConfig) -> Engine {
    let provider: Arc<dyn Provider> = p.clone();
    Engine::new(store.clone(), provider).with_config(cfg)
}

fn engine(store: &Arc<dyn Store>, p: &Arc<TestProvider>) -> Engine {
    engine_with(store, p, config())
}

async fn stored(store: &dyn Store, account: &str, id: &str) -> Option<Snapshot> {
    store
        .get_many("test", account, "parents", &[id])
        .await
        .unwrap()
        .into_iter()
        .next()
        .map(|s| s.snapshot)
}

async fn ingest(e: &Engine, ev: &ProviderEvent) -> recon_core::Result<recon_core::IngestReport> {
    e.ingest_event(ev.clone(), Source::Webhook).await
}

/// Item 1: a tie whose settling fetch fails is not lost. Its obligation is
/// queued with the ledger row; a redelivery (a ledger duplicate) drains it
/// once the provider answers again.
pub async fn tie_survives_failed_fetch(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let created = p.put("parents", "p_t", json!({ "name": "A" }));
    ingest(&e, &created).await.unwrap();
    // `customer.updated` in the same second as `customer.created`.
    let updated = p.put_same_second("parents", "p_t", json!({ "name": "B" }));
    p.fail_fetches();
    // Acknowledging it is safe now (the tie is queued), but a 503 would be
    // too; what matters is what happens next.
    let first = ingest(&e, &updated).await;
    if let Ok(r) = &first {
        assert_eq!((r.ties_fetched, r.ties_pending), (0, 1), "{r:?}");
    }
    p.heal();
    // The provider redelivers both: ledger duplicates.
    for ev in [&created, &updated] {
        let r = ingest(&e, ev).await.unwrap();
        assert!(r.duplicate);
    }
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    assert!(
        store
            .pending_fetches("test", "default")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Item 1: a new object whose first two events tie (both in one commit) is
/// inserted once the provider answers, by an engine started after the
/// failure (the obligation survives a restart).
pub async fn tie_of_a_new_object_survives_restart(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let a = p.put("parents", "p_n", json!({ "name": "A" }));
    let b = p.put_same_second("parents", "p_n", json!({ "name": "B" }));
    let batch = Batch {
        events: [a, b]
            .into_iter()
            .map(|event| EventEntry {
                event,
                source: Source::Webhook,
                drift: None,
            })
            .collect(),
        ..Batch::default()
    };
    commit(store.as_ref(), &batch, false).await.unwrap();
    assert!(
        stored(store.as_ref(), "default", "p_n").await.is_none(),
        "a tie inside one batch must not pick a winner by arrival"
    );
    let queued = store.pending_fetches("test", "default").await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].reason, "tie");

    // The first engine's fetch fails: still queued, with the error.
    p.fail_fetches();
    let first = engine(&store, &p).settle_pending().await.unwrap();
    assert_eq!((first.settled, first.pending), (0, 1));
    let queued = store.pending_fetches("test", "default").await.unwrap();
    assert_eq!(queued[0].attempts, 1);
    assert!(queued[0].last_error.is_some());

    // A new engine (a restart) settles it.
    p.heal();
    let report = engine(&store, &p).settle_pending().await.unwrap();
    assert_eq!((report.settled, report.changed), (1, 1), "{report:?}");
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    assert!(
        store
            .pending_fetches("test", "default")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Twenty parents in the mirror and at the provider, all delivered.
async fn mirrored_parents(e: &Engine, p: &TestProvider) {
    for i in 0..20 {
        let ev = p.put(
            "parents",
            &format!("p_{i:02}"),
            json!({ "name": format!("parent {i}") }),
        );
        ingest(e, &ev).await.unwrap();
    }
}

/// Item 2: an older webhook delivered during a sweep, after the sweep listed
/// the object, does not overwrite what the sweep saw; the newest event is
/// then not refused by the floor.
pub async fn sweep_protects_what_it_listed(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(1));
    let mut cfg = config();
    cfg.commit_chunk = 1;
    let e = engine_with(&store, &p, cfg);
    mirrored_parents(&e, &p).await;
    // At the provider: p_00 goes A → B → A; both webhooks are delayed.
    let to_b = p.put("parents", "p_00", json!({ "name": "B" }));
    let back = p.put("parents", "p_00", json!({ "name": "parent 0" }));
    // The sweep starts a little later (its floor is above both events).
    p.tick(5);
    // A slow sweep lists p_00 (first in id order) as A: unchanged.
    p.slow_pages(Duration::from_millis(40));
    let sweeper = e.clone();
    let sweep =
        tokio::spawn(async move { sweeper.sweep("parents", &SweepOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweep.is_finished(), "the sweep should still be listing");
    // The delayed B arrives while the sweep runs, after it listed p_00.
    let r = ingest(&e, &to_b).await.unwrap();
    let run = sweep.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    // The newest event arrives last.
    ingest(&e, &back).await.unwrap();
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    assert_eq!(r.stale, 1, "the older webhook was applied: {r:?}");
}

/// A slow sweep of twenty mirrored parents lists `p_00` unchanged; then a
/// state older than that listing (newer than the mirror, one the provider
/// never had) is written without an event, as a writer that decided just
/// before the listing was recorded would. Returns the provider, the engine
/// and the running sweep.
async fn sweep_with_an_older_write_racing_in(
    store: &Arc<dyn Store>,
) -> (
    Arc<TestProvider>,
    Engine,
    tokio::task::JoinHandle<recon_core::Result<recon_core::RunRecord>>,
) {
    let p = Arc::new(TestProvider::new(1));
    let mut cfg = config();
    cfg.commit_chunk = 1;
    let e = engine_with(store, &p, cfg);
    mirrored_parents(&e, &p).await;
    let old = stored(store.as_ref(), "default", "p_00").await.unwrap();
    p.tick(5);
    p.slow_pages(Duration::from_millis(40));
    let sweeper = e.clone();
    let sweep =
        tokio::spawn(async move { sweeper.sweep("parents", &SweepOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweep.is_finished(), "the sweep should still be listing");
    // A state the provider never had, older than the listing, newer than
    // the mirror: written without an event, as a racing writer would.
    let bogus = Snapshot::live(
        old.key.clone(),
        old.version + 1,
        json!({ "id": "p_00", "name": "older than the listing" }),
    );
    let b = Batch {
        changes: vec![Change {
            snapshot: bogus,
            guard: Guard::Newer,
            drift: None,
        }],
        ..Batch::default()
    };
    let out = commit(store.as_ref(), &b, false).await.unwrap();
    assert!(out.changes[0].writes(), "setup: the racing write must land");
    (p, e, sweep)
}

/// Item 2: a state older than the listing written after the sweep listed the
/// object (the race the guard cannot see: the write decided before the
/// listing was recorded) is fetched and fixed before the sweep ends.
pub async fn sweep_refetches_what_was_overwritten(store: Arc<dyn Store>) {
    let (p, _e, sweep) = sweep_with_an_older_write_racing_in(&store).await;
    let run = sweep.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Found by the race harness: an object created and deleted before a sweep,
/// both webhooks delayed past it, must not come back to life: its creation
/// (older than the floor) is not inserted, so the deletion (also older)
/// being refused leaves nothing behind.
pub async fn delayed_create_of_a_vanished_object(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    mirrored_parents(&e, &p).await;
    let created = p.put("parents", "p_gone", json!({ "name": "short-lived" }));
    let deleted = p.delete("parents", "p_gone");
    p.tick(5);
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    ingest(&e, &created).await.unwrap();
    ingest(&e, &deleted).await.unwrap();
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Item 5: the tombstone rule holds when a fetch of a live state and a
/// `*.deleted` event of the same second commit concurrently (both decided
/// from the same read): whichever writes first, the mirror ends deleted once
/// the queued tie is settled. Postgres only: SQLite serialises whole write
/// transactions, so the two cannot interleave there.
pub async fn tombstone_race(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    for round in 0..6 {
        let id = format!("p_r{round}");
        let created = p.put("parents", &id, json!({ "name": "alive" }));
        let plain = engine(&store, &p);
        ingest(&plain, &created).await.unwrap();
        p.tick(1);
        let Ok(recon_core::provider::Fetched::Found(live)) = p.fetch("parents", &id).await else {
            panic!("setup: fetch");
        };
        let deleted = p.delete("parents", &id);
        let mut deleted = deleted;
        // The deletion in the same second as the fetch.
        deleted.created = live.version;
        deleted.snapshots[0].version = live.version;
        let barrier: &'static tokio::sync::Barrier =
            Box::leak(Box::new(tokio::sync::Barrier::new(2)));
        let racing: Arc<dyn Store> = Arc::new(FailingStore::new(
            store.clone(),
            FailAt::Rendezvous(barrier),
        ));
        let fetch_batch = Batch {
            changes: vec![Change {
                snapshot: live,
                guard: Guard::NewerOrEqual,
                drift: None,
            }],
            ..Batch::default()
        };
        let event_batch = Batch {
            events: vec![EventEntry {
                event: deleted,
                source: Source::Webhook,
                drift: None,
            }],
            ..Batch::default()
        };
        let (a, b) = tokio::join!(
            commit(racing.as_ref(), &fetch_batch, false),
            commit(racing.as_ref(), &event_batch, false)
        );
        a.unwrap();
        b.unwrap();
        plain.settle_pending().await.unwrap();
        let s = stored(store.as_ref(), "default", &id).await.unwrap();
        assert!(
            s.deleted,
            "round {round}: a live state of the deletion's second lifted the tombstone"
        );
    }
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Item 6: a sweep that started earlier but finishes later (the CLI beside
/// `recon serve`, or a sweep longer than its interval) does not lower the
/// floor: floors, like every cursor, only rise.
pub async fn floors_only_rise(store: Arc<dyn Store>) {
    let floor_at = |v: i64| Batch {
        cursors: vec![recon_core::store::Cursor {
            provider: "test".into(),
            account: "default".into(),
            name: "sweep:parents".into(),
            value: v,
            updated_at: recon_core::types::now_ms(),
        }],
        ..Batch::default()
    };
    // The later sweep finished first.
    commit(store.as_ref(), &floor_at(120), false).await.unwrap();
    commit(store.as_ref(), &floor_at(20), false).await.unwrap();
    let floor = store
        .cursor("test", "default", "sweep:parents")
        .await
        .unwrap()
        .map(|c| c.value);
    assert_eq!(
        floor,
        Some(120),
        "the sweep that finished last lowered the floor"
    );
    // So a webhook between the two is still refused: an object the mirror
    // never held, at a version below the higher floor.
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    p.tick(49);
    let ev = p.put("parents", "p_1", json!({ "name": "x" }));
    assert_eq!(ev.created, 50);
    let r = ingest(&e, &ev).await.unwrap();
    assert_eq!((r.applied, r.stale), (0, 1), "{r:?}");
    p.tick(100);
    let ev = p.put("parents", "p_2", json!({ "name": "y" }));
    let r = ingest(&e, &ev).await.unwrap();
    assert_eq!(r.applied, 1, "newer than the floor: {r:?}");
}

/// Item 7: a sweep cancelled between deletion chunks records exactly how
/// many objects it deleted.
pub async fn cancel_during_deletions_says_what_was_deleted(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    mirrored_parents(&e, &p).await;
    for i in 20..60 {
        let ev = p.put("parents", &format!("p_{i:02}"), json!({ "n": i }));
        ingest(&e, &ev).await.unwrap();
    }
    // 50 of 60 vanish (purged: fetch says not found).
    for i in 0..50 {
        p.purge("parents", &format!("p_{i:02}"));
    }
    let opts = SweepOptions {
        force: true,
        ..SweepOptions::default()
    };
    // Shutdown arrives during the first chunk of deletion checks (40).
    p.cancel_after_fetches(30, opts.cancel.clone());
    let run = e.sweep("parents", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    let live = store
        .count_live("test", "default", "parents")
        .await
        .unwrap();
    let deleted = 60 - live;
    assert!(deleted > 0, "setup: the cancel should land between chunks");
    let err = run.error.clone().unwrap_or_default();
    assert!(
        err.contains(&format!("{deleted} objects deleted")),
        "the run must say what was deleted ({deleted}): {err}"
    );
    assert_eq!(run.counts.deleted, deleted);
    let recorded = store.runs(1).await.unwrap().remove(0);
    assert_eq!(recorded.error, run.error);
}

/// Item 8: a Connect object's tie is fetched under its own account; a
/// provider that cannot act as that account leaves it queued and never
/// turns the platform's "not found" into a tombstone.
pub async fn connect_tie_never_tombstoned_from_platform(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    // The platform's clock is past the events: a tombstone from its fetch
    // would win.
    p.tick(10);
    let key = ObjectKey::new("test", "acct_9", "parents", "p_c");
    let ev = |id: &str, v: i64, name: &str| ProviderEvent {
        provider: "test".into(),
        account: "acct_9".into(),
        event_id: id.into(),
        event_type: "parents.updated".into(),
        created: v,
        pending_webhooks: None,
        snapshots: vec![Snapshot::live(
            key.clone(),
            v,
            json!({ "id": "p_c", "name": name }),
        )],
    };
    ingest(&e, &ev("evt_c1", 5, "A")).await.unwrap();
    let r = ingest(&e, &ev("evt_c2", 5, "B")).await.unwrap();
    assert_eq!(r.ties_pending, 1, "{r:?}");
    let s = stored(store.as_ref(), "acct_9", "p_c").await.unwrap();
    assert!(
        !s.deleted,
        "a fetch under the platform account tombstoned a Connect object"
    );
    let queued = store.pending_fetches("test", "acct_9").await.unwrap();
    assert_eq!(queued.len(), 1);
    assert!(
        queued[0]
            .last_error
            .as_deref()
            .is_some_and(|m| m.contains("acct_9")),
        "{queued:?}"
    );
}

/// Item 9: replay counts as missed only events that carry states and are
/// past the in-flight grace period.
pub async fn replay_counts_only_real_missed_webhooks(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let mut cfg = config();
    cfg.missed_grace = Duration::from_secs(50);
    let e = engine_with(&store, &p, cfg);
    p.put("parents", "p_old", json!({ "name": "old" }));
    p.unknown_event();
    p.tick(100);
    let in_flight = p.put("parents", "p_new", json!({ "name": "in flight" }));
    // An operator's replay applies everything, counting only p_old.
    let run = e.replay(0, &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.events_applied, 3);
    assert_eq!(run.counts.missed, 1, "{:?}", run.counts);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    // A scheduled replay leaves the in-flight event for later: its cursor
    // stops before it, and its webhook then arrives in time.
    let fresh: Arc<dyn Store> = Arc::new(recon_store_sqlite::testing::fresh_store().await);
    let e = engine_with(&fresh, &p, {
        let mut c = config();
        c.missed_grace = Duration::from_secs(50);
        c
    });
    let scheduled = SweepOptions {
        hold_back_in_flight: true,
        ..SweepOptions::default()
    };
    let run = e.replay(0, &scheduled).await.unwrap();
    assert_eq!((run.counts.events_applied, run.counts.in_flight), (2, 1));
    assert!(e.event_cursor().await.unwrap().unwrap() < in_flight.created);
    ingest(&e, &in_flight).await.unwrap();
    p.tick(100);
    let since = e.event_cursor().await.unwrap().unwrap();
    let run = e.replay(since, &scheduled).await.unwrap();
    assert_eq!(
        run.counts.missed, 0,
        "a webhook that came in time is not missed"
    );
}

/// Item 11: an event the provider still reports undelivered long after its
/// creation is counted, and its object is refreshed by a fetch.
pub async fn undelivered_events_are_counted_and_refreshed(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let mut cfg = config();
    cfg.missed_grace = Duration::from_secs(60);
    let e = engine_with(&store, &p, cfg);
    let stuck = p.put("parents", "p_s", json!({ "name": "stuck" }));
    p.mark_undelivered(&stuck.event_id, 1);
    p.tick(100);
    // Still pending, but only just created: not yet "long after".
    let fresh = p.put("parents", "p_f", json!({ "name": "fresh" }));
    p.mark_undelivered(&fresh.event_id, 1);
    let before = p.fetches.load(Ordering::SeqCst);
    let run = e.replay(0, &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.undelivered, 1, "{:?}", run.counts);
    assert_eq!(
        p.fetches.load(Ordering::SeqCst) - before,
        1,
        "the undelivered event's object should be fetched once"
    );
    assert!(
        store
            .pending_fetches("test", "default")
            .await
            .unwrap()
            .is_empty()
    );
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

// ------------------------------------------------------------------------
// Found by a hostile review of the change: each failed before its fix.

/// Finding: the seen rule refuses an event because of a listing that is
/// never applied. A staged sweep (every sweep of a kind with at least
/// `breaker_min_base` objects) only plans its chunks; if it then fails (or
/// trips the breaker, or is cancelled) the listing is discarded, while the
/// acknowledged event it made "stale" was neither applied nor queued.
pub async fn seen_refusal_lost_when_staged_sweep_fails(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(1));
    let mut cfg = config();
    cfg.commit_chunk = 1;
    let e = engine_with(&store, &p, cfg);
    mirrored_parents(&e, &p).await; // 20 objects: the sweep stages
    let a = stored(store.as_ref(), "default", "p_00").await.unwrap();
    // p_00: A → B (webhook delayed) → C (webhook lost).
    let to_b = p.put("parents", "p_00", json!({ "name": "B" }));
    p.put("parents", "p_00", json!({ "name": "C" }));
    p.tick(5);
    p.slow_pages(Duration::from_millis(60));
    // The provider fails late in the listing (a 503 run of bad luck).
    p.fail_listing_at("parents", 15);
    let sweeper = e.clone();
    let sweep =
        tokio::spawn(async move { sweeper.sweep("parents", &SweepOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweep.is_finished(), "the sweep should still be listing");
    let r = ingest(&e, &to_b).await.unwrap();
    assert_eq!(
        r.stale, 1,
        "setup: B should be refused by the running listing"
    );
    let run = sweep.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    p.heal();
    e.settle_pending().await.unwrap();
    let now = stored(store.as_ref(), "default", "p_00").await.unwrap();
    assert!(
        now.version >= to_b.created,
        "the acknowledged event B (v{}) was refused for a listing that was never applied; \
         the mirror still holds A (v{}, now v{}) and nothing is queued",
        to_b.created,
        a.version,
        now.version
    );
}

/// Finding: a state the sweep found overwritten by an older webhook is
/// fetched once, not queued: when that fetch fails the sweep fails, its
/// `sweep_seen` rows are cleared, and the object stays older than the
/// listing with nothing owed on record (`sweep_overwritten`, named in the
/// `PendingFetch` docs, is never queued).
pub async fn failed_refetch_of_overwritten_state_is_forgotten(store: Arc<dyn Store>) {
    let (p, e, sweep) = sweep_with_an_older_write_racing_in(&store).await;
    // The provider's fetch endpoint has a bad minute.
    p.fail_fetches();
    let run = sweep.await.unwrap().unwrap();
    // The listing completed, so the sweep stands; what it could not fetch
    // is owed, on record.
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let owed = store.pending_fetches("test", "default").await.unwrap();
    assert!(
        owed.iter()
            .any(|f| f.key.id == "p_00" && f.reason == "sweep_outdated"),
        "{owed:?}"
    );
    p.heal();
    e.settle_pending().await.unwrap();
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Finding: the drain commits every fetched state of a round in one
/// transaction; one object the store refuses fails the round before any
/// deferral, nothing moves, and the same round is retried forever: one
/// poison object blocks every other owed fetch (and fails every replay,
/// whose final drain is `?`).
pub async fn poison_fetch_blocks_the_queue(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    p.put("parents", "p_bad", json!({ "name": "bad" }));
    p.put("parents", "p_good", json!({ "name": "good" }));
    let key = |id: &str| ObjectKey::new("test", "default", "parents", id);
    let queue = Batch {
        fetches: vec![
            (key("p_bad"), "undelivered".to_string()),
            (key("p_good"), "undelivered".to_string()),
        ],
        ..Batch::default()
    };
    commit(store.as_ref(), &queue, false).await.unwrap();
    let failing: Arc<dyn Store> =
        Arc::new(FailingStore::new(store.clone(), FailAt::UpsertOf("p_bad")));
    let e = engine(&failing, &p);
    for _ in 0..3 {
        let _ = e.settle_pending().await;
    }
    assert!(
        stored(store.as_ref(), "default", "p_good").await.is_some(),
        "p_good was never settled: one object the store refuses blocks the whole queue"
    );
    let left = store.pending_fetches("test", "default").await.unwrap();
    assert!(
        left.iter().all(|f| f.key.id != "p_bad" || f.attempts > 0),
        "the poison object is retried at once forever, never deferred: {left:?}"
    );
}

/// Finding: a replay resumed from the cursor (every scheduled replay, every
/// 5 minutes by default) sees only events younger than `missed_grace` (10
/// minutes), so it never counts them; the cursor moves past them, and the
/// next replay sees them only as ledger duplicates. A webhook that never
/// came is never counted as missed (nor an undelivered event ever found),
/// so the missed-webhook alert and the event-triggered sweep never fire.
pub async fn missed_webhook_never_counted_by_resumed_replays(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let mut cfg = config();
    cfg.missed_grace = Duration::from_secs(50);
    let e = engine_with(&store, &p, cfg);
    // Its webhook never arrives.
    p.put("parents", "p_m", json!({ "name": "lost" }));
    let scheduled = SweepOptions {
        hold_back_in_flight: true,
        ..SweepOptions::default()
    };
    let first = e.replay(0, &scheduled).await.unwrap();
    assert_eq!(first.counts.missed, 0, "in flight: not counted yet");
    p.tick(100);
    let since = e.event_cursor().await.unwrap().unwrap();
    let second = e.replay(since, &scheduled).await.unwrap();
    assert_eq!(
        first.counts.missed + second.counts.missed,
        1,
        "a webhook that never came was never counted as missed: {:?} / {:?}",
        first.counts,
        second.counts
    );
}

/// Finding: a duplicate delivery drains the whole due queue (up to 8 rounds
/// of 200 fetches) before it is answered: the provider's retry of one
/// webhook waits on hundreds of unrelated API calls and times out, which
/// the provider counts as another failed delivery. `recon serve` already
/// drains every `settle_every`.
pub async fn duplicate_delivery_does_bounded_work(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let ev = p.put("parents", "p_d", json!({ "name": "d" }));
    ingest(&e, &ev).await.unwrap();
    // A replay queued 300 undelivered events' objects.
    let mut fetches = Vec::new();
    for i in 0..300 {
        let id = format!("p_u{i:03}");
        p.put("parents", &id, json!({ "n": i }));
        fetches.push((
            ObjectKey::new("test", "default", "parents", &id),
            "undelivered".to_string(),
        ));
    }
    let queue = Batch {
        fetches,
        ..Batch::default()
    };
    commit(store.as_ref(), &queue, false).await.unwrap();
    let before = p.fetches.load(Ordering::SeqCst);
    let r = ingest(&e, &ev).await.unwrap();
    assert!(r.duplicate);
    let during = p.fetches.load(Ordering::SeqCst) - before;
    assert!(
        during <= 8,
        "a duplicate delivery made {during} provider fetches before it could be acknowledged"
    );
}

#[macro_export]
macro_rules! guarantee_tests {
    ($make:path) => {
        $crate::guarantee_tests!(@each $make;
            tie_survives_failed_fetch, tie_of_a_new_object_survives_restart,
            sweep_protects_what_it_listed, sweep_refetches_what_was_overwritten,
            delayed_create_of_a_vanished_object,
            floors_only_rise, cancel_during_deletions_says_what_was_deleted,
            connect_tie_never_tombstoned_from_platform,
            replay_counts_only_real_missed_webhooks,
            undelivered_events_are_counted_and_refreshed,
            seen_refusal_lost_when_staged_sweep_fails,
            failed_refetch_of_overwritten_state_is_forgotten, poison_fetch_blocks_the_queue,
            missed_webhook_never_counted_by_resumed_replays, duplicate_delivery_does_bounded_work);
    };
    (@each $make:path; $($name:ident),*) => {
        mod guarantees {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::guarantees::$name($make().await).await;
                }
            )*
        }
    };
}
