//! The webhook outbox and its delivery, with faults: drops, duplicates,
//! reordering inside a window, late (delayed) messages, stale timestamps
//! and a second signature as during secret rotation.
//!
//! The plan of one delivery (what is dropped, doubled, moved) is drawn from
//! the seed and the number of the delivery, so the same calls give the same
//! plan. With `concurrency: 1` (the default) the receiver also sees the
//! messages in exactly the planned order.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::sign::{self, InvalidSecret};
use crate::state::Outgoing;
use crate::{Provider, Shared};

/// Where and with which secrets to send webhooks. A provider without a URL
/// keeps its messages in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTargets {
    /// The Stripe endpoint (e.g. `http://127.0.0.1:8080/webhooks/stripe`).
    pub stripe_url: Option<String>,
    /// The Stripe endpoint secret (`whsec_…`, used whole).
    pub stripe_secret: String,
    /// The Clerk endpoint.
    pub clerk_url: Option<String>,
    /// The Svix secret (`whsec_<base64>`).
    pub clerk_secret: String,
}

/// Delivery fault knobs. Shares are per message, 0.0–1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFaults {
    /// Messages never sent (lost for good: not put back in the outbox).
    pub drop: f64,
    /// Messages sent twice (same event id / `svix-id`), the copy placed
    /// independently inside the reordering window.
    pub duplicate: f64,
    /// Each message is moved by up to this many places.
    pub reorder_window: usize,
    /// Messages held back and sent after all the others.
    pub delayed: f64,
    /// Pause before the held-back messages are sent.
    pub delay: Duration,
    /// First attempts signed with a timestamp 10 minutes old (outside both
    /// providers' tolerance); a receiver must refuse them.
    pub stale_timestamp: f64,
    /// Messages carrying a second, wrong `v1` signature next to the good one
    /// (secret rotation); a receiver must accept them.
    pub extra_signature: f64,
    /// Attempts per message (non-2xx or a transport error is a failure).
    pub max_attempts: u32,
    /// Put messages that failed every attempt back in the outbox, as the
    /// providers retry later.
    pub requeue_failed: bool,
    /// POSTs in flight at once.
    pub concurrency: usize,
    /// Timeout of one POST.
    pub timeout: Duration,
}

impl Default for DeliveryFaults {
    fn default() -> Self {
        DeliveryFaults {
            drop: 0.0,
            duplicate: 0.0,
            reorder_window: 0,
            delayed: 0.0,
            delay: Duration::ZERO,
            stale_timestamp: 0.0,
            extra_signature: 0.0,
            max_attempts: 1,
            requeue_failed: true,
            concurrency: 1,
            timeout: Duration::from_secs(15),
        }
    }
}

/// One webhook message: what a provider would POST, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Who sends it.
    pub provider: Provider,
    /// The Stripe event id (`evt_…`) or the Svix message id (`msg_…`).
    pub id: String,
    /// The event type (`customer.updated`, `user.deleted`, …).
    pub event_type: String,
    /// The raw JSON body.
    pub body: String,
}

impl Webhook {
    /// The signature headers for sending at `t` (unix seconds) under `secret`.
    pub fn headers(&self, secret: &str, t: i64) -> Result<Vec<(String, String)>, InvalidSecret> {
        self.headers_with(secret, t, false)
    }

    fn headers_with(
        &self,
        secret: &str,
        t: i64,
        extra: bool,
    ) -> Result<Vec<(String, String)>, InvalidSecret> {
        let body = self.body.as_bytes();
        let mut h = vec![(
            "content-type".to_string(),
            "application/json; charset=utf-8".to_string(),
        )];
        match self.provider {
            Provider::Stripe => {
                let mut sig = sign::stripe(secret, t, body);
                if extra {
                    sig.push_str(&format!(
                        ",v1={}",
                        sign::stripe_signature("whsec_old", t, body)
                    ));
                }
                h.push(("stripe-signature".into(), sig));
                h.push((
                    "user-agent".into(),
                    "Stripe/1.0 (+https://stripe.com/docs/webhooks)".into(),
                ));
            }
            Provider::Clerk => {
                let mut sig = sign::svix(secret, &self.id, t, body)?;
                if extra {
                    sig = format!(
                        "{} {sig}",
                        sign::svix_with_key(b"old-secret", &self.id, t, body)
                    );
                }
                h.push(("svix-id".into(), self.id.clone()));
                h.push(("svix-timestamp".into(), t.to_string()));
                h.push(("svix-signature".into(), sig));
                h.push(("user-agent".into(), "Svix-Webhooks/1.0".into()));
            }
        }
        Ok(h)
    }
}

