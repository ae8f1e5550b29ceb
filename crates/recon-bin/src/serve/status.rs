//! The status page under `/status`: freshness per kind, runs, webhook
//! outcomes and drift over time as server-side SVG charts, open alerts, and
//! one run's drift records field by field.
//!
//! # Guarantees
//! - Mounted only when `RECON_ADMIN_TOKEN` is set (else 404).
//! - A browser logs in once with the token (`POST /status/login`) and gets
//!   a random session in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//!   behind HTTPS); the token is never put in a cookie, a URL or a page.
//!   A page without a session redirects to the login.
//! - A wrong token answers 401. Login attempts from one client address are
//!   rate limited (5 at once, then one per 2 s; beyond that 429 with
//!   `Retry-After`, without the token being checked).
//! - Pages only read. The one action, "reconcile this object", is a POST
//!   that needs the session's CSRF token in the form (and, when the browser
//!   sends `Origin`, this server's own origin); the cookie is never sent
//!   cross-site anyway.
//! - Every value shown comes through the template's escaping (provider
//!   data is untrusted); no script runs on the page (`script-src 'none'`).
//!
//! Charts are SVG drawn here: a few polylines and rectangles. Rust's chart
//! crates measure text with a font stack (plotters needs a font backend
//! even for SVG), and a JavaScript library would need the page to run
//! scripts.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac as _};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use rand::RngCore;
use recon_core::diff::changed_fields;
use recon_core::store::{DriftQuery, LastSweep};
use recon_core::{DriftRecord, RunRecord, RunStatus, now_ms};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Shared;
use super::admin::AdminToken;
use super::metrics::Outcome;

/// The session cookie's name.
pub const COOKIE: &str = "recon_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Runs read for the charts: the newest this many.
pub const RUNS_READ: u32 = 5_000;
/// Drift records shown on a run's page.
const RUN_DRIFT_SHOWN: u32 = 500;

/// One logged-in browser.
#[derive(Clone)]
struct Session {
    nonce: String,
    expires_at: i64,
    csrf: String,
}

/// Login state: the token, the session key, the attempt limiter.
///
/// Sessions are signed, not stored: the cookie is `<expiry>.<nonce>.<MAC>`,
/// the MAC an HMAC-SHA-256 under a key derived from the admin token. Every
/// replica sharing the token accepts it (a load balancer needs no sticky
/// sessions), and changing the token ends every session. A logout revokes
/// the session on the replica that served it and clears the browser's
/// cookie.
pub struct StatusAuth {
    token: AdminToken,
    key: [u8; 32],
    /// Nonces logged out here, until their expiry.
    revoked: Mutex<HashMap<String, i64>>,
    attempts: DefaultKeyedRateLimiter<IpAddr>,
}

type Mac = Hmac<Sha256>;

impl StatusAuth {
    /// Login with `token`.
    pub fn new(token: AdminToken) -> StatusAuth {
        let quota = Quota::with_period(Duration::from_secs(2))
            .expect("a non-zero period")
            .allow_burst(NonZeroU32::new(5).expect("non-zero"));
        StatusAuth {
            key: token.derive("recon status page sessions v1"),
            token,
            revoked: Mutex::new(HashMap::new()),
            attempts: RateLimiter::keyed(quota),
        }
    }

    fn mac(&self, what: &str) -> Mac {
        let mut m = Mac::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        m.update(what.as_bytes());
        m
    }

    fn csrf(&self, nonce: &str) -> String {
        hex(&self.mac(&format!("csrf|{nonce}")).finalize().into_bytes())
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let value = cookie(headers, COOKIE)?;
        let mut parts = value.splitn(3, '.');
        let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expires_at: i64 = expires.parse().ok()?;
        let mac = unhex(mac)?;
        self.mac(&format!("session|{expires_at}|{nonce}"))
            .verify_slice(&mac)
            .ok()?;
        if expires_at <= now_ms() {
            return None;
        }
        let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        if revoked.contains_key(nonce) {
            return None;
        }
        Some(Session {
            nonce: nonce.to_string(),
            expires_at,
            csrf: self.csrf(nonce),
        })
    }

    /// A new session's cookie value: its expiry, a nonce of 32 bytes from
    /// the OS-seeded CSPRNG, and their MAC.
    fn open(&self) -> String {
        let expires_at = now_ms() + SESSION_TTL.as_millis() as i64;
        let nonce = random_hex();
        let mac = self
            .mac(&format!("session|{expires_at}|{nonce}"))
            .finalize()
            .into_bytes();
        format!("{expires_at}.{nonce}.{}", hex(&mac))
    }

