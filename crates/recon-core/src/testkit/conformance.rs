//! The provider conformance suite: what every adapter must do, run against
//! a generic fake of its API ([`FakeApi`], on wiremock, 127.0.0.1 only).
//!
//! A provider crate implements [`Fixture`] (how its API answers, its
//! objects, its webhooks) in its tests and writes
//! `recon_core::provider_conformance_tests!(my_fixture());`. The suite then
//! checks, with the same assertions for every provider:
//!
//! - listing: complete across pages, each object once, also while objects
//!   are inserted and deleted during the walk (or the listing fails: never a
//!   short success); an unknown route (a wrong base URL) is an error;
//! - fetch: found, deleted (or not found, for providers that cannot tell),
//!   not found; a plain 404 from a route that does not exist is an error;
//! - `kind_of` on the fixture's ids; capability honesty (an unclaimed
//!   capability answers `Unsupported`, a claimed one does not);
//! - webhooks: valid, forged body, wrong secret, stale, future (refused
//!   when the scheme checks both ways), a rotated secret beside the new one,
//!   the same delivery twice giving the same event;
//! - errors: 401 `Unauthenticated`, 429 with and without `Retry-After`
//!   (retried, then `RateLimited`), 5xx retried then `Unavailable`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::error::ErrorKind;
use crate::provider::{Fetched, Headers, ListScope, Provider};

/// What the fake holds: objects per kind in creation order, and the ids the
/// provider reports as deleted.
#[derive(Debug, Default, Clone)]
pub struct Held {
    /// Live objects per kind, oldest first.
    pub objects: BTreeMap<String, Vec<Value>>,
    /// Ids deleted at the provider (their fetch says so).
    pub deleted: BTreeSet<String>,
}

impl Held {
    /// The live objects of `kind`, oldest first.
    pub fn of(&self, kind: &str) -> &[Value] {
        self.objects.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The live object `id`, of any kind.
    pub fn find(&self, id: &str) -> Option<&Value> {
        self.objects
            .values()
            .flatten()
            .find(|o| o.get("id").and_then(Value::as_str) == Some(id))
    }
}

/// A request as a fake API routes it: the path's segments and the query.
pub fn route(req: &Request) -> (Vec<&str>, std::collections::HashMap<String, String>) {
    let segments = req.url.path().trim_start_matches('/').split('/').collect();
    (segments, req.url.query_pairs().into_owned().collect())
}

/// How far from now a webhook's timestamp may be.
#[derive(Debug, Clone, Copy)]
pub struct WebhookTolerance {
    /// Seconds in the past.
    pub past_s: i64,
    /// Seconds in the future; `None` when the scheme does not refuse them
    /// (then future deliveries are not checked).
    pub future_s: Option<i64>,
}

impl WebhookTolerance {
    /// `s` seconds old at most; the future is not refused.
    pub const fn past(s: i64) -> Self {
        WebhookTolerance {
            past_s: s,
            future_s: None,
        }
    }

    /// `s` seconds either way.
    pub const fn both_ways(s: i64) -> Self {
        WebhookTolerance {
            past_s: s,
            future_s: Some(s),
        }
    }
}

/// One provider's side of the suite.
pub trait Fixture: Send + Sync + 'static {
    /// A kind with a listing and a direct fetch.
    fn kind(&self) -> &'static str;

    /// Object `n` of [`Fixture::kind`] as the API sends it: ids and creation
    /// times grow with `n`.
    fn object(&self, n: usize) -> Value;

    /// Answer a request from what the fake holds, in the provider's wire
    /// format (list envelopes, pagination, fetches, deleted objects, its
    /// "no such object" body). A path the API does not have gets a plain
    /// 404 without the provider's error body.
    fn answer(&self, held: &Held, req: &Request) -> ResponseTemplate;

    /// The provider's error answer for `status`, in its error body.
    fn error(&self, status: u16) -> ResponseTemplate;

    /// The adapter against `base`, with small pages if the provider allows
    /// choosing, fast retries, and webhook secret [`Fixture::secret`]`(0)`.
    fn provider(&self, base: &str) -> Arc<dyn Provider>;

    /// Webhook secret `n`; 0 is the configured one.
    fn secret(&self, n: usize) -> String;

    /// A delivery updating `obj`, signed at `t` (unix seconds) with each of
    /// `secrets` (all their signatures in the header, as during rotation).
    fn delivery(&self, obj: &Value, t: i64, secrets: &[String]) -> (Headers, Vec<u8>);

    /// The webhook scheme's tolerance.
    fn tolerance(&self) -> WebhookTolerance;

    /// Whether a fetch of a deleted object says `Deleted` (Stripe's
    /// `{deleted: true}`). By default `false`: the API cannot tell it from
    /// an unknown one, so the fetch must say `NotFound`.
    fn reports_deleted(&self) -> bool {
        false
    }

