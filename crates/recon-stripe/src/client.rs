//! The HTTP client: core's [`JsonClient`] (budget, retries, transport
//! errors, the status table) with what is Stripe's own: `Stripe-Version`
//! and `Stripe-Account`, its error body, which 404 means "no such object",
//! `lock_timeout` and `rate_limit` codes, and `Stripe-Should-Retry`.

use http::HeaderMap;
use recon_core::clock::ProviderClock;
use recon_core::http_client::{Dialect, ErrorBody, JsonClient};
use recon_core::{Budget, Error, ErrorKind, Result};
use serde_json::Value;

use crate::config::{SPEC, STRIPE_VERSION, StripeConfig};

/// One answer to a GET: the JSON object (`None` for "no such object", a
/// Stripe-shaped 404) and when Stripe answered, by Stripe's clock (unix
/// seconds).
pub(crate) use recon_core::http_client::JsonAnswer as Answer;
pub(crate) use recon_core::http_client::Query;

/// One list envelope: `{"object":"list","data":[…],"has_more":…}`.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub data: Vec<Value>,
    pub has_more: bool,
    /// When Stripe answered, by Stripe's clock (unix seconds).
    pub at: i64,
}

/// Talks to one Stripe account.
pub(crate) struct Client {
    api: JsonClient,
    account: Option<String>,
}

impl Client {
    pub(crate) fn new(cfg: &StripeConfig) -> Result<Self> {
        cfg.validate()?;
        let api = JsonClient::new(&SPEC, cfg.api.client_settings(cfg.effective_rate()))?;
        Ok(Client {
            api,
            account: cfg.account.clone(),
        })
    }

    pub(crate) fn budget(&self) -> &Budget {
        self.api.budget()
    }

    /// Stripe's clock, as its answers' `Date` headers show it.
    pub(crate) fn clock(&self) -> &ProviderClock {
        self.api.clock()
    }

    /// GET `path` and parse the JSON body, with when Stripe answered
    /// (unix seconds, Stripe's clock). Every failure is an `Err`.
    pub(crate) async fn get(&self, op: &str, path: &str, query: &Query) -> Result<(Value, i64)> {
        let answer = self.get_or_missing(op, path, query).await?;
        Ok((SPEC.found(op, path, answer.body)?, answer.at))
    }

    /// GET `path`; a 404 that Stripe (or an emulator) answered with its
    /// error body is `Ok(None)` (see [`Stripe::missing`]).
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
        let mut headers = vec![("Stripe-Version", STRIPE_VERSION)];
        if let Some(a) = account {
            headers.push(("Stripe-Account", a));
        }
        let answer = self.api.get_json_at(op, path, query, &headers, &Stripe);
        let answer = answer.await?;
        if answer.body.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(malformed(op, "the body is not a JSON object".into()));
        }
        Ok(answer)
    }

    /// POST a form to `path` (as the configured account, like every other
    /// request) and parse the JSON object Stripe answers. Each call carries
    /// its own `Idempotency-Key`, so the budget's retries of a create never
    /// create twice.
    pub(crate) async fn post_form(&self, op: &str, path: &str, form: &Query) -> Result<Value> {
        let key = recon_core::http_client::idempotency_key();
        let mut headers = vec![
            ("Stripe-Version", STRIPE_VERSION),
            ("Idempotency-Key", key.as_str()),
        ];
        if let Some(a) = &self.account {
            headers.push(("Stripe-Account", a));
        }
        let answer = self
            .api
            .post_form_json_at(op, path, form, &headers, &Stripe);
        let v = SPEC.found(op, path, answer.await?.body)?;
        if !v.is_object() {
            return Err(malformed(op, "the body is not a JSON object".into()));
        }
        Ok(v)
    }

    /// GET a list endpoint and check the envelope.
    pub(crate) async fn list(&self, op: &str, path: &str, query: &Query) -> Result<ListPage> {
        let (v, at) = self.get(op, path, query).await?;
        parse_list(v, at).map_err(|m| malformed(op, m))
    }
}

fn malformed(op: &str, detail: String) -> Error {
    SPEC.malformed(op, detail)
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

/// How Stripe answers: `{"error":{"type","code","message"}}` (read
/// leniently), `lock_timeout` and `rate_limit` codes, and
/// `Stripe-Should-Retry`.
struct Stripe;

impl Dialect for Stripe {
    fn error_body(&self, body: &[u8]) -> Option<ErrorBody> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error").filter(|e| e.is_object())?;
        let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        Some(ErrorBody {
            code: s("code"),
            message: s("message"),
            reference: None,
            kind: s("type"),
        })
    }

    /// Only a body whose `error` has a string `type` is Stripe's own: a
    /// gateway's JSON error page must not set Stripe's clock.
    fn own(&self, body: &ErrorBody) -> bool {
        body.kind.is_some()
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
    fn missing(&self, _path: &str, body: &ErrorBody) -> bool {
        if body.code.as_deref() == Some("resource_missing") {
            return true;
        }
        let message = body.message.as_deref().unwrap_or("");
        if message.starts_with("Unrecognized request URL") {
            return false;
        }
        body.kind.is_some() || message.starts_with("No such ")
    }

    /// `lock_timeout` is a conflict whatever the status, and `rate_limit`
    /// on a 400 is the rate limit; 401 and 403 stay the table's.
    fn special(&self, status: u16, body: &ErrorBody, h: &HeaderMap, what: &str) -> Option<Error> {
        let (kind, message) = match (status, body.code.as_deref()?) {
            (401 | 403, _) => return None,
            (_, "lock_timeout") => (
                ErrorKind::Conflict,
                format!("Stripe could not lock the object (HTTP {status}): {what}"),
            ),
            (400, "rate_limit") => (
                ErrorKind::RateLimited,
                format!("Stripe's rate limit answered (HTTP 400 rate_limit): {what}"),
            ),
            _ => return None,
        };
        Some(SPEC.error(kind, status, h, message))
    }

    fn should_retry(&self, headers: &HeaderMap) -> Option<bool> {
        let v = headers.get("stripe-should-retry")?.to_str().ok()?.trim();
        match v.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    /// The dialect as the client applies it to one failed answer.
    trait Read {
        fn parse(body: &[u8]) -> Self;
        fn is_missing(&self) -> bool;
    }

    impl Read for ErrorBody {
        fn parse(body: &[u8]) -> Self {
            Stripe.error_body(body).unwrap_or_default()
        }
        fn is_missing(&self) -> bool {
            Stripe.missing("/v1/customers/cus_1", self)
        }
    }

    fn classify(status: u16, headers: &HeaderMap, body: &ErrorBody) -> Error {
        SPEC.answer_error(status, headers, body, &Stripe)
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
