//! Stripe objects → recon [`Snapshot`]s: which kind an id or an object is,
//! and the fields an app needs (status, owner, e-mail), with the full JSON
//! kept as the snapshot's data.
//!
//! Objects arrive in more than one API version: lists and retrieves use the
//! pinned [`crate::STRIPE_VERSION`], while an event's `data.object` keeps the
//! version the event was created with. The helpers here read both shapes of
//! the `2025-03-31.basil` field moves.

use recon_core::kinds::KindTable;
pub(crate) use recon_core::kinds::is_plain_id;
use recon_core::{Error, ObjectKey, Result, Snapshot};
use serde_json::Value;

/// The kinds a full sweep covers, in sweep order, with their ids' prefixes.
const TABLE: &[(&str, &str)] = &[
    ("customers", "cus"),
    ("subscriptions", "sub"),
    ("invoices", "in"),
    ("prices", "price"),
    ("products", "prod"),
];

/// The kinds a full sweep covers, in sweep order.
pub const KINDS: &[&str] = recon_core::kind_names!(TABLE, 0);

static KIND_TABLE: KindTable<(&str, &str)> = KindTable::new("Stripe", "stripe", TABLE);

/// The kind of an object id, from its prefix (`cus_…` → `customers`).
pub fn kind_of(id: &str) -> Option<&'static str> {
    KIND_TABLE.kind_of(id)
}

/// The kind of an object from its `object` field (`"customer"` → `customers`).
pub fn kind_of_object(object: &str) -> Option<&'static str> {
    Some(match object {
        "customer" => "customers",
        "subscription" => "subscriptions",
        "invoice" => "invoices",
        "price" => "prices",
        "product" => "products",
        _ => return None,
    })
}

/// The id of an expandable field: a plain id string or an expanded object.
pub fn expandable_id(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        Value::Object(m) => m.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// When a subscription's current period ends. Since `2025-03-31.basil` the
/// period lives on each item (`items.data[].current_period_end`; the latest
/// is returned); older versions have it on the subscription.
pub fn subscription_period_end(sub: &Value) -> Option<i64> {
    let from_items = sub
        .pointer("/items/data")
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .filter_map(|i| i.get("current_period_end").and_then(Value::as_i64))
                .max()
        });
    from_items.or_else(|| sub.get("current_period_end").and_then(Value::as_i64))
}

/// The subscription an invoice belongs to. Since `2025-03-31.basil` it is
/// `parent.subscription_details.subscription`; older versions have
/// `subscription`.
pub fn invoice_subscription(invoice: &Value) -> Option<&str> {
    invoice
        .pointer("/parent/subscription_details/subscription")
        .and_then(expandable_id)
        .or_else(|| invoice.get("subscription").and_then(expandable_id))
}

/// Whether a retrieved object is Stripe's deleted form (`{"deleted": true}`).
pub fn is_deleted(obj: &Value) -> bool {
    obj.get("deleted").and_then(Value::as_bool) == Some(true)
}

fn str_field(obj: &Value, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

fn active_status(obj: &Value) -> Option<String> {
    obj.get("active")
        .and_then(Value::as_bool)
        .map(|a| if a { "active" } else { "inactive" }.to_string())
}

/// A snapshot of one Stripe object of `kind` at `version` (unix seconds).
/// The deleted form becomes a tombstone.
pub(crate) fn to_snapshot(account: &str, kind: &str, obj: Value, version: i64) -> Result<Snapshot> {
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::invalid(format!("a Stripe {kind} object has no id")).with_component("stripe")
        })?
        .to_string();
    let key = ObjectKey::new(crate::NAME, account, kind, id);
    if is_deleted(&obj) {
        return Ok(Snapshot::tombstone(key, version));
    }
    let columns = match kind {
        "customers" => (None, None, str_field(&obj, "email")),
        "subscriptions" => (
            str_field(&obj, "status"),
            obj.get("customer")
                .and_then(expandable_id)
                .map(str::to_string),
            obj.get("customer")
                .and_then(|c| c.get("email"))
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        "invoices" => (
            str_field(&obj, "status"),
            obj.get("customer")
                .and_then(expandable_id)
                .map(str::to_string),
            str_field(&obj, "customer_email"),
        ),
        "prices" => (
            active_status(&obj),
            obj.get("product")
                .and_then(expandable_id)
                .map(str::to_string),
            None,
        ),
        "products" => (active_status(&obj), None, None),
        _ => (None, None, None),
    };
    Ok(Snapshot::live(key, version, obj).with_columns(columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_from_ids_and_objects() {
        assert_eq!(kind_of("cus_1"), Some("customers"));
        assert_eq!(kind_of("sub_1"), Some("subscriptions"));
        assert_eq!(kind_of("in_1"), Some("invoices"));
        assert_eq!(kind_of("price_1"), Some("prices"));
        assert_eq!(kind_of("prod_1"), Some("products"));
        assert_eq!(kind_of("pi_1"), None);
        assert_eq!(kind_of("cus_"), None);
        assert_eq!(kind_of("si_1"), None);
        assert_eq!(kind_of_object("subscription"), Some("subscriptions"));
        assert_eq!(kind_of_object("discount"), None);
    }

    #[test]
    fn extracts_fields() {
        let s = to_snapshot(
            "default",
            "subscriptions",
            json!({"id":"sub_1","object":"subscription","customer":"cus_1","status":"past_due",
                   "items":{"object":"list","data":[{"id":"si_1","current_period_end":1700000100},
                                                    {"id":"si_2","current_period_end":1700000200}]}}),
            5,
        )
        .unwrap();
        assert_eq!(s.status.as_deref(), Some("past_due"));
        assert_eq!(s.owner.as_deref(), Some("cus_1"));
        assert_eq!(s.version, 5);
        assert_eq!(subscription_period_end(&s.data), Some(1700000200));
        assert_eq!(
            subscription_period_end(&json!({"current_period_end": 9})),
            Some(9)
        );

        let i = to_snapshot(
            "acct_1",
            "invoices",
            json!({"id":"in_1","customer":{"id":"cus_2","object":"customer"},"status":"open",
                   "customer_email":"a@b.c",
                   "parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_9"}}}),
            1,
        )
        .unwrap();
        assert_eq!(i.key.account, "acct_1");
        assert_eq!(i.owner.as_deref(), Some("cus_2"));
        assert_eq!(i.email.as_deref(), Some("a@b.c"));
        assert_eq!(invoice_subscription(&i.data), Some("sub_9"));
        assert_eq!(
            invoice_subscription(&json!({"subscription":"sub_old"})),
            Some("sub_old")
        );

        let c = to_snapshot(
            "default",
            "customers",
            json!({"id":"cus_1","email":"x@y.z"}),
            1,
        )
        .unwrap();
        assert_eq!(c.email.as_deref(), Some("x@y.z"));
        let p = to_snapshot(
            "default",
            "prices",
            json!({"id":"price_1","product":"prod_1","active":false}),
            1,
        )
        .unwrap();
        assert_eq!(
            (p.status.as_deref(), p.owner.as_deref()),
            (Some("inactive"), Some("prod_1"))
        );
        let d = to_snapshot(
            "default",
            "customers",
            json!({"id":"cus_1","object":"customer","deleted":true}),
            7,
        )
        .unwrap();
        assert!(d.deleted);
        assert_eq!(d.version, 7);
        assert!(to_snapshot("default", "customers", json!({"email":"x"}), 1).is_err());
    }
}
