//! API fault knobs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use recon_sim::{Faults, ListFailure, Provider, RateBudget, Sim};

use crate::common::*;

/// Status of each of `n` distinct requests.
async fn statuses(s: &recon_sim::SimHandle, n: usize) -> Vec<u16> {
    let http = client();
    let mut out = Vec::new();
    for i in 0..n {
        let url = format!("{}/v1/customers?limit=1&created[gte]={i}", s.stripe_base());
        out.push(get_raw(&http, &url, Some(s.stripe_key())).await.0);
    }
    out
}

#[tokio::test]
async fn faults_hit_their_shares_and_reproduce() {
    let f = Faults {
        rate_limited: 0.10,
        conflict: 0.02,
        server_error: 0.05,
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let s = sim(41, 20, 0, 0).await;
        s.set_provider_faults(Provider::Stripe, f.clone());
        runs.push(statuses(&s, 1_500).await);
        let stats = s.stats();
        let total: u64 = stats.total_faults(Provider::Stripe);
        assert_eq!(
            total as usize,
            runs.last().unwrap().iter().filter(|s| **s != 200).count()
        );
        s.shutdown().await;
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let mut by: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &runs[0] {
        *by.entry(*s).or_default() += 1;
    }
    let share = |codes: &[u16]| {
        codes
            .iter()
            .map(|c| by.get(c).copied().unwrap_or(0))
            .sum::<usize>() as f64
            / 1_500.0
    };
    assert!((share(&[429]) - 0.10).abs() < 0.03, "{by:?}");
    assert!((share(&[409]) - 0.02).abs() < 0.015, "{by:?}");
    assert!((share(&[500, 502, 503]) - 0.05).abs() < 0.02, "{by:?}");
    // Another seed, other requests hit.
    let s = Sim::start(pinned(42)).await.unwrap();
    s.set_faults(f);
    assert_ne!(statuses(&s, 300).await, runs[0][..300].to_vec());
    s.shutdown().await;
}

#[tokio::test]
async fn retry_headers_and_bodies() {
    let s = sim(43, 5, 5, 0).await;
    let http = client();
    let url = format!("{}/v1/customers", s.stripe_base());
    s.set_faults(Faults {
        rate_limited: 1.0,
        retry_after_share: 1.0,
        retry_after: Duration::from_secs(2),
        ..Faults::default()
    });
    let (st, h, body) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert_eq!((st, h["retry-after"].to_str().unwrap()), (429, "2"));
    assert!(body.contains("\"rate_limit\""));
    let (st, h, body) = get_raw(
        &http,
        &format!("{}/v1/users", s.clerk_base()),
        Some(s.clerk_key()),
    )
    .await;
    assert_eq!(st, 429);
    assert!(h.contains_key("retry-after"));
    assert!(body.contains("\"errors\""));
    s.set_faults(Faults {
        rate_limited: 1.0,
        retry_after_share: 0.0,
        ..Faults::default()
    });
    let (st, h, _) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert_eq!(st, 429);
    assert!(!h.contains_key("retry-after"));
    s.set_faults(Faults {
        lock_timeout: 1.0,
        ..Faults::default()
    });
    let (st, _, body) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert_eq!(st, 429);
    assert!(body.contains("lock_timeout"));
    s.set_faults(Faults {
        server_error: 1.0,
        should_retry_true: 1.0,
        ..Faults::default()
    });
    let (st, h, body) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert!([500, 502, 503].contains(&st));
    assert_eq!(h["stripe-should-retry"], "true");
    assert!(body.contains("api_error"));
    s.set_faults(Faults {
        server_error: 1.0,
        should_retry_true: 0.0,
        should_retry_false: 1.0,
        ..Faults::default()
    });
    let (_, h, _) = get_raw(&http, &url, Some(s.stripe_key())).await;
    assert_eq!(h["stripe-should-retry"], "false");
    // Faults come after authentication.
    let (st, _, _) = get_raw(&http, &url, None).await;
    assert_eq!(st, 401);
    s.shutdown().await;
}

#[tokio::test]
async fn cut_bodies() {
    let s = sim(44, 30, 0, 0).await;
    let http = client();
    let url = format!("{}/v1/customers?limit=20", s.stripe_base());
    s.set_faults(Faults {
        truncated_body: 1.0,
        ..Faults::default()
    });
    let r = http
        .get(&url)
        .bearer_auth(s.stripe_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.expect("a complete (short) body");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    s.set_faults(Faults {
        connection_cut: 1.0,
        ..Faults::default()
    });
    let r = http
        .get(&url)
        .bearer_auth(s.stripe_key())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body ends early");
    s.set_faults(Faults::none());
    let r = http
        .get(&url)
        .bearer_auth(s.stripe_key())
        .send()
        .await
        .unwrap();
    assert!(r.json::<serde_json::Value>().await.is_ok());
    let stats = s.stats();
    assert_eq!(stats.faults.get("stripe truncated_body"), Some(&1));
    assert_eq!(stats.faults.get("stripe connection_cut"), Some(&1));
    s.shutdown().await;
}

#[tokio::test]
async fn rate_budget_and_latency() {
    let s = sim(45, 5, 5, 0).await;
    let http = client();
    s.set_provider_faults(
        Provider::Clerk,
        Faults {
            rate_budget: Some(RateBudget {
                per_second: 0.5,
                burst: 4,
            }),
            ..Faults::default()
        },
    );
    let url = format!("{}/v1/users", s.clerk_base());
    let mut got = Vec::new();
    for _ in 0..6 {
        let (st, h, _) = get_raw(&http, &url, Some(s.clerk_key())).await;
        got.push((
            st,
            h.get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ));
    }
    assert!(got[..4].iter().all(|(st, _)| *st == 200), "{got:?}");
    assert_eq!(got[4].0, 429);
    let wait: u64 = got[4].1.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{got:?}");
    // Stripe is not limited.
    assert_eq!(statuses(&s, 10).await, vec![200; 10]);
    s.set_provider_faults(
        Provider::Stripe,
        Faults {
            latency: Duration::from_millis(30),
            ..Faults::default()
        },
    );
    let t = Instant::now();
    statuses(&s, 5).await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(s.stats().faults.get("clerk rate_budget"), Some(&2));
    s.shutdown().await;
}

#[tokio::test]
async fn listing_fails_from_page_k() {
    let s = sim(46, 120, 0, 0).await;
    let http = client();
    s.set_faults(Faults {
        list_failure: Some(ListFailure {
            kind: Some("customers".into()),
            after_pages: 2,
            failures: None,
            status: 500,
        }),
        ..Faults::default()
    });
    let mut cursor = String::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let q = if cursor.is_empty() {
            "/v1/customers?limit=10".to_string()
        } else {
            format!("/v1/customers?limit=10&starting_after={cursor}")
        };
        let (st, v) = stripe(&s, &http, &q).await;
        statuses.push(st);
        if st == 200 {
            cursor = ids(&v).last().unwrap().clone();
            // Retrieves and other kinds still work.
            let (st, _) = stripe(&s, &http, &format!("/v1/customers/{cursor}")).await;
            assert_eq!(st, 200);
        }
    }
    assert_eq!(statuses, vec![200, 200, 500, 500]);
    let (st, _) = stripe(&s, &http, "/v1/subscriptions").await;
    assert_eq!(st, 200);
    // A limited number of failures, then it recovers.
    s.set_faults(Faults {
        list_failure: Some(ListFailure {
            kind: None,
            after_pages: 0,
            failures: Some(1),
            status: 503,
        }),
        ..Faults::default()
    });
    assert_eq!(stripe(&s, &http, "/v1/invoices").await.0, 503);
    assert_eq!(stripe(&s, &http, "/v1/invoices").await.0, 200);
    assert_eq!(s.stats().faults.get("stripe list_failure"), Some(&3));
    s.shutdown().await;
}
