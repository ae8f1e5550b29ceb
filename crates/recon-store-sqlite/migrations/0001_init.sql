-- recon's mirror, ledger, drift log, runs and cursors (SQLite).

CREATE TABLE objects (
    provider     TEXT    NOT NULL,
    account      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    status       TEXT,
    owner_id     TEXT,
    email        TEXT,
    data         TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    confirmed_at INTEGER NOT NULL,
    PRIMARY KEY (provider, account, kind, id)
) WITHOUT ROWID;
CREATE INDEX objects_owner ON objects (provider, account, owner_id) WHERE owner_id IS NOT NULL;
CREATE INDEX objects_live_confirmed ON objects (confirmed_at) WHERE deleted = 0;

CREATE TABLE event_ledger (
    provider    TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    created     INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    run_id      TEXT,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (provider, account, event_id)
) WITHOUT ROWID;
CREATE INDEX event_ledger_received ON event_ledger (received_at);

CREATE TABLE drift_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    run_id      TEXT,
    source      TEXT    NOT NULL,
    cause       TEXT    NOT NULL,
    before      TEXT,
    after       TEXT,
    detected_at INTEGER NOT NULL
);
CREATE INDEX drift_log_run ON drift_log (run_id);
CREATE INDEX drift_log_detected ON drift_log (detected_at);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    provider       TEXT    NOT NULL,
    account        TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    run_kind       TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    dry_run        INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    counts         TEXT    NOT NULL,
    mismatch_ratio REAL    NOT NULL,
    error          TEXT
);
CREATE INDEX runs_started ON runs (started_at DESC);

CREATE TABLE cursors (
    provider   TEXT    NOT NULL,
    account    TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    value      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (provider, account, name)
) WITHOUT ROWID;

CREATE TABLE sweep_seen (
    run_id TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE TABLE sweep_staged (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    payload BLOB    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
