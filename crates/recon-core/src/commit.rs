//! The one place where snapshots reach the mirror.
//!
//! Every path (webhook, sweep, on-demand, replay) builds a [`Batch`] and
//! calls [`commit`]. In one store transaction it:
//! 1. inserts the batch's events into the ledger; a duplicate event stops
//!    there and its snapshots are not applied;
//! 2. loads the stored rows of every snapshot still to apply;
//! 3. decides per snapshot with [`decide`] (the monotonic guard);
//! 4. upserts the winners (the guard is repeated in SQL), logs drift for
//!    the ones that changed the mirror, moves cursors;
//! 5. commits, or with `dry_run` rolls back, having counted the same.
//!
//! # Guarantees
//! - Ledger and snapshot writes commit together (exactly-once effect).
//! - A snapshot whose version is lower than the stored one, or lower than the
//!   last complete sweep's floor, is never written (monotonic state).
//! - A snapshot whose version equals the stored one but whose content
//!   differs is not written; it is reported as a [`Decision::Tie`] so the
//!   caller fetches the object and commits that with [`Guard::NewerOrEqual`].
//!
//! - A tie's obligation to fetch is queued in the same transaction
//!   ([`crate::store::PendingFetch`]), so it outlives a failed fetch.
//! - An event older than a running sweep's listing of the object is refused
//!   (the listing saw a newer state), like one older than the floor.
//!
//! # Concurrency
//! - Outcomes are decided from a read that takes no row lock; the SQL guard
//!   repeats the version and tombstone rules, so concurrent writers cannot
//!   break them. A row the SQL guard refused is decided again against the
//!   row now stored: a tie is reported (and queued) as a tie, the rest as
//!   stale.
//! - Transactions that read a kind's floor hold the kind's shared lock;
//!   raising the floor takes it exclusively ([`crate::store::StoreTx::lock_kind`]),
//!   so no write decided under an older floor commits after a newer one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::{Cursor, Guard, LedgerRow, Store};
use crate::types::{
    DriftCause, DriftRecord, ObjectKey, ProviderEvent, Snapshot, Source, StoredObject, now_ms,
};

/// The cursor name under which a kind's sweep floor is kept: the version at
/// which the last complete sweep of the kind started. Every object of the
/// kind was observed at or after it.
pub fn sweep_floor_name(kind: &str) -> String {
    format!("sweep:{kind}")
}

/// How to log drift for a change that alters the mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftMeta {
    /// Which path.
    pub source: Source,
    /// Which run.
    pub run_id: Option<String>,
}

/// One snapshot to apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    /// The state to apply.
    pub snapshot: Snapshot,
    /// The guard.
    pub guard: Guard,
    /// Log drift if this changes the mirror.
    pub drift: Option<DriftMeta>,
}

/// An event to put through the ledger.
#[derive(Debug, Clone)]
pub struct EventEntry {
    /// The event (its snapshots are applied only if the event is new).
    pub event: ProviderEvent,
    /// Which path brought it.
    pub source: Source,
    /// Log drift for what it changes (replay: a change that no webhook had
    /// delivered is drift).
    pub drift: Option<DriftMeta>,
}

/// What to commit together.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Events, in the order they happened.
    pub events: Vec<EventEntry>,
    /// Snapshots with no event (sweeps, fetches).
    pub changes: Vec<Change>,
    /// Cursors to move when this commits. Cursors only rise; a sweep floor
    /// (`sweep:<kind>`) is raised under the kind's exclusive lock.
    pub cursors: Vec<Cursor>,
    /// Direct fetches to queue when this commits, with their reason (see
    /// [`crate::store::PendingFetch`]). Ties found by this commit are queued
    /// without being listed here.
    pub fetches: Vec<(ObjectKey, String)>,
    /// Queued fetches this commit discharges: `(key, generation)`.
    pub resolves: Vec<(ObjectKey, i64)>,
    /// The path these changes came by, for the change feed, when a change
    /// logs no drift (a sweep's first load): `None` means a direct fetch.
    pub source: Option<Source>,
}

