-- A run says it is alive while it goes (the engine writes heartbeat_at on a
-- timer). A run still 'running' whose heartbeat stopped was killed or cut off
-- from the database; the next sweep or replay closes it as failed.
ALTER TABLE runs ADD COLUMN heartbeat_at bigint;
CREATE INDEX runs_running ON runs (started_at) WHERE status = 'running';
