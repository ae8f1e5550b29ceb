//! Where a replay starts when it is not told: the stored event cursor,
//! bounded by the provider's event horizon (Stripe keeps 30 days).
//!
//! # Guarantees
//! - With a cursor, a replay starts at the cursor (`>=`), however long ago
//!   the last replay ran, so an outage of the replay leaves no gap that the
//!   log still holds.
//! - When the log no longer reaches back to the cursor, the start is the
//!   oldest reachable point and the range in between is returned as a
//!   [`Gap`]: the caller alerts and asks for full sweeps (`recon serve`) or
//!   says that `recon reconcile` is needed (the CLI).
//!
//! # Caveats
//! The engine's cursor is the newest event a replay saw, so on a quiet
//! account it stands still although later replays read the log to the end.
//! A successful replay therefore also records when it started
//! ([`READ_UNTIL`], minus [`LISTING_LAG`]); a cursor beyond the horizon is a
//! gap only when that point is beyond it too.

use recon_core::store::Cursor;
use recon_core::{RunRecord, RunStatus, Store, SweepOptions};
use serde::Serialize;

use crate::app::ProviderEntry;

/// Name of the cursor (beside the engine's `events`) holding the point up to
/// which the last successful replay read the whole log.
pub const READ_UNTIL: &str = "events:read_until";

/// A successful replay is trusted to have seen every event created this many
/// seconds before it started.
pub const LISTING_LAG: i64 = 60;

/// How many seconds inside the horizon a clamped replay starts, so that the
/// engine, whose clock reads a moment later, still accepts the start.
pub const HORIZON_SLACK: i64 = 300;

/// Events the log no longer holds: created in `[since, until)` (provider
/// units), never replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The point up to which replays had read.
    pub since: i64,
    /// The oldest reachable point, where the replay starts instead.
    pub until: i64,
    /// Provider units per second (Stripe 1, Paddle 1,000,000), for [`when`].
    #[serde(skip)]
    pub per_s: i64,
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The `since` to replay from.
    pub since: i64,
    /// The stored event cursor, if any (`None`: the fallback was used).
    pub cursor: Option<i64>,
    /// What cannot be replayed any more.
    pub gap: Option<Gap>,
}

/// Decide the start. `cursor` is the engine's event cursor, `read_until`
/// the [`READ_UNTIL`] cursor, `fallback` the start to use without a cursor
/// (none: the caller must be told `since`), `now` and `horizon` in provider
/// units, of which `per_s` make a second.
pub fn start(
    cursor: Option<i64>,
    read_until: Option<i64>,
    fallback: Option<i64>,
    (now, horizon): (i64, Option<i64>),
    per_s: i64,
) -> Option<Start> {
    let oldest = horizon.map(|h| now - h + HORIZON_SLACK * per_s);
    match cursor {
        Some(c) => {
            let covered = read_until.map_or(c, |r| r.max(c));
            Some(match oldest {
                Some(o) if c < o => Start {
                    since: o,
                    cursor: Some(c),
                    gap: (covered < o).then_some(Gap {
                        since: covered,
                        until: o,
                        per_s,
                    }),
                },
                _ => Start {
                    since: c,
                    cursor: Some(c),
                    gap: None,
                },
            })
        }
        None => fallback.map(|f| Start {
            since: oldest.map_or(f, |o| f.max(o)),
            cursor: None,
            gap: None,
        }),
    }
}

/// [`start`] from the store and the provider's clock and horizon.
pub async fn plan(
    entry: &ProviderEntry,
    store: &dyn Store,
    fallback: Option<i64>,
) -> recon_core::Result<Option<Start>> {
    let cursor = entry.engine.event_cursor().await?;
    let read_until = store
        .cursor(entry.name, entry.provider.account(), READ_UNTIL)
        .await?
        .map(|c| c.value);
    Ok(start(
        cursor,
        read_until,
        fallback,
        (
            entry.provider.version_now(),
            entry.provider.capabilities().event_horizon,
        ),
        per_second(entry),
    ))
}

/// Replay from `since`; when the run succeeded (and wrote), record that the
/// log was read up to the run's start ([`READ_UNTIL`]).
pub async fn replay(
    entry: &ProviderEntry,
    store: &dyn Store,
    since: i64,
    opts: &SweepOptions,
) -> recon_core::Result<RunRecord> {
    let started = entry.provider.version_now();
    let run = entry.engine.replay(since, opts).await?;
    if run.status == RunStatus::Succeeded && !opts.dry_run {
        let account = entry.provider.account();
        let value = started - LISTING_LAG * per_second(entry);
        let known = store
            .cursor(entry.name, account, READ_UNTIL)
            .await
            .ok()
            .flatten()
            .map(|c| c.value);
        if known.is_none_or(|k| k < value) {
            let batch = recon_core::commit::Batch {
                cursors: vec![Cursor {
                    provider: entry.name.to_string(),
                    account: account.to_string(),
                    name: READ_UNTIL.to_string(),
                    value,
                    updated_at: recon_core::now_ms(),
                }],
                ..Default::default()
            };
            // Losing this only risks a false gap alert later, never a missed event.
            if let Err(e) = recon_core::commit::commit(store, &batch, false).await {
                tracing::warn!(provider = entry.name, error = %e, "could not record how far the replay read");
            }
        }
    }
    Ok(run)
}

