//! The chaos suite: recon against the simulator, with webhooks dropped,
//! duplicated and reordered and the API failing, on any store. Sizes come
//! from `RECON_CHAOS_SCALE` (1 in CI; `cargo xtask chaos` raises it).

use recon_core::http_client::ApiSettings;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use recon_core::{
    Engine, EngineConfig, Headers, Provider, Rate, RetryPolicy, RunStatus, Store, SweepOptions,
};
use recon_sim::{Faults, ListFailure, Sim, SimConfig, SimHandle, TruthObject, Webhook};

/// Size multiplier.
pub fn scale() -> usize {
    std::env::var("RECON_CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(300),
        max_retries: 12,
        total_timeout: Duration::from_secs(60),
        max_retry_after: Duration::from_millis(500),
    }
}

/// The simulator and one engine per provider on `store`.
pub struct World {
    pub sim: SimHandle,
    pub stripe: Engine,
    pub clerk: Engine,
    pub store: Arc<dyn Store>,
    stripe_secret: String,
    clerk_secret: String,
}

impl World {
    pub async fn new(store: Arc<dyn Store>, seed: u64, customers: usize) -> World {
        World::with_sim_config(store, SimConfig::with_seed(seed), customers).await
    }

    /// [`World::new`] with a simulator started from `config` (a skewed
    /// clock, faults at start).
    pub async fn with_sim_config(
        store: Arc<dyn Store>,
        config: SimConfig,
        customers: usize,
    ) -> World {
        let sim = Sim::start(config).await.expect("start simulator");
        sim.seed_initial(customers, customers);
        let t = sim.webhook_targets(None, None);
        let stripe: Arc<dyn Provider> = Arc::new(
            recon_stripe::StripeProvider::new(
                recon_stripe::StripeConfig::new(sim.stripe_key())
                    .with_api_base(sim.stripe_base())
                    .with_webhook_secret(t.stripe_secret.clone())
                    .with_rate(Rate::per_second(5000))
                    .with_retry_policy(fast()),
            )
            .unwrap(),
        );
        let clerk: Arc<dyn Provider> = Arc::new(
            recon_clerk::ClerkProvider::new(
                recon_clerk::ClerkConfig::new(sim.clerk_key())
                    .with_api_base(sim.clerk_base())
                    .with_webhook_secret(t.clerk_secret.clone())
                    .with_rate(Rate::per_second(5000))
                    .with_retry_policy(fast()),
            )
            .unwrap(),
        );
        let mut cfg = EngineConfig::default();
        cfg.partitions = 4;
        World {
            stripe: Engine::new(store.clone(), stripe).with_config(cfg.clone()),
            clerk: Engine::new(store.clone(), clerk).with_config(cfg),
            store,
            sim,
            stripe_secret: t.stripe_secret,
            clerk_secret: t.clerk_secret,
        }
    }

    pub fn engines(&self) -> [&Engine; 2] {
        [&self.stripe, &self.clerk]
    }

    /// Sweep every kind of both providers; every run must succeed.
    pub async fn sweep_all(&self) {
        for e in self.engines() {
            for r in e.sweep_all(&SweepOptions::default()).await.unwrap() {
                assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
            }
        }
    }