/// A POST that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedPost {
    /// Who sent it.
    pub provider: Provider,
    /// The event or message id.
    pub id: String,
    /// The last HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The transport error, if none came.
    pub error: Option<String>,
}

/// What one delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages taken from the outbox.
    pub taken: u64,
    /// Messages dropped (never sent), with their ids.
    pub dropped: Vec<String>,
    /// Messages sent twice.
    pub duplicated: u64,
    /// Messages held back to the end.
    pub delayed: u64,
    /// First attempts sent with a stale timestamp.
    pub stale: u64,
    /// HTTP POSTs made (attempts and copies included).
    pub posts: u64,
    /// Copies answered 2xx.
    pub delivered: u64,
    /// Copies that failed every attempt.
    pub failed: Vec<FailedPost>,
    /// Messages put back in the outbox.
    pub requeued: u64,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Ids in the order they were sent (a duplicate appears twice).
    pub order: Vec<String>,
    /// Ids of the copies answered 2xx, in order: what the receiver
    /// acknowledged and so must never lose.
    pub acknowledged: Vec<String>,
}

/// One planned copy.
#[derive(Debug, Clone)]
struct Planned {
    msg: Webhook,
    stale: bool,
    extra: bool,
}

/// Turn outbox entries into messages.
pub(crate) fn render(s: &Shared, items: &[Outgoing]) -> Vec<Webhook> {
    let w = s.world.read().expect("lock");
    items
        .iter()
        .filter_map(|o| match o {
            Outgoing::Stripe { event_id } => w.events.get(event_id).map(|e| Webhook {
                provider: Provider::Stripe,
                id: e.id.clone(),
                event_type: e.kind.to_string(),
                body: e.json(&w.api_version),
            }),
            Outgoing::Clerk {
                msg_id,
                event_type,
                body,
            } => Some(Webhook {
                provider: Provider::Clerk,
                id: msg_id.clone(),
                event_type: event_type.clone(),
                body: body.clone(),
            }),
        })
        .collect()
}

/// The copies to send now and the held-back ones, in sending order.
fn plan(
    msgs: Vec<Webhook>,
    f: &DeliveryFaults,
    rng: &mut StdRng,
    report: &mut DeliveryReport,
) -> (Vec<Planned>, Vec<Planned>) {
    let mut now: Vec<(f64, Planned)> = Vec::new();
    let mut late: Vec<(f64, Planned)> = Vec::new();
    let window = f.reorder_window as f64;
    for (i, msg) in msgs.into_iter().enumerate() {
        // Every draw is made for every message, so one knob does not shift
        // the others' choices.
        let (d, dup, del, st, ex): (f64, f64, f64, f64, f64) = (
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
            rng.random(),
        );
        let (j1, j2): (f64, f64) = (rng.random(), rng.random());
        if d < f.drop {
            report.dropped.push(msg.id.clone());
            continue;
        }
        let group = if del < f.delayed {
            report.delayed += 1;
            &mut late
        } else {
            &mut now
        };
        let stale = st < f.stale_timestamp;
        report.stale += u64::from(stale);
        let extra = ex < f.extra_signature;
        let base = i as f64;
        if dup < f.duplicate {
            report.duplicated += 1;
            let copy = Planned {
                msg: msg.clone(),
                stale: false,
                extra,
            };
            group.push((base + j2 * window + 0.5, copy));
        }
        group.push((base + j1 * window, Planned { msg, stale, extra }));
    }
    let sorted = |mut v: Vec<(f64, Planned)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.into_iter().map(|x| x.1).collect::<Vec<_>>()
    };
    (sorted(now), sorted(late))
}

/// The result of sending one copy.
struct Sent {
    msg: Webhook,
    posts: u64,
    statuses: Vec<u16>,
    ok: bool,
    error: Option<String>,
}

