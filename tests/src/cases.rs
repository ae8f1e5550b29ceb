//! One function per engine behaviour; `engine_tests!` runs each against a store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use recon_core::commit::{Batch, EventEntry, commit};
use recon_core::engine::{EngineConfig, OneOutcome, SweepOptions};
use recon_core::store::DriftQuery;
use recon_core::testkit::fake::TestProvider;
use recon_core::testkit::store_suite::running_sweep;
use recon_core::types::{ProviderEvent, RunStatus, Snapshot, Source, now_ms};
use recon_core::{Engine, ErrorKind, ObjectKey, Provider, Store};
use serde_json::json;

use crate::failing::{FailAt, FailingStore};
use crate::{assert_mirror_matches, seeded};

fn engine(store: &Arc<dyn Store>, p: &Arc<TestProvider>) -> Engine {
    let provider: Arc<dyn Provider> = p.clone();
    let mut cfg = EngineConfig::default();
    cfg.commit_chunk = 40;
    cfg.partitions = 3;
    Engine::new(store.clone(), provider).with_config(cfg)
}

async fn drift_count(store: &dyn Store) -> usize {
    store
        .drift(&DriftQuery {
            limit: 100_000,
            ..DriftQuery::default()
        })
        .await
        .unwrap()
        .len()
}

