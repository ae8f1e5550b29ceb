//! An in-process provider whose truth, clock and faults a test controls.
//!
//! Kinds: `parents` and `children` (a child's `owner` is a parent id). The
//! clock is logical: every mutation advances it by one, and listings,
//! fetches and events carry its value as the version, so tests are exact.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::{Capabilities, EventPage, Fetched, Headers, ListScope, Page, Provider};
use crate::store::Reference;
use crate::types::{ObjectKey, ProviderEvent, Snapshot};

/// Header carrying the test signature: hex SHA-256 of `secret || body`.
pub const SIGNATURE_HEADER: &str = "x-test-signature";

#[derive(Debug, Clone)]
struct Obj {
    data: Value,
    owner: Option<String>,
    deleted: bool,
}

#[derive(Debug, Default)]
struct State {
    clock: i64,
    objects: BTreeMap<String, BTreeMap<String, Obj>>,
    events: Vec<ProviderEvent>,
    fail_list_at: Option<(String, u64)>,
    panic_list_at: Option<(String, u64)>,
    list_calls: BTreeMap<String, u64>,
    hidden: Vec<String>,
    fail_fetch: bool,
    page_delay: std::time::Duration,
    same_second: u64,
    cancel_after_fetches: Option<(u64, tokio_util::sync::CancellationToken)>,
}

/// The test provider.
pub struct TestProvider {
    state: Mutex<State>,
    secret: String,
    page_size: usize,
    events: bool,
    /// Direct fetches made.
    pub fetches: AtomicU64,
}

/// Reference rules of the test provider.
pub const REFERENCES: &[Reference] = &[Reference {
    kind: "children",
    owner_kind: "parents",
    statuses: &["active"],
}];

impl TestProvider {
    /// A provider with an event log, pages of `page_size`.
    pub fn new(page_size: usize) -> Self {
        TestProvider {
            state: Mutex::new(State::default()),
            secret: "test-secret".into(),
            page_size,
            events: true,
            fetches: AtomicU64::new(0),
        }
    }

    /// Without an event log (like Clerk).
    pub fn without_event_log(mut self) -> Self {
        self.events = false;
        self
    }

    fn key(kind: &str, id: &str) -> ObjectKey {
        ObjectKey::new("test", "default", kind, id)
    }

    fn snapshot(kind: &str, id: &str, o: &Obj, version: i64) -> Snapshot {
        if o.deleted {
            return Snapshot::tombstone(Self::key(kind, id), version);
        }
        Snapshot::live(Self::key(kind, id), version, o.data.clone())
            .with_owner(o.owner.clone())
            .with_status(
                o.data
                    .get("status")
                    .and_then(|s| s.as_str())
                    .map(str::to_string),
            )
    }

    /// Create or change an object; returns the event the change produced.
    pub fn put(&self, kind: &str, id: &str, data: Value) -> ProviderEvent {
        self.put_inner(kind, id, data, true)
    }

    /// Change an object in the same clock tick as the previous change (two
    /// Stripe events of one second): the event has the same version as the
    /// last one and a distinct id.
    pub fn put_same_second(&self, kind: &str, id: &str, data: Value) -> ProviderEvent {
        self.put_inner(kind, id, data, false)
    }

    /// Move the clock forward without changing anything.
    pub fn tick(&self, n: i64) {
        self.state.lock().unwrap().clock += n;
    }

    /// Mark an event as still undelivered at the provider
    /// (`pending_webhooks = n`).
    pub fn mark_undelivered(&self, event_id: &str, n: u32) {
        let mut st = self.state.lock().unwrap();
        for e in st.events.iter_mut().filter(|e| e.event_id == event_id) {
            e.pending_webhooks = Some(n);
        }
    }

    /// Cancel `token` once `n` more direct fetches have been answered (a
    /// shutdown arriving in the middle of a sweep's deletion checks).
    pub fn cancel_after_fetches(&self, n: u64, token: tokio_util::sync::CancellationToken) {
        let done = self.fetches.load(Ordering::SeqCst);
        self.state.lock().unwrap().cancel_after_fetches = Some((done + n, token));
    }

