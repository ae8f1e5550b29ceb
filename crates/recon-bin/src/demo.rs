//! `recon demo`: simulated Stripe and Clerk, webhooks through faults, the
//! mirror drifting, an app table edited behind recon's back, then
//! reconciliation and a report. Exits 0 only if the mirror ends identical
//! to the simulator's truth and the app table equal to what it implies.

use recon_core::http_client::ApiSettings;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use recon_core::{
    Engine, EngineConfig, Provider, Rate, RetryPolicy, RunStatus, Store, SweepOptions,
};
use recon_sim::{DeliveryFaults, Faults, Sim, SimConfig, Truth, TruthObject};
use serde_json::json;

use crate::app::{App, ProviderEntry};
use crate::commands::DemoArgs;
use crate::config::Config;
use crate::demo_app;
use crate::output::{EXIT_FAILED, EXIT_OK, print_json};
use crate::serve::{ServerState, metrics::Metrics};

/// An adapter with its name, reference rules and request counters.
type ProviderParts = (
    &'static str,
    Arc<dyn Provider>,
    &'static [recon_core::store::Reference],
    Arc<recon_core::BudgetStats>,
);

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        max_retries: 10,
        total_timeout: Duration::from_secs(60),
        max_retry_after: Duration::from_secs(2),
    }
}

/// Mirror vs truth for one kind: (matching, total, mismatched ids sample).
async fn compare(
    store: &dyn Store,
    truth: &Truth,
    sp: recon_sim::Provider,
    provider: &str,
    kind: &str,
) -> Result<(usize, usize)> {
    let objs = truth.kind(sp, kind);
    let ids: Vec<&str> = objs.keys().map(String::as_str).collect();
    let mut stored = BTreeMap::new();
    for chunk in ids.chunks(500) {
        for s in store.get_many(provider, "default", kind, chunk).await? {
            stored.insert(s.snapshot.key.id.clone(), s.snapshot);
        }
    }
    let mut ok = 0;
    for (id, t) in objs {
        let good = match (t, stored.get(id)) {
            (TruthObject::Live(v), Some(s)) => !s.deleted && &s.data == v,
            (TruthObject::Deleted, Some(s)) => s.deleted,
            (TruthObject::Deleted, None) => true,
            (TruthObject::Live(_), None) => false,
        };
        ok += good as usize;
    }
    // Objects the mirror has live that the simulator never had.
    let live = store.count_live(provider, "default", kind).await? as usize;
    let truth_live = truth.live_count(sp, kind);
    let extra = live.saturating_sub(truth_live);
    Ok((ok, objs.len() + extra))
}

async fn consistency(
    store: &dyn Store,
    truth: &Truth,
    entries: &[ProviderEntry],
) -> Result<(BTreeMap<String, (usize, usize)>, usize, usize)> {
    let mut per = BTreeMap::new();
    let (mut ok, mut total) = (0, 0);
    for e in entries {
        let sp = match e.name {
            "stripe" => recon_sim::Provider::Stripe,
            "clerk" => recon_sim::Provider::Clerk,
            other => anyhow::bail!("the demo simulates stripe and clerk, not {other}"),
        };
        for kind in e.provider.kinds() {
            let (o, t) = compare(store, truth, sp, e.name, kind).await?;
            ok += o;
            total += t;
            per.insert(format!("{}.{kind}", e.name), (o, t));
        }
    }
    Ok((per, ok, total))
}