/// The monotonic guard's verdict for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Not in the mirror: written.
    Insert,
    /// Newer and different: written.
    Update,
    /// Same content as stored: nothing written.
    Unchanged,
    /// Same content as stored but a newer version (an event or a fetch):
    /// only the version is raised, so an older state that arrives later is
    /// refused; no drift.
    Touched,
    /// Older than what the mirror knows: not written.
    Stale,
    /// Same version, different content: not written; fetch to settle.
    Tie,
    /// Another snapshot of the same object in this batch superseded it.
    Superseded,
}

impl Decision {
    /// Whether the mirror changes.
    pub fn writes(self) -> bool {
        matches!(self, Decision::Insert | Decision::Update)
    }
}

/// The monotonic guard. `floor` is the kind's sweep floor, if any.
pub fn decide(
    stored: Option<&StoredObject>,
    floor: Option<i64>,
    new: &Snapshot,
    guard: Guard,
) -> Decision {
    let Some(stored) = stored else {
        // After a complete sweep that started at `f`, an object the mirror
        // has never held was not live when the sweep listed its kind (or it
        // was created later, at `f` or after): an older state of it is a
        // delayed webhook of an object that no longer exists.
        return match floor {
            Some(f) if guard == Guard::Newer && new.version < f => Decision::Stale,
            _ => Decision::Insert,
        };
    };
    let s = &stored.snapshot;
    if s.hash == new.hash && s.deleted == new.deleted {
        return Decision::Unchanged;
    }
    if s.deleted && !new.deleted && new.version <= s.version {
        // A tombstone is only lifted by a strictly newer live state.
        return Decision::Stale;
    }
    let effective = match floor {
        Some(f) if guard == Guard::Newer => s.version.max(f),
        _ => s.version,
    };
    match (new.version.cmp(&effective), guard) {
        (std::cmp::Ordering::Greater, _) => Decision::Update,
        (std::cmp::Ordering::Equal, Guard::NewerOrEqual) => Decision::Update,
        (std::cmp::Ordering::Equal, Guard::Newer) => Decision::Tie,
        (std::cmp::Ordering::Less, _) => Decision::Stale,
    }
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOutcome {
    /// `false`: the ledger already had it; nothing applied.
    pub new: bool,
    /// Per snapshot of the event, in order.
    pub decisions: Vec<Decision>,
}

/// What [`commit`] did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Per event of the batch.
    pub events: Vec<EventOutcome>,
    /// Per change of the batch.
    pub changes: Vec<Decision>,
    /// Drift records written (or that would be, in a dry run).
    pub drift: Vec<DriftRecord>,
    /// The generation under which this commit queued its ties (and
    /// [`Batch::fetches`]): discharge them with it once fetched.
    pub generation: i64,
    /// App rows the store's projections changed in this commit (none in a
    /// dry run); see [`crate::project`].
    pub app: Vec<crate::project::AppChange>,
}

impl Outcome {
    /// Snapshots that tied and need a fetch, with their keys.
    pub fn ties<'a>(&self, batch: &'a Batch) -> Vec<&'a Snapshot> {
        let mut out = Vec::new();
        for (e, o) in batch.events.iter().zip(&self.events) {
            for (s, d) in e.event.snapshots.iter().zip(&o.decisions) {
                if *d == Decision::Tie {
                    out.push(s);
                }
            }
        }
        for (c, d) in batch.changes.iter().zip(&self.changes) {
            if *d == Decision::Tie {
                out.push(&c.snapshot);
            }
        }
        out
    }

    /// Count decisions of a kind over events and changes.
    pub fn count(&self, which: Decision) -> u64 {
        let ev = self
            .events
            .iter()
            .flat_map(|e| e.decisions.iter())
            .filter(|d| **d == which)
            .count();
        let ch = self.changes.iter().filter(|d| **d == which).count();
        (ev + ch) as u64
    }
}

