//! Clerk's side of the mutations: users, organizations and memberships,
//! each change with its webhook.

use rand::Rng;

use crate::state::World;

impl World {
    /// Change a user and send `user.updated`.
    pub(crate) fn touch_user(
        &mut self,
        id: &str,
        t_ms: i64,
        f: impl FnOnce(&mut crate::clerk_state::User),
    ) {
        if self.clerk.touch_user(id, t_ms, f) {
            let u = self.clerk.users.get(id).expect("user");
            let (json, ts) = (self.clerk.user_json(u), u.updated_at);
            self.clerk_event(ts, "user.updated", json);
        }
    }

    pub(crate) fn join(&mut self, org: &str, user: &str, admin: bool, t_ms: i64) -> bool {
        let already = self.clerk.orgs_of_user.get(user).is_some_and(|v| {
            v.iter().any(|m| {
                self.clerk
                    .memberships
                    .get(m)
                    .is_some_and(|m| m.org_id == org)
            })
        });
        if already {
            return false;
        }
        let Some(m) = self.new_membership(org, user, admin, t_ms) else {
            return false;
        };
        let json = self.clerk.membership_json(&m);
        self.pools.memberships.insert(&m.id);
        self.clerk.insert_membership(m);
        self.clerk_event(t_ms, "organizationMembership.created", json);
        true
    }

    fn leave(&mut self, mid: &str, t_ms: i64) {
        if let Some(m) = self.clerk.remove_membership(mid) {
            self.pools.memberships.remove(mid);
            let ts = t_ms.max(m.updated_at + 1);
            let json = self.clerk.membership_json(&m);
            self.clerk_event(ts, "organizationMembership.deleted", json);
        }
    }

    pub(crate) fn delete_user(&mut self, uid: &str, t_ms: i64) {
        let mids = self
            .clerk
            .orgs_of_user
            .get(uid)
            .cloned()
            .unwrap_or_default();
        for m in mids {
            self.leave(&m, t_ms);
        }
        if let Some(u) = self.clerk.remove_user(uid) {
            self.pools.users.remove(uid);
            let ts = t_ms.max(u.updated_at + 1);
            let data = serde_json::json!({"id": uid, "object": "user", "deleted": true});
            self.clerk_event(ts, "user.deleted", data);
        }
    }

    pub(crate) fn membership(&mut self, t_ms: i64) -> bool {
        if self.rng.random_bool(0.5)
            && let Some(mid) = self.pools.memberships.pick(&mut self.rng)
        {
            if self.rng.random_bool(0.5) {
                self.leave(&mid, t_ms);
            } else {
                let m = self
                    .clerk
                    .memberships
                    .get(&mid)
                    .expect("membership")
                    .clone();
                let organization = self
                    .clerk
                    .orgs
                    .get(&m.org_id)
                    .map(|o| self.clerk.org_json(o));
                let user = self
                    .clerk
                    .users
                    .get(&m.user_id)
                    .map(|u| self.clerk.public_user_data(u));
                self.clerk.memberships.update(&mid, |m| {
                    m.admin = !m.admin;
                    m.updated_at = t_ms.max(m.updated_at + 1);
                    if let Some(o) = organization {
                        m.organization = o;
                    }
                    if let Some(u) = user {
                        m.public_user_data = u;
                    }
                });
                let m = self.clerk.memberships.get(&mid).expect("membership");
                let (json, ts) = (self.clerk.membership_json(m), m.updated_at);
                self.clerk_event(ts, "organizationMembership.updated", json);
            }
            return true;
        }
        let (Some(u), Some(o)) = (
            self.pools.users.pick(&mut self.rng),
            self.pools.orgs.pick(&mut self.rng),
        ) else {
            return false;
        };
        self.join(&o, &u, false, t_ms)
    }

    pub(crate) fn organization(&mut self, t_ms: i64) -> bool {
        let r: f64 = self.rng.random();
        if r < 0.5 || self.pools.orgs.len() < 2 {
            let creator = self.pools.users.pick(&mut self.rng);
            let (name, slug) = self.org_name();
            let id = self.id("org_", 27);
            let seq = self.next_seq();
            let org = crate::clerk_state::Org {
                id: id.clone(),
                seq,
                created_at: t_ms,
                updated_at: t_ms,
                name,
                slug,
                created_by: creator.clone().unwrap_or_default(),
            };
            let json = self.clerk.org_json(&org);
            self.clerk.orgs.insert(org);
            self.pools.orgs.insert(&id);
            self.clerk_event(t_ms, "organization.created", json);
            if let Some(u) = creator {
                self.join(&id, &u, true, t_ms);
            }
            return true;
        }
        let oid = self.pools.orgs.pick(&mut self.rng).expect("orgs");
        if r < 0.85 {
            let (name, _) = self.org_name();
            self.clerk.orgs.update(&oid, |o| {
                o.name = name;
                o.updated_at = t_ms.max(o.updated_at + 1);
            });
            let o = self.clerk.orgs.get(&oid).expect("org");
            let (json, ts) = (self.clerk.org_json(o), o.updated_at);
            self.clerk_event(ts, "organization.updated", json);
        } else {
            let mids = self
                .clerk
                .members_of_org
                .get(&oid)
                .cloned()
                .unwrap_or_default();
            for m in mids {
                self.leave(&m, t_ms);
            }
            if let Some(o) = self.clerk.orgs.remove(&oid) {
                self.clerk.deleted_orgs.insert(oid.clone());
                self.pools.orgs.remove(&oid);
                let data =
                    serde_json::json!({"id": oid, "object": "organization", "deleted": true});
                self.clerk_event(t_ms.max(o.updated_at + 1), "organization.deleted", data);
            }
        }
        true
    }
}
