//! Engine invariants against the Postgres store (one fresh schema per test).

use std::sync::Arc;

use recon_core::Store;

async fn make() -> Arc<dyn Store> {
    Arc::new(recon_store_postgres::testing::fresh_store().await)
}

recon_tests::engine_tests!(make);
recon_tests::guarantee_tests!(make);

/// Postgres runs write transactions concurrently: the guard's tombstone
/// rule must hold in the SQL (SQLite serialises whole transactions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstone_race() {
    recon_tests::guarantees::tombstone_race(make().await).await;
}
