//! Rate limiting and retries, shared by every path that talks to one
//! provider account.
//!
//! An adapter holds one [`Budget`] per account and sends every request
//! through [`Budget::call`]. The budget waits for a token from the account's
//! governor limiter, runs the request, and retries it with exponential
//! backoff and jitter (backon) when the error [`is_temporary`](crate::Error::is_temporary):
//! connection errors, 408, 409, 429 and 5xx as the adapter classified them.
//! A `Retry-After` from the provider lengthens the wait. A total time bound
//! caps the whole call, retries included.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{Error, ErrorKind, Result};

/// A request budget: so many requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per `per`.
    pub requests: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// `requests` per second.
    pub const fn per_second(requests: u32) -> Self {
        Rate {
            requests,
            per: Duration::from_secs(1),
        }
    }

    /// Parse `100/s`, `1000/10s`, `25/1s`, `60/min`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::config(format!("bad rate {s:?}: expected e.g. 100/s or 1000/10s"));
        let (n, per) = s.split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let per = match per {
            "s" | "sec" => Duration::from_secs(1),
            "min" | "m" => Duration::from_secs(60),
            other => humantime_like(other).ok_or_else(bad)?,
        };
        if requests == 0 || per.is_zero() {
            return Err(bad());
        }
        Ok(Rate { requests, per })
    }
}

fn humantime_like(s: &str) -> Option<Duration> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = &s[digits.len()..];
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(60 * n),
        _ => return None,
    })
}

/// Retry policy. Defaults follow object_store's and Stripe's SDKs: 0.5 s
/// doubling to 10 s with jitter, 8 retries, 3 minutes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Bound on the whole call, waits and retries included.
    pub total_timeout: Duration,
    /// Longest `Retry-After` honoured; longer ones are capped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retries: 8,
            total_timeout: Duration::from_secs(180),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Counters a budget keeps, for progress bars and metrics.
#[derive(Debug, Default)]
pub struct BudgetStats {
    /// Requests sent (attempts, retries included).
    pub requests: AtomicU64,
    /// Retries made.
    pub retries: AtomicU64,
    /// Times a request had to wait for the rate limiter.
    pub rate_limit_waits: AtomicU64,
    /// Calls that failed after retries.
    pub failures: AtomicU64,
}

/// One provider account's rate limiter and retry policy. Clone it freely:
/// clones share the limiter and the counters.
#[derive(Clone)]
pub struct Budget {
    limiter: Arc<DefaultDirectRateLimiter>,
    rate: Rate,
    policy: RetryPolicy,
    stats: Arc<BudgetStats>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("rate", &self.rate)
            .field("policy", &self.policy)
            .finish()
    }
}

impl Budget {
    /// A budget of `rate` with `policy`. The burst is one period's worth
    /// of requests spread evenly, so a budget of 100/s never sends more than
    /// about 100 in any second.
    pub fn new(rate: Rate, policy: RetryPolicy) -> Self {
        let n = NonZeroU32::new(rate.requests.max(1)).unwrap_or(NonZeroU32::MIN);
        let period = rate.per / rate.requests.max(1);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(n))
            .allow_burst(NonZeroU32::new(burst(rate)).unwrap_or(NonZeroU32::MIN));
        Budget {
            limiter: Arc::new(RateLimiter::direct(quota)),
            rate,
            policy,
            stats: Arc::new(BudgetStats::default()),
        }
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The retry policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<BudgetStats> {
        &self.stats
    }

    /// Wait for one request token.
    pub async fn acquire(&self) {
        if self.limiter.check().is_err() {
            self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
            self.limiter.until_ready().await;
        }
    }

    /// Run `op` under the budget: a token before every attempt, retries for
    /// temporary errors with backoff, `Retry-After` honoured, the whole call
    /// bounded by the policy's total timeout.
    pub async fn call<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let policy = self.policy;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(policy.max_retries);
        let stats = self.stats.clone();
        let attempt = || {
            let fut = op();
            let stats = stats.clone();
            async move {
                self.acquire().await;
                stats.requests.fetch_add(1, Ordering::Relaxed);
                fut.await
            }
        };
        let run = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &Error| e.is_temporary())
            .adjust(|e: &Error, dur| {
                let after = e.retry_after().map(|a| a.min(policy.max_retry_after));
                match (dur, after) {
                    (Some(d), Some(a)) => Some(d.max(a)),
                    (d, _) => d,
                }
            })
            .notify(|e: &Error, d: Duration| {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(operation = what, error = %e, wait_ms = d.as_millis() as u64, "retrying");
            });
        let res = match tokio::time::timeout(policy.total_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "gave up after {:?} (retries included)",
                    policy.total_timeout
                ),
            )
            .with_operation(what.to_string())
            .with_should_retry(Some(false))),
        };
        if res.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        res
    }
}

fn burst(rate: Rate) -> u32 {
    // Allow at most a tenth of a period's budget at once (at least 1), so a
    // burst cannot break a per-second limit when the period is longer.
    let per_s = rate.requests as f64 / rate.per.as_secs_f64();
    (per_s.ceil() as u32).clamp(1, rate.requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retries: 3,
            total_timeout: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_temporary_errors_then_succeeds() {
        let b = Budget::new(Rate::per_second(1000), fast());
        let n = AtomicUsize::new(0);
        let r = b
            .call("t", || async {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::new(ErrorKind::Unavailable, "503"))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert_eq!(b.stats().retries.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_or_forbidden() {
        let b = Budget::new(Rate::per_second(1000), fast());
        let n = AtomicUsize::new(0);
        let r: Result<()> = b
            .call("t", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Unauthenticated, "401"))
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unauthenticated);
        assert_eq!(n.load(Ordering::SeqCst), 1);

        let m = AtomicUsize::new(0);
        let r: Result<()> = b
            .call("t", || async {
                m.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Unavailable, "503").with_should_retry(Some(false)))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(m.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_retries() {
        let b = Budget::new(Rate::per_second(1000), fast());
        let n = AtomicUsize::new(0);
        let r: Result<()> = b
            .call("t", || async {
                n.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Unavailable, "502"))
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(n.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let b = Budget::new(Rate::per_second(1000), fast());
        let n = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        let r = b
            .call("t", || async {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(Error::new(ErrorKind::RateLimited, "429")
                        .with_retry_after(Some(Duration::from_secs(7))))
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(r.is_ok());
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn total_timeout_bounds_the_call() {
        let mut p = fast();
        p.total_timeout = Duration::from_secs(2);
        p.max_retries = 1000;
        let b = Budget::new(Rate::per_second(1000), p);
        let r: Result<()> = b
            .call("t", || async {
                Err(Error::new(ErrorKind::Unavailable, "503"))
            })
            .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
    }

    // governor keeps its own clock, so this one runs in real time (0.2 s).
    #[tokio::test]
    async fn limiter_spaces_requests() {
        let b = Budget::new(Rate::per_second(50), fast());
        let start = std::time::Instant::now();
        for _ in 0..60 {
            b.call("t", || async { Ok(()) }).await.unwrap();
        }
        // 50 at once, then 10 more at 50/s: about 0.2 s.
        let el = start.elapsed();
        assert!(el >= Duration::from_millis(180), "{el:?}");
        assert!(b.stats().rate_limit_waits.load(Ordering::SeqCst) >= 9);
    }

    #[test]
    fn rate_parse() {
        assert_eq!(Rate::parse("100/s").unwrap(), Rate::per_second(100));
        assert_eq!(
            Rate::parse("1000/10s").unwrap(),
            Rate {
                requests: 1000,
                per: Duration::from_secs(10)
            }
        );
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("abc").is_err());
    }
}
