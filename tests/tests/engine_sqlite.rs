//! Engine invariants against the SQLite store (one fresh file per test).

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_sqlite::testing::fresh_store().await)
}

recon_tests::engine_tests!(make);
recon_tests::guarantee_tests!(make);
