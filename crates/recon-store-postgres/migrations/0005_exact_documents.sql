-- Provider data that jsonb or text cannot hold as it is (a string with
-- \u0000, -0.0, 1e16 as a float): `data` keeps a copy for the views (NUL
-- shown as U+FFFD) and `exact` the document and extracted columns exactly
-- (json keeps its input text). NULL for every other row.
ALTER TABLE objects ADD COLUMN exact json;
ALTER TABLE drift_log ADD COLUMN before_exact json, ADD COLUMN after_exact json;

-- Objects that cannot be stored at all (a NUL in the id, an id longer than
-- the index allows): kept here with the snapshot's raw bytes instead of
-- failing the batch they came in. Key columns are JSON-escaped.
CREATE TABLE quarantine (
    seq         bigserial PRIMARY KEY,
    provider    text   NOT NULL,
    account     text   NOT NULL,
    kind        text   NOT NULL,
    object_id   text   NOT NULL,
    reason      text   NOT NULL,
    raw         bytea  NOT NULL,
    detected_at bigint NOT NULL
);
CREATE INDEX quarantine_detected ON quarantine (detected_at);
