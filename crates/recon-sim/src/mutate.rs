//! The mutation engine: seeded random changes to both providers' objects,
//! each producing the events and webhooks the provider would send.

use std::collections::BTreeMap;

use rand::Rng;

use crate::seed::{DAY, PERIOD, Params};
use crate::state::{World, previous_attributes};
use crate::stripe_state::{InvoiceStatus, SubStatus, Subscription};

/// One kind of change the simulator applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MutationKind {
    /// A new Clerk user and Stripe customer with a subscription (trialing
    /// or paid), maybe joining an organization.
    SignUp,
    /// A subscription moves to the next dearer plan (with a proration invoice).
    Upgrade,
    /// A subscription moves to the next cheaper plan.
    Downgrade,
    /// A subscription is canceled at once (`customer.subscription.deleted`).
    Cancel,
    /// A subscription is set to cancel at the end of its period.
    CancelAtPeriodEnd,
    /// A customer is deleted (its subscriptions canceled) and its Clerk user
    /// deleted with its memberships.
    Delete,
    /// A renewal invoice fails: invoice open, subscription `past_due`,
    /// customer delinquent.
    PaymentFailed,
    /// A period renews: a new invoice is paid, a past-due one is settled, a
    /// trial converts, or a subscription set to cancel ends.
    Renewal,
    /// A customer's and its user's e-mail or name changes.
    ProfileUpdate,
    /// A user joins an organization, leaves one, or changes role.
    Membership,
    /// An organization is created, renamed or deleted.
    Organization,
    /// A product and price are created, renamed or deleted (never ones a
    /// subscription uses).
    Catalog,
}

impl MutationKind {
    /// Every kind.
    pub const ALL: [MutationKind; 12] = [
        MutationKind::SignUp,
        MutationKind::Upgrade,
        MutationKind::Downgrade,
        MutationKind::Cancel,
        MutationKind::CancelAtPeriodEnd,
        MutationKind::Delete,
        MutationKind::PaymentFailed,
        MutationKind::Renewal,
        MutationKind::ProfileUpdate,
        MutationKind::Membership,
        MutationKind::Organization,
        MutationKind::Catalog,
    ];
}

/// Relative weights of the mutation kinds (0 turns a kind off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationWeights(pub BTreeMap<MutationKind, u32>);

impl Default for MutationWeights {
    fn default() -> Self {
        use MutationKind::*;
        MutationWeights(BTreeMap::from([
            (SignUp, 20),
            (Upgrade, 10),
            (Downgrade, 6),
            (Cancel, 6),
            (CancelAtPeriodEnd, 4),
            (Delete, 5),
            (PaymentFailed, 8),
            (Renewal, 20),
            (ProfileUpdate, 8),
            (Membership, 8),
            (Organization, 2),
            (Catalog, 1),
        ]))
    }
}

impl MutationWeights {
    /// Only `kind`.
    pub fn only(kind: MutationKind) -> Self {
        MutationWeights(BTreeMap::from([(kind, 1)]))
    }
}

/// What a batch of mutations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutationReport {
    /// Mutations applied, by kind (a kind that found nothing to change falls
    /// back to a sign-up and is counted as one).
    pub applied: BTreeMap<MutationKind, u64>,
    /// Stripe events created.
    pub stripe_events: u64,
    /// Clerk webhooks queued.
    pub clerk_events: u64,
}

impl MutationReport {
    /// Mutations applied in all.
    pub fn total(&self) -> u64 {
        self.applied.values().sum()
    }
}

impl World {
    /// Apply one weighted random mutation; returns what was done.
    pub(crate) fn mutate_one(&mut self, w: &MutationWeights, p: &Params) -> MutationKind {
        let total: u64 = w.0.values().map(|&x| u64::from(x)).sum();
        let mut kind = MutationKind::SignUp;
        if total > 0 {
            let mut r = self.rng.random_range(0..total);
            for (k, &x) in &w.0 {
                if r < u64::from(x) {
                    kind = *k;
                    break;
                }
                r -= u64::from(x);
            }
        }
        let t_ms = self.clock.tick(&mut self.rng);
        if self.apply(kind, t_ms, p) {
            kind
        } else {
            self.sign_up(t_ms, p);
            MutationKind::SignUp
        }
    }

