//! [`StripeProvider`]: recon's [`Provider`] contract over Stripe's API.

use async_trait::async_trait;
use recon_core::store::Reference;
use recon_core::{
    Budget, Capabilities, Error, ErrorKind, EventPage, Fetched, Headers, ListScope, Page, Provider,
    ProviderEvent, Result, Snapshot,
};
use secrecy::ExposeSecret;

use crate::client::{Client, Query};
use crate::config::{DEFAULT_ACCOUNT, StripeConfig, env};
use crate::events::{EventReader, parse_event, type_groups};
use crate::objects::{KINDS, is_plain_id, kind_of, to_snapshot};
use crate::{EVENT_HORIZON_S, NAME, partition};

/// The Stripe adapter: lists, fetches, replays events and verifies webhooks
/// for one account. Every request goes through one [`Budget`].
pub struct StripeProvider {
    client: Client,
    config: StripeConfig,
    account: String,
    groups: Vec<Vec<String>>,
}

impl std::fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const REFERENCES: &[Reference] = &[
    Reference {
        kind: "subscriptions",
        owner_kind: "customers",
        statuses: &["active", "trialing", "past_due", "unpaid", "paused"],
    },
    Reference {
        kind: "invoices",
        owner_kind: "customers",
        statuses: &["open"],
    },
];

fn check_kind(kind: &str) -> Result<&'static str> {
    KINDS.iter().copied().find(|k| *k == kind).ok_or_else(|| {
        Error::invalid(format!(
            "Stripe has no kind {kind:?}; kinds: {}",
            KINDS.join(", ")
        ))
        .with_component("stripe")
    })
}

fn check_id(id: &str) -> Result<()> {
    if is_plain_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{id:?} is not a Stripe object id")).with_component("stripe"))
    }
}

/// Query parameters every listing of `kind` carries.
fn base_query(kind: &str) -> Query {
    match kind {
        // Without it Stripe leaves canceled subscriptions out.
        "subscriptions" => vec![("status", "all".to_string())],
        _ => Vec::new(),
    }
}

impl StripeProvider {
    /// An adapter for `config`. Checks the configuration and builds the
    /// HTTP client; sends nothing.
    pub fn new(config: StripeConfig) -> Result<Self> {
        let client = Client::new(&config)?;
        if let Some(s) = config.api.webhook_secret()
            && !s.expose_secret().starts_with("whsec_")
        {
            tracing::warn!(
                "{} does not start with whsec_: Stripe signs with the whole whsec_… string, so webhooks will not verify",
                env::WEBHOOK_SECRET
            );
        }
        Ok(StripeProvider {
            client,
            account: config.account_name().to_string(),
            groups: type_groups(&config.event_types),
            config,
        })
    }

