//! Clerk's Backend API, the read part recon uses (docs/PROVIDERS.md §2.1, §3).
//! No `/v1/events`: Clerk has no event log.

use serde_json::{Value, json};

use crate::clerk_state::User;
use crate::query::Query;
use crate::server::ApiResponse;
use crate::state::World;
use crate::table::{Key, Row, offset_page, time_bounds};

/// A ClerkErrors body.
pub(crate) fn error(status: u16, code: &str, message: &str, long_message: &str) -> ApiResponse {
    let body = json!({
        "errors": [{"message": message, "long_message": long_message, "code": code, "meta": {}}],
        "meta": {},
        "clerk_trace_id": format!("{:032x}", crate::ids::fnv(long_message.as_bytes()))
    });
    ApiResponse::json(status, body.to_string())
}

fn unprocessable(param: &str, long: &str) -> ApiResponse {
    error(
        422,
        "form_param_value_invalid",
        "is invalid",
        &format!("{param}: {long}"),
    )
}

fn not_found(what: &str) -> ApiResponse {
    error(
        404,
        "resource_not_found",
        "not found",
        &format!("{what} not found"),
    )
}

fn limit(q: &Query) -> Result<usize, ApiResponse> {
    match q.get("limit") {
        None => Ok(10),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n as usize),
            _ => Err(unprocessable(
                "limit",
                "must be an integer between 1 and 500",
            )),
        },
    }
}

fn offset(q: &Query) -> Result<usize, ApiResponse> {
    match q.get("offset") {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| unprocessable("offset", "must be a non-negative integer")),
    }
}

/// `order_by` → (field, descending). No sign means ascending.
fn order<'a>(q: &'a Query, allowed: &[&str]) -> Result<(&'a str, bool), ApiResponse> {
    let raw = q.get("order_by").unwrap_or("-created_at");
    // A raw `+` in a query string decodes to a space.
    let (desc, field) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') | Some(b' ') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if allowed.contains(&field) {
        Ok((field, desc))
    } else {
        Err(unprocessable(
            "order_by",
            &format!("the simulator supports {allowed:?}, got {raw:?}"),
        ))
    }
}

fn ms(q: &Query, key: &str) -> Result<Option<i64>, ApiResponse> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| unprocessable(key, "must be a unix timestamp in milliseconds")),
    }
}

fn page(items: Vec<Value>, total: usize) -> ApiResponse {
    ApiResponse::json(
        200,
        json!({"data": items, "total_count": total}).to_string(),
    )
}

/// Answer `GET {path}` (path starts with `/v1/`).
pub(crate) fn handle(w: &World, path: &str, q: &Query) -> ApiResponse {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let r = match parts.as_slice() {
        ["v1", "users"] => list_users(w, q).map(|r| r.route("GET /v1/users").listing("users")),
        ["v1", "users", "count"] => count_users(w, q).map(|r| r.route("GET /v1/users/count")),
        ["v1", "users", id] => Ok(get_user(w, id).route("GET /v1/users/{id}")),
        ["v1", "users", id, "organization_memberships"] => user_memberships(w, id, q)
            .map(|r| r.route("GET /v1/users/{id}/organization_memberships")),
        ["v1", "organizations"] => {
            list_orgs(w, q).map(|r| r.route("GET /v1/organizations").listing("organizations"))
        }
        ["v1", "organizations", id] => Ok(get_org(w, id, q).route("GET /v1/organizations/{id}")),
        ["v1", "organizations", id, "memberships"] => {
            org_memberships(w, id, q).map(|r| r.route("GET /v1/organizations/{id}/memberships"))
        }
        ["v1", "organization_memberships"] => all_memberships(w, q).map(|r| {
            r.route("GET /v1/organization_memberships")
                .listing("organization_memberships")
        }),
        _ => Ok(error(
            404,
            // Not `resource_not_found`: a wrong route must never read as
            // "deleted".
            "route_not_found",
            "not found",
            &format!("no route GET {path}"),
        )
        .route("GET (unknown)")),
    };
    match r {
        Ok(r) => r,
        Err(e) => e.route("GET (invalid)"),
    }
}

