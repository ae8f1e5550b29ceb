//! Stripe's webhook endpoints: is there one that delivers to recon, has
//! Stripe disabled it, does it send every event type recon reads; and
//! creating one (docs/PROVIDERS.md, "Webhook endpoints").
//!
//! Webhooks fail silently: an endpoint at an old URL, one Stripe disabled
//! after its deliveries kept failing, or one that never subscribed to
//! `invoice.paid` all look, from recon's side, like a quiet day. [`check`]
//! compares what [`Endpoints::list`] reads with what recon needs
//! ([`needed_event_types`]) and says what is wrong as [`Finding`]s.
//!
//! Webhook endpoints belong to the platform account, so these requests
//! never send `Stripe-Account`; with a Connect account configured, an
//! endpoint is created with `connect=true` (it then receives the connected
//! accounts' events).

use recon_core::{Error, ErrorKind, Result};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::client::{Client, Query};
use crate::config::{SPEC, STRIPE_VERSION, StripeConfig};

/// Where recon serves Stripe's webhooks, under its public URL
/// (`POST /webhooks/stripe`).
pub const WEBHOOK_PATH: &str = "/webhooks/stripe";

/// The description [`Endpoints::create`] gives the endpoint it creates.
pub const DESCRIPTION: &str = "recon: keeps the app's copy of Stripe objects correct";

const PATH: &str = "/v1/webhook_endpoints";

/// The event types recon needs, by the Stripe object their `data.object`
/// is. The adapter maps an event by that object
/// ([`crate::objects::kind_of_object`]), so these are the events of every
/// object recon mirrors ([`crate::objects::KINDS`]) that change its state;
/// `invoice.upcoming` is left out (its invoice has no id yet), and so are
/// the invoice events only custom automations send (`invoice.overdue`,
/// `invoice.will_be_due`).
pub const EVENT_TYPES: &[(&str, &[&str])] = &[
    (
        "customer",
        &["customer.created", "customer.updated", "customer.deleted"],
    ),
    (
        "subscription",
        &[
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.subscription.paused",
            "customer.subscription.resumed",
            "customer.subscription.pending_update_applied",
            "customer.subscription.pending_update_expired",
            "customer.subscription.trial_will_end",
        ],
    ),
    (
        "invoice",
        &[
            "invoice.created",
            "invoice.updated",
            "invoice.deleted",
            "invoice.finalized",
            "invoice.finalization_failed",
            "invoice.sent",
            "invoice.paid",
            "invoice.payment_succeeded",
            "invoice.payment_failed",
            "invoice.payment_action_required",
            "invoice.marked_uncollectible",
            "invoice.voided",
        ],
    ),
    (
        "price",
        &["price.created", "price.updated", "price.deleted"],
    ),
    (
        "product",
        &["product.created", "product.updated", "product.deleted"],
    ),
];

/// Every event type of [`EVENT_TYPES`], in order.
pub fn needed_event_types() -> Vec<&'static str> {
    EVENT_TYPES
        .iter()
        .flat_map(|(_, types)| types.iter().copied())
        .collect()
}

/// The URL Stripe must deliver to: `<public_url>/webhooks/stripe`.
pub fn expected_url(public_url: &str) -> String {
    format!("{}{WEBHOOK_PATH}", public_url.trim().trim_end_matches('/'))
}

/// A URL for comparison: scheme and host lower-cased, the scheme's default
/// port, the query, the fragment and a trailing `/` gone (recon answers its
/// route whatever the query).
fn normalize(url: &str) -> String {
    let u = url.trim();
    let u = u
        .split(['?', '#'])
        .next()
        .unwrap_or(u)
        .trim_end_matches('/');
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = host.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    let host = host.strip_suffix(default_port).unwrap_or(&host);
    format!("{scheme}://{host}{path}")
}

/// Whether `url` is `expected`, compared without a trailing `/`, query or
/// default port, and with the scheme and host in any case.
pub fn same_url(url: &str, expected: &str) -> bool {
    normalize(url) == normalize(expected)
}

