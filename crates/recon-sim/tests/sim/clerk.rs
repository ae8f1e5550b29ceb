//! Clerk's users, organizations and memberships.

use std::collections::{HashMap, HashSet};

use recon_sim::{MutationKind, MutationWeights, Provider};
use serde_json::Value;

use crate::common::*;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn users_by_cursor_offset_and_count() {
    let s = sim(21, 150, 260, 300).await;
    let http = client();
    let truth = s.truth();
    let live = truth.live_count(Provider::Clerk, "users");
    // Cursor walk, oldest first.
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let mut q = "/v1/users?limit=37&order_by=%2Bcreated_at".to_string();
        if let Some(last) = seen.last() {
            q.push_str(&format!("&starting_after={}", id(last)));
        }
        let (st, v) = clerk(&s, &http, &q).await;
        assert_eq!(st, 200, "{v}");
        let page = v.as_array().expect("a bare array").clone();
        let n = page.len();
        seen.extend(page);
        if n < 37 {
            break;
        }
    }
    assert_eq!(seen.len(), live);
    let ca = |v: &Value| v["created_at"].as_i64().unwrap();
    assert!(seen.windows(2).all(|w| ca(&w[0]) <= ca(&w[1])));
    // Offset walk, default order (newest first).
    let mut by_offset: Vec<Value> = Vec::new();
    loop {
        let (st, v) = clerk(
            &s,
            &http,
            &format!("/v1/users?limit=500&offset={}", by_offset.len()),
        )
        .await;
        assert_eq!(st, 200);
        let page = v.as_array().unwrap().clone();
        let n = page.len();
        by_offset.extend(page);
        if n < 500 {
            break;
        }
    }
    assert!(by_offset.windows(2).all(|w| ca(&w[0]) >= ca(&w[1])));
    let a: HashSet<String> = seen.iter().map(id).collect();
    let b: HashSet<String> = by_offset.iter().map(id).collect();
    assert_eq!(a, b);
    let (_, v) = clerk(&s, &http, "/v1/users/count").await;
    assert_eq!(
        v,
        serde_json::json!({"object": "total_count", "total_count": live})
    );
    let (_, v) = clerk(&s, &http, "/v1/users").await;
    assert_eq!(v.as_array().unwrap().len(), 10, "default limit");
    // updated_at ordering.
    let (_, v) = clerk(&s, &http, "/v1/users?limit=100&order_by=-updated_at").await;
    let ua = |v: &Value| v["updated_at"].as_i64().unwrap();
    let arr = v.as_array().unwrap();
    assert!(arr.windows(2).all(|w| ua(&w[0]) >= ua(&w[1])));
    // Filters.
    let one = &seen[3];
    let (_, v) = clerk(
        &s,
        &http,
        &format!("/v1/users?user_id={}&user_id=user_none", id(one)),
    )
    .await;
    assert_eq!(v.as_array().unwrap().len(), 1);
    let email = one["email_addresses"][0]["email_address"].as_str().unwrap();
    let (_, v) = clerk(&s, &http, &format!("/v1/users?email_address={email}")).await;
    assert_eq!(id(&v[0]), id(one));
    let after = ca(&seen[seen.len() / 2]);
    let (_, v) = clerk(
        &s,
        &http,
        &format!("/v1/users/count?created_at_after={after}"),
    )
    .await;
    let want = seen.iter().filter(|u| ca(u) > after).count();
    assert_eq!(v["total_count"].as_u64().unwrap() as usize, want);
    s.shutdown().await;
}

