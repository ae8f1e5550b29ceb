//! The JSON HTTP client every adapter shares (feature `http-client`): GETs on the
//! adapter's [`Budget`] (rate limiter and retry policy), the provider's
//! clock read from its answers, a default HTTP status → [`ErrorKind`]
//! table, `Retry-After`, transport failures, and provider text with secrets
//! masked.
//!
//! What stays in the adapter is what is its provider's own: extra headers
//! (`Stripe-Version`, `Clerk-API-Version`), the shape of its error bodies,
//! which 404 means "no such object" (never "no such route"), and the few
//! statuses or codes it classifies differently from the table.
//!
//! Why by hand: reqwest sends the request and backon (in [`Budget`])
//! retries; what is left is the mapping between the two and recon's
//! errors, which no crate knows.

use std::time::Duration;

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use serde_json::Value;

use crate::clock::ProviderClock;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{Budget, Rate, RetryPolicy};
use crate::signing::HexHeader;
use crate::types::now_ms;

/// The variables an HTTP provider reads (`STRIPE_SECRET_KEY`, …).
#[derive(Debug, Clone, Copy)]
pub struct ApiEnv {
    /// The API key. Required.
    pub secret_key: &'static str,
    /// The webhook signing secret. Needed to verify webhooks.
    pub webhook_secret: &'static str,
    /// The API base URL.
    pub api_base: &'static str,
    /// A request budget such as `100/s`, overriding the key's.
    pub rate: &'static str,
}

impl ApiEnv {
    /// The four variables for the registry's `--help`, in field order, each
    /// with what it holds (`[key, webhook secret, base URL, rate]`); the key
    /// and the webhook secret are secrets.
    pub const fn vars(&self, meanings: [&'static str; 4]) -> [crate::registry::EnvVar; 4] {
        use crate::registry::EnvVar;
        let [key, webhook, base, rate] = meanings;
        [
            EnvVar::secret(self.secret_key, key),
            EnvVar::secret(self.webhook_secret, webhook),
            EnvVar::setting(self.api_base, base),
            EnvVar::setting(self.rate, rate),
        ]
    }
}

/// Who an adapter talks to: names for errors, its variables, its defaults.
#[derive(Debug)]
pub struct ApiSpec {
    /// The provider as people write it: `Stripe`.
    pub display: &'static str,
    /// The component on errors: `stripe`.
    pub component: &'static str,
    /// Its variables; the key's is named by 401 and 403 errors.
    pub env: ApiEnv,
    /// What a right key looks like, e.g. `a secret sk_… or restricted rk_…
    /// key` (for the 401 and missing-key messages).
    pub key_hint: &'static str,
    /// The API's base URL unless configured.
    pub default_base: &'static str,
    /// How old (or, for schemes that check both ways, how far ahead) a
    /// webhook's signed timestamp may be, in seconds, unless configured.
    pub webhook_tolerance_s: i64,
    /// Words of provider text containing one of these are masked.
    pub secret_prefixes: &'static [&'static str],
    /// `User-Agent`, e.g. `recon-stripe/0.1.0`.
    pub user_agent: &'static str,
    /// Base URLs a key's prefix chooses where none is configured (Paddle's
    /// sandbox keys, `pdl_sdbx_apikey_…`, talk to its sandbox host).
    pub key_bases: &'static [(&'static str, &'static str)],
    /// The largest page a list endpoint serves: the default page size, and
    /// the most [`ApiConfig::page_size`] may ask for.
    pub max_page_size: u32,
    /// Error codes that mean the key itself was refused, whatever the
    /// status (Paddle answers a bad key with 403 `invalid_token`): such an
    /// answer is `Unauthenticated` and names the key's variable.
    pub key_refused: &'static [&'static str],
}

impl ApiSpec {
    /// A configuration error of this provider.
    pub fn config_error(&self, message: String) -> Error {
        Error::config(message).with_component(self.component)
    }

    /// A request that got no answer: a timeout, a refused connection, a
    /// body cut short. The URL (which may carry ids) is left out.
    pub fn transport(&self, op: &str, base: &str, e: reqwest::Error) -> Error {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_builder() {
            ErrorKind::Config
        } else if e.is_decode() {
            ErrorKind::InvalidInput
        } else {
            ErrorKind::Unavailable
        };
        let e = e.without_url();
        let chain = crate::http_util::error_chain(&e);
        Error::new(
            kind,
            format!("cannot reach {} at {base}: {chain}", self.display),
        )
        .with_component(self.component)
        .with_operation(op.to_string())
        .with_source(e)
    }

