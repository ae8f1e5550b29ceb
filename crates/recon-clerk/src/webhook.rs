//! Clerk webhooks, delivered by Svix (docs/PROVIDERS.md §2.5–2.6).
//!
//! - Headers `svix-id`, `svix-timestamp` (unix seconds) and `svix-signature`;
//!   the unbranded `webhook-id`, `webhook-timestamp`, `webhook-signature`
//!   are accepted too.
//! - The signature header holds space-separated `<version>,<base64>`
//!   entries; only `v1` counts and any `v1` may match (secret rotation).
//! - The key is the base64-decoded part of the secret after `whsec_`; the
//!   signed content is `"{id}.{timestamp}.{raw body}"`; the MAC is
//!   HMAC-SHA256, compared in constant time.
//! - The timestamp must be within the tolerance of now in **both**
//!   directions.
//!
//! The MAC, the comparison and the tolerance are `recon_core::signing`'s;
//! the headers and base64 encoding are Svix's.
//!
//! The body is an envelope `{data, object, type, timestamp (ms),
//! instance_id}`; [`parse_event`] maps it to a [`ProviderEvent`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use recon_core::signing::{TimestampProblem, Tolerance, any_matches, check_timestamp, hmac_sha256};
use recon_core::{Error, Headers, ProviderEvent, Result, Snapshot};
use serde_json::Value;

use crate::objects::{is_plain_id, key, ms, to_snapshot, version_of};
use crate::{ACCOUNT, NAME};

/// The HMAC key of a Svix secret: the base64-decoded part after `whsec_`
/// (the prefix is optional). `None` if it is not base64.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let raw = secret.trim();
    let raw = raw.strip_prefix("whsec_").unwrap_or(raw);
    B64.decode(raw).ok().filter(|k| !k.is_empty())
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let ts = timestamp.to_string();
    hmac_sha256(key, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body])
}

/// The `svix-signature` header value Svix would send for `body`:
/// `v1,<base64>`. For tests, simulators and load generators.
///
/// `secret` is a `whsec_…` secret; one that is not base64 is used as raw
/// key bytes (such a secret never verifies through [`crate::ClerkProvider`],
/// whose configuration refuses it).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = signing_key(secret).unwrap_or_else(|| secret.as_bytes().to_vec());
    format!("v1,{}", B64.encode(mac(&key, msg_id, timestamp, body)))
}

/// What a verified delivery's headers said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `svix-id`: the same on every retry of one message; the ledger key.
    pub id: String,
    /// `svix-timestamp`, unix seconds.
    pub timestamp: i64,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::bad_signature(msg)
        .with_component("clerk")
        .with_operation("verify webhook")
}

fn header<'a>(headers: &'a Headers, branded: &str, unbranded: &str) -> Result<&'a str> {
    let v = headers
        .get(branded)
        .or_else(|| headers.get(unbranded))
        .ok_or_else(|| bad(format!("the {branded} (or {unbranded}) header is missing")))?;
    v.to_str()
        .map(str::trim)
        .map_err(|_| bad(format!("the {branded} header is not text")))
}

/// Check a delivery's Svix headers against the raw `body`, with `key` from
/// [`signing_key`]. `now_s` is the current unix time; `tolerance_s` the
/// largest distance from it accepted, either way.
pub fn verify_signature(
    key: &[u8],
    headers: &Headers,
    body: &[u8],
    now_s: i64,
    tolerance_s: i64,
) -> Result<Delivery> {
    let id = header(headers, "svix-id", "webhook-id")?;
    let ts = header(headers, "svix-timestamp", "webhook-timestamp")?;
    let sigs = header(headers, "svix-signature", "webhook-signature")?;
    if id.is_empty() {
        return Err(bad("the svix-id header is empty"));
    }
    let timestamp: i64 = ts
        .parse()
        .map_err(|_| bad("the svix-timestamp header is not a unix time in seconds"))?;
    match check_timestamp(timestamp, now_s, Tolerance::Both(tolerance_s)) {
        Err(TimestampProblem::TooOld(age)) => {
            return Err(bad(format!(
                "message timestamp too old: signed {age}s ago, at most {tolerance_s}s allowed"
            )));
        }
        Err(TimestampProblem::TooNew(ahead)) => {
            return Err(bad(format!(
                "message timestamp too new: {ahead}s in the future, at most {tolerance_s}s allowed"
            )));
        }
        Ok(()) => {}
    }
    let v1: Vec<&str> = sigs
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .map(|(_, sig)| sig)
        .collect();
    if v1.is_empty() {
        return Err(bad("the svix-signature header has no v1 signature"));
    }
    // A candidate that is not base64 simply does not match.
    if !any_matches(
        &mac(key, id, timestamp, body),
        v1.iter().map(|s| B64.decode(s).ok()),
    ) {
        return Err(bad(
            "no v1 signature matches (is CLERK_WEBHOOK_SECRET this endpoint's signing secret, and is the body unmodified?)",
        ));
    }
    Ok(Delivery {
        id: id.to_string(),
        timestamp,
    })
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid(msg)
        .with_component("clerk")
        .with_operation("parse webhook")
}