    fn close(&self, session: &Session) {
        let now = now_ms();
        let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp > now);
        revoked.insert(session.nonce.clone(), session.expires_at);
    }

    /// Whether `ip` may try a token now; else how long until it may.
    fn attempt(&self, ip: IpAddr) -> Result<(), Duration> {
        // Forget clients whose budget is full again, so the map stays as
        // small as the set of recent clients.
        if self.attempts.len() > 1_000 {
            self.attempts.retain_recent();
        }
        self.attempts
            .check_key(&limit_key(ip))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The address a login budget belongs to: an IPv6 client by its /64 (one
/// host commonly holds a whole /64), an IPv4 one (also mapped into IPv6) by
/// itself.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a state-changing request comes from this server's own pages:
/// no `Origin` (not a browser's cross-site form), or one whose host is the
/// request's `Host`, or the origin of `RECON_PUBLIC_URL` (behind a proxy
/// that rewrites `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let public = crate::config::env("RECON_PUBLIC_URL");
    same_origin_as(headers, public.as_deref())
}

fn same_origin_as(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().map(|o| o.trim_end_matches('/')) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    if matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h)) {
        return true;
    }
    // The public URL's scheme and authority, without its path.
    public_url
        .and_then(|u| {
            let (scheme, rest) = u.split_once("://")?;
            let authority = rest.split(['/', '?', '#']).next()?;
            Some(format!("{scheme}://{authority}"))
        })
        .is_some_and(|p| p.eq_ignore_ascii_case(origin))
}

