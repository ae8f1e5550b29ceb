//! Stripe's read API: list endpoints with their filters and cursors, and
//! retrieves (docs/PROVIDERS.md §1.2, §1.4, §3).

use std::collections::BTreeMap;

use serde_json::json;

use crate::query::Query;
use crate::server::ApiResponse;
use crate::state::{EVENT_WINDOW_S, World};
use crate::stripe_state::{Rendered, StripeKind, SubStatus};
use crate::table::{Cursor, Key, stripe_page};

/// A Stripe error body.
pub(crate) fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    param: Option<&str>,
    message: &str,
) -> ApiResponse {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
        e["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        ));
    }
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    ApiResponse::json(status, json!({ "error": e }).to_string())
}

fn invalid(param: &str, message: &str) -> ApiResponse {
    error(
        400,
        "invalid_request_error",
        Some("parameter_invalid_integer"),
        Some(param),
        message,
    )
}

/// Inclusive `created` bounds from `created`, `created[gt|gte|lt|lte]`.
fn created_bounds(q: &Query) -> Result<(Option<i64>, Option<i64>), ApiResponse> {
    let int = |k: &str| -> Result<Option<i64>, ApiResponse> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| invalid(k, &format!("Invalid integer: {v}"))),
        }
    };
    let (mut lo, mut hi) = (None::<i64>, None::<i64>);
    let mut raise = |v: i64| lo = Some(lo.map_or(v, |l: i64| l.max(v)));
    if let Some(v) = int("created")? {
        raise(v);
        hi = Some(v);
    }
    if let Some(v) = int("created[gte]")? {
        raise(v);
    }
    if let Some(v) = int("created[gt]")? {
        raise(v.saturating_add(1));
    }
    let mut lower = |v: i64| hi = Some(hi.map_or(v, |h: i64| h.min(v)));
    if let Some(v) = int("created[lte]")? {
        lower(v);
    }
    if let Some(v) = int("created[lt]")? {
        lower(v.saturating_sub(1));
    }
    Ok((lo, hi))
}

