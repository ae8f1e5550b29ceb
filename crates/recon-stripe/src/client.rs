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

use crate::config::{STRIPE_VERSION, StripeConfig, env};

/// Query parameters, in order (`types[]` repeats).
pub(crate) type Query = Vec<(&'static str, String)>;

/// One list envelope: `{"object":"list","data":[…],"has_more":…}`.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub data: Vec<Value>,
    pub has_more: bool,
    /// When Stripe answered, by Stripe's clock (unix seconds).
    pub at: i64,
}

/// One answer to a GET.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The JSON object; `None` for "no such object" (a Stripe-shaped 404).
    pub body: Option<Value>,
    /// When Stripe answered, by Stripe's clock (unix seconds): the answer's
    /// `Date`, or the clock's estimate when it has none.
    pub at: i64,
}

/// Talks to one Stripe account.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    account: Option<String>,
    budget: Budget,
    clock: ProviderClock,
}

impl Client {
    pub(crate) fn new(cfg: &StripeConfig) -> Result<Self> {
        cfg.validate()?;
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("recon-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::config(format!("cannot build the HTTP client: {e}")).with_component("stripe")
            })?;
        Ok(Client {
            http,
            base: cfg.api_base.clone(),
            key: cfg.secret_key().clone(),
            account: cfg.account.clone(),
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

    /// Stripe's clock, as its answers' `Date` headers show it.
    pub(crate) fn clock(&self) -> &ProviderClock {
        &self.clock
    }

    /// GET `path` and parse the JSON body, with when Stripe answered
    /// (unix seconds, Stripe's clock). Every failure is an `Err`.
    pub(crate) async fn get(&self, op: &str, path: &str, query: &Query) -> Result<(Value, i64)> {
        let answer = self.get_or_missing(op, path, query).await?;
        match answer.body {
            Some(v) => Ok((v, answer.at)),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("Stripe has no such object ({path})"),
            )
            .with_component("stripe")
            .with_operation(op.to_string())
            .with_status(404)),
        }
    }

    /// GET `path`; a 404 that Stripe (or an emulator) answered with its
    /// error body is `Ok(None)` (see [`ErrorBody::is_missing`]).
    pub(crate) async fn get_or_missing(
        &self,
        op: &str,
        path: &str,
        query: &Query,
    ) -> Result<Answer> {
        self.get_or_missing_as(op, path, query, self.account.as_deref())
            .await
    }

    /// [`Client::get_or_missing`] acting as `account`: `Some(acct_…)` sends
    /// `Stripe-Account`, `None` acts as the platform (no header), whatever
    /// account this client was configured with.
    pub(crate) async fn get_or_missing_as(
        &self,
        op: &str,
        path: &str,
        query: &Query,
        account: Option<&str>,
    ) -> Result<Answer> {
        let url = format!("{}{}", self.base, path);
        let (url, query) = (&url, query);
        self.budget
            .call(op, move || self.attempt(op, url, query, account))
            .await
    }

    /// GET a list endpoint and check the envelope.
    pub(crate) async fn list(&self, op: &str, path: &str, query: &Query) -> Result<ListPage> {
        let (v, at) = self.get(op, path, query).await?;
        parse_list(v, at).map_err(|m| malformed(op, m))
    }

    async fn attempt(
        &self,
        op: &str,
        url: &str,
        query: &Query,
        account: Option<&str>,
    ) -> Result<Answer> {
        let mut req = self
            .http
            .get(url)
            .query(query)
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", STRIPE_VERSION);
        if let Some(a) = account {
            req = req.header("Stripe-Account", a);
        }
        let sent = now_ms();
        let resp = req.send().await.map_err(|e| transport(op, &self.base, e))?;
        let received = now_ms();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(op, &self.base, e))?;
        let info = (!(200..300).contains(&status)).then(|| ErrorBody::parse(&body));
        // Only Stripe's own answers tell its time: a success, or an error in
        // Stripe's shape (not a proxy's page).
        let date = if info.as_ref().is_none_or(|i| i.kind.is_some()) {
            self.clock.observe(&headers, sent, received)
        } else {
            None
        };
        let at = date.unwrap_or_else(|| self.clock.now_s());
        let Some(info) = info else {
            return match serde_json::from_slice::<Value>(&body) {
                Ok(v) if v.is_object() => Ok(Answer { body: Some(v), at }),
                Ok(_) => Err(malformed(op, "the body is not a JSON object".into())),
                Err(e) => Err(malformed(op, format!("{e}"))
                    .with_status(status)
                    .with_should_retry(should_retry(&headers))),
            };
        };
        if status == 404 && info.is_missing() {
            return Ok(Answer { body: None, at });
        }
        Err(classify(status, &headers, &info).with_operation(op.to_string()))
    }
}