    /// A 2xx answer whose body is not what the endpoint documents.
    pub fn malformed(&self, op: &str, detail: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::InvalidInput,
            format!("{} answered with malformed JSON: {detail}", self.display),
        )
        .with_component(self.component)
        .with_operation(op.to_string())
    }

    /// One page of a listing in ascending id order with an `after=<last id>`
    /// cursor, checked so that it can never end short: `items` (a JSON
    /// array) must have ids (`id_field`) strictly ascending after `after`,
    /// `has_more` must be a boolean, and a page that says more follow must
    /// have items. Returns the items and the next cursor (`None`: complete).
    pub fn ascending_page(
        &self,
        op: &str,
        items: Value,
        has_more: Option<bool>,
        (after, id_field): (&str, &str),
    ) -> Result<(Vec<Value>, Option<String>)> {
        let (Value::Array(items), Some(has_more)) = (items, has_more) else {
            return Err(self.malformed(op, "expected a list of items and whether more follow"));
        };
        let mut last = after;
        for item in &items {
            match item[id_field].as_str() {
                Some(id) if id > last => last = id,
                id => {
                    let why =
                        format!("{id:?} after {last:?}: not in id order, so it may skip objects");
                    return Err(self.malformed(op, why));
                }
            }
        }
        if has_more && items.is_empty() {
            return Err(self.malformed(op, "an empty page that says more follow"));
        }
        let next = has_more.then(|| last.to_string());
        Ok((items, next))
    }

    /// "No such object" as an error, for callers that need the object.
    pub fn not_found(&self, op: &str, path: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!("{} has no such object ({path})", self.display),
        )
        .with_component(self.component)
        .with_operation(op.to_string())
        .with_status(404)
    }

    /// The object a GET of `path` answered, or the error for a path that
    /// must exist (a listing, a parent) answered with "no such object".
    pub fn found<T>(&self, op: &str, path: &str, body: Option<T>) -> Result<T> {
        body.ok_or_else(|| self.not_found(op, path))
    }

    /// Provider text with anything that looks like a key masked.
    pub fn redact(&self, text: &str) -> String {
        crate::http_util::redact(text, self.secret_prefixes)
    }

    /// An error body's code and message in one line, secrets masked.
    pub fn describe(&self, code: Option<&str>, message: Option<&str>) -> String {
        match (code, message) {
            (Some(c), Some(m)) => format!("{c}: {}", self.redact(m)),
            (None, Some(m)) => self.redact(m),
            (Some(c), None) => c.to_string(),
            (None, None) => "no error details".to_string(),
        }
    }

    /// The default table for a non-2xx answer. `what` is the provider's
    /// explanation ([`JsonClient::describe`]); `Retry-After` is kept on the
    /// error.
    ///
    /// | status | kind |
    /// |---|---|
    /// | 401 | `Unauthenticated` (names the key variable) |
    /// | 403 | `PermissionDenied` |
    /// | 404 | `NotFound` |
    /// | 408 | `Timeout` |
    /// | 409 | `Conflict` |
    /// | 429 | `RateLimited` |
    /// | 5xx | `Unavailable` |
    /// | other 4xx | `InvalidInput` |
    /// | anything else | `Unexpected` |
    pub fn classify(&self, status: u16, headers: &HeaderMap, what: &str) -> Error {
        let (p, var) = (self.display, self.env.secret_key);
        let (kind, message) = match status {
            401 => (
                ErrorKind::Unauthenticated,
                format!(
                    "{p} rejected the key (HTTP 401): check {var} ({})",
                    self.key_hint
                ),
            ),
            403 => (
                ErrorKind::PermissionDenied,
                format!("the key in {var} may not do this (HTTP 403): {what}"),
            ),
            404 => (ErrorKind::NotFound, format!("not found (HTTP 404): {what}")),
            408 => (
                ErrorKind::Timeout,
                format!("{p} timed out (HTTP 408): {what}"),
            ),
            409 => (
                ErrorKind::Conflict,
                format!("conflicting request (HTTP 409): {what}"),
            ),
            429 => (
                ErrorKind::RateLimited,
                format!("{p}'s rate limit answered (HTTP 429): {what}"),
            ),
            500..=599 => (
                ErrorKind::Unavailable,
                format!("{p} is unavailable (HTTP {status}): {what}"),
            ),
            400..=499 => (
                ErrorKind::InvalidInput,
                format!("{p} refused the request (HTTP {status}): {what}"),
            ),
            _ => (
                ErrorKind::Unexpected,
                format!("{p} answered HTTP {status}: {what}"),
            ),
        };
        self.error(kind, status, headers, message)
    }

    /// The error for a failed answer with the provider's `body`: the
    /// dialect's [`special`](Dialect::special) error or the status table's,
    /// quoting the body's code, message, type and reference, with the
    /// dialect's retry hint.
    pub fn answer_error(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: &ErrorBody,
        dialect: &dyn Dialect,
    ) -> Error {
        let mut what = self.describe(body.code.as_deref(), body.message.as_deref());
        for r in body.kind.iter().chain(&body.reference) {
            what.push_str(&format!(" ({r})"));
        }
        let refused = body
            .code
            .as_deref()
            .filter(|c| self.key_refused.contains(c));
        let special = match refused {
            Some(code) => Some(self.error(
                ErrorKind::Unauthenticated,
                status,
                headers,
                format!(
                    "{} refused the key ({code}): {what}; check {} ({})",
                    self.display, self.env.secret_key, self.key_hint
                ),
            )),
            None => dialect.special(status, body, headers, &what),
        };
        let error = special.unwrap_or_else(|| self.classify(status, headers, &what));
        match dialect.should_retry(headers) {
            Some(hint) => error.with_should_retry(Some(hint)),
            None => error,
        }
    }

    /// An error of the adapter's own choosing for an answer (an override of
    /// the table), with the component, status and `Retry-After` set.
    pub fn error(
        &self,
        kind: ErrorKind,
        status: u16,
        headers: &HeaderMap,
        message: String,
    ) -> Error {
        Error::new(kind, message)
            .with_component(self.component)
            .with_status(status)
            .with_retry_after(crate::http_util::retry_after(headers))
    }
}

