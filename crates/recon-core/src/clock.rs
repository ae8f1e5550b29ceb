//! The provider's clock, learned from the `Date` headers of its answers.
//!
//! Every version an object carries must come from one clock. A provider
//! stamps its events with its own time (Stripe's `created`, Clerk's
//! `updated_at`), so the versions recon gives to listed and fetched states,
//! to tombstones and to sweep floors must be the provider's time too, not
//! the local machine's: with local time, a skew of a second either way makes
//! newer webhooks look stale or lets version ties never settle.
//!
//! Each answer's `Date` header (whole seconds) says what the provider's
//! clock read when it wrote the answer, which happened after the request
//! left and before the answer arrived. So one answer bounds the offset
//! `provider − local`:
//!
//! ```text
//! date·1000 − received  ≤  offset  ≤  date·1000 + 1000 − sent      (ms)
//! ```
//!
//! [`ProviderClock`] intersects these bounds over successive answers (the
//! interval narrows to about the round trip once answers have landed at
//! different points of a second), widens them slowly for drift, and starts
//! afresh when a new answer contradicts them (either clock was stepped).
//!
//! # Guarantees
//! - [`ProviderClock::now_ms`] is a time the provider's clock has already
//!   reached (local time plus the *lower* bound of the offset): a sweep
//!   floor taken from it never exceeds the provider's time, so it never
//!   refuses an event the provider stamps after it.
//! - A missing, unreadable or implausible `Date` (further from local time
//!   than the largest skew assumed) teaches nothing: the clock keeps what it
//!   knew, or local time if it never knew anything. Nothing here panics.
//!
//! # Before the first answer
//! Nothing is known yet, so [`ProviderClock::now_ms`] answers the lowest
//! time the provider may plausibly be at: local time minus the largest skew
//! assumed (adapters pass their webhook tolerance, the skew a signed webhook
//! already has to be within to verify at all). The only version taken
//! before any request is a sweep's floor, and a floor that is too low costs
//! nothing, while one that is too high refuses newer events. Versions of
//! fetched and listed states, and tombstones (taken after their fetch), are
//! always read after an answer.

use std::sync::Mutex;
use std::time::Duration;

use crate::provider::Headers;
use crate::types::now_ms;

/// How fast the two clocks may drift apart, as a fraction: 1 ms per 10 s
/// (100 ppm, far above what NTP-disciplined clocks do).
const DRIFT_DIVISOR: i64 = 10_000;

/// The provider's clock as seen from here. One per adapter instance
/// (provider and account); shared by every request it makes.
#[derive(Debug)]
pub struct ProviderClock {
    max_skew_ms: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// An answer (with or without a usable `Date`) has arrived.
    answered: bool,
    /// What the `Date` headers taught, if anything.
    bounds: Option<Bounds>,
}

/// `lo ≤ provider − local ≤ hi` (ms), as of local time `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    lo: i64,
    hi: i64,
    at: i64,
}

impl Bounds {
    /// The bounds at local time `t`, widened by the drift since `at`.
    fn at(self, t: i64) -> Bounds {
        let w = (t - self.at).max(0) / DRIFT_DIVISOR;
        Bounds {
            lo: self.lo - w,
            hi: self.hi + w,
            at: t.max(self.at),
        }
    }
}

impl ProviderClock {
    /// A clock that assumes the provider is never further than `max_skew`
    /// from local time (pass the adapter's webhook tolerance).
    pub fn new(max_skew: Duration) -> Self {
        ProviderClock {
            max_skew_ms: i64::try_from(max_skew.as_millis()).unwrap_or(i64::MAX / 4),
            state: Mutex::new(State::default()),
        }
    }

    /// Learn from one answer: its headers, and the local times (unix ms)
    /// just before the request was sent and just after the answer's headers
    /// arrived. Returns the answer's `Date` in unix seconds when it was
    /// readable and plausible, `None` otherwise.
    pub fn observe(&self, headers: &Headers, sent_ms: i64, received_ms: i64) -> Option<i64> {
        self.observe_date(crate::http_util::date_header(headers), sent_ms, received_ms)
    }

