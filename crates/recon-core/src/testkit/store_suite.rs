//! Store conformance: every store runs these against a real, fresh database.
//!
//! Use [`store_conformance_tests!`](crate::store_conformance_tests) in a
//! store crate's tests with an async function that returns a fresh,
//! migrated `Arc<dyn Store>`; it expands to one `#[tokio::test]` per check.
//! [`store_app_tests!`](crate::store_app_tests) does the same for the
//! checks of app tables (projections, checks, the change feed through
//! commit), with an async function returning an [`AppDb`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::commit::{Batch, Change, Decision, DriftMeta, EventEntry, commit};
use crate::store::{AppWrite, Cursor, DriftQuery, Guard, KeySel, Reference, SeenRow, Store};
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
    let due = s.due_fetches("test", 1000, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(s.due_fetches("test", 999, 10).await.unwrap().is_empty());
    assert!(s.due_fetches("other", 1000, 10).await.unwrap().is_empty());
    // a fails: deferred, with its error.
    s.defer_fetch(&a, 1000, 5000, "HTTP 500").await.unwrap();
    let due = s.due_fetches("test", 1000, 10).await.unwrap();
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
    let counts = |run_id: Option<&str>| {
        let q = DriftQuery {
            run_id: run_id.map(str::to_string),
            limit: 1,
            ..DriftQuery::default()
        };
        async move { s.drift_counts(&q).await.unwrap() }
    };
    let count = |provider: &str, kind: &str, cause, count| crate::store::DriftCount {
        provider: provider.into(),
        kind: kind.into(),
        cause,
        count,
    };
    use crate::types::DriftCause::{Changed, Missing};
    // The most first; ties by provider, kind, cause.
    assert_eq!(
        counts(None).await,
        [
            count("test", "things", Changed, 1),
            count("test", "things", Missing, 1)
        ]
    );
    assert_eq!(
        counts(Some("r2")).await,
        [count("test", "things", Changed, 1)]
    );
    assert!(counts(Some("nope")).await.is_empty());
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
    assert_eq!(s.run("run-b").await.unwrap(), Some(b));
    assert_eq!(s.run("run-none").await.unwrap(), None);
}

/// The last successful sweep of each kind: the newest finished success,
/// never a failure, a dry run, a replay or a running sweep, however many
/// runs came after it.
pub async fn last_successful_sweeps(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let finish = |mut r: RunRecord, status: RunStatus, at: i64| {
        r.status = status;
        r.finished_at = Some(at);
        r
    };
    let runs = [
        finish(
            running_sweep("things", "a1", 100),
            RunStatus::Succeeded,
            150,
        ),
        finish(
            running_sweep("things", "a2", 200),
            RunStatus::Succeeded,
            250,
        ),
        // Later, but failed, dry, a replay, or still running: none counts.
        finish(running_sweep("things", "a3", 300), RunStatus::Failed, 350),
        {
            let mut r = finish(
                running_sweep("things", "a4", 400),
                RunStatus::Succeeded,
                450,
            );
            r.dry_run = true;
            r
        },
        {
            let mut r = finish(
                running_sweep("things", "a5", 500),
                RunStatus::Succeeded,
                550,
            );
            r.run_kind = RunKind::Replay;
            r
        },
        running_sweep("things", "a6", 600),
        finish(
            running_sweep("others", "b1", 700),
            RunStatus::Succeeded,
            750,
        ),
        finish(running_sweep("never", "c1", 800), RunStatus::Failed, 850),
    ];
    for r in &runs {
        s.insert_run(r).await.unwrap();
    }
    let got = s.last_successful_sweeps().await.unwrap();
    let got: Vec<(&str, i64)> = got
        .iter()
        .map(|l| (l.kind.as_str(), l.finished_at))
        .collect();
    assert_eq!(got, vec![("others", 750), ("things", 250)]);
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
            abandoned_runs, last_successful_sweeps, sweep_scratch, diagnostics_queries, large_batches, schedule_claims,
            sql_guard_keeps_tombstones, fetch_queue, seen_versions, change_feed, app_key_locks);
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

