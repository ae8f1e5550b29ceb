//! Store conformance: every store runs these against a real, fresh database.
//!
//! Use [`store_conformance_tests!`](crate::store_conformance_tests) in a
//! store crate's tests with an async function that returns a fresh,
//! migrated `Arc<dyn Store>`; it expands to one `#[tokio::test]` per check.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::commit::{Batch, Change, Decision, DriftMeta, EventEntry, commit};
use crate::store::{Cursor, DriftQuery, Guard, Reference, SeenRow, Store};
use crate::types::{
    ObjectKey, ProviderEvent, RunCounts, RunKind, RunRecord, RunStatus, Snapshot, Source, now_ms,
};

fn key(kind: &str, id: &str) -> ObjectKey {
    ObjectKey::new("test", "default", kind, id)
}

fn snap(kind: &str, id: &str, version: i64, body: serde_json::Value) -> Snapshot {
    Snapshot::live(key(kind, id), version, body)
}

/// Seen rows for ids, at version 0 with no hash.
fn seen<'a>(ids: &[&'a str]) -> Vec<SeenRow<'a>> {
    ids.iter()
        .map(|id| SeenRow {
            id,
            version: 0,
            hash: "",
        })
        .collect()
}

fn event(id: &str, snapshots: Vec<Snapshot>) -> EventEntry {
    EventEntry {
        event: ProviderEvent {
            provider: "test".into(),
            account: "default".into(),
            event_id: id.into(),
            event_type: "thing.updated".into(),
            created: snapshots.first().map(|s| s.version).unwrap_or(0),
            pending_webhooks: None,
            snapshots,
        },
        source: Source::Webhook,
        drift: None,
    }
}

fn change(s: Snapshot, guard: Guard) -> Change {
    Change {
        snapshot: s,
        guard,
        drift: None,
    }
}

async fn stored(store: &dyn Store, kind: &str, id: &str) -> Option<Snapshot> {
    store
        .get_many("test", "default", kind, &[id])
        .await
        .expect("get_many")
        .into_iter()
        .next()
        .map(|s| s.snapshot)
}

/// The same event twice: applied once, the second reported duplicate.
pub async fn idempotent_ingest(store: Arc<dyn Store>) {
    let b = Batch {
        events: vec![event(
            "evt_1",
            vec![snap("things", "a", 5, json!({"n": 1}))],
        )],
        ..Batch::default()
    };
    let first = commit(store.as_ref(), &b, false).await.unwrap();
    assert!(first.events[0].new);
    assert_eq!(first.events[0].decisions, vec![Decision::Insert]);
    let second = commit(store.as_ref(), &b, false).await.unwrap();
    assert!(!second.events[0].new, "duplicate event applied twice");
    assert!(second.events[0].decisions.is_empty());
    assert!(
        store
            .ledger_contains("test", "default", "evt_1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .ledger_contains("test", "default", "evt_2")
            .await
            .unwrap()
    );

    // A duplicate whose payload differs (a replayed delivery with a newer
    // body) still does nothing: the ledger decides.
    let forged = Batch {
        events: vec![event(
            "evt_1",
            vec![snap("things", "a", 9, json!({"n": 2}))],
        )],
        ..Batch::default()
    };
    commit(store.as_ref(), &forged, false).await.unwrap();
    assert_eq!(
        stored(store.as_ref(), "things", "a").await.unwrap().data["n"],
        1
    );
}

/// Two writers commit the same event id at once: exactly one applies.
pub async fn duplicate_under_concurrency(store: Arc<dyn Store>) {
    for round in 0..20 {
        let id = format!("evt_c{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for w in 0..2 {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let b = Batch {
                    events: vec![event(
                        &id,
                        vec![snap(
                            "things",
                            &format!("c{round}"),
                            10 + w,
                            json!({"w": w}),
                        )],
                    )],
                    ..Batch::default()
                };
                barrier.wait().await;
                let mut tries = 0;
                loop {
                    match commit(store.as_ref(), &b, false).await {
                        Ok(o) => return o.events[0].new,
                        Err(e) if e.is_temporary() && tries < 20 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("commit: {e}"),
                    }
                }
            }));
        }
        let mut news = 0;
        for t in tasks {
            if t.await.unwrap() {
                news += 1;
            }
        }
        assert_eq!(
            news, 1,
            "round {round}: {news} writers applied the same event"
        );
    }
}

