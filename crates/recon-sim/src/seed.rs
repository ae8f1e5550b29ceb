//! Building blocks for new objects, the plan catalog, and the initial
//! population.
//!
//! The initial population (`seed_initial`) is created *silently* and
//! backdated: every object is more than 31 days old, so Stripe's 30-day
//! event log would no longer hold its creation, and no webhook is queued. A
//! mirror learns it from a sweep. Everything that happens afterwards
//! (mutations, including sign-ups) has its events and webhooks.

use rand::Rng;
use serde_json::Value;

use crate::clerk_state::{Email, Membership, Org, User};
use crate::state::World;
use crate::stripe_state::{
    Customer, Invoice, InvoiceStatus, Item, Price, Product, SubStatus, Subscription,
};

pub(crate) const DAY: i64 = 86_400;
/// One billing period (monthly plans).
pub(crate) const PERIOD: i64 = 30 * DAY;

const FIRST: [&str; 16] = [
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Radia", "Dennis", "Frances", "Edsger",
    "Margaret", "Donald", "Hedy", "John", "Sophie", "Tim",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Thompson",
    "Perlman",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Hamilton",
    "Knuth",
    "Lamarr",
    "Backus",
    "Wilson",
    "Berners-Lee",
];
const ORG_WORDS: [&str; 12] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
];

/// The plans subscriptions use: (product name, lookup key, cents a month).
const PLANS: [(&str, &str, i64); 3] = [
    ("Starter", "starter_monthly", 900),
    ("Pro", "pro_monthly", 2900),
    ("Business", "business_monthly", 9900),
];

/// Tunables of the population and its mutations.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub trial_share: f64,
    pub membership_share: f64,
    pub orgs_per_user: f64,
}

impl World {
    pub(crate) fn names(&mut self) -> (String, String, String) {
        let f = FIRST[self.rng.random_range(0..FIRST.len())];
        let l = LAST[self.rng.random_range(0..LAST.len())];
        let n = self.next_seq();
        let email = format!(
            "{}.{}{n}@example.com",
            f.to_lowercase(),
            l.to_lowercase().replace('-', "")
        );
        (f.to_string(), l.to_string(), email)
    }

    pub(crate) fn new_user(&mut self, created_ms: i64, f: &str, l: &str, email: &str) -> User {
        let id = self.id("user_", 27);
        let eid = self.id("idn_", 27);
        let seq = self.next_seq();
        User {
            id,
            seq,
            created_at: created_ms,
            updated_at: created_ms,
            first_name: f.to_string(),
            last_name: l.to_string(),
            emails: vec![Email {
                id: eid.clone(),
                address: email.to_string(),
                created_at: created_ms,
                updated_at: created_ms,
            }],
            primary_email: eid,
            last_sign_in_at: Some(created_ms),
            stripe_customer_id: None,
        }
    }

    pub(crate) fn new_customer(
        &mut self,
        created: i64,
        name: String,
        email: &str,
        user: Option<String>,
    ) -> Customer {
        let id = self.id("cus_", 14);
        let prefix = self.id("", 8).to_uppercase();
        let seq = self.next_seq();
        Customer {
            id,
            seq,
            created,
            email: email.to_string(),
            name,
            delinquent: false,
            deleted: false,
            clerk_user_id: user,
            invoice_prefix: prefix,
        }
    }

    pub(crate) fn new_subscription(
        &mut self,
        customer: &str,
        price: &str,
        created: i64,
        period_start: i64,
        status: SubStatus,
    ) -> Subscription {
        let id = self.id("sub_", 24);
        let item = self.id("si_", 14);
        let seq = self.next_seq();
        Subscription {
            id,
            seq,
            created,
            customer: customer.to_string(),
            status,
            item: Item {
                id: item,
                created,
                price: price.to_string(),
                period_start,
                period_end: period_start + PERIOD,
            },
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_start: None,
            trial_end: None,
            latest_invoice: None,
        }
    }