/// What every HTTP provider is configured with: its key, webhook secret,
/// base URL, budget, retries and timeouts. A provider's own configuration
/// holds one (`pub api: ApiConfig`) beside its own settings and gets the
/// `with_*` builders from [`ApiSettings`].
///
/// `Debug` never prints the key or the webhook secret.
#[derive(Clone)]
pub struct ApiConfig {
    spec: &'static ApiSpec,
    secret_key: SecretString,
    webhook_secret: Option<SecretString>,
    /// API base URL, without a trailing slash.
    pub api_base: String,
    /// Request budget; `None` lets the provider pick it from the key.
    pub rate: Option<Rate>,
    /// Retries and backoff (core's defaults unless set).
    pub retry: RetryPolicy,
    /// Bound on one HTTP request (connect, send, read the body).
    pub request_timeout: Duration,
    /// See [`ApiSpec::webhook_tolerance_s`].
    pub webhook_tolerance_s: i64,
    /// Objects asked for per list request (1 to [`ApiSpec::max_page_size`]).
    pub page_size: u32,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("provider", &self.spec.display)
            .field("secret_key", &"[redacted]")
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("api_base", &self.api_base)
            .field("rate", &self.rate)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("webhook_tolerance_s", &self.webhook_tolerance_s)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl ApiConfig {
    /// `secret_key` with every other setting at the spec's defaults.
    pub fn new(spec: &'static ApiSpec, secret_key: impl Into<String>) -> Self {
        let key = secret_key.into().trim().to_string();
        let by_key = spec.key_bases.iter().find(|(p, _)| key.starts_with(p));
        ApiConfig {
            spec,
            api_base: by_key.map_or(spec.default_base, |(_, b)| b).to_string(),
            secret_key: SecretString::from(key),
            webhook_secret: None,
            rate: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            webhook_tolerance_s: spec.webhook_tolerance_s,
            page_size: spec.max_page_size,
        }
    }

    /// Read the spec's variables through `get` (the process environment,
    /// or a test's map): the key is required, the others optional; empty
    /// values count as unset. The base URL is returned as given, for the
    /// provider to normalise. Not validated yet.
    pub fn from_vars(spec: &'static ApiSpec, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let env = &spec.env;
        let key = get(env.secret_key).ok_or_else(|| {
            spec.config_error(format!(
                "{} is not set: {} needs {}",
                env.secret_key, spec.display, spec.key_hint
            ))
        })?;
        let mut cfg = ApiConfig::new(spec, key);
        if let Some(s) = get(env.webhook_secret) {
            cfg.webhook_secret = Some(SecretString::from(s.trim().to_string()));
        }
        if let Some(base) = get(env.api_base) {
            cfg.api_base = base.trim().trim_end_matches('/').to_string();
        }
        if let Some(r) = get(env.rate) {
            let rate = Rate::parse(r.trim())
                .map_err(|e| spec.config_error(format!("{}: {}", env.rate, e.message())))?;
            cfg.rate = Some(rate);
        }
        Ok(cfg)
    }

    /// The key (for the client and the provider's own checks).
    pub fn secret_key(&self) -> &SecretString {
        &self.secret_key
    }

    /// The webhook secret, if configured.
    pub fn webhook_secret(&self) -> Option<&SecretString> {
        self.webhook_secret.as_ref()
    }

    /// A webhook signed with a [`HexHeader`] scheme (Stripe's, Paddle's):
    /// the configured secret ([`ApiConfig::require_webhook_secret`], `what`
    /// describing it), the signature checked on `headers` and the raw
    /// `body` at `now_s` within the configured tolerance, and the body
    /// parsed as JSON. Every error names the provider.
    pub fn verify_hex_webhook(
        &self,
        scheme: &HexHeader,
        (headers, body): (&crate::Headers, &[u8]),
        now_s: i64,
        what: &str,
    ) -> Result<Value> {
        let component = self.spec.component;
        let secret = self.require_webhook_secret(what)?.expose_secret();
        let at = (now_s, self.webhook_tolerance_s);
        let var = self.spec.env.webhook_secret;
        let checked = scheme.verify_headers(secret, headers, body, at, var);
        checked.map_err(|e| e.with_component(component))?;
        serde_json::from_slice(body).map_err(|e| {
            let e = Error::invalid(format!("the webhook body is not JSON: {e}"));
            e.with_component(component).with_operation("verify webhook")
        })
    }

    /// Whether a webhook secret is configured.
    pub fn has_webhook_secret(&self) -> bool {
        self.webhook_secret.is_some()
    }

    /// The webhook secret, or a configuration error naming its variable
    /// (`what` says what the provider calls it, e.g. `whsec_…`).
    pub fn require_webhook_secret(&self, what: &str) -> Result<&SecretString> {
        self.webhook_secret.as_ref().ok_or_else(|| {
            self.spec
                .config_error(format!(
                    "{} is not set: {} webhooks cannot be verified without {what}",
                    self.spec.env.webhook_secret, self.spec.display
                ))
                .with_operation("verify webhook")
        })
    }

    /// The checks every provider shares: a key that is not empty, not a
    /// publishable `pk_…` key and has no spaces; a webhook secret that is
    /// not empty; an http(s) base URL; a positive timeout and tolerance.
    /// Messages name variables, never their secret values.
    pub fn validate(&self) -> Result<()> {
        let (spec, env) = (self.spec, &self.spec.env);
        let err = |m: String| Err(spec.config_error(m));
        let key = self.secret_key.expose_secret();
        if key.is_empty() {
            return err(format!("{} is empty", env.secret_key));
        }
        if key.starts_with("pk_") {
            return err(format!(
                "{} holds a publishable key (pk_…); use {}",
                env.secret_key, spec.key_hint
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return err(format!(
                "{} contains spaces or characters an API key cannot have",
                env.secret_key
            ));
        }
        if let Some(s) = &self.webhook_secret
            && s.expose_secret().is_empty()
        {
            return err(format!("{} is empty", env.webhook_secret));
        }
        match reqwest::Url::parse(&self.api_base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return err(format!(
                    "{} must be an http(s) URL such as {}, not {:?}",
                    env.api_base, spec.default_base, self.api_base
                ));
            }
        }
        if self.request_timeout.is_zero() {
            return err("the request timeout must be positive".to_string());
        }
        if self.webhook_tolerance_s <= 0 {
            return err("the webhook tolerance must be positive".to_string());
        }
        let max = spec.max_page_size;
        if !(1..=max).contains(&self.page_size) {
            let size = self.page_size;
            return err(format!(
                "the page size must be between 1 and {max}, not {size}"
            ));
        }
        Ok(())
    }

    /// Take the configuration file's settings of this provider where the
    /// environment set none (the environment wins): today the budget.
    pub fn apply_file(&mut self, file: &crate::registry::ProviderSettings) {
        self.rate = self.rate.or(file.rate);
    }

    /// What [`JsonClient::new`] needs, with the budget the provider chose.
    pub fn client_settings(&self, rate: Rate) -> ClientSettings {
        ClientSettings {
            base: self.api_base.clone(),
            key: self.secret_key.clone(),
            rate,
            retry: self.retry,
            timeout: self.request_timeout,
            // Skews beyond the webhook tolerance fail signatures anyway.
            max_clock_skew: Duration::from_secs(self.webhook_tolerance_s.max(0).unsigned_abs()),
        }
    }
}

/// The `with_*` builders of the shared settings, for any provider
/// configuration that holds an [`ApiConfig`].
pub trait ApiSettings: Sized {
    /// The shared settings.
    fn api_config(&mut self) -> &mut ApiConfig;

    /// How this provider writes a base URL (by default: trimmed, without a
    /// trailing `/`).
    fn normalize_base(base: &str) -> String {
        base.trim().trim_end_matches('/').to_string()
    }

    /// Set the webhook signing secret.
    fn with_webhook_secret(mut self, secret: impl Into<String>) -> Self {
        self.api_config().webhook_secret =
            Some(SecretString::from(secret.into().trim().to_string()));
        self
    }

    /// Set the API base URL (an emulator, a proxy).
    fn with_api_base(mut self, base: impl Into<String>) -> Self {
        self.api_config().api_base = Self::normalize_base(&base.into());
        self
    }

    /// Override the request budget.
    fn with_rate(mut self, rate: Rate) -> Self {
        self.api_config().rate = Some(rate);
        self
    }

    /// Replace the retry policy.
    fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.api_config().retry = policy;
        self
    }

    /// Ask for `size` objects per list request (checked when the
    /// adapter is built: 1 to the provider's largest page).
    fn with_page_size(mut self, size: u32) -> Self {
        self.api_config().page_size = size;
        self
    }

    /// Bound each HTTP request.
    fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.api_config().request_timeout = timeout;
        self
    }
}

