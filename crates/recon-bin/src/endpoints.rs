//! `recon endpoints check [PROVIDER]` and `recon endpoints create stripe`:
//! is each provider's webhook endpoint there, pointed at recon, enabled and
//! sending every event type recon needs (docs/PROVIDERS.md, "Webhook
//! endpoints").
//!
//! Webhooks fail silently, so each finding is also recorded as drift (cause
//! `endpoint`, kind `endpoint`) and alerted like a check's violations
//! (`crate::alerts::check_alert`, check `endpoints:<provider>`). `recon
//! serve` runs the same check at start and once a day
//! (`serve::scheduler`).

use std::path::Path;

use anyhow::Result;
use clap::{Args, Subcommand};
use recon_core::project::CheckResult;
use recon_core::{DriftCause, DriftRecord, Error, ObjectKey, Source};
use serde_json::{Value, json};

use crate::OutputArgs;
use crate::app::App;
use crate::config::env;
use crate::output::{EXIT_FAILED, EXIT_OK, print_json};

/// The variable naming where the providers reach recon.
pub const PUBLIC_URL: &str = "RECON_PUBLIC_URL";

/// The drift kind of a finding.
pub const DRIFT_KIND: &str = "endpoint";

/// `recon endpoints`.
#[derive(Args, Debug)]
pub struct EndpointsArgs {
    #[command(subcommand)]
    pub command: EndpointsCommand,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// What `recon endpoints` does.
#[derive(Subcommand, Debug)]
pub enum EndpointsCommand {
    /// Check that each provider (or PROVIDER) delivers webhooks to
    /// RECON_PUBLIC_URL/webhooks/<provider>, enabled, with every event type
    /// recon needs. One line per finding; each is recorded as drift (cause
    /// endpoint) and alerted. Exit 0: all is well; 1: findings; 2: usage or
    /// configuration (RECON_PUBLIC_URL unset, provider off).
    Check {
        /// A provider this binary knows (default: every provider that is on).
        provider: Option<String>,
    },
    /// Create the provider's webhook endpoint at
    /// RECON_PUBLIC_URL/webhooks/<provider> with every event type recon
    /// needs, and print its signing secret once (Stripe only: Clerk's
    /// endpoints are made in its dashboard).
    Create {
        /// `stripe`.
        provider: String,
        /// Create one even if an enabled endpoint already delivers there.
        #[arg(long)]
        force: bool,
    },
}

/// One provider's check.
#[derive(Debug, Clone)]
pub struct ProviderCheck {
    /// The provider.
    pub provider: String,
    /// The mirror's account name (the drift key's account).
    pub account: String,
    /// `<public URL>/webhooks/<provider>`.
    pub expected_url: String,
    /// What came of it.
    pub outcome: Outcome,
}

/// What a provider's check found.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "recon-stripe"), allow(dead_code))]
pub enum Outcome {
    /// The endpoints were read.
    Checked {
        /// Every endpoint the provider listed.
        endpoints: Vec<Value>,
        /// The endpoint that is right, if one is.
        ok_endpoint: Option<String>,
        /// What is wrong (empty: all is well).
        findings: Vec<Finding>,
    },
    /// The provider's API cannot say: why, and where to look instead.
    Unchecked(String),
}

/// One finding, whatever the provider.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "recon-stripe"), allow(dead_code))]
pub struct Finding {
    /// `no_endpoint`, `wrong_url`, `disabled`, `missing_types`.
    pub code: String,
    /// The endpoint's id, or the URL nothing delivers to.
    pub subject: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The provider's finding as JSON (`{"finding": …, …}`).
    pub detail: Value,
}

impl Finding {
    fn to_json(&self, provider: &str) -> Value {
        let mut v = self.detail.clone();
        v["provider"] = json!(provider);
        v["message"] = json!(self.message);
        v
    }
}

impl ProviderCheck {
    /// The findings (none when unchecked).
    pub fn findings(&self) -> &[Finding] {
        match &self.outcome {
            Outcome::Checked { findings, .. } => findings,
            Outcome::Unchecked(_) => &[],
        }
    }