    /// Apply `kind` at `t_ms`; false if nothing fit (no live subscription…).
    fn apply(&mut self, kind: MutationKind, t_ms: i64, p: &Params) -> bool {
        let t = t_ms / 1000;
        match kind {
            MutationKind::SignUp => {
                self.sign_up(t_ms, p);
                true
            }
            MutationKind::Upgrade => self.change_plan(t, true),
            MutationKind::Downgrade => self.change_plan(t, false),
            MutationKind::Cancel => self.cancel(t),
            MutationKind::CancelAtPeriodEnd => self.cancel_at_period_end(t),
            MutationKind::Delete => self.delete(t_ms),
            MutationKind::PaymentFailed => self.payment_failed(t),
            MutationKind::Renewal => self.renewal(t),
            MutationKind::ProfileUpdate => self.profile_update(t_ms),
            MutationKind::Membership => self.membership(t_ms),
            MutationKind::Organization => self.organization(t_ms),
            MutationKind::Catalog => self.catalog(t),
        }
    }

    // ---- Stripe helpers: change an object and emit its event ----

    fn sub_json(&self, id: &str) -> serde_json::Value {
        let s = self
            .stripe
            .subscriptions
            .get(id)
            .expect("known subscription");
        self.stripe.subscription_json(s)
    }

    /// Change a subscription and emit `event` (previous attributes on
    /// `*.updated`).
    fn update_sub(
        &mut self,
        id: &str,
        t: i64,
        event: &'static str,
        api: bool,
        f: impl FnOnce(&mut Subscription),
    ) {
        let before = self.sub_json(id);
        self.stripe.subscriptions.update(id, f);
        let after = self.sub_json(id);
        if !self
            .stripe
            .subscriptions
            .get(id)
            .is_some_and(|s| s.status.is_live())
        {
            self.pools.subs.remove(id);
        }
        let prev = event
            .ends_with(".updated")
            .then(|| previous_attributes(&before, &after));
        self.stripe_event(t, event, &after, prev, api);
    }

    fn update_invoice(
        &mut self,
        id: &str,
        t: i64,
        event: &'static str,
        f: impl FnOnce(&mut crate::stripe_state::Invoice),
    ) {
        let before = self
            .stripe
            .invoice_json(self.stripe.invoices.get(id).expect("invoice"));
        self.stripe.invoices.update(id, f);
        let after = self
            .stripe
            .invoice_json(self.stripe.invoices.get(id).expect("invoice"));
        let prev = event
            .ends_with(".updated")
            .then(|| previous_attributes(&before, &after));
        self.stripe_event(t, event, &after, prev, false);
    }

    /// Change a customer; emits `customer.updated` only if something changed.
    fn update_customer(
        &mut self,
        id: &str,
        t: i64,
        api: bool,
        f: impl FnOnce(&mut crate::stripe_state::Customer),
    ) {
        let Some(c) = self.stripe.customers.get(id) else {
            return;
        };
        let before = self.stripe.customer_json(c);
        self.stripe.customers.update(id, f);
        let after = self
            .stripe
            .customer_json(self.stripe.customers.get(id).expect("customer"));
        if before != after {
            let prev = previous_attributes(&before, &after);
            self.stripe_event(t, "customer.updated", &after, Some(prev), api);
        }
    }

    /// Insert a draft invoice, then finalize it and pay it (or fail it).
    fn bill(&mut self, inv: crate::stripe_state::Invoice, t: i64, pay: bool) {
        let id = inv.id.clone();
        let json = self.stripe.invoice_json(&inv);
        self.insert_invoice(inv);
        self.stripe_event(t, "invoice.created", &json, None, false);
        self.update_invoice(&id, t, "invoice.finalized", |i| {
            i.status = InvoiceStatus::Open;
            i.finalized_at = Some(t);
        });
        if pay {
            self.update_invoice(&id, t, "invoice.paid", |i| {
                i.status = InvoiceStatus::Paid;
                i.amount_paid = i.amount;
                i.paid_at = Some(t);
                i.attempt_count += 1;
            });
        } else {
            self.update_invoice(&id, t, "invoice.payment_failed", |i| {
                i.attempt_count += 1;
            });
        }
    }

    /// A live subscription satisfying `ok`, after a few random tries.
    fn pick_sub(&mut self, ok: impl Fn(&Subscription) -> bool) -> Option<String> {
        for _ in 0..12 {
            let id = self.pools.subs.pick(&mut self.rng)?;
            if self.stripe.subscriptions.get(&id).is_some_and(&ok) {
                return Some(id);
            }
        }
        None
    }

    // ---- mutations ----

