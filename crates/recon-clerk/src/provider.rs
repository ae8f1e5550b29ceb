//! [`ClerkProvider`]: recon's [`Provider`] contract over Clerk's Backend API.

use async_trait::async_trait;
use recon_core::store::Reference;
use recon_core::{
    Budget, Capabilities, Error, Fetched, Headers, ListScope, Page, Provider, ProviderEvent,
    Result, Snapshot, now_ms,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::client::Client;
use crate::config::{ClerkConfig, env};
use crate::listing::{offset_page, users_page};
use crate::memberships::{Locator, locate, of_user};
use crate::objects::{KINDS, check_id, check_kind, kind_of, to_snapshot};
use crate::webhook::{parse_event, signing_key, verify_signature};
use crate::{ACCOUNT, NAME};

const REFERENCES: &[Reference] = &[Reference {
    kind: "organization_memberships",
    owner_kind: "users",
    statuses: &[],
}];

/// The Clerk adapter: lists, fetches and verifies webhooks for one Clerk
/// instance. Every request goes through one [`Budget`]. Clerk has no event
/// log, so [`Provider::events_page`] keeps its default (`Unsupported`).
pub struct ClerkProvider {
    client: Client,
    config: ClerkConfig,
    locator: Locator,
}

impl std::fmt::Debug for ClerkProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClerkProvider {
    /// An adapter for `config`. Checks the configuration and builds the
    /// HTTP client; sends nothing.
    pub fn new(config: ClerkConfig) -> Result<Self> {
        let client = Client::new(&config)?;
        Ok(ClerkProvider {
            client,
            config,
            locator: Locator::default(),
        })
    }

    /// Reference rules for diagnostics: live memberships whose user is gone.
    pub fn references() -> &'static [Reference] {
        REFERENCES
    }

    /// The instance's rate limiter and retry policy (and its counters).
    pub fn budget(&self) -> &Budget {
        self.client.budget()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClerkConfig {
        &self.config
    }

    fn snapshots(&self, kind: &str, items: Vec<Value>, fallback: i64) -> Result<Vec<Snapshot>> {
        items
            .into_iter()
            .map(|o| {
                if kind == "organization_memberships" {
                    self.locator.note(&o);
                }
                to_snapshot(kind, o, fallback)
            })
            .collect()
    }

    /// A user, an organization: `GET /v1/{kind}/{id}`; Clerk hard-deletes,
    /// so a deleted object answers 404 (`NotFound`).
    async fn fetch_direct(&self, kind: &'static str, id: &str) -> Result<Fetched> {
        let got = self
            .client
            .get_or_missing(
                &format!("fetch {id}"),
                &format!("/v1/{kind}/{id}"),
                &Vec::new(),
            )
            .await?;
        let Some(obj) = got else {
            return Ok(Fetched::NotFound);
        };
        // `GET /v1/organizations/{x}` also answers to a slug: the object
        // must be the one asked for.
        if obj.get("id").and_then(Value::as_str) != Some(id) {
            return Err(crate::client::malformed(
                &format!("fetch {id}"),
                format!("asked for {id}, Clerk answered with another object"),
            ));
        }
        let s = to_snapshot(kind, obj, self.version_now())?;
        Ok(if s.deleted {
            Fetched::Deleted(s)
        } else {
            Fetched::Found(s)
        })
    }

    /// A membership: find its user, then look in the user's memberships.
    async fn fetch_membership(&self, id: &str) -> Result<Fetched> {
        let started = now_ms();
        let Some(user) = locate(
            &self.client,
            &self.locator,
            self.config.api.page_size,
            id,
            started,
        )
        .await?
        else {
            return Ok(Fetched::NotFound);
        };
        let found = of_user(&self.client, &self.locator, &user)
            .await?
            .and_then(|all| all.into_iter().find(|m| m["id"] == id));
        match found {
            Some(m) => Ok(Fetched::Found(to_snapshot(
                "organization_memberships",
                m,
                self.version_now(),
            )?)),
            None => {
                self.locator.forget(id);
                Ok(Fetched::NotFound)
            }
        }
    }
}

#[async_trait]
impl Provider for ClerkProvider {
    fn name(&self) -> &'static str {
        NAME
    }

    fn account(&self) -> &str {
        ACCOUNT
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::listing_only().with_owner_lookup()
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn kind_of(&self, id: &str) -> Option<&'static str> {
        kind_of(id)
    }

    async fn list_page(&self, kind: &str, scope: &ListScope, cursor: Option<&str>) -> Result<Page> {
        let kind = check_kind(kind)?;
        if scope != &ListScope::all() {
            return Err(Error::unsupported(
                "Clerk listings are not partitioned: list with ListScope::all()",
            )
            .with_component("clerk"));
        }
        let size = self.config.api.page_size;
        let raw = match kind {
            "users" => {
                users_page(&self.client, size, self.config.user_count_tolerance, cursor).await?
            }
            "organizations" => {
                offset_page(&self.client, kind, "/v1/organizations", size, cursor).await?
            }
            _ => {
                offset_page(
                    &self.client,
                    "organization memberships",
                    "/v1/organization_memberships",
                    size,
                    cursor,
                )
                .await?
            }
        };
        Ok(Page {
            items: self.snapshots(kind, raw.items, self.version_now())?,
            next: raw.next,
        })
    }

    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched> {
        let kind = check_kind(kind)?;
        check_id(id)?;
        match kind {
            "organization_memberships" => self.fetch_membership(id).await,
            direct => self.fetch_direct(direct, id).await,
        }
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<Snapshot>> {
        if kind_of(owner) != Some("users") {
            return Err(Error::invalid(format!(
                "Clerk objects are owned by users (user_…), not {owner:?}"
            ))
            .with_component("clerk"));
        }
        check_id(owner)?;
        let user = match self.fetch_direct("users", owner).await? {
            Fetched::NotFound => return Ok(Vec::new()),
            Fetched::Found(s) | Fetched::Deleted(s) => s,
        };
        let memberships = of_user(&self.client, &self.locator, owner)
            .await?
            .unwrap_or_default();
        let mut out = vec![user];
        out.extend(self.snapshots("organization_memberships", memberships, self.version_now())?);
        Ok(out)
    }

    fn verify_webhook(&self, headers: &Headers, body: &[u8], now_s: i64) -> Result<ProviderEvent> {
        let secret = self
            .config
            .api
            .require_webhook_secret("the endpoint's signing secret (whsec_…)")?;
        let key = signing_key(secret.expose_secret()).ok_or_else(|| {
            Error::config(format!(
                "{} is not a Svix signing secret (whsec_ followed by base64)",
                env::WEBHOOK_SECRET
            ))
            .with_component("clerk")
            .with_operation("verify webhook")
        })?;
        let delivery = verify_signature(
            &key,
            headers,
            body,
            now_s,
            self.config.api.webhook_tolerance_s,
        )?;
        let event = parse_event(&delivery, body)?;
        for s in &event.snapshots {
            if s.key.kind == "organization_memberships" {
                if s.deleted {
                    self.locator.forget(&s.key.id);
                } else {
                    self.locator.note(&s.data);
                }
            }
        }
        Ok(event)
    }

    /// Clerk's time in ms as its answers' `Date` headers show it (see
    /// [`recon_core::clock`]): never ahead of Clerk's own clock. Objects
    /// carry their own `updated_at`; this versions the rest (tombstones,
    /// objects without timestamps), read after the answer that showed them.
    fn version_now(&self) -> i64 {
        self.client.clock().now_ms()
    }

    /// Clerk's versions are milliseconds.
    fn version_units_per_second(&self) -> i64 {
        1000
    }
}