    /// The check as the alert path and `/metrics` take one
    /// (`endpoints:<provider>`); `None` when unchecked.
    pub fn as_check_result(&self) -> Option<CheckResult> {
        matches!(self.outcome, Outcome::Checked { .. }).then(|| CheckResult {
            name: format!("endpoints:{}", self.provider),
            description: format!(
                "{}'s webhook endpoint for {} is missing, disabled or lacks event types recon needs",
                self.provider, self.expected_url
            ),
            violations: self
                .findings()
                .iter()
                .map(|f| f.to_json(&self.provider))
                .collect(),
            error: None,
        })
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "provider": self.provider, "expected_url": self.expected_url });
        match &self.outcome {
            Outcome::Checked {
                endpoints,
                ok_endpoint,
                findings,
            } => {
                v["checked"] = json!(true);
                v["endpoints"] = json!(endpoints);
                v["ok_endpoint"] = json!(ok_endpoint);
                v["findings"] = findings.iter().map(|f| f.to_json(&self.provider)).collect();
            }
            Outcome::Unchecked(why) => {
                v["checked"] = json!(false);
                v["why"] = json!(why);
            }
        }
        v
    }

    /// One line per finding, or one saying all is well or why it could
    /// not be checked.
    fn lines(&self) -> Vec<String> {
        let p = &self.provider;
        match &self.outcome {
            Outcome::Unchecked(why) => vec![format!("{p}: not checked: {why}")],
            Outcome::Checked {
                ok_endpoint: Some(id),
                findings,
                ..
            } if findings.is_empty() => vec![format!(
                "{p}: ok: webhook endpoint {id} delivers to {}, enabled, with every event type recon needs",
                self.expected_url
            )],
            Outcome::Checked { findings, .. } => findings
                .iter()
                .map(|f| format!("{p}: {}: {}", f.code, f.message))
                .collect(),
        }
    }
}

/// `RECON_PUBLIC_URL`, checked: an `http(s)://` URL without query or
/// fragment, trailing `/` removed. A configuration error (exit 2) saying
/// how to set it otherwise.
pub fn public_url() -> recon_core::Result<String> {
    let Some(raw) = env(PUBLIC_URL) else {
        return Err(Error::config(format!(
            "{PUBLIC_URL} is not set: set it to the address the providers reach recon at, \
             e.g. {PUBLIC_URL}=https://app.example.com (webhooks then go to \
             https://app.example.com/webhooks/<provider>)"
        )));
    };
    let url = raw.trim().trim_end_matches('/').to_string();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or("");
    if host.split('/').next().unwrap_or("").contains('@') {
        return Err(Error::config(format!(
            "{PUBLIC_URL} must not carry a user name or password (they would be shown in \
             findings and sent to Stripe); set it to the public address alone, like https://app.example.com"
        )));
    }
    if host.is_empty() || host.starts_with('/') || url.contains(['?', '#', ' ']) {
        return Err(Error::config(format!(
            "{PUBLIC_URL} must be an http(s) URL without query or fragment, like https://app.example.com, not {raw:?}"
        )));
    }
    Ok(url)
}

/// `<public_url>/webhooks/<provider>`: the route `recon serve` answers.
pub fn webhook_url(public_url: &str, provider: &str) -> String {
    format!("{public_url}/webhooks/{provider}")
}

/// Whether `recon serve` checks endpoints daily: `RECON_PUBLIC_URL` is set
/// and a provider whose endpoints can be read is on.
pub fn scheduled(app: &App) -> bool {
    env(PUBLIC_URL).is_some() && app.providers.iter().any(|p| readable(p.name))
}

/// Providers whose endpoints recon can read.
pub fn readable(provider: &str) -> bool {
    cfg!(feature = "recon-stripe") && provider == "stripe"
}

/// Check one provider's endpoints (no recording, no alert).
pub async fn check_provider(
    app: &App,
    provider: &str,
    public_url: &str,
) -> recon_core::Result<ProviderCheck> {
    let entry = app.provider(provider)?;
    let expected_url = webhook_url(public_url, provider);
    let outcome = match provider {
        #[cfg(feature = "recon-stripe")]
        "stripe" => stripe::check(&app.config, public_url).await?,
        "clerk" => Outcome::Unchecked(format!(
            "Clerk's Backend API cannot list webhook endpoints (Clerk delivers through Svix; \
             the API only creates the Svix app and mints a link to its dashboard). Look on the \
             Clerk Dashboard's Webhooks page for an endpoint at {expected_url}, enabled, \
             subscribed to user.*, organization.* and organizationMembership.* (created, updated, \
             deleted), whose signing secret is CLERK_WEBHOOK_SECRET, and at its failed deliveries"
        )),
        other => Outcome::Unchecked(format!(
            "recon cannot read {other}'s webhook endpoints yet: check in {other}'s dashboard that \
             one delivers to {expected_url}, enabled, with the events recon reads"
        )),
    };
    Ok(ProviderCheck {
        provider: provider.to_string(),
        account: entry.provider.account().to_string(),
        expected_url,
        outcome,
    })
}

