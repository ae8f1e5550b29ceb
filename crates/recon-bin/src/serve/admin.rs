//! The admin API under `/admin/`, behind a bearer token compared in
//! constant time. Mounted only when `RECON_ADMIN_TOKEN` is set.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use recon_core::store::DriftQuery;
use recon_core::{ErrorKind, SweepOptions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::Shared;

/// Whether `header` is `Bearer <token>`, compared in constant time.
pub fn authorized(header: Option<&str>, token: &SecretString) -> bool {
    let Some(got) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    got.as_bytes()
        .ct_eq(token.expose_secret().as_bytes())
        .into()
}

/// The admin routes.
pub fn router(state: Shared, token: SecretString) -> Router<Shared> {
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
    let since =
        match crate::config::parse_since(q.get("since").map(String::as_str).unwrap_or("24h")) {
            Ok(v) => v,
            Err(e) => return err(recon_core::Error::invalid(e.to_string())),
        };
    let opts = SweepOptions {
        cancel: s.shutdown.child_token(),
        ..SweepOptions::default()
    };
    match entry.engine.replay(since, &opts).await {
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
        let t = SecretString::from("s3cret-token");
        assert!(authorized(Some("Bearer s3cret-token"), &t));
        assert!(!authorized(Some("Bearer s3cret-tokeN"), &t));
        assert!(!authorized(Some("Bearer s3cret"), &t));
        assert!(!authorized(Some("s3cret-token"), &t));
        assert!(!authorized(None, &t));
    }
}