/// Another service's endpoint URL as recon shows it: its scheme and host
/// only. Such URLs often carry a secret in their path or query (a catch
/// hook's token), and findings go to the drift log, alerts and logs.
pub fn redacted(url: &str) -> String {
    let u = url.trim();
    let Some((scheme, rest)) = u.split_once("://") else {
        return "(not a URL)".to_string();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if authority.len() < rest.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// The endpoint that is right, if one is: at `<public_url>/webhooks/stripe`,
/// enabled, sending every type of `needed`.
pub fn right_endpoint<'a>(
    endpoints: &'a [WebhookEndpoint],
    public_url: &str,
    needed: &[&str],
) -> Option<&'a WebhookEndpoint> {
    let expected = expected_url(public_url);
    endpoints.iter().find(|e| {
        same_url(&e.url, &expected) && e.is_enabled() && e.missing_types(needed).is_empty()
    })
}

/// One webhook endpoint as Stripe lists it (its signing secret is only
/// ever returned at creation: see [`Created`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEndpoint {
    /// `we_…`.
    pub id: String,
    /// Where Stripe delivers.
    pub url: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// The event types it sends; `*` is all of them.
    pub enabled_events: Vec<String>,
    /// The API version its events are rendered in (`None`: the account's).
    pub api_version: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

impl WebhookEndpoint {
    /// Read one endpoint object; the error says what is missing.
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let id = text("id").ok_or("a webhook endpoint has no string `id`")?;
        let url = text("url").ok_or_else(|| format!("webhook endpoint {id} has no `url`"))?;
        let status =
            text("status").ok_or_else(|| format!("webhook endpoint {id} has no `status`"))?;
        let enabled_events = match v.get("enabled_events") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    format!("webhook endpoint {id}: `enabled_events` holds a non-string")
                })?,
            _ => {
                return Err(format!(
                    "webhook endpoint {id} has no `enabled_events` array"
                ));
            }
        };
        Ok(WebhookEndpoint {
            id,
            url,
            status,
            enabled_events,
            api_version: text("api_version"),
            description: text("description"),
        })
    }

    /// Stripe delivers to it.
    pub fn is_enabled(&self) -> bool {
        self.status == "enabled"
    }

    /// The types of `needed` it does not send (none when it sends `*`).
    pub fn missing_types(&self, needed: &[&str]) -> Vec<String> {
        if self.enabled_events.iter().any(|t| t == "*") {
            return Vec::new();
        }
        needed
            .iter()
            .filter(|t| !self.enabled_events.iter().any(|e| e == *t))
            .map(|t| t.to_string())
            .collect()
    }
}

/// What is wrong with the endpoints, for one public URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// No endpoint delivers to recon's URL.
    NoEndpoint {
        /// `<public_url>/webhooks/stripe`.
        expected_url: String,
    },
    /// An endpoint that delivers elsewhere, listed when none delivers to
    /// recon's URL: it may be recon's at an old or mistyped address.
    WrongUrl {
        /// `we_…`.
        endpoint: String,
        /// Where it delivers.
        url: String,
        /// Where recon listens.
        expected_url: String,
        /// Its status.
        status: String,
    },
    /// The endpoint at recon's URL is not enabled (Stripe disables an
    /// endpoint whose deliveries keep failing).
    Disabled {
        /// `we_…`.
        endpoint: String,
        /// Its URL.
        url: String,
        /// Its status (`disabled`).
        status: String,
    },
    /// The endpoint at recon's URL does not send some types recon needs.
    MissingTypes {
        /// `we_…`.
        endpoint: String,
        /// Its URL.
        url: String,
        /// The types it lacks.
        missing: Vec<String>,
    },
}

