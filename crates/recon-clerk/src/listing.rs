//! Walking Clerk's listings to the end, and knowing when a walk cannot be
//! trusted. The engine deletes only after a complete listing, so every way a
//! walk can silently miss objects is turned into an `Err` here.
//!
//! Cursors are opaque strings that carry everything the next page needs, so
//! the adapter keeps no per-listing state:
//!
//! - users: `u:<listed>:<last created_at>:<last id>`;
//! - offset kinds: `o:<next offset>:<collected>:<last created_at>:<last id>`.

use recon_core::{Error, ErrorKind, Result};
use serde_json::Value;

use crate::client::{Client, Query, malformed};
use crate::objects::{check_id, is_plain_id, ms};

/// Objects an offset page re-reads from the previous one, to notice (and
/// follow) objects removed ahead of the position between two requests.
pub(crate) const OVERLAP: u32 = 10;

/// Raw objects of one page, and the cursor of the next.
#[derive(Debug)]
pub(crate) struct RawPage {
    pub items: Vec<Value>,
    pub next: Option<String>,
}

/// A listing that cannot be trusted to be complete. Not temporary: retrying
/// the same page would not repair the walk; the next sweep starts afresh.
pub(crate) fn incomplete(op: &str, message: String) -> Error {
    Error::new(ErrorKind::Unavailable, message)
        .with_component("clerk")
        .with_operation(op.to_string())
        .with_should_retry(Some(false))
}

fn bad_cursor(cursor: &str) -> Error {
    Error::invalid(format!("{cursor:?} is not a Clerk listing cursor")).with_component("clerk")
}

fn num<T: std::str::FromStr>(part: Option<&str>, cursor: &str) -> Result<T> {
    part.and_then(|p| p.parse().ok())
        .ok_or_else(|| bad_cursor(cursor))
}

fn last_id(cursor: &str, part: Option<&str>) -> Result<String> {
    let id = part.ok_or_else(|| bad_cursor(cursor))?;
    check_id(id).map_err(|_| bad_cursor(cursor))?;
    Ok(id.to_string())
}

#[derive(Debug, Clone, PartialEq)]
struct UserCursor {
    listed: u64,
    last_created: i64,
    last_id: String,
}

impl UserCursor {
    fn encode(&self) -> String {
        format!("u:{}:{}:{}", self.listed, self.last_created, self.last_id)
    }

    fn decode(s: &str) -> Result<Self> {
        let mut p = s.splitn(4, ':');
        if p.next() != Some("u") {
            return Err(bad_cursor(s));
        }
        Ok(UserCursor {
            listed: num(p.next(), s)?,
            last_created: num(p.next(), s)?,
            last_id: last_id(s, p.next())?,
        })
    }
}

/// One page of `GET /v1/users?order_by=+created_at&limit=N[&starting_after=…]`.
///
/// The answer is a bare array; a page shorter than `limit` is the last.
/// Each page must continue the previous one in `created_at` order, or the
/// cursor is not being honoured. When the walk ends, `GET /v1/users/count`
/// cross-checks it: with `B` the newest `created_at` listed, Clerk's count
/// of users created before `B + 1` must not exceed the number listed by more
/// than `tolerance`. Users who signed up after the walk passed its end have
/// a later `created_at` and are not counted; a shortfall beyond that means
/// the walk missed users, and the listing is reported incomplete.
pub(crate) async fn users_page(
    client: &Client,
    page_size: u32,
    tolerance: u64,
    cursor: Option<&str>,
) -> Result<RawPage> {
    const OP: &str = "list users";
    let prev = cursor.map(UserCursor::decode).transpose()?;
    let mut q: Query = vec![
        ("limit", page_size.to_string()),
        ("order_by", "+created_at".to_string()),
    ];
    if let Some(c) = &prev {
        q.push(("starting_after", c.last_id.clone()));
    }
    let Value::Array(items) = client.get(OP, "/v1/users", &q).await? else {
        return Err(malformed(
            OP,
            "GET /v1/users did not answer a JSON array".into(),
        ));
    };
    let mut state = prev.clone().unwrap_or(UserCursor {
        listed: 0,
        last_created: i64::MIN,
        last_id: String::new(),
    });
    for u in &items {
        let id = match u.get("id").and_then(Value::as_str) {
            Some(id) if is_plain_id(id) => id,
            _ => return Err(malformed(OP, "a listed user has no valid `id`".into())),
        };
        if prev.as_ref().is_some_and(|p| p.last_id == id) {
            return Err(incomplete(
                OP,
                format!(
                    "Clerk listed {id} again after starting_after={id}: the cursor is not honoured, so the user listing cannot be trusted; nothing will be deleted"
                ),
            ));
        }
        let created = ms(&u["created_at"])
            .ok_or_else(|| malformed(OP, format!("user {id} has no numeric `created_at`")))?;
        if created < state.last_created {
            return Err(incomplete(
                OP,
                format!(
                    "Clerk listed user {id} out of created_at order: the cursor walk cannot be trusted; nothing will be deleted"
                ),
            ));
        }
        state.last_created = created;
        state.last_id = id.to_string();
    }
    state.listed += items.len() as u64;
    if items.len() >= page_size as usize {
        return Ok(RawPage {
            items,
            next: Some(state.encode()),
        });
    }
    // The walk is complete: cross-check it.
    let mut q: Query = Vec::new();
    if state.listed > 0 {
        q.push((
            "created_at_before",
            state.last_created.saturating_add(1).to_string(),
        ));
    }
    let v = client.get("count users", "/v1/users/count", &q).await?;
    let total = v["total_count"].as_u64().ok_or_else(|| {
        malformed(
            "count users",
            "GET /v1/users/count has no numeric `total_count`".into(),
        )
    })?;
    if total > state.listed + tolerance {
        return Err(incomplete(
            OP,
            format!(
                "the user listing is incomplete: Clerk counts {total} users created up to the newest one listed, but the listing returned {} (tolerance {tolerance}); nothing will be deleted, and the next sweep lists again",
                state.listed
            ),
        ));
    }
    Ok(RawPage { items, next: None })
}