/// Record a check's findings as drift (cause `endpoint`, kind `endpoint`)
/// and alert on them (log, `RECON_ALERT_WEBHOOK_URL`). Nothing for a check
/// without findings.
pub async fn record(app: &App, check: &ProviderCheck, source: Source) -> recon_core::Result<()> {
    let findings = check.findings();
    if findings.is_empty() {
        return Ok(());
    }
    let at = recon_core::now_ms();
    let rows: Vec<DriftRecord> = findings
        .iter()
        .map(|f| DriftRecord {
            key: ObjectKey::new(
                check.provider.clone(),
                check.account.clone(),
                DRIFT_KIND,
                f.subject.clone(),
            ),
            run_id: None,
            source,
            cause: DriftCause::Endpoint,
            before: None,
            after: Some(f.to_json(&check.provider)),
            detected_at: at,
        })
        .collect();
    let mut tx = app.store.begin().await?;
    tx.insert_drift(&rows).await?;
    tx.commit().await?;
    if let Some(r) = check.as_check_result() {
        crate::alerts::check_alert(&r).await;
    }
    Ok(())
}

/// Check, record and alert: what `recon serve` runs daily.
pub async fn check_and_record(
    app: &App,
    provider: &str,
    public_url: &str,
    source: Source,
) -> recon_core::Result<ProviderCheck> {
    let check = check_provider(app, provider, public_url).await?;
    record(app, &check, source).await?;
    Ok(check)
}

/// `recon endpoints`.
pub async fn run(config: Option<&Path>, a: EndpointsArgs) -> Result<u8> {
    match a.command {
        EndpointsCommand::Check { provider } => check(config, provider, a.out).await,
        EndpointsCommand::Create { provider, force } => {
            create(config, &provider, force, a.out).await
        }
    }
}

fn registered(name: &str) -> recon_core::Result<()> {
    let registry = crate::registry::registry();
    match registry.lookup(name) {
        Some(_) => Ok(()),
        None => Err(Error::invalid(registry.unknown(name).message())),
    }
}

async fn check(config: Option<&Path>, provider: Option<String>, out: OutputArgs) -> Result<u8> {
    if let Some(p) = &provider {
        registered(p)?;
    }
    let public = public_url()?;
    let app = crate::commands::ready_app(config, false).await?;
    let names: Vec<String> = match provider {
        Some(p) => vec![p],
        None => app.providers.iter().map(|p| p.name.to_string()).collect(),
    };
    if names.is_empty() {
        let off: Vec<&str> = app.off.iter().map(|(_, why)| why.as_str()).collect();
        return Err(Error::config(format!(
            "no provider is on, so there are no endpoints to check ({})",
            off.join("; ")
        ))
        .into());
    }
    let mut checks = Vec::new();
    for name in &names {
        let c = check_provider(&app, name, &public).await?;
        record(&app, &c, Source::OnDemand).await?;
        checks.push(c);
    }
    let findings: usize = checks.iter().map(|c| c.findings().len()).sum();
    if out.json {
        print_json(&json!({
            "ok": findings == 0,
            "public_url": public,
            "providers": checks.iter().map(ProviderCheck::to_json).collect::<Vec<_>>(),
        }));
    } else {
        for c in &checks {
            for line in c.lines() {
                println!("{line}");
            }
        }
    }
    Ok(if findings == 0 { EXIT_OK } else { EXIT_FAILED })
}

async fn create(config: Option<&Path>, provider: &str, force: bool, out: OutputArgs) -> Result<u8> {
    registered(provider)?;
    #[cfg(not(feature = "recon-stripe"))]
    let _ = (config, force, out);
    match provider {
        #[cfg(feature = "recon-stripe")]
        "stripe" => stripe::create(config, force, out).await,
        "clerk" => Err(Error::invalid(
            "Clerk's Backend API cannot create webhook endpoints (it only creates the Svix app \
             and mints a link to its dashboard): add the endpoint on the Clerk Dashboard's \
             Webhooks page, at RECON_PUBLIC_URL/webhooks/clerk, and set CLERK_WEBHOOK_SECRET \
             to its signing secret",
        )
        .into()),
        other => Err(Error::unsupported(format!(
            "recon cannot create {other}'s webhook endpoints: create one in {other}'s dashboard"
        ))
        .into()),
    }
}

