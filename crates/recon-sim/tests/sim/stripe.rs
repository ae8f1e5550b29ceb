//! Stripe's list, retrieve and event endpoints.

use std::collections::HashSet;

use recon_sim::{MutationKind, MutationWeights, Provider};
use serde_json::Value;

use crate::common::*;

fn created(v: &Value) -> i64 {
    v["created"].as_i64().expect("created")
}

#[tokio::test]
async fn pagination_walks_to_the_end_both_ways() {
    let s = sim(11, 300, 300, 300).await;
    let http = client();
    let forward = stripe_all(&s, &http, "/v1/customers", "", 7).await;
    let truth = s.truth();
    assert_eq!(
        forward.len(),
        truth.live_count(Provider::Stripe, "customers")
    );
    let fwd_ids: Vec<String> = forward
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fwd_ids.iter().collect::<HashSet<_>>().len(),
        fwd_ids.len(),
        "no duplicates"
    );
    assert!(
        forward.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
        "newest first"
    );
    // Many sign-ups share a second: ties must still page cleanly.
    let seconds: HashSet<i64> = forward.iter().map(created).collect();
    assert!(seconds.len() < forward.len());

    // Backwards from the oldest, as stripe-node does with ending_before.
    let oldest = fwd_ids.last().unwrap().clone();
    let mut back: Vec<String> = Vec::new();
    let mut cursor = oldest.clone();
    loop {
        let (st, v) = stripe(
            &s,
            &http,
            &format!("/v1/customers?limit=9&ending_before={cursor}"),
        )
        .await;
        assert_eq!(st, 200);
        let page = ids(&v);
        let objs = v["data"].as_array().unwrap();
        assert!(
            objs.windows(2).all(|w| created(&w[0]) >= created(&w[1])),
            "pages stay newest first"
        );
        if page.is_empty() {
            break;
        }
        cursor = page[0].clone();
        back.extend(page.into_iter().rev());
        if !v["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let mut expected: Vec<String> = fwd_ids[..fwd_ids.len() - 1].to_vec();
    expected.reverse();
    assert_eq!(back, expected);
    s.shutdown().await;
}

#[tokio::test]
async fn created_filters() {
    let s = sim(12, 400, 0, 0).await;
    let http = client();
    let all = stripe_all(&s, &http, "/v1/customers", "", 100).await;
    let mid = created(&all[all.len() / 2]);
    for (filter, keep) in [
        (
            "created[gte]",
            Box::new(move |c: i64| c >= mid) as Box<dyn Fn(i64) -> bool>,
        ),
        ("created[gt]", Box::new(move |c| c > mid)),
        ("created[lt]", Box::new(move |c| c < mid)),
        ("created[lte]", Box::new(move |c| c <= mid)),
        ("created", Box::new(move |c| c == mid)),
    ] {
        let got = stripe_all(&s, &http, "/v1/customers", &format!("&{filter}={mid}"), 50).await;
        let want = all.iter().filter(|o| keep(created(o))).count();
        assert_eq!(got.len(), want, "{filter}");
        assert!(got.iter().all(|o| keep(created(o))), "{filter}");
    }
    let range = stripe_all(
        &s,
        &http,
        "/v1/customers",
        &format!("&created[gte]={}&created[lt]={}", mid - 86_400 * 30, mid),
        50,
    )
    .await;
    assert!(
        range
            .iter()
            .all(|o| created(o) >= mid - 86_400 * 30 && created(o) < mid)
    );
    s.shutdown().await;
}

#[tokio::test]
async fn subscription_status_and_customer_filters() {
    let s = sim(13, 300, 300, 600).await;
    let http = client();
    let truth = s.truth();
    let subs = truth.kind(Provider::Stripe, "subscriptions");
    let status_of = |v: &Value| v["status"].as_str().unwrap().to_string();
    let default = stripe_all(&s, &http, "/v1/subscriptions", "", 100).await;
    assert!(default.iter().all(|o| status_of(o) != "canceled"));
    let canceled_n = subs
        .values()
        .filter(|o| o.live().unwrap()["status"] == "canceled")
        .count();
    assert!(canceled_n > 0);
    assert_eq!(default.len(), subs.len() - canceled_n);
    let all = stripe_all(&s, &http, "/v1/subscriptions", "&status=all", 100).await;
    assert_eq!(all.len(), subs.len());
    let canceled = stripe_all(&s, &http, "/v1/subscriptions", "&status=canceled", 100).await;
    assert_eq!(canceled.len(), canceled_n);
    let ended = stripe_all(&s, &http, "/v1/subscriptions", "&status=ended", 100).await;
    assert!(
        ended
            .iter()
            .all(|o| ["canceled", "incomplete_expired"].contains(&status_of(o).as_str()))
    );
    let past_due = stripe_all(&s, &http, "/v1/subscriptions", "&status=past_due", 100).await;
    assert!(!past_due.is_empty() && past_due.iter().all(|o| status_of(o) == "past_due"));
    let (st, _) = stripe(&s, &http, "/v1/subscriptions?status=bogus").await;
    assert_eq!(st, 400);

    // One customer's subscriptions and invoices.
    let cus = all[0]["customer"].as_str().unwrap();
    let mine = stripe_all(
        &s,
        &http,
        "/v1/subscriptions",
        &format!("&status=all&customer={cus}"),
        2,
    )
    .await;
    let want = subs
        .values()
        .filter(|o| o.live().unwrap()["customer"] == cus)
        .count();
    assert_eq!(mine.len(), want);
    let inv = stripe_all(&s, &http, "/v1/invoices", &format!("&customer={cus}"), 1).await;
    assert!(!inv.is_empty() && inv.iter().all(|i| i["customer"] == cus));
    // Invoices carry their subscription under parent, items their period.
    assert!(
        inv[0]["parent"]["subscription_details"]["subscription"]
            .as_str()
            .unwrap()
            .starts_with("sub_")
    );
    assert!(
        mine[0]["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap()
            > 0
    );
    s.shutdown().await;
}

#[tokio::test]
async fn retrieve_deleted_and_unknown() {
    let s = sim(14, 50, 50, 0).await;
    let http = client();
    s.mutate_with(5, &MutationWeights::only(MutationKind::Delete));
    s.mutate_with(40, &MutationWeights::only(MutationKind::Catalog));
    let truth = s.truth();
    let deleted: Vec<&String> = truth
        .kind(Provider::Stripe, "customers")
        .iter()
        .filter(|(_, o)| o.live().is_none())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(deleted.len(), 5);
    let (st, v) = stripe(&s, &http, &format!("/v1/customers/{}", deleted[0])).await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        serde_json::json!({"id": deleted[0], "object": "customer", "deleted": true})
    );
    let listed: HashSet<String> = stripe_all(&s, &http, "/v1/customers", "", 100)
        .await
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert!(deleted.iter().all(|d| !listed.contains(*d)));
    for kind in ["products", "prices"] {
        let gone = truth
            .kind(Provider::Stripe, kind)
            .iter()
            .find(|(_, o)| o.live().is_none());
        let (id, _) = gone.unwrap_or_else(|| panic!("a deleted {kind}"));
        let (st, v) = stripe(&s, &http, &format!("/v1/{kind}/{id}")).await;
        assert_eq!((st, v["deleted"].as_bool()), (200, Some(true)));
    }
    let (st, v) = stripe(&s, &http, "/v1/customers/cus_nope").await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "resource_missing");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let (st, v) = stripe(&s, &http, "/v1/widgets").await;
    assert_eq!(st, 404);
    assert!(v["error"].get("code").is_none());
    // A live subscription retrieves whole.
    let sub = truth
        .kind(Provider::Stripe, "subscriptions")
        .iter()
        .next()
        .unwrap();
    let (st, v) = stripe(&s, &http, &format!("/v1/subscriptions/{}", sub.0)).await;
    assert_eq!(st, 200);
    assert_eq!(&v, sub.1.live().unwrap());
    s.shutdown().await;
}

