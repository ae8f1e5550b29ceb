//! API fault injection: which request gets which fault, the rate budget,
//! and "fail the listing from page k on".
//!
//! A request's fault is a pure function of the seed, the request (method,
//! path and query string) and how many times that same request was made
//! before. Concurrent callers therefore get the same faults in every run,
//! whatever order their requests arrive in, and a retried request draws
//! anew.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ids::{fnv, splitmix};

/// Fault knobs for one provider's API. Shares are probabilities per request
/// (0.0–1.0); they are tried in the order of the fields and add up.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// 429 `rate_limit` answers.
    pub rate_limited: f64,
    /// Of those, the share that carry `Retry-After`.
    pub retry_after_share: f64,
    /// The `Retry-After` sent (whole seconds are sent as an integer).
    pub retry_after: Duration,
    /// 429 `lock_timeout` answers (Stripe's retryable 429; Clerk gets a
    /// plain 429).
    pub lock_timeout: f64,
    /// 409 answers.
    pub conflict: f64,
    /// 500 / 502 / 503 answers, in equal parts.
    pub server_error: f64,
    /// Of the 5xx answers, the share with `Stripe-Should-Retry: true`.
    pub should_retry_true: f64,
    /// Of the 5xx answers, the share with `Stripe-Should-Retry: false`.
    pub should_retry_false: f64,
    /// 200 answers whose body is cut in half, with a `Content-Length` that
    /// matches the cut body (a complete response of broken JSON).
    pub truncated_body: f64,
    /// 200 answers that announce the full `Content-Length`, send half of the
    /// body and close the connection.
    pub connection_cut: f64,
    /// Added to every request.
    pub latency: Duration,
    /// A uniform random extra latency, up to this.
    pub latency_jitter: Duration,
    /// A token bucket: requests beyond it are answered 429 + `Retry-After`.
    pub rate_budget: Option<RateBudget>,
    /// Fail list requests from some page on.
    pub list_failure: Option<ListFailure>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rate_limited: 0.0,
            retry_after_share: 0.5,
            retry_after: Duration::from_secs(1),
            lock_timeout: 0.0,
            conflict: 0.0,
            server_error: 0.0,
            should_retry_true: 0.5,
            should_retry_false: 0.0,
            truncated_body: 0.0,
            connection_cut: 0.0,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            rate_budget: None,
            list_failure: None,
        }
    }
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Self {
        Faults::default()
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBudget {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

impl RateBudget {
    /// Clerk's development limit: 100 requests per 10 s.
    pub const CLERK_DEV: RateBudget = RateBudget {
        per_second: 10.0,
        burst: 100,
    };
    /// Stripe's sandbox limit: 25 requests per second.
    pub const STRIPE_SANDBOX: RateBudget = RateBudget {
        per_second: 25.0,
        burst: 25,
    };
}

/// Fail list requests (not retrieves) deterministically: after
/// `after_pages` pages of a matching kind were served, the next list
/// requests of that kind are answered `status`, `failures` times (or until
/// the faults are changed, if `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFailure {
    /// The kind (`customers`, `users`, `organization_memberships`, …); any
    /// if `None`.
    pub kind: Option<String>,
    /// Pages served before the first failure.
    pub after_pages: u64,
    /// How many failures; `None`: every list request from then on.
    pub failures: Option<u64>,
    /// The status answered (e.g. 500).
    pub status: u16,
}

/// The fault picked for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Injected {
    RateLimited {
        retry_after: Option<Duration>,
    },
    LockTimeout,
    Conflict,
    Server {
        status: u16,
        should_retry: Option<bool>,
    },
    Truncated,
    Cut,
}

impl Injected {
    /// The counter name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Injected::RateLimited {
                retry_after: Some(_),
            } => "429_retry_after",
            Injected::RateLimited { retry_after: None } => "429",
            Injected::LockTimeout => "429_lock_timeout",
            Injected::Conflict => "409",
            Injected::Server { status: 500, .. } => "500",
            Injected::Server { status: 502, .. } => "502",
            Injected::Server { .. } => "503",
            Injected::Truncated => "truncated_body",
            Injected::Cut => "connection_cut",
        }
    }
}

/// The fault and latency for occurrence `n` of request `key`.
pub(crate) fn decide(f: &Faults, seed: u64, key: &str, n: u64) -> (Option<Injected>, Duration) {
    let mut rng = StdRng::seed_from_u64(splitmix(seed ^ fnv(key.as_bytes())) ^ splitmix(n));
    let u: f64 = rng.random();
    let sub: f64 = rng.random();
    let jitter: f64 = rng.random();
    let latency = f.latency + f.latency_jitter.mul_f64(jitter);
    let mut edge = 0.0;
    let mut hit = |share: f64| {
        edge += share.max(0.0);
        u < edge
    };
    let injected = if hit(f.rate_limited) {
        Some(Injected::RateLimited {
            retry_after: (sub < f.retry_after_share).then_some(f.retry_after),
        })
    } else if hit(f.lock_timeout) {
        Some(Injected::LockTimeout)
    } else if hit(f.conflict) {
        Some(Injected::Conflict)
    } else if hit(f.server_error) {
        let status = [500, 502, 503][((sub * 3.0) as usize).min(2)];
        let r: f64 = rng.random();
        let should_retry = if r < f.should_retry_true {
            Some(true)
        } else if r < f.should_retry_true + f.should_retry_false {
            Some(false)
        } else {
            None
        };
        Some(Injected::Server {
            status,
            should_retry,
        })
    } else if hit(f.truncated_body) {
        Some(Injected::Truncated)
    } else if hit(f.connection_cut) {
        Some(Injected::Cut)
    } else {
        None
    };
    (injected, latency)
}

