//! The HTTP server: one axum router serving Stripe under `/stripe` and Clerk
//! under `/clerk`, with authentication, the fault knobs and the counters
//! around the two APIs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE};
use http::{HeaderMap, Method};

use crate::faults::{Faults, Injected, decide, retry_after_value};
use crate::query::Query;
use crate::{Provider, Shared, clerk_api, stripe_api};

/// What an API handler answered, before faults touch it.
#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub status: u16,
    pub body: String,
    /// The route template, for the counters.
    pub route: &'static str,
    /// The kind, when this is a list endpoint.
    pub listing: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiResponse {
    pub(crate) fn json(status: u16, body: String) -> Self {
        ApiResponse {
            status,
            body,
            route: "",
            listing: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn route(mut self, r: &'static str) -> Self {
        self.route = r;
        self
    }

    pub(crate) fn listing(mut self, kind: &'static str) -> Self {
        self.listing = Some(kind);
        self
    }

    fn header(mut self, k: &'static str, v: String) -> Self {
        self.headers.push((k, v));
        self
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (req, body) = req.into_parts();
    // Only Stripe's webhook endpoint POSTs have a body (a small form).
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return plain(413, "the simulator reads request bodies of at most 1 MiB");
    };
    let body = String::from_utf8_lossy(&body);
    let path = req.uri.path().to_string();
    let (provider, rest) = if let Some(r) = path.strip_prefix("/stripe") {
        (Provider::Stripe, r.to_string())
    } else if let Some(r) = path.strip_prefix("/clerk") {
        (Provider::Clerk, r.to_string())
    } else {
        return plain(404, "the simulator serves /stripe/v1/… and /clerk/v1/…");
    };
    let query = req.uri.query().unwrap_or("").to_string();
    let key = format!("{} {} {rest}?{query}", provider.name(), req.method);
    let faults = s.faults.lock().expect("lock")[provider.index()].clone();
    let n = s.fault_state[provider.index()].occurrence(&key);
    let (injected, latency) = decide(&faults, s.seed, &key, n);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answer = answer(
        &s,
        provider,
        &req.method,
        &req.headers,
        (&rest, &query, &body),
        injected,
        &faults,
    );
    let (resp, fault) = answer;
    s.count(provider, resp.route, fault);
    let cut = (resp.status == 200)
        .then_some(injected)
        .flatten()
        .filter(|i| matches!(i, Injected::Truncated | Injected::Cut));
    if let Some(c) = cut {
        s.count(provider, "", Some(c.name()));
    }
    build(provider, &s, resp, cut)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for unix ms.
fn http_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn plain(status: u16, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain")
        .body(Body::from(text.to_string()))
        .expect("response")
}

fn build(provider: Provider, s: &Shared, resp: ApiResponse, cut: Option<Injected>) -> Response {
    // The providers' clock (skewed if set), as real servers send it.
    let now_ms = s.world.read().expect("lock").now_ms();
    let mut b = Response::builder()
        .status(resp.status)
        .header(CONTENT_TYPE, "application/json")
        .header(DATE, http_date(now_ms));
    if provider == Provider::Stripe {
        b = b
            .header("Request-Id", s.request_id())
            .header("Stripe-Version", s.api_version.as_str());
    }
    for (k, v) in &resp.headers {
        b = b.header(*k, v);
    }
    let body = resp.body.into_bytes();
    let out = match cut {
        Some(Injected::Truncated) => {
            let half = body[..body.len() / 2].to_vec();
            b.header(CONTENT_LENGTH, half.len()).body(Body::from(half))
        }
        Some(Injected::Cut) => {
            let total = body.len();
            let half = Bytes::from(body[..total / 2].to_vec());
            // Send the first half, let it reach the wire, then fail the body:
            // hyper closes the connection short of the announced length.
            let chunks = futures::stream::unfold(Some(half), |state| async move {
                match state {
                    Some(half) => Some((Ok::<Bytes, std::io::Error>(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionAborted,
                                "simulated connection cut",
                            )),
                            None,
                        ))
                    }
                }
            });
            b.header(CONTENT_LENGTH, total)
                .body(Body::from_stream(chunks))
        }
        _ => b.body(Body::from(body)),
    };
    out.expect("response")
}

fn error_for(provider: Provider, status: u16, code: &str, message: &str) -> ApiResponse {
    match provider {
        Provider::Stripe => {
            let kind = if status >= 500 {
                "api_error"
            } else {
                "invalid_request_error"
            };
            let code = (!code.is_empty()).then_some(code);
            stripe_api::error(status, kind, code, None, message)
        }
        Provider::Clerk => {
            let code = if code.is_empty() {
                "internal_clerk_error"
            } else {
                code
            };
            clerk_api::error(status, code, message, message)
        }
    }
}

fn rate_limited(provider: Provider, retry_after: Option<Duration>) -> ApiResponse {
    let code = match provider {
        Provider::Stripe => "rate_limit",
        Provider::Clerk => "too_many_requests",
    };
    let message = match provider {
        Provider::Stripe => {
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
        }
        Provider::Clerk => "Too many requests, please try again later.",
    };
    let r = error_for(provider, 429, code, message);
    match retry_after {
        Some(d) => r.header("Retry-After", retry_after_value(d)),
        None => r,
    }
}

fn authorized(provider: Provider, s: &Shared, headers: &HeaderMap) -> bool {
    let want = match provider {
        Provider::Stripe => &s.stripe_key,
        Provider::Clerk => &s.clerk_key,
    };
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k.trim() == want)
}