#[tokio::test]
async fn auth_and_request_ids() {
    let s = sim(15, 5, 5, 0).await;
    let http = client();
    let url = format!("{}/v1/customers", s.stripe_base());
    let (st, _, body) = get_raw(&http, &url, None).await;
    assert_eq!(st, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]["message"].is_string());
    let (st, _, _) = get_raw(&http, &url, Some("sk_test_wrong")).await;
    assert_eq!(st, 401);
    let (st, h, _) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert_eq!(st, 200);
    assert!(h["request-id"].to_str().unwrap().starts_with("req_"));
    let (st, _, body) = get_raw(
        &http,
        &format!("{}/v1/users", s.clerk_base()),
        Some(s.stripe_key()),
    )
    .await;
    assert_eq!(st, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["code"], "authentication_invalid");
    let r = http
        .get(&url)
        .bearer_auth(s.stripe_key())
        .header("Stripe-Version", "2025-03-31.basil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.stats().headers.get("stripe-version: 2025-03-31.basil"),
        Some(&1)
    );
    assert_eq!(s.stats().faults.get("stripe 401"), Some(&2));
    s.shutdown().await;
}

#[tokio::test]
async fn parameter_rules() {
    let s = sim(16, 20, 0, 30).await;
    let http = client();
    let any = s
        .truth()
        .kind(Provider::Stripe, "customers")
        .keys()
        .next()
        .unwrap()
        .clone();
    for q in [
        "/v1/customers?limit=0".to_string(),
        "/v1/customers?limit=101".to_string(),
        "/v1/customers?limit=ten".to_string(),
        format!("/v1/customers?starting_after={any}&ending_before={any}"),
        "/v1/customers?starting_after=cus_unknown".to_string(),
        "/v1/customers?created[gte]=soon".to_string(),
        "/v1/events?type=customer.created&types[]=customer.updated".to_string(),
        format!(
            "/v1/events?{}",
            (0..21)
                .map(|i| format!("types[]=t{i}"))
                .collect::<Vec<_>>()
                .join("&")
        ),
    ] {
        let (st, v) = stripe(&s, &http, &q).await;
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{q}");
    }
    let (st, v) = stripe(&s, &http, "/v1/customers?limit=100").await;
    assert_eq!(st, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(v["url"], "/v1/customers");
    let (_, v) = stripe(&s, &http, "/v1/customers").await;
    assert_eq!(ids(&v).len(), 10, "default limit");
    s.shutdown().await;
}

#[tokio::test]
async fn events_filters_and_window() {
    let s = sim(17, 100, 100, 400).await;
    let http = client();
    let all = stripe_all(&s, &http, "/v1/events", "", 100).await;
    assert_eq!(all.len(), s.stripe_event_count());
    assert!(all.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
    let now = s.now_ms() / 1000;
    assert!(
        all.iter()
            .all(|e| created(e) > now - 30 * 86_400 && created(e) <= now)
    );
    let ty = |e: &Value| e["type"].as_str().unwrap().to_string();
    let created_only = stripe_all(&s, &http, "/v1/events", "&type=customer.created", 100).await;
    assert_eq!(
        created_only.len(),
        all.iter().filter(|e| ty(e) == "customer.created").count()
    );
    let wild = stripe_all(&s, &http, "/v1/events", "&type=customer.*", 100).await;
    assert_eq!(
        wild.len(),
        all.iter()
            .filter(|e| ty(e).starts_with("customer."))
            .count()
    );
    assert!(
        wild.iter()
            .any(|e| ty(e).starts_with("customer.subscription."))
    );
    let two = stripe_all(
        &s,
        &http,
        "/v1/events",
        "&types[]=invoice.paid&types%5B%5D=invoice.created",
        100,
    )
    .await;
    assert_eq!(
        two.len(),
        all.iter()
            .filter(|e| ["invoice.paid", "invoice.created"].contains(&ty(e).as_str()))
            .count()
    );
    // Shape, previous attributes on updates, retrieve.
    let upd = all
        .iter()
        .find(|e| ty(e) == "customer.subscription.updated")
        .unwrap();
    assert!(upd["data"]["previous_attributes"].is_object());
    assert_eq!(upd["object"], "event");
    assert_eq!(upd["pending_webhooks"], 1);
    let id = upd["id"].as_str().unwrap();
    let (st, v) = stripe(&s, &http, &format!("/v1/events/{id}")).await;
    assert_eq!((st, &v), (200, upd));
    // The oldest page, read from a cursor as replay does.
    let since = created(all.last().unwrap());
    let from = stripe_all(
        &s,
        &http,
        "/v1/events",
        &format!("&created[gte]={since}"),
        100,
    )
    .await;
    assert_eq!(from.len(), all.len());
    s.shutdown().await;
}
