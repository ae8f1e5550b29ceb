//! Logs, tables, JSON documents and exit codes.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use recon_core::{ErrorKind, RunRecord, RunStatus};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the operation failed (provider or store error).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: a sweep stopped by the circuit breaker.
pub const EXIT_BREAKER: u8 = 3;

/// Human logs on stderr by default; JSON with `RECON_LOG_FORMAT=json`; level
/// from `RUST_LOG` (default `info` for recon, `warn` for the rest). With
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, traces are exported too (see
/// [`crate::telemetry`]; the logs do not change): keep the returned guard
/// until the end, it flushes them.
pub fn init_tracing(quiet: bool) -> crate::telemetry::Telemetry {
    use tracing_subscriber::{EnvFilter, Layer};
    let default = if quiet {
        "error"
    } else {
        "warn,recon=info,recon_core=info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let json = std::env::var("RECON_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(true);
    let logs = if json {
        logs.json().flatten_event(true).boxed()
    } else {
        logs.with_target(false).boxed()
    };
    crate::telemetry::init(logs, filter)
}

/// The exit code for a recon error kind.
pub fn exit_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Config | ErrorKind::InvalidInput | ErrorKind::Unsupported => EXIT_USAGE,
        ErrorKind::CircuitOpen => EXIT_BREAKER,
        _ => EXIT_FAILED,
    }
}

/// The exit code for a run.
pub fn exit_for_run(run: &RunRecord) -> u8 {
    match run.status {
        RunStatus::Succeeded => EXIT_OK,
        RunStatus::CircuitOpen => EXIT_BREAKER,
        _ => EXIT_FAILED,
    }
}

/// Print an error as one clear line (or a JSON document) and pick the exit code.
pub fn report_error(e: &anyhow::Error, json: bool) -> u8 {
    let (code, kind) = match e.downcast_ref::<recon_core::Error>() {
        Some(re) => (exit_for(re.kind()), re.kind().as_str()),
        None => (EXIT_USAGE, "config"),
    };
    let msg = match e.downcast_ref::<recon_core::Error>() {
        Some(re) => re.to_string(),
        None => format!("{e:#}"),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": { "kind": kind, "message": msg } })
        );
    } else {
        eprintln!("error: {msg}");
    }
    code
}

/// Print a JSON document on stdout.
pub fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn ms_to_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// A table of runs.
pub fn runs_table(runs: &[RunRecord]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "started (UTC)",
        "provider",
        "kind",
        "run",
        "status",
        "listed",
        "drift",
        "ins",
        "upd",
        "del",
        "mismatch",
        "took",
    ]);
    for r in runs {
        let took = r
            .finished_at
            .map(|f| format!("{:.1}s", (f - r.started_at) as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        t.add_row([
            ms_to_text(r.started_at),
            r.provider.clone(),
            r.kind.clone(),
            format!(
                "{}{}",
                r.run_kind.as_str(),
                if r.dry_run { " (dry)" } else { "" }
            ),
            r.status.as_str().to_string(),
            r.counts.listed.to_string(),
            r.counts.drift.to_string(),
            r.counts.inserted.to_string(),
            r.counts.updated.to_string(),
            r.counts.deleted.to_string(),
            format!("{:.2}%", r.mismatch_ratio * 100.0),
            took,
        ]);
    }
    t.to_string()
}

/// One line about a run.
pub fn run_summary(r: &RunRecord) -> String {
    let what = if r.dry_run { "would fix" } else { "fixed" };
    let mut s = format!(
        "{} {} {}: {} — listed {}, drift {} ({:.2}%), {what} {} inserted / {} updated / {} deleted",
        r.provider,
        r.kind,
        r.run_kind.as_str(),
        r.status.as_str(),
        r.counts.listed,
        r.counts.drift,
        r.mismatch_ratio * 100.0,
        r.counts.inserted,
        r.counts.updated,
        r.counts.deleted
    );
    if r.counts.events_applied + r.counts.events_duplicate > 0 {
        s.push_str(&format!(
            ", events {} new / {} already seen",
            r.counts.events_applied, r.counts.events_duplicate
        ));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n  why: {e}"));
    }
    s
}
