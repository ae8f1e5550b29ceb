//! The real `recon` binary and the app's own tables, on SQLite: help that
//! teaches, bad projections refused at start (exit 2, named), and
//! projections, `--app`, `recon check` and `recon changes` end to end.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};

/// A temporary SQLite database and config file for one test.
struct Lite {
    db: PathBuf,
    config: PathBuf,
}

impl Lite {
    fn new(name: &str, config: &str) -> Lite {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir();
        let stem = format!("recon-app-{name}-{}-{t:x}", std::process::id());
        let db = dir.join(format!("{stem}.db"));
        let config_path = dir.join(format!("{stem}.toml"));
        std::fs::write(&config_path, config).unwrap();
        Lite {
            db,
            config: config_path,
        }
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.db.display())
    }

    /// The binary with a clean environment, this database and config, and
    /// Stripe at `stripe` if given.
    fn recon(&self, stripe: Option<&str>) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recon"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", self.url())
            .env("RUST_LOG", "warn")
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null());
        if let Some(base) = stripe {
            c.env("STRIPE_API_BASE", base)
                .env("STRIPE_SECRET_KEY", STRIPE_KEY)
                .env("STRIPE_WEBHOOK_SECRET", STRIPE_WHSEC);
        }
        c
    }

    async fn pool(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&self.url()).await.unwrap()
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        for p in [&self.db, &self.config] {
            let _ = std::fs::remove_file(p);
        }
        for ext in ["db-wal", "db-shm"] {
            let _ = std::fs::remove_file(self.db.with_extension(ext));
        }
    }
}

const PROJECTION: &str = r#"
[[projections]]
name = "billing"
provider = "stripe"
table = "users"
key = "stripe_customer_id"
columns = ["email"]
query = "SELECT id AS key, email AS email FROM stripe_customers"
depends = [{ kind = "customers", key = "id" }]
on_missing = "report"
"#;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_recon"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn app_commands_teach_by_example() {
    let top = help(&["--help"]);
    for needle in ["recon check", "recon changes --follow", "--app --dry-run"] {
        assert!(top.contains(needle), "--help lacks {needle:?}:\n{top}");
    }
    let reconcile = help(&["reconcile", "--help"]);
    for needle in [
        "--app",
        "recon reconcile stripe --app --dry-run",
        "app_drift",
        "fixed / ok",
    ] {
        assert!(
            reconcile.contains(needle),
            "reconcile --help lacks {needle:?}:\n{reconcile}"
        );
    }
    let check = help(&["check", "--help"]);
    for needle in [
        "recon check --json",
        "Exit status",
        "1 a check found violations",
        "[link]",
    ] {
        assert!(
            check.contains(needle),
            "check --help lacks {needle:?}:\n{check}"
        );
    }
    let changes = help(&["changes", "--help"]);
    for needle in [
        "--since",
        "--follow",
        "--limit",
        "recon changes --since 1041 --follow",
        "NOTIFY recon_changes",
        "idempotency key",
    ] {
        assert!(
            changes.contains(needle),
            "changes --help lacks {needle:?}:\n{changes}"
        );
    }
    let drift = help(&["drift", "--help"]);
    for needle in ["app_drift", "check:<check>"] {
        assert!(
            drift.contains(needle),
            "drift --help lacks {needle:?}:\n{drift}"
        );
    }
}

#[test]
fn a_projection_without_a_key_exits_2_naming_it_and_writes_nothing() {
    let config = PROJECTION.replace("key = \"stripe_customer_id\"\n", "");
    let lite = Lite::new("nokey", &config);
    for args in [
        &["reconcile", "stripe", "--app"][..],
        &["reconcile", "stripe"],
        &["check"],
        &["serve"],
    ] {
        let (code, out, err) = run({
            let mut c = lite.recon(None);
            c.args(args);
            c
        });
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {err}");
        assert!(
            errors[0].contains("projection \"billing\"") && errors[0].contains("key"),
            "{args:?}: {err}"
        );
    }
    // Refused before the database was opened.
    assert!(!lite.db.exists());
    // The same as JSON.
    let (code, out, _) = run({
        let mut c = lite.recon(None);
        c.args(["check", "--json"]);
        c
    });
    assert_eq!(code, 2);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], false);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("billing"),
        "{doc}"
    );
}

