//! A small Clerk Backend API emulator on wiremock (127.0.0.1 only): users
//! (bare array, `starting_after`, `order_by`, `/count` with
//! `created_at_before`), organizations and memberships (`{data,
//! total_count}`, `limit`/`offset`), retrieves with ClerkErrors 404s, and
//! fault injection.

#![allow(dead_code)]

use recon_clerk::ApiSettings;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use recon_clerk::{ClerkConfig, ClerkProvider};
use recon_core::{Rate, RetryPolicy};
use serde_json::{Value, json};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

pub const KEY: &str = "sk_test_recon_fake_key_do_not_log";
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Fast retries for tests.
pub fn fast() -> RetryPolicy {
    recon_core::testkit::fast_retries()
}

pub fn config(uri: &str, page_size: u32) -> ClerkConfig {
    ClerkConfig::new(KEY)
        .with_api_base(uri)
        .with_webhook_secret(WHSEC)
        .with_rate(Rate::per_second(10_000))
        .with_retry_policy(fast())
        .with_request_timeout(Duration::from_secs(10))
        .with_page_size(page_size)
}

pub fn provider(uri: &str, page_size: u32) -> ClerkProvider {
    ClerkProvider::new(config(uri, page_size)).expect("provider")
}

pub fn user(id: &str, created: i64) -> Value {
    json!({
        "id": id, "object": "user", "created_at": created, "updated_at": created + 1,
        "primary_email_address_id": format!("idn_{id}"), "banned": false, "locked": false,
        "email_addresses": [{"id": format!("idn_{id}"), "object": "email_address",
                             "email_address": format!("{id}@example.test")}],
        "public_metadata": {}, "first_name": "F", "last_name": "L"
    })
}

pub fn org(id: &str, created: i64) -> Value {
    json!({"id": id, "object": "organization", "name": id, "slug": id,
           "created_at": created, "updated_at": created + 1, "members_count": 1})
}

pub fn membership(id: &str, org_id: &str, user_id: &str, created: i64) -> Value {
    json!({"id": id, "object": "organization_membership", "role": "org:member",
           "created_at": created, "updated_at": created + 1,
           "organization": {"id": org_id, "object": "organization", "name": org_id, "updated_at": 1},
           "public_user_data": {"user_id": user_id, "identifier": format!("{user_id}@example.test")}})
}

/// What the fake holds.
#[derive(Default)]
pub struct Data {
    pub users: Vec<Value>,
    pub organizations: Vec<Value>,
    pub memberships: Vec<Value>,
    /// Added to every `/v1/users/count` answer.
    pub count_bias: i64,
    /// Added to every `total_count` of the offset listings.
    pub total_bias: i64,
    /// `/v1/users` ignores `starting_after`.
    pub ignore_cursor: bool,
}

impl Data {
    pub fn remove(&mut self, id: &str) {
        self.users.retain(|o| o["id"] != id);
        self.organizations.retain(|o| o["id"] != id);
        self.memberships.retain(|o| o["id"] != id);
    }
}

type Hook = Box<dyn FnMut(&mut Data, &str, usize) + Send>;

#[derive(Default)]
struct State {
    data: Data,
    /// One-shot answers: the next request whose path starts with the prefix.
    faults: VecDeque<(String, ResponseTemplate)>,
    /// After `n` answered requests to exactly this path, answer 500 forever.
    broken: Option<(String, usize)>,
    /// Requests answered, per path.
    per_path: HashMap<String, usize>,
    /// Every request: path?query.
    log: Vec<String>,
    /// Clerk-API-Version headers seen.
    versions: BTreeSet<String>,
    hook: Option<Hook>,
}

#[derive(Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
}

fn clerk_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": [{"message": message, "long_message": message, "code": code}],
        "meta": {}, "clerk_trace_id": "trace_fake"
    }))
}

fn sort(items: &mut [Value], order_by: Option<&str>) {
    items.sort_by(|a, b| {
        (a["created_at"].as_i64(), a["id"].as_str())
            .cmp(&(b["created_at"].as_i64(), b["id"].as_str()))
    });
    if order_by.is_none_or(|o| o.starts_with('-')) {
        items.reverse();
    }
}

impl Fake {
    pub fn new() -> Self {
        Fake::default()
    }

