//! The race harness (see `recon_tests::race`) on both stores.

use std::sync::Arc;

use recon_core::Store;

async fn postgres() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

async fn sqlite() -> Arc<dyn Store> {
    Arc::new(recon_store_sqlite::testing::fresh_store().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleavings_postgres() {
    recon_tests::race::interleavings(postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleavings_sqlite() {
    recon_tests::race::interleavings(sqlite).await;
}