    /// A draft invoice for one period of `sub`.
    pub(crate) fn new_invoice(
        &mut self,
        sub: &Subscription,
        created: i64,
        amount: i64,
        reason: &'static str,
    ) -> Invoice {
        let id = self.id("in_", 24);
        let seq = self.next_seq();
        self.invoice_counter += 1;
        let (email, prefix) = self
            .stripe
            .customers
            .get(&sub.customer)
            .map(|c| (c.email.clone(), c.invoice_prefix.clone()))
            .unwrap_or_default();
        Invoice {
            id,
            seq,
            created,
            customer: sub.customer.clone(),
            customer_email: email,
            subscription: sub.id.clone(),
            price: sub.item.price.clone(),
            number: format!("{prefix}-{:04}", self.invoice_counter % 10_000),
            status: InvoiceStatus::Draft,
            amount,
            amount_paid: 0,
            attempt_count: 0,
            billing_reason: reason,
            period_start: sub.item.period_start,
            period_end: sub.item.period_end,
            finalized_at: None,
            paid_at: None,
            voided_at: None,
            uncollectible_at: None,
        }
    }

    pub(crate) fn price_amount(&self, price: &str) -> i64 {
        self.stripe
            .prices
            .get(price)
            .map(|p| p.unit_amount)
            .unwrap_or(0)
    }

    pub(crate) fn insert_subscription(&mut self, s: Subscription) {
        self.stripe
            .subs_by_customer
            .entry(s.customer.clone())
            .or_default()
            .push(s.id.clone());
        if s.status.is_live() {
            self.pools.subs.insert(&s.id);
        }
        self.stripe.subscriptions.insert(s);
    }

    pub(crate) fn insert_invoice(&mut self, i: Invoice) {
        self.stripe
            .invoices_by_customer
            .entry(i.customer.clone())
            .or_default()
            .push(i.id.clone());
        self.stripe.invoices.insert(i);
    }

    /// A product with one monthly price, created at `t` (unix seconds).
    pub(crate) fn new_product(
        &mut self,
        t: i64,
        name: &str,
        amount: i64,
        lookup: Option<&str>,
    ) -> (Product, Price) {
        let prod_id = self.id("prod_", 14);
        let price_id = self.id("price_", 24);
        let (s1, s2) = (self.next_seq(), self.next_seq());
        let product = Product {
            id: prod_id.clone(),
            seq: s1,
            created: t,
            updated: t,
            name: name.to_string(),
            active: true,
            default_price: Some(price_id.clone()),
            deleted: false,
        };
        let price = Price {
            id: price_id,
            seq: s2,
            created: t,
            product: prod_id,
            unit_amount: amount,
            lookup_key: lookup.map(str::to_string),
            nickname: format!("{name} monthly"),
            active: true,
            deleted: false,
        };
        (product, price)
    }

    /// The plan catalog, created two years before `now`.
    pub(crate) fn create_catalog(&mut self) {
        let t = self.now_ms() / 1000 - 730 * DAY;
        for (i, (name, lookup, amount)) in PLANS.iter().enumerate() {
            let (product, price) = self.new_product(t + i as i64, name, *amount, Some(lookup));
            self.plans.push(price.id.clone());
            self.stripe.products.insert(product);
            self.stripe.prices.insert(price);
        }
    }

    pub(crate) fn org_name(&mut self) -> (String, String) {
        let w = ORG_WORDS[self.rng.random_range(0..ORG_WORDS.len())];
        let n = self.next_seq();
        (format!("{w} {n}"), format!("{}-{n}", w.to_lowercase()))
    }

    pub(crate) fn new_membership(
        &mut self,
        org: &str,
        user: &str,
        admin: bool,
        t: i64,
    ) -> Option<Membership> {
        let organization: Value = self.clerk.org_json(self.clerk.orgs.get(org)?);
        let public_user_data = self.clerk.public_user_data(self.clerk.users.get(user)?);
        let id = self.id("orgmem_", 27);
        let seq = self.next_seq();
        Some(Membership {
            id,
            seq,
            created_at: t,
            updated_at: t,
            org_id: org.to_string(),
            user_id: user.to_string(),
            admin,
            organization,
            public_user_data,
        })
    }