fn malformed(op: &str, detail: String) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("Stripe answered with malformed JSON: {detail}"),
    )
    .with_component("stripe")
    .with_operation(op.to_string())
}

fn parse_list(v: Value, at: i64) -> std::result::Result<ListPage, String> {
    let Value::Object(mut m) = v else {
        return Err("a list answer is not an object".into());
    };
    let data = match m.remove("data") {
        Some(Value::Array(a)) => a,
        _ => return Err("a list answer has no `data` array".into()),
    };
    let has_more = match m.get("has_more") {
        Some(Value::Bool(b)) => *b,
        None | Some(Value::Null) => false,
        _ => return Err("`has_more` is not a boolean".into()),
    };
    if data
        .iter()
        .any(|o| o.get("id").and_then(Value::as_str).is_none())
    {
        return Err("a listed object has no string `id`".into());
    }
    if has_more && data.is_empty() {
        return Err("`has_more` is true on an empty page".into());
    }
    Ok(ListPage { data, has_more, at })
}

/// Stripe's error body: `{"error":{"type","code","message"}}`, read leniently.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorBody {
    /// `type`: set only when the body is Stripe-shaped (`error` is an
    /// object with a string `type`).
    pub kind: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ErrorBody::default();
        };
        let e = v.get("error").unwrap_or(&Value::Null);
        let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        ErrorBody {
            kind: s("type"),
            code: s("code"),
            message: s("message"),
        }
    }

    /// A 404 that says "no such object", as opposed to "no such route".
    ///
    /// Stripe answers an unknown or deleted id with `resource_missing`, but
    /// emulators answer with a Stripe-shaped body of any `type` and often no
    /// `code`: any `{"error":{"type":…}}` body counts, as does the legacy
    /// `"No such …"` message. A 404 without such a body (a proxy's HTML page,
    /// an empty or non-JSON body, a wrong base URL) is *not* this, and
    /// neither is Stripe's own "Unrecognized request URL" (the route does
    /// not exist): those are errors, never a deletion.
    fn is_missing(&self) -> bool {
        if self.code.as_deref() == Some("resource_missing") {
            return true;
        }
        let message = self.message.as_deref().unwrap_or("");
        if message.starts_with("Unrecognized request URL") {
            return false;
        }
        self.kind.is_some() || message.starts_with("No such ")
    }
}

