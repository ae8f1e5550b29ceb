//! Webhook signatures as the providers compute them (docs/PROVIDERS.md §1.5, §2.6).
//!
//! - Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>`, where the MAC is
//!   HMAC-SHA256 over `"{t}.{body}"` keyed with the UTF-8 bytes of the
//!   **whole** `whsec_…` string.
//! - Svix (Clerk): `svix-signature: v1,<base64>`, HMAC-SHA256 over
//!   `"{msg_id}.{timestamp}.{body}"` keyed with the base64-decoded part of the
//!   secret after `whsec_`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A Svix secret that is not `whsec_<base64>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Svix webhook secret must be whsec_ followed by base64: {0}")]
pub struct InvalidSecret(pub String);

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The hex `v1` value Stripe computes for `body` sent at `t`.
pub fn stripe_signature(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(hmac(
        secret.as_bytes(),
        &[t.to_string().as_bytes(), b".", body],
    ))
}

/// A whole `Stripe-Signature` header value: `t=<t>,v1=<hex>`.
pub fn stripe(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", stripe_signature(secret, t, body))
}

/// The key bytes of a Svix secret (`whsec_` stripped, the rest base64-decoded).
pub fn svix_key(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(b64)
        .map_err(|e| InvalidSecret(e.to_string()))
}

/// One `svix-signature` entry, `v1,<base64>`, for `body` of message `msg_id`
/// sent at `timestamp` (unix seconds).
pub fn svix(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let key = svix_key(secret)?;
    Ok(svix_with_key(&key, msg_id, timestamp, body))
}

/// [`svix`] with the key already decoded.
pub fn svix_with_key(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = hmac(
        key,
        &[
            msg_id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// A valid Svix secret (`whsec_` + base64 of 24 bytes) derived from `seed`.
pub fn svix_secret_from_seed(seed: u64) -> String {
    let mut bytes = Vec::with_capacity(24);
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3 {
        x = crate::ids::splitmix(x);
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_vector_a() {
        let body = br#"{"id":"evt_test_webhook","object":"event"}"#;
        assert_eq!(
            stripe_signature("whsec_test_secret", 1_700_000_000, body),
            "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        assert_eq!(
            stripe("whsec_test_secret", 1_700_000_000, body),
            "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
        );
        // The prefix is part of the key: without it the MAC differs.
        let stripped = stripe_signature("test_secret", 1_700_000_000, body);
        assert!(stripped.starts_with("9a61facb") && stripped.ends_with("151f"));
    }

    #[test]
    fn stripe_vector_b_hmac_only() {
        let mac = |p: &[u8]| hex::encode(hmac(b"test_secret", &[p]));
        assert_eq!(
            mac(b""),
            "f7f9bd47fb987337b5796fdc1fdb9ba221d0d5396814bfcaf9521f43fd8927fd"
        );
        assert_eq!(
            mac(br#"{"obj1":"hello","obj2":"world"}"#),
            "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363"
        );
        assert_eq!(
            mac("😀".as_bytes()),
            "837da296d05c4fe31f61d5d7ead035099d9585a5bcde87de952012a78f0b0c43"
        );
    }

    #[test]
    fn svix_official_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(svix_key(secret).unwrap().len(), 24);
        let sig = svix(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_ne!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLawdd");
        assert!(svix("whsec_not base64!", "m", 1, b"").is_err());
    }

    #[test]
    fn seeded_secrets_are_valid() {
        let s = svix_secret_from_seed(7);
        assert_eq!(svix_key(&s).unwrap().len(), 24);
        assert_eq!(s, svix_secret_from_seed(7));
        assert_ne!(s, svix_secret_from_seed(8));
    }
}
