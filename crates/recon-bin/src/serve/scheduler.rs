//! The scheduler of `recon serve`: one cron expression per provider and
//! kind (plus `replay` for providers with an event log).
//!
//! Several replicas may share one database: each tick of each job is claimed
//! through the store ([`recon_core::Store::claim`], an atomic compare-and-set),
//! so exactly one replica runs it. A replica that dies simply stops claiming;
//! the others take the next tick.
//!
//! Replays resume from the stored event cursor, however long ago the last
//! one ran; only while no cursor exists do they start `replay_window` ago
//! (at start: from the last heartbeat, or `server.startup_replay` ago). When
//! the cursor has fallen beyond the provider's event log (Stripe: 30 days),
//! the replay starts at the oldest reachable point, an alert is raised and
//! full sweeps of every kind are requested.
//!
//! With `RECON_PUBLIC_URL` set, the providers' webhook endpoints are checked
//! at start and daily ([`ENDPOINTS_CRON`]): findings are drift, alerted and
//! counted like a check's (`crate::endpoints`).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use croner::Cron;
use recon_core::store::Cursor;
use recon_core::{RunStatus, SweepOptions};

use super::Shared;

/// Parse a cron expression (seconds optional).
pub fn parse_cron(expr: &str) -> Result<Cron> {
    Cron::from_str(expr).map_err(|e| anyhow::anyhow!("{e}"))
}

/// When the daily check of the webhook endpoints runs (UTC).
pub const ENDPOINTS_CRON: &str = "0 50 4 * * *";

#[derive(Debug, Clone)]
enum Action {
    Sweep(String),
    /// Replay from the event cursor; without one, from this long ago.
    Replay(Duration),
    /// Check every readable provider's webhook endpoints.
    Endpoints,
}

#[derive(Debug, Clone)]
struct Job {
    name: String,
    provider: String,
    action: Action,
    cron: Cron,
}

fn jobs(state: &Shared) -> Vec<Job> {
    let mut out = Vec::new();
    for p in &state.app.providers {
        let caps = p.provider.capabilities();
        for (job, expr) in state.app.config.schedule(p.name) {
            let Ok(cron) = parse_cron(&expr) else {
                continue;
            };
            let action = if job == "replay" {
                if !caps.event_log {
                    continue;
                }
                let window = state
                    .app
                    .config
                    .provider(p.name)
                    .replay_window
                    .as_deref()
                    .and_then(|w| humantime::parse_duration(w).ok())
                    .unwrap_or(Duration::from_secs(1800));
                Action::Replay(window)
            } else if p.provider.kinds().contains(&job.as_str()) {
                Action::Sweep(job.clone())
            } else {
                tracing::warn!(provider = p.name, job = %job, "schedule names an unknown kind; ignored");
                continue;
            };
            out.push(Job {
                name: format!("{}:{job}", p.name),
                provider: p.name.to_string(),
                action,
                cron,
            });
        }
    }
    if crate::endpoints::scheduled(&state.app)
        && let Ok(cron) = parse_cron(ENDPOINTS_CRON)
    {
        out.push(Job {
            name: "endpoints".into(),
            provider: String::new(),
            action: Action::Endpoints,
            cron,
        });
    }
    out
}

/// Check the webhook endpoints of every provider whose endpoints can be
/// read: findings are recorded as drift and alerted; `/metrics` counts them
/// as check `endpoints:<provider>`. A provider that cannot be read (or a
/// bad `RECON_PUBLIC_URL`) is a warning, never a stop.
async fn check_endpoints(state: &Shared) {
    let public = match crate::endpoints::public_url() {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "webhook endpoints not checked");
            return;
        }
    };
    for p in &state.app.providers {
        if !crate::endpoints::readable(p.name) {
            continue;
        }
        let source = recon_core::Source::Sweep;
        match crate::endpoints::check_and_record(&state.app, p.name, &public, source).await {
            Ok(c) => {
                let findings = c.findings();
                if findings.is_empty() {
                    tracing::info!(provider = p.name, url = %c.expected_url, "webhook endpoint checked: all is well");
                }
                for f in findings {
                    tracing::warn!(provider = p.name, finding = %f.code, "{}", f.message);
                }
                if let Some(r) = c.as_check_result() {
                    state.metrics.check(&r);
                }
            }
            Err(e) => {
                tracing::warn!(provider = p.name, error = %e, "webhook endpoints could not be checked")
            }
        }
    }
}

