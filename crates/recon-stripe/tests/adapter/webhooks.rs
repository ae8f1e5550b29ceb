//! `verify_webhook` through the provider: signature cases and parsing.

use recon_core::{ErrorKind, Headers, Provider};
use recon_stripe::ApiSettings;
use recon_stripe::{StripeProvider, sign, signature};

use crate::fake::config;

const SECRET: &str = "whsec_test_secret";
const T: i64 = 1_700_000_000;
const VECTOR_A_BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
const VECTOR_A_SIG: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

fn provider(secret: Option<&str>) -> StripeProvider {
    let c = config("http://127.0.0.1:9");
    StripeProvider::new(match secret {
        Some(s) => c.with_webhook_secret(s),
        None => c,
    })
    .unwrap()
}

fn headers(value: &str) -> Headers {
    let mut h = Headers::new();
    h.insert("Stripe-Signature", value.parse().unwrap());
    h
}

fn body() -> Vec<u8> {
    br#"{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1700000000,
        "api_version":"2025-03-31.basil","livemode":false,
        "data":{"object":{"id":"sub_1","object":"subscription","customer":"cus_1","status":"active"},
                "previous_attributes":{"status":"trialing"}}}"#
        .to_vec()
}

fn kind(p: &StripeProvider, h: &str, body: &[u8], now: i64) -> Result<(), ErrorKind> {
    p.verify_webhook(&headers(h), body, now)
        .map(|_| ())
        .map_err(|e| e.kind())
}

#[test]
fn vector_a_verifies_and_a_good_signature_with_a_bad_event_is_invalid_input() {
    let p = provider(Some(SECRET));
    let h = format!("t={T},v1={VECTOR_A_SIG}");
    // Vector A's body is signed correctly but is no full event (no type).
    assert_eq!(kind(&p, &h, VECTOR_A_BODY, T), Err(ErrorKind::InvalidInput));
    // Not JSON at all, signed correctly.
    let junk = b"not json";
    assert_eq!(
        kind(&p, &sign(SECRET, T, junk), junk, T),
        Err(ErrorKind::InvalidInput)
    );
}

#[test]
fn a_signed_event_is_parsed() {
    let p = provider(Some(SECRET));
    let b = body();
    let e = p
        .verify_webhook(&headers(&sign(SECRET, T, &b)), &b, T + 5)
        .unwrap();
    assert_eq!(e.event_id, "evt_1");
    assert_eq!(e.event_type, "customer.subscription.updated");
    assert_eq!(
        (e.provider.as_str(), e.account.as_str(), e.created),
        ("stripe", "default", T)
    );
    assert_eq!(e.snapshots.len(), 1);
    assert_eq!(e.snapshots[0].status.as_deref(), Some("active"));
    assert_eq!(e.snapshots[0].version, T);
}

#[test]
fn unknown_types_verify_with_no_snapshots() {
    let p = provider(Some(SECRET));
    let b = br#"{"id":"evt_2","object":"event","type":"radar.early_fraud_warning.created","created":1700000000,
                 "data":{"object":{"id":"issfr_1","object":"radar.early_fraud_warning"}}}"#;
    let e = p
        .verify_webhook(&headers(&sign(SECRET, T, b)), b, T)
        .unwrap();
    assert!(e.snapshots.is_empty());
    assert_eq!(e.event_id, "evt_2");
}

#[test]
fn signature_cases() {
    let p = provider(Some(SECRET));
    let b = body();
    let good = sign(SECRET, T, &b);
    assert_eq!(kind(&p, &good, &b, T), Ok(()));
    // Tampered body.
    let mut tampered = b.clone();
    tampered[10] ^= 1;
    assert_eq!(kind(&p, &good, &tampered, T), Err(ErrorKind::BadSignature));
    // Wrong secret.
    assert_eq!(
        kind(&p, &sign("whsec_other", T, &b), &b, T),
        Err(ErrorKind::BadSignature)
    );
    // Stale (older than 300 s) fails; exactly 300 s passes; future passes.
    assert_eq!(kind(&p, &good, &b, T + 301), Err(ErrorKind::BadSignature));
    assert_eq!(kind(&p, &good, &b, T + 300), Ok(()));
    assert_eq!(kind(&p, &good, &b, T - 1000), Ok(()));
    // Missing v1.
    let v0 = format!("t={T},v0={}", signature(SECRET, T, &b));
    assert_eq!(kind(&p, &v0, &b, T), Err(ErrorKind::BadSignature));
    // Several v1 (rotation): the right one anywhere in the list passes.
    let old = signature("whsec_previous", T, &b);
    let sig = signature(SECRET, T, &b);
    assert_eq!(kind(&p, &format!("t={T},v1={old},v1={sig}"), &b, T), Ok(()));
    assert_eq!(
        kind(&p, &format!("t={T},v1={sig},v1={old},v0=abc"), &b, T),
        Ok(())
    );
    assert_eq!(
        kind(&p, &format!("t={T},v1={old},v1=deadbeef"), &b, T),
        Err(ErrorKind::BadSignature)
    );
    // No header at all.
    assert_eq!(
        p.verify_webhook(&Headers::new(), &b, T).unwrap_err().kind(),
        ErrorKind::BadSignature
    );
}

#[test]
fn the_secret_is_the_whole_whsec_string() {
    let b = body();
    let header = sign(SECRET, T, &b);
    // Configured without the prefix: the key differs, nothing verifies.
    let stripped = provider(Some("test_secret"));
    assert_eq!(
        kind(&stripped, &header, &b, T),
        Err(ErrorKind::BadSignature)
    );
    // Vector A with the prefix-stripped key fails too.
    let h = format!("t={T},v1={VECTOR_A_SIG}");
    assert_eq!(
        kind(&stripped, &h, VECTOR_A_BODY, T),
        Err(ErrorKind::BadSignature)
    );
}

#[test]
fn without_a_webhook_secret_verification_is_a_config_error() {
    let p = provider(None);
    let b = body();
    let e = p
        .verify_webhook(&headers(&sign(SECRET, T, &b)), &b, T)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("STRIPE_WEBHOOK_SECRET"), "{e}");
}
