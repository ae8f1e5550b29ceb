//! Drift alerts: a run above the mismatch threshold, or one that did not
//! succeed, is logged at error level, counted, and POSTed as JSON to
//! `RECON_ALERT_WEBHOOK_URL` when set (with retries). Failing to alert never
//! fails the run.

use std::time::Duration;

use recon_core::{Budget, Error, ErrorKind, Rate, RetryPolicy, RunRecord, RunStatus};

/// Why a run alerts, if it does.
pub fn reason(run: &RunRecord, threshold: f64) -> Option<&'static str> {
    match run.status {
        RunStatus::Succeeded if run.mismatch_ratio > threshold => Some("drift_above_threshold"),
        RunStatus::Succeeded | RunStatus::Running => None,
        RunStatus::CircuitOpen => Some("circuit_breaker"),
        RunStatus::Failed => Some("run_failed"),
        RunStatus::Cancelled => Some("run_cancelled"),
    }
}

/// The JSON an alert carries.
pub fn payload(run: &RunRecord, why: &str, threshold: f64) -> serde_json::Value {
    serde_json::json!({
        "alert": why,
        "threshold": threshold,
        "run": run,
    })
}

/// Alert on a run if it deserves one. Returns the reason when it alerted.
pub async fn maybe_alert(run: &RunRecord, threshold: f64) -> Option<&'static str> {
    let why = reason(run, threshold)?;
    tracing::error!(
        alert = why,
        run = %run.id,
        provider = %run.provider,
        kind = %run.kind,
        status = run.status.as_str(),
        drift = run.counts.drift,
        compared = run.counts.compared,
        mismatch_ratio = run.mismatch_ratio,
        error = ?run.error,
        "reconciliation alert"
    );
    if let Some(url) = crate::config::env("RECON_ALERT_WEBHOOK_URL")
        && let Err(e) = post(&url, &payload(run, why, threshold)).await
    {
        tracing::error!(error = %e, "could not deliver the alert to RECON_ALERT_WEBHOOK_URL");
    }
    Some(why)
}

/// Why a check alert is raised (the `reason` of `recon_alerts_total`).
pub const CHECK_VIOLATION: &str = "check_violation";

/// Alert on a check that found violations or whose SQL failed: logged at
/// error level and POSTed to `RECON_ALERT_WEBHOOK_URL` when set, with up
/// to 10 violating rows. Returns whether it alerted.
pub async fn check_alert(result: &recon_core::project::CheckResult) -> bool {
    if result.violations.is_empty() && result.error.is_none() {
        return false;
    }
    tracing::error!(
        alert = CHECK_VIOLATION,
        check = %result.name,
        violations = result.violations.len(),
        error = ?result.error,
        "check found violations: {}",
        result.description
    );
    if let Some(url) = crate::config::env("RECON_ALERT_WEBHOOK_URL") {
        let body = serde_json::json!({
            "alert": CHECK_VIOLATION,
            "check": result.name,
            "description": result.description,
            "violations": result.violations.len(),
            "sample": result.violations.iter().take(10).collect::<Vec<_>>(),
            "error": result.error,
        });
        if let Err(e) = post(&url, &body).await {
            tracing::error!(error = %e, "could not deliver the alert to RECON_ALERT_WEBHOOK_URL");
        }
    }
    true
}

/// Why a replay-gap alert is raised (the `reason` of `recon_alerts_total`).
pub const REPLAY_GAP: &str = "event_cursor_beyond_horizon";

/// Alert that the event cursor has fallen beyond the provider's event log:
/// events in `gap` can never be replayed. `action` says what repairs it.
/// Logged at error level and POSTed to `RECON_ALERT_WEBHOOK_URL` when set.
pub async fn replay_gap(provider: &str, gap: &crate::resume::Gap, action: &str) {
    tracing::error!(
        alert = REPLAY_GAP,
        provider,
        gap_since = gap.since,
        gap_until = gap.until,
        "{provider}'s event log no longer reaches back to where replays had read ({}): events from then until {} cannot be replayed; replaying from the oldest reachable point; {action}",
        crate::resume::when(gap.since, gap.per_s),
        crate::resume::when(gap.until, gap.per_s),
    );
    if let Some(url) = crate::config::env("RECON_ALERT_WEBHOOK_URL") {
        let body = serde_json::json!({
            "alert": REPLAY_GAP,
            "provider": provider,
            "gap": gap,
            "action": action,
        });
        if let Err(e) = post(&url, &body).await {
            tracing::error!(error = %e, "could not deliver the alert to RECON_ALERT_WEBHOOK_URL");
        }
    }
}

async fn post(url: &str, body: &serde_json::Value) -> recon_core::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::new(ErrorKind::Unexpected, e.to_string()))?;
    let budget = Budget::new(
        Rate::per_second(10),
        RetryPolicy {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retries: 4,
            total_timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(10),
        },
    );
    budget
        .call("alert", || async {
            let r = client.post(url).json(body).send().await.map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("alert POST: {}", e.without_url()),
                )
            })?;
            let s = r.status();
            if s.is_success() {
                Ok(())
            } else {
                let kind = if s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408 {
                    ErrorKind::Unavailable
                } else {
                    ErrorKind::InvalidInput
                };
                Err(Error::new(kind, format!("alert endpoint answered {s}")))
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_core::{RunCounts, RunKind};

    fn run(status: RunStatus, ratio: f64) -> RunRecord {
        RunRecord {
            id: "r".into(),
            provider: "stripe".into(),
            account: "default".into(),
            kind: "customers".into(),
            run_kind: RunKind::Sweep,
            status,
            dry_run: false,
            started_at: 0,
            finished_at: Some(1),
            counts: RunCounts::default(),
            mismatch_ratio: ratio,
            error: None,
        }
    }

    #[test]
    fn alerts_on_drift_and_on_failure() {
        assert_eq!(reason(&run(RunStatus::Succeeded, 0.01), 0.05), None);
        assert_eq!(
            reason(&run(RunStatus::Succeeded, 0.06), 0.05),
            Some("drift_above_threshold")
        );
        assert_eq!(
            reason(&run(RunStatus::Failed, 0.0), 0.05),
            Some("run_failed")
        );
        assert_eq!(
            reason(&run(RunStatus::CircuitOpen, 0.0), 0.05),
            Some("circuit_breaker")
        );
    }

    #[tokio::test]
    async fn posts_with_retries() {
        use wiremock::matchers::method;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        post(
            &server.uri(),
            &payload(&run(RunStatus::Failed, 0.0), "run_failed", 0.05),
        )
        .await
        .unwrap();
        let got = server.received_requests().await.unwrap();
        assert_eq!(got.len(), 2);
        let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
        assert_eq!(body["alert"], "run_failed");
        assert_eq!(body["run"]["status"], "failed");
    }
}
