//! The HTTP client: one GET through core's [`Budget`] (rate limiter and
//! retries), and the classification of every answer into recon's
//! [`ErrorKind`]s. This module decides what a failure *is*; core decides
//! whether to try again.

use std::time::Duration;

use http::HeaderMap;
use recon_core::clock::ProviderClock;
use recon_core::{Budget, Error, ErrorKind, Result, now_ms};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{CLERK_API_VERSION, ClerkConfig, env};

/// Query parameters, in order.
pub(crate) type Query = Vec<(&'static str, String)>;

/// Talks to one Clerk instance.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    budget: Budget,
    clock: ProviderClock,
}

impl Client {
    pub(crate) fn new(cfg: &ClerkConfig) -> Result<Self> {
        cfg.validate()?;
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("recon-clerk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::config(format!("cannot build the HTTP client: {e}")).with_component("clerk")
            })?;
        Ok(Client {
            http,
            base: cfg.api_base.clone(),
            key: cfg.secret_key().clone(),
            budget: Budget::new(cfg.effective_rate(), cfg.retry),
            // Skews beyond the webhook tolerance fail signatures anyway.
            clock: ProviderClock::new(Duration::from_secs(
                cfg.webhook_tolerance_s.max(0).unsigned_abs(),
            )),
        })
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Clerk's clock, as its answers' `Date` headers show it.
    pub(crate) fn clock(&self) -> &ProviderClock {
        &self.clock
    }

    /// GET `path` (`/v1/…`) and parse the JSON body. Every failure, a 404
    /// included, is an `Err`.
    pub(crate) async fn get(&self, op: &str, path: &str, query: &Query) -> Result<Value> {
        match self.get_or_missing(op, path, query).await? {
            Some(v) => Ok(v),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("Clerk has no such resource ({path})"),
            )
            .with_component("clerk")
            .with_operation(op.to_string())
            .with_status(404)),
        }
    }

    /// GET `path`; a 404 with a Clerk error body (`resource_not_found`) is
    /// `Ok(None)`. A 404 without one (a wrong `CLERK_API_BASE`, a proxy) is
    /// an error: it must never read as "deleted".
    pub(crate) async fn get_or_missing(
        &self,
        op: &str,
        path: &str,
        query: &Query,
    ) -> Result<Option<Value>> {
        let url = format!("{}{}", self.base, path);
        let (url, query) = (&url, query);
        self.budget
            .call(op, move || self.attempt(op, url, query))
            .await
    }

    async fn attempt(&self, op: &str, url: &str, query: &Query) -> Result<Option<Value>> {
        let sent = now_ms();
        let resp = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(self.key.expose_secret())
            .header("Clerk-API-Version", CLERK_API_VERSION)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport(op, &self.base, e))?;
        let received = now_ms();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(op, &self.base, e))?;
        let info = (!(200..300).contains(&status)).then(|| ErrorBody::parse(&body));
        // Only Clerk's own answers tell its time: a success, or a
        // ClerkErrors body (not a proxy's page).
        if info.as_ref().is_none_or(|i| i.clerk) {
            self.clock.observe(&headers, sent, received);
        }
        let Some(info) = info else {
            return serde_json::from_slice::<Value>(&body)
                .map(Some)
                .map_err(|e| malformed(op, format!("{e}")).with_status(status));
        };
        if status == 404 && info.is_missing() {
            return Ok(None);
        }
        Err(classify(status, &headers, &info).with_operation(op.to_string()))
    }
}

/// A 2xx answer whose body is not what the endpoint documents.
pub(crate) fn malformed(op: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("Clerk answered with malformed JSON: {detail}"),
    )
    .with_component("clerk")
    .with_operation(op.to_string())
}