struct Item<'a> {
    snapshot: &'a Snapshot,
    guard: Guard,
    /// Raise the stored version when the content is unchanged (events and
    /// fetches; not sweep listings, whose floor does that for the kind).
    touch: bool,
    drift: Option<&'a DriftMeta>,
    /// The path that brought it (`None`: a direct fetch).
    source: Option<Source>,
    /// (event index, snapshot index) or (usize::MAX, change index)
    slot: (usize, usize),
}

/// Commit a batch: see the module documentation.
///
/// Traced as a `recon.commit` span: provider, account and kind of the
/// batch's objects (`*` when it mixes kinds), how many events and changes it
/// holds, whether it is a dry run, and how many drift records it wrote.
/// Never an object's content.
pub async fn commit(store: &dyn Store, batch: &Batch, dry_run: bool) -> Result<Outcome> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "recon.commit",
        provider = tracing::field::Empty,
        account = tracing::field::Empty,
        kind = tracing::field::Empty,
        events = batch.events.len(),
        changes = batch.changes.len(),
        dry_run,
        drift = tracing::field::Empty,
    );
    if span.is_disabled() {
        return apply(store, batch, dry_run).await;
    }
    describe(&span, batch);
    let out = apply(store, batch, dry_run).instrument(span.clone()).await;
    if let Ok(o) = &out {
        span.record("drift", o.drift.len());
    }
    out
}

/// The commit span's provider, account and kind, from the batch's objects
/// (else its events, else its cursors).
fn describe(span: &tracing::Span, batch: &Batch) {
    let mut keys = batch
        .events
        .iter()
        .flat_map(|e| e.event.snapshots.iter().map(|s| &s.key))
        .chain(batch.changes.iter().map(|c| &c.snapshot.key))
        .chain(batch.fetches.iter().map(|(k, _)| k))
        .chain(batch.resolves.iter().map(|(k, _)| k));
    if let Some(first) = keys.next() {
        span.record("provider", first.provider.as_str());
        span.record("account", first.account.as_str());
        let same = keys.all(|k| k.kind == first.kind);
        span.record("kind", if same { first.kind.as_str() } else { "*" });
    } else if let Some(e) = batch.events.first() {
        span.record("provider", e.event.provider.as_str());
        span.record("account", e.event.account.as_str());
    } else if let Some(c) = batch.cursors.first() {
        span.record("provider", c.provider.as_str());
        span.record("account", c.account.as_str());
    }
}

