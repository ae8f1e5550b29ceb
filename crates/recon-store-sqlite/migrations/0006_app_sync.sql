-- The change feed: every mirror object and app row recon changed, in commit
-- order (see recon_core::project). `seq` is the app's idempotency key
-- (AUTOINCREMENT: never reused, even after pruning). Rows older than the
-- retention are pruned by `at`.
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    provider  TEXT    NOT NULL,
    account   TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    object_id TEXT    NOT NULL,
    app_table TEXT,
    app_key   TEXT,
    cause     TEXT    NOT NULL,
    before    TEXT,
    after     TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes (at);
