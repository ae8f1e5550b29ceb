//! One clock (issue 11, item 3): the simulator's clock is off the local one
//! by ±5 s, as a provider's servers and recon's machine may disagree. Event
//! versions come from the provider's clock (`created`, `updated_at`); the
//! versions recon gives listed and fetched states, tombstones and sweep
//! floors must come from it too. Against a real store, on both stores:
//! a sweep followed by newer webhooks never refuses a newer event as stale,
//! version ties settle, and the mirror converges to the simulator's truth,
//! with every webhook delivered (no sweep needed) and after one sweep when
//! some were lost.

use std::sync::Arc;

use rand::SeedableRng;
use recon_core::Store;
use recon_sim::SimConfig;
use recon_tests::chaos::{World, deliver_with_faults};

/// Deliver every queued webhook once, in the order the provider sent them.
/// Returns (ties settled, events refused as stale).
async fn deliver_in_order(w: &World) -> (u32, u32) {
    let (mut ties, mut stale) = (0, 0);
    for m in w.sim.take_outbox() {
        let r = w
            .deliver(&m)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", m.event_type, m.id));
        assert!(!r.duplicate, "{} delivered once", m.id);
        ties += r.ties_fetched;
        stale += r.stale;
    }
    (ties, stale)
}

async fn converged(w: &World, when: &str) {
    let (ok, all, bad) = w.consistency().await;
    assert_eq!(
        ok, all,
        "{when}: the mirror differs from the truth: {bad:?}"
    );
}

/// `n` mutations, each followed by all of its webhooks, in order, none
/// lost; after each, the mirror equals the truth. A newer event refused as
/// stale (or a tie left unsettled) leaves an older state in the mirror and
/// fails here. Events refused as stale are only ever ones a tie's fetch
/// already overtook. Returns the ties settled.
async fn mutate_and_deliver(w: &World, n: usize, when: &str) -> u32 {
    let (mut ties, mut stale) = (0, 0);
    for i in 0..n {
        w.sim.mutate(1);
        let (t, s) = deliver_in_order(w).await;
        ties += t;
        stale += s;
        converged(w, &format!("{when}, mutation {i} delivered")).await;
    }
    eprintln!("{when}: {n} mutations, {ties} ties settled, {stale} events overtaken by a fetch");
    ties
}

async fn skewed(store: Arc<dyn Store>, skew_s: i64) {
    let config = SimConfig {
        clock_skew_ms: skew_s * 1000,
        ..SimConfig::with_seed(29)
    };
    let w = World::with_sim_config(store, config, 60).await;
    let clock = format!("simulator clock {skew_s:+} s");

    // 1. A first sweep (the backfill: nothing was heard from the provider
    //    before it), then newer webhooks right away.
    w.sweep_all().await;
    converged(&w, &format!("{clock}, after the backfill")).await;
    let ties = mutate_and_deliver(&w, 120, &format!("{clock}, after the first sweep")).await;
    assert!(ties > 0, "{clock}: the run made no version ties to settle");

    // 2. Again after a sweep that started with the provider's clock known.
    w.sweep_all().await;
    converged(&w, &format!("{clock}, after the second sweep")).await;
    mutate_and_deliver(&w, 80, &format!("{clock}, after the second sweep")).await;

    // 3. A quarter of the webhooks lost (order kept): one sweep repairs it,
    //    its listed states not refused as older than what webhooks wrote.
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    w.sim.mutate(300);
    let d = deliver_with_faults(&w, &mut rng, 0.25, 0.0, 1).await;
    assert!(d.dropped > 0);
    w.sweep_all().await;
    converged(&w, &format!("{clock}, a sweep after lost webhooks")).await;
    w.sim.shutdown().await;
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(recon_store_sqlite::testing::fresh_store().await)
}

async fn postgres() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_provider_clock_behind() {
    skewed(sqlite().await, -5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_provider_clock_ahead() {
    skewed(sqlite().await, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_provider_clock_behind() {
    skewed(postgres().await, -5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_provider_clock_ahead() {
    skewed(postgres().await, 5).await;
}
