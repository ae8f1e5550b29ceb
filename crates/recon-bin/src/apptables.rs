//! The app's own tables: `recon reconcile <provider> --app`, the app pass
//! after full sweeps, `--owner`'s refresh of the owner's app rows,
//! `recon check` and `recon changes`. Shared with `recon serve`.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use recon_core::project::{self, AppChange, ChangeRow, CheckResult};
use recon_core::{Error, RunRecord, Source, Store, StoredObject};
use serde::Serialize;
use serde_json::{Value, json};

use crate::OutputArgs;
use crate::app::{App, app_sweep_options};
use crate::output::{EXIT_FAILED, EXIT_OK, exit_for_run, print_json};

/// Violations kept per check (printed, recorded, alerted).
pub const CHECK_LIMIT: u32 = 100;

/// One projection's reconciliation: its run and what changed (or would).
#[derive(Debug, Serialize)]
pub struct AppRun {
    /// The projection.
    pub projection: String,
    /// Its app table.
    pub table: String,
    /// The run (kind `app:<projection>`).
    pub run: RunRecord,
    /// Rows changed, inserted, deleted or reported missing.
    pub changes: Vec<AppChange>,
}

/// The account recon records app runs under for a provider: the
/// configured adapter's, else `default` (an app pass needs no API key).
pub fn account_of(app: &App, provider: &str) -> String {
    app.providers
        .iter()
        .find(|p| p.name == provider)
        .map(|p| p.provider.account().to_string())
        .unwrap_or_else(|| "default".into())
}

/// Reconcile the app rows of every projection of `provider` (only those
/// that depend on `kind`, if given), one run each. A run that fails or
/// opens the breaker is returned with its status; the others still run.
pub async fn reconcile_provider(
    app: &App,
    provider: &str,
    kind: Option<&str>,
    source: Source,
    dry_run: bool,
    force: bool,
) -> recon_core::Result<Vec<AppRun>> {
    let account = account_of(app, provider);
    let opts = app_sweep_options(&app.config, &account, source, dry_run, force);
    let mut out = Vec::new();
    for p in &app.sync.projections {
        if p.provider != provider || kind.is_some_and(|k| !p.depends_on(provider, k)) {
            continue;
        }
        let (run, changes) = project::reconcile_app(app.store.as_ref(), p, &opts).await?;
        out.push(AppRun {
            projection: p.name.clone(),
            table: p.table.clone(),
            run,
            changes,
        });
    }
    Ok(out)
}

/// Run every check; with `record`, each violation is a drift record
/// (cause `check`) and a check with violations alerts.
pub async fn run_checks(app: &App, record: bool) -> recon_core::Result<Vec<CheckResult>> {
    if app.sync.checks.is_empty() {
        return Ok(Vec::new());
    }
    let results = project::run_checks(
        app.store.as_ref(),
        &app.sync.checks,
        CHECK_LIMIT,
        record,
        None,
    )
    .await?;
    if record {
        for r in &results {
            crate::alerts::check_alert(r).await;
        }
    }
    Ok(results)
}

/// The worst exit code of app runs (0 when all succeeded).
pub fn exit_for_app(runs: &[AppRun]) -> u8 {
    runs.iter()
        .map(|r| exit_for_run(&r.run))
        .max()
        .unwrap_or(EXIT_OK)
}

fn compact(v: Option<&Value>) -> String {
    match v {
        None => "∅".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 160 {
                let cut: String = s.chars().take(157).collect();
                format!("{cut}...")
            } else {
                s
            }
        }
    }
}

/// `was → now`, only the columns that differ.
pub fn was_now(was: Option<&Value>, now: Option<&Value>) -> String {
    let (b, a) = project::compact_diff(was, now);
    format!("{} → {}", compact(b.as_ref()), compact(a.as_ref()))
}

fn action_word(action: &str, dry_run: bool) -> &'static str {
    match (action, dry_run) {
        ("update", false) => "updated",
        ("update", true) => "would update",
        ("insert", false) => "inserted",
        ("insert", true) => "would insert",
        ("delete", false) => "deleted",
        ("delete", true) => "would delete",
        _ => "missing (reported)",
    }
}

