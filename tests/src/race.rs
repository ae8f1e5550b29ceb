//! The race harness: proptest generates programs that interleave provider
//! mutations, webhook deliveries (delayed, dropped, duplicated, reordered),
//! sweeps running concurrently with them, replays, queue drains and API
//! outages, against the simulator and a real store. After each program:
//!
//! - (a) when no webhook was lost, the mirror equals the simulator's truth
//!   once every webhook is delivered and owed fetches are drained, with no
//!   sweep after the program;
//! - (b) after one complete sweep of every kind and a replay at quiescence,
//!   the mirror equals the truth, lost webhooks or not;
//! - (c) every acknowledged event is in the ledger and none was applied twice.
//!
//! `RECON_RACE_CASES` sets the number of programs (a few in `cargo xtask
//! test`, more in `cargo xtask chaos`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use recon_core::{Engine, EngineConfig, RunRecord, RunStatus, Store, SweepOptions};
use recon_sim::{Faults, Webhook};

use crate::chaos::World;

/// One step of a program.
#[derive(Debug, Clone)]
pub enum Step {
    /// The simulator applies this many random mutations; their webhooks
    /// join the pool of undelivered ones.
    Mutate(usize),
    /// Deliver the pooled webhook at this place (any order: a reorder), and
    /// a second time if `dup`.
    Deliver { pick: Index, dup: bool },
    /// Lose the pooled webhook at this place (only in lossy programs).
    Drop(Index),
    /// Stripe's API answers 500 without retry (on), or heals (off).
    Outage(bool),
    /// Start a sweep of one kind of one provider, concurrent with the steps
    /// that follow (none if one is already running).
    SweepStart(Index),
    /// Wait for the running sweep.
    SweepJoin,
    /// Replay Stripe's events from the cursor.
    Replay,
    /// Drain the fetch queues.
    Settle,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1usize..12).prop_map(Step::Mutate),
        6 => (any::<Index>(), prop::bool::weighted(0.15))
            .prop_map(|(pick, dup)| Step::Deliver { pick, dup }),
        1 => any::<Index>().prop_map(Step::Drop),
        1 => any::<bool>().prop_map(Step::Outage),
        1 => any::<Index>().prop_map(Step::SweepStart),
        1 => Just(Step::SweepJoin),
        1 => Just(Step::Replay),
        1 => Just(Step::Settle),
    ]
}

