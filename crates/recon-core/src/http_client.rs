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

use crate::clock::ProviderClock;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{Budget, Rate, RetryPolicy};
use crate::types::now_ms;

/// Who an adapter talks to: names for errors and the key's variable.
#[derive(Debug)]
pub struct ApiSpec {
    /// The provider as people write it: `Stripe`.
    pub display: &'static str,
    /// The component on errors: `stripe`.
    pub component: &'static str,
    /// The variable holding the key, named by 401 and 403 errors.
    pub key_var: &'static str,
    /// What a right key looks like, for the 401 message.
    pub key_hint: &'static str,
    /// Words of provider text containing one of these are masked.
    pub secret_prefixes: &'static [&'static str],
    /// `User-Agent`, e.g. `recon-stripe/0.1.0`.
    pub user_agent: &'static str,
}

impl ApiSpec {
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
        let (p, var) = (self.display, self.key_var);
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

/// Query parameters, in order (a name may repeat).
pub type Query = Vec<(&'static str, String)>;

/// A JSON API on a budget.
pub struct JsonClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    budget: Budget,
    clock: ProviderClock,
    spec: &'static ApiSpec,
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

    async fn send(
        &self,
        op: &str,
        url: &str,
        query: &Query,
        headers: &[(&'static str, &str)],
    ) -> Result<Answer> {
        let mut req = self
            .http
            .get(url)
            .query(query)
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

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ApiSpec = ApiSpec {
        display: "Acme",
        component: "acme",
        key_var: "ACME_KEY",
        key_hint: "an ak_… key",
        secret_prefixes: &["ak_"],
        user_agent: "recon-test",
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