// ---------------------------------------------------------------------------
// The change feed and app-key locks: the store alone.

fn feed_row(kind: &str, id: &str, at: i64, app: Option<&str>) -> crate::project::ChangeRow {
    crate::project::ChangeRow {
        seq: 0,
        provider: "test".into(),
        account: "default".into(),
        kind: kind.into(),
        object_id: id.into(),
        app_table: app.map(|_| "app_users".to_string()),
        app_key: app.map(str::to_string),
        cause: "webhook".into(),
        before: app.map(|_| json!({ "status": "trialing" })),
        after: Some(json!({ "status": "active", "n": 1.5, "tags": ["a", "b"] })),
        at,
    }
}

/// The change feed: appended in a transaction (nothing on rollback), read
/// after a sequence number in order, pruned by time.
pub async fn change_feed(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut tx = s.begin().await.unwrap();
    tx.append_changes(&[]).await.unwrap();
    tx.append_changes(&[feed_row("things", "gone", 1, None)])
        .await
        .unwrap();
    drop(tx); // rolled back
    assert!(s.changes(0, 10).await.unwrap().is_empty());

    let rows = vec![
        feed_row("things", "a", 1000, None),
        feed_row("billing", "cus_1", 1000, Some("cus_1")),
        feed_row("things", "b", 2000, None),
    ];
    let mut tx = s.begin().await.unwrap();
    tx.append_changes(&rows).await.unwrap();
    tx.commit().await.unwrap();
    let got = s.changes(0, 10).await.unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq), "{got:?}");
    for (g, want) in got.iter().zip(&rows) {
        let mut g = g.clone();
        g.seq = 0;
        assert_eq!(&g, want, "the feed keeps every field");
    }
    let first = got[0].seq;
    let next = s.changes(first, 1).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, got[1].seq);
    assert!(s.changes(got[2].seq, 10).await.unwrap().is_empty());

    // A later commit gets larger numbers.
    let mut tx = s.begin().await.unwrap();
    tx.append_changes(&[feed_row("things", "c", 3000, None)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let later = s.changes(got[2].seq, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].object_id, "c");

    assert_eq!(s.prune_changes(1000).await.unwrap(), 0);
    assert_eq!(s.prune_changes(2001).await.unwrap(), 3);
    let left = s.changes(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].object_id, "c");
    // Numbers are never reused after pruning.
    let mut tx = s.begin().await.unwrap();
    tx.append_changes(&[feed_row("things", "d", 4000, None)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let all = s.changes(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[1].seq > later[0].seq);
}

/// A transaction that locks an app key makes a second transaction locking
/// the same key wait until the first commits.
pub async fn app_key_locks(store: Arc<dyn Store>) {
    use std::time::Duration;
    let mut first = store.begin().await.unwrap();
    first.lock_app_keys("billing", &["cus_1"]).await.unwrap();
    let (sent, mut locked) = tokio::sync::oneshot::channel();
    let other = store.clone();
    let task = tokio::spawn(async move {
        let mut second = other.begin().await.unwrap();
        second
            .lock_app_keys("billing", &["cus_2", "cus_1"])
            .await
            .unwrap();
        let _ = sent.send(());
        second.commit().await.unwrap();
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut locked)
            .await
            .is_err(),
        "a second transaction took the key while the first held it"
    );
    first.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), locked)
        .await
        .expect("the second transaction got the key once the first committed")
        .unwrap();
    task.await.unwrap();
}

// ---------------------------------------------------------------------------
// App tables: projections' reads and writes, checks.

/// Runs the app's own SQL (DDL, seed rows), as the app would, outside
/// recon's transactions.
pub type AppExec = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync,
>;

/// What the app-table checks need besides the store.
#[derive(Clone)]
pub struct AppDb {
    /// A fresh, migrated store.
    pub store: Arc<dyn Store>,
    /// The same store with app sync configured (`with_app_sync`).
    pub with_sync: Arc<dyn Fn(Arc<crate::project::AppSync>) -> Arc<dyn Store> + Send + Sync>,
    /// Runs the app's SQL on the store's database.
    pub exec: AppExec,
    /// The schema app tables are created in, as a prefix: `public.` on
    /// Postgres (the last entry of the store's search path), `main.` on
    /// SQLite. The checks name tables both with and without it.
    pub schema_prefix: &'static str,
}

