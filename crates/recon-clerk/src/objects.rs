//! Clerk JSON → recon snapshots and events.

use recon_core::{Error, ObjectKey, ProviderEvent, Result, Snapshot};
use serde_json::Value;

/// Kinds, in sweep order.
pub const KINDS: &[&str] = &["users", "organizations", "organization_memberships"];

pub(crate) fn key(kind: &str, id: &str) -> ObjectKey {
    ObjectKey::new("clerk", "default", kind, id)
}

fn primary_email(u: &Value) -> Option<String> {
    let primary = u["primary_email_address_id"].as_str();
    let list = u["email_addresses"].as_array()?;
    list.iter()
        .find(|e| primary.is_some() && e["id"].as_str() == primary)
        .or_else(|| list.first())
        .and_then(|e| e["email_address"].as_str())
        .map(str::to_string)
}

/// A live snapshot of a Clerk object; `fallback_version` when it has no
/// `updated_at`.
pub(crate) fn snapshot(kind: &str, v: Value, fallback_version: i64) -> Result<Snapshot> {
    let id = v["id"]
        .as_str()
        .ok_or_else(|| {
            Error::invalid(format!("Clerk {kind} object without an id")).with_component("clerk")
        })?
        .to_string();
    let version = v["updated_at"].as_i64().unwrap_or(fallback_version);
    let (status, owner, email) = match kind {
        "users" => (
            Some(
                if v["banned"].as_bool() == Some(true) {
                    "banned"
                } else {
                    "active"
                }
                .to_string(),
            ),
            None,
            primary_email(&v),
        ),
        "organization_memberships" => (
            v["role"].as_str().map(str::to_string),
            v["public_user_data"]["user_id"]
                .as_str()
                .map(str::to_string),
            v["public_user_data"]["identifier"]
                .as_str()
                .map(str::to_string),
        ),
        _ => (None, None, None),
    };
    Ok(Snapshot::live(key(kind, &id), version, v)
        .with_status(status)
        .with_owner(owner)
        .with_email(email))
}

fn kind_of_type(t: &str) -> Option<&'static str> {
    match t.split('.').next()? {
        "user" => Some("users"),
        "organization" => Some("organizations"),
        "organizationMembership" => Some("organization_memberships"),
        _ => None,
    }
}

/// Parse a verified Clerk webhook body into an event (`msg_id` is the
/// ledger key). Unknown types carry no snapshot.
pub(crate) fn event(msg_id: &str, body: &[u8]) -> Result<ProviderEvent> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Error::invalid(format!("Clerk webhook body is not JSON: {e}")).with_component("clerk")
    })?;
    let ty = v["type"]
        .as_str()
        .ok_or_else(|| Error::invalid("Clerk webhook without a type").with_component("clerk"))?
        .to_string();
    let ts = v["timestamp"].as_i64().unwrap_or(0);
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let mut snapshots = Vec::new();
    if let Some(kind) = kind_of_type(&ty) {
        let id = data["id"].as_str().ok_or_else(|| {
            Error::invalid(format!("Clerk {ty} without data.id")).with_component("clerk")
        })?;
        if ty.ends_with(".deleted") {
            // Deleted objects carry no updated_at: the envelope time orders them.
            snapshots.push(Snapshot::tombstone(key(kind, id), ts));
        } else if ty.ends_with(".created") || ty.ends_with(".updated") {
            snapshots.push(snapshot(kind, data, ts)?);
        }
    }
    Ok(ProviderEvent {
        provider: "clerk".into(),
        account: "default".into(),
        event_id: msg_id.to_string(),
        event_type: ty,
        created: ts,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_and_events() {
        let u = json!({"id": "user_1", "updated_at": 20, "primary_email_address_id": "idn_2",
            "email_addresses": [{"id": "idn_1", "email_address": "a@x"}, {"id": "idn_2", "email_address": "b@x"}]});
        let s = snapshot("users", u.clone(), 0).unwrap();
        assert_eq!(
            (s.version, s.email.as_deref(), s.status.as_deref()),
            (20, Some("b@x"), Some("active"))
        );
        let body = json!({"type": "user.updated", "timestamp": 25, "object": "event", "data": u})
            .to_string();
        let e = event("msg_1", body.as_bytes()).unwrap();
        assert_eq!(e.snapshots[0].version, 20);
        let older = json!({"type": "user.updated", "timestamp": 15, "data": {"id": "user_1", "updated_at": 10}}).to_string();
        assert!(
            event("msg_0", older.as_bytes()).unwrap().snapshots[0].version < e.snapshots[0].version
        );
        let del = json!({"type": "user.deleted", "timestamp": 30, "data": {"id": "user_1", "object": "user", "deleted": true}}).to_string();
        let d = event("msg_2", del.as_bytes()).unwrap();
        assert!(d.snapshots[0].deleted);
        assert_eq!(d.snapshots[0].version, 30);
        let m = json!({"type": "organizationMembership.deleted", "timestamp": 31,
            "data": {"id": "orgmem_1", "role": "admin", "public_user_data": {"user_id": "user_1"}}})
        .to_string();
        assert!(event("msg_3", m.as_bytes()).unwrap().snapshots[0].deleted);
        let unk = json!({"type": "session.created", "timestamp": 1, "data": {"id": "sess_1"}})
            .to_string();
        assert!(event("msg_4", unk.as_bytes()).unwrap().snapshots.is_empty());
        assert!(event("msg_5", b"{nope").is_err());
    }
}
