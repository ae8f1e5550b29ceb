//! `GET /events` read oldest first from a point in time. The log lists by
//! id and has no time filter, so replay seeks by the time in Paddle's ULID
//! ids, and checks every event's id against its `occurred_at` rather than
//! let a seek skip events (see the crate documentation).

use recon_core::http_client::JsonClient;
use recon_core::{EventPage, ProviderEvent, Result};
use ulid::Ulid;

use crate::config::SPEC;
use crate::webhook::parse_event;

/// How far before `since` the seek starts, and how far an id's time may be
/// from its event's `occurred_at`, in ms.
const MARGIN_MS: i64 = 5 * 60 * 1000;

/// Whether the time in an event's ULID id (`evt_01hsdn9756…`) is within
/// [`MARGIN_MS`] of its `occurred_at`: what seeking by id relies on.
fn dated_by_id(e: &ProviderEvent) -> bool {
    let ulid = e
        .event_id
        .split_once('_')
        .and_then(|(_, u)| Ulid::from_string(u).ok());
    ulid.is_some_and(|u| (u.timestamp_ms() as i64 - e.created.div_euclid(1000)).abs() <= MARGIN_MS)
}

/// One page of events from about `since` (µs), oldest first: from five
/// minutes before it, but not before a minute inside the log's `oldest`
/// point unless `since` itself is there. Earlier events are not filtered
/// out: an event listed after a held-back one may be older than the
/// cursor, and the ledger makes events read twice harmless.
pub(crate) async fn page(
    c: &JsonClient,
    per: u32,
    (since, oldest): (i64, i64),
    cursor: Option<&str>,
) -> Result<EventPage> {
    let seek = || {
        let since_ms = since.div_euclid(1000);
        let floor = (oldest.div_euclid(1000) + 60_000).min(since_ms);
        let ms = (since_ms - MARGIN_MS).max(floor).clamp(0, (1 << 48) - 1) as u64;
        format!("evt_{}", Ulid::from_parts(ms, 0)).to_lowercase()
    };
    let after = cursor.map_or_else(seek, str::to_string);
    let op = "list events";
    let mut query = vec![("after", after.clone()), ("per_page", per.to_string())];
    query.push(("order_by", "id[ASC]".into()));
    let page = (after.as_str(), "event_id");
    let (items, next) = crate::client::list(c, (op, "/events"), &query, page).await?;
    let events: Vec<_> = items.into_iter().map(parse_event).collect::<Result<_>>()?;
    if let Some(e) = events.iter().find(|e| !dated_by_id(e)) {
        let why = format!(
            "event {} does not carry its time in its id, which replay relies on to seek; \
             replay cannot run (sweeps and webhooks are unaffected)",
            e.event_id
        );
        return Err(SPEC.malformed(op, why));
    }
    Ok(EventPage { events, next })
}
