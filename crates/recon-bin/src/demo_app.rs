//! The demo's own app table, `app_users`: created and filled as an app
//! would have it, kept right by a projection, edited behind recon's back,
//! and compared row by row with what the simulator's truth implies.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context, Result};
use recon_sim::{Provider as SimProvider, Truth, TruthObject};
use serde::Serialize;
use serde_json::Value;

use crate::config::{DependencySection, ProjectionSection};

/// The app table (spelled out in the SQL below).
pub const TABLE: &str = "app_users";

/// The projection's query: the status of the customer's newest subscription
/// that is not canceled (else `none`), and that subscription's price's
/// nickname (else its price id). The same SQL on Postgres and SQLite.
pub const QUERY: &str = "\
SELECT c.id AS key,
       COALESCE(s.status, 'none') AS subscription_status,
       COALESCE(p.data->>'nickname', s.price_id) AS plan
FROM stripe_customers c
LEFT JOIN stripe_subscriptions s ON s.id = (
    SELECT s2.id FROM stripe_subscriptions s2
    WHERE s2.customer_id = c.id AND s2.account = c.account AND s2.status <> 'canceled'
    ORDER BY s2.created DESC, s2.id DESC LIMIT 1)
LEFT JOIN stripe_prices p ON p.id = s.price_id AND p.account = s.account";

/// The projection of the demo.
pub fn projection() -> ProjectionSection {
    ProjectionSection {
        name: "app_users_billing".into(),
        provider: "stripe".into(),
        table: TABLE.into(),
        key: "stripe_customer_id".into(),
        columns: vec!["subscription_status".into(), "plan".into()],
        query: QUERY.into(),
        depends: vec![
            DependencySection {
                provider: None,
                kind: "customers".into(),
                key: "id".into(),
            },
            DependencySection {
                provider: None,
                kind: "subscriptions".into(),
                key: "owner".into(),
            },
        ],
        // Customers who sign up while the demo runs get a row.
        on_missing: recon_core::project::OnMissing::Insert,
        on_delete: recon_core::project::OnDelete::Absent,
        absent: [(
            "subscription_status".to_string(),
            Value::String("none".into()),
        )]
        .into(),
        stale_after: None,
    }
}

/// A direct connection to the demo's database, for what the app does
/// itself: create, fill and hand-edit its table.
pub enum AppDb {
    /// Postgres (the app table lives in the schema recon's connections use).
    Pg(sqlx::PgPool),
    /// SQLite.
    Lite(sqlx::SqlitePool),
}

/// One row of the app table: key, subscription_status, plan.
pub type Row = (String, Option<String>, Option<String>);

