//! Engine invariant cases, run against every store by `tests/engine_*.rs`.
//!
//! Each case states the invariant it guards (README, "What it guarantees";
//! docs/GUARANTEES.md) and is written so that it fails if the engine breaks
//! that invariant.

#![allow(missing_docs)]

pub mod cases;
pub mod chaos;
pub mod failing;
pub mod guarantees;
pub mod hostile;
pub mod projections;
pub mod race;

/// The typed views of the providers this project ships, for stores whose
/// projections read them.
pub fn views() -> Vec<recon_core::store::View> {
    recon_stripe::views::VIEWS
        .iter()
        .chain(recon_clerk::views::VIEWS)
        .copied()
        .collect()
}

use std::sync::Arc;

use recon_core::Store;
use recon_core::testkit::fake::TestProvider;

/// The mirror's live objects of `kind` equal the provider's truth.
pub async fn assert_mirror_matches(store: &dyn Store, provider: &TestProvider, kind: &str) {
    let truth = provider.truth(kind);
    let ids: Vec<&str> = truth.keys().map(String::as_str).collect();
    let stored = store.get_many("test", "default", kind, &ids).await.unwrap();
    let mut mismatched = Vec::new();
    for s in &stored {
        if s.snapshot.deleted || truth.get(&s.snapshot.key.id) != Some(&s.snapshot.data) {
            mismatched.push(s.snapshot.key.id.clone());
        }
    }
    assert_eq!(
        stored.len(),
        truth.len(),
        "{kind}: mirror is missing objects"
    );
    assert!(
        mismatched.is_empty(),
        "{kind}: mirror differs for {mismatched:?}"
    );
    let live = store.count_live("test", "default", kind).await.unwrap();
    assert_eq!(
        live as usize,
        truth.len(),
        "{kind}: mirror has extra live objects"
    );
}

/// A provider with `parents` parents and `children` children (owned round-robin).
pub fn seeded(page: usize, parents: usize, children: usize) -> Arc<TestProvider> {
    let p = Arc::new(TestProvider::new(page));
    for i in 0..parents {
        p.put(
            "parents",
            &format!("p_{i:04}"),
            serde_json::json!({ "name": format!("parent {i}") }),
        );
    }
    for i in 0..children {
        let owner = format!("p_{:04}", i % parents.max(1));
        p.put(
            "children",
            &format!("c_{i:04}"),
            serde_json::json!({ "owner": owner, "status": "active", "n": i }),
        );
    }
    p
}