/// `limit` and the cursor, checked.
fn paging(
    q: &Query,
    key_of: impl Fn(&str) -> Option<Key>,
    object: &str,
) -> Result<(usize, Cursor), ApiResponse> {
    let limit = match q.get("limit") {
        None => 10,
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n as usize,
            Ok(_) => {
                return Err(invalid(
                    "limit",
                    "This value must be greater than or equal to 1 and less than or equal to 100.",
                ));
            }
            Err(_) => return Err(invalid("limit", &format!("Invalid integer: {v}"))),
        },
    };
    let after = q.get("starting_after").filter(|s| !s.is_empty());
    let before = q.get("ending_before").filter(|s| !s.is_empty());
    let cursor = match (after, before) {
        (Some(_), Some(_)) => {
            return Err(error(
                400,
                "invalid_request_error",
                None,
                Some("ending_before"),
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        (Some(id), None) | (None, Some(id)) => {
            let param = if after.is_some() {
                "starting_after"
            } else {
                "ending_before"
            };
            let k = key_of(id).ok_or_else(|| {
                error(
                    400,
                    "invalid_request_error",
                    Some("resource_missing"),
                    Some(param),
                    &format!("No such {object}: '{id}'"),
                )
            })?;
            if after.is_some() {
                Cursor::After(k)
            } else {
                Cursor::Before(k)
            }
        }
        (None, None) => Cursor::Start,
    };
    Ok((limit, cursor))
}

fn envelope(url: &str, items: &[String], has_more: bool) -> String {
    let mut s = String::with_capacity(items.iter().map(String::len).sum::<usize>() + 80);
    s.push_str(r#"{"object":"list","data":["#);
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(it);
    }
    s.push_str(r#"],"has_more":"#);
    s.push_str(if has_more { "true" } else { "false" });
    s.push_str(r#","url":""#);
    s.push_str(url);
    s.push_str(r#""}"#);
    s
}

/// Answer `GET {path}` (path starts with `/v1/`).
pub(crate) fn handle(w: &World, path: &str, q: &Query) -> ApiResponse {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "webhook_endpoints"] => list_endpoints(w, q).route("GET /v1/webhook_endpoints"),
        ["v1", "webhook_endpoints", id] => match w.stripe.webhook_endpoints.get(id) {
            Some(e) => ApiResponse::json(200, e.json(false).to_string()),
            None => missing("webhook_endpoint", id),
        }
        .route("GET /v1/webhook_endpoints/{id}"),
        ["v1", "events"] => list_events(w, q).route("GET /v1/events").listing("events"),
        ["v1", "events", id] => retrieve_event(w, id).route("GET /v1/events/{id}"),
        ["v1", "payment_intents"] => {
            ApiResponse::json(200, envelope("/v1/payment_intents", &[], false))
                .route("GET /v1/payment_intents")
                .listing("payment_intents")
        }
        ["v1", kind] if StripeKind::parse(kind).is_some() => {
            let k = StripeKind::parse(kind).expect("kind");
            list(w, k, q).route(list_route(k)).listing(k.path())
        }
        ["v1", kind, id] if StripeKind::parse(kind).is_some() => {
            let k = StripeKind::parse(kind).expect("kind");
            retrieve(w, k, id).route(get_route(k))
        }
        _ => unrecognized("GET", path).route("GET (unknown)"),
    }
}

fn unrecognized(method: &str, path: &str) -> ApiResponse {
    error(
        404,
        "invalid_request_error",
        None,
        None,
        &format!(
            "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."
        ),
    )
}

/// Answer `POST {path}` with the form `f`: creating and updating webhook
/// endpoints. A create repeated with the same `Idempotency-Key` answers
/// the first one's result, as Stripe does.
pub(crate) fn handle_post(
    w: &mut World,
    path: &str,
    f: &Query,
    idempotency_key: Option<&str>,
) -> ApiResponse {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "webhook_endpoints"] => {
            create_endpoint(w, f, idempotency_key).route("POST /v1/webhook_endpoints")
        }
        ["v1", "webhook_endpoints", id] => {
            update_endpoint(w, id, f).route("POST /v1/webhook_endpoints/{id}")
        }
        _ => unrecognized("POST", path).route("POST (unknown)"),
    }
}

fn list_endpoints(w: &World, q: &Query) -> ApiResponse {
    let table = &w.stripe.webhook_endpoints;
    let paged = paging(
        q,
        |id| table.get(id).map(crate::table::Row::key),
        "webhook_endpoint",
    );
    let (limit, cursor) = match paged {
        Ok(p) => p,
        Err(r) => return r,
    };
    let bounds = crate::table::time_bounds(None, None);
    let (ids, has_more) = stripe_page(&table.index, bounds, cursor, limit, |_| true);
    let items: Vec<String> = ids
        .iter()
        .filter_map(|id| table.get(id))
        .map(|e| e.json(false).to_string())
        .collect();
    ApiResponse::json(200, envelope("/v1/webhook_endpoints", &items, has_more))
}

fn missing_param(param: &str) -> ApiResponse {
    error(
        400,
        "invalid_request_error",
        Some("parameter_missing"),
        Some(param),
        &format!("Missing required param: {param}."),
    )
}

fn create_endpoint(w: &mut World, f: &Query, idempotency_key: Option<&str>) -> ApiResponse {
    if let Some(e) = idempotency_key
        .and_then(|k| w.stripe.endpoint_by_idempotency_key.get(k))
        .and_then(|id| w.stripe.webhook_endpoints.get(id))
    {
        return ApiResponse::json(200, e.json(true).to_string());
    }
    let Some(url) = f.get("url").filter(|u| !u.is_empty()) else {
        return missing_param("url");
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return error(
            400,
            "invalid_request_error",
            Some("url_invalid"),
            Some("url"),
            "Invalid URL: must be an http or https URL.",
        );
    }
    let events: Vec<String> = f
        .all("enabled_events")
        .iter()
        .map(|s| s.to_string())
        .collect();
    if events.is_empty() {
        return missing_param("enabled_events");
    }
    // Ids and secrets from the URL and a counter, not the seeded random
    // source: creating an endpoint leaves the mutations' sequence alone.
    let n = w.stripe.webhook_endpoints.rows.len() as u64 + 1;
    let h = crate::ids::splitmix(crate::ids::fnv(url.as_bytes()) ^ n);
    let e = crate::stripe_state::WebhookEndpoint {
        id: format!("we_{h:016x}{n:08x}"),
        seq: n,
        created: w.now_ms() / 1000,
        url: url.to_string(),
        enabled_events: events,
        disabled: false,
        description: f.get("description").map(str::to_string),
        api_version: f.get("api_version").map(str::to_string),
        secret: format!(
            "whsec_{:016x}{:016x}",
            crate::ids::splitmix(h),
            crate::ids::splitmix(h ^ 1)
        ),
    };
    let body = e.json(true).to_string();
    if let Some(k) = idempotency_key {
        w.stripe
            .endpoint_by_idempotency_key
            .insert(k.to_string(), e.id.clone());
    }
    w.stripe.webhook_endpoints.insert(e);
    ApiResponse::json(200, body)
}

fn update_endpoint(w: &mut World, id: &str, f: &Query) -> ApiResponse {
    let disabled = match f.get("disabled") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return error(
                400,
                "invalid_request_error",
                Some("parameter_invalid_boolean"),
                Some("disabled"),
                &format!("Invalid boolean: {other}"),
            );
        }
    };
    let events: Vec<String> = f
        .all("enabled_events")
        .iter()
        .map(|s| s.to_string())
        .collect();
    let url = f.get("url").filter(|u| !u.is_empty()).map(str::to_string);
    let updated = w.stripe.webhook_endpoints.update(id, |e| {
        if let Some(d) = disabled {
            e.disabled = d;
        }
        if !events.is_empty() {
            e.enabled_events = events;
        }
        if let Some(u) = url {
            e.url = u;
        }
        e.json(false)
    });
    match updated {
        Some(v) => ApiResponse::json(200, v.to_string()),
        None => missing("webhook_endpoint", id),
    }
}

