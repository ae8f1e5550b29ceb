//! Paddle entities → recon [`Snapshot`]s: kinds, ids, versions
//! (`updated_at` in µs) and the extracted columns.

use chrono::DateTime;
use recon_core::kinds::{KindSpec as Kind, KindTable};
use recon_core::{Error, ObjectKey, Result, Snapshot};
use serde_json::Value;

use crate::{ACCOUNT, NAME};

/// A kind listed with a status filter that lists every state (lists
/// leave archived entities out unless asked).
const fn kind(name: &'static str, prefix: &'static str) -> Kind {
    let filters = &[("status", "active,archived")];
    Kind {
        filters,
        ..Kind::new(name, prefix)
    }
}

/// Catalog entities, then the `custom` ones lists leave out unless asked.
const CATALOG_THEN_CUSTOM: &[(&str, &str)] = &[("type", "standard"), ("type", "custom")];

/// The entity types recon mirrors, in sweep order; API paths are the
/// kinds, event types their singular (`customer.updated`).
#[rustfmt::skip]
pub(crate) const TABLE: &[Kind] = &[
    kind("customers", "ctm"),
    Kind { walks: CATALOG_THEN_CUSTOM, ..kind("products", "pro") },
    Kind { walks: CATALOG_THEN_CUSTOM, ..kind("prices", "pri") },
    Kind { filters: &[("status", "active,canceled,past_due,paused,trialing")],
           volatile: &["management_urls", "transaction_id"], ..Kind::new("subscriptions", "sub") },
    Kind { max_page: 30, ..Kind::new("transactions", "txn") },
];

/// The kinds a sweep covers, in order: [`TABLE`]'s names.
pub const KINDS: &[&str] = recon_core::kind_names!(TABLE, name);

/// [`TABLE`] for lookups by kind and by id.
pub(crate) static KIND_TABLE: KindTable<Kind> = KindTable::new("Paddle", NAME, TABLE);

/// The kind of a Paddle id from its prefix: `ctm_…` → `customers`.
pub fn kind_of(id: &str) -> Option<&'static str> {
    KIND_TABLE.kind_of(id)
}

/// The kind an event type is about: `customer.updated` → customers.
pub(crate) fn of_event(event_type: &str) -> Option<&'static Kind> {
    let entity = event_type.split('.').next()?;
    TABLE
        .iter()
        .find(|k| k.name.strip_suffix('s') == Some(entity))
}

/// An RFC 3339 time in unix µs (Paddle writes 0 to 9 fraction digits).
pub(crate) fn micros(v: &Value) -> Option<i64> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// Where the parts of an entity that change without its own `updated_at`
/// keep theirs: a subscription's or transaction's items, their prices and
/// products.
const NESTED: [&str; 3] = ["/updated_at", "/price/updated_at", "/product/updated_at"];

/// The version of `obj`: the latest `updated_at` of the entity and of its
/// [`NESTED`] parts, else `created_at`, else `fallback`. A time that does
/// not parse is an error, never a silent fallback.
fn version(obj: &Value, fallback: i64) -> std::result::Result<i64, String> {
    let items = obj["items"].as_array().into_iter().flatten();
    let nested = items.flat_map(|i| NESTED.map(|p| i.pointer(p)).into_iter().flatten());
    let times = std::iter::once(&obj["updated_at"]).chain(nested);
    let latest = times.filter(|t| !t.is_null()).try_fold(None, |latest, t| {
        let us = micros(t).ok_or_else(|| format!("updated_at {t} is not an RFC 3339 time"));
        us.map(|us| latest.max(Some(us)))
    })?;
    Ok(latest
        .or_else(|| micros(&obj["created_at"]))
        .unwrap_or(fallback))
}

/// `obj` as a snapshot of `k`: its [`version`], status, owner (the
/// customer) and e-mail, without the fields that are not state.
pub(crate) fn to_snapshot(k: &Kind, mut obj: Value, fallback: i64) -> Result<Snapshot> {
    let Some(id) = obj["id"].as_str().map(str::to_string) else {
        let got = &obj["id"];
        return Err(
            Error::invalid(format!("a Paddle {} with no string id: {got}", k.name))
                .with_component(NAME),
        );
    };
    KIND_TABLE.check_id(k, &id)?;
    k.strip(&mut obj);
    let invalid = |e| Error::invalid(format!("Paddle {id}: {e}")).with_component(NAME);
    let version = version(&obj, fallback).map_err(invalid)?;
    let text = |f: &str| obj[f].as_str().map(str::to_string);
    let columns = (text("status"), text("customer_id"), text("email"));
    let key = ObjectKey::new(NAME, ACCOUNT, k.name, id);
    Ok(Snapshot::live(key, version, obj).with_columns(columns))
}
