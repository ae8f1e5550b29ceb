//! [`SimHandle`]: everything a test or the demo does with a running
//! simulator.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{
    DeliveryFaults, DeliveryReport, Faults, MutationReport, MutationWeights, Provider,
    STRIPE_WEBHOOK_SECRET, Shared, Stats, Truth, Webhook, WebhookTargets, sign, truth, webhooks,
};

pub(crate) struct Control {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    mutator: Option<tokio::task::JoinHandle<()>>,
}

/// A running simulator. Cheap to clone; every clone controls the same one.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    control: Arc<Mutex<Control>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimHandle {
    pub(crate) fn new(
        shared: Arc<Shared>,
        addr: SocketAddr,
        stop: tokio::sync::oneshot::Sender<()>,
        server: tokio::task::JoinHandle<()>,
    ) -> Self {
        SimHandle {
            shared,
            addr,
            control: Arc::new(Mutex::new(Control {
                stop: Some(stop),
                server: Some(server),
                mutator: None,
            })),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `STRIPE_API_BASE` for recon: `http://127.0.0.1:<port>/stripe`
    /// (requests go to `…/stripe/v1/customers`).
    pub fn stripe_base(&self) -> String {
        format!("http://{}/stripe", self.addr)
    }

    /// `CLERK_API_BASE` for recon: `http://127.0.0.1:<port>/clerk`
    /// (requests go to `…/clerk/v1/users`).
    pub fn clerk_base(&self) -> String {
        format!("http://{}/clerk", self.addr)
    }

    /// The Stripe key the simulator accepts.
    pub fn stripe_key(&self) -> &str {
        &self.shared.stripe_key
    }

    /// The Clerk key the simulator accepts.
    pub fn clerk_key(&self) -> &str {
        &self.shared.clerk_key
    }

    /// Targets at the given URLs with secrets derived from the seed: Stripe
    /// [`STRIPE_WEBHOOK_SECRET`], Clerk a valid `whsec_<base64>`.
    pub fn webhook_targets(
        &self,
        stripe_url: Option<String>,
        clerk_url: Option<String>,
    ) -> WebhookTargets {
        WebhookTargets {
            stripe_url,
            stripe_secret: STRIPE_WEBHOOK_SECRET.to_string(),
            clerk_url,
            clerk_secret: sign::svix_secret_from_seed(self.shared.seed),
        }
    }

    /// Create the initial population: `customers` Stripe customers (88%
    /// with a subscription and its first invoice) and `users` Clerk users
    /// (paired with the customers as far as both go), plus organizations and
    /// memberships. Silent and backdated: all of it is older than Stripe's
    /// 30-day event window, so it has no events and queues no webhooks; a
    /// mirror learns it by sweeping. Call it once, before mutating.
    pub fn seed_initial(&self, customers: usize, users: usize) {
        let mut w = self.shared.world.write().expect("lock");
        w.seed_population(customers, users, &self.shared.params);
    }

    /// Apply `n` seeded random mutations (with the configured weights).
    pub fn mutate(&self, n: usize) -> MutationReport {
        let weights = self.shared.weights.lock().expect("lock").clone();
        self.mutate_with(n, &weights)
    }

    /// Apply `n` mutations with other weights (e.g. [`MutationWeights::only`]).
    pub fn mutate_with(&self, n: usize, weights: &MutationWeights) -> MutationReport {
        let mut report = MutationReport::default();
        let mut left = n;
        // In chunks, so that API requests are served in between.
        while left > 0 {
            let chunk = left.min(256);
            left -= chunk;
            let mut w = self.shared.world.write().expect("lock");
            let (s0, c0) = (w.stripe_events, w.clerk_events);
            for _ in 0..chunk {
                let k = w.mutate_one(weights, &self.shared.params);
                *report.applied.entry(k).or_insert(0) += 1;
            }
            report.stripe_events += w.stripe_events - s0;
            report.clerk_events += w.clerk_events - c0;
        }
        report
    }

    /// Change the weights [`SimHandle::mutate`] and the mutator use.
    pub fn set_weights(&self, weights: MutationWeights) {
        *self.shared.weights.lock().expect("lock") = weights;
    }

    /// Mutate in the background at about `per_second` mutations a second
    /// (replacing a running mutator).
    pub fn start_mutator(&self, per_second: f64) {
        self.stop_mutator();
        let h = self.clone();
        let task = tokio::spawn(async move {
            let tick = Duration::from_millis(10);
            let mut due = 0.0;
            let mut iv = tokio::time::interval(tick);
            loop {
                iv.tick().await;
                due += per_second * tick.as_secs_f64();
                let n = due.floor() as usize;
                if n > 0 {
                    due -= n as f64;
                    h.mutate(n);
                }
            }
        });
        self.control.lock().expect("lock").mutator = Some(task);
    }

    /// Stop the background mutator, if any.
    pub fn stop_mutator(&self) {
        if let Some(t) = self.control.lock().expect("lock").mutator.take() {
            t.abort();
        }
    }

    /// Set both providers' API faults (resets the rate budget and the
    /// listing-failure counts).
    pub fn set_faults(&self, faults: Faults) {
        self.set_provider_faults(Provider::Stripe, faults.clone());
        self.set_provider_faults(Provider::Clerk, faults);
    }

    /// Set one provider's API faults.
    pub fn set_provider_faults(&self, provider: Provider, faults: Faults) {
        self.shared.faults.lock().expect("lock")[provider.index()] = faults;
        self.shared.fault_state[provider.index()].reset();
    }

    /// One provider's API faults.
    pub fn faults(&self, provider: Provider) -> Faults {
        self.shared.faults.lock().expect("lock")[provider.index()].clone()
    }

    /// Messages waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.shared.world.read().expect("lock").outbox.len()
    }

    /// Take every waiting message, unsigned ([`Webhook::headers`] signs).
    pub fn take_outbox(&self) -> Vec<Webhook> {
        let items: Vec<_> = {
            let mut w = self.shared.world.write().expect("lock");
            w.outbox.drain(..).collect()
        };
        webhooks::render(&self.shared, &items)
    }

    /// Throw the outbox away (webhooks lost for good); returns how many.
    pub fn discard_outbox(&self) -> usize {
        let mut w = self.shared.world.write().expect("lock");
        let n = w.outbox.len();
        w.outbox.clear();
        n
    }

    /// POST the outbox's messages to `targets`, signed, with `faults`.
    pub async fn deliver(
        &self,
        targets: &WebhookTargets,
        faults: &DeliveryFaults,
    ) -> DeliveryReport {
        webhooks::deliver(&self.shared, targets, faults).await
    }

    /// Every object's current state.
    pub fn truth(&self) -> Truth {
        truth::snapshot(&self.shared.world.read().expect("lock"))
    }

    /// Requests served and faults injected so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().expect("lock").clone()
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("lock") = Stats::default();
    }

    /// The simulated time, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.shared.world.read().expect("lock").now_ms()
    }

    /// Put the providers' clock `skew_ms` from the wall clock from now on
    /// (see [`crate::SimConfig::clock_skew_ms`]). The clock never goes
    /// backwards: lowering the skew takes effect once the wall catches up.
    pub fn set_clock_skew(&self, skew_ms: i64) {
        self.shared
            .world
            .write()
            .expect("lock")
            .clock
            .set_skew(skew_ms);
    }

    /// Stripe's webhook endpoints as its API shows them, oldest first
    /// (`POST /stripe/v1/webhook_endpoints` creates one).
    pub fn stripe_webhook_endpoints(&self) -> Vec<serde_json::Value> {
        let w = self.shared.world.read().expect("lock");
        let t = &w.stripe.webhook_endpoints;
        t.index
            .values()
            .filter_map(|id| t.get(id))
            .map(|e| e.json(false))
            .collect()
    }

    /// Disable (or enable again) a Stripe webhook endpoint, as Stripe
    /// disables one whose deliveries keep failing. Whether it exists.
    pub fn set_stripe_webhook_endpoint_disabled(&self, id: &str, disabled: bool) -> bool {
        let mut w = self.shared.world.write().expect("lock");
        w.stripe
            .webhook_endpoints
            .update(id, |e| e.disabled = disabled)
            .is_some()
    }

    /// Stripe events in the log (all, including ones older than 30 days).
    pub fn stripe_event_count(&self) -> usize {
        self.shared.world.read().expect("lock").events.rows.len()
    }

    /// Stop the mutator and the server (waits for open connections to end).
    pub async fn shutdown(&self) {
        self.stop_mutator();
        let (stop, server) = {
            let mut c = self.control.lock().expect("lock");
            (c.stop.take(), c.server.take())
        };
        if let Some(s) = stop {
            let _ = s.send(());
        }
        if let Some(s) = server {
            let _ = s.await;
        }
    }
}