/// Clerk's error body, `{"errors":[{"message","long_message","code"}],
/// "clerk_trace_id"}`, read leniently.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorBody {
    /// The body parsed as ClerkErrors with at least one entry.
    pub clerk: bool,
    pub code: Option<String>,
    pub message: Option<String>,
    pub trace_id: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ErrorBody::default();
        };
        let Some(first) = v
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        else {
            return ErrorBody::default();
        };
        let s = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_string);
        ErrorBody {
            clerk: true,
            code: s("code"),
            message: s("long_message").or_else(|| s("message")),
            trace_id: v
                .get("clerk_trace_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// Clerk saying "no such object", as opposed to a route that does not
    /// exist.
    fn is_missing(&self) -> bool {
        self.clerk
            && self
                .code
                .as_deref()
                .is_none_or(|c| c == "resource_not_found")
    }
}

/// Clerk's error text with anything that looks like a key masked.
fn redact(text: &str) -> String {
    recon_core::http_util::redact(text, &["sk_live_", "sk_test_", "whsec_"])
}

/// Turn a non-2xx answer into an [`Error`].
pub(crate) fn classify(status: u16, headers: &HeaderMap, info: &ErrorBody) -> Error {
    let mut what = match (&info.code, &info.message) {
        (Some(c), Some(m)) => format!("{c}: {}", redact(m)),
        (None, Some(m)) => redact(m),
        (Some(c), None) => c.clone(),
        (None, None) => "no error details".to_string(),
    };
    if let Some(t) = &info.trace_id {
        what.push_str(&format!(" (clerk_trace_id {t})"));
    }
    let (kind, message) = match status {
        401 => (
            ErrorKind::Unauthenticated,
            format!(
                "Clerk rejected the secret key (HTTP 401): check {} (the instance's Backend API secret key, sk_test_… or sk_live_…)",
                env::SECRET_KEY
            ),
        ),
        403 => (
            ErrorKind::PermissionDenied,
            format!(
                "the key in {} may not do this (HTTP 403): {what}",
                env::SECRET_KEY
            ),
        ),
        404 => (ErrorKind::NotFound, format!("not found (HTTP 404): {what}")),
        408 => (
            ErrorKind::Timeout,
            format!("Clerk timed out (HTTP 408): {what}"),
        ),
        409 => (
            ErrorKind::Conflict,
            format!("conflicting request (HTTP 409): {what}"),
        ),
        429 => (
            ErrorKind::RateLimited,
            format!("Clerk's rate limit answered (HTTP 429): {what}"),
        ),
        500..=599 => (
            ErrorKind::Unavailable,
            format!("Clerk is unavailable (HTTP {status}): {what}"),
        ),
        400..=499 => (
            ErrorKind::InvalidInput,
            format!("Clerk refused the request (HTTP {status}): {what}"),
        ),
        _ => (
            ErrorKind::Unexpected,
            format!("Clerk answered HTTP {status}: {what}"),
        ),
    };
    Error::new(kind, message)
        .with_component("clerk")
        .with_status(status)
        .with_retry_after(recon_core::http_util::retry_after(headers))
}

fn transport(op: &str, base: &str, e: reqwest::Error) -> Error {
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
    let chain = recon_core::http_util::error_chain(&e);
    Error::new(kind, format!("cannot reach Clerk at {base}: {chain}"))
        .with_component("clerk")
        .with_operation(op.to_string())
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clerk(code: &str) -> ErrorBody {
        ErrorBody::parse(
            format!(
                r#"{{"errors":[{{"message":"m","long_message":"long m","code":"{code}"}}],"clerk_trace_id":"t1"}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn statuses_map_to_kinds() {
        let none = HeaderMap::new();
        let k = |s, b: &ErrorBody| classify(s, &none, b).kind();
        let e = ErrorBody::default();
        assert_eq!(k(401, &e), ErrorKind::Unauthenticated);
        assert_eq!(k(403, &e), ErrorKind::PermissionDenied);
        assert_eq!(k(404, &e), ErrorKind::NotFound);
        assert_eq!(k(408, &e), ErrorKind::Timeout);
        assert_eq!(k(409, &e), ErrorKind::Conflict);
        assert_eq!(
            k(422, &clerk("form_param_invalid")),
            ErrorKind::InvalidInput
        );
        assert_eq!(k(400, &e), ErrorKind::InvalidInput);
        assert_eq!(k(429, &e), ErrorKind::RateLimited);
        assert_eq!(k(500, &e), ErrorKind::Unavailable);
        assert_eq!(k(503, &e), ErrorKind::Unavailable);
        assert!(classify(429, &none, &e).is_temporary());
        assert!(classify(502, &none, &e).is_temporary());
        assert!(!classify(422, &none, &e).is_temporary());
        assert!(!classify(401, &none, &e).is_temporary());
    }

    #[test]
    fn retry_after_is_read() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        let e = classify(429, &h, &ErrorBody::default());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        h.insert("retry-after", "0.5".parse().unwrap());
        let e = classify(429, &h, &ErrorBody::default());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(classify(429, &h, &ErrorBody::default()).retry_after(), None);
    }

    #[test]
    fn errors_body_is_read_and_secrets_masked() {
        let b = clerk("resource_not_found");
        assert!(b.is_missing());
        assert!(!clerk("authorization_invalid").is_missing());
        // A 404 without a ClerkErrors body is a missing route, not a missing object.
        assert!(!ErrorBody::parse(b"<html>not here</html>").is_missing());
        assert!(!ErrorBody::parse(b"").is_missing());
        let e = classify(422, &HeaderMap::new(), &clerk("form_param_invalid"));
        assert!(e.message().contains("long m"), "{e}");
        assert!(e.message().contains("t1"), "{e}");
        let b = ErrorBody::parse(
            br#"{"errors":[{"message":"bad key sk_test_abcdef123 given","code":"x"}]}"#,
        );
        let e = classify(403, &HeaderMap::new(), &b);
        assert!(!e.to_string().contains("abcdef123"), "{e}");
        let e = classify(401, &HeaderMap::new(), &b);
        assert!(e.to_string().contains("CLERK_SECRET_KEY"), "{e}");
        assert!(!e.to_string().contains("abcdef123"), "{e}");
    }
}
