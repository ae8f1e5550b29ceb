//! The admin API under `/admin/`, behind a bearer token. Mounted only when
//! `RECON_ADMIN_TOKEN` is set.
//!
//! # Guarantees
//! - `recon serve` refuses to start with a token shorter than
//!   [`MIN_TOKEN_CHARS`] characters or with leading or trailing whitespace
//!   (exit 2); the message never contains the token.
//! - The presented token and the configured one are compared as SHA-256
//!   digests in constant time, so neither their content nor their lengths
//!   show in the response time.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use recon_core::store::DriftQuery;
use recon_core::{ErrorKind, SweepOptions};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;

/// The shortest `RECON_ADMIN_TOKEN` accepted (`openssl rand -hex 32` gives 64).
pub const MIN_TOKEN_CHARS: usize = 32;

/// The admin token, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Check a token: at least [`MIN_TOKEN_CHARS`] characters, no leading or
    /// trailing whitespace. The error says what is wrong and how to make a
    /// good one, and never contains the token.
    pub fn new(token: &str) -> recon_core::Result<AdminToken> {
        const HOW: &str = "make one with `export RECON_ADMIN_TOKEN=$(openssl rand -hex 32)`, or unset RECON_ADMIN_TOKEN to turn the admin API off";
        if token.trim() != token {
            return Err(recon_core::Error::config(format!(
                "RECON_ADMIN_TOKEN has leading or trailing whitespace (a newline or space copied with it?); \
                 remove it, or {HOW}"
            )));
        }
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(recon_core::Error::config(format!(
                "RECON_ADMIN_TOKEN is too short: it must be at least {MIN_TOKEN_CHARS} characters; {HOW}"
            )));
        }
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token: both are hashed and the digests
    /// compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        got.ct_eq(&self.digest).into()
    }

    /// A key for `purpose` derived from the token (SHA-256 of the purpose
    /// and the token's digest): secret as long as the token is, and a
    /// different one for each purpose.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.digest);
        h.finalize().into()
    }

    /// `RECON_ADMIN_TOKEN`, checked; `None` when unset or empty (the admin
    /// API is off).
    pub fn from_env() -> recon_core::Result<Option<AdminToken>> {
        match std::env::var("RECON_ADMIN_TOKEN") {
            Ok(t) if !t.is_empty() => AdminToken::new(&t).map(Some),
            _ => Ok(None),
        }
    }
}

/// Whether `header` is `Bearer <token>`: both sides are hashed and the
/// digests compared in constant time, so the time taken says nothing about
/// the token's content or length.
pub fn authorized(header: Option<&str>, token: &AdminToken) -> bool {
    header
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|got| token.matches(got))
}

/// The admin routes.
pub fn router(state: Shared, token: AdminToken) -> Router<Shared> {
    let token = std::sync::Arc::new(token);
    Router::new()
        .route("/reconcile/{provider}", post(sweep))
        .route("/reconcile/{provider}/objects/{id}", post(one))
        .route("/reconcile/{provider}/owners/{owner}", post(owner))
        .route("/replay/{provider}", post(replay))
        .route("/drift", get(drift))
        .route("/runs", get(runs))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move {
                let h = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok());
                if !authorized(h, &token) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({ "error": "missing or wrong bearer token" })),
                    )
                        .into_response();
                }
                next.run(req).await
            }
        }))
        .with_state(state)
}