    /// Whether ids name their kind (`kind_of` must then answer it).
    fn ids_name_their_kind(&self) -> bool {
        true
    }
}

type Hook = Box<dyn FnMut(&mut Held, usize) + Send>;

struct State {
    held: Held,
    /// One-shot answers, in order, before any other.
    faults: VecDeque<ResponseTemplate>,
    /// Requests answered.
    requests: usize,
    /// Run before each answer with the number of requests before it.
    hook: Option<Hook>,
}

/// The generic fake: a wiremock server answering every request through the
/// fixture, from shared state the test changes.
pub struct FakeApi<F: Fixture> {
    fixture: Arc<F>,
    state: Arc<Mutex<State>>,
    server: MockServer,
}

struct Responder<F: Fixture> {
    fixture: Arc<F>,
    state: Arc<Mutex<State>>,
}

impl<F: Fixture> Respond for Responder<F> {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().expect("fake state");
        let n = s.requests;
        s.requests += 1;
        if let Some(mut hook) = s.hook.take() {
            hook(&mut s.held, n);
            s.hook = Some(hook);
        }
        if let Some(r) = s.faults.pop_front() {
            return r;
        }
        self.fixture.answer(&s.held, req)
    }
}

impl<F: Fixture> FakeApi<F> {
    /// Start the fake with `n` objects of the fixture's kind.
    pub async fn start(fixture: Arc<F>, n: usize) -> Self {
        let mut held = Held::default();
        held.objects.insert(
            fixture.kind().to_string(),
            (0..n).map(|i| fixture.object(i)).collect(),
        );
        let state = Arc::new(Mutex::new(State {
            held,
            faults: VecDeque::new(),
            requests: 0,
            hook: None,
        }));
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                fixture: fixture.clone(),
                state: state.clone(),
            })
            .mount(&server)
            .await;
        FakeApi {
            fixture,
            state,
            server,
        }
    }

    /// The base URL.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The adapter against this fake.
    pub fn provider(&self) -> Arc<dyn Provider> {
        self.fixture.provider(&self.uri())
    }

    /// Change what the fake holds.
    pub fn with<R>(&self, f: impl FnOnce(&mut Held) -> R) -> R {
        f(&mut self.state.lock().expect("fake state").held)
    }

    /// Answer the next requests with these, in order.
    pub fn fault(&self, r: ResponseTemplate) {
        self.state.lock().expect("fake state").faults.push_back(r);
    }

    /// Run `hook(held, n)` before answering request `n` (from 0).
    pub fn hook(&self, hook: impl FnMut(&mut Held, usize) + Send + 'static) {
        self.state.lock().expect("fake state").hook = Some(Box::new(hook));
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.state.lock().expect("fake state").requests
    }
}

fn id_of(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .expect("fixture objects have a string id")
        .to_string()
}

/// List `kind` to the end; `Err` is the listing's error. Panics on an id
/// listed twice or a snapshot with another provider or kind.
async fn walk(p: &dyn Provider, kind: &str) -> crate::Result<BTreeSet<String>> {
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page = p
            .list_page(kind, &ListScope::all(), cursor.as_deref())
            .await?;
        for s in page.items {
            assert_eq!(s.key.provider, p.name(), "snapshot provider");
            assert_eq!(s.key.kind, kind, "snapshot kind");
            assert!(seen.insert(s.key.id.clone()), "{} listed twice", s.key.id);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(seen),
        }
    }
    panic!("the listing of {kind} does not end");
}

/// A complete listing across pages.
pub async fn listing_is_complete<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 23).await;
    let want: BTreeSet<String> = fake.with(|h| h.of(fixture.kind()).iter().map(id_of).collect());
    let got = walk(fake.provider().as_ref(), fixture.kind())
        .await
        .expect("listing");
    assert_eq!(got, want);
    assert!(
        fake.requests() > 1,
        "23 objects fit one page: the fixture's provider must use small pages"
    );
}

