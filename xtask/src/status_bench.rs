//! `cargo xtask bench status`: the status page's response time over a store
//! holding 10,000 runs and 100,000 drift records (a week of runs, one a
//! minute), measured from outside by curl against `recon serve` in release
//! mode. Writes its section of docs/BENCHMARKS.md.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const RUNS: u64 = 10_000;
const DRIFT: u64 = 100_000;
/// Drift records of the newest run (the drill-down page's size).
const RUN_DRIFT: u64 = 500;
const REQUESTS: usize = 300;
const TOKEN: &str = "bench-status-page-token-0123456789abcdef";
const SCHEMA: &str = "recon_status_bench";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .context("run psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Seed the runs and drift log straight into recon's tables.
fn seed(url: &str, now_ms: i64) -> Result<()> {
    psql(
        url,
        &format!(
            "SET search_path TO {SCHEMA};
             INSERT INTO runs (id, provider, account, kind, run_kind, status, dry_run,
                               started_at, finished_at, counts, mismatch_ratio, error)
             SELECT 'run-' || lpad(g::text, 6, '0'), 'stripe', 'default',
                    (ARRAY['customers','subscriptions','invoices','prices','products'])[1 + g % 5],
                    'sweep', CASE WHEN g % 97 = 0 THEN 'failed' ELSE 'succeeded' END, false,
                    {now_ms} - ({RUNS} - g) * 60000, {now_ms} - ({RUNS} - g) * 60000 + 1500 + g % 700,
                    jsonb_build_object('listed', 1000, 'compared', 1000, 'unchanged', 990,
                                       'updated', 10, 'drift', 10),
                    0.01, CASE WHEN g % 97 = 0 THEN 'listing failed: 503' END
             FROM generate_series(1, {RUNS}) g;
             INSERT INTO drift_log (provider, account, kind, object_id, run_id, source, cause,
                                    before, after, detected_at)
             SELECT 'stripe', 'default', 'customers', 'cus_' || lpad(g::text, 8, '0'),
                    CASE WHEN g <= {RUN_DRIFT} THEN 'run-' || lpad({RUNS}::text, 6, '0')
                         ELSE 'run-' || lpad((1 + g % {RUNS})::text, 6, '0') END,
                    'sweep', (ARRAY['changed','missing','deleted'])[1 + g % 3],
                    jsonb_build_object('id', 'cus_' || g, 'email', 'a' || g || '@example.com',
                                       'delinquent', false, 'metadata', jsonb_build_object('plan', 'pro')),
                    jsonb_build_object('id', 'cus_' || g, 'email', 'b' || g || '@example.com',
                                       'delinquent', true, 'metadata', jsonb_build_object('plan', 'team')),
                    {now_ms} - (g * 6048)::bigint
             FROM generate_series(1, {DRIFT}) g;
             ANALYZE runs; ANALYZE drift_log;"
        ),
    )
}

fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30"])
        .args(args)
        .output()
        .context("run curl (apt-get install curl)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `REQUESTS` GETs of `url` over one keep-alive connection, after 10 to
/// warm up; the response times in milliseconds, sorted.
fn times(url: &str, cookie: &str) -> Result<Vec<f64>> {
    let dir = std::env::temp_dir().join(format!("recon-status-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("curl.cfg");
    let mut f = std::fs::File::create(&cfg)?;
    for _ in 0..REQUESTS + 10 {
        writeln!(f, "url = \"{url}\"\noutput = \"/dev/null\"")?;
    }
    drop(f);
    let out = curl(&[
        "-H",
        &format!("Cookie: {cookie}"),
        "-w",
        "%{http_code} %{time_total}\\n",
        "-K",
        cfg.to_str().context("temp path")?,
    ])?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut ms = Vec::new();
    for line in out.lines().skip(10) {
        let (code, t) = line.split_once(' ').context("curl -w line")?;
        if code != "200" {
            bail!("{url} answered {code}");
        }
        ms.push(t.parse::<f64>()? * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Run the benchmark with the release binary `recon` against the
/// database `url`; the rows of its table.
pub fn measure(recon: &Path, url: &str) -> Result<Vec<String>> {
    let env = |c: &mut Command| {
        c.env("DATABASE_URL", url)
            .env("RECON_SCHEMA", SCHEMA)
            .env(
                "STRIPE_SECRET_KEY",
                "sk_test_bench_not_contacted_0123456789",
            )
            .env("STRIPE_WEBHOOK_SECRET", "whsec_bench_not_used_0123456789")
            .env("STRIPE_API_BASE", "http://127.0.0.1:9")
            .env("RUST_LOG", "warn");
    };
    let mut c = Command::new(recon);
    env(&mut c);
    let s = c.arg("migrate").stdout(Stdio::null()).status()?;
    if !s.success() {
        bail!("recon migrate failed");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    seed(url, now)?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = std::env::temp_dir().join(format!("recon-status-bench-{port}.toml"));
    std::fs::write(&config, "[server]\nscheduler = false\n")?;
    let mut c = Command::new(recon);
    env(&mut c);
    let _server = Server(
        c.env("RECON_ADMIN_TOKEN", TOKEN)
            .env("RECON_LISTEN", format!("127.0.0.1:{port}"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .context("start recon serve")?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{base}/readyz"),
    ])? != "200"
    {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("recon serve did not become ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let headers = curl(&[
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--data-urlencode",
        &format!("token={TOKEN}"),
        &format!("{base}/status/login"),
    ])?;
    let cookie = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().starts_with("set-cookie:").then(|| {
                l["set-cookie:".len()..]
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        })
        .context("no session cookie from /status/login")?;

    let mut rows = Vec::new();
    for (what, path) in [
        ("overview, last 24 h", "/status"),
        (
            "overview, last 7 days (every run and drift record)",
            "/status?window=7d",
        ),
        (
            "one run's page (500 drift records, field-level)",
            "/status/runs/run-010000",
        ),
    ] {
        let t = times(&format!("{base}{path}"), &cookie)?;
        rows.push(format!(
            "| {what} | {:.1} ms | {:.1} ms | {:.1} ms |",
            pct(&t, 0.5),
            pct(&t, 0.99),
            t.last().copied().unwrap_or(0.0)
        ));
    }
    let _ = std::fs::remove_file(&config);
    Ok(rows)
}

/// The section of docs/BENCHMARKS.md.
pub fn section(machine: &str, rows: &[String]) -> String {
    format!(
        "## Status page\n\n\
         Machine: {machine}. Command: `cargo xtask bench status`. `recon serve` (release) on \
         Postgres holding 10,000 runs (one a minute for a week) and 100,000 drift records; \
         {REQUESTS} sequential GETs per page over one connection (curl's `time_total`), after 10 \
         to warm up.\n\n| page | p50 | p99 | max |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

/// Replace (or add) the status page's section of `doc`.
pub fn replace_section(doc: &str, section: &str) -> String {
    match doc.find("## Status page") {
        Some(start) => {
            let rest = &doc[start + 1..];
            let end = rest.find("\n## ").map_or(doc.len(), |i| start + 1 + i + 1);
            format!("{}{}{}", &doc[..start], section, &doc[end..])
        }
        None => format!(
            "{}\n{}",
            doc.trim_end_matches('\n').to_string() + "\n",
            section
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place() {
        let doc = "# B\n\nintro\n\n## Status page\n\nold\n\n## Other\n\nkept\n";
        let out = replace_section(doc, "## Status page\n\nnew\n\n");
        assert_eq!(
            out,
            "# B\n\nintro\n\n## Status page\n\nnew\n\n## Other\n\nkept\n"
        );
        let out = replace_section("# B\n\nintro\n", "## Status page\n\nnew\n");
        assert_eq!(out, "# B\n\nintro\n\n## Status page\n\nnew\n");
        assert!(pct(&[1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 && pct(&[1.0, 2.0, 3.0, 4.0], 0.99) == 4.0);
    }
}