fn err(e: recon_core::Error) -> Response {
    let status = match e.kind() {
        ErrorKind::Config | ErrorKind::InvalidInput | ErrorKind::Unsupported => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, axum::Json(json!({ "error": e.to_string() }))).into_response()
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

async fn sweep(
    State(s): State<Shared>,
    Path(provider): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let entry = match s.app.provider(&provider) {
        Ok(e) => e,
        Err(e) => return err(e),
    };
    let opts = SweepOptions {
        dry_run: flag(&q, "dry_run"),
        force: flag(&q, "force"),
        cancel: s.shutdown.child_token(),
        ..SweepOptions::default()
    };
    let kinds: Vec<String> = match q.get("kind") {
        Some(k) => vec![k.clone()],
        None => entry
            .provider
            .kinds()
            .iter()
            .map(|k| k.to_string())
            .collect(),
    };
    let mut runs = Vec::new();
    for k in kinds {
        match entry.engine.sweep(&k, &opts).await {
            Ok(run) => {
                s.after_run(&run).await;
                let ok = run.status == recon_core::RunStatus::Succeeded;
                runs.push(run);
                if !ok {
                    break;
                }
            }
            Err(e) => return err(e),
        }
    }
    axum::Json(json!({ "runs": runs })).into_response()
}

async fn one(
    State(s): State<Shared>,
    Path((provider, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let entry = match s.app.provider(&provider) {
        Ok(e) => e,
        Err(e) => return err(e),
    };
    match entry
        .engine
        .reconcile_one(q.get("kind").map(String::as_str), &id, flag(&q, "dry_run"))
        .await
    {
        Ok(o) => axum::Json(json!({ "results": [o] })).into_response(),
        Err(e) => err(e),
    }
}

async fn owner(
    State(s): State<Shared>,
    Path((provider, owner)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let entry = match s.app.provider(&provider) {
        Ok(e) => e,
        Err(e) => return err(e),
    };
    match entry
        .engine
        .reconcile_owner(&owner, flag(&q, "dry_run"))
        .await
    {
        Ok(o) => axum::Json(json!({ "results": o })).into_response(),
        Err(e) => err(e),
    }
}

async fn replay(
    State(s): State<Shared>,
    Path(provider): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let entry = match s.app.provider(&provider) {
        Ok(e) => e,
        Err(e) => return err(e),
    };
    let since = match q.get("since") {
        // Seconds; the engine takes the provider's unit.
        Some(v) => match crate::config::parse_since(v) {
            Ok(v) => match crate::resume::since_in_units(entry, v) {
                Ok(v) => v,
                Err(e) => return err(e),
            },
            Err(e) => return err(recon_core::Error::invalid(e.to_string())),
        },
        // Without `since`: resume from the event cursor.
        None if entry.provider.capabilities().event_log => {
            match crate::resume::plan(entry, s.app.store.as_ref(), None).await {
                Ok(Some(start)) => {
                    if let Some(gap) = &start.gap {
                        s.replay_gap(entry.name, entry.provider.kinds(), gap).await;
                    }
                    start.since
                }
                Ok(None) => {
                    return err(recon_core::Error::invalid(format!(
                        "no event cursor for {provider} yet (no replay has run): pass since, e.g. ?since=24h"
                    )));
                }
                Err(e) => return err(e),
            }
        }
        // No event log: the engine says so.
        None => 0,
    };
    let opts = SweepOptions {
        cancel: s.shutdown.child_token(),
        ..SweepOptions::default()
    };
    match crate::resume::replay(entry, s.app.store.as_ref(), since, &opts).await {
        Ok(run) => {
            s.after_run(&run).await;
            axum::Json(json!({ "run": run })).into_response()
        }
        Err(e) => err(e),
    }
}

async fn drift(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let stale = q
        .get("stale")
        .and_then(|v| humantime::parse_duration(v).ok())
        .unwrap_or(std::time::Duration::from_secs(86_400));
    let scopes: Vec<recon_core::diagnostics::Scope<'_>> = s
        .app
        .providers
        .iter()
        .map(|p| recon_core::diagnostics::Scope {
            provider: p.name,
            account: p.provider.account(),
            references: p.references,
        })
        .collect();
    let report = match recon_core::diagnostics::report(
        s.app.store.as_ref(),
        &scopes,
        stale.as_millis() as i64,
        100,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let recent = match s
        .app
        .store
        .drift(&DriftQuery {
            limit: 100,
            ..DriftQuery::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    axum::Json(
        json!({ "stale": report.stale, "dangling": report.dangling, "recent_drift": recent }),
    )
    .into_response()
}

async fn runs(State(s): State<Shared>) -> Response {
    match s.app.store.runs(50).await {
        Ok(r) => axum::Json(json!({ "runs": r })).into_response(),
        Err(e) => err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let secret = "0123456789abcdef0123456789abcdef-s3cret";
        let t = AdminToken::new(secret).unwrap();
        assert!(authorized(Some(&format!("Bearer {secret}")), &t));
        assert!(!authorized(Some(&format!("Bearer {secret}X")), &t));
        assert!(!authorized(Some(&format!("Bearer {}", &secret[..30])), &t));
        assert!(!authorized(Some("Bearer "), &t));
        assert!(!authorized(Some(secret), &t));
        assert!(!authorized(None, &t));
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn weak_tokens_are_refused_without_showing_them() {
        let short = "short-but-secret";
        let e = AdminToken::new(short).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let m = e.to_string();
        assert!(
            m.contains("at least 32") && m.contains("openssl rand -hex 32"),
            "{m}"
        );
        assert!(!m.contains(short), "{m}");
        let padded = format!(" {}\n", "a".repeat(40));
        let m = AdminToken::new(&padded).unwrap_err().to_string();
        assert!(
            m.contains("whitespace") && !m.contains(&"a".repeat(40)),
            "{m}"
        );
        AdminToken::new(&"a".repeat(32)).unwrap();
        // Characters, not bytes.
        assert!(AdminToken::new(&"é".repeat(20)).is_err());
    }
}
