//! `Stripe-Signature` verification, as Stripe's SDKs do it (docs/PROVIDERS.md §1.5):
//!
//! - the header is `t=<unix s>,v1=<hex>[,v1=<hex>…][,v0=…]`: split on `,`, then
//!   each part at its first `=`; every `v1` counts, other schemes are ignored;
//! - the signed payload is `"{t}.{raw body}"`, the MAC is HMAC-SHA256 keyed
//!   with the UTF-8 bytes of the **whole** `whsec_…` string (nothing decoded);
//! - any `v1` may match, compared in constant time;
//! - only timestamps older than the tolerance are refused: a clock ahead of
//!   ours is not an attack the timestamp protects against.
//!
//! The scheme is core's [`HexHeader`] with Stripe's keys and joiner.

use recon_core::Result;
use recon_core::signing::HexHeader;

/// `Stripe-Signature`: `t`, `v1`, `,`, signed `"{t}.{body}"`.
pub const SIGNATURE: HexHeader = HexHeader {
    name: "Stripe-Signature",
    ts: "t",
    sig: "v1",
    separator: ',',
    joiner: ".",
};

/// The hex `v1` signature of `body` sent at `t` under `secret` (the whole
/// `whsec_…` string).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    SIGNATURE.signature(secret, t, body)
}

/// A `Stripe-Signature` header value for `body` sent at `t`, as Stripe would
/// send it: `t=<t>,v1=<hex>`. For tests, simulators and load generators.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    SIGNATURE.sign(secret, t, body)
}

/// Check `header` (the `Stripe-Signature` value) against the raw `body`.
/// `now_s` is the current unix time; `tolerance_s` the oldest age accepted.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<()> {
    let var = crate::config::env::WEBHOOK_SECRET;
    let checked = SIGNATURE.verify(secret, header, body, (now_s, tolerance_s), var);
    checked.map(drop).map_err(|e| e.with_component("stripe"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_core::ErrorKind;
    use recon_core::signing::hmac_sha256;

    const BODY_A: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const SIG_A: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    #[test]
    fn vector_a() {
        assert_eq!(signature("whsec_test_secret", 1_700_000_000, BODY_A), SIG_A);
        let header = format!("t=1700000000,v1={SIG_A}");
        assert_eq!(sign("whsec_test_secret", 1_700_000_000, BODY_A), header);
        verify_signature("whsec_test_secret", &header, BODY_A, 1_700_000_000, 300).unwrap();
        // The SDK also accepts a wrong v1 beside the right one, and ignores v0.
        let rotated = format!("t=1700000000,v1=deadbeef,v1={SIG_A},v0=x");
        verify_signature("whsec_test_secret", &rotated, BODY_A, 1_700_000_010, 300).unwrap();
        // The prefix-stripped key gives 9a61facb…151f, which must not verify.
        let stripped = signature("test_secret", 1_700_000_000, BODY_A);
        assert!(
            stripped.starts_with("9a61facb") && stripped.ends_with("151f"),
            "{stripped}"
        );
        let e = verify_signature("test_secret", &header, BODY_A, 1_700_000_000, 300).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadSignature);
        // With the real clock and a 300 s tolerance, vector A is stale.
        let e =
            verify_signature("whsec_test_secret", &header, BODY_A, 1_800_000_000, 300).unwrap_err();
        assert!(e.message().contains("tolerance"), "{e}");
    }

    /// stripe-node `test/crypto/helpers.ts`: plain HMAC-SHA256 with key `test_secret`.
    #[test]
    fn vector_b() {
        let hmac = |payload: &[u8]| hex::encode(hmac_sha256(b"test_secret", &[payload]));
        assert_eq!(
            hmac(b""),
            "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd"
        );
        assert_eq!(
            hmac(br#"{"obj1":"hello","obj2":"world"}"#),
            "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363"
        );
        assert_eq!(
            hmac("😀".as_bytes()),
            "837da296d05c4fe31f61d5d7ead035099d9585a5bcde87de952012a78f0b0c43"
        );
    }

    #[test]
    fn rejections() {
        let s = "whsec_test_secret";
        let t = 1_700_000_000;
        let good = sign(s, t, BODY_A);
        let kind = |h: &str, body: &[u8], now: i64| {
            verify_signature(s, h, body, now, 300).map_err(|e| e.kind())
        };
        // Tampered body.
        assert_eq!(
            kind(&good, br#"{"id":"evt_test_webhook","object":"evenT"}"#, t),
            Err(ErrorKind::BadSignature)
        );
        // Wrong secret.
        assert!(verify_signature("whsec_other", &good, BODY_A, t, 300).is_err());
        // Stale: 301 s old fails, 300 s passes.
        assert_eq!(kind(&good, BODY_A, t + 301), Err(ErrorKind::BadSignature));
        assert_eq!(kind(&good, BODY_A, t + 300), Ok(()));
        // Future timestamps pass.
        assert_eq!(kind(&good, BODY_A, t - 1000), Ok(()));
        // No v1 at all.
        let e = verify_signature(s, &format!("t={t},v0={SIG_A}"), BODY_A, t, 300).unwrap_err();
        assert!(e.message().contains("expected scheme v1"), "{e}");
        // No timestamp, garbage.
        assert!(kind(&format!("v1={SIG_A}"), BODY_A, t).is_err());
        assert!(kind("", BODY_A, t).is_err());
        assert!(kind(&format!("t=abc,v1={SIG_A}"), BODY_A, t).is_err());
        // A signature for another timestamp does not verify.
        assert!(kind(&format!("t={},v1={SIG_A}", t + 1), BODY_A, t).is_err());
        // Several v1 (rotation): any one may match, whatever its position.
        let other = signature("whsec_old", t, BODY_A);
        assert_eq!(
            kind(&format!("t={t},v1={SIG_A},v1={other}"), BODY_A, t),
            Ok(())
        );
        assert_eq!(
            kind(&format!("t={t},v1={other},v1=zz,v1={SIG_A}"), BODY_A, t),
            Ok(())
        );
        assert!(kind(&format!("t={t},v1={other},v1=00"), BODY_A, t).is_err());
    }
}