impl Finding {
    /// `no_endpoint`, `wrong_url`, `disabled` or `missing_types`.
    pub fn code(&self) -> &'static str {
        match self {
            Finding::NoEndpoint { .. } => "no_endpoint",
            Finding::WrongUrl { .. } => "wrong_url",
            Finding::Disabled { .. } => "disabled",
            Finding::MissingTypes { .. } => "missing_types",
        }
    }

    /// What it is about: the endpoint's id, or the URL nothing delivers to.
    pub fn subject(&self) -> &str {
        match self {
            Finding::NoEndpoint { expected_url } => expected_url,
            Finding::WrongUrl { endpoint, .. }
            | Finding::Disabled { endpoint, .. }
            | Finding::MissingTypes { endpoint, .. } => endpoint,
        }
    }

    /// One line for a person: what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Finding::NoEndpoint { expected_url } => format!(
                "no Stripe webhook endpoint delivers to {expected_url}: create one with \
                 `recon endpoints create stripe` (or in the Stripe Dashboard, Developers → \
                 Webhooks) and set STRIPE_WEBHOOK_SECRET to its signing secret"
            ),
            Finding::WrongUrl {
                endpoint,
                url,
                expected_url,
                status,
            } => format!(
                "Stripe webhook endpoint {endpoint} ({status}) delivers to {url}, not to \
                 {expected_url}: if it is meant for recon, change its URL in the Stripe \
                 Dashboard (Developers → Webhooks → {endpoint})"
            ),
            Finding::Disabled {
                endpoint,
                url,
                status,
            } => format!(
                "Stripe webhook endpoint {endpoint} at {url} is {status} (by hand, or by \
                 Stripe after its deliveries kept failing) and Stripe does not resend what \
                 happened meanwhile: fix what made deliveries fail, enable it again in the \
                 Stripe Dashboard (Developers → Webhooks → {endpoint}), then run `recon replay \
                 stripe` to apply the events it did not deliver"
            ),
            Finding::MissingTypes {
                endpoint,
                url,
                missing,
            } => format!(
                "Stripe webhook endpoint {endpoint} at {url} does not send {} event type{} \
                 recon needs: {}; add them to it in the Stripe Dashboard (Developers → \
                 Webhooks → {endpoint}), or select all events",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        }
    }
}

/// Compare Stripe's webhook `endpoints` with what recon needs: an enabled
/// endpoint at `<public_url>/webhooks/stripe` (compared without a trailing
/// `/`, scheme and host in any case) that sends every type of `needed`
/// (`*` sends all). Empty when all is well.
///
/// - No endpoint at that URL: [`Finding::NoEndpoint`], and every other
///   endpoint as [`Finding::WrongUrl`] so the operator sees where events go.
/// - Endpoints at that URL, none of them right: each one's problems
///   ([`Finding::Disabled`], [`Finding::MissingTypes`]). One right endpoint
///   is enough (another at the same URL delivers twice, which the ledger
///   absorbs).
pub fn check(endpoints: &[WebhookEndpoint], public_url: &str, needed: &[&str]) -> Vec<Finding> {
    let expected = expected_url(public_url);
    let (ours, others): (Vec<_>, Vec<_>) =
        endpoints.iter().partition(|e| same_url(&e.url, &expected));
    if ours.is_empty() {
        let wrong = others.into_iter().map(|e| Finding::WrongUrl {
            endpoint: e.id.clone(),
            url: redacted(&e.url),
            expected_url: expected.clone(),
            status: e.status.clone(),
        });
        return std::iter::once(Finding::NoEndpoint {
            expected_url: expected.clone(),
        })
        .chain(wrong)
        .collect();
    }
    let problems: Vec<Vec<Finding>> = ours.iter().map(|e| problems(e, needed)).collect();
    if problems.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    problems.concat()
}

fn problems(e: &WebhookEndpoint, needed: &[&str]) -> Vec<Finding> {
    let mut out = Vec::new();
    if !e.is_enabled() {
        out.push(Finding::Disabled {
            endpoint: e.id.clone(),
            url: e.url.clone(),
            status: e.status.clone(),
        });
    }
    let missing = e.missing_types(needed);
    if !missing.is_empty() {
        out.push(Finding::MissingTypes {
            endpoint: e.id.clone(),
            url: e.url.clone(),
            missing,
        });
    }
    out
}

/// An endpoint just created, with its signing secret: Stripe returns the
/// secret this once. `Debug` never shows it.
pub struct Created {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// Its `whsec_…` signing secret (`STRIPE_WEBHOOK_SECRET`).
    pub secret: SecretString,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Lists and creates the platform account's webhook endpoints.
pub struct Endpoints {
    client: Client,
    connect: bool,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

impl Endpoints {
    /// A client for `cfg`'s key and base URL (its budget and retries), as
    /// the platform: webhook endpoints are the platform's.
    pub fn new(cfg: &StripeConfig) -> Result<Self> {
        let mut platform = cfg.clone();
        platform.account = None;
        Ok(Endpoints {
            client: Client::new(&platform)?,
            connect: cfg.account.is_some(),
        })
    }

