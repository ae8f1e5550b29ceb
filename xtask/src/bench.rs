//! `cargo xtask bench`: benchmarks, never part of the test run.
//!
//! `sweep` — N synthetic objects from an in-process provider swept into a
//! fresh Postgres database, at several sizes, one process each so that peak
//! memory is per size. The table is printed and written to docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::process::Command;

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
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{} GiB", kb / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem}")
}

fn parse_kv(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Run the benchmarks: `cargo xtask bench [sweep] [N …]`.
pub fn run(args: &[String]) -> Result<()> {
    let sizes: Vec<u64> = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect::<Vec<_>>()
        .into_iter()
        .chain(std::iter::empty())
        .collect();
    let sizes = if sizes.is_empty() { vec![20_000, 100_000, 200_000] } else { sizes };
    crate::run(cargo().args(["build", "--release", "-q", "-p", "recon-tests", "--bin", "sweep-bench"]))?;
    let db = crate::pg::TestDatabase::create()?;
    let mut rows = Vec::new();
    for n in &sizes {
        let out = Command::new("target/release/sweep-bench")
            .arg(n.to_string())
            .env("TEST_DATABASE_URL", db.url())
            .output()
            .context("run sweep-bench")?;
        if !out.status.success() {
            bail!("sweep-bench {n} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("sweep-bench")).context("no result line")?;
        eprintln!("{line}");
        rows.push(parse_kv(line));
    }
    let mut table = String::new();
    table.push_str(&format!(
        "## Sweep into Postgres (in-process provider, no network)\n\nMachine: {}. Command: `cargo xtask bench {}`.\n\n",
        machine(),
        sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" ")
    ));
    table.push_str("| objects | backfill s | backfill objects/s | re-sweep s | re-sweep objects/s | re-sweep rows written | peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &rows {
        let rss: f64 = r.get("peak_rss_kb").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r["objects"], r["backfill_s"], r["backfill_obj_per_s"], r["resweep_s"], r["resweep_obj_per_s"], r["resweep_writes"], rss / 1024.0
        ));
    }
    println!("{table}");
    std::fs::create_dir_all("docs")?;
    let doc = format!(
        "# Benchmarks\n\nProduced by `cargo xtask bench`; figures from one run on the machine named. This machine is shared, so compare rows of one run, not runs.\n\n{table}"
    );
    std::fs::write("docs/BENCHMARKS.md", doc)?;
    Ok(())
}
