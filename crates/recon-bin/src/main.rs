//! `recon`: keeps your database's copy of your billing and identity providers correct.
//!
//! Exit status: 0 success, 1 the operation failed (provider or store error),
//! 2 bad usage or configuration, 3 a sweep stopped by the circuit breaker.

mod alerts;
mod app;
mod apptables;
mod commands;
mod config;
#[cfg(feature = "demo")]
mod demo;
#[cfg(feature = "demo")]
mod demo_app;
mod endpoints;
mod output;
mod progress;
mod registry;
mod resume;
mod serve;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// glibc's malloc gives each busy thread its own arena; a long sweep's page
// buffers fragment them and the peak RSS grew with the listing (+31% from
// 20,000 to 1,000,000 customers). mimalloc (built without transparent huge
// pages, and tuned by `tune_allocator`) stays flat and is faster on the
// JSON-heavy paths. Figures in docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its ordinal in `mi_option_e` (mimalloc.h, v3),
/// which libmimalloc-sys does not name. Upstream keeps ordinals stable by
/// renaming retired options `deprecated_*` in place.
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Return freed pages to the OS at once instead of after 1 s: a sweep of
/// 20,000 customers peaks at 41 MiB instead of 56 MiB, at the same speed.
fn tune_allocator() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table,
    // and the purge delay is an integer option (milliseconds).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Keep your database's copy of Stripe, Clerk and Paddle correct, whatever
/// the webhooks do.
///
/// recon receives webhooks (idempotent ledger, newest state wins), sweeps the
/// providers' APIs on a schedule or on demand, replays missed events, and
/// logs every difference it finds and fixes.
#[derive(Parser, Debug)]
#[command(name = "recon", version, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file (see recon.example.toml); env RECON_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The examples of `recon --help`; the environment and the providers follow,
/// from the registry.
const EXAMPLES: &str = "\
Examples:
  recon demo                                  try it with simulated providers, no setup
  recon migrate                               create recon's tables (DATABASE_URL, default sqlite://recon.db)
  recon reconcile stripe --dry-run            what would a sweep of Stripe change?
  recon reconcile stripe --kind subscriptions sweep one kind and fix it
  recon reconcile stripe --id sub_123         fix one object now
  recon reconcile clerk --owner user_123      a user and their memberships
  recon replay stripe                         re-apply Stripe events from where the last replay stopped
  recon replay stripe --since 24h             re-apply Stripe events of the last day
  recon drift --stale 24h                     what is out of date or inconsistent
  recon reconcile stripe --app --dry-run      which of your own table's rows differ from the mirror?
  recon check                                 run the declared and built-in checks (exit 1 on violations)
  recon changes --follow                      every change recon makes, as it happens
  recon endpoints check                       do the providers send webhooks to recon? (RECON_PUBLIC_URL)
  recon serve                                 webhooks + scheduler + /metrics on 127.0.0.1:8080";

