#![doc = include_str!("../README.md")]

mod clerk_api;
mod clerk_json;
mod clerk_mutate;
mod clerk_state;
mod faults;
mod handle;
mod ids;
mod json;
mod mutate;
mod query;
mod seed;
mod server;
pub mod sign;
mod state;
mod stripe_api;
mod stripe_json;
mod stripe_state;
mod table;
mod truth;
mod webhooks;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::SeedableRng;
use rand::rngs::StdRng;

pub use faults::{Faults, ListFailure, RateBudget};
pub use handle::SimHandle;
pub use mutate::{MutationKind, MutationReport, MutationWeights};
pub use truth::{Truth, TruthObject};
pub use webhooks::{DeliveryFaults, DeliveryReport, FailedPost, Webhook, WebhookTargets};

use crate::faults::FaultState;
use crate::seed::Params;
use crate::state::World;
use crate::table::Table;

/// The Stripe API version events are rendered with.
pub const STRIPE_API_VERSION: &str = "2025-03-31.basil";
/// The default Stripe secret key the simulator accepts.
pub const STRIPE_KEY: &str = "sk_test_recon_sim_stripe";
/// The default Clerk secret key the simulator accepts.
pub const CLERK_KEY: &str = "sk_test_recon_sim_clerk";
/// The default Stripe webhook secret of [`SimHandle::webhook_targets`].
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_recon_sim_stripe";

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Provider {
    /// Stripe.
    Stripe,
    /// Clerk.
    Clerk,
}

impl Provider {
    /// `stripe` or `clerk`, as recon names them.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Clerk => "clerk",
        }
    }

    fn index(self) -> usize {
        match self {
            Provider::Stripe => 0,
            Provider::Clerk => 1,
        }
    }
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Everything random derives from it.
    pub seed: u64,
    /// The Stripe key accepted (`Authorization: Bearer …`).
    pub stripe_key: String,
    /// The Clerk key accepted.
    pub clerk_key: String,
    /// Pin the clock to start here (unix ms): timestamps become reproducible
    /// from the seed too. `None` (the default): follow the wall clock.
    pub start_ms: Option<i64>,
    /// How far a pinned clock moves per mutation at most (uniform 0..=max).
    pub max_step_ms: u64,
    /// How far the simulated providers' clock is from the wall clock (ms,
    /// either sign): event `created`, object timestamps, webhook signature
    /// timestamps and the `Date` header of every answer move with it.
    /// Applies to a clock that follows the wall (a pinned one is simulated
    /// anyway). Also [`SimHandle::set_clock_skew`].
    pub clock_skew_ms: i64,
    /// Mutation mix.
    pub weights: MutationWeights,
    /// Share of sign-ups that start with a 14-day trial.
    pub trial_share: f64,
    /// Share of new users that join an organization.
    pub membership_share: f64,
    /// Organizations per seeded user.
    pub orgs_per_user: f64,
    /// The Clerk instance id in webhook envelopes.
    pub instance_id: String,
    /// API faults of both providers at start.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            stripe_key: STRIPE_KEY.to_string(),
            clerk_key: CLERK_KEY.to_string(),
            start_ms: None,
            max_step_ms: 3,
            clock_skew_ms: 0,
            weights: MutationWeights::default(),
            trial_share: 0.2,
            membership_share: 0.3,
            orgs_per_user: 0.05,
            instance_id: "ins_recon_sim".to_string(),
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// The defaults with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        SimConfig {
            seed,
            ..SimConfig::default()
        }
    }
}

/// Requests served and faults injected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `"stripe GET /v1/customers"` → requests answered on that route.
    pub requests: BTreeMap<String, u64>,
    /// `"stripe 429"`, `"clerk 503"`, `"stripe connection_cut"`,
    /// `"clerk rate_budget"`, `"stripe list_failure"`, `"stripe 401"` → count.
    pub faults: BTreeMap<String, u64>,
    /// `"stripe-version: 2025-03-31.basil"` → requests carrying that header
    /// (`Stripe-Version` and `Stripe-Account` are recorded).
    pub headers: BTreeMap<String, u64>,
}

impl Stats {
    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// All faults of one provider (401s excluded).
    pub fn total_faults(&self, provider: Provider) -> u64 {
        let prefix = format!("{} ", provider.name());
        self.faults
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k.ends_with(" 401"))
            .map(|(_, v)| v)
            .sum()
    }
}

/// State shared by the server, the handle and background tasks.
pub(crate) struct Shared {
    pub world: RwLock<World>,
    pub seed: u64,
    pub stripe_key: String,
    pub clerk_key: String,
    pub api_version: String,
    pub params: Params,
    pub weights: Mutex<MutationWeights>,
    pub faults: Mutex<[Faults; 2]>,
    pub fault_state: [FaultState; 2],
    pub stats: Mutex<Stats>,
    pub requests: AtomicU64,
    pub deliveries: AtomicU64,
    pub http: reqwest::Client,
}

impl Shared {
    pub(crate) fn count(&self, p: Provider, route: &str, fault: Option<&str>) {
        let mut s = self.stats.lock().expect("lock");
        if !route.is_empty() {
            *s.requests
                .entry(format!("{} {route}", p.name()))
                .or_insert(0) += 1;
        }
        if let Some(f) = fault {
            *s.faults.entry(format!("{} {f}", p.name())).or_insert(0) += 1;
        }
    }

    pub(crate) fn saw_header(&self, name: &str, value: &str) {
        let mut s = self.stats.lock().expect("lock");
        *s.headers.entry(format!("{name}: {value}")).or_insert(0) += 1;
    }

    pub(crate) fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        format!("req_{:014x}", ids::splitmix(self.seed ^ n) >> 8)
    }
}

/// Starts simulators.
pub struct Sim;

impl Sim {
    /// Bind `127.0.0.1:0` and serve both APIs on the current tokio runtime.
    /// The world starts with the plan catalog only: call
    /// [`SimHandle::seed_initial`] for a population.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut world = World {
            seq: 0,
            clock: ids::Clock::new(config.start_ms, config.max_step_ms, config.clock_skew_ms),
            rng: StdRng::seed_from_u64(config.seed),
            stripe: Default::default(),
            clerk: Default::default(),
            events: Table::default(),
            outbox: VecDeque::new(),
            pools: Default::default(),
            plans: Vec::new(),
            api_version: STRIPE_API_VERSION.to_string(),
            instance_id: config.instance_id.clone(),
            invoice_counter: 0,
            stripe_events: 0,
            clerk_events: 0,
        };
        world.create_catalog();
        // reqwest is built without a default TLS provider; the simulator only
        // speaks plain HTTP, but building a client needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(16)
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            world: RwLock::new(world),
            seed: config.seed,
            stripe_key: config.stripe_key.clone(),
            clerk_key: config.clerk_key.clone(),
            api_version: STRIPE_API_VERSION.to_string(),
            params: Params {
                trial_share: config.trial_share,
                membership_share: config.membership_share,
                orgs_per_user: config.orgs_per_user,
            },
            weights: Mutex::new(config.weights.clone()),
            faults: Mutex::new([config.faults.clone(), config.faults.clone()]),
            fault_state: [FaultState::default(), FaultState::default()],
            stats: Mutex::new(Stats::default()),
            requests: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            http,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        Ok(SimHandle::new(shared, addr, stop_tx, server))
    }
}