fn should_retry(headers: &HeaderMap) -> Option<bool> {
    let v = headers.get("stripe-should-retry")?.to_str().ok()?.trim();
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Words of Stripe's error text that look like a key or a secret.
const SECRET_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

/// Stripe's error text with anything that looks like a key masked.
pub(crate) fn redact(text: &str) -> String {
    recon_core::http_util::redact(text, &SECRET_PREFIXES)
}

/// Turn a non-2xx answer into an [`Error`].
pub(crate) fn classify(status: u16, headers: &HeaderMap, info: &ErrorBody) -> Error {
    let code = info.code.as_deref().unwrap_or("");
    let what = match (&info.code, &info.message) {
        (Some(c), Some(m)) => format!("{c}: {}", redact(m)),
        (None, Some(m)) => redact(m),
        (Some(c), None) => c.clone(),
        (None, None) => "no error details".to_string(),
    };
    let (kind, message) = match status {
        401 => (
            ErrorKind::Unauthenticated,
            format!(
                "Stripe rejected the API key (HTTP 401): check {} (a secret sk_… or restricted rk_… key of the right account and mode)",
                env::SECRET_KEY
            ),
        ),
        403 => (
            ErrorKind::PermissionDenied,
            format!(
                "the API key in {} may not do this (HTTP 403): {what}",
                env::SECRET_KEY
            ),
        ),
        _ if code == "lock_timeout" => (
            ErrorKind::Conflict,
            format!("Stripe could not lock the object (HTTP {status}): {what}"),
        ),
        429 => (
            ErrorKind::RateLimited,
            format!("Stripe's rate limit answered (HTTP 429): {what}"),
        ),
        400 if code == "rate_limit" => (
            ErrorKind::RateLimited,
            format!("Stripe's rate limit answered (HTTP 400 rate_limit): {what}"),
        ),
        404 => (ErrorKind::NotFound, format!("not found (HTTP 404): {what}")),
        408 => (
            ErrorKind::Timeout,
            format!("Stripe timed out (HTTP 408): {what}"),
        ),
        409 => (
            ErrorKind::Conflict,
            format!("conflicting request (HTTP 409): {what}"),
        ),
        500..=599 => (
            ErrorKind::Unavailable,
            format!("Stripe is unavailable (HTTP {status}): {what}"),
        ),
        _ => (
            ErrorKind::InvalidInput,
            format!(
                "Stripe refused the request (HTTP {status}{}): {what}",
                info.kind
                    .as_deref()
                    .map(|k| format!(" {k}"))
                    .unwrap_or_default()
            ),
        ),
    };
    Error::new(kind, message)
        .with_component("stripe")
        .with_status(status)
        .with_retry_after(recon_core::http_util::retry_after(headers))
        .with_should_retry(should_retry(headers))
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
    let chain = recon_core::http_util::error_chain(&e);
    Error::new(kind, format!("cannot reach Stripe at {base}: {chain}"))
        .with_component("stripe")
        .with_operation(op.to_string())
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    fn body(code: &str) -> ErrorBody {
        ErrorBody::parse(
            format!(
                r#"{{"error":{{"type":"invalid_request_error","code":"{code}","message":"m"}}}}"#
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
        assert_eq!(k(409, &e), ErrorKind::Conflict);
        assert_eq!(k(429, &e), ErrorKind::RateLimited);
        assert_eq!(k(429, &body("lock_timeout")), ErrorKind::Conflict);
        assert_eq!(k(400, &body("rate_limit")), ErrorKind::RateLimited);
        assert_eq!(k(400, &body("parameter_invalid")), ErrorKind::InvalidInput);
        assert_eq!(k(500, &e), ErrorKind::Unavailable);
        assert_eq!(k(503, &e), ErrorKind::Unavailable);
        assert!(classify(429, &none, &e).is_temporary());
        assert!(!classify(400, &none, &e).is_temporary());
    }

    #[test]
    fn hints_are_read() {
        let e = classify(
            503,
            &h(&[("stripe-should-retry", "false")]),
            &ErrorBody::default(),
        );
        assert!(!e.is_temporary());
        let e = classify(
            400,
            &h(&[("stripe-should-retry", "true")]),
            &ErrorBody::default(),
        );
        assert!(e.is_temporary());
        let e = classify(429, &h(&[("retry-after", "3")]), &ErrorBody::default());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e = classify(429, &h(&[("retry-after", "0.5")]), &ErrorBody::default());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn messages_never_quote_keys() {
        let b = ErrorBody::parse(
            br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****abcd"}}"#,
        );
        let e = classify(401, &HeaderMap::new(), &b);
        assert!(e.to_string().contains("STRIPE_SECRET_KEY"));
        assert!(!e.to_string().contains("abcd"));
        let b = ErrorBody::parse(
            br#"{"error":{"message":"The provided key 'rk_live_*****xyz' does not have access"}}"#,
        );
        let e = classify(403, &HeaderMap::new(), &b);
        assert!(!e.to_string().contains("xyz"), "{e}");
    }

    #[test]
    fn missing_means_a_stripe_shaped_404_body() {
        assert!(body("resource_missing").is_missing());
        // Emulators: any Stripe-shaped error, with or without a code.
        assert!(
            ErrorBody::parse(
                br#"{"error":{"type":"invalid_request_error","message":"Not found"}}"#
            )
            .is_missing()
        );
        assert!(ErrorBody::parse(br#"{"error":{"type":"api_error"}}"#).is_missing());
        assert!(body("some_other_code").is_missing());
        assert!(!ErrorBody::parse(br#"{"error":{"type":7}}"#).is_missing());
        assert!(!ErrorBody::parse(br#"{"error":"not found"}"#).is_missing());
        assert!(!ErrorBody::parse(br#"{"detail":"Not Found"}"#).is_missing());
        assert!(!ErrorBody::parse(b"").is_missing());
        assert!(
            !ErrorBody::parse(
                br#"{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (GET: /v2/x)"}}"#
            )
            .is_missing()
        );
        assert!(
            !ErrorBody::parse(br#"{"error":{"message":"Unrecognized request URL"}}"#).is_missing()
        );
        assert!(
            ErrorBody::parse(br#"{"error":{"message":"No such customer: 'cus_1'"}}"#).is_missing()
        );
        assert!(!ErrorBody::parse(b"<html>").is_missing());
    }

    #[test]
    fn list_envelope_is_checked() {
        assert!(
            parse_list(
                serde_json::json!({"data": [{"id": "a"}], "has_more": false}),
                0
            )
            .is_ok()
        );
        assert!(parse_list(serde_json::json!({"has_more": false}), 0).is_err());
        assert!(parse_list(serde_json::json!({"data": [], "has_more": true}), 0).is_err());
        assert!(parse_list(serde_json::json!({"data": [{"x": 1}]}), 0).is_err());
    }
}
