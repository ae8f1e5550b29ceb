//! Group commit for webhooks: deliveries that arrive while a transaction is
//! being committed wait and are committed together in the next one.
//!
//! Each webhook still gets its own answer, and only after the transaction
//! holding its ledger row and its snapshots has committed, so acknowledging
//! it stays safe. What changes is the cost: one transaction (one round of
//! statements, one fsync) per group instead of per webhook. Under no load a
//! group is one webhook and nothing waits.
//!
//! Why by hand: this is a few dozen lines over a mutex and oneshot channels;
//! the batching crates seen (e.g. tower's `Buffer`, which queues but does not
//! batch) do not commit groups through our `commit` path.
//!
//! A group whose transaction fails is retried one webhook at a time, so one
//! bad event (say a body the database refuses) fails only its own delivery.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::commit::{Batch, Decision, EventEntry, EventOutcome, commit};
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::types::Snapshot;

/// What one webhook's commit did: its outcome, its snapshots that tied (to
/// be fetched by the caller; the commit queued them durably) and the
/// generation they were queued under.
pub(crate) type Committed = (EventOutcome, Vec<Snapshot>, i64);

struct Pending {
    entry: EventEntry,
    reply: oneshot::Sender<Result<Committed>>,
}

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    draining: bool,
}

/// One per engine (shared by its clones).
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    max: usize,
}

impl GroupCommit {
    /// At most `max` webhooks per transaction.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(GroupCommit {
            state: Mutex::new(State::default()),
            max: max.max(1),
        })
    }

    /// Queue `entry` and wait until the transaction holding it committed.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        entry: EventEntry,
    ) -> Result<Committed> {
        let (reply, rx) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().expect("group commit lock");
            s.queue.push(Pending { entry, reply });
            !std::mem::replace(&mut s.draining, true)
        };
        if start {
            // A task of its own, so a caller that goes away (a client that
            // hangs up) cannot strand the others waiting on this group.
            tokio::spawn(self.clone().drain(store.clone()));
        }
        rx.await.map_err(|_| {
            Error::new(
                ErrorKind::Store,
                "the webhook commit task ended before answering",
            )
        })?
    }

    async fn drain(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            let group: Vec<Pending> = {
                let mut s = self.state.lock().expect("group commit lock");
                if s.queue.is_empty() {
                    s.draining = false;
                    return;
                }
                let n = s.queue.len().min(self.max);
                s.queue.drain(..n).collect()
            };
            commit_group(store.as_ref(), group).await;
        }
    }
}

async fn commit_group(store: &dyn Store, group: Vec<Pending>) {
    let (entries, replies): (Vec<EventEntry>, Vec<_>) =
        group.into_iter().map(|p| (p.entry, p.reply)).unzip();
    let batch = Batch {
        events: entries,
        ..Batch::default()
    };
    match commit_retrying(store, &batch, false).await {
        Ok(out) => {
            for ((ev, entry), reply) in out.events.into_iter().zip(&batch.events).zip(replies) {
                let _ = reply.send(Ok(with_ties(ev, entry, out.generation)));
            }
        }
        Err(e) if replies.len() == 1 => {
            let _ = replies.into_iter().next().map(|r| r.send(Err(e)));
        }
        Err(e) => {
            tracing::debug!(error = %e, events = replies.len(), "group commit failed; committing one by one");
            for (entry, reply) in batch.events.into_iter().zip(replies) {
                let one = Batch {
                    events: vec![entry],
                    ..Batch::default()
                };
                let r = commit_retrying(store, &one, false)
                    .await
                    .map(|mut out| with_ties(out.events.remove(0), &one.events[0], out.generation));
                let _ = reply.send(r);
            }
        }
    }
}

fn with_ties(ev: EventOutcome, entry: &EventEntry, generation: i64) -> Committed {
    let ties = entry
        .event
        .snapshots
        .iter()
        .zip(&ev.decisions)
        .filter(|(_, d)| **d == Decision::Tie)
        .map(|(s, _)| s.clone())
        .collect();
    (ev, ties, generation)
}

/// Commit, retrying a store conflict (a serialization failure, a lock
/// timeout) a few times.
pub(crate) async fn commit_retrying(
    store: &dyn Store,
    batch: &Batch,
    dry_run: bool,
) -> Result<crate::commit::Outcome> {
    let mut attempt = 0;
    loop {
        match commit(store, batch, dry_run).await {
            Err(e) if e.kind() == ErrorKind::Conflict && attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "store conflict; retrying commit");
                tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
            }
            other => return other,
        }
    }
}