async fn execute(state: &Shared, provider: &str, action: &Action) {
    if let Action::Endpoints = action {
        return check_endpoints(state).await;
    }
    let Ok(entry) = state.app.provider(provider) else {
        return;
    };
    let opts = SweepOptions {
        cancel: state.shutdown.child_token(),
        // Scheduled replays leave events still in flight for the next one,
        // so missed webhooks are told from late ones.
        hold_back_in_flight: true,
        ..SweepOptions::default()
    };
    let result = match action {
        Action::Sweep(kind) => entry.engine.sweep(kind, &opts).await,
        Action::Replay(window) => replay(state, entry, *window, &opts).await,
        Action::Endpoints => return,
    };
    match result {
        Ok(run) => {
            state.after_run(&run).await;
            // The app's tables follow a successful sweep of a kind they read.
            if let Action::Sweep(kind) = action
                && run.status == RunStatus::Succeeded
            {
                state.after_sweep_app(provider, kind).await;
            }
        }
        Err(e) => tracing::error!(provider, error = %e, "scheduled job could not run"),
    }
}

/// A scheduled replay: from the cursor (or `fallback` ago without one),
/// with the gap alert and sweeps when the cursor is beyond the horizon.
async fn replay(
    state: &Shared,
    entry: &crate::app::ProviderEntry,
    fallback: Duration,
    opts: &SweepOptions,
) -> recon_core::Result<recon_core::RunRecord> {
    let store = state.app.store.as_ref();
    let per_s = crate::resume::per_second(entry);
    let fallback = entry.provider.version_now() - fallback.as_secs() as i64 * per_s;
    let start = crate::resume::plan(entry, store, Some(fallback))
        .await?
        .ok_or_else(|| recon_core::Error::invalid("no start for the replay"))?;
    match (start.cursor, &start.gap) {
        (_, Some(gap)) => {
            state
                .replay_gap(entry.name, entry.provider.kinds(), gap)
                .await
        }
        (Some(c), None) => {
            tracing::debug!(
                provider = entry.name,
                cursor = c,
                since = start.since,
                "replay resumes from the event cursor"
            )
        }
        (None, None) => tracing::info!(
            provider = entry.name,
            since = start.since,
            "no event cursor yet: replaying the fallback window"
        ),
    }
    let r = crate::resume::replay(entry, store, start.since, opts).await;
    if let Ok(run) = &r
        && run.status == RunStatus::Succeeded
        && let Ok(Some(c)) = entry.engine.event_cursor().await
    {
        state
            .metrics
            .event_lag(entry.name, Utc::now().timestamp() - c.div_euclid(per_s));
    }
    r
}

async fn heartbeat(state: &Shared) {
    let c = Cursor {
        provider: "recon".into(),
        account: "default".into(),
        name: "serve:heartbeat".into(),
        value: Utc::now().timestamp(),
        updated_at: recon_core::now_ms(),
    };
    let batch = recon_core::commit::Batch {
        cursors: vec![c],
        ..Default::default()
    };
    if let Err(e) = recon_core::commit::commit(state.app.store.as_ref(), &batch, false).await {
        tracing::warn!(error = %e, "heartbeat not written");
    }
}

async fn startup_replay(state: &Shared) {
    let last = state
        .app
        .store
        .cursor("recon", "default", "serve:heartbeat")
        .await
        .ok()
        .flatten()
        .map(|c| c.value);
    let fallback = humantime::parse_duration(&state.app.config.server.startup_replay)
        .unwrap_or(Duration::from_secs(3600));
    // Without an event cursor, replay from a little before the last
    // heartbeat: the downtime window. With one, the replay resumes from it.
    let since = last
        .map(|t| t - 120)
        .unwrap_or_else(|| Utc::now().timestamp() - fallback.as_secs() as i64);
    for p in &state.app.providers {
        if !p.provider.capabilities().event_log {
            continue;
        }
        tracing::info!(
            provider = p.name,
            "replaying what happened while recon was down"
        );
        execute(
            state,
            p.name,
            &Action::Replay(Duration::from_secs(
                (Utc::now().timestamp() - since).max(0) as u64
            )),
        )
        .await;
    }
}