fn csrf_ok(session: &Session, presented: &str) -> bool {
    session.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// The status routes (full paths, merged into the server's router).
pub fn router(auth: StatusAuth) -> Router<Shared> {
    Router::new()
        .route("/status", get(overview))
        .route("/status/login", get(login_page).post(login))
        .route("/status/logout", post(logout))
        .route("/status/runs/{id}", get(run_page))
        .route("/status/reconcile", post(reconcile))
        .layer(Extension(Arc::new(auth)))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with the
    // page's own forms, which the origin check then refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

type Auth = Extension<Arc<StatusAuth>>;

fn client(req_ext: Option<&ConnectInfo<SocketAddr>>) -> IpAddr {
    req_ext.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Whether the session cookie should carry `Secure`: the request came
/// through HTTPS (a proxy says so) or the public URL is HTTPS.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        || crate::config::env("RECON_PUBLIC_URL").is_some_and(|u| u.starts_with("https://"))
}

// ---------------------------------------------------------------- login

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · recon" }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
}

const CSS: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:12px 20px;color:#1b1f24;background:#fafbfc}
h1{font-size:20px;margin:4px 0 12px}h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #d8dee4;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}.num{text-align:right}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #d8dee4;padding:8px}figcaption{font-weight:600;margin-bottom:4px}
.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;gap:10px;font-size:12px}
svg text{font:10px sans-serif;fill:#57606a}code,pre{font:12px ui-monospace,monospace}pre{margin:0;white-space:pre-wrap}
nav{display:flex;gap:12px;align-items:center}nav form{margin-left:auto}.muted{color:#57606a}
.login{max-width:360px;margin:80px auto;background:#fff;border:1px solid #d8dee4;padding:20px}
input[type=password]{width:100%;box-sizing:border-box;padding:6px;margin:6px 0 10px}.err{color:#cf222e}
";

fn login_form(message: Option<&str>) -> Markup {
    page(
        "Log in",
        html! {
            div.login {
                h1 { "recon status" }
                @if let Some(m) = message { p.err role="alert" { (m) } }
                form method="post" action="/status/login" {
                    label for="token" { "Admin token (RECON_ADMIN_TOKEN)" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

async fn login_page(auth: Auth, headers: HeaderMap) -> Response {
    if auth.session(&headers).is_some() {
        return Redirect::to("/status").into_response();
    }
    login_form(None).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    auth: Auth,
    headers: HeaderMap,
    conn: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = client(conn.as_ref().map(|e| &e.0));
    if let Err(wait) = auth.attempt(ip) {
        let secs = wait.as_secs().max(1);
        tracing::warn!(client = %ip, "status page: too many login attempts");
        let mut res = (
            StatusCode::TOO_MANY_REQUESTS,
            login_form(Some(&format!(
                "Too many attempts from this address; try again in {secs} s."
            ))),
        )
            .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    if !same_origin(&headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), host = ?headers.get(header::HOST), "status page: cross-origin login refused");
        return (StatusCode::FORBIDDEN, "cross-origin login refused\n").into_response();
    }
    if !auth.token.matches(&form.token) {
        tracing::warn!(client = %ip, "status page: wrong admin token");
        return (StatusCode::UNAUTHORIZED, login_form(Some("Wrong token."))).into_response();
    }
    let value = auth.open();
    let mut cookie = format!(
        "{COOKIE}={value}; Path=/status; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if secure(&headers) {
        cookie.push_str("; Secure");
    }
    let mut res = Redirect::to("/status").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex and ASCII"),
    );
    res
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(auth: Auth, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let Some(session) = auth.session(&headers) else {
        return Redirect::to("/status/login").into_response();
    };
    if !same_origin(&headers) || !csrf_ok(&session, &form.csrf) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token\n").into_response();
    }
    auth.close(&session);
    let mut res = Redirect::to("/status/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "recon_session=; Path=/status; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    res
}

// ---------------------------------------------------------------- overview

/// The time window the charts cover, and its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    name: &'static str,
    bucket_ms: i64,
    buckets: usize,
}

impl Window {
    const ALL: [Window; 3] = [
        Window {
            name: "1h",
            bucket_ms: 5 * 60_000,
            buckets: 12,
        },
        Window {
            name: "24h",
            bucket_ms: 3_600_000,
            buckets: 24,
        },
        Window {
            name: "7d",
            bucket_ms: 6 * 3_600_000,
            buckets: 28,
        },
    ];

    fn parse(s: Option<&str>) -> Window {
        Window::ALL
            .into_iter()
            .find(|w| Some(w.name) == s)
            .unwrap_or(Window::ALL[1])
    }

    fn span(&self) -> i64 {
        self.bucket_ms * self.buckets as i64
    }

    /// Bucket index of `t` in the window ending at `end` (aligned to the
    /// bucket width so the page is stable between reloads).
    fn index(&self, end: i64, t: i64) -> Option<usize> {
        let start = end - self.span();
        (t >= start && t < end).then(|| ((t - start) / self.bucket_ms) as usize)
    }

    fn end(&self, now: i64) -> i64 {
        (now.div_euclid(self.bucket_ms) + 1) * self.bucket_ms
    }

    fn labels(&self, end: i64) -> Vec<String> {
        let start = end - self.span();
        let fmt = if self.bucket_ms >= 3_600_000 * 6 {
            "%m-%d %H:%M"
        } else {
            "%H:%M"
        };
        (0..self.buckets)
            .map(|i| time(start + i as i64 * self.bucket_ms, fmt))
            .collect()
    }
}

fn time(ms: i64, fmt: &str) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(fmt).to_string())
        .unwrap_or_default()
}

fn when(ms: i64) -> String {
    time(ms, "%Y-%m-%d %H:%M:%SZ")
}

/// `95s`, `12m`, `3h 5m`, `2d 4h`.
pub fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 if s % 3600 < 60 => format!("{}h", s / 3600),
        7_200..=172_799 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ if s % 86_400 < 3600 => format!("{}d", s / 86_400),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[derive(Deserialize)]
struct OverviewQuery {
    window: Option<String>,
}

/// A kind's freshness.
struct Fresh {
    provider: String,
    kind: String,
    account: Option<String>,
    last: Option<i64>,
    every_ms: Option<i64>,
}

impl Fresh {
    /// `ok`, `stale` (more than twice the schedule's period since the last
    /// successful sweep), `never`, or `unscheduled`.
    fn state(&self, now: i64) -> &'static str {
        match (self.last, self.every_ms) {
            (None, Some(_)) => "never",
            (Some(t), Some(every)) if now - t > 2 * every => "stale",
            (_, None) => "unscheduled",
            _ => "ok",
        }
    }
}

/// The longest gap between a cron expression's times over the coming
/// fortnight (a weekday schedule's is the weekend), at most 64 of them.
fn period(expr: &str, now: i64) -> Option<i64> {
    let cron = super::scheduler::parse_cron(expr).ok()?;
    let from = chrono::DateTime::from_timestamp_millis(now)?;
    let horizon = from + chrono::Duration::days(15);
    let mut prev = cron.find_next_occurrence(&from, false).ok()?;
    let mut longest = 0;
    for _ in 0..64 {
        let Ok(next) = cron.find_next_occurrence(&prev, false) else {
            break;
        };
        longest = longest.max((next - prev).num_milliseconds());
        if next > horizon {
            break;
        }
        prev = next;
    }
    (longest > 0).then_some(longest)
}

fn freshness(s: &Shared, last: &[LastSweep], now: i64) -> Vec<Fresh> {
    let mut out = Vec::new();
    for p in &s.app.providers {
        let schedule = s.app.config.schedule(p.name);
        for kind in p.provider.kinds() {
            let every_ms = schedule.get(*kind).and_then(|e| period(e, now));
            // The account this server sweeps; another one's history (an
            // account configured before) is not this kind's freshness.
            let account = p.provider.account();
            out.push(Fresh {
                provider: p.name.to_string(),
                kind: kind.to_string(),
                account: (account != "default").then(|| account.to_string()),
                last: last
                    .iter()
                    .find(|l| l.provider == p.name && l.kind == *kind && l.account == account)
                    .map(|l| l.finished_at),
                every_ms,
            });
        }
    }
    out
}

/// An open alert: the latest finished run of a kind alerts, or a kind is
/// stale.
struct OpenAlert {
    what: String,
    why: String,
    run: Option<String>,
    at: i64,
}

fn open_alerts(runs: &[RunRecord], fresh: &[Fresh], threshold: f64, now: i64) -> Vec<OpenAlert> {
    let mut latest: BTreeMap<(&str, &str, &str), &RunRecord> = BTreeMap::new();
    // A dry run fixes nothing: it neither raises nor clears an alert.
    for r in runs
        .iter()
        .filter(|r| r.status != RunStatus::Running && !r.dry_run)
    {
        // Newest first: keep the first seen.
        latest
            .entry((&r.provider, &r.account, &r.kind))
            .or_insert(r);
    }
    let mut out: Vec<OpenAlert> = latest
        .values()
        .filter_map(|r| {
            let why = crate::alerts::reason(r, threshold)?;
            let detail = match &r.error {
                Some(e) => format!("{why}: {e}"),
                None if why == "drift_above_threshold" => format!(
                    "{why}: {:.1}% of {} compared differed",
                    r.mismatch_ratio * 100.0,
                    r.counts.compared
                ),
                None => why.to_string(),
            };
            Some(OpenAlert {
                what: format!("{} {} ({})", r.provider, r.kind, r.run_kind.as_str()),
                why: detail,
                run: Some(r.id.clone()),
                at: r.finished_at.unwrap_or(r.started_at),
            })
        })
        .collect();
    for f in fresh.iter().filter(|f| f.state(now) == "stale") {
        out.push(OpenAlert {
            what: format!("{} {}", f.provider, f.kind),
            why: format!(
                "stale: last successful sweep {} ago, scheduled every {}",
                age(now - f.last.unwrap_or(now)),
                age(f.every_ms.unwrap_or(0))
            ),
            run: None,
            at: f.last.unwrap_or(now),
        });
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.at));
    out
}

async fn overview(
    State(s): State<Shared>,
    auth: Auth,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let Some(session) = auth.session(&headers) else {
        return Redirect::to("/status/login").into_response();
    };
    let w = Window::parse(q.window.as_deref());
    let now = now_ms();
    let end = w.end(now);
    let store = &s.app.store;
    let since = end - w.span();
    let in_window = DriftQuery {
        since: Some(since),
        limit: 1,
        ..DriftQuery::default()
    };
    let (runs, last, counts) = match tokio::try_join!(
        store.runs(RUNS_READ),
        store.last_successful_sweeps(),
        store.drift_counts(&in_window),
    ) {
        Ok(x) => x,
        Err(e) => return store_error(&e),
    };
    let fresh = freshness(&s, &last, now);
    let alerts = open_alerts(&runs, &fresh, s.app.config.alerts.mismatch_threshold, now);
    let labels = w.labels(end);

    // Runs per bucket.
    let mut ok = vec![0.0; w.buckets];
    let mut failed = vec![0.0; w.buckets];
    let mut compared = vec![0.0; w.buckets];
    let mut drift = vec![0.0; w.buckets];
    let mut duration = vec![0.0f64; w.buckets];
    let mut ratio = vec![0.0f64; w.buckets];
    for r in &runs {
        let Some(i) = w.index(end, r.started_at) else {
            continue;
        };
        match r.status {
            RunStatus::Succeeded => ok[i] += 1.0,
            RunStatus::Running => {}
            _ => failed[i] += 1.0,
        }
        compared[i] += r.counts.compared as f64;
        drift[i] += r.counts.drift as f64;
        if let Some(f) = r.finished_at {
            duration[i] = duration[i].max((f - r.started_at) as f64 / 1000.0);
        }
        ratio[i] = ratio[i].max(r.mismatch_ratio * 100.0);
    }
    let truncated =
        runs.len() as u32 == RUNS_READ && runs.last().is_some_and(|r| r.started_at > since);

    // Webhook outcomes per bucket.
    let wh = s.metrics.timeline.buckets(end, w.bucket_ms, w.buckets);
    let webhook_series: Vec<Series> = Outcome::ALL
        .iter()
        .enumerate()
        .map(|(i, o)| Series {
            name: o.as_str().to_string(),
            color: COLORS[i % COLORS.len()],
            values: wh.iter().map(|c| c[i] as f64).collect(),
        })
        .collect();

    // Drift by cause.
    let mut by_cause: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &counts {
        *by_cause.entry(c.cause.as_str()).or_default() += c.count;
    }
    let mut causes: Vec<(&str, u64)> = by_cause.into_iter().collect();
    causes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));

    let body = html! {
        (nav(&session))
        p.muted {
            "Charts: the last " (w.name) " in buckets of " (age(w.bucket_ms)) ", up to " (when(end)) ". "
            @for other in Window::ALL {
                @if other == w { b { (other.name) } " " } @else { a href={"/status?window=" (other.name)} { (other.name) } " " }
            }
        }
        h2 { "Open alerts" }
        @if alerts.is_empty() {
            p.ok #alerts { "None." }
        } @else {
            table #alerts {
                tr { th { "what" } th { "why" } th { "since" } th { "run" } }
                @for a in &alerts {
                    tr {
                        td { (a.what) } td.bad { (a.why) } td { (when(a.at)) }
                        td { @if let Some(id) = &a.run { a href={"/status/runs/" (id)} { code { (short(id)) } } } }
                    }
                }
            }
        }
        h2 { "Freshness" }
        table #freshness {
            tr { th { "provider" } th { "kind" } th { "last successful sweep" } th { "age" } th { "schedule" } th { "state" } }
            @for f in &fresh {
                @let state = f.state(now);
                tr data-state=(state) {
                    td { (f.provider) } td { (f.kind) @if let Some(a) = &f.account { " (" (a) ")" } }
                    td { (f.last.map(when).unwrap_or_else(|| "never".into())) }
                    td.num { (f.last.map(|t| age(now - t)).unwrap_or_default()) }
                    td { (f.every_ms.map(|e| format!("every {}", age(e))).unwrap_or_else(|| "not scheduled".into())) }
                    td class=(match state { "ok" => "ok", "stale" | "never" => "bad", _ => "muted" }) { (state) }
                }
            }
        }
        h2 { "Over time" }
        @if truncated {
            p.warn { "More than " (RUNS_READ) " runs in this window: the run charts show the newest " (RUNS_READ) "." }
        }
        div.charts {
            (chart("runs", "Runs", Draw::Bars, &labels, &[
                Series::new("succeeded", "#2da44e", ok),
                Series::new("failed", "#cf222e", failed),
            ]))
            (chart("objects", "Objects compared and drift found", Draw::Lines, &labels, &[
                Series::new("compared", "#0969da", compared),
                Series::new("drift", "#bf8700", drift),
            ]))
            (chart("duration", "Longest run (seconds)", Draw::Lines, &labels, &[
                Series::new("duration_s", "#8250df", duration),
            ]))
            (chart("drift_ratio", "Highest drift ratio (% of compared)", Draw::Lines, &labels, &[
                Series::new("drift_pct", "#bc4c00", ratio),
            ]))
            (chart("webhooks", "Webhook outcomes (this process, at most a day)", Draw::Bars, &labels, &webhook_series))
            (causes_chart(&causes))
        }
        h2 { "Drift in the last " (w.name) }
        @if counts.is_empty() { p.ok { "None." } } @else {
            table #drift-counts {
                tr { th { "provider" } th { "kind" } th { "cause" } th.num { "records" } }
                @for c in counts.iter().take(50) {
                    tr { td { (c.provider) } td { (c.kind) } td { (c.cause.as_str()) } td.num { (c.count) } }
                }
            }
        }
        h2 { "Recent runs" }
        (runs_table(runs.iter().take(25)))
    };
    page("Status", body).into_response()
}