/// A provider with no settings of its own uses [`ApiConfig`] as its
/// configuration, builders included.
impl ApiSettings for ApiConfig {
    fn api_config(&mut self) -> &mut ApiConfig {
        self
    }
}

/// How to reach the API.
#[derive(Clone)]
pub struct ClientSettings {
    /// Base URL, without a trailing slash.
    pub base: String,
    /// Sent as a bearer token.
    pub key: SecretString,
    /// Request budget.
    pub rate: Rate,
    /// Retries of temporary failures.
    pub retry: RetryPolicy,
    /// Bound on each request (connecting: at most 10 s of it).
    pub timeout: Duration,
    /// Largest skew of the provider's clock believed (see [`ProviderClock`]).
    pub max_clock_skew: Duration,
}

/// One answer, whatever its status.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its whole body.
    pub body: Vec<u8>,
    /// When the request left and the answer arrived (unix ms, our clock),
    /// for [`ProviderClock::observe`].
    pub sent_ms: i64,
    /// See `sent_ms`.
    pub received_ms: i64,
}

impl Answer {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What a provider's error body says, as its adapter reads it.
#[derive(Debug, Clone, Default)]
pub struct ErrorBody {
    /// The provider's error code (`not_found`, `resource_missing`).
    pub code: Option<String>,
    /// Its explanation (secrets are masked before it is shown).
    pub message: Option<String>,
    /// The provider's reference for the request as it names it, quoted in
    /// messages for support (`request_id 0a1b…`, `clerk_trace_id …`).
    pub reference: Option<String>,
    /// The provider's error type, quoted in messages (Stripe's
    /// `invalid_request_error`).
    pub kind: Option<String>,
}

/// How an adapter reads its provider's answers, for [`JsonClient::get_json`].
pub trait Dialect: Sync {
    /// The provider's error body, or `None` when the body is not one (a
    /// proxy's page, an empty body): such an answer never means "no such
    /// object" and does not tell the provider's time.
    fn error_body(&self, body: &[u8]) -> Option<ErrorBody>;

