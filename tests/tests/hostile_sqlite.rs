//! Hostile provider JSON against the SQLite store.

use std::sync::Arc;

use recon_tests::hostile::Fixture;

async fn make() -> Fixture {
    let store = Arc::new(recon_store_sqlite::testing::fresh_store().await);
    Fixture {
        store: store.clone(),
        quarantine: store,
    }
}

recon_tests::hostile_tests!(make);