    /// Every webhook endpoint (`GET /v1/webhook_endpoints`, 100 a page,
    /// `starting_after` the last id while `has_more`).
    pub async fn list(&self) -> Result<Vec<WebhookEndpoint>> {
        const OP: &str = "list webhook endpoints";
        let mut out: Vec<WebhookEndpoint> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q: Query = vec![("limit", "100".to_string())];
            if let Some(a) = &after {
                q.push(("starting_after", a.clone()));
            }
            let page = self
                .client
                .list(OP, PATH, &q)
                .await
                .map_err(|e| permission_hint(e, "read"))?;
            for v in &page.data {
                out.push(WebhookEndpoint::from_json(v).map_err(|m| SPEC.malformed(OP, m))?);
            }
            if !page.has_more {
                return Ok(out);
            }
            let last = out.last().map(|e| e.id.clone());
            if last.is_none() || last == after {
                return Err(SPEC.malformed(OP, "a page that says more follow repeats the last one"));
            }
            after = last;
        }
    }

    /// Create an endpoint at `url` sending `types` (`POST
    /// /v1/webhook_endpoints`: `url`, every `enabled_events[]`,
    /// `description`, `api_version` pinned to [`STRIPE_VERSION`], and
    /// `connect=true` with a Connect account configured). The answer's
    /// `secret` is returned once, in [`Created::secret`].
    pub async fn create(&self, url: &str, types: &[&str]) -> Result<Created> {
        const OP: &str = "create webhook endpoint";
        let mut form: Query = vec![("url", url.to_string())];
        form.extend(types.iter().map(|t| ("enabled_events[]", t.to_string())));
        form.push(("description", DESCRIPTION.to_string()));
        form.push(("api_version", STRIPE_VERSION.to_string()));
        if self.connect {
            form.push(("connect", "true".to_string()));
        }
        let v = self
            .client
            .post_form(OP, PATH, &form)
            .await
            .map_err(|e| permission_hint(e, "write"))?;
        let endpoint = WebhookEndpoint::from_json(&v).map_err(|m| SPEC.malformed(OP, m))?;
        let secret = v
            .get("secret")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with("whsec_"))
            .ok_or_else(|| {
                SPEC.malformed(
                    OP,
                    format!(
                        "the new endpoint {} came without its whsec_… secret",
                        endpoint.id
                    ),
                )
            })?;
        Ok(Created {
            endpoint,
            secret: SecretString::from(secret.to_string()),
        })
    }
}

/// A 403 says which permission a restricted key lacks.
fn permission_hint(e: Error, access: &str) -> Error {
    if e.kind() != ErrorKind::PermissionDenied {
        return e;
    }
    let mut out = Error::new(
        ErrorKind::PermissionDenied,
        format!(
            "{}; a restricted key (rk_…) needs the Webhook Endpoints permission ({access})",
            e.message()
        ),
    )
    .with_component(e.component())
    .with_operation(e.operation().to_string());
    if let Some(s) = e.status() {
        out = out.with_status(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list covers exactly the kinds the adapter mirrors, through the
    /// same object → kind mapping the events are parsed with.
    #[test]
    fn the_types_follow_the_adapters_kinds() {
        let mut kinds: Vec<&str> = EVENT_TYPES
            .iter()
            .map(|(object, _)| {
                crate::objects::kind_of_object(object)
                    .unwrap_or_else(|| panic!("{object} is not an object recon mirrors"))
            })
            .collect();
        kinds.sort_unstable();
        let mut want = crate::objects::KINDS.to_vec();
        want.sort_unstable();
        assert_eq!(kinds, want);
        let all = needed_event_types();
        let mut dedup = all.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len(), "a type is listed twice");
        assert!(all.contains(&"customer.subscription.deleted"));
        assert!(!all.contains(&"invoice.upcoming"));
    }

    #[test]
    fn urls_compare_without_case_or_trailing_slash() {
        assert_eq!(
            expected_url("https://App.example.com/"),
            "https://App.example.com/webhooks/stripe"
        );
        assert_eq!(
            normalize("HTTPS://App.Example.com/webhooks/stripe/"),
            normalize("https://app.example.com/webhooks/stripe")
        );
        assert_ne!(
            normalize("https://app.example.com/Webhooks/stripe"),
            normalize("https://app.example.com/webhooks/stripe")
        );
    }
}