/// Run the demo.
pub async fn run(a: DemoArgs) -> Result<u8> {
    let say = |s: String| {
        if !a.out.json {
            println!("{s}");
        }
    };
    let started = Instant::now();
    // 1. The store: a fresh temporary SQLite file unless told otherwise.
    let url = match &a.database_url {
        Some(u) => u.clone(),
        None => {
            let p = std::env::temp_dir().join(format!(
                "recon-demo-{}-{}.db",
                std::process::id(),
                a.seed
            ));
            let _ = std::fs::remove_file(&p);
            format!("sqlite://{}", p.display())
        }
    };
    let mut config = Config::default();
    config.database.url = Some(url.clone());
    // The app's own table, kept right by a projection; the built-in
    // Stripe <-> Clerk checks.
    config.projections = vec![demo_app::projection()];
    config.link.enabled = true;
    let store = crate::app::open_store(&config)
        .await
        .context("open the demo database")?;
    store.migrate().await?;
    let app_db = demo_app::AppDb::connect(&url, &config.schema()).await?;
    app_db.create_table().await?;
    let sync = Arc::new(config.app_sync()?);
    crate::app::verify_app_sync(store.as_ref(), &sync).await?;

    // 2. The simulator, with API faults.
    let sim = Sim::start(SimConfig::with_seed(a.seed))
        .await
        .context("start the simulator")?;
    sim.seed_initial(a.size, a.size);
    let faults = Faults {
        rate_limited: a.rate_limited,
        retry_after: Duration::from_millis(100),
        server_error: a.server_errors,
        ..Faults::default()
    };
    sim.set_faults(faults);
    say(format!(
        "recon demo — seed {}, {} customers and {} users simulated, store {}",
        a.seed,
        a.size,
        a.size,
        if a.database_url.is_some() {
            "as given"
        } else {
            "a temporary SQLite file"
        }
    ));

    // 3. Providers pointed at the simulator, and recon's real webhook server.
    let targets = sim.webhook_targets(None, None);
    let stripe = recon_stripe::StripeProvider::new(
        recon_stripe::StripeConfig::new(sim.stripe_key())
            .with_api_base(sim.stripe_base())
            .with_webhook_secret(targets.stripe_secret.clone())
            .with_rate(Rate::per_second(2000))
            .with_retry_policy(fast_retries()),
    )?;
    let clerk = recon_clerk::ClerkProvider::new(
        recon_clerk::ClerkConfig::new(sim.clerk_key())
            .with_api_base(sim.clerk_base())
            .with_webhook_secret(targets.clerk_secret.clone())
            .with_rate(Rate::per_second(2000))
            .with_retry_policy(fast_retries()),
    )?;
    let mut engine_cfg = EngineConfig::default();
    engine_cfg.partitions = 4;
    let mut entries = Vec::new();
    let (sstats, cstats) = (
        stripe.budget().stats().clone(),
        clerk.budget().stats().clone(),
    );
    let providers: Vec<ProviderParts> = vec![
        (
            "stripe",
            Arc::new(stripe),
            recon_stripe::StripeProvider::references(),
            sstats,
        ),
        (
            "clerk",
            Arc::new(clerk),
            recon_clerk::ClerkProvider::references(),
            cstats,
        ),
    ];
    for (name, provider, references, stats) in providers {
        entries.push(ProviderEntry {
            name,
            engine: Engine::new(store.clone(), provider.clone()).with_config(engine_cfg.clone()),
            provider,
            references,
            stats,
        });
    }
    let app = App {
        sync,
        config,
        store: store.clone(),
        providers: entries,
        off: Vec::new(),
    };
    let budgets = app
        .providers
        .iter()
        .map(|p| (p.name.to_string(), p.stats.clone()))
        .collect();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let state = Arc::new(ServerState::new(app, Metrics::new(budgets), tx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = crate::serve::router(state.clone(), 1024 * 1024, None);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // The app had its users before recon: one row per customer, billing
    // columns empty. The backfill's commits fill them.
    let signups = demo_app::signups(&sim.truth());
    app_db.fill(&signups).await?;

    // 4. Backfill: the mirror starts equal to the truth.
    let opts = SweepOptions::default();
    for e in &state.app.providers {
        for run in e.engine.sweep_all(&opts).await? {
            if run.status != RunStatus::Succeeded {
                anyhow::bail!(
                    "the initial backfill of {} {} did not succeed: {:?}",
                    run.provider,
                    run.kind,
                    run.error
                );
            }
        }
    }
    // The backfill's commits filled the rows of the customers they wrote;
    // a plan named by a price swept after its subscriptions maps to no
    // customer, so the first app pass fills those (forced: it rewrites
    // most of a table that recon never filled before).
    let first_pass = crate::apptables::reconcile_provider(
        &state.app,
        "stripe",
        None,
        recon_core::Source::Sweep,
        false,
        true,
    )
    .await?;
    if let Some(r) = first_pass
        .iter()
        .find(|r| r.run.status != RunStatus::Succeeded)
    {
        anyhow::bail!(
            "the first app pass of {} did not succeed: {:?}",
            r.projection,
            r.run.error
        );
    }
    let filled: u64 = first_pass
        .iter()
        .map(|r| r.run.counts.updated + r.run.counts.inserted)
        .sum();
    let (_, ok0, total0) = consistency(store.as_ref(), &sim.truth(), &state.app.providers).await?;
    let app0 = demo_app::compare(&sim.truth(), &app_db.rows().await?);
    say(format!(
        "1. backfill: {ok0}/{total0} objects mirrored; {}: {} rows, {}/{} as the mirror implies after the first app pass ({filled} rows it filled) ({:.1}s)",
        demo_app::TABLE,
        signups.len(),
        app0.matching,
        app0.total,
        started.elapsed().as_secs_f64()
    ));

    // 5. Mutations, delivered as webhooks through faults.
    let replay_from = chrono::Utc::now().timestamp() - 60;
    let targets = sim.webhook_targets(
        Some(format!("http://{addr}/webhooks/stripe")),
        Some(format!("http://{addr}/webhooks/clerk")),
    );
    let delivery = DeliveryFaults {
        drop: a.drop,
        duplicate: a.duplicate,
        reorder_window: 40,
        concurrency: 32,
        max_attempts: 1,
        requeue_failed: false,
        ..DeliveryFaults::default()
    };
    let (mut taken, mut dropped, mut duplicated, mut delivered) = (0u64, 0u64, 0u64, 0u64);
    let mut done = 0;
    let t_webhooks = Instant::now();
    // A terminal gets one line rewritten in place; a pipe or a log file gets
    // plain lines, at most one every two seconds and the last.
    let terminal = std::io::stdout().is_terminal();
    let mut last_line: Option<Instant> = None;
    while done < a.mutations {
        let n = (a.mutations - done).min(500);
        sim.mutate(n);
        done += n;
        let r = sim.deliver(&targets, &delivery).await;
        taken += r.taken;
        dropped += r.dropped.len() as u64;
        duplicated += r.duplicated;
        delivered += r.delivered;
        let line = format!(
            "2. mutations: {done}/{} applied at the simulator; webhooks {taken} sent, {dropped} dropped, {duplicated} duplicated, {delivered} acknowledged",
            a.mutations
        );
        let due = done >= a.mutations || last_line.is_none_or(|t| t.elapsed().as_secs() >= 2);
        if !a.out.json && terminal {
            use std::io::Write;
            print!("\r{line}   ");
            let _ = std::io::stdout().flush();
        } else if !a.out.json && due {
            println!("{line}");
            last_line = Some(Instant::now());
        }
    }
    let took = t_webhooks.elapsed().as_secs_f64();
    if terminal {
        say(format!(" ({took:.1}s)"));
    } else {
        say(format!("   ({took:.1}s)"));
    }
    let truth = sim.truth();
    let (per_before, ok1, total1) =
        consistency(store.as_ref(), &truth, &state.app.providers).await?;
    // Someone edits the app table by hand: every 20th row's status.
    let hand_edited = app_db.edit_by_hand().await?;
    say(format!(
        "3. drift: the mirror matches {ok1}/{total1} objects ({} out of date); {hand_edited} rows of {} overwritten by hand behind recon's back",
        total1 - ok1,
        demo_app::TABLE
    ));

    // 6. Reconcile: replay Stripe's events, then sweep everything.
    sim.set_faults(Faults {
        rate_limited: a.rate_limited,
        retry_after: Duration::from_millis(100),
        server_error: a.server_errors,
        ..Faults::default()
    });
    let mut runs = Vec::new();
    let t_reconcile = Instant::now();
    let stripe_entry = &state.app.providers[0];
    let replay = stripe_entry.engine.replay(replay_from, &opts).await?;
    runs.push(replay);
    for e in &state.app.providers {
        runs.extend(e.engine.sweep_all(&opts).await?);
    }
    // The sweeps' commits rewrote the rows of customers that changed; the
    // app pass finds the rest of the hand edits (cause app_drift).
    let edited_before_pass = app_db.still_edited().await?;
    let app_runs = crate::apptables::reconcile_provider(
        &state.app,
        "stripe",
        None,
        recon_core::Source::Sweep,
        false,
        false,
    )
    .await?;
    let mut app_fixed = 0u64;
    for r in &app_runs {
        app_fixed += r.run.counts.updated + r.run.counts.inserted + r.run.counts.deleted;
        runs.push(r.run.clone());
    }
    let checks = crate::apptables::run_checks(&state.app, true).await?;
    let truth = sim.truth();
    let reconcile_secs = t_reconcile.elapsed().as_secs_f64();
    let (per_after, ok2, total2) =
        consistency(store.as_ref(), &truth, &state.app.providers).await?;
    let app_after = demo_app::compare(&truth, &app_db.rows().await?);
    let app_ok = app_after.matching == app_after.total && app_db.still_edited().await? == 0;

    // 7. The report.
    let mut by_kind_cause: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for r in &runs {
        for d in store
            .drift(&recon_core::store::DriftQuery {
                run_id: Some(r.id.clone()),
                limit: 1_000_000,
                ..Default::default()
            })
            .await?
        {
            let cause = match (d.source, d.cause) {
                (recon_core::Source::Replay, _) => "missed webhook (replayed)",
                (_, recon_core::DriftCause::Missing) => "missed: absent",
                (_, recon_core::DriftCause::Deleted) => "missed: deleted",
                (_, recon_core::DriftCause::Changed) => "missed or stale: changed",
                (_, recon_core::DriftCause::AppDrift) => "app table: repaired",
                (_, recon_core::DriftCause::Check) => "check: violation",
                (_, recon_core::DriftCause::Endpoint) => "webhook endpoint: finding",
            };
            *by_kind_cause
                .entry(format!("{}.{}", d.key.provider, d.key.kind))
                .or_default()
                .entry(cause)
                .or_insert(0) += 1;
        }
    }
    let webhooks = state.metrics.render();
    let count = |outcome: &str| -> u64 {
        webhooks
            .lines()
            .filter(|l| {
                l.starts_with("recon_webhooks_total")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let all_ok = ok2 == total2 && app_ok && runs.iter().all(|r| r.status == RunStatus::Succeeded);
    if a.out.json {
        print_json(&json!({
            "ok": all_ok,
            "seed": a.seed,
            "webhooks": { "sent": taken, "dropped": dropped, "duplicated": duplicated, "acknowledged": delivered,
                          "applied": count("applied"), "duplicates_absorbed": count("duplicate"), "not_newer": count("stale") },
            "before": { "matching": ok1, "total": total1, "by_kind": per_before },
            "drift_fixed": by_kind_cause,
            "after": { "matching": ok2, "total": total2, "by_kind": per_after },
            "app_table": {
                "table": demo_app::TABLE,
                "edited_by_hand": hand_edited,
                "rewritten_by_sweeps": hand_edited.saturating_sub(edited_before_pass),
                "app_drift_fixed": app_fixed,
                "after": app_after,
            },
            "checks": checks,
            "runs": runs,
        }));
    } else {
        println!(
            "4. webhooks: {} applied, {} duplicates absorbed by the ledger, {} not newer than the mirror (stale or unchanged) and left alone",
            count("applied"),
            count("duplicate"),
            count("stale")
        );
        println!(
            "5. reconciliation: replay of Stripe's event log, then a sweep of every kind ({reconcile_secs:.1}s)"
        );
        for (k, causes) in &by_kind_cause {
            let parts: Vec<String> = causes.iter().map(|(c, n)| format!("{n} {c}")).collect();
            println!("   {k:<40} fixed: {}", parts.join(", "));
        }
        for r in &runs {
            if r.status != RunStatus::Succeeded {
                println!(
                    "   run {} {} {}: {:?}",
                    r.provider,
                    r.kind,
                    r.status.as_str(),
                    r.error
                );
            }
        }
        println!(
            "6. your own table: {hand_edited} rows of {} edited by hand; {} rewritten by the sweeps' commits as their customers changed, {app_fixed} found and fixed by the app pass (drift cause app_drift)",
            demo_app::TABLE,
            hand_edited.saturating_sub(edited_before_pass),
        );
        println!(
            "   {}: {}/{} rows equal what the simulator's truth implies{}",
            demo_app::TABLE,
            app_after.matching,
            app_after.total,
            if app_ok { "" } else { " — NOT equal" }
        );
        for m in &app_after.sample {
            println!("   differs: {m}");
        }
        for c in &checks {
            match &c.error {
                Some(e) => println!("   check {}: FAILED: {e}", c.name),
                None => println!("   check {}: {} violations", c.name, c.violations.len()),
            }
        }
        println!(
            "7. consistency: {ok2}/{total2} objects match the simulator's truth{} ({:.1}s in all)",
            if all_ok {
                " — fully consistent"
            } else {
                " — NOT consistent"
            },
            started.elapsed().as_secs_f64()
        );
        println!(
            "   next: DATABASE_URL={url} recon drift   (and `recon runs`, `recon changes`) to look at what was found"
        );
    }
    app_db.close().await;
    state.shutdown.cancel();
    server.abort();
    sim.shutdown().await;
    Ok(if all_ok { EXIT_OK } else { EXIT_FAILED })
}