    /// Deliver one webhook to its engine (signed now).
    pub async fn deliver(&self, w: &Webhook) -> recon_core::Result<recon_core::IngestReport> {
        let now = chrono::Utc::now().timestamp();
        let (engine, secret) = match w.provider {
            recon_sim::Provider::Stripe => (&self.stripe, &self.stripe_secret),
            recon_sim::Provider::Clerk => (&self.clerk, &self.clerk_secret),
        };
        let mut h = Headers::new();
        for (k, v) in w.headers(secret, now).expect("sign") {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        engine.ingest_webhook(&h, w.body.as_bytes()).await
    }

    /// (matching, total) objects across every kind of both providers.
    pub async fn consistency(&self) -> (usize, usize, Vec<String>) {
        mirror_vs_truth(
            self.store.as_ref(),
            &self.sim,
            self.stripe.provider().kinds(),
            self.clerk.provider().kinds(),
        )
        .await
    }
}

/// Compare the mirror in `store` with the simulator's truth over the given
/// kinds: (objects that match, objects in all, up to ten that differ). A live
/// row the simulator does not know counts as a mismatch.
pub async fn mirror_vs_truth(
    store: &dyn Store,
    sim: &SimHandle,
    stripe_kinds: &[&str],
    clerk_kinds: &[&str],
) -> (usize, usize, Vec<String>) {
    let truth = sim.truth();
    let (mut ok, mut total, mut bad) = (0, 0, Vec::new());
    for (sp, name, kinds) in [
        (recon_sim::Provider::Stripe, "stripe", stripe_kinds),
        (recon_sim::Provider::Clerk, "clerk", clerk_kinds),
    ] {
        for &kind in kinds {
            let objs = truth.kind(sp, kind);
            let ids: Vec<&str> = objs.keys().map(String::as_str).collect();
            let mut stored = BTreeMap::new();
            for chunk in ids.chunks(500) {
                for s in store.get_many(name, "default", kind, chunk).await.unwrap() {
                    stored.insert(s.snapshot.key.id.clone(), s.snapshot);
                }
            }
            for (id, t) in objs {
                let good = match (t, stored.get(id)) {
                    (TruthObject::Live(v), Some(s)) => !s.deleted && &s.data == v,
                    (TruthObject::Deleted, Some(s)) => s.deleted,
                    (TruthObject::Deleted, None) => true,
                    (TruthObject::Live(_), None) => false,
                };
                total += 1;
                if good {
                    ok += 1;
                } else if bad.len() < 10 {
                    bad.push(format!("{name}.{kind}.{id}"));
                }
            }
            let live = store.count_live(name, "default", kind).await.unwrap() as usize;
            total += live.saturating_sub(truth.live_count(sp, kind));
        }
    }
    (ok, total, bad)
}

/// What a faulty delivery did.
#[derive(Debug, Default)]
pub struct Delivered {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub acknowledged: Vec<(recon_sim::Provider, String)>,
    pub duplicates_absorbed: u64,
    pub applied_twice: u64,
}

/// Take the outbox and deliver it: `drop` share lost, `dup` share sent
/// twice, order shuffled within windows of `window`.
pub async fn deliver_with_faults(
    w: &World,
    rng: &mut rand::rngs::StdRng,
    drop: f64,
    dup: f64,
    window: usize,
) -> Delivered {
    let mut msgs: Vec<Webhook> = Vec::new();
    let mut d = Delivered::default();
    for m in w.sim.take_outbox() {
        if rng.random_bool(drop) {
            d.dropped += 1;
            continue;
        }
        if rng.random_bool(dup) {
            d.duplicated += 1;
            msgs.push(m.clone());
        }
        msgs.push(m);
    }
    for chunk in msgs.chunks_mut(window.max(1)) {
        chunk.shuffle(rng);
    }
    let mut seen = std::collections::HashSet::new();
    for m in &msgs {
        d.sent += 1;
        let r = w
            .deliver(m)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", m.event_type, m.id));
        let first = seen.insert(m.id.clone());
        if r.duplicate {
            d.duplicates_absorbed += 1;
        } else {
            if !first {
                d.applied_twice += 1;
            }
            d.acknowledged.push((m.provider, m.id.clone()));
        }
    }
    d
}

/// Convergence: webhooks 20% dropped, 10% duplicated, reordered, API 5% 429
/// and 2% 5xx; after ingest plus one sweep the mirror equals the truth.
pub async fn convergence(store: Arc<dyn Store>) {
    let n = 300 * scale();
    let w = World::new(store.clone(), 7, n).await;
    w.sim.set_faults(Faults {
        rate_limited: 0.05,
        retry_after: Duration::from_millis(50),
        server_error: 0.02,
        ..Faults::default()
    });
    w.sweep_all().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mutations = 3000 * scale();
    let mut total = Delivered::default();
    for _ in 0..(mutations / 500) {
        w.sim.mutate(500);
        let d = deliver_with_faults(&w, &mut rng, 0.2, 0.1, 40).await;
        total.sent += d.sent;
        total.dropped += d.dropped;
        total.duplicated += d.duplicated;
        total.duplicates_absorbed += d.duplicates_absorbed;
        total.applied_twice += d.applied_twice;
        total.acknowledged.extend(d.acknowledged);
    }
    let (ok_before, all_before, _) = w.consistency().await;
    assert!(
        ok_before < all_before,
        "dropping 20% of webhooks should leave drift"
    );
    assert_eq!(total.applied_twice, 0, "an event applied twice");
    assert_eq!(
        total.duplicates_absorbed, total.duplicated,
        "every duplicate is absorbed by the ledger"
    );
    for (p, id) in &total.acknowledged {
        let name = if *p == recon_sim::Provider::Stripe {
            "stripe"
        } else {
            "clerk"
        };
        assert!(
            store.ledger_contains(name, "default", id).await.unwrap(),
            "acknowledged {id} missing from the ledger"
        );
    }
    w.sweep_all().await;
    let (ok, all, bad) = w.consistency().await;
    eprintln!(
        "chaos convergence: objects {all}, mutations {mutations}, webhooks sent {} dropped {} duplicated {}, mismatches before sweep {} after {}",
        total.sent,
        total.dropped,
        total.duplicated,
        all_before - ok_before,
        all - ok
    );
    assert_eq!(
        ok, all,
        "mirror differs from the truth after a sweep: {bad:?}"
    );
    w.sim.shutdown().await;
}

/// The projection the app-table chaos case keeps right: per Stripe
/// customer, the status of its newest subscription that is not canceled
/// (by `created`, then id), else `none`.
pub fn billing_projection() -> recon_core::project::Projection {
    use recon_core::project::{Dependency, OnDelete, OnMissing, Projection};
    Projection {
        name: "billing".into(),
        provider: "stripe".into(),
        table: "app_users".into(),
        key: "stripe_customer_id".into(),
        columns: vec!["subscription_status".into()],
        query: "SELECT c.id AS key, COALESCE((SELECT s.status FROM stripe_subscriptions s \
            WHERE s.customer_id = c.id AND s.account = c.account AND s.status <> 'canceled' \
            ORDER BY s.created DESC, s.id DESC LIMIT 1), 'none') AS subscription_status \
            FROM stripe_customers c WHERE c.account = 'default'"
            .into(),
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
        on_delete: OnDelete::Delete,
        absent: Default::default(),
    }
}

/// What [`billing_projection`] implies from the simulator's truth.
pub fn billing_truth(sim: &SimHandle) -> BTreeMap<String, Option<String>> {
    let truth = sim.truth();
    let customers = truth.kind(recon_sim::Provider::Stripe, "customers");
    let subs = truth.kind(recon_sim::Provider::Stripe, "subscriptions");
    let mut best: BTreeMap<String, (i64, String, String)> = BTreeMap::new();
    for (id, t) in subs {
        let TruthObject::Live(v) = t else { continue };
        let status = v["status"].as_str().unwrap_or_default().to_string();
        if status == "canceled" {
            continue;
        }
        let Some(cus) = v["customer"].as_str() else {
            continue;
        };
        let created = v["created"].as_i64().unwrap_or(0);
        let cand = (created, id.clone(), status);
        match best.get(cus) {
            Some(b) if (b.0, &b.1) >= (cand.0, &cand.1) => {}
            _ => {
                best.insert(cus.to_string(), cand);
            }
        }
    }
    customers
        .iter()
        .filter(|(_, t)| matches!(t, TruthObject::Live(_)))
        .map(|(id, _)| {
            let status = best
                .get(id)
                .map(|b| b.2.clone())
                .unwrap_or_else(|| "none".into());
            (id.clone(), Some(status))
        })
        .collect()
}

/// The app's table under chaos: webhooks dropped, duplicated and
/// reordered, rows edited by hand behind recon's back; after the final
/// sweep and the app pass, `app_users` equals what the truth implies.
pub async fn app_convergence(make: crate::projections::Make) {
    let sync = recon_core::project::AppSync {
        projections: vec![billing_projection()],
        checks: Vec::new(),
        feed: true,
    };
    let (store, db) = make(sync).await;
    db.exec(
        "CREATE TABLE app_users (stripe_customer_id text PRIMARY KEY, subscription_status text, note text)",
    )
    .await;
    let n = 150 * scale();
    let w = World::new(store.clone(), 21, n).await;
    w.sweep_all().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for _ in 0..(1500 * scale() / 500) {
        w.sim.mutate(500);
        deliver_with_faults(&w, &mut rng, 0.2, 0.1, 40).await;
    }
    // The app's own hands: a wrong status on some rows, a row deleted.
    db.exec("UPDATE app_users SET subscription_status = 'hand_edited' WHERE stripe_customer_id IN (SELECT stripe_customer_id FROM app_users ORDER BY stripe_customer_id LIMIT 5)")
        .await;
    db.exec("DELETE FROM app_users WHERE stripe_customer_id = (SELECT MAX(stripe_customer_id) FROM app_users)")
        .await;
    w.sweep_all().await;
    let (run, fixed) = recon_core::project::reconcile_app(
        store.as_ref(),
        &billing_projection(),
        &recon_core::project::AppSweepOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(
        fixed.len() >= 6,
        "the hand edits and the deleted row are found: {fixed:?}"
    );
    let app = db
        .pairs("SELECT stripe_customer_id, subscription_status FROM app_users")
        .await;
    let want = billing_truth(&w.sim);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(k, v)| app.get(*k) != Some(*v))
        .take(10)
        .collect();
    let extra: Vec<_> = app
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(10)
        .collect();
    eprintln!(
        "chaos app table: {} rows, repaired by the app pass {}",
        app.len(),
        fixed.len()
    );
    assert!(
        wrong.is_empty() && extra.is_empty(),
        "app table differs from the truth: wrong {wrong:?}, extra {extra:?}"
    );
    w.sim.shutdown().await;
}

/// Partial views: listings fail at a page: no row deleted, run failed.
pub async fn partial_views(store: Arc<dyn Store>) {
    let w = World::new(store.clone(), 11, 400).await;
    w.sweep_all().await;
    // A few deletions (under the circuit breaker's share), not yet swept.
    w.sim.mutate_with(
        60,
        &recon_sim::MutationWeights::only(recon_sim::MutationKind::Delete),
    );
    let _ = w.sim.take_outbox();
    let before_c = store
        .count_live("stripe", "default", "customers")
        .await
        .unwrap();
    let before_u = store.count_live("clerk", "default", "users").await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for (engine, kind) in [(&w.stripe, "customers"), (&w.clerk, "users")] {
        w.sim.set_faults(Faults {
            list_failure: Some(ListFailure {
                kind: Some(kind.to_string()),
                // Stripe lists 100 a page (several pages); Clerk 500 (one).
                after_pages: if kind == "customers" {
                    rng.random_range(1..3)
                } else {
                    0
                },
                failures: None,
                status: 500,
            }),
            should_retry_true: 0.0,
            ..Faults::default()
        });
        let run = engine.sweep(kind, &SweepOptions::default()).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed, "{kind}: {run:?}");
        assert_eq!(run.counts.deleted, 0);
    }
    assert_eq!(
        store
            .count_live("stripe", "default", "customers")
            .await
            .unwrap(),
        before_c,
        "rows deleted from a partial view"
    );
    assert_eq!(
        store.count_live("clerk", "default", "users").await.unwrap(),
        before_u,
        "rows deleted from a partial view"
    );
    w.sim.set_faults(Faults::default());
    w.sweep_all().await;
    let (ok, all, bad) = w.consistency().await;
    assert_eq!(ok, all, "{bad:?}");
    w.sim.shutdown().await;
}

