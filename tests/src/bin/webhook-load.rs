//! Webhook ingest load: starts `recon serve` ($RECON_BIN) on $DATABASE_URL,
//! posts N signed Stripe webhooks (10% duplicates) with C concurrent
//! clients on loopback, and prints events/s and latency percentiles.
//! usage: webhook-load N C

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_bench_load";

fn event(i: u64, now: i64) -> String {
    serde_json::json!({
        "id": format!("evt_load_{i:08}"), "object": "event", "type": "customer.updated", "created": now,
        "api_version": "2025-03-31.basil", "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": {
            "id": format!("cus_load_{i:08}"), "object": "customer", "email": format!("u{i}@example.com"),
            "name": format!("Customer {i}"), "created": now - 100, "livemode": false, "metadata": { "n": i.to_string() }
        } }
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let conc: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let bin = std::env::var("RECON_BIN").unwrap_or_else(|_| "target/release/recon".into());
    let db = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = std::env::temp_dir().join(format!("webhook-load-{port}.toml"));
    let projection = std::env::var("LOAD_PROJECTION").is_ok_and(|v| v == "1");
    let mut toml = String::from("[server]\nscheduler = false\n");
    if projection {
        // The app's table, beside recon's schema, and one projection into it.
        let pool = sqlx::PgPool::connect(&db)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS public.load_users (stripe_customer_id text PRIMARY KEY, email text, name text, note text)",
        )
        .execute(&pool)
        .await
        .expect("create the app table");
        toml.push_str(
            r#"
[[projections]]
name = "load_users"
provider = "stripe"
table = "load_users"
key = "stripe_customer_id"
columns = ["email", "name"]
query = "SELECT id AS key, email, name FROM stripe_customers"
depends = [{ kind = "customers", key = "id" }]
on_missing = "insert"
"#,
        );
    }
    std::fs::write(&cfg, toml).unwrap();
    let envs = [
        ("DATABASE_URL", db.as_str()),
        ("STRIPE_SECRET_KEY", "sk_test_load"),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("STRIPE_API_BASE", "http://127.0.0.1:9"),
        ("RUST_LOG", "error"),
    ];
    let st = Command::new(&bin)
        .arg("migrate")
        .envs(envs)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "migrate failed");
    let mut server = Command::new(&bin)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .envs(envs)
        .env("RECON_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap();
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = chrono::Utc::now().timestamp();
    // 10% of deliveries repeat an earlier event.
    let unique = n - n / 10;
    let mut order: Vec<u64> = (0..unique).collect();
    for i in 0..n / 10 {
        order.push((i * 7919) % unique);
    }
    // Interleave duplicates through the stream deterministically.
    order.sort_by_key(|i| (i.wrapping_mul(2654435761)) % n);
    let bodies: Arc<Vec<(String, String)>> = Arc::new(
        order
            .iter()
            .map(|i| {
                let b = event(*i, now);
                (recon_stripe::sign(SECRET, now, b.as_bytes()), b)
            })
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, bodies, next, base) = (http.clone(), bodies.clone(), next.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut applied, mut dup, mut failed) = (0u64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((sig, body)) = bodies.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/webhooks/stripe"))
                    .header("Stripe-Signature", sig)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                match r {
                    Ok(r) if r.status().is_success() => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        if v["outcome"] == "duplicate" {
                            dup += 1
                        } else {
                            applied += 1
                        }
                    }
                    _ => failed += 1,
                }
            }
            (lat, applied, dup, failed)
        }));
    }
    let mut lat = Vec::new();
    let (mut applied, mut dup, mut failed) = (0, 0, 0);
    for t in tasks {
        let (l, a, d, f) = t.await.unwrap();
        lat.extend(l);
        applied += a;
        dup += d;
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "webhook-load events={n} dup_pct=10 concurrency={conc} per_s={:.0} p50_ms={:.2} p99_ms={:.2} applied={applied} duplicates={dup} failed={failed}",
        n as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
    assert_eq!(failed, 0, "some webhooks were not acknowledged");
    assert_eq!(applied, unique, "every unique event applies exactly once");
    if projection {
        let pool = sqlx::PgPool::connect(&db).await.expect("connect");
        let (rows,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM public.load_users WHERE email IS NOT NULL AND name IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .expect("count app rows");
        assert_eq!(
            rows as u64, unique,
            "every customer reached the app table in its webhook's transaction"
        );
    }
}
