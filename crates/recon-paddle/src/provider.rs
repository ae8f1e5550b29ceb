//! [`PaddleProvider`]: recon's [`Provider`] contract over Paddle Billing.

use async_trait::async_trait;
use recon_core::http_client::JsonClient;
use recon_core::store::Reference;
use recon_core::{
    Budget, Capabilities, Error, EventPage, Fetched, Headers, ListScope, Page, Provider,
    ProviderEvent, Result,
};

use crate::client::{get, list};
use crate::config::{DEFAULT_RATE, PaddleConfig, SPEC};
use crate::objects::{KIND_TABLE, KINDS, kind_of, to_snapshot};
use crate::{ACCOUNT, NAME};

/// Paddle keeps events for 90 days (in µs, the version unit).
const EVENT_HORIZON: i64 = 90 * 86_400 * 1_000_000;

/// Diagnostics: live subscriptions and transactions whose customer is
/// missing.
#[rustfmt::skip]
pub const REFERENCES: &[Reference] = &[
    Reference { kind: "subscriptions", owner_kind: "customers",
                statuses: &["active", "trialing", "past_due", "paused"] },
    Reference { kind: "transactions", owner_kind: "customers", statuses: &[] },
];

/// The Paddle Billing adapter for one account (live or sandbox); every
/// request goes through one [`Budget`].
#[derive(Debug)]
pub struct PaddleProvider {
    api: JsonClient,
    config: PaddleConfig,
}

impl PaddleProvider {
    /// An adapter for `config`; checks it and sends nothing.
    pub fn new(config: PaddleConfig) -> Result<Self> {
        config.validate()?;
        let settings = config.client_settings(config.rate.unwrap_or(DEFAULT_RATE));
        let api = JsonClient::new(&SPEC, settings)?;
        Ok(PaddleProvider { api, config })
    }

    /// The rate limiter and retry policy (and their counters).
    pub fn budget(&self) -> &Budget {
        self.api.budget()
    }
}

#[async_trait]
impl Provider for PaddleProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> &str {
        ACCOUNT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::listing_only().with_event_log(Some(EVENT_HORIZON))
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn kind_of(&self, id: &str) -> Option<&'static str> {
        kind_of(id)
    }

    /// By id, ascending, `after` the last id read: entities created during
    /// the walk have higher ids and come at its end. Products and prices
    /// are walked twice, catalog then `custom` (see [`KindSpec::walks`](recon_core::kinds::KindSpec::walks)).
    async fn list_page(&self, kind: &str, scope: &ListScope, cursor: Option<&str>) -> Result<Page> {
        let k = KIND_TABLE.get(kind)?;
        if scope != &ListScope::all() {
            return Err(Error::unsupported("Paddle listings are not partitioned"));
        }
        let bad = || {
            Error::invalid(format!("not a Paddle {kind} cursor: {cursor:?}")).with_component(NAME)
        };
        let (walk, after) = k.walk(cursor).ok_or_else(bad)?;
        if !after.is_empty() {
            KIND_TABLE.check_id(k, after)?;
        }
        let mut query = k.query(walk);
        let per_page = self.config.page_size.min(k.max_page).to_string();
        query.extend([("order_by", "id[ASC]".into()), ("per_page", per_page)]);
        query.extend((!after.is_empty()).then(|| ("after", after.to_string())));
        let (op, path) = (format!("list {kind}"), format!("/{kind}"));
        let (items, next) = list(&self.api, (&op, &path), &query, (after, "id")).await?;
        let now = self.version_now();
        let items = items.into_iter().map(|o| to_snapshot(k, o, now));
        let items = items.collect::<Result<_>>()?;
        Ok(Page {
            items,
            next: k.next(walk, next),
        })
    }

    /// Paddle deletes nothing (it archives or cancels): `Found`, or
    /// `NotFound` for an id it never had.
    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched> {
        let k = KIND_TABLE.get(kind)?;
        KIND_TABLE.check_id(k, id)?;
        let op = format!("fetch {id}");
        let body = get(&self.api, &op, &format!("/{kind}/{id}"), &Vec::new()).await?;
        let Some(obj) = body.map(|mut b| b["data"].take()) else {
            return Ok(Fetched::NotFound);
        };
        if obj["id"] != id {
            return Err(SPEC.malformed(&op, format!("asked for {id}, got another entity")));
        }
        Ok(Fetched::Found(to_snapshot(k, obj, self.version_now())?))
    }

    async fn events_page(&self, since: i64, cursor: Option<&str>) -> Result<EventPage> {
        // The engine's clock, so that a start it accepted is never cut.
        let oldest = self.version_now() - EVENT_HORIZON;
        crate::events::page(&self.api, self.config.page_size, (since, oldest), cursor).await
    }

    fn verify_webhook(&self, headers: &Headers, body: &[u8], now_s: i64) -> Result<ProviderEvent> {
        let what = "the destination's secret key (pdl_ntfset_…)";
        let scheme = &crate::SIGNATURE;
        let event = self
            .config
            .verify_hex_webhook(scheme, (headers, body), now_s, what)?;
        crate::webhook::parse_event(event)
    }

    /// Paddle's time in µs, as its answers' `Date` headers show it.
    fn version_now(&self) -> i64 {
        self.api.clock().now_ms() * 1000
    }

    /// Versions are microseconds (`updated_at`).
    fn version_units_per_second(&self) -> i64 {
        1_000_000
    }
}