#[derive(Debug, Clone, PartialEq)]
struct OffsetCursor {
    offset: u64,
    collected: u64,
    last_created: i64,
    last_id: String,
}

impl OffsetCursor {
    fn encode(&self) -> String {
        format!(
            "o:{}:{}:{}:{}",
            self.offset, self.collected, self.last_created, self.last_id
        )
    }

    fn decode(s: &str) -> Result<Self> {
        let mut p = s.splitn(5, ':');
        if p.next() != Some("o") {
            return Err(bad_cursor(s));
        }
        Ok(OffsetCursor {
            offset: num(p.next(), s)?,
            collected: num(p.next(), s)?,
            last_created: num(p.next(), s)?,
            last_id: last_id(s, p.next())?,
        })
    }
}

/// One page of a `{data, total_count}` listing walked with `limit`/`offset`
/// under `order_by=+created_at` (`what` names the objects in messages).
///
/// Offsets shift when objects ahead of the position are removed between two
/// requests, which would skip an object silently. So every page after the
/// first starts [`OVERLAP`] objects early and must contain the previous
/// page's last object: what follows it is new. If it is gone (more removals
/// than the overlap, or it was removed itself), or the order is broken, the
/// listing is incomplete. At the end, a `total_count` larger than what was
/// collected is incomplete too.
pub(crate) async fn offset_page(
    client: &Client,
    what: &str,
    path: &str,
    page_size: u32,
    cursor: Option<&str>,
) -> Result<RawPage> {
    let op = format!("list {what}");
    let prev = cursor.map(OffsetCursor::decode).transpose()?;
    let overlap = match &prev {
        Some(p) => u64::from(OVERLAP.min(page_size - 1)).min(p.offset),
        None => 0,
    };
    let start = prev.as_ref().map_or(0, |p| p.offset - overlap);
    let q: Query = vec![
        ("limit", page_size.to_string()),
        ("offset", start.to_string()),
        ("order_by", "+created_at".to_string()),
    ];
    let v = client.get(&op, path, &q).await?;
    let Some(mut data) = v.get("data").and_then(Value::as_array).cloned() else {
        return Err(malformed(&op, format!("GET {path} has no `data` array")));
    };
    let total = v["total_count"]
        .as_u64()
        .ok_or_else(|| malformed(&op, format!("GET {path} has no numeric `total_count`")))?;
    if data
        .iter()
        .any(|o| !o.get("id").and_then(Value::as_str).is_some_and(is_plain_id))
    {
        return Err(malformed(
            &op,
            format!("a listed {what} object has no valid `id`"),
        ));
    }
    let got = data.len();
    let mut state = prev.clone().unwrap_or(OffsetCursor {
        offset: 0,
        collected: 0,
        last_created: i64::MIN,
        last_id: String::new(),
    });
    let fresh = match &prev {
        Some(p) if overlap > 0 => match data.iter().position(|o| o["id"] == p.last_id.as_str()) {
            Some(j) => data.split_off(j + 1),
            None => {
                return Err(incomplete(
                    &op,
                    format!(
                        "the {what} changed during the listing more than it can follow ({} is no longer where it was): nothing will be deleted, and the next sweep lists again",
                        p.last_id
                    ),
                ));
            }
        },
        _ => data,
    };
    for o in &fresh {
        let id = o["id"].as_str().unwrap_or_default();
        let created = ms(&o["created_at"])
            .ok_or_else(|| malformed(&op, format!("{id} has no numeric `created_at`")))?;
        if created < state.last_created {
            return Err(incomplete(
                &op,
                format!(
                    "Clerk listed {id} out of created_at order: the listing of {what} cannot be trusted; nothing will be deleted"
                ),
            ));
        }
        state.last_created = created;
        state.last_id = id.to_string();
    }
    state.collected += fresh.len() as u64;
    if got >= page_size as usize {
        state.offset = start + got as u64;
        return Ok(RawPage {
            items: fresh,
            next: Some(state.encode()),
        });
    }
    if total > state.collected {
        return Err(incomplete(
            &op,
            format!(
                "the listing of {what} is incomplete: Clerk reports {total} but the listing returned {}; nothing will be deleted",
                state.collected
            ),
        ));
    }
    Ok(RawPage {
        items: fresh,
        next: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let u = UserCursor {
            listed: 1000,
            last_created: 1_700_000_000_123,
            last_id: "user_2abc".into(),
        };
        assert_eq!(UserCursor::decode(&u.encode()).unwrap(), u);
        let o = OffsetCursor {
            offset: 500,
            collected: 498,
            last_created: -1,
            last_id: "orgmem_1".into(),
        };
        assert_eq!(OffsetCursor::decode(&o.encode()).unwrap(), o);
        for bad in [
            "",
            "user_1",
            "u:1:2",
            "u:x:2:user_1",
            "u:1:2:../x",
            "o:1:2:3",
            "u:1:2:user_1:extra",
        ] {
            assert!(
                UserCursor::decode(bad).is_err() && OffsetCursor::decode(bad).is_err(),
                "{bad}"
            );
        }
    }
}
