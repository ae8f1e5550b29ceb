-- Fetches the engine owes (version ties to settle, events the provider could
-- not deliver, states a sweep saw that an older webhook overwrote). Queued in
-- the same transaction as the ledger row that created the obligation and
-- removed in the same transaction as the fetched state.
CREATE TABLE pending_fetches (
    provider   TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    queued_at  INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    last_error TEXT,
    PRIMARY KEY (provider, account, kind, id)
) WITHOUT ROWID;
CREATE INDEX pending_fetches_due ON pending_fetches (provider, account, next_at);

-- What a running sweep saw of each listed object: the guard refuses an event
-- older than that listing, and the sweep re-fetches what was overwritten.
ALTER TABLE sweep_seen ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sweep_seen ADD COLUMN hash TEXT;
