//! Listing speed on loopback.

use std::time::Instant;

use recon_sim::{Provider, Sim};

use crate::common::*;

async fn walk(customers: usize) -> (usize, f64) {
    let s = Sim::start(pinned(61)).await.unwrap();
    let t = Instant::now();
    s.seed_initial(customers, 0);
    eprintln!("seeded {customers} customers in {:?}", t.elapsed());
    let http = client();
    let t = Instant::now();
    let mut pages = 0;
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "/v1/customers?limit=100".to_string();
        if let Some(c) = &cursor {
            q.push_str(&format!("&starting_after={c}"));
        }
        // Read the page without a JSON parse: this measures the server.
        let (st, _, body) = get_raw(
            &http,
            &format!("{}{q}", s.stripe_base()),
            Some(s.stripe_key()),
        )
        .await;
        assert_eq!(st, 200);
        pages += 1;
        n += body.matches(r#""object":"customer""#).count();
        let last = body.rfind(r#""id":"cus_"#).expect("a customer");
        cursor = Some(body[last + 6..last + 6 + 18].to_string());
        if !body.ends_with(r#""has_more":true,"url":"/v1/customers"}"#) {
            break;
        }
    }
    let rate = pages as f64 / t.elapsed().as_secs_f64();
    eprintln!("{n} customers in {pages} pages: {rate:.0} pages/s");
    assert_eq!(n, s.truth().live_count(Provider::Stripe, "customers"));
    s.shutdown().await;
    (n, rate)
}

#[tokio::test]
async fn lists_many_customers() {
    let (n, rate) = walk(30_000).await;
    assert_eq!(n, 30_000);
    // One sequential cursor, unoptimized test build, busy CI: a floor only.
    assert!(rate > 100.0, "{rate} pages/s");
}

#[tokio::test]
#[ignore = "large: 200k customers; run with --release --ignored to measure"]
async fn lists_200k_customers() {
    let (n, rate) = walk(200_000).await;
    assert_eq!(n, 200_000);
    assert!(rate > 1_000.0, "{rate} pages/s");
}