    /// The initial population: `customers` Stripe customers (most with a
    /// subscription and its first invoice), `users` Clerk users (the first
    /// `min(customers, users)` paired with a customer), organizations and
    /// memberships. Silent and backdated (see the module docs).
    pub(crate) fn seed_population(&mut self, customers: usize, users: usize, p: &Params) {
        let now = self.now_ms() / 1000;
        let (oldest, newest) = (now - 400 * DAY, now - 31 * DAY);
        let n_orgs = if users == 0 {
            0
        } else {
            ((users as f64 * p.orgs_per_user).ceil() as usize).max(1)
        };
        for _ in 0..n_orgs {
            let created = (now - 500 * DAY + self.rng.random_range(0..50 * DAY)) * 1000;
            let (name, slug) = self.org_name();
            let id = self.id("org_", 27);
            let seq = self.next_seq();
            self.pools.orgs.insert(&id);
            self.clerk.orgs.insert(Org {
                id,
                seq,
                created_at: created,
                updated_at: created + self.rng.random_range(0..DAY * 1000),
                name,
                slug,
                created_by: String::new(),
            });
        }
        for i in 0..customers.max(users) {
            let created = self.rng.random_range(oldest..newest);
            let (f, l, email) = self.names();
            let user_id = if i < users {
                let u_created = created * 1000 - self.rng.random_range(1_000..120_000);
                let mut u = self.new_user(u_created, &f, &l, &email);
                u.updated_at = u_created + self.rng.random_range(1_000..=DAY * 1000);
                u.last_sign_in_at = Some(u.updated_at);
                let id = u.id.clone();
                self.pools.users.insert(&id);
                self.clerk.insert_user(u);
                Some(id)
            } else {
                None
            };
            if i < customers {
                self.seed_customer(created, now, format!("{f} {l}"), &email, user_id.clone());
            }
            if let Some(uid) = user_id
                && self.rng.random_bool(p.membership_share.clamp(0.0, 1.0))
                && let Some(org) = self.pools.orgs.pick(&mut self.rng)
            {
                let org_created = self.clerk.orgs.get(&org).map_or(0, |o| o.updated_at);
                let u_created = self.clerk.users.get(&uid).map_or(0, |u| u.updated_at);
                let t = org_created.max(u_created) + self.rng.random_range(1_000..600_000);
                let admin = self.rng.random_bool(0.1);
                if let Some(m) = self.new_membership(&org, &uid, admin, t) {
                    self.pools.memberships.insert(&m.id);
                    self.clerk.insert_membership(m);
                }
            }
        }
    }

    fn seed_customer(
        &mut self,
        created: i64,
        now: i64,
        name: String,
        email: &str,
        user: Option<String>,
    ) {
        let c = self.new_customer(created, name, email, user.clone());
        let cid = c.id.clone();
        // The app writes the customer id into the user's metadata at sign-up.
        if let Some(u) = &user
            && let Some(row) = self.clerk.users.rows.get_mut(u)
        {
            row.stripe_customer_id = Some(cid.clone());
        }
        self.pools.customers.insert(&cid);
        let roll: f64 = self.rng.random();
        if roll < 0.12 {
            // No subscription (yet).
            self.stripe.customers.insert(c);
            return;
        }
        let price = self.plans[self.rng.random_range(0..self.plans.len())].clone();
        let start = created + 5;
        let k = (now - start) / PERIOD;
        let period_start = start + k * PERIOD;
        let status = if roll < 0.17 {
            SubStatus::Canceled
        } else if roll < 0.20 {
            SubStatus::PastDue
        } else {
            SubStatus::Active
        };
        let mut sub = self.new_subscription(&cid, &price, start, period_start, status);
        let amount = self.price_amount(&price);
        let mut inv = self.new_invoice(&sub, start, amount, "subscription_create");
        inv.period_start = start;
        inv.period_end = start + PERIOD;
        inv.finalized_at = Some(start);
        inv.attempt_count = 1;
        if status == SubStatus::PastDue {
            inv.status = InvoiceStatus::Open;
        } else {
            inv.status = InvoiceStatus::Paid;
            inv.amount_paid = amount;
            inv.paid_at = Some(start + 2);
        }
        if status == SubStatus::Canceled {
            let end = (now - 31 * DAY).max(start + 10);
            let at = self.rng.random_range(start + 10..=end);
            sub.canceled_at = Some(at);
            sub.ended_at = Some(at);
        }
        let mut c = c;
        c.delinquent = status == SubStatus::PastDue;
        sub.latest_invoice = Some(inv.id.clone());
        self.stripe.customers.insert(c);
        self.insert_invoice(inv);
        self.insert_subscription(sub);
    }
}