    fn sign_up(&mut self, t_ms: i64, p: &Params) {
        let t = t_ms / 1000;
        let (f, l, email) = self.names();
        let u = self.new_user(t_ms, &f, &l, &email);
        let uid = u.id.clone();
        let json = self.clerk.user_json(&u);
        self.clerk.insert_user(u);
        self.pools.users.insert(&uid);
        self.clerk_event(t_ms, "user.created", json);

        let c = self.new_customer(t, format!("{f} {l}"), &email, Some(uid.clone()));
        let cid = c.id.clone();
        let json = self.stripe.customer_json(&c);
        self.stripe.customers.insert(c);
        self.pools.customers.insert(&cid);
        self.stripe_event(t, "customer.created", &json, None, true);
        self.touch_user(&uid, t_ms, |u| u.stripe_customer_id = Some(cid.clone()));

        let price = self.plans[self.rng.random_range(0..self.plans.len())].clone();
        let trial = self.rng.random_bool(p.trial_share.clamp(0.0, 1.0));
        let status = if trial {
            SubStatus::Trialing
        } else {
            SubStatus::Incomplete
        };
        let mut sub = self.new_subscription(&cid, &price, t, t, status);
        if trial {
            sub.trial_start = Some(t);
            sub.trial_end = Some(t + 14 * DAY);
            sub.item.period_end = t + 14 * DAY;
        }
        let amount = if trial { 0 } else { self.price_amount(&price) };
        let inv = self.new_invoice(&sub, t, amount, "subscription_create");
        sub.latest_invoice = Some(inv.id.clone());
        let sid = sub.id.clone();
        let json = self.stripe.subscription_json(&sub);
        self.insert_subscription(sub);
        self.stripe_event(t, "customer.subscription.created", &json, None, true);
        self.bill(inv, t, true);
        if !trial {
            self.update_sub(&sid, t, "customer.subscription.updated", false, |s| {
                s.status = SubStatus::Active
            });
        }
        if self.rng.random_bool(p.membership_share.clamp(0.0, 1.0))
            && let Some(org) = self.pools.orgs.pick(&mut self.rng)
        {
            self.join(&org, &uid, false, t_ms);
        }
    }

    fn change_plan(&mut self, t: i64, up: bool) -> bool {
        let plans = self.plans.clone();
        let Some(sid) = self.pick_sub(|s| {
            let i = plans.iter().position(|p| *p == s.item.price);
            matches!(
                s.status,
                SubStatus::Active | SubStatus::Trialing | SubStatus::PastDue
            ) && !s.cancel_at_period_end
                && i.is_some_and(|i| if up { i + 1 < plans.len() } else { i > 0 })
        }) else {
            return false;
        };
        let mut sub = self.stripe.subscriptions.get(&sid).expect("sub").clone();
        let i = plans
            .iter()
            .position(|p| *p == sub.item.price)
            .expect("plan");
        let new_price = plans[if up { i + 1 } else { i - 1 }].clone();
        let diff = self.price_amount(&new_price) - self.price_amount(&sub.item.price);
        sub.item.price = new_price.clone();
        let inv = (up && sub.status != SubStatus::Trialing)
            .then(|| self.new_invoice(&sub, t, diff, "subscription_update"));
        let inv_id = inv.as_ref().map(|i| i.id.clone());
        self.update_sub(&sid, t, "customer.subscription.updated", true, |s| {
            s.item.price = new_price;
            if inv_id.is_some() {
                s.latest_invoice = inv_id;
            }
        });
        if let Some(inv) = inv {
            self.bill(inv, t, true);
        }
        true
    }

    fn end_sub(&mut self, sid: &str, t: i64, api: bool) {
        // An unpaid invoice of a canceled subscription is voided.
        let open = self
            .stripe
            .subscriptions
            .get(sid)
            .and_then(|s| s.latest_invoice.clone())
            .filter(|i| {
                self.stripe
                    .invoices
                    .get(i)
                    .is_some_and(|i| i.status == InvoiceStatus::Open)
            });
        if let Some(inv) = open {
            self.update_invoice(&inv, t, "invoice.voided", |i| {
                i.status = InvoiceStatus::Void;
                i.voided_at = Some(t);
            });
        }
        self.update_sub(sid, t, "customer.subscription.deleted", api, |s| {
            s.status = SubStatus::Canceled;
            s.ended_at = Some(t);
            if s.canceled_at.is_none() || !s.cancel_at_period_end {
                s.canceled_at = Some(t);
            }
        });
    }