fn short(id: &str) -> &str {
    id.get(..13).unwrap_or(id)
}

fn nav(session: &Session) -> Markup {
    html! {
        nav {
            h1 { a href="/status" { "recon status" } }
            form method="post" action="/status/logout" {
                input type="hidden" name="csrf" value=(session.csrf);
                button type="submit" { "Log out" }
            }
        }
    }
}

fn runs_table<'a>(runs: impl Iterator<Item = &'a RunRecord>) -> Markup {
    html! {
        table #runs {
            tr {
                th { "run" } th { "provider" } th { "kind" } th { "type" } th { "status" } th { "started" }
                th.num { "took" } th.num { "compared" } th.num { "drift" } th { "error" }
            }
            @for r in runs {
                tr {
                    td { a href={"/status/runs/" (r.id)} { code { (short(&r.id)) } } }
                    td { (r.provider) } td { (r.kind) } td { (r.run_kind.as_str()) @if r.dry_run { " (dry)" } }
                    td class=(if r.status == RunStatus::Succeeded { "ok" } else if r.status == RunStatus::Running { "muted" } else { "bad" }) { (r.status.as_str()) }
                    td { (when(r.started_at)) }
                    td.num { (r.finished_at.map(|f| age(f - r.started_at)).unwrap_or_default()) }
                    td.num { (r.counts.compared) } td.num { (r.counts.drift) }
                    td { (r.error.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

fn store_error(e: &recon_core::Error) -> Response {
    tracing::warn!(error = %e, "status page: store unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        page(
            "Unavailable",
            html! { p.err { "The database did not answer; the page will work again when it does." } },
        ),
    )
        .into_response()
}

// ---------------------------------------------------------------- one run

async fn run_page(
    State(s): State<Shared>,
    auth: Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(session) = auth.session(&headers) else {
        return Redirect::to("/status/login").into_response();
    };
    let of_run = DriftQuery {
        run_id: Some(id.clone()),
        limit: RUN_DRIFT_SHOWN,
        ..DriftQuery::default()
    };
    let (run, drift) = match tokio::try_join!(s.app.store.run(&id), s.app.store.drift(&of_run)) {
        Ok(x) => x,
        Err(e) => return store_error(&e),
    };
    let Some(run) = run else {
        return (
            StatusCode::NOT_FOUND,
            page(
                "No such run",
                html! { (nav(&session)) p.err { "No run " code { (id) } "." } },
            ),
        )
            .into_response();
    };
    let can_fix = s.app.provider(&run.provider).is_ok();
    let body = html! {
        (nav(&session))
        h2 { "Run " code { (run.id) } }
        (runs_table(std::iter::once(&run)))
        p.muted {
            "listed " (run.counts.listed) ", inserted " (run.counts.inserted) ", updated " (run.counts.updated)
            ", deleted " (run.counts.deleted) ", stale skipped " (run.counts.stale_skipped)
            ", events applied " (run.counts.events_applied) ", missed " (run.counts.missed)
        }
        h2 { "Drift records (" (drift.len()) @if drift.len() as u32 == RUN_DRIFT_SHOWN { ", the newest " (RUN_DRIFT_SHOWN) } ")" }
        @if drift.is_empty() { p.ok { "None." } } @else {
            table #drift {
                tr { th { "object" } th { "kind" } th { "cause" } th { "via" } th { "detected" } th { "fields" } @if can_fix { th {} } }
                @for d in &drift { (drift_row(d, &session, can_fix)) }
            }
        }
    };
    page("Run", body).into_response()
}

fn drift_row(d: &DriftRecord, session: &Session, can_fix: bool) -> Markup {
    // A deletion's "after" is the provider's tombstone: every field would
    // read "→ (absent)". The cause says it all.
    let changes = if d.cause == recon_core::DriftCause::Deleted {
        Vec::new()
    } else {
        changed_fields(d.before.as_ref(), d.after.as_ref())
    };
    html! {
        tr.drift data-object=(d.key.id) {
            td { code { (d.key.id) } }
            td { (d.key.kind) }
            td { (d.cause.as_str()) }
            td { (d.source.as_str()) }
            td { (when(d.detected_at)) }
            td {
                @if changes.is_empty() {
                    span.muted { (match (&d.before, &d.after) {
                        _ if d.cause == recon_core::DriftCause::Deleted => "live in the mirror → deleted by the provider",
                        (None, Some(_)) => "absent from the mirror → present",
                        (Some(_), None) => "present in the mirror → gone",
                        _ => "no field-level change recorded",
                    }) }
                } @else {
                    pre.fields { @for c in &changes { (c.to_string()) "\n" } }
                }
            }
            @if can_fix {
                td {
                    @if !d.key.kind.contains(':') {
                        form method="post" action="/status/reconcile" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            input type="hidden" name="provider" value=(d.key.provider);
                            input type="hidden" name="kind" value=(d.key.kind);
                            input type="hidden" name="id" value=(d.key.id);
                            button type="submit" title="Fetch it from the provider and fix the mirror" { "Reconcile" }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct ReconcileForm {
    csrf: String,
    provider: String,
    kind: Option<String>,
    id: String,
}

async fn reconcile(
    State(s): State<Shared>,
    auth: Auth,
    headers: HeaderMap,
    Form(form): Form<ReconcileForm>,
) -> Response {
    let Some(session) = auth.session(&headers) else {
        return (StatusCode::FORBIDDEN, "log in first\n").into_response();
    };
    if !same_origin(&headers) || !csrf_ok(&session, &form.csrf) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token\n").into_response();
    }
    let result = match s.app.provider(&form.provider) {
        Ok(entry) => {
            entry
                .engine
                .reconcile_one(
                    form.kind.as_deref().filter(|k| !k.is_empty()),
                    &form.id,
                    false,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let (status, shown) = match result {
        Ok(o) => (
            StatusCode::OK,
            serde_json::to_string_pretty(&o).unwrap_or_default(),
        ),
        Err(e)
            if e.kind() == recon_core::ErrorKind::Config
                || e.kind() == recon_core::ErrorKind::InvalidInput =>
        {
            (StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    };
    tracing::info!(provider = %form.provider, id = %form.id, ok = status.is_success(), "status page: reconcile one object");
    (
        status,
        page(
            "Reconcile",
            html! {
                (nav(&session))
                h2 { "Reconcile " code { (form.provider) " " (form.id) } }
                pre #result { (shown) }
                p { a href="/status" { "Back to the status page" } }
            },
        ),
    )
        .into_response()
}

// ---------------------------------------------------------------- charts

const COLORS: [&str; 6] = [
    "#2da44e", "#0969da", "#bf8700", "#cf222e", "#6e7781", "#8250df",
];

/// One series of a chart.
pub struct Series {
    name: String,
    color: &'static str,
    values: Vec<f64>,
}

impl Series {
    fn new(name: &str, color: &'static str, values: Vec<f64>) -> Series {
        Series {
            name: name.to_string(),
            color,
            values,
        }
    }
}

/// How a chart draws its series.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// One line each.
    Lines,
    /// Stacked bars.
    Bars,
}

const W: f64 = 600.0;
const H: f64 = 170.0;
const LEFT: f64 = 46.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

/// The smallest 1, 2 or 5 × 10ⁿ at least `v` (1 for 0).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// An SVG chart: `data-chart` names it, each series is a `g` with
/// `data-series` and `data-total`, each point or bar has a tooltip.
pub fn chart(id: &str, title: &str, draw: Draw, labels: &[String], series: &[Series]) -> Markup {
    let n = labels.len().max(1);
    let max = if draw == Draw::Bars {
        (0..n)
            .map(|i| {
                series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .fold(0.0, f64::max)
    } else {
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max)
    };
    let top = nice(max);
    let plot_w = W - LEFT - 6.0;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let mut base = vec![0.0; n];
    let groups: Vec<Markup> = series
        .iter()
        .map(|s| {
            let total: f64 = s.values.iter().sum();
            let body = match draw {
                Draw::Lines => {
                    let points: Vec<String> = s
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                        .collect();
                    html! {
                        polyline fill="none" stroke=(s.color) stroke-width="1.5" points=(points.join(" ")) {}
                        @for (i, v) in s.values.iter().enumerate() {
                            @if *v > 0.0 {
                                circle.point cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="2.5" fill=(s.color) data-value=(num(*v)) {
                                    title { (labels.get(i).map(String::as_str).unwrap_or("")) " " (s.name) ": " (num(*v)) }
                                }
                            }
                        }
                    }
                }
                Draw::Bars => html! {
                    @for (i, v) in s.values.iter().enumerate() {
                        @if *v > 0.0 {
                            @let y0 = y(base[i]);
                            @let y1 = y(base[i] + v);
                            rect.bar x=(format!("{:.1}", LEFT + slot * i as f64 + slot * 0.1)) y=(format!("{y1:.1}"))
                                width=(format!("{:.1}", slot * 0.8)) height=(format!("{:.1}", y0 - y1)) fill=(s.color) data-value=(num(*v)) {
                                title { (labels.get(i).map(String::as_str).unwrap_or("")) " " (s.name) ": " (num(*v)) }
                            }
                        }
                    }
                },
            };
            if draw == Draw::Bars {
                for (b, v) in base.iter_mut().zip(&s.values) {
                    *b += v;
                }
            }
            html! { g.series data-series=(s.name) data-total=(num(total)) { (body) } }
        })
        .collect();
    let ticks = [0.0, top / 2.0, top];
    let xl: Vec<usize> = if n > 2 {
        vec![0, n / 2, n - 1]
    } else {
        (0..n).collect()
    };
    html! {
        figure {
            figcaption { (title) }
            svg data-chart=(id) xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) width="100%" role="img" aria-label=(title) {
                @for t in ticks {
                    line x1=(LEFT) x2=(W - 6.0) y1=(format!("{:.1}", y(t))) y2=(format!("{:.1}", y(t))) stroke="#d8dee4" {}
                    text x=(LEFT - 4.0) y=(format!("{:.1}", y(t) + 3.0)) text-anchor="end" { (num(t)) }
                }
                @for i in xl {
                    text x=(format!("{:.1}", x(i))) y=(H - 6.0) text-anchor="middle" { (labels.get(i).map(String::as_str).unwrap_or("")) }
                }
                @for g in groups { (g) }
            }
            ul.legend {
                @for s in series {
                    li {
                        svg width="10" height="10" { rect width="10" height="10" fill=(s.color) {} }
                        " " (s.name) " " span.muted { (num(s.values.iter().sum())) }
                    }
                }
            }
        }
    }
}

fn causes_chart(causes: &[(&str, u64)]) -> Markup {
    // One bar per cause: the chart's "buckets" are the causes.
    let labels: Vec<String> = causes.iter().map(|(c, _)| c.to_string()).collect();
    let series: Vec<Series> = causes
        .iter()
        .enumerate()
        .map(|(i, (c, n))| {
            let mut values = vec![0.0; causes.len()];
            values[i] = *n as f64;
            Series::new(c, COLORS[(i + 2) % COLORS.len()], values)
        })
        .collect();
    chart(
        "drift_causes",
        "Drift by cause",
        Draw::Bars,
        &labels,
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_rounds_up_to_one_two_five() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(0.3), 0.5);
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(10.0), 10.0);
        assert_eq!(nice(11.0), 20.0);
        assert_eq!(nice(4_100.0), 5_000.0);
    }

    #[test]
    fn charts_carry_their_series_totals_and_escape_names() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let m = chart(
            "c",
            "T<",
            Draw::Bars,
            &labels,
            &[
                Series::new("ok", "#000", vec![1.0, 2.0]),
                Series::new("<x>", "#111", vec![0.0, 3.0]),
            ],
        )
        .into_string();
        assert!(m.contains(r#"data-series="ok" data-total="3""#), "{m}");
        assert!(
            m.contains(r#"data-series="&lt;x&gt;" data-total="3""#),
            "{m}"
        );
        assert!(!m.contains("<x>"));
        // Three bars (zero draws none), the tallest stack reaching the top.
        assert_eq!(m.matches("<rect class=\"bar\"").count(), 3);
        assert!(
            m.contains(&format!(r#"y="{TOP:.1}""#)),
            "the 5-high stack of b tops at 5"
        );
    }

    #[test]
    fn freshness_is_judged_against_the_schedule() {
        let f = |last: Option<i64>, every: Option<i64>| Fresh {
            provider: "p".into(),
            kind: "k".into(),
            account: None,
            last,
            every_ms: every,
        };
        let now = 10_000_000;
        assert_eq!(f(Some(now - 1_000), Some(3_600_000)).state(now), "ok");
        assert_eq!(
            f(Some(now - 7_300_000), Some(3_600_000)).state(now),
            "stale"
        );
        assert_eq!(f(None, Some(3_600_000)).state(now), "never");
        assert_eq!(f(Some(0), None).state(now), "unscheduled");
        assert_eq!(period("0 0 * * * *", now), Some(3_600_000));
    }

    #[test]
    fn windows_bucket_time() {
        let w = Window::parse(Some("1h"));
        let end = w.end(1_000_000_000);
        assert_eq!(end % w.bucket_ms, 0);
        assert_eq!(w.index(end, end - 1), Some(11));
        assert_eq!(w.index(end, end - w.span()), Some(0));
        assert_eq!(w.index(end, end), None);
        assert_eq!(w.index(end, end - w.span() - 1), None);
        assert_eq!(Window::parse(Some("nonsense")).name, "24h");
    }

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; recon_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "recon"), None);
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin_as(&h, None),
            "no Origin: not a cross-site browser form"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin_as(&h, None));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin_as(&h, None));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin_as(&h, None));
        // Behind a proxy that rewrites Host: the public URL's origin.
        h.insert(header::HOST, HeaderValue::from_static("recon:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://status.example.com"),
        );
        assert!(!same_origin_as(&h, None));
        assert!(same_origin_as(&h, Some("https://status.example.com/")));
        assert!(same_origin_as(&h, Some("https://Status.example.com/recon")));
        assert!(!same_origin_as(&h, Some("http://status.example.com")));
        assert!(!same_origin_as(&h, Some("https://status.example.com:8443")));
    }

    fn auth(token: &str) -> StatusAuth {
        StatusAuth::new(AdminToken::new(token).unwrap())
    }

    fn with_cookie(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE}={value}")).unwrap(),
        );
        h
    }

    #[test]
    fn sessions_are_signed_shared_by_replicas_and_end_with_the_token() {
        let a = auth("a-token-of-at-least-32-characters-0001");
        let b = auth("a-token-of-at-least-32-characters-0001");
        let other = auth("a-token-of-at-least-32-characters-0002");
        let value = a.open();
        let sa = a.session(&with_cookie(&value)).expect("valid here");
        let sb = b.session(&with_cookie(&value)).expect("and on a replica");
        assert_eq!(sa.csrf, sb.csrf, "one CSRF token on every replica");
        assert!(
            other.session(&with_cookie(&value)).is_none(),
            "another token"
        );
        // Tampering with any part breaks the MAC.
        let (exp, rest) = value.split_once('.').unwrap();
        let later = format!("{}.{rest}", exp.parse::<i64>().unwrap() + 1);
        assert!(a.session(&with_cookie(&later)).is_none(), "a longer expiry");
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(a.session(&with_cookie(&flipped)).is_none());
        for junk in ["", "1", "1.2", "x.y.z", "9999999999999.n.zz"] {
            assert!(a.session(&with_cookie(junk)).is_none(), "{junk:?}");
        }
        // Expired: a valid MAC over a past expiry.
        let nonce = "n";
        let past = now_ms() - 1;
        let mac = hex(&a
            .mac(&format!("session|{past}|{nonce}"))
            .finalize()
            .into_bytes());
        assert!(
            a.session(&with_cookie(&format!("{past}.{nonce}.{mac}")))
                .is_none()
        );
        // Logged out here.
        a.close(&sa);
        assert!(a.session(&with_cookie(&value)).is_none());
        assert_ne!(a.open(), a.open(), "each login its own nonce");
    }

    #[test]
    fn login_budgets_are_per_address_and_per_ipv6_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(limit_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let auth = auth("a-token-of-at-least-32-characters-0001");
        for i in 0..5u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert!(auth.attempt(ip).is_ok());
        }
        let wait = auth.attempt(b).expect_err("the /64 spent its 5");
        assert!(wait <= Duration::from_secs(2));
        assert!(auth.attempt(c).is_ok(), "another /64 has its own");
    }

    #[test]
    fn a_weekday_schedule_is_judged_by_its_weekend_gap() {
        // Monday 2026-11-30 02:00 UTC; sweeps at 03:00 on weekdays.
        let monday = chrono::DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
            .unwrap()
            .timestamp_millis();
        let every = period("0 0 3 * * 1-5", monday).unwrap();
        assert_eq!(every, 72 * 3_600_000, "Friday 03:00 to Monday 03:00");
        let friday = monday - 71 * 3_600_000;
        let f = Fresh {
            provider: "p".into(),
            kind: "k".into(),
            account: None,
            last: Some(friday),
            every_ms: Some(every),
        };
        assert_eq!(f.state(monday), "ok");
    }

    #[test]
    fn a_dry_run_neither_raises_nor_clears_an_alert() {
        let mut failed = recon_core::testkit::store_suite::running_sweep("k", "r1", 1_000);
        failed.status = RunStatus::Failed;
        failed.finished_at = Some(1_500);
        failed.error = Some("listing failed".into());
        let mut dry = recon_core::testkit::store_suite::running_sweep("k", "r2", 2_000);
        dry.status = RunStatus::Succeeded;
        dry.dry_run = true;
        dry.finished_at = Some(2_500);
        // Newest first, as the store reads them.
        let alerts = open_alerts(&[dry.clone(), failed], &[], 0.05, 3_000);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].run.as_deref(), Some("r1"));
        let mut dry_failed = dry;
        dry_failed.status = RunStatus::Failed;
        assert!(open_alerts(&[dry_failed], &[], 0.05, 3_000).is_empty());
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5_000), "5s");
        assert_eq!(age(600_000), "10m");
        assert_eq!(age(3 * 3_600_000 + 300_000), "3h 5m");
        assert_eq!(age(50 * 3_600_000), "2d 2h");
        assert_eq!(age(24 * 3_600_000), "24h");
        assert_eq!(age(7 * 86_400_000), "7d");
    }
}
