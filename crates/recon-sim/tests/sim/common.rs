//! Helpers: a started simulator, authenticated GETs, full list walks.

use std::sync::OnceLock;

use recon_sim::{Sim, SimConfig, SimHandle};
use serde_json::Value;

/// A pinned clock near now, so runs are reproducible.
pub fn pinned(seed: u64) -> SimConfig {
    static START: OnceLock<i64> = OnceLock::new();
    let start = *START.get_or_init(|| chrono::Utc::now().timestamp_millis() - 60_000);
    SimConfig {
        start_ms: Some(start),
        ..SimConfig::with_seed(seed)
    }
}

pub async fn sim(seed: u64, customers: usize, users: usize, mutations: usize) -> SimHandle {
    let s = Sim::start(pinned(seed)).await.expect("start");
    s.seed_initial(customers, users);
    if mutations > 0 {
        s.mutate(mutations);
    }
    s
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// GET `base + path` with `key`; (status, headers, body).
pub async fn get_raw(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = http.get(url);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let resp = r.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    (status, headers, body)
}

pub async fn stripe(s: &SimHandle, http: &reqwest::Client, path_q: &str) -> (u16, Value) {
    let (st, _, body) = get_raw(
        http,
        &format!("{}{path_q}", s.stripe_base()),
        Some(s.stripe_key()),
    )
    .await;
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub async fn clerk(s: &SimHandle, http: &reqwest::Client, path_q: &str) -> (u16, Value) {
    let (st, _, body) = get_raw(
        http,
        &format!("{}{path_q}", s.clerk_base()),
        Some(s.clerk_key()),
    )
    .await;
    (st, serde_json::from_str(&body).unwrap_or(Value::Null))
}

pub fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|o| o["id"].as_str().expect("id").to_string())
        .collect()
}

/// Every object of a Stripe list, walking `starting_after` forward.
pub async fn stripe_all(
    s: &SimHandle,
    http: &reqwest::Client,
    path: &str,
    extra: &str,
    limit: usize,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("{path}?limit={limit}{extra}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&starting_after={c}"));
        }
        let (st, v) = stripe(s, http, &q).await;
        assert_eq!(st, 200, "{q}: {v}");
        let data = v["data"].as_array().expect("data").clone();
        let more = v["has_more"].as_bool().expect("has_more");
        cursor = data
            .last()
            .map(|o| o["id"].as_str().expect("id").to_string());
        out.extend(data);
        if !more {
            return out;
        }
    }
}

/// Every object of a Clerk `{data,total_count}` list, by offset.
pub async fn clerk_all(
    s: &SimHandle,
    http: &reqwest::Client,
    path: &str,
    limit: usize,
) -> (Vec<Value>, u64) {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let q = format!(
            "{path}?limit={limit}&offset={}&order_by=%2Bcreated_at",
            out.len()
        );
        let (st, v) = clerk(s, http, &q).await;
        assert_eq!(st, 200, "{q}: {v}");
        let data = v["data"].as_array().expect("data").clone();
        let total = v["total_count"].as_u64().expect("total");
        let n = data.len();
        out.extend(data);
        if n < limit {
            return (out, total);
        }
    }
}