/// A table name no other test (in this or another process) uses: Postgres
/// tests share `public`.
fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{t:x}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

const APP_COLUMNS: [&str; 3] = ["status", "plan", "seats"];

/// The projection query of the app checks: portable SQL over the views;
/// `seats` is text here and an integer in the app table.
const APP_QUERY: &str = "SELECT c.id AS key, COALESCE(s.status, 'none') AS status,
       s.price_id AS plan, CAST(c.version AS TEXT) AS seats
FROM stripe_customers c LEFT JOIN stripe_subscriptions s ON s.customer_id = c.id;";

struct AppFixture {
    db: AppDb,
    table: String,
    columns: Vec<String>,
}

impl AppFixture {
    fn app_table(&self) -> crate::project::AppTable<'_> {
        crate::project::AppTable {
            table: &self.table,
            key_column: "stripe_customer_id",
            columns: &self.columns,
        }
    }

    fn qualified(&self) -> String {
        format!("{}{}", self.db.schema_prefix, self.table)
    }

    async fn exec(&self, sql: String) {
        (self.db.exec)(sql).await
    }

    async fn drop_table(self) {
        let sql = format!("DROP TABLE {}", self.qualified());
        (self.db.exec)(sql).await
    }
}

fn customer(id: &str, version: i64) -> Snapshot {
    Snapshot::live(
        ObjectKey::new("stripe", "default", "customers", id),
        version,
        json!({ "id": id, "name": format!("customer {id}") }),
    )
}

fn subscription(id: &str, customer: &str, status: &str, price: &str, version: i64) -> Snapshot {
    Snapshot::live(
        ObjectKey::new("stripe", "default", "subscriptions", id),
        version,
        json!({
            "id": id, "customer": customer, "status": status,
            "items": {"data": [{"price": {"id": price}}]}
        }),
    )
    .with_owner(Some(customer))
    .with_status(Some(status))
}

/// An app table `(stripe_customer_id text UNIQUE, status, plan, seats
/// integer, note text DEFAULT 'app default')` with rows for `cus_1`
/// (matching the mirror), `cus_2` (differing), `cus_gone` and `cus_old`
/// (no provider object) and one with no key; a mirror with `cus_1` (an
/// active subscription), `cus_2`, `cus_B` and `cus_a`.
async fn app_fixture(db: AppDb) -> AppFixture {
    let f = AppFixture {
        table: unique_table("app_users"),
        columns: APP_COLUMNS.iter().map(|c| c.to_string()).collect(),
        db,
    };
    let t = f.qualified();
    f.exec(format!(
        "CREATE TABLE {t} (stripe_customer_id text UNIQUE, status text, plan text,
             seats integer, note text DEFAULT 'app default')"
    ))
    .await;
    f.exec(format!(
        "INSERT INTO {t} (stripe_customer_id, status, plan, seats, note) VALUES
             ('cus_1', 'active', 'price_pro', 10, 'keep 1'),
             ('cus_2', 'past_due', 'price_old', 0, 'keep 2'),
             ('cus_gone', 'active', 'price_pro', 3, 'keep gone'),
             ('cus_old', 'canceled', NULL, NULL, 'keep old'),
             (NULL, 'active', NULL, 1, 'no key')"
    ))
    .await;
    let b = Batch {
        changes: vec![
            change(customer("cus_1", 10), Guard::Newer),
            change(customer("cus_2", 20), Guard::Newer),
            change(customer("cus_B", 30), Guard::Newer),
            change(customer("cus_a", 40), Guard::Newer),
            change(
                subscription("sub_1", "cus_1", "active", "price_pro", 11),
                Guard::Newer,
            ),
        ],
        ..Batch::default()
    };
    commit(f.db.store.as_ref(), &b, false).await.unwrap();
    f
}

