//! `ServerState::after_run`: missed webhooks, undelivered events and the
//! cool-down of event-triggered sweeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use recon_core::{
    DriftCause, DriftRecord, ObjectKey, RunCounts, RunKind, RunRecord, RunStatus, Source, Store,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::metrics::Metrics;
use super::{Cooldown, ServerState};
use crate::app::App;
use crate::config::Config;

async fn state(config: Config) -> (ServerState, UnboundedReceiver<(String, String)>) {
    let store = recon_store_sqlite::SqliteStore::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let app = App {
        config,
        store: Arc::new(store),
        providers: Vec::new(),
        off: Vec::new(),
        sync: Default::default(),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (ServerState::new(app, Metrics::new(Vec::new()), tx), rx)
}

fn replay_run(id: &str, counts: RunCounts) -> RunRecord {
    RunRecord {
        id: id.into(),
        provider: "stripe".into(),
        account: "default".into(),
        kind: "*".into(),
        run_kind: RunKind::Replay,
        status: RunStatus::Succeeded,
        dry_run: false,
        started_at: 1,
        finished_at: Some(2),
        counts,
        mismatch_ratio: 0.0,
        error: None,
    }
}

/// Drift the replay `run_id` logged, one record per kind.
async fn drift(s: &ServerState, run_id: &str, kinds: &[&str]) {
    let records: Vec<DriftRecord> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| DriftRecord {
            key: ObjectKey::new("stripe", "default", *k, format!("obj_{run_id}_{i}")),
            run_id: Some(run_id.into()),
            source: Source::Replay,
            cause: DriftCause::Changed,
            before: Some(serde_json::json!({ "v": 1 })),
            after: Some(serde_json::json!({ "v": 2 })),
            detected_at: 1,
        })
        .collect();
    let mut tx = s.app.store.begin().await.unwrap();
    tx.insert_drift(&records).await.unwrap();
    tx.commit().await.unwrap();
}

fn requested(rx: &mut UnboundedReceiver<(String, String)>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok((p, k)) = rx.try_recv() {
        out.push(format!("{p}:{k}"));
    }
    out.sort();
    out
}

fn metric(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(name))
        .map(|l| l.rsplit_once(' ').unwrap().1.to_string())
}

#[tokio::test]
async fn missed_webhooks_come_from_missed_not_from_events_applied() {
    let (s, mut rx) = state(Config::default()).await;
    // A busy account: 500 new events, all still in flight or carrying
    // nothing, and the drift they caused. No webhook was missed.
    drift(&s, "r1", &["customers", "invoices"]).await;
    let busy = RunCounts {
        events_applied: 500,
        missed: 0,
        ..RunCounts::default()
    };
    s.after_run(&replay_run("r1", busy)).await;
    assert_eq!(requested(&mut rx), Vec::<String>::new());
    let text = s.metrics.render();
    assert_eq!(
        metric(&text, r#"recon_missed_webhooks_total{provider="stripe"}"#),
        None,
        "{text}"
    );

    // Three missed webhooks: counted, and the kinds with drift are swept.
    drift(&s, "r2", &["customers", "subscriptions"]).await;
    let missed = RunCounts {
        events_applied: 40,
        missed: 3,
        ..RunCounts::default()
    };
    s.after_run(&replay_run("r2", missed)).await;
    assert_eq!(
        requested(&mut rx),
        vec!["stripe:customers", "stripe:subscriptions"]
    );
    let text = s.metrics.render();
    assert_eq!(
        metric(&text, r#"recon_missed_webhooks_total{provider="stripe"}"#).as_deref(),
        Some("3"),
        "{text}"
    );
}

#[tokio::test]
async fn a_kind_is_swept_at_most_once_per_cooldown() {
    let (s, mut rx) = state(Config::default()).await;
    let counts = RunCounts {
        events_applied: 2,
        missed: 2,
        ..RunCounts::default()
    };
    drift(&s, "r1", &["customers"]).await;
    s.after_run(&replay_run("r1", counts.clone())).await;
    assert_eq!(requested(&mut rx), vec!["stripe:customers"]);
    // Five minutes later the next replay misses more of the same kind, and
    // one of another: only the other kind is swept.
    drift(&s, "r2", &["customers", "invoices"]).await;
    s.after_run(&replay_run("r2", counts.clone())).await;
    assert_eq!(requested(&mut rx), vec!["stripe:invoices"]);
    // Still counted each time.
    let text = s.metrics.render();
    assert_eq!(
        metric(&text, r#"recon_missed_webhooks_total{provider="stripe"}"#).as_deref(),
        Some("4"),
        "{text}"
    );

    // The period is configurable: with 0s every trigger sweeps.
    let cfg: Config = toml::from_str("[server]\ntriggered_sweep_cooldown = \"0s\"").unwrap();
    let (s, mut rx) = state(cfg).await;
    drift(&s, "r1", &["customers"]).await;
    s.after_run(&replay_run("r1", counts.clone())).await;
    s.after_run(&replay_run("r1", counts)).await;
    assert_eq!(
        requested(&mut rx),
        vec!["stripe:customers", "stripe:customers"]
    );
}

#[test]
fn cooldown_expires_after_its_period() {
    let c = Cooldown::new(Duration::from_secs(3600));
    let t0 = Instant::now();
    assert!(c.allow("stripe", "customers", t0));
    assert!(!c.allow("stripe", "customers", t0 + Duration::from_secs(3599)));
    assert!(c.allow("stripe", "invoices", t0 + Duration::from_secs(10)));
    assert!(c.allow("clerk", "customers", t0 + Duration::from_secs(10)));
    assert!(c.allow("stripe", "customers", t0 + Duration::from_secs(3600)));
    assert!(!c.allow("stripe", "customers", t0 + Duration::from_secs(3700)));
}

#[tokio::test]
async fn undelivered_events_are_counted() {
    let (s, mut rx) = state(Config::default()).await;
    let counts = RunCounts {
        undelivered: 4,
        ..RunCounts::default()
    };
    s.after_run(&replay_run("r1", counts.clone())).await;
    s.after_run(&replay_run("r2", RunCounts::default())).await;
    let text = s.metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"recon_undelivered_events_total{provider="stripe"}"#
        )
        .as_deref(),
        Some("4"),
        "{text}"
    );
    s.after_run(&replay_run("r3", counts)).await;
    let text = s.metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"recon_undelivered_events_total{provider="stripe"}"#
        )
        .as_deref(),
        Some("8"),
        "{text}"
    );
    // The engine refreshes those objects itself: no sweep from here.
    assert_eq!(requested(&mut rx), Vec::<String>::new());
}
