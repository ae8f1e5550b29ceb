//! Core's [`JsonClient`] in Paddle's dialect: the `Paddle-Version` header,
//! the `{"error": {code, detail}, "meta": {request_id}}` body, `not_found`
//! as "no such entity"; a refused key (a 403) is `SPEC.key_refused`.

use recon_core::Result;
use recon_core::http_client::{Dialect, ErrorBody, JsonClient, Query};
use serde_json::Value;

use crate::config::SPEC;

struct Paddle;

impl Dialect for Paddle {
    fn error_body(&self, body: &[u8]) -> Option<ErrorBody> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let text = |k: &str| v["error"][k].as_str().map(str::to_string);
        let reference = v["meta"]["request_id"]
            .as_str()
            .map(|r| format!("request_id {r}"));
        v["error"].is_object().then(|| ErrorBody {
            code: text("code"),
            message: text("detail"),
            reference,
            kind: text("type"),
        })
    }

    /// Paddle's own `not_found` about the id asked for ("Product pro_… not
    /// found."): a gateway's `not_found` for a route is not "no such entity".
    fn missing(&self, path: &str, body: &ErrorBody) -> bool {
        let id = path.rsplit('/').next().unwrap_or_default();
        let about = body.message.as_deref().is_some_and(|m| m.contains(id));
        body.code.as_deref() == Some("not_found") && about
    }
}

/// One page of an id-ordered listing at `path` (`query` says `after`):
/// its items and the cursor of the next page, checked by
/// [`ApiSpec::ascending_page`](recon_core::http_client::ApiSpec::ascending_page).
pub(crate) async fn list(
    api: &JsonClient,
    (op, path): (&str, &str),
    query: &Query,
    (after, id_field): (&str, &str),
) -> Result<(Vec<Value>, Option<String>)> {
    let mut body = SPEC.found(op, path, get(api, op, path, query).await?)?;
    let has_more = body["meta"]["pagination"]["has_more"].as_bool();
    SPEC.ascending_page(op, body["data"].take(), has_more, (after, id_field))
}

/// GET `path`: the whole body (an object with `data`), or `None` for
/// Paddle's own `not_found` (a 404 without Paddle's body is an error, never
/// "not found").
pub(crate) async fn get(
    api: &JsonClient,
    op: &str,
    path: &str,
    q: &Query,
) -> Result<Option<Value>> {
    let body = api.get_json(op, path, q, &[("Paddle-Version", "1")], &Paddle);
    match body.await? {
        Some(b) if b.get("data").is_none() => Err(SPEC.malformed(op, "an answer without `data`")),
        b => Ok(b),
    }
}
