//! Sweep benchmark: N synthetic objects from an in-process provider into a
//! fresh Postgres schema (TEST_DATABASE_URL), first into an empty mirror,
//! then again with no drift. Prints objects/s and peak RSS.
//!
//! The provider computes each page on the fly, so the process's memory is
//! the engine's and the store client's, not the provider's.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use recon_core::engine::SweepOptions;
use recon_core::{
    Capabilities, Fetched, Headers, ListScope, ObjectKey, Page, Provider, ProviderEvent, Result,
    Snapshot,
};
use serde_json::json;

struct Synthetic {
    n: u64,
}

#[async_trait]
impl Provider for Synthetic {
    fn name(&self) -> &'static str {
        "bench"
    }
    fn account(&self) -> &str {
        "default"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::listing_only()
    }
    fn kinds(&self) -> &'static [&'static str] {
        &["customers"]
    }
    fn kind_of(&self, _id: &str) -> Option<&'static str> {
        Some("customers")
    }
    async fn list_page(
        &self,
        kind: &str,
        _scope: &ListScope,
        cursor: Option<&str>,
    ) -> Result<Page> {
        let start: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let end = (start + 100).min(self.n);
        let items = (start..end)
            .map(|i| {
                let id = format!("cus_{i:010}");
                let data = json!({
                    "id": id, "object": "customer", "email": format!("user{i}@example.com"),
                    "name": format!("Customer {i}"), "created": 1_700_000_000 + i as i64,
                    "metadata": {"plan": "pro", "seq": i.to_string()}, "balance": 0, "currency": "usd",
                    "delinquent": false, "livemode": false
                });
                Snapshot::live(ObjectKey::new("bench", "default", kind, &id), 1, data)
                    .with_email(Some(format!("user{i}@example.com")))
            })
            .collect();
        Ok(Page {
            items,
            next: (end < self.n).then(|| end.to_string()),
        })
    }
    async fn fetch(&self, _kind: &str, _id: &str) -> Result<Fetched> {
        Ok(Fetched::NotFound)
    }
    fn verify_webhook(&self, _h: &Headers, _b: &[u8], _now: i64) -> Result<ProviderEvent> {
        Err(recon_core::Error::unsupported("bench"))
    }
    fn version_now(&self) -> i64 {
        1
    }
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The projection of the second run: each customer's email into an app
/// table keyed by customer id.
fn projection() -> recon_core::project::Projection {
    use recon_core::project::{Dependency, OnDelete, OnMissing, Projection};
    Projection {
        name: "bench_users".into(),
        provider: "bench".into(),
        table: "bench_users".into(),
        key: "customer_id".into(),
        columns: vec!["email".into(), "name".into()],
        query: "SELECT id AS key, email, data->>'name' AS name FROM objects \
                WHERE provider = 'bench' AND kind = 'customers' AND deleted = false"
            .into(),
        depends: vec![Dependency {
            provider: None,
            kind: "customers".into(),
            key: "id".into(),
        }],
        on_missing: OnMissing::Insert,
        on_delete: OnDelete::Delete,
        absent: Default::default(),
    }
}

/// Backfill then re-sweep `n` objects; with `app`, into a store that
/// projects them into an app table, and the re-sweep includes the app
/// pass. Returns (backfill s, re-sweep s, re-sweep writes).
async fn run(n: u64, app: bool) -> (f64, f64, u64) {
    let store = recon_store_postgres::testing::fresh_store().await;
    let store = if app {
        let url = recon_store_postgres::testing::test_database_url();
        let opts: sqlx::postgres::PgConnectOptions = url.parse().expect("TEST_DATABASE_URL");
        let pool = sqlx::PgPool::connect_with(opts.options([("search_path", store.schema())]))
            .await
            .expect("connect");
        sqlx::query("CREATE TABLE bench_users (customer_id text PRIMARY KEY, email text, name text, note text)")
            .execute(&pool)
            .await
            .expect("create the app table");
        store.with_app_sync(Arc::new(recon_core::project::AppSync {
            projections: vec![projection()],
            checks: Vec::new(),
            feed: false,
        }))
    } else {
        store
    };
    let store: Arc<dyn recon_core::Store> = Arc::new(store);
    let engine = recon_core::Engine::new(store.clone(), Arc::new(Synthetic { n }));
    let t = Instant::now();
    let run = engine
        .sweep("customers", &SweepOptions::default())
        .await
        .expect("sweep");
    let first = t.elapsed().as_secs_f64();
    assert_eq!(run.counts.inserted, n, "{run:?}");
    let t = Instant::now();
    let again = engine
        .sweep("customers", &SweepOptions::default())
        .await
        .expect("resweep");
    let mut writes = again.counts.inserted + again.counts.updated + again.counts.deleted;
    if app {
        eprintln!(
            "sweep-bench: re-sweep alone {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let (r, fixed) = recon_core::project::reconcile_app(
            store.as_ref(),
            &projection(),
            &recon_core::project::AppSweepOptions::default(),
        )
        .await
        .expect("app pass");
        assert_eq!(r.counts.compared, n, "{r:?}");
        writes += fixed.len() as u64;
        eprintln!("sweep-bench: app pass {:.2} s", t.elapsed().as_secs_f64());
    }
    let second = t.elapsed().as_secs_f64();
    assert_eq!(again.counts.unchanged, n);
    (first, second, writes)
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let (first, second, writes) = run(n, false).await;
    let rss = peak_rss_kb();
    let (app_first, app_second, app_writes) = run(n, true).await;
    println!(
        "sweep-bench objects={n} backfill_s={first:.2} backfill_obj_per_s={:.0} resweep_s={second:.2} resweep_obj_per_s={:.0} resweep_writes={writes} peak_rss_kb={rss} \
         app_backfill_s={app_first:.2} app_resweep_s={app_second:.2} app_resweep_writes={app_writes} app_resweep_ratio={:.2}",
        n as f64 / first,
        n as f64 / second,
        app_second / second
    );
}