    /// Whether a 404 for `path` with the provider's `body` means "no such
    /// object" (as opposed to a route that does not exist). Be strict: a
    /// "no such object" read wrongly becomes a tombstone.
    fn missing(&self, path: &str, body: &ErrorBody) -> bool;

    /// An error other than the status table's ([`ApiSpec::classify`]) for
    /// an answer the provider means differently; `what` is the body in one
    /// line. `None` (the default) keeps the table's.
    fn special(
        &self,
        status: u16,
        body: &ErrorBody,
        headers: &HeaderMap,
        what: &str,
    ) -> Option<Error> {
        let _ = (status, body, headers, what);
        None
    }

    /// Whether a failed answer with this `body` is the provider's own (its
    /// `Date` then sets the provider's clock), as opposed to a gateway's
    /// page that happens to parse. By default every body
    /// [`error_body`](Dialect::error_body) read is.
    fn own(&self, body: &ErrorBody) -> bool {
        let _ = body;
        true
    }

    /// The provider's own word on whether a failed answer may be retried
    /// (Stripe's `Stripe-Should-Retry`), kept on every error it produces;
    /// `None` (the default) leaves it to the error's kind.
    fn should_retry(&self, headers: &HeaderMap) -> Option<bool> {
        let _ = headers;
        None
    }
}

/// A JSON answer and when the provider gave it.
#[derive(Debug)]
pub struct JsonAnswer {
    /// The body; `None` for the provider's "no such object".
    pub body: Option<Value>,
    /// When the provider answered, by its clock (unix seconds): the
    /// answer's `Date`, or the clock's estimate when it has none.
    pub at: i64,
}

/// Query parameters, in order (a name may repeat).
pub type Query = Vec<(&'static str, String)>;

/// A JSON API on a budget. `Debug` shows the provider and base URL only.
pub struct JsonClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    budget: Budget,
    clock: ProviderClock,
    spec: &'static ApiSpec,
}

impl std::fmt::Debug for JsonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonClient")
            .field("provider", &self.spec.display)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl JsonClient {
    /// Build the client (TLS by rustls with ring; no OpenSSL).
    pub fn new(spec: &'static ApiSpec, s: ClientSettings) -> Result<Self> {
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .user_agent(spec.user_agent)
            .build()
            .map_err(|e| {
                Error::config(format!("cannot build the HTTP client: {e}"))
                    .with_component(spec.component)
            })?;
        Ok(JsonClient {
            http,
            base: s.base,
            key: s.key,
            budget: Budget::new(s.rate, s.retry),
            clock: ProviderClock::new(s.max_clock_skew),
            spec,
        })
    }

    /// The request budget (its counters feed the metrics).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The provider's clock, as its answers show it.
    pub fn clock(&self) -> &ProviderClock {
        &self.clock
    }

    /// The names used in errors.
    pub fn spec(&self) -> &'static ApiSpec {
        self.spec
    }

