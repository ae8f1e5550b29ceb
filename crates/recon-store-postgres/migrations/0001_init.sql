-- recon's mirror, ledger, drift log, runs and cursors. Runs inside the
-- store's own schema (search_path is set to it), so it can live in an app's
-- database beside the app's tables.

CREATE TABLE objects (
    provider     text    NOT NULL,
    account      text    NOT NULL,
    kind         text    NOT NULL,
    id           text    NOT NULL,
    version      bigint  NOT NULL,
    deleted      boolean NOT NULL DEFAULT false,
    status       text,
    owner_id     text,
    email        text,
    data         jsonb   NOT NULL,
    hash         text    NOT NULL,
    confirmed_at bigint  NOT NULL,
    PRIMARY KEY (provider, account, kind, id)
);
CREATE INDEX objects_owner ON objects (provider, account, owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX objects_live_confirmed ON objects (confirmed_at) WHERE NOT deleted;

CREATE TABLE event_ledger (
    provider    text   NOT NULL,
    account     text   NOT NULL,
    event_id    text   NOT NULL,
    event_type  text   NOT NULL,
    created     bigint NOT NULL,
    source      text   NOT NULL,
    run_id      text,
    received_at bigint NOT NULL,
    PRIMARY KEY (provider, account, event_id)
);
CREATE INDEX event_ledger_received ON event_ledger (received_at);

CREATE TABLE drift_log (
    seq         bigserial PRIMARY KEY,
    provider    text   NOT NULL,
    account     text   NOT NULL,
    kind        text   NOT NULL,
    object_id   text   NOT NULL,
    run_id      text,
    source      text   NOT NULL,
    cause       text   NOT NULL,
    before      jsonb,
    after       jsonb,
    detected_at bigint NOT NULL
);
CREATE INDEX drift_log_run ON drift_log (run_id);
CREATE INDEX drift_log_detected ON drift_log (detected_at);

CREATE TABLE runs (
    id             text PRIMARY KEY,
    provider       text    NOT NULL,
    account        text    NOT NULL,
    kind           text    NOT NULL,
    run_kind       text    NOT NULL,
    status         text    NOT NULL,
    dry_run        boolean NOT NULL,
    started_at     bigint  NOT NULL,
    finished_at    bigint,
    counts         jsonb   NOT NULL,
    mismatch_ratio double precision NOT NULL,
    error          text
);
CREATE INDEX runs_started ON runs (started_at DESC);

CREATE TABLE cursors (
    provider   text   NOT NULL,
    account    text   NOT NULL,
    name       text   NOT NULL,
    value      bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (provider, account, name)
);

-- Scratch space of running sweeps; not part of the mirror, so unlogged.
CREATE UNLOGGED TABLE sweep_seen (
    run_id text NOT NULL,
    id     text NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE UNLOGGED TABLE sweep_staged (
    run_id  text   NOT NULL,
    seq     bigint NOT NULL,
    payload bytea  NOT NULL,
    PRIMARY KEY (run_id, seq)
);