/// Run the scheduler until shutdown. `requests` carries event-triggered
/// sweeps (provider, kind).
pub async fn run(
    state: Shared,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    startup_replay(&state).await;
    let mut tasks = tokio::task::JoinSet::new();
    // The webhook endpoints, checked at start (and daily by their job).
    // Claimed per hour: replicas starting together (a rolling deploy, a
    // crash loop) check once, not once each.
    if crate::endpoints::scheduled(&state.app) {
        let state = state.clone();
        tasks.spawn(async move {
            let hour = Utc::now().timestamp() / 3600 * 3600;
            match state.app.store.claim("endpoints:start", hour).await {
                Ok(true) => check_endpoints(&state).await,
                Ok(false) => tracing::info!(
                    "webhook endpoints not checked at start: the check ran on another replica this hour"
                ),
                Err(e) => tracing::warn!(error = %e, "could not claim the start-up endpoint check"),
            }
        });
    }
    for job in jobs(&state) {
        let state = state.clone();
        tracing::info!(job = %job.name, cron = %job.cron.pattern.to_string(), "scheduled");
        tasks.spawn(async move {
            loop {
                let now = Utc::now();
                let Ok(next) = job.cron.find_next_occurrence(&now, false) else {
                    return;
                };
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match state.app.store.claim(&job.name, next.timestamp()).await {
                    Ok(true) => execute(&state, &job.provider, &job.action).await,
                    Ok(false) => tracing::debug!(job = %job.name, "another replica took this tick"),
                    Err(e) => {
                        tracing::error!(job = %job.name, error = %e, "could not claim the tick")
                    }
                }
            }
        });
    }
    // Owed fetches (ties whose fetch failed, undelivered events' objects)
    // are worked through within seconds, and again after a restart: the
    // queue is in the store.
    let settle_state = state.clone();
    tasks.spawn(async move {
        let every = settle_state.app.config.engine.settle_every();
        loop {
            for p in &settle_state.app.providers {
                match p.engine.settle_pending().await {
                    Ok(r) if r.settled + r.pending > 0 => {
                        tracing::info!(provider = p.name, settled = r.settled, changed = r.changed, still_pending = r.pending, "worked through owed fetches")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(provider = p.name, error = %e, "owed fetches not worked through; they stay queued")
                    }
                }
            }
            tokio::select! {
                _ = settle_state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
    // The change feed keeps `[changes] retention`: pruned at start, then
    // hourly (every replica may prune; it is idempotent).
    let prune_state = state.clone();
    tasks.spawn(async move {
        loop {
            prune_state.prune_changes().await;
            tokio::select! {
                _ = prune_state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    });
    let hb_state = state.clone();
    tasks.spawn(async move {
        loop {
            heartbeat(&hb_state).await;
            tokio::select! {
                _ = hb_state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    });
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            req = requests.recv() => {
                let Some((provider, kind)) = req else { break };
                tracing::info!(provider = %provider, kind = %kind, "event-triggered sweep");
                execute(&state, &provider, &Action::Sweep(kind)).await;
            }
        }
    }
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_field_expressions_have_seconds() {
        let c = parse_cron("0 5 * * * *").unwrap();
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = c.find_next_occurrence(&t, false).unwrap();
        assert_eq!(n.to_rfc3339(), "2026-01-01T10:05:00+00:00");
        let every = parse_cron("*/2 * * * * *").unwrap();
        let n = every.find_next_occurrence(&t, false).unwrap();
        assert_eq!(n.to_rfc3339(), "2026-01-01T10:00:02+00:00");
        assert!(parse_cron("not cron").is_err());
    }
}
