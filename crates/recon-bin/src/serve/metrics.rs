//! Prometheus metrics of `recon serve`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use recon_core::{BudgetStats, RunRecord};

type Labels = Vec<(String, String)>;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every metric `recon serve` exposes.
pub struct Metrics {
    registry: Registry,
    webhooks: Family<Labels, Counter>,
    runs: Family<Labels, Counter>,
    compared: Family<Labels, Counter>,
    drift: Family<Labels, Counter>,
    retries: Family<Labels, Gauge<u64, AtomicU64>>,
    rate_waits: Family<Labels, Gauge<u64, AtomicU64>>,
    last_success: Family<Labels, Gauge>,
    event_lag: Family<Labels, Gauge>,
    missed: Family<Labels, Counter>,
    undelivered: Family<Labels, Counter>,
    replay_gaps: Family<Labels, Counter>,
    alerts: Family<Labels, Counter>,
    drift_alert: Family<Labels, Gauge>,
    app_rows: Family<Labels, Counter>,
    check_violations: Family<Labels, Gauge>,
    budgets: Vec<(String, Arc<BudgetStats>)>,
    /// Webhook outcomes per minute, for the status page.
    pub timeline: Timeline,
}

impl Metrics {
    /// Register every metric; `budgets` are the providers' request counters.
    pub fn new(budgets: Vec<(String, Arc<BudgetStats>)>) -> Metrics {
        let mut registry = Registry::with_prefix("recon");
        let m = Metrics {
            registry: Registry::default(),
            webhooks: Family::default(),
            runs: Family::default(),
            compared: Family::default(),
            drift: Family::default(),
            retries: Family::default(),
            rate_waits: Family::default(),
            last_success: Family::default(),
            event_lag: Family::default(),
            missed: Family::default(),
            undelivered: Family::default(),
            replay_gaps: Family::default(),
            alerts: Family::default(),
            drift_alert: Family::default(),
            app_rows: Family::default(),
            check_violations: Family::default(),
            budgets,
            timeline: Timeline::default(),
        };
        registry.register(
            "webhooks",
            "Webhooks received, by provider and outcome",
            m.webhooks.clone(),
        );
        registry.register(
            "runs",
            "Sweep, replay and on-demand runs, by provider, kind, type and status",
            m.runs.clone(),
        );
        registry.register(
            "objects_compared",
            "Objects compared with the provider, by provider and kind",
            m.compared.clone(),
        );
        registry.register(
            "drift_found",
            "Differences found, by provider and kind",
            m.drift.clone(),
        );
        registry.register(
            "provider_retries",
            "Provider requests retried",
            m.retries.clone(),
        );
        registry.register(
            "rate_limit_waits",
            "Requests that waited for the rate limiter",
            m.rate_waits.clone(),
        );
        registry.register(
            "last_successful_sweep_timestamp_seconds",
            "Unix time of the last successful sweep, by provider and kind",
            m.last_success.clone(),
        );
        registry.register(
            "event_lag_seconds",
            "Age of the newest replayed event, by provider",
            m.event_lag.clone(),
        );
        registry.register(
            "missed_webhooks",
            "Events found by replay that no webhook had delivered",
            m.missed.clone(),
        );
        registry.register(
            "undelivered_events",
            "Events the provider still reported as not delivered to a webhook endpoint long after they happened, by provider",
            m.undelivered.clone(),
        );
        registry.register(
            "replay_gaps",
            "Times the event cursor was found beyond the provider's event log (events lost to replay; full sweeps scheduled), by provider",
            m.replay_gaps.clone(),
        );
        registry.register("alerts", "Alerts raised, by reason", m.alerts.clone());
        registry.register(
            "drift_alert_active",
            "1 while the last run of a kind was above the drift threshold or failed",
            m.drift_alert.clone(),
        );
        registry.register(
            "app_rows_repaired",
            "Rows of the app's own tables repaired by app-table reconciliation, by projection and action (update, insert, delete; missing: reported, not written)",
            m.app_rows.clone(),
        );
        registry.register(
            "check_violations",
            "Rows the last run of a check returned (-1: its SQL failed), by check",
            m.check_violations.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count a webhook.
    pub fn webhook(&self, provider: &str, outcome: &str) {
        self.webhooks
            .get_or_create(&l(&[("provider", provider), ("outcome", outcome)]))
            .inc();
        self.timeline
            .record(Outcome::of_webhook(outcome), recon_core::now_ms(), 1);
    }

    /// Count a finished run.
    pub fn run(&self, run: &RunRecord, alert: Option<&str>) {
        let kind = run.kind.as_str();
        self.runs
            .get_or_create(&l(&[
                ("provider", &run.provider),
                ("kind", kind),
                ("type", run.run_kind.as_str()),
                ("status", run.status.as_str()),
            ]))
            .inc();
        self.compared
            .get_or_create(&l(&[("provider", &run.provider), ("kind", kind)]))
            .inc_by(run.counts.compared);
        self.drift
            .get_or_create(&l(&[("provider", &run.provider), ("kind", kind)]))
            .inc_by(run.counts.drift);
        if run.status == recon_core::RunStatus::Succeeded
            && run.run_kind == recon_core::RunKind::Sweep
            && !run.dry_run
        {
            self.last_success
                .get_or_create(&l(&[("provider", &run.provider), ("kind", kind)]))
                .set(run.finished_at.unwrap_or(run.started_at) / 1000);
        }
        self.drift_alert
            .get_or_create(&l(&[("provider", &run.provider), ("kind", kind)]))
            .set(alert.is_some() as i64);
        if let Some(why) = alert {
            self.alerts.get_or_create(&l(&[("reason", why)])).inc();
        }
    }

    /// Count an app row repaired (or reported missing) by a projection.
    pub fn app_row(&self, projection: &str, action: &str) {
        self.app_rows
            .get_or_create(&l(&[("projection", projection), ("action", action)]))
            .inc();
    }

    /// Record a check's result (its alert, if any, is counted too).
    pub fn check(&self, r: &recon_core::project::CheckResult) {
        let n = if r.error.is_some() {
            -1
        } else {
            r.violations.len() as i64
        };
        self.check_violations
            .get_or_create(&l(&[("check", &r.name)]))
            .set(n);
        if n != 0 {
            self.alerts
                .get_or_create(&l(&[("reason", crate::alerts::CHECK_VIOLATION)]))
                .inc();
        }
    }

    /// Count events a replay found that webhooks had missed.
    pub fn missed(&self, provider: &str, n: u64) {
        self.missed
            .get_or_create(&l(&[("provider", provider)]))
            .inc_by(n);
        self.timeline
            .record(Outcome::Replayed, recon_core::now_ms(), n);
    }

    /// Count events the provider reports as undelivered long after creation.
    pub fn undelivered(&self, provider: &str, n: u64) {
        self.undelivered
            .get_or_create(&l(&[("provider", provider)]))
            .inc_by(n);
    }

    /// Count a replay gap (also an alert).
    pub fn replay_gap(&self, provider: &str) {
        self.replay_gaps
            .get_or_create(&l(&[("provider", provider)]))
            .inc();
        self.alerts
            .get_or_create(&l(&[("reason", crate::alerts::REPLAY_GAP)]))
            .inc();
    }

    /// Set the event lag of a provider.
    pub fn event_lag(&self, provider: &str, seconds: i64) {
        self.event_lag
            .get_or_create(&l(&[("provider", provider)]))
            .set(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        for (p, s) in &self.budgets {
            self.retries
                .get_or_create(&l(&[("provider", p)]))
                .set(s.retries.load(Ordering::Relaxed));
            self.rate_waits
                .get_or_create(&l(&[("provider", p)]))
                .set(s.rate_limit_waits.load(Ordering::Relaxed));
        }
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// What became of a webhook, as the status page charts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its state was applied.
    Applied,
    /// Seen before: answered 2xx, applied nothing.
    Duplicate,
    /// Older than the mirror's state, or of a type recon ignores.
    Stale,
    /// Refused: bad signature, malformed, unstorable, not configured.
    Rejected,
    /// Not recorded because the store was unavailable (the sender retries).
    Failed,
    /// Missed by the webhooks and applied later by a replay.
    Replayed,
}

impl Outcome {
    /// Every outcome, in the order the chart draws them.
    pub const ALL: [Outcome; 6] = [
        Outcome::Applied,
        Outcome::Duplicate,
        Outcome::Stale,
        Outcome::Rejected,
        Outcome::Failed,
        Outcome::Replayed,
    ];

    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Replayed => "missed_then_replayed",
        }
    }

    /// The chart's outcome of a webhook's metric outcome.
    pub fn of_webhook(outcome: &str) -> Outcome {
        match outcome {
            "applied" => Outcome::Applied,
            "duplicate" => Outcome::Duplicate,
            "stale" | "ignored" => Outcome::Stale,
            "error" => Outcome::Failed,
            _ => Outcome::Rejected,
        }
    }
}

/// Webhook outcomes per minute over the last day of this process (the
/// status page's webhook chart; Prometheus keeps the long history).
#[derive(Default)]
pub struct Timeline {
    minutes: std::sync::Mutex<std::collections::VecDeque<(i64, [u64; 6])>>,
}

impl Timeline {
    /// Minutes kept.
    pub const KEEP: i64 = 24 * 60;

    /// Count `n` of `outcome` at `at_ms`.
    pub fn record(&self, outcome: Outcome, at_ms: i64, n: u64) {
        if n == 0 {
            return;
        }
        let minute = at_ms.div_euclid(60_000);
        let slot = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_default();
        let mut m = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        match m.iter_mut().rev().find(|(t, _)| *t == minute) {
            Some((_, counts)) => counts[slot] += n,
            None => {
                let mut counts = [0; 6];
                counts[slot] = n;
                // Clocks may step back: keep the minutes in order.
                let at = m.partition_point(|(t, _)| *t < minute);
                m.insert(at, (minute, counts));
            }
        }
        while m.front().is_some_and(|(t, _)| *t <= minute - Self::KEEP) {
            m.pop_front();
        }
    }

    /// The counts of each outcome in `buckets` equal buckets of `width_ms`
    /// ending at `end_ms` (the last bucket ends at `end_ms`).
    pub fn buckets(&self, end_ms: i64, width_ms: i64, buckets: usize) -> Vec<[u64; 6]> {
        let mut out = vec![[0; 6]; buckets];
        let start = end_ms - width_ms * buckets as i64;
        let m = self.minutes.lock().unwrap_or_else(|e| e.into_inner());
        for (minute, counts) in m.iter() {
            let t = minute * 60_000;
            if t < start || t >= end_ms {
                continue;
            }
            let i = ((t - start) / width_ms) as usize;
            for (o, c) in out[i.min(buckets - 1)].iter_mut().zip(counts) {
                *o += c;
            }
        }
        out
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::*;

    #[test]
    fn outcomes_land_in_their_minute_and_bucket() {
        let t = Timeline::default();
        let base = 1_000 * 60_000;
        t.record(Outcome::Applied, base + 5_000, 1);
        t.record(Outcome::Applied, base + 59_000, 2);
        t.record(Outcome::Rejected, base + 60_000, 1);
        // Out of order (a clock step back) still lands in its minute.
        t.record(Outcome::Duplicate, base - 60_000, 4);
        t.record(Outcome::Replayed, base, 0);
        let b = t.buckets(base + 120_000, 60_000, 3);
        assert_eq!(b[0], [0, 4, 0, 0, 0, 0]);
        assert_eq!(b[1], [3, 0, 0, 0, 0, 0]);
        assert_eq!(b[2], [0, 0, 0, 1, 0, 0]);
        // A bucket two minutes wide sums both.
        let b = t.buckets(base + 120_000, 120_000, 1);
        assert_eq!(b[0], [3, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn a_day_is_kept_and_no_more() {
        let t = Timeline::default();
        t.record(Outcome::Applied, 0, 1);
        t.record(Outcome::Applied, Timeline::KEEP * 60_000, 1);
        let all = t.buckets(
            Timeline::KEEP * 60_000 + 60_000,
            60_000,
            2 * Timeline::KEEP as usize,
        );
        let total: u64 = all.iter().map(|c| c[0]).sum();
        assert_eq!(total, 1, "the minute a day old is dropped");
    }

    #[test]
    fn webhook_outcomes_map_to_chart_outcomes() {
        assert_eq!(Outcome::of_webhook("ignored"), Outcome::Stale);
        assert_eq!(Outcome::of_webhook("bad_signature"), Outcome::Rejected);
        assert_eq!(Outcome::of_webhook("unstorable"), Outcome::Rejected);
        assert_eq!(Outcome::of_webhook("error"), Outcome::Failed);
    }
}
