-- Typed views per kind, for the app to query (live objects only).

CREATE VIEW stripe_customers AS
SELECT account, id, email, data->>'name' AS name, data->>'phone' AS phone,
       data->>'delinquent' AS delinquent, data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'customers' AND deleted = 0;

CREATE VIEW stripe_subscriptions AS
SELECT account, id, owner_id AS customer_id, status,
       data->>'cancel_at_period_end' AS cancel_at_period_end,
       data->>'$.items.data[0].current_period_end' AS current_period_end,
       data->>'$.items.data[0].price.id' AS price_id,
       data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'subscriptions' AND deleted = 0;

CREATE VIEW stripe_invoices AS
SELECT account, id, owner_id AS customer_id, status,
       data->>'$.parent.subscription_details.subscription' AS subscription_id,
       data->>'total' AS total, data->>'amount_due' AS amount_due,
       data->>'amount_paid' AS amount_paid, data->>'currency' AS currency,
       data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'invoices' AND deleted = 0;

CREATE VIEW stripe_prices AS
SELECT account, id, owner_id AS product_id, data->>'active' AS active,
       data->>'currency' AS currency, data->>'unit_amount' AS unit_amount,
       data->>'type' AS type, data->>'$.recurring.interval' AS recurring_interval,
       data->>'lookup_key' AS lookup_key, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'prices' AND deleted = 0;

CREATE VIEW stripe_products AS
SELECT account, id, data->>'name' AS name, data->>'active' AS active,
       data->>'default_price' AS default_price, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'products' AND deleted = 0;

CREATE VIEW clerk_users AS
SELECT account, id, email, data->>'first_name' AS first_name, data->>'last_name' AS last_name,
       data->>'username' AS username, data->>'external_id' AS external_id,
       data->>'banned' AS banned, data->>'created_at' AS created_at,
       data->>'updated_at' AS updated_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'users' AND deleted = 0;

CREATE VIEW clerk_organizations AS
SELECT account, id, data->>'name' AS name, data->>'slug' AS slug,
       data->>'members_count' AS members_count,
       data->>'created_at' AS created_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organizations' AND deleted = 0;

CREATE VIEW clerk_organization_memberships AS
SELECT account, id, owner_id AS user_id, data->>'$.organization.id' AS organization_id,
       data->>'role' AS role, data->>'created_at' AS created_at,
       data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organization_memberships' AND deleted = 0;
