//! Signed, well-formed but hostile provider JSON on the webhook and listing
//! paths (issue 11, item 13), run against every store by
//! `tests/hostile_*.rs`.
//!
//! The rules checked:
//! - every webhook is answered 2xx, or refused with an error the server
//!   answers 4xx (`InvalidInput`, `BadSignature`; never a temporary one,
//!   which would be a 503 and a redelivery forever), on every redelivery;
//! - what the adapter accepted is stored *exactly* (data, status, owner,
//!   email, hash) unless its key cannot be stored, and then it is
//!   quarantined with its raw bytes; nothing else in the same group commit
//!   or listing page is held back;
//! - drift records give the exact documents back.

use recon_core::http_client::ApiSettings;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use recon_core::engine::SweepOptions;
use recon_core::store::DriftQuery;
use recon_core::types::{ProviderEvent, RunStatus, now_ms};
use recon_core::{Engine, ErrorKind, Headers, Provider, Store};
use recon_stripe::{StripeConfig, StripeProvider};
use serde_json::{Value, json};

const SECRET: &str = "whsec_hostile_test";

/// Read access to a store's quarantine (an inherent method of each store).
#[async_trait]
pub trait QuarantineView: Send + Sync {
    /// JSON-escaped ids of the quarantined objects.
    async fn quarantined_ids(&self) -> Vec<String>;
}

#[async_trait]
impl QuarantineView for recon_store_postgres::PgStore {
    async fn quarantined_ids(&self) -> Vec<String> {
        let q = self.quarantined(10_000).await.unwrap();
        for x in &q {
            let raw: Value = serde_json::from_slice(&x.raw).expect("raw snapshot is JSON");
            assert!(
                raw["key"]["id"].is_string() && !x.reason.is_empty(),
                "{x:?}"
            );
        }
        q.into_iter().map(|x| x.id).collect()
    }
}

#[async_trait]
impl QuarantineView for recon_store_sqlite::SqliteStore {
    async fn quarantined_ids(&self) -> Vec<String> {
        let q = self.quarantined(10_000).await.unwrap();
        for x in &q {
            let raw: Value = serde_json::from_slice(&x.raw).expect("raw snapshot is JSON");
            assert!(
                raw["key"]["id"].is_string() && !x.reason.is_empty(),
                "{x:?}"
            );
        }
        q.into_iter().map(|x| x.id).collect()
    }
}

/// A store and its quarantine.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub quarantine: Arc<dyn QuarantineView>,
}

fn stripe(api: &str) -> Arc<StripeProvider> {
    Arc::new(
        StripeProvider::new(
            StripeConfig::new("sk_test_hostile")
                .with_api_base(api)
                .with_webhook_secret(SECRET)
                .with_rate(recon_core::Rate::per_second(10_000)),
        )
        .expect("stripe provider"),
    )
}

/// `s` JSON-escaped without quotes, as the quarantine keeps ids.
fn escaped(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap();
    j[1..j.len() - 1].to_string()
}

/// Whether a quarantined id (JSON-escaped, a long one cut and ended with
/// `…`) is `id`.
fn same_id(quarantined: &str, id: &str) -> bool {
    let full = escaped(id);
    match quarantined.strip_suffix('…') {
        Some(cut) => full.len() > recon_store_postgres::MAX_KEY_BYTES && full.starts_with(cut),
        None => quarantined == full,
    }
}

/// Whether the stores will key this (the rule of both stores).
fn storable(parts: &[&str]) -> bool {
    !parts.iter().any(|p| p.contains('\0'))
        && parts.iter().map(|p| p.len()).sum::<usize>() <= recon_store_postgres::MAX_KEY_BYTES
}