    fn cancel(&mut self, t: i64) -> bool {
        let Some(sid) = self.pick_sub(|s| s.status.is_live()) else {
            return false;
        };
        self.end_sub(&sid, t, true);
        true
    }

    fn cancel_at_period_end(&mut self, t: i64) -> bool {
        let Some(sid) = self.pick_sub(|s| {
            matches!(s.status, SubStatus::Active | SubStatus::Trialing) && !s.cancel_at_period_end
        }) else {
            return false;
        };
        self.update_sub(&sid, t, "customer.subscription.updated", true, |s| {
            s.cancel_at_period_end = true;
            s.cancel_at = Some(s.item.period_end);
            s.canceled_at = Some(t);
        });
        true
    }

    fn delete(&mut self, t_ms: i64) -> bool {
        let t = t_ms / 1000;
        let Some(cid) = self.pools.customers.pick(&mut self.rng) else {
            return match self.pools.users.pick(&mut self.rng) {
                Some(u) => {
                    self.delete_user(&u, t_ms);
                    true
                }
                None => false,
            };
        };
        let subs = self
            .stripe
            .subs_by_customer
            .get(&cid)
            .cloned()
            .unwrap_or_default();
        for sid in subs {
            if self
                .stripe
                .subscriptions
                .get(&sid)
                .is_some_and(|s| s.status.is_live())
            {
                self.end_sub(&sid, t, true);
            }
        }
        let c = self.stripe.customers.get(&cid).expect("customer");
        let json = self.stripe.customer_json(c);
        let user = c.clerk_user_id.clone();
        self.stripe.customers.update(&cid, |c| c.deleted = true);
        self.pools.customers.remove(&cid);
        self.stripe_event(t, "customer.deleted", &json, None, true);
        if let Some(u) = user
            && self.clerk.users.get(&u).is_some()
        {
            self.delete_user(&u, t_ms);
        }
        true
    }

    fn payment_failed(&mut self, t: i64) -> bool {
        let Some(sid) = self.pick_sub(|s| s.status == SubStatus::Active) else {
            return false;
        };
        let mut sub = self.stripe.subscriptions.get(&sid).expect("sub").clone();
        sub.item.period_start = t;
        sub.item.period_end = t + PERIOD;
        let amount = self.price_amount(&sub.item.price);
        let inv = self.new_invoice(&sub, t, amount, "subscription_cycle");
        let inv_id = inv.id.clone();
        self.bill(inv, t, false);
        self.update_sub(&sid, t, "customer.subscription.updated", false, |s| {
            s.status = SubStatus::PastDue;
            s.item.period_start = t;
            s.item.period_end = t + PERIOD;
            s.latest_invoice = Some(inv_id);
        });
        let cid = sub.customer.clone();
        self.update_customer(&cid, t, false, |c| c.delinquent = true);
        true
    }

    fn renewal(&mut self, t: i64) -> bool {
        let Some(sid) = self.pick_sub(|s| {
            matches!(
                s.status,
                SubStatus::Active | SubStatus::Trialing | SubStatus::PastDue
            )
        }) else {
            return false;
        };
        let sub = self.stripe.subscriptions.get(&sid).expect("sub").clone();
        if sub.cancel_at_period_end {
            self.end_sub(&sid, t, false);
            return true;
        }
        if sub.status == SubStatus::PastDue && self.rng.random_bool(0.25) {
            // Dunning gave up: the invoice is uncollectible, the subscription unpaid.
            if let Some(inv) = sub.latest_invoice.clone()
                && self
                    .stripe
                    .invoices
                    .get(&inv)
                    .is_some_and(|i| i.status == InvoiceStatus::Open)
            {
                self.update_invoice(&inv, t, "invoice.marked_uncollectible", |i| {
                    i.status = InvoiceStatus::Uncollectible;
                    i.uncollectible_at = Some(t);
                });
            }
            self.update_sub(&sid, t, "customer.subscription.updated", false, |s| {
                s.status = SubStatus::Unpaid
            });
            return true;
        }
        if sub.status == SubStatus::PastDue {
            if let Some(inv) = sub.latest_invoice.clone()
                && self
                    .stripe
                    .invoices
                    .get(&inv)
                    .is_some_and(|i| i.status == InvoiceStatus::Open)
            {
                self.update_invoice(&inv, t, "invoice.paid", |i| {
                    i.status = InvoiceStatus::Paid;
                    i.amount_paid = i.amount;
                    i.paid_at = Some(t);
                    i.attempt_count += 1;
                });
            }
            self.update_sub(&sid, t, "customer.subscription.updated", false, |s| {
                s.status = SubStatus::Active
            });
            let still_due = self
                .stripe
                .subs_by_customer
                .get(&sub.customer)
                .is_some_and(|v| {
                    v.iter().any(|x| {
                        self.stripe
                            .subscriptions
                            .get(x)
                            .is_some_and(|s| s.status == SubStatus::PastDue)
                    })
                });
            if !still_due {
                self.update_customer(&sub.customer, t, false, |c| c.delinquent = false);
            }
            return true;
        }
        let mut next = sub.clone();
        next.item.period_start = t;
        next.item.period_end = t + PERIOD;
        let amount = self.price_amount(&next.item.price);
        let inv = self.new_invoice(&next, t, amount, "subscription_cycle");
        let inv_id = inv.id.clone();
        self.bill(inv, t, true);
        self.update_sub(&sid, t, "customer.subscription.updated", false, |s| {
            s.status = SubStatus::Active;
            s.item.period_start = t;
            s.item.period_end = t + PERIOD;
            s.latest_invoice = Some(inv_id);
        });
        true
    }

