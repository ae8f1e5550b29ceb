//! Stripe's objects as the simulator keeps them, and their JSON as the API
//! (version `2025-03-31.basil` and later) renders them: periods on the
//! subscription items, the invoice's subscription under
//! `parent.subscription_details`.

use serde_json::{Value, json};

use crate::table::{Key, Row, Table};

/// Subscription statuses (docs/PROVIDERS.md §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
}

impl SubStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubStatus::Incomplete => "incomplete",
            SubStatus::IncompleteExpired => "incomplete_expired",
            SubStatus::Trialing => "trialing",
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Unpaid => "unpaid",
            SubStatus::Paused => "paused",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "incomplete" => SubStatus::Incomplete,
            "incomplete_expired" => SubStatus::IncompleteExpired,
            "trialing" => SubStatus::Trialing,
            "active" => SubStatus::Active,
            "past_due" => SubStatus::PastDue,
            "canceled" => SubStatus::Canceled,
            "unpaid" => SubStatus::Unpaid,
            "paused" => SubStatus::Paused,
            _ => return None,
        })
    }

    /// Not canceled and not expired: it can still change.
    pub(crate) fn is_live(self) -> bool {
        !matches!(self, SubStatus::Canceled | SubStatus::IncompleteExpired)
    }
}

/// Invoice statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoiceStatus {
    Draft,
    Open,
    Paid,
    Uncollectible,
    Void,
}

impl InvoiceStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Uncollectible => "uncollectible",
            InvoiceStatus::Void => "void",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub email: String,
    pub name: String,
    pub delinquent: bool,
    pub deleted: bool,
    pub clerk_user_id: Option<String>,
    pub invoice_prefix: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub updated: i64,
    pub name: String,
    pub active: bool,
    pub default_price: Option<String>,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Price {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub product: String,
    pub unit_amount: i64,
    pub lookup_key: Option<String>,
    pub nickname: String,
    pub active: bool,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub created: i64,
    pub price: String,
    pub period_start: i64,
    pub period_end: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub customer: String,
    pub status: SubStatus,
    pub item: Item,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub latest_invoice: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Invoice {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub customer: String,
    pub customer_email: String,
    pub subscription: String,
    pub price: String,
    pub number: String,
    pub status: InvoiceStatus,
    pub amount: i64,
    pub amount_paid: i64,
    pub attempt_count: u32,
    pub billing_reason: &'static str,
    pub period_start: i64,
    pub period_end: i64,
    pub finalized_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub voided_at: Option<i64>,
    pub uncollectible_at: Option<i64>,
}

macro_rules! row {
    ($t:ty, $listed:expr) => {
        impl Row for $t {
            fn id(&self) -> &str {
                &self.id
            }
            fn key(&self) -> Key {
                (self.created, self.seq)
            }
            fn listed(&self) -> bool {
                let f: fn(&$t) -> bool = $listed;
                f(self)
            }
        }
    };
}

/// A webhook endpoint (`GET/POST /v1/webhook_endpoints`). The simulator
/// never delivers to it: the test or the demo does ([`crate::SimHandle::deliver`]).
#[derive(Debug, Clone)]
pub(crate) struct WebhookEndpoint {
    pub id: String,
    pub seq: u64,
    pub created: i64,
    pub url: String,
    pub enabled_events: Vec<String>,
    pub disabled: bool,
    pub description: Option<String>,
    pub api_version: Option<String>,
    /// Returned by the create only.
    pub secret: String,
}

impl WebhookEndpoint {
    /// Its API form; `with_secret` only for the answer to its creation.
    pub(crate) fn json(&self, with_secret: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "api_version": self.api_version,
            "application": null,
            "created": self.created,
            "description": self.description,
            "enabled_events": self.enabled_events,
            "livemode": false,
            "metadata": {},
            "status": if self.disabled { "disabled" } else { "enabled" },
            "url": self.url,
        });
        if with_secret {
            v["secret"] = json!(self.secret);
        }
        v
    }
}

row!(WebhookEndpoint, |_| true);
row!(Customer, |c| !c.deleted);
row!(Product, |p| !p.deleted);
row!(Price, |p| !p.deleted);
row!(Subscription, |_| true);
row!(Invoice, |_| true);

