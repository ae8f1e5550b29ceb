//! Signed webhook payloads, the part every scheme shares: an HMAC-SHA256
//! over a payload the provider assembles from parts (Stripe:
//! `"{t}.{body}"`; Svix, for Clerk and others: `"{id}.{timestamp}.{body}"`),
//! candidate signatures compared in constant time (any one may match: a
//! rotated secret is sent beside the new one), and a signed timestamp kept
//! within a tolerance of now.
//!
//! What stays in the provider crate is its header format and how its
//! signatures are encoded (hex, base64). The MAC and the comparison come
//! from the `hmac` and `subtle` crates; this module only frames them, so
//! that no adapter writes its own comparison.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

/// HMAC-SHA256 of the concatenated `parts` under `key` (any length).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Whether any decoded candidate equals `expected`. Every candidate is
/// compared, each in constant time; one that did not decode (`None`) never
/// matches and does not stop the others.
pub fn any_matches(expected: &[u8], candidates: impl IntoIterator<Item = Option<Vec<u8>>>) -> bool {
    let mut matched = Choice::from(0u8);
    for c in candidates.into_iter().flatten() {
        matched |= c.as_slice().ct_eq(expected);
    }
    bool::from(matched)
}

/// How far from now a signed timestamp may be, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Only age counts (Stripe: a sender's clock ahead of ours is not a
    /// replay).
    Past(i64),
    /// Both ways (Svix).
    Both(i64),
}

/// Why a timestamp is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampProblem {
    /// Signed this many seconds ago, more than allowed.
    TooOld(i64),
    /// Signed this many seconds in the future, more than allowed.
    TooNew(i64),
}

/// Check a signed timestamp (unix seconds) against `now_s`.
pub fn check_timestamp(
    signed_s: i64,
    now_s: i64,
    tolerance: Tolerance,
) -> Result<(), TimestampProblem> {
    let age = now_s.saturating_sub(signed_s);
    let (Tolerance::Past(max) | Tolerance::Both(max)) = tolerance;
    if age > max {
        return Err(TimestampProblem::TooOld(age));
    }
    let ahead = signed_s.saturating_sub(now_s);
    if matches!(tolerance, Tolerance::Both(_)) && ahead > max {
        return Err(TimestampProblem::TooNew(ahead));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_the_published_vector() {
        // RFC 4231, test case 2: key "Jefe", data split in parts.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn any_candidate_may_match_and_bad_ones_are_skipped() {
        let good = hmac_sha256(b"k", &[b"m"]).to_vec();
        let other = hmac_sha256(b"old", &[b"m"]).to_vec();
        assert!(any_matches(&good, [Some(good.clone())]));
        assert!(any_matches(
            &good,
            [None, Some(other.clone()), Some(good.clone())]
        ));
        assert!(any_matches(&good, [Some(good.clone()), None]));
        assert!(!any_matches(&good, [Some(other), None]));
        assert!(!any_matches(&good, Vec::<Option<Vec<u8>>>::new()));
        // A prefix of the MAC is not the MAC.
        assert!(!any_matches(&good, [Some(good[..16].to_vec())]));
    }

    #[test]
    fn tolerance_at_its_edges() {
        let now = 1_700_000_000;
        assert_eq!(
            check_timestamp(now - 300, now, Tolerance::Past(300)),
            Ok(())
        );
        assert_eq!(
            check_timestamp(now - 301, now, Tolerance::Past(300)),
            Err(TimestampProblem::TooOld(301))
        );
        assert_eq!(
            check_timestamp(now + 10_000, now, Tolerance::Past(300)),
            Ok(())
        );
        assert_eq!(
            check_timestamp(now + 300, now, Tolerance::Both(300)),
            Ok(())
        );
        assert_eq!(
            check_timestamp(now + 301, now, Tolerance::Both(300)),
            Err(TimestampProblem::TooNew(301))
        );
        assert_eq!(
            check_timestamp(now - 301, now, Tolerance::Both(300)),
            Err(TimestampProblem::TooOld(301))
        );
        // Extreme values do not overflow.
        assert!(check_timestamp(i64::MIN, i64::MAX, Tolerance::Both(300)).is_err());
        assert!(check_timestamp(i64::MAX, i64::MIN, Tolerance::Both(300)).is_err());
    }
}
