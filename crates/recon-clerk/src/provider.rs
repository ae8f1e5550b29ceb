//! [`recon_core::Provider`] for Clerk.

use async_trait::async_trait;
use recon_core::store::Reference;
use recon_core::{
    Budget, Capabilities, Error, ErrorKind, Fetched, Headers, ListScope, Page, Provider,
    ProviderEvent, Result, Snapshot,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::client::Client;
use crate::config::ClerkConfig;
use crate::objects::{KINDS, event, key, snapshot};

/// Diagnostics: a membership's user should exist.
pub const REFERENCES: &[Reference] = &[Reference {
    kind: "organization_memberships",
    owner_kind: "users",
    statuses: &[],
}];

/// The Clerk adapter.
pub struct ClerkProvider {
    client: Client,
    config: ClerkConfig,
    page_size: usize,
}

impl std::fmt::Debug for ClerkProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClerkProvider")
            .field("config", &self.config)
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn incomplete(msg: String) -> Error {
    Error::new(ErrorKind::Unavailable, msg)
        .with_component("clerk")
        .with_should_retry(Some(false))
}

impl ClerkProvider {
    /// Build the adapter.
    pub fn new(config: ClerkConfig) -> Result<Self> {
        Ok(ClerkProvider {
            client: Client::new(&config)?,
            config,
            page_size: 500,
        })
    }

    /// Smaller pages (tests).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.clamp(1, 500);
        self
    }

    /// Diagnostics reference rules.
    pub fn references() -> &'static [Reference] {
        REFERENCES
    }

    /// The request budget shared by every path.
    pub fn budget(&self) -> &Budget {
        self.client.budget()
    }

    async fn count(&self, created_after: Option<i64>) -> Result<i64> {
        let mut q = Vec::new();
        if let Some(t) = created_after {
            q.push(("created_at_after", t.to_string()));
        }
        let v = self
            .client
            .get("count users", "/users/count", &q)
            .await?
            .unwrap_or_default();
        v["total_count"].as_i64().ok_or_else(|| {
            Error::invalid("Clerk /users/count without total_count").with_component("clerk")
        })
    }

    async fn list_users(&self, cursor: Option<&str>) -> Result<Page> {
        // cursor = "<last id>|<listed so far>|<listing start, ms>"
        let (after, listed, start) = match cursor {
            Some(c) => {
                let mut p = c.splitn(3, '|');
                let after = p.next().unwrap_or_default().to_string();
                let listed: i64 = p.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                let start: i64 = p.next().and_then(|v| v.parse().ok()).unwrap_or_else(now_ms);
                (Some(after), listed, start)
            }
            None => (None, 0, now_ms()),
        };
        let mut q = vec![
            ("limit", self.page_size.to_string()),
            ("order_by", "+created_at".to_string()),
        ];
        if let Some(a) = &after {
            q.push(("starting_after", a.clone()));
        }
        let v = self
            .client
            .get("list users", "/users", &q)
            .await?
            .unwrap_or_default();
        let arr = v.as_array().cloned().ok_or_else(|| {
            Error::invalid("Clerk /users did not answer a JSON array").with_component("clerk")
        })?;
        let version = now_ms();
        let n = arr.len();
        let last = arr
            .last()
            .and_then(|u| u["id"].as_str())
            .map(str::to_string);
        let items = arr
            .into_iter()
            .map(|u| snapshot("users", u, version))
            .collect::<Result<Vec<_>>>()?;
        let listed = listed + n as i64;
        if n == self.page_size
            && let Some(last) = last
        {
            return Ok(Page {
                items,
                next: Some(format!("{last}|{listed}|{start}")),
            });
        }
        // Complete: cross-check the count. Users created since the listing
        // started explain a surplus; anything else is a listing that missed
        // users, so the sweep must not delete from it.
        let total = self.count(None).await?;
        let since = self.count(Some(start - 1)).await?;
        if listed < total - since {
            return Err(incomplete(format!(
                "user listing incomplete: listed {listed} but Clerk counts {total} ({since} created since the listing began); nothing will be deleted"
            )));
        }
        Ok(Page { items, next: None })
    }

    async fn list_offset(&self, kind: &str, path: &str, cursor: Option<&str>) -> Result<Page> {
        let offset: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let q = vec![
            ("limit", self.page_size.to_string()),
            ("offset", offset.to_string()),
            ("order_by", "+created_at".to_string()),
        ];
        let v = self
            .client
            .get(&format!("list {kind}"), path, &q)
            .await?
            .unwrap_or_default();
        let data = v["data"].as_array().cloned().ok_or_else(|| {
            Error::invalid(format!("Clerk {path} without data")).with_component("clerk")
        })?;
        let total = v["total_count"].as_i64().unwrap_or(0) as usize;
        let n = data.len();
        let version = now_ms();
        let items = data
            .into_iter()
            .map(|o| snapshot(kind, o, version))
            .collect::<Result<Vec<_>>>()?;
        let end = offset + n;
        if n == self.page_size && end < total {
            return Ok(Page {
                items,
                next: Some(end.to_string()),
            });
        }
        if end < total {
            return Err(incomplete(format!(
                "{kind} listing incomplete: {end} of {total}; nothing will be deleted"
            )));
        }
        Ok(Page { items, next: None })
    }

    async fn find_membership(&self, id: &str) -> Result<Option<Value>> {
        let mut offset = 0usize;
        for _ in 0..200 {
            let q = vec![("limit", "500".to_string()), ("offset", offset.to_string())];
            let v = self
                .client
                .get("find membership", "/organization_memberships", &q)
                .await?
                .unwrap_or_default();
            let data = v["data"].as_array().cloned().unwrap_or_default();
            if let Some(m) = data.iter().find(|m| m["id"].as_str() == Some(id)) {
                return Ok(Some(m.clone()));
            }
            if data.len() < 500 {
                return Ok(None);
            }
            offset += data.len();
        }
        Ok(None)
    }
}

