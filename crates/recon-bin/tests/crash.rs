//! Crash safety: the real `recon serve` process, fed by the simulator's
//! webhooks at full speed while a sweep runs, is killed with SIGKILL at a
//! random moment, restarted on the same database, and checked:
//! - every webhook it acknowledged (answered 2xx) is in the ledger: a
//!   redelivery answers `duplicate`, so nothing acknowledged was lost and
//!   nothing is applied twice;
//! - after the last restart, one sweep per provider brings the mirror to the
//!   simulator's truth, object for object.
//!
//! Trials per store: `RECON_CRASH_TRIALS` (3 by default, as in CI; `cargo
//! xtask chaos` runs 20 or more). Seeded from `RECON_CRASH_SEED`.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use recon_core::{Provider as _, Store};
use recon_sim::{Provider, Sim, SimConfig, SimHandle, Webhook};
use serde_json::Value;

use common::{Db, free_port, http};

const TOKEN: &str = "crash-test-admin-token-0123456789";

fn trials() -> usize {
    std::env::var("RECON_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Where the mirror lives: a Postgres schema or a SQLite file.
enum Target {
    Postgres(Db),
    Sqlite(PathBuf),
}

impl Target {
    fn apply(&self, c: &mut Command) {
        match self {
            Target::Postgres(db) => {
                c.env("DATABASE_URL", &db.url)
                    .env("RECON_SCHEMA", &db.schema);
            }
            Target::Sqlite(p) => {
                c.env("DATABASE_URL", format!("sqlite://{}", p.display()));
            }
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        match self {
            Target::Postgres(db) => Arc::new(db.store().await),
            Target::Sqlite(p) => Arc::new(
                recon_store_sqlite::SqliteStore::connect(&format!("sqlite://{}", p.display()))
                    .await
                    .expect("open the SQLite mirror"),
            ),
        }
    }
}

struct Env<'a> {
    target: &'a Target,
    sim: &'a SimHandle,
    stripe_secret: String,
    clerk_secret: String,
    config: PathBuf,
}

impl Env<'_> {
    fn recon(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recon"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .env("STRIPE_API_BASE", self.sim.stripe_base())
            .env("STRIPE_SECRET_KEY", self.sim.stripe_key())
            .env("STRIPE_WEBHOOK_SECRET", &self.stripe_secret)
            .env("STRIPE_RATE", "2000/s")
            .env("CLERK_API_BASE", self.sim.clerk_base())
            .env("CLERK_SECRET_KEY", self.sim.clerk_key())
            .env("CLERK_WEBHOOK_SECRET", &self.clerk_secret)
            .env("CLERK_RATE", "2000/s")
            .stdin(Stdio::null());
        self.target.apply(&mut c);
        c
    }

    async fn start(&self) -> Server {
        let port = free_port();
        let mut c = self.recon();
        c.env("RECON_LISTEN", format!("127.0.0.1:{port}"))
            .env("RECON_ADMIN_TOKEN", TOKEN)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let server = Server {
            child: c.spawn().expect("spawn recon serve"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = http();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("recon serve did not become ready");
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// POST one webhook, signed now; `(status, outcome)` or `None` if the
/// connection failed (the server was killed).
async fn post(
    client: &reqwest::Client,
    base: &str,
    w: &Webhook,
    stripe_secret: &str,
    clerk_secret: &str,
) -> Option<(u16, String)> {
    let (path, secret) = match w.provider {
        Provider::Stripe => ("stripe", stripe_secret),
        Provider::Clerk => ("clerk", clerk_secret),
    };
    let mut req = client
        .post(format!("{base}/webhooks/{path}"))
        .header("content-type", "application/json")
        .body(w.body.clone());
    for (k, v) in w
        .headers(secret, chrono::Utc::now().timestamp())
        .expect("sign")
    {
        req = req.header(k, v);
    }
    let r = req.send().await.ok()?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.ok()?;
    Some((status, body["outcome"].as_str().unwrap_or("").to_string()))
}

/// Post every message with `concurrency` in flight; one result per message,
/// in order.
async fn flood(
    base: String,
    msgs: Vec<Webhook>,
    stripe_secret: String,
    clerk_secret: String,
    concurrency: usize,
) -> Vec<Option<(u16, String)>> {
    let ctx = Arc::new((http(), base, stripe_secret, clerk_secret));
    futures::stream::iter(msgs)
        .map(|m| {
            let ctx = ctx.clone();
            async move {
                let (client, base, s, c) = &*ctx;
                post(client, base, &m, s, c).await
            }
        })
        .buffered(concurrency)
        .collect()
        .await
}

async fn admin_sweep(base: &str, provider: &str) -> Option<Value> {
    let r = http()
        .post(format!("{base}/admin/reconcile/{provider}"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

fn runs_succeeded(v: &Value) -> bool {
    v["runs"]
        .as_array()
        .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["status"] == "succeeded"))
}

#[derive(Debug, Default)]
struct Figures {
    trials: usize,
    webhooks_sent: usize,
    acknowledged: usize,
    cut_by_kill: usize,
    sweeps_cut: usize,
    runs_closed_as_interrupted: usize,
    redelivered_duplicate: usize,
    redelivered_applied_late: usize,
}

async fn crash_trials(target: Target, seed: u64) {
    let sim = Sim::start(SimConfig::with_seed(seed))
        .await
        .expect("start simulator");
    sim.seed_initial(300, 300);
    let t = sim.webhook_targets(None, None);
    let config = std::env::temp_dir().join(format!("recon-crash-{}-{seed}.toml", free_port()));
    // The scheduler stays off: the test decides when sweeps run.
    // Runs of a killed process are closed after 1 s without a heartbeat.
    std::fs::write(
        &config,
        "[server]\nscheduler = false\n[engine]\nabandon_after = \"1s\"\n",
    )
    .unwrap();
    let env = Env {
        target: &target,
        sim: &sim,
        stripe_secret: t.stripe_secret.clone(),
        clerk_secret: t.clerk_secret.clone(),
        config,
    };
    let out = env
        .recon()
        .arg("migrate")
        .output()
        .expect("run recon migrate");
    assert!(
        out.status.success(),
        "recon migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut srv = env.start().await;
    for p in ["stripe", "clerk"] {
        let v = admin_sweep(&srv.base, p).await.expect("initial sweep");
        assert!(runs_succeeded(&v), "initial sweep of {p}: {v}");
    }

    // From here every API call takes 10 ms, so a sweep lasts long enough
    // for the random kills to land inside sweeps too, not only in floods.
    sim.set_faults(recon_sim::Faults {
        latency: Duration::from_millis(10),
        ..recon_sim::Faults::default()
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: HashSet<(Provider, String)> = HashSet::new();
    let mut f = Figures::default();
    for trial in 0..trials() {
        sim.mutate(rng.random_range(200..500));
        let msgs = sim.take_outbox();
        f.trials += 1;
        f.webhooks_sent += msgs.len();
        let flooding = tokio::spawn(flood(
            srv.base.clone(),
            msgs.clone(),
            env.stripe_secret.clone(),
            env.clerk_secret.clone(),
            16,
        ));
        let provider = if trial % 2 == 0 { "stripe" } else { "clerk" };
        let base = srv.base.clone();
        let sweeping = tokio::spawn(async move { admin_sweep(&base, provider).await });
        tokio::time::sleep(Duration::from_millis(rng.random_range(30..1200))).await;
        srv.kill();
        let results = flooding.await.unwrap();
        if sweeping.await.unwrap().is_none() {
            f.sweeps_cut += 1;
        }
        for (m, r) in msgs.iter().zip(&results) {
            match r {
                Some((200, _)) => {
                    acked.insert((m.provider, m.id.clone()));
                    f.acknowledged += 1;
                }
                Some((s, o)) => panic!("{} {}: answered {s} {o}", m.event_type, m.id),
                None => f.cut_by_kill += 1,
            }
        }

        // Restart on the same database; the provider retries everything.
        srv = env.start().await;
        let again = flood(
            srv.base.clone(),
            msgs.clone(),
            env.stripe_secret.clone(),
            env.clerk_secret.clone(),
            16,
        )
        .await;
        for (m, r) in msgs.iter().zip(again) {
            let (status, outcome) = r.expect("the restarted server answers");
            assert_eq!(status, 200, "{} {} after restart", m.event_type, m.id);
            if acked.contains(&(m.provider, m.id.clone())) {
                assert_eq!(
                    outcome, "duplicate",
                    "trial {trial}: acknowledged {} {} was not in the ledger after SIGKILL",
                    m.event_type, m.id
                );
                f.redelivered_duplicate += 1;
            } else if outcome != "duplicate" {
                f.redelivered_applied_late += 1;
            }
            acked.insert((m.provider, m.id.clone()));
        }
    }

    // Every acknowledged event is in the ledger, read directly.
    let store = target.store().await;
    for (p, id) in &acked {
        let name = if *p == Provider::Stripe {
            "stripe"
        } else {
            "clerk"
        };
        assert!(
            store.ledger_contains(name, "default", id).await.unwrap(),
            "acknowledged {name} {id} is not in the ledger"
        );
    }

    // One sweep per provider converges the mirror, and closes the runs the
    // kills left `running` (silent for longer than abandon_after by then).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for p in ["stripe", "clerk"] {
        let v = admin_sweep(&srv.base, p).await.expect("final sweep");
        assert!(runs_succeeded(&v), "final sweep of {p}: {v}");
    }
    let runs = store.runs(10_000).await.unwrap();
    let still_running: Vec<_> = runs
        .iter()
        .filter(|r| r.status == recon_core::RunStatus::Running)
        .collect();
    assert!(
        still_running.is_empty(),
        "runs of killed processes still say running: {still_running:?}"
    );
    f.runs_closed_as_interrupted = runs
        .iter()
        .filter(|r| r.error.as_deref().unwrap_or("").starts_with("interrupted"))
        .count();
    drop(srv);
    let stripe_kinds =
        recon_stripe::StripeProvider::new(recon_stripe::StripeConfig::new(sim.stripe_key()))
            .unwrap()
            .kinds();
    let clerk_kinds =
        recon_clerk::ClerkProvider::new(recon_clerk::ClerkConfig::new(sim.clerk_key()))
            .unwrap()
            .kinds();
    let (ok, all, bad) =
        recon_tests::chaos::mirror_vs_truth(store.as_ref(), &sim, stripe_kinds, clerk_kinds).await;
    eprintln!("crash safety ({}): {f:?}; mirror {ok}/{all} match", seed);
    assert!(
        f.cut_by_kill + f.sweeps_cut > 0,
        "no kill landed during a flood or a sweep: the test proved nothing"
    );
    assert_eq!(ok, all, "mirror differs from the truth: {bad:?}");
    sim.shutdown().await;
}

fn seed() -> u64 {
    std::env::var("RECON_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_floods_and_sweeps_postgres() {
    crash_trials(Target::Postgres(Db::new()), seed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_floods_and_sweeps_sqlite() {
    let path = recon_store_sqlite::testing::temp_db_path("crash");
    crash_trials(Target::Sqlite(path), seed() + 1).await;
}