/// An older snapshot never overwrites a newer one; a newer one does.
pub async fn monotonic_versions(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let b = |v: i64, n: i64| Batch {
        changes: vec![change(
            snap("things", "m", v, json!({"n": n})),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    assert_eq!(
        commit(s, &b(5, 5), false).await.unwrap().changes,
        vec![Decision::Insert]
    );
    assert_eq!(
        commit(s, &b(3, 3), false).await.unwrap().changes,
        vec![Decision::Stale]
    );
    assert_eq!(stored(s, "things", "m").await.unwrap().version, 5);
    assert_eq!(
        commit(s, &b(7, 7), false).await.unwrap().changes,
        vec![Decision::Update]
    );
    let now = stored(s, "things", "m").await.unwrap();
    assert_eq!((now.version, now.data["n"].as_i64()), (7, Some(7)));

    // The SQL guard holds even when the caller bypasses the decision.
    let mut tx = s.begin().await.unwrap();
    let old = snap("things", "m", 1, json!({"n": 1}));
    let wrote = tx.upsert(&[&old], Guard::NewerOrEqual).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(wrote, vec![false], "upsert lowered a version");
    assert_eq!(stored(s, "things", "m").await.unwrap().version, 7);
}

/// Equal versions with different content tie (not written); a fetched
/// state with `NewerOrEqual` settles it.
pub async fn ties(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let a = Batch {
        changes: vec![change(
            snap("things", "t", 5, json!({"v": "a"})),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    commit(s, &a, false).await.unwrap();
    let b = Batch {
        changes: vec![change(
            snap("things", "t", 5, json!({"v": "b"})),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    let out = commit(s, &b, false).await.unwrap();
    assert_eq!(out.changes, vec![Decision::Tie]);
    assert_eq!(out.ties(&b).len(), 1);
    assert_eq!(stored(s, "things", "t").await.unwrap().data["v"], "a");
    let fetched = Batch {
        changes: vec![change(
            snap("things", "t", 5, json!({"v": "b"})),
            Guard::NewerOrEqual,
        )],
        ..Batch::default()
    };
    assert_eq!(
        commit(s, &fetched, false).await.unwrap().changes,
        vec![Decision::Update]
    );
    assert_eq!(stored(s, "things", "t").await.unwrap().data["v"], "b");
}

/// An event whose content equals the mirror but whose version is newer
/// raises the stored version (no drift), so an older state delivered later
/// is refused; and two states of one version inside one batch are a tie even
/// when the last of them matches the mirror.
pub async fn unchanged_raises_version(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let one = |id: &str, v: i64, body: serde_json::Value| Batch {
        events: vec![event(id, vec![snap("things", "u", v, body)])],
        ..Batch::default()
    };
    let out = commit(s, &one("u1", 10, json!({"d": false})), false)
        .await
        .unwrap();
    assert_eq!(out.events[0].decisions, vec![Decision::Insert]);
    // Same content, newer: only the version moves, and no drift is logged.
    let out = commit(s, &one("u2", 20, json!({"d": false})), false)
        .await
        .unwrap();
    assert_eq!(out.events[0].decisions, vec![Decision::Touched]);
    assert!(out.drift.is_empty());
    assert_eq!(stored(s, "things", "u").await.unwrap().version, 20);
    // A state from between the two arrives late: it is older than 20.
    let out = commit(s, &one("u3", 15, json!({"d": true})), false)
        .await
        .unwrap();
    assert_eq!(out.events[0].decisions, vec![Decision::Stale]);
    assert_eq!(stored(s, "things", "u").await.unwrap().data["d"], false);

    // Two events of version 30 in one batch, the last equal to the mirror:
    // which came last is unknown, so the object is fetched.
    let b = Batch {
        events: vec![
            event("u4", vec![snap("things", "u", 30, json!({"d": true}))]),
            event("u5", vec![snap("things", "u", 30, json!({"d": false}))]),
        ],
        ..Batch::default()
    };
    let out = commit(s, &b, false).await.unwrap();
    assert_eq!(out.ties(&b).len(), 1, "{:?}", out.events);

    // A sweep listing (Guard::Newer change) with unchanged content writes
    // nothing: the kind's sweep floor covers it.
    let listing = Batch {
        changes: vec![change(
            snap("things", "u", 40, json!({"d": false})),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    let out = commit(s, &listing, false).await.unwrap();
    assert_eq!(out.changes, vec![Decision::Unchanged]);
    assert_eq!(stored(s, "things", "u").await.unwrap().version, 20);
}

/// Deletion leaves a tombstone that older live states cannot lift.
pub async fn tombstones(store: Arc<dyn Store>) {
    let s = store.as_ref();
    for (i, id) in ["x", "y"].iter().enumerate() {
        let b = Batch {
            changes: vec![change(
                snap("things", id, 5 + i as i64, json!({})),
                Guard::Newer,
            )],
            ..Batch::default()
        };
        commit(s, &b, false).await.unwrap();
    }
    assert_eq!(s.count_live("test", "default", "things").await.unwrap(), 2);
    let del = Batch {
        changes: vec![change(
            Snapshot::tombstone(key("things", "x"), 8),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    assert_eq!(
        commit(s, &del, false).await.unwrap().changes,
        vec![Decision::Update]
    );
    let t = stored(s, "things", "x").await.unwrap();
    assert!(t.deleted);
    assert_eq!(s.count_live("test", "default", "things").await.unwrap(), 1);
    let late = Batch {
        changes: vec![change(
            snap("things", "x", 7, json!({"late": true})),
            Guard::Newer,
        )],
        ..Batch::default()
    };
    assert_eq!(
        commit(s, &late, false).await.unwrap().changes,
        vec![Decision::Stale]
    );
    assert!(stored(s, "things", "x").await.unwrap().deleted);
}

/// The SQL guard repeats the tombstone rule, whatever the caller decided:
/// a live state of the tombstone's version never lifts it, a newer one does.
pub async fn sql_guard_keeps_tombstones(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let dead = Snapshot::tombstone(key("things", "t"), 10);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.upsert(&[&dead], Guard::Newer).await.unwrap(), vec![true]);
    let same = snap("things", "t", 10, json!({ "back": true }));
    assert_eq!(
        tx.upsert(&[&same], Guard::NewerOrEqual).await.unwrap(),
        vec![false],
        "a live state of the tombstone's version lifted it"
    );
    let newer = snap("things", "t", 11, json!({ "back": true }));
    assert_eq!(
        tx.upsert(&[&newer], Guard::NewerOrEqual).await.unwrap(),
        vec![true]
    );
    tx.commit().await.unwrap();
}

/// Queued fetches: queued in a transaction, due at once, deferred with an
/// error, discharged only up to their generation.
pub async fn fetch_queue(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let (a, b) = (key("things", "a"), key("things", "b"));
    let mut tx = s.begin().await.unwrap();
    tx.enqueue_fetches(&[&a, &b, &a], "tie", 1000)
        .await
        .unwrap();
    drop(tx); // rolled back
    assert!(
        s.pending_fetches("test", "default")
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = s.begin().await.unwrap();
    tx.enqueue_fetches(&[&a, &b, &a], "tie", 1000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let due = s.due_fetches("test", "default", 1000, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(
        s.due_fetches("test", "default", 999, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due_fetches("test", "other", 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // a fails: deferred, with its error.
    s.defer_fetch(&a, 1000, 5000, "HTTP 500").await.unwrap();
    let due = s.due_fetches("test", "default", 1000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, b);
    let all = s.pending_fetches("test", "default").await.unwrap();
    let qa = all.iter().find(|p| p.key == a).unwrap();
    assert_eq!((qa.attempts, qa.next_at), (1, 5000));
    assert_eq!(qa.last_error.as_deref(), Some("HTTP 500"));
    // a tie again in the same millisecond: a newer generation, due at once.
    let mut tx = s.begin().await.unwrap();
    tx.enqueue_fetches(&[&a], "tie", 1000).await.unwrap();
    tx.commit().await.unwrap();
    let all = s.pending_fetches("test", "default").await.unwrap();
    let qa = all.iter().find(|p| p.key == a).unwrap().clone();
    assert!(qa.queued_at > 1000 && qa.next_at == 1000, "{qa:?}");
    // A fetch that started before the newer tie does not discharge it.
    let mut tx = s.begin().await.unwrap();
    tx.resolve_fetches(&[(&a, 1000), (&b, 1000)]).await.unwrap();
    tx.commit().await.unwrap();
    let all = s.pending_fetches("test", "default").await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, a);
    let mut tx = s.begin().await.unwrap();
    tx.resolve_fetches(&[(&a, qa.queued_at)]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        s.pending_fetches("test", "default")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Seen rows carry the listing's version: a running sweep's highest one per
/// id is visible to the guard; a finished or dry-run sweep's is not. What
/// was overwritten by an older state after the listing is found.
pub async fn seen_versions(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut run = running_sweep("things", "run-s", now_ms());
    s.insert_run(&run).await.unwrap();
    let mut dry = running_sweep("things", "run-d", now_ms());
    dry.dry_run = true;
    s.insert_run(&dry).await.unwrap();
    let listed = snap("things", "o1", 50, json!({ "n": 1 }));
    s.mark_seen(
        "run-s",
        &[
            SeenRow {
                id: "o1",
                version: 50,
                hash: &listed.hash,
            },
            SeenRow {
                id: "o2",
                version: 40,
                hash: "h2",
            },
        ],
    )
    .await
    .unwrap();
    s.mark_seen(
        "run-d",
        &[SeenRow {
            id: "o3",
            version: 90,
            hash: "h3",
        }],
    )
    .await
    .unwrap();
    let mut tx = s.begin().await.unwrap();
    let mut got = tx
        .seen_versions("test", "default", "things", &["o1", "o2", "o3", "o4"])
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, vec![("o1".to_string(), 50), ("o2".to_string(), 40)]);
    assert!(
        tx.seen_versions("test", "default", "other", &["o1"])
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    // o1 is stored older than the listing with other content: overwritten.
    let since = now_ms() - 1000;
    let older = snap("things", "o1", 45, json!({ "n": 0 }));
    commit(
        s,
        &Batch {
            changes: vec![change(older, Guard::Newer)],
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    let ids = s
        .outdated_during_sweep("test", "default", "things", "run-s", since, 0, 10)
        .await
        .unwrap();
    assert_eq!(ids, vec!["o1".to_string()]);
    // A live object the listing did not contain, written during the sweep
    // at a version below the sweep's start, is outdated too; at or above
    // the start it is not (created after the listing passed it).
    let unlisted = snap("things", "o9", 5, json!({ "n": 9 }));
    commit(
        s,
        &Batch {
            changes: vec![change(unlisted, Guard::Newer)],
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    let ids = s
        .outdated_during_sweep("test", "default", "things", "run-s", since, 10, 10)
        .await
        .unwrap();
    assert_eq!(ids, vec!["o1".to_string(), "o9".to_string()]);
    let ids = s
        .outdated_during_sweep("test", "default", "things", "run-s", since, 5, 10)
        .await
        .unwrap();
    assert_eq!(ids, vec!["o1".to_string()]);
    let ids = s
        .outdated_during_sweep(
            "test",
            "default",
            "things",
            "run-s",
            now_ms() + 60_000,
            10,
            10,
        )
        .await
        .unwrap();
    assert!(ids.is_empty(), "written before the sweep: {ids:?}");
    // The listed state itself is not "overwritten".
    commit(
        s,
        &Batch {
            changes: vec![change(listed, Guard::NewerOrEqual)],
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    assert!(
        s.outdated_during_sweep("test", "default", "things", "run-s", since, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A finished sweep's rows no longer guard.
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(now_ms());
    s.update_run(&run).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.seen_versions("test", "default", "things", &["o1"])
            .await
            .unwrap()
            .is_empty()
    );
}

/// Cursors round-trip, move only when the transaction commits.
pub async fn cursors(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert!(
        s.cursor("test", "default", "events")
            .await
            .unwrap()
            .is_none()
    );
    let c = |v| Cursor {
        provider: "test".into(),
        account: "default".into(),
        name: "events".into(),
        value: v,
        updated_at: now_ms(),
    };
    let mut tx = s.begin().await.unwrap();
    tx.set_cursor(&c(10)).await.unwrap();
    drop(tx); // rolled back
    assert!(
        s.cursor("test", "default", "events")
            .await
            .unwrap()
            .is_none(),
        "rolled-back cursor visible"
    );
    let b = Batch {
        cursors: vec![c(10)],
        ..Batch::default()
    };
    commit(s, &b, false).await.unwrap();
    assert_eq!(
        s.cursor("test", "default", "events")
            .await
            .unwrap()
            .unwrap()
            .value,
        10
    );
    let b = Batch {
        cursors: vec![c(20)],
        ..Batch::default()
    };
    commit(s, &b, false).await.unwrap();
    assert_eq!(
        s.cursor("test", "default", "events")
            .await
            .unwrap()
            .unwrap()
            .value,
        20
    );
    // Cursors only rise: a run that started earlier and commits later
    // (an older replay, a slower sweep) does not move one back.
    let b = Batch {
        cursors: vec![c(15)],
        ..Batch::default()
    };
    commit(s, &b, false).await.unwrap();
    assert_eq!(
        s.cursor("test", "default", "events")
            .await
            .unwrap()
            .unwrap()
            .value,
        20,
        "a cursor moved back"
    );
}

/// Ledger and snapshot commit together: a transaction dropped after both
/// writes leaves neither.
pub async fn atomic_ledger_and_snapshot(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let e = event("evt_atomic", vec![snap("things", "z", 3, json!({}))]);
    let mut tx = s.begin().await.unwrap();
    let rows = [crate::store::LedgerRow {
        event: &e.event,
        source: Source::Webhook,
        run_id: None,
    }];
    assert_eq!(tx.ledger_insert(&rows).await.unwrap(), vec![true]);
    let snaps: Vec<&Snapshot> = e.event.snapshots.iter().collect();
    assert_eq!(tx.upsert(&snaps, Guard::Newer).await.unwrap(), vec![true]);
    drop(tx);
    assert!(
        !s.ledger_contains("test", "default", "evt_atomic")
            .await
            .unwrap()
    );
    assert!(stored(s, "things", "z").await.is_none());
}

/// Drift records keep before/after and filter by run.
pub async fn drift_log(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let meta = |run: &str| {
        Some(DriftMeta {
            source: Source::Sweep,
            run_id: Some(run.to_string()),
        })
    };
    let b = Batch {
        changes: vec![Change {
            snapshot: snap("things", "d", 1, json!({"v": 1})),
            guard: Guard::Newer,
            drift: meta("r1"),
        }],
        ..Batch::default()
    };
    commit(s, &b, false).await.unwrap();
    let b = Batch {
        changes: vec![Change {
            snapshot: snap("things", "d", 2, json!({"v": 2})),
            guard: Guard::Newer,
            drift: meta("r2"),
        }],
        ..Batch::default()
    };
    let out = commit(s, &b, false).await.unwrap();
    assert_eq!(out.drift.len(), 1);
    let all = s
        .drift(&DriftQuery {
            limit: 10,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let r2 = s
        .drift(&DriftQuery {
            run_id: Some("r2".into()),
            limit: 10,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(r2.len(), 1);
    assert_eq!(r2[0].cause, crate::types::DriftCause::Changed);
    assert_eq!(r2[0].before.as_ref().unwrap()["v"], 1);
    assert_eq!(r2[0].after.as_ref().unwrap()["v"], 2);
    assert_eq!(r2[0].key, key("things", "d"));
    // A dry run logs nothing and writes nothing.
    let b = Batch {
        changes: vec![Change {
            snapshot: snap("things", "d", 3, json!({"v": 3})),
            guard: Guard::Newer,
            drift: meta("r3"),
        }],
        ..Batch::default()
    };
    let out = commit(s, &b, true).await.unwrap();
    assert_eq!(out.changes, vec![Decision::Update]);
    assert_eq!(stored(s, "things", "d").await.unwrap().version, 2);
    let r3 = s
        .drift(&DriftQuery {
            run_id: Some("r3".into()),
            limit: 10,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    assert!(r3.is_empty());
}

/// A `running` sweep of the test provider's `kind`, started at `started_at`
/// (unix ms), as the engine records it first.
pub fn running_sweep(kind: &str, id: &str, started_at: i64) -> RunRecord {
    RunRecord {
        id: id.into(),
        provider: "test".into(),
        account: "default".into(),
        kind: kind.into(),
        run_kind: RunKind::Sweep,
        status: RunStatus::Running,
        dry_run: false,
        started_at,
        finished_at: None,
        counts: RunCounts::default(),
        mismatch_ratio: 0.0,
        error: None,
    }
}

/// Runs round-trip with counts and status, newest first.
pub async fn runs(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mk = |id: &str, t: i64| running_sweep("things", id, t);
    s.insert_run(&mk("run-a", 1000)).await.unwrap();
    let mut b = mk("run-b", 2000);
    s.insert_run(&b).await.unwrap();
    b.status = RunStatus::Failed;
    b.finished_at = Some(2500);
    b.counts.listed = 42;
    b.counts.drift = 3;
    b.mismatch_ratio = 0.25;
    b.error = Some("listing failed".into());
    s.update_run(&b).await.unwrap();
    let runs = s.runs(10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], b);
    assert_eq!(runs[1].status, RunStatus::Running);
}

/// Runs left `running` without a recent sign of life are closed as failed;
/// live, recently beating and finished runs are left alone.
pub async fn abandoned_runs(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mk = |id: &str, t: i64| running_sweep("things", id, t);
    // Started long ago, never beat: abandoned.
    s.insert_run(&mk("dead", 1_000)).await.unwrap();
    // Started long ago but beat recently: alive.
    s.insert_run(&mk("beating", 1_000)).await.unwrap();
    s.heartbeat_run("beating", 9_000).await.unwrap();
    // Started long ago, beat long ago: abandoned.
    s.insert_run(&mk("stopped", 1_000)).await.unwrap();
    s.heartbeat_run("stopped", 2_000).await.unwrap();
    // Started recently: alive.
    s.insert_run(&mk("young", 8_500)).await.unwrap();
    // Finished long ago: not touched.
    let mut done = mk("done", 500);
    s.insert_run(&done).await.unwrap();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(700);
    s.update_run(&done).await.unwrap();
    // A heartbeat for a finished run changes nothing.
    s.heartbeat_run("done", 9_500).await.unwrap();

    let mut closed: Vec<String> = s
        .close_abandoned_runs(5_000, "interrupted")
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, RunStatus::Failed);
            assert_eq!(r.error.as_deref(), Some("interrupted"));
            assert!(r.finished_at.is_some());
            r.id
        })
        .collect();
    closed.sort();
    assert_eq!(closed, ["dead", "stopped"]);
    let all: BTreeMap<String, RunRecord> = s
        .runs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    assert_eq!(all["dead"].status, RunStatus::Failed);
    assert_eq!(all["stopped"].status, RunStatus::Failed);
    assert_eq!(all["beating"].status, RunStatus::Running);
    assert_eq!(all["young"].status, RunStatus::Running);
    assert_eq!(all["done"], done);
    // Closing again finds nothing new.
    assert!(s.close_abandoned_runs(5_000, "x").await.unwrap().is_empty());
}

/// Seen ids, unseen live ids in pages, staging, scratch cleanup.
pub async fn sweep_scratch(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let changes: Vec<Change> = (0..10)
        .map(|i| {
            change(
                snap("things", &format!("s{i:02}"), 1, json!({})),
                Guard::Newer,
            )
        })
        .collect();
    commit(
        s,
        &Batch {
            changes,
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    s.mark_seen("run1", &seen(&["s00", "s02", "s04"]))
        .await
        .unwrap();
    s.mark_seen("run1", &seen(&["s06", "s08", "s02"]))
        .await
        .unwrap();
    s.mark_seen("other", &seen(&["s01"])).await.unwrap();
    let p1 = s
        .unseen_live("test", "default", "things", "run1", None, 3)
        .await
        .unwrap();
    assert_eq!(p1, vec!["s01", "s03", "s05"]);
    let p2 = s
        .unseen_live("test", "default", "things", "run1", Some("s05"), 3)
        .await
        .unwrap();
    assert_eq!(p2, vec!["s07", "s09"]);
    s.stage("run1", 1, b"[1]").await.unwrap();
    s.stage("run1", 2, b"[2]").await.unwrap();
    assert_eq!(
        s.next_staged("run1", 0).await.unwrap(),
        Some((1, b"[1]".to_vec()))
    );
    assert_eq!(
        s.next_staged("run1", 1).await.unwrap(),
        Some((2, b"[2]".to_vec()))
    );
    assert_eq!(s.next_staged("run1", 2).await.unwrap(), None);
    s.clear_scratch("run1").await.unwrap();
    assert_eq!(s.next_staged("run1", 0).await.unwrap(), None);
    let all = s
        .unseen_live("test", "default", "things", "run1", None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
}

/// Owner lookup, stale objects, dangling references.
pub async fn diagnostics_queries(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut child = snap("children", "c1", 1, json!({"status": "active"}));
    child.owner = Some("p1".into());
    child.status = Some("active".into());
    let mut orphan = snap("children", "c2", 1, json!({"status": "active"}));
    orphan.owner = Some("p_gone".into());
    orphan.status = Some("active".into());
    let mut ended = snap("children", "c3", 1, json!({"status": "ended"}));
    ended.owner = Some("p_gone".into());
    ended.status = Some("ended".into());
    let mut of_deleted = snap("children", "c4", 1, json!({"status": "active"}));
    of_deleted.owner = Some("p2".into());
    of_deleted.status = Some("active".into());
    let changes = vec![
        change(snap("parents", "p1", 1, json!({})), Guard::Newer),
        change(Snapshot::tombstone(key("parents", "p2"), 1), Guard::Newer),
        change(child, Guard::Newer),
        change(orphan, Guard::Newer),
        change(ended, Guard::Newer),
        change(of_deleted, Guard::Newer),
    ];
    commit(
        s,
        &Batch {
            changes,
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    let mut owned: Vec<String> = s
        .owned_by("test", "default", "p1")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.snapshot.key.id)
        .collect();
    owned.sort();
    assert_eq!(owned, vec!["c1", "p1"]);

    let rule = Reference {
        kind: "children",
        owner_kind: "parents",
        statuses: &["active"],
    };
    let mut d = s.dangling("test", "default", &rule, 10).await.unwrap();
    d.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<(&str, &str)> = d
        .iter()
        .map(|x| (x.id.as_str(), x.problem.as_str()))
        .collect();
    assert_eq!(got, vec![("c2", "absent"), ("c4", "deleted")]);

    // Everything was just written: nothing is stale as of an hour ago…
    assert!(s.stale(now_ms() - 3_600_000, 100).await.unwrap().is_empty());
    // …and every live object is stale as of a minute from now.
    let stale = s.stale(now_ms() + 60_000, 100).await.unwrap();
    assert_eq!(stale.len(), 5, "{stale:?}");
    // A complete sweep of a kind confirms all of it.
    let floor = Cursor {
        provider: "test".into(),
        account: "default".into(),
        name: crate::commit::sweep_floor_name("children"),
        value: 1,
        updated_at: now_ms() + 120_000,
    };
    commit(
        s,
        &Batch {
            cursors: vec![floor],
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    let stale = s.stale(now_ms() + 60_000, 100).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].kind, "parents");
}

/// Large batches go through in one call (multi-row statements).
pub async fn large_batches(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let changes: Vec<Change> = (0..2500)
        .map(|i| {
            change(
                snap(
                    "things",
                    &format!("b{i:05}"),
                    1,
                    json!({"i": i, "pad": "x".repeat(50)}),
                ),
                Guard::Newer,
            )
        })
        .collect();
    let out = commit(
        s,
        &Batch {
            changes,
            ..Batch::default()
        },
        false,
    )
    .await
    .unwrap();
    assert_eq!(out.count(Decision::Insert), 2500);
    assert_eq!(
        s.count_live("test", "default", "things").await.unwrap(),
        2500
    );
    let ids: Vec<String> = (0..2500).map(|i| format!("b{i:05}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        s.get_many("test", "default", "things", &refs)
            .await
            .unwrap()
            .len(),
        2500
    );
    s.mark_seen("big", &seen(&refs)).await.unwrap();
    assert!(
        s.unseen_live("test", "default", "things", "big", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.check_ready().await.unwrap();
    s.migrate().await.unwrap(); // idempotent
}

/// Exactly one of many concurrent claimers wins a scheduled tick; a later
/// tick can be claimed again, an earlier one never.
pub async fn schedule_claims(store: Arc<dyn Store>) {
    for tick in [100, 200] {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.claim("test:job", tick).await.unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap() as u32;
        }
        assert_eq!(won, 1, "tick {tick} claimed {won} times");
    }
    assert!(
        !store.claim("test:job", 150).await.unwrap(),
        "an older tick was claimed"
    );
    assert!(
        store.claim("other:job", 150).await.unwrap(),
        "jobs are independent"
    );
}

/// Expand to one `#[tokio::test]` per conformance check. `$make` is an async
/// fn returning a fresh, migrated `Arc<dyn Store>`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:path) => {
        $crate::store_conformance_tests!(@each $make;
            idempotent_ingest, duplicate_under_concurrency, monotonic_versions, ties,
            unchanged_raises_version,
            tombstones, cursors, atomic_ledger_and_snapshot, drift_log, runs,
            abandoned_runs, sweep_scratch, diagnostics_queries, large_batches, schedule_claims,
            sql_guard_keeps_tombstones, fetch_queue, seen_versions);
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testkit::store_suite::$name($make().await).await;
            }
        )*
    };
}
