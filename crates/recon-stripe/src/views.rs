//! Stripe's typed views over recon's `objects` table, for both stores:
//! live objects only (tombstones stay in `objects` with `deleted` set).
//! The stores create them at `recon migrate` for the registered providers.

use recon_core::store::View;

/// One view per kind.
pub const VIEWS: &[View] = &[
    View {
        name: "stripe_customers",
        postgres: r#"SELECT account, id, email, data->>'name' AS name, data->>'phone' AS phone,
       (data->>'delinquent')::boolean AS delinquent, (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'customers' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, email, data->>'name' AS name, data->>'phone' AS phone,
       data->>'delinquent' AS delinquent, data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'customers' AND deleted = 0"#,
    },
    View {
        name: "stripe_subscriptions",
        postgres: r#"SELECT account, id, owner_id AS customer_id, status,
       (data->>'cancel_at_period_end')::boolean AS cancel_at_period_end,
       (data#>>'{items,data,0,current_period_end}')::bigint AS current_period_end,
       (data#>>'{items,data,0,price,id}') AS price_id,
       (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'subscriptions' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, owner_id AS customer_id, status,
       data->>'cancel_at_period_end' AS cancel_at_period_end,
       data->>'$.items.data[0].current_period_end' AS current_period_end,
       data->>'$.items.data[0].price.id' AS price_id,
       data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'subscriptions' AND deleted = 0"#,
    },
    View {
        name: "stripe_invoices",
        postgres: r#"SELECT account, id, owner_id AS customer_id, status,
       data#>>'{parent,subscription_details,subscription}' AS subscription_id,
       (data->>'total')::bigint AS total, (data->>'amount_due')::bigint AS amount_due,
       (data->>'amount_paid')::bigint AS amount_paid, data->>'currency' AS currency,
       (data->>'created')::bigint AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'invoices' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, owner_id AS customer_id, status,
       data->>'$.parent.subscription_details.subscription' AS subscription_id,
       data->>'total' AS total, data->>'amount_due' AS amount_due,
       data->>'amount_paid' AS amount_paid, data->>'currency' AS currency,
       data->>'created' AS created,
       data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'invoices' AND deleted = 0"#,
    },
    View {
        name: "stripe_prices",
        postgres: r#"SELECT account, id, owner_id AS product_id, (data->>'active')::boolean AS active,
       data->>'currency' AS currency, (data->>'unit_amount')::bigint AS unit_amount,
       data->>'type' AS type, data#>>'{recurring,interval}' AS recurring_interval,
       data->>'lookup_key' AS lookup_key, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'prices' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, owner_id AS product_id, data->>'active' AS active,
       data->>'currency' AS currency, data->>'unit_amount' AS unit_amount,
       data->>'type' AS type, data->>'$.recurring.interval' AS recurring_interval,
       data->>'lookup_key' AS lookup_key, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'prices' AND deleted = 0"#,
    },
    View {
        name: "stripe_products",
        postgres: r#"SELECT account, id, data->>'name' AS name, (data->>'active')::boolean AS active,
       data->>'default_price' AS default_price, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'products' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, data->>'name' AS name, data->>'active' AS active,
       data->>'default_price' AS default_price, data, version, confirmed_at
FROM objects WHERE provider = 'stripe' AND kind = 'products' AND deleted = 0"#,
    },
];