/// `Retry-After` as sent: whole seconds as an integer, else fractional.
pub(crate) fn retry_after_value(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.3}", d.as_secs_f64())
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Mutable fault bookkeeping of one provider.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    occurrences: Mutex<HashMap<u64, u64>>,
    bucket: Mutex<Option<Bucket>>,
    /// (pages served, failures answered) for the current `ListFailure`.
    listing: Mutex<(u64, u64)>,
}

impl FaultState {
    /// How many times `key` was requested before (and count this one).
    pub(crate) fn occurrence(&self, key: &str) -> u64 {
        let mut m = self.occurrences.lock().expect("lock");
        let n = m.entry(fnv(key.as_bytes())).or_insert(0);
        *n += 1;
        *n - 1
    }

    /// Take a token; `Err(wait)` when the bucket is empty.
    pub(crate) fn take_token(&self, budget: &RateBudget) -> Result<(), Duration> {
        let mut b = self.bucket.lock().expect("lock");
        let now = Instant::now();
        let burst = f64::from(budget.burst.max(1));
        let bucket = b.get_or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let rate = budget.per_second.max(1e-6);
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Whether this list request of `kind` must fail under `lf`.
    pub(crate) fn list_fails(&self, lf: &ListFailure, kind: &str) -> bool {
        if lf.kind.as_deref().is_some_and(|k| k != kind) {
            return false;
        }
        let mut l = self.listing.lock().expect("lock");
        if l.0 >= lf.after_pages && lf.failures.is_none_or(|n| l.1 < n) {
            l.1 += 1;
            true
        } else {
            false
        }
    }

    /// A list page of `kind` was served.
    pub(crate) fn list_served(&self, lf: Option<&ListFailure>, kind: &str) {
        if let Some(lf) = lf
            && lf.kind.as_deref().is_none_or(|k| k == kind)
        {
            self.listing.lock().expect("lock").0 += 1;
        }
    }

    /// Forget the bucket and listing counts (new faults were set).
    pub(crate) fn reset(&self) {
        *self.bucket.lock().expect("lock") = None;
        *self.listing.lock().expect("lock") = (0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_respected_and_reproducible() {
        let f = Faults {
            rate_limited: 0.1,
            server_error: 0.2,
            ..Faults::default()
        };
        let mut counts = HashMap::new();
        for i in 0..10_000 {
            let (inj, _) = decide(&f, 42, &format!("GET /v1/customers?i={i}"), 0);
            *counts.entry(inj.map(|x| x.name())).or_insert(0) += 1;
            assert_eq!(
                inj,
                decide(&f, 42, &format!("GET /v1/customers?i={i}"), 0).0
            );
        }
        let r429 = counts.get(&Some("429")).copied().unwrap_or(0)
            + counts.get(&Some("429_retry_after")).copied().unwrap_or(0);
        assert!((800..1200).contains(&r429), "{counts:?}");
        let r5 = ["500", "502", "503"]
            .iter()
            .map(|s| counts.get(&Some(*s)).copied().unwrap_or(0))
            .sum::<i32>();
        assert!((1800..2200).contains(&r5), "{counts:?}");
    }

    #[test]
    fn bucket_runs_dry() {
        let s = FaultState::default();
        let b = RateBudget {
            per_second: 1.0,
            burst: 3,
        };
        assert!((0..3).all(|_| s.take_token(&b).is_ok()));
        let wait = s.take_token(&b).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
    }

    #[test]
    fn listing_fails_after_k_pages() {
        let s = FaultState::default();
        let lf = ListFailure {
            kind: Some("customers".into()),
            after_pages: 2,
            failures: Some(1),
            status: 500,
        };
        assert!(!s.list_fails(&lf, "customers"));
        s.list_served(Some(&lf), "customers");
        s.list_served(Some(&lf), "invoices");
        assert!(!s.list_fails(&lf, "customers"));
        s.list_served(Some(&lf), "customers");
        assert!(!s.list_fails(&lf, "invoices"));
        assert!(s.list_fails(&lf, "customers"));
        assert!(!s.list_fails(&lf, "customers"));
        assert_eq!(retry_after_value(Duration::from_millis(1500)), "1.500");
        assert_eq!(retry_after_value(Duration::from_secs(2)), "2");
    }
}