    /// Reference rules for diagnostics: live subscriptions and open invoices
    /// whose customer is gone.
    pub fn references() -> &'static [Reference] {
        REFERENCES
    }

    /// The account's rate limiter and retry policy (and its counters).
    pub fn budget(&self) -> &Budget {
        self.client.budget()
    }

    /// The configuration in use.
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    fn snapshot(&self, kind: &str, obj: serde_json::Value, version: i64) -> Result<Snapshot> {
        to_snapshot(&self.account, kind, obj, version)
    }

    /// Every page of a filtered listing (an owner's subscriptions, invoices).
    async fn list_everything(&self, kind: &str, mut query: Query) -> Result<Vec<Snapshot>> {
        let op = format!("list {kind}");
        let path = format!("/v1/{kind}");
        query.push(("limit", self.config.api.page_size.to_string()));
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(c) = &cursor {
                q.push(("starting_after", c.clone()));
            }
            let page = self.client.list(&op, &path, &q).await?;
            cursor = page
                .has_more
                .then(|| {
                    page.data
                        .last()
                        .and_then(|o| o["id"].as_str())
                        .map(str::to_string)
                })
                .flatten();
            for o in page.data {
                out.push(self.snapshot(kind, o, page.at)?);
            }
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl Provider for StripeProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::listing_only()
            .with_partitions()
            .with_owner_lookup()
            .with_event_log(Some(EVENT_HORIZON_S))
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn kind_of(&self, id: &str) -> Option<&'static str> {
        kind_of(id)
    }

    async fn partitions(&self, kind: &str, n: usize) -> Result<Vec<ListScope>> {
        let kind = check_kind(kind)?;
        partition::partitions(
            &self.client,
            &format!("plan partitions of {kind}"),
            &format!("/v1/{kind}"),
            &base_query(kind),
            n,
            self.client.clock().now_s(),
        )
        .await
    }

    async fn list_page(&self, kind: &str, scope: &ListScope, cursor: Option<&str>) -> Result<Page> {
        let kind = check_kind(kind)?;
        let mut q = base_query(kind);
        q.push(("limit", self.config.api.page_size.to_string()));
        if let Some(g) = scope.created_gte {
            q.push(("created[gte]", g.to_string()));
        }
        if let Some(l) = scope.created_lt {
            q.push(("created[lt]", l.to_string()));
        }
        if let Some(c) = cursor {
            check_id(c)?;
            q.push(("starting_after", c.to_string()));
        }
        let page = self
            .client
            .list(&format!("list {kind}"), &format!("/v1/{kind}"), &q)
            .await?;
        // The cursor is the last object's id whatever the server's order.
        let next = if page.has_more {
            page.data
                .last()
                .and_then(|o| o["id"].as_str())
                .map(str::to_string)
        } else {
            None
        };
        // Versioned by Stripe's clock when it answered (the page's `Date`),
        // the clock its events' `created` comes from.
        let at = page.at;
        let items = page
            .data
            .into_iter()
            .map(|o| self.snapshot(kind, o, at))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched> {
        self.fetch_in(&self.account, kind, id).await
    }

    /// Fetch as the key's account: a Connect id (`acct_…`) other than the
    /// platform is sent as `Stripe-Account`; `default` (the platform) is
    /// sent without it, even by an instance configured for a Connect
    /// account. The answer, "not found" included, is only ever the one made
    /// under `account`, and the snapshot is keyed by it.
    async fn fetch_in(&self, account: &str, kind: &str, id: &str) -> Result<Fetched> {
        let kind = check_kind(kind)?;
        check_id(id)?;
        let header = match account {
            DEFAULT_ACCOUNT => None,
            a if a.len() > "acct_".len() && a.starts_with("acct_") && is_plain_id(a) => Some(a),
            a => {
                return Err(Error::invalid(format!(
                    "{a:?} is not a Stripe account: keys carry `default` (the platform) or a Connect id (acct_…)"
                ))
                .with_component("stripe")
                .with_operation(format!("fetch {id}")));
            }
        };
        let answer = self
            .client
            .get_or_missing_as(
                &format!("fetch {id}"),
                &format!("/v1/{kind}/{id}"),
                &Vec::new(),
                header,
            )
            .await?;
        Ok(match answer.body {
            None => Fetched::NotFound,
            Some(obj) => {
                let s = to_snapshot(account, kind, obj, answer.at)?;
                if s.deleted {
                    Fetched::Deleted(s)
                } else {
                    Fetched::Found(s)
                }
            }
        })
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<Snapshot>> {
        if kind_of(owner) != Some("customers") || !is_plain_id(owner) {
            return Err(Error::invalid(format!(
                "Stripe objects are owned by customers (cus_…), not {owner:?}"
            ))
            .with_component("stripe"));
        }
        let customer = match self.fetch("customers", owner).await? {
            Fetched::NotFound => return Ok(Vec::new()),
            Fetched::Found(s) | Fetched::Deleted(s) => s,
        };
        let by_owner = || vec![("customer", owner.to_string())];
        let mut subs_q = by_owner();
        subs_q.extend(base_query("subscriptions"));
        let (subs, invoices) = futures::future::try_join(
            self.list_everything("subscriptions", subs_q),
            self.list_everything("invoices", by_owner()),
        )
        .await?;
        let mut out = vec![customer];
        out.extend(subs);
        out.extend(invoices);
        Ok(out)
    }

    async fn events_page(&self, since: i64, cursor: Option<&str>) -> Result<EventPage> {
        // Stripe keeps 30 days; allow an hour of slack for a replay that
        // started just inside the window.
        if cursor.is_none() && since < self.client.clock().now_s() - EVENT_HORIZON_S - 3600 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "Stripe keeps events for 30 days; this replay starts earlier. Replay from a later point and run a full sweep to repair anything older",
            )
            .with_component("stripe")
            .with_operation("list events"));
        }
        EventReader {
            client: &self.client,
            account: &self.account,
            groups: self.groups.clone(),
        }
        .page(since, cursor)
        .await
    }

    fn verify_webhook(&self, headers: &Headers, body: &[u8], now_s: i64) -> Result<ProviderEvent> {
        let what = "the endpoint's signing secret (whsec_…)";
        let scheme = &crate::webhook::SIGNATURE;
        let event = self
            .config
            .api
            .verify_hex_webhook(scheme, (headers, body), now_s, what)?;
        parse_event(event, &self.account)
    }

    /// Stripe's time in seconds as its answers' `Date` headers show it
    /// (see [`recon_core::clock`]): never ahead of Stripe's own clock.
    fn version_now(&self) -> i64 {
        self.client.clock().now_s()
    }
}