    pub async fn start(&self) -> MockServer {
        recon_core::testkit::serve(self.clone()).await
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Data) -> R) -> R {
        f(&mut self.state.lock().unwrap().data)
    }

    pub fn add_users(&self, n: usize) -> BTreeSet<String> {
        self.with(|d| {
            (0..n)
                .map(|i| {
                    let id = format!("user_{i:03}");
                    d.users.push(user(&id, 1_700_000_000_000 + i as i64 * 1000));
                    id
                })
                .collect()
        })
    }

    pub fn ids(&self, kind: &str) -> BTreeSet<String> {
        self.with(|d| {
            let list = match kind {
                "users" => &d.users,
                "organizations" => &d.organizations,
                _ => &d.memberships,
            };
            list.iter()
                .map(|o| o["id"].as_str().unwrap().to_string())
                .collect()
        })
    }

    pub fn fault(&self, path_prefix: &str, resp: ResponseTemplate) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push_back((path_prefix.to_string(), resp));
    }

    pub fn break_after(&self, path: &str, n: usize) {
        self.state.lock().unwrap().broken = Some((path.to_string(), n));
    }

    pub fn heal(&self) {
        let mut s = self.state.lock().unwrap();
        s.broken = None;
        s.faults.clear();
    }

    /// Run `hook(data, path, n)` before answering each request (`n`: how
    /// many requests to that path were answered before).
    pub fn hook(&self, hook: impl FnMut(&mut Data, &str, usize) + Send + 'static) {
        self.state.lock().unwrap().hook = Some(Box::new(hook));
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests whose path is exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.split('?').next() == Some(path))
            .count()
    }

    pub fn versions(&self) -> BTreeSet<String> {
        self.state.lock().unwrap().versions.clone()
    }

    fn answer(data: &mut Data, path: &str, q: &HashMap<String, String>) -> ResponseTemplate {
        let limit: i64 = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(10);
        if !(1..=500).contains(&limit) {
            return clerk_error(
                422,
                "form_param_value_invalid",
                "limit must be between 1 and 500",
            );
        }
        let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
        let order_by = q.get("order_by").map(String::as_str);
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["v1", "users"] => {
                let mut items = data.users.clone();
                sort(&mut items, order_by);
                let mut start = offset;
                if let Some(after) = q.get("starting_after").filter(|_| !data.ignore_cursor) {
                    if order_by.is_none_or(|o| o.trim_start_matches(['+', '-']) != "created_at")
                        || offset > 0
                    {
                        return clerk_error(
                            422,
                            "form_param_value_invalid",
                            "starting_after needs created_at ordering",
                        );
                    }
                    match items.iter().position(|u| u["id"] == after.as_str()) {
                        Some(p) => start = p + 1,
                        None => {
                            return clerk_error(
                                422,
                                "form_param_value_invalid",
                                "unknown starting_after",
                            );
                        }
                    }
                }
                let page: Vec<Value> = items.into_iter().skip(start).take(limit as usize).collect();
                ResponseTemplate::new(200).set_body_json(page)
            }
            ["v1", "users", "count"] => {
                let before: Option<i64> = q.get("created_at_before").and_then(|v| v.parse().ok());
                let n = data
                    .users
                    .iter()
                    .filter(|u| before.is_none_or(|b| u["created_at"].as_i64().unwrap() < b))
                    .count() as i64;
                ResponseTemplate::new(200).set_body_json(
                    json!({"object": "total_count", "total_count": n + data.count_bias}),
                )
            }
            ["v1", "users", id] => match data.users.iter().find(|u| u["id"] == *id) {
                Some(u) => ResponseTemplate::new(200).set_body_json(u),
                None => clerk_error(404, "resource_not_found", "not found"),
            },
            ["v1", "users", id, "organization_memberships"] => {
                if !data.users.iter().any(|u| u["id"] == *id) {
                    return clerk_error(404, "resource_not_found", "not found");
                }
                let mine: Vec<Value> = data
                    .memberships
                    .iter()
                    .filter(|m| m["public_user_data"]["user_id"] == *id)
                    .cloned()
                    .collect();
                Self::offset_list(mine, offset, limit, order_by, 0)
            }
            ["v1", "organizations"] => Self::offset_list(
                data.organizations.clone(),
                offset,
                limit,
                order_by,
                data.total_bias,
            ),
            ["v1", "organizations", id] => match data.organizations.iter().find(|o| o["id"] == *id)
            {
                Some(o) => ResponseTemplate::new(200).set_body_json(o),
                None => clerk_error(404, "resource_not_found", "not found"),
            },
            ["v1", "organization_memberships"] => Self::offset_list(
                data.memberships.clone(),
                offset,
                limit,
                order_by,
                data.total_bias,
            ),
            // A route Clerk does not have: no ClerkErrors body.
            _ => ResponseTemplate::new(404),
        }
    }

    fn offset_list(
        mut items: Vec<Value>,
        offset: usize,
        limit: i64,
        order_by: Option<&str>,
        bias: i64,
    ) -> ResponseTemplate {
        sort(&mut items, order_by);
        let total = items.len() as i64 + bias;
        let page: Vec<Value> = items
            .into_iter()
            .skip(offset)
            .take(limit as usize)
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"data": page, "total_count": total}))
    }
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut s = self.state.lock().unwrap();
        let path = req.url.path().to_string();
        s.log.push(match req.url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        });
        if let Some(v) = req.headers.get("clerk-api-version") {
            s.versions
                .insert(v.to_str().unwrap_or_default().to_string());
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {KEY}")) {
            return clerk_error(401, "authentication_invalid", "Unauthorized request");
        }
        let n = *s.per_path.get(&path).unwrap_or(&0);
        *s.per_path.entry(path.clone()).or_default() += 1;
        if let Some(mut hook) = s.hook.take() {
            hook(&mut s.data, &path, n);
            s.hook = Some(hook);
        }
        if let Some(i) = s
            .faults
            .iter()
            .position(|(p, _)| path.starts_with(p.as_str()))
        {
            return s.faults.remove(i).unwrap().1;
        }
        if let Some((p, after)) = &s.broken
            && *p == path
            && n >= *after
        {
            return clerk_error(500, "internal_clerk_error", "something went wrong");
        }
        let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
        Fake::answer(&mut s.data, &path, &q)
    }
}
