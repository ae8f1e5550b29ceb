-- Typed views per kind, for the app to query. Live objects only; the
-- tombstones stay in `objects` with deleted = true.

CREATE VIEW stripe_customers AS
SELECT account, id, email, data->>'name' AS name, data->>'phone' AS phone,
       (data->>'delinquent')::boolean AS delinquent, (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'customers' AND NOT deleted;

CREATE VIEW stripe_subscriptions AS
SELECT account, id, owner_id AS customer_id, status,
       (data->>'cancel_at_period_end')::boolean AS cancel_at_period_end,
       (data#>>'{items,data,0,current_period_end}')::bigint AS current_period_end,
       (data#>>'{items,data,0,price,id}') AS price_id,
       (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'subscriptions' AND NOT deleted;

CREATE VIEW stripe_invoices AS
SELECT account, id, owner_id AS customer_id, status,
       data#>>'{parent,subscription_details,subscription}' AS subscription_id,
       (data->>'total')::bigint AS total, (data->>'amount_due')::bigint AS amount_due,
       (data->>'amount_paid')::bigint AS amount_paid, data->>'currency' AS currency,
       (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'invoices' AND NOT deleted;

CREATE VIEW stripe_prices AS
SELECT account, id, owner_id AS product_id, (data->>'active')::boolean AS active,
       data->>'currency' AS currency, (data->>'unit_amount')::bigint AS unit_amount,
       data->>'type' AS type, data#>>'{recurring,interval}' AS recurring_interval,
       data->>'lookup_key' AS lookup_key, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'prices' AND NOT deleted;

CREATE VIEW stripe_products AS
SELECT account, id, data->>'name' AS name, (data->>'active')::boolean AS active,
       data->>'default_price' AS default_price, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'products' AND NOT deleted;

CREATE VIEW clerk_users AS
SELECT account, id, email, data->>'first_name' AS first_name, data->>'last_name' AS last_name,
       data->>'username' AS username, data->>'external_id' AS external_id,
       (data->>'banned')::boolean AS banned, (data->>'created_at')::bigint AS created_at,
       (data->>'updated_at')::bigint AS updated_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'users' AND NOT deleted;

CREATE VIEW clerk_organizations AS
SELECT account, id, data->>'name' AS name, data->>'slug' AS slug,
       (data->>'members_count')::bigint AS members_count,
       (data->>'created_at')::bigint AS created_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organizations' AND NOT deleted;

CREATE VIEW clerk_organization_memberships AS
SELECT account, id, owner_id AS user_id, data#>>'{organization,id}' AS organization_id,
       data->>'role' AS role, (data->>'created_at')::bigint AS created_at,
       data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organization_memberships' AND NOT deleted;