fn list_route(k: StripeKind) -> &'static str {
    match k {
        StripeKind::Customers => "GET /v1/customers",
        StripeKind::Subscriptions => "GET /v1/subscriptions",
        StripeKind::Invoices => "GET /v1/invoices",
        StripeKind::Prices => "GET /v1/prices",
        StripeKind::Products => "GET /v1/products",
    }
}

fn get_route(k: StripeKind) -> &'static str {
    match k {
        StripeKind::Customers => "GET /v1/customers/{id}",
        StripeKind::Subscriptions => "GET /v1/subscriptions/{id}",
        StripeKind::Invoices => "GET /v1/invoices/{id}",
        StripeKind::Prices => "GET /v1/prices/{id}",
        StripeKind::Products => "GET /v1/products/{id}",
    }
}

fn retrieve(w: &World, k: StripeKind, id: &str) -> ApiResponse {
    match w.stripe.render(k, id) {
        Rendered::Live(v) | Rendered::Deleted(v) => ApiResponse::json(200, v.to_string()),
        Rendered::Missing => missing(k.object(), id),
    }
}

fn missing(object: &str, id: &str) -> ApiResponse {
    error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        Some("id"),
        &format!("No such {object}: '{id}'"),
    )
}

/// Which subscription statuses a `status` filter keeps.
fn status_filter(q: &Query) -> Result<Box<dyn Fn(SubStatus) -> bool>, ApiResponse> {
    Ok(match q.get("status") {
        None | Some("") => Box::new(|s| s != SubStatus::Canceled),
        Some("all") => Box::new(|_| true),
        Some("ended") => {
            Box::new(|s| matches!(s, SubStatus::Canceled | SubStatus::IncompleteExpired))
        }
        Some(other) => match SubStatus::parse(other) {
            Some(want) => Box::new(move |s| s == want),
            None => {
                return Err(error(
                    400,
                    "invalid_request_error",
                    Some("parameter_invalid_string"),
                    Some("status"),
                    &format!(
                        "Invalid status: must be one of active, all, canceled, ended, incomplete, incomplete_expired, past_due, paused, trialing, or unpaid (got {other})"
                    ),
                ));
            }
        },
    })
}

fn list(w: &World, k: StripeKind, q: &Query) -> ApiResponse {
    match list_inner(w, k, q) {
        Ok(r) | Err(r) => r,
    }
}

