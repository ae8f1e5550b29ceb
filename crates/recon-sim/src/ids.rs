//! Ids that look like the providers' ones, the simulated clock, and small
//! deterministic hashing helpers.

use rand::Rng;
use rand::rngs::StdRng;

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by `len` random letters and digits (`cus_` + 14,
/// `user_` + 27, …).
pub(crate) fn make(rng: &mut StdRng, prefix: &str, len: usize) -> String {
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    let mut left = len;
    while left > 0 {
        // Ten base-62 digits from each 64-bit draw (62^10 < 2^64).
        let mut x: u64 = rng.random();
        for _ in 0..left.min(10) {
            s.push(ALNUM[(x % 62) as usize] as char);
            x /= 62;
        }
        left -= left.min(10);
    }
    s
}

/// One step of SplitMix64: a good 64-bit mixer.
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a over `bytes`: stable across builds and platforms.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The wall clock in unix milliseconds.
pub(crate) fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The simulated clock, in unix milliseconds.
///
/// By default it follows the wall clock (never going backwards), so that
/// Stripe `created` seconds, Clerk `updated_at` and webhook timestamps are
/// real times a receiver accepts. With a pinned start it is purely simulated:
/// every mutation advances it by a seeded step, and every timestamp is then
/// reproducible from the seed.
///
/// A skew puts the provider's clock `skew_ms` away from the wall clock, the
/// way a provider's servers and the receiver's machine disagree: it moves
/// every timestamp the simulator gives out (objects, events, webhook
/// signatures, the `Date` of its answers).
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    now: i64,
    pinned: bool,
    max_step_ms: u64,
    skew_ms: i64,
}

impl Clock {
    pub(crate) fn new(start_ms: Option<i64>, max_step_ms: u64, skew_ms: i64) -> Self {
        Clock {
            now: start_ms.unwrap_or_else(|| wall_ms() + skew_ms),
            pinned: start_ms.is_some(),
            max_step_ms,
            skew_ms,
        }
    }

    /// The wall clock as the provider's machines read it (wall + skew).
    pub(crate) fn provider_wall_ms(&self) -> i64 {
        wall_ms() + self.skew_ms
    }

    /// Move the provider's clock `skew_ms` away from the wall clock. A
    /// clock following the wall never goes backwards: a smaller skew takes
    /// effect once the wall has caught up.
    pub(crate) fn set_skew(&mut self, skew_ms: i64) {
        self.skew_ms = skew_ms;
    }

    /// The current time (does not advance a pinned clock).
    pub(crate) fn now_ms(&self) -> i64 {
        if self.pinned {
            self.now
        } else {
            self.now.max(self.provider_wall_ms())
        }
    }

    /// Advance for one mutation and return the new time.
    pub(crate) fn tick(&mut self, rng: &mut StdRng) -> i64 {
        // Drawn in both modes, so the mutations do not depend on the mode.
        let step = rng.random_range(0..=self.max_step_ms) as i64;
        if self.pinned {
            self.now += step;
        } else {
            self.now = self.now.max(self.provider_wall_ms());
        }
        self.now
    }
}
