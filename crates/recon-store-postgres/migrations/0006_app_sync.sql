-- The change feed: every mirror object and app row recon changed, in commit
-- order (see recon_core::project). `seq` is the app's idempotency key; each
-- new one is announced with NOTIFY recon_changes at commit. Rows older than
-- the retention are pruned by `at`.
CREATE TABLE changes (
    seq       bigserial PRIMARY KEY,
    provider  text   NOT NULL,
    account   text   NOT NULL,
    kind      text   NOT NULL,
    object_id text   NOT NULL,
    app_table text,
    app_key   text,
    cause     text   NOT NULL,
    before    jsonb,
    after     jsonb,
    at        bigint NOT NULL
);
CREATE INDEX changes_at ON changes (at);