fn list_inner(w: &World, k: StripeKind, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (lo, hi) = created_bounds(q)?;
    let (limit, cursor) = paging(q, |id| w.stripe.key_of(k, id), k.object())?;
    let s = &w.stripe;
    let customer = q.get("customer").filter(|c| !c.is_empty());
    // A customer's subscriptions and invoices come from its own small index.
    let own: BTreeMap<Key, String>;
    let index = match (k, customer) {
        (StripeKind::Subscriptions, Some(c)) => {
            own = owned(s.subs_by_customer.get(c), |id| s.key_of(k, id));
            &own
        }
        (StripeKind::Invoices, Some(c)) => {
            own = owned(s.invoices_by_customer.get(c), |id| s.key_of(k, id));
            &own
        }
        _ => k.index(s),
    };
    let bounds = crate::table::time_bounds(lo, hi);
    let (ids, has_more) = match k {
        StripeKind::Subscriptions => {
            let keep = status_filter(q)?;
            stripe_page(index, bounds, cursor, limit, |id| {
                s.subscriptions.get(id).is_some_and(|x| keep(x.status))
            })
        }
        StripeKind::Invoices => {
            let want = q.get("status").filter(|v| !v.is_empty());
            stripe_page(index, bounds, cursor, limit, |id| match want {
                None => true,
                Some(st) => s.invoices.get(id).is_some_and(|i| i.status.as_str() == st),
            })
        }
        StripeKind::Customers => {
            let email = q.get("email");
            stripe_page(index, bounds, cursor, limit, |id| {
                email.is_none_or(|e| s.customers.get(id).is_some_and(|c| c.email == e))
            })
        }
        StripeKind::Prices | StripeKind::Products => {
            let active = q.get("active").map(|a| a == "true");
            stripe_page(index, bounds, cursor, limit, |id| {
                let live = match k {
                    StripeKind::Prices => s.prices.get(id).map(|p| p.active),
                    _ => s.products.get(id).map(|p| p.active),
                };
                active.is_none_or(|a| live == Some(a))
            })
        }
    };
    let items: Vec<String> = ids.iter().filter_map(|id| s.live_string(k, id)).collect();
    Ok(ApiResponse::json(
        200,
        envelope(&format!("/v1/{}", k.path()), &items, has_more),
    ))
}

fn owned(ids: Option<&Vec<String>>, key_of: impl Fn(&str) -> Option<Key>) -> BTreeMap<Key, String> {
    ids.into_iter()
        .flatten()
        .filter_map(|id| key_of(id).map(|k| (k, id.clone())))
        .collect()
}

/// Whether an event type matches a `type` filter (`customer.*` is a prefix).
pub(crate) fn type_matches(filter: &str, t: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => t.starts_with(prefix),
        None => filter == t,
    }
}

fn list_events(w: &World, q: &Query) -> ApiResponse {
    match list_events_inner(w, q) {
        Ok(r) | Err(r) => r,
    }
}

fn list_events_inner(w: &World, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (lo, hi) = created_bounds(q)?;
    let (limit, cursor) = paging(
        q,
        |id| w.events.get(id).map(crate::table::Row::key),
        "event",
    )?;
    let one = q.get("type").filter(|t| !t.is_empty());
    let many = q.all("types");
    if one.is_some() && !many.is_empty() {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            Some("types"),
            "You cannot specify both `type` and `types`.",
        ));
    }
    if many.len() > 20 {
        return Err(error(
            400,
            "invalid_request_error",
            None,
            Some("types"),
            "You may specify at most 20 event types.",
        ));
    }
    let delivery = q.get("delivery_success").map(|v| v == "true");
    let floor = w.now_ms() / 1000 - EVENT_WINDOW_S;
    let lo = Some(lo.map_or(floor, |l| l.max(floor)));
    let bounds = crate::table::time_bounds(lo, hi);
    let (ids, has_more) = stripe_page(&w.events.index, bounds, cursor, limit, |id| {
        let Some(e) = w.events.get(id) else {
            return false;
        };
        let type_ok = match one {
            Some(f) => type_matches(f, e.kind),
            None => many.is_empty() || many.contains(&e.kind),
        };
        type_ok && delivery.is_none_or(|d| d == (e.pending == 0))
    });
    let items: Vec<String> = ids
        .iter()
        .filter_map(|id| w.events.get(id))
        .map(|e| e.json(&w.api_version))
        .collect();
    Ok(ApiResponse::json(
        200,
        envelope("/v1/events", &items, has_more),
    ))
}

fn retrieve_event(w: &World, id: &str) -> ApiResponse {
    let floor = w.now_ms() / 1000 - EVENT_WINDOW_S;
    match w.events.get(id) {
        Some(e) if e.created >= floor => ApiResponse::json(200, e.json(&w.api_version)),
        _ => missing("event", id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(type_matches("customer.*", "customer.subscription.updated"));
        assert!(type_matches("*", "invoice.paid"));
        assert!(type_matches("invoice.paid", "invoice.paid"));
        assert!(!type_matches("invoice.paid", "invoice.payment_failed"));
        assert!(!type_matches("customer.*", "invoice.paid"));
    }

    #[test]
    fn created_filters_combine() {
        let q = Query::parse(Some("created[gt]=10&created[lte]=20&created[gte]=5"));
        assert_eq!(created_bounds(&q).unwrap(), (Some(11), Some(20)));
        let q = Query::parse(Some("created=7"));
        assert_eq!(created_bounds(&q).unwrap(), (Some(7), Some(7)));
        let q = Query::parse(Some("created[lt]=x"));
        assert_eq!(created_bounds(&q).unwrap_err().status, 400);
    }
}
