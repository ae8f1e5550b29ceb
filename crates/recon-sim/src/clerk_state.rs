//! Clerk's objects as the simulator keeps them, and their JSON (times in
//! unix milliseconds).
//!
//! A membership embeds its organization and its user's public data. The
//! simulator freezes those copies when the membership itself is written, so
//! that every change visible through the API comes with a new `updated_at`
//! and a webhook of the object that changed (real Clerk renders them live).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use crate::table::{Key, Row, Table};

#[derive(Debug, Clone)]
pub(crate) struct Email {
    pub id: String,
    pub address: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub first_name: String,
    pub last_name: String,
    pub emails: Vec<Email>,
    pub primary_email: String,
    pub last_sign_in_at: Option<i64>,
    pub stripe_customer_id: Option<String>,
}

impl User {
    pub(crate) fn primary_address(&self) -> &str {
        self.emails
            .iter()
            .find(|e| e.id == self.primary_email)
            .or(self.emails.first())
            .map(|e| e.address.as_str())
            .unwrap_or("")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Org {
    pub id: String,
    pub seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub name: String,
    pub slug: String,
    pub created_by: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub id: String,
    pub seq: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub org_id: String,
    pub user_id: String,
    pub admin: bool,
    /// The organization and public user data as of the last write.
    pub organization: Value,
    pub public_user_data: Value,
}

impl Row for User {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> Key {
        (self.created_at, self.seq)
    }
    fn listed(&self) -> bool {
        true
    }
}

impl Row for Org {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> Key {
        (self.created_at, self.seq)
    }
    fn listed(&self) -> bool {
        true
    }
}

impl Row for Membership {
    fn id(&self) -> &str {
        &self.id
    }
    fn key(&self) -> Key {
        (self.created_at, self.seq)
    }
    fn listed(&self) -> bool {
        true
    }
}

/// The Clerk instance's objects. Deletions are hard: the ids are remembered
/// only so that the truth can say "deleted".
#[derive(Debug, Clone, Default)]
pub(crate) struct ClerkState {
    pub users: Table<User>,
    /// Users by `(updated_at, seq)`.
    pub users_by_updated: BTreeMap<Key, String>,
    pub orgs: Table<Org>,
    pub memberships: Table<Membership>,
    pub members_of_org: HashMap<String, Vec<String>>,
    pub orgs_of_user: HashMap<String, Vec<String>>,
    /// Deleted users and their listing keys (a `starting_after` cursor
    /// naming a user deleted since keeps working, as with time-sorted ids).
    pub deleted_users: HashMap<String, Key>,
    pub deleted_orgs: HashSet<String>,
    pub deleted_memberships: HashSet<String>,
}

impl ClerkState {
    pub(crate) fn insert_user(&mut self, u: User) {
        self.users_by_updated
            .insert((u.updated_at, u.seq), u.id.clone());
        self.users.insert(u);
    }

    /// Change a user; `updated_at` is set to `at` (kept strictly increasing).
    pub(crate) fn touch_user(&mut self, id: &str, at: i64, f: impl FnOnce(&mut User)) -> bool {
        let Some(u) = self.users.rows.get_mut(id) else {
            return false;
        };
        self.users_by_updated.remove(&(u.updated_at, u.seq));
        f(u);
        u.updated_at = at.max(u.updated_at + 1);
        self.users_by_updated
            .insert((u.updated_at, u.seq), u.id.clone());
        true
    }

    pub(crate) fn remove_user(&mut self, id: &str) -> Option<User> {
        let u = self.users.remove(id)?;
        self.users_by_updated.remove(&(u.updated_at, u.seq));
        self.deleted_users.insert(id.to_string(), u.key());
        Some(u)
    }

    pub(crate) fn insert_membership(&mut self, m: Membership) {
        self.members_of_org
            .entry(m.org_id.clone())
            .or_default()
            .push(m.id.clone());
        self.orgs_of_user
            .entry(m.user_id.clone())
            .or_default()
            .push(m.id.clone());
        self.memberships.insert(m);
    }

    pub(crate) fn remove_membership(&mut self, id: &str) -> Option<Membership> {
        let m = self.memberships.remove(id)?;
        if let Some(v) = self.members_of_org.get_mut(&m.org_id) {
            v.retain(|x| x != id);
        }
        if let Some(v) = self.orgs_of_user.get_mut(&m.user_id) {
            v.retain(|x| x != id);
        }
        self.deleted_memberships.insert(id.to_string());
        Some(m)
    }

    pub(crate) fn user_json(&self, u: &User) -> Value {
        serde_json::from_str(&crate::clerk_json::user_text(u)).expect("valid JSON")
    }

    /// The JSON text of a user, written directly (list pages).
    pub(crate) fn user_string(&self, u: &User) -> String {
        crate::clerk_json::user_text(u)
    }

    pub(crate) fn public_user_data(&self, u: &User) -> Value {
        json!({
            "user_id": u.id, "identifier": u.primary_address(),
            "first_name": u.first_name, "last_name": u.last_name,
            "image_url": "https://img.clerk.com/placeholder", "has_image": false,
            "username": null, "banned": false
        })
    }

    pub(crate) fn org_json(&self, o: &Org) -> Value {
        json!({
            "id": o.id, "object": "organization", "name": o.name, "slug": o.slug,
            "image_url": "https://img.clerk.com/placeholder", "has_image": false,
            "max_allowed_memberships": 0, "admin_delete_enabled": true,
            "public_metadata": {}, "private_metadata": {}, "created_by": o.created_by,
            "created_at": o.created_at, "updated_at": o.updated_at
        })
    }

    pub(crate) fn membership_json(&self, m: &Membership) -> Value {
        let (role, role_name, permissions) = if m.admin {
            (
                "org:admin",
                "Admin",
                json!([
                    "org:sys_profile:manage",
                    "org:sys_profile:delete",
                    "org:sys_memberships:read",
                    "org:sys_memberships:manage"
                ]),
            )
        } else {
            ("org:member", "Member", json!(["org:sys_memberships:read"]))
        };
        json!({
            "id": m.id, "object": "organization_membership", "role": role,
            "role_name": role_name, "permissions": permissions,
            "public_metadata": {}, "private_metadata": {},
            "organization": m.organization, "public_user_data": m.public_user_data,
            "created_at": m.created_at, "updated_at": m.updated_at
        })
    }

    /// An organization by id or slug.
    pub(crate) fn org_by_id_or_slug(&self, s: &str) -> Option<&Org> {
        self.orgs.get(s).or_else(|| {
            if s.starts_with("org_") {
                None
            } else {
                self.orgs.rows.values().find(|o| o.slug == s)
            }
        })
    }
}
