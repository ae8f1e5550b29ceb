-- The database's clock in unix milliseconds, so that SQL written once for
-- both stores (the built-in stale-row check) can say "older than N ms".
CREATE VIEW recon_clock AS
SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS now_ms;
