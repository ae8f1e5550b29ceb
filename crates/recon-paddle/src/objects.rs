//! Paddle entities → recon [`Snapshot`]s: kinds, ids, versions
//! (`updated_at` in µs) and the extracted columns.

use chrono::DateTime;
use recon_core::{Error, ObjectKey, Result, Snapshot};
use serde_json::Value;

use crate::{ACCOUNT, NAME};

/// An entity type recon mirrors: its kind and API path (its event types are
/// the singular, `customer.updated`), id prefix (`ctm_…`), the `status`
/// filter that lists every state, whether it has non-catalog (`custom`)
/// entities, which lists leave out unless asked, the largest `per_page`
/// Paddle serves for it, and the fields that are not state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    pub name: &'static str,
    pub prefix: &'static str,
    pub statuses: Option<&'static str>,
    pub custom: bool,
    pub max_page: u32,
    pub volatile: &'static [&'static str],
}

const fn kind(name: &'static str, prefix: &'static str) -> Kind {
    let (statuses, max_page, volatile) = (Some("active,archived"), 200, &[] as &[&str]);
    let custom = false;
    #[rustfmt::skip]
    return Kind { name, prefix, statuses, custom, max_page, volatile };
}

/// The entity types recon mirrors, in sweep order.
#[rustfmt::skip]
pub(crate) const TABLE: &[Kind] = &[
    kind("customers", "ctm"),
    Kind { custom: true, ..kind("products", "pro") },
    Kind { custom: true, ..kind("prices", "pri") },
    Kind { statuses: Some("active,canceled,past_due,paused,trialing"),
           volatile: &["management_urls", "transaction_id"], ..kind("subscriptions", "sub") },
    Kind { statuses: None, max_page: 30, ..kind("transactions", "txn") },
];

/// The kinds a sweep covers, in order: [`TABLE`]'s names.
pub const KINDS: &[&str] = &{
    let mut names = [""; TABLE.len()];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

/// The kind of a Paddle id from its prefix: `ctm_…` → `customers`.
pub fn kind_of(id: &str) -> Option<&'static str> {
    let (prefix, rest) = id.split_once('_')?;
    let plain = (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric());
    TABLE
        .iter()
        .find(|k| k.prefix == prefix && plain)
        .map(|k| k.name)
}

/// The kind an event type is about: `customer.updated` → customers.
pub(crate) fn of_event(event_type: &str) -> Option<&'static Kind> {
    let entity = event_type.split('.').next()?;
    TABLE
        .iter()
        .find(|k| k.name.strip_suffix('s') == Some(entity))
}

fn invalid(msg: String) -> Error {
    Error::invalid(msg).with_component(NAME)
}

/// One of [`TABLE`], or an error naming the kinds.
pub(crate) fn lookup(kind: &str) -> Result<&'static Kind> {
    let known = || {
        invalid(format!(
            "Paddle has no kind {kind:?}; kinds: {}",
            KINDS.join(", ")
        ))
    };
    TABLE.iter().find(|k| k.name == kind).ok_or_else(known)
}

/// An id of `kind` (so safe in a URL path), or an error.
pub(crate) fn check_id(k: &Kind, id: &str) -> Result<()> {
    let why = || {
        invalid(format!(
            "{id:?} is not a Paddle {} id ({}_…)",
            k.name, k.prefix
        ))
    };
    (kind_of(id) == Some(k.name)).then_some(()).ok_or_else(why)
}

/// An RFC 3339 time in unix µs (Paddle writes 0 to 9 fraction digits).
pub(crate) fn micros(v: &Value) -> Option<i64> {
    Some(
        DateTime::parse_from_rfc3339(v.as_str()?)
            .ok()?
            .timestamp_micros(),
    )
}

/// The version of `obj`: the latest `updated_at` of the entity and of what
/// it embeds (a subscription's or transaction's items, their prices and
/// products, which change without the entity's own `updated_at`), else
/// `created_at`, else `fallback`. A time that does not parse is an error,
/// never a silent fallback.
fn version(obj: &Value, fallback: i64) -> std::result::Result<i64, String> {
    let items = obj["items"].as_array().into_iter().flatten();
    let nested = items.flat_map(|i| {
        [
            &i["updated_at"],
            &i["price"]["updated_at"],
            &i["product"]["updated_at"],
        ]
    });
    let mut latest = None;
    for t in std::iter::once(&obj["updated_at"])
        .chain(nested)
        .filter(|t| !t.is_null())
    {
        let us = micros(t).ok_or_else(|| format!("updated_at {t} is not an RFC 3339 time"))?;
        latest = latest.max(Some(us));
    }
    Ok(latest
        .or_else(|| micros(&obj["created_at"]))
        .unwrap_or(fallback))
}

/// `obj` as a snapshot of `k`: its [`version`], status, owner (the
/// customer) and e-mail.
pub(crate) fn to_snapshot(k: &Kind, mut obj: Value, fallback: i64) -> Result<Snapshot> {
    let id = obj["id"].as_str().filter(|id| kind_of(id) == Some(k.name));
    let Some(id) = id.map(str::to_string) else {
        let got = &obj["id"];
        return Err(invalid(format!(
            "a Paddle {} without a {}_… id: {got}",
            k.name, k.prefix
        )));
    };
    if let Value::Object(m) = &mut obj {
        k.volatile.iter().for_each(|f| drop(m.remove(*f)));
    }
    let version = version(&obj, fallback).map_err(|e| invalid(format!("Paddle {id}: {e}")))?;
    let text = |f: &str| obj[f].as_str().map(str::to_string);
    let (status, owner, email) = (text("status"), text("customer_id"), text("email"));
    let key = ObjectKey::new(NAME, ACCOUNT, k.name, id);
    let s = Snapshot::live(key, version, obj);
    Ok(s.with_status(status).with_owner(owner).with_email(email))
}
