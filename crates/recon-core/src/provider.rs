//! The contract a provider adapter (`recon-stripe`, `recon-clerk`, …) implements.
//!
//! Adapters translate the provider's API into [`Snapshot`]s and classify
//! errors into [`crate::ErrorKind`]s. They do not retry, wait or decide:
//! they call through [`crate::retry::Budget`] and core does the rest.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::types::{ProviderEvent, Snapshot};

/// What a provider can do. Optional abilities are stated, not faked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The provider has an event log that [`Provider::events_page`] reads.
    pub event_log: bool,
    /// [`Provider::owned_by`] lists everything one customer/user owns.
    pub owner_lookup: bool,
    /// [`Provider::partitions`] can split a listing into several cursors.
    pub partitioned_listing: bool,
    /// How far back the event log reaches, in the provider's version unit
    /// (Stripe: 30 days of seconds). `None`: no limit or no log.
    pub event_horizon: Option<i64>,
}

impl Capabilities {
    /// A provider with listing and fetch only.
    pub const fn listing_only() -> Self {
        Capabilities {
            event_log: false,
            owner_lookup: false,
            partitioned_listing: false,
            event_horizon: None,
        }
    }

    /// Set `event_log`.
    pub const fn with_event_log(mut self, horizon: Option<i64>) -> Self {
        self.event_log = true;
        self.event_horizon = horizon;
        self
    }

    /// Set `owner_lookup`.
    pub const fn with_owner_lookup(mut self) -> Self {
        self.owner_lookup = true;
        self
    }

    /// Set `partitioned_listing`.
    pub const fn with_partitions(mut self) -> Self {
        self.partitioned_listing = true;
        self
    }
}

/// One slice of a kind's listing: objects created in `[created_gte, created_lt)`
/// (provider units), or everything when both are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListScope {
    /// Inclusive lower bound on creation time.
    pub created_gte: Option<i64>,
    /// Exclusive upper bound on creation time.
    pub created_lt: Option<i64>,
}

impl ListScope {
    /// The whole listing.
    pub fn all() -> Self {
        ListScope::default()
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The objects on the page, with versions set by the adapter.
    pub items: Vec<Snapshot>,
    /// Opaque cursor for the next page; `None` means the listing is complete.
    pub next: Option<String>,
}

/// The answer to a direct fetch.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The object exists; here is its current state.
    Found(Snapshot),
    /// The provider says it is deleted (Stripe `{deleted: true}`, Clerk 404 on
    /// a known user). The tombstone's version is the fetch time.
    Deleted(Snapshot),
    /// The provider has never heard of it.
    NotFound,
}

/// One page of a provider's event log, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// Events, oldest first.
    pub events: Vec<ProviderEvent>,
    /// Opaque cursor for the next (newer) page; `None` when caught up.
    pub next: Option<String>,
}

/// Request headers of a webhook delivery, lower-cased names.
pub type Headers = http::HeaderMap;

/// A provider adapter. Object safe: the binary holds `Arc<dyn Provider>`.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Provider name (`stripe`, `clerk`); the first part of every key.
    fn name(&self) -> &'static str;

    /// The account this instance talks to (`default` or a Connect id).
    fn account(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> Capabilities;

    /// The kinds a full sweep covers, in sweep order.
    fn kinds(&self) -> &'static [&'static str];

    /// The kind an object id belongs to (`cus_…` → `customers`), if the id
    /// says so.
    fn kind_of(&self, id: &str) -> Option<&'static str>;

    /// Split a kind's listing into about `n` scopes that together list every
    /// object exactly once. The default is one scope.
    async fn partitions(&self, kind: &str, n: usize) -> Result<Vec<ListScope>> {
        let _ = (kind, n);
        Ok(vec![ListScope::all()])
    }

    /// One page of `kind` within `scope`, continuing from `cursor`.
    async fn list_page(&self, kind: &str, scope: &ListScope, cursor: Option<&str>) -> Result<Page>;

    /// The current state of one object.
    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched>;

    /// The current state of one object of `account` (the account in the
    /// object's key, which for a platform receiving Connect events may differ
    /// from [`Provider::account`]). The default fetches through
    /// [`Provider::fetch`] when `account` is this instance's account and
    /// refuses any other: an answer made under another account says nothing
    /// about the object (its "not found" must never become a tombstone).
    async fn fetch_in(&self, account: &str, kind: &str, id: &str) -> Result<Fetched> {
        if account == self.account() {
            return self.fetch(kind, id).await;
        }
        Err(Error::unsupported(format!(
            "{} cannot fetch {kind} {id} of account {account:?}: this instance acts as {:?}",
            self.name(),
            self.account()
        )))
    }

    /// The current state of everything `owner` owns (the owner itself
    /// included). Default: unsupported.
    async fn owned_by(&self, owner: &str) -> Result<Vec<Snapshot>> {
        let _ = owner;
        Err(Error::unsupported(format!(
            "{} cannot list objects by owner",
            self.name()
        )))
    }

    /// Events created at or after `since` (`>=`, never `>`), oldest first,
    /// continuing from `cursor`. Default: unsupported.
    async fn events_page(&self, since: i64, cursor: Option<&str>) -> Result<EventPage> {
        let _ = (since, cursor);
        Err(Error::unsupported(format!(
            "{} has no event log to replay",
            self.name()
        )))
    }

    /// Verify a webhook's signature on the raw body and parse it.
    /// `now_s` is the current unix time in seconds (tests pass a fixed one).
    fn verify_webhook(&self, headers: &Headers, body: &[u8], now_s: i64) -> Result<ProviderEvent>;

    /// The current time in this provider's version unit; used as the
    /// version of fetched objects and confirmed tombstones.
    fn version_now(&self) -> i64;

    /// How many version units make a second (Stripe: 1, versions are unix
    /// seconds; Clerk: 1000, milliseconds). The engine turns its durations
    /// (e.g. the in-flight grace of missed-webhook detection) into version
    /// differences with it.
    fn version_units_per_second(&self) -> i64 {
        1
    }
}
