//! Stripe events: parsing an event into a [`ProviderEvent`], and reading
//! `GET /v1/events` oldest first.
//!
//! # Mapping
//! `data.object.object` decides the kind (`customer`, `subscription`,
//! `invoice`, `price`, `product`); the snapshot's version is the event's
//! `created`. `*.deleted` events give tombstones, except
//! `customer.subscription.deleted`, which carries the canceled subscription
//! (a live snapshot with status `canceled`). Every other event (payment
//! intents, discounts, `invoice.upcoming` without an id…) is returned with
//! no snapshots: recorded and acknowledged, never an error.
//!
//! # Reading the log oldest first
//! Stripe lists events newest first. Reading a window oldest first without
//! holding it in memory takes two phases per stream:
//! 1. find the oldest page: a search over `created` ranges for the first
//!    range `[lo, hi)` holding between 1 and 100 events (a few requests);
//! 2. then page towards the present with `ending_before=<newest id read>`,
//!    which is how Stripe's SDKs walk a list backwards.
//!
//! A configured type list longer than 20 (Stripe's `types[]` limit) becomes
//! several streams, merged by `created`: each call emits, from every stream,
//! only the events no later than the earliest of the streams' page ends, so
//! the whole sequence stays oldest first. Servers that list oldest first
//! are detected from the first page and paged with `starting_after`.
//! The cursor is a small text: one state per stream.

use recon_core::{Error, ErrorKind, EventPage, ProviderEvent, Result, Snapshot};
use serde_json::Value;

use crate::client::{Client, ListPage, Query};
use crate::objects::{is_plain_id, kind_of_object, to_snapshot};

/// Stripe accepts at most this many `types[]` per request.
pub const MAX_TYPES_PER_REQUEST: usize = 20;

/// Parse one event (`{"id":"evt_…","object":"event",…}`) into a
/// [`ProviderEvent`]. `default_account` is used when the event has no
/// Connect `account`.
pub fn parse_event(v: Value, default_account: &str) -> Result<ProviderEvent> {
    let bad = |m: &str| {
        Error::invalid(format!("not a Stripe event: {m}"))
            .with_component("stripe")
            .with_operation("parse event")
    };
    let Value::Object(mut m) = v else {
        return Err(bad("the body is not a JSON object"));
    };
    let event_id = m
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no `id`"))?
        .to_string();
    let event_type = m
        .get("type")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("no `type`"))?
        .to_string();
    let created = m
        .get("created")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("no integer `created`"))?;
    let account = m
        .get("account")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(default_account)
        .to_string();
    let object = m
        .remove("data")
        .and_then(|mut d| d.get_mut("object").map(Value::take));
    let snapshots = match object {
        Some(obj) => object_snapshot(&account, &event_type, obj, created)?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    Ok(ProviderEvent {
        provider: crate::NAME.to_string(),
        account,
        event_id,
        event_type,
        created,
        pending_webhooks: m
            .get("pending_webhooks")
            .and_then(Value::as_u64)
            .map(|n| n.min(u32::MAX as u64) as u32),
        snapshots,
    })
}

/// The snapshot an event's `data.object` stands for, if recon mirrors it.
fn object_snapshot(
    account: &str,
    event_type: &str,
    obj: Value,
    created: i64,
) -> Result<Option<Snapshot>> {
    let Some(kind) = obj
        .get("object")
        .and_then(Value::as_str)
        .and_then(kind_of_object)
    else {
        return Ok(None);
    };
    let Some(id) = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        // `invoice.upcoming` describes an invoice that does not exist yet.
        return Ok(None);
    };
    let deletes = event_type.ends_with(".deleted") && kind != "subscriptions";
    if deletes {
        let key = recon_core::ObjectKey::new(crate::NAME, account, kind, id);
        return Ok(Some(Snapshot::tombstone(key, created)));
    }
    to_snapshot(account, kind, obj, created).map(Some)
}

// ------------------------------------------------------------------ paging

/// Where one stream of the event log stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stream {
    /// Nothing read yet; no unread event is older than `lo`.
    Start(i64),
    /// Inside one second holding more than a page of events: continue after
    /// `after`, then search again from the next second (which works
    /// whatever order the server lists in).
    Second { at: i64, after: String },
    /// Newest-first server: continue with `ending_before`.
    Before(String),
    /// Oldest-first server: continue with `starting_after`.
    After(String),
    /// Read to the end.
    Done,
}