#[test]
fn an_unknown_field_of_a_projection_exits_2() {
    let config = PROJECTION.replace("on_missing", "on_absent");
    let lite = Lite::new("unknownfield", &config);
    let (code, _, err) = run({
        let mut c = lite.recon(None);
        c.args(["reconcile", "stripe", "--app"]);
        c
    });
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("on_absent"), "{err}");
}

#[test]
fn changes_with_the_feed_off_says_how_to_turn_it_on() {
    let lite = Lite::new("feedoff", PROJECTION);
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["changes", "--json"]);
        c
    });
    assert_eq!(code, 2, "{out}{err}");
    // --json puts the error on stdout as a document.
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["ok"], false, "{doc}");
    assert!(out.contains("[changes] enabled = true"), "{out}");
    let (code, _, err) = run({
        let mut c = lite.recon(None);
        c.arg("changes");
        c
    });
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("[changes] enabled = true"), "{err}");
}

fn migrate(lite: &Lite) {
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.arg("migrate");
        c
    });
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_table_exits_2_naming_the_projection_and_the_table() {
    let lite = Lite::new(
        "notable",
        &PROJECTION.replace("table = \"users\"", "table = \"nope\""),
    );
    migrate(&lite);
    let stripe = fake_stripe(Arc::new(Mutex::new(vec![customer(
        "cus_1",
        "a@example.com",
        1_700_000_000,
    )])))
    .await;
    let (code, out, err) = run({
        let mut c = lite.recon(Some(&stripe.uri()));
        c.args(["reconcile", "stripe"]);
        c
    });
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("billing") && err.contains("nope") && !err.contains("unsupported"),
        "{err}"
    );
    // Nothing was written: the sweep never ran.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects")
        .fetch_one(&lite.pool().await)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn app_rows(lite: &Lite) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT stripe_customer_id, email, note FROM users ORDER BY stripe_customer_id")
        .fetch_all(&lite.pool().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_follow_sweeps_and_the_app_pass_repairs_hand_edits() {
    let config = format!(
        "{PROJECTION}\n[changes]\nenabled = true\n\n[[checks]]\nname = \"no_bad_notes\"\nsql = \"SELECT stripe_customer_id FROM users WHERE note = 'bad'\"\n"
    );
    let lite = Lite::new("e2e", &config);
    migrate(&lite);
    let pool = lite.pool().await;
    sqlx::query(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, stripe_customer_id TEXT UNIQUE, email TEXT, note TEXT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for i in 0..30 {
        sqlx::query("INSERT INTO users (stripe_customer_id, note) VALUES (?, 'keep')")
            .bind(format!("cus_{i:04}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    let data: Vec<Value> = (0..30)
        .map(|i| {
            customer(
                &format!("cus_{i:04}"),
                &format!("u{i}@example.com"),
                1_700_000_000 + i,
            )
        })
        .collect();
    let stripe = fake_stripe(Arc::new(Mutex::new(data))).await;

    // A full sweep writes the mirror and, in the same commits, the app rows.
    let (code, out, err) = run({
        let mut c = lite.recon(Some(&stripe.uri()));
        c.args(["reconcile", "stripe", "--json"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["app"][0]["projection"], "billing");
    assert_eq!(doc["app"][0]["run"]["status"], "succeeded");
    assert_eq!(
        doc["app"][0]["changes"].as_array().unwrap().len(),
        0,
        "{doc}"
    );
    assert_eq!(doc["checks"][0]["name"], "no_bad_notes");
    let rows = app_rows(&lite).await;
    assert_eq!(rows.len(), 30);
    for (i, (_, email, note)) in rows.iter().enumerate() {
        assert_eq!(email.as_deref(), Some(format!("u{i}@example.com").as_str()));
        // Only the declared column is written.
        assert_eq!(note.as_deref(), Some("keep"));
    }

    // Behind recon's back.
    sqlx::query(
        "UPDATE users SET email = 'hand@example.com' WHERE stripe_customer_id = 'cus_0003'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["reconcile", "stripe", "--app", "--dry-run", "--json"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let changes = doc["app"][0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{doc}");
    assert_eq!(changes[0]["key"], "cus_0003");
    assert_eq!(changes[0]["was"]["email"], "hand@example.com");
    assert_eq!(changes[0]["now"]["email"], "u3@example.com");
    assert_eq!(
        app_rows(&lite).await[3].1.as_deref(),
        Some("hand@example.com"),
        "a dry run wrote"
    );

    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["reconcile", "stripe", "--app"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("updated 1"), "{out}");
    assert!(out.contains("cus_0003"), "{out}");
    let rows = app_rows(&lite).await;
    assert_eq!(rows[3].1.as_deref(), Some("u3@example.com"));
    assert_eq!(rows[3].2.as_deref(), Some("keep"));

    // The drift log and the change feed say so.
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["drift", "--json"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let d = doc["recent_drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["cause"] == "app_drift")
        .unwrap_or_else(|| panic!("no app_drift in {doc}"));
    assert_eq!(d["key"]["kind"], "app:billing");
    assert_eq!(d["key"]["id"], "cus_0003");
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.arg("drift");
        c
    });
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#"email: "hand@example.com" → "u3@example.com""#),
        "{out}"
    );
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["changes", "--json", "--limit", "1000"]);
        c
    });
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let repaired: Vec<&Value> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["cause"] == "app_drift")
        .collect();
    assert_eq!(repaired.len(), 1, "{doc}");
    assert_eq!(repaired[0]["app_table"], "users");
    assert_eq!(repaired[0]["after"]["email"], "u3@example.com");
    let since = repaired[0]["seq"].as_i64().unwrap();
    let (code, out, _) = run({
        let mut c = lite.recon(None);
        c.args(["changes", "--since", &since.to_string(), "--json"]);
        c
    });
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["seq"].as_i64().unwrap() > since),
        "{doc}"
    );

    // Checks: exit 1 on a violation, 0 without.
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.arg("check");
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    sqlx::query("UPDATE users SET note = 'bad' WHERE stripe_customer_id = 'cus_0007'")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["check", "--json"]);
        c
    });
    assert_eq!(code, 1, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        doc["checks"][0]["violations"][0]["stripe_customer_id"],
        "cus_0007"
    );
    // The violation is drift of `check`, and `recon drift` finds it there.
    let (code, out, err) = run({
        let mut c = lite.recon(None);
        c.args(["drift", "--provider", "check", "--json"]);
        c
    });
    assert_eq!(code, 0, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let groups = doc["drift_groups"].as_array().unwrap();
    assert!(
        !groups.is_empty()
            && groups
                .iter()
                .all(|g| g["provider"] == "check" && g["cause"] == "check"),
        "{doc}"
    );
    sqlx::query("UPDATE users SET note = NULL")
        .execute(&pool)
        .await
        .unwrap();

    // --stale: just swept and passed, nothing is stale; a customer whose
    // state and sweep are a day old is.
    // `recon check --stale ARG --json`: its exit code and the subjects of
    // the app_stale:billing check.
    let stale = |arg: &'static str| {
        let (code, out, err) = run({
            let mut c = lite.recon(None);
            c.args(["check", "--stale", arg, "--json"]);
            c
        });
        let subjects: Option<Vec<Value>> = serde_json::from_str::<Value>(&out).ok().map(|doc| {
            let c = doc["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == "app_stale:billing")
                .unwrap_or_else(|| panic!("no stale check in {doc}"))
                .clone();
            c["violations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["subject"].clone())
                .collect()
        });
        (code, subjects, format!("{out}{err}"))
    };
    let (code, subjects, out) = stale("1h");
    assert_eq!(code, 0, "{out}");
    assert_eq!(subjects, Some(vec![]), "{out}");
    for sql in [
        "UPDATE objects SET confirmed_at = 0 WHERE id = 'cus_0004'",
        "UPDATE cursors SET updated_at = 0 WHERE name = 'sweep:customers'",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let (code, subjects, out) = stale("1h");
    assert_eq!(code, 1, "{out}");
    assert_eq!(subjects, Some(vec![json!("cus_0004")]), "{out}");
    let (code, _, err) = stale("10s");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 1m"), "{err}");
}
