//! `cargo xtask bench`: benchmarks, never part of the test run. Prints one
//! table with the machine's description and writes it to docs/BENCHMARKS.md.
//!
//! 1. Backfill side by side with the Stripe Sync Engine (`$PEER_DIR/run.sh`; see
//!    docs/BENCHMARKS.md, "The side-by-side peer benchmark").
//! 2. Re-sweep with no drift (both tools run again on their filled databases).
//! 3. Memory flatness: peak RSS of a sweep at 20k, 200k and 1M objects.
//! 4. Rate budget: 250 ms latency per request, 100 requests/s budget.
//! 5. Webhook ingest: signed Stripe webhooks posted to `recon serve` (Postgres).
//! 6. Core sweep: 100k objects from an in-process provider into Postgres.
//!
//! `cargo xtask bench quick` runs smaller sizes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cargo;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{} GiB", (kb + 512 * 1024) / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM")
}

fn kv(line: &str, key: &str) -> Option<f64> {
    line.split(|c: char| c.is_whitespace() || c == ',')
        .find_map(|t| t.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// `wall X s, peak rss Y KB` as printed by /usr/bin/time in run.sh.
fn time_line(text: &str, who: &str) -> Option<(f64, f64)> {
    let l = text
        .lines()
        .find(|l| l.starts_with(&format!("{who}: wall")))?;
    let wall: f64 = l.split("wall ").nth(1)?.split(' ').next()?.parse().ok()?;
    let rss: f64 = l
        .split("peak rss ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some((wall, rss / 1024.0))
}

struct Fake {
    child: Child,
    base: String,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(23111)
}

fn start_fake(peer: &Path, n: u64, latency_ms: u64) -> Result<Fake> {
    let port = free_port();
    let child = Command::new("node")
        .arg(peer.join("fake-stripe.cjs"))
        .arg(port.to_string())
        .arg(n.to_string())
        .env("FAKE_LATENCY_MS", latency_ms.to_string())
        .stderr(Stdio::null())
        .spawn()
        .context("start node fake-stripe.cjs (is node installed?)")?;
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("fake stripe did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Fake {
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

/// Run recon with /usr/bin/time; returns (wall s, peak MiB, stdout).
fn timed_recon(recon: &Path, env: &[(&str, String)], args: &[&str]) -> Result<(f64, f64, String)> {
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "TIME wall=%e rss_kb=%M"])
        .arg(recon)
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().context("run /usr/bin/time recon")?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("recon {args:?} failed: {err}");
    }
    let l = err
        .lines()
        .find(|l| l.starts_with("TIME"))
        .context("no /usr/bin/time line")?;
    Ok((
        kv(l, "wall").unwrap_or(0.0),
        kv(l, "rss_kb").unwrap_or(0.0) / 1024.0,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn psql(admin: &str, sql: &str) -> Result<()> {
    let s = Command::new("psql")
        .args(["-X", "-q", admin, "-c", sql])
        .status()?;
    if !s.success() {
        bail!("psql {sql}");
    }
    Ok(())
}

struct Ctx {
    recon: PathBuf,
    peer: PathBuf,
    admin: String,
    rows: Vec<String>,
}

impl Ctx {
    fn fresh_db(&self, name: &str) -> Result<String> {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )?;
        psql(&self.admin, &format!("CREATE DATABASE {name}"))?;
        Ok(format!(
            "{}/{name}",
            self.admin
                .rsplit_once('/')
                .map(|(a, _)| a)
                .unwrap_or(&self.admin)
        ))
    }

    fn recon_env(
        &self,
        base: &str,
        db: &str,
        config: Option<&Path>,
    ) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("STRIPE_API_BASE", base.to_string()),
            ("STRIPE_SECRET_KEY", "sk_test_bench".to_string()),
            ("DATABASE_URL", db.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ];
        // Loopback fakes have no rate limit: lift the sandbox default (25/s)
        // unless a config file sets the budget under test.
        if config.is_none() {
            v.push(("STRIPE_RATE", "5000/s".to_string()));
        }
        if let Some(c) = config {
            v.push(("RECON_CONFIG", c.display().to_string()));
        }
        v
    }

    /// 1 + 2: the peer's run.sh, then both tools again on their filled databases.
    fn side_by_side(&mut self, n: u64) -> Result<()> {
        eprintln!("bench: side by side at {n} customers");
        let script = format!(
            // The fake is on loopback with no rate limit; give recon a budget
            // that does not bind (sk_test_ keys default to Stripe's 25/s sandbox limit).
            "export STRIPE_RATE=5000/s; {r} migrate >/dev/null && {r} reconcile stripe --kind customers --json >/dev/null",
            r = self.recon.display()
        );
        let out = Command::new("bash")
            .arg(self.peer.join("run.sh"))
            .arg(n.to_string())
            .args(["sh", "-c", &script])
            .env("PG_ADMIN_URL", &self.admin)
            .output()
            .context("run.sh")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("run.sh failed:\n{text}");
        }
        let (sse_wall, sse_rss) = time_line(&text, "sse").context("no sse line")?;
        let (our_wall, our_rss) = time_line(&text, "yours").context("no yours line")?;
        self.rows.push(format!(
            "| backfill {n} customers | {:.0}/s ({sse_wall:.1} s, {sse_rss:.0} MiB) | {:.0}/s ({our_wall:.2} s, {our_rss:.0} MiB) | {:.1}× faster, {:.2}× the memory |",
            n as f64 / sse_wall,
            n as f64 / our_wall,
            sse_wall / our_wall,
            our_rss / sse_rss
        ));

        // Re-runs into the filled databases (run.sh left them behind).
        let fake = start_fake(&self.peer, n, 0)?;
        let base = self
            .admin
            .rsplit_once('/')
            .map(|(a, _)| a.to_string())
            .unwrap_or_default();
        let t = Instant::now();
        let s = Command::new("node")
            .arg(
                PathBuf::from(
                    std::env::var("PEER_BENCH_DIR").unwrap_or_else(|_| "/tmp/peer-bench".into()),
                )
                .join("sse-backfill.cjs"),
            )
            .env("DATABASE_URL", format!("{base}/peer_bench_sse"))
            .env("STRIPE_API_BASE", &fake.base)
            .stdout(Stdio::null())
            .status()?;
        let sse_rerun = t.elapsed().as_secs_f64();
        if !s.success() {
            bail!("sse re-run failed");
        }
        let env = self.recon_env(&fake.base, &format!("{base}/peer_bench_other"), None);
        let (wall, _, out) = timed_recon(
            &self.recon,
            &env,
            &["reconcile", "stripe", "--kind", "customers", "--json"],
        )?;
        let doc: serde_json_lite::Doc = serde_json_lite::parse(&out);
        let written = doc.sum_counts(&["inserted", "updated", "deleted"]);
        self.rows.push(format!(
            "| re-sweep {n} customers, no drift | {sse_rerun:.1} s | {wall:.2} s, {written} rows written | {:.0}× faster |",
            sse_rerun / wall
        ));
        Ok(())
    }

    /// 3: peak RSS of a backfill at several sizes.
    fn memory(&mut self, sizes: &[u64]) -> Result<()> {
        let mut peaks = Vec::new();
        for &n in sizes {
            eprintln!("bench: memory at {n}");
            let fake = start_fake(&self.peer, n, 0)?;
            let db = self.fresh_db("recon_bench_mem")?;
            let env = self.recon_env(&fake.base, &db, None);
            timed_recon(&self.recon, &env, &["migrate"])?;
            let (wall, rss, _) = timed_recon(
                &self.recon,
                &env,
                &["reconcile", "stripe", "--kind", "customers", "--json"],
            )?;
            peaks.push((n, rss, wall));
        }
        let first = peaks.first().map(|p| p.1).unwrap_or(1.0);
        for (n, rss, wall) in &peaks {
            self.rows.push(format!(
                "| memory: sweep of {n} | | {rss:.0} MiB peak, {:.0} objects/s | {:+.0}% vs {} |",
                *n as f64 / wall,
                (rss / first - 1.0) * 100.0,
                peaks[0].0
            ));
        }
        Ok(())
    }

    /// 4: a sweep at 250 ms per request and a 100 requests/s budget.
    fn rate_budget(&mut self, n: u64) -> Result<()> {
        eprintln!("bench: rate budget, {n} customers at 250 ms latency");
        let fake = start_fake(&self.peer, n, 250)?;
        let db = self.fresh_db("recon_bench_rate")?;
        let cfg = std::env::temp_dir().join("recon-bench-rate.toml");
        std::fs::write(
            &cfg,
            "[engine]\npartitions = 40\n[stripe]\nrate = \"100/s\"\n",
        )?;
        let env = self.recon_env(&fake.base, &db, Some(&cfg));
        timed_recon(&self.recon, &env, &["migrate"])?;
        let (wall, _, _) = timed_recon(
            &self.recon,
            &env,
            &["reconcile", "stripe", "--kind", "customers", "--json"],
        )?;
        let rate = n as f64 / wall;
        self.rows.push(format!(
            "| rate budget: {n} customers, 250 ms/request, 100 req/s | ceiling 10,000/s | {rate:.0} objects/s ({wall:.1} s) | {:.0}% of the ceiling |",
            rate / 100.0
        ));
        Ok(())
    }

    /// 5: webhook ingest through `recon serve` with the Postgres store,
    /// without and with a projection into an app table.
    fn webhooks(&mut self, events: u64) -> Result<()> {
        self.webhooks_with(events, false)?;
        self.webhooks_with(events, true)
    }

    fn webhooks_with(&mut self, events: u64, projection: bool) -> Result<()> {
        eprintln!("bench: webhook ingest, {events} events, projection {projection}");
        let db = self.fresh_db(if projection {
            "recon_bench_hooks_app"
        } else {
            "recon_bench_hooks"
        })?;
        let out = Command::new("target/release/webhook-load")
            .args([&events.to_string(), "32"])
            .env("LOAD_PROJECTION", if projection { "1" } else { "0" })
            .env("DATABASE_URL", &db)
            .env("RECON_BIN", &self.recon)
            .output()
            .context("run webhook-load")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "webhook-load failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let l = text
            .lines()
            .find(|l| l.starts_with("webhook-load"))
            .context("no webhook-load line")?;
        self.rows.push(format!(
            "| webhook ingest: {} events ({}% duplicates), concurrency 32, Postgres{} | {} | {:.0} events/s, p50 {:.1} ms, p99 {:.1} ms | {} applied, {} duplicates acknowledged |",
            kv(l, "events").unwrap_or(0.0),
            kv(l, "dup_pct").unwrap_or(0.0),
            if projection {
                ", one projection into an app table (change feed off, the default)"
            } else {
                ""
            },
            if projection {
                "≥ 5,000 events/s, p99 < 25 ms"
            } else {
                ""
            },
            kv(l, "per_s").unwrap_or(0.0),
            kv(l, "p50_ms").unwrap_or(0.0),
            kv(l, "p99_ms").unwrap_or(0.0),
            kv(l, "applied").unwrap_or(0.0),
            kv(l, "duplicates").unwrap_or(0.0),
        ));
        Ok(())
    }

    /// 6: the engine alone: in-process provider into Postgres.
    fn core_sweep(&mut self, n: u64) -> Result<()> {
        eprintln!("bench: core sweep of {n}");
        let db = self.fresh_db("recon_bench_core")?;
        let out = Command::new("target/release/sweep-bench")
            .arg(n.to_string())
            .env("TEST_DATABASE_URL", &db)
            .output()
            .context("run sweep-bench")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "sweep-bench failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let l = text
            .lines()
            .find(|l| l.starts_with("sweep-bench"))
            .context("no sweep-bench line")?;
        self.rows.push(format!(
            "| engine only: {n} objects, in-process provider → Postgres | | backfill {:.0} objects/s, re-sweep {:.0} objects/s ({} rows written), {:.0} MiB peak | |",
            kv(l, "backfill_obj_per_s").unwrap_or(0.0),
            kv(l, "resweep_obj_per_s").unwrap_or(0.0),
            kv(l, "resweep_writes").unwrap_or(0.0),
            kv(l, "peak_rss_kb").unwrap_or(0.0) / 1024.0
        ));
        self.rows.push(format!(
            "| engine only, one projection into an app table: {n} objects | ≤ 1.5× the re-sweep without | re-sweep plus app pass {:.2} s vs {:.2} s: {:.2}× ({} app rows written) | |",
            kv(l, "app_resweep_s").unwrap_or(0.0),
            kv(l, "resweep_s").unwrap_or(0.0),
            kv(l, "app_resweep_ratio").unwrap_or(0.0),
            kv(l, "app_resweep_writes").unwrap_or(0.0),
        ));
        Ok(())
    }
}

/// Minimal helpers to read recon's `--json` without a JSON dependency in xtask.
mod serde_json_lite {
    pub struct Doc(String);
    pub fn parse(s: &str) -> Doc {
        Doc(s.to_string())
    }
    impl Doc {
        /// Sum of `"key": N` occurrences for the keys.
        pub fn sum_counts(&self, keys: &[&str]) -> u64 {
            let mut total = 0;
            for k in keys {
                let pat = format!("\"{k}\": ");
                let mut rest = self.0.as_str();
                while let Some(i) = rest.find(&pat) {
                    rest = &rest[i + pat.len()..];
                    let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    total += n.parse::<u64>().unwrap_or(0);
                }
            }
            total
        }
    }
}

/// Run the benchmarks.
/// `cargo xtask bench status`: only the status page's rows, written into
/// their section of docs/BENCHMARKS.md.
fn status_only() -> Result<()> {
    crate::run(cargo().args(["build", "--release", "-q", "-p", "recon-bin"]))?;
    let db = crate::pg::TestDatabase::create()?;
    let rows =
        crate::status_bench::measure(&std::fs::canonicalize("target/release/recon")?, &db.url())?;
    let section = crate::status_bench::section(&machine(), &rows);
    println!("{section}");
    let doc = std::fs::read_to_string("docs/BENCHMARKS.md").unwrap_or_default();
    std::fs::write(
        "docs/BENCHMARKS.md",
        crate::status_bench::replace_section(&doc, &section),
    )?;
    eprintln!("wrote the status page's section of docs/BENCHMARKS.md");
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    if args.first().is_some_and(|a| a == "status") {
        return status_only();
    }
    let quick = args.iter().any(|a| a == "quick");
    let peer = std::env::var("PEER_DIR")
        .context("set PEER_DIR to the peer benchmark's directory (docs/BENCHMARKS.md, \"The side-by-side peer benchmark\")")
        .map(PathBuf::from)?;
    if !peer.join("run.sh").exists() {
        bail!(
            "{}/run.sh not found: PEER_DIR must hold the peer benchmark (docs/BENCHMARKS.md)",
            peer.display()
        );
    }
    crate::run(cargo().args([
        "build",
        "--release",
        "-q",
        "-p",
        "recon-bin",
        "-p",
        "recon-tests",
        "--features",
        "recon-tests/bench",
    ]))?;
    let admin = std::env::var("PG_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut ctx = Ctx {
        recon: std::fs::canonicalize("target/release/recon")?,
        peer: std::fs::canonicalize(&peer)?,
        admin,
        rows: Vec::new(),
    };
    // The rate budget at two sizes: planning probes and the last requests'
    // latency are a fixed cost that a longer listing amortises.
    let (sizes, mem, rate_n, hooks, core) = if quick {
        (
            vec![20_000],
            vec![20_000, 200_000],
            vec![20_000],
            10_000,
            100_000,
        )
    } else {
        (
            vec![20_000, 200_000],
            vec![20_000, 200_000, 1_000_000],
            vec![60_000, 200_000],
            40_000,
            100_000,
        )
    };
    for n in sizes {
        ctx.side_by_side(n)?;
    }
    ctx.memory(&mem)?;
    for n in rate_n {
        ctx.rate_budget(n)?;
    }
    ctx.webhooks(hooks)?;
    ctx.core_sweep(core)?;

    let mut table = format!(
        "Machine: {}. Command: `cargo xtask bench{}`. One run; this machine is shared, so compare figures within the run.\n\n",
        machine(),
        if quick { " quick" } else { "" }
    );
    table
        .push_str("| benchmark | Stripe Sync Engine 0.48.5 | recon | ratio |\n|---|---|---|---|\n");
    for r in &ctx.rows {
        table.push_str(r);
        table.push('\n');
    }
    println!("{table}");
    // The status page over 10,000 runs and 100,000 drift records.
    let db = crate::pg::TestDatabase::create()?;
    let status = crate::status_bench::section(
        &machine(),
        &crate::status_bench::measure(&ctx.recon, &db.url())?,
    );
    drop(db);
    println!("{status}");
    std::fs::create_dir_all("docs")?;
    std::fs::write(
        "docs/BENCHMARKS.md",
        format!(
            "# Benchmarks\n\nProduced by `cargo xtask bench` (never part of the test run).\n\n{table}\n{status}"
        ),
    )?;
    eprintln!("wrote docs/BENCHMARKS.md");
    Ok(())
}