    /// GET `base + path` on the budget. Each attempt's answer goes through
    /// `interpret`, which returns the result or an error; a temporary error
    /// (from the transport or from `interpret`) is retried by the policy.
    pub async fn get<T, F>(
        &self,
        op: &str,
        path: &str,
        query: &Query,
        headers: &[(&'static str, &str)],
        interpret: F,
    ) -> Result<T>
    where
        F: Fn(Answer) -> Result<T>,
    {
        let url = format!("{}{}", self.base, path);
        let (url, interpret) = (&url, &interpret);
        self.budget
            .call(op, move || async move {
                interpret(self.send(op, url, query, headers).await?)
            })
            .await
    }

    /// GET `path` and parse the JSON body, reading failures in the
    /// provider's `dialect`: `Ok(None)` for its "no such object" 404, an
    /// error from the status table (or the dialect's own) for the rest,
    /// with the provider's code, message and request id. The provider's
    /// clock is set only from answers that are its own.
    pub async fn get_json(
        &self,
        op: &str,
        path: &str,
        query: &Query,
        headers: &[(&'static str, &str)],
        dialect: &dyn Dialect,
    ) -> Result<Option<Value>> {
        let answer = self.get_json_at(op, path, query, headers, dialect);
        Ok(answer.await?.body)
    }

    /// [`JsonClient::get_json`], with when the provider answered.
    pub async fn get_json_at(
        &self,
        op: &str,
        path: &str,
        query: &Query,
        headers: &[(&'static str, &str)],
        dialect: &dyn Dialect,
    ) -> Result<JsonAnswer> {
        let read = |a| self.read((op, path), a, dialect);
        self.get(op, path, query, headers, read).await
    }

    fn read(
        &self,
        (op, path): (&str, &str),
        a: Answer,
        dialect: &dyn Dialect,
    ) -> Result<JsonAnswer> {
        let error = (!a.is_success()).then(|| dialect.error_body(&a.body));
        let own = error
            .as_ref()
            .is_none_or(|e| e.as_ref().is_some_and(|b| dialect.own(b)));
        let date = own.then(|| self.clock.observe(&a.headers, a.sent_ms, a.received_ms));
        let at = date.flatten().unwrap_or_else(|| self.clock.now_s());
        let retry = || dialect.should_retry(&a.headers);
        let Some(error) = error else {
            let parsed = serde_json::from_slice(&a.body).map(|v| JsonAnswer { body: Some(v), at });
            let malformed = |e| self.spec.malformed(op, e).with_status(a.status);
            return parsed.map_err(|e| malformed(e).with_should_retry(retry()));
        };
        if a.status == 404 && error.as_ref().is_some_and(|e| dialect.missing(path, e)) {
            return Ok(JsonAnswer { body: None, at });
        }
        let body = error.unwrap_or_default();
        let error = self.spec.answer_error(a.status, &a.headers, &body, dialect);
        Err(error.with_operation(op.to_string()))
    }

    /// POST `form` to `base + path` as `application/x-www-form-urlencoded`
    /// and read the JSON answer in the provider's `dialect`, exactly as
    /// [`JsonClient::get_json_at`] reads a GET's (a "no such object" 404 is
    /// `body: None`).
    ///
    /// Temporary failures are retried on the budget like a GET's, so the
    /// request must be safe to repeat: anything that creates must carry the
    /// provider's idempotency header in `headers` (Stripe's
    /// `Idempotency-Key`; [`idempotency_key`] makes one per call).
    pub async fn post_form_json_at(
        &self,
        op: &str,
        path: &str,
        form: &Query,
        headers: &[(&'static str, &str)],
        dialect: &dyn Dialect,
    ) -> Result<JsonAnswer> {
        let url = format!("{}{}", self.base, path);
        let body = form_encode(form);
        let (url, body) = (&url, &body);
        self.budget
            .call(op, move || async move {
                let req = self
                    .http
                    .post(url)
                    .header(
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body.clone());
                let answer = self.exchange(op, req, headers).await?;
                self.read((op, path), answer, dialect)
            })
            .await
    }

    async fn send(
        &self,
        op: &str,
        url: &str,
        query: &Query,
        headers: &[(&'static str, &str)],
    ) -> Result<Answer> {
        let req = self.http.get(url).query(query);
        self.exchange(op, req, headers).await
    }

    /// Send `req` with the key, `Accept: application/json` and `headers`,
    /// and read the whole answer.
    async fn exchange(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
        headers: &[(&'static str, &str)],
    ) -> Result<Answer> {
        let mut req = req
            .bearer_auth(self.key.expose_secret())
            .header(http::header::ACCEPT, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let sent_ms = now_ms();
        let resp = req
            .send()
            .await
            .map_err(|e| self.spec.transport(op, &self.base, e))?;
        let received_ms = now_ms();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.spec.transport(op, &self.base, e))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
            sent_ms,
            received_ms,
        })
    }
}

/// A fresh idempotency key (a UUID v7) for one POST that creates: the same
/// key on every retry of that call, a new one for the next call.
pub fn idempotency_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `pairs` as an `application/x-www-form-urlencoded` body (names may
/// repeat: `enabled_events[]=a&enabled_events[]=b`).
pub fn form_encode(pairs: &Query) -> String {
    fn push(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, k);
        out.push('=');
        push(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ApiSpec = ApiSpec {
        display: "Acme",
        component: "acme",
        env: ApiEnv {
            secret_key: "ACME_KEY",
            webhook_secret: "ACME_WEBHOOK_SECRET",
            api_base: "ACME_API_BASE",
            rate: "ACME_RATE",
        },
        key_hint: "an ak_… key",
        default_base: "https://api.acme.test",
        webhook_tolerance_s: 300,
        secret_prefixes: &["ak_"],
        user_agent: "recon-test",
        key_bases: &[("acme_sandbox_", "https://sandbox.acme.test")],
        max_page_size: 100,
        key_refused: &["key_revoked"],
    };

    fn client() -> JsonClient {
        JsonClient::new(
            &SPEC,
            ClientSettings {
                base: "http://127.0.0.1:9".into(),
                key: SecretString::from("ak_secret_value".to_string()),
                rate: Rate::per_second(100),
                retry: RetryPolicy {
                    max_retries: 0,
                    ..RetryPolicy::default()
                },
                timeout: Duration::from_secs(1),
                max_clock_skew: Duration::from_secs(300),
            },
        )
        .unwrap()
    }

    #[test]
    fn the_table() {
        let c = &SPEC;
        let none = HeaderMap::new();
        let k = |s| c.classify(s, &none, "x").kind();
        assert_eq!(k(401), ErrorKind::Unauthenticated);
        assert_eq!(k(403), ErrorKind::PermissionDenied);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(408), ErrorKind::Timeout);
        assert_eq!(k(409), ErrorKind::Conflict);
        assert_eq!(k(429), ErrorKind::RateLimited);
        assert_eq!(k(500), ErrorKind::Unavailable);
        assert_eq!(k(503), ErrorKind::Unavailable);
        assert_eq!(k(400), ErrorKind::InvalidInput);
        assert_eq!(k(422), ErrorKind::InvalidInput);
        assert_eq!(k(302), ErrorKind::Unexpected);
        assert!(c.classify(429, &none, "x").is_temporary());
        assert!(c.classify(502, &none, "x").is_temporary());
        assert!(!c.classify(400, &none, "x").is_temporary());
        assert!(!c.classify(401, &none, "x").is_temporary());
        let e = c.classify(401, &none, "x").to_string();
        assert!(e.contains("ACME_KEY") && e.contains("ak_…"), "{e}");
    }

    struct Plain;

    impl Dialect for Plain {
        fn error_body(&self, _: &[u8]) -> Option<ErrorBody> {
            None
        }
        fn missing(&self, _: &str, _: &ErrorBody) -> bool {
            false
        }
    }

    #[test]
    fn a_refused_key_is_unauthenticated_whatever_the_status() {
        let none = HeaderMap::new();
        let body = |code: &str| ErrorBody {
            code: Some(code.to_string()),
            ..Default::default()
        };
        let e = SPEC.answer_error(403, &none, &body("key_revoked"), &Plain);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.to_string().contains("ACME_KEY"), "{e}");
        let e = SPEC.answer_error(403, &none, &body("forbidden"), &Plain);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn retry_after_is_kept_and_secrets_masked() {
        let c = &SPEC;
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            c.classify(429, &h, "x").retry_after(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(c.classify(429, &HeaderMap::new(), "x").retry_after(), None);
        let what = c.describe(Some("bad_key"), Some("key ak_live_123 refused"));
        assert_eq!(what, "bad_key: key [redacted] refused");
        assert_eq!(c.describe(None, None), "no error details");
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn settings_come_from_the_variables_and_are_checked() {
        let e = ApiConfig::from_vars(&SPEC, vars(&[("ACME_KEY", "  ")])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.to_string()
                .contains("ACME_KEY is not set: Acme needs an ak_… key"),
            "{e}"
        );
        let c = ApiConfig::from_vars(
            &SPEC,
            vars(&[
                ("ACME_KEY", "ak_1"),
                ("ACME_API_BASE", "http://127.0.0.1:9/"),
                ("ACME_RATE", "5/s"),
                ("ACME_WEBHOOK_SECRET", " whsec_x "),
            ]),
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:9");
        assert_eq!(c.rate, Some(Rate::per_second(5)));
        assert_eq!(c.webhook_secret().unwrap().expose_secret(), "whsec_x");
        for (k, v) in [("ACME_RATE", "fast"), ("ACME_API_BASE", "ftp://x")] {
            let e = ApiConfig::from_vars(&SPEC, vars(&[("ACME_KEY", "ak_1"), (k, v)]))
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(
                e.to_string().contains(k) && !e.to_string().contains("ak_1"),
                "{e}"
            );
        }
        for key in ["pk_test_1", "ak 1"] {
            let e = ApiConfig::new(&SPEC, key).validate().unwrap_err();
            assert!(e.to_string().contains("ACME_KEY"), "{e}");
        }
        assert_eq!(ApiConfig::new(&SPEC, "ak_1").api_base, SPEC.default_base);
        let sandbox = ApiConfig::new(&SPEC, "acme_sandbox_1");
        assert_eq!(sandbox.api_base, "https://sandbox.acme.test");
        let set = vars(&[
            ("ACME_KEY", "acme_sandbox_1"),
            ("ACME_API_BASE", "http://x"),
        ]);
        assert_eq!(
            ApiConfig::from_vars(&SPEC, set).unwrap().api_base,
            "http://x"
        );
        assert_eq!(ApiConfig::new(&SPEC, "ak_1").page_size, 100);
        for size in [0, 101] {
            let mut c = ApiConfig::new(&SPEC, "ak_1");
            c.page_size = size;
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("between 1 and 100"), "{e}");
        }
        let mut c = ApiConfig::new(&SPEC, "ak_hush");
        c.webhook_secret = Some(SecretString::from("whsec_quiet".to_string()));
        let d = format!("{c:?}");
        assert!(!d.contains("hush") && !d.contains("quiet"), "{d}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let file = crate::registry::ProviderSettings {
            rate: Some(Rate::per_second(10)),
            ..Default::default()
        };
        let mut from_env =
            ApiConfig::from_vars(&SPEC, vars(&[("ACME_KEY", "ak_1"), ("ACME_RATE", "40/s")]))
                .unwrap();
        from_env.apply_file(&file);
        assert_eq!(from_env.rate, Some(Rate::per_second(40)));
        let mut file_only = ApiConfig::from_vars(&SPEC, vars(&[("ACME_KEY", "ak_1")])).unwrap();
        file_only.apply_file(&file);
        assert_eq!(file_only.rate, Some(Rate::per_second(10)));
    }

    struct Own {
        api: ApiConfig,
    }

    impl ApiSettings for Own {
        fn api_config(&mut self) -> &mut ApiConfig {
            &mut self.api
        }
        fn normalize_base(base: &str) -> String {
            base.trim().trim_end_matches("/v1").to_string()
        }
    }

    #[test]
    fn builders_set_the_shared_settings() {
        let o = Own {
            api: ApiConfig::new(&SPEC, "ak_1"),
        }
        .with_api_base(" http://x/v1")
        .with_rate(Rate::per_second(3))
        .with_request_timeout(Duration::from_secs(2))
        .with_webhook_secret("s");
        assert_eq!(o.api.api_base, "http://x");
        assert_eq!(o.api.rate, Some(Rate::per_second(3)));
        assert_eq!(o.api.request_timeout, Duration::from_secs(2));
        assert!(o.api.has_webhook_secret());
        assert_eq!(o.api.webhook_tolerance_s, 300);
    }

    #[test]
    fn forms_are_encoded_like_browsers_do() {
        let form: Query = vec![
            ("url", "https://a.example/webhooks/stripe?x=1&y".into()),
            ("enabled_events[]", "customer.created".into()),
            ("enabled_events[]", "*".into()),
            ("description", "recon (é)".into()),
        ];
        assert_eq!(
            form_encode(&form),
            "url=https%3A%2F%2Fa.example%2Fwebhooks%2Fstripe%3Fx%3D1%26y\
             &enabled_events%5B%5D=customer.created&enabled_events%5B%5D=*\
             &description=recon+%28%C3%A9%29"
        );
        assert_ne!(idempotency_key(), idempotency_key());
    }

    #[tokio::test]
    async fn an_unreachable_api_is_unavailable_and_never_quotes_the_key() {
        let c = client();
        let e = c
            .get("probe", "/v1/x", &Vec::new(), &[], |_| Ok(()))
            .await
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "{e}"
        );
        assert!(e.to_string().contains("cannot reach Acme"), "{e}");
        assert!(!format!("{e:?}").contains("ak_secret_value"), "{e:?}");
    }
}
