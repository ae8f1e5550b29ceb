//! Fetching one organization membership, which Clerk has no endpoint for.
//!
//! A membership belongs to one user and one organization for its whole
//! life, so knowing its user is enough: `GET /v1/users/{user}/
//! organization_memberships` either contains it (found) or not (deleted; a
//! user that is gone took its memberships along). The [`Locator`] remembers
//! the user of every membership this adapter has seen (listings, webhooks,
//! owner lookups).
//!
//! For a membership it has never seen (typically one the sweep's listing
//! did not contain, which the engine confirms before deleting it), the
//! adapter walks the instance-wide listing once to learn every membership's
//! user. A walk is reused by every fetch that started before the walk sent
//! its last request: a membership that existed when such a fetch started is
//! in it (new memberships are appended under `+created_at` order). A
//! membership no such walk found does not exist any more: `NotFound`.
//! Concurrent fetches wait for one walk instead of each starting their own.

use std::collections::HashMap;
use std::sync::Mutex;

use recon_core::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::client::{Client, Query, malformed};
use crate::listing::{incomplete, offset_page};
use crate::objects::membership_user;

/// The most memberships the locator remembers; past it, it starts over
/// (and a walk that overflows it cannot answer).
pub(crate) const LOCATOR_CAP: usize = 1_000_000;

#[derive(Default)]
struct Map {
    users: HashMap<String, String>,
    generation: u64,
}

/// Membership id → user id, bounded, plus the last complete walk.
#[derive(Default)]
pub(crate) struct Locator {
    map: Mutex<Map>,
    /// When the last complete walk sent its last request (unix ms).
    walked: tokio::sync::Mutex<Option<i64>>,
}

impl Locator {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember the user of the membership `m` (a membership object).
    pub(crate) fn note(&self, m: &Value) {
        let (Some(id), Some(user)) = (m["id"].as_str(), membership_user(m)) else {
            return;
        };
        let mut map = self.map();
        if map.users.len() >= LOCATOR_CAP && !map.users.contains_key(id) {
            map.users.clear();
            map.generation += 1;
        }
        map.users.insert(id.to_string(), user.to_string());
    }

    pub(crate) fn forget(&self, id: &str) {
        self.map().users.remove(id);
    }

    pub(crate) fn user_of(&self, id: &str) -> Option<String> {
        self.map().users.get(id).cloned()
    }

    fn generation(&self) -> u64 {
        self.map().generation
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().users.len()
    }
}

/// Every membership of `user`, or `None` if Clerk has no such user.
pub(crate) async fn of_user(
    client: &Client,
    locator: &Locator,
    user: &str,
) -> Result<Option<Vec<Value>>> {
    const LIMIT: usize = 500;
    let op = format!("list memberships of {user}");
    let path = format!("/v1/users/{user}/organization_memberships");
    let mut out: Vec<Value> = Vec::new();
    loop {
        let q: Query = vec![
            ("limit", LIMIT.to_string()),
            ("offset", out.len().to_string()),
        ];
        let Some(v) = client.get_or_missing(&op, &path, &q).await? else {
            return Ok(None);
        };
        let Some(data) = v.get("data").and_then(Value::as_array) else {
            return Err(malformed(&op, format!("GET {path} has no `data` array")));
        };
        let n = data.len();
        for m in data {
            locator.note(m);
        }
        out.extend(data.iter().cloned());
        if n < LIMIT {
            let total = v["total_count"].as_u64().unwrap_or(0);
            if total > out.len() as u64 {
                return Err(incomplete(
                    &op,
                    format!(
                        "Clerk reports {total} memberships of {user} but listed {}",
                        out.len()
                    ),
                ));
            }
            return Ok(Some(out));
        }
    }
}

/// The user of membership `id`, walking the instance-wide listing if the
/// locator does not know it. `started_ms` is when the caller's fetch began.
/// `None`: the membership does not exist.
pub(crate) async fn locate(
    client: &Client,
    locator: &Locator,
    page_size: u32,
    id: &str,
    started_ms: i64,
) -> Result<Option<String>> {
    if let Some(user) = locator.user_of(id) {
        return Ok(Some(user));
    }
    let mut walked = locator.walked.lock().await;
    if let Some(user) = locator.user_of(id) {
        return Ok(Some(user));
    }
    if walked.is_some_and(|at| at >= started_ms) {
        return Ok(None);
    }
    *walked = None;
    let generation = locator.generation();
    let mut cursor: Option<String> = None;
    let last_request = loop {
        let sent = recon_core::now_ms();
        let page = offset_page(
            client,
            "organization memberships",
            "/v1/organization_memberships",
            page_size,
            cursor.as_deref(),
        )
        .await?;
        for m in &page.items {
            locator.note(m);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break sent,
        }
    };
    if locator.generation() != generation {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "cannot locate membership {id}: the instance has more than {LOCATOR_CAP} memberships to search"
            ),
        )
        .with_component("clerk")
        .with_operation(format!("fetch {id}"))
        .with_should_retry(Some(false)));
    }
    *walked = Some(last_request);
    Ok(locator.user_of(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locator_notes_and_forgets() {
        let l = Locator::default();
        l.note(&json!({"id": "orgmem_1", "public_user_data": {"user_id": "user_1"}}));
        l.note(&json!({"id": "orgmem_2"}));
        assert_eq!(l.user_of("orgmem_1").as_deref(), Some("user_1"));
        assert_eq!(l.user_of("orgmem_2"), None);
        assert_eq!(l.len(), 1);
        l.forget("orgmem_1");
        assert_eq!(l.user_of("orgmem_1"), None);
    }
}