async fn apply(store: &dyn Store, batch: &Batch, dry_run: bool) -> Result<Outcome> {
    let sync = store.app_sync().filter(|s| s.is_active());
    let mut tx = store.begin().await?;
    let generation = now_ms();

    // 0. Raising a sweep floor waits for every transaction that decided
    // under the old one.
    let mut floors: Vec<(&str, &str, &str)> = batch
        .cursors
        .iter()
        .filter_map(|c| {
            c.name
                .strip_prefix("sweep:")
                .map(|k| (c.provider.as_str(), c.account.as_str(), k))
        })
        .collect();
    floors.sort();
    floors.dedup();
    for (p, a, k) in floors {
        tx.lock_kind(p, a, k, true).await?;
    }

    // 1. Ledger.
    let rows: Vec<LedgerRow<'_>> = batch
        .events
        .iter()
        .map(|e| LedgerRow {
            event: &e.event,
            source: e.source,
            run_id: e.drift.as_ref().and_then(|d| d.run_id.as_deref()),
        })
        .collect();
    let fresh = if rows.is_empty() {
        Vec::new()
    } else {
        tx.ledger_insert(&rows).await?
    };
    // A batch may repeat an event id (a duplicate delivery in the same page).
    let mut seen_ids: HashMap<(&str, &str), ()> = HashMap::new();
    let mut fresh_dedup = Vec::with_capacity(fresh.len());
    for (e, f) in batch.events.iter().zip(&fresh) {
        let k = (e.event.account.as_str(), e.event.event_id.as_str());
        let first = seen_ids.insert(k, ()).is_none();
        fresh_dedup.push(*f && first);
    }

    // 2. Items to apply, in order; a later snapshot of the same key with a
    // version at least as high supersedes an earlier one.
    let mut items: Vec<Item<'_>> = Vec::new();
    for (ei, (e, new)) in batch.events.iter().zip(&fresh_dedup).enumerate() {
        if !*new {
            continue;
        }
        for (si, s) in e.event.snapshots.iter().enumerate() {
            items.push(Item {
                snapshot: s,
                guard: Guard::Newer,
                touch: true,
                drift: e.drift.as_ref(),
                source: Some(e.source),
                slot: (ei, si),
            });
        }
    }
    for (ci, c) in batch.changes.iter().enumerate() {
        items.push(Item {
            snapshot: &c.snapshot,
            guard: c.guard,
            touch: c.guard == Guard::NewerOrEqual,
            drift: c.drift.as_ref(),
            source: c.drift.as_ref().map(|d| d.source).or(batch.source),
            slot: (usize::MAX, ci),
        });
    }

    let mut decisions: Vec<Decision> = vec![Decision::Superseded; items.len()];
    // Two states of one object with the same version inside one batch
    // (Stripe events of the same second) cannot be ordered by arrival: the
    // object is reported as a tie, so the caller fetches it.
    let mut winner: HashMap<&crate::types::ObjectKey, usize> = HashMap::new();
    let mut tied: std::collections::HashSet<&crate::types::ObjectKey> =
        std::collections::HashSet::new();
    for (i, it) in items.iter().enumerate() {
        match winner.get(&it.snapshot.key) {
            Some(&j) if items[j].snapshot.version > it.snapshot.version => {}
            Some(&j)
                if items[j].snapshot.version == it.snapshot.version
                    && items[j].guard == Guard::Newer
                    && it.guard == Guard::Newer =>
            {
                if items[j].snapshot.hash != it.snapshot.hash {
                    tied.insert(&it.snapshot.key);
                }
                winner.insert(&it.snapshot.key, i);
            }
            _ => {
                tied.remove(&it.snapshot.key);
                winner.insert(&it.snapshot.key, i);
            }
        }
    }

    // 3. Load stored rows and floors per (provider, account, kind).
    let mut groups: HashMap<(&str, &str, &str), Vec<usize>> = HashMap::new();
    for &i in winner.values() {
        let k = &items[i].snapshot.key;
        groups
            .entry((k.provider.as_str(), k.account.as_str(), k.kind.as_str()))
            .or_default()
            .push(i);
    }
    let mut group_keys: Vec<_> = groups.keys().copied().collect();
    group_keys.sort();
    let mut to_write: Vec<(usize, Option<StoredObject>)> = Vec::new();
    // Events refused because a running sweep listed a newer state: the
    // listing may never be applied (a staged sweep that fails), so the
    // object is fetched to be sure.
    let mut listed_newer: Vec<&ObjectKey> = Vec::new();
    let mut group_floor: HashMap<(&str, &str, &str), Option<i64>> = HashMap::new();
    for g in group_keys {
        let group_start = to_write.len();
        let mut idx = groups.remove(&g).unwrap_or_default();
        idx.sort_by(|a, b| items[*a].snapshot.key.id.cmp(&items[*b].snapshot.key.id));
        let (provider, account, kind) = g;
        if idx.iter().any(|i| items[*i].guard == Guard::Newer) {
            tx.lock_kind(provider, account, kind, false).await?;
        }
        let floor = tx
            .cursor(provider, account, &sweep_floor_name(kind))
            .await?
            .map(|c| c.value);
        group_floor.insert(g, floor);
        let ids: Vec<&str> = idx
            .iter()
            .map(|i| items[*i].snapshot.key.id.as_str())
            .collect();
        // With projections or the change feed, a decision made from a
        // stale read would project (and record) from the wrong previous
        // state, or miss a content change the upsert still makes: read
        // what is locked.
        if sync.is_some() {
            tx.lock_objects(provider, account, kind, &ids).await?;
        }
        let stored = tx.load_heads(provider, account, kind, &ids).await?;
        let mut by_id: HashMap<String, StoredObject> = stored
            .into_iter()
            .map(|s| (s.snapshot.key.id.clone(), s))
            .collect();
        // What running sweeps listed of the objects events bring.
        let event_ids: Vec<&str> = idx
            .iter()
            .filter(|i| items[**i].slot.0 != usize::MAX)
            .map(|i| items[*i].snapshot.key.id.as_str())
            .collect();
        let seen: HashMap<String, i64> = if event_ids.is_empty() {
            HashMap::new()
        } else {
            tx.seen_versions(provider, account, kind, &event_ids)
                .await?
                .into_iter()
                .collect()
        };
        for i in idx {
            let it = &items[i];
            let prev = by_id.remove(&it.snapshot.key.id);
            let mut d = decide(prev.as_ref(), floor, it.snapshot, it.guard);
            // A running sweep listed this object at a newer version than the
            // event's: the listing saw a newer state than the event carries.
            if it.slot.0 != usize::MAX
                && d != Decision::Unchanged
                && seen
                    .get(&it.snapshot.key.id)
                    .is_some_and(|v| *v > it.snapshot.version)
            {
                d = Decision::Stale;
                listed_newer.push(&it.snapshot.key);
            }
            if d == Decision::Unchanged
                && it.touch
                && prev
                    .as_ref()
                    .is_some_and(|p| p.snapshot.version < it.snapshot.version)
            {
                d = Decision::Touched;
            }
            // Two states of one version in this batch: whichever came last
            // in the batch may not be the newer one, even if it matches the
            // mirror.
            if d != Decision::Stale && tied.contains(&it.snapshot.key) {
                d = Decision::Tie;
            }
            decisions[i] = d;
            if d.writes() || d == Decision::Touched {
                to_write.push((i, prev));
            }
        }
        // The documents of the rows about to change with a drift record
        // (its `before`), read only now that they are known to be few.
        // The change feed and projections that map keys from documents
        // need the replaced document too.
        let full_prev =
            sync.is_some_and(|s| s.feed || s.projections.iter().any(|p| p.needs_data(kind)));
        let need: Vec<&str> = to_write[group_start..]
            .iter()
            .filter(|(i, prev)| {
                prev.is_some() && (items[*i].drift.is_some() || full_prev) && decisions[*i].writes()
            })
            .map(|(i, _)| items[*i].snapshot.key.id.as_str())
            .collect();
        if !need.is_empty() {
            let mut full: HashMap<String, StoredObject> = tx
                .load(provider, account, kind, &need)
                .await?
                .into_iter()
                .map(|s| (s.snapshot.key.id.clone(), s))
                .collect();
            for (i, prev) in &mut to_write[group_start..] {
                if prev.is_some()
                    && let Some(f) = full.remove(&items[*i].snapshot.key.id)
                {
                    *prev = Some(f);
                }
            }
        }
    }

    // 4. Write, in key order, one statement per guard.
    let mut drift = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    // What reached the mirror, with the state it replaced.
    let mut applied: Vec<(usize, Option<&StoredObject>)> = Vec::new();
    to_write.sort_by(|a, b| items[a.0].snapshot.key.cmp(&items[b.0].snapshot.key));
    for guard in [Guard::Newer, Guard::NewerOrEqual] {
        let part: Vec<&(usize, Option<StoredObject>)> = to_write
            .iter()
            .filter(|(i, _)| items[*i].guard == guard)
            .collect();
        if part.is_empty() {
            continue;
        }
        let snaps: Vec<&Snapshot> = part.iter().map(|(i, _)| items[*i].snapshot).collect();
        let written = if dry_run {
            vec![true; snaps.len()]
        } else {
            tx.upsert(&snaps, guard).await?
        };
        let now = now_ms();
        for ((i, prev), ok) in part.into_iter().zip(written) {
            if !ok {
                refused.push(*i);
                continue;
            }
            if decisions[*i] == Decision::Touched {
                continue;
            }
            applied.push((*i, prev.as_ref()));
            let it = &items[*i];
            if let Some(meta) = it.drift {
                let cause = match (prev, it.snapshot.deleted) {
                    (_, true) => DriftCause::Deleted,
                    (None, false) => DriftCause::Missing,
                    (Some(p), false) if p.snapshot.deleted => DriftCause::Missing,
                    (Some(_), false) => DriftCause::Changed,
                };
                drift.push(DriftRecord {
                    key: it.snapshot.key.clone(),
                    run_id: meta.run_id.clone(),
                    source: meta.source,
                    cause,
                    before: prev.as_ref().map(|p| p.snapshot.data.clone()),
                    after: Some(it.snapshot.data.clone()),
                    detected_at: now,
                });
            }
        }
    }
    // A row the SQL guard refused was changed by a concurrent writer since
    // it was read: decide again against what is stored now.
    if !refused.is_empty() {
        refused.sort_by(|a, b| items[*a].snapshot.key.cmp(&items[*b].snapshot.key));
        for i in refused {
            let k = &items[i].snapshot.key;
            let g = (k.provider.as_str(), k.account.as_str(), k.kind.as_str());
            let now_stored = tx
                .load_heads(g.0, g.1, g.2, &[k.id.as_str()])
                .await?
                .into_iter()
                .next();
            let floor = group_floor.get(&g).copied().flatten();
            decisions[i] = match decide(
                now_stored.as_ref(),
                floor,
                items[i].snapshot,
                items[i].guard,
            ) {
                Decision::Tie => Decision::Tie,
                _ => Decision::Stale,
            };
        }
    }

    // The app's tables follow the mirror in the same transaction, and the
    // change feed records both.
    // A dry run writes no snapshot, so projecting would compute from the
    // unchanged mirror: nothing is projected (the app pass has its own dry
    // run).
    let mut app = Vec::new();
    if let Some(sync) = sync
        && !applied.is_empty()
        && !dry_run
    {
        let changed: Vec<(&Snapshot, Option<&StoredObject>)> = applied
            .iter()
            .map(|(i, prev)| (items[*i].snapshot, *prev))
            .collect();
        app = crate::project::project_in_tx(tx.as_mut(), sync, &changed, false).await?;
        if sync.feed {
            let at = now_ms();
            let mut feed: Vec<crate::project::ChangeRow> = applied
                .iter()
                .map(|(i, prev)| {
                    let s = items[*i].snapshot;
                    let (before, after) = crate::project::compact_diff(
                        prev.map(|p| &p.snapshot.data).filter(|d| !d.is_null()),
                        Some(&s.data),
                    );
                    crate::project::ChangeRow {
                        seq: 0,
                        provider: s.key.provider.clone(),
                        account: s.key.account.clone(),
                        kind: s.key.kind.clone(),
                        object_id: s.key.id.clone(),
                        app_table: None,
                        app_key: None,
                        cause: crate::project::feed_cause(items[*i].source).to_string(),
                        before,
                        after,
                        at,
                    }
                })
                .collect();
            if let Some((i, _)) = applied.first() {
                let first = &items[*i];
                feed.extend(crate::project::app_feed_rows(
                    sync,
                    &app,
                    &first.snapshot.key.account,
                    crate::project::feed_cause(first.source),
                    at,
                ));
            }
            tx.append_changes(&feed).await?;
        }
    }

    if !dry_run {
        if !drift.is_empty() {
            tx.insert_drift(&drift).await?;
        }
        for c in &batch.cursors {
            tx.set_cursor(c).await?;
        }
        // What this commit owes a fetch for, queued with the decision so it
        // outlives a failed fetch and a restart: ties, events refused for a
        // running sweep's listing, and what the batch asks for.
        let mut owed: Vec<(&ObjectKey, &str)> = items
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| **d == Decision::Tie)
            .map(|(it, _)| (&it.snapshot.key, "tie"))
            .collect();
        owed.extend(listed_newer.iter().map(|k| (*k, "listed_newer")));
        owed.extend(batch.fetches.iter().map(|(k, r)| (k, r.as_str())));
        let mut reasons: Vec<&str> = owed.iter().map(|(_, r)| *r).collect();
        reasons.sort();
        reasons.dedup();
        for r in reasons {
            let keys: Vec<&ObjectKey> = owed
                .iter()
                .filter(|(_, why)| *why == r)
                .map(|(k, _)| *k)
                .collect();
            tx.enqueue_fetches(&keys, r, generation).await?;
        }
        if !batch.resolves.is_empty() {
            let done: Vec<(&ObjectKey, i64)> =
                batch.resolves.iter().map(|(k, g)| (k, *g)).collect();
            tx.resolve_fetches(&done).await?;
        }
        tx.commit().await?;
    }

    // 5. Shape the outcome like the batch.
    let mut out = Outcome {
        events: batch
            .events
            .iter()
            .zip(&fresh_dedup)
            .map(|(e, new)| EventOutcome {
                new: *new,
                decisions: if *new {
                    vec![Decision::Superseded; e.event.snapshots.len()]
                } else {
                    Vec::new()
                },
            })
            .collect(),
        changes: vec![Decision::Superseded; batch.changes.len()],
        drift,
        generation,
        app,
    };
    for (it, d) in items.iter().zip(decisions) {
        match it.slot {
            (usize::MAX, ci) => out.changes[ci] = d,
            (ei, si) => out.events[ei].decisions[si] = d,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ObjectKey;

    fn snap(v: i64, body: &str) -> Snapshot {
        Snapshot::live(
            ObjectKey::new("p", "default", "k", "x"),
            v,
            serde_json::json!({ "id": "x", "b": body }),
        )
    }

    fn stored(s: Snapshot) -> StoredObject {
        StoredObject {
            snapshot: s,
            confirmed_at: 0,
        }
    }

    #[test]
    fn guard_rules() {
        let cur = stored(snap(10, "a"));
        assert_eq!(
            decide(None, None, &snap(1, "a"), Guard::Newer),
            Decision::Insert
        );
        assert_eq!(
            decide(Some(&cur), None, &snap(11, "b"), Guard::Newer),
            Decision::Update
        );
        assert_eq!(
            decide(Some(&cur), None, &snap(9, "b"), Guard::Newer),
            Decision::Stale
        );
        assert_eq!(
            decide(Some(&cur), None, &snap(10, "b"), Guard::Newer),
            Decision::Tie
        );
        assert_eq!(
            decide(Some(&cur), None, &snap(10, "b"), Guard::NewerOrEqual),
            Decision::Update
        );
        assert_eq!(
            decide(Some(&cur), None, &snap(3, "a"), Guard::Newer),
            Decision::Unchanged
        );
        // The sweep floor raises the bar for event-carried snapshots.
        assert_eq!(
            decide(Some(&cur), Some(20), &snap(15, "b"), Guard::Newer),
            Decision::Stale
        );
        assert_eq!(
            decide(Some(&cur), Some(20), &snap(20, "b"), Guard::Newer),
            Decision::Tie
        );
        // Absent from the mirror after a complete sweep: an insert older
        // than the floor is refused; at the floor or newer it is written.
        assert_eq!(
            decide(None, Some(20), &snap(19, "a"), Guard::Newer),
            Decision::Stale
        );
        assert_eq!(
            decide(None, Some(20), &snap(20, "a"), Guard::Newer),
            Decision::Insert
        );
        assert_eq!(
            decide(None, Some(20), &snap(3, "a"), Guard::NewerOrEqual),
            Decision::Insert
        );
        // A tombstone is lifted only by a strictly newer live state.
        let dead = stored(Snapshot::tombstone(
            ObjectKey::new("p", "default", "k", "x"),
            10,
        ));
        assert_eq!(
            decide(Some(&dead), None, &snap(10, "a"), Guard::NewerOrEqual),
            Decision::Stale
        );
    }
}
