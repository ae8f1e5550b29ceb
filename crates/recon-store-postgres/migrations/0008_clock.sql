-- The database's clock in unix milliseconds, so that SQL written once for
-- both stores (the built-in stale-row check) can say "older than N ms".
CREATE VIEW recon_clock AS
SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms;
