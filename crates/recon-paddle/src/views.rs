//! Paddle's typed views over recon's `objects` table (live objects; times
//! are `timestamptz` in Postgres, RFC 3339 text in SQLite; amounts are
//! Paddle's minor-unit strings).

use recon_core::object_view;
use recon_core::store::View;

/// One view per kind: its columns, then its time columns.
#[rustfmt::skip]
pub const VIEWS: &[View] = &[
    object_view!("paddle", "customers",
        "email, data->>'name' AS name, data->>'locale' AS locale",
        ["created_at", "updated_at"]),
    object_view!("paddle", "products",
        "data->>'name' AS name, data->>'type' AS type, data->>'tax_category' AS tax_category",
        ["created_at", "updated_at"]),
    object_view!("paddle", "prices",
        "data->>'product_id' AS product_id, data->>'name' AS name, \
         data->'unit_price'->>'amount' AS unit_amount, \
         data->'unit_price'->>'currency_code' AS currency_code, \
         data->'billing_cycle'->>'interval' AS billing_interval, \
         data->'billing_cycle'->>'frequency' AS billing_frequency",
        ["created_at", "updated_at"]),
    object_view!("paddle", "subscriptions",
        "owner_id AS customer_id, data->'items'->0->'price'->>'id' AS price_id, \
         data->>'currency_code' AS currency_code, data->>'collection_mode' AS collection_mode, \
         data->'scheduled_change'->>'action' AS scheduled_change",
        ["started_at", "next_billed_at", "paused_at", "canceled_at", "updated_at"]),
    object_view!("paddle", "transactions",
        "owner_id AS customer_id, data->>'subscription_id' AS subscription_id, \
         data->>'invoice_number' AS invoice_number, data->>'origin' AS origin, \
         data->'details'->'totals'->>'grand_total' AS grand_total, \
         data->>'currency_code' AS currency_code",
        ["billed_at", "created_at", "updated_at"]),
];
