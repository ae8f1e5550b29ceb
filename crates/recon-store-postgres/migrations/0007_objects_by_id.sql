-- Projections and the views look objects up by id without naming the
-- account (`WHERE id = ANY(...)` over `stripe_customers`): with only the
-- primary key (provider, account, kind, id), Postgres filtered every object
-- of the kind for each lookup. This index makes it one probe per id.
CREATE INDEX objects_kind_id ON objects (provider, kind, id);
