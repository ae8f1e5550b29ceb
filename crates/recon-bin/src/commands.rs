//! The one-shot commands: migrate, reconcile, replay, drift, runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use recon_core::diagnostics::{self, Scope};
use recon_core::store::DriftQuery;
use recon_core::{OneOutcome, Progress, RunStatus, SweepOptions};
use serde_json::{Value, json};

use crate::OutputArgs;
use crate::app::{App, open_store};
use crate::config::{Config, parse_since};
use crate::output::{self, EXIT_OK, exit_for_run, print_json};
use crate::progress::Bar;
use crate::resume::Start;

/// A provider argument: a registered name, else a usage error (exit 2)
/// naming the known ones, before anything is opened.
fn registered_provider(name: &str) -> recon_core::Result<()> {
    match crate::registry::registry().lookup(name) {
        Some(_) => Ok(()),
        None => Err(recon_core::Error::invalid(
            crate::registry::registry().unknown(name).message(),
        )),
    }
}

/// `recon reconcile`.
#[derive(Args, Debug)]
pub struct ReconcileArgs {
    /// A provider this binary knows (`recon --help` lists them).
    pub provider: String,
    /// Sweep only this kind (`recon --help` lists each provider's kinds).
    #[arg(long, conflicts_with_all = ["id", "owner"])]
    pub kind: Option<String>,
    /// Reconcile one object by id.
    #[arg(long, conflicts_with = "owner")]
    pub id: Option<String>,
    /// Reconcile everything one customer or user owns.
    #[arg(long)]
    pub owner: Option<String>,
    /// Compare and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even if the circuit breaker would stop the sweep.
    #[arg(long)]
    pub force: bool,
    /// Reconcile the app's own tables only: compare every projected column
    /// of the provider's [[projections]] with the mirror and repair the
    /// differences, then run the checks.
    #[arg(long, conflicts_with_all = ["kind", "id", "owner"])]
    pub app: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `recon replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A provider with an event log, e.g. `stripe` (Clerk has none: use
    /// `recon reconcile clerk`).
    pub provider: String,
    /// From when: a duration ago (`24h`, `30m`) or an RFC 3339 time.
    /// Default: the stored event cursor (where the last replay stopped).
    #[arg(long)]
    pub since: Option<String>,
    /// Compare and report; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `recon drift`.
#[derive(Args, Debug)]
pub struct DriftArgs {
    /// Objects not confirmed for longer than this are stale.
    #[arg(long, default_value = "24h")]
    pub stale: String,
    /// At most this many rows per section (drift records: the newest).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only the drift one run found (its id, from `recon runs`).
    #[arg(long, value_name = "RUN_ID")]
    pub run: Option<String>,
    /// Only drift of this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only drift detected within this long (`24h`, `7d`); default: all.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Changed fields shown per record (the rest are counted).
    #[arg(long, default_value_t = 8)]
    pub fields: usize,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `recon runs`.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `recon demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Customers (and as many users) the simulator starts with.
    #[arg(long, default_value_t = 2000)]
    pub size: usize,
    /// Random mutations applied while webhooks are delivered.
    #[arg(long, default_value_t = 6000)]
    pub mutations: usize,
    /// Seed: the same seed gives the same run.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of webhooks dropped.
    #[arg(long, default_value_t = 0.2)]
    pub drop: f64,
    /// Share of webhooks delivered twice.
    #[arg(long, default_value_t = 0.1)]
    pub duplicate: f64,
    /// Share of API calls answered 429.
    #[arg(long, default_value_t = 0.05)]
    pub rate_limited: f64,
    /// Share of API calls answered 5xx.
    #[arg(long, default_value_t = 0.02)]
    pub server_errors: f64,
    /// Database for the demo (default: a temporary SQLite file).
    #[arg(long)]
    pub database_url: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `recon migrate`.
pub async fn migrate(config: Option<&Path>, out: OutputArgs) -> Result<u8> {
    let config = Config::load(config)?;
    let store = open_store(&config).await?;
    store.migrate().await?;
    store.check_ready().await?;
    if out.json {
        print_json(&json!({ "ok": true, "backend": store.backend() }));
    } else {
        println!("migrated: the {} store is ready", store.backend());
    }
    Ok(EXIT_OK)
}

/// Load the configuration, open the store and the providers. With
/// `writes`, the projections and checks are verified against the database
/// first (a configuration error, exit 2, naming the projection).
pub(crate) async fn ready_app(config: Option<&Path>, writes: bool) -> Result<App> {
    let config = Config::load(config)?;
    let app = App::open(config).await?;
    app.store.check_ready().await?;
    if writes {
        crate::app::verify_app_sync(app.store.as_ref(), &app.sync).await?;
    }
    Ok(app)
}

fn outcome_line(o: &OneOutcome) -> String {
    match o {
        OneOutcome::Fixed { key, was, .. } => format!(
            "fixed            {} {} ({})",
            key.kind,
            key.id,
            if was.is_some() {
                "was different"
            } else {
                "was missing"
            }
        ),
        OneOutcome::AlreadySynced { key } => format!("already_synced   {} {}", key.kind, key.id),
        OneOutcome::Deleted { key, was_live } => format!(
            "deleted          {} {}{}",
            key.kind,
            key.id,
            if *was_live {
                " (mirror had it live)"
            } else {
                ""
            }
        ),
        OneOutcome::NotFound { key } => format!("not_found        {} {}", key.kind, key.id),
    }
}

/// `recon reconcile`.
pub async fn reconcile(config: Option<&Path>, a: ReconcileArgs) -> Result<u8> {
    registered_provider(&a.provider)?;
    let app = ready_app(config, true).await?;
    if a.app {
        return crate::apptables::reconcile_app_command(
            &app,
            &a.provider,
            a.dry_run,
            a.force,
            a.out,
        )
        .await;
    }
    let entry = app.provider(&a.provider)?;
    let threshold = app.config.alerts.mismatch_threshold;
    if let Some(id) = &a.id {
        let o = entry.engine.reconcile_one(None, id, a.dry_run).await?;
        if a.out.json {
            print_json(&json!({ "ok": true, "dry_run": a.dry_run, "results": [o] }));
        } else {
            println!("{}", outcome_line(&o));
        }
        return Ok(EXIT_OK);
    }
    if let Some(owner) = &a.owner {
        let before = crate::apptables::owner_app_state(&app, entry.name, owner).await?;
        let all = entry.engine.reconcile_owner(owner, a.dry_run).await?;
        let summary = recon_core::engine::summarize(&all);
        let app_rows =
            crate::apptables::refresh_owner(&app, entry.name, owner, a.dry_run, &before).await?;
        if a.out.json {
            print_json(
                &json!({ "ok": true, "dry_run": a.dry_run, "summary": summary, "results": all, "app": app_rows }),
            );
        } else {
            for o in &all {
                println!("{}", outcome_line(o));
            }
            println!("{} objects: {summary:?}", all.len());
            crate::apptables::print_owner_rows(&app_rows);
        }
        return Ok(EXIT_OK);
    }
    let kinds: Vec<String> = match &a.kind {
        Some(k) => vec![k.clone()],
        None => entry
            .provider
            .kinds()
            .iter()
            .map(|k| k.to_string())
            .collect(),
    };
    let mut runs = Vec::new();
    let mut code = EXIT_OK;
    for kind in kinds {
        let progress = Arc::new(Progress::default());
        let opts = SweepOptions {
            dry_run: a.dry_run,
            force: a.force,
            progress: Some(progress.clone()),
            ..SweepOptions::default()
        };
        let cancel = opts.cancel.clone();
        let ctrl_c = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
        let bar = Bar::start(
            &format!("{} {kind}", a.provider),
            a.out.json,
            &progress,
            &entry.stats,
        );
        let run = entry.engine.sweep(&kind, &opts).await;
        bar.finish();
        ctrl_c.abort();
        let run = run?;
        crate::alerts::maybe_alert(&run, threshold).await;
        if !a.out.json {
            println!("{}", output::run_summary(&run));
        }
        let c = exit_for_run(&run);
        let stop = run.status != RunStatus::Succeeded;
        runs.push(run);
        if stop {
            code = c;
            break;
        }
    }
    // A full sweep ends with the app's tables and the checks.
    let mut app_runs = Vec::new();
    let mut checks = Vec::new();
    if a.kind.is_none() && code == EXIT_OK {
        app_runs = crate::apptables::reconcile_provider(
            &app,
            entry.name,
            None,
            recon_core::Source::OnDemand,
            a.dry_run,
            a.force,
        )
        .await?;
        for r in &app_runs {
            crate::alerts::maybe_alert(&r.run, threshold).await;
        }
        checks = crate::apptables::run_checks(&app, !a.dry_run).await?;
        code = crate::apptables::exit_for_app(&app_runs);
        if !a.out.json {
            crate::apptables::print_app_runs(&app_runs, a.dry_run);
            crate::apptables::print_checks(&checks);
        }
    }
    if a.out.json {
        let mut drift = Vec::new();
        for r in &runs {
            drift.extend(
                app.store
                    .drift(&DriftQuery {
                        run_id: Some(r.id.clone()),
                        limit: 1000,
                        ..DriftQuery::default()
                    })
                    .await?,
            );
        }
        print_json(
            &json!({ "ok": code == EXIT_OK, "runs": runs, "drift": drift, "app": app_runs, "checks": checks }),
        );
    }
    Ok(code)
}

/// `recon replay`.
///
/// Without `--since` it resumes from the event cursor; without a cursor it
/// is a usage error (exit 2). A cursor beyond the provider's event horizon
/// replays what is reachable, alerts, and exits 1: `recon reconcile` is
/// needed to repair what the lost events changed.
pub async fn replay(config: Option<&Path>, a: ReplayArgs) -> Result<u8> {
    registered_provider(&a.provider)?;
    let explicit = match &a.since {
        Some(s) => Some(parse_since(s).map_err(|e| recon_core::Error::invalid(e.to_string()))?),
        None => None,
    };
    let app = ready_app(config, true).await?;
    let entry = app.provider(&a.provider)?;
    let per_s = crate::resume::per_second(entry);
    let mut start = None;
    let since = match explicit {
        // `--since` is seconds; the engine takes the provider's unit.
        Some(s) => crate::resume::since_in_units(entry, s)?,
        // No event log: the engine refuses with its own explanation.
        None if !entry.provider.capabilities().event_log => 0,
        None => {
            let s = crate::resume::plan(entry, app.store.as_ref(), None)
                .await?
                .ok_or_else(|| {
                    recon_core::Error::invalid(format!(
                        "no event cursor for {p} yet (no replay has run), so there is nothing to resume from: pass --since, e.g. `recon replay {p} --since 24h`",
                        p = a.provider
                    ))
                })?;
            start = Some(s);
            s.since
        }
    };
    let gap = start.and_then(|s| s.gap);
    let repair = format!("run `recon reconcile {}` to repair the mirror", a.provider);
    if let Some(g) = &gap {
        crate::alerts::replay_gap(entry.name, g, &repair).await;
    } else if let Some(Start {
        cursor: Some(c), ..
    }) = start
        && !a.out.json
    {
        println!(
            "{}: resuming from the event cursor ({})",
            a.provider,
            crate::resume::when(c, per_s)
        );
    }
    let progress = Arc::new(Progress::default());
    let opts = SweepOptions {
        dry_run: a.dry_run,
        progress: Some(progress.clone()),
        ..SweepOptions::default()
    };
    let bar = Bar::start(
        &format!("{} events", a.provider),
        a.out.json,
        &progress,
        &entry.stats,
    );
    let run = crate::resume::replay(entry, app.store.as_ref(), since, &opts).await;
    bar.finish();
    let run = run?;
    crate::alerts::maybe_alert(&run, app.config.alerts.mismatch_threshold).await;
    let ok = run.status == RunStatus::Succeeded && gap.is_none();
    if a.out.json {
        print_json(&json!({
            "ok": ok,
            "run": run,
            "since": since,
            "resumed_from_cursor": start.and_then(|s| s.cursor),
            // `since`, the cursor and the gap are in the provider's unit.
            "version_units_per_second": per_s,
            "gap": gap,
            "next": gap.map(|_| format!("recon reconcile {}", a.provider)),
        }));
    } else {
        println!("{}", output::run_summary(&run));
    }
    if let Some(g) = &gap {
        eprintln!(
            "warning: {p}'s event log no longer reaches back to where replays had read ({}); events from then until {} were not replayed: {repair}",
            crate::resume::when(g.since, g.per_s),
            crate::resume::when(g.until, g.per_s),
            p = a.provider,
        );
        if run.status == RunStatus::Succeeded {
            return Ok(output::EXIT_FAILED);
        }
    }
    Ok(exit_for_run(&run))
}

/// `recon drift`.
pub async fn drift(config: Option<&Path>, a: DriftArgs) -> Result<u8> {
    let stale = duration_arg("--stale", &a.stale)?;
    let since = match &a.since {
        Some(s) => {
            let ms = i64::try_from(duration_arg("--since", s)?.as_millis()).unwrap_or(i64::MAX);
            Some(recon_core::now_ms().saturating_sub(ms))
        }
        None => None,
    };
    let app = ready_app(config, false).await?;
    let scopes: Vec<Scope<'_>> = app
        .providers
        .iter()
        .map(|p| Scope {
            provider: p.name,
            account: p.provider.account(),
            references: p.references,
        })
        .collect();
    let report = diagnostics::report(
        app.store.as_ref(),
        &scopes,
        stale.as_millis() as i64,
        a.limit,
    )
    .await?;
    let query = DriftQuery {
        provider: a.provider.clone(),
        run_id: a.run.clone(),
        since,
        limit: a.limit,
    };
    let groups = app.store.drift_counts(&query).await?;
    // Drift of a provider this binary was built without, or of the checks
    // (`check`), is still drift: only a name nothing ever recorded is a
    // mistake worth an error.
    if let Some(p) = &a.provider {
        let registry = crate::registry::registry();
        if groups.is_empty() && p != "check" && registry.lookup(p).is_none() {
            return Err(registry.unknown(p).into());
        }
    }
    let recent = app.store.drift(&query).await?;
    let changes: Vec<_> = recent
        .iter()
        .map(|d| recon_core::diff::changed_fields(d.before.as_ref(), d.after.as_ref()))
        .collect();
    if a.out.json {
        let recent: Vec<Value> = recent
            .iter()
            .zip(&changes)
            .map(|(d, c)| {
                let mut v = json!(d);
                v["changes"] = json!(c);
                v
            })
            .collect();
        print_json(&json!({
            "ok": true, "stale": report.stale, "dangling": report.dangling,
            "drift_groups": groups, "recent_drift": recent,
            "unhealthy_runs": report.unhealthy_runs
        }));
        return Ok(EXIT_OK);
    }
    println!(
        "Stale (not confirmed for {}): {}",
        a.stale,
        report.stale.len()
    );
    for s in &report.stale {
        println!("  {} {} {}", s.provider, s.kind, s.id);
    }
    println!("Inconsistent references: {}", report.dangling.len());
    for d in &report.dangling {
        println!(
            "  {} {} {} ({}) → owner {} is {}",
            d.provider,
            d.kind,
            d.id,
            d.status.as_deref().unwrap_or("-"),
            d.owner,
            d.problem
        );
    }
    let total: u64 = groups.iter().map(|g| g.count).sum();
    let mut scope = String::new();
    if let Some(p) = &a.provider {
        scope.push_str(&format!(" of {p}"));
    }
    if let Some(run) = &a.run {
        scope.push_str(&format!(" found by run {run}"));
    }
    if let Some(s) = &a.since {
        scope.push_str(&format!(" in the last {s}"));
    }
    println!("Drift{scope}: {total} records");
    for g in &groups {
        println!(
            "  {:>7}  {} {} {}",
            g.count,
            g.provider,
            g.kind,
            g.cause.as_str()
        );
    }
    if !recent.is_empty() {
        println!("Newest {} of them:", recent.len());
    }
    for (d, fields) in recent.iter().zip(&changes) {
        println!(
            "  {} {} {} {} via {}{}",
            d.key.provider,
            d.key.kind,
            d.key.id,
            d.cause.as_str(),
            d.source.as_str(),
            d.run_id
                .as_deref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default()
        );
        // A check violation says what it found; an endpoint finding, what
        // is wrong with the endpoint; an app row inserted,
        // deleted or reported missing, what it held; the others, what
        // changed.
        if d.cause == recon_core::DriftCause::Check {
            let found = d.after.as_ref().map(|v| v.to_string()).unwrap_or_default();
            println!("      {found}");
        } else if d.cause == recon_core::DriftCause::Endpoint {
            let message = d.after.as_ref().and_then(|v| v["message"].as_str());
            println!("      {}", message.unwrap_or("(no message)"));
        } else if d.cause == recon_core::DriftCause::AppDrift && fields.is_empty() {
            let was_now = crate::apptables::was_now(d.before.as_ref(), d.after.as_ref());
            println!("      {was_now}");
        }
        for f in fields.iter().take(a.fields) {
            println!("      {f}");
        }
        if fields.len() > a.fields {
            println!("      (+{} more fields)", fields.len() - a.fields);
        }
    }
    if report.unhealthy_runs > 0 {
        println!(
            "{} recent runs did not succeed: see `recon runs`",
            report.unhealthy_runs
        );
    }
    Ok(EXIT_OK)
}

/// A command-line duration (`24h`, `30m`), or an error naming the flag.
fn duration_arg(flag: &str, value: &str) -> Result<std::time::Duration> {
    humantime::parse_duration(value).map_err(|_| {
        recon_core::Error::invalid(format!("{flag} {value:?}: expected a duration like 24h")).into()
    })
}

/// `recon runs`.
pub async fn runs(config: Option<&Path>, a: RunsArgs) -> Result<u8> {
    let config = Config::load(config)?;
    let store = open_store(&config).await?;
    store.check_ready().await?;
    let runs = store.runs(a.limit).await?;
    if a.out.json {
        print_json(&json!({ "ok": true, "runs": runs }));
    } else if runs.is_empty() {
        println!("no runs yet: try `recon reconcile stripe --dry-run`");
    } else {
        println!("{}", output::runs_table(&runs));
    }
    Ok(EXIT_OK)
}

/// `recon demo`.
pub async fn demo(a: DemoArgs) -> Result<u8> {
    #[cfg(feature = "demo")]
    return crate::demo::run(a).await;
    #[cfg(not(feature = "demo"))]
    {
        let _ = a;
        Err(recon_core::Error::config(
            "this binary was built without `recon demo` (a production build): \
             build with the `demo` feature (`cargo build -p recon-bin --features demo`), \
             or install the default build",
        )
        .into())
    }
}
