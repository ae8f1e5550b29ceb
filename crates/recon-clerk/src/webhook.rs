//! Svix signatures, as Clerk sends them.
//!
//! Signed content `"{id}.{timestamp}.{raw body}"`, key = base64-decoded part
//! after `whsec_`, signature `base64(HMAC-SHA256)`, header entries `v1,<b64>`
//! separated by spaces; any `v1` entry may match; timestamps within ±300 s.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use recon_core::{Error, Headers, Result};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Tolerance on the timestamp, both directions, seconds.
pub const TOLERANCE_S: i64 = 300;

fn key(secret: &str) -> Result<Vec<u8>> {
    let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(raw).map_err(|_| {
        Error::config("CLERK_WEBHOOK_SECRET is not a valid whsec_ secret (base64 after whsec_)")
            .with_component("clerk")
    })
}

fn mac(key: &[u8], id: &str, ts: &str, body: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(ts.as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The `svix-signature` value for a message (`v1,<base64>`).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let k = key(secret)?;
    Ok(format!(
        "v1,{}",
        B64.encode(mac(&k, msg_id, &timestamp.to_string(), body))
    ))
}

fn header<'a>(h: &'a Headers, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| h.get(*n).and_then(|v| v.to_str().ok()))
}

/// Verify a delivery; returns the message id (the ledger key).
pub fn verify(secret: &str, headers: &Headers, body: &[u8], now_s: i64) -> Result<String> {
    let bad = |m: &str| Error::bad_signature(m.to_string()).with_component("clerk");
    let id =
        header(headers, &["svix-id", "webhook-id"]).ok_or_else(|| bad("missing svix-id header"))?;
    let ts = header(headers, &["svix-timestamp", "webhook-timestamp"])
        .ok_or_else(|| bad("missing svix-timestamp header"))?;
    let sigs = header(headers, &["svix-signature", "webhook-signature"])
        .ok_or_else(|| bad("missing svix-signature header"))?;
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| bad("svix-timestamp is not a number"))?;
    if (now_s - t).abs() > TOLERANCE_S {
        return Err(bad("svix-timestamp outside the ±5 minute tolerance"));
    }
    let k = key(secret)?;
    let want = mac(&k, id, ts.trim(), body);
    let mut ok = false;
    for entry in sigs.split(' ') {
        let Some((ver, sig)) = entry.split_once(',') else {
            continue;
        };
        if ver != "v1" {
            continue;
        }
        let Ok(got) = B64.decode(sig) else { continue };
        ok |= bool::from(got.ct_eq(&want));
    }
    if !ok {
        return Err(bad("no v1 signature matches"));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const GOOD: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn h(id: &str, ts: i64, sig: &str) -> Headers {
        let mut h = Headers::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", ts.to_string().parse().unwrap());
        h.insert("svix-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn official_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), GOOD);
        assert_eq!(verify(SECRET, &h(ID, TS, GOOD), BODY, TS + 10).unwrap(), ID);
        let neg = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLawdd";
        assert!(verify(SECRET, &h(ID, TS, neg), BODY, TS).is_err());
    }

    #[test]
    fn tampering_keys_and_time() {
        assert!(verify(SECRET, &h(ID, TS, GOOD), br#"{"test": 2432232315}"#, TS).is_err());
        assert!(verify("whsec_c2VjcmV0LW90aGVy", &h(ID, TS, GOOD), BODY, TS).is_err());
        assert!(
            verify(SECRET, &h(ID, TS, GOOD), BODY, TS + 400).is_err(),
            "too old"
        );
        assert!(
            verify(SECRET, &h(ID, TS, GOOD), BODY, TS - 400).is_err(),
            "too new"
        );
        assert!(verify(SECRET, &h(ID, TS, GOOD), BODY, TS + 290).is_ok());
        let v2 = GOOD.replacen("v1,", "v2,", 1);
        assert!(
            verify(SECRET, &h(ID, TS, &v2), BODY, TS).is_err(),
            "only v2"
        );
        let rotation = format!("v1,Zm9vYmFy {GOOD}");
        assert!(
            verify(SECRET, &h(ID, TS, &rotation), BODY, TS).is_ok(),
            "rotation"
        );
        assert!(verify(SECRET, &Headers::new(), BODY, TS).is_err());
        assert_eq!(
            verify("whsec_!!notbase64", &h(ID, TS, GOOD), BODY, TS)
                .unwrap_err()
                .kind(),
            recon_core::ErrorKind::Config
        );
    }

    #[test]
    fn unbranded_headers() {
        let mut hh = Headers::new();
        hh.insert("webhook-id", ID.parse().unwrap());
        hh.insert("webhook-timestamp", TS.to_string().parse().unwrap());
        hh.insert("webhook-signature", GOOD.parse().unwrap());
        assert!(verify(SECRET, &hh, BODY, TS).is_ok());
    }
}