/// The kind an event type is about, and whether it deletes.
fn kind_of_type(ty: &str) -> Option<(&'static str, bool)> {
    let (resource, action) = ty.split_once('.')?;
    let kind = match resource {
        "user" => "users",
        "organization" => "organizations",
        "organizationMembership" => "organization_memberships",
        _ => return None,
    };
    match action {
        "created" | "updated" => Some((kind, false)),
        "deleted" => Some((kind, true)),
        _ => None,
    }
}

/// Map a verified webhook body to an event. `delivery` comes from
/// [`verify_signature`]: its id is the event id, its timestamp stands in for
/// a missing envelope `timestamp`.
///
/// - `user.created|updated`, `organization.created|updated`,
///   `organizationMembership.created|updated`: a snapshot of `data`, whose
///   version is the object's own `updated_at` (so an older update never
///   overwrites a newer state, whatever the delivery order).
/// - `user.deleted`, `organization.deleted` (`data` is `{id, deleted}`): a
///   tombstone versioned by the envelope `timestamp`.
/// - `organizationMembership.deleted` (`data` is the whole membership): a
///   tombstone versioned by the later of the envelope `timestamp` and the
///   membership's version, owned by the membership's user.
/// - Anything else (`session.*`, `email.*`, …): no snapshots; recorded and
///   acknowledged.
pub fn parse_event(delivery: &Delivery, body: &[u8]) -> Result<ProviderEvent> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the webhook body is not JSON: {e}")))?;
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the webhook body has no `type`"))?
        .to_string();
    let created = ms(&v["timestamp"]).unwrap_or(delivery.timestamp.saturating_mul(1000));
    let mut snapshots = Vec::new();
    if let Some((kind, deletes)) = kind_of_type(&ty) {
        let data = v
            .get("data")
            .filter(|d| d.is_object())
            .cloned()
            .ok_or_else(|| invalid(format!("the {ty} webhook has no `data` object")))?;
        let id = match data.get("id").and_then(Value::as_str) {
            Some(id) if is_plain_id(id) => id.to_string(),
            _ => return Err(invalid(format!("the {ty} webhook has no valid `data.id`"))),
        };
        if deletes {
            let version = version_of(kind, &data).map_or(created, |own| own.max(created));
            let owner = crate::objects::membership_user(&data).map(str::to_string);
            snapshots.push(Snapshot::tombstone(key(kind, &id), version).with_owner(owner));
        } else {
            snapshots.push(to_snapshot(kind, data, created)?);
        }
    }
    Ok(ProviderEvent {
        provider: NAME.to_string(),
        account: ACCOUNT.to_string(),
        event_id: delivery.id.clone(),
        event_type: ty,
        created,
        pending_webhooks: None,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // docs/PROVIDERS.md §2.6: the official Svix vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn official_vector_signs() {
        let key = signing_key(SECRET).unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(hex::encode(&key[..4]), "31f290f6");
        assert_eq!(hex::encode(&key[21..]), "2da4b0");
        assert_eq!(sign(SECRET, MSG_ID, TS, BODY), SIG);
        // The prefix is optional.
        assert_eq!(sign(&SECRET[6..], MSG_ID, TS, BODY), SIG);
    }

    #[test]
    fn event_types_map_to_kinds() {
        assert_eq!(kind_of_type("user.updated"), Some(("users", false)));
        assert_eq!(
            kind_of_type("organization.deleted"),
            Some(("organizations", true))
        );
        assert_eq!(
            kind_of_type("organizationMembership.created"),
            Some(("organization_memberships", false))
        );
        assert_eq!(kind_of_type("organizationDomain.deleted"), None);
        assert_eq!(kind_of_type("session.created"), None);
        assert_eq!(kind_of_type("user"), None);
    }
}