/// The Stripe account's objects.
#[derive(Debug, Clone, Default)]
pub(crate) struct StripeState {
    pub customers: Table<Customer>,
    pub products: Table<Product>,
    pub prices: Table<Price>,
    pub subscriptions: Table<Subscription>,
    pub invoices: Table<Invoice>,
    /// Subscriptions and invoices by customer id.
    pub subs_by_customer: std::collections::HashMap<String, Vec<String>>,
    pub invoices_by_customer: std::collections::HashMap<String, Vec<String>>,
    /// Webhook endpoints, and the ones created by `Idempotency-Key`.
    pub webhook_endpoints: Table<WebhookEndpoint>,
    pub endpoint_by_idempotency_key: std::collections::HashMap<String, String>,
}

/// How one object renders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rendered {
    Live(Value),
    /// The `{id, object, deleted: true}` stub of a deleted object.
    Deleted(Value),
    Missing,
}

fn deleted_stub(id: &str, object: &str) -> Value {
    json!({"id": id, "object": object, "deleted": true})
}

impl StripeState {
    /// The API form of object `id` of `kind` (`customers`, …).
    pub(crate) fn render(&self, kind: StripeKind, id: &str) -> Rendered {
        fn out<T>(
            row: Option<&T>,
            deleted: impl Fn(&T) -> bool,
            json: impl Fn(&T) -> Value,
            id: &str,
            object: &str,
        ) -> Rendered {
            match row {
                None => Rendered::Missing,
                Some(r) if deleted(r) => Rendered::Deleted(deleted_stub(id, object)),
                Some(r) => Rendered::Live(json(r)),
            }
        }
        match kind {
            StripeKind::Customers => out(
                self.customers.get(id),
                |c| c.deleted,
                |c| self.customer_json(c),
                id,
                "customer",
            ),
            StripeKind::Products => out(
                self.products.get(id),
                |p| p.deleted,
                |p| self.product_json(p),
                id,
                "product",
            ),
            StripeKind::Prices => out(
                self.prices.get(id),
                |p| p.deleted,
                |p| self.price_json(p),
                id,
                "price",
            ),
            StripeKind::Subscriptions => out(
                self.subscriptions.get(id),
                |_| false,
                |s| self.subscription_json(s),
                id,
                "subscription",
            ),
            StripeKind::Invoices => out(
                self.invoices.get(id),
                |_| false,
                |i| self.invoice_json(i),
                id,
                "invoice",
            ),
        }
    }

    /// The listing order key of an object of `kind` (deleted ones included).
    pub(crate) fn key_of(&self, kind: StripeKind, id: &str) -> Option<Key> {
        match kind {
            StripeKind::Customers => self.customers.get(id).map(Row::key),
            StripeKind::Products => self.products.get(id).map(Row::key),
            StripeKind::Prices => self.prices.get(id).map(Row::key),
            StripeKind::Subscriptions => self.subscriptions.get(id).map(Row::key),
            StripeKind::Invoices => self.invoices.get(id).map(Row::key),
        }
    }
}

/// The Stripe object kinds the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum StripeKind {
    Customers,
    Subscriptions,
    Invoices,
    Prices,
    Products,
}

impl StripeKind {
    pub(crate) const ALL: [StripeKind; 5] = [
        StripeKind::Customers,
        StripeKind::Subscriptions,
        StripeKind::Invoices,
        StripeKind::Prices,
        StripeKind::Products,
    ];

    pub(crate) fn parse(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.path() == path)
    }

    /// The path segment and recon's kind name.
    pub(crate) fn path(self) -> &'static str {
        match self {
            StripeKind::Customers => "customers",
            StripeKind::Subscriptions => "subscriptions",
            StripeKind::Invoices => "invoices",
            StripeKind::Prices => "prices",
            StripeKind::Products => "products",
        }
    }

    pub(crate) fn object(self) -> &'static str {
        match self {
            StripeKind::Customers => "customer",
            StripeKind::Subscriptions => "subscription",
            StripeKind::Invoices => "invoice",
            StripeKind::Prices => "price",
            StripeKind::Products => "product",
        }
    }

    pub(crate) fn index(self, s: &StripeState) -> &std::collections::BTreeMap<Key, String> {
        match self {
            StripeKind::Customers => &s.customers.index,
            StripeKind::Subscriptions => &s.subscriptions.index,
            StripeKind::Invoices => &s.invoices.index,
            StripeKind::Prices => &s.prices.index,
            StripeKind::Products => &s.products.index,
        }
    }
}
