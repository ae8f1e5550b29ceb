-- Objects the store refuses to key (a NUL in the id, an id longer than
-- 1024 bytes: the Postgres store cannot index them, and both stores keep
-- the same rule): kept here with the snapshot's raw bytes instead of failing
-- the batch they came in. Key columns are JSON-escaped.
CREATE TABLE quarantine (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    object_id   TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    raw         BLOB    NOT NULL,
    detected_at INTEGER NOT NULL
);
CREATE INDEX quarantine_detected ON quarantine (detected_at);