/// The filters of `/users` and `/users/count`.
struct UserFilter<'a> {
    ids: Vec<&'a str>,
    emails: Vec<String>,
    external: bool,
    after: Option<i64>,
    before: Option<i64>,
}

impl<'a> UserFilter<'a> {
    fn parse(q: &'a Query) -> Result<Self, ApiResponse> {
        Ok(UserFilter {
            ids: q.all("user_id"),
            emails: q
                .all("email_address")
                .iter()
                .map(|e| e.to_lowercase())
                .collect(),
            external: !q.all("external_id").is_empty(),
            after: ms(q, "created_at_after")?,
            before: ms(q, "created_at_before")?,
        })
    }

    /// Inclusive created-at bounds.
    fn bounds(&self) -> (Key, Key) {
        time_bounds(self.after.map(|a| a + 1), self.before.map(|b| b - 1))
    }

    fn simple(&self) -> bool {
        self.ids.is_empty() && self.emails.is_empty() && !self.external
    }

    fn matches(&self, u: &User) -> bool {
        if self.external {
            return false; // no user has an external id
        }
        (self.ids.is_empty() || self.ids.contains(&u.id.as_str()))
            && (self.emails.is_empty()
                || u.emails
                    .iter()
                    .any(|e| self.emails.contains(&e.address.to_lowercase())))
            && self.after.is_none_or(|a| u.created_at > a)
            && self.before.is_none_or(|b| u.created_at < b)
    }
}

fn list_users(w: &World, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (limit, offset) = (limit(q)?, offset(q)?);
    let (field, desc) = order(q, &["created_at", "updated_at"])?;
    let filter = UserFilter::parse(q)?;
    let after = match q.get("starting_after").filter(|s| !s.is_empty()) {
        None => None,
        Some(_) if field != "created_at" => {
            return Err(unprocessable(
                "starting_after",
                "can only be used when ordering by created_at",
            ));
        }
        Some(_) if offset > 0 => {
            return Err(unprocessable(
                "starting_after",
                "cannot be combined with offset",
            ));
        }
        Some(id) => Some(
            w.clerk
                .users
                .get(id)
                .map(Row::key)
                .or_else(|| w.clerk.deleted_users.get(id).copied())
                .ok_or_else(|| unprocessable("starting_after", "no such user"))?,
        ),
    };
    let users = &w.clerk.users;
    let keep = |id: &str| users.get(id).is_some_and(|u| filter.matches(u));
    let ids = if field == "created_at" {
        offset_page(
            &users.index,
            filter.bounds(),
            desc,
            after,
            offset,
            limit,
            keep,
        )
    } else {
        let all = time_bounds(None, None);
        offset_page(
            &w.clerk.users_by_updated,
            all,
            desc,
            None,
            offset,
            limit,
            keep,
        )
    };
    let mut body = String::from("[");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        if let Some(u) = users.get(id) {
            body.push_str(&w.clerk.user_string(u));
        }
    }
    body.push(']');
    Ok(ApiResponse::json(200, body))
}

fn count_users(w: &World, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let filter = UserFilter::parse(q)?;
    let (lo, hi) = filter.bounds();
    let users = &w.clerk.users;
    let n = if lo > hi {
        0
    } else if filter.simple() {
        users.index.range(lo..=hi).count()
    } else {
        users
            .index
            .range(lo..=hi)
            .filter(|(_, id)| users.get(id).is_some_and(|u| filter.matches(u)))
            .count()
    };
    Ok(ApiResponse::json(
        200,
        json!({"object": "total_count", "total_count": n}).to_string(),
    ))
}

