//! The HTTP client: core's [`JsonClient`] in Clerk's dialect: the
//! `Clerk-API-Version` header, its `ClerkErrors` body, which 404 means "no
//! such object", and its trace id in messages.

use recon_core::clock::ProviderClock;
use recon_core::http_client::{Dialect, ErrorBody, JsonClient};
use recon_core::{Budget, Error, Result};
use serde_json::Value;

use crate::config::{CLERK_API_VERSION, ClerkConfig, SPEC};

pub(crate) use recon_core::http_client::Query;

/// Talks to one Clerk instance.
pub(crate) struct Client {
    api: JsonClient,
}

/// Clerk's answers: `{"errors":[{"message","long_message","code"}],
/// "clerk_trace_id"}`, read leniently.
struct Clerk;

impl Dialect for Clerk {
    fn error_body(&self, body: &[u8]) -> Option<ErrorBody> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let first = v.get("errors")?.as_array()?.first()?;
        let s = |k: &str| first.get(k).and_then(Value::as_str).map(str::to_string);
        let reference = v["clerk_trace_id"]
            .as_str()
            .map(|t| format!("clerk_trace_id {t}"));
        Some(ErrorBody {
            code: s("code"),
            message: s("long_message").or_else(|| s("message")),
            reference,
            kind: None,
        })
    }

    /// Clerk saying "no such object", as opposed to a route that does not
    /// exist (which has no ClerkErrors body at all).
    fn missing(&self, _path: &str, body: &ErrorBody) -> bool {
        body.code
            .as_deref()
            .is_none_or(|c| c == "resource_not_found")
    }
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
        SPEC.found(op, path, self.get_or_missing(op, path, query).await?)
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
        self.api.get_json(op, path, query, &headers, &Clerk).await
    }
}

/// A 2xx answer whose body is not what the endpoint documents.
pub(crate) fn malformed(op: &str, detail: String) -> Error {
    SPEC.malformed(op, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use recon_core::ErrorKind;
    use std::time::Duration;

    fn clerk(code: &str) -> ErrorBody {
        let body = format!(
            r#"{{"errors":[{{"message":"m","long_message":"long m","code":"{code}"}}],"clerk_trace_id":"t1"}}"#
        );
        Clerk
            .error_body(body.as_bytes())
            .expect("a ClerkErrors body")
    }

    #[test]
    fn statuses_map_to_kinds() {
        let none = HeaderMap::new();
        let k = |s| SPEC.classify(s, &none, "x").kind();
        assert_eq!(k(401), ErrorKind::Unauthenticated);
        assert_eq!(k(403), ErrorKind::PermissionDenied);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(408), ErrorKind::Timeout);
        assert_eq!(k(409), ErrorKind::Conflict);
        assert_eq!(k(422), ErrorKind::InvalidInput);
        assert_eq!(k(400), ErrorKind::InvalidInput);
        assert_eq!(k(500), ErrorKind::Unavailable);
        assert_eq!(k(429), ErrorKind::RateLimited);
        assert_eq!(k(503), ErrorKind::Unavailable);
        assert!(SPEC.classify(502, &none, "x").is_temporary());
        assert!(!SPEC.classify(401, &none, "x").is_temporary());
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("3", Some(Duration::from_secs(3))),
            ("0.5", Some(Duration::from_millis(500))),
            ("soon", None),
        ] {
            h.insert("retry-after", v.parse().unwrap());
            assert_eq!(SPEC.classify(429, &h, "x").retry_after(), want, "{v}");
        }
    }

    #[test]
    fn errors_body_is_read_and_secrets_masked() {
        let b = clerk("resource_not_found");
        assert!(Clerk.missing("/v1/users/user_1", &b));
        assert!(!Clerk.missing("/v1/users/user_1", &clerk("authorization_invalid")));
        assert_eq!(b.message.as_deref(), Some("long m"));
        assert_eq!(b.reference.as_deref(), Some("clerk_trace_id t1"));
        // A 404 without a ClerkErrors body is a missing route, not a missing
        // object: it is not Clerk's body at all.
        assert!(Clerk.error_body(b"<html>not here</html>").is_none());
        assert!(Clerk.error_body(b"").is_none());
        assert!(Clerk.error_body(br#"{"errors":[]}"#).is_none());
        let b = Clerk
            .error_body(br#"{"errors":[{"message":"bad key sk_test_abcdef123 given","code":"x"}]}"#)
            .unwrap();
        let what = SPEC.describe(b.code.as_deref(), b.message.as_deref());
        assert!(!what.contains("abcdef123"), "{what}");
        let e = SPEC.classify(401, &HeaderMap::new(), &what);
        assert!(e.to_string().contains("CLERK_SECRET_KEY"), "{e}");
    }
}