/// `recon --help` after the options: examples, the providers this binary
/// was built with and what turns each on, the environment, exit statuses.
fn after_help() -> String {
    let mut out = format!("{EXAMPLES}\n\nProviders (each on when its key is set):\n");
    let mut vars = vec!["DATABASE_URL"];
    for f in registry::registry().iter() {
        out.push_str(&format!(
            "  {:<10} {}; kinds: {}\n",
            f.name(),
            f.key_var(),
            f.kinds().join(", ")
        ));
        vars.extend(f.env_vars().iter().map(|v| v.name));
    }
    vars.extend([
        "RECON_ADMIN_TOKEN",
        "RECON_LISTEN",
        "RECON_ALERT_WEBHOOK_URL",
        "RECON_PUBLIC_URL",
        "RECON_CONFIG",
        "RECON_LOG_FORMAT=json",
        "RUST_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ]);
    // Wrapped at 100 columns, like the examples.
    let mut line = String::from("\nEnvironment:");
    for (i, v) in vars.iter().enumerate() {
        let word = if i + 1 == vars.len() {
            format!("{v}.")
        } else {
            format!("{v},")
        };
        if line.len() + 1 + word.len() > 100 {
            out.push_str(&line);
            line = String::from("\n");
        } else {
            line.push(' ');
        }
        line.push_str(&word);
    }
    out.push_str(&line);
    out.push_str("\nExit status: 0 ok, 1 failed, 2 usage or configuration, 3 circuit breaker.");
    out
}

/// Output options shared by commands.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// One machine-readable JSON document on stdout (logs go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a self-contained demo: simulated Stripe and Clerk, faulty
    /// webhooks, then reconciliation, on an embedded database.
    Demo(commands::DemoArgs),
    /// Create or upgrade recon's tables in DATABASE_URL. Safe to repeat.
    Migrate(OutputArgs),
    /// Serve webhooks, run scheduled sweeps and replays, expose /metrics.
    #[command(after_help = "\
Routes: POST /webhooks/{provider} (one per provider that is on), GET /healthz, GET /readyz, GET /metrics,
and with RECON_ADMIN_TOKEN set, /admin/... (bearer token):
  POST /admin/reconcile/{provider}[?kind=K&dry_run=true&force=true]
  POST /admin/reconcile/{provider}/objects/{id}    POST /admin/reconcile/{provider}/owners/{id}
  POST /admin/replay/{provider}[?since=24h] (default: from the event cursor)
  GET /admin/drift[?stale=24h]   GET /admin/runs
RECON_ADMIN_TOKEN must be at least 32 characters without surrounding whitespace
(make one with `openssl rand -hex 32`); otherwise serve exits with status 2.

Scheduled replays resume from the stored event cursor (the first one, without a cursor, starts
[stripe] replay_window ago). If the cursor has fallen beyond Stripe's 30-day event log, the replay
starts at the oldest reachable event, an alert is raised (error log, recon_replay_gaps_total,
RECON_ALERT_WEBHOOK_URL) and full sweeps of every kind are scheduled.")]
    Serve,
    /// Compare the mirror with the provider and fix what differs.
    #[command(after_help = "\
Examples:
  recon reconcile stripe                     sweep every Stripe kind
  recon reconcile stripe --kind invoices     sweep one kind
  recon reconcile stripe --dry-run --json    report drift without writing
  recon reconcile stripe --id cus_123        one object: fixed, already_synced, deleted or not_found
  recon reconcile stripe --owner cus_123     a customer, its subscriptions and invoices, then its app rows
                                             (one line each: fixed / ok, with was → now)
  recon reconcile stripe --app --dry-run     which rows of your own tables ([[projections]]) differ, was → now
  recon reconcile stripe --app               repair them (drift cause app_drift), then run the checks

A full sweep (no --kind, --id or --owner) ends with the same app pass over the provider's
[[projections]] and the checks ([[checks]], [link]); with --dry-run it only reports.
Exit status 0: every run succeeded; 1: a run failed; 2: usage or configuration (a projection whose
table, columns or query do not work is named); 3: the circuit breaker stopped a sweep or an app pass
that would change too much (rerun with --force). Check violations are printed, not an exit status:
use `recon check` for that.")]
    Reconcile(commands::ReconcileArgs),
    /// Re-apply the provider's events from the stored cursor or a point
    /// (Stripe keeps 30 days).
    #[command(after_help = "\
Examples:
  recon replay stripe                  resume from the stored event cursor (where the last replay stopped)
  recon replay stripe --since 24h      re-apply the events of the last day
  recon replay stripe --since 2026-11-24T10:00:00Z

Without --since the replay resumes from the event cursor that every replay (this command or
recon serve's scheduled ones) stores. Without a cursor yet (no replay has run), it exits 2: pass
--since. If the cursor has fallen beyond Stripe's 30-day event log, the events in between can no
longer be replayed: it replays from the oldest reachable event, says which span was lost, raises
an alert (RECON_ALERT_WEBHOOK_URL when set) and exits 1; run `recon reconcile stripe` to repair
what those events changed.")]
    Replay(commands::ReplayArgs),
    /// Show stale objects, inconsistent references and recent drift.
    #[command(after_help = "\
Drift causes: missing, changed, deleted (the mirror vs the provider), app_drift (a row of your own
table differed from what the mirror implies; kind app:<projection>, with was → now), check
(a declared or built-in check returned this row; kind check:<check>) and endpoint (a provider's
webhook endpoint is missing, disabled or lacks event types: `recon endpoints check`).

Examples:
  recon drift                  stale objects, dangling references, the 50 latest drift records
  recon drift --stale 1h --json")]
    Drift(commands::DriftArgs),
    /// Run the declared and built-in checks; each violation is recorded as
    /// drift (cause `check`).
    #[command(after_help = "\
Checks are SQL over recon's views and your own tables that must return no rows ([[checks]] in the
config file), plus the built-in Stripe <-> Clerk checks when [link] enabled = true: a deleted Clerk
user whose customer still has an active subscription, one Clerk user with several customers, a
customer naming a Clerk user that does not exist, an app row with an active status but no
subscription id. With --stale (or a projection's stale_after): app rows not verified for longer
than that, because their provider object was not confirmed by a webhook, fetch or sweep, or no
app pass of their projection ran (check app_stale:<projection>).

Examples:
  recon check                  print each violation (at most 100 per check)
  recon check --stale 24h      also: app rows not verified for a day
  recon check --json           {\"ok\": false, \"checks\": [{\"name\", \"violations\": [...], \"error\"}]}

Exit status: 0 no violations; 1 a check found violations or its SQL failed; 2 usage or configuration.")]
    Check(apptables::CheckArgs),
    /// Read the change feed: every change recon made to the mirror or to
    /// your own tables, in order, with a sequence number.
    #[command(after_help = "\
Each change has a sequence number (use it as your idempotency key), a cause (webhook, replay,
sweep_repair, on_demand, fetch, app_drift), the object or the app row, and what changed (before →
after, only the fields that changed). On Postgres each new change is also announced with
NOTIFY recon_changes (payload: the sequence number). Entries older than [changes] retention
(default 7d) are pruned by recon serve.

Examples:
  recon changes                          the oldest 100 changes kept
  recon changes --since 1041             the changes after 1041 (the last one your app handled)
  recon changes --since 1041 --follow    and keep printing new ones until Ctrl-C
  recon changes --follow --json          one JSON object per line, as they come")]
    Changes(apptables::ChangesArgs),
    /// Show recent runs with their counts, mismatch ratio and status.
    Runs(commands::RunsArgs),
    /// Check the providers' webhook endpoints (URL, enabled, event types),
    /// or create Stripe's.
    #[command(after_help = "\
Webhooks fail silently: an endpoint at an old URL, one the provider disabled after its deliveries
kept failing (Stripe does), or one that does not send every event type recon reads all look like
a quiet day. Set RECON_PUBLIC_URL to the address the providers reach recon at (e.g.
https://app.example.com); each provider must deliver to RECON_PUBLIC_URL/webhooks/<provider>.

`check` reads Stripe's endpoints (GET /v1/webhook_endpoints) and prints one line per finding:
no_endpoint (none delivers to recon; the others are listed as wrong_url), disabled, missing_types.
Each finding is recorded as drift (cause endpoint, kind endpoint: `recon drift`) and alerted
(RECON_ALERT_WEBHOOK_URL). Clerk's API cannot list its (Svix) endpoints: check says where to look.
`recon serve` runs the check at start and daily when RECON_PUBLIC_URL is set.

`create stripe` creates the endpoint at RECON_PUBLIC_URL/webhooks/stripe with every event type recon
needs and prints its signing secret once (set it as STRIPE_WEBHOOK_SECRET). It refuses (exit 2) when
an enabled endpoint already delivers there, unless --force.

Examples:
  RECON_PUBLIC_URL=https://app.example.com recon endpoints check
  recon endpoints check stripe --json
  recon endpoints create stripe

Exit status: 0 all is well (or created); 1 findings, or the provider failed; 2 usage or configuration
(RECON_PUBLIC_URL unset, provider off, an endpoint already there).")]
    Endpoints(endpoints::EndpointsArgs),
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().after_help(after_help()).get_matches();
        match Cli::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    };
    let json = match &cli.command {
        Command::Migrate(o) => o.json,
        Command::Reconcile(a) => a.out.json,
        Command::Replay(a) => a.out.json,
        Command::Drift(a) => a.out.json,
        Command::Runs(a) => a.out.json,
        Command::Check(a) => a.out.json,
        Command::Changes(a) => a.out.json,
        Command::Demo(a) => a.out.json,
        Command::Endpoints(a) => a.out.json,
        Command::Serve => false,
    };
    // The demo prints its own story; its logs stay quiet unless RUST_LOG asks.
    // Traces (with OTEL_EXPORTER_OTLP_ENDPOINT) are flushed when this
    // guard is shut down below, or dropped on any other way out.
    let telemetry = output::init_tracing(matches!(cli.command, Command::Demo(_)));
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(async move {
        let result = match cli.command {
            Command::Demo(a) => commands::demo(a).await,
            Command::Migrate(o) => commands::migrate(cli.config.as_deref(), o).await,
            Command::Serve => serve::run(cli.config.as_deref()).await,
            Command::Reconcile(a) => commands::reconcile(cli.config.as_deref(), a).await,
            Command::Replay(a) => commands::replay(cli.config.as_deref(), a).await,
            Command::Drift(a) => commands::drift(cli.config.as_deref(), a).await,
            Command::Runs(a) => commands::runs(cli.config.as_deref(), a).await,
            Command::Check(a) => apptables::check(cli.config.as_deref(), a).await,
            Command::Changes(a) => apptables::changes(cli.config.as_deref(), a).await,
            Command::Endpoints(a) => endpoints::run(cli.config.as_deref(), a).await,
        };
        match result {
            Ok(code) => code,
            Err(e) => output::report_error(&e, json),
        }
    });
    // The runtime first (its tasks' spans end), then the spans are flushed.
    drop(rt);
    telemetry.shutdown();
    ExitCode::from(code)
}

#[cfg(test)]
mod allocator_tests {
    /// The ordinal names the purge delay in the bundled mimalloc: its
    /// default is 1000 ms, and `tune_allocator` sets it to 0.
    #[test]
    fn purge_delay_ordinal() {
        #[allow(unsafe_code)]
        // SAFETY: reads an integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            get(),
            1000,
            "ordinal {} is not the purge delay",
            super::MI_OPTION_PURGE_DELAY
        );
        super::tune_allocator();
        assert_eq!(get(), 0);
    }
}

#[cfg(all(test, not(feature = "demo")))]
mod production_build_tests {
    use clap::Parser;

    #[tokio::test]
    async fn the_demo_says_how_to_get_it() {
        let cli = super::Cli::try_parse_from(["recon", "demo"]).unwrap();
        let super::Command::Demo(a) = cli.command else {
            panic!("not the demo command")
        };
        let e = crate::commands::demo(a).await.unwrap_err().to_string();
        assert!(e.contains("`demo` feature"), "{e}");
    }
}