#[tokio::test]
async fn unprocessable_requests() {
    let s = sim(22, 0, 30, 0).await;
    let http = client();
    let u = s
        .truth()
        .kind(Provider::Clerk, "users")
        .keys()
        .next()
        .unwrap()
        .clone();
    for q in [
        format!("/v1/users?starting_after={u}&order_by=-updated_at"),
        format!("/v1/users?starting_after={u}&offset=5"),
        "/v1/users?limit=501".to_string(),
        "/v1/users?limit=0".to_string(),
        "/v1/users?offset=-1".to_string(),
        "/v1/users?order_by=shoe_size".to_string(),
        "/v1/organizations?limit=9999".to_string(),
    ] {
        let (st, v) = clerk(&s, &http, &q).await;
        assert_eq!(st, 422, "{q}: {v}");
        assert!(v["errors"][0]["code"].is_string(), "{q}");
        assert!(v["clerk_trace_id"].is_string());
    }
    let (st, v) = clerk(
        &s,
        &http,
        &format!("/v1/users?starting_after={u}&order_by=created_at"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, events) = clerk(&s, &http, "/v1/events").await;
    assert_eq!(st, 404, "Clerk has no event log");
    assert_eq!(events["errors"][0]["code"], "route_not_found");
    s.shutdown().await;
}

#[tokio::test]
async fn deleted_users_are_gone() {
    let s = sim(23, 40, 40, 0).await;
    let http = client();
    let before = s.truth().live_count(Provider::Clerk, "users");
    s.mutate_with(3, &MutationWeights::only(MutationKind::Delete));
    let truth = s.truth();
    let gone: Vec<&String> = truth
        .kind(Provider::Clerk, "users")
        .iter()
        .filter(|(_, o)| o.live().is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(gone.len(), 3);
    let (st, v) = clerk(&s, &http, &format!("/v1/users/{}", gone[0])).await;
    assert_eq!(st, 404);
    assert_eq!(v["errors"][0]["code"], "resource_not_found");
    let (_, v) = clerk(&s, &http, "/v1/users/count").await;
    assert_eq!(v["total_count"].as_u64().unwrap() as usize, before - 3);
    // A deleted user still works as a cursor.
    let (st, _) = clerk(&s, &http, &format!("/v1/users?starting_after={}", gone[0])).await;
    assert_eq!(st, 200);
    // Its webhooks: memberships first, then user.deleted with a DeletedObject.
    let out = s.take_outbox();
    let del: Vec<Value> = out
        .iter()
        .filter(|w| w.event_type == "user.deleted")
        .map(|w| serde_json::from_str(&w.body).unwrap())
        .collect();
    assert_eq!(del.len(), 3);
    assert_eq!(del[0]["data"]["deleted"], true);
    assert_eq!(del[0]["data"]["object"], "user");
    assert_eq!(del[0]["object"], "event");
    s.shutdown().await;
}

#[tokio::test]
async fn organizations_and_memberships() {
    let s = sim(24, 100, 400, 300).await;
    let http = client();
    let truth = s.truth();
    let (orgs, total) = clerk_all(&s, &http, "/v1/organizations", 7).await;
    assert_eq!(
        orgs.len(),
        truth.live_count(Provider::Clerk, "organizations")
    );
    assert_eq!(total as usize, orgs.len());
    let (mems, total) = clerk_all(&s, &http, "/v1/organization_memberships", 13).await;
    let live = truth.live_count(Provider::Clerk, "organization_memberships");
    assert!(live > 10);
    assert_eq!((mems.len(), total as usize), (live, live));
    for m in &mems {
        assert_eq!(
            truth
                .get(Provider::Clerk, "organization_memberships", &id(m))
                .unwrap()
                .live(),
            Some(m)
        );
    }
    // Per organization and per user.
    let mut by_org: HashMap<String, usize> = HashMap::new();
    for m in &mems {
        *by_org
            .entry(m["organization"]["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let (org, n) = by_org.iter().max_by_key(|(_, n)| **n).unwrap();
    let (list, total) = clerk_all(
        &s,
        &http,
        &format!("/v1/organizations/{org}/memberships"),
        2,
    )
    .await;
    assert_eq!((list.len(), total as usize), (*n, *n));
    let (st, v) = clerk(
        &s,
        &http,
        &format!("/v1/organizations/{org}?include_members_count=true"),
    )
    .await;
    assert_eq!((st, v["members_count"].as_u64()), (200, Some(*n as u64)));
    let slug = v["slug"].as_str().unwrap();
    let (st, v) = clerk(&s, &http, &format!("/v1/organizations/{slug}")).await;
    assert_eq!((st, id(&v)), (200, org.clone()));
    let user = mems[0]["public_user_data"]["user_id"].as_str().unwrap();
    let (_, v) = clerk(
        &s,
        &http,
        &format!("/v1/users/{user}/organization_memberships?limit=500"),
    )
    .await;
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["public_user_data"]["user_id"] == user)
    );
    let (st, _) = clerk(&s, &http, "/v1/organizations/org_missing").await;
    assert_eq!(st, 404);
    s.shutdown().await;
}

#[tokio::test]
async fn clerk_versions_increase_per_object() {
    let s = sim(25, 100, 150, 0).await;
    s.mutate(2_000);
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut n = 0;
    for w in s
        .take_outbox()
        .into_iter()
        .filter(|w| w.provider == Provider::Clerk)
    {
        let v: Value = serde_json::from_str(&w.body).unwrap();
        let oid = v["data"]["id"].as_str().unwrap().to_string();
        let version = if w.event_type.ends_with(".deleted") {
            v["timestamp"].as_i64().unwrap()
        } else {
            v["data"]["updated_at"].as_i64().unwrap()
        };
        if let Some(prev) = last.get(&oid) {
            assert!(
                version > *prev,
                "{} {oid}: {version} after {prev}",
                w.event_type
            );
            n += 1;
        }
        last.insert(oid, version);
        assert!(w.id.starts_with("msg_"));
        assert_eq!(v["instance_id"], "ins_recon_sim");
    }
    assert!(n > 50, "objects changed more than once: {n}");
    s.shutdown().await;
}
