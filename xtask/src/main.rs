//! `cargo xtask <task>`: the project's automation, in Rust so it runs the
//! same on every machine.
//!
//! - `test`  — the whole test suite with a fresh Postgres database
//! - `ci`    — what CI runs: fmt check, clippy -D warnings, the provider
//!   template check, `test`
//! - `bench` — benchmarks (never part of the test run)
//! - `new-provider NAME` — generate `crates/recon-NAME`, a provider crate to
//!   edit into a real adapter (`--check`: generate, test, lint and remove one)

mod bench;
mod new_provider;
mod pg;
mod status_bench;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  test [-- ARGS]     run every test; Postgres from TEST_DATABASE_URL, else the
                     local server on 127.0.0.1:5432; a fresh database per run
  ci                 cargo fmt --check, cargo clippy -D warnings (also per provider feature),
                     `new-provider --check`, then `test`
  bench [sweep N]    benchmarks; writes docs/BENCHMARKS.md
  bench status       only the status page's response times (10,000 runs,
                     100,000 drift records); writes its section of it
  chaos [SCALE [TRIALS]]
                     the chaos suite at a larger size (default SCALE 10: 3,000
                     customers and users, 30,000 mutations per store), the
                     race harness (25 x SCALE generated programs per store)
                     and the SIGKILL crash test with TRIALS kills per store
                     (default 20), in release mode, printing the figures
  new-provider NAME  generate crates/recon-NAME: a working adapter for a
                     hypothetical JSON API with the conformance suite wired,
                     to edit into a real one (docs/ADDING_A_PROVIDER.md);
                     prints the two lines that register it in recon-bin
  new-provider --check
                     generate crates/recon-probe, run its tests and clippy
                     -D warnings, and remove it (also on failure)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    match task {
        "test" => test(rest),
        "ci" => ci(),
        "bench" => bench::run(rest),
        "chaos" => chaos(rest),
        "new-provider" => new_provider::run_task(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n\n{HELP}"),
    }
}

/// Run a command, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn test(extra: &[String]) -> Result<()> {
    let db = pg::TestDatabase::create()?;
    eprintln!("xtask: tests use a fresh database: {}", db.redacted());
    let mut cmd = cargo();
    if has_nextest() {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra).env("TEST_DATABASE_URL", db.url());
    let result = run(&mut cmd);
    // Doc tests are not run by nextest.
    let doc = if has_nextest() && result.is_ok() {
        run(cargo()
            .args(["test", "--workspace", "--doc"])
            .env("TEST_DATABASE_URL", db.url()))
    } else {
        Ok(())
    };
    drop(db);
    result.and(doc)
}

fn ci() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Each provider is a feature of recon-bin: a binary with one, or none,
    // builds.
    for features in [
        &["--features", "recon-stripe"][..],
        &["--features", "recon-clerk"],
        &["--features", "recon-paddle"],
        // The production binary: every provider, no simulator or demo.
        &["--features", "recon-stripe,recon-clerk,recon-paddle"],
        &[],
    ] {
        run(cargo()
            .args(["clippy", "-p", "recon-bin", "--no-default-features"])
            .args(features)
            .args(["--", "-D", "warnings"]))?;
    }
    run(cargo().args([
        "test",
        "-q",
        "-p",
        "recon-bin",
        "--no-default-features",
        "--features",
        "recon-stripe",
        "--bins",
    ]))?;
    package()?;
    // The provider template still builds, passes its tests and is clippy-clean.
    new_provider::check()?;
    test(&[])
}

/// Every published crate packages and builds from its package alone, in
/// dependency order (cargo's local overlay stands in for crates.io), in a
/// target directory of its own: crates from a registry are never rebuilt
/// when their content changes under the same version, so neither that
/// directory nor the overlay's unpacked sources may outlive a run.
fn package() -> Result<()> {
    let root = new_provider::workspace_root();
    let target = root.join("target/package-verify");
    let _ = std::fs::remove_dir_all(&target);
    let _ = std::fs::remove_dir_all(root.join("target/package"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(Ok(dirs)) = cargo_home.map(|h| std::fs::read_dir(h.join("registry/src"))) {
        for d in dirs.flatten() {
            if d.file_name().to_string_lossy().starts_with('-') {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
    let result = run(cargo()
        // A developer's tree has uncommitted work: package it as it is.
        .args(["package", "--workspace", "--allow-dirty"])
        .args(["--exclude", "xtask", "--exclude", "recon-tests"])
        .args(["--exclude", "recon-examples", "--target-dir"])
        .arg(&target));
    let _ = std::fs::remove_dir_all(&target);
    result
}

fn chaos(args: &[String]) -> Result<()> {
    let scale: u32 = match args.first() {
        Some(a) => a
            .parse()
            .with_context(|| format!("SCALE must be a number, not {a:?}"))?,
        None => 10,
    };
    let trials: u32 = match args.get(1) {
        Some(a) => a
            .parse()
            .with_context(|| format!("TRIALS must be a number, not {a:?}"))?,
        None => 20,
    };
    let db = pg::TestDatabase::create()?;
    eprintln!(
        "xtask: chaos at scale {scale}, {trials} kill trials per store, database {}",
        db.redacted()
    );
    let mut cmd = cargo();
    if has_nextest() {
        cmd.args([
            "nextest",
            "run",
            "--release",
            "--no-capture",
            "--no-fail-fast",
        ]);
    } else {
        cmd.args(["test", "--release", "--no-fail-fast"]);
    }
    cmd.args([
        "-p",
        "recon-tests",
        "--test",
        "chaos_postgres",
        "--test",
        "chaos_sqlite",
        "--test",
        "race",
        "-p",
        "recon-bin",
        "--test",
        "crash",
    ]);
    if !has_nextest() {
        cmd.args(["--", "--nocapture"]);
    }
    cmd.env("TEST_DATABASE_URL", db.url())
        .env("RECON_CHAOS_SCALE", scale.to_string())
        .env("RECON_CRASH_TRIALS", trials.to_string())
        // The race harness: 4 programs per store in `test`, 25 per scale step here.
        .env("RECON_RACE_CASES", (25 * scale).to_string());
    let result = run(&mut cmd);
    drop(db);
    result
}
