//! One GET through core's [`Budget`], and the classification of Clerk's
//! answers into recon's error kinds. Core decides whether to retry.

use std::time::Duration;

use recon_core::{Budget, Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::{CLERK_API_VERSION, ClerkConfig};

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    budget: Budget,
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn clerk_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["errors"][0]["long_message"]
                .as_str()
                .or(v["errors"][0]["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no error detail".into())
}

impl Client {
    pub(crate) fn new(cfg: &ClerkConfig) -> Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .user_agent(concat!("recon-clerk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::config(format!("cannot build the HTTP client: {e}")).with_component("clerk")
            })?;
        Ok(Client {
            http,
            base: cfg.api_base.clone(),
            key: cfg.secret_key.clone(),
            budget: Budget::new(cfg.effective_rate(), cfg.retry),
        })
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// GET `/v1{path}`; a 404 is `Ok(None)`.
    pub(crate) async fn get(
        &self,
        op: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>> {
        let url = format!("{}/v1{}", self.base, path);
        self.budget
            .call(op, || async {
                let resp = self
                    .http
                    .get(&url)
                    .query(query)
                    .bearer_auth(self.key.expose_secret())
                    .header("Clerk-API-Version", CLERK_API_VERSION)
                    .send()
                    .await
                    .map_err(|e| {
                        let kind = if e.is_timeout() {
                            ErrorKind::Timeout
                        } else {
                            ErrorKind::Unavailable
                        };
                        Error::new(kind, format!("cannot reach Clerk: {}", e.without_url()))
                            .with_component("clerk")
                            .with_operation(op.to_string())
                    })?;
                let status = resp.status().as_u16();
                let after = retry_after(resp.headers());
                let text = resp.text().await.map_err(|e| {
                    Error::new(
                        ErrorKind::Unavailable,
                        format!("Clerk's answer was cut short: {}", e.without_url()),
                    )
                    .with_component("clerk")
                    .with_operation(op.to_string())
                })?;
                let err = |kind: ErrorKind, msg: String| {
                    Error::new(kind, msg)
                        .with_component("clerk")
                        .with_operation(op.to_string())
                        .with_status(status)
                        .with_retry_after(after)
                };
                match status {
                    200..=299 => serde_json::from_str(&text).map(Some).map_err(|e| {
                        err(
                            ErrorKind::Unavailable,
                            format!("Clerk sent malformed JSON ({e})"),
                        )
                    }),
                    404 => Ok(None),
                    401 => Err(err(
                        ErrorKind::Unauthenticated,
                        "Clerk refused the key (401): check CLERK_SECRET_KEY".into(),
                    )),
                    403 => Err(err(
                        ErrorKind::PermissionDenied,
                        format!("Clerk: forbidden: {}", clerk_message(&text)),
                    )),
                    408 => Err(err(
                        ErrorKind::Timeout,
                        "Clerk: request timeout (408)".into(),
                    )),
                    409 => Err(err(
                        ErrorKind::Conflict,
                        format!("Clerk: conflict: {}", clerk_message(&text)),
                    )),
                    422 | 400 => Err(err(
                        ErrorKind::InvalidInput,
                        format!(
                            "Clerk rejected the request ({status}): {}",
                            clerk_message(&text)
                        ),
                    )),
                    429 => Err(err(ErrorKind::RateLimited, "Clerk rate limit (429)".into())),
                    s if s >= 500 => Err(err(
                        ErrorKind::Unavailable,
                        format!("Clerk server error ({s})"),
                    )),
                    s => Err(err(
                        ErrorKind::Unexpected,
                        format!("Clerk answered {s}: {}", clerk_message(&text)),
                    )),
                }
            })
            .await
    }
}