/// Print app runs for people. A dry run lists every change; a real run
/// the first 20 (the rest are in `recon drift`).
pub fn print_app_runs(runs: &[AppRun], dry_run: bool) {
    for r in runs {
        let c = &r.run.counts;
        println!(
            "app {} → {}: {} — checked {}, updated {}, inserted {}, deleted {}, reported missing {}{}",
            r.projection,
            r.table,
            r.run.status.as_str(),
            c.compared,
            c.updated,
            c.inserted,
            c.deleted,
            c.missed,
            if dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        let shown = if dry_run { r.changes.len() } else { 20 };
        for ch in r.changes.iter().take(shown) {
            println!(
                "  {:<18} {}: {}",
                action_word(ch.action, dry_run),
                ch.key,
                was_now(ch.was.as_ref(), ch.now.as_ref())
            );
        }
        if r.changes.len() > shown {
            println!("  … {} more (see `recon drift`)", r.changes.len() - shown);
        }
        if let Some(e) = &r.run.error {
            println!("  why: {e}");
        }
    }
}

/// Print check results for people.
pub fn print_checks(results: &[CheckResult]) {
    if results.is_empty() {
        return;
    }
    let bad = results
        .iter()
        .filter(|r| !r.violations.is_empty() || r.error.is_some())
        .count();
    println!(
        "checks: {} run, {bad} with violations or errors",
        results.len()
    );
    for r in results {
        if let Some(e) = &r.error {
            println!("  {}: FAILED: {e}", r.name);
            continue;
        }
        if r.violations.is_empty() {
            println!("  {}: ok", r.name);
            continue;
        }
        println!(
            "  {}: {} violation{}{} — {}",
            r.name,
            r.violations.len(),
            if r.violations.len() == 1 { "" } else { "s" },
            if r.violations.len() as u32 >= CHECK_LIMIT {
                " (or more)"
            } else {
                ""
            },
            r.description
        );
        for v in &r.violations {
            println!("    {}", compact(Some(v)));
        }
    }
}

/// Whether any check found a violation or failed.
pub fn checks_failed(results: &[CheckResult]) -> bool {
    results
        .iter()
        .any(|r| !r.violations.is_empty() || r.error.is_some())
}

/// `recon reconcile <provider> --app`.
pub async fn reconcile_app_command(
    app: &App,
    provider: &str,
    dry_run: bool,
    force: bool,
    out: OutputArgs,
) -> Result<u8> {
    if crate::registry::registry().lookup(provider).is_none() {
        return Err(Error::invalid(crate::registry::registry().unknown(provider).message()).into());
    }
    if !app.sync.projections.iter().any(|p| p.provider == provider) {
        return Err(Error::config(format!(
            "no projections read {provider}: declare [[projections]] with provider = \"{provider}\" in the config file (see recon.example.toml)"
        ))
        .into());
    }
    let runs = reconcile_provider(app, provider, None, Source::OnDemand, dry_run, force).await?;
    for r in &runs {
        crate::alerts::maybe_alert(&r.run, app.config.alerts.mismatch_threshold).await;
    }
    let checks = run_checks(app, !dry_run).await?;
    let code = exit_for_app(&runs);
    if out.json {
        print_json(&json!({
            "ok": code == EXIT_OK,
            "dry_run": dry_run,
            "app": runs,
            "checks": checks,
        }));
    } else {
        print_app_runs(&runs, dry_run);
        print_checks(&checks);
    }
    Ok(code)
}

/// One app row of `--owner`: `fixed` (or `would_fix`), `missing`, or `ok`.
#[derive(Debug, Serialize)]
pub struct OwnerAppRow {
    /// `fixed`, `would_fix`, `missing` (reported, not written) or `ok`.
    pub status: &'static str,
    /// The projection.
    pub projection: String,
    /// The app table.
    pub table: String,
    /// The app key.
    pub key: String,
    /// The owned columns before (only for a change).
    pub was: Option<Value>,
    /// After.
    pub now: Option<Value>,
}

/// The app rows an owner's stored objects map to, per `(projection, key)`,
/// with their owned columns (`None`: no row). Read before `--owner`
/// reconciles, so rows that its commits fix (in their own transactions)
/// are reported with what they were.
pub type OwnerAppState = std::collections::BTreeMap<(String, String), Option<Value>>;

/// Read [`OwnerAppState`] now.
pub async fn owner_app_state(
    app: &App,
    provider: &str,
    owner: &str,
) -> recon_core::Result<OwnerAppState> {
    let mut out = OwnerAppState::new();
    if !app.sync.projections.iter().any(|p| p.provider == provider) {
        return Ok(out);
    }
    let account = account_of(app, provider);
    let objects: Vec<StoredObject> = app.store.owned_by(provider, &account, owner).await?;
    let mut tx = app.store.begin().await?;
    for p in &app.sync.projections {
        let mut keys: Vec<String> = objects
            .iter()
            .filter(|o| p.depends_on(&o.snapshot.key.provider, &o.snapshot.key.kind))
            .flat_map(|o| p.keys_of(&o.snapshot, None))
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            continue;
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let current: std::collections::HashMap<String, Value> = tx
            .app_current(&p.app_table(), recon_core::store::KeySel::Keys(&refs))
            .await?
            .into_iter()
            .collect();
        for k in keys {
            let v = current.get(&k).cloned();
            out.insert((p.name.clone(), k), v);
        }
    }
    drop(tx);
    Ok(out)
}

/// After `--owner`: recompute the app rows the owner's stored objects map
/// to and repair those that differ. Every affected row is listed: `fixed`
/// (by the reconcile's own commits, or by this refresh) with was/now,
/// `ok` when it already matched.
pub async fn refresh_owner(
    app: &App,
    provider: &str,
    owner: &str,
    dry_run: bool,
    before: &OwnerAppState,
) -> recon_core::Result<Vec<OwnerAppRow>> {
    if !app.sync.projections.iter().any(|p| p.provider == provider) {
        return Ok(Vec::new());
    }
    let account = account_of(app, provider);
    let objects: Vec<StoredObject> = app.store.owned_by(provider, &account, owner).await?;
    let opts = app_sweep_options(&app.config, &account, Source::OnDemand, dry_run, false);
    let changed = project::refresh_objects(app.store.as_ref(), &objects, &opts).await?;
    let after = owner_app_state(app, provider, owner).await?;
    let mut rows: Vec<OwnerAppRow> = changed
        .iter()
        .map(|c| OwnerAppRow {
            status: match (c.action, dry_run) {
                ("missing", _) => "missing",
                (_, true) => "would_fix",
                (_, false) => "fixed",
            },
            projection: c.projection.clone(),
            table: c.table.clone(),
            key: c.key.clone(),
            was: before
                .get(&(c.projection.clone(), c.key.clone()))
                .cloned()
                .flatten()
                .or_else(|| c.was.clone()),
            now: c.now.clone(),
        })
        .collect();
    let mut keys: Vec<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if changed.iter().any(|c| c.projection == k.0 && c.key == k.1) {
            continue;
        }
        let Some(p) = app.sync.projections.iter().find(|p| p.name == k.0) else {
            continue;
        };
        let was = before.get(k).cloned().flatten();
        let now = after.get(k).cloned().flatten();
        // The reconcile's commits projected the fetched state in their own
        // transactions: a row that differs from before was fixed by them.
        let status = match (&was, &now) {
            (Some(w), Some(n)) if !project::same_value(w, n) => "fixed",
            (None, Some(_)) => "fixed",
            (Some(_), None) => "fixed",
            _ => "ok",
        };
        rows.push(OwnerAppRow {
            status,
            projection: p.name.clone(),
            table: p.table.clone(),
            key: k.1.clone(),
            was,
            now,
        });
    }
    Ok(rows)
}