fn keys_of(rows: &[(String, serde_json::Value)]) -> Vec<&str> {
    rows.iter().map(|(k, _)| k.as_str()).collect()
}

/// A projection's desired rows by key and by page (keys in byte order,
/// whatever the database's collation), converted to the app column's type
/// where the store can; the app table's current rows likewise.
pub async fn app_reads(db: AppDb) {
    let f = app_fixture(db).await;
    let postgres = f.db.store.backend() == "postgres";
    let table = f.app_table();
    let mut tx = f.db.store.begin().await.unwrap();

    let desired = tx
        .app_desired(
            &table,
            APP_QUERY,
            KeySel::Keys(&["cus_2", "cus_1", "cus_nobody"]),
        )
        .await
        .unwrap();
    assert_eq!(keys_of(&desired), ["cus_1", "cus_2"]);
    let seats = |n: i64| {
        if postgres {
            json!(n)
        } else {
            json!(n.to_string())
        }
    };
    assert_eq!(
        desired[0].1,
        json!({"status": "active", "plan": "price_pro", "seats": seats(10)})
    );
    assert_eq!(
        desired[1].1,
        json!({"status": "none", "plan": null, "seats": seats(20)})
    );

    // Pages in byte order: `cus_B` before `cus_a`.
    let page = |after: Option<&'static str>| KeySel::Page { after, limit: 3 };
    let p1 = tx.app_desired(&table, APP_QUERY, page(None)).await.unwrap();
    assert_eq!(keys_of(&p1), ["cus_1", "cus_2", "cus_B"]);
    let p2 = tx
        .app_desired(&table, APP_QUERY, page(Some("cus_B")))
        .await
        .unwrap();
    assert_eq!(keys_of(&p2), ["cus_a"]);
    assert!(
        tx.app_desired(&table, APP_QUERY, page(Some("cus_a")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        tx.app_desired(&table, APP_QUERY, KeySel::Keys(&[]))
            .await
            .unwrap()
            .is_empty()
    );

    let current = tx
        .app_current(&table, KeySel::Keys(&["cus_1", "cus_2", "cus_B"]))
        .await
        .unwrap();
    assert_eq!(keys_of(&current), ["cus_1", "cus_2"]);
    assert_eq!(
        current[0].1,
        json!({"status": "active", "plan": "price_pro", "seats": 10})
    );
    // The same value in the query's type and the app column's compares
    // equal; on Postgres exactly (through the table's row type).
    assert!(crate::project::same_value(&desired[0].1, &current[0].1));
    if postgres {
        assert_eq!(desired[0].1, current[0].1);
    }
    assert!(!crate::project::same_value(&desired[1].1, &current[1].1));

    // All rows with a key, in pages; the schema-qualified name works too.
    let qualified = f.qualified();
    let named = crate::project::AppTable {
        table: &qualified,
        ..table
    };
    let all = tx
        .app_current(
            &named,
            KeySel::Page {
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(keys_of(&all), ["cus_1", "cus_2", "cus_gone", "cus_old"]);
    assert_eq!(
        all[3].1,
        json!({"status": "canceled", "plan": null, "seats": null})
    );
    let rest = tx
        .app_current(
            &table,
            KeySel::Page {
                after: Some("cus_2"),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(keys_of(&rest), ["cus_gone"]);

    drop(tx);

    // Scans: every row with a key (not the row without one), in byte
    // order, with the same values as the reads by key.
    use futures::TryStreamExt;
    let want: Vec<(String, serde_json::Value)> =
        f.db.store
            .app_scan(table, Some(APP_QUERY))
            .try_collect()
            .await
            .unwrap();
    assert_eq!(keys_of(&want), ["cus_1", "cus_2", "cus_B", "cus_a"]);
    assert_eq!(&want[..2], &desired[..]);
    let have: Vec<(String, serde_json::Value)> =
        f.db.store
            .app_scan(named, None)
            .try_collect()
            .await
            .unwrap();
    assert_eq!(keys_of(&have), ["cus_1", "cus_2", "cus_gone", "cus_old"]);
    assert_eq!(have, all);
    f.drop_table().await;
}

/// Writes name only the key and the owned columns: an update leaves the
/// app's other columns alone, an insert leaves them to their defaults;
/// values are converted to the columns' types; a rollback undoes them.
pub async fn app_writes(db: AppDb) {
    let f = app_fixture(db).await;
    let table = f.app_table();
    let t = f.qualified();
    let s = f.db.store.clone();

    // Rolled back: nothing.
    let mut tx = s.begin().await.unwrap();
    let n = tx
        .app_write(
            &table,
            AppWrite::Delete,
            &[("cus_1".to_string(), json!(null))],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    let n = tx
        .app_write(
            &table,
            AppWrite::Update,
            &[
                (
                    "cus_2".to_string(),
                    // `note` is not owned: never written, whatever the values hold.
                    json!({"status": "none", "plan": null, "seats": "20", "note": "overwritten"}),
                ),
                (
                    "cus_nobody".to_string(),
                    json!({"status": "x", "plan": null, "seats": 1}),
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "only existing rows are updated");
    let n = tx
        .app_write(
            &table,
            AppWrite::Insert,
            &[(
                "cus_a".to_string(),
                json!({"status": "none", "plan": null, "seats": 40, "note": "overwritten"}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = tx
        .app_write(
            &table,
            AppWrite::Delete,
            &[
                ("cus_gone".to_string(), json!(null)),
                ("cus_nobody".to_string(), json!(null)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    let rows = tx
        .check_rows(
            &format!(
                "SELECT stripe_customer_id AS id, status, plan, seats, note FROM {t}
                 WHERE stripe_customer_id IS NOT NULL ORDER BY stripe_customer_id"
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": "cus_1", "status": "active", "plan": "price_pro", "seats": 10, "note": "keep 1"}),
            json!({"id": "cus_2", "status": "none", "plan": null, "seats": 20, "note": "keep 2"}),
            json!({"id": "cus_a", "status": "none", "plan": null, "seats": 40, "note": "app default"}),
            json!({"id": "cus_old", "status": "canceled", "plan": null, "seats": null, "note": "keep old"}),
        ]
    );
    drop(tx);

    // A constraint violation is an error with the database's message; the
    // caller rolls back.
    let mut tx = s.begin().await.unwrap();
    let e = tx
        .app_write(
            &table,
            AppWrite::Insert,
            &[(
                "cus_1".to_string(),
                json!({"status": "x", "plan": null, "seats": 1}),
            )],
        )
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("unique"), "{e}");
    drop(tx);
    f.drop_table().await;
}

/// A failing query (bad SQL, an unknown table or column) is an error that
/// carries the database's message; names are checked before they are
/// spliced.
pub async fn app_query_errors(db: AppDb) {
    let f = app_fixture(db).await;
    let table = f.app_table();
    let s = f.db.store.clone();
    let keys = KeySel::Keys(&["cus_1"]);

    let mut tx = s.begin().await.unwrap();
    let e = tx
        .app_desired(&table, "SELEC key FROM nowhere", keys)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("syntax"), "{e}");
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    let e = tx
        .app_desired(&table, "SELECT id AS key FROM no_such_table_x", keys)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no_such_table_x"), "{e}");
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    let cols = vec!["status".to_string(), "no_such_column_x".to_string()];
    let bad = crate::project::AppTable {
        columns: &cols,
        ..table
    };
    let e = tx.app_current(&bad, keys).await.unwrap_err();
    assert!(e.to_string().contains("no_such_column_x"), "{e}");
    drop(tx);

    use futures::TryStreamExt;
    let e = s
        .app_scan(table, Some("SELECT nope_x AS key FROM stripe_customers"))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope_x"), "{e}");

    let mut tx = s.begin().await.unwrap();
    let e = tx
        .check_rows("SELECT * FROM no_such_table_y", 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no_such_table_y"), "{e}");
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    // Malformed names, and recon's own tables: a projection never writes
    // the mirror.
    for hostile in [
        "users; DROP TABLE objects",
        "Users",
        "a.b.c",
        "objects",
        "changes",
        "stripe_customers",
    ] {
        let bad = crate::project::AppTable {
            table: hostile,
            ..table
        };
        let e = tx.app_current(&bad, keys).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config, "{hostile}: {e}");
    }
    let cols = vec!["status\"; --".to_string()];
    let bad = crate::project::AppTable {
        columns: &cols,
        ..table
    };
    let e = tx
        .app_write(&bad, AppWrite::Update, &[("cus_1".into(), json!({}))])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Config, "{e}");
    drop(tx);
    f.drop_table().await;
}

/// Checks: arbitrary SQL over the views and the app's tables, at most
/// `limit` rows, each a JSON object of its columns with their types.
pub async fn app_checks(db: AppDb) {
    let f = app_fixture(db).await;
    let t = f.qualified();
    let mut tx = f.db.store.begin().await.unwrap();
    let rows = tx
        .check_rows(
            &format!(
                "SELECT u.stripe_customer_id AS id, u.seats, u.plan, c.name, 1.5 AS x
                 FROM {t} u JOIN stripe_customers c ON c.id = u.stripe_customer_id
                 ORDER BY u.stripe_customer_id;"
            ),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": "cus_1", "seats": 10, "plan": "price_pro", "name": "customer cus_1", "x": 1.5}),
            json!({"id": "cus_2", "seats": 0, "plan": "price_old", "name": "customer cus_2", "x": 1.5}),
        ]
    );
    let one = tx
        .check_rows(
            &format!("SELECT stripe_customer_id FROM {t} -- a trailing comment"),
            1,
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(
        tx.check_rows("SELECT id FROM stripe_customers", 0)
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    f.drop_table().await;
}

fn billing(table: &str, query: &str) -> crate::project::Projection {
    use crate::project::{Dependency, OnDelete, OnMissing, Projection};
    Projection {
        name: "billing".into(),
        provider: "stripe".into(),
        table: table.into(),
        key: "stripe_customer_id".into(),
        columns: APP_COLUMNS.iter().map(|c| c.to_string()).collect(),
        query: query.into(),
        depends: vec![
            Dependency {
                provider: None,
                kind: "customers".into(),
                key: "id".into(),
            },
            Dependency {
                provider: None,
                kind: "subscriptions".into(),
                key: "owner".into(),
            },
        ],
        on_missing: OnMissing::Insert,
        on_delete: OnDelete::Absent,
        absent: [("status".to_string(), json!("none"))].into(),
    }
}

/// The core's projection over the store's primitives: the rows that
/// differ are written, a row already right is not, and a second pass
/// writes nothing (desired and current compare equal after the store's
/// conversions).
pub async fn app_projection_round_trip(db: AppDb) {
    let f = app_fixture(db).await;
    let p = billing(&f.table, APP_QUERY);
    let s = f.db.store.clone();
    let keys = ["cus_1", "cus_2", "cus_B", "cus_gone"];
    let mut tx = s.begin().await.unwrap();
    let done = crate::project::project_keys(tx.as_mut(), &p, &keys, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let got: Vec<(&str, &str)> = done.iter().map(|c| (c.key.as_str(), c.action)).collect();
    assert_eq!(
        got,
        [
            ("cus_2", "update"),
            ("cus_B", "insert"),
            ("cus_gone", "update")
        ]
    );
    let mut tx = s.begin().await.unwrap();
    let again = crate::project::project_keys(tx.as_mut(), &p, &keys, false)
        .await
        .unwrap();
    assert!(again.is_empty(), "written twice: {again:?}");
    let rows = tx
        .check_rows(
            &format!(
                "SELECT stripe_customer_id AS id, status, seats, note FROM {}
                 WHERE stripe_customer_id IN ('cus_B', 'cus_gone') ORDER BY stripe_customer_id",
                f.qualified()
            ),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            json!({"id": "cus_B", "status": "none", "seats": 30, "note": "app default"}),
            json!({"id": "cus_gone", "status": "none", "seats": null, "note": "keep gone"}),
        ]
    );
    drop(tx);
    f.drop_table().await;
}

/// A commit on a store with app sync projects what it wrote into the app
/// table and appends both to the change feed, in its transaction; a
/// failing projection fails the whole commit.
pub async fn app_commit_projects_and_feeds(db: AppDb) {
    let f = app_fixture(db).await;
    let sync = crate::project::AppSync {
        projections: vec![billing(&f.table, APP_QUERY)],
        checks: Vec::new(),
        feed: true,
    };
    let store = (f.db.with_sync)(Arc::new(sync));
    assert!(store.app_sync().is_some());
    let before = store.changes(0, 100).await.unwrap().len();

    let upgrade = |id: &str, status: &str, version: i64| Batch {
        events: vec![EventEntry {
            event: ProviderEvent {
                provider: "stripe".into(),
                account: "default".into(),
                event_id: id.into(),
                event_type: "customer.subscription.updated".into(),
                created: version,
                pending_webhooks: None,
                snapshots: vec![subscription(
                    "sub_2",
                    "cus_2",
                    status,
                    "price_team",
                    version,
                )],
            },
            source: Source::Webhook,
            drift: None,
        }],
        ..Batch::default()
    };
    let out = commit(store.as_ref(), &upgrade("evt_p1", "active", 50), false)
        .await
        .unwrap();
    assert_eq!(out.app.len(), 1, "{:?}", out.app);
    assert_eq!(
        (out.app[0].key.as_str(), out.app[0].action),
        ("cus_2", "update")
    );
    let mut tx = store.begin().await.unwrap();
    let cur = tx
        .app_current(&f.app_table(), KeySel::Keys(&["cus_2"]))
        .await
        .unwrap();
    assert_eq!(
        cur[0].1,
        json!({"status": "active", "plan": "price_team", "seats": 20})
    );
    drop(tx);
    let feed = store.changes(0, 100).await.unwrap();
    let new: Vec<(&str, &str, Option<&str>)> = feed[before..]
        .iter()
        .map(|c| (c.kind.as_str(), c.object_id.as_str(), c.app_key.as_deref()))
        .collect();
    assert_eq!(
        new,
        [
            ("subscriptions", "sub_2", None),
            ("billing", "cus_2", Some("cus_2"))
        ]
    );
    let app_row = &feed[before + 1];
    assert_eq!(app_row.app_table.as_deref(), Some(f.table.as_str()));
    assert_eq!(app_row.cause, "webhook");
    let after = app_row.after.as_ref().unwrap();
    assert_eq!(
        (&after["status"], &after["plan"]),
        (&json!("active"), &json!("price_team"))
    );
    assert_eq!(app_row.before.as_ref().unwrap()["status"], "past_due");

    // A projection that fails fails the commit: neither the mirror nor the
    // ledger nor the feed moves.
    let broken = crate::project::AppSync {
        projections: vec![billing(&f.table, "SELECT id AS key FROM no_such_view_z")],
        checks: Vec::new(),
        feed: true,
    };
    let broken_store = (f.db.with_sync)(Arc::new(broken));
    let e = commit(
        broken_store.as_ref(),
        &upgrade("evt_p2", "past_due", 60),
        false,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no_such_view_z"), "{e}");
    assert!(e.to_string().contains("billing"), "{e}");
    assert!(
        !store
            .ledger_contains("stripe", "default", "evt_p2")
            .await
            .unwrap()
    );
    let sub = store
        .get_many("stripe", "default", "subscriptions", &["sub_2"])
        .await
        .unwrap();
    assert_eq!(sub[0].snapshot.status.as_deref(), Some("active"));
    assert_eq!(store.changes(0, 100).await.unwrap().len(), feed.len());
    f.drop_table().await;
}

/// Expand to one `#[tokio::test]` per app-table check. `$make` is an async
/// fn returning a fresh [`AppDb`].
#[macro_export]
macro_rules! store_app_tests {
    ($make:path) => {
        $crate::store_app_tests!(@each $make;
            app_reads, app_writes, app_query_errors, app_checks, app_projection_round_trip,
            app_commit_projects_and_feeds);
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
