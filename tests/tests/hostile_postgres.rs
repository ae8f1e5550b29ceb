//! Hostile provider JSON against the Postgres store (one fresh schema per
//! fixture).

use std::sync::Arc;

use recon_tests::hostile::Fixture;

async fn make() -> Fixture {
    let store = Arc::new(recon_store_postgres::testing::fresh_store().await);
    Fixture {
        store: store.clone(),
        quarantine: store,
    }
}

recon_tests::hostile_tests!(make);