    /// [`ProviderClock::observe`] with the `Date` already read.
    pub fn observe_date(&self, date_s: Option<i64>, sent_ms: i64, received_ms: i64) -> Option<i64> {
        let (sent, received) = (sent_ms.min(received_ms), sent_ms.max(received_ms));
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.answered = true;
        let date_ms = date_s?.checked_mul(1000)?;
        let new = Bounds {
            lo: date_ms - received,
            hi: date_ms + 1000 - sent,
            at: received,
        };
        if new.lo > self.max_skew_ms || new.hi < -self.max_skew_ms {
            tracing::debug!(
                date_s,
                offset_ms = new.lo,
                max_skew_ms = self.max_skew_ms,
                "ignoring a Date header further from local time than the largest skew assumed"
            );
            return None;
        }
        st.bounds = Some(match st.bounds {
            Some(old) => {
                let old = old.at(received);
                let (lo, hi) = (old.lo.max(new.lo), old.hi.min(new.hi));
                if lo <= hi {
                    Bounds {
                        lo,
                        hi,
                        at: received,
                    }
                } else {
                    // One of the clocks was stepped: what was learned before
                    // no longer holds.
                    tracing::debug!(
                        old_lo = old.lo,
                        old_hi = old.hi,
                        new_lo = new.lo,
                        new_hi = new.hi,
                        "provider clock offset moved; starting afresh"
                    );
                    new
                }
            }
            None => new,
        });
        date_s
    }

    /// The provider's time (unix ms) at local time `local_ms`; see
    /// [`ProviderClock::now_ms`].
    pub fn at_ms(&self, local_ms: i64) -> i64 {
        let st = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.bounds {
            Some(b) => local_ms.saturating_add(b.at(local_ms).lo),
            None if st.answered => local_ms,
            None => local_ms.saturating_sub(self.max_skew_ms),
        }
    }

    /// A time (unix ms) the provider's clock has already reached: local
    /// time corrected by what the `Date` headers taught; local time if no
    /// answer carried a usable one; local time minus the largest skew
    /// assumed before any answer.
    pub fn now_ms(&self) -> i64 {
        self.at_ms(now_ms())
    }