async fn send(s: &Shared, t: &WebhookTargets, p: Planned, f: &DeliveryFaults) -> Sent {
    let http = &s.http;
    let (url, secret) = match p.msg.provider {
        Provider::Stripe => (t.stripe_url.as_deref(), t.stripe_secret.as_str()),
        Provider::Clerk => (t.clerk_url.as_deref(), t.clerk_secret.as_str()),
    };
    let mut out = Sent {
        msg: p.msg.clone(),
        posts: 0,
        statuses: Vec::new(),
        ok: false,
        error: None,
    };
    let Some(url) = url else {
        out.error = Some("no URL".into());
        return out;
    };
    for attempt in 0..f.max_attempts.max(1) {
        // Signed by the provider's clock (the wall clock, skewed if set).
        let mut ts = s
            .world
            .read()
            .expect("lock")
            .clock
            .provider_wall_ms()
            .div_euclid(1000);
        if attempt == 0 && p.stale {
            ts -= 600;
        }
        let headers = match p.msg.headers_with(secret, ts, p.extra) {
            Ok(h) => h,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        };
        let mut req = http.post(url).timeout(f.timeout).body(p.msg.body.clone());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        out.posts += 1;
        match req.send().await {
            Ok(r) => {
                let st = r.status().as_u16();
                let _ = r.bytes().await;
                out.statuses.push(st);
                if (200..300).contains(&st) {
                    out.ok = true;
                    out.error = None;
                    return out;
                }
            }
            Err(e) => out.error = Some(e.to_string()),
        }
    }
    out
}

/// Deliver everything in the outbox for which `targets` has a URL.
pub(crate) async fn deliver(
    s: &Shared,
    targets: &WebhookTargets,
    f: &DeliveryFaults,
) -> DeliveryReport {
    let items: Vec<Outgoing> = {
        let mut w = s.world.write().expect("lock");
        let (take, keep): (Vec<Outgoing>, Vec<Outgoing>) =
            w.outbox.drain(..).partition(|o| match o {
                Outgoing::Stripe { .. } => targets.stripe_url.is_some(),
                Outgoing::Clerk { .. } => targets.clerk_url.is_some(),
            });
        w.outbox.extend(keep);
        take
    };
    let mut report = DeliveryReport {
        taken: items.len() as u64,
        ..DeliveryReport::default()
    };
    let n = s
        .deliveries
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut rng =
        StdRng::seed_from_u64(crate::ids::splitmix(s.seed ^ 0xde11_7e27) ^ crate::ids::splitmix(n));
    let msgs = render(s, &items);
    let (first, late) = plan(msgs, f, &mut rng, &mut report);
    let mut results = Vec::new();
    for (i, group) in [first, late].into_iter().enumerate() {
        if i == 1 && !group.is_empty() && !f.delay.is_zero() {
            tokio::time::sleep(f.delay).await;
        }
        let sent: Vec<Sent> = futures::stream::iter(group)
            .map(|p| send(s, targets, p, f))
            .buffered(f.concurrency.max(1))
            .collect()
            .await;
        results.extend(sent);
    }
    let mut delivered = std::collections::HashSet::new();
    let mut failed_ids = std::collections::HashSet::new();
    for r in results {
        report.posts += r.posts;
        report.order.push(r.msg.id.clone());
        for st in &r.statuses {
            *report.statuses.entry(*st).or_insert(0) += 1;
        }
        if r.ok {
            report.delivered += 1;
            report.acknowledged.push(r.msg.id.clone());
            delivered.insert((r.msg.provider, r.msg.id.clone()));
        } else {
            failed_ids.insert(r.msg.id.clone());
            report.failed.push(FailedPost {
                provider: r.msg.provider,
                id: r.msg.id.clone(),
                status: r.statuses.last().copied(),
                error: r.error,
            });
        }
    }
    let mut w = s.world.write().expect("lock");
    for (p, id) in delivered {
        // One good copy is a delivery: nothing to retry.
        failed_ids.remove(&id);
        if p == Provider::Stripe {
            w.events.update(&id, |e| e.pending = 0);
        }
    }
    if f.requeue_failed {
        for o in items {
            let id = match &o {
                Outgoing::Stripe { event_id } => event_id,
                Outgoing::Clerk { msg_id, .. } => msg_id,
            };
            if failed_ids.remove(id.as_str()) {
                w.outbox.push_back(o);
                report.requeued += 1;
            }
        }
    }
    report
}