/// The answer to one request (path, query string and body) and the fault
/// counter it hit, if any.
fn answer(
    s: &Shared,
    provider: Provider,
    method: &Method,
    headers: &HeaderMap,
    (rest, query, body): (&str, &str, &str),
    injected: Option<Injected>,
    faults: &Faults,
) -> (ApiResponse, Option<&'static str>) {
    if provider == Provider::Stripe {
        for h in ["stripe-version", "stripe-account"] {
            if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
                s.saw_header(h, v);
            }
        }
    }
    if !authorized(provider, s, headers) {
        let r = match provider {
            Provider::Stripe => stripe_api::error(
                401,
                "invalid_request_error",
                None,
                None,
                "Invalid API Key provided. You did not provide a valid secret key (Authorization: Bearer sk_test_…).",
            ),
            Provider::Clerk => clerk_api::error(
                401,
                "authentication_invalid",
                "Invalid authentication",
                "Unable to authenticate the request, you need to supply an active API key",
            ),
        };
        return (r.route("unauthorized"), Some("401"));
    }
    // Writes: Stripe's webhook endpoints only.
    let post = provider == Provider::Stripe && method == Method::POST;
    if method != Method::GET && !post {
        let r = error_for(
            provider,
            405,
            "",
            &format!(
                "the simulator serves GET (and Stripe's webhook endpoint POSTs) only, not {method}"
            ),
        );
        return (r.route("not GET"), None);
    }
    let fs = &s.fault_state[provider.index()];
    if let Some(budget) = &faults.rate_budget
        && let Err(wait) = fs.take_token(budget)
    {
        let secs = Duration::from_secs(wait.as_secs_f64().ceil().max(1.0) as u64);
        return (
            rate_limited(provider, Some(secs)).route("rate budget"),
            Some("rate_budget"),
        );
    }
    match injected {
        Some(i @ Injected::RateLimited { retry_after }) => {
            return (
                rate_limited(provider, retry_after).route("fault"),
                Some(i.name()),
            );
        }
        Some(i @ Injected::LockTimeout) => {
            let r = error_for(
                provider,
                429,
                "lock_timeout",
                "This object cannot be accessed right now because another API request or Stripe process is currently accessing it.",
            );
            return (r.route("fault"), Some(i.name()));
        }
        Some(i @ Injected::Conflict) => {
            let r = error_for(
                provider,
                409,
                "conflict",
                "A conflicting request is in progress.",
            );
            return (r.route("fault"), Some(i.name()));
        }
        Some(
            i @ Injected::Server {
                status,
                should_retry,
            },
        ) => {
            let mut r = error_for(provider, status, "", "An unknown error occurred.");
            if provider == Provider::Stripe
                && let Some(b) = should_retry
            {
                r = r.header("Stripe-Should-Retry", b.to_string());
            }
            return (r.route("fault"), Some(i.name()));
        }
        _ => {}
    }
    let q = Query::parse(Some(query));
    let resp = if post {
        let form = Query::parse(Some(body));
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        let mut w = s.world.write().expect("lock");
        stripe_api::handle_post(&mut w, rest, &form, key)
    } else {
        let w = s.world.read().expect("lock");
        match provider {
            Provider::Stripe => stripe_api::handle(&w, rest, &q),
            Provider::Clerk => clerk_api::handle(&w, rest, &q),
        }
    };
    if let (Some(kind), 200) = (resp.listing, resp.status)
        && let Some(lf) = &faults.list_failure
    {
        if fs.list_fails(lf, kind) {
            let r = error_for(provider, lf.status, "", "Listing failed (simulated).");
            return (r.route(resp.route), Some("list_failure"));
        }
        fs.list_served(Some(lf), kind);
    }
    (resp, None)
}
