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

/// A timestamped hex HMAC header: `<ts>=<unix s><sep><sig>=<hex>[<sep><sig>=<hex>…]`,
/// each signature HMAC-SHA256 over `"{ts}{joiner}{raw body}"` keyed with
/// the secret string's bytes (nothing decoded), any of them matching, the
/// timestamp at most the tolerance old (later is accepted: a clock ahead of
/// ours is not what the timestamp guards against). Stripe's
/// `Stripe-Signature` and Paddle's `Paddle-Signature` are such headers.
#[derive(Debug, Clone, Copy)]
pub struct HexHeader {
    /// The header's name, as people write it (`Stripe-Signature`).
    pub name: &'static str,
    /// The timestamp's key (`t`).
    pub ts: &'static str,
    /// The signatures' key (`v1`); other keys are ignored.
    pub sig: &'static str,
    /// Between the pairs (`,`).
    pub separator: char,
    /// Between the timestamp and the body in the signed payload (`.`).
    pub joiner: &'static str,
}

impl HexHeader {
    /// The hex signature of `body` at `ts`.
    pub fn signature(&self, secret: &str, ts: i64, body: &[u8]) -> String {
        hex::encode(self.mac(secret, ts, body))
    }

    /// HMAC-SHA256 of `"{ts}{joiner}{body}"` keyed with the secret's bytes.
    fn mac(&self, secret: &str, ts: i64, body: &[u8]) -> [u8; 32] {
        let ts = ts.to_string();
        hmac_sha256(
            secret.as_bytes(),
            &[ts.as_bytes(), self.joiner.as_bytes(), body],
        )
    }

    /// The header value the provider would send for `body` at `ts`.
    pub fn sign(&self, secret: &str, ts: i64, body: &[u8]) -> String {
        let (t, v, sep) = (self.ts, self.sig, self.separator);
        format!("{t}={ts}{sep}{v}={}", self.signature(secret, ts, body))
    }

    /// [`HexHeader::verify`] of the header as `headers` carry it; a missing
    /// header, or one that is not text, is a `BadSignature` error too.
    pub fn verify_headers(
        &self,
        secret: &str,
        headers: &crate::Headers,
        body: &[u8],
        at: (i64, i64),
        secret_var: &str,
    ) -> crate::Result<i64> {
        let bad = |what: &str| {
            let message = format!("the {} header is {what}", self.name);
            crate::Error::bad_signature(message).with_operation("verify webhook")
        };
        let value = headers.get(self.name).ok_or_else(|| bad("missing"))?;
        let value = value.to_str().map_err(|_| bad("not text"))?;
        self.verify(secret, value, body, at, secret_var)
    }

    /// The header a provider sends while it rotates secrets: `ts`, then one
    /// signature per secret, in order.
    pub fn sign_each<'s>(
        &self,
        secrets: impl IntoIterator<Item = &'s str>,
        ts: i64,
        body: &[u8],
    ) -> String {
        let (sep, v) = (self.separator, self.sig);
        let sigs = secrets.into_iter().map(|s| self.signature(s, ts, body));
        let sigs: String = sigs.map(|h| format!("{sep}{v}={h}")).collect();
        format!("{}={ts}{sigs}", self.ts)
    }

    /// Check the header's `value` against the raw `body` with `secret` at
    /// `now_s`, allowing timestamps `tolerance_s` old; returns the signed
    /// timestamp. Errors are `BadSignature` and say what is wrong without
    /// quoting the secret; `secret_var` (the variable holding the secret)
    /// is named when no signature matches.
    pub fn verify(
        &self,
        secret: &str,
        value: &str,
        body: &[u8],
        (now_s, tolerance_s): (i64, i64),
        secret_var: &str,
    ) -> crate::Result<i64> {
        let (name, ts_key, sig_key) = (self.name, self.ts, self.sig);
        let bad = |m: String| crate::Error::bad_signature(m).with_operation("verify webhook");
        let (mut ts, mut sigs) = (None, Vec::new());
        for (k, v) in value
            .split(self.separator)
            .filter_map(|p| p.split_once('='))
        {
            match k.trim() {
                k if k == ts_key && ts.is_none() => ts = Some(v.trim().parse::<i64>()),
                k if k == sig_key => sigs.push(hex::decode(v.trim()).ok()),
                _ => {}
            }
        }
        let ts = match ts {
            Some(Ok(ts)) => ts,
            Some(Err(_)) => {
                return Err(bad(format!(
                    "the {name} timestamp ({ts_key}=) is not a number"
                )));
            }
            None => {
                return Err(bad(format!(
                    "the {name} header has no timestamp ({ts_key}=)"
                )));
            }
        };
        if sigs.is_empty() {
            return Err(bad(format!(
                "No signatures found with expected scheme {sig_key} in {name}"
            )));
        }
        // A malformed candidate simply does not match; the rest are compared.
        if !any_matches(&self.mac(secret, ts, body), sigs) {
            return Err(bad(format!(
                "No signatures found matching the expected signature for payload (is {secret_var} this endpoint's whole secret, and is the body unmodified?)"
            )));
        }
        if let Err(TimestampProblem::TooOld(age)) =
            check_timestamp(ts, now_s, Tolerance::Past(tolerance_s))
        {
            return Err(bad(format!(
                "Timestamp outside the tolerance zone: signed {age}s ago, at most {tolerance_s}s allowed"
            )));
        }
        Ok(ts)
    }
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
    fn a_rotating_header_verifies_under_each_secret() {
        let scheme = HexHeader {
            name: "Acme-Signature",
            ts: "t",
            sig: "v1",
            separator: ',',
            joiner: ".",
        };
        let header = scheme.sign_each(["old", "new"], 7, b"{}");
        assert!(header.starts_with("t=7,v1=") && header.matches(",v1=").count() == 2);
        assert_eq!(
            scheme.sign_each(["new"], 7, b"{}"),
            scheme.sign("new", 7, b"{}")
        );
        for secret in ["old", "new"] {
            assert_eq!(
                scheme
                    .verify(secret, &header, b"{}", (7, 300), "V")
                    .unwrap(),
                7
            );
        }
        assert!(
            scheme
                .verify("other", &header, b"{}", (7, 300), "V")
                .is_err()
        );
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
