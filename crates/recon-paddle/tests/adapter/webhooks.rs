//! `Paddle-Signature` against the vectors of Paddle's own SDKs
//! (docs/PROVIDERS.md, "Paddle Billing"), and the notification body.

use recon_core::testkit::conformance::FakeApi;
use recon_core::{ErrorKind, Headers, Provider};
use recon_paddle::{PaddleProvider, SIGNATURE, parse_event};
use serde_json::json;

use crate::conformance::{Paddle, provider, time};

fn headers(sig: &str) -> Headers {
    let mut h = Headers::new();
    h.insert("paddle-signature", sig.parse().unwrap());
    h
}

/// paddle-go-sdk `example_webhook_verifier_test.go`.
const GO_SECRET: &str = "pdl_ntfset_01hsdn8d43dt7mezr1ef2jtbaw_hKkRiCGyyRhbFwIUuqiTBgI7gnWoV0Gr";
const GO_SIG: &str =
    "ts=1710929255;h1=6c05ef8fa83c44d751be6d259ec955ce5638e2c54095bf128e408e2fce1589c8";
const GO_BODY: &str = r#"{"data":{"id":"pri_01hsdn96k2hxjzsq5yerecdj9j","name":null,"status":"active","quantity":{"maximum":999999,"minimum":1},"tax_mode":"account_setting","product_id":"pro_01hsdn8qp7yydry3x1yeg6a9rv","unit_price":{"amount":"1000","currency_code":"USD"},"custom_data":null,"description":"testing","import_meta":null,"trial_period":null,"billing_cycle":{"interval":"month","frequency":1},"unit_price_overrides":[]},"event_id":"evt_01hsdn97563968dy0szkmgjwh3","event_type":"price.created","occurred_at":"2024-03-20T10:07:35.590857Z","notification_id":"ntf_01hsdn977e920kbgzt6r6c9rqc"}"#;

/// `Paddle-Signature` checked on `headers` at `now` with `tolerance` s.
fn verify_signature(
    secret: &str,
    headers: &Headers,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> recon_core::Result<i64> {
    let var = "PADDLE_WEBHOOK_SECRET";
    SIGNATURE.verify_headers(secret, headers, body, (now, tolerance), var)
}

#[test]
fn sdk_vectors_verify() {
    let now = 1_710_929_255 + 1;
    assert_eq!(GO_BODY.len(), 575);
    verify_signature(GO_SECRET, &headers(GO_SIG), GO_BODY.as_bytes(), now, 300).unwrap();
    assert_eq!(
        SIGNATURE.sign(GO_SECRET, 1_710_929_255, GO_BODY.as_bytes()),
        GO_SIG
    );
    // paddle-node-sdk webhooks-validator.test.ts
    let node = "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9";
    verify_signature(
        "VALID_SECRET",
        &headers(node),
        br#"{"data": ["1", "2"]}"#,
        1_698_796_800,
        5,
    )
    .unwrap();
    // paddle-python-sdk test_Verifier.py: several h1, one of them junk.
    let py = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02";
    let secret = "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh";
    verify_signature(secret, &headers(py), b"hello-world", 1_696_195_954, 5).unwrap();
    let e = verify_signature(
        "pdl_ntf_other",
        &headers(py),
        b"hello-world",
        1_696_195_954,
        5,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadSignature);
}

#[test]
fn the_sdk_vector_parses_into_a_price() {
    let ev = parse_event(serde_json::from_str(GO_BODY).unwrap()).unwrap();
    assert_eq!(ev.event_id, "evt_01hsdn97563968dy0szkmgjwh3");
    assert_eq!(ev.event_type, "price.created");
    assert_eq!(ev.created, 1_710_929_255_590_857);
    let [s] = ev.snapshots.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (s.key.kind.as_str(), s.key.id.as_str()),
        ("prices", "pri_01hsdn96k2hxjzsq5yerecdj9j")
    );
    // No updated_at in the payload: versioned by the event's time.
    assert_eq!(s.version, ev.created);
    assert_eq!(s.status.as_deref(), Some("active"));
}

#[test]
fn malformed_headers_are_bad_signatures() {
    let body = GO_BODY.as_bytes();
    let now = 1_710_929_256;
    for sig in [
        "",
        "h1=6c05",
        "ts=abc;h1=6c05",
        "ts=1710929255",
        "t=1710929255,v1=6c05",
    ] {
        let e = verify_signature(GO_SECRET, &headers(sig), body, now, 300).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadSignature, "{sig}: {e}");
    }
    let e = verify_signature(GO_SECRET, &Headers::new(), body, now, 300).unwrap_err();
    assert!(e.to_string().contains("Paddle-Signature"), "{e}");
    // Stale by one second past the tolerance; the future is accepted.
    assert!(verify_signature(GO_SECRET, &headers(GO_SIG), body, 1_710_929_255 + 301, 300).is_err());
    verify_signature(GO_SECRET, &headers(GO_SIG), body, 1_710_929_255 - 3600, 300).unwrap();
}

#[tokio::test]
async fn bodies_and_types_recon_does_not_mirror() {
    let fake = FakeApi::start(std::sync::Arc::new(Paddle), 0).await;
    let p = provider(&fake.uri(), 10);
    let now = 1_800_000_000;
    let deliver = |body: &[u8]| {
        let sig = SIGNATURE.sign(
            &recon_core::testkit::conformance::Fixture::secret(&Paddle, 0),
            now,
            body,
        );
        p.verify_webhook(&headers(&sig), body, now)
    };
    // Signed but not JSON, or not an event: invalid input, not a panic.
    assert_eq!(
        deliver(b"{not json").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        deliver(b"[1,2]").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let no_time = json!({"event_id": "evt_1", "event_type": "customer.updated", "data": {}});
    assert_eq!(
        deliver(no_time.to_string().as_bytes()).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // A customer event whose data is not a customer is refused too.
    let wrong = json!({"event_id": "evt_2", "event_type": "customer.updated",
        "occurred_at": time(now), "data": {"id": "sub_01abc"}});
    assert_eq!(
        deliver(wrong.to_string().as_bytes()).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // An entity recon does not mirror: recorded, no snapshots.
    let other = json!({"event_id": "evt_3", "event_type": "address.created",
        "occurred_at": time(now), "data": {"id": "add_01abc"}});
    let ev = deliver(other.to_string().as_bytes()).unwrap();
    assert!(ev.snapshots.is_empty());
    assert_eq!(ev.event_id, "evt_3");
}

#[test]
fn without_a_secret_webhooks_are_a_config_error() {
    let p = PaddleProvider::new(recon_paddle::config("pdl_live_apikey_x")).unwrap();
    let body = b"{}";
    let e = p
        .verify_webhook(&headers(&SIGNATURE.sign("x", 1, body)), body, 1)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("PADDLE_WEBHOOK_SECRET"), "{e}");
}