/// Event replay: Stripe webhooks fully dropped for a window; a replay since
/// then restores every Stripe change without a sweep.
pub async fn replay_restores_stripe(store: Arc<dyn Store>) {
    let w = World::new(store.clone(), 13, 200).await;
    w.sweep_all().await;
    let since = chrono::Utc::now().timestamp() - 5;
    w.sim.mutate(800);
    // Every Stripe webhook lost; Clerk's delivered.
    for m in w.sim.take_outbox() {
        if m.provider == recon_sim::Provider::Clerk {
            w.deliver(&m).await.unwrap();
        }
    }
    let run = w
        .stripe
        .replay(since, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(run.counts.events_applied > 0);
    eprintln!(
        "replay counts {:?}; simulator events {}",
        run.counts,
        w.sim.stripe_event_count()
    );
    let truth = w.sim.truth();
    for kind in w.stripe.provider().kinds() {
        let objs = truth.kind(recon_sim::Provider::Stripe, kind);
        let ids: Vec<&str> = objs.keys().map(String::as_str).collect();
        let mut stored = BTreeMap::new();
        for chunk in ids.chunks(500) {
            for s in store
                .get_many("stripe", "default", kind, chunk)
                .await
                .unwrap()
            {
                stored.insert(s.snapshot.key.id.clone(), s.snapshot);
            }
        }
        for (id, t) in objs {
            match (t, stored.get(id)) {
                (TruthObject::Live(v), Some(s)) => assert!(
                    !s.deleted && &s.data == v,
                    "stripe {kind} {id} differs after replay (v{}):\n mirror {}\n truth  {}",
                    s.version,
                    s.data,
                    v
                ),
                (TruthObject::Deleted, s) => assert!(
                    s.is_none_or(|s| s.deleted),
                    "stripe {kind} {id} should be deleted"
                ),
                (TruthObject::Live(_), None) => panic!("stripe {kind} {id} missing after replay"),
            }
        }
    }
    w.sim.shutdown().await;
}

/// One `#[tokio::test]` per chaos case for a store constructor.
#[macro_export]
macro_rules! chaos_tests {
    ($make:path) => {
        $crate::chaos_tests!(@each $make; convergence, partial_views, replay_restores_stripe);
    };
    (app $make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn app_convergence() {
            $crate::chaos::app_convergence($make).await;
        }
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::chaos::$name($make().await).await;
            }
        )*
    };
}
