//! Path 5: read-only diagnostics over the store.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{Dangling, Reference, StaleObject, Store};
use crate::types::{RunRecord, RunStatus, now_ms};

/// What `recon drift` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Live objects not confirmed within the stale threshold.
    pub stale: Vec<StaleObject>,
    /// Live objects whose owner is deleted or absent.
    pub dangling: Vec<Dangling>,
    /// Recent runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Recent runs that did not succeed.
    pub unhealthy_runs: usize,
}

/// One provider account and its reference rules, for [`report`].
pub struct Scope<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// Account.
    pub account: &'a str,
    /// Reference rules (e.g. subscriptions → customers).
    pub references: &'a [Reference],
}

/// Build a diagnostics report. `stale_after_ms`: objects not confirmed for
/// longer than this are stale.
pub async fn report(
    store: &dyn Store,
    scopes: &[Scope<'_>],
    stale_after_ms: i64,
    limit: u32,
) -> Result<Report> {
    let stale = store.stale(now_ms() - stale_after_ms, limit).await?;
    let mut dangling = Vec::new();
    for s in scopes {
        for r in s.references {
            dangling.extend(store.dangling(s.provider, s.account, r, limit).await?);
        }
    }
    let runs = store.runs(limit.min(50)).await?;
    let unhealthy_runs = runs
        .iter()
        .filter(|r| !matches!(r.status, RunStatus::Succeeded | RunStatus::Running))
        .count();
    Ok(Report {
        stale,
        dangling,
        runs,
        unhealthy_runs,
    })
}
