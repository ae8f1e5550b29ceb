//! Paddle notifications: `Paddle-Signature: ts=<unix s>;h1=<hex>[;h1=…]`,
//! HMAC-SHA256 over `"{ts}:{raw body}"` keyed with the whole secret string
//! (`pdl_ntfset_…`), through core's [`HexHeader`]. The body is an event,
//! `{event_id, event_type, occurred_at, data, …}`, as `GET /events` lists.

use recon_core::signing::HexHeader;
use recon_core::{Error, ProviderEvent, Result};
use serde_json::Value;

use crate::objects::{micros, of_event, to_snapshot};
use crate::{ACCOUNT, NAME};

/// `Paddle-Signature`: `ts`, `h1`, `;`, signed `"{ts}:{body}"`.
/// `SIGNATURE.sign(secret, ts, body)` is the header Paddle would send (for
/// tests and simulators); [`HexHeader::verify_headers`] checks one.
pub const SIGNATURE: HexHeader = HexHeader {
    name: "Paddle-Signature",
    ts: "ts",
    sig: "h1",
    separator: ';',
    joiner: ":",
};

/// An event as a [`ProviderEvent`]: `event_id` is the ledger key (each
/// destination gets its own `notification_id` for one event), `occurred_at`
/// its time in µs, and `data` a snapshot if recon mirrors its entity type.
pub fn parse_event(v: Value) -> Result<ProviderEvent> {
    let bad = |m: &str| {
        let e = Error::invalid(format!("not a Paddle event: {m}")).with_component(NAME);
        e.with_operation("parse event")
    };
    let Value::Object(mut m) = v else {
        return Err(bad("not a JSON object"));
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let event_id = text("event_id")
        .ok_or_else(|| bad("no `event_id`"))?
        .to_string();
    let event_type = text("event_type")
        .ok_or_else(|| bad("no `event_type`"))?
        .to_string();
    let occurred = m.get("occurred_at").and_then(micros);
    let created = occurred.ok_or_else(|| bad("no RFC 3339 `occurred_at`"))?;
    let snapshots = match (of_event(&event_type), m.remove("data")) {
        (Some(kind), Some(data)) => vec![to_snapshot(kind, data, created)?],
        _ => Vec::new(),
    };
    let (provider, account) = (NAME.to_string(), ACCOUNT.to_string());
    Ok(ProviderEvent {
        provider,
        account,
        event_id,
        event_type,
        created,
        snapshots,
        pending_webhooks: None,
    })
}