fn get_user(w: &World, id: &str) -> ApiResponse {
    match w.clerk.users.get(id) {
        Some(u) => ApiResponse::json(200, w.clerk.user_json(u).to_string()),
        None => not_found("User"),
    }
}

fn org_json(w: &World, id: &str, counts: bool) -> Option<Value> {
    let o = w.clerk.orgs.get(id)?;
    let mut v = w.clerk.org_json(o);
    if counts {
        v["members_count"] = json!(w.clerk.members_of_org.get(id).map_or(0, Vec::len));
    }
    Some(v)
}

fn list_orgs(w: &World, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (limit, offset) = (limit(q)?, offset(q)?);
    let (field, desc) = order(q, &["created_at", "name", "members_count"])?;
    let counts = q.get("include_members_count") == Some("true");
    let orgs = &w.clerk.orgs;
    let ids: Vec<&str> = if field == "created_at" {
        offset_page(
            &orgs.index,
            time_bounds(None, None),
            desc,
            None,
            offset,
            limit,
            |_| true,
        )
    } else {
        let mut all: Vec<&crate::clerk_state::Org> = orgs.rows.values().collect();
        let members =
            |o: &crate::clerk_state::Org| w.clerk.members_of_org.get(&o.id).map_or(0, Vec::len);
        if field == "name" {
            all.sort_by(|a, b| a.name.cmp(&b.name).then(a.key().cmp(&b.key())));
        } else {
            all.sort_by(|a, b| members(a).cmp(&members(b)).then(a.key().cmp(&b.key())));
        }
        if desc {
            all.reverse();
        }
        all.iter()
            .skip(offset)
            .take(limit)
            .map(|o| o.id.as_str())
            .collect()
    };
    let items = ids
        .iter()
        .filter_map(|id| org_json(w, id, counts))
        .collect();
    Ok(page(items, orgs.len_listed()))
}

fn get_org(w: &World, id: &str, q: &Query) -> ApiResponse {
    let counts = q.get("include_members_count") == Some("true");
    match w
        .clerk
        .org_by_id_or_slug(id)
        .and_then(|o| org_json(w, &o.id, counts))
    {
        Some(v) => ApiResponse::json(200, v.to_string()),
        None => not_found("Organization"),
    }
}

/// A page of the memberships `ids`, sorted by creation.
fn membership_page(w: &World, ids: &[String], q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (limit, offset) = (limit(q)?, offset(q)?);
    let (_, desc) = order(q, &["created_at"])?;
    let mut rows: Vec<&crate::clerk_state::Membership> = ids
        .iter()
        .filter_map(|id| w.clerk.memberships.get(id))
        .collect();
    rows.sort_by_key(|m| m.key());
    if desc {
        rows.reverse();
    }
    let items = rows
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| w.clerk.membership_json(m))
        .collect();
    Ok(page(items, rows.len()))
}

fn user_memberships(w: &World, id: &str, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let ids = w.clerk.orgs_of_user.get(id).cloned().unwrap_or_default();
    membership_page(w, &ids, q)
}

fn org_memberships(w: &World, id: &str, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let Some(org) = w.clerk.org_by_id_or_slug(id) else {
        return Ok(not_found("Organization"));
    };
    let ids = w
        .clerk
        .members_of_org
        .get(&org.id)
        .cloned()
        .unwrap_or_default();
    membership_page(w, &ids, q)
}

fn all_memberships(w: &World, q: &Query) -> Result<ApiResponse, ApiResponse> {
    let (limit, offset) = (limit(q)?, offset(q)?);
    let (_, desc) = order(q, &["created_at"])?;
    let ms = &w.clerk.memberships;
    let ids = offset_page(
        &ms.index,
        time_bounds(None, None),
        desc,
        None,
        offset,
        limit,
        |_| true,
    );
    let items = ids
        .iter()
        .filter_map(|id| ms.get(id))
        .map(|m| w.clerk.membership_json(m))
        .collect();
    Ok(page(items, ms.len_listed()))
}
