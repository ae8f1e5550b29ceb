//! The simulated world: both providers' objects, Stripe's event log, the
//! webhook outbox, the clock and the seeded random source, behind one lock.

use std::collections::{HashMap, VecDeque};

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::clerk_state::ClerkState;
use crate::ids::{self, Clock};
use crate::stripe_state::StripeState;
use crate::table::{Key, Row, Table};

/// How far back Stripe's event log reaches.
pub(crate) const EVENT_WINDOW_S: i64 = 30 * 24 * 3600;

/// One Stripe event. `object` (and `previous`) is the JSON of `data.object`
/// as it was when the event happened.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub kind: &'static str,
    pub object: String,
    pub previous: Option<String>,
    pub request: Option<(String, String)>,
    pub pending: u32,
}

impl Row for Event {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> Key {
        (self.created, self.seq)
    }
    fn listed(&self) -> bool {
        true
    }
}

impl Event {
    /// The event's JSON, as the API and the webhook body show it.
    pub(crate) fn json(&self, api_version: &str) -> String {
        let mut s = String::with_capacity(self.object.len() + 300);
        s.push_str(r#"{"id":""#);
        s.push_str(&self.id);
        s.push_str(r#"","object":"event","api_version":""#);
        s.push_str(api_version);
        s.push_str(r#"","created":"#);
        s.push_str(&self.created.to_string());
        s.push_str(r#","data":{"object":"#);
        s.push_str(&self.object);
        if let Some(p) = &self.previous {
            s.push_str(r#","previous_attributes":"#);
            s.push_str(p);
        }
        s.push_str(r#"},"livemode":false,"pending_webhooks":"#);
        s.push_str(&self.pending.to_string());
        match &self.request {
            Some((id, key)) => {
                s.push_str(r#","request":{"id":""#);
                s.push_str(id);
                s.push_str(r#"","idempotency_key":""#);
                s.push_str(key);
                s.push_str(r#""}"#);
            }
            None => s.push_str(r#","request":{"id":null,"idempotency_key":null}"#),
        }
        s.push_str(r#","type":""#);
        s.push_str(self.kind);
        s.push_str(r#""}"#);
        s
    }
}

/// A webhook waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outgoing {
    /// A Stripe event (the body is rendered when sent).
    Stripe { event_id: String },
    /// A Clerk (Svix) message with its envelope.
    Clerk {
        msg_id: String,
        event_type: String,
        body: String,
    },
}

/// A set of ids to pick from at random in O(1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Pool {
    items: Vec<String>,
    pos: HashMap<String, usize>,
}

impl Pool {
    pub(crate) fn insert(&mut self, id: &str) {
        if !self.pos.contains_key(id) {
            self.pos.insert(id.to_string(), self.items.len());
            self.items.push(id.to_string());
        }
    }

    pub(crate) fn remove(&mut self, id: &str) {
        if let Some(i) = self.pos.remove(id) {
            self.items.swap_remove(i);
            if let Some(moved) = self.items.get(i) {
                self.pos.insert(moved.clone(), i);
            }
        }
    }

    pub(crate) fn pick(&self, rng: &mut StdRng) -> Option<String> {
        if self.items.is_empty() {
            None
        } else {
            Some(self.items[rng.random_range(0..self.items.len())].clone())
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

/// Ids of live objects, for the mutation engine's picks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pools {
    pub customers: Pool,
    pub subs: Pool,
    pub users: Pool,
    pub orgs: Pool,
    pub memberships: Pool,
    /// Products created by catalog mutations (never used by subscriptions).
    pub extra_products: Pool,
}

/// Everything the simulator knows, behind one lock.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub seq: u64,
    pub clock: Clock,
    pub rng: StdRng,
    pub stripe: StripeState,
    pub clerk: ClerkState,
    pub events: Table<Event>,
    pub outbox: VecDeque<Outgoing>,
    pub pools: Pools,
    /// The plan prices subscriptions move between, cheapest first.
    pub plans: Vec<String>,
    pub api_version: String,
    pub instance_id: String,
    pub invoice_counter: u64,
    pub stripe_events: u64,
    pub clerk_events: u64,
}

/// `{key: old value}` for every top-level key whose value changed.
pub(crate) fn previous_attributes(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    if let (Value::Object(b), Value::Object(a)) = (before, after) {
        for (k, old) in b {
            if a.get(k) != Some(old) {
                out.insert(k.clone(), old.clone());
            }
        }
    }
    Value::Object(out)
}

impl World {
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn id(&mut self, prefix: &str, len: usize) -> String {
        ids::make(&mut self.rng, prefix, len)
    }

    /// Append a Stripe event at `t` (unix seconds) to the log and the outbox.
    /// `api` says whether an API request caused it (`request.id` set).
    pub(crate) fn stripe_event(
        &mut self,
        t: i64,
        kind: &'static str,
        object: &Value,
        previous: Option<Value>,
        api: bool,
    ) {
        let id = self.id("evt_", 24);
        let request = api.then(|| {
            let r = self.id("req_", 14);
            let k = self.uuid();
            (r, k)
        });
        let seq = self.next_seq();
        self.events.insert(Event {
            id: id.clone(),
            seq,
            created: t,
            kind,
            object: object.to_string(),
            previous: previous.map(|p| p.to_string()),
            request,
            pending: 1,
        });
        self.outbox.push_back(Outgoing::Stripe { event_id: id });
        self.stripe_events += 1;
    }

    /// Queue a Clerk webhook of `kind` with `data`, at `ts` (unix ms).
    pub(crate) fn clerk_event(&mut self, ts: i64, kind: &str, data: Value) {
        let msg_id = self.id("msg_", 27);
        let body = json!({
            "data": data, "object": "event", "type": kind, "timestamp": ts,
            "instance_id": self.instance_id,
            "event_attributes": {"http_request": {"client_ip": "", "user_agent": ""}}
        })
        .to_string();
        self.outbox.push_back(Outgoing::Clerk {
            msg_id,
            event_type: kind.to_string(),
            body,
        });
        self.clerk_events += 1;
    }

    fn uuid(&mut self) -> String {
        let a: u64 = self.rng.random();
        let b: u64 = self.rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// The current simulated time in unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_is_valid() {
        let e = Event {
            id: "evt_1".into(),
            seq: 1,
            created: 5,
            kind: "customer.updated",
            object: r#"{"id":"cus_1"}"#.into(),
            previous: Some(r#"{"email":"a"}"#.into()),
            request: Some(("req_1".into(), "k".into())),
            pending: 1,
        };
        let v: Value = serde_json::from_str(&e.json("v")).unwrap();
        assert_eq!(v["data"]["previous_attributes"]["email"], "a");
        assert_eq!(v["request"]["id"], "req_1");
        assert_eq!(v["type"], "customer.updated");
        let e = Event {
            previous: None,
            request: None,
            ..e
        };
        let v: Value = serde_json::from_str(&e.json("v")).unwrap();
        assert!(v["request"]["id"].is_null());
        assert!(v["data"].get("previous_attributes").is_none());
    }

    #[test]
    fn previous_attributes_are_the_old_values() {
        let p = previous_attributes(
            &json!({"a": 1, "b": [1], "c": 3}),
            &json!({"a": 1, "b": [2], "c": 4}),
        );
        assert_eq!(p, json!({"b": [1], "c": 3}));
    }

    #[test]
    fn pool_picks_and_removes() {
        let mut p = Pool::default();
        for i in 0..5 {
            p.insert(&format!("x{i}"));
        }
        p.remove("x1");
        p.remove("x4");
        assert_eq!(p.len(), 3);
        p.insert("x0");
        assert_eq!(p.len(), 3);
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(1);
        for _ in 0..20 {
            let x = p.pick(&mut rng).unwrap();
            assert!(["x0", "x2", "x3"].contains(&x.as_str()));
        }
    }
}