/// How many of the provider's version units make a second (Stripe 1, Clerk
/// 1,000, Paddle 1,000,000): `--since`, windows and lags are seconds, the
/// engine's replay points and cursors are provider units.
pub fn per_second(entry: &ProviderEntry) -> i64 {
    entry.provider.version_units_per_second().max(1)
}

/// A `since` in unix seconds (`--since`, `?since=`) in the provider's unit,
/// or an error when it cannot be counted in it.
pub fn since_in_units(entry: &ProviderEntry, since_s: i64) -> recon_core::Result<i64> {
    since_s
        .checked_mul(per_second(entry))
        .ok_or_else(|| recon_core::Error::invalid(format!("since {since_s} is out of range")))
}

/// A provider time (`per_s` units a second) as UTC text.
pub fn when(t: i64, per_s: i64) -> String {
    chrono::DateTime::from_timestamp(t.div_euclid(per_s.max(1)), 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const H: Option<i64> = Some(30 * DAY);
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn resumes_from_the_cursor_however_old() {
        let s = start(Some(NOW - 3 * DAY), None, Some(NOW - 1800), (NOW, H), 1).unwrap();
        assert_eq!(s.since, NOW - 3 * DAY);
        assert_eq!(s.cursor, Some(NOW - 3 * DAY));
        assert_eq!(s.gap, None);
    }

    #[test]
    fn without_a_cursor_the_fallback_or_nothing() {
        let s = start(None, None, Some(NOW - 1800), (NOW, H), 1).unwrap();
        assert_eq!((s.since, s.cursor, s.gap), (NOW - 1800, None, None));
        assert_eq!(start(None, None, None, (NOW, H), 1), None);
        // A fallback beyond the horizon is clamped, silently: no promise was made.
        let s = start(None, None, Some(NOW - 40 * DAY), (NOW, H), 1).unwrap();
        assert_eq!(s.since, NOW - 30 * DAY + HORIZON_SLACK);
        assert_eq!(s.gap, None);
    }

    #[test]
    fn a_cursor_beyond_the_horizon_is_a_gap() {
        let s = start(Some(NOW - 40 * DAY), None, None, (NOW, H), 1).unwrap();
        let oldest = NOW - 30 * DAY + HORIZON_SLACK;
        assert_eq!(s.since, oldest);
        assert_eq!(
            s.gap,
            Some(Gap {
                since: NOW - 40 * DAY,
                until: oldest,
                per_s: 1
            })
        );
        // No horizon: no gap.
        let s = start(Some(NOW - 400 * DAY), None, None, (NOW, None), 1).unwrap();
        assert_eq!((s.since, s.gap), (NOW - 400 * DAY, None));
    }

    #[test]
    fn a_quiet_account_read_to_the_end_is_no_gap() {
        // The newest event is 40 days old, but the last replay read the log
        // up to yesterday: nothing is lost.
        let s = start(Some(NOW - 40 * DAY), Some(NOW - DAY), None, (NOW, H), 1).unwrap();
        assert_eq!(s.since, NOW - 30 * DAY + HORIZON_SLACK);
        assert_eq!(s.gap, None);
        // Read only up to 35 days ago: the 5 days after that are lost.
        let s = start(
            Some(NOW - 40 * DAY),
            Some(NOW - 35 * DAY),
            None,
            (NOW, H),
            1,
        )
        .unwrap();
        assert_eq!(s.gap.unwrap().since, NOW - 35 * DAY);
    }

    /// Paddle counts in microseconds: the slack and the horizon scale with
    /// the unit, so a clamped start stays inside the horizon as the
    /// engine's clock moves on, and times print as dates.
    #[test]
    fn units_other_than_seconds_scale() {
        let us = 1_000_000;
        let (now, horizon) = (NOW * us, Some(90 * DAY * us));
        let s = start(Some(now - 100 * DAY * us), None, None, (now, horizon), us).unwrap();
        let oldest = now - 90 * DAY * us + HORIZON_SLACK * us;
        assert_eq!(s.since, oldest);
        // The engine refuses a start older than now - horizon, read a
        // moment later: still accepted a minute on.
        assert!(s.since >= (now + 60 * us) - 90 * DAY * us);
        assert_eq!(when(NOW * us, us), when(NOW, 1));
        assert_eq!(when(NOW, 1), "2027-01-15 08:00:00 UTC");
    }
}