/// Print `--owner`'s app rows for people.
pub fn print_owner_rows(rows: &[OwnerAppRow]) {
    for r in rows {
        let what = format!("app {} {}", r.table, r.key);
        if r.status == "ok" {
            println!("{:<16} {what}", "ok");
        } else {
            println!(
                "{:<16} {what}: {}",
                r.status,
                was_now(r.was.as_ref(), r.now.as_ref())
            );
        }
    }
}

/// `recon check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also report app rows not verified for longer than this (e.g. 24h):
    /// their provider object not confirmed by a webhook, fetch or sweep,
    /// or no app pass of their projection that long. For every projection;
    /// overrides the projections' `stale_after`.
    #[arg(long, value_name = "DURATION", value_parser = parse_stale)]
    pub stale: Option<Duration>,
    #[command(flatten)]
    pub out: OutputArgs,
}

fn parse_stale(s: &str) -> std::result::Result<Duration, String> {
    crate::config::at_least_a_minute(s)
        .ok_or_else(|| "a duration of at least 1m, like 24h or 30m".into())
}

/// `recon check`: run every declared and built-in check, record each
/// violation (cause `check`), exit 1 if any.
pub async fn check(config: Option<&Path>, a: CheckArgs) -> Result<u8> {
    let mut app = crate::commands::ready_app(config, true).await?;
    if let Some(stale) = a.stale {
        if app.sync.projections.is_empty() {
            return Err(Error::invalid(
                "--stale checks app rows, and no [[projections]] are configured (see recon.example.toml)",
            )
            .into());
        }
        let mut sync = (*app.sync).clone();
        for p in &app.sync.projections {
            let c = project::stale_check(p, stale);
            sync.checks.retain(|k| k.name != c.name);
            sync.checks.push(c);
        }
        app.sync = std::sync::Arc::new(sync);
    }
    if app.sync.checks.is_empty() {
        let msg = "no checks configured: declare [[checks]], set [link] enabled = true or a projection's stale_after in the config file, or pass --stale (see recon.example.toml)";
        if a.out.json {
            print_json(&json!({ "ok": true, "checks": [], "note": msg }));
        } else {
            println!("{msg}");
        }
        return Ok(EXIT_OK);
    }
    let results = run_checks(&app, true).await?;
    let failed = checks_failed(&results);
    if a.out.json {
        print_json(&json!({ "ok": !failed, "checks": results }));
    } else {
        print_checks(&results);
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// `recon changes`.
#[derive(Args, Debug)]
pub struct ChangesArgs {
    /// Only changes after this sequence number (the last one your app
    /// handled). Default: from the oldest one kept.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub since: i64,
    /// Keep reading: print new changes as they are recorded, until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// At most this many changes (per poll with --follow).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// One line about a change.
pub fn change_line(c: &ChangeRow) -> String {
    let when = chrono::DateTime::from_timestamp_millis(c.at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into());
    let subject = match (&c.app_table, &c.app_key) {
        (Some(t), Some(k)) => format!("{t}[{k}] ({})", c.kind),
        _ => format!("{}/{}/{}", c.provider, c.kind, c.object_id),
    };
    format!(
        "{:>8}  {when}  {:<12}  {subject}  {} → {}",
        c.seq,
        c.cause,
        compact(c.before.as_ref()),
        compact(c.after.as_ref())
    )
}

/// `recon changes`: read the change feed; `--follow` polls every 500 ms.
pub async fn changes(config: Option<&Path>, a: ChangesArgs) -> Result<u8> {
    if a.limit == 0 {
        return Err(Error::invalid("--limit must be at least 1").into());
    }
    let config = crate::config::Config::load(config)?;
    if !config.changes.enabled {
        return Err(Error::invalid(
            "the change feed is off: set [changes] enabled = true in the config file to record and read changes (see recon.example.toml)",
        )
        .into());
    }
    let store = crate::app::open_store(&config).await?;
    store.check_ready().await?;
    if !a.follow {
        let rows = store.changes(a.since, a.limit).await?;
        let next = rows.last().map(|r| r.seq).unwrap_or(a.since);
        if a.out.json {
            print_json(&json!({ "ok": true, "changes": rows, "next_since": next }));
        } else if rows.is_empty() {
            println!("no changes after {}", a.since);
        } else {
            for r in &rows {
                println!("{}", change_line(r));
            }
            if rows.len() as u32 == a.limit {
                println!("… more: recon changes --since {next}");
            }
        }
        return Ok(EXIT_OK);
    }
    follow(store.as_ref(), a.since, a.limit, a.out.json).await
}

async fn follow(store: &dyn Store, since: i64, limit: u32, json: bool) -> Result<u8> {
    let mut last = since;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let rows = store.changes(last, limit).await?;
        for r in &rows {
            if json {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            } else {
                println!("{}", change_line(r));
            }
            last = last.max(r.seq);
        }
        if rows.len() as u32 == limit {
            continue;
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(EXIT_OK),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_line_names_the_app_row_or_the_object() {
        let mut c = ChangeRow {
            seq: 42,
            provider: "stripe".into(),
            account: "default".into(),
            kind: "billing".into(),
            object_id: "cus_1".into(),
            app_table: Some("users".into()),
            app_key: Some("cus_1".into()),
            cause: "app_drift".into(),
            before: Some(json!({"plan": "free"})),
            after: Some(json!({"plan": "pro"})),
            at: 0,
        };
        let l = change_line(&c);
        assert!(l.contains("users[cus_1] (billing)"), "{l}");
        assert!(l.contains(r#"{"plan":"free"} → {"plan":"pro"}"#), "{l}");
        assert!(l.trim_start().starts_with("42"), "{l}");
        c.app_table = None;
        c.app_key = None;
        c.kind = "customers".into();
        c.before = None;
        let l = change_line(&c);
        assert!(l.contains("stripe/customers/cus_1"), "{l}");
        assert!(l.contains("∅ →"), "{l}");
    }

    #[test]
    fn was_now_shows_only_what_differs() {
        let s = was_now(
            Some(&json!({"status": "canceled", "plan": "pro"})),
            Some(&json!({"status": "active", "plan": "pro"})),
        );
        assert_eq!(s, r#"{"status":"canceled"} → {"status":"active"}"#);
        assert_eq!(was_now(None, Some(&json!({"a": 1}))), r#"∅ → {"a":1}"#);
    }
}