    /// [`ProviderClock::now_ms`] in whole seconds.
    pub fn now_s(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// What is known of `provider − local` (ms), as `(lower, upper)` bounds;
    /// `None` until an answer carried a usable `Date`.
    pub fn offset_bounds_ms(&self) -> Option<(i64, i64)> {
        self.bounds_at(now_ms())
    }

    fn bounds_at(&self, local_ms: i64) -> Option<(i64, i64)> {
        let st = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.bounds.map(|b| {
            let b = b.at(local_ms);
            (b.lo, b.hi)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_760_000_000_000; // a whole second, in ms
    const SKEW: Duration = Duration::from_secs(300);

    #[test]
    fn before_any_answer_it_assumes_the_largest_skew_behind() {
        let c = ProviderClock::new(SKEW);
        assert_eq!(c.at_ms(T), T - 300_000);
        assert_eq!(c.bounds_at(T), None);
        // An answer without a Date: local time from then on.
        assert_eq!(c.observe_date(None, T, T + 10), None);
        assert_eq!(c.at_ms(T + 20), T + 20);
        assert_eq!(c.bounds_at(T), None);
    }

    #[test]
    fn one_answer_bounds_the_offset_and_now_is_its_lower_bound() {
        // The provider is 5 s behind. Request sent at T+200, answer at T+230;
        // the provider wrote it at its T−5000+215 → Date T/1000 − 5.
        let c = ProviderClock::new(SKEW);
        let date = (T - 5000 + 215) / 1000;
        assert_eq!(c.observe_date(Some(date), T + 200, T + 230), Some(date));
        let (lo, hi) = c.bounds_at(T).unwrap();
        assert!(lo <= -5000 && -5000 <= hi, "{lo}..{hi}");
        assert_eq!(lo, date * 1000 - (T + 230));
        // Never ahead of the provider, at most a second and a round trip behind.
        let now = c.at_ms(T + 230);
        assert!(
            (T + 230 - 5000 - 1030..=T + 230 - 5000).contains(&now),
            "{now}"
        );
        // Right after the answer, the time in seconds is the answer's Date.
        assert_eq!(c.at_ms(T + 230).div_euclid(1000), date);
    }

    #[test]
    fn answers_at_different_points_of_a_second_narrow_the_offset() {
        // The true offset is +5 s + 380 ms; answers take 2 ms.
        let off = 5_380;
        let c = ProviderClock::new(SKEW);
        for k in 0..40 {
            let sent = T + k * 137;
            let date = (sent + 1 + off).div_euclid(1000);
            c.observe_date(Some(date), sent, sent + 2);
            let (lo, hi) = c.bounds_at(T).unwrap();
            assert!(lo <= off && off <= hi, "sample {k}: {lo}..{hi}");
        }
        let (lo, hi) = c.bounds_at(T).unwrap();
        assert!(hi - lo <= 150, "{lo}..{hi}");
        let now = c.at_ms(T + 10_000);
        assert!(now <= T + 10_000 + off && now >= T + 10_000 + off - 150);
    }

    #[test]
    fn a_stepped_clock_starts_afresh() {
        let c = ProviderClock::new(SKEW);
        c.observe_date(Some(T / 1000), T + 100, T + 110);
        assert_eq!(c.at_ms(T + 110).div_euclid(1000), T / 1000);
        // The provider's clock jumps 60 s ahead.
        c.observe_date(Some(T / 1000 + 61), T + 1_100, T + 1_110);
        let (lo, hi) = c.bounds_at(T).unwrap();
        assert!(lo > 59_000 && hi < 61_000, "{lo}..{hi}");
        assert_eq!(c.at_ms(T + 1_110).div_euclid(1000), T / 1000 + 61);
    }

    #[test]
    fn implausible_or_garbled_dates_teach_nothing() {
        let c = ProviderClock::new(SKEW);
        // An epoch Date (a broken emulator), one a day ahead, one not a date.
        assert_eq!(c.observe_date(Some(0), T, T + 5), None);
        assert_eq!(c.observe_date(Some(T / 1000 + 86_400), T, T + 5), None);
        let mut h = Headers::new();
        h.insert("date", http::HeaderValue::from_static("not a date"));
        assert_eq!(c.observe(&h, T, T + 5), None);
        assert_eq!(c.observe_date(Some(i64::MAX), T, T + 5), None);
        // Answers came, so local time is the best guess.
        assert_eq!(c.at_ms(T + 5), T + 5);
        // A good Date after them is learned; a bad one later keeps it.
        c.observe_date(Some(T / 1000 - 3), T + 10, T + 12);
        let before = c.at_ms(T + 20);
        assert_eq!(c.observe_date(Some(0), T + 15, T + 16), None);
        assert_eq!(c.observe_date(None, T + 15, T + 16), None);
        assert_eq!(c.at_ms(T + 20), before);
        assert!((T + 20 - 3000 - 12..=T + 20 - 3000 + 1000).contains(&before));
    }

    #[test]
    fn bounds_widen_with_time_for_drift() {
        let c = ProviderClock::new(SKEW);
        c.observe_date(Some(T / 1000), T + 500, T + 500);
        let b = c.state.lock().unwrap().bounds.unwrap();
        let later = b.at(T + 500 + 3_600_000);
        assert_eq!((later.lo, later.hi), (b.lo - 360, b.hi + 360));
        // Times going backwards (a stepped local clock) never narrow them.
        assert_eq!(b.at(T), Bounds { at: b.at, ..b });
    }

    #[test]
    fn the_real_date_header_of_now_is_learned() {
        let c = ProviderClock::new(SKEW);
        let mut h = Headers::new();
        let sent = now_ms();
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        h.insert("date", date.parse().unwrap());
        let got = c.observe(&h, sent, now_ms()).unwrap();
        assert!((got - sent / 1000).abs() <= 1);
        assert!((c.now_ms() - now_ms()).abs() <= 1_100);
        assert!(c.now_ms() <= now_ms() + 5);
    }
}
