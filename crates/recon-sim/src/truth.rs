//! The simulator's current state as plain data, for tests to compare a
//! mirror with: per provider and kind, every object ever created, by id,
//! as the API renders it now, or deleted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Provider;
use crate::state::World;
use crate::stripe_state::{Rendered, StripeKind};
use crate::table::Row;

/// One object's current state.
#[derive(Debug, Clone, PartialEq)]
pub enum TruthObject {
    /// The JSON a retrieve (or a list) returns now.
    Live(Value),
    /// Deleted (Stripe retrieves `{deleted: true}`; Clerk answers 404).
    Deleted,
}

impl TruthObject {
    /// The live JSON, if not deleted.
    pub fn live(&self) -> Option<&Value> {
        match self {
            TruthObject::Live(v) => Some(v),
            TruthObject::Deleted => None,
        }
    }
}

/// Every object by (provider, kind) and id. Kinds are recon's names:
/// Stripe `customers, subscriptions, invoices, prices, products`; Clerk
/// `users, organizations, organization_memberships`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// (provider, kind) → id → state.
    pub objects: BTreeMap<(Provider, String), BTreeMap<String, TruthObject>>,
}

impl Truth {
    /// The objects of one kind (empty if the kind is unknown).
    pub fn kind(&self, provider: Provider, kind: &str) -> &BTreeMap<String, TruthObject> {
        static EMPTY: BTreeMap<String, TruthObject> = BTreeMap::new();
        self.objects
            .get(&(provider, kind.to_string()))
            .unwrap_or(&EMPTY)
    }

    /// One object.
    pub fn get(&self, provider: Provider, kind: &str, id: &str) -> Option<&TruthObject> {
        self.kind(provider, kind).get(id)
    }

    /// How many objects of a kind are live (not deleted).
    pub fn live_count(&self, provider: Provider, kind: &str) -> usize {
        self.kind(provider, kind)
            .values()
            .filter(|o| o.live().is_some())
            .count()
    }

    /// Live objects in all.
    pub fn total_live(&self) -> usize {
        self.objects
            .values()
            .flat_map(|m| m.values())
            .filter(|o| o.live().is_some())
            .count()
    }
}

pub(crate) fn snapshot(w: &World) -> Truth {
    let mut t = Truth::default();
    for k in StripeKind::ALL {
        let ids: Vec<&String> = match k {
            StripeKind::Customers => w.stripe.customers.rows.keys().collect(),
            StripeKind::Subscriptions => w.stripe.subscriptions.rows.keys().collect(),
            StripeKind::Invoices => w.stripe.invoices.rows.keys().collect(),
            StripeKind::Prices => w.stripe.prices.rows.keys().collect(),
            StripeKind::Products => w.stripe.products.rows.keys().collect(),
        };
        let m = ids
            .into_iter()
            .filter_map(|id| {
                let o = match w.stripe.render(k, id) {
                    Rendered::Live(v) => TruthObject::Live(v),
                    Rendered::Deleted(_) => TruthObject::Deleted,
                    Rendered::Missing => return None,
                };
                Some((id.clone(), o))
            })
            .collect();
        t.objects
            .insert((Provider::Stripe, k.path().to_string()), m);
    }
    let c = &w.clerk;
    let mut users: BTreeMap<String, TruthObject> = c
        .users
        .rows
        .values()
        .map(|u| (u.id().to_string(), TruthObject::Live(c.user_json(u))))
        .collect();
    users.extend(
        c.deleted_users
            .keys()
            .map(|id| (id.clone(), TruthObject::Deleted)),
    );
    let mut orgs: BTreeMap<String, TruthObject> = c
        .orgs
        .rows
        .values()
        .map(|o| (o.id.clone(), TruthObject::Live(c.org_json(o))))
        .collect();
    orgs.extend(
        c.deleted_orgs
            .iter()
            .map(|id| (id.clone(), TruthObject::Deleted)),
    );
    let mut mems: BTreeMap<String, TruthObject> = c
        .memberships
        .rows
        .values()
        .map(|m| (m.id.clone(), TruthObject::Live(c.membership_json(m))))
        .collect();
    mems.extend(
        c.deleted_memberships
            .iter()
            .map(|id| (id.clone(), TruthObject::Deleted)),
    );
    t.objects.insert((Provider::Clerk, "users".into()), users);
    t.objects
        .insert((Provider::Clerk, "organizations".into()), orgs);
    t.objects
        .insert((Provider::Clerk, "organization_memberships".into()), mems);
    t
}