fn encode(streams: &[Stream]) -> String {
    streams
        .iter()
        .map(|s| match s {
            Stream::Start(lo) => format!("s:{lo}"),
            Stream::Second { at, after } => format!("x:{at}:{after}"),
            Stream::Before(id) => format!("b:{id}"),
            Stream::After(id) => format!("a:{id}"),
            Stream::Done => "d".to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn decode(cursor: &str, n: usize) -> Result<Vec<Stream>> {
    let bad = || {
        Error::invalid(format!("not a Stripe event cursor: {cursor:?}")).with_component("stripe")
    };
    let id = |s: &str| {
        if is_plain_id(s) {
            Ok(s.to_string())
        } else {
            Err(bad())
        }
    };
    let streams = cursor
        .split('|')
        .map(|part| {
            let fields: Vec<&str> = part.split(':').collect();
            Ok(match fields.as_slice() {
                ["s", lo] => Stream::Start(lo.parse().map_err(|_| bad())?),
                ["x", at, after] => Stream::Second {
                    at: at.parse().map_err(|_| bad())?,
                    after: id(after)?,
                },
                ["b", i] => Stream::Before(id(i)?),
                ["a", i] => Stream::After(id(i)?),
                ["d"] => Stream::Done,
                _ => return Err(bad()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if streams.len() != n {
        return Err(bad());
    }
    Ok(streams)
}

/// One fetched page of a stream, oldest first, and how to move on.
struct Chunk {
    /// Events oldest first, with the list id of each (for cursors).
    events: Vec<ProviderEvent>,
    /// The stream has nothing after these events.
    exhausted: bool,
    /// The stream's state once every event of the chunk is emitted.
    all_taken: Stream,
    /// The state when only a prefix was emitted, from the last emitted id.
    partial: fn(String) -> Stream,
    /// The state when nothing was emitted.
    none_taken: Stream,
}

fn created_of(v: &Value) -> i64 {
    v.get("created").and_then(Value::as_i64).unwrap_or(0)
}

fn id_of(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Strictly ascending somewhere and never descending: an oldest-first page.
fn ascending(data: &[Value]) -> bool {
    let c: Vec<i64> = data.iter().map(created_of).collect();
    c.windows(2).all(|w| w[0] <= w[1]) && c.first() < c.last()
}

/// Reads the event log for a provider.
pub(crate) struct EventReader<'a> {
    pub client: &'a Client,
    pub account: &'a str,
    pub groups: Vec<Vec<String>>,
}

impl EventReader<'_> {
    fn query(&self, group: &[String], gte: i64, lt: Option<i64>) -> Query {
        let mut q: Query = vec![("limit", "100".into()), ("created[gte]", gte.to_string())];
        if let Some(lt) = lt {
            q.push(("created[lt]", lt.to_string()));
        }
        for t in group {
            q.push(("types[]", t.clone()));
        }
        q
    }

    async fn list(&self, q: &Query) -> Result<ListPage> {
        self.client.list("list events", "/v1/events", q).await
    }

    fn parse_all(&self, data: Vec<Value>) -> Result<Vec<ProviderEvent>> {
        data.into_iter()
            .map(|v| parse_event(v, self.account))
            .collect()
    }

    /// Newest-first page → oldest-first events.
    fn oldest_first(&self, mut data: Vec<Value>) -> Result<Vec<ProviderEvent>> {
        if !ascending(&data) {
            data.reverse();
        }
        let mut events = self.parse_all(data)?;
        events.sort_by_key(|e| e.created);
        Ok(events)
    }

    /// Phase 1: the oldest page of events at or after `lo`.
    async fn first_page(&self, group: &[String], lo: i64) -> Result<Chunk> {
        let top = self.list(&self.query(group, lo, None)).await?;
        if top.data.is_empty() {
            return Ok(done_chunk());
        }
        if !top.has_more || ascending(&top.data) {
            // The whole remainder, or an oldest-first server's first page.
            let exhausted = !top.has_more;
            let oldest_first = ascending(&top.data);
            let newest = if oldest_first {
                top.data.last().map(id_of)
            } else {
                top.data.first().map(id_of)
            }
            .unwrap_or_default();
            let events = self.oldest_first(top.data)?;
            return Ok(Chunk {
                events,
                exhausted,
                all_taken: match (exhausted, oldest_first) {
                    (true, _) => Stream::Done,
                    (false, true) => Stream::After(newest),
                    (false, false) => Stream::Before(newest),
                },
                partial: if oldest_first {
                    Stream::After
                } else {
                    Stream::Before
                },
                none_taken: Stream::Start(lo),
            });
        }
        // Newest first with more below: search [lo, heavy) for the first
        // range of at most one page. Events exist at or below the page's
        // oldest second, so [lo, heavy) is never empty.
        let density = |data: &[Value]| {
            let (mut a, mut b) = (i64::MAX, i64::MIN);
            for c in data.iter().map(created_of) {
                a = a.min(c);
                b = b.max(c);
            }
            (a, data.len() as f64 / ((b - a + 1) as f64))
        };
        let (oldest, mut rho) = density(&top.data);
        let mut lo_e = lo;
        let mut heavy = oldest.saturating_add(1);
        let mut width: i64 = 0;
        for _ in 0..200 {
            let span = heavy - lo_e;
            if span <= 1 {
                // One second with more than a page: walk it newest first.
                let page = self.list(&self.query(group, lo_e, Some(lo_e + 1))).await?;
                return self.second_chunk(lo_e, page);
            }
            // Aim at half a page, never past half the range (so it shrinks).
            let aim = (50.0 / rho.max(1e-9)).clamp(1.0, 4e9) as i64;
            width = if width == 0 { aim } else { width.max(aim) };
            let w = width.clamp(1, (span + 1) / 2);
            let page = self.list(&self.query(group, lo_e, Some(lo_e + w))).await?;
            if page.data.is_empty() {
                lo_e += w;
                width = w.saturating_mul(2);
            } else if !page.has_more {
                // Continue towards the present from the newest event read,
                // in whichever direction this server lists.
                let (newest, next): (_, fn(String) -> Stream) = if ascending(&page.data) {
                    (page.data.last().map(id_of), Stream::After)
                } else {
                    (page.data.first().map(id_of), Stream::Before)
                };
                let events = self.oldest_first(page.data)?;
                return Ok(Chunk {
                    events,
                    exhausted: false,
                    all_taken: next(newest.unwrap_or_default()),
                    partial: next,
                    none_taken: Stream::Start(lo_e),
                });
            } else {
                let (o, r) = density(&page.data);
                heavy = heavy.min(o + 1);
                rho = r;
                width = 0;
            }
        }
        Err(Error::new(
            ErrorKind::Unexpected,
            "could not find the oldest page of Stripe events (the server's answers are inconsistent)",
        )
        .with_component("stripe")
        .with_operation("list events"))
    }

    /// A page inside one crowded second `at`.
    fn second_chunk(&self, at: i64, page: ListPage) -> Result<Chunk> {
        let last = page.data.last().map(id_of).unwrap_or_default();
        let has_more = page.has_more;
        // All in one second: any order within it is oldest first.
        let events = self.parse_all(page.data)?;
        Ok(Chunk {
            events,
            exhausted: false,
            all_taken: if has_more {
                Stream::Second { at, after: last }
            } else {
                Stream::Start(at + 1)
            },
            partial: Stream::Before,
            none_taken: Stream::Start(at),
        })
    }

    async fn next_chunk(&self, group: &[String], since: i64, state: &Stream) -> Result<Chunk> {
        match state {
            Stream::Done => Ok(done_chunk()),
            Stream::Start(lo) => self.first_page(group, *lo).await,
            Stream::Second { at, after } => {
                let mut q = self.query(group, *at, Some(at + 1));
                q.push(("starting_after", after.clone()));
                let page = self.list(&q).await?;
                let mut c = self.second_chunk(*at, page)?;
                c.none_taken = state.clone();
                Ok(c)
            }
            Stream::Before(id) => {
                let mut q = self.query(group, since, None);
                q.push(("ending_before", id.clone()));
                let page = self.list(&q).await?;
                let exhausted = !page.has_more;
                // ending_before pages are newest first: data[0] is the newest.
                let newest = if ascending(&page.data) {
                    page.data.last().map(id_of)
                } else {
                    page.data.first().map(id_of)
                };
                let events = self.oldest_first(page.data)?;
                Ok(Chunk {
                    exhausted: exhausted || events.is_empty(),
                    all_taken: match newest {
                        Some(n) if !exhausted => Stream::Before(n),
                        _ => Stream::Done,
                    },
                    events,
                    partial: Stream::Before,
                    none_taken: state.clone(),
                })
            }
            Stream::After(id) => {
                let mut q = self.query(group, since, None);
                q.push(("starting_after", id.clone()));
                let page = self.list(&q).await?;
                let exhausted = !page.has_more;
                let last = page.data.last().map(id_of);
                let events = self.oldest_first(page.data)?;
                Ok(Chunk {
                    exhausted: exhausted || events.is_empty(),
                    all_taken: match last {
                        Some(n) if !exhausted => Stream::After(n),
                        _ => Stream::Done,
                    },
                    events,
                    partial: Stream::After,
                    none_taken: state.clone(),
                })
            }
        }
    }

    /// One page of the merged log, oldest first.
    pub(crate) async fn page(&self, since: i64, cursor: Option<&str>) -> Result<EventPage> {
        let n = self.groups.len();
        let mut states = match cursor {
            None => vec![Stream::Start(since); n],
            Some(c) => decode(c, n)?,
        };
        let chunks = futures::future::try_join_all(
            self.groups
                .iter()
                .zip(&states)
                .map(|(g, s)| self.next_chunk(g, since, s)),
        )
        .await?;
        // Emit up to the earliest page end among streams that go on.
        let watermark = chunks
            .iter()
            .filter(|c| !c.exhausted)
            .filter_map(|c| c.events.last().map(|e| e.created))
            .min()
            .unwrap_or(i64::MAX);
        let mut out: Vec<ProviderEvent> = Vec::new();
        for (state, chunk) in states.iter_mut().zip(chunks) {
            let take = chunk
                .events
                .iter()
                .take_while(|e| e.created <= watermark)
                .count();
            *state = if take == chunk.events.len() {
                chunk.all_taken
            } else if take == 0 {
                chunk.none_taken
            } else {
                (chunk.partial)(chunk.events[take - 1].event_id.clone())
            };
            out.extend(chunk.events.into_iter().take(take));
        }
        out.sort_by_key(|e| e.created);
        let mut seen = std::collections::HashSet::new();
        out.retain(|e| seen.insert(e.event_id.clone()));
        let next = states
            .iter()
            .any(|s| *s != Stream::Done)
            .then(|| encode(&states));
        Ok(EventPage { events: out, next })
    }
}

fn done_chunk() -> Chunk {
    Chunk {
        events: Vec::new(),
        exhausted: true,
        all_taken: Stream::Done,
        partial: Stream::Before,
        none_taken: Stream::Done,
    }
}

/// Split a type list into groups Stripe accepts; no list means one
/// unfiltered group.
pub(crate) fn type_groups(types: &[String]) -> Vec<Vec<String>> {
    let mut uniq: Vec<String> = Vec::new();
    for t in types {
        let t = t.trim();
        if !t.is_empty() && !uniq.iter().any(|u| u == t) {
            uniq.push(t.to_string());
        }
    }
    if uniq.is_empty() {
        return vec![Vec::new()];
    }
    uniq.chunks(MAX_TYPES_PER_REQUEST)
        .map(<[String]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: &str, obj: Value) -> ProviderEvent {
        parse_event(
            json!({"id":"evt_1","object":"event","type":t,"created":1700000123,
                   "data":{"object":obj}}),
            "default",
        )
        .unwrap()
    }

    #[test]
    fn maps_types_to_snapshots() {
        let e = ev(
            "customer.updated",
            json!({"id":"cus_1","object":"customer","email":"a@b"}),
        );
        assert_eq!(e.snapshots.len(), 1);
        let s = &e.snapshots[0];
        assert_eq!(
            (s.key.kind.as_str(), s.key.id.as_str()),
            ("customers", "cus_1")
        );
        assert_eq!(s.version, 1700000123);
        assert!(!s.deleted);
        assert_eq!(s.email.as_deref(), Some("a@b"));

        let e = ev(
            "customer.deleted",
            json!({"id":"cus_1","object":"customer","email":"a@b"}),
        );
        assert!(e.snapshots[0].deleted);
        assert_eq!(e.snapshots[0].version, 1700000123);

        let e = ev(
            "customer.subscription.deleted",
            json!({"id":"sub_1","object":"subscription","status":"canceled","customer":"cus_1"}),
        );
        let s = &e.snapshots[0];
        assert!(!s.deleted);
        assert_eq!(s.key.kind, "subscriptions");
        assert_eq!(s.status.as_deref(), Some("canceled"));
        assert_eq!(s.owner.as_deref(), Some("cus_1"));

        for (t, kind) in [
            ("invoice.paid", "invoices"),
            ("price.updated", "prices"),
            ("product.created", "products"),
            ("customer.subscription.updated", "subscriptions"),
        ] {
            let id = match kind {
                "invoices" => "in_1",
                "prices" => "price_1",
                "products" => "prod_1",
                _ => "sub_1",
            };
            let object = match kind {
                "invoices" => "invoice",
                "prices" => "price",
                "products" => "product",
                _ => "subscription",
            };
            let e = ev(t, json!({"id": id, "object": object}));
            assert_eq!(e.snapshots[0].key.kind, kind, "{t}");
        }
        for (t, kind) in [
            ("price.deleted", "price"),
            ("product.deleted", "product"),
            ("invoice.deleted", "invoice"),
        ] {
            let e = ev(t, json!({"id": "x_1", "object": kind}));
            assert!(e.snapshots[0].deleted, "{t}");
        }
    }

    #[test]
    fn unknown_and_unmirrored_types_have_no_snapshots() {
        for (t, obj) in [
            (
                "payment_intent.succeeded",
                json!({"id":"pi_1","object":"payment_intent"}),
            ),
            (
                "customer.discount.created",
                json!({"id":"di_1","object":"discount"}),
            ),
            (
                "customer.source.created",
                json!({"id":"card_1","object":"card"}),
            ),
            (
                "invoice.upcoming",
                json!({"object":"invoice","customer":"cus_1"}),
            ),
            ("brand_new.thing", json!({"id":"x_1","object":"brand_new"})),
        ] {
            let e = ev(t, obj);
            assert!(e.snapshots.is_empty(), "{t}");
            assert_eq!(e.event_type, t);
        }
        let e = parse_event(json!({"id":"evt_2","type":"x.y","created":1}), "default").unwrap();
        assert!(e.snapshots.is_empty());
    }

    #[test]
    fn connect_account_and_bad_events() {
        let e = parse_event(
            json!({"id":"evt_1","type":"customer.created","created":5,"account":"acct_9",
                   "data":{"object":{"id":"cus_1","object":"customer"}}}),
            "default",
        )
        .unwrap();
        assert_eq!(e.account, "acct_9");
        assert_eq!(e.snapshots[0].key.account, "acct_9");
        assert!(parse_event(json!({"type":"x","created":1}), "d").is_err());
        assert!(parse_event(json!({"id":"evt","created":1}), "d").is_err());
        assert!(parse_event(json!({"id":"evt","type":"x"}), "d").is_err());
        assert!(parse_event(json!([1]), "d").is_err());
    }

    #[test]
    fn cursor_round_trip_and_groups() {
        let s = vec![
            Stream::Start(5),
            Stream::Second {
                at: 7,
                after: "evt_a".into(),
            },
            Stream::Before("evt_c".into()),
            Stream::After("evt_d".into()),
            Stream::Done,
        ];
        assert_eq!(decode(&encode(&s), 5).unwrap(), s);
        assert!(decode("b:evt_1", 2).is_err());
        assert!(decode("q:1", 1).is_err());
        assert!(decode("b:evt/../x", 1).is_err());
        let types: Vec<String> = (0..45).map(|i| format!("t.{i}")).collect();
        let g = type_groups(&types);
        assert_eq!(g.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 20, 5]);
        assert_eq!(type_groups(&[]), vec![Vec::<String>::new()]);
    }
}
