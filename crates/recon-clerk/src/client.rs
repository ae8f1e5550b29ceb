//! The HTTP client: core's [`JsonClient`] (budget, retries, transport
//! errors, the status table) with what is Clerk's own: the
//! `Clerk-API-Version` header, its `ClerkErrors` body, which 404 means
//! "no such object", and its trace id in messages.

use http::HeaderMap;
use recon_core::clock::ProviderClock;
use recon_core::http_client::{Answer, JsonClient};
use recon_core::{Budget, Error, Result};
use serde_json::Value;

use crate::config::{CLERK_API_VERSION, ClerkConfig, SPEC};

pub(crate) use recon_core::http_client::Query;

/// Talks to one Clerk instance.
pub(crate) struct Client {
    api: JsonClient,
}

impl Client {
    pub(crate) fn new(cfg: &ClerkConfig) -> Result<Self> {
        cfg.validate()?;
        let api = JsonClient::new(&SPEC, cfg.api.client_settings(cfg.effective_rate()))?;
        Ok(Client { api })
    }

    pub(crate) fn budget(&self) -> &Budget {
        self.api.budget()
    }

    /// Clerk's clock, as its answers' `Date` headers show it.
    pub(crate) fn clock(&self) -> &ProviderClock {
        self.api.clock()
    }

    /// GET `path` (`/v1/…`) and parse the JSON body. Every failure, a 404
    /// included, is an `Err`.
    pub(crate) async fn get(&self, op: &str, path: &str, query: &Query) -> Result<Value> {
        match self.get_or_missing(op, path, query).await? {
            Some(v) => Ok(v),
            None => Err(SPEC.not_found(op, path)),
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
        let headers = [("Clerk-API-Version", CLERK_API_VERSION)];
        self.api
            .get(op, path, query, &headers, |a| self.interpret(op, a))
            .await
    }

    fn interpret(&self, op: &str, a: Answer) -> Result<Option<Value>> {
        let info = (!a.is_success()).then(|| ErrorBody::parse(&a.body));
        // Only Clerk's own answers tell its time: a success, or a
        // ClerkErrors body (not a proxy's page).
        if info.as_ref().is_none_or(|i| i.clerk) {
            self.clock().observe(&a.headers, a.sent_ms, a.received_ms);
        }
        let Some(info) = info else {
            return serde_json::from_slice::<Value>(&a.body)
                .map(Some)
                .map_err(|e| malformed(op, format!("{e}")).with_status(a.status));
        };
        if a.status == 404 && info.is_missing() {
            return Ok(None);
        }
        Err(classify(a.status, &a.headers, &info).with_operation(op.to_string()))
    }
}

/// A 2xx answer whose body is not what the endpoint documents.
pub(crate) fn malformed(op: &str, detail: String) -> Error {
    SPEC.malformed(op, detail)
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

/// Turn a non-2xx answer into an [`Error`]: core's table, with Clerk's
/// trace id in the message.
pub(crate) fn classify(status: u16, headers: &HeaderMap, info: &ErrorBody) -> Error {
    let mut what = SPEC.describe(info.code.as_deref(), info.message.as_deref());
    if let Some(t) = &info.trace_id {
        what.push_str(&format!(" (clerk_trace_id {t})"));
    }
    SPEC.classify(status, headers, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recon_core::ErrorKind;
    use std::time::Duration;

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