#[cfg(feature = "recon-stripe")]
mod stripe {
    //! Stripe's side: its configuration as the provider's, its endpoints
    //! read and created through `recon_stripe::endpoints`.

    use anyhow::Result;
    use recon_core::Error;
    use recon_stripe::endpoints::{self, Endpoints, WebhookEndpoint};
    use secrecy::ExposeSecret;
    use serde_json::json;

    use super::{Finding, Outcome};
    use crate::OutputArgs;
    use crate::config::Config;
    use crate::output::{EXIT_OK, print_json};

    /// Stripe's configuration as the provider builds it: the environment
    /// (`STRIPE_SECRET_KEY`, `STRIPE_API_BASE`, …), then `[stripe]`.
    fn config(config: &Config) -> recon_core::Result<recon_stripe::StripeConfig> {
        if config.provider("stripe").enabled == Some(false) {
            return Err(Error::config("stripe is disabled in the config file"));
        }
        let mut cfg = recon_stripe::StripeConfig::from_env()?;
        cfg.api.apply_file(&config.provider_settings("stripe")?);
        Ok(cfg)
    }

    pub(super) async fn check(config: &Config, public_url: &str) -> recon_core::Result<Outcome> {
        let client = Endpoints::new(&self::config(config)?)?;
        let listed = client.list().await?;
        let needed = endpoints::needed_event_types();
        let ok_endpoint =
            endpoints::right_endpoint(&listed, public_url, &needed).map(|e| e.id.clone());
        let findings = endpoints::check(&listed, public_url, &needed)
            .into_iter()
            .map(|f| Finding {
                code: f.code().to_string(),
                subject: f.subject().to_string(),
                message: f.message(),
                detail: json!(f),
            })
            .collect();
        Ok(Outcome::Checked {
            endpoints: listed.iter().map(|e| json!(e)).collect(),
            ok_endpoint,
            findings,
        })
    }

    pub(super) async fn create(
        config: Option<&std::path::Path>,
        force: bool,
        out: OutputArgs,
    ) -> Result<u8> {
        let public_url = super::public_url()?;
        let config = Config::load(config)?;
        let client = Endpoints::new(&self::config(&config)?)?;
        let url = endpoints::expected_url(&public_url);
        let listed = client.list().await?;
        let here: Vec<&WebhookEndpoint> = listed
            .iter()
            .filter(|e| endpoints::same_url(&e.url, &url))
            .collect();
        if let Some(e) = here.iter().find(|e| e.is_enabled())
            && !force
        {
            return Err(Error::invalid(format!(
                "an enabled Stripe webhook endpoint already delivers to {url}: {} (its signing \
                 secret was shown only when it was created; roll it in the Stripe Dashboard if \
                 STRIPE_WEBHOOK_SECRET is lost). Run `recon endpoints check stripe` to see \
                 whether it is right, or pass --force to create another",
                e.id
            ))
            .into());
        }
        for e in here.iter().filter(|e| !e.is_enabled()) {
            eprintln!(
                "note: Stripe webhook endpoint {} at {url} is {}; delete it in the Stripe Dashboard once the new one works",
                e.id, e.status
            );
        }
        let needed = endpoints::needed_event_types();
        let created = client.create(&url, &needed).await?;
        let e = &created.endpoint;
        // The secret goes to stdout once, never to the logs.
        let secret = created.secret.expose_secret();
        if out.json {
            print_json(&json!({
                "ok": true,
                "endpoint": e,
                "secret": secret,
                "set": "STRIPE_WEBHOOK_SECRET",
            }));
        } else {
            println!(
                "created Stripe webhook endpoint {} delivering to {} ({} event types)",
                e.id,
                e.url,
                e.enabled_events.len()
            );
            println!(
                "Stripe shows its signing secret only now: set it in recon's environment and restart recon serve:"
            );
            println!("STRIPE_WEBHOOK_SECRET={secret}");
        }
        Ok(EXIT_OK)
    }
}