fn cases() -> u32 {
    std::env::var("RECON_RACE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

fn outage() -> Faults {
    Faults {
        server_error: 1.0,
        should_retry_false: 1.0,
        ..Faults::default()
    }
}

/// What the program saw of deliveries.
#[derive(Default)]
struct Ledger {
    /// Event id → acknowledged as new (not a duplicate) this many times.
    acked: HashMap<(recon_sim::Provider, String), u32>,
}

async fn deliver(w: &World, m: &Webhook, seen: &mut Ledger) -> bool {
    match w.deliver(m).await {
        Ok(r) => {
            if !r.duplicate {
                *seen.acked.entry((m.provider, m.id.clone())).or_insert(0) += 1;
            }
            true
        }
        // A non-2xx answer: the provider delivers it again later.
        Err(_) => false,
    }
}

async fn settle(w: &World) {
    // Owed fetches are due again at once (pending_retry 0); a few rounds
    // absorb ones queued by the last round.
    for _ in 0..20 {
        let mut left = 0;
        for e in w.engines() {
            e.settle_pending().await.unwrap();
            left += e
                .store()
                .pending_fetches(e.provider().name(), e.provider().account())
                .await
                .unwrap()
                .len();
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("owed fetches are still queued after the provider healed");
}

async fn replay(e: &Engine) -> RunRecord {
    let since = match e.event_cursor().await.unwrap() {
        Some(c) => c,
        None => chrono::Utc::now().timestamp() - 3600,
    };
    e.replay(since, &SweepOptions::default()).await.unwrap()
}

/// Print what the mirror and the simulator hold for `bad`
/// (`provider.kind.id`), to explain a failure.
async fn explain(w: &World, bad: &[String]) {
    let truth = w.sim.truth();
    for b in bad {
        let mut it = b.splitn(3, '.');
        let (p, kind, id) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let sp = if p == "stripe" {
            recon_sim::Provider::Stripe
        } else {
            recon_sim::Provider::Clerk
        };
        let stored = w.store.get_many(p, "default", kind, &[id]).await.unwrap();
        eprintln!(
            "{b}:\n  mirror {:?}\n  truth  {:?}",
            stored
                .first()
                .map(|s| (s.snapshot.version, s.snapshot.deleted, &s.snapshot.data)),
            truth.kind(sp, kind).get(id)
        );
    }
}

/// Run one program against a fresh simulator on `store`.
async fn run_program(store: Arc<dyn Store>, seed: u64, lossy: bool, steps: Vec<Step>) {
    let mut w = World::new(store.clone(), seed, 12).await;
    let mut cfg = EngineConfig::default();
    cfg.partitions = 2;
    cfg.commit_chunk = 8;
    cfg.pending_retry = Duration::ZERO;
    w.stripe = Engine::new(store.clone(), w.stripe.provider().clone()).with_config(cfg.clone());
    w.clerk = Engine::new(store.clone(), w.clerk.provider().clone()).with_config(cfg);
    w.sweep_all().await;
    let mut pool: Vec<Webhook> = Vec::new();
    let mut seen = Ledger::default();
    let mut dropped = 0usize;
    let mut sweep: Option<tokio::task::JoinHandle<recon_core::Result<RunRecord>>> = None;
    let kinds: Vec<(bool, &str)> = w
        .stripe
        .provider()
        .kinds()
        .iter()
        .map(|k| (true, *k))
        .chain(w.clerk.provider().kinds().iter().map(|k| (false, *k)))
        .collect();
    for s in &steps {
        match s {
            Step::Mutate(n) => {
                w.sim.mutate(*n);
                pool.extend(w.sim.take_outbox());
            }
            Step::Deliver { pick, dup } if !pool.is_empty() => {
                let m = pool.remove(pick.index(pool.len()));
                let ok = deliver(&w, &m, &mut seen).await;
                if *dup || !ok {
                    // Sent again (a duplicate, or a retry of a failed one).
                    pool.push(m);
                }
            }
            Step::Drop(pick) if lossy && !pool.is_empty() => {
                pool.remove(pick.index(pool.len()));
                dropped += 1;
            }
            Step::Outage(on) => w.sim.set_provider_faults(
                recon_sim::Provider::Stripe,
                if *on { outage() } else { Faults::default() },
            ),
            Step::SweepStart(pick) if sweep.as_ref().is_none_or(|h| h.is_finished()) => {
                let (stripe, kind) = kinds[pick.index(kinds.len())];
                let e = if stripe {
                    w.stripe.clone()
                } else {
                    w.clerk.clone()
                };
                let kind = kind.to_string();
                sweep = Some(tokio::spawn(async move {
                    e.sweep(&kind, &SweepOptions::default()).await
                }));
            }
            Step::SweepJoin => {
                if let Some(h) = sweep.take() {
                    let run = h.await.unwrap().unwrap();
                    assert_ne!(run.status, RunStatus::Running);
                }
            }
            Step::Replay => {
                let run = replay(&w.stripe).await;
                assert_ne!(run.status, RunStatus::Running);
            }
            Step::Settle => {
                for e in w.engines() {
                    e.settle_pending().await.unwrap();
                }
            }
            _ => {}
        }
    }
    if let Some(h) = sweep.take() {
        h.await.unwrap().unwrap();
    }
    // Quiescence: the API heals, the rest of the pool is delivered (every
    // failed delivery is retried), owed fetches are drained.
    w.sim
        .set_provider_faults(recon_sim::Provider::Stripe, Faults::default());
    pool.extend(w.sim.take_outbox());
    for m in pool {
        assert!(
            deliver(&w, &m, &mut seen).await,
            "a webhook failed with the API healthy"
        );
    }
    settle(&w).await;

    // (c) Nothing acknowledged is lost or applied twice.
    for ((p, id), n) in &seen.acked {
        assert_eq!(*n, 1, "{id} applied {n} times");
        let name = if *p == recon_sim::Provider::Stripe {
            "stripe"
        } else {
            "clerk"
        };
        assert!(
            store.ledger_contains(name, "default", id).await.unwrap(),
            "acknowledged {id} is not in the ledger"
        );
    }
    // (a) No webhook lost: the mirror equals the truth without a sweep.
    if dropped == 0 {
        let (ok, all, bad) = w.consistency().await;
        if ok != all {
            explain(&w, &bad).await;
        }
        assert_eq!(
            ok, all,
            "no webhook lost, yet the mirror differs: {bad:?}\nprogram {steps:?}"
        );
    }
    // (b) One complete sweep and replay at quiescence.
    let force = SweepOptions {
        force: true,
        ..SweepOptions::default()
    };
    for e in w.engines() {
        for r in e.sweep_all(&force).await.unwrap() {
            assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        }
    }
    let r = replay(&w.stripe).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    settle(&w).await;
    let (ok, all, bad) = w.consistency().await;
    assert_eq!(
        ok, all,
        "after a sweep and a replay the mirror differs: {bad:?}\nprogram {steps:?}"
    );
    w.sim.shutdown().await;
}

/// The harness: `RECON_RACE_CASES` programs on stores from `make`.
pub async fn interleavings<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        // Every case starts a simulator and a store: no shrinking marathon.
        max_shrink_iters: 16,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let strategy = (
        any::<u64>(),
        prop::bool::weighted(0.5),
        prop::collection::vec(step(), 4..48),
    );
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(seed, lossy, steps)| {
            handle.block_on(async {
                let store = make().await;
                run_program(store, seed, lossy, steps).await;
            });
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