/// Hostile customer objects as raw JSON text; `{ID}` is replaced by the id.
/// Each is valid JSON that serde_json parses (the ones it cannot parse are
/// in [`unparseable_objects`]).
pub fn hostile_objects() -> Vec<(&'static str, String)> {
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let v: Vec<(&str, String)> = vec![
        ("nul in name and email", r#"{"id":"{ID}","object":"customer","name":"a\u0000b","email":"x\u0000@example.com","created":1700000000}"#.into()),
        ("nul in a key", r#"{"id":"{ID}","object":"customer","metadata":{"k\u0000":"v","k\ufffd":"w"}}"#.into()),
        ("only nul", r#"{"id":"{ID}","object":"customer","name":"\u0000\u0000"}"#.into()),
        ("control characters", r#"{"id":"{ID}","object":"customer","name":"\u0001\u001f\u007f\b\f\n\r\t\"\\\/"}"#.into()),
        ("surrogate pair and non-characters", r#"{"id":"{ID}","object":"customer","name":"\ud83d\ude00\uffff\ufeff\u2028"}"#.into()),
        ("negative zero", r#"{"id":"{ID}","object":"customer","balance":-0.0,"x":-0}"#.into()),
        ("integral floats", r#"{"id":"{ID}","object":"customer","a":1e16,"b":1.2e17,"c":-9.5e18,"d":1.0,"e":1e15}"#.into()),
        ("30-digit integer", r#"{"id":"{ID}","object":"customer","balance":123456789012345678901234567890}"#.into()),
        ("extreme numbers", r#"{"id":"{ID}","object":"customer","a":1.7976931348623157e308,"b":5e-324,"c":-9223372036854775808,"d":18446744073709551615,"e":0.1,"f":1e-7}"#.into()),
        ("deep nesting", format!(r#"{{"id":"{{ID}}","object":"customer","metadata":{}}}"#, deep(100))),
        ("wrong types", r#"{"id":"{ID}","object":"customer","email":5,"created":"yesterday","deleted":"no","name":["a"],"metadata":null}"#.into()),
        ("missing fields", r#"{"id":"{ID}"}"#.into()),
        ("huge string", format!(r#"{{"id":"{{ID}}","object":"customer","name":"{}"}}"#, "x\\u0000".repeat(40_000))),
        ("nul in the id", r#"{"id":"{ID}\u0000x","object":"customer"}"#.into()),
        ("id too long", format!(r#"{{"id":"{{ID}}{}","object":"customer"}}"#, "y".repeat(2000))),
    ];
    v
}

/// Valid JSON that serde_json refuses to parse (the adapter answers
/// `InvalidInput` for a webhook; a listing page holding one fails whole).
pub fn unparseable_objects() -> Vec<(&'static str, String)> {
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    vec![
        (
            "lone surrogate",
            r#"{"id":"{ID}","object":"customer","name":"\ud800"}"#.into(),
        ),
        (
            "reversed surrogates",
            r#"{"id":"{ID}","object":"customer","name":"\udc00\ud800"}"#.into(),
        ),
        (
            "number out of range",
            r#"{"id":"{ID}","object":"customer","balance":1e400}"#.into(),
        ),
        (
            "nesting past serde_json's limit",
            format!(
                r#"{{"id":"{{ID}}","object":"customer","metadata":{}}}"#,
                deep(200)
            ),
        ),
    ]
}

/// Listing objects the adapter refuses one by one (no string id).
pub fn idless_objects() -> Vec<(&'static str, String)> {
    vec![
        ("no id", r#"{"object":"customer","name":"{ID}"}"#.into()),
        (
            "numeric id",
            r#"{"id":5,"object":"customer","name":"{ID}"}"#.into(),
        ),
    ]
}

fn event_body(id: &str, ty: &str, account: Option<&str>, object: &str) -> Vec<u8> {
    let created = now_ms() / 1000;
    let account = account
        .map(|a| format!(r#""account":{},"#, serde_json::to_string(a).unwrap()))
        .unwrap_or_default();
    format!(
        r#"{{"id":{},"object":"event","type":{},{account}"created":{created},"data":{{"object":{object}}}}}"#,
        serde_json::to_string(id).unwrap(),
        serde_json::to_string(ty).unwrap()
    )
    .into_bytes()
}

fn signed(body: &[u8]) -> Headers {
    let mut h = Headers::new();
    h.insert(
        "Stripe-Signature",
        recon_stripe::sign(SECRET, now_ms() / 1000, body)
            .parse()
            .unwrap(),
    );
    h
}

/// Random documents full of what databases dislike: NUL and control
/// characters, astral and non-characters, every kind of finite float,
/// integers at the edges, nesting. Deterministic (proptest's fixed seed).
fn generated_objects(n: usize) -> Vec<Value> {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let text = "[\\x00-\\x1f\\x7f a\u{fffd}\u{feff}\u{10000}-\u{10ffff}\"\\\\]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::num::f64::ANY
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(-0.0f64),
            Just(1e16),
            Just(-1e17),
            Just(1e300),
            Just(5e-324)
        ]
        .prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    let doc = leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let object = (text, text, doc);
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|i| {
            let (name, email, metadata) = object.new_tree(&mut runner).unwrap().current();
            json!({"id": format!("cus_gen{i:03}"), "object": "customer", "name": name,
                   "email": email, "metadata": metadata, "created": 1_700_000_000})
        })
        .collect()
}

/// The stored object equals the adapter's snapshot exactly.
async fn assert_stored_exactly(store: &dyn Store, want: &recon_core::Snapshot, label: &str) {
    let got = store
        .get_many(
            &want.key.provider,
            &want.key.account,
            &want.key.kind,
            &[&want.key.id],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "{label}: not in the mirror");
    let s = &got[0].snapshot;
    assert!(
        s.data == want.data
            && serde_json::to_string(&s.data).unwrap()
                == serde_json::to_string(&want.data).unwrap(),
        "{label}: document changed in the store"
    );
    assert_eq!(
        (&s.status, &s.owner, &s.email, &s.hash, s.deleted),
        (
            &want.status,
            &want.owner,
            &want.email,
            &want.hash,
            want.deleted
        ),
        "{label}: extracted fields changed in the store"
    );
}

/// Webhooks: a fixed hostile corpus, event-level hostility and generated
/// documents, delivered at once (so group commits mix them with good
/// events), then all redelivered.
pub async fn webhook_hostile_corpus(fx: Fixture) {
    let provider = stripe("http://127.0.0.1:9");
    let engine = Engine::new(fx.store.clone(), provider.clone());
    let mut deliveries: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (label, raw)) in hostile_objects()
        .into_iter()
        .chain(unparseable_objects())
        .chain(idless_objects())
        .enumerate()
    {
        let obj = raw.replace("{ID}", &format!("cus_h{i:02}"));
        deliveries.push((
            label.to_string(),
            event_body(&format!("evt_h{i:02}"), "customer.updated", None, &obj),
        ));
    }
    let sub = r#"{"id":"sub_h1","object":"subscription","status":"act\u0000ive","customer":"cus_\u0000x"}"#;
    deliveries.push((
        "subscription with nul in status and owner".into(),
        event_body("evt_sub1", "customer.subscription.updated", None, sub),
    ));
    let long_owner = format!(
        r#"{{"id":"sub_h2","object":"subscription","status":"active","customer":"cus_{}"}}"#,
        "o".repeat(3000)
    );
    deliveries.push((
        "subscription with an owner too long to index".into(),
        event_body(
            "evt_sub2",
            "customer.subscription.updated",
            None,
            &long_owner,
        ),
    ));
    let plain = |id: &str| format!(r#"{{"id":"{id}","object":"customer","name":"ok"}}"#);
    for (label, id, ty, account) in [
        (
            "nul in the event id",
            "evt_\u{0}1",
            "customer.updated",
            None,
        ),
        (
            "event id too long",
            &*"e".repeat(2000),
            "customer.updated",
            None,
        ),
        (
            "nul in the event type",
            "evt_t1",
            "customer.updated\u{0}",
            None,
        ),
        (
            "nul in the account",
            "evt_a1",
            "customer.updated",
            Some("acct_\u{0}"),
        ),
    ] {
        deliveries.push((label.into(), event_body(id, ty, account, &plain("cus_ev"))));
    }
    for (label, body) in [
        ("created out of range", br#"{"id":"evt_c1","object":"event","type":"customer.updated","created":1e400,"data":{"object":{"id":"cus_c1"}}}"#.to_vec()),
        ("created as a string", br#"{"id":"evt_c2","object":"event","type":"customer.updated","created":"now","data":{"object":{"id":"cus_c2"}}}"#.to_vec()),
        ("object is a string", br#"{"id":"evt_c3","object":"event","type":"customer.updated","created":1700000000,"data":{"object":"cus_c3"}}"#.to_vec()),
        ("no data", br#"{"id":"evt_c4","object":"event","type":"customer.updated","created":1700000000}"#.to_vec()),
        ("envelope is an array", b"[1,2,3]".to_vec()),
    ] {
        deliveries.push((label.into(), body));
    }
    for (i, v) in generated_objects(48).into_iter().enumerate() {
        let obj = serde_json::to_string(&v).unwrap();
        deliveries.push((
            format!("generated {i}: {obj:.120}"),
            event_body(&format!("evt_gen{i:03}"), "customer.updated", None, &obj),
        ));
    }
    let good: Vec<String> = (0..20).map(|i| format!("cus_good{i:02}")).collect();
    for (i, id) in good.iter().enumerate() {
        deliveries.push((
            format!("good {id}"),
            event_body(
                &format!("evt_good{i:02}"),
                "customer.updated",
                None,
                &plain(id),
            ),
        ));
    }

    // All at once: group commits hold good and hostile events together.
    let mut set = tokio::task::JoinSet::new();
    for (n, (_, body)) in deliveries.iter().enumerate() {
        let (e, body) = (engine.clone(), body.clone());
        set.spawn(async move { (n, e.ingest_webhook(&signed(&body), &body).await) });
    }
    let mut first: HashMap<usize, recon_core::Result<recon_core::engine::IngestReport>> =
        HashMap::new();
    while let Some(r) = set.join_next().await {
        let (n, res) = r.expect("no panic while ingesting");
        first.insert(n, res);
    }

    let mut quarantined_expected = Vec::new();
    for (n, (label, body)) in deliveries.iter().enumerate() {
        let res = &first[&n];
        let parsed: recon_core::Result<ProviderEvent> =
            provider.verify_webhook(&signed(body), body, now_ms() / 1000);
        match (&parsed, res) {
            (Err(pe), Err(e)) => {
                assert_eq!(e.kind(), pe.kind(), "{label}: {e}");
            }
            (Err(pe), Ok(r)) => panic!("{label}: adapter refuses ({pe}) but ingest said {r:?}"),
            (Ok(ev), res) => {
                let event_ok = storable(&[&ev.provider, &ev.account, &ev.event_id])
                    && !ev.event_type.contains('\0');
                if !event_ok {
                    let e = res.as_ref().expect_err(label);
                    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{label}: {e}");
                    assert!(
                        matches!(e.component(), "postgres" | "sqlite"),
                        "{label}: refused by the store, so the server answers 422: {e:?}"
                    );
                    continue;
                }
                let r = match res {
                    Ok(r) => r,
                    Err(e) => panic!("{label}: a well-formed event was refused: {e:?}"),
                };
                assert!(!r.duplicate, "{label}");
                for s in &ev.snapshots {
                    if storable(&[&s.key.provider, &s.key.account, &s.key.kind, &s.key.id]) {
                        assert_stored_exactly(fx.store.as_ref(), s, label).await;
                    } else {
                        quarantined_expected.push(s.key.id.clone());
                    }
                }
            }
        }
        if let Err(e) = res {
            assert!(
                matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::BadSignature)
                    && !e.is_temporary(),
                "{label}: must be answered 4xx, got {e:?}"
            );
        }
    }
    // The NUL name (the issue's reproduction) is stored, not refused.
    assert!(
        first[&0].as_ref().is_ok_and(|r| r.applied == 1),
        "{:?}",
        first[&0]
    );
    let q = fx.quarantine.quarantined_ids().await;
    assert_eq!(
        q.len(),
        quarantined_expected.len(),
        "quarantined: {q:.200?}"
    );
    for id in &quarantined_expected {
        assert!(
            q.iter().any(|x| same_id(x, id)),
            "{id:.80} is not quarantined"
        );
    }
    for id in &good {
        let got = fx
            .store
            .get_many("stripe", "default", "customers", &[id])
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{id} was held back by a hostile neighbour");
    }

    // Redelivery: the same answer class, never a temporary error.
    for (n, (label, body)) in deliveries.iter().enumerate() {
        let again = engine.ingest_webhook(&signed(body), body).await;
        match (&first[&n], again) {
            (Ok(_), Ok(r)) => assert!(r.duplicate, "{label}: redelivery is a duplicate"),
            (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind(), "{label}: {b}"),
            (a, b) => panic!("{label}: first {a:?}, redelivered {b:?}"),
        }
    }
}

/// A wiremock Stripe serving one listing of customers (raw JSON texts, one
/// page) and retrieves of them.
struct Listing {
    objects: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl wiremock::Respond for Listing {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        let objects = self.objects.lock().unwrap();
        let path = req.url.path();
        if path == "/v1/customers" {
            let data: Vec<&str> = objects.iter().map(|(_, raw)| raw.as_str()).collect();
            let body = format!(
                r#"{{"object":"list","url":"/v1/customers","has_more":false,"data":[{}]}}"#,
                data.join(",")
            );
            return wiremock::ResponseTemplate::new(200).set_body_raw(body, "application/json");
        }
        if let Some(id) = path.strip_prefix("/v1/customers/")
            && let Some((_, raw)) = objects.iter().find(|(i, _)| i == id)
        {
            return wiremock::ResponseTemplate::new(200)
                .set_body_raw(raw.clone(), "application/json");
        }
        wiremock::ResponseTemplate::new(404).set_body_json(json!({"error": {
            "type": "invalid_request_error", "code": "resource_missing", "message": "No such customer"}}))
    }
}

/// The listing path: a page of 50 customers and one hostile object. The 50
/// are mirrored whatever the hostile one holds; the hostile one is mirrored
/// exactly, or quarantined when its key cannot be stored. A second sweep
/// after it changed logs drift with the exact before and after (the first,
/// a backfill, logs none).
pub async fn listing_with_one_hostile_object(fx: Fixture, label: &str, raw: &str) {
    let server = wiremock::MockServer::start().await;
    let id = "cus_hostile";
    let raw = raw.replace("{ID}", id);
    let mut objects: Vec<(String, String)> = (0..50)
        .map(|i| {
            let id = format!("cus_n{i:03}");
            let raw = format!(
                r#"{{"id":"{id}","object":"customer","name":"n{i}","created":{}}}"#,
                1_700_000_000 + i
            );
            (id, raw)
        })
        .collect();
    objects.insert(25, (id.to_string(), raw.clone()));
    let shared = Arc::new(std::sync::Mutex::new(objects));
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(Listing {
            objects: shared.clone(),
        })
        .mount(&server)
        .await;
    let engine = Engine::new(fx.store.clone(), stripe(&server.uri()));

    let run = engine
        .sweep("customers", &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{label}: {run:?}");
    for i in 0..50 {
        let id = format!("cus_n{i:03}");
        let got = fx
            .store
            .get_many("stripe", "default", "customers", &[&id])
            .await
            .unwrap();
        assert_eq!(
            got.len(),
            1,
            "{label}: {id} held back by the hostile object"
        );
    }
    // What the adapter cannot read has nothing more to check.
    let Ok(want) = serde_json::from_str::<Value>(&raw) else {
        return;
    };
    let Some(want_id) = want["id"].as_str().map(str::to_string) else {
        return;
    };
    let key_ok = storable(&["stripe", "default", "customers", &want_id]);
    let got = fx
        .store
        .get_many("stripe", "default", "customers", &[&want_id])
        .await
        .unwrap();
    if !key_ok {
        assert!(got.is_empty(), "{label}");
        let q = fx.quarantine.quarantined_ids().await;
        assert!(
            q.len() == 1 && same_id(&q[0], &want_id),
            "{label}: {q:.200?}"
        );
        assert_eq!(run.counts.inserted, 50, "{label}: {run:?}");
        return;
    }
    assert_eq!(got.len(), 1, "{label}: the hostile object is not mirrored");
    assert_eq!(
        got[0].snapshot.data, want,
        "{label}: document changed in the store"
    );
    assert_eq!(
        serde_json::to_string(&got[0].snapshot.data).unwrap(),
        serde_json::to_string(&want).unwrap(),
        "{label}"
    );

    // It changes at the provider: the next sweep logs the exact before/after.
    let changed = raw.replacen(r#""id":"#, r#""changed":"\u0000yes","id":"#, 1);
    shared.lock().unwrap()[25].1 = changed.clone();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let run = engine
        .sweep("customers", &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{label}: {run:?}");
    let after: Value = serde_json::from_str(&changed).unwrap();
    let drift = fx
        .store
        .drift(&DriftQuery {
            run_id: Some(run.id.clone()),
            limit: 1000,
            ..DriftQuery::default()
        })
        .await
        .unwrap();
    let d = drift
        .iter()
        .find(|d| d.key.id == want_id)
        .expect("drift record of the change");
    assert_eq!(
        (d.before.as_ref(), d.after.as_ref()),
        (Some(&want), Some(&after)),
        "{label}"
    );
}

/// One test per listing case, for a `make` returning a [`Fixture`].
#[macro_export]
macro_rules! hostile_tests {
    ($make:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn webhook_hostile_corpus() {
            $crate::hostile::webhook_hostile_corpus($make().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn listing_with_one_hostile_object() {
            for (label, raw) in $crate::hostile::hostile_objects() {
                $crate::hostile::listing_with_one_hostile_object($make().await, label, &raw).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "known gap in recon-stripe: Client::attempt parses the whole list body with serde_json, so one object serde_json cannot parse (lone surrogate, 1e400, nesting past 128) fails the whole page and the sweep"]
        async fn listing_with_one_unparseable_object() {
            for (label, raw) in $crate::hostile::unparseable_objects() {
                $crate::hostile::listing_with_one_hostile_object($make().await, label, &raw).await;
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "known gap in recon-stripe: client::parse_list refuses a page where one object has no string id, and StripeProvider::list_page collects to_snapshot results with `?`, so one such object fails the whole page and the sweep"]
        async fn listing_with_one_idless_object() {
            for (label, raw) in $crate::hostile::idless_objects() {
                $crate::hostile::listing_with_one_hostile_object($make().await, label, &raw).await;
            }
        }
    };
}
