//! The adapter under recon-core's engine with an in-memory SQLite store:
//! what the adapter's errors mean for a sweep (nothing deleted), deletions
//! confirmed by fetching, webhook ordering, on-demand, and replay.

use std::sync::Arc;

use recon_clerk::sign;
use recon_core::{Engine, ErrorKind, OneOutcome, Provider, RunStatus, Store, SweepOptions};
use recon_store_sqlite::SqliteStore;
use serde_json::json;

use crate::fake::{Fake, WHSEC, membership, provider, user};

async fn engine(uri: &str, page_size: u32) -> (Engine, Arc<dyn Store>) {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let p: Arc<dyn Provider> = Arc::new(provider(uri, page_size));
    (Engine::new(store.clone(), p), store)
}

async fn live(store: &Arc<dyn Store>, kind: &str) -> u64 {
    store.count_live("clerk", "default", kind).await.unwrap()
}

#[tokio::test]
async fn a_failed_or_incomplete_user_listing_deletes_nothing() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(7);
    let (engine, store) = engine(&server.uri(), 3).await;
    let opts = SweepOptions::default();
    let run = engine.sweep("users", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(live(&store, "users").await, 7);

    // Two users are deleted at Clerk, and the listing breaks on page 2.
    fake.with(|d| {
        d.remove("user_001");
        d.remove("user_005");
    });
    fake.break_after("/v1/users", 1);
    let run = engine.sweep("users", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("nothing deleted"),
        "{:?}",
        run.error
    );
    assert_eq!(
        live(&store, "users").await,
        7,
        "nothing deleted from a partial listing"
    );

    // The listing completes but Clerk counts more users than it returned.
    fake.heal();
    fake.with(|d| d.count_bias = 1);
    let run = engine.sweep("users", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("incomplete"),
        "{:?}",
        run.error
    );
    assert_eq!(live(&store, "users").await, 7);

    // A sound listing: the two deletions are confirmed by fetching (404).
    fake.with(|d| d.count_bias = 0);
    let run = engine.sweep("users", &opts).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.deleted, 2);
    assert_eq!(live(&store, "users").await, 5);
    assert_eq!(fake.count("/v1/users/user_001"), 1);
}

#[tokio::test]
async fn a_deleted_membership_is_confirmed_by_a_fresh_adapter() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(2);
    fake.with(|d| {
        for i in 0..5 {
            let u = if i % 2 == 0 { "user_000" } else { "user_001" };
            d.memberships.push(membership(
                &format!("orgmem_{i}"),
                "org_1",
                u,
                1_700_000_000_000 + i,
            ));
        }
    });
    let (first, store) = engine(&server.uri(), 2).await;
    let run = first
        .sweep("organization_memberships", &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(live(&store, "organization_memberships").await, 5);

    // A new process (the CLI) sweeps after one membership was removed.
    fake.with(|d| d.remove("orgmem_3"));
    let fresh = Engine::new(store.clone(), Arc::new(provider(&server.uri(), 2)));
    let run = fresh
        .sweep("organization_memberships", &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.counts.deleted, 1);
    assert_eq!(live(&store, "organization_memberships").await, 4);
    let gone = store
        .get_many(
            "clerk",
            "default",
            "organization_memberships",
            &["orgmem_3"],
        )
        .await
        .unwrap();
    assert!(gone[0].snapshot.deleted);
}

fn signed(id: &str, envelope: &serde_json::Value) -> (http::HeaderMap, Vec<u8>) {
    let body = serde_json::to_vec(envelope).unwrap();
    let now = recon_core::now_ms() / 1000;
    let mut h = http::HeaderMap::new();
    h.insert("svix-id", id.parse().unwrap());
    h.insert("svix-timestamp", now.to_string().parse().unwrap());
    h.insert(
        "svix-signature",
        sign(WHSEC, id, now, &body).parse().unwrap(),
    );
    (h, body)
}

#[tokio::test]
async fn webhooks_apply_in_version_order_once() {
    let fake = Fake::new();
    let server = fake.start().await;
    let (engine, store) = engine(&server.uri(), 10).await;
    let mut older = user("user_1", 1_000);
    older["first_name"] = json!("Old");
    let mut newer = older.clone();
    newer["updated_at"] = json!(5_000);
    newer["first_name"] = json!("New");
    let ev = |ty: &str, ts: i64, data: &serde_json::Value| json!({"type": ty, "object": "event", "timestamp": ts, "data": data, "instance_id": "ins_1"});

    let (h, b) = signed("msg_new", &ev("user.updated", 5_100, &newer));
    let r = engine.ingest_webhook(&h, &b).await.unwrap();
    assert_eq!(r.applied, 1);
    // The older update arrives late: refused by the version guard.
    let (h, b) = signed("msg_old", &ev("user.updated", 1_100, &older));
    let r = engine.ingest_webhook(&h, &b).await.unwrap();
    assert_eq!((r.applied, r.stale), (0, 1));
    // Svix redelivers the same message: a duplicate.
    let (h, b) = signed("msg_new", &ev("user.updated", 5_100, &newer));
    assert!(engine.ingest_webhook(&h, &b).await.unwrap().duplicate);
    let got = store
        .get_many("clerk", "default", "users", &["user_1"])
        .await
        .unwrap();
    assert_eq!(got[0].snapshot.data["first_name"], "New");

    let (h, b) = signed(
        "msg_del",
        &ev(
            "user.deleted",
            6_000,
            &json!({"id": "user_1", "object": "user", "deleted": true}),
        ),
    );
    assert_eq!(engine.ingest_webhook(&h, &b).await.unwrap().applied, 1);
    assert_eq!(live(&store, "users").await, 0);
    let (h, b) = signed(
        "msg_sess",
        &ev("session.created", 6_001, &json!({"id": "sess_1"})),
    );
    assert!(engine.ingest_webhook(&h, &b).await.unwrap().ignored);

    // A forged one writes nothing.
    let (mut h, b) = signed(
        "msg_forged",
        &ev("user.created", 7_000, &user("user_9", 7_000)),
    );
    h.insert("svix-signature", "v1,AAAA".parse().unwrap());
    assert_eq!(
        engine.ingest_webhook(&h, &b).await.unwrap_err().kind(),
        ErrorKind::BadSignature
    );
    assert!(
        store
            .get_many("clerk", "default", "users", &["user_9"])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn on_demand_and_replay() {
    let fake = Fake::new();
    let server = fake.start().await;
    fake.add_users(2);
    fake.with(|d| {
        d.memberships.push(membership(
            "orgmem_1",
            "org_1",
            "user_001",
            1_700_000_000_000,
        ))
    });
    let (engine, store) = engine(&server.uri(), 10).await;

    let out = engine.reconcile_one(None, "user_000", false).await.unwrap();
    assert!(matches!(out, OneOutcome::Fixed { .. }), "{out:?}");
    let out = engine.reconcile_one(None, "user_000", false).await.unwrap();
    assert!(matches!(out, OneOutcome::AlreadySynced { .. }), "{out:?}");
    fake.with(|d| d.remove("user_000"));
    let out = engine.reconcile_one(None, "user_000", false).await.unwrap();
    assert!(
        matches!(out, OneOutcome::Deleted { was_live: true, .. }),
        "{out:?}"
    );
    let out = engine.reconcile_one(None, "user_zzz", false).await.unwrap();
    assert!(matches!(out, OneOutcome::NotFound { .. }), "{out:?}");

    let out = engine.reconcile_owner("user_001", false).await.unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(live(&store, "organization_memberships").await, 1);

    let e = engine
        .replay(0, &SweepOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("recon reconcile clerk"), "{e}");
}
