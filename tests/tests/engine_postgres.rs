//! Engine invariants against the Postgres store (one fresh schema per test).

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

recon_tests::engine_tests!(make);
