-- Fetches the engine owes (version ties to settle, events the provider could
-- not deliver, states a sweep saw that an older webhook overwrote). Queued in
-- the same transaction as the ledger row that created the obligation and
-- removed in the same transaction as the fetched state, so a failed fetch,
-- a hung-up sender or a restart loses nothing.
CREATE TABLE pending_fetches (
    provider   text    NOT NULL,
    account    text    NOT NULL,
    kind       text    NOT NULL,
    id         text    NOT NULL,
    reason     text    NOT NULL,
    queued_at  bigint  NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    next_at    bigint  NOT NULL,
    last_error text,
    PRIMARY KEY (provider, account, kind, id)
);
CREATE INDEX pending_fetches_due ON pending_fetches (provider, account, next_at);

-- What a running sweep saw of each listed object: the guard refuses an event
-- older than that listing, and the sweep re-fetches what was overwritten.
ALTER TABLE sweep_seen ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE sweep_seen ADD COLUMN hash text;