impl AppDb {
    /// Connect to `url` (`schema`: the search path on Postgres).
    pub async fn connect(url: &str, schema: &str) -> Result<AppDb> {
        if url.starts_with("postgres") {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)
                .context("the demo database URL")?
                .options([("search_path", schema)]);
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .context("connect to the demo database")?;
            Ok(AppDb::Pg(pool))
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .context("the demo database URL")?
                .busy_timeout(std::time::Duration::from_secs(30));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await
                .context("open the demo database")?;
            Ok(AppDb::Lite(pool))
        }
    }

    async fn exec(&self, sql: &'static str) -> Result<u64> {
        Ok(match self {
            AppDb::Pg(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            AppDb::Lite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        })
    }

    /// (Re)create the app table, as the app's own migration would.
    pub async fn create_table(&self) -> Result<()> {
        self.exec("DROP TABLE IF EXISTS app_users").await?;
        let ddl = match self {
            AppDb::Pg(_) => {
                "CREATE TABLE app_users (id serial PRIMARY KEY, clerk_user_id text, \
                 stripe_customer_id text UNIQUE, subscription_status text, plan text, note text)"
            }
            AppDb::Lite(_) => {
                "CREATE TABLE app_users (id INTEGER PRIMARY KEY, clerk_user_id TEXT, \
                 stripe_customer_id TEXT UNIQUE, subscription_status TEXT, plan TEXT, note TEXT)"
            }
        };
        self.exec(ddl)
            .await
            .context("create the demo's app table")?;
        Ok(())
    }

    /// One row per customer: what the app wrote at sign-up (the Stripe
    /// customer id and the Clerk user id), nothing about billing yet.
    pub async fn fill(&self, users: &[(String, Option<String>)]) -> Result<()> {
        match self {
            AppDb::Pg(p) => {
                let mut tx = p.begin().await?;
                for (cus, clerk) in users {
                    sqlx::query(
                        "INSERT INTO app_users (stripe_customer_id, clerk_user_id, note) VALUES ($1, $2, 'signed up')",
                    )
                    .bind(cus)
                    .bind(clerk)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            AppDb::Lite(p) => {
                let mut tx = p.begin().await?;
                for (cus, clerk) in users {
                    sqlx::query(
                        "INSERT INTO app_users (stripe_customer_id, clerk_user_id, note) VALUES (?, ?, 'signed up')",
                    )
                    .bind(cus)
                    .bind(clerk)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Overwrite the status of every 20th row by hand (behind recon's
    /// back) with `canceled`, which the projection never computes. Returns
    /// how many rows.
    pub async fn edit_by_hand(&self) -> Result<u64> {
        self.exec(
            "UPDATE app_users SET subscription_status = 'canceled', note = 'edited by hand' WHERE id % 20 = 0",
        )
        .await
    }

    /// Rows still carrying the hand-written value.
    pub async fn still_edited(&self) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM app_users WHERE subscription_status = 'canceled'";
        let n: i64 = match self {
            AppDb::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            AppDb::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        };
        Ok(n as u64)
    }

    /// Every row: key, status, plan.
    pub async fn rows(&self) -> Result<Vec<Row>> {
        let sql = "SELECT stripe_customer_id, subscription_status, plan FROM app_users WHERE stripe_customer_id IS NOT NULL";
        Ok(match self {
            AppDb::Pg(p) => sqlx::query_as(sql).fetch_all(p).await?,
            AppDb::Lite(p) => sqlx::query_as(sql).fetch_all(p).await?,
        })
    }

    /// Close the pool.
    pub async fn close(self) {
        match self {
            AppDb::Pg(p) => p.close().await,
            AppDb::Lite(p) => p.close().await,
        }
    }
}

/// The app rows the simulator's customers start with: the customer id and
/// the Clerk user id the customer's metadata links it to.
pub fn signups(truth: &Truth) -> Vec<(String, Option<String>)> {
    truth
        .kind(SimProvider::Stripe, "customers")
        .iter()
        .filter_map(|(id, t)| {
            let v = t.live()?;
            let clerk = v
                .pointer("/metadata/clerk_user_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            Some((id.clone(), clerk))
        })
        .collect()
}

/// What the truth implies for one customer: every acceptable
/// `(status, plan)` (more than one only when its newest subscriptions tie
/// on `created`). A customer gone from the provider has the absent values.
fn expected(truth: &Truth, customer: &str) -> Vec<(String, Option<String>)> {
    let live = truth
        .get(SimProvider::Stripe, "customers", customer)
        .and_then(TruthObject::live)
        .is_some();
    if !live {
        return vec![("none".into(), None)];
    }
    let prices = truth.kind(SimProvider::Stripe, "prices");
    let mut subs: Vec<(i64, String, Option<String>)> = truth
        .kind(SimProvider::Stripe, "subscriptions")
        .values()
        .filter_map(TruthObject::live)
        .filter(|s| s["customer"].as_str() == Some(customer))
        .filter(|s| s["status"].as_str() != Some("canceled"))
        .map(|s| {
            let price = s
                .pointer("/items/data/0/price/id")
                .and_then(Value::as_str)
                .map(str::to_string);
            let plan = price.as_ref().map(|pid| {
                prices
                    .get(pid)
                    .and_then(TruthObject::live)
                    .and_then(|p| p["nickname"].as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| pid.clone())
            });
            (
                s["created"].as_i64().unwrap_or(0),
                s["status"].as_str().unwrap_or("").to_string(),
                plan,
            )
        })
        .collect();
    let Some(newest) = subs.iter().map(|s| s.0).max() else {
        return vec![("none".into(), None)];
    };
    subs.retain(|s| s.0 == newest);
    subs.into_iter().map(|(_, st, plan)| (st, plan)).collect()
}

/// The app table against the truth.
#[derive(Debug, Serialize)]
pub struct AppConsistency {
    /// Rows equal to what the truth implies.
    pub matching: usize,
    /// Rows, plus live customers without a row.
    pub total: usize,
    /// Up to 5 rows that differ: key, have, want.
    pub sample: Vec<Value>,
}

/// Compare every row with the truth; live customers without a row count
/// as mismatches.
pub fn compare(truth: &Truth, rows: &[Row]) -> AppConsistency {
    let mut out = AppConsistency {
        matching: 0,
        total: 0,
        sample: Vec::new(),
    };
    let mut seen = BTreeMap::new();
    for (key, status, plan) in rows {
        seen.insert(key.as_str(), ());
        out.total += 1;
        let want = expected(truth, key);
        let have = (status.clone().unwrap_or_default(), plan.clone());
        if want.contains(&have) {
            out.matching += 1;
        } else if out.sample.len() < 5 {
            out.sample.push(serde_json::json!({
                "key": key, "have": [have.0, have.1], "want": [want[0].0, want[0].1],
            }));
        }
    }
    for (id, t) in truth.kind(SimProvider::Stripe, "customers") {
        if t.live().is_some() && !seen.contains_key(id.as_str()) {
            out.total += 1;
            if out.sample.len() < 5 {
                out.sample
                    .push(serde_json::json!({ "key": id, "have": null, "want": "a row" }));
            }
        }
    }
    out
}