/// Objects inserted and deleted during the walk (before the second page:
/// the oldest, the newest and three in between, whatever the provider's
/// order and page size, and two new ones): every object present for the
/// whole walk is listed, or the listing fails as unavailable (a short
/// success would make the engine delete what it missed).
pub async fn listing_survives_changes_during_the_walk<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 23).await;
    let kind = fixture.kind();
    let all: Vec<String> = fake.with(|h| h.of(kind).iter().map(id_of).collect());
    let n = all.len();
    let gone: BTreeSet<String> = [0, n / 3, n / 2, 2 * n / 3, n - 1]
        .iter()
        .map(|i| all[*i].clone())
        .collect();
    let fired = Arc::new(Mutex::new(None::<usize>));
    let (f2, k, g2, fired2) = (
        fixture.clone(),
        kind.to_string(),
        gone.clone(),
        fired.clone(),
    );
    fake.hook(move |held, n| {
        if n == 1 {
            let list = held.objects.get_mut(&k).expect("kind");
            list.retain(|o| !g2.contains(&id_of(o)));
            held.deleted.extend(g2.iter().cloned());
            list.push(f2.object(100));
            list.push(f2.object(101));
            *fired2.lock().expect("fired") = Some(n);
        }
    });
    let stable: BTreeSet<String> = all.iter().filter(|i| !gone.contains(*i)).cloned().collect();
    let result = walk(fake.provider().as_ref(), kind).await;
    assert!(
        fired.lock().expect("fired").is_some() && fake.requests() > 2,
        "the walk must span pages after the change (small pages in the fixture)"
    );
    match result {
        Ok(got) => {
            let missed: Vec<&String> = stable.difference(&got).collect();
            assert!(
                missed.is_empty(),
                "a listing that succeeded missed objects present for the whole walk: {missed:?}"
            );
        }
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::Unavailable,
            "a listing that cannot finish says it is incomplete: {e}"
        ),
    }
}

/// Fetch: found, deleted (or not found), not found; a route that does not
/// exist is an error, never "not found".
pub async fn fetch_semantics<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 3).await;
    let kind = fixture.kind();
    let p = fake.provider();
    let live = id_of(&fixture.object(0));
    match p.fetch(kind, &live).await.expect("fetch a live object") {
        Fetched::Found(s) => {
            assert_eq!(s.key.id, live);
            assert!(!s.deleted);
        }
        other => panic!("a live object: {other:?}"),
    }
    let gone = id_of(&fixture.object(1));
    fake.with(|h| {
        h.objects
            .get_mut(kind)
            .expect("kind")
            .retain(|o| id_of(o) != gone);
        h.deleted.insert(gone.clone());
    });
    match p.fetch(kind, &gone).await.expect("fetch a deleted object") {
        Fetched::Deleted(s) if fixture.reports_deleted() => {
            assert!(s.deleted && s.key.id == gone)
        }
        Fetched::NotFound if !fixture.reports_deleted() => {}
        other => panic!(
            "a deleted object (the API {} say so): {other:?}",
            if fixture.reports_deleted() {
                "does"
            } else {
                "cannot"
            }
        ),
    }
    let unknown = id_of(&fixture.object(999));
    assert!(
        matches!(p.fetch(kind, &unknown).await, Ok(Fetched::NotFound)),
        "an unknown object is NotFound"
    );
    // A wrong base URL: every route is unknown, answered by a plain 404.
    let wrong = fixture.provider(&format!("{}/not-the-api", fake.uri()));
    let e = wrong
        .fetch(kind, &live)
        .await
        .expect_err("a 404 from a route that does not exist must be an error");
    assert_ne!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        walk(wrong.as_ref(), kind).await.is_err(),
        "listing a wrong base URL"
    );
}

/// `kind_of` on the fixture's ids, and capabilities stated, not faked.
pub async fn kinds_and_capabilities<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 3).await;
    let p = fake.provider();
    let kind = fixture.kind();
    assert!(p.kinds().contains(&kind), "kinds() lists {kind}");
    if fixture.ids_name_their_kind() {
        assert_eq!(
            p.kind_of(&id_of(&fixture.object(0))),
            Some(kind),
            "kind_of an id of {kind}"
        );
    }
    let caps = p.capabilities();
    let unsupported =
        |r: crate::Result<()>| matches!(r, Err(e) if e.kind() == ErrorKind::Unsupported);
    let owned = p.owned_by(&id_of(&fixture.object(0))).await.map(|_| ());
    assert_eq!(
        unsupported(owned),
        !caps.owner_lookup,
        "owned_by is Unsupported exactly when owner_lookup is not claimed"
    );
    let events = p.events_page(0, None).await.map(|_| ());
    if !caps.event_log {
        assert!(unsupported(events), "events_page without event_log");
    } else {
        assert!(!unsupported(events), "event_log is claimed");
    }
    if caps.partitioned_listing {
        let scopes = p.partitions(kind, 4).await.expect("partitions");
        assert!(!scopes.is_empty());
    }
}