#[async_trait]
impl Provider for ClerkProvider {
    fn name(&self) -> &'static str {
        "clerk"
    }

    fn account(&self) -> &str {
        "default"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::listing_only().with_owner_lookup()
    }

    fn kinds(&self) -> &'static [&'static str] {
        KINDS
    }

    fn kind_of(&self, id: &str) -> Option<&'static str> {
        if id.starts_with("user_") {
            Some("users")
        } else if id.starts_with("orgmem_") {
            Some("organization_memberships")
        } else if id.starts_with("org_") {
            Some("organizations")
        } else {
            None
        }
    }

    async fn list_page(
        &self,
        kind: &str,
        _scope: &ListScope,
        cursor: Option<&str>,
    ) -> Result<Page> {
        match kind {
            "users" => self.list_users(cursor).await,
            "organizations" => self.list_offset(kind, "/organizations", cursor).await,
            "organization_memberships" => {
                self.list_offset(kind, "/organization_memberships", cursor)
                    .await
            }
            other => Err(Error::invalid(format!("clerk has no kind {other:?}"))),
        }
    }

    async fn fetch(&self, kind: &str, id: &str) -> Result<Fetched> {
        let found = match kind {
            "users" => {
                self.client
                    .get("fetch user", &format!("/users/{id}"), &[])
                    .await?
            }
            "organizations" => {
                self.client
                    .get("fetch organization", &format!("/organizations/{id}"), &[])
                    .await?
            }
            "organization_memberships" => self.find_membership(id).await?,
            other => return Err(Error::invalid(format!("clerk has no kind {other:?}"))),
        };
        Ok(match found {
            Some(v) if v["deleted"].as_bool() == Some(true) => {
                Fetched::Deleted(Snapshot::tombstone(key(kind, id), self.version_now()))
            }
            Some(v) => Fetched::Found(snapshot(kind, v, self.version_now())?),
            None => Fetched::NotFound,
        })
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let now = self.version_now();
        if let Some(u) = self
            .client
            .get("fetch user", &format!("/users/{owner}"), &[])
            .await?
        {
            out.push(snapshot("users", u, now)?);
        }
        let q = vec![("limit", "500".to_string())];
        if let Some(v) = self
            .client
            .get(
                "user memberships",
                &format!("/users/{owner}/organization_memberships"),
                &q,
            )
            .await?
        {
            for m in v["data"].as_array().cloned().unwrap_or_default() {
                out.push(snapshot("organization_memberships", m, now)?);
            }
        }
        Ok(out)
    }

    fn verify_webhook(&self, headers: &Headers, body: &[u8], now_s: i64) -> Result<ProviderEvent> {
        let secret = self.config.webhook_secret.as_ref().ok_or_else(|| {
            Error::config("CLERK_WEBHOOK_SECRET is not set: Clerk webhooks cannot be verified")
                .with_component("clerk")
        })?;
        let id = crate::webhook::verify(secret.expose_secret(), headers, body, now_s)?;
        event(&id, body)
    }

    fn version_now(&self) -> i64 {
        now_ms()
    }
}