async fn sweep_ok(e: &Engine) {
    for run in e.sweep_all(&SweepOptions::default()).await.unwrap() {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
}

/// A sweep converges an empty mirror; a second sweep finds no drift and
/// writes nothing.
pub async fn sweep_converges_and_resweep_writes_nothing(store: Arc<dyn Store>) {
    let p = seeded(7, 30, 90);
    let e = engine(&store, &p);
    let runs = e.sweep_all(&SweepOptions::default()).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].counts.inserted, 30);
    assert_eq!(runs[1].counts.inserted, 90);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    assert_mirror_matches(store.as_ref(), &p, "children").await;
    let drift_before = drift_count(store.as_ref()).await;

    let again = e.sweep_all(&SweepOptions::default()).await.unwrap();
    for r in &again {
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(
            (
                r.counts.inserted,
                r.counts.updated,
                r.counts.deleted,
                r.counts.drift
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(r.counts.unchanged, r.counts.listed);
        assert_eq!(r.mismatch_ratio, 0.0);
    }
    assert_eq!(drift_count(store.as_ref()).await, drift_before);
}

/// Changes, additions and deletions at the provider are found, logged with
/// before/after, and fixed.
pub async fn sweep_finds_and_fixes_drift(store: Arc<dyn Store>) {
    let p = seeded(7, 40, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    for i in 0..5 {
        p.put(
            "parents",
            &format!("p_{i:04}"),
            json!({ "name": "renamed" }),
        );
    }
    for i in 5..8 {
        p.delete("parents", &format!("p_{i:04}"));
    }
    p.put("parents", "p_new1", json!({ "name": "new" }));
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(
        (run.counts.updated, run.counts.deleted, run.counts.inserted),
        (5, 3, 1)
    );
    assert_eq!(run.counts.drift, 9);
    assert!(run.mismatch_ratio > 0.0);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    let drift = store
        .drift(&DriftQuery {
            run_id: Some(run.id.clone()),
            limit: 100,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(drift.len(), 9);
    let renamed = drift.iter().find(|d| d.key.id == "p_0000").unwrap();
    assert_eq!(renamed.before.as_ref().unwrap()["name"], "parent 0");
    assert_eq!(renamed.after.as_ref().unwrap()["name"], "renamed");
    assert!(
        drift
            .iter()
            .any(|d| d.key.id == "p_0005" && d.cause == recon_core::DriftCause::Deleted)
    );
}

/// No deletion from a partial view: a listing that fails on page k deletes
/// nothing and the run is recorded as failed; once healed, a sweep deletes.
pub async fn no_deletion_from_partial_listing(store: Arc<dyn Store>) {
    let p = seeded(5, 40, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    for i in 30..40 {
        p.delete("parents", &format!("p_{i:04}"));
    }
    p.fail_listing_at("parents", 2);
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("nothing deleted"),
        "{:?}",
        run.error
    );
    assert_eq!(run.counts.deleted, 0);
    assert_eq!(
        store
            .count_live("test", "default", "parents")
            .await
            .unwrap(),
        40
    );
    let recorded = store.runs(1).await.unwrap();
    assert_eq!(recorded[0].id, run.id);
    assert_eq!(
        recorded[0].status,
        RunStatus::Failed,
        "a failed run recorded as {:?}",
        recorded[0].status
    );

    p.heal();
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.deleted, 10);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// A listing that ends because the adapter panicked is not complete: the
/// sweep fails and deletes nothing (the panicking producer's channel closing
/// must not read as the end of the listing).
pub async fn a_panicking_listing_deletes_nothing(store: Arc<dyn Store>) {
    let p = seeded(5, 40, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    for i in 30..40 {
        p.delete("parents", &format!("p_{i:04}"));
    }
    p.panic_listing_at("parents", 1);
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(
        run.error.as_deref().unwrap().contains("nothing deleted"),
        "{:?}",
        run.error
    );
    assert_eq!(run.counts.deleted, 0);
    let live = store
        .count_live("test", "default", "parents")
        .await
        .unwrap();
    assert_eq!(live, 40);
    p.heal();
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!((run.status, run.counts.deleted), (RunStatus::Succeeded, 10));
}

/// An object missing from the listing is deleted only if a direct fetch
/// confirms it; a fetch failure fails the run.
pub async fn deletions_are_confirmed_by_fetch(store: Arc<dyn Store>) {
    let p = seeded(5, 12, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    p.hide_from_listing("p_0003");
    let before = p.fetches.load(Ordering::SeqCst);
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.deleted, 0);
    assert!(
        p.fetches.load(Ordering::SeqCst) > before,
        "no confirming fetch"
    );
    assert_mirror_matches(store.as_ref(), &p, "parents").await;

    p.delete("parents", "p_0004");
    p.fail_fetches();
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        store
            .count_live("test", "default", "parents")
            .await
            .unwrap(),
        12
    );
}

/// A cancelled sweep deletes nothing and is recorded as cancelled.
pub async fn cancelled_sweep_deletes_nothing(store: Arc<dyn Store>) {
    let p = seeded(5, 30, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    for i in 0..5 {
        p.delete("parents", &format!("p_{i:04}"));
    }
    let opts = SweepOptions::default();
    opts.cancel.cancel();
    let run = e.sweep("parents", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(
        store
            .count_live("test", "default", "parents")
            .await
            .unwrap(),
        30
    );
    assert_eq!(store.runs(1).await.unwrap()[0].status, RunStatus::Cancelled);
}

/// A run left `running` by a process that died is closed as failed by the
/// next sweep, with a reason; nothing stays `running` after it.
pub async fn abandoned_runs_are_closed(store: Arc<dyn Store>) {
    let p = seeded(5, 30, 0);
    let dead = running_sweep("parents", "run-of-a-killed-process", now_ms() - 10 * 60_000);
    store.insert_run(&dead).await.unwrap();
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    let runs = store.runs(100).await.unwrap();
    let closed = runs.iter().find(|r| r.id == dead.id).unwrap();
    assert_eq!(closed.status, RunStatus::Failed, "{closed:?}");
    assert!(
        closed
            .error
            .as_deref()
            .unwrap_or("")
            .starts_with("interrupted"),
        "{closed:?}"
    );
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "{runs:?}"
    );
}

/// A long sweep keeps its run alive with heartbeats: closing abandoned runs
/// while it goes leaves it alone, and it ends `succeeded`.
pub async fn heartbeat_keeps_a_long_run_alive(store: Arc<dyn Store>) {
    let p = seeded(5, 60, 0);
    p.slow_pages(std::time::Duration::from_millis(50));
    let provider: Arc<dyn Provider> = p.clone();
    let mut cfg = EngineConfig::default();
    cfg.partitions = 1;
    cfg.heartbeat = std::time::Duration::from_millis(20);
    cfg.abandon_after = std::time::Duration::from_millis(150);
    let e = Arc::new(Engine::new(store.clone(), provider).with_config(cfg));
    let sweeping = {
        let e = e.clone();
        tokio::spawn(async move { e.sweep("parents", &SweepOptions::default()).await })
    };
    // Well past abandon_after since the run started, and still listing.
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    assert_eq!(store.runs(1).await.unwrap()[0].status, RunStatus::Running);
    let closed = e.close_abandoned_runs().await.unwrap();
    assert!(closed.is_empty(), "a live run was closed: {closed:?}");
    let run = sweeping.await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(store.runs(1).await.unwrap()[0].status, RunStatus::Succeeded);
}

/// The circuit breaker stops a sweep that would change more than the
/// configured share before it writes anything; `force` overrides it.
pub async fn circuit_breaker(store: Arc<dyn Store>) {
    let p = seeded(10, 100, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    // An "empty account": 60 of 100 gone.
    for i in 0..60 {
        p.delete("parents", &format!("p_{i:04}"));
    }
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::CircuitOpen);
    assert!(run.error.as_deref().unwrap().contains("circuit breaker"));
    assert_eq!(
        store
            .count_live("test", "default", "parents")
            .await
            .unwrap(),
        100
    );

    // Mass updates trip it too, and nothing is written.
    let p2 = seeded(10, 100, 0);
    let store2 = store.clone();
    let e2 = engine(&store2, &p2);
    for i in 0..70 {
        p2.put(
            "parents",
            &format!("p_{i:04}"),
            json!({ "name": "other account" }),
        );
    }
    let run = e2.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::CircuitOpen);
    let kept = store
        .get_many("test", "default", "parents", &["p_0001"])
        .await
        .unwrap();
    assert_eq!(
        kept[0].snapshot.data["name"], "parent 1",
        "breaker let a write through"
    );

    let forced = e
        .sweep(
            "parents",
            &SweepOptions {
                force: true,
                ..SweepOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(forced.status, RunStatus::Succeeded);
    assert_eq!(forced.counts.deleted, 60);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;

    // Under the share, the staged changes are applied.
    for i in 60..70 {
        p.put(
            "parents",
            &format!("p_{i:04}"),
            json!({ "name": "small change" }),
        );
    }
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.updated, 10);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// A dry run reports the drift and writes nothing.
pub async fn dry_run_writes_nothing(store: Arc<dyn Store>) {
    let p = seeded(5, 20, 0);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    p.put("parents", "p_0001", json!({ "name": "changed" }));
    p.delete("parents", "p_0002");
    let drift_before = drift_count(store.as_ref()).await;
    let run = e
        .sweep(
            "parents",
            &SweepOptions {
                dry_run: true,
                ..SweepOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(run.dry_run);
    assert_eq!((run.counts.updated, run.counts.deleted), (1, 1));
    assert_eq!(drift_count(store.as_ref()).await, drift_before);
    let s = store
        .get_many("test", "default", "parents", &["p_0001", "p_0002"])
        .await
        .unwrap();
    assert!(
        s.iter()
            .all(|o| !o.snapshot.deleted && o.snapshot.data["name"] != "changed")
    );
}

/// Concurrent webhooks share transactions (group commit); each is applied
/// once and answered only after its own commit; an event whose write fails
/// fails alone, the others of its group commit.
pub async fn concurrent_webhooks_group_commit(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let deliver = |e: &Engine, from: usize, n: usize| {
        let mut tasks = Vec::new();
        for i in from..from + n {
            let ev = p.put("parents", &format!("g_{i}"), json!({ "n": i }));
            let (h, body) = p.webhook(&ev);
            let e = e.clone();
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let r = e.ingest_webhook(&h, &body).await;
                // Answered only after the commit: the ledger has it now.
                let in_ledger = store
                    .ledger_contains("test", "default", &ev.event_id)
                    .await
                    .unwrap();
                (ev.event_id, r, in_ledger)
            }));
        }
        tasks
    };

    let counting = Arc::new(FailingStore::new(store.clone(), FailAt::Nowhere));
    let dynstore: Arc<dyn Store> = counting.clone();
    let e = engine(&dynstore, &p);
    for t in deliver(&e, 0, 64) {
        let (id, r, in_ledger) = t.await.unwrap();
        let r = r.unwrap();
        assert!(!r.duplicate && r.applied == 1, "{id}: {r:?}");
        assert!(in_ledger, "{id} answered before its commit");
    }
    let begins = counting.begins.load(Ordering::Relaxed);
    assert!(
        begins <= 32,
        "64 concurrent webhooks took {begins} transactions: no group commit"
    );

    let poisoned = Arc::new(FailingStore::new(store.clone(), FailAt::UpsertOf("g_70")));
    let dynstore: Arc<dyn Store> = poisoned.clone();
    let e = engine(&dynstore, &p);
    let mut failed = Vec::new();
    for t in deliver(&e, 64, 16) {
        let (id, r, in_ledger) = t.await.unwrap();
        match r {
            Ok(r) => {
                assert!(!r.duplicate && r.applied == 1, "{id}: {r:?}");
                assert!(in_ledger, "{id} answered before its commit");
            }
            Err(err) => {
                assert!(!in_ledger, "{id} failed but is in the ledger");
                failed.push((id, err.kind()));
            }
        }
    }
    assert_eq!(failed.len(), 1, "only the poison event fails: {failed:?}");
    assert_eq!(failed[0].1, ErrorKind::Store);
    assert_eq!(
        store
            .count_live("test", "default", "parents")
            .await
            .unwrap(),
        79
    );
}

/// Webhooks: applied once; a duplicate is acknowledged and not applied; a
/// forged one writes nothing; bad JSON under a good signature is invalid input.
pub async fn webhook_exactly_once_and_forgery(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let ev = p.put("parents", "p_1", json!({ "name": "a" }));
    let (h, body) = p.webhook(&ev);
    let r1 = e.ingest_webhook(&h, &body).await.unwrap();
    assert!(!r1.duplicate);
    assert_eq!(r1.applied, 1);
    let r2 = e.ingest_webhook(&h, &body).await.unwrap();
    assert!(r2.duplicate, "a duplicate delivery was applied again");
    assert_eq!(r2.applied, 0);

    let ev2 = p.put("parents", "p_2", json!({ "name": "b" }));
    let (mut h2, mut body2) = p.webhook(&ev2);
    body2[5] ^= 1; // tampered
    let err = e.ingest_webhook(&h2, &body2).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadSignature);
    h2.remove(recon_core::testkit::fake::SIGNATURE_HEADER);
    let (_, good) = p.webhook(&ev2);
    assert_eq!(
        e.ingest_webhook(&h2, &good).await.unwrap_err().kind(),
        ErrorKind::BadSignature
    );
    assert!(
        !store
            .ledger_contains("test", "default", &ev2.event_id)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_many("test", "default", "parents", &["p_2"])
            .await
            .unwrap()
            .is_empty()
    );

    // An unknown event type is recorded and acknowledged.
    let unk = p.unknown_event();
    let (h3, b3) = p.webhook(&unk);
    let r3 = e.ingest_webhook(&h3, &b3).await.unwrap();
    assert!(r3.ignored && !r3.duplicate);
    assert!(
        store
            .ledger_contains("test", "default", &unk.event_id)
            .await
            .unwrap()
    );
}

/// Exactly-once: a failure between the ledger insert and the snapshot write
/// (or at commit) leaves neither; the redelivery then applies.
pub async fn ledger_and_snapshot_commit_together(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let ev = p.put("parents", "p_x", json!({ "name": "x" }));
    let (h, body) = p.webhook(&ev);
    for at in [FailAt::Upsert, FailAt::Commit] {
        let failing: Arc<dyn Store> = Arc::new(FailingStore::new(store.clone(), at));
        let e = engine(&failing, &p);
        assert!(e.ingest_webhook(&h, &body).await.is_err());
        assert!(
            !store
                .ledger_contains("test", "default", &ev.event_id)
                .await
                .unwrap(),
            "{at:?}: ledger row survived a failed transaction"
        );
        assert!(
            store
                .get_many("test", "default", "parents", &["p_x"])
                .await
                .unwrap()
                .is_empty()
        );
    }
    let e = engine(&store, &p);
    let r = e.ingest_webhook(&h, &body).await.unwrap();
    assert!(
        !r.duplicate && r.applied == 1,
        "redelivery after a failure must apply: {r:?}"
    );
}

/// Monotonic: after a sweep, a late webhook older than the sweep (but newer
/// than the stored row) does not overwrite the newer state.
pub async fn late_webhook_older_than_sweep_is_stale(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    p.put("parents", "p_1", json!({ "name": "A" }));
    sweep_ok(&e).await;
    let ev_b = p.put("parents", "p_1", json!({ "name": "B" }));
    let ev_a = p.put("parents", "p_1", json!({ "name": "A" }));
    let (h, b) = p.webhook(&ev_a);
    e.ingest_webhook(&h, &b).await.unwrap();
    sweep_ok(&e).await;
    let (h, b) = p.webhook(&ev_b);
    let r = e.ingest_webhook(&h, &b).await.unwrap();
    assert_eq!(
        (r.applied, r.stale),
        (0, 1),
        "a stale webhook overwrote newer state"
    );
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Ties (same version, different content) are settled by fetching the
/// object, not by arrival order.
pub async fn ties_are_settled_by_fetch(store: Arc<dyn Store>) {
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let real = p.put("parents", "p_t", json!({ "name": "truth" }));
    let v = real.created;
    // A different state stamped with the same version (same second).
    let other = ProviderEvent {
        event_id: "evt_same_second".into(),
        pending_webhooks: None,
        snapshots: vec![Snapshot::live(
            ObjectKey::new("test", "default", "parents", "p_t"),
            v,
            json!({ "id": "p_t", "name": "interim" }),
        )],
        ..real.clone()
    };
    e.ingest_event(other, Source::Webhook).await.unwrap();
    let fetches = p.fetches.load(Ordering::SeqCst);
    // The real event arrives second, with the same version: a tie.
    let r = e.ingest_event(real.clone(), Source::Webhook).await.unwrap();
    assert_eq!(r.ties_fetched, 1);
    assert!(p.fetches.load(Ordering::SeqCst) > fetches);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;

    // And the other order: truth first, then the interim state: the fetch
    // keeps the truth.
    let real2 = p.put("parents", "p_u", json!({ "name": "truth" }));
    e.ingest_event(real2.clone(), Source::Webhook)
        .await
        .unwrap();
    let interim = ProviderEvent {
        event_id: "evt_same_second_2".into(),
        pending_webhooks: None,
        snapshots: vec![Snapshot::live(
            ObjectKey::new("test", "default", "parents", "p_u"),
            real2.created,
            json!({ "id": "p_u", "name": "interim" }),
        )],
        ..real2
    };
    let r = e.ingest_event(interim, Source::Webhook).await.unwrap();
    assert_eq!(r.ties_fetched, 1);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Replay restores changes whose webhooks never arrived, logs them as
/// drift, moves the cursor; a second replay finds only duplicates.
pub async fn replay_restores_missed_webhooks(store: Arc<dyn Store>) {
    let p = seeded(4, 10, 15);
    let e = engine(&store, &p);
    // Half the events were delivered as webhooks.
    for ev in p.events().iter().step_by(2) {
        e.ingest_event(ev.clone(), Source::Webhook).await.unwrap();
    }
    let n = p.events().len() as u64;
    let run = e.replay(0, &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.events_applied, n / 2);
    assert_eq!(run.counts.events_duplicate, n - n / 2);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
    assert_mirror_matches(store.as_ref(), &p, "children").await;
    assert_eq!(e.event_cursor().await.unwrap(), Some(p.version_now()));
    let drift = store
        .drift(&DriftQuery {
            run_id: Some(run.id.clone()),
            limit: 1000,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(drift.len() as u64, n / 2);
    assert!(drift.iter().all(|d| d.source == Source::Replay));

    let again = e.replay(0, &SweepOptions::default()).await.unwrap();
    assert_eq!(
        (again.counts.events_applied, again.counts.events_duplicate),
        (0, n)
    );

    // A provider without an event log says so and points to reconcile.
    let q: Arc<TestProvider> = Arc::new(TestProvider::new(4).without_event_log());
    let err = engine(&store, &q)
        .replay(0, &SweepOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("recon reconcile"), "{err}");
}

/// A replay from the future is refused and moves no cursor: stored, the
/// cursor would make every later replay resume beyond events that had not
/// happened yet. A point a little ahead (clock skew) replays, but the cursor
/// stays at the provider's clock.
pub async fn replay_from_the_future_moves_no_cursor(store: Arc<dyn Store>) {
    let p = seeded(4, 3, 0);
    let e = engine(&store, &p);
    let per_s = p.version_units_per_second();
    let err = e
        .replay(p.version_now() + 3600 * per_s, &SweepOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("future"), "{err}");
    assert_eq!(e.event_cursor().await.unwrap(), None);
    let run = e
        .replay(p.version_now() + 60 * per_s, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let cursor = e.event_cursor().await.unwrap();
    assert!(cursor.is_none_or(|c| c <= p.version_now()), "{cursor:?}");
    // Events after it are still replayed.
    p.tick(10);
    p.put("parents", "p_late", json!({"name": "late"}));
    let since = e.event_cursor().await.unwrap().unwrap_or(0);
    let run = e.replay(since, &SweepOptions::default()).await.unwrap();
    assert!(run.counts.events_applied >= 1, "{run:?}");
    let got = store
        .get_many("test", "default", "parents", &["p_late"])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "the event after the cursor was replayed");
}

/// On demand: fixed (with was/now), already_synced, deleted, not_found, and
/// everything one owner has.
pub async fn on_demand(store: Arc<dyn Store>) {
    let p = seeded(5, 3, 6);
    let e = engine(&store, &p);
    sweep_ok(&e).await;
    p.put("parents", "p_0001", json!({ "name": "fresh" }));
    match e.reconcile_one(None, "p_0001", false).await.unwrap() {
        OneOutcome::Fixed { was, now, .. } => {
            assert_eq!(was.unwrap()["name"], "parent 1");
            assert_eq!(now["name"], "fresh");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.reconcile_one(None, "p_0001", false).await.unwrap(),
        OneOutcome::AlreadySynced { .. }
    ));
    p.delete("parents", "p_0002");
    assert!(matches!(
        e.reconcile_one(None, "p_0002", false).await.unwrap(),
        OneOutcome::Deleted { was_live: true, .. }
    ));
    assert!(matches!(
        e.reconcile_one(Some("parents"), "p_nope", false)
            .await
            .unwrap(),
        OneOutcome::NotFound { .. }
    ));
    assert_eq!(
        e.reconcile_one(None, "zzz", false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );

    // Owner p_0000 owns c_0000 and c_0003: change one, delete the other.
    p.put(
        "children",
        "c_0000",
        json!({ "owner": "p_0000", "status": "past_due", "n": 0 }),
    );
    p.purge("children", "c_0003");
    let out = e.reconcile_owner("p_0000", false).await.unwrap();
    let s = recon_core::engine::summarize(&out);
    assert_eq!(s.get("fixed"), Some(&1), "{out:?}");
    assert_eq!(s.get("already_synced"), Some(&1), "{out:?}");
    assert_eq!(s.get("deleted"), Some(&1), "{out:?}");
    assert_mirror_matches(store.as_ref(), &p, "children").await;
}

/// A partitioned listing gives the same mirror as a single cursor.
pub async fn partitioned_sweep_equals_single_cursor(store: Arc<dyn Store>) {
    let p = seeded(6, 50, 0);
    let provider: Arc<dyn Provider> = p.clone();
    let mut cfg = EngineConfig::default();
    cfg.partitions = 5;
    cfg.commit_chunk = 13;
    let e = Engine::new(store.clone(), provider).with_config(cfg);
    let run = e.sweep("parents", &SweepOptions::default()).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.counts.listed, 50);
    assert_eq!(run.counts.inserted, 50);
    assert_mirror_matches(store.as_ref(), &p, "parents").await;
}

/// Monotonic under any arrival order: every permutation (with duplicates)
/// of an object's events leaves the newest state.
pub async fn monotonic_any_order(store: Arc<dyn Store>, cases: u32) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let p = Arc::new(TestProvider::new(10));
    let e = engine(&store, &p);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicU32::new(0);
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        2usize..8,
        proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    )
        .prop_flat_map(|(n, dups)| (Just((0..n).collect::<Vec<_>>()).prop_shuffle(), Just(dups)));
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(order, dups)| {
            let case = counter.fetch_add(1, Ordering::SeqCst);
            let id = format!("p_m{case}");
            let events: Vec<ProviderEvent> = (0..order.len())
                .map(|i| p.put("parents", &id, json!({ "step": i })))
                .collect();
            let mut delivery: Vec<&ProviderEvent> = order.iter().map(|i| &events[*i]).collect();
            for d in &dups {
                delivery.push(&events[d.index(events.len())]);
            }
            handle.block_on(async {
                for ev in delivery {
                    let b = Batch {
                        events: vec![EventEntry {
                            event: ev.clone(),
                            source: Source::Webhook,
                            drift: None,
                        }],
                        ..Batch::default()
                    };
                    commit(e.store().as_ref(), &b, false).await.unwrap();
                }
            });
            let stored = handle
                .block_on(store.get_many("test", "default", "parents", &[id.as_str()]))
                .unwrap();
            prop_assert_eq!(
                stored[0].snapshot.data["step"].as_u64(),
                Some(order.len() as u64 - 1)
            );
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Expand every case into a `#[tokio::test]` for one store constructor.
#[macro_export]
macro_rules! engine_tests {
    ($make:path) => {
        $crate::engine_tests!(@each $make;
            sweep_converges_and_resweep_writes_nothing, sweep_finds_and_fixes_drift,
            no_deletion_from_partial_listing, a_panicking_listing_deletes_nothing,
            replay_from_the_future_moves_no_cursor,
            deletions_are_confirmed_by_fetch,
            cancelled_sweep_deletes_nothing, abandoned_runs_are_closed,
            heartbeat_keeps_a_long_run_alive, circuit_breaker, dry_run_writes_nothing,
            webhook_exactly_once_and_forgery, ledger_and_snapshot_commit_together,
            concurrent_webhooks_group_commit,
            late_webhook_older_than_sweep_is_stale, ties_are_settled_by_fetch,
            replay_restores_missed_webhooks, on_demand, partitioned_sweep_equals_single_cursor);
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn monotonic_any_order() {
            $crate::cases::monotonic_any_order($make().await, 24).await;
        }
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::cases::$name($make().await).await;
            }
        )*
    };
}