/// Webhooks: valid, forged, wrong secret, stale, future, rotated, duplicate.
pub async fn webhooks<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 1).await;
    let p = fake.provider();
    let obj = fixture.object(0);
    let now = crate::now_ms() / 1000;
    let s0 = fixture.secret(0);
    let bad = |r: crate::Result<crate::ProviderEvent>, what: &str| match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::BadSignature, "{what}: {e}"),
        Ok(_) => panic!("{what} was accepted"),
    };
    let (h, body) = fixture.delivery(&obj, now, std::slice::from_ref(&s0));
    let ev = p.verify_webhook(&h, &body, now).expect("a valid delivery");
    assert!(
        ev.snapshots.iter().any(|s| s.key.id == id_of(&obj)),
        "the event carries the object"
    );
    // The same delivery again is the same event (the ledger's key).
    let again = p.verify_webhook(&h, &body, now).expect("a redelivery");
    assert_eq!(again.event_id, ev.event_id);
    // A forged body, a wrong secret, a missing signature.
    let mut forged = body.clone();
    let i = forged.len() / 2;
    forged[i] ^= 0x01;
    bad(p.verify_webhook(&h, &forged, now), "a changed body");
    let (h2, body2) = fixture.delivery(&obj, now, &[fixture.secret(1)]);
    bad(p.verify_webhook(&h2, &body2, now), "a wrong secret");
    bad(
        p.verify_webhook(&Headers::new(), &body, now),
        "no signature headers",
    );
    // Rotation: the old and the new signature side by side.
    let (h3, body3) = fixture.delivery(&obj, now, &[fixture.secret(1), s0.clone()]);
    p.verify_webhook(&h3, &body3, now)
        .expect("a rotated secret beside the configured one");
    // Stale and future.
    let tol = fixture.tolerance();
    let (h4, body4) = fixture.delivery(&obj, now - tol.past_s - 1, std::slice::from_ref(&s0));
    bad(p.verify_webhook(&h4, &body4, now), "a stale delivery");
    let (h5, body5) = fixture.delivery(&obj, now - tol.past_s + 5, std::slice::from_ref(&s0));
    p.verify_webhook(&h5, &body5, now)
        .expect("a delivery within the tolerance");
    let ahead = tol.future_s.map_or(3_600, |f| f + 1);
    let (h6, body6) = fixture.delivery(&obj, now + ahead, std::slice::from_ref(&s0));
    if tol.future_s.is_some() {
        bad(
            p.verify_webhook(&h6, &body6, now),
            "a delivery from the future",
        );
    }
}

/// Errors: 401, 429 with and without `Retry-After`, 5xx.
pub async fn error_classification<F: Fixture>(fixture: Arc<F>) {
    let fake = FakeApi::start(fixture.clone(), 3).await;
    let kind = fixture.kind();
    let p = fake.provider();
    let live = id_of(&fixture.object(0));
    fake.fault(fixture.error(401));
    let e = p.fetch(kind, &live).await.expect_err("401");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
    // A temporary failure is retried (fast retries from the fixture).
    fake.fault(fixture.error(429));
    fake.fault(fixture.error(503));
    fake.fault(fixture.error(429).insert_header("retry-after", "0"));
    assert!(
        matches!(p.fetch(kind, &live).await, Ok(Fetched::Found(_))),
        "429, 503 and 429 with Retry-After are retried"
    );
    // Failing for good: the kinds say why.
    for _ in 0..50 {
        fake.fault(fixture.error(503));
    }
    let e = p.fetch(kind, &live).await.expect_err("5xx for good");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let fake = FakeApi::start(fixture.clone(), 3).await;
    let p = fake.provider();
    for _ in 0..50 {
        fake.fault(fixture.error(429).insert_header("retry-after", "0"));
    }
    let e = p.fetch(kind, &live).await.expect_err("429 for good");
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let fake = FakeApi::start(fixture.clone(), 3).await;
    let p = fake.provider();
    for _ in 0..50 {
        fake.fault(fixture.error(429));
    }
    let e = p
        .fetch(kind, &live)
        .await
        .expect_err("429 without Retry-After for good");
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
}

/// Run the whole suite on `$fixture` (an expression giving a fixture), one
/// `#[tokio::test]` per check.
#[macro_export]
macro_rules! provider_conformance_tests {
    ($fixture:expr) => {
        mod provider_conformance {
            #[allow(unused_imports)]
            use super::*;
            use std::sync::Arc;

            #[tokio::test]
            async fn listing_is_complete() {
                $crate::testkit::conformance::listing_is_complete(Arc::new($fixture)).await;
            }

            #[tokio::test]
            async fn listing_survives_changes_during_the_walk() {
                $crate::testkit::conformance::listing_survives_changes_during_the_walk(Arc::new(
                    $fixture,
                ))
                .await;
            }

            #[tokio::test]
            async fn fetch_semantics() {
                $crate::testkit::conformance::fetch_semantics(Arc::new($fixture)).await;
            }

            #[tokio::test]
            async fn kinds_and_capabilities() {
                $crate::testkit::conformance::kinds_and_capabilities(Arc::new($fixture)).await;
            }

            #[tokio::test]
            async fn webhooks() {
                $crate::testkit::conformance::webhooks(Arc::new($fixture)).await;
            }

            #[tokio::test]
            async fn error_classification() {
                $crate::testkit::conformance::error_classification(Arc::new($fixture)).await;
            }
        }
    };
}
