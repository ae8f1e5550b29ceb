//! Clerk's typed views over recon's `objects` table, for both stores:
//! live objects only (tombstones stay in `objects` with `deleted` set).
//! The stores create them at `recon migrate` for the registered providers.

use recon_core::store::View;

/// One view per kind.
pub const VIEWS: &[View] = &[
    View {
        name: "clerk_users",
        postgres: r#"SELECT account, id, email, data->>'first_name' AS first_name, data->>'last_name' AS last_name,
       data->>'username' AS username, data->>'external_id' AS external_id,
       (data->>'banned')::boolean AS banned, (data->>'created_at')::bigint AS created_at,
       (data->>'updated_at')::bigint AS updated_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'users' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, email, data->>'first_name' AS first_name, data->>'last_name' AS last_name,
       data->>'username' AS username, data->>'external_id' AS external_id,
       data->>'banned' AS banned, data->>'created_at' AS created_at,
       data->>'updated_at' AS updated_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'users' AND deleted = 0"#,
    },
    View {
        name: "clerk_organizations",
        postgres: r#"SELECT account, id, data->>'name' AS name, data->>'slug' AS slug,
       (data->>'members_count')::bigint AS members_count,
       (data->>'created_at')::bigint AS created_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organizations' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, data->>'name' AS name, data->>'slug' AS slug,
       data->>'members_count' AS members_count,
       data->>'created_at' AS created_at, data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organizations' AND deleted = 0"#,
    },
    View {
        name: "clerk_organization_memberships",
        postgres: r#"SELECT account, id, owner_id AS user_id, data#>>'{organization,id}' AS organization_id,
       data->>'role' AS role, (data->>'created_at')::bigint AS created_at,
       data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organization_memberships' AND NOT deleted"#,
        sqlite: r#"SELECT account, id, owner_id AS user_id, data->>'$.organization.id' AS organization_id,
       data->>'role' AS role, data->>'created_at' AS created_at,
       data, version, confirmed_at
FROM objects WHERE provider = 'clerk' AND kind = 'organization_memberships' AND deleted = 0"#,
    },
];