    fn profile_update(&mut self, t_ms: i64) -> bool {
        let t = t_ms / 1000;
        let (cid, uid) = match self.pools.customers.pick(&mut self.rng) {
            Some(c) => {
                let u = self
                    .stripe
                    .customers
                    .get(&c)
                    .and_then(|c| c.clerk_user_id.clone());
                (Some(c), u.filter(|u| self.clerk.users.get(u).is_some()))
            }
            None => (None, self.pools.users.pick(&mut self.rng)),
        };
        if cid.is_none() && uid.is_none() {
            return false;
        }
        let (f, l, email) = self.names();
        let change_email = self.rng.random_bool(0.5);
        if let Some(c) = &cid {
            self.update_customer(c, t, true, |c| {
                if change_email {
                    c.email = email.clone();
                } else {
                    c.name = format!("{f} {l}");
                }
            });
        }
        if let Some(u) = &uid {
            let eid = self.id("idn_", 27);
            self.touch_user(u, t_ms, |u| {
                if change_email {
                    u.emails.push(crate::clerk_state::Email {
                        id: eid.clone(),
                        address: email.clone(),
                        created_at: t_ms,
                        updated_at: t_ms,
                    });
                    u.primary_email = eid;
                } else {
                    u.first_name = f;
                    u.last_name = l;
                }
            });
        }
        true
    }

    fn catalog(&mut self, t: i64) -> bool {
        let r: f64 = self.rng.random();
        let extra = self.pools.extra_products.pick(&mut self.rng);
        match extra {
            Some(pid) if r < 0.3 => {
                let prod = self.stripe.products.get(&pid).expect("product").clone();
                if let Some(price) = prod.default_price.clone() {
                    let json = self
                        .stripe
                        .price_json(self.stripe.prices.get(&price).expect("price"));
                    self.stripe.prices.update(&price, |p| p.deleted = true);
                    self.stripe_event(t, "price.deleted", &json, None, true);
                }
                let json = self.stripe.product_json(&prod);
                self.stripe.products.update(&pid, |p| p.deleted = true);
                self.pools.extra_products.remove(&pid);
                self.stripe_event(t, "product.deleted", &json, None, true);
            }
            Some(pid) if r < 0.6 => {
                let (name, _) = self.org_name();
                let before = self
                    .stripe
                    .product_json(self.stripe.products.get(&pid).expect("product"));
                self.stripe.products.update(&pid, |p| {
                    p.name = format!("Add-on {name}");
                    p.updated = t.max(p.updated + 1);
                });
                let after = self
                    .stripe
                    .product_json(self.stripe.products.get(&pid).expect("product"));
                let prev = previous_attributes(&before, &after);
                self.stripe_event(t, "product.updated", &after, Some(prev), true);
            }
            _ => {
                let (name, _) = self.org_name();
                let amount = 100 * self.rng.random_range(1..50);
                let (product, price) = self.new_product(t, &format!("Add-on {name}"), amount, None);
                let (pj, prj) = (
                    self.stripe.product_json(&product),
                    self.stripe.price_json(&price),
                );
                self.pools.extra_products.insert(&product.id);
                self.stripe.products.insert(product);
                self.stripe.prices.insert(price);
                self.stripe_event(t, "product.created", &pj, None, true);
                self.stripe_event(t, "price.created", &prj, None, true);
            }
        }
        true
    }
}
