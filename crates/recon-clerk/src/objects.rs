//! Clerk JSON → recon [`Snapshot`]s: kinds, ids, versions and the extracted
//! columns (status, owner, e-mail).

use recon_core::kinds::KindTable;
pub(crate) use recon_core::kinds::is_plain_id;
use recon_core::{Error, ObjectKey, Result, Snapshot};
use serde_json::Value;

use crate::{ACCOUNT, NAME};

/// The kinds a full sweep covers, in sweep order, with their ids' prefixes.
const TABLE: &[(&str, &str)] = &[
    ("users", "user"),
    ("organizations", "org"),
    ("organization_memberships", "orgmem"),
];

/// The kinds a full sweep covers, in sweep order.
pub const KINDS: &[&str] = recon_core::kind_names!(TABLE, 0);

static KIND_TABLE: KindTable<(&str, &str)> = KindTable::new("Clerk", NAME, TABLE);

/// The kind of a Clerk id: `user_…` → `users`, `org_…` → `organizations`,
/// `orgmem_…` → `organization_memberships`.
pub fn kind_of(id: &str) -> Option<&'static str> {
    KIND_TABLE.kind_of(id)
}

/// One of [`KINDS`], or an error naming them.
pub(crate) fn check_kind(kind: &str) -> Result<&'static str> {
    KIND_TABLE.get(kind).map(|(k, _)| *k)
}

/// [`is_plain_id`], or an invalid-input error.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if is_plain_id(id) {
        Ok(())
    } else {
        Err(Error::invalid(format!("{id:?} is not a Clerk object id")).with_component("clerk"))
    }
}

pub(crate) fn key(kind: &str, id: &str) -> ObjectKey {
    ObjectKey::new(NAME, ACCOUNT, kind, id)
}

/// A unix-milliseconds field, tolerating floats.
pub(crate) fn ms(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The object's version: `updated_at` in ms. A membership embeds its
/// organization, which changes without touching the membership's own
/// `updated_at`, so its version is the later of the two (still monotonic).
/// Objects without `updated_at` fall back to `created_at`.
pub(crate) fn version_of(kind: &str, obj: &Value) -> Option<i64> {
    let own = ms(&obj["updated_at"]).or_else(|| ms(&obj["created_at"]));
    if kind == "organization_memberships" {
        let org = ms(&obj["organization"]["updated_at"]);
        return match (own, org) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    own
}

/// The primary e-mail address of a user (the first one if no primary is set).
pub fn primary_email(user: &Value) -> Option<String> {
    let list = user["email_addresses"].as_array()?;
    let primary = user["primary_email_address_id"].as_str();
    list.iter()
        .find(|e| primary.is_some() && e["id"].as_str() == primary)
        .or_else(|| list.first())
        .and_then(|e| e["email_address"].as_str())
        .map(str::to_string)
}

/// The user a membership belongs to.
pub(crate) fn membership_user(m: &Value) -> Option<&str> {
    m["public_user_data"]["user_id"].as_str()
}

/// A snapshot of a Clerk object of `kind`. Its version is the object's own
/// ([`version_of`]), or `fallback_version` if it carries no timestamps. An
/// object marked `deleted: true` (a DeletedObject) becomes a tombstone at
/// `fallback_version`.
pub(crate) fn to_snapshot(kind: &str, obj: Value, fallback_version: i64) -> Result<Snapshot> {
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id) if is_plain_id(id) => id.to_string(),
        _ => {
            return Err(Error::invalid(format!(
                "Clerk sent a {kind} object without a valid string `id`"
            ))
            .with_component("clerk"));
        }
    };
    if obj["deleted"].as_bool() == Some(true) {
        return Ok(Snapshot::tombstone(key(kind, &id), fallback_version));
    }
    let version = version_of(kind, &obj).unwrap_or(fallback_version);
    let columns = match kind {
        "users" => {
            let status = if obj["banned"].as_bool() == Some(true) {
                "banned"
            } else if obj["locked"].as_bool() == Some(true) {
                "locked"
            } else {
                "active"
            };
            (Some(status.to_string()), None, primary_email(&obj))
        }
        "organization_memberships" => (
            obj["role"].as_str().map(str::to_string),
            membership_user(&obj).map(str::to_string),
            None,
        ),
        _ => (None, None, None),
    };
    Ok(Snapshot::live(key(kind, &id), version, obj).with_columns(columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_from_ids() {
        assert_eq!(kind_of("user_2abc"), Some("users"));
        assert_eq!(kind_of("org_2abc"), Some("organizations"));
        assert_eq!(kind_of("orgmem_2abc"), Some("organization_memberships"));
        assert_eq!(kind_of("sess_1"), None);
        assert!(check_kind("users").is_ok());
        assert!(check_kind("sessions").is_err());
        assert!(is_plain_id("user_2ab-C"));
        assert!(!is_plain_id("../users"));
        assert!(!is_plain_id(""));
    }

    #[test]
    fn users_extract_email_status_and_version() {
        let u = json!({"id": "user_1", "created_at": 5, "updated_at": 20,
            "primary_email_address_id": "idn_2", "banned": false,
            "email_addresses": [{"id": "idn_1", "email_address": "a@x.test"},
                                {"id": "idn_2", "email_address": "b@x.test"}]});
        let s = to_snapshot("users", u, 0).unwrap();
        assert_eq!(s.version, 20);
        assert_eq!(s.email.as_deref(), Some("b@x.test"));
        assert_eq!(s.status.as_deref(), Some("active"));
        assert_eq!(s.key.provider, "clerk");
        assert_eq!(s.key.account, "default");
        let banned =
            json!({"id": "user_2", "created_at": 7, "banned": true, "email_addresses": []});
        let s = to_snapshot("users", banned, 0).unwrap();
        assert_eq!(s.status.as_deref(), Some("banned"));
        assert_eq!(s.version, 7, "created_at when there is no updated_at");
        assert_eq!(s.email, None);
        let bare = json!({"id": "user_3"});
        assert_eq!(to_snapshot("users", bare, 99).unwrap().version, 99);
        assert!(to_snapshot("users", json!({"id": 3}), 0).is_err());
        assert!(to_snapshot("users", json!({"id": "a/b"}), 0).is_err());
    }

    #[test]
    fn memberships_extract_role_owner_and_later_version() {
        let m = json!({"id": "orgmem_1", "role": "org:admin", "updated_at": 10,
            "organization": {"id": "org_1", "updated_at": 30},
            "public_user_data": {"user_id": "user_1", "identifier": "a@x.test"}});
        let s = to_snapshot("organization_memberships", m, 0).unwrap();
        assert_eq!(s.status.as_deref(), Some("org:admin"));
        assert_eq!(s.owner.as_deref(), Some("user_1"));
        assert_eq!(s.version, 30);
        let o = json!({"id": "org_1", "name": "Acme", "updated_at": 12, "created_by": "user_1"});
        let s = to_snapshot("organizations", o, 0).unwrap();
        assert_eq!((s.status, s.owner, s.version), (None, None, 12));
    }

    #[test]
    fn deleted_objects_are_tombstones() {
        let d = json!({"id": "user_1", "object": "user", "deleted": true});
        let s = to_snapshot("users", d, 77).unwrap();
        assert!(s.deleted);
        assert_eq!(s.version, 77);
    }
}
