//! Svix signatures (docs/PROVIDERS.md §2.6) and the mapping of Clerk webhook
//! envelopes to events.

use http::{HeaderMap, HeaderName, HeaderValue};
use recon_clerk::ApiSettings;
use recon_clerk::{ClerkConfig, ClerkProvider, sign, signing_key, verify_signature};
use recon_core::{ErrorKind, Provider};
use serde_json::{Value, json};

use crate::fake::{WHSEC, provider, user};

// The official Svix vector (svix-webhooks go/js/java/kotlin/csharp tests).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const CSHARP_NEGATIVE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLawdd";

fn headers(prefix: &str, id: &str, ts: i64, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("id", id.to_string()),
        ("timestamp", ts.to_string()),
        ("signature", sig.to_string()),
    ] {
        h.insert(
            HeaderName::from_bytes(format!("{prefix}-{name}").as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    h
}

fn check(h: &HeaderMap, body: &[u8], now: i64) -> Result<String, ErrorKind> {
    let key = signing_key(SECRET).unwrap();
    verify_signature(&key, h, body, now, 300)
        .map(|d| d.id)
        .map_err(|e| e.kind())
}

#[test]
fn the_official_vector_passes() {
    assert_eq!(sign(SECRET, MSG_ID, TS, BODY), SIG);
    let h = headers("svix", MSG_ID, TS, SIG);
    assert_eq!(check(&h, BODY, TS), Ok(MSG_ID.to_string()));
    assert_eq!(check(&h, BODY, TS + 10), Ok(MSG_ID.to_string()));
}

#[test]
fn the_negative_csharp_vector_fails() {
    let h = headers("svix", MSG_ID, TS, CSHARP_NEGATIVE);
    assert_eq!(check(&h, BODY, TS), Err(ErrorKind::BadSignature));
}

#[test]
fn tampered_bodies_and_wrong_keys_fail() {
    let h = headers("svix", MSG_ID, TS, SIG);
    assert_eq!(
        check(&h, br#"{"test": 2432232315}"#, TS),
        Err(ErrorKind::BadSignature)
    );
    assert_eq!(
        check(&h, br#"{"test":2432232314}"#, TS),
        Err(ErrorKind::BadSignature)
    );
    let other = sign("whsec_c2VjcmV0LW90aGVyLWtleS0xMjM0NTY=", MSG_ID, TS, BODY);
    assert_eq!(
        check(&headers("svix", MSG_ID, TS, &other), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
    // The id and the timestamp are signed too.
    assert_eq!(
        check(&headers("svix", "msg_other", TS, SIG), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
    assert_eq!(
        check(&headers("svix", MSG_ID, TS + 1, SIG), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
}

#[test]
fn the_tolerance_is_five_minutes_both_ways() {
    let now = 1_700_000_000;
    let at = |ts: i64| {
        let sig = sign(SECRET, MSG_ID, ts, BODY);
        check(&headers("svix", MSG_ID, ts, &sig), BODY, now)
    };
    assert_eq!(at(now - 400), Err(ErrorKind::BadSignature), "stale");
    assert_eq!(at(now + 400), Err(ErrorKind::BadSignature), "future");
    assert!(at(now - 290).is_ok());
    assert!(at(now + 290).is_ok());
    assert!(at(now - 300).is_ok() && at(now + 300).is_ok());
    assert!(at(now - 301).is_err() && at(now + 301).is_err());
    // The official vector is long stale against a real clock.
    assert_eq!(
        check(&headers("svix", MSG_ID, TS, SIG), BODY, now),
        Err(ErrorKind::BadSignature)
    );
}

#[test]
fn only_v1_entries_count_and_any_one_may_match() {
    let v2_only = SIG.replace("v1,", "v2,");
    assert_eq!(
        check(&headers("svix", MSG_ID, TS, &v2_only), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
    let wrong = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    for rotated in [
        format!("{wrong} {SIG}"),
        format!("{SIG} {wrong}"),
        format!("v2,abc {wrong}  {SIG} v1a,zzz"),
        format!("{CSHARP_NEGATIVE} {SIG}"),
    ] {
        assert!(
            check(&headers("svix", MSG_ID, TS, &rotated), BODY, TS).is_ok(),
            "{rotated}"
        );
    }
    let none = format!("{wrong} {CSHARP_NEGATIVE} v1,");
    assert_eq!(
        check(&headers("svix", MSG_ID, TS, &none), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
}

#[test]
fn unbranded_headers_are_accepted_and_missing_ones_refused() {
    let h = headers("webhook", MSG_ID, TS, SIG);
    assert_eq!(check(&h, BODY, TS), Ok(MSG_ID.to_string()));
    let mut h = headers("svix", MSG_ID, TS, SIG);
    h.remove("svix-signature");
    assert_eq!(check(&h, BODY, TS), Err(ErrorKind::BadSignature));
    let mut h = headers("svix", MSG_ID, TS, SIG);
    h.insert("svix-timestamp", HeaderValue::from_static("yesterday"));
    assert_eq!(check(&h, BODY, TS), Err(ErrorKind::BadSignature));
    assert_eq!(
        check(&HeaderMap::new(), BODY, TS),
        Err(ErrorKind::BadSignature)
    );
}

/// A signed delivery of `envelope` at unix second `now`.
fn deliver(
    p: &ClerkProvider,
    id: &str,
    envelope: &Value,
    now: i64,
) -> recon_core::Result<recon_core::ProviderEvent> {
    let body = serde_json::to_vec(envelope).unwrap();
    let h = headers("svix", id, now, &sign(WHSEC, id, now, &body));
    p.verify_webhook(&h, &body, now)
}

fn envelope(ty: &str, ts_ms: i64, data: Value) -> Value {
    json!({"data": data, "object": "event", "type": ty, "timestamp": ts_ms, "instance_id": "ins_1"})
}

#[test]
fn webhooks_map_to_events() {
    let p = provider("http://127.0.0.1:9", 10);
    let now = 1_700_000_100;

    let mut older = user("user_1", 1_700_000_000_000);
    older["updated_at"] = json!(1_700_000_050_000i64);
    older["first_name"] = json!("Old");
    let mut newer = older.clone();
    newer["updated_at"] = json!(1_700_000_090_000i64);
    newer["first_name"] = json!("New");

    let e = deliver(
        &p,
        "msg_created",
        &envelope(
            "user.created",
            1_700_000_000_500,
            user("user_1", 1_700_000_000_000),
        ),
        now,
    )
    .unwrap();
    assert_eq!(
        (e.provider.as_str(), e.account.as_str()),
        ("clerk", "default")
    );
    assert_eq!(e.event_id, "msg_created", "the svix-id is the ledger key");
    assert_eq!(e.event_type, "user.created");
    assert_eq!(e.created, 1_700_000_000_500);
    let s = &e.snapshots[0];
    assert_eq!(
        (s.key.kind.as_str(), s.key.id.as_str()),
        ("users", "user_1")
    );
    assert_eq!(s.email.as_deref(), Some("user_1@example.test"));
    assert_eq!(s.version, 1_700_000_000_001, "the user's updated_at");

    // Delivered late, an older update has a lower version than a newer one,
    // whatever the envelope timestamps say.
    let new = deliver(
        &p,
        "msg_new",
        &envelope("user.updated", 1_700_000_090_100, newer),
        now,
    )
    .unwrap();
    let old = deliver(
        &p,
        "msg_old",
        &envelope("user.updated", 1_700_000_095_000, older),
        now,
    )
    .unwrap();
    assert!(old.snapshots[0].version < new.snapshots[0].version);
    assert_eq!(new.snapshots[0].version, 1_700_000_090_000);

    // user.deleted carries only {id, deleted}: a tombstone at the envelope time.
    let del = deliver(
        &p,
        "msg_del",
        &envelope(
            "user.deleted",
            1_700_000_099_000,
            json!({"id": "user_1", "object": "user", "deleted": true}),
        ),
        now,
    )
    .unwrap();
    let t = &del.snapshots[0];
    assert!(t.deleted);
    assert_eq!(
        (t.key.kind.as_str(), t.key.id.as_str(), t.version),
        ("users", "user_1", 1_700_000_099_000)
    );
    assert!(t.version > new.snapshots[0].version);

    let org = deliver(
        &p,
        "msg_org",
        &envelope(
            "organization.deleted",
            1_700_000_099_001,
            json!({"id": "org_1", "object": "organization", "deleted": true}),
        ),
        now,
    )
    .unwrap();
    assert!(org.snapshots[0].deleted && org.snapshots[0].key.kind == "organizations");
    let org = deliver(
        &p,
        "msg_org2",
        &envelope("organization.updated", 1, crate::fake::org("org_2", 5)),
        now,
    )
    .unwrap();
    assert_eq!(
        (org.snapshots[0].key.id.as_str(), org.snapshots[0].version),
        ("org_2", 6)
    );

    // A membership: created is a snapshot owned by its user; deleted carries
    // the whole membership and tombstones it.
    let m = crate::fake::membership("orgmem_1", "org_2", "user_1", 1_700_000_000_000);
    let c = deliver(
        &p,
        "msg_m1",
        &envelope(
            "organizationMembership.created",
            1_700_000_000_100,
            m.clone(),
        ),
        now,
    )
    .unwrap();
    assert_eq!(c.snapshots[0].owner.as_deref(), Some("user_1"));
    assert_eq!(c.snapshots[0].status.as_deref(), Some("org:member"));
    let d = deliver(
        &p,
        "msg_m2",
        &envelope("organizationMembership.deleted", 1_700_000_099_500, m),
        now,
    )
    .unwrap();
    let t = &d.snapshots[0];
    assert!(t.deleted);
    assert_eq!(
        (t.key.id.as_str(), t.version, t.owner.as_deref()),
        ("orgmem_1", 1_700_000_099_500, Some("user_1"))
    );

    // Types recon does not mirror are acknowledged with no snapshots.
    for ty in [
        "session.created",
        "email.created",
        "organizationInvitation.accepted",
        "user.signed_in",
    ] {
        let e = deliver(&p, "msg_x", &envelope(ty, 1, json!({"id": "sess_1"})), now).unwrap();
        assert!(e.snapshots.is_empty(), "{ty}");
        assert_eq!(e.event_type, ty);
    }
}

#[test]
fn bad_bodies_and_missing_secrets_are_clear_errors() {
    let p = provider("http://127.0.0.1:9", 10);
    let now = 1_700_000_100;
    let body = b"{not json";
    let h = headers("svix", "msg_1", now, &sign(WHSEC, "msg_1", now, body));
    assert_eq!(
        p.verify_webhook(&h, body, now).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let e = deliver(&p, "msg_2", &json!({"data": {}, "timestamp": 1}), now).unwrap_err();
    assert!(e.message().contains("type"), "{e}");
    let e = deliver(
        &p,
        "msg_3",
        &envelope("user.updated", 1, json!({"first_name": "x"})),
        now,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // A forged delivery is refused before the body is read.
    let h = headers(
        "svix",
        "msg_4",
        now,
        &sign("whsec_c2VjcmV0LW90aGVyLWtleS0xMjM0NTY=", "msg_4", now, body),
    );
    assert_eq!(
        p.verify_webhook(&h, body, now).unwrap_err().kind(),
        ErrorKind::BadSignature
    );

    let unset =
        ClerkProvider::new(ClerkConfig::new("sk_test_x").with_api_base("http://127.0.0.1:9"))
            .unwrap();
    let e = unset
        .verify_webhook(&headers("svix", MSG_ID, TS, SIG), BODY, TS)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("CLERK_WEBHOOK_SECRET"), "{e}");
}