    fn put_inner(&self, kind: &str, id: &str, data: Value, advance: bool) -> ProviderEvent {
        let mut st = self.state.lock().unwrap();
        let event_id = if advance {
            st.clock += 1;
            format!("evt_{}", st.clock)
        } else {
            st.same_second += 1;
            format!("evt_{}_{}", st.clock, st.same_second)
        };
        let version = st.clock;
        let owner = data
            .get("owner")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let mut data = data;
        data["id"] = json!(id);
        let obj = Obj {
            data,
            owner,
            deleted: false,
        };
        let snap = Self::snapshot(kind, id, &obj, version);
        st.objects
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string(), obj);
        let ev = ProviderEvent {
            provider: "test".into(),
            account: "default".into(),
            event_id,
            event_type: format!("{kind}.updated"),
            created: version,
            pending_webhooks: None,
            snapshots: vec![snap],
        };
        st.events.push(ev.clone());
        ev
    }

    /// Delete an object; returns the event.
    pub fn delete(&self, kind: &str, id: &str) -> ProviderEvent {
        let mut st = self.state.lock().unwrap();
        st.clock += 1;
        let version = st.clock;
        if let Some(o) = st.objects.get_mut(kind).and_then(|m| m.get_mut(id)) {
            o.deleted = true;
        }
        let ev = ProviderEvent {
            provider: "test".into(),
            account: "default".into(),
            event_id: format!("evt_{version}"),
            event_type: format!("{kind}.deleted"),
            created: version,
            pending_webhooks: None,
            snapshots: vec![Snapshot::tombstone(Self::key(kind, id), version)],
        };
        st.events.push(ev.clone());
        ev
    }

    /// Forget an object entirely (as if it never existed: fetch says not found).
    pub fn purge(&self, kind: &str, id: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some(m) = st.objects.get_mut(kind) {
            m.remove(id);
        }
    }

    /// An event of a type nothing mirrors.
    pub fn unknown_event(&self) -> ProviderEvent {
        let mut st = self.state.lock().unwrap();
        st.clock += 1;
        let ev = ProviderEvent {
            provider: "test".into(),
            account: "default".into(),
            event_id: format!("evt_{}", st.clock),
            event_type: "session.created".into(),
            created: st.clock,
            pending_webhooks: None,
            snapshots: vec![],
        };
        st.events.push(ev.clone());
        ev
    }

    /// The listing of `kind` fails (503, not retryable here) at page `page` (0-based).
    pub fn fail_listing_at(&self, kind: &str, page: u64) {
        self.state.lock().unwrap().fail_list_at = Some((kind.to_string(), page));
    }

    /// The listing of `kind` panics at page `page` (0-based): an adapter bug.
    pub fn panic_listing_at(&self, kind: &str, page: u64) {
        self.state.lock().unwrap().panic_list_at = Some((kind.to_string(), page));
    }

    /// Listings stop failing.
    pub fn heal(&self) {
        let mut st = self.state.lock().unwrap();
        st.fail_list_at = None;
        st.panic_list_at = None;
        st.fail_fetch = false;
    }

    /// Every listed page takes `delay` (a slow provider).
    pub fn slow_pages(&self, delay: std::time::Duration) {
        self.state.lock().unwrap().page_delay = delay;
    }

    /// Direct fetches fail.
    pub fn fail_fetches(&self) {
        self.state.lock().unwrap().fail_fetch = true;
    }

    /// Leave `id` out of listings (it still answers fetches).
    pub fn hide_from_listing(&self, id: &str) {
        self.state.lock().unwrap().hidden.push(id.to_string());
    }

    /// The live truth of a kind: id → data.
    pub fn truth(&self, kind: &str) -> BTreeMap<String, Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(kind)
            .map(|m| {
                m.iter()
                    .filter(|(_, o)| !o.deleted)
                    .map(|(k, o)| (k.clone(), o.data.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<ProviderEvent> {
        self.state.lock().unwrap().events.clone()
    }

    /// Sign an event as a webhook delivery.
    pub fn webhook(&self, event: &ProviderEvent) -> (Headers, Vec<u8>) {
        let body = serde_json::to_vec(event).expect("serialise event");
        let mut h = Headers::new();
        h.insert(SIGNATURE_HEADER, self.sign(&body).parse().expect("header"));
        (h, body)
    }

    fn sign(&self, body: &[u8]) -> String {
        let mut d = Sha256::new();
        d.update(self.secret.as_bytes());
        d.update(body);
        hex::encode(d.finalize())
    }
}

fn unavailable(what: &str) -> Error {
    Error::new(ErrorKind::Unavailable, format!("test provider: {what}"))
        .with_component("test")
        .with_should_retry(Some(false))
}

#[async_trait]
impl Provider for TestProvider {
    fn name(&self) -> &'static str {
        "test"
    }

    fn account(&self) -> &str {
        "default"
    }

    fn capabilities(&self) -> Capabilities {
        let c = Capabilities::listing_only()
            .with_owner_lookup()
            .with_partitions();
        if self.events {
            c.with_event_log(None)
        } else {
            c
        }
    }

    fn kinds(&self) -> &'static [&'static str] {
        &["parents", "children"]
    }

    fn kind_of(&self, id: &str) -> Option<&'static str> {
        if id.starts_with("p_") {
            Some("parents")
        } else if id.starts_with("c_") {
            Some("children")
        } else {
            None
        }
    }

    /// The test provider has no creation times: scope `i` of `n` is encoded
    /// as `created_gte = i`, `created_lt = n` and means "hash(id) % n == i".
    async fn partitions(&self, _kind: &str, n: usize) -> Result<Vec<ListScope>> {
        let n = n.max(1) as i64;
        Ok((0..n)
            .map(|i| ListScope {
                created_gte: Some(i),
                created_lt: Some(n),
            })
            .collect())
    }

    async fn list_page(&self, kind: &str, scope: &ListScope, cursor: Option<&str>) -> Result<Page> {
        let delay = self.state.lock().unwrap().page_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut st = self.state.lock().unwrap();
        let calls = st.list_calls.entry(kind.to_string()).or_insert(0);
        let call = *calls;
        *calls += 1;
        if let Some((k, p)) = &st.fail_list_at
            && k == kind
            && call >= *p
        {
            return Err(unavailable(&format!("listing {kind} page {call} failed")));
        }
        if st
            .panic_list_at
            .as_ref()
            .is_some_and(|(k, p)| k == kind && call >= *p)
        {
            drop(st);
            panic!("test provider: listing {kind} page {call} panics");
        }
        let version = st.clock;
        let in_scope = |id: &str| -> bool {
            match (scope.created_gte, scope.created_lt) {
                (Some(i), Some(n)) if n > 0 => {
                    let h = id
                        .bytes()
                        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
                    (h % n as u64) as i64 == i
                }
                _ => true,
            }
        };
        let items: Vec<Snapshot> = st
            .objects
            .get(kind)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|(id, _)| cursor.is_none_or(|c| id.as_str() > c))
            .filter(|(_, o)| !o.deleted)
            .filter(|(id, _)| !st.hidden.contains(id))
            .filter(|(id, _)| in_scope(id))
            .take(self.page_size)
            .map(|(id, o)| Self::snapshot(kind, id, o, version))
            .collect();
        let next = if items.len() == self.page_size {
            items.last().map(|s| s.key.id.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched> {
        let done = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let st = self.state.lock().unwrap();
        if let Some((at, token)) = &st.cancel_after_fetches
            && done >= *at
        {
            token.cancel();
        }
        if st.fail_fetch {
            return Err(unavailable("fetch failed"));
        }
        let version = st.clock;
        Ok(match st.objects.get(kind).and_then(|m| m.get(id)) {
            Some(o) if o.deleted => Fetched::Deleted(Self::snapshot(kind, id, o, version)),
            Some(o) => Fetched::Found(Self::snapshot(kind, id, o, version)),
            None => Fetched::NotFound,
        })
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<Snapshot>> {
        let st = self.state.lock().unwrap();
        let version = st.clock;
        let mut out = Vec::new();
        for (kind, m) in &st.objects {
            for (id, o) in m {
                if id == owner || o.owner.as_deref() == Some(owner) {
                    out.push(Self::snapshot(kind, id, o, version));
                }
            }
        }
        Ok(out)
    }

    async fn events_page(&self, since: i64, cursor: Option<&str>) -> Result<EventPage> {
        if !self.events {
            return Err(Error::unsupported("test provider without event log"));
        }
        let st = self.state.lock().unwrap();
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let all: Vec<&ProviderEvent> = st.events.iter().filter(|e| e.created >= since).collect();
        let end = (start + self.page_size).min(all.len());
        let events = all[start.min(end)..end]
            .iter()
            .map(|e| (*e).clone())
            .collect();
        Ok(EventPage {
            events,
            next: (end < all.len()).then(|| end.to_string()),
        })
    }

    fn verify_webhook(&self, headers: &Headers, body: &[u8], _now_s: i64) -> Result<ProviderEvent> {
        let got = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::bad_signature("missing x-test-signature"))?;
        let want = self.sign(body);
        let same = got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0;
        if !same {
            return Err(Error::bad_signature("signature does not match"));
        }
        let ev: ProviderEvent = serde_json::from_slice(body)?;
        Ok(ev)
    }

    fn version_now(&self) -> i64 {
        self.state.lock().unwrap().clock
    }
}
